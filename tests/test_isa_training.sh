#!/usr/bin/env bash
# Training under every instruction-set path this CPU offers (DPTRAIN_ISA) ends in the same
# weights, bit for bit, across ranks and threads: 2 ranks x 1 thread under each path;
# under a path that is not the default one, 2 ranks x 2 threads and 1 rank x 2 threads
# with and without the overlapped reduction as well. A path the CPU lacks is reported
# and left out.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 240 5 2
mapfile -t paths < <("$TOOLS/test_isa" --list)
echo "paths on this CPU: ${paths[*]}"
for p in avx512 avx2 scalar; do
  [[ " ${paths[*]} " == *" $p "* ]] || echo "$p: skipped, this CPU lacks it"
done
[[ ${#paths[@]} -ge 1 ]] || fail "test_isa --list printed no path"
common=(--train train --test none --batch 40 --steps 4 --seed 5 --lr 0.05 --no-progress)
run() { # run NAME ISA RANKS THREADS [ARGS...]
  local name=$1 isa=$2 ranks=$3 threads=$4; shift 4
  DPTRAIN_ISA=$isa mpi "$ranks" "$DPTRAIN" "${common[@]}" --threads "$threads" "$@" \
    --save "$name.h5" > "$name.log" 2>&1 || { cat "$name.log"; fail "$name: the run failed"; }
}
for p in "${paths[@]}"; do
  run "$p-2x1" "$p" 2 1
  [[ $p == "${paths[0]}" ]] && continue
  "$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "$p-2x1.h5" --exact \
    || fail "$p gives other weights than ${paths[0]} (2 ranks x 1 thread)"
done
# a path forced that is not the one CPUID would choose: threads, ranks, overlap
forced=${paths[1]:-${paths[0]}}
run "$forced-2x2" "$forced" 2 2
run "$forced-2x1-noov" "$forced" 2 1 --no-overlap
"$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "$forced-2x2.h5" --exact \
  || fail "$forced with 2 threads per rank differs from ${paths[0]} with 1"
"$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "$forced-2x1-noov.h5" --exact \
  || fail "$forced without the overlapped reduction differs"
# the comparison is not blind: other steps give other weights
run "${paths[0]}-2x1-more" "${paths[0]}" 2 1 --steps 5
"$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "${paths[0]}-2x1-more.h5" --exact > /dev/null \
  && fail "4 and 5 steps compare equal: the comparison is blind"
echo "1 passed, 0 failed"
