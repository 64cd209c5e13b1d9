#!/usr/bin/env bash
# large_batch.sh: MNIST test accuracy against epoch at large global batches, for SGD with
# linear lr scaling and warm-up, LARS and LAMB (issue 12; docs/large-batch.md).
#   scripts/large_batch.sh [table|search] [OUTDIR]
#     table  (default): global batch 1024 2048 4096 8192 16384 x sgd lars lamb, 10 epochs,
#            into OUTDIR (default results/large-batch): runs/<opt>-b<batch>.jsonl, table.md,
#            plots/*.png
#     search: the tuning runs behind the defaults of lars and lamb (and sgd's recipe), every
#            candidate listed below, into OUTDIR (default results/large-batch/search)
# Environment: RANKS (2), THREADS (1), EPOCHS (10), BATCHES (the table's global batches),
# MAX_PASS (4096: the most samples one pass takes; a larger global batch is --accumulate N
# passes, bitwise the same training in 1/N of the memory), EXTRA_ARGS (more dptrain options
# for every run, e.g. other data), ONLY (a regular expression: run only the matching names), SKIP_RUNS=1
# (only remake the tables and plots), ABORT_BELOW (search: stop a candidate whose test
# accuracy after epoch 3 is below this fraction, default 0.5: it diverged; 0 never stops),
# CANDIDATES (search: a file of "NAME GLOBAL_BATCH OPTIONS..." lines instead of the list
# below).
# A run whose JSONL already holds EPOCHS epochs (or that the search stopped) is kept, so
# the command can be repeated after an interruption; one runner at a time per OUTDIR.
# The results do not depend on RANKS and THREADS (the gradient sum
# is exact: bitwise the same weights for any launch shape); only the times do.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-table}
case $mode in
  table) out=${2:-$repo/results/large-batch} ;;
  search) out=${2:-$repo/results/large-batch/search} ;;
  *) echo "usage: $0 [table|search] [OUTDIR]" >&2; exit 2 ;;
esac
ranks=${RANKS:-2}; threads=${THREADS:-1}; epochs=${EPOCHS:-10}; max_pass=${MAX_PASS:-4096}
dptrain=${DPTRAIN:-$repo/build/dptrain}
source "$repo/scripts/mpi-env.sh"
mpi_oversubscribe_if_needed "$ranks"
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
mkdir -p "$out/runs"

# SGD's recipe for the table (Goyal et al. 2017): linear scaling from base lr 0.01 per 100
# samples, the base that still trained at batch 3,200 in docs/clusters.md (0.05 diverged
# there), with a 2-epoch warm-up.
SGD_RECIPE="--optimizer sgd --lr-scaling linear --lr 0.01 --lr-base-batch 100 --warmup-epochs 2"

table_runs() { # name global-batch options...
  for b in ${BATCHES:-1024 2048 4096 8192 16384}; do
    echo "sgd-b$b $b $SGD_RECIPE"
    echo "lars-b$b $b --optimizer lars"
    echo "lamb-b$b $b --optimizer lamb"
  done
}

# Every candidate of the search, in the order run; docs/large-batch.md#the-search says what
# each one looked for and what it found. The first ones ran when lars's defaults were
# still trust coefficient 0.001 and warm-up 0.1 epoch: spelt out here, so that a repeated
# search runs the same trainings. SGD's recipe was not searched (its table rows are the
# comparison); LAMB's lr 0.03 at 8,192 and up is the table's own rows.
search_runs() {
  if [[ -n ${CANDIDATES:-} ]]; then cat "$CANDIDATES"; return; fi
  cat <<'EOF'
lars-b4096-provisional 4096 --optimizer lars --lr 3 --trust-coefficient 0.001 --warmup-epochs 0.1
lars-b4096-lr6-w1 4096 --optimizer lars --lr 6 --trust-coefficient 0.001 --warmup-epochs 1
lars-b4096-lr24-w1 4096 --optimizer lars --lr 24 --trust-coefficient 0.001 --warmup-epochs 1
lars-b4096-lr12-w1 4096 --optimizer lars --lr 12 --trust-coefficient 0.001 --warmup-epochs 1
lars-b4096-lr3-tc0.008-w1 4096 --optimizer lars --lr 3 --trust-coefficient 0.008 --warmup-epochs 1
lars-b4096-lr12-w1-adaptbias 4096 --optimizer lars --lr 12 --trust-coefficient 0.001 --no-exclude-bias-from-adaptation --warmup-epochs 1
lamb-b4096-lr0.01-w1 4096 --optimizer lamb --lr 0.01 --warmup-epochs 1
lamb-b4096-lr0.03-w1 4096 --optimizer lamb --lr 0.03 --warmup-epochs 1
lars-b4096-lr3-tc0.004-w1 4096 --optimizer lars --lr 3 --trust-coefficient 0.004 --warmup-epochs 1
lars-b4096-lr3-tc0.016-w1 4096 --optimizer lars --lr 3 --trust-coefficient 0.016 --warmup-epochs 1
lars-b8192-lr3-tc0.008-w1 8192 --optimizer lars --lr 3 --trust-coefficient 0.008 --warmup-epochs 1
lars-b8192-lr3-tc0.016-w1 8192 --optimizer lars --lr 3 --trust-coefficient 0.016 --warmup-epochs 1
lars-b4096-lr6-tc0.008-w1 4096 --optimizer lars --lr 6 --trust-coefficient 0.008 --warmup-epochs 1
lars-b4096-lr1.5-tc0.016-w1 4096 --optimizer lars --lr 1.5 --trust-coefficient 0.016 --warmup-epochs 1
lars-b8192-lr1.5-tc0.016-w2 8192 --optimizer lars --lr 1.5 --trust-coefficient 0.016 --warmup-epochs 2
EOF
}

