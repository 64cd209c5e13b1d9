/* kern_bf16: the products of --precision bf16 and the packing of their operands.
 *
 * A bf16 is the upper half of a float rounded to nearest even; a NaN stays a quiet NaN and
 * a subnormal float becomes a zero of its sign (what VCVTNE2PS2BF16 does; checked against
 * 67 million random floats on AMD Zen 4 and 128 million on Intel Emerald Rapids), so no
 * operand is ever a subnormal bf16. That matters: VDPBF16PS reads a subnormal bf16 operand
 * as zero on Intel and as its value on Zen 4 (both measured), and only operands without
 * them give the same bits on both. The products take their operands in pairs: one
 * uint32_t holds two bf16 that are neighbours along the inner dimension, the even k in the
 * low half, the odd k in the high half; an odd inner dimension ends in a pair whose high
 * half is zero. One step of a chain is what a lane of VDPBF16PS does (Intel's definition,
 * found bit for bit, for operands as packed here, over 2 million random cases on Zen 4
 * and 16 million on Emerald Rapids): c = fma(a_odd, b_odd, c), then
 * c = fma(a_even, b_even, c), each rounded to nearest even, a subnormal result flushed to a
 * zero of its sign (a subnormal c read as zero). The product of two bf16 is exact in a
 * float, so each fma rounds once. The AVX512-BF16 build (DP_BF16_HW) runs that
 * instruction; the scalar build does the same two steps with fmaf: both give the same
 * bits, so the scalar path is the hardware's oracle in the tests. The product is
 * gemm_body.h's, so each element of C is one chain in k order whatever the tiling. */
#include <string.h>

#include "simd.h"

#if defined(DP_BF16_HW)
#if !defined(__AVX512BF16__) || VW != 16
#error "the bf16 products need the avx512 path's flags and -mavx512bf16"
#endif
#define TR 6
#define TV 4
#define G_ELT uint32_t
#define G_VB __m512i
#define G_LOAD(p) _mm512_loadu_si512(p)
#define G_LOAD_M(p, m) _mm512_maskz_loadu_epi32(m, p)
#define G_SET1(x) _mm512_set1_epi32((int)(x))
#define G_MADD(a, b, c) _mm512_dpbf16_ps(c, (__m512bh)(a), (__m512bh)(b))

#elif VW == 1
#define TR 4
#define TV 4

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* A float with a subnormal value read as a zero of its sign. */
static float flush(float x)
{
    const uint32_t u = bits_of(x);
    return (u & 0x7f800000u) == 0 ? float_of(u & 0x80000000u) : x;
}

/* One lane of VDPBF16PS: the odd pair first, then the even one. */
static float dot_pair(uint32_t a, uint32_t b, float c)
{
    c = flush(fmaf(float_of(a & 0xffff0000u), float_of(b & 0xffff0000u), flush(c)));
    return flush(fmaf(float_of(a << 16), float_of(b << 16), c));
}

#define G_ELT uint32_t
#define G_VB uint32_t
#define G_LOAD(p) (*(p))
#define G_LOAD_M(p, m) ((m) ? *(p) : 0u)
#define G_SET1(x) (x)
#define G_MADD(a, b, c) dot_pair(a, b, c)

#else
#error "bf16 products are built for the avx512 path with AVX512-BF16, and for the scalar path"
#endif

#define G_NAME KFN(kern_bf16_gemm)
#include "gemm_body.h"

#if defined(DP_BF16_HW)

/* dst[r][j] = (src[r][2j], src[r][2j+1]): pairs along each row, 16 pairs a step. */
static void pack_rows(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                      size_t ldd)
{
    const int pairs = (cols + 1) / 2;
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * lds;
        uint32_t *d = dst + (size_t)r * ldd;
        for (int j = 0; j < pairs; j += 16) {
            const int k = 2 * j, n = cols - k;
            const __m512 lo = _mm512_maskz_loadu_ps(vm_first(n < 16 ? n : 16), s + k);
            const __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(vm_first(n < 32 ? n - 16 : 16),
                                                             s + k + 16)
                                     : _mm512_setzero_ps();
            const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            const int np = pairs - j < 16 ? pairs - j : 16;
            _mm512_mask_storeu_epi32(d + j, vm_first(np), both);
        }
    }
}

