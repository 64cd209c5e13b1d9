#!/usr/bin/env bash
# --clip-grad-norm through dptrain, against a hand computation: with momentum 0, no
# weight decay and a constant lr, one step moves the weights by lr * clipped gradient,
# so |w1 - w0| must be lr * X when the gradient norm exceeds X, on 1 and 2 ranks alike.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 200 1 2 > /dev/null
common=(--train train --test none --momentum 0 --lr 0.5 --lr-schedule constant --warmup-epochs 0 --batch 40 --no-progress --quiet)
mpi 1 "$DPTRAIN" "${common[@]}" --steps 0 --save w0.h5
mpi 2 "$DPTRAIN" "${common[@]}" --steps 1 --clip-grad-norm 0.001 --save w1.h5
mpi 1 "$DPTRAIN" "${common[@]}" --steps 1 --clip-grad-norm 0.001 --save w1_one.h5
mpi 2 "$DPTRAIN" "${common[@]}" --steps 1 --save free.h5
"$DP_PYTHON" - <<'PY'
import h5py, numpy as np, sys
def load(p):
    with h5py.File(p, "r") as f:
        return np.concatenate([f[k][()].ravel().astype(np.float64) for k in sorted(f)])
w0, w1, w1one, free = (load(p) for p in ("w0.h5", "w1.h5", "w1_one.h5", "free.h5"))
step = np.linalg.norm(w1 - w0)
free_step = np.linalg.norm(free - w0)
want = 0.5 * 0.001 * (np.linalg.norm((free - w0) / 0.5) / (np.linalg.norm((free - w0) / 0.5) + 1e-6))
print(f"unclipped step {free_step:.6g}, clipped step {step:.9g}, hand computation {want:.9g}")
ok = free_step > 0.01 and abs(step - want) <= 1e-4 * want
# the clipped step points the same way as the unclipped one
cos = np.dot(w1 - w0, free - w0) / (step * free_step)
ok = ok and cos > 0.99999 and abs(np.linalg.norm(w1one - w0) - want) <= 1e-4 * want
print(f"cosine {cos:.8f}; 1 rank {np.linalg.norm(w1one - w0):.9g}")
sys.exit(0 if ok else 1)
PY
# Without --clip-grad-norm, SGD's step is made as the summed gradient is taken (the update
# by pieces, docs/training.md); with it, after the whole gradient. A bound that never bites
# (1e12) must give the same bits, with momentum, Nesterov and weight decay, on 1 rank and on
# 2 (which sum through shared memory here, or with MPI).
fused=(--train train --test none --momentum 0.9 --nesterov --weight-decay 0.01 --batch 40
       --steps 6 --no-progress --quiet)
for ranks in 1 2; do
    for reduction in auto mpi; do
        mpi $ranks "$DPTRAIN" "${fused[@]}" --reduction $reduction --save by-pieces.h5
        mpi $ranks "$DPTRAIN" "${fused[@]}" --reduction $reduction --clip-grad-norm 1e12 \
            --save after.h5
        "$TOOLS/compare_weights" by-pieces.h5 after.h5 --exact > /dev/null \
            || fail "$ranks ranks, --reduction $reduction: the update by pieces differs" \
                    "from the update after the sums"
    done
done
echo "clip_grad_norm: 2 passed"
