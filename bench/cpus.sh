#!/usr/bin/env bash
# cpus.sh: is every CPU of this machine as fast as the others? The training step of one
# rank at 1 thread (build/bench/bench_layers --step-only) and one core's FMA peak, pinned on
# each CPU in turn, ROUNDS times; prints per CPU the medians and each against the fastest
# CPU's, then bench/quiet.sh's verdict on the spread of each CPU's own runs.
#   bench/cpus.sh [ROUNDS (default 3)] [MODEL (default reference)]
# A virtual machine's CPUs need not be equally fast: on the 2-core AMD Zen 5 of
# docs/performance.md CPU 0 ran the reference step 30% slower than CPU 1 with the same FMA
# peak (its host core's other work shares the caches, not the FMA units), so that two
# ranks, which step together, ran at the slower one's pace. The comparisons side by side
# pin their runs for this reason (bench/quiet.sh: bench_pin); BENCH_LAYERS names another
# bench_layers (default build/bench/bench_layers).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
model=${2:-reference}
ours=${BENCH_LAYERS:-$repo/build/bench/bench_layers}
[[ -x "$ours" ]] || { echo "build first: cmake --build build (needs $ours)" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] ||
  { echo "cpus.sh: ROUNDS: expected a whole number >= 1, got '$rounds'" >&2; exit 2; }
command -v taskset > /dev/null || { echo "cpus.sh: needs taskset (util-linux)" >&2; exit 1; }
source "$repo/bench/quiet.sh"
mapfile -t cpus < <(bench_cpus)
reps=20; [[ $model == nopool ]] && reps=6
quiet_begin
declare -A step peak
for ((r = 0; r < rounds; r++)); do
  for c in "${cpus[@]}"; do
    s=$(taskset -c "$c" "$ours" --model "$model" --threads 1 --step-only --reps "$reps" |
        sed -nE 's/.*step ([0-9.]+) ms.*/\1/p')
    p=$(taskset -c "$c" "$ours" --model "$model" --threads 1 --layers-only --reps 1 |
        sed -nE 's/.*FMA peak ([0-9.]+) GFLOP.*/\1/p')
    [[ -n $s && -n $p ]] || { echo "cpus.sh: bench_layers printed no figure on CPU $c" >&2; exit 1; }
    step[$c]+="$s "; peak[$c]+="$p "
  done
done
echo "cpus: $(lscpu | sed -n 's/^Model name: *//p'), CPUs ${cpus[*]}, load" \
     "$(cut -d' ' -f1-3 /proc/loadavg); $model, batch 100, 1 thread, $rounds rounds"
declare -A ms gf
for c in "${cpus[@]}"; do
  ms[$c]=$(echo ${step[$c]} | tr ' ' '\n' | median)
  gf[$c]=$(echo ${peak[$c]} | tr ' ' '\n' | median)
done
fastest=$(for c in "${cpus[@]}"; do echo "${ms[$c]}"; done | sort -g | head -1)
top=$(for c in "${cpus[@]}"; do echo "${gf[$c]}"; done | sort -g | tail -1)
printf "%-5s %10s %12s %18s %12s\n" CPU "step ms" "speed" "FMA peak GFLOP/s" "vs highest"
worst=0
for c in "${cpus[@]}"; do
  printf "%-5s %10.2f %12.2f %18.1f %12.2f\n" "$c" "${ms[$c]}" \
    "$(echo "$fastest / ${ms[$c]}" | bc -l)" "${gf[$c]}" "$(echo "${gf[$c]} / $top" | bc -l)"
  # shellcheck disable=SC2086
  worst=$(printf "%s\n" "$worst" "$(spread_percent ${step[$c]})" | sort -n | tail -1)
done
slow=$(for c in "${cpus[@]}"; do echo "${ms[$c]}"; done | sort -g | tail -1)
echo "(medians; speed: the fastest CPU's step time over this CPU's; the slowest CPU is" \
     "$(printf "%.0f" "$(echo "100 * ($slow / $fastest - 1)" | bc -l)")% slower than the fastest)"
quiet_end "$worst"
