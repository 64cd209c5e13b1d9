#!/usr/bin/env bash
# submit_sweep.sh: submit a scaling sweep from jobs/sweep.conf as one job array.
#   jobs/submit_sweep.sh [strong|weak|both] [OUTDIR] [extra sbatch options...]
# e.g. SWEEP_RANKS="1 2 4 8 16 32" SWEEP_RANKS_PER_NODE=8 jobs/submit_sweep.sh strong results/s1 -p cpu
# Each task gets the allocation of the largest configuration. When that spans several
# nodes (SWEEP_RANKS_PER_NODE ranks per node), --nodes grows to fit. Afterwards:
#   scripts/report.sh OUTDIR
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/jobs/sweep.conf"
kind=${1:-both}; out=${2:-results/sweep-$(date +%Y%m%d-%H%M%S)}
shift $(( $# < 2 ? $# : 2 ))
case $kind in strong|weak|both) ;; *) echo "submit_sweep: KIND must be strong, weak or both, got '$kind'" >&2; exit 2 ;; esac
n=$(sweep_configs "$kind" | wc -l)
ranks=$(sweep_max RANKS); threads=$(sweep_max THREADS)
per_node=${SWEEP_RANKS_PER_NODE:-$ranks}
nodes=$(( (ranks + per_node - 1) / per_node ))
cd "$repo"
SWEEP_KIND=$kind SWEEP_OUT=$out sbatch --parsable --array="0-$((n - 1))" --nodes="$nodes" \
  --ntasks="$ranks" --cpus-per-task="$threads" "$@" jobs/sweep.sbatch
