#include "dptrain/driver/balance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/driver/metrics.h"
#include "dptrain/util/test_hooks.h"

int balance_init(dp_balance *b, const dp_comm *c, int on, int report, dp_err *err)
{
    memset(b, 0, sizeof *b);
    b->ranks = c->size;
    b->rank = c->rank;
    b->on = on && c->size > 1;
    b->report = b->on || (report && c->size > 1);
    if (!b->on)
        return 0;
    b->speed = dp_calloc((size_t)c->size, sizeof(double), "balance", err);
    b->swap = dp_calloc(2 * (size_t)c->size, sizeof(double), "balance", err);
    return b->speed && b->swap ? 0 : -1;
}

void balance_note(dp_balance *b, int samples, double seconds)
{
    b->run_samples += samples;
    b->run_seconds += seconds;
    b->samples += samples;
    b->seconds += seconds * test_hook_time_scale(b->rank);
}

void balance_after_step(dp_balance *b, long step, dp_plan *plan)
{
    if (!b->on || step % BALANCE_EVERY != 0)
        return;
    /* each rank's two numbers in its own slots, zeros elsewhere: the sum is exact and the
     * same on every rank */
    memset(b->swap, 0, 2 * (size_t)b->ranks * sizeof(double));
    b->swap[2 * b->rank] = b->samples;
    b->swap[2 * b->rank + 1] = b->seconds;
    comm_allreduce_sum_double(b->swap, 2 * b->ranks);
    b->samples = b->seconds = 0.0;
    /* each measured speed smoothed over about two exchanges: a core's speed wanders over
     * seconds or minutes, one step's jitter is noise */
    double top = 0.0;
    for (int r = 0; r < b->ranks; r++) {
        const double n = b->swap[2 * r], sec = b->swap[2 * r + 1];
        if (n > 0.0 && sec > 0.0 && isfinite(sec))
            b->speed[r] = b->speed[r] > 0.0 ? 0.5 * b->speed[r] + 0.5 * (n / sec) : n / sec;
        top = b->speed[r] > top ? b->speed[r] : top;
    }
    /* A rank that computed nothing was not measured: its speed doubles (up to the fastest
     * rank's) until it gets a group again, so that a core that recovers is seen. */
    for (int r = 0; r < b->ranks; r++)
        if (!(b->swap[2 * r] > 0.0) && b->speed[r] > 0.0)
            b->speed[r] = 2.0 * b->speed[r] < top ? 2.0 * b->speed[r] : top;
    plan_set_speeds(plan, b->speed); /* one rank without a speed yet: the files' split */
}

/* The ranks with the lowest and the highest of v[0..n). */
static void lowest_highest(const double *v, int n, int *lo, int *hi)
{
    *lo = *hi = 0;
    for (int r = 0; r < n; r++) {
        *lo = v[r] < v[*lo] ? r : *lo;
        *hi = v[r] > v[*hi] ? r : *hi;
    }
}

/* Each rank's value (up to 8 ranks), or the lowest and the highest with their ranks. */
static void print_ranks(const double *v, int n, const char *fmt)
{
    int lo, hi;
    lowest_highest(v, n, &lo, &hi);
    if (n <= 8) {
        for (int r = 0; r < n; r++) {
            printf(" %d: ", r);
            printf(fmt, v[r]);
        }
        return;
    }
    printf(" from ");
    printf(fmt, v[lo]);
    printf(" (rank %d) to ", lo);
    printf(fmt, v[hi]);
    printf(" (rank %d)", hi);
}

/* Rank 0's lines: the shares where the ranks balanced, then every rank's own speed. */
static void print_report(const dp_balance *b, const int64_t *all, double *v)
{
    const int n = b->ranks;
    if (b->on) {
        double total = 0.0;
        for (int r = 0; r < n; r++)
            total += (double)all[2 * r];
        printf("balance: the ranks' shares of the samples followed their speeds (exchanged "
               "every %d steps):", BALANCE_EVERY);
        for (int r = 0; r < n && total > 0.0; r++)
            v[r] = 100.0 * (double)all[2 * r] / total;
        if (total > 0.0)
            print_ranks(v, n, "%.1f%%");
        printf("\n");
    }
    for (int r = 0; r < n; r++)
        v[r] = (double)all[2 * r + 1];
    int lo, hi;
    lowest_highest(v, n, &lo, &hi);
    printf("balance: the ranks' own speeds over the run (samples per second of their work):");
    print_ranks(v, n, "%.0f");
    if (v[hi] > 0.0)
        printf("; the slowest at %.2fx the fastest", v[lo] / v[hi]);
    if (!b->on && v[lo] < 0.9 * v[hi])
        printf(" (not balanced: --balance on would give the faster ranks more of each step)");
    printf("\n");
}

int balance_report(const dp_balance *b, const dp_comm *c, int say, FILE *metrics, dp_err *err)
{
    if (!b->report)
        return 0;
    /* samples, and samples per second of the rank's own work (0: it computed nothing) */
    const int64_t mine[2] = {
        (int64_t)b->run_samples,
        b->run_seconds > 0.0 ? (int64_t)(b->run_samples / b->run_seconds + 0.5) : 0};
    const size_t n = (size_t)c->size;
    int64_t *all = c->rank == 0 ? calloc(2 * n, sizeof(int64_t)) : NULL;
    double *v = c->rank == 0 ? calloc(n, sizeof(double)) : NULL;
    if (c->rank == 0 && !(all && v))
        comm_abort(1); /* cannot join the gather: end the job rather than hang it */
    comm_gather_i64(mine, 2, all);
    const int every = b->on ? BALANCE_EVERY : 0;
    int rc = metrics ? metrics_write_balance(metrics, c->size, every, all, err) : 0;
    if (c->rank == 0 && say)
        print_report(b, all, v);
    free(all);
    free(v);
    return rc;
}

void balance_free(dp_balance *b)
{
    free(b->speed);
    free(b->swap);
    memset(b, 0, sizeof *b);
}
