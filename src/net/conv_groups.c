/* conv_groups: a convolution's backward over groups of samples (layers.h:
 * conv2d_backward_groups and the fused layers'), each group's parameter gradients handed
 * to the exact sum; the rest of the convolution is conv.c. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "conv_impl.h"
#include "dptrain/net/kernels.h"
#include "dptrain/net/layers.h"

/* dout_source d for the samples of group g (bounds[g] on, counted from bounds[0]); sg is
 * the group's shape, before that of the samples ahead of it. */
static dout_source group_source(const dout_source *d, const dp_conv_shape *s, const int *bounds,
                                int g, dp_conv_shape *sg, dp_conv_shape *before)
{
    const size_t P = (size_t)s->OH * s->OW;
    const size_t PP = d->pool ? (size_t)d->pool->OH * d->pool->OW : P;
    const int n0 = bounds[g] - bounds[0];
    *sg = *s, *before = *s;
    sg->B = bounds[g + 1] - bounds[g];
    before->B = n0;
    dout_source dg = *d;
    if (dg.dout) {
        dg.dout += (size_t)n0 * s->OC * P;
    } else {
        dg.dpool += (size_t)n0 * s->OC * PP;
        dg.pooled += (size_t)n0 * s->OC * PP;
        if (dg.argmax)
            dg.argmax += (size_t)n0 * s->OC * PP;
    }
    return dg;
}

/* The im2col rows of a sample that the row layout makes at once when a thread owns whole
 * groups: at most OWN_ROWS_BYTES of them, in equal blocks. */
#define OWN_ROWS_BYTES (384 * 1024)

static int own_rows_block(const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW;
    const size_t row = conv_col_ld(s) * sizeof(float);
    const int blocks = (int)(((size_t)K * row + OWN_ROWS_BYTES - 1) / OWN_ROWS_BYTES);
    return (K + blocks - 1) / blocks;
}

/* Thread u's own area after its work area (own_floats): one group's partial, then the
 * fixed-point sum of its groups. */
static float *own_part(float *scratch, int u, size_t per_thread, const dout_source *d,
                       const dp_conv_shape *s)
{
    return scratch + (size_t)u * per_thread + conv_dbuf_floats(d, s) + conv_work_floats(s);
}

static int64_t *own_sum(float *part, const dp_conv_shape *s)
{
    return (int64_t *)(((uintptr_t)(part + conv_param_count(s)) + 7) & ~(uintptr_t)7);
}

/* The calling thread's part of conv_backward_groups when threads own groups (layers.h):
 * its run of groups, each group's weight and bias gradients over all their elements (the
 * chains of conv_param_grads, as one thread makes them), moved into its own fixed-point
 * sum, zeroed first; after every thread's, its share of the elements of every thread's
 * sum added into the blocks w and b. The maxima and counts go to close as the moves'. */
static void own_groups(float *dweight, float *dbias, const float *col, const dout_source *d,
                       float *scratch, const dp_conv_shape *s, const int *bounds, int ngroups,
                       dp_fixed_block w, dp_fixed_block b, dp_fixed_close close, void *ctx,
                       float *din, const float *uw)
{
    const int K = s->C * s->KH * s->KW, OC = s->OC, T = omp_get_num_threads();
    const int t = omp_get_thread_num();
    const size_t nw = (size_t)OC * K, n = conv_param_count(s);
    const size_t per_thread = conv_dbuf_floats(d, s) + conv2d_scratch_floats(s);
    float *mine = scratch + (size_t)t * per_thread, *work = mine + conv_dbuf_floats(d, s);
    float *part = own_part(scratch, t, per_thread, d, s);
    int64_t *sum = own_sum(part, s);
    memset(part, 0, n * sizeof(float));
    memset(sum, 0, n * sizeof(int64_t));
    /* the row layout's columns a block at a time, so that a sample's im2col rows stay in
     * cache as when the threads split them (nopool's conv2: 288 rows of 576 pixels, 663 KB,
     * took 1.1x as long in one piece) */
    /* (few columns: the rows of dweight, all at once) */
    /* (Winograd: all the columns in one call, its runs of samples in cache) */
    const int rows = K >= CONV_ROWS_MIN_K, nk = rows ? K : OC;
    const int block = conv_winograd(s) ? K : rows ? own_rows_block(s) : OC;
    int g0, g1;
    thread_range(ngroups, &g0, &g1);
    for (int g = g0; g < g1; g++) {
        dp_conv_shape sg, before;
        const dout_source dg = group_source(d, s, bounds, g, &sg, &before);
        const wino_din wd = {din ? din + (size_t)before.B * s->C * s->H * s->W : NULL, uw};
        for (int k0 = 0; k0 < nk; k0 += block) {
            const int k1 = nk - k0 < block ? nk : k0 + block;
            conv_param_grads(part, part + nw, col + conv2d_col_floats(&before), &dg, k0, k1, 0,
                             k0 == 0 ? OC : 0, mine, work, conv_bf16_operands(mine, per_thread, s),
                             uw ? &wd : NULL, &sg);
        }
        fixed_accumulate(part, sum, nw, w.scale, w.bound, &w.maxabs, &w.over, &w.nonfinite);
        fixed_accumulate(part + nw, sum + nw, (size_t)OC, b.scale, b.bound, &b.maxabs, &b.over,
                         &b.nonfinite);
    }
    close(ctx, dweight, &w);
    close(ctx, dbias, &b);
    #pragma omp barrier
    /* this thread's share of every element, each thread's sum in turn (exact: any order) */
    int lo, hi;
    thread_range((int)n, &lo, &hi);
    const int wend = hi < (int)nw ? hi : (int)nw, bstart = lo > (int)nw ? lo : (int)nw;
    for (int u = 0; u < T; u++) {
        const int64_t *other = own_sum(own_part(scratch, u, per_thread, d, s), s);
        for (int i = lo; i < wend; i++)
            w.acc[i] += other[i];
        for (int i = bstart; i < hi; i++)
            b.acc[i - (int)nw] += other[i];
    }
}

