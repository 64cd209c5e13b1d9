/* conv_pooled: the weight and bias gradients of a convolution of one input channel, 3x3,
 * stride 1, no padding, under relu and 2x2 max pooling of stride 2 (MNIST's conv1 in the
 * fused layer conv2d_relu_maxpool_*), made from the pooled output's gradient, its argmax
 * and the pooled output (kern_direct.c: pool_codes, pool_wgrad3) instead of from the
 * conv output's gradient unpooled. Each window passes its gradient to its argmax alone,
 * so each weight's chain takes one term per window where the unpooled gradient gave it
 * four, three of them zero: a quarter of the multiply-adds, and nothing unpooled.
 *
 * The chains: for each sample in order, each window in order, dweight[o][3i + j] =
 * fma(g, x[2 oy + dy + i][2 ox + dx + j], dweight[o][3i + j]) and dbias[o] += g, with g
 * the window's gradient where the relu passes it (0 elsewhere) and (dy, dx) its argmax in
 * the window. So each element has one order whatever splits the channels and samples
 * (threads, groups), on every path; the values are those of the unpooled product but for
 * rounding (it summed other terms, zeros among them, in 8 lanes). */
#include <stddef.h>

#include "conv_impl.h"
#include "kernel_table.h"

/* How far ahead of the plane it reads the pooling's tensors are asked for, in elements */
#define POOLED_AHEAD 1024

static int pooled_grads(const dout_source *d, const dp_conv_shape *s)
{
    const dp_pool_shape *p = d->pool;
    return !d->dout && p && d->pooled && p->K == 2 && p->stride == 2 && s->C == 1 &&
           s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 0 && conv2d_col_is_input(s);
}

/* dweight's rows lo..hi-1 and dbias's blo..bhi-1 over the samples of s (col: their
 * inputs), where pooled_grads; dbuf: room for 4 OC planes of the pooled output, work for
 * 10 OC floats. */
int conv_pooled_param_grads(float *dweight, float *dbias, const float *col,
                            const dout_source *d, int lo, int hi, int blo, int bhi,
                            float *dbuf, float *work, const dp_conv_shape *s)
{
    if (!pooled_grads(d, s))
        return 0;
    const dp_kernel_table *kt = dp_kernels();
    const int POH = d->pool->OH, POW = d->pool->OW, PQ = POH * POW, OC = s->OC;
    /* the channels of both ranges (the same but where a caller asks for one alone): the
     * chains of the others are made and dropped */
    const int o0 = lo < hi && (blo >= bhi || lo < blo) ? lo : blo;
    const int o1 = lo < hi && (blo >= bhi || hi > bhi) ? hi : bhi;
    if (o0 >= o1)
        return 1;
    const int n = o1 - o0;
    float *g = dbuf, *code = g + (size_t)n * PQ, *gT = code + (size_t)n * PQ;
    float *cT = gT + (size_t)n * PQ, *dwT = work, *db = dwT + (size_t)9 * n;
    for (int o = o0; o < o1; o++) {
        for (int k = 0; k < 9; k++)
            dwT[k * n + o - o0] = o >= lo && o < hi ? dweight[o * 9 + k] : 0.0f;
        db[o - o0] = o >= blo && o < bhi ? dbias[o] : 0.0f;
    }
    for (int i = 0; i < s->B; i++) {
        const size_t at = ((size_t)i * OC + o0) * PQ;
        for (int o = 0; o < n; o++) {
            const size_t ahead = at + (size_t)o * PQ + POOLED_AHEAD;
            prefetch_span(d->dpool + ahead, sizeof(float) * PQ);
            prefetch_span(d->pooled + ahead, sizeof(float) * PQ);
            prefetch_span(d->argmax + ahead, sizeof(int32_t) * PQ);
            kt->pool_codes(g + o * PQ, code + o * PQ, d->dpool + at + o * PQ,
                           d->pooled + at + o * PQ, d->argmax + at + o * PQ, POH, POW, s->OW);
        }
        kt->transpose(g, n, PQ, (size_t)PQ, gT, (size_t)n);
        kt->transpose(code, n, PQ, (size_t)PQ, cT, (size_t)n);
        kt->pool_wgrad3(dwT, (size_t)n, db, col + (size_t)i * s->H * s->W, s->W, gT, cT, n,
                        POH, POW);
    }
    for (int o = o0; o < o1; o++) {
        for (int k = 0; k < 9 && o >= lo && o < hi; k++)
            dweight[o * 9 + k] = dwT[k * n + o - o0];
        if (o >= blo && o < bhi)
            dbias[o] = db[o - o0];
    }
    return 1;
}
