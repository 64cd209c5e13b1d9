#!/usr/bin/env bash
# The projection of time to 99% against node count (scripts/project.py, netmodel.py) on
# hand-made inputs: the allreduce model's textbook costs, the alpha-beta fit, the epochs
# read from a directory of runs (fewest per batch, not reached, another model's .args, a
# broken file), "not measured" outside the measured batches (never extrapolated), the time
# = epochs x steps x (compute + reduction) recomputed here from the textbook formula, and
# the node count where adding nodes stops helping.
source "$(dirname "$0")/lib.sh"
py=${DP_PYTHON:-python3}
S=$DP_SOURCE_DIR/scripts
cd "$WORK"
mkdir runs
ep() { # FILE GLOBAL_BATCH ACC1 ACC2 ...: one epoch record per accuracy
  local f=$1 b=$2 e=0; shift 2
  printf '{"type":"host","time":"t","host":"h","cpu_model":"Test CPU","cores":2,"load_start":[0.1,0.1,0.1]}\n' > "$f"
  for acc in "$@"; do
    e=$((e + 1))
    printf '{"type":"epoch","epoch":%d,"step":%d,"partial":false,"test_accuracy":%s,"wall_seconds":%d,"global_batch":%d}\n' \
      "$e" "$((e * 60000 / b))" "$acc" "$((e * 10))" "$b" >> "$f"
  done
}
ep runs/sgd-b1600.jsonl 1600 0.97 0.985 0.991 0.992     # 3 epochs
ep runs/lars-b1600.jsonl 1600 0.97 0.985 0.989 0.9905   # 4: the fewest (3) counts
ep runs/lars-b3200.jsonl 3200 0.95 0.97 0.98 0.985 0.990 0.993  # 5
ep runs/lars-b6400.jsonl 6400 0.90 0.95 0.97 0.98        # not reached
ep runs/nopool-b1600.jsonl 1600 0.985 0.991             # nopool (its .args say so): 2
echo "--model nopool --optimizer lars (global batch 1600)" > runs/nopool-b1600.args
echo "not json" > runs/broken.jsonl
# the shared-memory bench: exact binomial costs of alpha 4 us, beta 1/(5 GB/s), 2 ranks
$py - "$S" > bench.csv <<'PY'
import sys; sys.path.insert(0, sys.argv[1]); import netmodel
print("ranks,bytes,iters,seconds_median,seconds_min,op")
for n in (1024, 65536, 1 << 20, 8 << 20):
    t = netmodel.allreduce_time("binomial", 2, n, {"alpha": 4e-6, "beta": 2e-10})
    print(f"2,{n},10,{t!r},{t!r},iallreduce_inplace_int64")
print("2,1024,10,1.0,1.0,allreduce_float")  # another op: ignored
PY
$py "$S/project.py" --bench bench.csv --compute reference=100:50 --compute nopool=20:30,100:70 \
    --epochs-from . --batch-per-node 100 --cores 2 --measured-on "Test CPU, 2 cores, load 0.1" \
    --no-plots -o out > out.log 2> err.log || { cat out.log err.log; fail "project.py failed"; }
cat out/projection.md
grep -q "broken.jsonl: skipped" err.log || fail "a broken metrics file should be reported as skipped"
$py - "$S" out <<'PY'
import csv, math, sys
sys.path.insert(0, sys.argv[1])
import netmodel, project
out = sys.argv[2]

def near(x, y, what, rel=1e-6):
    assert abs(x - y) <= rel * max(abs(x), abs(y), 1e-30), f"{what}: {x} vs {y}"

# the textbook costs, one rank per node: binomial 2 ceil(log2 P) (a + n b) + ceil(log2 P) n g;
# Rabenseifner on a power of 2: 2 log2 P a + 2 (P-1)/P n b + (P-1)/P n g; ring 2 (P-1) (a + n/P b)
net = {"alpha": 3e-5, "beta": 1e-9, "gamma": 2e-11}
n = 1 << 20
for P in (2, 5, 8, 16):
    L = math.ceil(math.log2(P))
    near(netmodel.allreduce_time("binomial", P, n, net), 2 * L * (3e-5 + n * 1e-9) + L * n * 2e-11, f"binomial {P}")
