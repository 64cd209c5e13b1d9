/* run: the state of one dptrain run, shared by the loop (train.c) and its set-up and
 * tear-down (setup.c) only; the parts get explicit arguments, never this struct. */
#ifndef DPTRAIN_DRIVER_RUN_H
#define DPTRAIN_DRIVER_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "dptrain/data/batch.h"
#include "dptrain/data/data.h"
#include "dptrain/data/plan.h"
#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/dist/watchdog.h"
#include "dptrain/driver/balance.h"
#include "dptrain/driver/cli.h"
#include "dptrain/driver/observe.h"
#include "dptrain/driver/progress.h"
#include "dptrain/driver/resume.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"

/* Everything one run holds; set up once, nothing allocated per step. */
typedef struct {
    dp_comm comm;
    dp_config cfg;
    dp_run_desc run; /* threads, steps per epoch, schedule and run length */
    dp_filelist train_files, test_files;
    dp_dataset train, test;
    int has_test;
    dp_input_norm norm;
    dp_model model;
    dp_param_view *views;
    dp_optimizer *opt;
    dp_gradsync *sync;
    /* The optimizer's step made piece by piece as gradsync takes the sums
     * (gradsync_take_with), where the kind allows it (SGD), without --clip-grad-norm (which
     * needs the whole gradient first) and with every trainable tensor reduced; opt NULL:
     * the step after the sums, on the gradient. */
    dp_optim_pieces update;
    char why_not_shared[192]; /* gradsync_share's reason, for the banner */
    dp_workspace ws;
    dp_plan plan;
    int balancing;      /* --balance, decided for the ranks (setup.c balance_wanted) */
    int thread_balancing; /* and for the threads: their number, or 0 */
    dp_balance balance; /* the plan's split follows the ranks' speeds */
    int max_local, eval_batch; /* the most samples a pass gives this rank; test batch */
    int max_groups;            /* the most groups a step gives this rank */
    int64_t *sample_index;     /* this step's samples: global indices (dropout masks) */
    int64_t *batch_idx;        /* and indices into this rank's data */
    int *group_bounds;         /* a pass's groups in its batch: [max_groups + 1] */
    uint8_t *batch_labels;
    int epochs; /* epochs the run will touch (the last may be partial) */
    dp_lr_schedule lr;
    FILE *metrics;
    dp_ckpt_policy ckpt;
    long step;        /* optimizer steps done */
    int stop_signal;  /* the signal that stopped the run, 0 */
    int stopped_ckpt; /* a checkpoint was written on stop */
    dp_vote vote;     /* the stop vote in flight */
    dp_watchdog *watchdog;
    double start_time;
    dp_progress progress; /* rank 0's bar or lines (off on the other ranks) */
    dp_observe *obs;      /* --log-every, --trace; NULL when both are off */
} run_state;

int setup(run_state *s, dp_err *err);
/* After training: --save, or the stop message; returns the exit status. */
int finish_run(run_state *s, dp_err *err);
void teardown(run_state *s);

#endif
