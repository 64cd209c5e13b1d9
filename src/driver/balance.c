#include "dptrain/driver/balance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/driver/metrics.h"
#include "dptrain/net/threads.h"
#include "dptrain/util/test_hooks.h"

int balance_init(dp_balance *b, const dp_comm *c, int on, int report, int threads,
                 dp_err *err)
{
    memset(b, 0, sizeof *b);
    b->ranks = c->size;
    b->rank = c->rank;
    b->on = on && c->size > 1;
    b->threads = threads;
    b->report = b->on || (report && c->size > 1) || threads;
    dp_threads_balance(threads);
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

/* Rank 0's line on the threads: its own threads' shares at the end, and with several
 * ranks the most uneven rank's least share against an even one. */
static void print_threads(const int64_t *all, int n, const double *shares, int T)
{
    printf("balance: each rank's threads' shares of its samples and rows followed their "
           "speeds; ");
    if (!T) {
        printf("the run ended before they were first measured\n");
        return;
    }
    printf("rank 0's at the end:");
    for (int t = 0; t < T && t < 8; t++)
        printf(" %d: %.1f%%", t, 100.0 * shares[t]);
    if (T > 8)
        printf(" ...");
    int r0 = 0;
    for (int r = 1; r < n; r++)
        r0 = all[3 * r + 2] < all[3 * r0 + 2] ? r : r0;
    if (n > 1)
        printf("; the least share on any rank %.2fx an even one (rank %d)",
               1e-6 * (double)all[3 * r0 + 2], r0);
    printf("\n");
}

/* Rank 0's lines: the shares where the ranks balanced, then every rank's own speed; the
 * threads' shares where they balanced. */
static void print_report(const dp_balance *b, const int64_t *all, double *v, const double *shares,
                         int T)
{
    const int n = b->ranks;
    if (b->on) {
        double total = 0.0;
        for (int r = 0; r < n; r++)
            total += (double)all[3 * r];
        printf("balance: the ranks' shares of the samples followed their speeds (exchanged "
               "every %d steps):", BALANCE_EVERY);
        for (int r = 0; r < n && total > 0.0; r++)
            v[r] = 100.0 * (double)all[3 * r] / total;
        if (total > 0.0)
            print_ranks(v, n, "%.1f%%");
        printf("\n");
    }
    if (n > 1) {
        for (int r = 0; r < n; r++)
            v[r] = (double)all[3 * r + 1];
        int lo, hi;
        lowest_highest(v, n, &lo, &hi);
        printf("balance: the ranks' own speeds over the run (samples per second of their "
               "work):");
        print_ranks(v, n, "%.0f");
        if (v[hi] > 0.0)
            printf("; the slowest at %.2fx the fastest", v[lo] / v[hi]);
        if (!b->on && v[lo] < 0.9 * v[hi])
            printf(" (not balanced: --balance on would give the faster ranks more of each "
                   "step)");
        printf("\n");
    }
    if (b->threads)
        print_threads(all, n, shares, T);
}

int balance_report(const dp_balance *b, const dp_comm *c, int say, FILE *metrics, dp_err *err)
{
    if (!b->report)
        return 0;
    double shares[DP_THREADS_BALANCED_MAX];
    const int T = b->threads ? dp_threads_shares(shares, DP_THREADS_BALANCED_MAX) : 0;
    double least = T ? 1.0 : 0.0;
    for (int t = 0; t < T; t++)
        least = shares[t] * T < least ? shares[t] * T : least;
    /* samples, samples per second of the rank's own work (0: it computed nothing), and its
     * threads' least share against an even one, in millionths (0: not measured) */
    const int64_t mine[3] = {
        (int64_t)b->run_samples,
        b->run_seconds > 0.0 ? (int64_t)(b->run_samples / b->run_seconds + 0.5) : 0,
        (int64_t)(least * 1e6 + 0.5)};
    const size_t n = (size_t)c->size;
    int64_t *all = c->rank == 0 ? calloc(3 * n, sizeof(int64_t)) : NULL;
    double *v = c->rank == 0 ? calloc(n, sizeof(double)) : NULL;
    if (c->rank == 0 && !(all && v))
        comm_abort(1); /* cannot join the gather: end the job rather than hang it */
    comm_gather_i64(mine, 3, all);
    const int every = b->on ? BALANCE_EVERY : 0;
    int rc = metrics ? metrics_write_balance(metrics, c->size, every, all, T, shares, err) : 0;
    if (c->rank == 0 && say)
        print_report(b, all, v, shares, T);
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
