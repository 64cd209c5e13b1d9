/* conv: 2-D convolution forward and backward (layers.h), through im2col and the products
 * of kernels.h, on the instruction set chosen at start-up; under --conv-algorithm winograd
 * the 3x3 convolutions it suits through Winograd's transforms (conv_winograd.c) instead.
 *
 * What col holds between forward and backward. The im2col matrix of a 3x3 convolution is
 * ~6-9x larger than its input (reference conv2: 139 KB against 22 KB per sample), and
 * writing it for the whole batch in forward, then reading it back in backward, is memory
 * traffic that costs more than making it again. So when the im2col matrix is the larger,
 * col keeps each sample's input [B][C*H*W] (the layers pass the input itself as col, so
 * nothing is copied: conv2d_col_is_input), and forward and backward make the im2col rows
 * they need in cache, in the thread's scratch, one sample at a time; otherwise (1x1
 * kernels, strides as wide as the kernel) col holds each sample's im2col matrix
 * [B][C*KH*KW][OH*OW]. Either way col is sample-major and the choice depends on the shape
 * alone, not on B, so backward over a range of the samples (s->B of them, col advanced to
 * the first) reads what forward over the whole batch left. Both give the same values to
 * the same products, so the same bits. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "dptrain/net/kernels.h"
#include "dptrain/net/layers.h"
#include "conv_impl.h"
#include "kernel_table.h"

/* With --precision bf16 (isa.h) the three products of a convolution in the row layout
 * (16 or more columns) take their operands as bf16 pairs (kern_bf16.c), packed in cache a
 * sample at a time: each thread's scratch ends in room for its packed operands, then room
 * for the packed weights, which only thread 0's holds (made once per pass, before the
 * threads start). Packing changes no order: each element of a product is still one chain
 * over the inner dimension, in the same order for any split over threads. */

/* 1: col keeps the inputs; 0: the im2col matrices (the header says why). */
static int keeps_inputs(const dp_conv_shape *s)
{
    const size_t KP = (size_t)s->C * s->KH * s->KW * s->OH * s->OW;
    return KP > (size_t)s->C * s->H * s->W;
}

/* 1: forward straight from the image (kern_direct.c: few columns, stride 1, no padding,
 * col keeping the inputs, so backward has what it reads), the bits of im2col and the
 * product; 0: through im2col. */
static int direct(const dp_conv_shape *s)
{
    return s->C * s->KH * s->KW <= DP_DIRECT_MAX_K && s->stride == 1 && s->pad == 0 &&
           keeps_inputs(s);
}

/* The bf16 products for this shape, or NULL: fp32. Convolutions with few columns stay
 * fp32: measured on Zen 4 (2026-12-04, batch 100), MNIST's conv1 through im2col and bf16
 * pairs took 1.4 ms forward and 1.25 ms backward against 0.75 ms (direct) and 1.0 ms in
 * fp32; 9 columns are too few for the packing to pay. */
static const dp_bf16_table *bf16_products(const dp_conv_shape *s)
{
    return s->C * s->KH * s->KW >= CONV_ROWS_MIN_K ? dp_bf16() : NULL;
}

/* A thread's room for packed operands: forward's im2col pairs, the weight gradient's
 * pairs of im2col rows and of dout^T, the input gradient's pairs of dout. */
static size_t bf16_operand_floats(const dp_conv_shape *s)
{
    const size_t K = (size_t)s->C * s->KH * s->KW, P = (size_t)s->OH * s->OW, OC = s->OC;
    const size_t fwd = (K + 1) / 2 * P, wgrad = (K + OC) * ((P + 1) / 2),
                 dgrad = (OC + 1) / 2 * P;
    const size_t most = fwd > wgrad ? fwd : wgrad;
    return bf16_products(s) ? (most > dgrad ? most : dgrad) : 0;
}

