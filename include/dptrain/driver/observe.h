/* observe: what the training loop tells the step log (--log-every, steplog.h) and the
 * trace (--trace, trace.h), in one place, so that the loop makes a handful of calls and
 * neither part needs to know the loop.
 *
 * The loop marks each step's phases with the clock it already reads (dp_step_marks); the
 * pass's timing hook (observe_layer) gives the start of backward and, in the trace window,
 * each layer's forward and backward; gradsync's bucket hook gives each reduction. With
 * neither option on there is no observer (NULL) and every call returns at once. */
#ifndef DPTRAIN_OBSERVE_H
#define DPTRAIN_OBSERVE_H

#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/driver/cli.h"
#include "dptrain/net/model.h"
#include "dptrain/util/error.h"

#include <stdio.h>

typedef struct dp_observe dp_observe;

/* comm_time() at the phase boundaries of one step. */
typedef struct {
    double start;    /* before the batch is assembled */
    double data_end; /* forward and backward begin */
    double pass_end; /* backward done (reductions may still run) */
    double wait_end; /* every bucket reduced, the gradient averaged, the stop vote read */
    double end;      /* the update done */
} dp_step_marks;

typedef enum { OBSERVE_EVAL, OBSERVE_CHECKPOINT } dp_observe_span;

/* *o stays NULL when neither --log-every nor --trace is on. metrics: rank 0's --metrics
 * file. steps_left: the run's steps still to do (sizes the trace buffer). Not collective:
 * agree on the result, then call observe_start. */
int observe_create(dp_observe **o, const dp_comm *c, const dp_config *cfg, FILE *metrics,
                   const dp_model *m, dp_gradsync *gs, long steps_left, int groups,
                   dp_err *err);
/* Collective (the trace's first clock measurement). */
void observe_start(dp_observe *o, const dp_comm *c);
void observe_free(dp_observe *o);

/* dp_pass.timing, with the observer as its context. */
void observe_layer(void *o, int layer, int backward, int end);
/* Step `step` (1-based) begins; then it ended with these marks and results. */
void observe_step_begin(dp_observe *o, long step);
void observe_step_end(dp_observe *o, long step, const dp_step_marks *mk, double loss, int correct,
                      int samples);
/* Collective, after each step (epoch_end 0) and after the epoch's last step (1): the step
 * record when due. At an epoch's end a failed write is agreed (returns -1 everywhere). */
int observe_after_step(dp_observe *o, long step, int epoch, double lr, double wall, int epoch_end,
                       const dp_comm *c, dp_err *err);
/* An evaluation or a checkpoint write, for the trace. */
void observe_span(dp_observe *o, dp_observe_span what, double begin, double end);
/* Collective, after training: the trace file. */
int observe_finish(dp_observe *o, const dp_comm *c, const dp_model *m, const dp_gradsync *gs,
                   dp_err *err);

#endif
