#!/usr/bin/env bash
# Every sample exactly once per epoch, whatever the file sizes: two files of 20 and 380
# samples on 2 ranks (rank 0 holds the small file and part of the large one), batch 100,
# 3 epochs; the test build logs which samples each rank trained on in each step. Also
# every batch draws from both files in proportion (5 and 95 of 100).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth two 400 5 20,380 > /dev/null
DPTRAIN_TEST_SAMPLE_LOG=$WORK/used mpi 2 "$DPTRAIN_TESTHOOKS" --train two --test none \
  --epochs 3 --batch 100 --threads 1 --no-progress > run.log 2>&1 || { cat run.log; fail "training failed"; }
expect_in run.log "4 steps per epoch"
cat used.0 used.1 > used
"${DP_PYTHON:-python3}" - used <<'PY' || fail "samples not used exactly once per epoch"
import collections, sys
uses = collections.Counter()
per_step = collections.defaultdict(lambda: [0, 0])
for line in open(sys.argv[1]):
    step, sample = map(int, line.split())
    uses[(step // 4, sample)] += 1
    per_step[step][sample >= 20] += 1
bad = [(k, n) for k, n in uses.items() if n != 1]
assert not bad, f"used more than once: {bad[:5]}"
for epoch in range(3):
    missing = [i for i in range(400) if uses[(epoch, i)] != 1]
    assert not missing, f"epoch {epoch}: samples not used: {missing[:10]}"
assert sorted(per_step) == list(range(12)), sorted(per_step)
assert all(v == [5, 95] for v in per_step.values()), dict(per_step)
print(f"ok: 400 samples x 3 epochs, each exactly once per epoch; every batch 5 + 95")
PY
echo "1 passed, 0 failed"