/* The packed weights: rows of pairs (forward) or pairs of rows (input gradient). */
static size_t bf16_weight_floats(const dp_conv_shape *s)
{
    const size_t K = (size_t)s->C * s->KH * s->KW, OC = s->OC;
    const size_t rows = OC * ((K + 1) / 2), cols = (OC + 1) / 2 * K;
    return bf16_products(s) ? (rows > cols ? rows : cols) : 0;
}

/* The packed operands of the thread whose scratch is mine (per_thread floats long). */
uint32_t *conv_bf16_operands(float *mine, size_t per_thread, const dp_conv_shape *s)
{
    return (uint32_t *)(mine + per_thread - bf16_weight_floats(s) - bf16_operand_floats(s));
}

static uint32_t *bf16_weights(float *scratch, size_t per_thread, const dp_conv_shape *s)
{
    return (uint32_t *)(scratch + per_thread - bf16_weight_floats(s));
}

/* Winograd's filter transforms (conv_winograd.c), at the end of thread 0's scratch (never
 * with bf16's packed operands: bf16 keeps the convolutions direct). */
static float *wino_filter_area(float *scratch, size_t per_thread, const dp_conv_shape *s)
{
    return scratch + per_thread - wino_filter_floats(s);
}

/* The stride of the im2col rows made in cache (col keeping the inputs): each row starts on
 * a whole cache line, so that the product's loads of them never straddle two (reference
 * conv2: 121 pixels in rows of 128; the forward product ran 13% faster). The matrices in
 * col lie at OH*OW. */
size_t conv_col_ld(const dp_conv_shape *s)
{
    const size_t P = (size_t)s->OH * s->OW;
    return keeps_inputs(s) ? (P + 15) & ~(size_t)15 : P;
}

int conv2d_col_is_input(const dp_conv_shape *s) { return keeps_inputs(s); }

size_t conv2d_col_floats(const dp_conv_shape *s)
{
    const size_t per_sample = keeps_inputs(s) ? (size_t)s->C * s->H * s->W
                                              : (size_t)s->C * s->KH * s->KW * s->OH * s->OW;
    return (size_t)s->B * per_sample;
}

/* Sample n's conv output out_n made: rectified in place (relu, no pool), or pooled with
 * relu into out and argmax. */
static void conv_finish(float *out, int32_t *argmax, float *out_n, int n,
                        const dp_conv_shape *s, const dp_pool_shape *pool, int relu)
{
    const dp_kernel_table *kt = dp_kernels();
    const size_t P = (size_t)s->OH * s->OW;
    if (!pool) {
        if (relu)
            kt->relu_forward(out_n, out_n, (size_t)s->OC * P);
        return;
    }
    const size_t PP = (size_t)pool->OH * pool->OW;
    for (int c = 0; c < s->OC; c++)
        kt->pool_plane(out + ((size_t)n * s->OC + c) * PP, argmax + ((size_t)n * s->OC + c) * PP,
                       out_n + (size_t)c * P, s->OH, s->OW, pool->K, pool->stride, pool->OH,
                       pool->OW, 1);
}

/* Winograd's forward of samples n0..n1, a run at a time (conv_winograd.c). */
static void wino_forward(float *out, int32_t *argmax, float *col, const float *in,
                         const float *bias, const float *uw, float *conv_out, float *work,
                         const dp_conv_shape *s, const dp_pool_shape *pool, int relu, int n0,
                         int n1)
{
    const size_t CHW = (size_t)s->C * s->H * s->W, OP = (size_t)s->OC * s->OH * s->OW;
    const int S0 = wino_chunk(s);
    for (int r = n0; r < n1; r += S0) {
        const int S = n1 - r < S0 ? n1 - r : S0;
        if (col != in) /* col may be the input itself (layers.h) */
            memcpy(col + r * CHW, in + r * CHW, sizeof(float) * CHW * S);
        wino_forward_chunk(in + r * CHW, S, uw, work, s);
        for (int j = 0; j < S; j++) {
            float *out_n = pool ? conv_out : out + (r + j) * OP;
            wino_forward_out(bias, j, S, out_n, work, s);
            conv_finish(out, argmax, out_n, r + j, s, pool, relu);
        }
    }
}

