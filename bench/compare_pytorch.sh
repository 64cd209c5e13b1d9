#!/usr/bin/env bash
# compare_pytorch.sh: dptrain's training step against PyTorch's (Debian python3-torch at its
# best: torch.set_num_threads(N) and what bench/torch-env.sh sets), same model, batch 100,
# same threads, alternating run by run; prints medians, the ratio, the spread of each side's
# runs (100 * (max / min - 1)) and bench/quiet.sh's verdict, on dptrain's spread (PyTorch's
# short runs move by 20% or more on their own on a quiet machine: its first steps).
#   bench/compare_pytorch.sh [ROUNDS (default 5)] [MODELS (default "reference nopool")] [THREADS (default "1 2")] [CONV (default winograd)]
# CONV: dptrain's --conv-algorithm, one or more ("winograd direct": a row for each, their
# runs alternating with PyTorch's in the same rounds; a row other than dptrain's default,
# winograd, names its algorithm). Below as many threads as CPUs, the
# runs of a round share the same CPUs and the rounds move along them (bench/quiet.sh:
# bench_pin): this machine's CPUs need not be equally fast. So beside the ratio of the
# medians it prints the median of the rounds' ratios, and the spreads are those among the
# runs on the same CPUs.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
models=${2:-reference nopool}
threads=${3:-1 2}
convs=${4:-winograd}
ours="$repo/build/bench/bench_layers"
py=${DP_PYTHON:-/usr/bin/python3}
[[ -x "$ours" ]] || { echo "build first: cmake --build build (needs $ours)" >&2; exit 1; }
source "$repo/bench/torch-env.sh"
source "$repo/bench/quiet.sh"
torch_at_its_best
quiet_begin
worst=0
ips() { sed -E 's/.* ([0-9]+) images\/s.*/\1/'; }
printf "%-20s %7s %12s %12s %7s %10s %15s\n" model threads dptrain pytorch ratio \
  "per round" "spread (d / p)"
for m in $models; do
  for t in $threads; do
    steps=30; [[ $m == nopool ]] && steps=10
    declare -A a=()
    b=()
    for ((r = 0; r < rounds; r++)); do
      read -ra pin <<< "$(bench_pin "$r" "$t")"
      for c in $convs; do
        a[$c]+=" $(OMP_PROC_BIND=false "${pin[@]}" "$ours" --model "$m" --threads "$t" --reps "$steps" \
                   --step-only --conv-algorithm "$c" | ips)"
      done
      b+=("$("${pin[@]}" "$py" "$repo/bench/torch_step.py" --model "$m" --threads "$t" --steps "$steps" | ips)")
    done
    # spreads among the runs on the same CPUs (quiet.sh: spread_pinned)
    period=$(bench_pin_period "$t")
    mb=$(printf "%s\n" "${b[@]}" | median); sb=$(spread_pinned "$period" "${b[@]}")
    for c in $convs; do
      read -ra runs <<< "${a[$c]}"
      ma=$(printf "%s\n" "${runs[@]}" | median); sa=$(spread_pinned "$period" "${runs[@]}")
      # each round's ratio, its two runs on the same CPUs: the median of those
      pr=$(paste <(printf "%s\n" "${runs[@]}") <(printf "%s\n" "${b[@]}") |
           awk '{ print $1 / $2 }' | median)
      worst=$(printf "%s\n" "$worst" "$sa" | sort -n | tail -1)
      label=$m; [[ $c == winograd ]] || label="$m ($c)"
      printf "%-20s %7d %12.0f %12.0f %7.2f %10.2f %7.1f%% / %.1f%%\n" "$label" "$t" "$ma" \
        "$mb" "$(echo "$ma / $mb" | bc -l)" "$pr" "$sa" "$sb"
    done
    unset a
  done
done
echo "(images/s, medians of $rounds alternating runs; per round: the median of each round's"
echo " ratio; spreads among the runs on the same CPUs; batch 100; $(nproc) cores:" \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2))"
for t in $threads; do echo "($t thread(s): $(bench_pin_note "$t"))"; done
quiet_end "$worst"
