/* conv_impl: what conv.c (forward, backward) and conv_groups.c (backward over groups)
 * share. Internal to the net library. */
#ifndef DPTRAIN_NET_CONV_IMPL_H
#define DPTRAIN_NET_CONV_IMPL_H

#include <stdint.h>

#include "dptrain/net/layers.h"
#include "thread_split.h"

/* Below this many columns (C*KH*KW) the weight gradient is computed as dot products
 * over output pixels (conv1 of MNIST: 9); above it as a product that is vectorised over
 * the output channels. The choice depends on the shape alone. */
#define CONV_ROWS_MIN_K 16

/* Where the gradient of the conv output comes from: dout as it lies, or made a sample at a
 * time from the gradient of the relu + max pooling after the conv (the same values
 * relu_maxpool_backward would have written), or of the relu alone (pool NULL: those of
 * relu_backward). */
typedef struct {
    const float *dout;                 /* [B][OC][OH*OW], or NULL: from the layer's after */
    const float *dpool, *pooled;       /* [B][OC][pool OH*OW], or the relu's [B][OC][OH*OW] */
    const int32_t *argmax;
    const dp_pool_shape *pool;         /* NULL: the relu's */
} dout_source;

/* Asks for the cache lines of [p, p + bytes) into L2 ahead of their use. The batch-sized
 * tensors that forward wrote (a layer's input, pooled output and argmax) are read back in
 * backward, or by the next layer, a plane or a sample at a time; from memory, and in runs
 * too short for the hardware's streams to get ahead (docs/performance.md). */
static inline void prefetch_span(const void *p, size_t bytes)
{
    const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63), *end = (const char *)p + bytes;
    for (; c < end; c += 64)
        __builtin_prefetch(c, 0, 2);
}

/* The stride of the im2col rows made in cache. */
size_t conv_col_ld(const dp_conv_shape *s);
/* A thread's work area, its parameter count, and in backward the room before the work
 * area for the conv output's gradient when made here. */
size_t conv_work_floats(const dp_conv_shape *s);
size_t conv_param_count(const dp_conv_shape *s);
size_t conv_dbuf_floats(const dout_source *d, const dp_conv_shape *s);
/* The packed bf16 operands of the thread whose scratch is mine. */
uint32_t *conv_bf16_operands(float *mine, size_t per_thread, const dp_conv_shape *s);
/* Winograd's input gradient made beside its weight gradient by a thread that makes all of
 * the weight gradient's columns, while each run's output gradient is in cache: din at the
 * call's first sample, and the filters' transforms (conv_wino_filters). */
typedef struct {
    float *din;
    const float *uw;
} wino_din;
/* One thread's weight and bias gradients: dweight's block k0..k1 (columns in the row
 * layout, rows otherwise) and dbias's channels b0..b1, over the samples of s in order; with
 * wd (Winograd, every column: else NULL) the samples' input gradient too. */
void conv_param_grads(float *dweight, float *dbias, const float *col, const dout_source *dsrc,
                      int lo, int hi, int blo, int bhi, float *dbuf, float *scratch,
                      uint32_t *pairs, const wino_din *wd, const dp_conv_shape *s);
/* This thread's part of the weight and bias gradients (conv_backward's split); the input
 * gradient too where wd is given and this thread is the only one: then it returns 1. */
int conv_thread_param_grads(float *dweight, float *dbias, const float *col,
                            const dout_source *dsrc, float *scratch, const dp_conv_shape *s,
                            int *lo, int *hi, int *blo, int *bhi, const wino_din *wd);
/* Winograd's filter transforms made into thread 0's scratch (per_thread floats a thread):
 * where they are, or NULL where s is not Winograd's. */
float *conv_wino_filters(const float *weight, float *scratch, size_t per_thread,
                         const dp_conv_shape *s);
/* The weight gradient of a 3x3 convolution of one channel under relu and 2x2 pooling
 * straight from the pooled gradient (conv_pooled.c): conv_param_grads' part where dsrc
 * and s are such (returns 1), else nothing (0). */
int conv_pooled_param_grads(float *dweight, float *dbias, const float *col,
                             const dout_source *d, int lo, int hi, int blo, int bhi,
                             float *dbuf, float *work, const dp_conv_shape *s);
void conv_backward(float *din, float *dweight, float *dbias, float *col,
                   const dout_source *dsrc, const float *weight, float *scratch,
                   const dp_conv_shape *s);
/* The fused layers' conv output gradient made once through dconv where that pays. */
void conv_make_dconv(dout_source *d, float *dconv, const dp_conv_shape *s);

/* --conv-algorithm winograd (conv_winograd.c): whether shape s runs Winograd's
 * F(4x4, 3x3); a thread's work area for it (conv_work_floats covers it) and the filters'
 * transforms (U, then U^T per position), which one area holds for all threads. */
int conv_winograd(const dp_conv_shape *s);
size_t wino_work_floats(const dp_conv_shape *s);
size_t wino_filter_floats(const dp_conv_shape *s);
void wino_filters(const float *weight, float *uw, const dp_conv_shape *s);
/* Samples a run takes at once (its products' rows); any run gives the same bits. */
int wino_chunk(const dp_conv_shape *s);
/* Forward of a run of S samples (inputs at in, C*H*W apart): then sample j's output
 * [OC][OH][OW], bias added. */
void wino_forward_chunk(const float *in, int S, const float *uw, float *work,
                        const dp_conv_shape *s);
void wino_forward_out(const float *bias, int j, int S, float *out_n, float *work,
                      const dp_conv_shape *s);
/* Backward of a run: each sample's output gradient in (wino_dout_sample), then for the
 * weight gradient its inputs' channels c0..c1-1 and the run's products (dU made by the
 * first run, accumulated over the others), then end (which adds G^T dU G into dweight);
 * for the input gradient wino_input_grad_chunk (its products, then each sample's
 * gradient). */
void wino_dout_sample(const float *dout_n, int j, int S, float *work, const dp_conv_shape *s);
void wino_input_sample(const float *in_n, int c0, int c1, int j, int S, float *work,
                       const dp_conv_shape *s);
void wino_wgrad_chunk(int S, int c0, int c1, int first, float *work, const dp_conv_shape *s);
void wino_wgrad_end(float *dweight, int c0, int c1, const float *work, const dp_conv_shape *s);
/* din: the run's first sample's input gradient, C*H*W apart (overwritten). */
void wino_input_grad_chunk(int S, const float *uw, float *din, float *work,
                           const dp_conv_shape *s);

#endif
