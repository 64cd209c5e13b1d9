#!/usr/bin/env bash
# run_all.sh: every benchmark of the README's Performance section, in one go (~10 minutes on
# 2 cores). Build first (scripts/setup.sh) and fetch MNIST (datasets/fetch_mnist.sh); needs
# Debian's python3-torch for the PyTorch side and libopenblas-dev for the SGEMM figures.
#   bench/run_all.sh [ROUNDS (default 5)] > bench-results.txt
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
cd "$repo"
# OpenBLAS (PyTorch's, and bench_layers' own columns) at its best for every script below
source "$repo/bench/torch-env.sh"
torch_at_its_best
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u +%F)"
echo "== is every CPU as fast as the others? (bench/cpus.sh 3)"
bench/cpus.sh 3
echo "== dptrain vs PyTorch, training step, batch 100 (bench/compare_pytorch.sh $rounds)"
bench/compare_pytorch.sh "$rounds"
for m in reference nopool; do
  for t in 1 2; do
    echo "== per layer: build/bench/bench_layers --model $m --threads $t"
    build/bench/bench_layers --model "$m" --threads "$t" --reps $([[ $m == nopool ]] && echo 6 || echo 20)
  done
  echo "== per layer beside PyTorch's (bench/compare_layers.sh $rounds $m 1)"
  bench/compare_layers.sh "$rounds" "$m" 1
done
if (( $(nproc) >= 2 )); then
  echo "== what two cores pay to share data (build/bench/core_pairs): 1 x 2 threads shares, 2 ranks do not"
  build/bench/core_pairs
fi
echo "== ranks vs threads vs PyTorch DDP (bench/scaling.sh 3 300)"
bench/scaling.sh 3 300
echo "== communication overlap (bench/overlap.sh 200)"
bench/overlap.sh 200
