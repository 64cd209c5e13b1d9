/* threads: how a rank's OpenMP threads share the work of a step.
 *
 * Every parallel loop of the net splits its samples, planes or rows among the threads in
 * contiguous runs, the same runs in every layer, so that a thread finds its own samples'
 * activations in its own cache. Any split gives the same bits: each output element is one
 * chain of its own, and the weight gradients' sums are exact. By default the runs are even.
 * With balancing on, their lengths follow the threads' speeds, measured in the
 * convolutions' per-sample loops and reviewed every few steps, so that the thread on a
 * slower core takes less. The state is the process's thread team's, as OpenMP's is. */
#ifndef DPTRAIN_NET_THREADS_H
#define DPTRAIN_NET_THREADS_H

/* The most threads a rank balances; more take even runs. */
enum { DP_THREADS_BALANCED_MAX = 64 };

/* Balancing on (1) or off (0, the default: even runs). */
void dp_threads_balance(int on);

/* The shares in use, one per thread, into shares[0..max); returns how many it wrote: the
 * number of threads they are for, at most max; 0 while the runs are even (balancing off,
 * or not yet reviewed). */
int dp_threads_shares(double *shares, int max);

/* For tests: a fixed split for teams of T threads, shares summing to 1 (NULL: even runs
 * again, balancing off). With rotate the shares move one thread along after every timed
 * region, so that a layer's forward and backward see different splits. */
void dp_threads_force(const double *shares, int T, int rotate);

/* For tests: thread t's measured times count `factor` times (a slower core); 1: as measured. */
void dp_threads_slow(int t, double factor);

#endif
