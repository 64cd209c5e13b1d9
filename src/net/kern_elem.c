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
/* Sixteen 2x2 windows, their pairs (0,0)-(0,1) and (1,0)-(1,1) interleaved in lo0:hi0 and
 * lo1:hi1 (lane 2i, 2i+1 of the 32: window i), the index of each window's (0,0) in at0:
 * the same comparisons as pool_take, lane-wise. The first `count` (1-16) outputs are
 * stored; `full`: the lanes past them too (outputs written later overwrite them). */
ALWAYS_INLINE void pool2x2_pick(__m512 lo0, __m512 hi0, __m512 lo1, __m512 hi1, __m512i at0,
                                int W, int relu, float *dst, int32_t *idx, int count, int full)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __mmask16 mout = (__mmask16)((1u << count) - 1u);
    __m512 v[4] = {_mm512_permutex2var_ps(lo0, even, hi0), _mm512_permutex2var_ps(lo0, odd, hi0),
                   _mm512_permutex2var_ps(lo1, even, hi1), _mm512_permutex2var_ps(lo1, odd, hi1)};
    const int offset[4] = {0, 1, W, W + 1};
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
    if (full) {
        _mm512_storeu_ps(dst, m);
        _mm512_storeu_si512(idx, best);
    } else {
        _mm512_mask_storeu_ps(dst, mout, m);
        _mm512_mask_storeu_epi32(idx, mout, best);
    }
}

/* `count` (1-16) outputs of a 2x2, stride-2 window row, from the two input rows. */
static inline void pool2x2_row(const float *r0, const float *r1, int base, int W, int relu,
                               float *dst, int32_t *idx, int count, int full)
{
    const int n2 = 2 * count;
    const __mmask16 mlo = (__mmask16)((1u << (n2 < 16 ? n2 : 16)) - 1u);
    const __mmask16 mhi = (__mmask16)((1u << (n2 > 16 ? n2 - 16 : 0)) - 1u);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    pool2x2_pick(_mm512_maskz_loadu_ps(mlo, r0), _mm512_maskz_loadu_ps(mhi, r0 + 16),
                 _mm512_maskz_loadu_ps(mlo, r1), _mm512_maskz_loadu_ps(mhi, r1 + 16),
                 _mm512_add_epi32(_mm512_set1_epi32(base), even), W, relu, dst, idx, count,
                 full);
}

/* Rows this short leave most lanes of a row at a time empty (MNIST's conv2: 5 outputs a
 * row); their planes go 16 outputs at a time in plane order, each window's two pairs
 * gathered. */
#define POOL_FLAT_MAX_OW 7
#define POOL_FLAT_MAX_PLANE 4096

/* Outputs o0..o0+count-1 (count 1-16) of an OH x OW plane pooled from an input of rows W
 * apart: output o lies in row o / OW, its window's (0,0) at 2 * (o + (o / OW) * (W - OW)). */
ALWAYS_INLINE void pool2x2_flat(const float *src, int W, int OW, int o0, int count, int relu,
                                float *dst, int32_t *idx, int full)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i o = _mm512_add_epi32(_mm512_set1_epi32(o0), iota);
    /* o / OW in float: exact, o + 0.5 lies 0.5 / OW or more from a multiple of OW */
    const __m512i oy = _mm512_cvttps_epi32(
        _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(o), _mm512_set1_ps(0.5f)),
                      _mm512_set1_ps(1.0f / (float)OW)));
    const __m512i at0 = _mm512_slli_epi32(
        _mm512_add_epi32(o, _mm512_mullo_epi32(oy, _mm512_set1_epi32(W - OW))), 1);
    const __mmask8 m0 = (__mmask8)((1u << (count < 8 ? count : 8)) - 1u);
    const __mmask8 m1 = (__mmask8)((1u << (count > 8 ? count - 8 : 0)) - 1u);
    const __m256i a_lo = _mm512_castsi512_si256(at0), a_hi = _mm512_extracti64x4_epi64(at0, 1);
    const __m256i w = _mm256_set1_epi32(W);
    const __m512d z = _mm512_setzero_pd();
    /* a pair of floats as one double: only moved, never computed on */
    const __m512d p00 = _mm512_mask_i32gather_pd(z, m0, a_lo, src, 4);
    const __m512d p01 = _mm512_mask_i32gather_pd(z, m1, a_hi, src, 4);
    const __m512d p10 = _mm512_mask_i32gather_pd(z, m0, _mm256_add_epi32(a_lo, w), src, 4);
    const __m512d p11 = _mm512_mask_i32gather_pd(z, m1, _mm256_add_epi32(a_hi, w), src, 4);
    pool2x2_pick(_mm512_castpd_ps(p00), _mm512_castpd_ps(p01), _mm512_castpd_ps(p10),
                 _mm512_castpd_ps(p11), at0, W, relu, dst, idx, count, full);
}

