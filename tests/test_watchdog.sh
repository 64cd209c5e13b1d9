#!/usr/bin/env bash
# The watchdog (issue 13 items 4, 5). MPI is initialised MPI_THREAD_FUNNELED, so the
# watchdog thread must never call MPI: under the mpi_thread_check shim, which reports any
# MPI call from another thread than the one that initialised MPI, a rank that falls behind
# and a rank left waiting in the allreduce (the main thread inside MPI) end the job with
# no such call; an MPI that provides less than MPI_THREAD_FUNNELED is refused. The slow
# phases have their own limit (--watchdog-io): a rank stopped (SIGSTOP) in the middle of
# a checkpoint write, and ranks stuck in the evaluation, --save and the metrics write, end
# the job with a message naming the phase, instead of leaving the others in a collective
# forever. Fault injection through dptrain-testhooks (DPTRAIN_TEST_STALL,
# DPTRAIN_TEST_STOP_IN_CHECKPOINT).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
shim="$TOOLS/libmpi_thread_check.so"
[[ -f "$shim" ]] || fail "missing $shim"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
"$TOOLS/make_dataset" synth train 400 1 2 > /dev/null   # 4 steps per epoch at --batch 100
"$TOOLS/make_dataset" synth test.h5 200 2 > /dev/null
# A job that hangs must not hang the test: each run gets BOUND seconds (mpirun start-up and
# a loaded machine included; the watchdog limits below are a few seconds), then the test
# ends it and fails.
BOUND=${DP_WATCHDOG_BOUND:-90}
common=(--train train --test none --batch 100 --threads 1 --no-progress)

# ranks_of PID: the processes below PID (this test's own job, nobody else's)
ranks_of() {
  local k
  for k in $(pgrep -P "$1" || true); do echo "$k"; ranks_of "$k"; done
}
# job LOG ENV... -- ARGS...: 2 ranks of dptrain-testhooks under the shim, at most BOUND
# seconds; sets $rc and $took
job() {
  local log=$1; shift
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  local start=$SECONDS
  ( exec env "${envs[@]}" LD_PRELOAD="$shim" "${MPIEXEC:-mpiexec}" ${MPIEXEC_NUMPROC_FLAG:--n} 2 \
      ${MPIEXEC_PREFLAGS:-} "$DPTRAIN_TESTHOOKS" "$@" ${MPIEXEC_POSTFLAGS:-} > "$log" 2>&1 ) &
  local pid=$!
  while kill -0 "$pid" 2> /dev/null && ((SECONDS - start < BOUND)); do sleep 0.2; done
  if kill -0 "$pid" 2> /dev/null; then
    local k
    for k in $(ranks_of "$pid"); do kill -9 "$k" 2> /dev/null || true; done
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    cat "$log" >&2
    fail "$log: the job was still running after ${BOUND}s"
  fi
  rc=0; wait "$pid" || rc=$?
  took=$((SECONDS - start))
}
# funneled LOG: the shim was there, and saw no MPI call from another thread
funneled() {
  expect_in "$1" "mpi_thread_check: loaded"
  if grep -q "called from a thread other than" "$1"; then cat "$1" >&2; fail "$1: MPI called from the watchdog thread"; fi
}
ended() { # LOG NEEDLE: the job failed, with the watchdog's message
  [[ $rc -ne 0 ]] || { cat "$1"; fail "$1: exit status 0"; }
  expect_in "$1" "$2"
  funneled "$1"
  echo "ok $1: exit $rc in ${took}s: $(grep -m1 -F -- "$2" "$1" | cut -c1-170)"
}

# 1. an MPI without MPI_THREAD_FUNNELED is refused before anything else
job level.log MPI_THREAD_CHECK_PROVIDE=single -- "${common[@]}" --steps 2
[[ $rc -eq 1 ]] || { cat level.log; fail "thread level SINGLE: exit $rc, expected 1"; }
expect_in level.log "MPI provides the thread level MPI_THREAD_SINGLE, dptrain needs MPI_THREAD_FUNNELED"
echo "ok level.log: exit 1: $(grep -m1 -F MPI_THREAD_SINGLE level.log | cut -c1-120)"

# 2. a rank that falls behind (computing step 3 for 300 s): it names itself, ends the job
job slow.log DPTRAIN_TEST_STALL=1:3:300 -- "${common[@]}" --steps 10 --watchdog 2
ended slow.log "watchdog: rank 1 fell behind: step 3 has been computing for"
# 3. a rank that stops (SIGSTOP) entering step 3: rank 0 is left in the allreduce, inside
# MPI, when its watchdog fires
job stop.log DPTRAIN_TEST_STALL=1:3:stop -- "${common[@]}" --steps 10 --watchdog 2
ended stop.log "watchdog: rank 0 waited"
expect_in stop.log "in the gradient allreduce of step 3 (--watchdog 2): another rank fell behind or stopped"

