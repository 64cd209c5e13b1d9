/* kern_dot: dot products with 8 partial sums, for one instruction set.
 *
 * The scheme every path computes: lane l (0..7) of an output accumulates a[p]*b[p] for
 * p = l (mod 8) in p order, one fused multiply-add each, over the first K8 = K & ~7
 * elements; the tail p = K8..K-1 continues lanes 0..K-K8-1; then the lanes are combined
 * in a fixed order (combine8) and added to C. AVX2 keeps one output's 8 lanes in a ymm
 * register; AVX-512 keeps two outputs' lanes in one zmm register (two rows of A against
 * one row of B, or one row of A against two rows of B), which changes no chain. */
#include <string.h>

#include "simd.h"

static void dot_tail(const float *a, const float *b, int from, int n, float s[8])
{
    for (int p = from, l = 0; p < n; p++, l++)
        s[l] = MADD(a[p], b[p], s[l]);
}

/* s[l] continues over p in [0, K8) */
static void lanes8(const float *restrict a, const float *restrict b, int K8, float s[8])
{
#if VW > 1
    __m256 acc = _mm256_loadu_ps(s);
    for (int p = 0; p < K8; p += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + p), _mm256_loadu_ps(b + p), acc);
    _mm256_storeu_ps(s, acc);
#else
    for (int p = 0; p < K8; p += 8)
        for (int l = 0; l < 8; l++)
            s[l] = MADD(a[p + l], b[p + l], s[l]);
#endif
}

float KFN(kern_dot)(const float *a, const float *b, int n)
{
    float s[8] = {0};
    lanes8(a, b, n & ~7, s);
    dot_tail(a, b, n & ~7, n, s);
    return combine8(s);
}

#if VW == 16
/* RP pairs of A's rows (one zmm: row 2q in the low half, 2q+1 in the high) against Q rows
 * of B (broadcast to both halves), over the whole of K; then tails and sums into C. */
ALWAYS_INLINE void nt_pairs(int RP, int Q, int K, const float *A, int lda, const float *B,
                            int ldb, float *C, int ldc)
{
    const int K8 = K & ~7;
    __m512 acc[4][3];
    for (int r = 0; r < RP; r++)
        for (int q = 0; q < Q; q++)
            acc[r][q] = _mm512_setzero_ps();
    for (int p = 0; p < K8; p += 8) {
        __m512 y[3];
        for (int q = 0; q < Q; q++)
            y[q] = _mm512_broadcast_f32x8(_mm256_loadu_ps(B + (size_t)q * ldb + p));
        for (int r = 0; r < RP; r++) {
            const float *a = A + (size_t)2 * r * lda + p;
            __m512 x = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)),
                                          _mm256_loadu_ps(a + lda), 1);
            for (int q = 0; q < Q; q++)
                acc[r][q] = _mm512_fmadd_ps(x, y[q], acc[r][q]);
        }
    }
    for (int r = 0; r < RP; r++)
        for (int q = 0; q < Q; q++) {
            float s[16];
            _mm512_storeu_ps(s, acc[r][q]);
            for (int h = 0; h < 2; h++) {
                const float *a = A + (size_t)(2 * r + h) * lda;
                dot_tail(a, B + (size_t)q * ldb, K8, K, s + 8 * h);
                C[(size_t)(2 * r + h) * ldc + q] += combine8(s + 8 * h);
            }
        }
}

ALWAYS_INLINE void nt_rows(int RP, int N, int K, const float *A, int lda, const float *B,
                           int ldb, float *C, int ldc)
{
    int j = 0;
    for (; j + 3 <= N; j += 3)
        nt_pairs(RP, 3, K, A, lda, B + (size_t)j * ldb, ldb, C + j, ldc);
    if (N - j == 2)
        nt_pairs(RP, 2, K, A, lda, B + (size_t)j * ldb, ldb, C + j, ldc);
    else if (N - j == 1)
        nt_pairs(RP, 1, K, A, lda, B + (size_t)j * ldb, ldb, C + j, ldc);
}
#endif

