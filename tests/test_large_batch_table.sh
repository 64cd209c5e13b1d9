#!/usr/bin/env bash
# The large-batch table (scripts/large_batch_table.py) on hand-made metrics: accuracy after
# the last epoch, best epoch, epochs to 99%, "not reached", partial records left out, the
# search table's stopped and incomplete candidates; then scripts/large_batch.sh end to end
# on synthetic data (the split of a batch into --accumulate passes, keeping finished
# runs, refusing a second runner in the same directory) and a search that stops the
# candidates below ABORT_BELOW after epoch 3.
source "$(dirname "$0")/lib.sh"
py=${DP_PYTHON:-python3}
S=$DP_SOURCE_DIR/scripts
plots=1
command -v gnuplot > /dev/null || plots=0

# rec FILE EPOCH TEST_ACCURACY [PARTIAL] [BATCH]
rec() {
  printf '{"epoch":%d,"step":%d,"partial":%s,"lr":0.1,"train_loss":0.1,"train_accuracy":0.9,"test_loss":0.1,"test_accuracy":%s,"images_per_sec":1000,"seconds":10,"max_rss_mib":%d,"ranks":2,"threads":1,"global_batch":%d}\n' \
    "$2" "$((10 * $2))" "${4:-false}" "$3" "$((100 + $2))" "${5:-4096}" >> "$1"
}
curve() { # FILE BATCH ACC1 ACC2 ... (one per epoch)
  local f=$1 b=$2 e=0; shift 2
  for a in "$@"; do e=$((e + 1)); rec "$f" "$e" "$a" false "$b"; done
}
R=$WORK/t/runs; mkdir -p "$R"
# lars-b4096: 99.0% first at epoch 4 (>= counts), best 99.30% at epoch 7 (the first of two)
curve "$R/lars-b4096.jsonl" 4096 0.9 0.95 0.98 0.99 0.985 0.991 0.993 0.992 0.993 0.991
printf 'optimizer: LARS lr 12 (cosine, warm-up 1 epochs) momentum 0.9\n# 2024-01-01T00:00:00Z start; load: x load average: 1.50, 1, 1\n# cpu:  Test CPU 9000, 2 cores\n# end; load: y load average: 2.25, 1, 1\n' > "$R/lars-b4096.log"
echo "--optimizer lars" > "$R/lars-b4096.args"
# sgd-b4096: a partial record of epoch 3 at 0.999 must not count
curve "$R/sgd-b4096.jsonl" 4096 0.5 0.9
rec "$R/sgd-b4096.jsonl" 3 0.999 true
for e in 3 4 5 6 7 8 9 10; do rec "$R/sgd-b4096.jsonl" "$e" 0.97; done
printf 'optimizer: SGD lr 0.4096 = 0.01 x 4096/100 (linear scaling) momentum 0.9\n' > "$R/sgd-b4096.log"
# lamb-b8192: stops after 6 epochs (incomplete), lars-b8192 complete
curve "$R/lamb-b8192.jsonl" 8192 0.8 0.9 0.95 0.96 0.97 0.975
curve "$R/lars-b8192.jsonl" 8192 0.5 0.8 0.9 0.95 0.97 0.98 0.982 0.985 0.987 0.988
extra=(); [[ $plots == 1 ]] || extra=(--no-plots)
$py "$S/large_batch_table.py" table "$R" -o "$WORK/t" "${extra[@]}"
T=$WORK/t/table.md
cat "$T"
expect_in "$T" "| global batch | SGD, linear scaling + warm-up | LARS | LAMB |"
expect_in "$T" "| 4,096 | 97.00% | 99.10% |  |"
expect_in "$T" "| 8,192 |  | 98.80% |  |"
expect_in "$T" "| lars | 4,096 | 99.10% | 99.30% (7) | 4 | 12 | 110 | \`--optimizer lars\` |"
expect_in "$T" "| sgd | 4,096 | 97.00% | 97.00% (3) | not reached | 0.4096 | 110 |"
expect_in "$T" "| lamb | 8,192 |  | 97.50% (6) | not reached in 6 |"
expect_in "$T" "| lars | 8,192 | 98.80% | 98.80% (10) | not reached |"
expect_in "$T" "CPU: Test CPU 9000, 2 cores."
expect_in "$T" "1.50 to 2.25"
if grep -q "99.90%" "$T"; then fail "a partial record counted"; fi
if [[ $plots == 1 ]]; then
  for p in curves_sgd curves_lars curves_lamb curves_b4096 curves_b8192 final_vs_batch; do
    [[ $(head -c 4 "$WORK/t/plots/$p.png" | tail -c 3) == PNG ]] || fail "plots/$p.png is not a PNG"
  done
  [[ ! -e $WORK/t/plots/curves_b1024.png ]] || fail "batches below 4096 get no comparison plot"
