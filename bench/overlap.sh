#!/usr/bin/env bash
# overlap.sh: step time and the share of it spent waiting for the gradient reduction, with
# the reduction overlapping backward (--overlap: MPI_Iallreduce bucket by bucket, the
# default across nodes) and after it (--no-overlap: through shared memory, the default
# within a node; with REDUCTION=mpi one blocking MPI_Allreduce), at 2 ranks and at 8 ranks
# (more ranks than cores are oversubscribed).
# Reference and no-pool models, global batch 100; the two modes alternate ROUNDS times and
# the medians are printed, with the step time's ratio after/overlapped.
#   bench/overlap.sh [STEPS (default 200)] [MODELS (default "reference nopool")] [ROUNDS (default 3)]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=${1:-200}
models=${2:-reference nopool}
rounds=${3:-3}
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh" # median
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
printf "%-10s %6s %-11s %12s %12s %10s %12s\n" model ranks reduction "step ms" "comm ms" \
  "comm share" "step ratio"
for m in $models; do
  for ranks in 2 8; do
    mpi_oversubscribe_if_needed "$ranks"
    declare -A step=() comm=()
    for ((r = 0; r < rounds; r++)); do
      for mode in overlap no-overlap; do
        rm -f "$tmp/m.jsonl"
        mpirun -n "$ranks" build/dptrain --model "$m" --threads 1 --steps "$steps" --test none \
          --no-progress --quiet --"$mode" --reduction "${REDUCTION:-auto}" --metrics "$tmp/m.jsonl"
        read -r secs c < <(last_epoch "$tmp/m.jsonl" seconds comm_seconds)
        step[$mode]+="$(echo "1000 * $secs / $steps" | bc -l) "
        comm[$mode]+="$(echo "1000 * $c / $steps" | bc -l) "
      done
    done
    base=$(echo ${step[overlap]} | tr ' ' '\n' | median)
    for mode in overlap no-overlap; do
      s=$(echo ${step[$mode]} | tr ' ' '\n' | median)
      c=$(echo ${comm[$mode]} | tr ' ' '\n' | median)
      awk -v m="$m" -v r="$ranks" -v o="$mode" -v s="$s" -v c="$c" -v b="$base" \
        'BEGIN { printf "%-10s %6d %-11s %12.2f %12.2f %9.1f%% %12.2f\n", m, r, o, s, c, 100 * c / s, s / b }'
    done
    unset step comm
  done
done
echo "(medians of $rounds alternating runs of $steps steps; comm = time a rank waits for its gradient"
echo " reduction after backward, mean over ranks; step ratio: the mode's step time / overlapped)"
