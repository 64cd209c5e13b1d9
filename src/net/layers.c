#include "dptrain/net/layers.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "dptrain/net/kernels.h"
#include "kernel_table.h"

/* [lo, hi) of n items for thread t of T: the split used by every row-parallel loop. */
static void thread_range(int n, int *lo, int *hi)
{
    int t = omp_get_thread_num(), T = omp_get_num_threads();
    *lo = (int)((long)n * t / T);
    *hi = (int)((long)n * (t + 1) / T);
}

void conv2d_forward(float *out, float *col, const float *in, const float *weight,
                    const float *bias, const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < s->B; n++) {
        float *col_n = col + (size_t)n * K * P;
        float *out_n = out + (size_t)n * s->OC * P;
        im2col(in + (size_t)n * s->C * s->H * s->W, s->C, s->H, s->W, s->KH, s->KW, s->stride,
               s->pad, s->OH, s->OW, col_n);
        gemm_nn_bias(s->OC, P, K, weight, K, col_n, P, bias, out_n, P);
    }
}

/* Below this many columns (C*KH*KW) the weight gradient is computed as dot products
 * over output pixels (conv1 of MNIST: 9); above it as a product that is vectorised over
 * the output channels. The choice depends on the shape alone. */
#define CONV_ROWS_MIN_K 16

/* The input gradient in the row layout is made and scattered back DIN_ROWS_BYTES at a
 * time, in the thread's scratch (cache-resident), in pixel order. */
#define DIN_ROWS_BYTES (96 * 1024)

static int din_rows(int K) { return (int)(DIN_ROWS_BYTES / sizeof(float)) / K / 6 * 6 + 6; }

/* A thread's scratch: the bias gradient's lanes [OC][8], then for the row layout dout^T
 * [P][OC] and its block of dweight^T [K][OC]; later the rows of the input gradient. */
size_t conv2d_scratch_floats(const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW;
    size_t wgrad = (size_t)8 * s->OC, dgrad = 0;
    if (K >= CONV_ROWS_MIN_K) {
        wgrad += (size_t)s->OC * (s->OH * s->OW + K);
        dgrad = (size_t)din_rows(K) * K;
    }
    return wgrad > dgrad ? wgrad : dgrad;
}

/* The weight and bias gradients from one thread, over the samples in order.
 *
 * Rows layout: dweight[oc, k] += sum over samples n, then pixels p, of dout[n, oc, p] *
 * col[n, k, p], one chain of fused multiply-adds per element in (n, p) order, worked on
 * transposed as dwT[k, oc] (this thread's k in [lo, hi)) += col[n] doutT[n]: the product
 * then reads col as it lies and runs along the output channels; each element's chain is
 * the same, only its place in memory differs. Otherwise (few columns) dot products over
 * p for the thread's channels [lo, hi). The bias lanes of channels [blo, bhi) are summed
 * while the sample's dout is in cache. */
static void conv_param_grads(float *dweight, float *dbias, const float *col, const float *dout,
                             int lo, int hi, int blo, int bhi, float *scratch,
                             const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, OC = s->OC;
    const int rows = K >= CONV_ROWS_MIN_K;
    const dp_kernel_table *kt = dp_kernels();
    float *blanes = scratch, *doutT = blanes + (size_t)8 * OC, *dwT = doutT + (size_t)P * OC;
    memset(blanes, 0, sizeof(float) * 8 * (bhi - blo));
    if (rows)
        for (int k = lo; k < hi; k++)
            for (int oc = 0; oc < OC; oc++)
                dwT[(size_t)(k - lo) * OC + oc] = dweight[(size_t)oc * K + k];
    for (int n = 0; n < s->B; n++) {
        const float *dout_n = dout + (size_t)n * OC * P, *col_n = col + (size_t)n * K * P;
        if (rows && lo < hi) {
            kt->transpose(dout_n, OC, P, doutT);
            gemm_nn_acc(hi - lo, OC, P, col_n + (size_t)lo * P, P, doutT, OC, dwT, OC);
        } else if (!rows) {
            gemm_nt_acc(hi - lo, K, P, dout_n + (size_t)lo * P, P, col_n, P,
                        dweight + (size_t)lo * K, K);
        }
        /* 8 partial sums (p mod 8 within each sample), combined in a fixed order */
        for (int oc = blo; oc < bhi; oc++)
            kt->sum_lanes8(blanes + (size_t)(oc - blo) * 8, dout_n + (size_t)oc * P, P);
    }
    for (int oc = blo; oc < bhi; oc++)
        dbias[oc] += combine8(blanes + (size_t)(oc - blo) * 8);
    if (rows)
        for (int k = lo; k < hi; k++)
            for (int oc = 0; oc < OC; oc++)
                dweight[(size_t)oc * K + k] = dwT[(size_t)(k - lo) * OC + oc];
}

