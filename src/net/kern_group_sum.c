/* kern_group_sum: a weight gradient's exact sum over groups, for one instruction set
 * (kernels.h: gemm_tn_fixed). Each group's partial P_g = A_g^T B_g is made and moved into
 * fixed point in registers, tile by tile, so that no partial is written to memory and the
 * accumulator is read and written once per tile instead of once per group.
 *
 * The bits are those of the unfused way (gemm_tn of each group from zero, then
 * fixed_accumulate), because every step is exact or rounds as that way does:
 *   - each element of P_g is the same chain of fused multiply-adds from zero in n order;
 *   - round(v * 2^F) is split in two exact halves held in int32 lanes. With M = 1.5 *
 *     2^(23+k), t = fma(v, 2^F, M) is M + h, h the multiple of 2^k nearest to v * 2^F (ties
 *     to an even multiple), so the bits of t minus those of M count h / 2^k; the rest,
 *     v * 2^F - h = fma(v, 2^F, -h), is exact in float and rounds to an int32 the way the
 *     whole does (h is even), so round(v * 2^F) = h + round(v * 2^F - h);
 *   - the int32 sums cannot overflow for the k chosen below (given |v| < bound and at
 *     most 2^lg local groups), and int64 addition is exact, so the order of the groups'
 *     contributions changes nothing.
 * A tile in which any partial is out of range (NaN, Inf, at or over the bound) is done
 * again the unfused way, which counts it; so are edge tiles and scales outside the range
 * the split needs. The scalar path is the unfused way throughout.
 *
 * Where the accumulator is known zero (the step's first pass) the sums are stored, not
 * added. Columns of B are packed many blocks at a time (into the caller's buffer), and each
 * row tile runs across them, so the accumulator's rows are written along rather than a
 * tile's worth in each of many rows far apart. On Emerald Rapids, 1 thread, nopool's fc1
 * (128 x 36864, 16 groups of 6-7 samples): 24 ms with one column block packed at a time,
 * 18-19 ms with 37; the reference model's (128 x 1600) at 9.8 cycles per 16 partials of a
 * group, where the ports allowed about 7.6 (6.25 FMAs, 6 operations for the split, 3 for
 * the range, on two ports; the range takes 2 since 2026-12-05). Against the unfused way:
 * nopool's step 1.2x, the reference's 1.05x.
 * On Zen 5 (1 thread, bench_kernels, the reference's shape / nopool's) the tile's chains
 * alone, without the split, run at 131-143 / 119-134 GFLOP/s and the whole at 85-105 /
 * 80-94. Measured and left (2026-12-05; docs/performance.md): the halves in an L1 buffer
 * so that the tile could hold 12 chains (69-79 / 62-71); two phases per batch of groups,
 * the chains' partials through L1 and then the split, 8 x 2, 4 x 2 and 4 x 4 vectors
 * (76-107 / 68-88); `#pragma GCC unroll 8` on a group's samples (the same). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "simd.h"

void KFN(kern_gemm_axpy)(int M, int N, int K, const float *A, size_t ars, size_t aks,
                         const float *B, int ldb, float *C, int ldc, int start,
                         const float *bias);
void KFN(kern_fixed_acc)(float *g, int64_t *acc, size_t n, double scale, double bound,
                         float *maxabs, int64_t *over, int64_t *nonfinite);

/* The fused tile: GR rows by GV vectors of columns. */
#ifndef GR /* (tunable from the command line for experiments) */
#if VW == 16
#define GR 4
#define GV 2
#elif VW == 8 /* 4 x 1 spills a few registers and is still the fastest measured */
#define GR 4
#define GV 1
#else
#define GR 4
#define GV 1
#endif
#endif
#define GN (GV * VW)
/* The unfused way's tile (the rest, and the scalar path): UR rows by UN columns at most. */
#define UR 6
#define UN 512

/* R rows by W columns (R <= UR, W <= UN), the unfused way: each group's partial into a
 * float tile, then into the accumulator. */