/* Forward, and with pool != NULL relu and max pooling after it: then each sample's conv
 * output stays in the thread's scratch and only the pooled output and argmax are written.
 * Else with relu the relu after it: each sample's output rectified in place while it is in
 * cache. */
static void conv_forward(float *out, int32_t *argmax, float *col, const float *in,
                         const float *weight, const float *bias, float *scratch,
                         const dp_conv_shape *s, const dp_pool_shape *pool, int relu)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, keep = keeps_inputs(s);
    const size_t CHW = (size_t)s->C * s->H * s->W;
    const dp_kernel_table *kt = dp_kernels();
    /* a thread's scratch: [the conv output, when pooled][im2col rows, when col keeps inputs] */
    const size_t conv_floats = pool ? (size_t)s->OC * P : 0;
    const size_t per_thread = pool ? conv2d_pool_scratch_floats(s) : conv2d_scratch_floats(s);
    const dp_bf16_table *bf = bf16_products(s);
    const int K2 = (K + 1) / 2, wino = conv_winograd(s);
    const size_t ld = conv_col_ld(s);
    uint32_t *wpairs = bf ? bf16_weights(scratch, per_thread, s) : NULL;
    float *uw = wino ? wino_filter_area(scratch, per_thread, s) : NULL;
    if (bf)
        bf->pack_rows(weight, s->OC, K, (size_t)K, wpairs, (size_t)K2);
    if (wino)
        wino_filters(weight, uw, s);
    #pragma omp parallel
    {
        float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *conv_out = pool ? mine : NULL, *work = keep ? mine + conv_floats : NULL;
        const double t0 = split_start();
        int n0, n1;
        thread_range(s->B, &n0, &n1);
        if (wino)
            wino_forward(out, argmax, col, in, bias, uw, conv_out, work, s, pool, relu, n0, n1);
        for (int n = wino ? n1 : n0; n < n1; n++) {
            const float *in_n = in + (size_t)n * CHW;
            float *col_n = keep ? work : col + (size_t)n * K * P;
            float *out_n = pool ? conv_out : out + (size_t)n * s->OC * P;
            if (keep && col != in) /* col may be the input itself (layers.h) */
                memcpy(col + (size_t)n * CHW, in_n, sizeof(float) * CHW);
            if (direct(s)) {
                kt->conv_direct(in_n, s->C, s->H, s->W, s->KH, s->KW, s->OC, weight, bias, out_n);
            } else {
                kt->im2col(in_n, 0, K, s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH,
                           s->OW, col_n, ld);
                if (bf) {
                    uint32_t *colp = conv_bf16_operands(mine, per_thread, s);
                    bf->pack_cols(col_n, K, P, ld, colp, (size_t)P);
                    bf->gemm(s->OC, P, K2, wpairs, (size_t)K2, 1, colp, P, out_n, P, GEMM_BIAS,
                             bias);
                } else {
                    gemm_nn_bias(s->OC, P, K, weight, K, col_n, (int)ld, bias, out_n, P);
                }
            }
            conv_finish(out, argmax, out_n, n, s, pool, relu);
        }
        split_note(t0, s->B);
    }
    split_review();
}

void conv2d_forward(float *out, float *col, const float *in, const float *weight,
                    const float *bias, float *scratch, const dp_conv_shape *s)
{
    conv_forward(out, NULL, col, in, weight, bias, scratch, s, NULL, 0);
}

void conv2d_relu_forward(float *out, float *col, const float *in, const float *weight,
                         const float *bias, float *scratch, const dp_conv_shape *s)
{
    conv_forward(out, NULL, col, in, weight, bias, scratch, s, NULL, 1);
}

void conv2d_relu_maxpool_forward(float *out, int32_t *argmax, float *col, const float *in,
                                 const float *weight, const float *bias, float *scratch,
                                 const dp_conv_shape *s, const dp_pool_shape *pool)
{
    conv_forward(out, argmax, col, in, weight, bias, scratch, s, pool, 1);
}

