#!/usr/bin/env bash
# --trace: a valid Chrome trace over the window, with every rank's spans for every step in
# it (batch, each layer's forward and backward, each bucket's reduction, wait, update), the
# evaluation and checkpoints between them, properly nested tracks, and clocks aligned
# within the stated error; on 1 and 3 ranks; bad options and paths refused before training.
source "$(dirname "$0")/lib.sh"
py=${DP_PYTHON:-python3}
CHECK="$py $DP_SOURCE_DIR/tests/check_trace.py"
cd "$WORK"
"$TOOLS/make_dataset" synth train 800 5 2 > /dev/null
"$TOOLS/make_dataset" synth test.h5 200 6 > /dev/null
run=(--train train --test test.h5 --epochs 2 --batch 80 --threads 1 --no-progress)  # 10 steps an epoch

# 3 ranks, steps 5 to 14: the epoch's end (evaluation) and checkpoints 7 and 14 inside
mpi 3 "$DPTRAIN" "${run[@]}" --trace t3.json --trace-steps 5:14 --checkpoint-dir ck \
  --checkpoint-every 7 > t3.log 2>&1 || { cat t3.log; fail "3-rank traced run failed"; }
# (the gradient sum through shared memory, the default on one node: one span a step)
$CHECK t3.json 3 5 14 --buckets 1 --eval --checkpoint || fail "3-rank trace"
# the window alone: nothing from steps 1-4 or 15-20
grep -q '"name":"step 4"' t3.json && fail "step 4 is outside the window"
grep -q '"name":"step 15"' t3.json && fail "step 15 is outside the window"
# the same training with and without the trace: the same weights, bit for bit
mpi 3 "$DPTRAIN" "${run[@]}" --save plain.h5 > plain.log 2>&1 || fail "untraced run failed"
mpi 3 "$DPTRAIN" "${run[@]}" --save traced.h5 --trace t3b.json --log-every 3 --metrics m.jsonl \
  --reduction mpi > traced.log 2>&1 || fail "traced run failed"
"$TOOLS/compare_weights" plain.h5 traced.h5 --exact > /dev/null || fail "tracing changed the weights"
# with MPI_Allreduce instead: a span per bucket (2 of the default 256 KiB)
$CHECK t3b.json 3 1 20 --buckets 2 --eval || fail "3-rank trace, --reduction mpi"
# 1 rank, the default window (steps 1-20): no reductions
"$DPTRAIN" "${run[@]}" --trace t1.json > t1.log 2>&1 || { cat t1.log; fail "1-rank traced run failed"; }
$CHECK t1.json 1 1 20 --eval || fail "1-rank trace"
# a window past the end of the run: the steps there are
"$DPTRAIN" "${run[@]}" --steps 6 --trace t6.json --trace-steps 4:50 > t6.log 2>&1 || fail "short run failed"
$CHECK t6.json 1 4 6 || fail "window past the end of the run"

# a resumed run: the window counts the run's steps, not this process's (checkpoint at 10,
# resumed to 20, window 5:20: steps 11 to 20)
"$DPTRAIN" "${run[@]}" --steps 10 --checkpoint-dir ck1 --checkpoint-every 10 > r1.log 2>&1 \
  || { cat r1.log; fail "run to the checkpoint failed"; }
"$DPTRAIN" "${run[@]}" --resume ck1 --trace tr.json --trace-steps 5:20 > r2.log 2>&1 \
  || { cat r2.log; fail "resumed traced run failed"; }
$CHECK tr.json 1 11 20 --eval || fail "trace of a resumed run"

# refused before training
"$DPTRAIN" "${run[@]}" --trace-steps 1:5 > e1.log 2>&1 && fail "--trace-steps without --trace accepted"
expect_in e1.log "--trace-steps: only with --trace FILE"
"$DPTRAIN" "${run[@]}" --trace t.json --trace-steps 5:4 > e2.log 2>&1 && fail "--trace-steps 5:4 accepted"
expect_in e2.log "--trace-steps (B): 4 is out of range [5, 10004]"
"$DPTRAIN" "${run[@]}" --trace t.json --trace-steps 5 > e3.log 2>&1 && fail "--trace-steps 5 accepted"
expect_in e3.log "--trace-steps: expected A:B"
mpi 2 "$DPTRAIN" "${run[@]}" --trace no/dir/t.json > e4.log 2>&1 && fail "--trace into a missing directory accepted"
expect_in e4.log "--trace no/dir/t.json: cannot create the file: No such file or directory"
grep -q "^epoch 1" e4.log && fail "a bad --trace path should stop the run before training"
echo "trace: ok"
