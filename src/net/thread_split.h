/* thread_split: how a parallel region's threads share n items. Internal to the net
 * library. Any split gives the same bits (every element's chain is its own, or its sum
 * exact); the splits only decide who does what.
 *
 * By default the threads take even shares. With balancing on (threads.h) the shares follow
 * the threads' own speeds, measured in the per-sample loops of the convolutions, so that a
 * thread on a slower core (a busy neighbour, a lower clock) takes fewer samples and rows and
 * the faster one does not wait for it at the end of each loop. The shares change only
 * between parallel regions (split_review), so every region sees one split. */
#ifndef DPTRAIN_NET_THREAD_SPLIT_H
#define DPTRAIN_NET_THREAD_SPLIT_H

#include <stdint.h>

#include <omp.h>

#include "dptrain/net/threads.h"

enum { SPLIT_MAX_THREADS = DP_THREADS_BALANCED_MAX, SPLIT_ONE_SHIFT = 20 };

/* The cuts in use: thread t takes [cut[t], cut[t + 1]) of every n, in units of
 * 2^-SPLIT_ONE_SHIFT; used where team equals the region's number of threads, else the
 * even split. The OpenMP team's own state, one per process, as the team is. */
typedef struct {
    int team;
    int64_t cut[SPLIT_MAX_THREADS + 1];
} thread_cuts;

extern thread_cuts dp_thread_cuts;

static inline int split_point(int n, int t, int T)
{
    if (dp_thread_cuts.team != T)
        return (int)((long)n * t / T);
    const int64_t half = (int64_t)1 << (SPLIT_ONE_SHIFT - 1);
    return (int)(((int64_t)n * dp_thread_cuts.cut[t] + half) >> SPLIT_ONE_SHIFT);
}

/* [lo, hi) of n items for the calling thread of the team: the split used by every
 * row-parallel loop. */
static inline void thread_range(int n, int *lo, int *hi)
{
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    *lo = split_point(n, t, T);
    *hi = split_point(n, t + 1, T);
}

/* The calling thread's run of whole blocks of `block` items out of n, [lo, hi): lo a
 * multiple of block, hi too or n. Empty where there are fewer blocks than threads. */
static inline void thread_blocks(int n, int block, int *lo, int *hi)
{
    int b0, b1;
    thread_range((n + block - 1) / block, &b0, &b1);
    *lo = b0 * block;
    *hi = b1 * block < n ? b1 * block : n;
}

/* The measure, in a timed region: split_start() as a thread starts its items, then
 * split_note(t0, n) when it has done its thread_range of the region's n. Cheap where
 * balancing is off. */
double split_start(void);
void split_note(double t0, int n);

/* After a timed region, outside any: every few regions the shares move toward the
 * threads' measured speeds. */
void split_review(void);

#endif
