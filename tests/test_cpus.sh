#!/usr/bin/env bash
# bench/cpus.sh, one round: a row for every CPU this test may use, each with a step time,
# a speed in (0, 1] with the fastest at 1.00, and an FMA peak; the quiet check; a bad
# ROUNDS named (exit 2).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
export BENCH_LAYERS=$DP_BINARY_DIR/bench/bench_layers QUIET_SETTLE=0
cpus_sh=$DP_SOURCE_DIR/bench/cpus.sh
bash "$cpus_sh" 1 > ok.log 2>&1 || { cat ok.log; fail "cpus.sh failed"; }
cat ok.log
n=$(nproc)
rows=$(awk '$1 ~ /^[0-9]+$/ && NF == 5' ok.log)
[[ $(grep -c . <<< "$rows") == "$n" ]] || fail "not one row for each of the $n CPUs"
awk '{ if ($2 <= 0 || $3 <= 0 || $3 > 1 || $4 <= 0 || $5 <= 0 || $5 > 1) exit 1 }' <<< "$rows" ||
  fail "a figure out of range: $rows"
awk '$3 == "1.00"' <<< "$rows" | grep -q . || fail "no CPU at speed 1.00"
expect_in ok.log "quiet check:"
expect_in ok.log "reference, batch 100, 1 thread, 1 rounds"
rc=0
bash "$cpus_sh" 0 > bad.log 2>&1 || rc=$?
[[ $rc == 2 ]] || { cat bad.log; fail "ROUNDS 0: exit $rc, expected 2"; }
expect_in bad.log "cpus.sh: ROUNDS: expected a whole number >= 1, got '0'"
echo "cpus: ok"
