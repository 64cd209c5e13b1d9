/* gradsync: from each rank's gradient of its share of the batch to the mean gradient of
 * the global batch, the same bits on every rank.
 *
 * The caller describes its flat gradient buffer as segments in the order backward
 * finishes them (for the net: each trainable layer's tensors, last layer first), each
 * with an id that the backward hook reports. Adjacent segments are packed into buckets
 * of at least bucket_bytes; a gap (a frozen layer: never computed nor reduced) closes a
 * bucket. With overlap, a bucket's reduction starts as soon as backward has reported the
 * id of its last segment and runs while backward goes on; without, all start after
 * backward. Either way the same buckets are reduced, so the bits are the same.
 * gradsync owns its buckets and the reductions in flight; the caller owns the buffer;
 * comm does the MPI and knows nothing of models. */
#ifndef DPTRAIN_GRADSYNC_H
#define DPTRAIN_GRADSYNC_H

#include <stddef.h>

#include "dptrain/util/error.h"

typedef struct {
    size_t begin, end; /* [begin, end) of the flat gradient buffer */
    int ready_after;   /* the id the backward hook reports when this segment is final */
} dp_grad_segment;

typedef struct dp_gradsync dp_gradsync;

int gradsync_create(dp_gradsync **out, float *grads, size_t size, const dp_grad_segment *seg,
                    int nseg, size_t bucket_bytes, int overlap, int nranks, dp_err *err);
void gradsync_free(dp_gradsync *gs);
int gradsync_buckets(const dp_gradsync *gs);

/* Optional (tracing): fn(ctx, bucket, 0) as a bucket's reduction starts and
 * fn(ctx, bucket, 1) as this rank sees it complete; NULL turns it off (the default). */
typedef void (*dp_bucket_event)(void *ctx, int bucket, int done);
void gradsync_observe(dp_gradsync *gs, dp_bucket_event fn, void *ctx);
/* The bytes bucket b reduces. */
size_t gradsync_bucket_bytes(const dp_gradsync *gs, int bucket);

/* A new step: nothing started yet. */
void gradsync_begin(dp_gradsync *gs);
/* The backward hook: segment id `ready_after` (and every one before it in backward order)
 * is final; start the buckets that are now complete (with overlap) and let MPI advance. */
void gradsync_ready(dp_gradsync *gs, int ready_after);
/* Start what is left, wait for every bucket, and divide the whole buffer by the number of
 * samples in the global batch. Returns the seconds spent waiting for the reductions. */
double gradsync_finish(dp_gradsync *gs, int global_batch);

#endif