near(netmodel.allreduce_time("rabenseifner", 8, n, net), 6 * 3e-5 + 2 * 7 / 8 * n * 1e-9 + 7 / 8 * n * 2e-11, "rabenseifner 8")
near(netmodel.allreduce_time("ring", 4, n, {"alpha": 3e-5, "beta": 1e-9}), 6 * (3e-5 + n / 4 * 1e-9), "ring 4")
# 6 ranks: 2 extra ranks hand in and get back the whole vector around the 4-rank algorithm
near(netmodel.allreduce_time("rabenseifner", 6, n, net),
     (3e-5 + n * 1e-9 + n * 2e-11) + (4 * 3e-5 + 1.5 * n * 1e-9 + 0.75 * n * 2e-11) + (3e-5 + n * 1e-9), "rabenseifner 6")
# two ranks per node: the messages inside a node cost the local figures, not the link's
loc = {"alpha": 1e-6, "beta": 1e-10, "gamma": 0.0}
lnk = {"alpha": 1e-4, "beta": 1e-8}
# binomial on 4 ranks, nodes {0,1},{2,3}: reduce 1->0 and 3->2 (local), 2->0 (link), then
# broadcast 0->1 (local), 0->2 and 1->3 (both over node 0's link: twice the bytes)
near(netmodel.allreduce_time("binomial", 4, n, lnk, loc, ranks_per_node=2),
     2 * (1e-6 + n * 1e-10) + (1e-4 + n * 1e-8) + (1e-4 + 2 * n * 1e-8), "binomial 4 ranks on 2 nodes")
# the fit recovers the bench's alpha and beta
a, b = netmodel.fit_alpha_beta(project.read_bench("bench.csv", "iallreduce_inplace_int64"))
near(a, 4e-6, "fitted alpha", 1e-6); near(b, 2e-10, "fitted beta", 1e-6)

# epochs at a global batch: measured, interpolated in log2, not reached, not measured
found = project.read_runs(["."], 0.99)
tab, whose = project.epochs_table(found, [], "reference")
assert whose == "reference" and tab[1600][0] == 3 and tab[3200][0] == 5 and tab[6400][0] is None, tab
assert project.epochs_at(tab, 1600) == (3, "measured")
e, s = project.epochs_at(tab, int(round(1600 * 2 ** 0.5)))
assert s == "interpolated" and abs(e - 4) < 1e-3, (e, s)
assert project.epochs_at(tab, 4000) == (None, project.NOT_REACHED)   # between 3200 and a miss
assert project.epochs_at(tab, 6400) == (None, project.NOT_REACHED)
assert project.epochs_at(tab, 800) == (None, project.NOT_MEASURED)   # below the smallest
assert project.epochs_at(tab, 6401) == (None, project.NOT_MEASURED)  # above the largest
tabn, whosen = project.epochs_table(found, [], "nopool")
assert whosen == "nopool" and tabn == {1600: (2.0, "nopool-b1600.jsonl")}, tabn
# --epochs-to for a model, and a model without runs takes the reference's
t2, w2 = project.epochs_table(found, ["nopool:3200=6"], "nopool")
assert t2[3200] == (6.0, "--epochs-to"), t2
t3, w3 = project.epochs_table([r for r in found if r[0] == "reference"], [], "nopool")
assert w3 == "reference" and t3 == tab

# the CSV: the time recomputed from the textbook binomial cost per bucket (gamma 0 here)
rows = list(csv.DictReader(open(f"{out}/projection.csv")))
def row(**k):
    r = [x for x in rows if all(x[a] == str(v) for a, v in k.items())]
    assert len(r) == 1, (k, len(r)); return r[0]
