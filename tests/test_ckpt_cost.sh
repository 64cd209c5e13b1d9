#!/usr/bin/env bash
# bench/ckpt_cost.sh on synthetic data, one round of 3 steps with a base build (the same
# binary): each build's line with the checkpoints' page faults (more with them than
# without), the cost of one and its size, the ratio base/new, the quiet check; a bad
# ROUNDS and a missing program are named (exit 2).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 800 5 4
export CKPT_COST_DATA=$WORK/train QUIET_SETTLE=0
ckpt_cost=$DP_SOURCE_DIR/bench/ckpt_cost.sh
DPTRAIN=$DPTRAIN BASE_DPTRAIN=$DPTRAIN bash "$ckpt_cost" 1 reference 3 > ok.log 2>&1 ||
  { cat ok.log; fail "ckpt_cost.sh failed"; }
cat ok.log
for name in base new; do
  line=$(grep "^$name: median" ok.log) || fail "no summary line for $name"
  # the cost itself is noise at 3 steps; the checkpoints' page faults are not
  [[ $line =~ faults\ ([0-9]+)\ /\ ([0-9]+)\;\ one\ checkpoint\ of\ [0-9.]+\ MB:\ -?[0-9]+\ ms ]] ||
    fail "$name: the summary is not as expected: $line"
  ((BASH_REMATCH[2] > BASH_REMATCH[1])) ||
    fail "$name: no page faults counted for the checkpoints: $line"
done
expect_in ok.log "round 1 base: without"
expect_in ok.log "round 1 new: without"
expect_in ok.log "one checkpoint, base/new:"
expect_in ok.log "quiet check:"
grep -q "one checkpoint of 0.0 MB" ok.log && fail "the checkpoint's size was not read"
rc=0
DPTRAIN=$DPTRAIN bash "$ckpt_cost" 0 > bad.log 2>&1 || rc=$?
[[ $rc == 2 ]] || { cat bad.log; fail "ROUNDS 0: exit $rc, expected 2"; }
expect_in bad.log "ckpt_cost.sh: ROUNDS '0': expected a positive integer"
rc=0
DPTRAIN=$WORK/nowhere bash "$ckpt_cost" 1 > bad.log 2>&1 || rc=$?
[[ $rc == 2 ]] || { cat bad.log; fail "a missing program: exit $rc, expected 2"; }
expect_in bad.log "ckpt_cost.sh: $WORK/nowhere: no such program"
echo "ckpt_cost: ok"
