#!/usr/bin/env bash
# reaper.sh BASE PID STARTTIME [DIR]: started by cluster_start, detached from the harness
# (PID, whose /proc start time is STARTTIME). If the harness ends while its cluster at
# BASE is still up, the harness was killed too hard to clean up (ctest's timeout SIGKILLs
# the test's whole process tree; a double-forked slurmstepd and the job's ranks are not in
# that tree): stop the cluster then, and remove DIR, as the harness's EXIT trap would have.
# Output goes to BASE/log/reaper.log.
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
CL_BASE=$1 owner=$2 owner_start=$3 dir=${4:-}
trap '' HUP INT
# the harness ends the reaper (SIGTERM) once it has stopped its cluster itself. The trap
# ends the last nap by $!, not $nap: a TERM that lands between `sleep &` and `nap=$!` runs
# the trap with $nap still naming the previous, finished nap, and the new one would outlive
# the reaper (an orphan whose environment names the cluster's directory); wait reaps it.
trap 'kill $! 2> /dev/null; wait $! 2> /dev/null; exit 0' TERM
harness_alive() { _cl_alive "$owner" "$owner_start"; }
while [[ -f $CL_BASE/pids ]] && harness_alive; do sleep 0.5 & nap=$!; wait $nap; done
trap '' TERM
[[ -f $CL_BASE/pids ]] || exit 0
echo "reaper: harness $owner ended without stopping its cluster"
cluster_stop "by the reaper: harness $owner was killed"
[[ -n $dir ]] && rm -rf "$dir"
exit 0
