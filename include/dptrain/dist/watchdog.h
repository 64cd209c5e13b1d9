/* watchdog: a helper thread that ends the whole job when a rank falls far behind or a
 * phase hangs.
 *
 * The driver tells the watchdog which step it is in and which phase: computing, waiting
 * in the gradient allreduce, or one of the slower phases with their own, longer limit
 * (evaluation, rank 0's checkpoint write, reading the checkpoint to resume from, --save,
 * the metrics record). A rank whose step has been computing for longer than the step
 * limit reports itself (rank, step, seconds); a rank that has waited in the allreduce for
 * the limit plus a grace period (time for the slow rank to report itself first) reports
 * that another rank fell behind or stopped. In the slow phases rank 0 (the writer) and,
 * in evaluation, every rank reports itself after the I/O limit; the other ranks, which
 * wait for rank 0, after the I/O limit plus its grace, naming the phase.
 *
 * The watchdog makes no MPI call: MPI is initialised MPI_THREAD_FUNNELED (only the main
 * thread calls MPI), and the main thread may itself be inside MPI when the watchdog
 * fires. It writes its message and kills its own process (SIGKILL); the launcher (mpirun,
 * or srun --kill-on-bad-exit, as jobs/launch.sh starts it) then ends every other rank.
 * The watchdog owns its thread; watchdog_stop joins it.
 *
 * For tests only (test_hooks.h, dptrain-testhooks): DPTRAIN_TEST_STALL makes a rank sleep
 * when it enters a phase, to simulate a rank that falls behind. */
#ifndef DPTRAIN_WATCHDOG_H
#define DPTRAIN_WATCHDOG_H

#include "dptrain/util/error.h"

typedef struct dp_watchdog dp_watchdog;

typedef enum {
    WATCH_IDLE,       /* not watched */
    WATCH_COMPUTE,    /* the step limit: this rank computes */
    WATCH_ALLREDUCE,  /* the step limit + grace: this rank waits for the others */
    WATCH_EVAL,       /* the I/O limit: every rank evaluates its share */
    WATCH_EVAL_SUMS,  /* the I/O limit + grace: this rank waits for the others' sums */
    WATCH_CHECKPOINT, /* the I/O limit: rank 0 writes, the others wait (+ grace) */
    WATCH_RESUME,     /* the I/O limit: rank 0 reads the checkpoint, the others wait */
    WATCH_SAVE,       /* the I/O limit: rank 0 writes --save, the others wait */
    WATCH_METRICS,    /* the I/O limit: rank 0 writes the metrics record, the others wait */
    WATCH_WRITTEN,    /* the I/O limit + grace: rank 0, its write (checkpoint, --save, the
                       * metrics record) done, waits for the others to agree on the outcome */
    WATCH_NPHASES
} dp_watch_phase;

/* The phase's name in messages and in DPTRAIN_TEST_STALL ("compute", "checkpoint", ...). */
const char *watchdog_phase_name(dp_watch_phase phase);

/* step_seconds, io_seconds <= 0: that limit is off; both off: no thread (but the test
 * stall still works). *w is NULL on failure. */
int watchdog_start(dp_watchdog **w, double step_seconds, double io_seconds, int rank,
                   dp_err *err);
/* Enter a phase of step `step` now (cheap: a few atomic stores). */
void watchdog_phase(dp_watchdog *w, long step, dp_watch_phase phase);
/* After a write that rank 0 alone makes, before the agreement on its outcome: rank 0 now
 * waits for the others (WATCH_WRITTEN), so that a rank stopped there is named as such,
 * not rank 0's write; the others stay in the write's phase, waiting for rank 0. */
void watchdog_written(dp_watchdog *w, int rank, long step);
void watchdog_stop(dp_watchdog *w);

#endif