fi
# a name the table cannot place, and a broken record, are refused
cp "$R/lars-b4096.jsonl" "$R/odd.jsonl"
$py "$S/large_batch_table.py" table "$R" -o "$WORK/t" --no-plots 2> "$WORK/err" && fail "odd name accepted"
expect_in "$WORK/err" "odd: table runs are named OPTIMIZER-bBATCH"
rm "$R/odd.jsonl"; echo '{"epoch":1,' >> "$R/lars-b8192.jsonl"
$py "$S/large_batch_table.py" table "$R" -o "$WORK/t" --no-plots 2> "$WORK/err" && fail "broken record accepted"
expect_in "$WORK/err" "lars-b8192.jsonl:11: not JSON"

# search table: every candidate in the order started, stopped and incomplete ones marked
Q=$WORK/q/runs; mkdir -p "$Q"
curve "$Q/b-lr6.jsonl" 4096 0.9 0.95 0.97 0.98 0.985 0.99 0.99 0.991 0.991 0.992
echo "# 2024-01-01T00:00:02Z start; load: x load average: 3.00, 1, 1" > "$Q/b-lr6.log"
echo "--optimizer lars --lr 6" > "$Q/b-lr6.args"
curve "$Q/a-lr48.jsonl" 8192 0.1 0.1 0.1
echo "# 2024-01-01T00:00:01Z start" > "$Q/a-lr48.log"
echo "test accuracy 0.1 after epoch 3 < 0.5" > "$Q/a-lr48.aborted"
curve "$Q/c-lr3.jsonl" 4096 0.9 0.95
echo "# 2024-01-01T00:00:03Z start" > "$Q/c-lr3.log"
$py "$S/large_batch_table.py" search "$Q" -o "$WORK/q"
M=$WORK/q/search.md
cat "$M"
expect_in "$M" "| 1 | a-lr48 | 8,192 |  |  |  | 10.00% (1) | not reached in 3 | stopped: test accuracy 0.1 after epoch 3 < 0.5 |"
expect_in "$M" "| 2 | b-lr6 | 4,096 | \`--optimizer lars --lr 6\` |  | 99.20% | 99.20% (10) | 6 | complete |"
expect_in "$M" "| 3 | c-lr3 | 4,096 |"
expect_in "$M" "| incomplete (2 epochs) |"

# the runner on synthetic data: global 32 with passes of at most 16 = --accumulate 2
"$TOOLS/make_dataset" synth "$WORK/train" 256 5 2 > /dev/null
"$TOOLS/make_dataset" synth "$WORK/test.h5" 64 6 > /dev/null
run() {
  EPOCHS=2 BATCHES="32" MAX_PASS=16 DPTRAIN=$DPTRAIN \
    EXTRA_ARGS="--train $WORK/train --test $WORK/test.h5" "$S/large_batch.sh" table "$WORK/lb" "$@"
}
[[ $plots == 1 ]] || { echo "large_batch table: ok (runner and plots skipped: no gnuplot)"; exit 0; }
run > "$WORK/lb.out"
expect_in "$WORK/lb/runs/lars-b32.args" "--optimizer lars (global batch 32 = --batch 16 --accumulate 2)"
expect_in "$WORK/lb/runs/lars-b32.log" "passes"
expect_in "$WORK/lb/runs/lars-b32.log" "# cpu:"
[[ $(grep -c '"partial":false' "$WORK/lb/runs/lamb-b32.jsonl") == 2 ]] || fail "lamb-b32: not 2 epochs"
grep -q '"global_batch":32' "$WORK/lb/runs/sgd-b32.jsonl" || fail "sgd-b32: global batch is not 32"
expect_in "$WORK/lb/table.md" "| 32 |"
run > "$WORK/lb2.out" # finished runs are kept
expect_in "$WORK/lb2.out" "large_batch: lars-b32 done before, kept"
exec 8< "$WORK/lb/runs"; flock -n 8 # as a runner still at work would hold it
run > "$WORK/lb3.out" 2>&1 && fail "a second runner in the same directory was not refused"
expect_in "$WORK/lb3.out" "another large_batch.sh is running in $WORK/lb"
exec 8<&-

# the search stops a candidate below ABORT_BELOW after epoch 3 and goes on with the next;
# the runner looks every 2 s, and 100 epochs of this data took about that long on 2 ranks
# (2026-12-05), so a candidate that is not stopped runs for 3,000 (about a minute)
printf 'x 32 --optimizer lars\ny 16 --optimizer sgd\n' > "$WORK/cands"
EPOCHS=3000 ABORT_BELOW=1.01 CANDIDATES=$WORK/cands DPTRAIN=$DPTRAIN \
  EXTRA_ARGS="--train $WORK/train --test $WORK/test.h5" "$S/large_batch.sh" search "$WORK/s" \
  > "$WORK/s.out" 2>&1 || { cat "$WORK/s.out"; fail "search runner failed"; }
for c in x y; do
  expect_in "$WORK/s/runs/$c.aborted" "after epoch 3 < 1.01"
  n=$(grep -c '"partial":false' "$WORK/s/runs/$c.jsonl")
  (( n >= 3 && n < 3000 )) || fail "$c: $n epochs, expected to be stopped soon after epoch 3"
  expect_in "$WORK/s/search.md" "| $c |"
done
expect_in "$WORK/s/search.md" "| stopped: test accuracy"
echo "large_batch table: ok"