static void tile_unfused(int R, int W, const float *A, int lda, const float *B, int ldb,
                         const int *bounds, int ngroups, int64_t *acc, size_t ldacc,
                         dp_fixed_block *blk)
{
    float tile[UR * UN];
    for (int g = 0; g < ngroups; g++) {
        const int n0 = bounds[g] - bounds[0], n1 = bounds[g + 1] - bounds[0];
        KFN(kern_gemm_axpy)(R, W, n1 - n0, A + (size_t)n0 * lda, 1, (size_t)lda,
                            B + (size_t)n0 * ldb, ldb, tile, UN, GEMM_ZERO, NULL);
        for (int r = 0; r < R; r++)
            KFN(kern_fixed_acc)(tile + r * UN, acc + (size_t)r * ldacc, (size_t)W, blk->scale,
                                blk->bound, &blk->maxabs, &blk->over, &blk->nonfinite);
    }
}

/* Rows [i0, i1) by columns [j0, j1), the unfused way. */
static void unfused_region(int i0, int i1, int j0, int j1, const float *A, int lda,
                           const float *B, int ldb, const int *bounds, int ngroups,
                           int64_t *acc, size_t ldacc, dp_fixed_block *blk)
{
    for (int i = i0; i < i1; i += UR)
        for (int j = j0; j < j1; j += UN)
            tile_unfused(i1 - i < UR ? i1 - i : UR, j1 - j < UN ? j1 - j : UN, A + i, lda, B + j,
                         ldb, bounds, ngroups, acc + (size_t)i * ldacc + j, ldacc, blk);
}

