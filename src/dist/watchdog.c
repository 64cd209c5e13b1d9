/* watchdog: the helper thread (watchdog.h). It never calls MPI: it ends its own process
 * and leaves ending the others to the launcher. */
#include "dptrain/dist/watchdog.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dptrain/util/test_hooks.h"

struct dp_watchdog {
    double step_limit, io_limit; /* seconds; 0: off */
    int rank;
    atomic_long step;
    atomic_int phase;
    atomic_llong since_ns; /* when the current phase began */
    atomic_int stop;
    int has_thread;
    pthread_t thread;
};

/* Each phase: its name, its limit (the step's or the slow phases'), who works in it (the
 * others wait for them and give them a grace period to name themselves), and how the
 * messages describe it. */
enum { WAITS, WORKS, RANK0_WORKS };
typedef struct {
    const char *name;
    int io;  /* 1: --watchdog-io, 0: --watchdog */
    int who; /* WAITS, WORKS or RANK0_WORKS */
    const char *what; /* with the step */
} phase_info;

static const phase_info phases[WATCH_NPHASES] = {
    [WATCH_IDLE] = {"idle", 0, WAITS, NULL},
    [WATCH_COMPUTE] = {"compute", 0, WORKS, NULL},
    [WATCH_ALLREDUCE] = {"allreduce", 0, WAITS, NULL},
    [WATCH_EVAL] = {"evaluation", 1, WORKS, "the evaluation after step %ld"},
    [WATCH_EVAL_SUMS] = {"evaluation-sums", 1, WAITS, "the epoch-end sums after step %ld"},
    [WATCH_CHECKPOINT] = {"checkpoint", 1, RANK0_WORKS, "the checkpoint write of step %ld"},
    [WATCH_RESUME] = {"resume", 1, RANK0_WORKS, "the checkpoint read of --resume (step %ld)"},
    [WATCH_SAVE] = {"save", 1, RANK0_WORKS, "the --save write after step %ld"},
    [WATCH_METRICS] = {"metrics", 1, RANK0_WORKS, "the metrics write after step %ld"},
    [WATCH_WRITTEN] = {"written", 1, WAITS, "the agreement after the write of step %ld"},
};

const char *watchdog_phase_name(dp_watch_phase phase)
{
    return phase >= 0 && phase < WATCH_NPHASES ? phases[phase].name : "unknown";
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The waiting side gives the rank it waits for time to name itself first. */
static double grace(double limit) { return limit * 0.5 + 2.0; }

/* Say why, then end this process without MPI (the main thread may be inside an MPI call,
 * and MPI is initialised for calls from the main thread only): the launcher sees a rank
 * killed and ends the job. */
_Noreturn static void end_job(const char *why)
{
    if (ftrylockfile(stdout) == 0) { /* the main thread may hold it, blocked */
        fflush_unlocked(stdout);
        funlockfile(stdout);
    }
    if (write(STDERR_FILENO, why, strlen(why)) < 0) {
        /* nothing to do */
    }
    kill(getpid(), SIGKILL);
    _exit(1); /* not reached */
}

/* The message when the current phase has run past its limit, else "". */
static void check_phase(const dp_watchdog *w, int phase, long step, double waited, char *why,
                        size_t len)
{
    why[0] = 0;
    if (phase <= WATCH_IDLE || phase >= WATCH_NPHASES)
        return;
    const phase_info *p = &phases[phase];
    const double limit = p->io ? w->io_limit : w->step_limit;
    const int works = p->who == WORKS || (p->who == RANK0_WORKS && w->rank == 0);
    if (limit <= 0 || waited <= (works ? limit : limit + grace(limit)))
        return;
    char what[96] = "";
    if (p->what)
        snprintf(what, sizeof what, p->what, step);
    if (phase == WATCH_COMPUTE)
        snprintf(why, len, "dptrain: error: watchdog: rank %d fell behind: step %ld has been "
                           "computing for %.1f s, longer than --watchdog %g; aborting the job\n",
                 w->rank, step, waited, limit);
    else if (phase == WATCH_ALLREDUCE)
        snprintf(why, len, "dptrain: error: watchdog: rank %d waited %.1f s in the gradient "
                           "allreduce of step %ld (--watchdog %g): another rank fell behind or "
                           "stopped; aborting the job\n", w->rank, waited, step, limit);
    else if (works)
        snprintf(why, len, "dptrain: error: watchdog: rank %d has spent %.1f s in %s, longer "
                           "than --watchdog-io %g; aborting the job\n", w->rank, waited, what,
                 limit);
    else
        snprintf(why, len, "dptrain: error: watchdog: rank %d waited %.1f s for %s in %s "
                           "(--watchdog-io %g): %s is stuck or stopped; aborting the job\n",
                 w->rank, waited, p->who == RANK0_WORKS ? "rank 0" : "the other ranks", what,
                 limit, p->who == RANK0_WORKS ? "rank 0" : "another rank");
}

static void *watch(void *arg)
{
    dp_watchdog *w = arg;
    double shortest = w->step_limit > 0 && (w->io_limit <= 0 || w->step_limit < w->io_limit)
                          ? w->step_limit
                          : w->io_limit;
    double tick = shortest / 10.0;
    tick = tick < 0.05 ? 0.05 : tick > 0.5 ? 0.5 : tick;
    struct timespec nap = {(time_t)tick, (long)((tick - (double)(time_t)tick) * 1e9)};
    char why[512];
    while (!atomic_load(&w->stop)) {
        nanosleep(&nap, NULL);
        int phase = atomic_load(&w->phase);
        long step = atomic_load(&w->step);
        double waited = (double)(now_ns() - atomic_load(&w->since_ns)) * 1e-9;
        check_phase(w, phase, step, waited, why, sizeof why);
        if (why[0])
            end_job(why);
    }
    return NULL;
}

int watchdog_start(dp_watchdog **out, double step_seconds, double io_seconds, int rank,
                   dp_err *err)
{
    dp_watchdog *w = dp_calloc(1, sizeof *w, "watchdog", err);
    *out = w;
    if (!w)
        return -1;
    w->step_limit = step_seconds > 0 ? step_seconds : 0;
    w->io_limit = io_seconds > 0 ? io_seconds : 0;
    w->rank = rank;
    atomic_store(&w->phase, WATCH_IDLE);
    atomic_store(&w->since_ns, now_ns());
    if (w->step_limit > 0 || w->io_limit > 0) {
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
    test_hook_phase(w->rank, step, watchdog_phase_name(phase));
}

void watchdog_written(dp_watchdog *w, int rank, long step)
{
    if (rank == 0)
        watchdog_phase(w, step, WATCH_WRITTEN);
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
