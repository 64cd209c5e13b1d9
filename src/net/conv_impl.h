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

/* The stride of the im2col rows made in cache. */
size_t conv_col_ld(const dp_conv_shape *s);
/* A thread's work area, its parameter count, and in backward the room before the work
 * area for the conv output's gradient when made here. */
size_t conv_work_floats(const dp_conv_shape *s);
size_t conv_param_count(const dp_conv_shape *s);
size_t conv_dbuf_floats(const dout_source *d, const dp_conv_shape *s);
/* The packed bf16 operands of the thread whose scratch is mine. */
uint32_t *conv_bf16_operands(float *mine, size_t per_thread, const dp_conv_shape *s);
/* One thread's weight and bias gradients: dweight's block k0..k1 (columns in the row
 * layout, rows otherwise) and dbias's channels b0..b1, over the samples of s in order. */
void conv_param_grads(float *dweight, float *dbias, const float *col, const dout_source *dsrc,
                      int lo, int hi, int blo, int bhi, float *dbuf, float *scratch,
                      uint32_t *pairs, const dp_conv_shape *s);
/* This thread's part of the weight and bias gradients (conv_backward's split). */
void conv_thread_param_grads(float *dweight, float *dbias, const float *col,
                             const dout_source *dsrc, float *scratch, const dp_conv_shape *s,
                             int *lo, int *hi, int *blo, int *bhi);
void conv_backward(float *din, float *dweight, float *dbias, float *col,
                   const dout_source *dsrc, const float *weight, float *scratch,
                   const dp_conv_shape *s);
/* The fused layers' conv output gradient made once through dconv where that pays. */
void conv_make_dconv(dout_source *d, float *dconv, const dp_conv_shape *s);

#endif
