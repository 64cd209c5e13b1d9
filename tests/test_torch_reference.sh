#!/usr/bin/env bash
# The same initial weights and the same batches give the same weights as PyTorch's
# torch.optim.SGD (and torch.optim.AdamW) to float precision: reference and no-pool models,
# weight decay and Nesterov, on 1 rank and on 2 and 3 ranks (uneven per-rank batches).
# Needs torch + h5py.
source "$(dirname "$0")/lib.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
if ! "$py" -c "import torch, h5py" 2> /dev/null; then
  [[ "${DPTRAIN_REQUIRE_DATA:-0}" == 1 ]] && fail "$py cannot import torch and h5py (apt-get install python3-torch python3-h5py)"
  echo "skipped: $py has no torch/h5py"; exit 77
fi
ref="$DP_SOURCE_DIR/tests/torch_reference.py"
cd "$WORK"
"$TOOLS/make_dataset" synth train.h5 300 8

check() { # NAME RANKS MODEL STEPS BATCH EXTRA...
  local name=$1 ranks=$2 model=$3 steps=$4 batch=$5; shift 5
  "$DPTRAIN" --train train.h5 --test none --model "$model" --seed 5 --steps 0 --save "$name-init.h5" > /dev/null
  mpi "$ranks" "$DPTRAIN" --train train.h5 --test none --model "$model" --init-from "$name-init.h5" \
    --no-shuffle --steps "$steps" --batch "$batch" --lr-schedule constant --warmup-epochs 0 --threads 1 \
    --no-progress --save "$name-ours.h5" "$@" > "$name.log" 2>&1 || { cat "$name.log"; fail "$name: dptrain failed"; }
  # One file, no shuffling: the global batches are the file in order whatever the rank
  # count (plan.h), which is how PyTorch reads it
  # dptrain option names are the reference script's, minus the schedule ones
  OPENBLAS_NUM_THREADS=1 "$py" "$ref" --model "$model" --init "$name-init.h5" --train train.h5 \
    --steps "$steps" --batch "$batch" --out "$name-torch.h5" "$@"
  "$TOOLS/compare_weights" "$name-ours.h5" "$name-torch.h5" --model "$model" --rtol 1e-4 --atol "$ATOL" \
    > "$name.cmp" || { cat "$name.cmp"; fail "$name: weights differ from PyTorch's"; }
  # the initial weights must have moved, or the comparison proves nothing
  "$TOOLS/compare_weights" "$name-init.h5" "$name-torch.h5" --model "$model" --rtol 1e-4 --atol "$ATOL" \
    > /dev/null && fail "$name: training did not change the weights"
  echo "ok: $name: $(grep -h 'max abs' "$name.cmp" | awk '{ if ($5 > m) m = $5 } END { print "largest abs difference " m }')"
}
ATOL=1e-6
check ref1 1 reference 8 30 --lr 0.05 --momentum 0.9
check ref3 3 reference 8 30 --lr 0.05 --momentum 0.9 --weight-decay 0.001
check nesterov 1 reference 6 25 --lr 0.02 --momentum 0.8 --nesterov
check nopool 2 nopool 5 20 --lr 0.01 --momentum 0.9
# AdamW divides by the root of the second moment: where a gradient element is at rounding
# level, the convolution sums' rounding (not PyTorch's order) moves that weight by up to a
# step of lr, so the bound is 2% of lr. The optimizer itself equals torch.optim.AdamW bit
# for bit given the same gradients (optim_reference).
ATOL=4e-5
check adamw 1 reference 8 30 --optimizer adamw --lr 0.002 --weight-decay 0.01
ATOL=2e-5
check adamw3 3 reference 8 30 --optimizer adamw --lr 0.001 --weight-decay 0.1 --beta1 0.8 --beta2 0.99 --eps 1e-6
echo "1 passed, 0 failed"