/* The whole plane so; a function of its own, which leaves the row loop's code as it was */
static __attribute__((noinline)) void pool2x2_plane_flat(float *dst, int32_t *idx,
                                                        const float *src, int W, int OH,
                                                        int OW, int relu)
{
    const int n = OH * OW;
    for (int o = 0; o < n; o += 16)
        pool2x2_flat(src, W, OW, o, n - o < 16 ? n - o : 16, relu, dst + o, idx + o,
                     o + 16 <= n);
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
#if VW == 16
    if (K == 2 && stride == 2 && OW <= POOL_FLAT_MAX_OW && H * W <= POOL_FLAT_MAX_PLANE) {
        pool2x2_plane_flat(dst, idx, src, W, OH, OW, relu);
        return;
    }
#endif
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

#if VW == 16
/* A plane of at most 32 outputs (MNIST's conv2: 5x5) in registers, din written 16
 * elements at a time in plane order: element p = (y, x) lies in window (y/2, x/2) and takes
 * 0 + its dout when that output passes and its argmax is p, else 0 (the scatter's bits).
 * Returns 0 when some passing output's argmax lies outside its own window (din then holds
 * garbage), as unpool2x2_row. */
#define UNPOOL_FLAT_MAX_OUT 32
#define UNPOOL_FLAT_MAX_PLANE 1024

/* For the plane shape last seen by this thread, per element p: window[p], the output whose
 * window holds it (0 when none does), and self[p], p itself, or -2 (which no argmax
 * matches) when no window holds it. Made once per shape, read for every plane. */
static _Thread_local struct {
    int H, W, OH, OW;
    int32_t window[UNPOOL_FLAT_MAX_PLANE], self[UNPOOL_FLAT_MAX_PLANE];
} unpool_map;

static void unpool_map_make(int H, int W, int OH, int OW)
{
    if (unpool_map.H == H && unpool_map.W == W && unpool_map.OH == OH && unpool_map.OW == OW)
        return;
    for (int p = 0; p < H * W; p++) {
        const int oy = p / W / 2, ox = p % W / 2, inside = oy < OH && ox < OW;
        unpool_map.window[p] = inside ? oy * OW + ox : 0;
        unpool_map.self[p] = inside ? p : -2;
    }
    unpool_map.H = H, unpool_map.W = W, unpool_map.OH = OH, unpool_map.OW = OW;
}

static __attribute__((noinline)) int unpool2x2_plane_flat(float *dst, const float *src,
                                                         const float *out, const int32_t *idx,
                                                         int H, int W, int OH, int OW)
{
    const int n = OH * OW, nin = H * W;
    const __mmask16 m0 = (__mmask16)((1u << (n < 16 ? n : 16)) - 1u);
    const __mmask16 m1 = (__mmask16)((1u << (n > 16 ? n - 16 : 0)) - 1u);
    __mmask16 p0 = m0, p1 = m1;
    if (out) {
        p0 &= _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m0, out), _mm512_setzero_ps(),
                                 _CMP_NLE_UQ);
        p1 &= _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m1, out + 16), _mm512_setzero_ps(),
                                 _CMP_NLE_UQ);
    }
    const __m512 s0 = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m0, src));
    const __m512 s1 = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m1, src + 16));
    /* the argmax of an output that passes nothing: -1, which no element matches */
    const __m512i none = _mm512_set1_epi32(-1);
    const __m512i a0 = _mm512_mask_loadu_epi32(none, p0, idx);
    const __m512i a1 = _mm512_mask_loadu_epi32(none, p1, idx + 16);
    unpool_map_make(H, W, OH, OW);
    int hits = 0;
    for (int p = 0; p < nin; p += 16) {
        const __mmask16 m = (__mmask16)((1u << (nin - p < 16 ? nin - p : 16)) - 1u);
        const __m512i o = _mm512_maskz_loadu_epi32(m, unpool_map.window + p);
        const __m512i self = _mm512_maskz_loadu_epi32(m, unpool_map.self + p);
        const __mmask16 hit = m & _mm512_cmpeq_epi32_mask(
                                      _mm512_permutex2var_epi32(a0, o, a1), self);
        const __m512 v = _mm512_maskz_mov_ps(hit, _mm512_permutex2var_ps(s0, o, s1));
        hits += __builtin_popcount(hit);
        if (m == 0xFFFF)
            _mm512_storeu_ps(dst + p, v);
        else
            _mm512_mask_storeu_ps(dst + p, m, v);
    }
    return hits == __builtin_popcount(p0) + __builtin_popcount(p1);
}
#endif

void KFN(kern_unpool_plane)(float *restrict dst, const float *restrict src,
                            const float *restrict out, const int32_t *restrict idx, int H,
                            int W, int OH, int OW)
{
#if VW == 16
    /* small planes in plane order, the others a row at a time: each returns 0 for an
     * argmax outside its window, and the scatter below runs */
    const int flat = OH * OW <= UNPOOL_FLAT_MAX_OUT && H * W <= UNPOOL_FLAT_MAX_PLANE;
    if (flat && unpool2x2_plane_flat(dst, src, out, idx, H, W, OH, OW))
        return;
    if (!flat && 2 * OH <= H && 2 * OW <= W) {
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

/* out may be in: each element is read before it is written */
void KFN(kern_relu_forward)(float *out, const float *in, size_t n)
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