# completed FILE: the JSONL holds the last epoch's record, or the search stopped the run
completed() {
  [[ -e ${1%.jsonl}.aborted ]] ||
    { [[ -s $1 ]] && grep -q "\"epoch\":$epochs,[^}]*\"partial\":false" "$1"; }
}

# run NAME BATCH OPTIONS...: one training, its metrics in runs/NAME.jsonl, its command line
# in runs/NAME.args, the banner, epoch lines and the load before and after in runs/NAME.log
run_one() {
  local name=$1 batch=$2; shift 2
  local f="$out/runs/$name.jsonl" log="$out/runs/$name.log"
  if completed "$f"; then echo "large_batch: $name done before, kept"; return 0; fi
  local pass=$batch acc=1
  while (( pass > max_pass )); do
    (( pass % 2 == 0 )) || { echo "large_batch: $batch: odd pass size" >&2; return 1; }
    pass=$((pass / 2)); acc=$((acc * 2))
  done
  rm -f "$f" "$out/runs/$name.aborted"
  # shellcheck disable=SC2206
  local args=(--epochs "$epochs" --batch "$pass" --accumulate "$acc" "$@" ${EXTRA_ARGS:-})
  echo "$* (global batch $batch = --batch $pass --accumulate $acc)" > "$out/runs/$name.args"
  {
    echo "# $(date -u +%FT%TZ) start; load: $(uptime)"
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
    echo "# mpirun -n $ranks dptrain --threads $threads ${args[*]}"
  } > "$log"
  echo "large_batch: $name: ${args[*]}"
  # --bind-to none: Open MPI binds each of 1 or 2 ranks to a single core by default,
  # which would put THREADS > 1 threads of a rank on that one core
  mpirun -n "$ranks" --bind-to none "$dptrain" --threads "$threads" "${args[@]}" --metrics "$f" \
    --no-progress < /dev/null >> "$log" 2>&1 &
  local pid=$! status=0
  running=$pid
  if [[ $mode == search ]]; then watch_divergence "$pid" "$f" "$name"; fi
  wait "$pid" || status=$?
  running=
  echo "# $(date -u +%FT%TZ) end (status $status); load: $(uptime)" >> "$log"
  [[ -e $out/runs/$name.aborted ]] && return 0
  (( status == 0 )) || echo "large_batch: $name failed (status $status, see $log)" >&2
}

# watch_divergence PID FILE NAME: stop the candidate whose test accuracy after epoch 3 is
# below ABORT_BELOW (it diverged or learns too slowly to matter), marking it aborted.
watch_divergence() {
  local pid=$1 f=$2 name=$3 below=${ABORT_BELOW:-0.5}
  while kill -0 "$pid" 2> /dev/null; do
    sleep 2
    local a # (the file appears only once dptrain has started)
    a=$(sed -n 's/.*"epoch":3,.*"test_accuracy":\([0-9.]*\).*/\1/p' "$f" 2> /dev/null || true)
    if [[ -n $a ]] && $py -c "import sys; sys.exit(not $a < $below)"; then
      echo "test accuracy $a after epoch 3 < $below" > "$out/runs/$name.aborted"
      kill "$pid" 2> /dev/null || true
      echo "large_batch: $name stopped after epoch 3 (test accuracy $a)"
      return 0
    fi
  done
}

running= # the mpirun at work: stopped with the runner, whatever stops it
trap '[[ -z $running ]] || kill "$running" 2> /dev/null || true' EXIT
trap 'exit 143' TERM INT

main() {
  if [[ ${SKIP_RUNS:-0} != 1 ]]; then
    cd "$repo"
    exec 9< "$out/runs" # one runner per directory: a second would rerun the same runs
    flock -n 9 || { echo "large_batch: another large_batch.sh is running in $out" >&2; return 1; }
    local name batch opts
    while read -r name batch opts; do
      [[ -z $name || ( -n ${ONLY:-} && ! $name =~ $ONLY ) ]] && continue
      # shellcheck disable=SC2086
      run_one "$name" "$batch" $opts
    done < <(if [[ $mode == table ]]; then table_runs; else search_runs; fi)
  fi
  $py "$repo/scripts/large_batch_table.py" "$mode" "$out/runs" -o "$out" --epochs "$epochs"
}
# One line, read whole before it runs: the script may be edited while a long search runs.
main; exit $?
