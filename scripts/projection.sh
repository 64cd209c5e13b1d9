#!/usr/bin/env bash
# projection.sh: measure here what the projection needs, then project the time to 99% test
# accuracy against node count, 1 to 1,024 (scripts/project.py explains the model):
#   - dptrain's gradient reduction (allreduce_bench --as-dptrain: int64, in place, non-
#     blocking) on 2..BENCH_RANKS ranks, and the int64 additions alone (--reduce-local);
#   - the compute time per step of both models at batch 16 and 100 (1 rank x all cores);
#   - the epochs to 99% at each global batch: read from the runs (EPOCHS_FROM,
#     default results/time-to-accuracy (batch 100), results/large-batch and its search/).
#   scripts/projection.sh [OUTDIR (default results/projection)]
# Environment: BENCH_RANKS (default "2 4"), BENCH_TIME (seconds per size and repetition,
# default 0.05), COMPUTE_STEPS (30), EPOCHS_FROM (space-separated directories or files),
# BATCH_PER_NODE (default 100,16). About 2 minutes on 2 cores.
# Writes OUTDIR/allreduce.csv, reduce_local.csv, compute.csv, compute-*.jsonl,
# projection.{csv,md}, *.png; projection.md starts with the CPU, cores and load.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "${1:-$repo/results/projection}")
source "$repo/scripts/mpi-env.sh"
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
bench=$repo/build/bench/allreduce_bench
dptrain=${DPTRAIN:-$repo/build/dptrain}
[[ -x $bench && -x $dptrain ]] || { echo "projection: build first (cmake --build build)" >&2; exit 1; }
mkdir -p "$out"
cd "$repo"
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
cores=$(nproc)
load0=$(cut -d' ' -f1 /proc/loadavg)
# the sizes: both models' buckets (netmodel.buckets) and a spread for the fit
sizes=$($py -c "import sys; sys.path.insert(0, 'scripts'); import netmodel
s = {1024, 16384, 262144, 4 << 20} | {b for m in netmodel.LAYERS for b in netmodel.buckets(m)}
print(','.join(str(x) for x in sorted(s)))")
header=""
for p in ${BENCH_RANKS:-2 4}; do
  mpi_oversubscribe_if_needed "$p"
  echo "projection: dptrain's reduction on $p ranks" >&2
  mpirun -n "$p" --bind-to none "$bench" --as-dptrain --sizes "$sizes" \
    --time-per-size "${BENCH_TIME:-0.05}" $header < /dev/null
  header=--no-header
done > "$out/allreduce.csv"
mpirun -n 1 --bind-to none "$bench" --reduce-local --sizes "$sizes" --time-per-size "${BENCH_TIME:-0.05}" \
  < /dev/null > "$out/reduce_local.csv"
args=()
echo "model,batch,compute_ms" > "$out/compute.csv"
for m in reference nopool; do
  spec=""
  for b in 16 100; do
    echo "projection: compute time per step of $m at batch $b (1 rank x $cores threads)" >&2
    rm -f "$out/compute-$m-b$b.jsonl"
    mpirun -n 1 --bind-to none "$dptrain" --model "$m" --threads "$cores" --batch "$b" \
      --steps "${COMPUTE_STEPS:-30}" --test none --quiet --no-progress \
      --metrics "$out/compute-$m-b$b.jsonl" < /dev/null
    ms=$($py "$repo/scripts/collect.py" "$out/compute-$m-b$b.jsonl" | $py -c \
         "import csv,sys; print(next(csv.DictReader(sys.stdin))['compute_ms'])")
    echo "$m,$b,$ms" >> "$out/compute.csv"
    spec+="${spec:+,}$b:$ms"
  done
  args+=(--compute "$m=$spec")
done
load1=$(cut -d' ' -f1 /proc/loadavg)
for d in ${EPOCHS_FROM:-$repo/results/time-to-accuracy $repo/results/large-batch $repo/results/large-batch/search}; do
  [[ -e $d ]] && args+=(--epochs-from "$d")
done
$py "$repo/scripts/project.py" --bench "$out/allreduce.csv" --reduce-local "$out/reduce_local.csv" \
  "${args[@]}" --cores "$cores" --batch-per-node "${BATCH_PER_NODE:-100,16}" \
  --measured-on "$cpu, $cores cores, 1-minute load $load0 at the start and $load1 after the compute runs ($(date -u +%F))" \
  -o "$out"
