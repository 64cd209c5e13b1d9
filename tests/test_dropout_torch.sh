#!/usr/bin/env bash
# dropout matches PyTorch given the same masks: dropout_reference writes a training pass of
# a net with three dropout layers (input, weights, masks, logits, gradients), and
# dropout_torch.py recomputes it with x * mask / (1 - p) (which it checks is
# torch.nn.functional.dropout's own arithmetic). Needs torch + numpy.
source "$(dirname "$0")/lib.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
if ! "$py" -c "import torch, numpy" 2> /dev/null; then
  skip_test "$py cannot import torch and numpy (apt-get install python3-torch)"
fi
"$TOOLS/dropout_reference" "$WORK/pass.bin" || fail "dropout_reference failed"
OMP_NUM_THREADS=1 "$py" "$DP_SOURCE_DIR/tests/dropout_torch.py" "$WORK/pass.bin" || fail "dropout differs from PyTorch"
echo "1 passed, 0 failed"
