#!/usr/bin/env bash
# hold_cluster.sh NODES [FILE]: not a test by itself: test_slurm_harness_cleanup.sh runs it
# to see that a harness stopped in the middle of its work leaves nothing behind. Starts a
# cluster, runs a job whose step sleeps on every node, prints "hold: ready" once the step
# runs, then waits to be signalled, or, given FILE, fails a check once FILE exists.
source "$(dirname "$0")/common.sh"
start_cluster "$1"
j=$(submit -N "$1" --time=5 --output="$WORK/hold.out" --wrap "srun --mpi=none sleep 600")
for i in $(seq 100); do
  _sl squeue -h -s -j "$j" -o %i 2> /dev/null | grep -qx "$j\.0" && break
  sleep 0.2
done
_sl squeue -h -s -j "$j" -o %i | grep -qx "$j\.0" || fail "the job's step never ran"
echo "hold: ready (job $j runs on $(job_field "$j" NodeList))"
while :; do
  [[ -n ${2:-} && -e $2 ]] && fail "a check fails on purpose while job $j runs"
  sleep 0.2
done
