#!/usr/bin/env bash
# The local scaling sweep in one command (scripts/sweep.sh: runs, CSV, plots, report) on
# synthetic data, the collector's arithmetic on hand-made metrics, and training curves.
source "$(dirname "$0")/lib.sh"
if ! command -v gnuplot > /dev/null; then
  [[ ${DPTRAIN_REQUIRE_SLURM:-0} == 1 ]] && fail "gnuplot missing (apt-get install gnuplot-nox)"
  skip_test "gnuplot not installed (apt-get install gnuplot-nox)"
fi
py=${DP_PYTHON:-python3}
S=$DP_SOURCE_DIR/scripts

# collector: speedup and efficiency against the 1-rank run, time per step split
mkdir -p "$WORK/m"
rec() { # FILE ranks threads batch step images_per_sec seconds comm data compute [partial]
  printf '{"epoch":1,"step":%d,"partial":%s,"lr":0.05,"train_loss":0.5,"train_accuracy":0.8,"test_loss":0.4,"test_accuracy":0.9,"images_per_sec":%s,"seconds":%s,"comm_seconds":%s,"data_seconds":%s,"compute_seconds":%s,"eval_seconds":0.1,"wall_seconds":%s,"ranks":%d,"threads":%d,"global_batch":%d}\n' \
    "$5" "${11:-true}" "$6" "$7" "$8" "$9" "${10}" "$7" "$2" "$3" "$4" >> "$1"
}
rec "$WORK/m/strong-r1-t1.jsonl" 1 1 100 100 1000 10 0 0.5 9.5
rec "$WORK/m/strong-r4-t1.jsonl" 4 1 100 100 3000 3.3333 1 0.1 2.2
rec "$WORK/m/weak-r1-t1.jsonl" 1 1 50 100 800 6.25 0 0.2 6.0
rec "$WORK/m/weak-r2-t1.jsonl" 2 1 100 100 1200 8.3333 2 0.2 6.0
bal='{"type":"balance","every":8,"ranks":4,"samples":[300,250,250,200],'
echo "$bal"'"samples_per_sec":[1000,900,1100,800]}' >> "$WORK/m/strong-r4-t1.jsonl"
$py "$S/collect.py" "$WORK/m" -o "$WORK/m.csv"
cat "$WORK/m.csv"
field() { $py -c "import csv,sys; r=[x for x in csv.DictReader(open('$WORK/m.csv')) if x['run']=='$1'][0]; print(r['$2'])"; }
[[ $(field strong-r4-t1 speedup) == 3.0 ]] || fail "strong speedup $(field strong-r4-t1 speedup), expected 3.0"
[[ $(field strong-r4-t1 efficiency) == 0.75 ]] || fail "strong efficiency $(field strong-r4-t1 efficiency), expected 0.75"
[[ $(field weak-r2-t1 efficiency) == 0.75 ]] || fail "weak efficiency $(field weak-r2-t1 efficiency), expected 0.75"
[[ $(field strong-r4-t1 comm_ms) == 10.0 ]] || fail "comm per step $(field strong-r4-t1 comm_ms), expected 10.0 ms"
[[ $(field strong-r4-t1 step_ms) == 33.333 ]] || fail "step time $(field strong-r4-t1 step_ms), expected 33.333 ms"
# the balance record: rank 3 the slowest, 800 against 1100 samples/s; none without one
[[ $(field strong-r4-t1 slowest_rank) == 3 ]] \
  || fail "slowest rank $(field strong-r4-t1 slowest_rank), expected 3"
[[ $(field strong-r4-t1 slowest_vs_fastest) == 0.727 ]] \
  || fail "slowest against fastest $(field strong-r4-t1 slowest_vs_fastest), expected 0.727"
[[ -z $(field weak-r2-t1 slowest_rank) ]] || fail "a slowest rank without a balance record"
# a resumed segment that did not balance: the earlier segment's record no longer counts
printf '{"type":"host","cores":2}\n' >> "$WORK/m/strong-r4-t1.jsonl"
rec "$WORK/m/strong-r4-t1.jsonl" 4 1 100 200 3000 3.3333 1 0.1 2.2
$py "$S/collect.py" "$WORK/m" -o "$WORK/m.csv"
[[ -z $(field strong-r4-t1 slowest_rank) ]] || fail "a balance record of an earlier segment counted"
echo '{"epoch":1,' > "$WORK/bad.jsonl"
$py "$S/collect.py" "$WORK/bad.jsonl" > /dev/null 2> "$WORK/bad.err" && fail "collect accepted a broken record"
expect_in "$WORK/bad.err" "bad.jsonl:1: not JSON"

