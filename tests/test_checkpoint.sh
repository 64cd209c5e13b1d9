#!/usr/bin/env bash
# Checkpoints and resume on 3 ranks: a run resumed mid-epoch ends bitwise equal to an
# uninterrupted one (from a step checkpoint and from an epoch checkpoint) and keeps the
# identity of the run it resumes; --keep keeps the newest K; a write killed halfway
# leaves the previous checkpoint, which resume uses; incompatible resumes (model, global
# batch, data, the same samples split into other files) are refused naming the
# difference; another rank count continues bitwise as if never interrupted; the
# checkpoint file holds what the README says (weights readable as a weights file); a
# fresh run into a directory holding another run's checkpoints refuses, naming it, and
# --overwrite-checkpoints starts over there.
source "$(dirname "$0")/lib.sh"
# h5py edits a checkpoint (case 4) and reads its layout (case 8): without it those parts
# are said to be skipped, or the test fails where every test must run (required.sh)
has_h5py=0
"${DP_PYTHON:-/usr/bin/python3}" -c "import h5py" 2> /dev/null && has_h5py=1
[[ $has_h5py == 1 ]] || skip_part "${DP_PYTHON:-/usr/bin/python3} has no h5py: a checkpoint without momentum buffers (case 4) and the file layout (case 8) are not checked"
cd "$WORK"
"$TOOLS/make_dataset" synth train 600 5 3 > /dev/null       # 3 shards of 200
"$TOOLS/make_dataset" synth other 600 9 3 > /dev/null       # same size, other content
"$TOOLS/make_dataset" synth test.h5 200 6 > /dev/null
# 12 steps per epoch, 36 in all; momentum, weight decay and the cosine schedule all
# carry state or depend on the global step
common=(--train train --test test.h5 --batch 50 --epochs 3 --weight-decay 0.0005 --threads 1
        --no-progress)
run() { local log=$1; shift; mpi 3 "$DPTRAIN" "${common[@]}" "$@" > "$log" 2>&1; }

run full.log --save full.h5 || { cat full.log; fail "uninterrupted run failed"; }

# 1. stop after 17 steps (checkpoints at 5, 10, 15: the newest is mid-epoch 2), resume
run a.log --steps 17 --checkpoint-dir ck --checkpoint-every 5 --keep 2 \
  || { cat a.log; fail "first part failed"; }
ls ck > ls.txt
[[ "$(cat ls.txt | tr '\n' ' ')" == "ckpt-00000010.h5 ckpt-00000015.h5 " ]] \
  || fail "--keep 2 should leave ckpt-00000010.h5 ckpt-00000015.h5, found: $(cat ls.txt)"
# guard: the comparison below must be able to fail
"$TOOLS/compare_weights" full.h5 ck/ckpt-00000015.h5 --exact > /dev/null \
  && fail "the comparison is blind: a checkpoint at step 15 equals the final weights"
run b.log --resume ck --checkpoint-every 5 --save resumed.h5 || { cat b.log; fail "resume failed"; }
expect_in b.log "resume: ck/ckpt-00000015.h5: step 15 of 36 (epoch 2, step 3 of 12 in it)"
expect_in b.log "epoch 2 (partial) step 24"
"$TOOLS/compare_weights" full.h5 resumed.h5 --exact > cmp.log \
  || { cat cmp.log; fail "resumed mid-epoch: weights differ from the uninterrupted run"; }
# the resumed run keeps the identity of the run it resumes
id_a=$(sed -nE 's/^checkpoint: run ([0-9a-f]{16}) writes to ck$/\1/p' a.log)
id_b=$(sed -nE 's/^checkpoint: run ([0-9a-f]{16}) writes to ck$/\1/p' b.log)
[[ -n $id_a && $id_a == "$id_b" ]] || fail "run identity: '$id_a' wrote ck, the resumed run is '$id_b'"
# resuming writes into the same directory (step 20, 25, 30, 35), keeping 3 by default
[[ -f ck/ckpt-00000035.h5 && -f ck/ckpt-00000025.h5 && ! -f ck/ckpt-00000015.h5 ]] \
  || fail "resume did not go on checkpointing into ck: $(ls ck)"

# 2. per-epoch checkpoints: stop after 1 epoch + 2 steps, resume from the epoch checkpoint
run c.log --steps 14 --checkpoint-dir ep --checkpoint-every-epoch || { cat c.log; fail "epoch run failed"; }
[[ "$(ls ep)" == "ckpt-00000012.h5" ]] || fail "expected only ckpt-00000012.h5 in ep, found $(ls ep)"
run d.log --resume ep --save resumed_ep.h5 || { cat d.log; fail "resume from epoch checkpoint failed"; }
"$TOOLS/compare_weights" full.h5 resumed_ep.h5 --exact > /dev/null \
  || fail "resumed at an epoch boundary: weights differ from the uninterrupted run"

