#!/usr/bin/env bash
# dropout from --model, end to end: 1 and 2 threads per rank give the same bits, the
# replicas agree, dropout(0) is bitwise the model without it while dropout(0.5) is not,
# and a run resumed from a mid-run checkpoint draws the masks the uninterrupted run drew
# (they follow seed, step and sample, so the final weights are bitwise equal).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 360 5 3 > /dev/null       # 3 shards of 120
with="conv(8,3) relu maxpool(2) dropout(0.25) fc(32) relu dropout fc"
common=(--train train --test none --batch 30 --steps 12 --seed 4 --no-progress)
run() { local log=$1 ranks=$2; shift 2; mpi "$ranks" "$DPTRAIN" "${common[@]}" "$@" > "$log" 2>&1 \
  || { cat "$log"; fail "$log: dptrain failed"; }; }
cmp_exact() { "$TOOLS/compare_weights" "$1" "$2" --model "$with" --exact > /dev/null; }

# threads: the same bits; replicas: identical on every rank
run t1.log 2 --model "$with" --threads 1 --save t1.h5
run t2.log 2 --model "$with" --threads 2 --save t2.h5
expect_in t2.log "dropout(p=0.25) fc1(1352->32) relu dropout(p=0.5) fc2(32->10)"
expect_in t2.log "replicas identical on 2 ranks"
cmp_exact t1.h5 t2.h5 || fail "dropout: 1 and 2 threads per rank differ"

# p = 0 is the identity; p = 0.5 is not
run none.log 2 --model "conv(8,3) relu maxpool(2) fc(32) relu fc" --threads 1 --save none.h5
run zero.log 2 --model "conv(8,3) relu maxpool(2) dropout(0) fc(32) relu dropout(p=0) fc" \
  --threads 1 --save zero.h5
cmp_exact none.h5 zero.h5 || fail "dropout(0) changes the weights"
cmp_exact none.h5 t1.h5 && fail "dropout(0.25)/(0.5) leaves the weights as without dropout"

# resume mid-run: the masks of steps 7..12 are the ones the uninterrupted run drew (one
# epoch of 12 steps, so that stopping early with --steps keeps the schedule)
once=(--model "$with" --threads 1 --epochs 1)
run a.log 3 "${once[@]}" --steps 12 --save full.h5
run b.log 3 "${once[@]}" --steps 7 --checkpoint-dir ck --checkpoint-every 6
cmp_exact full.h5 ck/ckpt-00000006.h5 && fail "the comparison is blind: step 6 equals step 12"
run c.log 3 "${once[@]}" --steps 12 --resume ck --save resumed.h5
expect_in c.log "resume: ck/ckpt-00000006.h5: step 6"
cmp_exact full.h5 resumed.h5 || fail "dropout: the resumed run differs from the uninterrupted one"
echo "1 passed, 0 failed"
