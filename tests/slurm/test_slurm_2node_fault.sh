#!/usr/bin/env bash
# One dead rank ends a two-node job promptly: a rank on node2 is killed (SIGKILL) in the
# middle of training, under srun --kill-on-bad-exit=1 and under mpirun (the two launchers
# of jobs/train_multinode.sbatch); the job must fail within 20 s (measured: srun ~1 s,
# mpirun ~3 s; without --kill-on-bad-exit it would hang until its time limit).
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/fault.sh"
"$TOOLS/make_dataset" synth "$WORK/train" 1600 5 2 > /dev/null
args=(--train "$WORK/train" --test none --batch 32 --steps 100000 --no-progress)

start_cluster 2
for launcher in srun mpirun; do
  out=$WORK/$launcher.out
  j=$(DPTRAIN_LAUNCHER=$launcher submit -N 2 --ntasks-per-node=1 --time=3 --output="$out" \
      jobs/train_multinode.sbatch "${args[@]}")
  wait_for "$out" "optimizer: SGD" 60 || { cat "$out"; fail "$launcher job $j did not start training"; }
  sleep 1
  pid=$(kill_rank_on node2) || { cat "$out"; fail "no dptrain rank found on node2"; }
  t0=$(date +%s.%N)
  job_wait "$j" 20 || { cat "$out"; fail "$launcher job $j still running 20 s after rank $pid on node2 was killed"; }
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  cat "$out"
  expect_job "$j" FAILED
  echo "$launcher: killed rank $pid on node2; job $j FAILED after $dt s"
done
echo "slurm 2 nodes, dead rank: ok"
