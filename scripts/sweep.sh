#!/usr/bin/env bash
# sweep.sh: a scaling sweep on this machine with mpirun, from the configuration the Slurm
# sweep uses (jobs/sweep.conf), then the CSV, the plots and the report. One command:
#   scripts/sweep.sh [--force] [strong|weak|both (default both)] [OUTDIR (default results/sweep-local)]
# e.g. SWEEP_RANKS="1 2 4 8" SWEEP_STEPS=200 scripts/sweep.sh strong results/s8
#      SWEEP_EPOCHS=4 scripts/sweep.sh strong     (whole epochs: time to 99% accuracy)
# Writes OUTDIR/runs/KIND-rR-tT.jsonl (+ .log), OUTDIR/sweep.csv, OUTDIR/plots/*.png and
# OUTDIR/report.md. Binding: each rank gets T cores (mpirun --map-by slot:PE=T --bind-to
# core) when ranks x threads fit the cores; beyond that nothing is pinned (the runs are then
# oversubscribed, as the report says).
# Honest figures: before each run the sweep waits (at most SWEEP_SETTLE s, default 120; 0:
# not at all) for the 1-minute load average to fall to 0.5 per core, so that a run does
# not start in the wake of the one before it. Every run records the load as it started
# (its metrics file's host record). The sweep runs in OUTDIR.staging and publishes it as
# OUTDIR (replacing what was there) only when every run started at most 0.5 per core
# (LOAD_PER_CORE), or when forced (--force, or DPTRAIN_FORCE_PUBLISH=1: the report then marks the runs under
# load). Refused: exit status 3, the runs stay in OUTDIR.staging, OUTDIR is untouched.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
force=()
args=()
for a in "$@"; do
  if [[ $a == --force ]]; then force=(--force); else args+=("$a"); fi
done
kind=${args[0]:-both}; out=$(realpath -m "${args[1]:-$repo/results/sweep-local}")
case $kind in strong|weak|both) ;; *) echo "sweep: KIND must be strong, weak or both, got '$kind'" >&2; exit 2 ;; esac
source "$repo/scripts/mpi-env.sh"
source "$repo/jobs/sweep.conf"
export DPTRAIN_REPO=$repo DPTRAIN_LAUNCHER=mpirun
source "$repo/jobs/launch.sh"
[[ -x $DPTRAIN ]] || { echo "sweep: build dptrain first (scripts/setup.sh)" >&2; exit 1; }
cd "$repo"
if [[ -e $out && ! -d $out/runs ]] || [[ $out == "$repo" ]]; then
  echo "sweep: $out is not a sweep directory (no runs/ in it): it would be replaced; name another" >&2
  exit 2
fi
stage=$out.staging
rm -rf "$stage"
mkdir -p "$stage/runs"
cores=$(nproc)

# settle: wait until the 1-minute load average is at most SWEEP_SETTLE_PER_CORE (0.3) per
# core, SWEEP_SETTLE s at most: below the 0.5 of the publishing rule, because the run's own
# start (mpirun and its ranks) raises the load its host record reads a few seconds later
settle() {
  local limit=${SWEEP_SETTLE:-120} t0=$SECONDS load
  while :; do
    read -r load _ < /proc/loadavg
    awk -v l="$load" -v c="$cores" -v t="${SWEEP_SETTLE_PER_CORE:-0.3}" 'BEGIN { exit !(l <= t * c) }' && return 0
    if (( SECONDS - t0 >= limit )); then
      echo "sweep: load average $load after waiting $((SECONDS - t0)) s (more than ${SWEEP_SETTLE_PER_CORE:-0.3} x $cores cores): this run may start under load" >&2
      return 0
    fi
    sleep 5
  done
}

while read -r k r t b; do
  name="$k-r$r-t$t"
  DPTRAIN_BIND=cores
  if (( r * t > cores )); then DPTRAIN_BIND=none; fi
  mpi_oversubscribe_if_needed "$r"
  export DPTRAIN_BIND
  settle
  echo "sweep: $name (global batch $b, bind $DPTRAIN_BIND, load $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086,SC2046
  DP_RANKS=$r DP_THREADS=$t dp_launch --model "$SWEEP_MODEL" --batch "$b" $(sweep_length) \
    --metrics "$stage/runs/$name.jsonl" --log-every "$SWEEP_LOG_EVERY" --no-progress $SWEEP_ARGS < /dev/null > "$stage/runs/$name.log" 2>&1 \
    || { tail -5 "$stage/runs/$name.log" >&2; echo "sweep: $name failed (runs so far: $stage)" >&2; exit 1; }
done < <(sweep_configs "$kind")
rc=0
"$repo/scripts/report.sh" "$stage" "${force[@]}" || rc=$?
if (( rc != 0 )); then
  echo "sweep: not published to $out (report status $rc); the runs are in $stage" >&2
  exit "$rc"
fi
rm -rf "$out"
mv "$stage" "$out"
echo "sweep: published $out"
