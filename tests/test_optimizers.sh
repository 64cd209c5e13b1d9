#!/usr/bin/env bash
# --optimizer lars|lamb|adamw through dptrain: the banner names each with its settings;
# 1 and 2 threads give the same bits and the replicas on 3 ranks are identical; a run
# resumed mid-epoch from a checkpoint ends bitwise equal to an uninterrupted one (the
# step counts of lamb and adamw are int64 state in the checkpoint); a frozen layer keeps
# its weights, state and step count; resuming with another optimizer is refused, a
# changed setting is noted; a checkpoint without the optimizer attributes (written before
# them) still resumes with sgd; options the optimizer does not read are refused.
source "$(dirname "$0")/lib.sh"
py="${DP_PYTHON:-/usr/bin/python3}"
cd "$WORK"
"$TOOLS/make_dataset" synth train 600 5 3 > /dev/null    # 3 shards of 200
# 12 steps per epoch, 24 in all, warm-up and cosine: the lr changes every step
common=(--train train --test none --batch 50 --epochs 2 --no-progress)
run() { local n=$1 log=$2; shift 2; mpi "$n" "$DPTRAIN" "${common[@]}" "$@" > "$log" 2>&1; }

banner_lars="optimizer: LARS lr 3 (cosine, warm-up 1 epochs) momentum 0.9 trust coefficient 0.008 weight decay 0.0005, biases excluded from adaptation and weight decay; seed 1"
banner_lamb="optimizer: LAMB lr 0.03 (cosine, warm-up 1 epochs) betas 0.9, 0.999 eps 1e-06 decoupled weight decay 0.01, biases excluded from adaptation and weight decay; seed 1"
banner_adamw="optimizer: AdamW lr 0.001 (cosine, warm-up 0.1 epochs) betas 0.9, 0.999 eps 1e-08 decoupled weight decay 0.01; seed 1"
for o in lars lamb adamw; do
  # 1. threads and ranks
  for t in 1 2; do
    run 2 "$o-t$t.log" --optimizer "$o" --threads "$t" --steps 8 --save "$o-t$t.h5" \
      || { cat "$o-t$t.log"; fail "$o: $t-thread run failed"; }
  done
  banner=banner_$o
  expect_in "$o-t1.log" "${!banner}"
  "$TOOLS/compare_weights" "$o-t1.h5" "$o-t2.h5" --exact > cmp.log \
    || { cat cmp.log; fail "$o: 1 and 2 threads differ"; }

  # 2. resume mid-epoch (checkpoints at 5, 10, 15; the newest is in epoch 2), bitwise
  run 3 "$o-full.log" --optimizer "$o" --threads 1 --save "$o-full.h5" \
    || { cat "$o-full.log"; fail "$o: uninterrupted run failed"; }
  expect_in "$o-full.log" "replicas identical on 3 ranks"
  run 3 "$o-a.log" --optimizer "$o" --threads 1 --steps 17 --checkpoint-dir "ck-$o" \
    --checkpoint-every 5 || { cat "$o-a.log"; fail "$o: first part failed"; }
  "$TOOLS/compare_weights" "$o-full.h5" "ck-$o/ckpt-00000015.h5" --exact > /dev/null \
    && fail "$o: the comparison is blind: step 15 equals the final weights"
  run 3 "$o-b.log" --optimizer "$o" --threads 2 --resume "ck-$o" --save "$o-resumed.h5" \
    || { cat "$o-b.log"; fail "$o: resume failed"; }
  expect_in "$o-b.log" "resume: ck-$o/ckpt-00000015.h5: step 15 of 24"
  "$TOOLS/compare_weights" "$o-full.h5" "$o-resumed.h5" --exact > cmp.log \
    || { cat cmp.log; fail "$o: resumed mid-epoch: weights differ from the uninterrupted run"; }
done

# 3. the state in the checkpoint: adamw at step 15, conv1 frozen
run 2 f.log --optimizer adamw --freeze conv1 --steps 15 --checkpoint-dir ck-frozen \
  --checkpoint-every 15 || { cat f.log; fail "frozen adamw run failed"; }
