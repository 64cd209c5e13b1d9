#include "dptrain/dist/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dptrain/dist/comm.h"

struct dp_watchdog {
    double limit;
    int rank;
    atomic_long step;
    atomic_int phase;
    atomic_llong since_ns; /* when the current phase began */
    atomic_int stop;
    int has_thread;
    pthread_t thread;
    long stall_rank, stall_step, stall_seconds; /* DPTRAIN_TEST_STALL */
};

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *watch(void *arg)
{
    dp_watchdog *w = arg;
    /* The waiting side gives the slow rank time to name itself first. */
    const double grace = w->limit * 0.5 + 2.0;
    double tick = w->limit / 10.0;
    tick = tick < 0.05 ? 0.05 : tick > 0.5 ? 0.5 : tick;
    struct timespec nap = {(time_t)tick, (long)((tick - (double)(time_t)tick) * 1e9)};
    while (!atomic_load(&w->stop)) {
        nanosleep(&nap, NULL);
        int phase = atomic_load(&w->phase);
        long step = atomic_load(&w->step);
        double waited = (double)(now_ns() - atomic_load(&w->since_ns)) * 1e-9;
        if (phase == WATCH_COMPUTE && waited > w->limit) {
            fprintf(stderr, "dptrain: error: watchdog: rank %d fell behind: step %ld has been "
                            "computing for %.1f s, longer than --watchdog %g; aborting the job\n",
                    w->rank, step, waited, w->limit);
            comm_abort(1);
        }
        if (phase == WATCH_ALLREDUCE && waited > w->limit + grace) {
            fprintf(stderr, "dptrain: error: watchdog: rank %d waited %.1f s in the gradient "
                            "allreduce of step %ld (--watchdog %g): another rank fell behind or "
                            "stopped; aborting the job\n",
                    w->rank, waited, step, w->limit);
            comm_abort(1);
        }
    }
    return NULL;
}

int watchdog_start(dp_watchdog **out, double seconds, int rank, dp_err *err)
{
    dp_watchdog *w = dp_calloc(1, sizeof *w, "watchdog", err);
    *out = w;
    if (!w)
        return -1;
    w->limit = seconds;
    w->rank = rank;
    w->stall_rank = -1;
    const char *stall = getenv("DPTRAIN_TEST_STALL");
    if (stall && sscanf(stall, "%ld:%ld:%ld", &w->stall_rank, &w->stall_step,
                        &w->stall_seconds) != 3)
        w->stall_rank = -1;
    atomic_store(&w->phase, WATCH_IDLE);
    atomic_store(&w->since_ns, now_ns());
    if (seconds > 0) {
        if (pthread_create(&w->thread, NULL, watch, w) != 0) {
            free(w);
            *out = NULL;
            return dp_fail(err, "--watchdog: cannot start the watchdog thread");
        }
        w->has_thread = 1;
    }
    return 0;
}

void watchdog_phase(dp_watchdog *w, long step, dp_watch_phase phase)
{
    if (!w)
        return;
    atomic_store(&w->since_ns, now_ns());
    atomic_store(&w->step, step);
    atomic_store(&w->phase, phase);
    if (phase == WATCH_COMPUTE && w->rank == w->stall_rank && step == w->stall_step) {
        struct timespec t = {(time_t)w->stall_seconds, 0};
        nanosleep(&t, NULL);
    }
}

void watchdog_stop(dp_watchdog *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    if (w->has_thread)
        pthread_join(w->thread, NULL);
    free(w);
}
