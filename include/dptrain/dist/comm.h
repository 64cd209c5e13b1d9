/* comm: every MPI call of dptrain lives here, so no other module includes <mpi.h>.
 *
 * Ranks hold identical model replicas; comm sums gradient buffers across them, reduces
 * metrics, and makes the ranks agree on errors, so that a failure on one rank ends
 * the whole job instead of leaving the others waiting in a collective. */
#ifndef DPTRAIN_COMM_H
#define DPTRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"

typedef struct {
    int rank, size;             /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* among the ranks on this node */
    int nodes;                  /* number of distinct nodes */
    char host[64];
} dp_comm;

/* MPI with at least MPI_THREAD_FUNNELED (checked: refused with a message otherwise). */
int comm_init(int *argc, char ***argv, dp_comm *c, dp_err *err);
void comm_finalize(void);
/* End every rank of the job now (for errors that cannot be agreed on). */
_Noreturn void comm_abort(int status);
double comm_time(void);

/* Collective: every rank passes its own rc (0 or -1) and err. Returns 0 when all
 * succeeded; otherwise -1 on every rank, with err holding the message of the lowest
 * failing rank, prefixed by its number unless every rank failed. */
int comm_agree(const dp_comm *c, int rc, dp_err *err);

/* In-place sums over all ranks. */
void comm_allreduce_sum_double(double *buf, int n);
int64_t comm_allreduce_min_i64(int64_t v);
int64_t comm_allreduce_max_i64(int64_t v);
double comm_allreduce_max_double(double v);
/* In-place element-wise maxima over all ranks. */
void comm_allreduce_max_doubles(double *buf, int n);
void comm_broadcast(void *buf, size_t bytes, int root);
/* Rank 0 receives every rank's host name into hosts[size][64]; others pass NULL. */
void comm_gather_hosts(const dp_comm *c, char (*hosts)[64]);
/* Wrapping sum over all ranks (checksums). */
uint64_t comm_allreduce_sum_u64(uint64_t v);
/* A non-blocking vote: the maximum of one int over all ranks, started now and read
 * later (e.g. one step later), so that its latency hides behind other work. Every rank
 * must start and finish the same votes in the same order. */
typedef struct {
    int send, recv, active;
    _Alignas(8) unsigned char request[16]; /* an MPI_Request */
} dp_vote;
void comm_vote_start(dp_vote *v, int flag);
/* Wait for the vote (0 when none is active) and return the maximum. */
int comm_vote_finish(dp_vote *v);
/* Rank 0 receives every rank's n values, rank order, into all[size * n]; others pass NULL. */
void comm_gather_i64(const int64_t *mine, int n, int64_t *all);
/* Rank 0 receives every rank's bytes (mine[bytes], bytes < 2 GiB), rank order, into all,
 * rank r's at all + the sum of counts[0..r); counts[size] are the byte counts rank 0
 * learnt first (comm_gather_i64). Others pass NULL for all and counts. */
void comm_gatherv_bytes(const void *mine, int64_t bytes, void *all, const int64_t *counts);
/* Collective: how far each rank's comm_time() clock is from rank 0's, by ping-pong with
 * rank 0, one rank after the other: of `rounds` round trips, the shortest gives
 * offset = (the rank's time at the bounce) - (midpoint of rank 0's send and receive
 * times), with an error of at most half that round trip. Rank 0 receives offset[size]
 * and error[size] (its own 0, 0); others pass NULL. */
void comm_clock_offsets(const dp_comm *c, int rounds, double *offset, double *error);

/* Bucketed reduction of integers (the exact gradient sum, gradsync.h). The buffer is cut
 * into contiguous buckets; each is summed across ranks with its own non-blocking
 * allreduce, which may start as soon as its values are final. Integer sums are exact, so
 * the result does not depend on the order MPI adds in. */
typedef struct dp_reducer dp_reducer;

dp_reducer *reducer_create(int64_t *buf, const size_t *begin, const size_t *end, int nbuckets,
                           dp_err *err);
void reducer_start(dp_reducer *r, int bucket);
/* Buckets [b0, b1), none of them started, reduced now with blocking MPI_Allreduce calls
 * over their contiguous range (8 MB a call): when nothing is left to overlap with, the
 * blocking collective is the cheaper one (Open MPI 4.1 on shared memory: 0.2 ms for 1.66 MB of int64 on 2
 * ranks, against 0.4 ms for MPI_Iallreduce and its wait). Returns the seconds it took. */
double reducer_run(dp_reducer *r, int b0, int b1);
/* Let started reductions advance (MPI progresses them only inside MPI calls). */
void reducer_progress(dp_reducer *r);
/* Wait for every started bucket; returns the seconds spent waiting. */
double reducer_wait(dp_reducer *r);
/* Optional (tracing): fn(ctx, bucket) as each bucket is seen complete, in the progress
 * calls and the wait. With fn the requests are tested one by one (MPI_Testsome,
 * MPI_Waitsome) instead of all together; the reductions and their bits are the same. */
typedef void (*dp_bucket_done)(void *ctx, int bucket);
void reducer_on_done(dp_reducer *r, dp_bucket_done fn, void *ctx);
void reducer_free(dp_reducer *r);

/* Memory shared by every rank of a job that runs on one node (an MPI-3 shared window,
 * Open MPI's osc/sm: a file in /dev/shm, or OMPI_MCA_osc_sm_backing_directory). Each
 * rank owns `bytes` (rounded up to whole pages, zeroed, page aligned) and may read and
 * write every rank's part. The reduction through it is gradsync's (gradsync_share). */
typedef struct dp_shared dp_shared;
/* Collective over all ranks. *out = NULL and a reason in why[why_len] when it cannot
 * be had (the ranks span several nodes, one rank, or the backing directory lacks room
 * for every rank's part with a quarter to spare); every rank decides the same. -1 with
 * err when the window could not be made (agreed). */
int shared_create(dp_shared **out, const dp_comm *c, size_t bytes, char *why, size_t why_len,
                  dp_err *err);
void *shared_part(const dp_shared *sh, int rank);
/* Collective: what any rank wrote to shared memory before its call is seen by every rank
 * after its own call returns (a memory barrier around MPI_Barrier). */
void shared_sync(dp_shared *sh);
/* Collective (MPI_Win_free). */
void shared_free(dp_shared *sh);

#endif
