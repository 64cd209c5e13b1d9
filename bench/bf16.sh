#!/usr/bin/env bash
# bf16.sh: --precision bf16 against fp32 (and PyTorch at its best, fp32), side by side.
#   bench/bf16.sh [ROUNDS (default 5)] > bf16-results.txt
# 1. One core's FMA peak and VDPBF16PS peak (build/bench/bench_layers prints both).
# 2. The training step (batch 100, one rank) of the reference and nopool models at 1 and 2
#    threads: dptrain fp32 (direct convolutions, as bf16's) and bf16, PyTorch fp32 and
#    bf16 (torch.autocast) alternate;
#    medians of ROUNDS; ratios bf16/fp32 and against PyTorch in the same precision.
# 3. Per layer in bf16, reference model, 1 thread.
# 4. Whole training runs on MNIST, 2 ranks x 1 thread, 300 steps, fp32 (the default,
#    Winograd), fp32 with direct convolutions (as bf16's) and bf16 alternating (images/s
#    from --metrics), medians and ratios.
# Needs the build, MNIST and python3-torch; refuses on a CPU without AVX512-BF16.
# Accuracy after 5 epochs: bench/bf16_accuracy.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
py=${DP_PYTHON:-/usr/bin/python3}
cd "$repo"
source scripts/mpi-env.sh
mpi_oversubscribe_if_needed 2
source "$repo/bench/torch-env.sh"
source "$repo/bench/quiet.sh" # median
torch_at_its_best
bl=build/bench/bench_layers
$bl --precision bf16 --step-only --reps 1 > /dev/null || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ips() { sed -E 's/.* ([0-9]+) images\/s.*/\1/'; }

echo "== machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u '+%F %H:%M') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "== load before: $(uptime | sed 's/.*load/load/')"
echo "== 1. peaks, one core"
$bl --precision bf16 --reps 3 | grep -E "^kernels|^precision" | sed -E 's/.*(FMA peak [0-9.]+ GFLOP\/s).*/\1/; s/.*(bf16 dot-product peak [0-9.]+ GFLOP\/s).*/\1/'

echo
echo "== 2. training step, batch 100, images/s: medians of $rounds alternating runs"
printf "%-10s %7s %9s %9s %8s %8s %10s %13s %13s\n" model threads torch-fp32 torch-bf16 fp32 bf16 \
  bf16/fp32 fp32/torch bf16/torch-bf16
for m in reference nopool; do
  for t in 1 2; do
    steps=30; [[ $m == nopool ]] && steps=8
    t_=() tb=() f=() b=()
    for ((r = 0; r < rounds; r++)); do
      read -ra pin <<< "$(bench_pin "$r" "$t")" # the round's runs on the same CPUs (quiet.sh)
      t_+=("$("${pin[@]}" "$py" bench/torch_step.py --model "$m" --threads "$t" --steps "$steps" | ips)")
      tb+=("$("${pin[@]}" "$py" bench/torch_step.py --model "$m" --threads "$t" --steps "$steps" --bf16 | ips)")
      f+=("$(OMP_PROC_BIND=false "${pin[@]}" $bl --model "$m" --threads "$t" --reps "$steps" --step-only | ips)")
      b+=("$(OMP_PROC_BIND=false "${pin[@]}" $bl --model "$m" --threads "$t" --reps "$steps" --step-only --precision bf16 | ips)")
    done
    mt=$(printf "%s\n" "${t_[@]}" | median); mf=$(printf "%s\n" "${f[@]}" | median)
    mb=$(printf "%s\n" "${b[@]}" | median); mtb=$(printf "%s\n" "${tb[@]}" | median)
    printf "%-10s %7d %9.0f %9.0f %8.0f %8.0f %10.2f %13.2f %13.2f\n" "$m" "$t" "$mt" "$mtb" \
      "$mf" "$mb" "$(echo "$mb / $mf" | bc -l)" "$(echo "$mf / $mt" | bc -l)" \
      "$(echo "$mb / $mtb" | bc -l)"
  done
done

echo
echo "== 3. per layer, bf16, reference, 1 thread"
$bl --precision bf16 --reps 20

echo
echo "== 4. whole runs on MNIST, 2 ranks x 1 thread, 300 steps"
run() { # run PRECISION ALGORITHM: images/s
  rm -f "$tmp/m.jsonl"
  mpirun -n 2 build/dptrain --train data/mnist/train --test none --steps 300 --threads 1 \
    --no-progress --quiet --precision "$1" --conv-algorithm "$2" --metrics "$tmp/m.jsonl" \
    > /dev/null
  last_epoch "$tmp/m.jsonl" images_per_sec
}
w=() f=() b=()
for ((r = 0; r < rounds; r++)); do
  w+=("$(run fp32 winograd)"); f+=("$(run fp32 direct)"); b+=("$(run bf16 direct)")
  echo "run $((r + 1)): fp32 ${w[-1]}, fp32 direct ${f[-1]}, bf16 ${b[-1]} images/s"
done
mw=$(printf "%s\n" "${w[@]}" | median)
mf=$(printf "%s\n" "${f[@]}" | median); mb=$(printf "%s\n" "${b[@]}" | median)
printf "medians: fp32 %.0f, fp32 direct %.0f, bf16 %.0f images/s; " "$mw" "$mf" "$mb"
printf "bf16/fp32 %.2f, bf16/fp32 direct %.2f\n" "$(echo "$mb / $mw" | bc -l)" \
  "$(echo "$mb / $mf" | bc -l)"
echo "== load after: $(uptime | sed 's/.*load/load/')"
