#!/usr/bin/env bash
# A checkpoint written by P ranks resumes on Q ranks and the run ends bitwise equal to the
# uninterrupted one: 8 -> 3, 3 -> 8, 1 -> 4, 4 -> 1 (a checkpoint holds no per-rank state;
# the data order and the gradient sums do not depend on the rank count); and a checkpoint
# written under the data order's older rule for ties goes on under it.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 2400 5 8 > /dev/null      # 8 shards of 300: 24 steps/epoch
common=(--train train --test none --epochs 2 --weight-decay 0.0005 --threads 1 --no-progress)

mpi 2 "$DPTRAIN" "${common[@]}" --save full.h5 > full.log 2>&1 || { cat full.log; fail "full run"; }
for pair in 8:3 3:8 1:4 4:1; do
  from=${pair%:*} to=${pair#*:}
  mpi "$from" "$DPTRAIN" "${common[@]}" --steps 17 --checkpoint-dir "ck$from$to" \
      --checkpoint-every 5 > "a$from$to.log" 2>&1 || { cat "a$from$to.log"; fail "$from ranks: first part"; }
  "$TOOLS/compare_weights" full.h5 "ck$from$to/ckpt-00000015.h5" --exact > /dev/null \
    && fail "the comparison is blind: step 15 equals the final weights"
  mpi "$to" "$DPTRAIN" "${common[@]}" --resume "ck$from$to" --save "r$from$to.h5" \
      > "b$from$to.log" 2>&1 || { cat "b$from$to.log"; fail "resume $from -> $to ranks"; }
  expect_in "b$from$to.log" "step 15 of 48"
  "$TOOLS/compare_weights" full.h5 "r$from$to.h5" --exact \
    || fail "written by $from ranks, resumed on $to: weights differ from the uninterrupted run"
  echo "$from -> $to ranks: bitwise equal to the uninterrupted run"
done

# A checkpoint from a program before 2026-12-03 (samples due at the same time: the lower
# file first; no data_order_ties attribute) goes on under its own data order: bitwise the
# uninterrupted run of that program. dptrain-testhooks with DPTRAIN_TEST_OLD_TIES=1 trains
# as it did; h5py removes the attribute, as those files lack it.
"${DP_PYTHON:-/usr/bin/python3}" -c "import h5py" 2> /dev/null \
  || skip_part "${DP_PYTHON:-/usr/bin/python3} has no h5py: the old checkpoint keeps its data_order_ties attribute"
DPTRAIN_TEST_OLD_TIES=1 mpi 2 "$DPTRAIN_TESTHOOKS" "${common[@]}" --save oldfull.h5 \
  > oldfull.log 2>&1 || { cat oldfull.log; fail "full run under the older rule"; }
"$TOOLS/compare_weights" full.h5 oldfull.h5 --exact > /dev/null \
  && fail "the check is blind: both rules for ties give the same weights on these shards"
DPTRAIN_TEST_OLD_TIES=1 mpi 3 "$DPTRAIN_TESTHOOKS" "${common[@]}" --steps 17 \
  --checkpoint-dir ckold --checkpoint-every 5 > c.log 2>&1 || { cat c.log; fail "old first part"; }
if "${DP_PYTHON:-/usr/bin/python3}" -c "import h5py" 2> /dev/null; then
  "${DP_PYTHON:-/usr/bin/python3}" - << 'PY' || fail "data_order_ties: not as expected"
import h5py
with h5py.File("ck83/ckpt-00000015.h5", "r") as f:
    assert f["dptrain"].attrs["data_order_ties"] == 1, "a new checkpoint records the spread rule"
with h5py.File("ckold/ckpt-00000015.h5", "r+") as f:
    assert f["dptrain"].attrs["data_order_ties"] == 0, "the older rule is recorded"
    del f["dptrain"].attrs["data_order_ties"]
PY
  # a rule this program does not know is refused, naming it
  mkdir ckbad && cp ck83/ckpt-00000015.h5 ckbad/
  "${DP_PYTHON:-/usr/bin/python3}" -c "import h5py; f = h5py.File('ckbad/ckpt-00000015.h5', 'r+'); f['dptrain'].attrs['data_order_ties'] = 7"
  if mpi 2 "$DPTRAIN" "${common[@]}" --resume ckbad > bad.log 2>&1; then
    cat bad.log; fail "a checkpoint with an unknown data-order rule was accepted"
  fi
  expect_in bad.log "data_order_ties is 7, a rule this program does not know"
fi
mpi 2 "$DPTRAIN" "${common[@]}" --resume ckold --save rold.h5 > d.log 2>&1 \
  || { cat d.log; fail "resume of the old checkpoint"; }
expect_in d.log "the checkpoint was written before 2026-12-03: its data order"
"$TOOLS/compare_weights" oldfull.h5 rold.h5 --exact \
  || fail "an old checkpoint resumed: weights differ from the old program's uninterrupted run"
echo "a checkpoint of the older data order: resumed bitwise equal to its uninterrupted run"
echo "1 passed, 0 failed"
