/* kern_fixed: partial gradients moved into the int64 fixed-point sum of the exact gradient
 * reduction (dist/gradsync.c), for one instruction set.
 *
 * Every operation here is exact or rounds the same way on every path: float to double is
 * exact, so is the product by a power of two, and adding 1.5 * 2^52 to a double below 2^51
 * leaves the nearest integer (ties to even) in its low bits; the comparisons and the
 * integer arithmetic are exact. So the vector paths give the scalar loop's bits, and the
 * largest magnitude and the counts do not depend on the order the elements are visited. */
#include <float.h>
#include <string.h>

#include "simd.h"

#define FIXED_MAGIC 6755399441055744.0              /* 1.5 * 2^52 */
#define FIXED_MAGIC_BITS 0x4338000000000000LL

/* One element; the vector loops leave their tails to it. */
static inline void fixed_one(float *g, int64_t *acc, double scale, double bound, float *mx,
                             int64_t *over, int64_t *bad)
{
    const float v = *g, a = fabsf(v);
    *g = 0.0f;
    *mx = a > *mx ? a : *mx;
    const int finite = a <= FLT_MAX, ok = (double)a < bound;
    *bad += !finite;
    *over += finite & !ok;
    const double d = (ok ? (double)v * scale : 0.0) + FIXED_MAGIC;
    int64_t bits;
    memcpy(&bits, &d, sizeof bits);
    *acc += bits - FIXED_MAGIC_BITS;
}

#if VW == 16
/* Eight at a time, any values: eight floats widen to one register of doubles. */
static inline void fixed8(float *g, int64_t *acc, __m512d vscale, __m512d vbound,
                          __m256 *vmx, int64_t *o, int64_t *b)
{
    const __m512d magic = _mm512_set1_pd(FIXED_MAGIC);
    const __m512i magic_bits = _mm512_set1_epi64(FIXED_MAGIC_BITS);
    const __m256 v = _mm256_loadu_ps(g), a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
    _mm256_storeu_ps(g, _mm256_setzero_ps());
    *vmx = _mm256_max_ps(a, *vmx); /* a > vmx ? a : vmx, lane-wise: a NaN never enters */
    const __mmask8 finite = _mm256_cmp_ps_mask(a, _mm256_set1_ps(FLT_MAX), _CMP_LE_OQ);
    const __mmask8 ok = _mm512_cmp_pd_mask(_mm512_cvtps_pd(a), vbound, _CMP_LT_OQ);
    *b += 8 - __builtin_popcount(finite);
    *o += __builtin_popcount(finite & (__mmask8)~ok);
    const __m512d d = _mm512_add_pd(_mm512_maskz_mul_pd(ok, _mm512_cvtps_pd(v), vscale), magic);
    const __m512i q = _mm512_sub_epi64(_mm512_castpd_si512(d), magic_bits);
    _mm512_storeu_si512(acc, _mm512_add_epi64(_mm512_loadu_si512(acc), q));
}

/* Eight in range (finite, below the bound): v * scale is exact, so one fused multiply-add
 * with the magic constant rounds as the product and the sum of fixed8 do. */
static inline void fixed8_in_range(const __m256 v, int64_t *acc, __m512d vscale)
{
    const __m512d d = _mm512_fmadd_pd(_mm512_cvtps_pd(v), vscale,
                                      _mm512_set1_pd(FIXED_MAGIC));
    const __m512i q = _mm512_sub_epi64(_mm512_castpd_si512(d),
                                       _mm512_set1_epi64(FIXED_MAGIC_BITS));
    _mm512_storeu_si512(acc, _mm512_add_epi64(_mm512_loadu_si512(acc), q));
}

/* Sixteen at a time: one comparison in float finds the rare block with a value out of
 * range (NaN, Inf, at or over the bound), which fixed8 then takes lane by lane. The bound
 * is a power of two; compared in float only where float holds it exactly. */
static size_t fixed_vector(float *g, int64_t *acc, size_t n, double scale, double bound,
                           float *mx, int64_t *over, int64_t *bad)
{
    const __m512d vscale = _mm512_set1_pd(scale), vbound = _mm512_set1_pd(bound);
    const int float_bound = bound >= 0x1p-126 && bound <= 0x1p127;
    const __m512 fbound = _mm512_set1_ps(float_bound ? (float)bound : 0.0f);
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 vmx16 = _mm512_set1_ps(*mx);
    __m256 vmx = _mm256_set1_ps(*mx);
    int64_t o = 0, b = 0;
    size_t i = 0;
    for (; float_bound && i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(g + i), a = _mm512_andnot_ps(sign, v);
        if (_mm512_cmp_ps_mask(a, fbound, _CMP_NLT_UQ)) { /* some lane out of range */
            fixed8(g + i, acc + i, vscale, vbound, &vmx, &o, &b);
            fixed8(g + i + 8, acc + i + 8, vscale, vbound, &vmx, &o, &b);
            continue;
        }
        _mm512_storeu_ps(g + i, _mm512_setzero_ps());
        vmx16 = _mm512_max_ps(a, vmx16);
        fixed8_in_range(_mm512_castps512_ps256(v), acc + i, vscale);
        fixed8_in_range(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)),
                        acc + i + 8, vscale);
    }
    for (; i + 8 <= n; i += 8)
        fixed8(g + i, acc + i, vscale, vbound, &vmx, &o, &b);
    float lanes[16];
    _mm512_storeu_ps(lanes, vmx16);
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_loadu_ps(lanes), vmx));
    for (int l = 0; l < 16; l++)
        *mx = lanes[l] > *mx ? lanes[l] : *mx;
    *over += o;
    *bad += b;
    return i;
}
#elif VW == 8
/* Four at a time, any values: four floats widen to one register of doubles. */
static inline void fixed4(float *g, int64_t *acc, __m256d vscale, __m256d vbound, __m128 *vmx,
                          int64_t *o, int64_t *b)
{
    const __m256d magic = _mm256_set1_pd(FIXED_MAGIC);
    const __m256i magic_bits = _mm256_set1_epi64x(FIXED_MAGIC_BITS);
    const __m128 v = _mm_loadu_ps(g), a = _mm_andnot_ps(_mm_set1_ps(-0.0f), v);
    _mm_storeu_ps(g, _mm_setzero_ps());
    *vmx = _mm_max_ps(a, *vmx);
    const int finite = _mm_movemask_ps(_mm_cmp_ps(a, _mm_set1_ps(FLT_MAX), _CMP_LE_OQ));
    const __m256d okv = _mm256_cmp_pd(_mm256_cvtps_pd(a), vbound, _CMP_LT_OQ);
    const int ok = _mm256_movemask_pd(okv);
    *b += 4 - __builtin_popcount(finite);
    *o += __builtin_popcount(finite & ~ok);
    const __m256d d = _mm256_add_pd(_mm256_and_pd(okv, _mm256_mul_pd(_mm256_cvtps_pd(v), vscale)),
                                    magic);
    const __m256i q = _mm256_sub_epi64(_mm256_castpd_si256(d), magic_bits);
    __m256i *at = (__m256i *)acc;
    _mm256_storeu_si256(at, _mm256_add_epi64(_mm256_loadu_si256(at), q));
}