#if VW > 1
#if VW == 16
typedef __m512i vi;
ALWAYS_INLINE vi vi_zero(void) { return _mm512_setzero_si512(); }
ALWAYS_INLINE vi vi_set1(int32_t x) { return _mm512_set1_epi32(x); }
ALWAYS_INLINE vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
ALWAYS_INLINE vi vf_bits(vf x) { return _mm512_castps_si512(x); }
ALWAYS_INLINE vi vf_round(vf x)
{
    return _mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
ALWAYS_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
ALWAYS_INLINE vf vf_fms(vf a, vf b, vf c) { return _mm512_fmsub_ps(a, b, c); }
ALWAYS_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
ALWAYS_INLINE vi vi_max(vi a, vi b) { return _mm512_max_epi32(a, b); }
ALWAYS_INLINE vi vi_max_u(vi a, vi b) { return _mm512_max_epu32(a, b); }
ALWAYS_INLINE vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
ALWAYS_INLINE vf vi_as_f(vi x) { return _mm512_castsi512_ps(x); }
/* every lane: a < b, both in [0, 2^31) */
ALWAYS_INLINE int vi_all_below(vi a, vi b) { return _mm512_cmplt_epi32_mask(a, b) == 0xffff; }
/* acc[l] += (hi[l] << k) + lo[l] for 16 lanes; acc[l] = ... where it is known zero */
ALWAYS_INLINE void acc_add(int64_t *acc, vi hi, vi lo, int k, int zero)
{
    for (int h = 0; h < 2; h++) {
        const __m256i h32 = h ? _mm512_extracti64x4_epi64(hi, 1) : _mm512_castsi512_si256(hi);
        const __m256i l32 = h ? _mm512_extracti64x4_epi64(lo, 1) : _mm512_castsi512_si256(lo);
        const __m512i q = _mm512_add_epi64(_mm512_slli_epi64(_mm512_cvtepi32_epi64(h32), (unsigned)k),
                                           _mm512_cvtepi32_epi64(l32));
        _mm512_storeu_si512(acc + 8 * h,
                            zero ? q : _mm512_add_epi64(_mm512_loadu_si512(acc + 8 * h), q));
    }
}
#else
typedef __m256i vi;
ALWAYS_INLINE vi vi_zero(void) { return _mm256_setzero_si256(); }
ALWAYS_INLINE vi vi_set1(int32_t x) { return _mm256_set1_epi32(x); }
ALWAYS_INLINE vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
ALWAYS_INLINE vi vf_bits(vf x) { return _mm256_castps_si256(x); }
ALWAYS_INLINE vi vf_round(vf x) { return _mm256_cvtps_epi32(x); } /* MXCSR: to nearest */
ALWAYS_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
ALWAYS_INLINE vf vf_fms(vf a, vf b, vf c) { return _mm256_fmsub_ps(a, b, c); }
ALWAYS_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
ALWAYS_INLINE vi vi_max(vi a, vi b) { return _mm256_max_epi32(a, b); }
ALWAYS_INLINE vi vi_max_u(vi a, vi b) { return _mm256_max_epu32(a, b); }
ALWAYS_INLINE vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
ALWAYS_INLINE vf vi_as_f(vi x) { return _mm256_castsi256_ps(x); }
ALWAYS_INLINE int vi_all_below(vi a, vi b)
{
    return _mm256_movemask_epi8(_mm256_cmpgt_epi32(b, a)) == -1;
}
ALWAYS_INLINE void acc_add(int64_t *acc, vi hi, vi lo, int k, int zero)
{
    for (int h = 0; h < 2; h++) {
        const __m128i h32 = h ? _mm256_extracti128_si256(hi, 1) : _mm256_castsi256_si128(hi);
        const __m128i l32 = h ? _mm256_extracti128_si256(lo, 1) : _mm256_castsi256_si128(lo);
        const __m256i q = _mm256_add_epi64(_mm256_slli_epi64(_mm256_cvtepi32_epi64(h32), k),
                                           _mm256_cvtepi32_epi64(l32));
        __m256i *at = (__m256i *)(acc + 4 * h);
        _mm256_storeu_si256(at, zero ? q : _mm256_add_epi64(_mm256_loadu_si256(at), q));
    }
}
#endif

/* The split's constants for one call. */
typedef struct {
    vf scale, magic;
    vi bound_bits; /* the bound's bits: a float's magnitude is below it where its bits are */
    int32_t magic_bits;
    int k, zero;
} split;

/* A full tile, fused. Returns 0, or 1 (nothing written) when a partial is out of range.
 * The partials' bits tell, two integer operations a partial (where float max, min and sum
 * took three): their signed maximum is
 * the largest positive partial's (or a NaN's), their unsigned maximum the largest negative
 * one's (any negative's bits are above every positive's), and a magnitude's bits order as
 * the magnitude does, Inf and NaN above every finite one. */
ALWAYS_INLINE int tile_fused(const float *A, int lda, const float *B, size_t ldb,
                             const int *bounds, int ngroups, int64_t *acc, size_t ldacc,
                             const split *s, vf *vmx)
{
    vi hi[GR][GV], lo[GR][GV];
    vi top = vi_zero(), neg = vi_zero(); /* the partials' bits: signed and unsigned maxima */
    for (int r = 0; r < GR; r++)
        for (int v = 0; v < GV; v++)
            hi[r][v] = lo[r][v] = vi_zero();
    for (int g = 0; g < ngroups; g++) {
        const int n0 = bounds[g] - bounds[0], n1 = bounds[g + 1] - bounds[0];
        vf c[GR][GV];
        for (int r = 0; r < GR; r++)
            for (int v = 0; v < GV; v++)
                c[r][v] = vf_zero();
        for (int n = n0; n < n1; n++) {
            const float *b = B + (size_t)n * ldb, *a = A + (size_t)n * lda;
            vf bv[GV];
            for (int v = 0; v < GV; v++)
                bv[v] = vf_load(b + v * VW);
            for (int r = 0; r < GR; r++) {
                const vf x = vf_set1(a[r]);
                for (int v = 0; v < GV; v++)
                    c[r][v] = vf_fma(x, bv[v], c[r][v]);
            }
        }
        for (int r = 0; r < GR; r++)
            for (int v = 0; v < GV; v++) {
                const vf p = c[r][v];
                top = vi_max(top, vf_bits(p));
                neg = vi_max_u(neg, vf_bits(p));
                const vf t = vf_fma(p, s->scale, s->magic), h = vf_sub(t, s->magic);
                hi[r][v] = vi_add(hi[r][v], vf_bits(t));
                lo[r][v] = vi_add(lo[r][v], vf_round(vf_fms(p, s->scale, h)));
            }
    }
    /* the largest |p|'s bits (NaN and Inf above every finite magnitude) */
    const vi mag = vi_max(top, vi_and(neg, vi_set1(INT32_MAX)));
    if (!vi_all_below(mag, s->bound_bits))
        return 1;
    *vmx = vf_max(vi_as_f(mag), *vmx);
    /* the high halves counted from M: minus ngroups times its bits (mod 2^32) */
    const vi offset = vi_set1((int32_t)(0u - (uint32_t)s->magic_bits * (uint32_t)ngroups));
    for (int r = 0; r < GR; r++)
        for (int v = 0; v < GV; v++)
            acc_add(acc + (size_t)r * ldacc + (size_t)v * VW, vi_add(hi[r][v], offset), lo[r][v],
                    s->k, s->zero);
    return 0;
}

/* k for the split, or -1 where it does not apply: the scale 2^F and the bound 2^E in
 * float's normal range with F >= 0, and E + F = 51 - lg with lg <= 10 and at most 2^lg
 * groups. Then k = 31 - lg keeps |v * 2^F| < 2^(22+k) (the rounding by M), the low
 * halves' sum under 2^31 (2^lg groups of at most 2^(k-1)) and the high halves' too (at
 * most 2^(51-k) <= 2^30). */
static int split_k(double scale, double bound, int ngroups)
{
    int F, E;
    if (frexp(scale, &F) != 0.5 || frexp(bound, &E) != 0.5)
        return -1; /* not powers of two */
    F--, E--;
    const int lg = 51 - E - F;
    if (F < 0 || F > 127 || E < -126 || E > 127 || lg < 0 || lg > 10 || ngroups > (1 << lg))
        return -1;
    return 31 - lg;
}
#endif

void KFN(kern_gemm_tn_fixed)(int M, int N, const float *A, int lda, const float *B, int ldb,
                             const int *bounds, int ngroups, size_t ldacc, dp_fixed_block *blk,
                             float *pack, size_t pack_floats)
{
    int64_t *acc = blk->acc;
    if (M <= 0 || N <= 0 || ngroups <= 0)
        return;
    int j = 0, full_rows = 0;
#if VW == 1
    (void)pack, (void)pack_floats;
#else
    const int k = split_k(blk->scale, blk->bound, ngroups);
    const int samples = bounds[ngroups] - bounds[0];
    if (k >= 0) {
        /* as many column blocks of every sample as pack holds (B's rows may share cache
         * sets), then every row tile across them: the accumulator's rows written along */
        const size_t per_block = (size_t)samples * GN;
        const int chunk = pack && pack_floats >= per_block ? (int)(pack_floats / per_block) : 0;
        const float M_k = ldexpf(1.5f, 23 + k);
        const float bound = (float)blk->bound;
        int32_t bound_bits;
        memcpy(&bound_bits, &bound, sizeof bound);
        split s = {vf_set1((float)blk->scale), vf_set1(M_k), vi_set1(bound_bits), 0, k, blk->zero};
        memcpy(&s.magic_bits, &M_k, sizeof M_k);
        vf vmx = vf_set1(blk->maxabs);
        full_rows = M - M % GR;
        while (full_rows && j + GN <= N) {
            const int nb = chunk ? ((N - j) / GN < chunk ? (N - j) / GN : chunk) : 1;
            for (int c = 0; chunk && c < nb; c++)
                for (int n = 0; n < samples; n++)
                    memcpy(pack + ((size_t)c * samples + n) * GN, B + (size_t)n * ldb + j + c * GN,
                           sizeof(float) * GN);
            for (int i = 0; i < full_rows; i += GR)
                for (int c = 0; c < nb; c++) {
                    const int jc = j + c * GN;
                    const float *bp = chunk ? pack + (size_t)c * samples * GN : B + jc;
                    int64_t *at = acc + (size_t)i * ldacc + jc;
                    if (tile_fused(A + i, lda, bp, chunk ? GN : (size_t)ldb, bounds, ngroups, at,
                                   ldacc, &s, &vmx))
                        tile_unfused(GR, GN, A + i, lda, B + jc, ldb, bounds, ngroups, at, ldacc,
                                     blk);
                }
            j += nb * GN;
        }
        float lanes[VW];
        vf_store(lanes, vmx);
        for (int l = 0; l < VW; l++)
            blk->maxabs = lanes[l] > blk->maxabs ? lanes[l] : blk->maxabs;
    }
#endif
    /* the rest: the columns from j on of the fused rows, every column of the others */
    unfused_region(0, full_rows, j, N, A, lda, B, ldb, bounds, ngroups, acc, ldacc, blk);
    unfused_region(full_rows, M, 0, N, A, lda, B, ldb, bounds, ngroups, acc, ldacc, blk);
}