void conv2d_backward(float *din, float *dweight, float *dbias, float *col, const float *dout,
                     const float *weight, float *scratch, const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, OC = s->OC;
    const size_t in_size = (size_t)s->C * s->H * s->W;
    const int use_rows = K >= CONV_ROWS_MIN_K;
    const dp_kernel_table *kt = dp_kernels();
    /* Weight and bias gradients. Each thread owns a block of columns (rows) of dweight and
     * of dbias and sums over samples in order, so every element has one fixed reduction
     * order whatever the number of threads. */
    #pragma omp parallel if (dweight)
    if (dweight) { /* dweight NULL: a frozen layer, only din wanted */
        int lo, hi, blo, bhi;
        thread_range(use_rows ? K : OC, &lo, &hi);
        thread_range(OC, &blo, &bhi);
        conv_param_grads(dweight, dbias, col, dout, lo, hi, blo, bhi,
                         scratch + (size_t)omp_get_thread_num() * conv2d_scratch_floats(s), s);
    }
    if (!din)
        return;
    /* Input gradient, per sample: in the row layout drow = dout^T W (long rows of K: full
     * vector tiles), a block of pixels at a time in the thread's scratch; else dcol =
     * W^T dout, in col (no longer needed); then back to the image. */
    #pragma omp parallel
    {
        float *rows = scratch ? scratch + (size_t)omp_get_thread_num() * conv2d_scratch_floats(s)
                              : NULL;
        const int chunk = din_rows(K);
        #pragma omp for schedule(static)
        for (int n = 0; n < s->B; n++) {
            float *din_n = din + (size_t)n * in_size;
            const float *dout_n = dout + (size_t)n * OC * P;
            memset(din_n, 0, sizeof(float) * in_size);
            if (use_rows) {
                for (int p0 = 0; p0 < P; p0 += chunk) {
                    const int p1 = P - p0 < chunk ? P : p0 + chunk;
                    gemm_tn(p1 - p0, K, OC, dout_n + p0, P, weight, K, rows, K);
                    kt->row2im_acc(rows, p0, p1, s->C, s->H, s->W, s->KH, s->KW, s->stride,
                                   s->pad, s->OH, s->OW, din_n);
                }
            } else {
                float *dcol = col + (size_t)n * K * P;
                gemm_tn(K, P, OC, weight, K, dout_n, P, dcol, P);
                col2im_acc(dcol, s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH,
                           s->OW, din_n);
            }
        }
    }
}

static void pool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                         int K, int stride, int OH, int OW, int relu)
{
    const dp_kernel_table *kt = dp_kernels();
    #pragma omp parallel for schedule(static)
    for (int plane = 0; plane < B * C; plane++)
        kt->pool_plane(out + (size_t)plane * OH * OW, argmax + (size_t)plane * OH * OW,
                       in + (size_t)plane * H * W, H, W, K, stride, OH, OW, relu);
}

static void pool_backward(float *din, const float *dout, const float *out, const int32_t *argmax,
                          int B, int C, int H, int W, int OH, int OW)
{
    const dp_kernel_table *kt = dp_kernels();
    #pragma omp parallel for schedule(static)
    for (int plane = 0; plane < B * C; plane++)
        kt->unpool_plane(din + (size_t)plane * H * W, dout + (size_t)plane * OH * OW,
                         out ? out + (size_t)plane * OH * OW : NULL,
                         argmax + (size_t)plane * OH * OW, H, W, OH, OW);
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                     int K, int stride, int OH, int OW)
{
    pool_forward(out, argmax, in, B, C, H, W, K, stride, OH, OW, 0);
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int C, int H,
                      int W, int OH, int OW)
{
    pool_backward(din, dout, NULL, argmax, B, C, H, W, OH, OW);
}

void relu_maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                          int K, int stride, int OH, int OW)
{
    pool_forward(out, argmax, in, B, C, H, W, K, stride, OH, OW, 1);
}