/* Rows r0..r1-1 of sample n's im2col matrix, conv_col_ld(s) apart: made in buf, or where
 * forward left them. */
static const float *col_rows(const float *col, int n, int r0, int r1, float *buf,
                             const dp_conv_shape *s)
{
    const int P = s->OH * s->OW;
    if (!keeps_inputs(s))
        return col + ((size_t)n * s->C * s->KH * s->KW + r0) * P;
    dp_kernels()->im2col(col + (size_t)n * s->C * s->H * s->W, r0, r1, s->C, s->H, s->W, s->KH,
                         s->KW, s->stride, s->pad, s->OH, s->OW, buf, conv_col_ld(s));
    return buf;
}

/* The input gradient is made and scattered back about DIN_BLOCK_BYTES at a time, whole
 * input channels at a time, in the thread's scratch (cache-resident). */
#define DIN_BLOCK_BYTES (96 * 1024)

static int din_channels(const dp_conv_shape *s)
{
    const size_t per_channel = sizeof(float) * s->KH * s->KW * s->OH * s->OW;
    const int c = (int)(DIN_BLOCK_BYTES / per_channel);
    return c < 1 ? 1 : c > s->C ? s->C : c;
}

/* How far ahead of the plane it unpools dout_planes asks for the pooling's tensors, in
 * elements: 2 KiB (1, 2, 4 and 8 KiB measured alike). */
#define UNPOOL_AHEAD 512

/* Planes c0..c1-1 of sample n's dout; plane c at the result + (c - c0)*OH*OW. */
static const float *dout_planes(const dout_source *d, int n, int c0, int c1, float *buf,
                                const dp_conv_shape *s)
{
    const size_t P = (size_t)s->OH * s->OW;
    if (d->dout)
        return d->dout + ((size_t)n * s->OC + c0) * P;
    const dp_kernel_table *kt = dp_kernels();
    if (!d->pool) {
        const size_t at = ((size_t)n * s->OC + c0) * P;
        kt->relu_backward(buf, d->dpool + at, d->pooled + at, (size_t)(c1 - c0) * P);
        return buf;
    }
    const size_t PP = (size_t)d->pool->OH * d->pool->OW;
    for (int c = c0; c < c1; c++) {
        const size_t at = ((size_t)n * s->OC + c) * PP;
        prefetch_span(d->dpool + at + UNPOOL_AHEAD, sizeof(float) * PP);
        prefetch_span(d->pooled + at + UNPOOL_AHEAD, sizeof(float) * PP);
        prefetch_span(d->argmax + at + UNPOOL_AHEAD, sizeof(int32_t) * PP);
        kt->unpool_plane(buf + (c - c0) * P, d->dpool + at, d->pooled + at, d->argmax + at,
                         s->OH, s->OW, d->pool->OH, d->pool->OW);
    }
    return buf;
}

/* A thread's scratch: in forward the im2col rows [K][P] of a sample; in backward, for the
 * parameter gradients the bias lanes [OC][8], im2col rows [K][P], and for the row layout
 * dout^T [P][OC] and its block of dweight^T [K][OC]; later the rows (or the dcol matrix)
 * of the input gradient. Independent of the batch size. */
size_t conv_work_floats(const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW;
    const size_t rows = (size_t)K * conv_col_ld(s);
    size_t wgrad = (size_t)8 * s->OC + rows, dgrad = rows;
    if (K >= CONV_ROWS_MIN_K) {
        wgrad += (size_t)s->OC * (P + K);
        dgrad = (size_t)din_channels(s) * s->KH * s->KW * P;
    }
    const size_t most = wgrad > dgrad ? wgrad : dgrad;
    const size_t wino = conv_winograd(s) ? (size_t)8 * s->OC + wino_work_floats(s) : 0;
    return most > wino ? most : wino;
}

