#!/usr/bin/env bash
# dptrain-eval evaluates as the weights were trained: the model, the input normalisation,
# the precision and the convolutions' algorithm the weights file records (--save and
# checkpoints; a checkpoint from before the root attributes by its /dptrain group), so its
# figures are dptrain's own test figures to the last printed digit, on 1 and 2 ranks and 1
# and 2 threads. The options override the file, and what they say is what is applied
# (other probabilities).
# A file that records nothing (a PyTorch export) is evaluated as the defaults say; a
# recorded bf16 this CPU cannot run falls back to fp32 with a note; an explicit --precision
# bf16 it cannot run, an unknown recorded precision and a bad recorded normalisation are
# refused. Fine-tuning (--init-from) on other inputs than the weights were trained on says
# so.
source "$(dirname "$0")/lib.sh"
EVAL="$DP_BINARY_DIR/dptrain-eval"
PY=${DP_PYTHON:-/usr/bin/python3}
"$PY" -c "import h5py" 2> /dev/null || skip_test "$PY lacks h5py"
cd "$WORK"
"$TOOLS/make_dataset" synth train 240 5 3 > /dev/null
"$TOOLS/make_dataset" synth test.h5 300 6 > /dev/null
mapfile -t paths < <("$TOOLS/test_isa" --list)
common=(--train train --test test.h5 --batch 40 --epochs 1 --seed 5 --threads 1 --no-progress)
ev() { # ev NAME RANKS ARGS...: evaluate, the report in NAME.log, the CSV in NAME.csv
  local name=$1 ranks=$2; shift 2
  mpi "$ranks" "$EVAL" --data test.h5 --predictions "$name.csv" "$@" > "$name.log" 2>&1 \
    || { cat "$name.log"; fail "dptrain-eval $*"; }
}
# agrees NAME METRICS: the eval's loss and accuracy are the training's last test figures
agrees() {
  "$PY" - "$1.log" "$2" <<'PY' || fail "dptrain-eval's $1 disagrees with the training's $2"
import json, re, sys
rep = open(sys.argv[1]).read()
loss, acc = re.search(r"^loss ([0-9.]+) accuracy ([0-9.]+)%", rep, re.M).groups()
last = [json.loads(l) for l in open(sys.argv[2]) if '"test_loss"' in l][-1]
want = ("%.6f" % last["test_loss"], "%.2f" % (100 * last["test_accuracy"]))
assert (loss, acc) == want, ((loss, acc), want)
PY
}
attr() { # attr FILE NAME=VALUE: set a root attribute; attr FILE NAME...: delete them
  "$PY" -c 'import h5py, sys
f = h5py.File(sys.argv[1], "r+")
for a in sys.argv[2:]:
    if "=" not in a:
        del f.attrs[a]
        continue
    k, v = a.split("=")
    try: f.attrs[k] = float(v)
    except ValueError: f.attrs[k] = v' "$@"
}
recorded=(dptrain_precision dptrain_conv_algorithm dptrain_normalize dptrain_normalize_mean
          dptrain_normalize_std)

# 1. winograd and a normalisation: recorded by --save and by a checkpoint, used, overridden
mpi 2 "$DPTRAIN" "${common[@]}" --conv-algorithm winograd --normalize 0.1307,0.3081 \
  --metrics wg.json --save wg.h5 \
  --checkpoint-dir ck --checkpoint-every 6 > wg.log 2>&1 || { cat wg.log; fail "winograd run"; }
for P in 1 2; do
  ev wg$P $P --weights wg.h5
  expect_in wg$P.log "convolutions: winograd (as the weights file records)"
  expect_in wg$P.log "input: (pixel/255 - 0.1307) / 0.3081 (as the weights file records)"
  expect_in wg$P.log "model: conv(32,3,stride=1,pad=0) relu maxpool(2,stride=2) conv(64,3"
  agrees wg$P wg.json
