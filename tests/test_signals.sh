#!/usr/bin/env bash
# Stop requests: SIGUSR1 to mpirun (which forwards it) and SIGTERM to one rank only both
# end every rank at the same step boundary with a complete checkpoint and exit status
# 75, and the run resumes from it to the same final weights, bit for bit, as a run that
# was never interrupted; without a checkpoint directory the run still stops with 75 and
# says no checkpoint was written; a second SIGINT exits at once with 130; after kill -9
# of the writing rank, the resume from what is left also ends bitwise equal to an
# uninterrupted run.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$TOOLS/make_dataset" synth train 600 5 2 > /dev/null
# a small model and many epochs: the run is still going when the signal comes
common=(--train train --test none --batch 20 --epochs 1000 --threads 1 --no-progress
        --model "conv(4,3) relu maxpool(2) fc(classes)")

# start LOG ARGS...: 2 ranks in the background; sets $pid (mpirun) once training runs
start() {
  local log=$1; shift
  # exec: $! must be mpirun itself, not a subshell around it
  ( exec "${MPIEXEC:-mpiexec}" ${MPIEXEC_NUMPROC_FLAG:--n} 2 ${MPIEXEC_PREFLAGS:-} "$DPTRAIN" \
      "${common[@]}" "$@" ${MPIEXEC_POSTFLAGS:-} > "$log" 2>&1 ) &
  pid=$!
  # (a generous wait: it ends as soon as the line is there, also on a busy machine)
  for _ in $(seq 1200); do
    grep -q "^epoch 1 " "$log" && return 0
    kill -0 "$pid" 2> /dev/null || { cat "$log"; fail "the run ended before the signal"; }
    sleep 0.1
  done
  kill -KILL "$pid"; fail "the run did not finish its first epoch within 120 s"
}
# finish: wait for mpirun (at most 60 s) and set $rc
finish() {
  for _ in $(seq 600); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2> /dev/null; then kill -KILL "$pid"; fail "the run did not stop within 60 s"; fi
  rc=0; wait "$pid" || rc=$?
}
ranks_of() { pgrep -P "$1" -x dptrain || pgrep -P "$1"; }
# same_as_uninterrupted STEPS RESUMED.h5 CKPT.h5: a run of STEPS steps without any stop
# ends with RESUMED.h5's weights, bit for bit; the checkpoint resumed from differs from
# them (or the comparison would prove nothing)
same_as_uninterrupted() {
  local steps=$1 resumed=$2 ckpt=$3 model=reference i
  for ((i = 0; i < ${#common[@]}; i++)); do [[ ${common[i]} == --model ]] && model=${common[i + 1]}; done
  mpi 2 "$DPTRAIN" "${common[@]}" --steps "$steps" --save "full-$steps.h5" > "full-$steps.log" 2>&1 \
    || { cat "full-$steps.log"; fail "the uninterrupted run of $steps steps failed"; }
  "$TOOLS/compare_weights" "$ckpt" "$resumed" --exact --model "$model" > /dev/null \
    && fail "the comparison is blind: $ckpt equals the final weights"
  "$TOOLS/compare_weights" "full-$steps.h5" "$resumed" --exact --model "$model" > "cmp-$steps.log" \
    || { cat "cmp-$steps.log"; fail "resumed from $ckpt: the weights differ from an uninterrupted run of $steps steps"; }
  echo "ok: resumed from $ckpt: bitwise equal to an uninterrupted run of $steps steps"
}

# 1. SIGUSR1 to mpirun
start u.log --checkpoint-dir cu
kill -USR1 "$pid"; finish
[[ $rc -eq 75 ]] || { cat u.log; fail "SIGUSR1: exit status $rc, expected 75"; }
expect_in u.log "stopped by SIGUSR1 at step"
expect_in u.log "checkpoint written; resume with --resume cu (exit status 75)"
step=$(sed -nE 's/.*stopped by SIGUSR1 at step ([0-9]+).*/\1/p' u.log)
[[ -f $(printf 'cu/ckpt-%08d.h5' "$step") ]] || fail "no checkpoint for step $step: $(ls cu)"
mpi 2 "$DPTRAIN" "${common[@]}" --resume cu --steps $((step + 3)) --save r.h5 > r.log 2>&1 \
  || { cat r.log; fail "resume after SIGUSR1 failed"; }
expect_in r.log "resume: $(printf 'cu/ckpt-%08d.h5' "$step"): step $step of $((step + 3))"
expect_in r.log "replicas identical on 2 ranks"
same_as_uninterrupted $((step + 3)) r.h5 "$(printf 'cu/ckpt-%08d.h5' "$step")"

# 2. SIGTERM to one rank only: the other rank stops at the same step too
start t.log --checkpoint-dir ct
ranks=($(ranks_of "$pid"))
[[ ${#ranks[@]} -eq 2 ]] || fail "expected 2 rank processes under mpirun, found ${ranks[*]:-none}"
kill -TERM "${ranks[1]}"; finish
[[ $rc -eq 75 ]] || { cat t.log; fail "SIGTERM to one rank: exit status $rc, expected 75"; }
expect_in t.log "stopped by SIGTERM at step"
expect_in t.log "replicas identical on 2 ranks"
[[ $(ls ct | wc -l) -eq 1 ]] || fail "expected one checkpoint in ct: $(ls ct)"

# 3. no checkpoint directory: still a clean stop with 75, and it says so
start n.log
kill -USR1 "$pid"; finish
[[ $rc -eq 75 ]] || { cat n.log; fail "no --checkpoint-dir: exit status $rc, expected 75"; }
expect_in n.log "no checkpoint was written (no --checkpoint-dir or --resume)"

# 4. a second SIGINT exits at once
start i.log --checkpoint-dir ci
ranks=($(ranks_of "$pid"))
# rank 1 paused: rank 0 takes the first SIGINT and then waits for it at the step
# boundary, so the second SIGINT surely finds it still running. The second is sent once
# the first has been delivered (no longer pending: /proc's ShdPnd, SIGINT = bit 2), since
# two pending SIGINTs are one; on a busy machine that may take more than a moment
kill -STOP "${ranks[1]}"; kill -INT "${ranks[0]}"
for _ in $(seq 300); do
  pending=$(sed -nE 's/^ShdPnd:\s*([0-9a-f]+)/\1/p' "/proc/${ranks[0]}/status" 2> /dev/null || echo 0)
  (( (16#${pending:-0} & 2) == 0 )) && break
  sleep 0.1
done
sleep 0.2  # the handler runs once the signal is delivered
kill -INT "${ranks[0]}"
sleep 0.3; kill -CONT "${ranks[1]}" 2> /dev/null || true; finish
grep -q "second interrupt: exiting now" i.log || { cat i.log; fail "second SIGINT: no message"; }
[[ $rc -ne 0 && $rc -ne 75 ]] || fail "second SIGINT: exit status $rc"
[[ -z "$(ls ci)" ]] || fail "second SIGINT: a checkpoint was written: $(ls ci)"
# 5. kill -9 of the writing rank, at a random moment, while it checkpoints every step
# (often mid-write, sometimes between a rename and the pruning): resume finds a complete one
# a wide fc layer: an 11 MB file per step, next to very little compute
common=(--train train --test none --batch 20 --epochs 1000 --threads 1 --no-progress
        --model "conv(4,3) relu maxpool(2) fc(2000) fc(classes)")
start k.log --checkpoint-dir ck9 --checkpoint-every 1 --keep 2
sleep 0.$((RANDOM % 10))
ranks=($(ranks_of "$pid"))
kill -KILL "${ranks[0]}"; finish
[[ $rc -ne 0 ]] || fail "kill -9: mpirun reported success"
echo "after kill -9: $(ls -a ck9 | tr '\n' ' ')"
# a final name is only ever given to a complete file (rename after fsync)
step=$(ls ck9 | sed -nE 's/^ckpt-0*([0-9]+)\.h5$/\1/p' | sort -n | tail -1)
[[ -n "$step" ]] || fail "kill -9: no checkpoint left in ck9"
mpi 2 "$DPTRAIN" "${common[@]}" --resume ck9 --steps $((step + 2)) --save k2.h5 > k2.log 2>&1 \
  || { cat k2.log; fail "resume after kill -9 failed"; }
expect_in k2.log "resume: $(printf 'ck9/ckpt-%08d.h5' "$step"): step $step"
same_as_uninterrupted $((step + 2)) k2.h5 "$(printf 'ck9/ckpt-%08d.h5' "$step")"
echo "1 passed, 0 failed"
