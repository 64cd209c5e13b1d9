#!/usr/bin/env bash
# A checkpoint written by P ranks resumes on Q ranks and the run ends bitwise equal to the
# uninterrupted one: 8 -> 3, 3 -> 8, 1 -> 4, 4 -> 1 (a checkpoint holds no per-rank state;
# the data order and the gradient sums do not depend on the rank count).
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
echo "1 passed, 0 failed"
