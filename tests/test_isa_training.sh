#!/usr/bin/env bash
# Training under every instruction-set path this CPU offers, forced by --isa, ends in the
# same weights, bit for bit, across ranks and threads: 2 ranks x 1 thread under each path;
# under a path that is not the default one, 2 ranks x 2 threads and 1 rank x 2 threads
# with and without the overlapped reduction as well. A path the CPU lacks is reported
# and left out. Also: the banner names the path and why; --isa wins over DPTRAIN_ISA; a
# path one rank's CPU lacks (DPTRAIN_TEST_ISA_LACKS) or an unknown DPTRAIN_ISA stops every
# rank with a message naming the option and what the CPU offers, none left hanging.
# dptrain-eval takes --isa too and gives the same loss and predictions on every path.
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
  mpi "$ranks" "$DPTRAIN" "${common[@]}" --isa "$isa" --threads "$threads" "$@" \
    --save "$name.h5" > "$name.log" 2>&1 || { cat "$name.log"; fail "$name: the run failed"; }
}
for p in "${paths[@]}"; do
  run "$p-2x1" "$p" 2 1
  expect_in "$p-2x1.log" "kernels: $p ("
  expect_in "$p-2x1.log" "forced by --isa)"
  [[ $p == "${paths[0]}" ]] && continue
  "$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "$p-2x1.h5" --exact \
    || fail "$p gives other weights than ${paths[0]} (2 ranks x 1 thread)"
done
# a path forced that is not the one CPUID would choose: threads, ranks, overlap
forced=${paths[1]:-${paths[0]}}
run "$forced-2x2" "$forced" 2 2
run "$forced-2x1-noov" "$forced" 2 1 --no-overlap
run "$forced-1x2" "$forced" 1 2
for v in 2x2 2x1-noov 1x2; do
  "$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "$forced-$v.h5" --exact \
    || fail "$forced ($v) differs from ${paths[0]} (2 ranks x 1 thread)"
done
# the comparison is not blind: other steps give other weights
run "${paths[0]}-2x1-more" "${paths[0]}" 2 1 --steps 5
"$TOOLS/compare_weights" "${paths[0]}-2x1.h5" "${paths[0]}-2x1-more.h5" --exact > /dev/null \
  && fail "4 and 5 steps compare equal: the comparison is blind"

# dptrain-eval chooses the same way; every path gives the same loss and predictions
for p in "${paths[@]}"; do
  mpi 2 "$DP_BINARY_DIR/dptrain-eval" --weights "${paths[0]}-2x1.h5" --data train --isa "$p" \
    --predictions "eval-$p.csv" > "eval-$p.log" 2>&1 || { cat "eval-$p.log"; fail "eval $p"; }
  expect_in "eval-$p.log" "kernels: $p ("
  grep '^loss' "eval-$p.log" > "eval-$p.loss"
  cmp -s "eval-${paths[0]}.loss" "eval-$p.loss" && cmp -s "eval-${paths[0]}.csv" "eval-$p.csv" \
    || fail "dptrain-eval under $p differs from ${paths[0]}"
done

# how the path was chosen: CPUID by default, DPTRAIN_ISA, and --isa over DPTRAIN_ISA
mpi 1 "$DPTRAIN" "${common[@]}" --steps 1 > auto.log 2>&1 || { cat auto.log; fail "auto run"; }
expect_in auto.log "kernels: ${paths[0]} ("
expect_in auto.log "chosen from CPUID)"
last=${paths[-1]}
DPTRAIN_ISA=$last mpi 1 "$DPTRAIN" "${common[@]}" --steps 1 > env.log 2>&1 \
  || { cat env.log; fail "DPTRAIN_ISA run"; }
expect_in env.log "kernels: $last ("
expect_in env.log "forced by DPTRAIN_ISA)"
DPTRAIN_ISA=$last mpi 1 "$DPTRAIN" "${common[@]}" --steps 1 --isa auto > both.log 2>&1 \
  || { cat both.log; fail "--isa with DPTRAIN_ISA run"; }
expect_in both.log "kernels: ${paths[0]} ("

# refusals, on 2 ranks: both stop (the timeout catches a rank left waiting)
refused() { # refused NAME PROGRAM ARGS...: the run fails, in time; then NAME.log is checked
  local name=$1 rc=0; shift
  timeout -k 5 120 bash -c "$(declare -f mpi); mpi 2 \"\$@\"" _ "$@" "${common[@]}" \
    > "$name.log" 2>&1 || rc=$?
  [[ $rc -ne 0 ]] || { cat "$name.log"; fail "$name: the run was accepted"; }
  [[ $rc -ne 124 && $rc -ne 137 ]] || { cat "$name.log"; fail "$name: a rank was left hanging"; }
  echo "$name: refused: $(grep -m1 'error:' "$name.log" || true)"
}
DPTRAIN_ISA=sse9 refused bad-env "$DPTRAIN"
expect_in bad-env.log "DPTRAIN_ISA: unknown instruction set 'sse9'"
expect_in bad-env.log "this CPU offers ${paths[0]}"
if [[ ${#paths[@]} -ge 2 ]]; then
  # rank 1's CPU "lacks" the widest path: forcing it must stop both ranks, rank 0 too
  DPTRAIN_TEST_ISA_LACKS=1:${paths[0]} refused lacks "$DPTRAIN_TESTHOOKS" --isa "${paths[0]}"
  expect_in lacks.log "--isa: this CPU lacks"
  expect_in lacks.log "(${paths[0]}); it offers ${paths[1]}"
  # ... while auto on that rank takes the next path and trains to the same weights
  DPTRAIN_TEST_ISA_LACKS=1:${paths[0]} mpi 2 "$DPTRAIN_TESTHOOKS" "${common[@]}" --threads 1 \
    --save mixed.h5 > mixed.log 2>&1 || { cat mixed.log; fail "mixed paths: the run failed"; }
  expect_in mixed.log "kernels: ${paths[0]} ("
  expect_in mixed.log "; other paths: rank 1: ${paths[1]}"
  "$TOOLS/compare_weights" "${paths[0]}-2x1.h5" mixed.h5 --exact \
    || fail "ranks on different paths (${paths[0]} and ${paths[1]}) give other weights"
fi
echo "1 passed, 0 failed"
