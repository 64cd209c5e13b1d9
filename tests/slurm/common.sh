# common.sh: set-up shared by the Slurm harnesses: lib.sh, the cluster, skips, and
# stopping the cluster on every exit (also on failure).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) == 0 ]] || skip "needs root (starts slurmctld, slurmd and munged)"
if ! cluster_have_slurm; then
  # scripts/test.sh installs them and sets DPTRAIN_REQUIRE_SLURM: there, missing is a failure
  [[ ${DPTRAIN_REQUIRE_SLURM:-0} == 1 ]] && fail "slurmctld, slurmd, sbatch or munged missing"
  skip "Slurm or munge not installed (apt-get install slurmctld slurmd slurm-client munge)"
fi
REPO=$DP_SOURCE_DIR
trap 'rc=$?; if [[ $rc != 0 && $rc != 77 && -d ${CL_BASE:-/nonexistent}/log ]]; then
        tail -n 15 "$CL_BASE"/log/slurmctld.log "$CL_BASE"/log/slurmd-*.log >&2; fi
      cluster_stop; rm -rf "$WORK"; exit $rc' EXIT
# Jobs run as root here: Open MPI needs these (users' jobs do not; the job scripts never set them)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export DPTRAIN REPO

# submit [sbatch options...] SCRIPT [args...]: sbatch from the repository root; prints the id
submit() { (cd "$REPO" && sbatch --parsable "$@") | cut -d';' -f1; }

# expect_job ID STATE: the job (every array task) ended in STATE with exit code 0:0 when COMPLETED
expect_job() {
  local got
  got=$(scontrol show job "$1" | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort -u | tr '\n' ' ')
  [[ $got == "$2 " ]] || { scontrol show job "$1" >&2; fail "job $1: state '$got', expected $2"; }
  if [[ $2 == COMPLETED ]]; then
    got=$(scontrol show job "$1" | tr ' ' '\n' | sed -n 's/^ExitCode=//p' | sort -u | tr '\n' ' ')
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
    scontrol show job "$1" | grep -q "JobState=PENDING Reason=BeginTime" && break
    sleep 0.2
  done
  for i in $(seq 150); do
    compgen -G "$CL_BASE/spool/*/stepd.slurm.pmix.$1.*" > /dev/null || break
    sleep 0.2
  done
  sleep 1
  scontrol update JobId="$1" StartTime=now || true
}