void KFN(kern_gemm_nt_acc)(int M, int N, int K, const float *restrict A, int lda,
                           const float *restrict B, int ldb, float *restrict C, int ldc)
{
    int i = 0;
#if VW == 16
    for (; i + 8 <= M; i += 8)
        nt_rows(4, N, K, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, ldc);
    switch ((M - i) / 2) {
    case 3: nt_rows(3, N, K, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, ldc); break;
    case 2: nt_rows(2, N, K, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, ldc); break;
    case 1: nt_rows(1, N, K, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, ldc); break;
    }
    i += (M - i) & ~1;
#elif VW == 8
    /* 4 rows of A against 2 rows of B: 8 accumulators, 6 loads per 8 products each. */
    for (; i + 4 <= M; i += 4) {
        const float *a0 = A + (size_t)i * lda;
        int j = 0;
        for (; j + 2 <= N; j += 2) {
            const float *b0 = B + (size_t)j * ldb, *b1 = b0 + ldb;
            __m256 acc[4][2];
            for (int r = 0; r < 4; r++)
                acc[r][0] = acc[r][1] = _mm256_setzero_ps();
            int p = 0;
            for (; p + 8 <= K; p += 8) {
                __m256 y0 = _mm256_loadu_ps(b0 + p), y1 = _mm256_loadu_ps(b1 + p);
                for (int r = 0; r < 4; r++) {
                    __m256 x = _mm256_loadu_ps(a0 + (size_t)r * lda + p);
                    acc[r][0] = _mm256_fmadd_ps(x, y0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(x, y1, acc[r][1]);
                }
            }
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 2; q++) {
                    float s[8];
                    _mm256_storeu_ps(s, acc[r][q]);
                    dot_tail(a0 + (size_t)r * lda, q ? b1 : b0, p, K, s);
                    C[(size_t)(i + r) * ldc + j + q] += combine8(s);
                }
        }
        for (; j < N; j++)
            for (int r = 0; r < 4; r++)
                C[(size_t)(i + r) * ldc + j] +=
                    KFN(kern_dot)(a0 + (size_t)r * lda, B + (size_t)j * ldb, K);
    }
#endif
    for (; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] += KFN(kern_dot)(A + (size_t)i * lda, B + (size_t)j * ldb, K);
}

/* Inner-dimension blocks: a block of A's and B's rows stays in cache while all their
 * pairs are worked on. Blocking does not change a sum: the lanes carry over. The pack
 * buffer holds (M + N + 2) * NT_LDP floats (kernels.c: gemm_nt_pack_floats). */
#define NT_KC DP_NT_KC
#define NT_LDP (NT_KC + 16)

#if VW > 1
/* Rows of A (or B) copied a row at a time in whole vectors, NT_LDP apart, the row NT_PF
 * rows ahead prefetched meanwhile: the rows lie a multiple of 4 KiB apart in memory (fc1's
 * inputs and weights), so the hardware's streams start cold on each; the prefetches keep
 * several rows' lines in flight. */
enum { NT_PF = 4 };

ALWAYS_INLINE void nt_prefetch_row(const float *row, int kw)
{
    for (int p = 0; p < kw; p += 16)
        _mm_prefetch((const char *)(row + p), _MM_HINT_T0);
}

static void nt_pack_rows(int M, int kw, const float *A, int lda, float *pa)
{
    for (int i = 0; i < NT_PF && i < M; i++)
        nt_prefetch_row(A + (size_t)i * lda, kw);
    for (int i = 0; i < M; i++) {
        if (i + NT_PF < M)
            nt_prefetch_row(A + (size_t)(i + NT_PF) * lda, kw);
        const float *src = A + (size_t)i * lda;
        float *dst = pa + (size_t)i * NT_LDP;
        int p = 0;
#if VW == 16
        for (; p + 16 <= kw; p += 16)
            _mm512_store_ps(dst + p, _mm512_loadu_ps(src + p));
#endif
        for (; p < kw; p += 8) /* kw: a multiple of 8 */
            _mm256_store_ps(dst + p, _mm256_loadu_ps(src + p));
    }
}

#endif

#if VW == 16
/* R rows of packed A (8 floats broadcast to both halves) against Q pairs of B's rows
 * (packed interleaved: 8 of row 2q, 8 of row 2q+1, ...), continuing the lanes kept in
 * lanes[(r*ldl + 2q)*8] (16 floats per pair; `last_single`: the last pair has only its
 * first row). */