# the same at an epoch's end (rank 1 stops entering the evaluation after step 4, with no
# test set): rank 0 waits in the epoch's sums, a slow phase, and names it
job stop-epoch.log DPTRAIN_TEST_STALL=1:4:stop:evaluation -- "${common[@]}" --steps 10 \
  --watchdog 2 --watchdog-io 3
ended stop-epoch.log "watchdog: rank 0 waited"
expect_in stop-epoch.log "for the other ranks in the epoch-end sums after step 4 (--watchdog-io 3): another rank is stuck or stopped"
# ... and after rank 0's metrics write, --save or checkpoint write (rank 1 stops entering
# it): rank 0, its write done, waits for rank 1 to agree, and says so. It said it had spent
# the time in its own write (seen when a stopped rank's run had 4-step epochs of 0.05 s,
# 2026-12-05)
job stop-metrics.log DPTRAIN_TEST_STALL=1:4:stop:metrics -- "${common[@]}" --steps 8 \
  --watchdog 2 --watchdog-io 3 --metrics sm.jsonl
ended stop-metrics.log "watchdog: rank 0 waited"
expect_in stop-metrics.log "for the other ranks in the agreement after the write of step 4 (--watchdog-io 3): another rank is stuck or stopped"
job stop-save.log DPTRAIN_TEST_STALL=1:4:stop:save -- "${common[@]}" --steps 4 --watchdog 2 \
  --watchdog-io 3 --save ss.h5
ended stop-save.log "watchdog: rank 0 waited"
expect_in stop-save.log "for the other ranks in the agreement after the write of step 4 (--watchdog-io 3): another rank is stuck or stopped"
job stop-ckpt.log DPTRAIN_TEST_STALL=1:2:stop:checkpoint -- "${common[@]}" --steps 10 \
  --watchdog 2 --watchdog-io 3 --checkpoint-dir cks --checkpoint-every 2
ended stop-ckpt.log "watchdog: rank 0 waited"
expect_in stop-ckpt.log "for the other ranks in the agreement after the write of step 2 (--watchdog-io 3): another rank is stuck or stopped"
[[ -e cks/ckpt-00000002.h5 ]] || fail "stop-ckpt.log: rank 0's checkpoint, written before the wait, is missing"

# 4. rank 0 stopped (SIGSTOP) halfway through its first checkpoint write (step 2): rank 1,
# waiting for it, ends the job after --watchdog-io plus its grace, naming the phase
job ckpt.log DPTRAIN_TEST_STOP_IN_CHECKPOINT=1 -- "${common[@]}" --steps 10 --watchdog 2 \
  --watchdog-io 3 --checkpoint-dir ck --checkpoint-every 2
expect_in ckpt.log "DPTRAIN_TEST_STOP_IN_CHECKPOINT: stopped mid-write"
ended ckpt.log "watchdog: rank 1 waited"
expect_in ckpt.log "for rank 0 in the checkpoint write of step 2 (--watchdog-io 3): rank 0 is stuck or stopped"
[[ ! -e ck/ckpt-00000002.h5 ]] || fail "ckpt.log: a checkpoint stopped halfway has its final name"

# 5. the other slow phases: a rank stuck in its evaluation names itself; rank 0 stuck in
# the metrics write or in --save names itself and the phase
job eval.log DPTRAIN_TEST_STALL=1:4:300:evaluation -- "${common[@]}" --test test.h5 --steps 8 \
  --watchdog 2 --watchdog-io 3
ended eval.log "watchdog: rank 1 has spent"
expect_in eval.log "in the evaluation after step 4, longer than --watchdog-io 3"
job metrics.log DPTRAIN_TEST_STALL=0:4:300:metrics -- "${common[@]}" --steps 8 --watchdog 2 \
  --watchdog-io 3 --metrics m.jsonl
ended metrics.log "watchdog: rank 0 has spent"
expect_in metrics.log "in the metrics write after step 4, longer than --watchdog-io 3"
job save.log DPTRAIN_TEST_STALL=0:4:300:save -- "${common[@]}" --steps 4 --watchdog 2 \
  --watchdog-io 3 --save w.h5
ended save.log "watchdog: rank 0 has spent"
expect_in save.log "in the --save write after step 4, longer than --watchdog-io 3"

# 6. the same slow phases within the limit: the run succeeds (the watchdog does not fire
# on a checkpoint that is merely slower than a step: 4 s, --watchdog 2)
job quiet.log DPTRAIN_TEST_STALL=0:2:4:checkpoint -- "${common[@]}" --test test.h5 --steps 8 \
  --watchdog 2 --watchdog-io 60 --checkpoint-dir ckq --checkpoint-every 2 --metrics q.jsonl \
  --save q.h5
[[ $rc -eq 0 ]] || { cat quiet.log; fail "quiet.log: exit $rc"; }
expect_in quiet.log "replicas identical"
funneled quiet.log
echo "1 passed, 0 failed"
