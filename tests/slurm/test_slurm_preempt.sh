#!/usr/bin/env bash
# jobs/train_preemptible.sbatch on a real single-node Slurm: the running job is signalled
# (SIGUSR1 to the batch shell, as --signal=B:USR1@N delivers it), dptrain checkpoints and
# exits 75, the job requeues itself, resumes from the checkpoint, and ends with bitwise the
# weights of an uninterrupted run.
source "$(dirname "$0")/common.sh"
"$TOOLS/make_dataset" synth "$WORK/train" 1600 5 2 > /dev/null
args=(--train "$WORK/train" --test none --batch 32 --steps 150 --no-progress --save "$WORK/pre.h5")

start_cluster 1
export DPTRAIN_CKPT_DIR=$WORK/ckpt DPTRAIN_CKPT_EVERY=10
j=$(submit --ntasks=2 --output="$WORK/pre.out" jobs/train_preemptible.sbatch "${args[@]}")
# signal once the job has written its first checkpoint
for i in $(seq 300); do compgen -G "$WORK/ckpt/ckpt-*.h5" > /dev/null && break; sleep 0.1; done
compgen -G "$WORK/ckpt/ckpt-*.h5" > /dev/null || { cat "$WORK/pre.out"; fail "no checkpoint within 30 s"; }
_sl scancel --batch --signal=USR1 "$j"
job_wait "$j" 240 || { cat "$WORK/pre.out"; fail "preemptible job $j did not end"; }
cat "$WORK/pre.out"
expect_job "$j" COMPLETED
[[ $(job_field "$j" Restarts) == 1 ]] || fail "job $j restarted $(job_field "$j" Restarts) times, expected 1"
expect_in "$WORK/pre.out" "preemptible: got SIGUSR1"
expect_in "$WORK/pre.out" "dptrain ended with status 75"
expect_in "$WORK/pre.out" "requeueing job $j"
expect_in "$WORK/pre.out" "run 2 on"
expect_in "$WORK/pre.out" "dptrain ended with status 0"
mpi 2 "$DPTRAIN" "${args[@]/$WORK\/pre.h5/$WORK/ref.h5}" --threads 1 --quiet
"$TOOLS/compare_weights" "$WORK/pre.h5" "$WORK/ref.h5" --exact || fail "the resumed job's weights differ from an uninterrupted run"
echo "slurm preemption: ok"
