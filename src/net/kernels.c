/* Register-blocked kernels. With AVX2 and FMA (built with -march=native on such a CPU)
 * they use intrinsics; otherwise plain C. Either way every output element is computed
 * by the same sequence of operations whichever block it falls in (fused multiply-adds
 * in k order for the NN/TN products; 8 partial sums over p mod 8, combined in a fixed
 * order, for the NT product), so splitting rows or samples across threads never
 * changes a bit. */
#include "dptrain/net/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DP_AVX2 1
/* One fused multiply-add, the same rounding as a lane of _mm256_fmadd_ps. */
#define MADD(a, b, c) fmaf((a), (b), (c))
#else
#define DP_AVX2 0
#define MADD(a, b, c) ((c) + (a) * (b))
#endif

/* ---- C += A * B with A addressed by (row stride, k stride) ----------------------------
 * gemm_nn: A[i*lda + k]; gemm_tn: A[k*lda + i]. Every C element is updated by one chain
 * of fused multiply-adds in k order, whatever tile it falls in. */
#if DP_AVX2
static const int32_t tail_mask_bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* An R x (8*V) tile of C (V = 1 or 2), the last vector masked to `width` columns. */
static inline __attribute__((always_inline)) void tile_axpy(int R, int V, int width, int K,
                                                             const float *restrict A, size_t ars,
                                                             size_t aks, const float *restrict B,
                                                             int ldb, float *restrict C, int ldc,
                                                             int accumulate)
{
    __m256i mask = _mm256_loadu_si256((const __m256i *)(tail_mask_bits + 8 - (width - 8 * (V - 1))));
    __m256 c[6][2];
    /* Starting from zero equals zeroing C first: fma(a, b, 0) rounds like a * b + 0. */
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++)
            c[r][v] = !accumulate ? _mm256_setzero_ps()
                      : v == V - 1 ? _mm256_maskload_ps(C + (size_t)r * ldc + 8 * v, mask)
                                   : _mm256_loadu_ps(C + (size_t)r * ldc + 8 * v);
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb;
        __m256 bv[2];
        for (int v = 0; v < V; v++)
            bv[v] = v == V - 1 ? _mm256_maskload_ps(b + 8 * v, mask) : _mm256_loadu_ps(b + 8 * v);
        const float *a = A + (size_t)k * aks;
        for (int r = 0; r < R; r++) {
            __m256 x = _mm256_broadcast_ss(a + (size_t)r * ars);
            for (int v = 0; v < V; v++)
                c[r][v] = _mm256_fmadd_ps(x, bv[v], c[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            if (v == V - 1)
                _mm256_maskstore_ps(C + (size_t)r * ldc + 8 * v, mask, c[r][v]);
            else
                _mm256_storeu_ps(C + (size_t)r * ldc + 8 * v, c[r][v]);
        }
}

/* All rows of C for one column block, 6 rows at a time. */
static inline __attribute__((always_inline)) void column_block(int M, int V, int width, int K,
                                                                const float *A, size_t ars,
                                                                size_t aks, const float *B, int ldb,
                                                                float *C, int ldc, int acc)
{
    int i = 0;
#define DP_TILE(R) tile_axpy(R, V, width, K, A + (size_t)i * ars, ars, aks, B, ldb, \
                             C + (size_t)i * ldc, ldc, acc)
    for (; i + 6 <= M; i += 6)
        DP_TILE(6);
    switch (M - i) {
    case 5: DP_TILE(5); break;
    case 4: DP_TILE(4); break;
    case 3: DP_TILE(3); break;
    case 2: DP_TILE(2); break;
    case 1: DP_TILE(1); break;
    }
#undef DP_TILE
}
#endif

#define PACK_MAX_K 1024
#define PACK_MIN_LDB 1024

static void gemm_axpy_panel(int M, int N, int K, const float *restrict A, size_t ars,
                            size_t aks, const float *restrict B, int ldb, float *restrict C,
                            int ldc, int acc);

/* Long inner dimensions go in slices of AXPY_KC, so that the K x 16 panel of B stays in L1
 * across the row tiles. Each C element continues the same chain of multiply-adds from one
 * slice to the next (it is stored and reloaded in between), so the bits do not change. */
#define AXPY_KC 256

