#include "dptrain/net/layers.h"

#include <assert.h>
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

/* Columns of dweight per tile: the tile's float partial, its int64 sums and the inputs of
 * every group in those columns stay in a core's cache (MNIST's nopool: 64 rows per thread,
 * 128 KB + 256 KB + 100 samples x 2 KB). */
#ifndef FC_TILE_COLS /* (tunable from the command line for experiments) */
#define FC_TILE_COLS 512
#endif

/* The bias gradient of samples [n0, n1), rows [lo, hi): the sum in sample order. */
static void bias_partial(float *dbias, const float *dout, int n0, int n1, int O, int lo, int hi)
{
    for (int o = lo; o < hi; o++) {
        float acc = 0.0f;
        for (int n = n0; n < n1; n++)
            acc += dout[(size_t)n * O + o];
        dbias[o] += acc;
    }
}

/* din[B, I] = dout[B, O] weight[O, I], rows by thread: each sample's chain is its own. */
static void linear_input_grad(float *din, const float *dout, const float *weight, int B, int I,
                              int O)
{
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B, &lo, &hi);
        gemm_nn(hi - lo, I, O, dout + (size_t)lo * O, O, weight, I, din + (size_t)lo * I, I);
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
        bias_partial(dbias, dout, 0, B, O, lo, hi);
    }
    if (din)
        linear_input_grad(din, dout, weight, B, I, O);
}

void linear_backward_groups(float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, int B, int I, int O,
                            const int *bounds, int ngroups, dp_partial_move move,
                            void *ctx)
{
    #pragma omp parallel if (dweight)
    if (dweight) {
        int lo, hi;
        thread_range(O, &lo, &hi);
        for (int i0 = 0; lo < hi && i0 < I; i0 += FC_TILE_COLS) {
            const int cols = I - i0 < FC_TILE_COLS ? I - i0 : FC_TILE_COLS;
            float *tile = dweight + (size_t)lo * I + i0;
            for (int g = 0; g < ngroups; g++) {
                const int n0 = bounds[g] - bounds[0], n1 = bounds[g + 1] - bounds[0];
                /* the chain of linear_backward on this group, from zero (the tile is zero:
                 * made so, or left so by the last move), without reading the tile */
                gemm_tn(hi - lo, cols, n1 - n0, dout + (size_t)n0 * O + lo, O,
                        in + (size_t)n0 * I + i0, I, tile, I);
                move(ctx, tile, (size_t)(hi - lo), (size_t)cols, (size_t)I);
            }
        }
        for (int g = 0; lo < hi && g < ngroups; g++) {
            bias_partial(dbias, dout, bounds[g] - bounds[0], bounds[g + 1] - bounds[0], O, lo, hi);
            move(ctx, dbias + lo, 1, (size_t)(hi - lo), 0);
        }
    }
    if (din)
        linear_input_grad(din, dout, weight, B, I, O);
}

double softmax_xent(float *dlogits, int *correct, const float *logits, const uint8_t *labels,
                    int B, int NC, double scale)
{
    double loss = 0.0;
    int right = 0;
    for (int n = 0; n < B; n++) {
        const float *z = logits + (size_t)n * NC;
        int y = labels[n];
        /* The driver refuses such data with a message; this catches a caller that did not
         * check (debug and sanitizer builds) before z[y] reads past the logits. */
        assert(y < NC && "softmax_xent: a label is not below the number of classes");
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
            for (int k = 0; k < NC; k++) /* in double, one rounding to float */
                g[k] = (float)((exp((double)z[k] - logsum) - (k == y ? 1.0 : 0.0)) * scale);
        }
    }
    if (correct)
        *correct = right;
    return loss;
}
