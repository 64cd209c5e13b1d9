#!/usr/bin/env bash
# Issue 15: every way out of a Slurm harness stops every process its cluster started, and
# a cluster that cannot start fails within the bound, with its reason. Each case runs a
# real harness with TMPDIR in a directory of its own, so that every path of its cluster,
# hence the command line or environment of every process of it, names that directory.
# Afterwards nothing may name it, no PID of the cluster's pid file (read while it ran) may
# be running, nothing may be left in its nodes' network namespaces, its bridge must be
# gone, and so must its directory. Cases: start failures on purpose (DP_SLURM_TEST_BREAK:
# no namespaces, with and without CI; node2's namespaces; munge; nodes never responding),
# a failed check, SIGTERM, SIGINT, the harness's own time limit, and ctest's timeout
# (SIGKILL to the harness's whole process tree: only the reaper can clean up).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/cluster.sh"
H=$(cd "$(dirname "$0")" && pwd)
skip() { echo "SKIP: $*"; exit 77; }
if [[ $(id -u) != 0 ]]; then
  [[ ${DPTRAIN_REQUIRE_SLURM:-0} == 1 || ${CI:-} == true ]] && fail "needs root (starts slurmctld, slurmd and munged); the Slurm tests are required here"
  skip "needs root (starts slurmctld, slurmd and munged)"
fi
if ! cluster_have_slurm; then
  [[ ${DPTRAIN_REQUIRE_SLURM:-0} == 1 || ${CI:-} == true ]] && fail "slurmctld, slurmd, sbatch or munged missing"
  skip "Slurm or munge not installed"
fi
unset CI DPTRAIN_REQUIRE_SLURM DP_SLURM_TEST_BREAK DP_SLURM_START_TIMEOUT DP_SLURM_HARNESS_LIMIT
harness_pid=
# on the way out, a harness still running is asked to stop (it cleans up after itself)
trap 'set +e; if [[ -n $harness_pid ]]; then kill "$harness_pid"; wait "$harness_pid"; fi; rm -rf "$WORK"' EXIT

# ps_tagged TAG: "PID COMM" of running processes whose command line or environment
# contains TAG (read from a file, so that grep's own command line does not)
ps_tagged() {
  printf '%s\n' "$1" > "$WORK/pattern"
  { grep -laFf "$WORK/pattern" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2> /dev/null || true; } |
    cut -d/ -f3 | sort -un | while read -r p; do
      _cl_alive "$p" || continue
      echo "$p $(cat "/proc/$p/comm" 2> /dev/null)"
    done
}

# snapshot DIR: while the harness runs, its pid file and its nodes' namespaces
snapshot() {
  local base
  base=$(echo "$1"/dptrain-test.*/cluster)
  cp "$base/pids" "$1.pids"
  cat "$base"/run/ns-*.net > "$1.ns" 2> /dev/null || : > "$1.ns"
}

# nothing_left DIR: no process names DIR, none of the snapshot's PIDs runs, the snapshot's
# namespaces are empty; the bridge it made and its directory are gone. What is left is
# reported, then ended, so that a failing case does not leave it behind either.
nothing_left() {
  local dir=$1 pids='' why='' pid name start br
  pids=$(ps_tagged "$dir/" | cut -d' ' -f1)
  [[ -z $pids ]] || why+="processes naming $dir; "
  if [[ -f $dir.pids ]]; then
    while read -r pid name start; do
      _cl_alive "$pid" "$start" && { why+="$name ($pid) still runs; "; pids+=" $pid"; }
    done < "$dir.pids"
    if [[ -s $dir.ns ]]; then
      pid=$(stat -L -c '%i %n' /proc/[0-9]*/ns/net 2> /dev/null | grep -Ff <(sed 's/$/ /' "$dir.ns") | cut -d/ -f3 || true)
      [[ -z $pid ]] || { why+="processes in the nodes' namespaces; "; pids+=" $pid"; }
    fi
  fi
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    ps -o pid,ppid,stat,args -p "$(echo $pids | tr ' ' ',')" >&2 || true
    # shellcheck disable=SC2086
    { kill -TERM $pids; sleep 2; kill -KILL $pids; } 2> /dev/null || true
  fi
  br=$(sed -n 's/^cluster: bridge \(dpbr[0-9]*\) .*/\1/p' "$dir.out")
  if [[ -n $br ]] && ip link show "$br" > /dev/null 2>&1; then
    why+="bridge $br is still there; "
    ip link del "${br}v1" 2> /dev/null || true; ip link del "${br}v2" 2> /dev/null || true
    ip link del "$br" || true
  fi
  if compgen -G "$dir/dptrain-test.*" > /dev/null; then why+="its directory is still there; "; fi
  [[ -z $why ]] || fail "$dir: left behind: $why"
  echo "  nothing left of $dir"
}

