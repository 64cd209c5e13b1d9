#!/usr/bin/env bash
# Fault-injection hooks (DPTRAIN_TEST_*, include/dptrain/util/test_hooks.h) exist only in
# dptrain-testhooks, the test build (issue 13 item 6): the installed programs hold none of
# their names, and dptrain run with every hook set trains, checkpoints and exits 0, while
# dptrain-testhooks given one of them dies where the hook says (the guard that the same
# run can fail).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
EVAL="$DP_BINARY_DIR/dptrain-eval"
for prog in "$DPTRAIN" "$DPTRAIN_DATA" "$EVAL"; do
  if grep -qa "DPTRAIN_TEST_" "$prog"; then fail "$prog holds the test hooks: $(grep -ao 'DPTRAIN_TEST_[A-Z_]*' "$prog" | sort -u | tr '\n' ' ')"; fi
done
grep -qa "DPTRAIN_TEST_CRASH_IN_CHECKPOINT" "$DPTRAIN_TESTHOOKS" || fail "$DPTRAIN_TESTHOOKS lacks the hooks"

"$TOOLS/make_dataset" synth train 400 1 2 > /dev/null
args=(--train train --test none --batch 100 --steps 4 --threads 1 --no-progress --watchdog 5)
hooks=(DPTRAIN_TEST_CRASH_IN_CHECKPOINT=1 DPTRAIN_TEST_STOP_IN_CHECKPOINT=1
       DPTRAIN_TEST_STALL=1:2:stop)
# bounded: a binary that obeyed the stop hooks would hang; timeout ends it
rc=0
env "${hooks[@]}" timeout -k 5 120 bash -c "$(declare -f mpi); mpi 2 \"\$@\"" _ "$DPTRAIN" \
  "${args[@]}" --checkpoint-dir ck --checkpoint-every 1 > prod.log 2>&1 || rc=$?
[[ $rc -eq 0 ]] || { cat prod.log; fail "dptrain with DPTRAIN_TEST_* set: exit $rc, expected 0"; }
if grep -q "DPTRAIN_TEST_" prod.log; then cat prod.log; fail "a hook fired in dptrain"; fi
expect_in prod.log "replicas identical on 2 ranks"
[[ -f ck/ckpt-00000004.h5 ]] || fail "dptrain with the hooks set wrote no checkpoint: $(ls ck)"
echo "ok: dptrain ignores ${hooks[*]}"

# the guard: the test build with the crash hook dies halfway through its first checkpoint
rc=0
DPTRAIN_TEST_CRASH_IN_CHECKPOINT=1 timeout -k 5 120 bash -c "$(declare -f mpi); mpi 2 \"\$@\"" _ \
  "$DPTRAIN_TESTHOOKS" "${args[@]}" --checkpoint-dir ck2 --checkpoint-every 1 > test.log 2>&1 || rc=$?
[[ $rc -ne 0 ]] || { cat test.log; fail "dptrain-testhooks ignored DPTRAIN_TEST_CRASH_IN_CHECKPOINT"; }
expect_in test.log "DPTRAIN_TEST_CRASH_IN_CHECKPOINT: dying mid-write"
echo "ok: dptrain-testhooks obeys DPTRAIN_TEST_CRASH_IN_CHECKPOINT (exit $rc)"
echo "1 passed, 0 failed"