/* The parameters of one convolution: its weight, then its bias. */
size_t conv_param_count(const dp_conv_shape *s)
{
    return (size_t)s->OC * s->C * s->KH * s->KW + s->OC;
}

/* After the work area, for backward over groups a thread at a time (own_groups): one
 * group's partial of the parameters, then their fixed-point sum over the thread's groups
 * (int64, 8-byte aligned within the two floats of slack). */
static size_t own_floats(const dp_conv_shape *s) { return 3 * conv_param_count(s) + 2; }

size_t conv2d_scratch_floats(const dp_conv_shape *s)
{
    return conv_work_floats(s) + own_floats(s) + bf16_operand_floats(s) + bf16_weight_floats(s) +
           wino_filter_floats(s);
}

/* The fused layer's: the conv output (forward) or its gradient (backward) first. */
size_t conv2d_pool_scratch_floats(const dp_conv_shape *s)
{
    return (size_t)s->OC * s->OH * s->OW + conv2d_scratch_floats(s);
}

/* Winograd's (conv_winograd.c): dweight's input channels c0..c1-1 (all its columns for
 * them) and dbias's blo..bhi, a run of samples at a time. */
static void wino_param_grads(float *dweight, float *dbias, const float *col,
                             const dout_source *dsrc, int c0, int c1, int blo, int bhi,
                             float *dbuf, float *scratch, const wino_din *wd,
                             const dp_conv_shape *s)
{
    const int P = s->OH * s->OW, S0 = wino_chunk(s);
    const size_t CHW = (size_t)s->C * s->H * s->W;
    const dp_kernel_table *kt = dp_kernels();
    float *blanes = scratch, *work = blanes + (size_t)8 * s->OC;
    memset(blanes, 0, sizeof(float) * 8 * (bhi - blo));
    for (int r = 0; r < s->B; r += S0) {
        const int S = s->B - r < S0 ? s->B - r : S0;
        for (int j = 0; j < S; j++) {
            const float *dout_n = dout_planes(dsrc, r + j, 0, s->OC, dbuf, s);
            if (c0 < c1) {
                wino_dout_sample(dout_n, j, S, work, s);
                wino_input_sample(col + (r + j) * CHW, c0, c1, j, S, work, s);
            }
            for (int oc = blo; oc < bhi; oc++) /* as conv_param_grads */
                kt->sum_lanes8(blanes + (size_t)(oc - blo) * 8, dout_n + (size_t)oc * P, P);
        }
        if (c0 < c1)
            wino_wgrad_chunk(S, c0, c1, r == 0, work, s);
        if (wd) /* the same run's input gradient, from the output gradient's dM */
            wino_input_grad_chunk(S, wd->uw, wd->din + r * CHW, work, s);
    }
    for (int oc = blo; oc < bhi; oc++)
        dbias[oc] += combine8(blanes + (size_t)(oc - blo) * 8);
    if (c0 < c1 && s->B > 0)
        wino_wgrad_end(dweight, c0, c1, work, s);
}

/* The weight and bias gradients from one thread, over the samples in order.
 *
 * Rows layout: dweight[oc, k] += sum over samples n, then pixels p, of dout[n, oc, p] *
 * col[n, k, p], one chain of fused multiply-adds per element in (n, p) order, worked on
 * transposed as dwT[k, oc] (this thread's k in [lo, hi)) += col[n] doutT[n]: the product
 * then reads col's rows as they lie and runs along the output channels; each element's
 * chain is the same, only its place in memory differs. Otherwise (few columns) dot
 * products over p for the thread's channels [lo, hi). The bias lanes of channels
 * [blo, bhi) are summed while the sample's dout is in cache. */