static void gemm_axpy_form(int M, int N, int K, const float *restrict A, size_t ars, size_t aks,
                           const float *restrict B, int ldb, float *restrict C, int ldc, int acc)
{
    if (K <= AXPY_KC + AXPY_KC / 2) {
        gemm_axpy_panel(M, N, K, A, ars, aks, B, ldb, C, ldc, acc);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += AXPY_KC) {
        int kw = K - k0 < AXPY_KC + AXPY_KC / 2 ? K - k0 : AXPY_KC;
        gemm_axpy_panel(M, N, kw, A + (size_t)k0 * aks, ars, aks, B + (size_t)k0 * ldb, ldb, C,
                        ldc, acc || k0 > 0);
        if (kw != AXPY_KC)
            break;
    }
}

static void gemm_axpy_panel(int M, int N, int K, const float *restrict A, size_t ars,
                            size_t aks, const float *restrict B, int ldb, float *restrict C,
                            int ldc, int acc)
{
#if DP_AVX2
    /* Column blocks of 16 (the B panel K x 16 stays in L1 across all row tiles), then
     * one block of 1-16 masked columns. */
    /* With enough row tiles to reuse it, the K x 16 panel of B is first copied to a
     * contiguous buffer: rows of B whose stride is a multiple of 4 KiB (fc1 of nopool:
     * 36864 floats) would otherwise all fall into the same cache sets. */
    float panel[PACK_MAX_K * 16] __attribute__((aligned(64)));
    const int pack = M > 12 && K <= PACK_MAX_K && ldb >= PACK_MIN_LDB;
    int j = 0;
    for (; j < N; j += 16) {
        int width = N - j < 16 ? N - j : 16, V = width > 8 ? 2 : 1;
        const float *b = B + j;
        int ld = ldb;
        if (pack) {
            __m256i m0 = _mm256_loadu_si256((const __m256i *)(tail_mask_bits + 8 - (width < 8 ? width : 8)));
            __m256i m1 = _mm256_loadu_si256((const __m256i *)(tail_mask_bits + 8 - (width > 8 ? width - 8 : 0)));
            for (int k = 0; k < K; k++) {
                const float *src = B + (size_t)k * ldb + j;
                _mm256_store_ps(panel + 16 * k, _mm256_maskload_ps(src, m0));
                _mm256_store_ps(panel + 16 * k + 8, _mm256_maskload_ps(src + 8, m1));
            }
            b = panel;
            ld = 16;
        }
        if (width == 16 && acc)
            column_block(M, 2, 16, K, A, ars, aks, b, ld, C + j, ldc, 1);
        else if (width == 16)
            column_block(M, 2, 16, K, A, ars, aks, b, ld, C + j, ldc, 0);
        else if (V == 2)
            column_block(M, 2, width, K, A, ars, aks, b, ld, C + j, ldc, acc);
        else
            column_block(M, 1, width, K, A, ars, aks, b, ld, C + j, ldc, acc);
    }
#else
    if (!acc)
        for (int i = 0; i < M; i++)
            memset(C + (size_t)i * ldc, 0, sizeof(float) * N);
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int k = 0; k < K; k++) {
            float x = A[(size_t)i * ars + (size_t)k * aks];
            const float *b = B + (size_t)k * ldb;
            for (int j = 0; j < N; j++)
                c[j] = MADD(x, b[j], c[j]);
        }
    }
#endif
}

void gemm_nn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    gemm_axpy_form(M, N, K, A, (size_t)lda, 1, B, ldb, C, ldc, 1);
}

void gemm_tn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    gemm_axpy_form(M, N, K, A, 1, (size_t)lda, B, ldb, C, ldc, 1);
}

void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
             int ldc)
{
    gemm_axpy_form(M, N, K, A, (size_t)lda, 1, B, ldb, C, ldc, 0);
}

void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
             int ldc)
{
    gemm_axpy_form(M, N, K, A, 1, (size_t)lda, B, ldb, C, ldc, 0);
}

/* ---- dot products with 8 partial sums ----------------------------------------------- */

static float combine8(const float s[8])
{
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* Lanes l of acc get a[p]*b[p] for p = l (mod 8) in p order; the tail continues lane by
 * lane, so the vector and scalar paths below compute identical partial sums. */
static void dot_tail(const float *a, const float *b, int from, int n, float s[8])
{
    for (int p = from, l = 0; p < n; p++, l++)
        s[l] = MADD(a[p], b[p], s[l]);
}

float dot_f32(const float *restrict a, const float *restrict b, int n)
{
    float s[8] = {0};
    int p = 0;
#if DP_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; p + 8 <= n; p += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + p), _mm256_loadu_ps(b + p), acc);
    _mm256_storeu_ps(s, acc);
#else
    for (; p + 8 <= n; p += 8)
        for (int l = 0; l < 8; l++)
            s[l] = MADD(a[p + l], b[p + l], s[l]);
#endif
    dot_tail(a, b, p, n, s);
    return combine8(s);
}

void gemm_nt_acc(int M, int N, int K, const float *restrict A, int lda, const float *restrict B,
                 int ldb, float *restrict C, int ldc)
{
    int i = 0;
#if DP_AVX2
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
                    dot_f32(a0 + (size_t)r * lda, B + (size_t)j * ldb, K);
    }
#endif
    for (; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] += dot_f32(A + (size_t)i * lda, B + (size_t)j * ldb, K);
}

