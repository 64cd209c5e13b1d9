#!/usr/bin/env bash
# scaling.sh: ranks against threads on this machine, and PyTorch DDP beside them. Trains
# the reference model on the prepared MNIST (data/mnist) for STEPS steps, global batch 100,
# without evaluation, alternating the configurations ROUNDS times; prints medians.
#   bench/scaling.sh [ROUNDS (default 3)] [STEPS (default 300)] [MODEL (default reference)]
# Configurations: 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (the gradient
# sum through shared memory, the default on one node), the same with --reduction mpi (one
# MPI_Allreduce), PyTorch DDP (gloo) 2 processes x 1 thread. Also reports the peak
# resident memory per rank.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
steps=${2:-300}
model=${3:-reference}
py=${DP_PYTHON:-/usr/bin/python3}
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/torch-env.sh"
source "$repo/bench/quiet.sh"
torch_at_its_best
quiet_begin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo"
[[ -d data/mnist/train ]] || { echo "fetch the data first: datasets/fetch_mnist.sh" >&2; exit 1; }

run() { # RANKS THREADS [REDUCTION] -> "images/s rss_mib"
  rm -f "$tmp/m.jsonl"
  mpirun -n "$1" --bind-to none build/dptrain --model "$model" --threads "$2" --steps "$steps" \
    --test none --no-progress --quiet --metrics "$tmp/m.jsonl" --reduction "${3:-auto}"
  sed -E 's/.*"images_per_sec":([0-9.]+).*"max_rss_mib":([0-9.]+).*/\1 \2/' "$tmp/m.jsonl" | tail -1
}
declare -A ips rss ratio
configs=("1 1" "1 2" "2 1" "2 1 mpi")
for ((r = 0; r < rounds; r++)); do
  for c in "${configs[@]}"; do
    read -r v m <<< "$(run $c)"
    ips[$c]+="$v "; rss[$c]=$m
    [[ $c == "1 1" ]] && round_base=$v
    ratio[$c]+="$(echo "$v / $round_base" | bc -l) " # against this round's 1 x 1
  done
  ddp=$("$py" bench/torch_ddp.py --procs 2 --model "$model" --steps 40 | sed -E 's/.* ([0-9]+) images\/s.*/\1/')
  ips[ddp]+="$ddp "
done
base=$(echo ${ips["1 1"]} | tr ' ' '\n' | median)
printf "%-50s %12s %10s %12s %14s\n" configuration images/s "vs 1x1" "per round" "MiB per rank"
for c in "${configs[@]}"; do
  read -r n t how <<< "$c"
  v=$(echo ${ips[$c]} | tr ' ' '\n' | median)
  pr=$(echo ${ratio[$c]} | tr ' ' '\n' | median)
  printf "%-50s %12.0f %10.2f %12.2f %14s\n" "dptrain $n rank(s) x $t thread(s)${how:+ --reduction $how}" "$v" "$(echo "$v / $base" | bc -l)" "$pr" "${rss[$c]}"
done
v=$(echo ${ips[ddp]} | tr ' ' '\n' | median)
printf "%-50s %12.0f %10.2f %12s %14s\n" "pytorch DDP 2 procs x 1 thread" "$v" "$(echo "$v / $base" | bc -l)" "-" "-"
echo "(model $model, global batch 100, $steps steps, medians of $rounds rounds; per round: the median"
echo " of each round's ratio to that round's 1 x 1, run just before it, which a machine whose"
echo " speed drifts over minutes moves less; dptrain reads MNIST, PyTorch preloaded batches)"
# the spread of the dptrain configuration that moved most (PyTorch DDP's runs move on their own)
worst=0
for c in "${configs[@]}"; do
  # shellcheck disable=SC2086
  worst=$(printf "%s\n" "$worst" "$(spread_percent ${ips[$c]})" | sort -n | tail -1)
done
quiet_end "$worst"
