#!/usr/bin/env bash
# jobs/train_multinode.sbatch on a real two-node Slurm whose nodes are network namespaces
# on this machine (node1 10.77.X.11, node2 10.77.X.12; MPI over TCP between them): 2 nodes
# x 2 ranks with srun/PMIx and with mpirun train to bitwise the weights of 4 ranks on one
# node (plain mpirun here), their reductions overlapping backward (the default across
# nodes), the one-node run's after it, through shared memory (the default within a node).
source "$(dirname "$0")/common.sh"
"$TOOLS/make_dataset" synth "$WORK/train" 1600 5 4 > /dev/null
"$TOOLS/make_dataset" synth "$WORK/test.h5" 400 6 > /dev/null
args=(--train "$WORK/train" --test "$WORK/test.h5" --batch 64 --steps 12 --no-progress)

start_cluster 2
_sl sinfo
# bytes node2 received over its link: the gradients must travel between the nodes
node2_rx() { cat "/sys/class/net/$(cat "$CL_BASE/bridge")v2/statistics/tx_bytes"; }
rx0=$(node2_rx)
js=$(submit -N 2 --ntasks-per-node=2 --output="$WORK/srun.out" jobs/train_multinode.sbatch \
     "${args[@]}" --save "$WORK/srun.h5")
jm=$(DPTRAIN_LAUNCHER=mpirun submit -N 2 --ntasks-per-node=2 --output="$WORK/mpirun.out" \
     jobs/train_multinode.sbatch "${args[@]}" --save "$WORK/mpirun.h5")
for j in "$js" "$jm"; do job_wait "$j" 180 || fail "job $j did not end"; done
cat "$WORK/srun.out" "$WORK/mpirun.out"
rx=$(( $(node2_rx) - rx0 ))
echo "node2 received $rx bytes over its link"
# 2 jobs x 12 allreduces of 225,034 floats (0.9 MB): a ring moves at least that much in
(( rx > 2 * 12 * 900000 )) || fail "only $rx bytes reached node2: MPI did not run over the network"
expect_job "$js" COMPLETED; expect_job "$jm" COMPLETED
for f in srun mpirun; do
  expect_in "$WORK/$f.out" "dptrain: 4 ranks x 1 thread on 2 nodes (node1 ranks 0-1, node2 ranks 2-3)"
  expect_in "$WORK/$f.out" "replicas identical on 4 ranks"
  # across nodes the reduction overlaps backward by default (within one, after it, through
  # shared memory, which only ranks on one node can have)
  expect_in "$WORK/$f.out" "reduced with MPI_Iallreduce overlapping backward"
done
expect_in "$WORK/srun.out" "srun --mpi=pmix --kill-on-bad-exit=1 -n 4"
expect_in "$WORK/mpirun.out" "dp_launch: mpirun -n 4"
mpi 4 "$DPTRAIN" "${args[@]}" --threads 1 --save "$WORK/one_node.h5" > "$WORK/one_node.out"
expect_in "$WORK/one_node.out" "summed exactly (int64 fixed point) through shared memory, layer by layer"
"$TOOLS/compare_weights" "$WORK/srun.h5" "$WORK/one_node.h5" --exact || fail "2 nodes (srun) differ from 1 node"
"$TOOLS/compare_weights" "$WORK/mpirun.h5" "$WORK/one_node.h5" --exact || fail "2 nodes (mpirun) differ from 1 node"
echo "slurm 2 nodes: ok"
