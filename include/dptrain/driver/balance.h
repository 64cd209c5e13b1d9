/* balance: the ranks' shares of each step follow their measured speeds (--balance on).
 *
 * The ranks step together, so a step lasts as long as its slowest rank's share. Cores of
 * one job are not always equally fast: a virtual machine's CPUs (30-40% apart on the AMD
 * Zen 5 of docs/performance.md, which one is slower changing within minutes), hybrid
 * cores, a throttled or shared node. Each rank times its own work of each step (from the
 * step's start to the end of its last backward pass: no waiting, no sum); every
 * BALANCE_EVERY steps the ranks exchange their samples and seconds since the last
 * exchange (one small allreduce, right after the step's sum, where the ranks are together
 * anyway), smooth each rank's samples per second, and the data plan moves the boundaries
 * between the ranks' runs of groups towards those speeds (plan_set_speeds), within the
 * files each rank holds (its own and one neighbour's on either side). Every rank computes
 * the same split from the same exchanged numbers.
 *
 * The groups do not change, only which rank computes each of them, and the groups' sum is
 * exact (gradsync.h): the weights are the same bits as without balancing.
 *
 * Within a rank of 2 or more threads the threads balance as well (net/threads.h: their
 * runs of every loop follow their speeds, measured and reviewed inside the net library,
 * with no communication); balance_init turns that on with the same decision, and the end
 * reports their shares beside the ranks'. */
#ifndef DPTRAIN_DRIVER_BALANCE_H
#define DPTRAIN_DRIVER_BALANCE_H

#include <stdio.h>

#include "dptrain/data/plan.h"
#include "dptrain/dist/comm.h"
#include "dptrain/util/error.h"

#define BALANCE_EVERY 8

typedef struct {
    int on, ranks, rank;
    int threads;             /* this rank's threads, where they balance (threads.h); else 0 */
    int report;              /* the speeds are reported at the end (balance_init) */
    double samples, seconds; /* this rank's own work since the last exchange */
    double *speed;           /* [ranks]: smoothed samples per second, the same on every rank */
    double *swap;            /* [2 * ranks]: the exchange */
    double run_samples;      /* this rank's samples over the run */
    double run_seconds;      /* and its own work's seconds, as measured (no test scaling) */
} dp_balance;

/* Off (nothing exchanged) unless `on` and there are several ranks; with several ranks the
 * end reports their speeds where `report` (balancing, or --balance off, but not where the
 * ranks take turns on the cores: their timings say nothing lasting). With threads > 1 the
 * rank's threads balance too (dp_threads_balance) and the end reports their shares. */
int balance_init(dp_balance *b, const dp_comm *c, int on, int report, int threads,
                 dp_err *err);
/* This rank computed `samples` samples in `seconds` of its own work this step. */
void balance_note(dp_balance *b, int samples, double seconds);
/* After optimizer step `step` (1-based): every BALANCE_EVERY steps the exchange and the new
 * split. Collective: every rank calls it after the same steps. */
void balance_after_step(dp_balance *b, long step, dp_plan *plan);
/* Where the ranks balanced, rank 0 (when `say`) prints each rank's share of the samples it
 * trained on; where they balanced or report, each rank's own speed over the run (samples
 * per second of its work) against the fastest's: a slow node or core by name; where the
 * threads balanced, rank 0's threads' shares and the least share on any rank; and writes
 * them to `metrics` when not NULL (only rank 0 has it open; "every": 0 where the shares
 * were the files'): -1 with err where that write fails. Collective. */
int balance_report(const dp_balance *b, const dp_comm *c, int say, FILE *metrics, dp_err *err);
void balance_free(dp_balance *b);

#endif