void im2col(const float *restrict in, int C, int H, int W, int KH, int KW, int stride, int pad,
            int OH, int OW, float *restrict col)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++) {
                float *row = col + ((size_t)(c * KH + i) * KW + j) * OH * OW;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * stride - pad + i;
                    float *out = row + (size_t)oy * OW;
                    if (y < 0 || y >= H) {
                        memset(out, 0, sizeof(float) * OW);
                        continue;
                    }
                    const float *src = in + ((size_t)c * H + y) * W;
                    if (stride == 1 && pad == 0) {
                        memcpy(out, src + j, sizeof(float) * OW);
                        continue;
                    }
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * stride - pad + j;
                        out[ox] = (x >= 0 && x < W) ? src[x] : 0.0f;
                    }
                }
            }
}

#if DP_AVX2
/* R rows of A against Q rows of B over [k0, k1) (a multiple of 8 long), continuing the
 * 8-lane partial sums kept in lanes[(r*ldl + q)*8]. */
static inline __attribute__((always_inline)) void nt_tile(int R, int Q, int k0, int k1,
                                                           const float *A, int lda, const float *B,
                                                           int ldb, float *lanes, int ldl)
{
    __m256 acc[4][2];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            acc[r][q] = _mm256_loadu_ps(lanes + ((size_t)r * ldl + q) * 8);
    for (int p = k0; p < k1; p += 8) {
        __m256 y[2];
        for (int q = 0; q < Q; q++)
            y[q] = _mm256_loadu_ps(B + (size_t)q * ldb + p);
        for (int r = 0; r < R; r++) {
            __m256 x = _mm256_loadu_ps(A + (size_t)r * lda + p);
            for (int q = 0; q < Q; q++)
                acc[r][q] = _mm256_fmadd_ps(x, y[q], acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++)
            _mm256_storeu_ps(lanes + ((size_t)r * ldl + q) * 8, acc[r][q]);
}
#endif

/* Inner-dimension blocks: a block of A's and B's rows stays in cache while all their
 * pairs are worked on. Blocking does not change a sum: the lanes carry over. */
#define NT_KC 512

void gemm_nt_acc_lanes(int M, int N, int K, const float *restrict A, int lda,
                       const float *restrict B, int ldb, float *restrict C, int ldc,
                       float *restrict lanes, float *restrict pack)
{
    const int K8 = K & ~7;
    memset(lanes, 0, sizeof(float) * 8 * (size_t)M * N);
#if DP_AVX2
    /* Each block of A's and B's rows is first copied out with a stride that is no multiple
     * of 4 KiB, so rows do not compete for the same cache sets. */
    const int ldp = NT_KC + 16;
    float *pa = pack, *pb = pack + (size_t)M * ldp;
    for (int k0 = 0; k0 < K8; k0 += NT_KC) {
        int k1 = k0 + NT_KC < K8 ? k0 + NT_KC : K8, kw = k1 - k0;
        for (int i = 0; i < M; i++)
            memcpy(pa + (size_t)i * ldp, A + (size_t)i * lda + k0, sizeof(float) * kw);
        for (int j = 0; j < N; j++)
            memcpy(pb + (size_t)j * ldp, B + (size_t)j * ldb + k0, sizeof(float) * kw);
        int i = 0;
        for (; i + 4 <= M; i += 4) {
            int j = 0;
            for (; j + 2 <= N; j += 2)
                nt_tile(4, 2, 0, kw, pa + (size_t)i * ldp, ldp, pb + (size_t)j * ldp, ldp,
                        lanes + ((size_t)i * N + j) * 8, N);
            for (; j < N; j++)
                nt_tile(4, 1, 0, kw, pa + (size_t)i * ldp, ldp, pb + (size_t)j * ldp, ldp,
                        lanes + ((size_t)i * N + j) * 8, N);
        }
        for (; i < M; i++)
            for (int j = 0; j < N; j++)
                nt_tile(1, 1, 0, kw, pa + (size_t)i * ldp, ldp, pb + (size_t)j * ldp, ldp,
                        lanes + ((size_t)i * N + j) * 8, N);
    }
#else
    (void)pack;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *s = lanes + ((size_t)i * N + j) * 8;
            for (int p = 0; p < K8; p += 8)
                for (int l = 0; l < 8; l++)
                    s[l] = MADD(A[(size_t)i * lda + p + l], B[(size_t)j * ldb + p + l], s[l]);
        }
#endif
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *s = lanes + ((size_t)i * N + j) * 8;
            dot_tail(A + (size_t)i * lda, B + (size_t)j * ldb, K8, K, s);
            C[(size_t)i * ldc + j] += combine8(s);
        }
}

