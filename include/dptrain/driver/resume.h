/* resume: the checkpoint policy (checkpoint.h keeps the file format). What goes into a
 * checkpoint, when one is written, and whether a checkpoint may be resumed by this run:
 * a different model, batch or training data (size, content, or samples per file) is
 * refused with the difference named; other changes (learning rate, seed, threads, ...)
 * are accepted with a note saying what they mean for the result.
 *
 * Every run has an identity, stored in its checkpoints: a fresh run draws one, a resumed
 * run keeps the identity of the run it resumes. A run prunes only its own checkpoints,
 * and refuses to write into a directory holding another run's complete checkpoints
 * (naming that run) unless --overwrite-checkpoints deletes them first.
 *
 * Collective: every rank calls these functions at the same point; rank 0 reads and
 * writes the files, and failures are agreed so that no rank is left waiting. */
#ifndef DPTRAIN_RESUME_H
#define DPTRAIN_RESUME_H

#include <stdint.h>

#include "dptrain/data/data.h"
#include "dptrain/data/plan.h"
#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/dist/watchdog.h"
#include "dptrain/driver/cli.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"
#include "dptrain/persist/checkpoint.h"
#include "dptrain/util/error.h"

typedef struct {
    const char *dir;        /* where checkpoints go; NULL: none */
    long last_step;         /* newest checkpoint written or resumed from, -1: none */
    uint64_t data_checksum; /* over the whole training set, independent of the rank count */
    char run_id[DP_RUN_ID_LEN]; /* this run's identity (rank 0: fresh, or the resumed run's) */
    /* --resume's file, picked once (ckpt_policy_pick), the same on every rank; "" when
     * there is none yet */
    char resume_path[4096];
} dp_ckpt_policy;

/* The run as a checkpoint records it (all borrowed). */
typedef struct {
    const dp_config *cfg;
    const dp_filelist *train_files;
    dp_plan *plan;          /* its data order: a resumed checkpoint may restore its ties */
    int ranks, threads;
    long steps_per_epoch;
    long schedule_steps; /* the learning-rate schedule's length */
    long total_steps;    /* steps this run will take */
} dp_run_desc;

/* --resume: pick the newest complete, intact checkpoint (rank 0 reads each candidate whole
 * to check it; a damaged one is passed over with a warning), once, before the run is built,
 * so that its settings can shape the run (the convolution algorithm) and
 * ckpt_policy_resume restores the same file. Where there is none yet (a requeued job's
 * first run; a directory not made yet, which ckpt_policy_setup makes), says that the run
 * starts from the beginning. Does nothing without --resume. */
int ckpt_policy_pick(dp_ckpt_policy *p, const dp_comm *c, const dp_config *cfg, dp_err *err);

/* Create --checkpoint-dir (or use --resume's directory) and checksum the training data
 * (train: the files this rank holds; it sums the samples of its own part of the plan). */
int ckpt_policy_setup(dp_ckpt_policy *p, const dp_comm *c, const dp_config *cfg,
                      const dp_plan *plan, const dp_dataset *train, dp_err *err);

/* --resume: restore weights, optimizer state and the gradient sum's bounds from the file
 * ckpt_policy_pick chose (written by any number of ranks); *start_step is the steps it had
 * done (0 when there is none yet: the first run of a requeued job starts fresh). */
int ckpt_policy_resume(dp_ckpt_policy *p, const dp_comm *c, const dp_run_desc *run, dp_model *m,
                       dp_optimizer *opt, dp_gradsync *sync, long *start_step, dp_err *err);

/* After ckpt_policy_resume: the checkpoint directory must hold no complete checkpoint of
 * another run (refused, naming it), unless --overwrite-checkpoints, which deletes them. */
int ckpt_policy_claim(dp_ckpt_policy *p, const dp_comm *c, const dp_config *cfg, dp_err *err);

/* Whether the policy writes a checkpoint after `step` steps: mid-epoch (every N steps,
 * not at an epoch's end, which waits for the evaluation) or at an epoch's end. */
int ckpt_policy_due(const dp_ckpt_policy *p, const dp_config *cfg, long step,
                    long steps_per_epoch, int end_of_epoch);

/* Write the checkpoint of `step` steps (rank 0), then prune to --keep; rank 0 then tells
 * the watchdog (may be NULL) that it waits for the others (watchdog_written). */
int ckpt_policy_write(dp_ckpt_policy *p, const dp_comm *c, const dp_run_desc *run,
                      const dp_model *m, const dp_optimizer *opt, const dp_gradsync *sync,
                      long step, dp_watchdog *watchdog, dp_err *err);

#endif
