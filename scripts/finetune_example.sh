#!/usr/bin/env bash
# finetune_example.sh: the README's fine-tuning example on MNIST. Pretrain on the digits
# 0-4, then adapt to a small labelled subset of the digits 5-9 with the classifier head
# re-initialised (--reinit fc2) and the convolutions frozen (--freeze conv1,conv2), and
# compare with the same net trained from scratch on the same subset; both evaluated with
# dptrain-eval on every 5-9 digit of the MNIST test set.
#   scripts/finetune_example.sh [OUT_DIR (default finetune-example)]
# Sizes and lengths come from the environment (defaults: the full example):
#   RANKS=2 PRE_LIMIT=all PRE_EPOCHS=2 FT_LIMIT=500 FT_EPOCHS=20 TEST_LIMIT=all
#   MNIST_RAW=data/mnist/raw BUILD=build MPIEXEC=mpirun
#   REUSE_PRETRAINED=1 keeps OUT_DIR/pretrained.h5 from an earlier run
# The last line it prints: "finetune-example: fine-tuned A% scratch B% (N images of 5-9)".
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "${1:-finetune-example}")
RANKS=${RANKS:-2} PRE_EPOCHS=${PRE_EPOCHS:-2} FT_LIMIT=${FT_LIMIT:-500} FT_EPOCHS=${FT_EPOCHS:-20}
raw=$(realpath "${MNIST_RAW:-$repo/data/mnist/raw}")
build=$(realpath "${BUILD:-$repo/build}")
limit() { [[ "${1:-all}" == all ]] || echo "--limit $1"; }
source "$repo/scripts/mpi-env.sh"
mpi_oversubscribe_if_needed "$RANKS"
run() { "${MPIEXEC:-mpirun}" -n "$RANKS" "$@"; }
mkdir -p "$out" && cd "$out"
rm -rf pre04 ft59.h5 test04.h5 test59.h5

convert() { # convert IMAGES LABELS OUT SHARDS CLASSES LIMIT
  "$build/dptrain-data" convert --images "$raw/$1" --labels "$raw/$2" --out "$3" --shards "$4" \
    --classes "$5" $(limit "$6") > /dev/null
}
convert train-images-idx3-ubyte train-labels-idx1-ubyte pre04 "$RANKS" 0-4 "${PRE_LIMIT:-all}"
convert train-images-idx3-ubyte train-labels-idx1-ubyte ft59.h5 1 5-9 "$FT_LIMIT"
convert t10k-images-idx3-ubyte t10k-labels-idx1-ubyte test04.h5 1 0-4 "${TEST_LIMIT:-all}"
convert t10k-images-idx3-ubyte t10k-labels-idx1-ubyte test59.h5 1 5-9 "${TEST_LIMIT:-all}"

common=(--no-progress --threads 1)
if [[ "${REUSE_PRETRAINED:-0}" == 1 && -f pretrained.h5 ]]; then
  echo "== reusing $out/pretrained.h5"
else
  echo "== pretrain on digits 0-4"
  run "$build/dptrain" "${common[@]}" --train pre04 --test test04.h5 --epochs "$PRE_EPOCHS" \
    --save pretrained.h5 | tee pretrain.log
fi
# A small set: batch 50 and more epochs; the same settings for both runs.
ft=(--train ft59.h5 --test test59.h5 --batch 50 --epochs "$FT_EPOCHS")
echo "== fine-tune on $FT_LIMIT digits 5-9: fc2 re-initialised, conv1 and conv2 frozen"
run "$build/dptrain" "${common[@]}" "${ft[@]}" --init-from pretrained.h5 --reinit fc2 \
  --freeze conv1,conv2 --save finetuned.h5 | tee finetune.log
echo "== from scratch on the same digits"
run "$build/dptrain" "${common[@]}" "${ft[@]}" --save scratch.h5 | tee scratch.log
for w in finetuned scratch; do
  run "$build/dptrain-eval" --weights $w.h5 --data test59.h5 --predictions $w.csv > $w.eval
done
acc() { sed -nE 's/^loss .* accuracy ([0-9.]+)%.*/\1/p' "$1"; }
n=$(sed -nE 's/^eval: .*: ([0-9]+) samples.*/\1/p' finetuned.eval)
cat finetuned.eval
echo "finetune-example: fine-tuned $(acc finetuned.eval)% scratch $(acc scratch.eval)% ($n test images of 5-9, trained on $FT_LIMIT)"
