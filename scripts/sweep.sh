#!/usr/bin/env bash
# sweep.sh: a scaling sweep on this machine with mpirun, from the configuration the Slurm
# sweep uses (jobs/sweep.conf), then the CSV, the plots and the report. One command:
#   scripts/sweep.sh [strong|weak|both (default both)] [OUTDIR (default results/sweep-local)]
# e.g. SWEEP_RANKS="1 2 4 8" SWEEP_STEPS=200 scripts/sweep.sh strong results/s8
# Writes OUTDIR/runs/KIND-rR-tT.jsonl (+ .log), OUTDIR/sweep.csv, OUTDIR/plots/*.png and
# OUTDIR/report.md. Binding: each rank gets T cores (mpirun --map-by slot:PE=T --bind-to
# core) when ranks x threads fit the cores; beyond that nothing is pinned (the runs are then
# oversubscribed, as the report says).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-both}; out=${2:-$repo/results/sweep-local}
case $kind in strong|weak|both) ;; *) echo "sweep: KIND must be strong, weak or both, got '$kind'" >&2; exit 2 ;; esac
source "$repo/scripts/mpi-env.sh"
source "$repo/jobs/sweep.conf"
export DPTRAIN_REPO=$repo DPTRAIN_LAUNCHER=mpirun
source "$repo/jobs/launch.sh"
[[ -x $DPTRAIN ]] || { echo "sweep: build dptrain first (scripts/setup.sh)" >&2; exit 1; }
cd "$repo"
mkdir -p "$out/runs"
cores=$(nproc)
while read -r k r t b; do
  name="$k-r$r-t$t"
  DPTRAIN_BIND=cores
  if (( r * t > cores )); then DPTRAIN_BIND=none; fi
  mpi_oversubscribe_if_needed "$r"
  export DPTRAIN_BIND
  rm -f "$out/runs/$name.jsonl"
  echo "sweep: $name (global batch $b, bind $DPTRAIN_BIND)"
  # shellcheck disable=SC2086
  DP_RANKS=$r DP_THREADS=$t dp_launch --model "$SWEEP_MODEL" --batch "$b" --steps "$SWEEP_STEPS" \
    --metrics "$out/runs/$name.jsonl" --log-every "$SWEEP_LOG_EVERY" --no-progress $SWEEP_ARGS < /dev/null > "$out/runs/$name.log" 2>&1 \
    || { tail -5 "$out/runs/$name.log" >&2; echo "sweep: $name failed" >&2; exit 1; }
done < <(sweep_configs "$kind")
"$repo/scripts/report.sh" "$out"