size_t gemm_nt_pack_floats(int M, int N) { return (size_t)(M + N) * (NT_KC + 16); }

void transpose(const float *restrict src, int rows, int cols, float *restrict dst)
{
    int r = 0;
#if DP_AVX2
    for (; r + 8 <= rows; r += 8) {
        int c = 0;
        for (; c + 8 <= cols; c += 8) {
            __m256 v[8], t[8];
            for (int i = 0; i < 8; i++)
                v[i] = _mm256_loadu_ps(src + (size_t)(r + i) * cols + c);
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                v[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                v[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
                v[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                v[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            t[0] = _mm256_permute2f128_ps(v[0], v[4], 0x20);
            t[1] = _mm256_permute2f128_ps(v[1], v[5], 0x20);
            t[2] = _mm256_permute2f128_ps(v[2], v[6], 0x20);
            t[3] = _mm256_permute2f128_ps(v[3], v[7], 0x20);
            t[4] = _mm256_permute2f128_ps(v[0], v[4], 0x31);
            t[5] = _mm256_permute2f128_ps(v[1], v[5], 0x31);
            t[6] = _mm256_permute2f128_ps(v[2], v[6], 0x31);
            t[7] = _mm256_permute2f128_ps(v[3], v[7], 0x31);
            for (int i = 0; i < 8; i++)
                _mm256_storeu_ps(dst + (size_t)(c + i) * rows + r, t[i]);
        }
        for (; c < cols; c++)
            for (int i = 0; i < 8; i++)
                dst[(size_t)c * rows + r + i] = src[(size_t)(r + i) * cols + c];
    }
#endif
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

void row2im_acc(const float *restrict row, int C, int H, int W, int KH, int KW, int stride,
                int pad, int OH, int OW, float *restrict in)
{
    const int K = C * KH * KW;
    if (stride == 1 && pad == 0 && KH == 3 && KW == 3) { /* the common case, unrolled */
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *r = row + ((size_t)oy * OW + ox) * K;
                float *base = in + (size_t)oy * W + ox;
                for (int c = 0; c < C; c++, r += 9) {
                    float *d0 = base + (size_t)c * H * W, *d1 = d0 + W, *d2 = d1 + W;
                    d0[0] += r[0], d0[1] += r[1], d0[2] += r[2];
                    d1[0] += r[3], d1[1] += r[4], d1[2] += r[5];
                    d2[0] += r[6], d2[1] += r[7], d2[2] += r[8];
                }
            }
        return;
    }
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            const float *r = row + ((size_t)oy * OW + ox) * K;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < KH; i++) {
                    int y = oy * stride - pad + i;
                    if (y < 0 || y >= H)
                        continue;
                    float *dst = in + ((size_t)c * H + y) * W + ox * stride - pad;
                    const float *src = r + (c * KH + i) * KW;
                    if (pad == 0) { /* the window lies inside */
                        for (int j = 0; j < KW; j++)
                            dst[j] += src[j];
                        continue;
                    }
                    for (int j = 0; j < KW; j++) {
                        int x = ox * stride - pad + j;
                        if (x >= 0 && x < W)
                            dst[j] += src[j];
                    }
                }
        }
}

void col2im_acc(const float *restrict col, int C, int H, int W, int KH, int KW, int stride, int pad,
                int OH, int OW, float *restrict in)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++)
            for (int j = 0; j < KW; j++) {
                const float *row = col + ((size_t)(c * KH + i) * KW + j) * OH * OW;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * stride - pad + i;
                    if (y < 0 || y >= H)
                        continue;
                    float *dst = in + ((size_t)c * H + y) * W;
                    const float *src = row + (size_t)oy * OW;
                    if (stride == 1 && pad == 0) { /* the whole row lies inside: vectorises */
                        float *d = dst + j;
                        for (int ox = 0; ox < OW; ox++)
                            d[ox] += src[ox];
                        continue;
                    }
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * stride - pad + j;
                        if (x >= 0 && x < W)
                            dst[x] += src[ox];
                    }
                }
            }
}