/* Four in range: as fixed8_in_range of the AVX-512 path. */
static inline void fixed4_in_range(const __m128 v, int64_t *acc, __m256d vscale)
{
    const __m256d d = _mm256_fmadd_pd(_mm256_cvtps_pd(v), vscale, _mm256_set1_pd(FIXED_MAGIC));
    const __m256i q = _mm256_sub_epi64(_mm256_castpd_si256(d),
                                       _mm256_set1_epi64x(FIXED_MAGIC_BITS));
    __m256i *at = (__m256i *)acc;
    _mm256_storeu_si256(at, _mm256_add_epi64(_mm256_loadu_si256(at), q));
}

/* Eight at a time, the rare block out of range four by four (as the AVX-512 path). */
static size_t fixed_vector(float *g, int64_t *acc, size_t n, double scale, double bound,
                           float *mx, int64_t *over, int64_t *bad)
{
    const __m256d vscale = _mm256_set1_pd(scale), vbound = _mm256_set1_pd(bound);
    const int float_bound = bound >= 0x1p-126 && bound <= 0x1p127;
    const __m256 fbound = _mm256_set1_ps(float_bound ? (float)bound : 0.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 vmx8 = _mm256_set1_ps(*mx);
    __m128 vmx = _mm_set1_ps(*mx);
    int64_t o = 0, b = 0;
    size_t i = 0;
    for (; float_bound && i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(g + i), a = _mm256_andnot_ps(sign, v);
        if (_mm256_movemask_ps(_mm256_cmp_ps(a, fbound, _CMP_NLT_UQ))) {
            fixed4(g + i, acc + i, vscale, vbound, &vmx, &o, &b);
            fixed4(g + i + 4, acc + i + 4, vscale, vbound, &vmx, &o, &b);
            continue;
        }
        _mm256_storeu_ps(g + i, _mm256_setzero_ps());
        vmx8 = _mm256_max_ps(a, vmx8);
        fixed4_in_range(_mm256_castps256_ps128(v), acc + i, vscale);
        fixed4_in_range(_mm256_extractf128_ps(v, 1), acc + i + 4, vscale);
    }
    for (; i + 4 <= n; i += 4)
        fixed4(g + i, acc + i, vscale, vbound, &vmx, &o, &b);
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx8);
    _mm_storeu_ps(lanes, _mm_max_ps(_mm_loadu_ps(lanes), vmx));
    for (int l = 0; l < 8; l++)
        *mx = lanes[l] > *mx ? lanes[l] : *mx;
    *over += o;
    *bad += b;
    return i;
}
#else
static size_t fixed_vector(float *g, int64_t *acc, size_t n, double scale, double bound,
                           float *mx, int64_t *over, int64_t *bad)
{
    (void)g, (void)acc, (void)n, (void)scale, (void)bound, (void)mx, (void)over, (void)bad;
    return 0;
}
#endif

/* The sum back to float: g[i] = (float)((double)acc[i] * unscale), acc[i] = 0. Each step
 * rounds to nearest, ties to even, on every path (int64 to double, the product by a power
 * of two, double to float), as the scalar conversions do. */
void KFN(kern_fixed_take)(float *g, int64_t *acc, size_t n, double unscale)
{
    size_t i = 0;
#if VW == 16
    const __m512d vu = _mm512_set1_pd(unscale);
    for (; i + 8 <= n; i += 8) {
        const __m512d d = _mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_loadu_si512(acc + i)), vu);
        _mm256_storeu_ps(g + i, _mm512_cvtpd_ps(d));
        _mm512_storeu_si512(acc + i, _mm512_setzero_si512());
    }
#endif
    for (; i < n; i++) {
        g[i] = (float)((double)acc[i] * unscale);
        acc[i] = 0;
    }
}

void KFN(kern_fixed_acc)(float *g, int64_t *acc, size_t n, double scale, double bound,
                         float *maxabs, int64_t *over, int64_t *nonfinite)
{
    size_t i = fixed_vector(g, acc, n, scale, bound, maxabs, over, nonfinite);
    for (; i < n; i++)
        fixed_one(g + i, acc + i, scale, bound, maxabs, over, nonfinite);
}