void conv_param_grads(float *dweight, float *dbias, const float *col,
                      const dout_source *dsrc, int lo, int hi, int blo, int bhi,
                      float *dbuf, float *scratch, uint32_t *pairs, const wino_din *wd,
                      const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, OC = s->OC, P2 = (P + 1) / 2;
    if (conv_winograd(s)) { /* lo and hi: whole input channels' columns */
        wino_param_grads(dweight, dbias, col, dsrc, lo / 9, hi / 9, blo, bhi, dbuf, scratch, wd,
                         s);
        return;
    }
    if (conv_pooled_param_grads(dweight, dbias, col, dsrc, lo, hi, blo, bhi, dbuf, scratch, s))
        return;
    const dp_bf16_table *bf = bf16_products(s);
    const int rows = K >= CONV_ROWS_MIN_K;
    const dp_kernel_table *kt = dp_kernels();
    float *blanes = scratch, *rowbuf = blanes + (size_t)8 * OC;
    const size_t ld = conv_col_ld(s);
    float *doutT = rowbuf + (size_t)K * ld, *dwT = doutT + (size_t)P * OC;
    memset(blanes, 0, sizeof(float) * 8 * (bhi - blo));
    if (rows && lo < hi) /* dwT: this thread's columns of dweight, transposed */
        kt->transpose(dweight + lo, OC, hi - lo, (size_t)K, dwT, (size_t)OC);
    for (int n = 0; n < s->B; n++) {
        /* the planes this thread reads: all of them for the rows layout, else its own */
        const int c0 = rows ? 0 : blo, c1 = rows ? OC : bhi;
        const float *dout_n = dout_planes(dsrc, n, c0, c1, dbuf, s) - (size_t)c0 * P;
        if (rows && lo < hi) {
            const float *c = col_rows(col, n, lo, hi, rowbuf, s);
            kt->transpose(dout_n, OC, P, (size_t)P, doutT, (size_t)OC);
            if (bf) { /* pairs of pixels: of the im2col rows, and of dout^T's rows */
                uint32_t *colp = pairs, *doutp = pairs + (size_t)(hi - lo) * P2;
                bf->pack_rows(c, hi - lo, P, ld, colp, (size_t)P2);
                bf->pack_cols(doutT, P, OC, (size_t)OC, doutp, (size_t)OC);
                bf->gemm(hi - lo, OC, P2, colp, (size_t)P2, 1, doutp, OC, dwT, OC, GEMM_ACC,
                         NULL);
            } else {
                gemm_nn_acc(hi - lo, OC, P, c, (int)ld, doutT, OC, dwT, OC);
            }
        } else if (!rows && lo < hi) {
            const float *c = col_rows(col, n, 0, K, rowbuf, s);
            gemm_nt_acc(hi - lo, K, P, dout_n + (size_t)lo * P, P, c, (int)ld,
                        dweight + (size_t)lo * K, K);
        }
        /* 8 partial sums (p mod 8 within each sample), combined in a fixed order */
        for (int oc = blo; oc < bhi; oc++)
            kt->sum_lanes8(blanes + (size_t)(oc - blo) * 8, dout_n + (size_t)oc * P, P);
    }
    for (int oc = blo; oc < bhi; oc++)
        dbias[oc] += combine8(blanes + (size_t)(oc - blo) * 8);
    if (rows && lo < hi)
        kt->transpose(dwT, hi - lo, OC, (size_t)OC, dweight + lo, (size_t)K);
}

/* The input gradient of one sample: dcol = W^T dout (chains over the output channels),
 * scattered back to the image. With many columns, a block of input channels at a time
 * and with each input element's terms in output-pixel order (the order of the row layout
 * drow = dout^T W scattered back pixel by pixel, which these bits were first made with);
 * with few columns, all at once in (c, i, j) order. */