# the one command: 1 and 2 ranks x 1 thread, strong and weak, on synthetic data (a test of
# the pipeline, not of this machine's load: no waiting for it to settle, published whatever
# it is; test_load_marking.sh tests the refusal)
"$TOOLS/make_dataset" synth "$WORK/train" 800 5 2 > /dev/null
"$TOOLS/make_dataset" synth "$WORK/test.h5" 200 6 > /dev/null
SWEEP_SETTLE=0 DPTRAIN_FORCE_PUBLISH=1 \
SWEEP_RANKS="1 2" SWEEP_THREADS="1" SWEEP_STEPS=4 SWEEP_STRONG_BATCH=40 SWEEP_WEAK_BATCH=20 \
  SWEEP_ARGS="--train $WORK/train --test $WORK/test.h5" "$S/sweep.sh" both "$WORK/sweep"
for r in strong-r1-t1 strong-r2-t1 weak-r1-t1 weak-r2-t1; do
  grep -q "^$r," "$WORK/sweep/sweep.csv" || fail "sweep.csv lacks $r"
done
grep -q "^weak-r2-t1,weak,2,1,2,40,4," "$WORK/sweep/sweep.csv" || fail "weak scaling should double the global batch"
for p in images_per_sec speedup efficiency step_split; do
  [[ -s $WORK/sweep/plots/$p.png ]] || fail "no plots/$p.png"
  [[ $(head -c 4 "$WORK/sweep/plots/$p.png" | tail -c 3) == PNG ]] || fail "plots/$p.png is not a PNG"
done
expect_in "$WORK/sweep/report.md" "| strong-r2-t1 | 2 | 1 | 40 |"
# strong scaling is one training: both runs end with the same weights, and the report says so
c1=$($py -c "import csv; print([r for r in csv.DictReader(open('$WORK/sweep/sweep.csv')) if r['run']=='strong-r1-t1'][0]['weights_checksum'])")
[[ $c1 =~ ^[0-9a-f]{16}$ ]] || fail "no weights checksum in sweep.csv: '$c1'"
expect_in "$WORK/sweep/report.md" "all strong-scaling runs end with weights checksum $c1"
expect_in "$WORK/sweep/report.md" "![Step time: compute, allreduce, data](plots/step_split.png)"
# the step records of every run (--log-every) in the CSV and the report's step view
grep -q "^strong-r2-t1,.*,1,[0-9.]\+,[0-9.]\+,[0-9.]\+,[0-9]*,[0-9.]*.\?$" "$WORK/sweep/sweep.csv" \
  || fail "sweep.csv lacks the step view of strong-r2-t1: $(cat "$WORK/sweep/sweep.csv")"
expect_in "$WORK/sweep/report.md" "## Step by step"
expect_in "$WORK/sweep/report.md" "| strong-r2-t1 | 1 |"
# 2 ranks x 1 thread fit 2 cores: they balance (auto), and the report names the slower rank
if (( $(nproc) >= 2 )); then
  expect_in "$WORK/sweep/report.md" "## The ranks' own speeds"
  grep -qE "^\| strong-r2-t1 \| 2 \| [01] \| (0\.[0-9]+|1\.00) \|$" "$WORK/sweep/report.md" \
    || fail "no slowest rank for strong-r2-t1: $(grep -A4 'own speeds' "$WORK/sweep/report.md")"
fi
# curves for any run, several epochs
"$DPTRAIN" --train "$WORK/train" --test "$WORK/test.h5" --epochs 3 --batch 40 --threads 1 \
  --quiet --metrics "$WORK/three.jsonl"
$py "$S/plot.py" curves "$WORK/curves" "$WORK/three.jsonl"
[[ -s $WORK/curves/curves_three.png ]] || fail "no training curves"
echo "sweep scripts: ok"
