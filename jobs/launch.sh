# launch.sh: sourced by every job script in jobs/ (and by scripts/sweep.sh): starts
# dptrain on the ranks and cores of the allocation, one way for all jobs.
#
#   dp_launch [dptrain options...]
#
# With DP_EXEC=1 the launcher replaces the calling shell (for `dp_launch ... &`, so that
# $! is the launcher itself and a signal sent to it reaches the ranks).
#
# Ranks: DP_RANKS, else SLURM_NTASKS. Threads per rank: DP_THREADS, else
# SLURM_CPUS_PER_TASK, else 1. The launcher is DPTRAIN_LAUNCHER:
#   srun   (default) srun --mpi=pmix --kill-on-bad-exit=1: Slurm starts the ranks (PMIx);
#          one rank that dies ends the whole step at once (without --kill-on-bad-exit
#          the other ranks would wait in MPI_Allreduce until the time limit).
#   mpirun Open MPI's mpirun inside the allocation (it reads the nodes from Slurm); a dead
#          rank makes mpirun end the others within seconds.
# Binding (DPTRAIN_BIND): "cores" (default) gives every rank its own cpus-per-task cores,
# and the threads of a rank are pinned one per core, next to each other
# (OMP_PLACES=cores OMP_PROC_BIND=close):
#   srun:   --cpus-per-task=T --cpu-bind=cores
#   mpirun: --map-by slot:PE=T --bind-to core
# "none" switches pinning off (--cpu-bind=none / --bind-to none); use it where a node has
# fewer cores than Slurm believes (an oversubscribed test node).

: "${DPTRAIN_REPO:=${SLURM_SUBMIT_DIR:-$PWD}}"
: "${DPTRAIN:=$DPTRAIN_REPO/build/dptrain}"

dp_launch() {
  local n=${DP_RANKS:-${SLURM_NTASKS:-1}} t=${DP_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  local bind=${DPTRAIN_BIND:-cores}
  [[ -x $DPTRAIN ]] || { echo "dp_launch: no dptrain at $DPTRAIN (build it, or set DPTRAIN)" >&2; return 1; }
  export OMP_NUM_THREADS=$t
  if [[ $bind == cores ]]; then export OMP_PLACES=cores OMP_PROC_BIND=close; fi
  case ${DPTRAIN_LAUNCHER:-srun} in
    srun)
      local cpubind=cores; [[ $bind == cores ]] || cpubind=none
      echo "dp_launch: srun --mpi=pmix --kill-on-bad-exit=1 -n $n -c $t --cpu-bind=$cpubind $DPTRAIN --threads $t $*"
      ${DP_EXEC:+exec} srun --mpi=pmix --kill-on-bad-exit=1 --ntasks="$n" --cpus-per-task="$t" \
        --cpu-bind="$cpubind" "$DPTRAIN" --threads "$t" "$@" ;;
    mpirun)
      local map=(--map-by "slot:PE=$t" --bind-to core)
      [[ $bind == cores ]] || map=(--bind-to none)
      echo "dp_launch: mpirun -n $n ${map[*]} $DPTRAIN --threads $t $*"
      local v xs=()   # mpirun passes on only the variables named with -x to other nodes
      for v in OMP_NUM_THREADS OMP_PLACES OMP_PROC_BIND; do [[ -v $v ]] && xs+=(-x "$v"); done
      ${DP_EXEC:+exec} mpirun -n "$n" "${map[@]}" "${xs[@]}" "$DPTRAIN" --threads "$t" "$@" ;;
    *) echo "dp_launch: DPTRAIN_LAUNCHER must be srun or mpirun, got '$DPTRAIN_LAUNCHER'" >&2
       return 2 ;;
  esac
}
