#!/usr/bin/env bash
# Time to accuracy on hand-made metrics (scripts/collect.py via scripts/runs.py): the first
# epoch at or above the target, its wall time, "not reached", another target, a partial
# epoch, a resumed run whose wall clock starts again, old files without types or host
# records. And dptrain's own host record: CPU model, cores, load as the run started.
source "$(dirname "$0")/lib.sh"
py=${DP_PYTHON:-python3}
S=$DP_SOURCE_DIR/scripts
cd "$WORK"
host() { # FILE LOAD1: a host record as dptrain writes it, on 2 cores
  printf '{"type":"host","time":"2026-01-01T00:00:00Z","host":"h","cpu_model":"Test CPU 9000","cores":2,"load_start":[%s,0.5,0.5]}\n' "$2" >> "$1"
}
ep() { # FILE EPOCH STEP PARTIAL TEST_ACC WALL [TYPE]
  printf '{%s"epoch":%d,"step":%d,"partial":%s,"lr":0.05,"train_loss":0.5,"train_accuracy":0.8,"test_loss":0.4,"test_accuracy":%s,"images_per_sec":1000,"seconds":%s,"comm_seconds":0,"data_seconds":0,"compute_seconds":1,"eval_seconds":0.1,"wall_seconds":%s,"ranks":1,"threads":1,"global_batch":100}\n' \
    "${7-\"type\":\"epoch\",}" "$2" "$3" "$4" "$5" "$6" "$6" >> "$1"
}
mkdir runs
# reaches 99% in epoch 3 (98.99% in epoch 2 is not enough): 3 epochs, 31.5 s
host runs/a.jsonl 0.2
ep runs/a.jsonl 1 600 false 0.9710 10.5
printf '{"type":"step","epoch":2,"step":1000,"steps":10,"train_loss":0.1,"step_ms":17.5,"max_wait_ms":0.5}\n' >> runs/a.jsonl
ep runs/a.jsonl 2 1200 false 0.9899 21.0
ep runs/a.jsonl 3 1800 false 0.9900 31.5
ep runs/a.jsonl 4 2400 false 0.9950 42.0
# never reaches it
host runs/b.jsonl 0.2
ep runs/b.jsonl 1 600 false 0.95 10.0
ep runs/b.jsonl 2 1200 false 0.98 20.0
# resumed after epoch 1 (a second host record, under load; its clock starts at zero),
# reaching 99% in a partial epoch 3 (step 1500 of 600 per epoch: 2.5 epochs)
host runs/c.jsonl 0.1
ep runs/c.jsonl 1 600 false 0.97 12.0
host runs/c.jsonl 1.7
ep runs/c.jsonl 2 1200 false 0.985 11.0
ep runs/c.jsonl 3 1500 true 0.991 16.0
# an old file: no types, no host record
ep runs/d.jsonl 1 600 false 0.992 9.0 ""
$py "$S/collect.py" runs -o runs.csv
cat runs.csv
field() { $py -c "import csv,sys; r=[x for x in csv.DictReader(open('$3')) if x['run']=='$1'][0]; print(r['$2'])"; }
check() { # RUN FIELD EXPECTED [CSV]
  local got; got=$(field "$1" "$2" "${4:-runs.csv}")
  [[ $got == "$3" ]] || fail "$1: $2 is '$got', expected '$3'"
}
check a epochs_to_target 3; check a seconds_to_target 31.5; check a target 0.99
check b epochs_to_target ""; check b seconds_to_target ""
check c epochs_to_target 2.5; check c seconds_to_target 28.0   # 12 s + 16 s
check d epochs_to_target 1; check d seconds_to_target 9.0
# the host: CPU, cores, the highest load of the run's starts, under load above 0.5 per core
check a cpu_model "Test CPU 9000"; check a host_cores 2; check a load_start 0.2; check a under_load 0
check c load_start 1.7; check c under_load 1
check d load_start ""; check d under_load ""
# another target: 97% is reached in epoch 1 by a, in epoch 2 by b
$py "$S/collect.py" runs -o t97.csv --target 0.97
check a epochs_to_target 1 t97.csv; check a seconds_to_target 10.5 t97.csv
check b epochs_to_target 2 t97.csv; check b seconds_to_target 20.0 t97.csv

# dptrain writes the host record first: this machine's CPU model and cores, a load average
"$TOOLS/make_dataset" synth train 200 5 1 > /dev/null
"$DPTRAIN" --train train --test none --steps 2 --batch 20 --threads 1 --no-progress --quiet --metrics m.jsonl
head -1 m.jsonl
want_cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
$py - m.jsonl "$(nproc --all 2> /dev/null || nproc)" "${want_cpu:-unknown}" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
h = recs[0]
assert h["type"] == "host", f"first record is {h.get('type')}, not the host record"
assert h["cores"] == int(sys.argv[2]), f"cores {h['cores']}, this machine has {sys.argv[2]}"
assert h["cpu_model"] == sys.argv[3].replace('"', "?").replace("\\", "?"), f"cpu {h['cpu_model']!r} vs {sys.argv[3]!r}"
l1, l5, l15 = h["load_start"]
assert all(x >= 0 for x in (l1, l5, l15)), h["load_start"]
assert [r["type"] for r in recs[1:]] == ["epoch"], [r["type"] for r in recs]
PY
# a second run appended to the same file adds its own host record
"$DPTRAIN" --train train --test none --steps 2 --batch 20 --threads 1 --no-progress --quiet --metrics m.jsonl
[[ $(grep -c '"type":"host"' m.jsonl) == 2 ]] || fail "an appended run should add a host record: $(cat m.jsonl)"
echo "time to accuracy: ok"