/* 16 bf16 of src[0..n) (zeros past n), each in the low half of a 32-bit lane. */
static __m512i widen16(const float *src, int n)
{
    const __m512 x = n > 0 ? _mm512_maskz_loadu_ps(vm_first(n < 16 ? n : 16), src)
                           : _mm512_setzero_ps();
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
}

/* dst[j][c] = (src[2j][c], src[2j+1][c]): pairs of neighbouring rows. */
static void pack_cols(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                      size_t ldd)
{
    for (int j = 0; 2 * j < rows; j++) {
        const float *even = src + (size_t)(2 * j) * lds, *odd = even + lds;
        const int has_odd = 2 * j + 1 < rows;
        for (int c = 0; c < cols; c += 16) {
            const int n = cols - c < 16 ? cols - c : 16;
            const __m512i lo = widen16(even + c, n);
            const __m512i hi = has_odd ? widen16(odd + c, n) : _mm512_setzero_si512();
            _mm512_mask_storeu_epi32(dst + (size_t)j * ldd + c, vm_first(n),
                                     _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

/* dst[j][r] = (src[r][2j], src[r][2j+1]): pack_rows transposed, 16 rows by 16 pairs at a
 * time through a tile on the stack. */
static void pack_rows_t(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                        size_t ldd)
{
    const int pairs = (cols + 1) / 2;
    uint32_t tile[16 * 16] __attribute__((aligned(64)));
    memset(tile, 0, sizeof tile); /* the lanes of rows past the last are gathered, unused */
    const __m512i across = _mm512_mullo_epi32(_mm512_set1_epi32(16),
                                              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                                10, 11, 12, 13, 14, 15));
    for (int r0 = 0; r0 < rows; r0 += 16) {
        const int nr = rows - r0 < 16 ? rows - r0 : 16;
        for (int j0 = 0; j0 < pairs; j0 += 16) {
            const int np = pairs - j0 < 16 ? pairs - j0 : 16;
            pack_rows(src + (size_t)r0 * lds + 2 * j0, nr,
                      cols - 2 * j0 < 32 ? cols - 2 * j0 : 32, lds, tile, 16);
            for (int j = 0; j < np; j++)
                _mm512_mask_storeu_epi32(dst + (size_t)(j0 + j) * ldd + r0, vm_first(nr),
                                         _mm512_i32gather_epi32(across, tile + j, 4));
        }
    }
}

#else

/* The bf16 of x in the low 16 bits: to nearest even, NaN quiet, subnormal to zero. */
static uint32_t bf16_of(float x)
{
    const uint32_t u = bits_of(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
        return (u >> 16) | 0x40u;
    if ((u & 0x7f800000u) == 0)
        return (u >> 16) & 0x8000u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

static uint32_t pair(float even, float odd) { return bf16_of(even) | bf16_of(odd) << 16; }

static void pack_rows(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                      size_t ldd)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k += 2) {
            const float *s = src + (size_t)r * lds + k;
            dst[(size_t)r * ldd + k / 2] = pair(s[0], k + 1 < cols ? s[1] : 0.0f);
        }
}

static void pack_cols(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                      size_t ldd)
{
    for (int k = 0; k < rows; k += 2)
        for (int c = 0; c < cols; c++) {
            const float *s = src + (size_t)k * lds + c;
            dst[(size_t)(k / 2) * ldd + c] = pair(s[0], k + 1 < rows ? s[lds] : 0.0f);
        }
}

static void pack_rows_t(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                        size_t ldd)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k += 2) {
            const float *s = src + (size_t)r * lds + k;
            dst[(size_t)(k / 2) * ldd + r] = pair(s[0], k + 1 < cols ? s[1] : 0.0f);
        }
}

#endif

#define STR2(x) #x
#define STR(x) STR2(x)

const dp_bf16_table KCAT(dp_bf16, DP_ISA_SUFFIX) = {
    .name = STR(DP_ISA_SUFFIX),
    .gemm = KFN(kern_bf16_gemm),
    .pack_rows = pack_rows,
    .pack_cols = pack_cols,
    .pack_rows_t = pack_rows_t,
};
