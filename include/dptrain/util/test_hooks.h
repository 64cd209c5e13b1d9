/* test_hooks: fault injection for the tests, compiled into the test build only.
 *
 * The parts call these at the moments a test needs to break; what they do is decided at
 * link time. dptrain, dptrain-eval and dptrain-data (what is installed) link the empty
 * hooks (src/util/test_hooks.c without DPTRAIN_TEST_HOOKS), so no environment variable
 * can crash, stall or stop a production run. dptrain-testhooks, the same program built
 * for the tests only and never installed, links the hooks that read:
 *   DPTRAIN_TEST_CRASH_IN_CHECKPOINT=N   end the process (as kill -9) halfway through the
 *                                        N-th checkpoint write of this run
 *   DPTRAIN_TEST_STOP_IN_CHECKPOINT=N    stop it there with SIGSTOP instead (a writer stuck
 *                                        on a file system)
 *   DPTRAIN_TEST_STALL=RANK:STEP:SECONDS[:PHASE]   that rank sleeps SECONDS (or, for
 *                                        "stop", stops itself with SIGSTOP) when it enters
 *                                        PHASE (a watchdog phase name, watchdog.c; default
 *                                        compute) of step STEP
 *   DPTRAIN_TEST_SAMPLE_LOG=PREFIX      each rank appends "step sample" lines, one per sample
 *                                        it trains on, to PREFIX.RANK (which samples each
 *                                        step used, for the once-per-epoch test)
 *   DPTRAIN_TEST_PROGRESS_LINES_S=S      plain progress lines for epochs projected to take S
 *                                        seconds or more (instead of 30)
 *   DPTRAIN_TEST_OLD_TIES=1              the data order's older rule for ties (plan.h
 *                                        PLAN_TIES_LOWER) from the start, as a program from
 *                                        before 2026-12-03 trained and checkpointed
 *   DPTRAIN_TEST_ISA_LACKS=RANK:NAME     that rank acts as if its CPU lacked the kernels'
 *                                        path NAME (avx512 or avx2), for the refusal of
 *                                        --isa on a machine that has every path
 *   DPTRAIN_TEST_SHM_FREE=RANK:MIB       that rank sees MIB free in MPI's shared-memory
 *                                        directory, for the room check of the gradient sum
 *                                        through shared memory (comm.c)
 *   DPTRAIN_TEST_SLOW_RANK=RANK:FACTOR[:STEPS]   that rank's own work per step counts
 *                                        FACTOR times its measured seconds for --balance (a
 *                                        slower core), for the first STEPS steps (or all)
 *   DPTRAIN_TEST_THREAD_SPLIT=S0,S1,...[:rotate]   every rank's threads take these shares
 *                                        of every loop (threads.h dp_threads_force); with
 *                                        :rotate the shares move one thread along after
 *                                        every timed region
 *   DPTRAIN_TEST_SLOW_THREAD=T:FACTOR    thread T's measured times count FACTOR times, for
 *                                        the threads' balancing (a slower core)
 * test_hooks_enabled() says which build this is. */
#ifndef DPTRAIN_TEST_HOOKS_H
#define DPTRAIN_TEST_HOOKS_H

#include <stdint.h>

int test_hooks_enabled(void);
/* Halfway through a checkpoint write (rank 0, after the weights, before the state). */
void test_hook_checkpoint_write(void);
/* A rank entering watchdog phase `phase` (its name) of 1-based step `step`. */
void test_hook_phase(int rank, long step, const char *phase);
/* The shortest epoch (seconds) that gets plain progress lines: dflt, or the test's. */
double test_hook_progress_lines_s(double dflt);
/* The kernels' path this rank should act as lacking (isa.h dp_isa_hide), or NULL. */
const char *test_hook_isa_lacking(int rank);
/* The data order's rule for ties a fresh run takes: dflt, or the test's. */
int test_hook_ties(int dflt);
/* The bytes free in MPI's shared-memory directory as rank `rank` sees them: dflt, or the
 * test's. */
double test_hook_shm_free(int rank, double dflt);
/* The factor by which rank `rank` scales its measured work of a step for --balance (called
 * once a step): 1, or the test's. */
double test_hook_time_scale(int rank);
/* The tests' split of every rank's threads: their number (shares[] filled, *rotate set),
 * or 0: none. */
int test_hook_thread_split(double *shares, int max, int *rotate);
/* The factor by which thread *thread's measured times count: 1, or the test's. */
double test_hook_thread_slow(int *thread);
/* A rank about to train on the n samples of global index idx[] in 0-based step `step`. */
void test_hook_samples(int rank, long step, const int64_t *idx, int n);

#endif