done
cmp -s wg1.csv wg2.csv || fail "dptrain-eval: 1 and 2 ranks give other predictions"
ev wgt 1 --weights wg.h5 --threads 2
expect_in wgt.log "300 samples, 10 classes, 1 rank x 2 threads"
cmp -s wg1.csv wgt.csv || fail "dptrain-eval: 2 threads give other predictions than 1"
ev wgd 1 --weights wg.h5 --conv-algorithm direct
expect_in wgd.log "convolutions: direct (--conv-algorithm)"
cmp -s wg1.csv wgd.csv && fail "--conv-algorithm direct gave winograd's probabilities"
ev wgn 1 --weights wg.h5 --normalize off
expect_in wgn.log "input: pixel/255 (--normalize)"
cmp -s wg1.csv wgn.csv && fail "--normalize off gave the normalised input's probabilities"
ck=$(ls ck/ckpt-*.h5 | tail -1)
ev ck 1 --weights "$ck"
cmp -s wg1.csv ck.csv || fail "the checkpoint and the --save file of the same step disagree"
cp "$ck" old.h5
attr old.h5 "${recorded[@]}"
ev old 1 --weights old.h5
expect_in old.log "convolutions: winograd (as the weights file records)"
expect_in old.log "input: (pixel/255 - 0.1307) / 0.3081 (as the weights file records)"
cmp -s wg1.csv old.csv || fail "a checkpoint without the root attributes lost what it records"
echo "winograd, normalised: recorded, applied on 1 and 2 ranks, from a checkpoint's group"
# fine-tuning from them: a note where this run feeds other inputs, none where the same
for n in "" "--normalize 0.1307,0.3081"; do
  mpi 1 "$DPTRAIN" "${common[@]}" --steps 1 --init-from wg.h5 $n > ft.log 2>&1 \
    || { cat ft.log; fail "--init-from wg.h5 $n"; }
  if [[ -z $n ]]; then
    expect_in ft.log "--init-from wg.h5: note: those weights were trained on (pixel/255 - \
0.1307) / 0.3081; this run feeds pixel/255 (--normalize)"
  else
    grep -q "note:" ft.log && { cat ft.log; fail "a note on --init-from, the same --normalize"; }
  fi
done

# 2. a file that records nothing: the defaults (reference, fp32, direct, pixel/255)
cp wg.h5 bare.h5
attr bare.h5 dptrain_model "${recorded[@]}"
ev bare 1 --weights bare.h5
expect_in bare.log "model: reference (the default)"
expect_in bare.log "precision: fp32 (the default); convolutions: direct (the default)"
expect_in bare.log "input: pixel/255 (the default)"
ev said 1 --weights wg.h5 --model reference --precision fp32 --conv-algorithm direct \
  --normalize off
cmp -s said.csv bare.csv || fail "a file that records nothing is not evaluated as the defaults"

# 3. bf16 (scalar emulation where the CPU lacks AVX512-BF16, so a short run)
path=$("$TOOLS/test_bf16" --path)
mpi 2 "$DPTRAIN" "${common[@]}" --isa "$path" --precision bf16 --steps 3 --metrics bf.json \
  --save bf.h5 > bft.log 2>&1 || { cat bft.log; fail "bf16 run"; }
ev bf 2 --weights bf.h5 --isa "$path"
expect_in bf.log "precision: bf16 (as the weights file records)"
agrees bf bf.json
ev bff 1 --weights bf.h5 --precision fp32
cmp -s bf.csv bff.csv && fail "--precision fp32 gave bf16's probabilities"
if [[ " ${paths[*]} " == *" avx2 "* ]]; then
  ev bfa 2 --weights bf.h5 --isa avx2
  expect_in bfa.log "precision: fp32 (fallback)"
  expect_in bfa.log "note: the weights were trained in bf16, which some rank's CPU cannot run"
  cmp -s bff.csv bfa.csv || fail "the fallback is not fp32"
  rc=0
  timeout -k 5 120 bash -c "$(declare -f mpi); mpi 2 \"\$@\"" _ "$EVAL" --data test.h5 \
    --weights bf.h5 --isa avx2 --precision bf16 > bfx.log 2>&1 || rc=$?
  [[ $rc -eq 1 ]] || { cat bfx.log; fail "--precision bf16 on avx2: status $rc, expected 1"; }
  expect_in bfx.log "--precision bf16: the kernels run on the avx2 path"
fi
echo "bf16: recorded and applied; --precision fp32 overrides; fp32 where it cannot run"

# 4. what the file records must be known; the options' words too
cp wg.h5 odd.h5
attr odd.h5 dptrain_precision=fp8
rc=0; mpi 1 "$EVAL" --data test.h5 --weights odd.h5 > odd.log 2>&1 || rc=$?
[[ $rc -eq 1 ]] || { cat odd.log; fail "an unknown recorded precision: status $rc"; }
expect_in odd.log "--weights odd.h5: records the precision 'fp8'"
cp wg.h5 odd.h5
attr odd.h5 dptrain_normalize_std=0
rc=0; mpi 1 "$EVAL" --data test.h5 --weights odd.h5 > odd.log 2>&1 || rc=$?
[[ $rc -eq 1 ]] || { cat odd.log; fail "a recorded standard deviation of 0: status $rc"; }
expect_in odd.log "--weights: odd.h5: records the normalisation (0.1307, 0): expected a finite"
rc=0; "$EVAL" --weights wg.h5 --conv-algorithm fft > opt.log 2>&1 || rc=$?
[[ $rc -eq 2 ]] || { cat opt.log; fail "--conv-algorithm fft: status $rc, expected 2"; }
expect_in opt.log "--conv-algorithm: expected direct or winograd, got 'fft'"
echo "1 passed, 0 failed"
