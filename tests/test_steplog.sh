#!/usr/bin/env bash
# --log-every N: a step record every N steps and at each epoch's end, on 2 ranks; the
# step records of an epoch add up to its epoch record (loss, accuracy, samples, time);
# the time split is sane (max over ranks >= mean, the phases fill the step); the
# collector and the plots read a file with both kinds of record.
source "$(dirname "$0")/lib.sh"
py=${DP_PYTHON:-python3}
cd "$WORK"
"$TOOLS/make_dataset" synth train 800 5 2 > /dev/null
"$TOOLS/make_dataset" synth test.h5 200 6 > /dev/null
run=(--train train --test test.h5 --epochs 2 --batch 40 --threads 1 --no-progress)  # 20 steps an epoch

check_records() { # FILE EVERY: records where they belong, agreeing with the epoch records
  $py - "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
every = int(sys.argv[2])
steps = [r for r in recs if r["type"] == "step"]
epochs = [r for r in recs if r["type"] == "epoch"]
assert len(epochs) == 2, f"{len(epochs)} epoch records"
want = sorted({s for s in range(every, 41, every)} | {20, 40})
got = [r["step"] for r in steps]
assert got == want, f"step records at {got}, expected {want}"
bad = []
for e in epochs:
    mine = [r for r in steps if r["epoch"] == e["epoch"]]
    assert sum(r["steps"] for r in mine) == 20, f"epoch {e['epoch']}: records cover {[r['steps'] for r in mine]} steps"
    n = sum(r["samples"] for r in mine)
    assert n == 20 * 40, f"epoch {e['epoch']}: {n} samples in its step records"
    loss = sum(r["train_loss"] * r["samples"] for r in mine) / n
    acc = sum(r["train_accuracy"] * r["samples"] for r in mine) / n
    if abs(loss - e["train_loss"]) > 2e-6 or abs(acc - e["train_accuracy"]) > 2e-6:
        bad.append(f"epoch {e['epoch']}: step records give loss {loss:.7f} acc {acc:.7f}, "
                   f"the epoch record {e['train_loss']} {e['train_accuracy']}")
    secs = sum(r["seconds"] for r in mine)
    if not 0.5 * e["seconds"] <= secs <= 1.01 * e["seconds"] + 0.01:
        bad.append(f"epoch {e['epoch']}: step records span {secs:.4f} s of its {e['seconds']} s")
    if mine[-1]["lr"] != e["lr"]:
        bad.append(f"epoch {e['epoch']}: last lr {mine[-1]['lr']} vs {e['lr']}")
for r in steps:
    phases = ["data", "forward", "backward", "wait", "update"]
    for p in phases:
        if not 0 <= r[p + "_ms"] <= r["max_" + p + "_ms"] + 1e-4:
            bad.append(f"step {r['step']}: {p} mean {r[p + '_ms']} max {r['max_' + p + '_ms']}")
    total = sum(r[p + "_ms"] for p in phases)
    if not 0.5 * r["step_ms"] <= total <= 1.01 * r["step_ms"] + 0.01:
        bad.append(f"step {r['step']}: phases {total:.3f} ms of a {r['step_ms']} ms step")
    if r["forward_ms"] <= 0 or r["backward_ms"] <= 0:
        bad.append(f"step {r['step']}: no forward or backward time")
    if abs(r["images_per_sec"] * r["seconds"] - r["samples"]) > 0.01 * r["samples"]:
        bad.append(f"step {r['step']}: {r['images_per_sec']} img/s over {r['seconds']} s is not {r['samples']}")
    if r["ranks"] != 2:
        bad.append(f"step {r['step']}: ranks {r['ranks']}")
assert not bad, "\n".join(bad)
print(f"{sys.argv[1]}: {len(steps)} step records at {got}, agreeing with {len(epochs)} epoch records")
PY
}
mpi 2 "$DPTRAIN" "${run[@]}" --metrics five.jsonl --log-every 5 > five.log 2>&1 || { cat five.log; fail "--log-every 5 run failed"; }
check_records five.jsonl 5 || fail "--log-every 5"
# N that does not divide the epoch: the epoch's last record covers the rest
mpi 2 "$DPTRAIN" "${run[@]}" --metrics six.jsonl --log-every 6 > six.log 2>&1 || { cat six.log; fail "--log-every 6 run failed"; }
check_records six.jsonl 6 || fail "--log-every 6"
grep -q '"step":20,"steps":2,' six.jsonl || fail "the record at the end of epoch 1 should cover its last 2 steps"
# without --log-every: epoch records only, now typed
mpi 2 "$DPTRAIN" "${run[@]}" --metrics plain.jsonl > plain.log 2>&1 || { cat plain.log; fail "plain run failed"; }
[[ $(grep -c '"type":"epoch"' plain.jsonl) -eq 2 && $(grep -c '"type":"step"' plain.jsonl) -eq 0 ]] \
  || fail "expected two epoch records and no step record: $(cat plain.jsonl)"
# options: --log-every needs a file
"$DPTRAIN" "${run[@]}" --log-every 5 > err.log 2>&1 && fail "--log-every without --metrics accepted"
expect_in err.log "--log-every 5: needs --metrics FILE"

# the scripts: the collector keeps to epoch records, the curves use the step records
$py "$DP_SOURCE_DIR/scripts/collect.py" five.jsonl --epochs epochs.csv > runs.csv
grep -q '^five,run,2,1,2,40,40,2,' runs.csv || fail "collect.py on a file with step records: $(cat runs.csv)"
[[ $(wc -l < epochs.csv) -eq 3 ]] || fail "collect.py --epochs should give 2 rows: $(cat epochs.csv)"
if command -v gnuplot > /dev/null; then
  $py "$DP_SOURCE_DIR/scripts/plot.py" curves plots five.jsonl > plot.log || fail "plot.py curves failed"
  [[ $(head -c 4 plots/curves_five.png | tail -c 3) == PNG ]] || fail "no curves_five.png"
  expect_in plot.log "steps_five.png"
  [[ $(head -c 4 plots/steps_five.png | tail -c 3) == PNG ]] || fail "no steps_five.png"
fi
echo "step records: ok"
