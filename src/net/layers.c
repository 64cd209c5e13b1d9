#include "dptrain/net/layers.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "dptrain/net/kernels.h"

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

/* Below this many columns (C*KH*KW) the weight gradient is computed as dot products
 * over output pixels (conv1 of MNIST: 9); above it as a product with the im2row matrix,
 * vectorised over the columns. The choice depends on the shape alone. */
#define CONV_ROWS_MIN_K 16

size_t conv2d_scratch_floats(const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW;
    return K >= CONV_ROWS_MIN_K ? (size_t)K * s->OH * s->OW : 0;
}

void conv2d_backward(float *din, float *dweight, float *dbias, float *col, const float *dout,
                     const float *weight, float *scratch, const dp_conv_shape *s)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW, OC = s->OC;
    const size_t in_size = (size_t)s->C * s->H * s->W;
    const int use_rows = K >= CONV_ROWS_MIN_K;
    if (use_rows && dweight) { /* dweight NULL: a frozen layer, only din wanted */
        /* Transpose each sample's col in place (through a per-thread scratch): one row of
         * K values per output pixel, so the weight gradient vectorises over K. */
        #pragma omp parallel
        {
            float *tmp = scratch + (size_t)omp_get_thread_num() * K * P;
            #pragma omp for schedule(static)
            for (int n = 0; n < s->B; n++) {
                float *col_n = col + (size_t)n * K * P;
                transpose(col_n, K, P, tmp);
                memcpy(col_n, tmp, sizeof(float) * K * P);
            }
        }
    }
    /* Weight and bias gradients. Each thread owns a block of columns (rows) of dweight and
     * sums over samples in order, so every element has one fixed reduction order. */
    #pragma omp parallel if (dweight)
    if (dweight) {
        int lo, hi;
        if (use_rows) {
            const int tiles = (K + 15) / 16;
            thread_range(tiles, &lo, &hi);
            lo *= 16;
            hi = hi * 16 < K ? hi * 16 : K;
            for (int n = 0; n < s->B && lo < hi; n++)
                gemm_nn_acc(OC, hi - lo, P, dout + (size_t)n * OC * P, P,
                            col + (size_t)n * K * P + lo, K, dweight + lo, K);
        } else {
            thread_range(OC, &lo, &hi);
            for (int n = 0; n < s->B; n++)
                gemm_nt_acc(hi - lo, K, P, dout + (size_t)n * OC * P + (size_t)lo * P, P,
                            col + (size_t)n * K * P, P, dweight + (size_t)lo * K, K);
        }
        int blo, bhi;
        thread_range(OC, &blo, &bhi);
        for (int oc = blo; oc < bhi; oc++) {
            /* 8 partial sums (p mod 8 within each sample), combined in a fixed order */
            float acc[8] = {0};
            for (int n = 0; n < s->B; n++) {
                const float *d = dout + ((size_t)n * OC + oc) * P;
                int p = 0;
                for (; p + 8 <= P; p += 8)
                    for (int l = 0; l < 8; l++)
                        acc[l] += d[p + l];
                for (int l = 0; p < P; p++, l++)
                    acc[l] += d[p];
            }
            dbias[oc] += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        }
    }
    if (!din)
        return;
    /* Input gradient, per sample, reusing col as scratch: in the row layout drow = dout^T W
     * (long rows of K: full vector tiles), else dcol = W^T dout; then back to the image. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < s->B; n++) {
        float *dcol = col + (size_t)n * K * P;
        float *din_n = din + (size_t)n * in_size;
        const float *dout_n = dout + (size_t)n * OC * P;
        memset(din_n, 0, sizeof(float) * in_size);
        if (use_rows) {
            gemm_tn(P, K, OC, dout_n, P, weight, K, dcol, K);
            row2im_acc(dcol, s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH, s->OW,
                       din_n);
        } else {
            gemm_tn(K, P, OC, weight, K, dout_n, P, dcol, P);
            col2im_acc(dcol, s->C, s->H, s->W, s->KH, s->KW, s->stride, s->pad, s->OH, s->OW,
                       din_n);
        }
    }
}

/* max(m, v) as PyTorch's max-pool: the first maximum wins and a NaN wins for good. */
static inline void pool_take(float v, int at, float *m, int *best)
{
    if (v > *m || (v != v && *m == *m)) {
        *m = v;
        *best = at;
    }
}

/* ReLU as PyTorch's: NaN passes through. */
static inline float relu1(float v) { return v > 0.0f || v != v ? v : 0.0f; }

#if defined(__AVX2__)
#include <immintrin.h>
/* `count` (1-8) outputs of a 2x2, stride-2 window row: the same comparisons as pool_take,
 * lane-wise; loads and stores are masked to the 2*count inputs and count outputs. */
