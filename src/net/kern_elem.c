/* kern_elem: the element-wise passes (max pooling, relu, the bias gradient's sums), for one
 * instruction set. Comparisons and selections give the same bits on every path; the
 * only additions (unpooling onto zero, the bias sums) keep one order per element. */
#include <string.h>

#include "simd.h"

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

#if VW == 16
/* `count` (1-16) outputs of a 2x2, stride-2 window row: the same comparisons as
 * pool_take, lane-wise, on the even and odd columns of the two input rows. */
static inline void pool2x2_row(const float *r0, const float *r1, int base, int W, int relu,
                               float *dst, int32_t *idx, int count, int full)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const int n2 = 2 * count;
    const __mmask16 mlo = (__mmask16)((1u << (n2 < 16 ? n2 : 16)) - 1u);
    const __mmask16 mhi = (__mmask16)((1u << (n2 > 16 ? n2 - 16 : 0)) - 1u);
    const __mmask16 mout = (__mmask16)((1u << count) - 1u);
    __m512 lo0 = _mm512_maskz_loadu_ps(mlo, r0), hi0 = _mm512_maskz_loadu_ps(mhi, r0 + 16);
    __m512 lo1 = _mm512_maskz_loadu_ps(mlo, r1), hi1 = _mm512_maskz_loadu_ps(mhi, r1 + 16);
    __m512 v[4] = {_mm512_permutex2var_ps(lo0, even, hi0), _mm512_permutex2var_ps(lo0, odd, hi0),
                   _mm512_permutex2var_ps(lo1, even, hi1), _mm512_permutex2var_ps(lo1, odd, hi1)};
    const int offset[4] = {0, 1, W, W + 1};
    const __m512i at0 = _mm512_add_epi32(_mm512_set1_epi32(base), even);
    /* the NaN rules cost half the work: only when a NaN is there */
    const int nans = (_mm512_cmp_ps_mask(lo0, hi0, _CMP_UNORD_Q) |
                      _mm512_cmp_ps_mask(lo1, hi1, _CMP_UNORD_Q)) != 0;
    __m512 m = v[0];
    __m512i best = at0;
    for (int k = 1; k < 4; k++) {
        __mmask16 take = _mm512_cmp_ps_mask(v[k], m, _CMP_GT_OQ);
        if (nans)
            take |= _mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q) &
                    _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q);
        m = _mm512_mask_blend_ps(take, m, v[k]);
        best = _mm512_mask_blend_epi32(take, best,
                                       _mm512_add_epi32(at0, _mm512_set1_epi32(offset[k])));
    }
    if (relu) {
        __mmask16 keep = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
        if (nans)
            keep |= _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
        m = _mm512_maskz_mov_ps(keep, m);
    }
    if (full) { /* past `count`: lanes the next row's outputs overwrite */
        _mm512_storeu_ps(dst, m);
        _mm512_storeu_si512(idx, best);
    } else {
        _mm512_mask_storeu_ps(dst, mout, m);
        _mm512_mask_storeu_epi32(idx, mout, best);
    }
}
#define POOL_VEC 16
#elif VW == 8
/* `count` (1-8) outputs of a 2x2, stride-2 window row: the same comparisons as pool_take,
 * lane-wise; loads and stores are masked to the 2*count inputs and count outputs. */
static inline void pool2x2_row(const float *r0, const float *r1, int base, int W, int relu,
                               float *dst, int32_t *idx, int count, int full)
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
#define DEINTERLEAVE(a, b, sel) \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, sel)), 0xD8))
    v[0] = DEINTERLEAVE(lo0, hi0, 0x88);
    v[1] = DEINTERLEAVE(lo0, hi0, 0xDD);
    v[2] = DEINTERLEAVE(lo1, hi1, 0x88);
    v[3] = DEINTERLEAVE(lo1, hi1, 0xDD);
#undef DEINTERLEAVE
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
    if (full) { /* past `count`: lanes the next row's outputs overwrite */
        _mm256_storeu_ps(dst, m);
        _mm256_storeu_si256((__m256i *)idx, best);
    } else {
        _mm256_maskstore_ps(dst, mout, m);
        _mm256_maskstore_epi32(idx, mout, best);
    }
}
#define POOL_VEC 8
#endif

