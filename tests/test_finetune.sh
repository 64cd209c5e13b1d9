#!/usr/bin/env bash
# Fine-tuning and evaluation. On synthetic data (always): --freeze keeps the frozen
# layers bitwise equal to where they started, even with momentum and weight decay, while
# the others train; --reinit re-draws a layer exactly as a fresh initialisation does;
# --init-from reads a checkpoint and a file written by h5py (as from PyTorch); bad layer
# names are refused naming the choices. dptrain-eval agrees with dptrain's own test
# evaluation and with its per-sample CSV, on 1 and 3 ranks. On MNIST (when fetched): the
# README's fine-tuning example end to end on a small subset (scripts/finetune_example.sh).
source "$(dirname "$0")/lib.sh"
EVAL="$DP_BINARY_DIR/dptrain-eval"
PY=${DP_PYTHON:-/usr/bin/python3}
"$PY" -c "import h5py, numpy" 2> /dev/null || skip_test "$PY lacks h5py/numpy"
cd "$WORK"
"$TOOLS/make_dataset" synth train 400 5 2 > /dev/null
"$TOOLS/make_dataset" synth test.h5 300 6 > /dev/null
common=(--train train --test test.h5 --batch 40 --threads 1 --no-progress)

# same_params A B NAMES...: exit 0 when every named parameter is bitwise equal
same_params() {
  "$PY" - "$@" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
sys.exit(0 if all(np.array_equal(a[k][()].view(np.uint32), b[k][()].view(np.uint32))
                  for k in sys.argv[3:]) else 1)
PY
}

# 1. a starting point, then train with conv1, conv2 frozen (momentum, weight decay on)
mpi 2 "$DPTRAIN" "${common[@]}" --steps 10 --checkpoint-dir ck --checkpoint-every 10 \
  --save start.h5 > s.log 2>&1 || { cat s.log; fail "pretraining failed"; }
mpi 2 "$DPTRAIN" "${common[@]}" --epochs 2 --init-from start.h5 --freeze conv1,conv2 \
  --weight-decay 0.01 --save frozen.h5 > f.log 2>&1 || { cat f.log; fail "frozen run failed"; }
same_params start.h5 frozen.h5 conv1.weight conv1.bias conv2.weight conv2.bias \
  || fail "--freeze conv1,conv2: the frozen weights changed"
same_params start.h5 frozen.h5 fc1.weight && fail "fc1 is not frozen but did not change"
same_params start.h5 frozen.h5 fc2.bias && fail "fc2 is not frozen but did not change"
# freezing a layer above a trainable one: it keeps its weights, the one below trains
mpi 2 "$DPTRAIN" "${common[@]}" --steps 5 --init-from start.h5 --freeze fc1 --save mid.h5 \
  > m.log 2>&1 || { cat m.log; fail "--freeze fc1 failed"; }
same_params start.h5 mid.h5 fc1.weight fc1.bias || fail "--freeze fc1: fc1 changed"
same_params start.h5 mid.h5 conv1.weight && fail "--freeze fc1: conv1 below it did not train"

# 2. --reinit fc2 from a checkpoint file equals a fresh initialisation of fc2
"$DPTRAIN" "${common[@]}" --steps 0 --save fresh.h5 > /dev/null 2>&1 || fail "--steps 0 failed"
"$DPTRAIN" "${common[@]}" --steps 0 --init-from ck/ckpt-00000010.h5 --reinit fc2 --save re.h5 \
  > re.log 2>&1 || { cat re.log; fail "--init-from a checkpoint --reinit fc2 failed"; }
same_params fresh.h5 re.h5 fc2.weight fc2.bias || fail "--reinit fc2 is not a fresh initialisation"
same_params start.h5 re.h5 conv1.weight conv2.weight fc1.weight \
  || fail "--init-from a checkpoint: the other layers are not the checkpoint's"

# 3. a file written by h5py alone (the README's PyTorch export), no attributes
"$PY" - start.h5 torch.h5 <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as s, h5py.File(sys.argv[2], "w") as d:
    for k in s:
        d.create_dataset(k, data=s[k][()].astype("float32"))
PY
"$DPTRAIN" "${common[@]}" --steps 0 --init-from torch.h5 --save t.h5 > /dev/null 2>&1 \
  || fail "--init-from an h5py-written file failed"
same_params start.h5 t.h5 conv1.weight fc2.weight || fail "--init-from torch.h5 changed the weights"

# 4. refusals
for bad in "--freeze relu1" "--freeze conv7"; do
  mpi 2 "$DPTRAIN" "${common[@]}" --steps 1 $bad > bad.log 2>&1 && fail "$bad was accepted"
  expect_in bad.log "is not a layer with weights of this model (expected one of: conv1, conv2, fc1, fc2)"
