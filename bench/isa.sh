#!/usr/bin/env bash
# isa.sh: the instruction-set paths on this machine, every figure in one command.
#   bench/isa.sh [ROUNDS (default 3)] > isa-results.txt
#   ISA_CPU_TIME=1 bench/isa.sh ...   on a shared machine: every step timed by the process's
#                                      CPU time (dptrain and PyTorch alike), not the wall clock
# 1. Each path's FMA peak (one core, 12 chains) and the models' products on their shapes,
#    beside OpenBLAS (build/bench/bench_kernels).
# 2. Per path: the training step (batch 100) of the reference and nopool models at 1 and 2
#    threads, images/s and the fraction of the path's peak, beside PyTorch at its best
#    (torch.set_num_threads(N), OPENBLAS_NUM_THREADS=1, glibc's fixed mmap threshold);
#    dptrain and PyTorch alternate, medians of ROUNDS (the scalar path: one round).
# 3. Per layer, the widest path (build/bench/bench_layers).
# 4. This portable build against a native one (-DDPTRAIN_NATIVE=ON, made in build-native):
#    speed, and the weights after 40 steps on MNIST under every path and both builds.
# 5. 2 ranks x 1 thread against 1 x 1 (dptrain on MNIST, bench/scaling.sh).
# Needs the build (scripts/setup.sh), MNIST (datasets/fetch_mnist.sh), python3-torch and
# libopenblas-dev. Takes ~15 minutes on 2 cores, most of it the scalar path.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
py=${DP_PYTHON:-/usr/bin/python3}
cd "$repo"
source scripts/mpi-env.sh
source "$repo/bench/torch-env.sh"
torch_at_its_best
bl=build/bench/bench_layers
[[ -x $bl && -x build/bench/bench_kernels ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ct=(); [[ ${ISA_CPU_TIME:-0} == 1 ]] && ct=(--cpu-time)
ips() { sed -E 's/.* ([0-9]+) images\/s.*/\1/'; }
gfs() { sed -E 's/.* ([0-9.]+) GFLOP\/s.*/\1/'; }

echo "== machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u +%F)"
echo "== load before: $(uptime | sed 's/.*load/load/')"
source "$repo/bench/quiet.sh"
quiet_begin
echo "== 1. FMA peaks and products, one core (build/bench/bench_kernels)"
build/bench/bench_kernels --reps 5 "${ct[@]}" | tee "$tmp/kernels.txt"
mapfile -t paths < <(head -1 "$tmp/kernels.txt" | tr -s ' ' '\n' | grep -E '^(avx512|avx2|scalar)$')
declare -A peak
read -r -a peaks <<< "$(sed -n 2p "$tmp/kernels.txt" | sed 's/.*chains//')"
for i in "${!paths[@]}"; do peak[${paths[$i]}]=${peaks[$i]}; done

echo
echo "== 2. training step, batch 100, images/s (fraction of the path's peak x threads); PyTorch at its best"
declare -A res
for m in reference nopool; do
  for t in 1 2; do
    steps=20; [[ $m == nopool ]] && steps=8
    for ((r = 0; r < rounds; r++)); do
      read -ra pin <<< "$(bench_pin "$r" "$t")" # the round's runs on the same CPUs (quiet.sh)
      res[$m,$t,torch]+="$("${pin[@]}" "$py" bench/torch_step.py --model "$m" --threads "$t" --steps "$steps" "${ct[@]}" | ips) "
      for p in "${paths[@]}"; do
        [[ $p == scalar && $r -gt 0 ]] && continue
        n=$steps; [[ $p == scalar ]] && n=2
        out=$(OMP_PROC_BIND=false "${pin[@]}" $bl --isa "$p" --model "$m" --threads "$t" --reps "$n" --step-only "${ct[@]}")
        res[$m,$t,$p]+="$(echo "$out" | ips) "
        res[$m,$t,$p,gf]+="$(echo "$out" | gfs) "
      done
    done
  done
done
printf "%-10s %7s %10s" model threads pytorch
for p in "${paths[@]}"; do printf " %24s" "$p (peak, vs pytorch)"; done
printf "\n"
for m in reference nopool; do
  for t in 1 2; do
    tv=$(echo ${res[$m,$t,torch]} | tr ' ' '\n' | median)
    printf "%-10s %7d %10.0f" "$m" "$t" "$tv"
    for p in "${paths[@]}"; do
      v=$(echo ${res[$m,$t,$p]} | tr ' ' '\n' | median)
      g=$(echo ${res[$m,$t,$p,gf]} | tr ' ' '\n' | median)
      frac=- # the scalar path: no peak to divide by (bench_kernels' note)
      [[ $p == scalar ]] || frac=$(printf "%.0f%%" "$(echo "100 * $g / (${peak[$p]} * $t)" | bc -l)")
      printf " %24s" "$(printf "%.0f (%s, %.2fx)" "$v" "$frac" "$(echo "$v / $tv" | bc -l)")"
    done
    printf "\n"
  done
done
echo "(medians of $rounds alternating runs, the scalar path 1 run of 2 steps; peaks from section 1${ct:+; CPU time: images per CPU-second, at 2 threads against 1: how well the threads share the work})"

echo
echo "== 3. per layer, ${paths[0]}, reference and nopool at 1 thread (build/bench/bench_layers)"
$bl --isa "${paths[0]}" --model reference --threads 1 --reps 20 "${ct[@]}"
$bl --isa "${paths[0]}" --model nopool --threads 1 --reps 6 "${ct[@]}"

echo
echo "== 4. portable (-march=x86-64) against native (-DDPTRAIN_NATIVE=ON) build, ${paths[0]}"
cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DDPTRAIN_NATIVE=ON > /dev/null
cmake --build build-native -j "$(nproc)" --target dptrain bench_layers compare_weights > /dev/null
for m in reference nopool; do
  a=() b=()
  for ((r = 0; r < rounds; r++)); do
    a+=("$($bl --model "$m" --reps 10 --step-only "${ct[@]}" | ips)")
    b+=("$(build-native/bench/bench_layers --model "$m" --reps 10 --step-only "${ct[@]}" | ips)")
  done
  ma=$(printf "%s\n" "${a[@]}" | median); mb=$(printf "%s\n" "${b[@]}" | median)
  printf "%-10s portable %6.0f images/s, native %6.0f images/s, portable/native %.3f\n" "$m" "$ma" "$mb" "$(echo "$ma / $mb" | bc -l)"
done
D=(--train data/mnist/train --test none --steps 40 --no-progress --quiet)
ref=""
for b in build build-native; do
  for p in "${paths[@]}"; do
    DPTRAIN_ISA=$p mpirun -n 2 "$b/dptrain" "${D[@]}" --save "$tmp/w-$b-$p.h5" > /dev/null
    if [[ -z $ref ]]; then ref="$tmp/w-$b-$p.h5"; continue; fi
    if build/tests/compare_weights "$ref" "$tmp/w-$b-$p.h5" --exact > /dev/null; then
      echo "weights after 40 steps, $b under $p: the same bits as build under ${paths[0]}"
    else
      echo "weights after 40 steps, $b under $p: DIFFER from build under ${paths[0]}"
    fi
  done
done

echo
echo "== 5. ranks against threads (bench/scaling.sh $rounds 300)"
bench/scaling.sh "$rounds" 300
echo "== load after: $(uptime | sed 's/.*load/load/')"
echo "== over the whole of isa.sh (each section's runs spread as printed above):"
quiet_end
