/* gradsync: the gradient of the global batch, exactly the same bits whatever the number of
 * ranks, threads or passes it was computed in.
 *
 * The global batch is cut into fixed groups of samples (plan.h), independent of the rank
 * count. Each group's partial gradient is computed in float as one piece (the loss
 * gradient already carries the 1/B of the mean), then converted to integer fixed point
 * and added into an int64 accumulator; the accumulators are summed over the ranks with
 * an integer allreduce, which is exact in any order; the sum is rounded to float once.
 *
 * Fixed point, per parameter tensor: the partials of step t must satisfy |v| < 2^E; they
 * are stored as round(v * 2^F) with F = 53 - ceil(log2 G) - E (G: groups in the global
 * batch), so every partial sum of any subset of groups stays below 2^53 and converts to
 * double exactly. E is the largest binary exponent of any partial of the previous step
 * plus a headroom of GRADSYNC_HEADROOM bits (0 before the first step). A partial at or
 * above the bound (the gradient grew more than 2^headroom in one step) is counted; the
 * count travels in the same integer reduction, so every rank sees it, and the step is
 * computed again with E raised to what was seen. The same holds for NaN and Inf, which
 * are counted and handed on as NaN in that tensor's gradient.
 * Error bound, per element: each partial is rounded to a multiple of 2^-F (error at most
 * 2^-(F+1)), so the sum of G partials is within G * 2^-(F+1) of the exact sum of the float
 * partials, i.e. within G^2 * 2^(E-54) <= 2^(e_max + headroom + 2 lg G - 53) where e_max
 * is the tensor's largest partial exponent; then one rounding to float (half an ulp).
 * For the reference model (G <= 32, headroom 8) that is 2^-35 of the largest partial.
 *
 * The caller describes its gradient buffer as segments in the order backward finishes
 * them (for the net: each trainable layer's tensors, last layer first), each with an id
 * that the backward hook reports, and lists every parameter tensor. Adjacent segments are
 * packed into buckets of at least bucket_bytes; a gap (a frozen layer) closes a bucket.
 * In a rank's last pass of the step, a bucket's reduction starts as soon as backward
 * has reported its last segment (with overlap), or after backward (without): the same
 * integers either way. gradsync owns the accumulator and the reductions in flight; comm
 * does the MPI and knows nothing of models. */
#ifndef DPTRAIN_GRADSYNC_H
#define DPTRAIN_GRADSYNC_H

#include <stddef.h>

#include "dptrain/dist/comm.h"
#include "dptrain/net/kernels.h"
#include "dptrain/util/error.h"

#define GRADSYNC_HEADROOM 8

typedef struct {
    size_t begin, end; /* [begin, end) of the flat gradient buffer, whole tensors */
    int ready_after;   /* the id the backward hook reports when this segment is final */
} dp_grad_segment;

typedef struct {
    size_t offset, count; /* a parameter tensor in the flat gradient buffer */
} dp_grad_tensor;

typedef struct dp_gradsync dp_gradsync;

int gradsync_create(dp_gradsync **out, float *grads, size_t size, const dp_grad_segment *seg,
                    int nseg, const dp_grad_tensor *tensors, int ntensors, size_t bucket_bytes,
                    int overlap, int nranks, dp_err *err);
void gradsync_free(dp_gradsync *gs);
int gradsync_buckets(const dp_gradsync *gs);

/* Optional (tracing): fn(ctx, bucket, 0) as a bucket's reduction starts and
 * fn(ctx, bucket, 1) as this rank sees it complete; NULL turns it off (the default). */
typedef void (*dp_bucket_event)(void *ctx, int bucket, int done);
void gradsync_observe(dp_gradsync *gs, dp_bucket_event fn, void *ctx);
/* The bytes bucket b reduces. Through shared memory (gradsync_share) the whole sum is
 * one bucket, 0. */
size_t gradsync_bucket_bytes(const dp_gradsync *gs, int bucket);

/* A new step whose global batch has `groups` groups: the accumulator is cleared and the
 * float gradient buffer zeroed. After a step whose sums went to gradsync_take_with's
 * consumer only the spans outside the reduced tensors are written: the moves left every
 * partial zero and nothing wrote the reduced tensors' floats since, which is the caller's
 * part (between gradsync_finish and gradsync_begin nothing writes the buffer). */
void gradsync_begin(dp_gradsync *gs, int groups);
/* Before each backward pass over some of this rank's groups (backward runs layer by layer,
 * each layer over the pass's groups in order); `last`: the rank's last pass of the step
 * (--accumulate N makes N passes). */