static void conv_input_grad(float *din_n, const float *dout_n, const float *weight,
                            const uint32_t *wpairs, float *scratch, uint32_t *pairs,
                            const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, OC = s->OC, KHW = s->KH * s->KW;
    const dp_kernel_table *kt = dp_kernels();
    if (K < CONV_ROWS_MIN_K) {
        memset(din_n, 0, sizeof(float) * s->C * s->H * s->W);
        gemm_tn(K, P, OC, weight, K, dout_n, P, scratch, P);
        kt->col2im_acc(scratch, s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH, s->OW,
                       din_n);
        return;
    }
    const int block = din_channels(s);
    const dp_bf16_table *bf = bf16_products(s);
    if (bf) /* pairs of output channels, as wpairs holds the weights */
        bf->pack_cols(dout_n, OC, P, (size_t)P, pairs, (size_t)P);
    for (int c0 = 0; c0 < s->C; c0 += block) {
        const int nc = s->C - c0 < block ? s->C - c0 : block;
        if (bf)
            bf->gemm(nc * KHW, P, (OC + 1) / 2, wpairs + (size_t)c0 * KHW, 1, (size_t)K, pairs,
                     P, scratch, P, GEMM_ZERO, NULL);
        else
            gemm_tn(nc * KHW, P, OC, weight + (size_t)c0 * KHW, K, dout_n, P, scratch, P);
        kt->col2im_pixel_order(scratch, nc, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH,
                               s->OW, din_n + (size_t)c0 * s->H * s->W);
    }
}

/* Winograd's input gradient of samples n0..n1, a run at a time. */
static void wino_input_grads(float *din, const dout_source *dsrc, const float *uw, float *dbuf,
                             float *work, const dp_conv_shape *s, int n0, int n1)
{
    const size_t CHW = (size_t)s->C * s->H * s->W;
    const int S0 = wino_chunk(s);
    for (int r = n0; r < n1; r += S0) {
        const int S = n1 - r < S0 ? n1 - r : S0;
        for (int j = 0; j < S; j++)
            wino_dout_sample(dout_planes(dsrc, r + j, 0, s->OC, dbuf, s), j, S, work, s);
        wino_input_grad_chunk(S, uw, din + r * CHW, work, s);
    }
}

/* A thread's scratch in backward: [the conv output's gradient, when made here][conv's own]. */
size_t conv_dbuf_floats(const dout_source *d, const dp_conv_shape *s)
{
    return d->dout ? 0 : (size_t)s->OC * s->OH * s->OW;
}

/* This thread's part of the weight and bias gradients: a block of columns (rows, for few
 * columns) of dweight, lo..hi, and of dbias, blo..bhi, summed over samples in order, so
 * that every element has one fixed reduction order whatever the number of threads; made
 * from this thread's scratch, for the samples of s (col and dsrc at the first of them). */
int conv_thread_param_grads(float *dweight, float *dbias, const float *col,
                            const dout_source *dsrc, float *scratch, const dp_conv_shape *s,
                            int *lo, int *hi, int *blo, int *bhi, const wino_din *wd)
{
    const int K = s->C * s->KH * s->KW;
    const size_t dbuf_floats = conv_dbuf_floats(dsrc, s);
    const size_t per_thread = dbuf_floats + conv2d_scratch_floats(s);
    float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
    if (conv_winograd(s)) { /* whole input channels */
        thread_range(s->C, lo, hi);
        *lo *= s->KH * s->KW, *hi *= s->KH * s->KW;
    } else {
        thread_range(K >= CONV_ROWS_MIN_K ? K : s->OC, lo, hi);
    }
    thread_range(s->OC, blo, bhi);
    const int alone = wd && conv_winograd(s) && omp_get_num_threads() == 1;
    conv_param_grads(dweight, dbias, col, dsrc, *lo, *hi, *blo, *bhi, mine, mine + dbuf_floats,
                     conv_bf16_operands(mine, per_thread, s), alone ? wd : NULL, s);
    return alone;
}

float *conv_wino_filters(const float *weight, float *scratch, size_t per_thread,
                         const dp_conv_shape *s)
{
    if (!conv_winograd(s))
        return NULL;
    float *uw = wino_filter_area(scratch, per_thread, s);
    wino_filters(weight, uw, s);
    return uw;
}