/* The groups' parameter gradients one group at a time, each handed to move; then the
 * input gradient of all the samples in one pass over them. Each thread takes its block of
 * dweight and dbias (conv_backward's) through every group and hands its part over as it
 * goes: no thread waits for another between groups, and each element's groups still come
 * in order. */
static void conv_backward_groups(float *din, float *dweight, float *dbias, float *col,
                                 const dout_source *d, const float *weight, float *scratch,
                                 const dp_conv_shape *s, const int *bounds, int ngroups,
                                 dp_partial_move move, dp_fixed_open open, dp_fixed_close close,
                                 void *ctx)
{
    const size_t K = (size_t)s->C * s->KH * s->KW, CHW = (size_t)s->C * s->H * s->W;
    dp_fixed_block w, b;
    const int can_own = dweight && open && close && open(ctx, dweight, &w) == 0 &&
                        open(ctx, dbias, &b) == 0;
    /* Winograd: the input gradient made beside the weight gradient where a thread makes a
     * group's every column (conv_impl.h) */
    const size_t per_thread = conv_dbuf_floats(d, s) + conv2d_scratch_floats(s);
    const float *uw = din && dweight ? conv_wino_filters(weight, scratch, per_thread, s) : NULL;
    int din_made = 0;
    #pragma omp parallel if (dweight)
    if (can_own && omp_get_num_threads() > 1 && ngroups >= omp_get_num_threads()) {
        own_groups(dweight, dbias, col, d, scratch, s, bounds, ngroups, w, b, close, ctx,
                   uw ? din : NULL, uw);
        if (omp_get_thread_num() == 0)
            din_made = uw != NULL;
    } else if (dweight) {
        int lo, hi, blo, bhi;
        for (int g = 0; g < ngroups; g++) {
            dp_conv_shape sg, before;
            dout_source dg = group_source(d, s, bounds, g, &sg, &before);
            const wino_din wd = {uw ? din + (size_t)before.B * CHW : NULL, uw};
            if (conv_thread_param_grads(dweight, dbias, col + conv2d_col_floats(&before), &dg,
                                        scratch, &sg, &lo, &hi, &blo, &bhi, uw ? &wd : NULL))
                din_made = 1; /* (only where this thread is the only one) */
            if (lo < hi && K >= CONV_ROWS_MIN_K) /* columns lo..hi of every row */
                move(ctx, dweight + lo, (size_t)s->OC, (size_t)(hi - lo), K);
            else if (lo < hi) /* rows lo..hi */
                move(ctx, dweight + (size_t)lo * K, 1, (size_t)(hi - lo) * K, 0);
            if (blo < bhi)
                move(ctx, dbias + blo, 1, (size_t)(bhi - blo), 0);
        }
    }
    if (din && !din_made)
        conv_backward(din, NULL, NULL, col, d, weight, scratch, s);
}

void conv2d_backward_groups(float *din, float *dweight, float *dbias, float *col,
                            const float *dout, const float *weight, float *scratch,
                            const dp_conv_shape *s, const int *bounds, int ngroups,
                            dp_partial_move move, dp_fixed_open open, dp_fixed_close close,
                            void *ctx)
{
    dout_source d = {dout, NULL, NULL, NULL, NULL};
    conv_backward_groups(din, dweight, dbias, col, &d, weight, scratch, s, bounds, ngroups,
                         move, open, close, ctx);
}

void conv2d_relu_maxpool_backward_groups(float *din, float *dweight, float *dbias, float *col,
                                         const float *dout, const float *out,
                                         const int32_t *argmax, const float *weight,
                                         float *scratch, float *dconv, const dp_conv_shape *s,
                                         const dp_pool_shape *pool, const int *bounds,
                                         int ngroups, dp_partial_move move, dp_fixed_open open,
                                         dp_fixed_close close, void *ctx)
{
    dout_source d = {NULL, dout, out, argmax, pool};
    conv_make_dconv(&d, dconv, s);
    conv_backward_groups(din, dweight, dbias, col, &d, weight, scratch, s, bounds, ngroups,
                         move, open, close, ctx);
}

void conv2d_relu_backward_groups(float *din, float *dweight, float *dbias, float *col,
                                 const float *dout, const float *out, const float *weight,
                                 float *scratch, float *dconv, const dp_conv_shape *s,
                                 const int *bounds, int ngroups, dp_partial_move move,
                                 dp_fixed_open open, dp_fixed_close close, void *ctx)
{
    dout_source d = {NULL, dout, out, NULL, NULL};
    conv_make_dconv(&d, dconv, s);
    conv_backward_groups(din, dweight, dbias, col, &d, weight, scratch, s, bounds, ngroups,
                         move, open, close, ctx);
}