void relu_maxpool_backward(float *din, const float *dout, const float *out, const int32_t *argmax,
                           int B, int C, int H, int W, int OH, int OW)
{
    pool_backward(din, dout, out, argmax, B, C, H, W, OH, OW);
}

/* Blocks of whole cache lines per thread: the split changes no value. */
#define RELU_BLOCK 4096

void relu_forward(float *out, const float *in, size_t n)
{
    const dp_kernel_table *kt = dp_kernels();
    const long blocks = (long)((n + RELU_BLOCK - 1) / RELU_BLOCK);
    #pragma omp parallel for schedule(static)
    for (long b = 0; b < blocks; b++) {
        size_t at = (size_t)b * RELU_BLOCK, len = n - at < RELU_BLOCK ? n - at : RELU_BLOCK;
        kt->relu_forward(out + at, in + at, len);
    }
}

void relu_backward(float *din, const float *dout, const float *out, size_t n)
{
    const dp_kernel_table *kt = dp_kernels();
    const long blocks = (long)((n + RELU_BLOCK - 1) / RELU_BLOCK);
    #pragma omp parallel for schedule(static)
    for (long b = 0; b < blocks; b++) {
        size_t at = (size_t)b * RELU_BLOCK, len = n - at < RELU_BLOCK ? n - at : RELU_BLOCK;
        kt->relu_backward(din + at, dout + at, out + at, len);
    }
}

size_t linear_scratch_floats(int B, int O, int threads)
{
    return (size_t)B * O * 8 + (size_t)threads * gemm_nt_pack_floats(B, O);
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias, int B,
                    int I, int O, float *lanes)
{
    /* Blocks of samples per thread; each element's dot product is blocking-independent. */
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B, &lo, &hi);
        for (int n = lo; n < hi; n++)
            for (int o = 0; o < O; o++)
                out[(size_t)n * O + o] = bias[o];
        if (lanes) /* after the lanes of all B samples, one pack area per thread */
            gemm_nt_acc_lanes(hi - lo, O, I, in + (size_t)lo * I, I, weight, I,
                              out + (size_t)lo * O, O, lanes + (size_t)lo * O * 8,
                              lanes + (size_t)B * O * 8 +
                                  (size_t)omp_get_thread_num() * gemm_nt_pack_floats(B, O));
        else
            gemm_nt_acc(hi - lo, O, I, in + (size_t)lo * I, I, weight, I, out + (size_t)lo * O, O);
    }
}

void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, int B, int I, int O)
{
    #pragma omp parallel if (dweight)
    if (dweight) { /* NULL: a frozen layer, only din wanted */
        int lo, hi;
        thread_range(O, &lo, &hi);
        /* dweight[o, :] += sum_n dout[n, o] * in[n, :], in sample order */
        gemm_tn_acc(hi - lo, I, B, dout + lo, O, in, I, dweight + (size_t)lo * I, I);
        for (int o = lo; o < hi; o++) {
            float acc = 0.0f;
            for (int n = 0; n < B; n++)
                acc += dout[(size_t)n * O + o];
            dbias[o] += acc;
        }
    }
    if (!din)
        return;
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B, &lo, &hi);
        gemm_nn(hi - lo, I, O, dout + (size_t)lo * O, O, weight, I, din + (size_t)lo * I, I);
    }
}

double softmax_xent(float *dlogits, int *correct, const float *logits, const uint8_t *labels,
                    int B, int NC)
{
    double loss = 0.0;
    int right = 0;
    for (int n = 0; n < B; n++) {
        const float *z = logits + (size_t)n * NC;
        int y = labels[n];
        float zmax = z[0];
        int arg = 0;
        for (int k = 1; k < NC; k++)
            if (z[k] > zmax) {
                zmax = z[k];
                arg = k;
            }
        double sum = 0.0;
        for (int k = 0; k < NC; k++)
            sum += exp((double)z[k] - zmax);
        double logsum = log(sum) + zmax;
        loss += logsum - z[y];
        right += (arg == y);
        if (dlogits) {
            float *g = dlogits + (size_t)n * NC;
            for (int k = 0; k < NC; k++)
                g[k] = (float)exp((double)z[k] - logsum) - (k == y ? 1.0f : 0.0f);
        }
    }
    if (correct)
        *correct = right;
    return loss;
}