# 3. a write killed halfway: the second checkpoint (step 10) dies mid-write
# (dptrain-testhooks: the hook exists only in the test build)
DPTRAIN_TEST_CRASH_IN_CHECKPOINT=2 DPTRAIN="$DPTRAIN_TESTHOOKS" \
  run e.log --checkpoint-dir kc --checkpoint-every 5 && { cat e.log; fail "the crash hook did not fire"; }
expect_in e.log "dying mid-write"
[[ -f kc/ckpt-00000005.h5 && ! -f kc/ckpt-00000010.h5 ]] || fail "after the crash: $(ls -a kc)"
ls -a kc | grep -q '^\.ckpt-00000010' || fail "expected the half-written temporary file: $(ls -a kc)"
echo "garbage" > kc/ckpt-00000099.h5     # an unreadable file with a checkpoint's name
run f.log --resume kc --checkpoint-every 5 --save resumed_kc.h5 || { cat f.log; fail "resume after the crash failed"; }
expect_in f.log "resume: kc/ckpt-00000005.h5: step 5"
"$TOOLS/compare_weights" full.h5 resumed_kc.h5 --exact > /dev/null \
  || fail "resumed after a crashed write: weights differ from the uninterrupted run"
ls -a kc | grep -q '^\.ckpt-' && fail "stale temporary files were not removed: $(ls -a kc)"
[[ -f kc/ckpt-00000099.h5 ]] || fail "an unreadable file that is not ours to judge was deleted"

# 4. refusals name the difference; exit status 1; nothing is written
refuse() {
  local what=$1 text=$2; shift 2
  if run r.log --resume ck "$@"; then cat r.log; fail "resume with another $what was accepted"; fi
  expect_in r.log "$text"
}
refuse model "the model differs" --model "conv(8,3) relu maxpool(2) fc(classes)"
refuse batch "the global batch differs: the checkpoint has 50, this run --batch 60" --batch 60
refuse data "the training data differ: same size (600 samples) but a different content checksum" \
  --train other
"$TOOLS/make_dataset" synth small 500 5 > /dev/null
refuse "data size" "the training data differ: the checkpoint was trained on train (600 samples" \
  --train small
# the same samples, split into 2 files of 300 instead of 3 of 200: same size and checksum
"$TOOLS/make_dataset" synth train2 600 5 2 > /dev/null
refuse "file split" "the training files differ: the checkpoint was trained on 3 files of 200, 200, 200 samples (--train train), this run has 2 files of 300, 300 samples (--train train2)" \
  --train train2

# a checkpoint whose momentum buffers are missing is refused, naming the dataset
if [[ $has_h5py == 1 ]]; then
  mkdir novel && cp ck/ckpt-00000035.h5 novel/
  "${DP_PYTHON:-/usr/bin/python3}" -c "import h5py; f = h5py.File('novel/ckpt-00000035.h5', 'r+'); del f['dptrain/optimizer/fc1.weight.momentum_buffer']"
  if run nv.log --resume novel; then cat nv.log; fail "a checkpoint without momentum buffers was accepted"; fi
  expect_in nv.log "/dptrain/optimizer/fc1.weight.momentum_buffer is missing"
fi

# 5. another rank count continues exactly (the data order and the sums ignore it)
mpi 2 "$DPTRAIN" "${common[@]}" --resume ck --checkpoint-dir ck2 --save two.h5 > g.log 2>&1 \
  || { cat g.log; fail "resume on 2 ranks failed"; }
expect_in g.log "the checkpoint was written by 3 ranks, this run has 2: the run continues exactly"
"$TOOLS/compare_weights" full.h5 two.h5 --exact > /dev/null \
  || fail "resumed on 2 ranks: weights differ from the uninterrupted 3-rank run"

# 6. --resume on an empty directory starts from the beginning (a requeued job's first run)
mkdir empty
run h.log --resume empty --steps 2 || { cat h.log; fail "--resume on an empty dir failed"; }
expect_in h.log "no checkpoint (no ckpt-*.h5 files); starting from the beginning"
# ... and so does a directory that does not exist yet, which the run then makes
run h.log --resume notyet --steps 2 || { cat h.log; fail "--resume on a new dir failed"; }
expect_in h.log \
  "notyet: no checkpoint (the directory does not exist yet); starting from the beginning"
[[ -d notyet ]] || fail "--resume notyet: the directory was not made"