void conv_backward(float *din, float *dweight, float *dbias, float *col,
                   const dout_source *dsrc, const float *weight, float *scratch,
                   const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, OC = s->OC;
    const size_t dbuf_floats = conv_dbuf_floats(dsrc, s);
    const size_t per_thread = dbuf_floats + conv2d_scratch_floats(s);
    /* Winograd's filters, for the input gradient (made beside the weight gradient by one
     * thread alone) */
    const float *uw = din ? conv_wino_filters(weight, scratch, per_thread, s) : NULL;
    const wino_din wd = {din, uw};
    int din_made = 0;
    #pragma omp parallel if (dweight)
    if (dweight) { /* dweight NULL: a frozen layer, only din wanted */
        int lo, hi, blo, bhi;
        if (conv_thread_param_grads(dweight, dbias, col, dsrc, scratch, s, &lo, &hi, &blo, &bhi,
                                    uw ? &wd : NULL))
            din_made = 1; /* (only where this thread is the only one) */
    }
    if (!din || din_made)
        return;
    uint32_t *wpairs = bf16_products(s) ? bf16_weights(scratch, per_thread, s) : NULL;
    if (wpairs) /* pairs of output channels: A = W^T of the input gradient */
        dp_bf16()->pack_cols(weight, OC, K, (size_t)K, wpairs, (size_t)K);
    const int wino = uw != NULL;
    #pragma omp parallel
    {
        float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
        const double t0 = split_start();
        int n0, n1;
        thread_range(s->B, &n0, &n1);
        if (wino)
            wino_input_grads(din, dsrc, uw, mine, mine + dbuf_floats, s, n0, n1);
        for (int n = wino ? n1 : n0; n < n1; n++)
            conv_input_grad(din + (size_t)n * s->C * s->H * s->W,
                            dout_planes(dsrc, n, 0, OC, mine, s), weight, wpairs,
                            mine + dbuf_floats, conv_bf16_operands(mine, per_thread, s), s);
        split_note(t0, s->B);
    }
    split_review();
}

void conv2d_backward(float *din, float *dweight, float *dbias, float *col, const float *dout,
                     const float *weight, float *scratch, const dp_conv_shape *s)
{
    dout_source d = {dout, NULL, NULL, NULL, NULL};
    conv_backward(din, dweight, dbias, col, &d, weight, scratch, s);
}

/* The fused layer's conv output gradient for all s->B samples into dconv, when the row
 * layout would otherwise make it on every thread (the header of the function below). */
void conv_make_dconv(dout_source *d, float *dconv, const dp_conv_shape *s)
{
    /* (Winograd reads each sample's gradient once, made in the thread's cache as it goes,
     * at 1 thread and where threads own groups; the channel split reads it twice) */
    if (!dconv || s->C * s->KH * s->KW < CONV_ROWS_MIN_K || conv_winograd(s))
        return;
    const size_t P = (size_t)s->OH * s->OW;
    #pragma omp parallel
    {
        int n0, n1;
        thread_range(s->B, &n0, &n1);
        for (int n = n0; n < n1; n++)
            dout_planes(d, n, 0, s->OC, dconv + (size_t)n * s->OC * P, s);
    }
    d->dout = dconv;
}

void conv2d_relu_maxpool_backward(float *din, float *dweight, float *dbias, float *col,
                                  const float *dout, const float *out, const int32_t *argmax,
                                  const float *weight, float *scratch, float *dconv,
                                  const dp_conv_shape *s, const dp_pool_shape *pool)
{
    dout_source d = {NULL, dout, out, argmax, pool};
    /* The row layout reads every channel of a sample on every thread, and the input
     * gradient again: made once here, through memory, it costs less than made three times. */
    conv_make_dconv(&d, dconv, s);
    conv_backward(din, dweight, dbias, col, &d, weight, scratch, s);
}

void conv2d_relu_backward(float *din, float *dweight, float *dbias, float *col,
                          const float *dout, const float *out, const float *weight,
                          float *scratch, float *dconv, const dp_conv_shape *s)
{
    dout_source d = {NULL, dout, out, NULL, NULL};
    conv_make_dconv(&d, dconv, s);
    conv_backward(din, dweight, dbias, col, &d, weight, scratch, s);
}

