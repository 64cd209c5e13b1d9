#!/usr/bin/env bash
# jobs/train_preemptible.sbatch across two nodes with DPTRAIN_REQUEUE_ON_FAILURE=1: a rank
# on node2 is killed after the first checkpoints; the job ends promptly, requeues itself,
# resumes from the last checkpoint and ends with bitwise the weights of an uninterrupted
# run.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/fault.sh"
"$TOOLS/make_dataset" synth "$WORK/train" 1600 5 2 > /dev/null
args=(--train "$WORK/train" --test none --batch 32 --steps 150 --no-progress --save "$WORK/res.h5")

start_cluster 2
export DPTRAIN_CKPT_DIR=$WORK/ckpt DPTRAIN_CKPT_EVERY=10 DPTRAIN_REQUEUE_ON_FAILURE=1
out=$WORK/res.out
j=$(submit -N 2 --ntasks=2 --ntasks-per-node=1 --output="$out" jobs/train_preemptible.sbatch "${args[@]}")
for i in $(seq 300); do compgen -G "$WORK/ckpt/ckpt-*.h5" > /dev/null && break; sleep 0.1; done
compgen -G "$WORK/ckpt/ckpt-*.h5" > /dev/null || { cat "$out"; fail "no checkpoint within 30 s"; }
pid=$(kill_rank_on node2) || { cat "$out"; fail "no dptrain rank found on node2"; }
wait_for "$out" "requeueing job $j" 20 || { cat "$out"; fail "job $j did not end and requeue within 20 s of the kill"; }
job_wait "$j" 240 || { cat "$out"; fail "job $j did not finish after its requeue"; }
cat "$out"
expect_job "$j" COMPLETED
[[ $(job_field "$j" Restarts) == 1 ]] || fail "job $j restarted $(job_field "$j" Restarts) times, expected 1"
expect_in "$out" "run 2 on node[1-2]"
expect_in "$out" "resume: $WORK/ckpt/ckpt-"
mpi 2 "$DPTRAIN" "${args[@]/$WORK\/res.h5/$WORK/ref.h5}" --threads 1 --quiet
"$TOOLS/compare_weights" "$WORK/res.h5" "$WORK/ref.h5" --exact || fail "the resumed job differs from an uninterrupted run"
echo "slurm 2 nodes, dead rank, resume: ok"
