/* steplog: --log-every N, a step record in the --metrics file every N optimizer steps
 * and at the end of each epoch (so an epoch's step records cover exactly its steps).
 *
 * Each rank sums its steps of the window (loss, correct, samples, and the time of each
 * phase of a step); a record reduces those sums over the ranks, so it is collective: every
 * rank calls steplog_write at the same step, which it is since all ranks count the same
 * steps. Two small allreduces per record (sums, maxima), nothing in between. Rank 0
 * writes; a write error is kept and reported at the end of the epoch. */
#ifndef DPTRAIN_STEPLOG_H
#define DPTRAIN_STEPLOG_H

#include "dptrain/util/error.h"

#include <stdio.h>

/* The phases of a step, in order. */
enum { PHASE_DATA, PHASE_FORWARD, PHASE_BACKWARD, PHASE_WAIT, PHASE_UPDATE, NPHASES };
extern const char *const steplog_phase_names[NPHASES]; /* "data", "forward", ... */

typedef struct {
    long every;
    FILE *out; /* rank 0's metrics file; NULL on the others */
    int ranks;
    long steps; /* in the window so far */
    double loss, correct, samples;
    double phase[NPHASES]; /* seconds, summed over the window's steps */
    double t_first;        /* the window's first step started */
    int failed;            /* rank 0: a write failed */
} dp_steplog;

void steplog_init(dp_steplog *l, long every, FILE *out, int ranks);
/* One step of this rank: phase[NPHASES] seconds, started at t_start. */
void steplog_add(dp_steplog *l, const double *phase, double t_start, double loss, int correct,
                 int samples);
/* Whether a record is due after `step` steps (epoch_end: the epoch's last step). */
int steplog_due(const dp_steplog *l, long step, int epoch_end);
/* Collective: reduce the window over the ranks, write its record (rank 0), start a new
 * window. wall: seconds since training started; now: comm_time(). */
void steplog_write(dp_steplog *l, long step, int epoch, double lr, double wall, double now);

#endif
