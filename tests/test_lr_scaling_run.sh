#!/usr/bin/env bash
# --lr-scaling linear reaches the optimizer: the banner and the metrics' lr show
# 0.05 x 400/100 = 0.2 on 2 ranks, and the unscaled run keeps 0.05.
source "$(dirname "$0")/lib.sh"
"$TOOLS/make_dataset" synth "$WORK/train" 800 3 2 > /dev/null
common=(--train "$WORK/train" --test none --batch 400 --lr 0.05 --steps 2 --lr-schedule constant
        --warmup-epochs 0 --threads 1 --no-progress)
mpi 2 "$DPTRAIN" "${common[@]}" --lr-scaling linear --metrics "$WORK/lin.jsonl" > "$WORK/lin.out" 2>&1 \
  || { cat "$WORK/lin.out"; fail "scaled run failed"; }
expect_in "$WORK/lin.out" "SGD lr 0.2 = 0.05 x 400/100 (linear scaling)"
expect_in "$WORK/lin.jsonl" '"lr":0.2,'
mpi 2 "$DPTRAIN" "${common[@]}" --metrics "$WORK/plain.jsonl" > "$WORK/plain.out" 2>&1 \
  || { cat "$WORK/plain.out"; fail "plain run failed"; }
expect_in "$WORK/plain.out" "SGD lr 0.05 (constant"
expect_in "$WORK/plain.jsonl" '"lr":0.05,'
echo "lr scaling: ok"