# run_harness NAME SCRIPT [args]: start SCRIPT (from tests/slurm) in the background with
# TMPDIR=$WORK/NAME and output $WORK/NAME.out; sets harness_pid. SIGINT is trappable
# only if not ignored on entry, and bash ignores it in its background jobs: reset it.
run_harness() {
  local name=$1 script=$2; shift 2
  mkdir -p "$WORK/$name"
  TMPDIR=$WORK/$name env --default-signal=INT bash "$H/$script" "$@" > "$WORK/$name.out" 2>&1 &
  harness_pid=$!
  t_start=$SECONDS
}

# finish NAME SECONDS: wait that long at most for the harness to end; its exit status in
# rc, its time since t_start in elapsed
finish() {
  local i
  for i in $(seq $(( $2 * 10 ))); do _cl_alive "$harness_pid" || break; sleep 0.1; done
  if _cl_alive "$harness_pid"; then
    cat "$WORK/$1.out" >&2
    fail "$1: the harness still runs after $2 s"
  fi
  rc=0; wait "$harness_pid" || rc=$?
  harness_pid='' elapsed=$((SECONDS - t_start))
}

# expect NAME STATUS TEXT: the harness ended with STATUS and said TEXT
expect() {
  [[ $2 == "$3" ]] || { cat "$WORK/$1.out" >&2; fail "$1: exit status $2, expected $3"; }
  expect_in "$WORK/$1.out" "$4"
}

# wait_ready NAME: until the holding harness has its job running, then snapshot it
wait_ready() {
  local i
  for i in $(seq 600); do grep -q "hold: ready" "$WORK/$1.out" && break; sleep 0.1; done
  grep -q "hold: ready" "$WORK/$1.out" || { cat "$WORK/$1.out" >&2; fail "$1: the cluster never held its job"; }
  snapshot "$WORK/$1"
  local seen name; seen=$(ps_tagged "$WORK/$1/" | cut -d' ' -f2 | sort -u | tr '\n' ' ')
  for name in munged slurmctld slurmscriptd slurmd slurmstepd sleep; do
    [[ " $seen" == *" $name "* ]] || fail "$1: no $name of the cluster seen while it runs (seen: $seen): the check would be blind"
  done
}

# kill_tree PID: what ctest does at a test's timeout: SIGSTOP, then SIGKILL, the process
# and every descendant (by parent PID)
kill_tree() {
  local c
  kill -STOP "$1" 2> /dev/null
  for c in $(ps -o pid= --ppid "$1"); do kill_tree "$c"; done
  kill -KILL "$1" 2> /dev/null
}

# DP_CLEANUP_CASES="NAME..." runs only those cases (for debugging)
wanted() { [[ -z ${DP_CLEANUP_CASES:-} || " $DP_CLEANUP_CASES " == *" $1 "* ]]; }