void KFN(kern_pool_plane)(float *restrict dst, int32_t *restrict idx, const float *restrict src,
                          int H, int W, int K, int stride, int OH, int OW, int relu)
{
    (void)H;
    for (int oy = 0; oy < OH; oy++) {
        const int y0 = oy * stride;
        int ox = 0;
        if (K == 2 && stride == 2) {
            const float *r0 = src + (size_t)y0 * W, *r1 = r0 + W;
#ifdef POOL_VEC
            /* full-width stores while they stay inside this plane (the next outputs are
             * written after them); masked ones at its end */
            for (; ox < OW; ox += POOL_VEC)
                pool2x2_row(r0 + 2 * ox, r1 + 2 * ox, y0 * W + 2 * ox, W, relu, dst + oy * OW + ox,
                            idx + oy * OW + ox, OW - ox < POOL_VEC ? OW - ox : POOL_VEC,
                            oy * OW + ox + POOL_VEC <= OH * OW);
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

#if VW == 16
/* Rows 2oy and 2oy+1 of din for the outputs of row oy, 32 columns at a time, when every
 * passing output's argmax lies in its own 2x2 window: then no input receives two terms
 * and din = 0 + dout there (0 + -0 is +0, as the scatter below gives), 0 elsewhere.
 * Returns 0, having written nothing more, when an argmax lies elsewhere. */
static int unpool2x2_row(float *d0, float *d1, const float *src, const float *out,
                         const int32_t *idx, int base, int W, int OW, const float *plane_end)
{
    const __m512i two_iota = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                               26, 28, 30);
    /* lane 2k from the first vector's k, lane 2k+1 from the second's */
    const __m512i mix_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22,
                                             7, 23);
    const __m512i mix_hi = _mm512_add_epi32(mix_lo, _mm512_set1_epi32(8));
    for (int x0 = 0; x0 < W; x0 += 32) {
        const int ox0 = x0 / 2, n = OW - ox0 < 16 ? (OW - ox0 > 0 ? OW - ox0 : 0) : 16;
        const __mmask16 valid = (__mmask16)((1u << n) - 1u);
        __m512 s = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(valid, src + ox0));
        __mmask16 pass = valid;
        if (out)
            pass &= _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(valid, out + ox0),
                                       _mm512_setzero_ps(), _CMP_NLE_UQ);
        /* where in its window each output's argmax lies: 0, 1, W or W+1 */
        __m512i rel = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(valid, idx + ox0),
                                       _mm512_add_epi32(_mm512_set1_epi32(base + x0), two_iota));
        __mmask16 m00 = pass & _mm512_cmpeq_epi32_mask(rel, _mm512_setzero_si512());
        __mmask16 m01 = pass & _mm512_cmpeq_epi32_mask(rel, _mm512_set1_epi32(1));
        __mmask16 m10 = pass & _mm512_cmpeq_epi32_mask(rel, _mm512_set1_epi32(W));
        __mmask16 m11 = pass & _mm512_cmpeq_epi32_mask(rel, _mm512_set1_epi32(W + 1));
        if ((__mmask16)(m00 | m01 | m10 | m11) != pass)
            return 0;
        __m512 e0 = _mm512_maskz_mov_ps(m00, s), o0 = _mm512_maskz_mov_ps(m01, s);
        __m512 e1 = _mm512_maskz_mov_ps(m10, s), o1 = _mm512_maskz_mov_ps(m11, s);
        __m512 v[2][2] = {{_mm512_permutex2var_ps(e0, mix_lo, o0), _mm512_permutex2var_ps(e1, mix_lo, o1)},
                          {_mm512_permutex2var_ps(e0, mix_hi, o0), _mm512_permutex2var_ps(e1, mix_hi, o1)}};
        /* row 2oy, then 2oy+1. A full store past a row's end runs into the next row: fine
         * where that is written after it (row 2oy+1 when one chunk covers the row, row
         * 2oy+2 always), but masked where it is already written or in another plane. */
        for (int dy = 0; dy < 2; dy++)
            for (int h = 0; h < 2; h++) {
                int left = W - x0 - 16 * h;
                if (left <= 0)
                    break;
                float *d = (dy ? d1 : d0) + x0 + 16 * h;
                if (left >= 16 || ((dy || W <= 32) && d + 16 <= plane_end))
                    _mm512_storeu_ps(d, v[h][dy]);
                else
                    _mm512_mask_storeu_ps(d, (__mmask16)((1u << left) - 1u), v[h][dy]);
            }
    }
    return 1;
}
#endif

void KFN(kern_unpool_plane)(float *restrict dst, const float *restrict src,
                            const float *restrict out, const int32_t *restrict idx, int H,
                            int W, int OH, int OW)
{
#if VW == 16
    if (2 * OH <= H && 2 * OW <= W) {
        int oy = 0;
        for (; oy < OH; oy++)
            if (!unpool2x2_row(dst + (size_t)2 * oy * W, dst + (size_t)(2 * oy + 1) * W,
                               src + (size_t)oy * OW, out ? out + (size_t)oy * OW : NULL,
                               idx + (size_t)oy * OW, 2 * oy * W, W, OW, dst + (size_t)H * W))
                break;
        if (oy == OH) {
            memset(dst + (size_t)2 * OH * W, 0, sizeof(float) * (H - 2 * OH) * W);
            return;
        }
    }
#endif
    /* any windows: scatter onto zero, terms in output order */
    memset(dst, 0, sizeof(float) * H * W);
    for (int k = 0; k < OH * OW; k++)
        if (!out || !(out[k] <= 0.0f))
            dst[idx[k]] += src[k];
}

void KFN(kern_relu_forward)(float *restrict out, const float *restrict in, size_t n)
{
    size_t i = 0;
#if VW == 16
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(in + i);
        __mmask16 keep = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ) |
                         _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        _mm512_storeu_ps(out + i, _mm512_maskz_mov_ps(keep, v));
    }
#endif
    for (; i < n; i++)
        out[i] = relu1(in[i]);
}

void KFN(kern_relu_backward)(float *restrict din, const float *restrict dout,
                             const float *restrict out, size_t n)
{
    size_t i = 0;
#if VW == 16
    for (; i + 16 <= n; i += 16) {
        __mmask16 pass = _mm512_cmp_ps_mask(_mm512_loadu_ps(out + i), _mm512_setzero_ps(),
                                            _CMP_NLE_UQ);
        _mm512_storeu_ps(din + i, _mm512_maskz_loadu_ps(pass, dout + i));
    }
#endif
    for (; i < n; i++)
        din[i] = out[i] <= 0.0f ? 0.0f : dout[i]; /* threshold_backward: NaN passes */
}

void KFN(kern_sum_lanes8)(float sums[8], const float *restrict x, int n)
{
    int p = 0;
#if VW > 1
    __m256 acc = _mm256_loadu_ps(sums);
    for (; p + 8 <= n; p += 8)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + p));
    _mm256_storeu_ps(sums, acc);
#endif
    for (; p + 8 <= n; p += 8)
        for (int l = 0; l < 8; l++)
            sums[l] += x[p + l];
    for (int l = 0; p < n; p++, l++)
        sums[l] += x[p];
}
