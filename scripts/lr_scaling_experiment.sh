#!/usr/bin/env bash
# lr_scaling_experiment.sh: test accuracy after a fixed number of epochs at global batch
# 100, 800 and 3200, with and without --lr-scaling linear (the report's large-batch table).
#   scripts/lr_scaling_experiment.sh [OUTDIR (default results/lr-scaling)] [RANKS (2)] [EPOCHS (2)]
# LR (default 0.05) is the base learning rate, meant for batch 100 (--lr-base-batch);
# VARIANTS (default "none linear linear-warmup") picks the runs at batch 800 and 3200.
# Writes OUTDIR/runs/b<B>-<variant>.jsonl and OUTDIR/lr_scaling.csv (with peak_lr).
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
lr=${LR:-0.05}
for b in 100 800 3200; do
  for v in ${VARIANTS:-none linear linear-warmup}; do
    [[ $b == 100 && $v != none ]] && continue   # at the base batch the rule changes nothing
    f="$out/runs/b$b-$v.jsonl"; rm -f "$f"
    # shellcheck disable=SC2086
    mpirun -n "$ranks" build/dptrain --epochs "$epochs" --batch "$b" --lr "$lr" ${variants[$v]} \
      --metrics "$f" --no-progress --quiet < /dev/null || echo "lr_scaling: batch $b $v failed (status $?)" >&2
  done
done
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
$py "$repo/scripts/collect.py" "$out/runs" -o "$out/lr_scaling.csv"
# the peak learning rate each run used
$py - "$out/lr_scaling.csv" "$lr" <<'PY'
import csv, sys
path, lr = sys.argv[1], float(sys.argv[2])
rows = list(csv.DictReader(open(path)))
for r in rows:
    r["peak_lr"] = f"{lr * int(r['global_batch']) / 100 if 'linear' in r['run'] else lr:g}"
with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, list(rows[0].keys()))
    w.writeheader(); w.writerows(rows)
PY
