#!/usr/bin/env bash
# A short training run under valgrind memcheck, 2 ranks: evaluation, clipping, the
# watchdog thread, --save, --metrics with step records and --trace included. Errors in Open MPI, HDF5 and libgomp
# are suppressed (tests/valgrind.supp); any other error, or memory of ours definitely
# lost, fails the test. Needs a build without -march=native (valgrind does not know
# every AVX-512 instruction): scripts/test.sh --valgrind makes one in build-valgrind.
source "$(dirname "$0")/lib.sh"
command -v valgrind > /dev/null || skip_test "valgrind is not installed"
cd "$WORK"
"$TOOLS/make_dataset" synth train 200 1 2 > /dev/null
"$TOOLS/make_dataset" synth test.h5 40 2 > /dev/null
rc=0
mpi 2 valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --num-callers=40 --track-origins=yes \
  --suppressions="$DP_SOURCE_DIR/tests/valgrind.supp" --log-file=vg.%p.log \
  "$DPTRAIN" --train train --test test.h5 --model "conv(4,3) relu maxpool(2) fc(classes)" \
  --steps 3 --batch 20 --threads 2 --no-progress --save w.h5 --metrics m.jsonl \
  --clip-grad-norm 1 --watchdog 60 --log-every 2 --trace t.json --trace-steps 2:3 \
  > run.log 2>&1 || rc=$?
if [[ $rc -ne 0 ]] || grep -q "^==[0-9]*== [A-Z]" vg.*.log; then
  cat run.log vg.*.log
  fail "valgrind memcheck: exit $rc (99: errors in our code)"
fi
expect_in run.log "saved weights to w.h5"
[[ $(grep -c '"type":"epoch"' m.jsonl) -eq 1 ]] || fail "no metrics record"
[[ $(grep -c '"type":"step"' m.jsonl) -eq 2 ]] || fail "expected step records at steps 2 and 3"
grep -q '"name":"step 3"' t.json || fail "no trace of step 3"
echo "valgrind memcheck: clean on 2 ranks ($(cat vg.*.log | wc -l) lines of log)"
