/* gradsync_impl: gradsync's state, shared by its two files (gradsync.c, and
 * gradsync_shared.c for the sum through shared memory). Not for other modules. */
#ifndef DPTRAIN_GRADSYNC_IMPL_H
#define DPTRAIN_GRADSYNC_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"

/* Each tensor's extras, reduced with its bucket: NaN/Inf count, count over the bound,
 * and one counter per binary exponent of the ranks' largest partials (only the highest
 * nonzero one is used: it is the same whatever the rank count). */
#define EMIN (-160)
#define NBINS 300
#define EXTRAS (2 + NBINS)

typedef struct {
    size_t offset, count; /* in the float buffer */
    size_t value, extra;  /* in the accumulator */
    int E;                /* partials must be below 2^E */
    double scale, unscale, bound; /* 2^F, 2^-F, 2^E for this step */
    float maxabs;         /* this rank's largest partial this step */
    int64_t over, nonfinite;
    int bad;              /* a NaN or an Inf on some rank: the sum is handed on as NaN */
    int segment;          /* -1: never reduced (a frozen layer) */
} tensor_state;

typedef struct {
    int tensor0, tensor1; /* its tensors [tensor0, tensor1) */
    int ready_after;
} segment_state;

/* A piece of one tensor's values that the shared sum takes at once (gradsync_shared.c):
 * elements [k0, k0 + n) of tensor `tensor`, final once `need` segments are. */
typedef struct {
    int tensor;
    size_t k0, n;
    int need;
} shared_chunk;

typedef struct {
    int seg0, seg1;        /* its segments [seg0, seg1), backward order */
    size_t begin, end;     /* its part of the accumulator: values, then extras */
} bucket_state;

struct dp_gradsync {
    float *grads;
    size_t size;
    int overlap, nranks;
    tensor_state *t;
    int nt;
    segment_state *seg;
    int nseg;
    bucket_state *b;
    int nb;
    int64_t *acc;
    size_t acc_size;
    int acc_zero;         /* the accumulator is all zero (gradsync_finish left it so: the
                             step finished, and `taken` is that step's) */
    size_t *gap;          /* [2 * ngaps]: the spans [begin, end) of the float buffer outside
                             every reduced tensor, which gradsync_begin clears even after a
                             taken step */
    int ngaps;
    dp_reducer *reducer;
    int groups;           /* in this step's global batch */
    int last;             /* the current pass is this rank's last of the step */
    int pass;             /* the current pass's number in the step, from 1 */
    int next_bucket;      /* buckets whose extras are written (and reduction started) */
    int started;          /* buckets whose reduction was started */
    dp_bucket_event observe; /* tracing, or NULL */
    void *observe_ctx;
    dp_shared *shared;    /* summed through shared memory (gradsync_share), else NULL */
    int rank;
    int64_t **peer;       /* [nranks]: every rank's accumulator, in the shared memory */
    float **stage;        /* [nranks]: the floats of the chunks each rank summed, laid out as
                             the float buffer */
    size_t values;        /* the reduced tensors' values, all together */
    size_t control_at;    /* bytes from a rank's part of the window to its control lines */
    shared_chunk *chunk;  /* the shared sum's chunks, in backward order */
    int nchunks;
    int summed;           /* the chunks this rank summed in its last gradsync_finish */
    int take_now;         /* the chunks this rank sums go to the consumer as they are summed */
    int spins;            /* a wait's spins before it gives up the CPU (gradsync_shared.c) */
    int closed;           /* segments whose extras are written (the shared sum's path) */
    int64_t seq;          /* gradsync_begin's calls: the same on every rank */
    dp_take_fn take;      /* gradsync_take_with, or NULL */
    void *take_ctx;
    int taken;            /* the last finished step's sums went to take */
};

/* Element-wise passes over at least this many elements are run by all of the rank's
 * threads (each a contiguous part); shorter ones by the calling thread, where a fork
 * would cost more than it saves. */
#define SPLIT_MIN 32768

/* part(ctx, lo, hi) over [lo, hi) covering [0, n), outside any parallel region: on the
 * calling thread below a size where a fork costs more than it saves, else one part per
 * thread, each starting on a multiple of 16. For passes whose elements are independent
 * (or, as the moves, exact): the parts change no result. */
void gradsync_by_parts(size_t n, void (*part)(void *ctx, size_t lo, size_t hi), void *ctx);
/* The values a pass over a tensor's sums takes at a time on the way to gradsync_take_with's
 * consumer: in L1. */
#define TAKE_CHUNK 512
/* Whether this step's sums go to the consumer: one is set and no sum is NaN or Inf (after
 * gradsync_verdicts; the same answer on every rank). Sets gs->taken. */
int gradsync_use_take(dp_gradsync *gs);
/* Every reduced tensor's verdict from its extras over all ranks (in the accumulator after
 * an MPI reduction, else in every rank's shared one): sets its bound for the next step and
 * whether its sum is handed on as NaN; returns 1 when the step must be computed again. */
int gradsync_verdicts(dp_gradsync *gs);
/* Through shared memory: tells the other ranks that this rank's partials of the first
 * `segments` segments (and their extras) are final in this step (gradsync_shared.c). */
void gradsync_publish(dp_gradsync *gs, int segments);
/* gradsync_finish through shared memory, once every segment is published
 * (gradsync_shared.c). */
int gradsync_finish_shared(dp_gradsync *gs, double *waited);

#endif
