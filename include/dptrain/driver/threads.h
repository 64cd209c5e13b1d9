/* threads: how many OpenMP threads a rank runs by default, shared by dptrain and
 * dptrain-eval, so that ranks sharing a node share its cores instead of each taking them
 * all. */
#ifndef DPTRAIN_THREADS_H
#define DPTRAIN_THREADS_H

#include "dptrain/dist/comm.h"

/* The cores this process may run on (its CPU affinity, which a launcher may have set). */
int threads_cores_allowed(void);
/* OMP_NUM_THREADS, else the cores this rank may use, capped at its share of the node
 * (the cores online over the ranks on this node); at least 1. */
int threads_default(const dp_comm *c);
/* Do this node's ranks, `threads` each, outnumber its cores online (they take turns)? */
int threads_oversubscribed(const dp_comm *c, int threads);

#endif
