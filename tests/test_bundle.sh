#!/usr/bin/env bash
# scripts/bundle.sh: the bundle runs where Open MPI and HDF5 are not installed. Made, then
# moved to another path, it trains 2 ranks in a mount namespace where Debian's Open MPI,
# PMIx and HDF5 are hidden (their plug-in, help and configuration folders under empty
# ones, their libraries under an empty file, so that loading one of them fails), and
# gives bitwise the weights of the installed build. A build that is not there is refused.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
bundle=$DP_SOURCE_DIR/scripts/bundle.sh
build=$(dirname "$DPTRAIN")
"$TOOLS/make_dataset" synth train 800 5 4

"$bundle" made "$WORK/nothing" > refused.log 2>&1 && fail "a bundle of a missing build was made"
expect_in refused.log "$WORK/nothing/dptrain is not built"

"$bundle" made "$build" > made.log 2>&1 || { cat made.log; fail "bundle.sh failed"; }
mv made moved
args=(--train "$WORK/train" --steps 20 --test none --no-progress --threads 1)
mpi 2 "$DPTRAIN" "${args[@]}" > installed.log 2>&1 || { cat installed.log; fail "the installed build failed"; }
want=$(grep -oE 'checksum [0-9a-f]{16}' installed.log) || fail "installed.log has no checksum"

unshare -m true 2>/dev/null || skip_test "unshare -m is not allowed here (needs root or user namespaces)"
mkdir empty && : > empty.file
cat > hidden.sh <<EOF
set -euo pipefail
lib=/usr/lib/x86_64-linux-gnu
for d in \$lib/openmpi \$lib/pmix2 /usr/share/openmpi /etc/openmpi; do
  [[ -d \$d ]] && mount --bind "$WORK/empty" \$d
done
for f in \$lib/libmpi.so.40 \$lib/libopen-pal.so.40 \$lib/libopen-rte.so.40 \$lib/libhdf5_openmpi.so.103 /usr/bin/orterun /usr/bin/orted; do
  [[ -e \$f ]] && mount --bind "$WORK/empty.file" "\$(readlink -f \$f)"
done
# the installed build cannot start here: the hiding works
if "$DPTRAIN" --version > /dev/null 2>&1; then echo "the installed dptrain still starts"; exit 3; fi
source "$WORK/moved/env.sh"
mpirun -n 2 dptrain ${args[*]}
EOF
unshare -m bash hidden.sh > bundled.log 2>&1 || { cat bundled.log; fail "the moved bundle failed with the installed runtime hidden"; }
expect_in bundled.log "replicas identical on 2 ranks (weights $want)"
echo "bundle: 2 ranks with Open MPI and HDF5 hidden, $want as installed"