static inline void pool2x2_vec(const float *r0, const float *r1, int base, int W, int relu,
                               float *dst, int32_t *idx, int count)
{
    static const int32_t bits[24] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                     -1, -1, -1, -1, 0,  0,  0,  0,  0,  0,  0,  0};
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    int n2 = 2 * count;
    __m256i mlo = _mm256_loadu_si256((const __m256i *)(bits + 16 - (n2 < 8 ? n2 : 8)));
    __m256i mhi = _mm256_loadu_si256((const __m256i *)(bits + 16 - (n2 > 8 ? n2 - 8 : 0)));
    __m256i mout = _mm256_loadu_si256((const __m256i *)(bits + 16 - count));
    __m256 lo0 = _mm256_maskload_ps(r0, mlo), hi0 = _mm256_maskload_ps(r0 + 8, mhi);
    __m256 lo1 = _mm256_maskload_ps(r1, mlo), hi1 = _mm256_maskload_ps(r1 + 8, mhi);
    __m256 v[4];
    v[0] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo0, hi0, 0x88)), 0xD8));
    v[1] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo0, hi0, 0xDD)), 0xD8));
    v[2] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo1, hi1, 0x88)), 0xD8));
    v[3] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo1, hi1, 0xDD)), 0xD8));
    const int offset[4] = {0, 1, W, W + 1};
    __m256i at0 = _mm256_add_epi32(_mm256_set1_epi32(base), even);
    __m256 m = v[0];
    __m256i best = at0;
    for (int k = 1; k < 4; k++) {
        __m256 take = _mm256_or_ps(_mm256_cmp_ps(v[k], m, _CMP_GT_OQ),
                                   _mm256_and_ps(_mm256_cmp_ps(v[k], v[k], _CMP_UNORD_Q),
                                                 _mm256_cmp_ps(m, m, _CMP_ORD_Q)));
        m = _mm256_blendv_ps(m, v[k], take);
        best = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(best),
            _mm256_castsi256_ps(_mm256_add_epi32(at0, _mm256_set1_epi32(offset[k]))), take));
    }
    if (relu) {
        __m256 keep = _mm256_or_ps(_mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ),
                                   _mm256_cmp_ps(m, m, _CMP_UNORD_Q));
        m = _mm256_and_ps(m, keep);
    }
    _mm256_maskstore_ps(dst, mout, m);
    _mm256_maskstore_epi32(idx, mout, best);
}
#endif

static void pool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                         int K, int stride, int OH, int OW, int relu)
{
    #pragma omp parallel for schedule(static)
    for (int plane = 0; plane < B * C; plane++) {
        const float *src = in + (size_t)plane * H * W;
        float *dst = out + (size_t)plane * OH * OW;
        int32_t *idx = argmax + (size_t)plane * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            const int y0 = oy * stride;
            int ox = 0;
            if (K == 2 && stride == 2) {
                const float *r0 = src + (size_t)y0 * W, *r1 = r0 + W;
#if defined(__AVX2__)
                for (; ox < OW; ox += 8)
                    pool2x2_vec(r0 + 2 * ox, r1 + 2 * ox, y0 * W + 2 * ox, W, relu,
                                dst + oy * OW + ox, idx + oy * OW + ox, OW - ox < 8 ? OW - ox : 8);
#endif
                for (; ox < OW; ox++) {
                    int x = 2 * ox, best = y0 * W + x;
                    float m = r0[x];
                    pool_take(r0[x + 1], best + 1, &m, &best);
                    pool_take(r1[x], y0 * W + x + W, &m, &best);
                    pool_take(r1[x + 1], y0 * W + x + W + 1, &m, &best);
                    dst[oy * OW + ox] = relu ? relu1(m) : m;
                    idx[oy * OW + ox] = best;
                }
                continue;
            }
            for (; ox < OW; ox++) {
                const int x0 = ox * stride;
                int best = y0 * W + x0;
                float m = src[best];
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++)
                        pool_take(src[(y0 + i) * W + x0 + j], (y0 + i) * W + x0 + j, &m, &best);
                dst[oy * OW + ox] = relu ? relu1(m) : m;
                idx[oy * OW + ox] = best;
            }
        }
    }
}

static void pool_backward(float *din, const float *dout, const float *out, const int32_t *argmax,
                          int B, int C, int H, int W, int OH, int OW)
{
    #pragma omp parallel for schedule(static)
    for (int plane = 0; plane < B * C; plane++) {
        float *dst = din + (size_t)plane * H * W;
        const float *src = dout + (size_t)plane * OH * OW;
        const float *o = out ? out + (size_t)plane * OH * OW : NULL;
        const int32_t *idx = argmax + (size_t)plane * OH * OW;
        memset(dst, 0, sizeof(float) * H * W);
        for (int k = 0; k < OH * OW; k++)
            if (!o || !(o[k] <= 0.0f))
                dst[idx[k]] += src[k];
    }
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

void relu_forward(float *out, const float *in, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = relu1(in[i]);
}

void relu_backward(float *din, const float *dout, const float *out, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        din[i] = out[i] <= 0.0f ? 0.0f : dout[i]; /* threshold_backward: NaN passes */
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