"$DPTRAIN" "${common[@]}" --steps 0 --save init.h5 > /dev/null
"$py" - ck-frozen/ckpt-00000015.h5 init.h5 <<'PY' || fail "adamw checkpoint contents"
import sys, h5py, numpy as np
c, init = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
o, g = c["dptrain/optimizer"], c["dptrain"]
kind = o.attrs["kind"]
assert (kind.decode() if isinstance(kind, bytes) else kind) == "adamw", kind
names = [k for k in init if isinstance(init[k], h5py.Dataset)]
assert sorted(o) == sorted(k + s for k in names for s in (".exp_avg", ".exp_avg_sq", ".step")), list(o)
for k in names:
    frozen = k.startswith("conv1.")
    step = o[k + ".step"]
    assert step.dtype == np.int64 and step.shape == (1,), (k, step.dtype, step.shape)
    assert step[0] == (0 if frozen else 15), (k, step[0])
    for s in (".exp_avg", ".exp_avg_sq"):
        assert o[k + s].dtype == np.float32 and o[k + s].shape == (init[k].size,)
        assert np.any(o[k + s][()] != 0) != frozen, (k + s, frozen)
    assert np.array_equal(c[k][()], init[k][()]) == frozen, (k, frozen)
opt = g.attrs["optimizer"]
assert (opt.decode() if isinstance(opt, bytes) else opt) == "adamw", opt
assert g.attrs["beta1"] == 0.9 and g.attrs["beta2"] == 0.999 and g.attrs["eps"] == 1e-8
print("adamw checkpoint ok: exp_avg, exp_avg_sq float32, step int64 = 15, conv1 untouched")
PY

# 4. another optimizer is refused, naming both; a changed setting is noted
if run 2 r.log --optimizer sgd --resume ck-adamw; then cat r.log; fail "adamw state resumed by sgd"; fi
expect_in r.log "the checkpoint holds the state of optimizer adamw, this run uses sgd (pass the same --optimizer)"
if run 2 r.log --optimizer lamb --resume ck-adamw; then cat r.log; fail "adamw state resumed by lamb"; fi
expect_in r.log "the checkpoint holds the state of optimizer adamw, this run uses lamb"
run 2 n.log --optimizer adamw --beta2 0.99 --resume ck-adamw --steps 16 \
  || { cat n.log; fail "resume with another --beta2 failed"; }
expect_in n.log "changed since the checkpoint: --beta1/--beta2 (0.9, 0.99, was 0.9, 0.999)"

# 5. a checkpoint written before the optimizer attributes existed resumes with sgd
run 2 s.log --steps 5 --checkpoint-dir ck-old --checkpoint-every 5 || { cat s.log; fail "sgd run failed"; }
"$py" -c "
import h5py
g = h5py.File('ck-old/ckpt-00000005.h5', 'r+')['dptrain']
for k in ('optimizer', 'beta1', 'beta2', 'eps', 'trust_coefficient', 'exclude_bias'):
    del g.attrs[k]"
run 2 s2.log --resume ck-old --steps 6 || { cat s2.log; fail "an sgd checkpoint without the optimizer attributes was refused"; }
expect_in s2.log "resume: ck-old/ckpt-00000005.h5: step 5"
if run 2 s3.log --optimizer lars --resume ck-old --steps 6; then cat s3.log; fail "sgd state resumed by lars"; fi
expect_in s3.log "the checkpoint holds the state of optimizer sgd, this run uses lars"

# 6. options: unknown optimizer, options the optimizer does not read (status 2)
refused() { # TEXT ARGS...
  local text=$1 rc=0; shift
  "$DPTRAIN" "${common[@]}" "$@" > o.log 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || { cat o.log; fail "$*: status $rc, expected 2"; }
  expect_in o.log "$text"
}
refused "--optimizer: expected sgd, lars, lamb or adamw, got 'adam'" --optimizer adam
refused "--beta1: read by --optimizer lamb and adamw only, this run uses sgd" --beta1 0.8
refused "--momentum: read by --optimizer sgd and lars only, this run uses adamw" --optimizer adamw --momentum 0.8
refused "--trust-coefficient: read by --optimizer lars only, this run uses lamb" --optimizer lamb --trust-coefficient 0.01
refused "--no-exclude-bias-from-adaptation: read by --optimizer lars and lamb only, this run uses adamw" --optimizer adamw --no-exclude-bias-from-adaptation
refused "--eps: read by --optimizer lamb and adamw only, this run uses lars" --optimizer lars --eps 1e-6
echo "1 passed, 0 failed"
