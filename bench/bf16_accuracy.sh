#!/usr/bin/env bash
# bf16_accuracy.sh: test accuracy after the default training (reference model, 5 epochs,
# MNIST) in fp32 and in --precision bf16, seed by seed, side by side; prints each run and
# the mean difference bf16 - fp32 in points. The bits do not depend on the rank count, so
# RANKS only sets how fast it goes.
#
#   bench/bf16_accuracy.sh [SEEDS (default "1 2 3")] [RANKS (default 2)] [dptrain options...]
set -euo pipefail
seeds=${1:-1 2 3}
ranks=${2:-2}
shift $(($# < 2 ? $# : 2))
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/scripts/mpi-env.sh"
source "$repo/bench/quiet.sh" # last_epoch
mpi_oversubscribe_if_needed "$ranks"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "bf16_accuracy: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
acc() { # acc SEED PRECISION [OPTIONS...]: final test accuracy in percent
  local seed=$1 prec=$2
  shift 2
  mpirun -n "$ranks" "$repo/build/dptrain" --train "$repo/data/mnist/train" \
    --test "$repo/data/mnist/test.h5" --no-progress --seed "$seed" --precision "$prec" \
    --threads 1 --metrics "$work/$seed-$prec.jsonl" "$@" > "$work/$seed-$prec.log"
  awk '{ printf "%.2f\n", 100 * $1 }' <<< "$(last_epoch "$work/$seed-$prec.jsonl" test_accuracy)"
}
sum=0 n=0
for s in $seeds; do
  a=$(acc "$s" fp32 "$@") b=$(acc "$s" bf16 "$@")
  d=$(python3 -c "print('%+.2f' % ($b - $a))")
  echo "seed $s: fp32 $a%  bf16 $b%  difference $d points"
  sum=$(python3 -c "print($sum + $b - $a)") n=$((n + 1))
done
echo "mean difference bf16 - fp32 over $n seeds: $(python3 -c "print('%+.3f' % ($sum / $n))") points"
