/* watchdog: a helper thread that ends the whole job when a rank falls far behind.
 *
 * The training loop tells the watchdog which step it is in and whether it is computing
 * or waiting in the gradient allreduce. A rank whose step has been computing for longer
 * than the limit reports itself (rank, step, seconds) and aborts the job; a rank that has
 * waited in the allreduce for the limit plus a grace period (time for the slow rank to
 * report itself first) reports that another rank fell behind or stopped, and aborts.
 * Evaluation and saving are not watched. The abort goes through comm_abort (MPI_Abort),
 * so mpirun ends every rank. The watchdog owns its thread; watchdog_stop joins it.
 *
 * For tests only: DPTRAIN_TEST_STALL=RANK:STEP:SECONDS makes that rank sleep in the
 * compute phase of that (1-based) step, to simulate a rank that falls behind. */
#ifndef DPTRAIN_WATCHDOG_H
#define DPTRAIN_WATCHDOG_H

#include "dptrain/util/error.h"

typedef struct dp_watchdog dp_watchdog;

typedef enum { WATCH_IDLE, WATCH_COMPUTE, WATCH_ALLREDUCE } dp_watch_phase;

/* seconds <= 0: no thread (but the test stall still works). *w is NULL on failure. */
int watchdog_start(dp_watchdog **w, double seconds, int rank, dp_err *err);
/* Enter a phase of 1-based step `step` now (cheap: a few atomic stores). */
void watchdog_phase(dp_watchdog *w, long step, dp_watch_phase phase);
void watchdog_stop(dp_watchdog *w);

#endif
