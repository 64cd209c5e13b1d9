# mpi-env.sh: sourced by the scripts that start mpirun. Open MPI refuses to run as root
# and to start more ranks than cores unless told; containers and CI run as root on few
# cores. Set here, for our scripts and tests only, never inside dptrain.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# mpi_oversubscribe_if_needed RANKS: allow more ranks than this machine's cores.
mpi_oversubscribe_if_needed() {
  if [[ "$1" -gt "$(nproc)" ]]; then
    export OMPI_MCA_rmaps_base_oversubscribe=1
  fi
}