ALWAYS_INLINE void nt_lanes_tile(int R, int Q, int last_single, int kw, const float *pa,
                                 const float *pb, float *lanes, int ldl)
{
    const __mmask16 half = 0x00FF;
    __m512 acc[6][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) {
            float *l = lanes + ((size_t)r * ldl + 2 * q) * 8;
            acc[r][q] = last_single && q == Q - 1 ? _mm512_maskz_loadu_ps(half, l)
                                                  : _mm512_loadu_ps(l);
        }
    for (int p = 0; p < kw; p += 8) {
        __m512 y[4];
        for (int q = 0; q < Q; q++)
            y[q] = _mm512_load_ps(pb + (size_t)q * 2 * NT_LDP + 2 * p);
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_broadcast_f32x8(_mm256_load_ps(pa + (size_t)r * NT_LDP + p));
            for (int q = 0; q < Q; q++)
                acc[r][q] = _mm512_fmadd_ps(x, y[q], acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) {
            float *l = lanes + ((size_t)r * ldl + 2 * q) * 8;
            if (last_single && q == Q - 1)
                _mm512_mask_storeu_ps(l, half, acc[r][q]);
            else
                _mm512_storeu_ps(l, acc[r][q]);
        }
}

ALWAYS_INLINE void nt_lanes_rows(int R, int N, int kw, const float *pa, const float *pb,
                                 float *lanes)
{
    const int pairs = N / 2;
    int q = 0;
    for (; q + 4 <= pairs; q += 4)
        nt_lanes_tile(R, 4, 0, kw, pa, pb + (size_t)q * 2 * NT_LDP, lanes + (size_t)q * 16, N);
    const int rest = pairs - q + (N & 1), single = N & 1;
    float *l = lanes + (size_t)q * 16;
    const float *b = pb + (size_t)q * 2 * NT_LDP;
    switch (rest) {
    case 4: nt_lanes_tile(R, 4, single, kw, pa, b, l, N); break;
    case 3: if (single) nt_lanes_tile(R, 3, 1, kw, pa, b, l, N); else nt_lanes_tile(R, 3, 0, kw, pa, b, l, N); break;
    case 2: if (single) nt_lanes_tile(R, 2, 1, kw, pa, b, l, N); else nt_lanes_tile(R, 2, 0, kw, pa, b, l, N); break;
    case 1: if (single) nt_lanes_tile(R, 1, 1, kw, pa, b, l, N); else nt_lanes_tile(R, 1, 0, kw, pa, b, l, N); break;
    }
}

/* B's rows in pairs, 8 of row 2q then 8 of row 2q+1 (a lone last row: its 8 twice, the
 * second copy never read: the tile masks it). */
static void nt_pack_b(int N, int kw, const float *B, int ldb, float *pb)
{
    for (int j = 0; j < NT_PF && j < N; j++)
        nt_prefetch_row(B + (size_t)j * ldb, kw);
    for (int j = 0; j < N; j += 2) {
        for (int u = j + NT_PF; u < j + NT_PF + 2 && u < N; u++)
            nt_prefetch_row(B + (size_t)u * ldb, kw);
        const float *b0 = B + (size_t)j * ldb, *b1 = j + 1 < N ? b0 + ldb : b0;
        float *dst = pb + (size_t)(j / 2) * 2 * NT_LDP;
        int p = 0;
        for (; p + 16 <= kw; p += 16) {
            const __m512 x = _mm512_loadu_ps(b0 + p), y = _mm512_loadu_ps(b1 + p);
            _mm512_store_ps(dst + 2 * p, _mm512_shuffle_f32x4(x, y, 0x44));
            _mm512_store_ps(dst + 2 * p + 16, _mm512_shuffle_f32x4(x, y, 0xEE));
        }
        if (p < kw) {
            _mm256_store_ps(dst + 2 * p, _mm256_loadu_ps(b0 + p));
            _mm256_store_ps(dst + 2 * p + 8, _mm256_loadu_ps(b1 + p));
        }
    }
}

static void nt_lanes_block(int M, int N, int kw, const float *A, int lda, const float *B,
                           int ldb, float *lanes, float *pack)
{
    /* NT_LDP floats are a multiple of 64 bytes: every packed row starts aligned */
    float *pa = (float *)(((uintptr_t)pack + 63) & ~(uintptr_t)63);
    float *pb = pa + (size_t)M * NT_LDP;
    nt_pack_rows(M, kw, A, lda, pa);
    nt_pack_b(N, kw, B, ldb, pb);
    int i = 0;
    for (; i + 6 <= M; i += 6)
        nt_lanes_rows(6, N, kw, pa + (size_t)i * NT_LDP, pb, lanes + (size_t)i * N * 8);
    float *l = lanes + (size_t)i * N * 8;
    const float *a = pa + (size_t)i * NT_LDP;
    switch (M - i) { /* the last rows in one tile: the same chains */
    case 5: nt_lanes_rows(5, N, kw, a, pb, l); break;
    case 4: nt_lanes_rows(4, N, kw, a, pb, l); break;
    case 3: nt_lanes_rows(3, N, kw, a, pb, l); break;
    case 2: nt_lanes_rows(2, N, kw, a, pb, l); break;
    case 1: nt_lanes_rows(1, N, kw, a, pb, l); break;
    }
}

#elif VW == 8
/* R rows of A against Q rows of B over [0, kw) (a multiple of 8), continuing the 8-lane
 * partial sums kept in lanes[(r*ldl + q)*8]. */
ALWAYS_INLINE void nt_tile(int R, int Q, int kw, const float *A, const float *B, float *lanes,
                           int ldl)
{
    __m256 acc[4][2];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            acc[r][q] = _mm256_loadu_ps(lanes + ((size_t)r * ldl + q) * 8);
    for (int p = 0; p < kw; p += 8) {
        __m256 y[2];
        for (int q = 0; q < Q; q++)
            y[q] = _mm256_loadu_ps(B + (size_t)q * NT_LDP + p);
        for (int r = 0; r < R; r++) {
            __m256 x = _mm256_loadu_ps(A + (size_t)r * NT_LDP + p);
            for (int q = 0; q < Q; q++)
                acc[r][q] = _mm256_fmadd_ps(x, y[q], acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            _mm256_storeu_ps(lanes + ((size_t)r * ldl + q) * 8, acc[r][q]);
}

/* Each block of A's and B's rows is first copied out with a stride that is no multiple
 * of 4 KiB, so rows do not compete for the same cache sets. */
static void nt_lanes_block(int M, int N, int kw, const float *A, int lda, const float *B,
                           int ldb, float *lanes, float *pack)
{
    float *pa = (float *)(((uintptr_t)pack + 63) & ~(uintptr_t)63);
    float *pb = pa + (size_t)M * NT_LDP;
    nt_pack_rows(M, kw, A, lda, pa);
    nt_pack_rows(N, kw, B, ldb, pb);
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        int j = 0;
        for (; j + 2 <= N; j += 2)
            nt_tile(4, 2, kw, pa + (size_t)i * NT_LDP, pb + (size_t)j * NT_LDP,
                    lanes + ((size_t)i * N + j) * 8, N);
        for (; j < N; j++)
            nt_tile(4, 1, kw, pa + (size_t)i * NT_LDP, pb + (size_t)j * NT_LDP,
                    lanes + ((size_t)i * N + j) * 8, N);
    }
    for (; i < M; i++)
        for (int j = 0; j < N; j++)
            nt_tile(1, 1, kw, pa + (size_t)i * NT_LDP, pb + (size_t)j * NT_LDP,
                    lanes + ((size_t)i * N + j) * 8, N);
}

#else
static void nt_lanes_block(int M, int N, int kw, const float *A, int lda, const float *B,
                           int ldb, float *lanes, float *pack)
{
    (void)pack;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            lanes8(A + (size_t)i * lda, B + (size_t)j * ldb, kw, lanes + ((size_t)i * N + j) * 8);
}
#endif

void KFN(kern_gemm_nt_acc_lanes)(int M, int N, int K, const float *restrict A, int lda,
                                 const float *restrict B, int ldb, float *restrict C, int ldc,
                                 float *restrict lanes, float *restrict pack)
{
    const int K8 = K & ~7;
    memset(lanes, 0, sizeof(float) * 8 * (size_t)M * N);
    for (int k0 = 0; k0 < K8; k0 += NT_KC) {
        int kw = K8 - k0 < NT_KC ? K8 - k0 : NT_KC;
        nt_lanes_block(M, N, kw, A + k0, lda, B + k0, ldb, lanes, pack);
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *s = lanes + ((size_t)i * N + j) * 8;
            dot_tail(A + (size_t)i * lda, B + (size_t)j * ldb, K8, K, s);
            C[(size_t)i * ldc + j] += combine8(s);
        }
}
