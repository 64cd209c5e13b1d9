#!/usr/bin/env bash
# --balance for a rank's threads (threads.h): their shares of every loop follow their
# speeds, and no bit changes. The test build makes thread 1 count its time as 8x what it is
# (DPTRAIN_TEST_SLOW_THREAD) so that the shares move on every machine, and forces uneven
# splits that move after every timed region (DPTRAIN_TEST_THREAD_SPLIT ...:rotate), so that
# a layer's backward sees another split than its forward: on 1 and 2 ranks, 2 and 3
# threads, the reference model and nopool. All give bitwise the weights of 1 thread.
# --balance off keeps even shares; auto is off where the threads take turns on the cores.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 2400 5 8 > /dev/null # 8 shards of 300
if [[ ${DP_TEST_SANITIZED:-0} == 1 ]]; then steps=24; else steps=40; fi
common=(--train train --test none --no-progress --steps "$steps")

run() { # run NAME P ARGS...: train with the test build, keep the weights in NAME.h5
  local name=$1 P=$2; shift 2
  mpi "$P" "$DPTRAIN_TESTHOOKS" "${common[@]}" "$@" --save "$name.h5" > "$name.log" 2>&1 \
    || { cat "$name.log"; fail "$name ($P ranks) failed"; }
  expect_in "$name.log" "replicas identical on $P rank"
}
same() { # same A B [compare_weights options]: bitwise equal weights
  "$TOOLS/compare_weights" "$1.h5" "$2.h5" --exact "${@:3}" > /dev/null \
    || fail "$2 differs from $1"
  echo "ok: $2 = $1, bitwise"
}
thread0() { # thread0 LOG: thread 0's percentage at the end, from the threads' line
  sed -nE "s/^balance: each rank's threads' shares.* at the end: 0: ([0-9.]+)%.*/\1/p" "$1" \
    | grep . || { cat "$1"; fail "$1: no share for thread 0"; }
}

run one 1 --threads 1
grep -q "^balance" one.log && fail "1 rank x 1 thread: a balance line: $(grep '^balance' one.log)"

# 1 rank x 2 threads, thread 1 counted 8x slower: thread 0 takes more (the clamp: at most
# 75%), and the end says so, as the metrics file's balance record does
DPTRAIN_TEST_SLOW_THREAD=1:8 run slow 1 --threads 2 --balance on --metrics slow.jsonl
same one slow
expect_in slow.log "balance: each rank's threads take shares of its samples and rows"
share=$(thread0 slow.log)
awk -v s="$share" 'BEGIN { exit !(s >= 60 && s <= 75.05) }' \
  || fail "thread 0's share ${share}% with thread 1 8x slower: not in 60-75%"
echo "ok: thread 1 counted 8x slower, thread 0 took ${share}%"
"${DP_PYTHON:-python3}" - slow.jsonl "$share" <<'PY' || fail "the balance record's threads"
import json, sys
rec = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert rec["type"] == "balance" and rec["ranks"] == 1 and rec["every"] == 0, rec
s = rec["thread_shares"]
assert len(s) == 2 and abs(sum(s) - 1) < 1e-3 and abs(100 * s[0] - float(sys.argv[2])) < 0.06, rec
assert len(rec["thread_least"]) == 1 and abs(rec["thread_least"][0] - 2 * s[1]) < 1e-3, rec
print(f"ok: the record's thread_shares {s}, thread_least {rec['thread_least']}")
PY

# 2 ranks x 2 threads, rank 1's thread 1 as slow (every rank's thread 1: the hook is the
# job's): the line names the least share on any rank
DPTRAIN_TEST_SLOW_THREAD=1:8 run slow2 2 --threads 2 --balance on
same one slow2
least=$(sed -nE 's/.*; the least share on any rank ([0-9.]+)x an even one \(rank [01]\)$/\1/p' \
  slow2.log)
[[ -n $least ]] || { cat slow2.log; fail "2 ranks: no least share"; }
awk -v l="$least" 'BEGIN { exit !(l >= 0.5 && l <= 0.8) }' \
  || fail "the least share ${least}x with thread 1 8x slower: not in 0.5-0.8"
echo "ok: 2 ranks, the least share ${least}x"

# off: even shares, no threads' line
DPTRAIN_TEST_SLOW_THREAD=1:8 run off 1 --threads 2 --balance off
same one off
grep -q "threads" <(grep '^balance' off.log) && fail "--balance off: $(grep '^balance' off.log)"

# uneven splits that move after every timed region: every loop of the step, the groups'
# exact sums and the sum across ranks see them
DPTRAIN_TEST_THREAD_SPLIT=0.2,0.8:rotate run rot2 1 --threads 2
same one rot2
DPTRAIN_TEST_THREAD_SPLIT=0.7,0.1,0.2:rotate run rot3 1 --threads 3 --balance on
same one rot3
DPTRAIN_TEST_THREAD_SPLIT=0.35,0.65:rotate run rot22 2 --threads 2 --balance on
same one rot22
common=(--train train --test none --no-progress --steps 3 --model nopool)
run nopool 1 --threads 1
DPTRAIN_TEST_THREAD_SPLIT=0.25,0.75:rotate run nopool-rot 1 --threads 2
same nopool nopool-rot --model nopool --input 1,28,28 --classes 10

# auto: off where the threads take turns on the cores
common=(--train train --test none --no-progress --steps 2)
run turns 1 --threads $(($(nproc) + 1))
expect_in turns.log "balance: off: the threads take turns on a node's cores"
grep -q "threads' shares" turns.log && fail "shares reported for threads that take turns"
echo "ok: auto, $(($(nproc) + 1)) threads on $(nproc) cores: off"
