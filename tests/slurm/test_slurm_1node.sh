#!/usr/bin/env bash
# The real job scripts from jobs/ on a real single-node Slurm (slurmctld, slurmd, munge;
# the node claims 8 CPUs on this 2-core machine): a 2-rank and an 8-rank training job with
# srun/PMIx, the 2-rank job again with mpirun, and a small strong-scaling sweep as a job
# array followed by the report. Each job must give bitwise the weights of the same run
# under plain mpirun.
source "$(dirname "$0")/common.sh"
"$TOOLS/make_dataset" synth "$WORK/train" 1600 5 4 > /dev/null
"$TOOLS/make_dataset" synth "$WORK/test.h5" 400 6 > /dev/null
args=(--train "$WORK/train" --test "$WORK/test.h5" --batch 64 --steps 12 --no-progress)

start_cluster 1
_sl sinfo

# 2 ranks with srun --mpi=pmix (the default launcher)
j2=$(submit --ntasks=2 --output="$WORK/j2.out" jobs/train_1node.sbatch "${args[@]}" --save "$WORK/j2.h5")
# the same with mpirun inside the allocation
jm=$(DPTRAIN_LAUNCHER=mpirun submit --ntasks=2 --output="$WORK/jm.out" jobs/train_1node.sbatch \
     "${args[@]}" --save "$WORK/jm.h5")
# 8 ranks (the script's default --ntasks=8)
j8=$(submit --output="$WORK/j8.out" jobs/train_1node.sbatch "${args[@]}" --save "$WORK/j8.h5")
echo "submitted $j2 $jm $j8"
for j in "$j2" "$jm" "$j8"; do job_wait "$j" 180 || fail "job $j did not end"; done
cat "$WORK/j8.out"
expect_job "$j2" COMPLETED; expect_job "$jm" COMPLETED; expect_job "$j8" COMPLETED
expect_in "$WORK/j2.out" "srun --mpi=pmix --kill-on-bad-exit=1 -n 2"
expect_in "$WORK/j2.out" "dptrain: 2 ranks x 1 thread on 1 node"
expect_in "$WORK/jm.out" "dp_launch: mpirun -n 2"
expect_in "$WORK/jm.out" "replicas identical on 2 ranks"
expect_in "$WORK/j8.out" "dptrain: 8 ranks x 1 thread on 1 node"
expect_in "$WORK/j8.out" "replicas identical on 8 ranks"

# the same runs without Slurm give the same bits
mpi 2 "$DPTRAIN" "${args[@]}" --threads 1 --quiet --save "$WORK/ref2.h5"
mpi 8 "$DPTRAIN" "${args[@]}" --threads 1 --quiet --save "$WORK/ref8.h5"
"$TOOLS/compare_weights" "$WORK/j2.h5" "$WORK/ref2.h5" --exact || fail "srun 2-rank job differs from mpirun"
"$TOOLS/compare_weights" "$WORK/jm.h5" "$WORK/ref2.h5" --exact || fail "mpirun 2-rank job differs"
"$TOOLS/compare_weights" "$WORK/j8.h5" "$WORK/ref8.h5" --exact || fail "8-rank job differs from mpirun"

# a strong-scaling sweep as a job array (1 and 2 ranks x 1 and 2 threads), from jobs/sweep.conf
export SWEEP_RANKS="1 2" SWEEP_THREADS="1 2" SWEEP_STEPS=6 SWEEP_STRONG_BATCH=64
export SWEEP_ARGS="--train $WORK/train --test $WORK/test.h5"
arr=$(cd "$REPO" && jobs/submit_sweep.sh strong "$WORK/sweep" --output="$WORK/sweep-%A_%a.out" | cut -d';' -f1)
[[ $arr =~ ^[0-9]+$ ]] || fail "submit_sweep.sh printed '$arr', not a job id"
job_wait "$arr" 240 || fail "sweep array $arr did not end"
expect_job "$arr" COMPLETED
[[ $(_sl scontrol show job "$arr" | grep -c "ArrayTaskId=") == 4 ]] || fail "the sweep array should have 4 tasks"
# a test of the job scripts, not of this machine's load: publish whatever the load
DPTRAIN_FORCE_PUBLISH=1 "$REPO/scripts/report.sh" "$WORK/sweep"
cat "$WORK/sweep/sweep.csv"
for r in strong-r1-t1 strong-r1-t2 strong-r2-t1 strong-r2-t2; do
  grep -q "^$r,strong," "$WORK/sweep/sweep.csv" || fail "sweep.csv lacks $r"
done
for p in images_per_sec speedup efficiency step_split; do
  [[ -s $WORK/sweep/plots/$p.png ]] || fail "no $p.png"
done
expect_in "$WORK/sweep/report.md" "![Speedup](plots/speedup.png)"
echo "slurm 1 node: ok"