# 7. option errors (status 2) and an unusable directory (status 1), before any training
rc=0; "$DPTRAIN" "${common[@]}" --checkpoint-every 5 > o.log 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "--checkpoint-every without a directory: status $rc, expected 2"
expect_in o.log "need --checkpoint-dir DIR (or --resume DIR)"
rc=0; "$DPTRAIN" "${common[@]}" --resume ck --init-from full.h5 > o.log 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "--resume with --init-from: status $rc, expected 2"
touch notadir
rc=0; mpi 2 "$DPTRAIN" "${common[@]}" --checkpoint-dir notadir/sub > o.log 2>&1 || rc=$?
[[ $rc -eq 1 ]] || { cat o.log; fail "unusable --checkpoint-dir: status $rc, expected 1"; }
expect_in o.log "--checkpoint-dir notadir/sub: cannot create the directory"
rc=0; mpi 2 "$DPTRAIN" "${common[@]}" --resume nowhere/sub > o.log 2>&1 || rc=$?
[[ $rc -eq 1 ]] || { cat o.log; fail "--resume in a missing directory: status $rc, expected 1"; }
expect_in o.log "--resume nowhere/sub: cannot create the directory (No such file or directory)"
rc=0; mpi 2 "$DPTRAIN" "${common[@]}" --resume notadir/sub > o.log 2>&1 || rc=$?
[[ $rc -eq 1 ]] || { cat o.log; fail "--resume under a file: status $rc, expected 1"; }
expect_in o.log "--resume: notadir/sub: cannot read the checkpoint directory (Not a directory)"

# 8. the file's contents, read as HDF5 by another program
if [[ $has_h5py == 1 ]]; then
  "${DP_PYTHON:-/usr/bin/python3}" - ck/ckpt-00000035.h5 full.h5 "$id_a" <<'PY' || fail "checkpoint contents"
import sys, h5py, numpy as np
c = h5py.File(sys.argv[1], "r"); w = h5py.File(sys.argv[2], "r")
assert c["dptrain"].attrs["run_id"].decode() == sys.argv[3], c["dptrain"].attrs["run_id"]
g = c["dptrain"]
weights = [k for k in w if isinstance(w[k], h5py.Dataset)]
assert weights and all(c[k].shape == w[k].shape and c[k].dtype == np.float32 for k in weights), weights
assert g.attrs["complete"] == 1 and g.attrs["format"] == 2 and g.attrs["step"] == 35
assert g.attrs["ranks"] == 3 and g.attrs["global_batch"] == 50 and g.attrs["epoch"] == 2
assert "sampler_pass" not in g and "sampler_pos" not in g   # no per-rank state
assert g["gradsync_exponents"].shape == (len(weights),)
assert g.attrs["group_size"] == 8
n = sum(w[k].size for k in weights)
o = g["optimizer"]
assert o.attrs["kind"] == b"sgd" or o.attrs["kind"] == "sgd", o.attrs["kind"]
assert sorted(o) == sorted(k + ".momentum_buffer" for k in weights), list(o)
assert all(o[k + ".momentum_buffer"].shape == (w[k].size,) for k in weights)
assert all(np.any(o[k + ".momentum_buffer"][()] != 0) for k in weights)
assert list(g["train_file_samples"][()]) == [200, 200, 200]
assert g.attrs["train_file_names"].decode().splitlines() == [
    "train/synth-0000%d-of-00003.h5" % i for i in range(3)], g.attrs["train_file_names"]
for key in ("model", "train", "data_checksum", "seed", "lr", "momentum", "weight_decay", "threads"):
    assert key in g.attrs, key
print("checkpoint layout ok:", dict(step=int(g.attrs["step"]), model=g.attrs["model"]))
PY
fi

# 9. a directory holding another run's checkpoints (steps 25-35 of run $id_a): a fresh run
# with --checkpoint-every 5 --keep 3 refuses, naming that run, and touches nothing (before,
# it wrote ckpt-00000005.h5 and pruned it at once, keeping the other run's); told to start
# over, it deletes them and keeps its own
cp -r ck reuse
ls reuse > before.txt
if run re.log --steps 15 --checkpoint-dir reuse --checkpoint-every 5 --keep 3; then
  cat re.log; fail "a fresh run into another run's checkpoint directory was accepted"
fi
expect_in re.log "--checkpoint-dir reuse holds checkpoints of another run: run $id_a (ckpt-00000025.h5 to ckpt-00000035.h5, 3 files)"
expect_in re.log "pass --overwrite-checkpoints to delete them and start over"
ls reuse | diff before.txt - > /dev/null || fail "the refused run changed reuse: $(ls reuse)"
run ow.log --steps 15 --checkpoint-dir reuse --checkpoint-every 5 --keep 3 --overwrite-checkpoints \
  || { cat ow.log; fail "--overwrite-checkpoints failed"; }
expect_in ow.log "checkpoint: deleted 3 checkpoints of other runs in reuse (--overwrite-checkpoints)"
[[ "$(ls reuse | tr '\n' ' ')" == "ckpt-00000005.h5 ckpt-00000010.h5 ckpt-00000015.h5 " ]] \
  || fail "after --overwrite-checkpoints: $(ls reuse)"
echo "1 passed, 0 failed"
