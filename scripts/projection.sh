#!/usr/bin/env bash
# projection.sh: measure MPI_Allreduce against message size and rank count here, measure
# the compute time per step of both named models, fit the alpha-beta model and project
# step time and efficiency to 16-1024 nodes (scripts/project.py explains the model).
#   scripts/projection.sh [OUTDIR (default results/projection)] [WEAK_SWEEP_CSV]
# BENCH_RANKS (default "2 4 8") sets the rank counts of the allreduce benchmark.
# Writes OUTDIR/allreduce.csv, OUTDIR/compute.csv, OUTDIR/projection.{csv,md}, OUTDIR/*.png.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/results/projection}; sweep=${2:-$repo/results/sweep-local/sweep.csv}
source "$repo/scripts/mpi-env.sh"
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
bench=$repo/build/bench/allreduce_bench
[[ -x $bench ]] || { echo "projection: build first (cmake --build build)" >&2; exit 1; }
mkdir -p "$out"
cd "$repo"
header=""
for p in ${BENCH_RANKS:-2 4 8}; do
  mpi_oversubscribe_if_needed "$p"
  echo "projection: allreduce on $p ranks" >&2
  mpirun -n "$p" --bind-to none "$bench" $header < /dev/null
  header=--no-header
done > "$out/allreduce.csv"
cores=$(nproc)
args=()
echo "model,compute_ms" > "$out/compute.csv"
for m in reference nopool; do
  echo "projection: compute time per step of $m (1 rank x $cores threads, batch 100)" >&2
  rm -f "$out/compute-$m.jsonl"
  mpirun -n 1 --bind-to none "${DPTRAIN:-build/dptrain}" --model "$m" --threads "$cores" --batch 100 \
    --steps 30 --test none --quiet --no-progress --metrics "$out/compute-$m.jsonl" < /dev/null
  ms=$($py "$repo/scripts/collect.py" "$out/compute-$m.jsonl" | $py -c \
       "import csv,sys; print(next(csv.DictReader(sys.stdin))['compute_ms'])")
  echo "$m,$ms" >> "$out/compute.csv"
  args+=(--compute "$m=$ms")
done
[[ -f $sweep ]] && args+=(--weak-sweep "$sweep")
$py "$repo/scripts/project.py" --bench "$out/allreduce.csv" "${args[@]}" --cores "$cores" -o "$out"