done
rc=0; "$DPTRAIN" "${common[@]}" --reinit fc2 > bad.log 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "--reinit without --init-from: status $rc, expected 2"
expect_in bad.log "--reinit fc2: only with --init-from"

# 5. dptrain-eval: the same figures as dptrain's test evaluation; CSV consistent; ranks agree
acc_train=$(sed -nE 's/^epoch 2 .*test loss [0-9.]+ acc ([0-9.]+)%.*/\1/p' f.log)
for P in 1 3; do
  mpi $P "$EVAL" --weights frozen.h5 --data test.h5 --predictions p$P.csv > e$P.log 2>&1 \
    || { cat e$P.log; fail "dptrain-eval on $P ranks failed"; }
done
cat e3.log
expect_in e3.log "300 samples, 10 classes, 3 ranks"
expect_in e3.log "accuracy $acc_train%"
expect_in e3.log "confusion matrix (rows: true label, columns: predicted):"
diff <(sed "1d;/^predictions:/d" e1.log) <(sed "1d;/^predictions:/d" e3.log) > /dev/null || fail "dptrain-eval: 1 and 3 ranks disagree"
cmp -s p1.csv p3.csv || fail "dptrain-eval: predictions differ between 1 and 3 ranks"
"$PY" - p3.csv e3.log <<'PY' || fail "predictions CSV inconsistent with the report"
import sys, csv, re
rows = list(csv.reader(open(sys.argv[1])))
head, rows = rows[0], rows[1:]
assert head[:3] == ["index", "label", "predicted"] and len(head) == 13, head
assert [int(r[0]) for r in rows] == list(range(300)), "indices not in data order"
right = sum(r[1] == r[2] for r in rows)
probs = [sum(map(float, r[3:])) for r in rows]
assert all(abs(p - 1) < 1e-4 for p in probs), "probabilities do not sum to 1"
assert all(max(range(10), key=lambda k: float(r[3 + k])) == int(r[2]) for r in rows)
report = open(sys.argv[2]).read()
assert f"({right} of 300)" in report, (right, report)
PY
mpi 1 "$EVAL" --data test.h5 > bad.log 2>&1 && fail "dptrain-eval without --weights was accepted"
expect_in bad.log "--weights FILE is required"
mpi 2 "$EVAL" --weights frozen.h5 --model nopool --data test.h5 > bad.log 2>&1 \
  && fail "dptrain-eval with the wrong model was accepted"
expect_in bad.log "--weights: frozen.h5: dataset 'fc1.weight' has shape"
# a label the model has no class for: refused naming the file, the label and the classes
"$PY" - lab250.h5 <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = np.zeros((30, 1, 28, 28), np.uint8)
    f["labels"] = np.array([i % 10 if i != 21 else 250 for i in range(30)], np.uint8)
PY
mpi 2 "$EVAL" --weights frozen.h5 --data lab250.h5 --classes 10 > bad.log 2>&1 \
  && fail "dptrain-eval with a label of 250 for 10 classes was accepted"
expect_in bad.log "--data lab250.h5: label 250 of sample 21 (global index 21) is not one of the model's 10 classes (labels 0 to 9, --classes)"

# 6. the fine-tuning example on a small MNIST subset
raw="${DPTRAIN_MNIST_RAW:-$DP_SOURCE_DIR/data/mnist/raw}"
if [[ ! -f "$raw/train-images-idx3-ubyte" ]]; then
  skip_part "MNIST is not in $raw: the fine-tuning example was not run"
else
  RANKS=2 PRE_LIMIT=1500 PRE_EPOCHS=1 FT_LIMIT=200 FT_EPOCHS=4 TEST_LIMIT=600 MNIST_RAW="$raw" \
    BUILD="$DP_BINARY_DIR" MPIEXEC="${MPIEXEC:-mpiexec}" \
    bash "$DP_SOURCE_DIR/scripts/finetune_example.sh" ex > ex.log 2>&1 \
    || { cat ex.log; fail "scripts/finetune_example.sh failed"; }
  tail -1 ex.log
  same_params ex/pretrained.h5 ex/finetuned.h5 conv1.weight conv1.bias conv2.weight conv2.bias \
    || fail "example: the frozen convolutions changed"
  ft=$(sed -nE 's/^finetune-example: fine-tuned ([0-9.]+)%.*/\1/p' ex.log)
  [[ -n "$ft" ]] || { cat ex.log; fail "example: no result line"; }
  # 5 classes: chance is 20%; the pretrained features must give clearly more
  awk -v a="$ft" 'BEGIN { exit !(a >= 30) }' || fail "example: fine-tuned accuracy $ft% < 30%"
fi
echo "1 passed, 0 failed"
