#include "dptrain/driver/balance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/util/test_hooks.h"

int balance_init(dp_balance *b, const dp_comm *c, int on, dp_err *err)
{
    memset(b, 0, sizeof *b);
    b->ranks = c->size;
    b->rank = c->rank;
    b->on = on && c->size > 1;
    if (!b->on)
        return 0;
    b->speed = dp_calloc((size_t)c->size, sizeof(double), "balance", err);
    b->swap = dp_calloc(2 * (size_t)c->size, sizeof(double), "balance", err);
    return b->speed && b->swap ? 0 : -1;
}

void balance_note(dp_balance *b, int samples, double seconds)
{
    b->run_samples += samples;
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

void balance_report(const dp_balance *b, const dp_comm *c, int say)
{
    if (!b->on)
        return;
    const int64_t mine = (int64_t)b->run_samples;
    int64_t *all = c->rank == 0 ? calloc((size_t)c->size, sizeof(int64_t)) : NULL;
    if (c->rank == 0 && !all)
        comm_abort(1); /* cannot join the gather: end the job rather than hang it */
    comm_gather_i64(&mine, 1, all);
    if (c->rank == 0 && say) {
        int64_t total = 0;
        int lo = 0, hi = 0;
        for (int r = 0; r < c->size; r++) {
            total += all[r];
            lo = all[r] < all[lo] ? r : lo;
            hi = all[r] > all[hi] ? r : hi;
        }
        printf("balance: the ranks' shares of the samples followed their speeds (exchanged "
               "every %d steps):", BALANCE_EVERY);
        if (total > 0 && c->size <= 8)
            for (int r = 0; r < c->size; r++)
                printf(" %d: %.1f%%", r, 100.0 * (double)all[r] / (double)total);
        else if (total > 0)
            printf(" from %.1f%% (rank %d) to %.1f%% (rank %d)",
                   100.0 * (double)all[lo] / (double)total, lo,
                   100.0 * (double)all[hi] / (double)total, hi);
        printf("\n");
    }
    free(all);
}

void balance_free(dp_balance *b)
{
    free(b->speed);
    free(b->swap);
    memset(b, 0, sizeof *b);
}
