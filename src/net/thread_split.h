/* thread_split: how a parallel region's threads share n items. Internal to the net
 * library. Any split gives the same bits (every element's chain is its own, or its sum
 * exact); the splits only decide who does what. */
#ifndef DPTRAIN_NET_THREAD_SPLIT_H
#define DPTRAIN_NET_THREAD_SPLIT_H

#include <omp.h>

/* [lo, hi) of n items for the calling thread of the team: the split used by every
 * row-parallel loop. */
static inline void thread_range(int n, int *lo, int *hi)
{
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    *lo = (int)((long)n * t / T);
    *hi = (int)((long)n * (t + 1) / T);
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

#endif
