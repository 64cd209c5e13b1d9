#include "dptrain/layers.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "dptrain/kernels.h"

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
        for (int oc = 0; oc < s->OC; oc++)
            for (int p = 0; p < P; p++)
                out_n[(size_t)oc * P + p] = bias[oc];
        gemm_nn_acc(s->OC, P, K, weight, K, col_n, P, out_n, P);
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, float *col, const float *dout,
                     const float *weight, const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, OC = s->OC;
    /* Weight and bias gradients: each thread owns a block of output channels and sums
     * over samples in order, so every element has one fixed reduction order. A frozen
     * layer passes dweight = NULL and only wants din. */
    #pragma omp parallel if (dweight)
    if (dweight) {
        int lo, hi;
        thread_range(OC, &lo, &hi);
        for (int n = 0; n < s->B; n++) {
            const float *col_n = col + (size_t)n * K * P;
            const float *dout_n = dout + (size_t)n * OC * P;
            gemm_nt_acc(hi - lo, K, P, dout_n + (size_t)lo * P, P, col_n, P,
                        dweight + (size_t)lo * K, K);
            for (int oc = lo; oc < hi; oc++) {
                const float *d = dout_n + (size_t)oc * P;
                float acc = 0.0f;
                for (int p = 0; p < P; p++)
                    acc += d[p];
                dbias[oc] += acc;
            }
        }
    }
    if (!din)
        return;
    /* Input gradient, per sample: dcol = W^T dout, reusing col as scratch, then col2im. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < s->B; n++) {
        float *dcol = col + (size_t)n * K * P;
        float *din_n = din + (size_t)n * s->C * s->H * s->W;
        memset(dcol, 0, sizeof(float) * K * P);
        gemm_tn_acc(K, P, OC, weight, K, dout + (size_t)n * OC * P, P, dcol, P);
        memset(din_n, 0, sizeof(float) * s->C * s->H * s->W);
        col2im_acc(dcol, s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH, s->OW, din_n);
    }
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                     int K, int stride, int OH, int OW)
{
    #pragma omp parallel for schedule(static)
    for (int plane = 0; plane < B * C; plane++) {
        const float *src = in + (size_t)plane * H * W;
        float *dst = out + (size_t)plane * OH * OW;
        int32_t *idx = argmax + (size_t)plane * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int best = (oy * stride) * W + ox * stride;
                float m = src[best];
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++) {
                        int at = (oy * stride + i) * W + ox * stride + j;
                        float v = src[at];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = at;
                            if (isnan(v))
                                goto done;
                        }
                    }
            done:
                dst[oy * OW + ox] = m;
                idx[oy * OW + ox] = best;
            }
    }
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int C, int H,
                      int W, int OH, int OW)
{
    #pragma omp parallel for schedule(static)
    for (int plane = 0; plane < B * C; plane++) {
        float *dst = din + (size_t)plane * H * W;
        const float *src = dout + (size_t)plane * OH * OW;
        const int32_t *idx = argmax + (size_t)plane * OH * OW;
        memset(dst, 0, sizeof(float) * H * W);
        for (int o = 0; o < OH * OW; o++)
            dst[idx[o]] += src[o];
    }
}

void relu_forward(float *out, const float *in, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *din, const float *dout, const float *out, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias, int B,
                    int I, int O)
{
    /* Blocks of samples per thread; each element's dot product is blocking-independent. */
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B, &lo, &hi);
        for (int n = lo; n < hi; n++)
            for (int o = 0; o < O; o++)
                out[(size_t)n * O + o] = bias[o];
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
        memset(din + (size_t)lo * I, 0, sizeof(float) * I * (hi - lo));
        gemm_nn_acc(hi - lo, I, O, dout + (size_t)lo * O, O, weight, I, din + (size_t)lo * I, I);
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