void gradsync_pass(dp_gradsync *gs, int last);
/* The backward's hooks. gradsync_partial: the segments of id `id` hold one group's partial
 * (after that layer's backward of the group): moved into the accumulator, their float
 * slots zeroed for the next group. gradsync_move: the same for a block of one tensor,
 * `rows` runs of `cols` floats `ld` apart from g, from any thread: for a layer that moves
 * its own partials a tile at a time, while they are in cache. gradsync_final: every
 * group of the pass is done with id `id` and the ids before it in backward order; in the
 * rank's last pass, complete buckets start reducing. */
void gradsync_partial(dp_gradsync *gs, int id);
void gradsync_move(dp_gradsync *gs, float *g, size_t rows, size_t cols, size_t ld);
void gradsync_final(dp_gradsync *gs, int id);
/* The three above with the signatures of the net's backward hooks (dp_pass's partial,
 * move and done, whose ctx is then the dp_gradsync). */
void gradsync_on_partial(void *gs, int id);
void gradsync_on_move(void *gs, float *g, size_t rows, size_t cols, size_t ld);
void gradsync_on_final(void *gs, int id);
/* dp_pass's fixed_open and fixed_close (layers.h): the block of the exact sum where tensor
 * slot g's values go, with the step's scale and bound; then its maximum and counts, taken
 * as gradsync_move takes a block's. */
int gradsync_on_fixed_open(void *gs, const float *g, dp_fixed_block *b);
void gradsync_on_fixed_close(void *gs, const float *g, const dp_fixed_block *b);
/* Start what is left, wait, and write the summed gradient into the float buffer (or hand
 * it to gradsync_take_with's consumer).
 * Returns 1 when a partial exceeded its bound on some rank: the caller computes the step
 * again (gradsync_begin ...) with the raised bounds; 0 otherwise. *waited: seconds spent
 * waiting for the reductions. Collective. */
int gradsync_finish(dp_gradsync *gs, double *waited);
/* A consumer of a step's summed gradient: fn(ctx, offset, g, n) gets the n values of one
 * tensor from `offset` in the float buffer, while they are in cache; from any thread, each
 * value once, pieces in no particular order. */
typedef void (*dp_take_fn)(void *ctx, size_t offset, const float *g, size_t n);
/* For the gradsync_finish calls that follow: hand the summed gradient to fn instead of
 * writing it into the float buffer, which is left as it was (an optimizer's element-wise
 * update fused with the sum's last pass: the gradient is not written and read back). Not
 * in a step where some tensor's sum is NaN or Inf: that one writes the buffer as ever,
 * for the guard. fn NULL: the float buffer again. */
void gradsync_take_with(dp_gradsync *gs, dp_take_fn fn, void *ctx);
/* After a gradsync_finish that returned 0: 1 when fn took the sums, 0 when the float
 * buffer holds them. */
int gradsync_taken(const dp_gradsync *gs);
/* Whether parameter tensor i (gradsync_create's order) is reduced: every step's sum of it
 * is taken. Frozen layers' are not. */
int gradsync_reduces(const dp_gradsync *gs, int i);
/* After a gradsync_finish that returned 0: how many tensors it handed on as NaN (a NaN or
 * an Inf in some rank's partials), and in *first_bad the index of the last of them (the
 * one nearest the output, as grads_norm names it), or -1. Every other tensor's gradient
 * is finite (bounded integers, scaled) or, not reduced, zero: this is what a scan of the
 * gradients would find, the same on every rank, without reading them. */
int gradsync_nonfinite(const dp_gradsync *gs, int *first_bad);

/* Collective, after gradsync_create on every rank (and agreed): without overlap, on a job
 * whose ranks all share one node, the accumulator moves into memory every rank can read
 * (comm.h, shared_create), and gradsync_finish sums it there instead of with
 * MPI_Allreduce: each rank adds every rank's accumulators over its own slice of the
 * values, rounds the sums to float as the reduction would, and the ranks copy each
 * other's floats. The integers are the same, so are the bits. Returns 0 and leaves the
 * MPI path (with a reason in why[why_len]) where that cannot be; -1 with err where the
 * shared memory failed (agreed). `required`: a reason is an error instead. */
int gradsync_share(dp_gradsync *gs, const dp_comm *c, int required, char *why, size_t why_len,
                   dp_err *err);
/* 1 when the gradients are summed through shared memory. */
int gradsync_shared(const dp_gradsync *gs);
/* Through shared memory: how many of the *chunks pieces of the values this rank summed in
 * its last gradsync_finish (the others summed the rest); 0 of 0 otherwise. */
int gradsync_summed(const dp_gradsync *gs, int *chunks);

/* The per-tensor bounds E (checkpoints carry them, so a resumed run continues exactly). */
int gradsync_exponent_count(const dp_gradsync *gs);
void gradsync_get_exponents(const dp_gradsync *gs, int *e);
void gradsync_set_exponents(dp_gradsync *gs, const int *e);

/* The fixed-point conversion of one partial: exposed for the tests. */
double gradsync_quantum(int exponent, int groups);

#endif