case_start_failure() { # NAME BREAK NODES STATUS TEXT [env...]
  local name=$1 brk=$2 nodes=$3 status=$4 text=$5; shift 5
  wanted "$name" || return 0
  echo "case $name: DP_SLURM_TEST_BREAK=$brk on $nodes node(s) $*"
  export DP_SLURM_TEST_BREAK=$brk
  (( $# > 0 )) && export "$@"
  run_harness "$name" "test_slurm_${nodes}node.sh"
  unset DP_SLURM_TEST_BREAK CI DP_SLURM_START_TIMEOUT
  finish "$name" 90
  echo "  exit $rc after $elapsed s: $(grep -m1 -E '^(FAIL|SKIP):' "$WORK/$name.out")"
  grep -E '^cluster: (SIG|stopped|removed)' "$WORK/$name.out" | sed 's/^/    /' || true
  nothing_left "$WORK/$name"
  expect "$name" "$rc" "$status" "$text"
  expect_in "$WORK/$name.out" "none of this cluster's is left"
}

# A cluster that cannot start: fails (or skips) within the bound, says why, leaves nothing
case_start_failure netns netns 2 77 "SKIP: network namespaces not available here: unshare"
case_start_failure netns-ci netns 2 1 "FAIL: cluster did not start: network namespaces not available here: unshare" CI=true
case_start_failure node2 node2 2 1 "could not make node2's namespaces"
case_start_failure munge munge 1 1 "cluster did not start: munge failed"
bound=20
case_start_failure slurmd slurmd 2 1 "cluster did not start: nodes not responding" DP_SLURM_START_TIMEOUT=$bound
if wanted slurmd; then
  (( elapsed <= bound + 20 )) || fail "a cluster whose nodes never respond took $elapsed s to fail (start bound $bound s)"
  expect_in "$WORK/slurmd.out" "--- log/slurmd-node1.log"
fi

# A harness stopped while its cluster runs a job on every node
case_held() { # NAME NODES HOW STATUS TEXT
  local name=$1 i
  wanted "$name" || return 0
  echo "case $name: $3 to a harness whose cluster of $2 node(s) runs a job"
  if [[ $3 == limit ]]; then
    export DP_SLURM_HARNESS_LIMIT=25; run_harness "$name" hold_cluster.sh "$2"; unset DP_SLURM_HARNESS_LIMIT
  elif [[ $3 == fail ]]; then run_harness "$name" hold_cluster.sh "$2" "$WORK/$name.go"
  else run_harness "$name" hold_cluster.sh "$2"; fi
  wait_ready "$name"
  t_start=$SECONDS
  case $3 in
    TERM|INT) kill -"$3" "$harness_pid" ;;
    ctest-timeout) kill_tree "$harness_pid" ;;
    fail) touch "$WORK/$name.go" ;;
  esac
  finish "$name" 40
  echo "  exit $rc $elapsed s later"
  grep -E '^cluster: (SIG|stopped|removed)' "$WORK/$name.out" | sed 's/^/    /' || true
  if [[ $3 == ctest-timeout ]]; then  # the reaper is on its own: give it time
    for i in $(seq 200); do [[ -z $(ps_tagged "$WORK/$name/") ]] && break; sleep 0.1; done
    echo "  the reaper's clean-up took $((SECONDS - t_start)) s"
  fi
  nothing_left "$WORK/$name"
  expect "$name" "$rc" "$4" "$5"
  [[ $3 == ctest-timeout ]] || expect_in "$WORK/$name.out" "none of this cluster's is left"
}
case_held term 2 TERM 143 "harness: got SIGTERM"
case_held int 1 INT 130 "harness: got SIGINT"
case_held check 1 fail 1 "FAIL: a check fails on purpose"
case_held limit 1 limit 124 "FAIL: harness time limit of 25 s reached"
case_held ctest-timeout-2 2 ctest-timeout 137 "hold: ready"
case_held ctest-timeout-1 1 ctest-timeout 137 "hold: ready"
echo "slurm harness clean-up: ok"