def expect(model, netname, ov, N, epochs, c_ms):
    par = {"shm": (4e-6, 2e-10)}.get(netname) or next((a, b) for nm, a, b, _ in project.ASSUMED if nm == netname)
    L = math.ceil(math.log2(N)) if N > 1 else 0
    ts = [2 * L * (par[0] + x * par[1]) for x in netmodel.buckets(model)]
    comp = c_ms / 1e3
    step = comp + sum(ts) if ov == "off" else comp + max(0, sum(ts) - ts[-1] - 2 / 3 * comp) + ts[-1]
    return epochs * math.ceil(60000 / (100 * N)) * step
for model, c_ms in (("reference", 50.0), ("nopool", 70.0)):
    for netname in ("shm", "1Gb/s", "10Gb/s", "100Gb/s"):
        for ov in ("off", "on"):
            for N, ep in ((16, 3 if model == "reference" else 2), (32, 5)):
                if model == "nopool" and N == 32:
                    continue
                r = row(model=model, network=netname, overlap=ov, nodes=N, algorithm="binomial", batch_per_node=100)
                near(float(r["time_to_target_s"]), expect(model, netname, ov, N, ep, c_ms), f"{model} {netname} {ov} {N}", 1e-4)
r = row(model="reference", network="shm", overlap="on", nodes=1, algorithm="binomial", batch_per_node=100)
assert r["epochs_status"] == project.NOT_MEASURED and r["time_to_target_s"] == "", r
r = row(model="reference", network="shm", overlap="on", nodes=128, algorithm="binomial", batch_per_node=100)
assert r["epochs_status"] == project.NOT_MEASURED and r["time_to_target_s"] == "", r
r = row(model="reference", network="shm", overlap="on", nodes=64, algorithm="binomial", batch_per_node=100)
assert r["epochs_status"] == project.NOT_REACHED and r["time_to_target_s"] == "", r

# where adding nodes stops helping, as the Markdown says it, against the argmin here
md = open(f"{out}/projection.md").read()
assert "Measured on: Test CPU, 2 cores, load 0.1" in md
for netname in ("shm", "1Gb/s", "10Gb/s", "100Gb/s"):
    for ov in ("off", "on"):
        t16, t32 = (expect("reference", netname, ov, N, ep, 50.0) for N, ep in ((16, 3), (32, 5)))
        want = "**16**" if t16 <= t32 else "**32**"  # 64 nodes: 6,400 missed 99%
        line = next(l for l in md.splitlines() if l.startswith(f"| reference | 100 | {netname} | {ov} |"))
        assert line.split(" | ")[-2].startswith(want), (line, want, t16, t32)
# the 1 Gb/s case is the one where communication wins: more nodes are slower there
assert expect("reference", "1Gb/s", "on", 16, 3, 50.0) < expect("reference", "1Gb/s", "on", 32, 5, 50.0)
assert expect("reference", "shm", "off", 16, 3, 50.0) > expect("reference", "shm", "off", 32, 5, 50.0)
# nopool measured only at 1,600: the best is 16 nodes, and 32 nodes are not measured
line = next(l for l in md.splitlines() if l.startswith("| nopool | 100 | shm | on |"))
assert "≥ 16 (not measured beyond)" in line, line
print("projection checks: ok")
PY
# with gnuplot, the plots: the fit and one time-to-accuracy plot per model and batch per node
if command -v gnuplot > /dev/null; then
  $py "$S/project.py" --bench bench.csv --compute reference=100:50 --compute nopool=20:30,100:70 \
      --epochs-from runs --batch-per-node 100 --cores 2 -o plots > /dev/null 2>&1 || fail "project.py with plots failed"
  for p in allreduce_fit time_to_accuracy_reference_b100 time_to_accuracy_nopool_b100; do
    [[ -s plots/$p.png ]] || fail "plots/$p.png missing"
  done
fi
echo "projection: ok"
