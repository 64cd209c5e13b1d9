#!/usr/bin/env bash
# bundle.sh: a relocatable copy of the built dptrain, its benchmarks and the Open MPI and
# HDF5 runtime they load, for an x86-64 Linux machine that has neither installed (a
# benchmark host lent for minutes, a compute node without Debian's packages).
#   scripts/bundle.sh OUTDIR [BUILD (default build)]
# OUTDIR gets bin/ (dptrain, dptrain-data, dptrain-eval, the bench programs, mpirun, orted),
# lib/ (every shared library they load but the C library's own, Open MPI's and PMIx's
# plug-ins), share/, etc/ and env.sh. There: `source OUTDIR/env.sh`, then mpirun and dptrain
# run from the bundle, whatever its path. The target's C library must be at least as new as
# this machine's (glibc 2.36 on Debian 12).
set -euo pipefail
die() { echo "bundle.sh: error: $*" >&2; exit 1; }
[[ $# -ge 1 ]] || die "usage: scripts/bundle.sh OUTDIR [BUILD]"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$1
build=${2:-$repo/build}
[[ -x "$build/dptrain" ]] || die "$build/dptrain is not built (cmake --build $build)"
ompi_lib=/usr/lib/x86_64-linux-gnu/openmpi/lib
pmix_root=/usr/lib/x86_64-linux-gnu/pmix2
[[ -d "$ompi_lib/openmpi3" ]] || die "$ompi_lib/openmpi3: Open MPI's plug-ins are missing (apt-get install openmpi-bin)"
[[ -d "$pmix_root/lib/pmix" ]] || die "$pmix_root/lib/pmix: PMIx's plug-ins are missing"

rm -rf "$out"
mkdir -p "$out"/{bin,lib/openmpi3,lib/pmix,share/openmpi,share/pmix,etc}
for p in dptrain dptrain-data dptrain-eval bench/bench_layers bench/bench_kernels bench/allreduce_bench; do
  [[ -x "$build/$p" ]] && cp "$build/$p" "$out/bin/"
done
cp /usr/bin/orterun "$out/bin/mpirun"
cp /usr/bin/orted "$out/bin/"
cp "$ompi_lib"/openmpi3/*.so "$out/lib/openmpi3/"
cp "$ompi_lib"/libmca_common_*.so* "$out/lib/"
cp "$pmix_root"/lib/pmix/*.so "$out/lib/pmix/"
cp -r /usr/share/openmpi/. "$out/share/openmpi/"
cp -r "$pmix_root"/share/pmix/. "$out/share/pmix/"
cp /etc/openmpi/openmpi-mca-params.conf /etc/openmpi/openmpi-default-hostfile "$out/etc/"
cp "$pmix_root"/share/pmix-mca-params.conf "$out/etc/"

# Every library any of them loads (ldd follows the whole chain), but the C library's own:
# the target brings those.
glibc='^(libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|ld-linux-x86-64)\.so'
deps=$(find "$out/bin" "$out/lib" -type f -exec ldd {} + 2>/dev/null || true)
awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$deps" | sort -u | while read -r so; do
  name=$(basename "$so")
  [[ "$name" =~ $glibc ]] && continue
  [[ -e "$out/lib/$name" ]] || cp -L "$so" "$out/lib/$name"
done
missing=$(grep 'not found' <<<"$deps" | sort -u || true)
[[ -z "$missing" ]] || echo "bundle.sh: warning: not found here, so not bundled:" "$missing" >&2

cat >"$out/env.sh" <<'EOF'
# source this file: dptrain, mpirun and their libraries from this bundle, wherever it lies.
b=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="$b/bin:$PATH" LD_LIBRARY_PATH="$b/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPAL_PREFIX="$b" OPAL_EXEC_PREFIX="$b" OPAL_BINDIR="$b/bin" OPAL_LIBDIR="$b/lib"
export OPAL_PKGLIBDIR="$b/lib/openmpi3" OPAL_DATADIR="$b/share" OPAL_PKGDATADIR="$b/share/openmpi"
export OPAL_SYSCONFDIR="$b/etc"
export PMIX_PREFIX="$b" PMIX_EXEC_PREFIX="$b" PMIX_LIBDIR="$b/lib" PMIX_PKGLIBDIR="$b/lib/pmix"
export PMIX_DATADIR="$b/share" PMIX_PKGDATADIR="$b/share/pmix" PMIX_SYSCONFDIR="$b/etc"
export DPTRAIN_DATA="$b/bin/dptrain-data"
unset b
EOF
echo "bundle.sh: $out ($(du -sh "$out" | cut -f1)); on the target: source $out/env.sh"
