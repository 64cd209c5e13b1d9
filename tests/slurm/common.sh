# common.sh: set-up shared by the Slurm harnesses: lib.sh, the cluster, skips, and
# stopping the cluster on every way out: success, a failed check, a failed start, a
# signal (TERM, INT, HUP), and the harness's own time limit (DP_SLURM_HARNESS_LIMIT,
# 540 s: below ctest's TIMEOUT of 600 s, whose SIGKILL leaves only the reaper to clean up).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
skip() { echo "SKIP: $*"; exit 77; }
# In CI (scripts/test.sh sets DPTRAIN_REQUIRE_SLURM; CI systems set CI=true) the Slurm
# tests must run: what would skip elsewhere fails there
slurm_required() { [[ ${DPTRAIN_REQUIRE_SLURM:-0} == 1 || ${CI:-} == true ]]; }
if [[ $(id -u) != 0 ]]; then
  slurm_required && fail "needs root (starts slurmctld, slurmd and munged); the Slurm tests are required here"
  skip "needs root (starts slurmctld, slurmd and munged)"
fi
if ! cluster_have_slurm; then
  slurm_required && fail "slurmctld, slurmd, sbatch or munged missing"
  skip "Slurm or munge not installed (apt-get install slurmctld slurmd slurm-client munge)"
fi
REPO=$DP_SOURCE_DIR
CL_CLEAN_DIR=$WORK  # the reaper removes it if it has to clean up after a killed harness

_harness_exit() {
  local rc=$1
  trap '' TERM INT HUP ALRM
  set +e  # a failing command here must not cut the clean-up short
  [[ -n ${_harness_timer:-} ]] && kill "$_harness_timer" 2> /dev/null
  if [[ $rc != 0 && $rc != 77 && ${CL_LOGS_SHOWN:-0} != 1 && -d ${CL_BASE:-/nonexistent}/log ]]; then
    echo "harness: exit status $rc; the daemons' logs:" >&2
    cluster_logs >&2
  fi
  cluster_stop "harness exit status $rc" || { [[ $rc == 0 ]] && rc=1; }
  rm -rf "$WORK"
  exit "$rc"
}
trap '_harness_exit $?' EXIT
trap 'echo "harness: got SIGTERM" >&2; exit 143' TERM
trap 'echo "harness: got SIGINT" >&2; exit 130' INT
trap 'echo "harness: got SIGHUP" >&2; exit 129' HUP
_harness_limit=${DP_SLURM_HARNESS_LIMIT:-540}
trap 'echo "FAIL: harness time limit of $_harness_limit s reached" >&2; exit 124' ALRM
# the timer: a subshell that takes its sleep with it when the harness ends it ($!, not $s:
# a TERM between `sleep &` and `s=$!` would leave the sleep running; see reaper.sh)
( trap 'kill $! 2> /dev/null; wait $! 2> /dev/null; exit 0' TERM
  sleep "$_harness_limit" & s=$!; wait $s && kill -ALRM $$ ) < /dev/null > /dev/null 2>&1 &
_harness_timer=$!

# Jobs run as root here: Open MPI needs these (users' jobs do not; the job scripts never set them)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export DPTRAIN REPO

# start_cluster NODES: the cluster under $WORK/cluster, or the harness ends with the reason:
# SKIP where network namespaces cannot be made (FAIL where Slurm tests are required), FAIL
# for any other failed start (after at most DP_SLURM_START_TIMEOUT s)
start_cluster() {
  local rc=0
  cluster_start "$WORK/cluster" "$1" || rc=$?
  case $rc in
    0) ;;
    2) slurm_required && fail "cluster did not start: $CL_REASON (required here: CI=true or DPTRAIN_REQUIRE_SLURM=1)"
       skip "$CL_REASON (the two-node tests need them; as root outside a restricted container they work)" ;;
    *) fail "cluster did not start: $CL_REASON" ;;
  esac
}

# submit [sbatch options...] SCRIPT [args...]: sbatch from the repository root; prints the id
submit() { (cd "$REPO" && _sl sbatch --parsable "$@") | cut -d';' -f1; }

# expect_job ID STATE: the job (every array task) ended in STATE with exit code 0:0 when COMPLETED
expect_job() {
  local got
  got=$(_sl scontrol show job "$1" | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort -u | tr '\n' ' ')
  [[ $got == "$2 " ]] || { _sl scontrol show job "$1" >&2; fail "job $1: state '$got', expected $2"; }
  if [[ $2 == COMPLETED ]]; then
    got=$(_sl scontrol show job "$1" | tr ' ' '\n' | sed -n 's/^ExitCode=//p' | sort -u | tr '\n' ' ')
    [[ $got == "0:0 " ]] || fail "job $1: exit code $got"
  fi
}

# skip_requeue_delay ID: Slurm makes a requeued job eligible only ~2 minutes later
# (Reason=BeginTime); a cluster user waits, the tests move its start time to now, once
# the previous run's step daemons are gone (a restart within the same second finds their
# PMIx socket still bound: "Address already in use").
skip_requeue_delay() {
  local i
  for i in $(seq 150); do
    _sl scontrol show job "$1" | grep -q "JobState=PENDING Reason=BeginTime" && break
    sleep 0.2
  done
  for i in $(seq 150); do
    compgen -G "$CL_BASE/spool/*/stepd.slurm.pmix.$1.*" > /dev/null || break
    sleep 0.2
  done
  sleep 1
  _sl scontrol update JobId="$1" StartTime=now || true
}
