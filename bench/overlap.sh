#!/usr/bin/env bash
# overlap.sh: step time and the share of it spent waiting for the gradient reduction,
# with and without overlapping it with backward, at 2 ranks and at 8 ranks (more ranks than
# cores are oversubscribed). Reference and no-pool models, global batch 100.
#   bench/overlap.sh [STEPS (default 200)] [MODELS (default "reference nopool")]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=${1:-200}
models=${2:-reference nopool}
source "$repo/scripts/mpi-env.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
printf "%-10s %6s %-11s %12s %12s %10s\n" model ranks reduction "step ms" "comm ms" "comm share"
for m in $models; do
  for ranks in 2 8; do
    mpi_oversubscribe_if_needed "$ranks"
    for mode in overlap no-overlap; do
      rm -f "$tmp/m.jsonl"
      mpirun -n "$ranks" build/dptrain --model "$m" --threads 1 --steps "$steps" --test none \
        --no-progress --quiet --"$mode" --metrics "$tmp/m.jsonl"
      read -r secs comm < <(sed -E 's/.*"seconds":([0-9.]+),"comm_seconds":([0-9.]+).*/\1 \2/' "$tmp/m.jsonl" | tail -1)
      awk -v m="$m" -v r="$ranks" -v o="$mode" -v s="$secs" -v c="$comm" -v n="$steps" \
        'BEGIN { printf "%-10s %6d %-11s %12.2f %12.2f %9.1f%%\n", m, r, o, 1e3 * s / n, 1e3 * c / n, 100 * c / s }'
    done
  done
done
echo "(comm = time a rank waits for its gradient reduction after backward, mean over ranks)"
