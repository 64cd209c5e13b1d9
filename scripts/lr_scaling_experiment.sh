#!/usr/bin/env bash
# lr_scaling_experiment.sh: test accuracy after a fixed number of epochs at global batch
# 100, 800 and 3200, with and without --lr-scaling linear (the report's large-batch table).
#   scripts/lr_scaling_experiment.sh [OUTDIR (default results/lr-scaling)] [RANKS (2)] [EPOCHS (2)]
# Writes OUTDIR/runs/b<B>-<variant>.jsonl and OUTDIR/lr_scaling.csv.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/results/lr-scaling}; ranks=${2:-2}; epochs=${3:-2}
source "$repo/scripts/mpi-env.sh"
mpi_oversubscribe_if_needed "$ranks"
mkdir -p "$out/runs"
cd "$repo"
# variant name -> extra options. The warm-up of "linear-warmup" is Goyal's gradual warm-up
# stretched to a quarter of the run (their 5 of 90 epochs would be a few steps here).
declare -A variants=([none]="" [linear]="--lr-scaling linear"
                     [linear-warmup]="--lr-scaling linear --warmup-epochs 0.5")
for b in 100 800 3200; do
  for v in none linear linear-warmup; do
    [[ $b == 100 && $v != none ]] && continue   # at the base batch the rule changes nothing
    f="$out/runs/b$b-$v.jsonl"; rm -f "$f"
    # shellcheck disable=SC2086
    mpirun -n "$ranks" build/dptrain --epochs "$epochs" --batch "$b" ${variants[$v]} \
      --metrics "$f" --no-progress --quiet || echo "lr_scaling: batch $b $v failed (status $?)" >&2
  done
done
"$repo/scripts/collect.py" "$out/runs" -o "$out/lr_scaling.csv"
