#!/usr/bin/env bash
# End to end on real MNIST: convert a 12,000-image subset into 2 shards, train one epoch
# on 2 ranks, and require the stated accuracy on 2,000 test images; check the metrics
# record and that saved weights load back bit for bit.
source "$(dirname "$0")/lib.sh"
raw="${DPTRAIN_MNIST_RAW:-$DP_SOURCE_DIR/data/mnist/raw}"
if [[ ! -f "$raw/train-images-idx3-ubyte" ]]; then
  skip_test "MNIST is not in $raw (run datasets/fetch_mnist.sh)"
fi
cd "$WORK"
"$DPTRAIN_DATA" convert --images "$raw/train-images-idx3-ubyte" --labels "$raw/train-labels-idx1-ubyte" \
  --out train --shards 2 --limit 12000 > /dev/null
"$DPTRAIN_DATA" convert --images "$raw/t10k-images-idx3-ubyte" --labels "$raw/t10k-labels-idx1-ubyte" \
  --out test.h5 --shards 1 --limit 2000 > /dev/null

mpi 2 "$DPTRAIN" --train train --test test.h5 --epochs 1 --batch 50 --threads 1 --no-progress \
  --balance on \
  --metrics m.jsonl --save w.h5 > run.log 2>&1 || { cat run.log; fail "training failed"; }
cat run.log
expect_in run.log "2 ranks x 1 thread"
expect_in run.log "ranks hold: 0: files 0-1 (12000), 1: files 0-1 (12000)"
expect_in run.log "240 steps per epoch"
# the host record (CPU, cores, load as the run started), one epoch record, and the
# balance record last: each rank's samples (all 240 x 50 of them) and own speed
[[ $(wc -l < m.jsonl) -eq 3 && $(grep -c '"type":"epoch"' m.jsonl) -eq 1 ]] \
  || fail "expected a host record, one epoch record and a balance record, got: $(cat m.jsonl)"
tail -1 m.jsonl | "${DP_PYTHON:-python3}" -c '
import json, sys
r = json.load(sys.stdin)
assert r["type"] == "balance" and r["ranks"] == 2 and sum(r["samples"]) == 12000, r
assert all(s > 0 for s in r["samples_per_sec"]), r' || fail "the balance record: $(tail -1 m.jsonl)"
grep '"type":"epoch"' m.jsonl > epoch.jsonl
for key in epoch step train_loss test_loss test_accuracy images_per_sec seconds comm_seconds; do
  grep -q "\"$key\":" epoch.jsonl || fail "metrics record lacks $key: $(cat m.jsonl)"
done
grep -q '"step":240,' epoch.jsonl || fail "metrics record has the wrong step: $(cat m.jsonl)"
acc=$(sed -E 's/.*"test_accuracy":([0-9.]+).*/\1/' epoch.jsonl)
echo "test accuracy after one epoch on 12000 images: $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.93) }' || fail "test accuracy $acc below the stated 0.93"

# saved weights load back unchanged (zero steps, then save again)
"$DPTRAIN" --train train --test none --init-from w.h5 --steps 0 --no-progress --save w2.h5 > /dev/null
"$TOOLS/compare_weights" w.h5 w2.h5 --exact > /dev/null || fail "weights changed in a load/save round trip"
echo "1 passed, 0 failed"
