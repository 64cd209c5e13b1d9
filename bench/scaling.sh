#!/usr/bin/env bash
# scaling.sh: ranks against threads on this machine, and PyTorch DDP beside them. Trains
# the reference model on the prepared MNIST (data/mnist) for STEPS steps, global batch 100,
# without evaluation, alternating the configurations ROUNDS times; prints medians.
#   bench/scaling.sh [ROUNDS (default 3)] [STEPS (default 300)] [MODEL (default reference)]
# Configurations: 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (the gradient
# sum through shared memory, the default on one node; --balance auto, which balances
# there), the same with --balance off (the files' split: what balancing gains), the same
# with --reduction mpi (one MPI_Allreduce), PyTorch DDP (gloo) 2 processes x 1 thread,
# each on the same two CPUs,
# and 1 x 1 on each of them (below). Also reports the peak resident memory per rank, and
# for 2 ranks the slower rank's own speed over the faster's (the run's balance record,
# median over the rounds): whether the two CPUs ran alike during those runs.
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
bench_need_mnist

# The runs use two CPUs, the first two this shell may use (bench/quiet.sh: bench_cpus),
# pinned with taskset: 1 x 1 on each of them in turn, the others on both. The CPUs of a
# virtual machine need not be equally fast (on the AMD Zen 5 of docs/performance.md one
# trained 1 x 1 at 6,600 images/s and the other at 8,300), and 2 ranks step together, at the
# pace of the slower: so the table gives each CPU's 1 x 1, compares the others with their
# mean, and each configuration of two CPUs, round by round, with the slower of the round's
# two (2.00: perfect scaling on these CPUs; which CPU is slow changes within minutes).
# Not pinned with BENCH_PIN=0, without taskset, or on one CPU.
mapfile -t cpus < <(bench_cpus)
if (( ${#cpus[@]} >= 2 )) && [[ ${BENCH_PIN:-1} != 0 ]] && command -v taskset > /dev/null; then
  configs=("${cpus[0]} 1 1" "${cpus[1]} 1 1")
  both="${cpus[0]},${cpus[1]}"
else
  configs=("- 1 1")
  both="-"
fi
configs+=("$both 1 2" "$both 2 1" "$both 2 1 auto off" "$both 2 1 mpi")
pin_both=()
[[ $both == - ]] || pin_both=(taskset -c "$both")

run() { # CPUS RANKS THREADS [REDUCTION [BALANCE]] -> "images/s rss_mib slowest" (CPUS:
         # taskset's list, or -; slowest: the slowest rank, or on 1 rank thread, or -)
  local pin=()
  [[ $1 == - ]] || pin=(taskset -c "$1")
  rm -f "$tmp/m.jsonl"
  "${pin[@]}" mpirun -n "$2" --bind-to none build/dptrain --model "$model" --threads "$3" \
    --steps "$steps" --test none --no-progress --quiet --metrics "$tmp/m.jsonl" \
    --reduction "${4:-auto}" --balance "${5:-auto}"
  local slow
  slow=$(slowest_rank "$tmp/m.jsonl")
  [[ $slow == - ]] && slow=$(slowest_thread "$tmp/m.jsonl")
  echo "$(last_epoch "$tmp/m.jsonl" images_per_sec max_rss_mib) $slow"
}
ones() { # the values of the 1 x 1 configurations in the associative array named $1
  local -n vals=$1
  local c n t
  for c in "${configs[@]}"; do
    read -r _ n t _ <<< "$c"
    if [[ $n$t == 11 ]]; then echo "${vals[$c]}"; fi
  done
}
declare -A ips rss ratio slower slowest
for ((r = 0; r < rounds; r++)); do
  declare -A got=()
  for c in "${configs[@]}"; do
    read -r v m sr <<< "$(run $c)"
    ips[$c]+="$v "; rss[$c]=$m; got[$c]=$v
    [[ $sr == - ]] || slowest[$c]+="$sr "
  done
  # against this round's 1 x 1 runs, one a CPU: their mean, and the slower
  read -r round_base round_slow <<< "$(ones got |
    awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1 } END { print s / NR, lo }')"
  for c in "${configs[@]}"; do
    ratio[$c]+="$(echo "${got[$c]} / $round_base" | bc -l) "
    slower[$c]+="$(echo "${got[$c]} / $round_slow" | bc -l) "
  done
  unset got
  ddp=$("${pin_both[@]}" "$py" bench/torch_ddp.py --procs 2 --model "$model" --steps 40 \
        | sed -E 's/.* ([0-9]+) images\/s.*/\1/')
  ips[ddp]+="$ddp "
done
# 1 x 1: the mean over the CPUs of each one's median
declare -A med
for c in "${configs[@]}"; do med[$c]=$(echo ${ips[$c]} | tr ' ' '\n' | median); done
base=$(ones med | awk '{ s += $1 } END { print s / NR }')
printf "%-60s %9s %7s %10s %14s %13s %13s\n" configuration images/s "vs 1x1" "per round" \
  "vs slower 1x1" "MiB per rank" "slowest"
for c in "${configs[@]}"; do
  read -r on n t how bal <<< "$c"
  [[ $how == auto ]] && how=""
  where=""; [[ $on == - ]] || where=" on CPU $on"
  [[ $on == *,* ]] && where=" on CPUs $on"
  v=${med[$c]}
  pr=$(echo ${ratio[$c]} | tr ' ' '\n' | median)
  vs_slow="-"
  [[ $on == *,* ]] && vs_slow=$(printf "%.2f" "$(echo ${slower[$c]} | tr ' ' '\n' | median)")
  sr="-"
  [[ -n ${slowest[$c]:-} ]] && sr=$(echo ${slowest[$c]} | tr ' ' '\n' | median)
  printf "%-60s %9.0f %7.2f %10.2f %14s %13s %13s\n" \
    "dptrain $n rank(s) x $t thread(s)${how:+ --reduction $how}${bal:+ --balance $bal}$where" \
    "$v" \
    "$(echo "$v / $base" | bc -l)" "$pr" "$vs_slow" "${rss[$c]}" "$sr"
done
v=$(echo ${ips[ddp]} | tr ' ' '\n' | median)
printf "%-60s %9.0f %7.2f %10s %14s %13s %13s\n" "pytorch DDP 2 procs x 1 thread" "$v" \
  "$(echo "$v / $base" | bc -l)" "-" "-" "-" "-"
echo "(model $model, global batch 100, $steps steps, medians of $rounds rounds; vs 1x1: against"
echo " the mean of the 1 x 1 runs' medians, one a CPU; per round: the median of each round's"
echo " ratio to that round's 1 x 1 mean, which a machine whose speed drifts over minutes moves"
echo " less; vs slower 1x1: a configuration of two CPUs against the slower of that round's"
echo " 1 x 1 runs, the median over the rounds, 2.00 for perfect scaling on them; slowest:"
echo " the slower rank's own speed over the faster's in the run, 1.00 for CPUs running alike;"
echo " on 1 rank the smaller thread share over the larger at the end (their speeds' ratio"
echo " once the shares follow them; 1.00 also where they stayed within 5% of even);"
echo " dptrain reads MNIST, PyTorch preloaded batches)"
# the spread of the dptrain configuration that moved most (PyTorch DDP's runs move on their own)
worst=0
for c in "${configs[@]}"; do
  # shellcheck disable=SC2086
  worst=$(printf "%s\n" "$worst" "$(spread_percent ${ips[$c]})" | sort -n | tail -1)
done
quiet_end "$worst"
