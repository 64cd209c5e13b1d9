#!/usr/bin/env bash
# The optimizers step by step (tests/optim_reference.py says what is compared): the same
# start and gradients through dptrain's optimizer interface (optim_steps) and through
# torch.optim.SGD/AdamW or NumPy references of LARS and LAMB. Needs torch, numpy, h5py.
source "$(dirname "$0")/lib.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
if ! "$py" -c "import torch, numpy, h5py" 2> /dev/null; then
  [[ "${DPTRAIN_REQUIRE_DATA:-0}" == 1 ]] && fail "$py cannot import torch, numpy and h5py (apt-get install python3-torch python3-h5py)"
  echo "skipped: $py has no torch/numpy/h5py"; exit 77
fi
OMP_NUM_THREADS=1 "$py" "$DP_SOURCE_DIR/tests/optim_reference.py" "$TOOLS/optim_steps" "$WORK" \
  || fail "an optimizer differs from its reference"
echo "1 passed, 0 failed"
