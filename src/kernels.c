/* Register-blocked kernels. With AVX2 and FMA (built with -march=native on such a CPU)
 * they use intrinsics; otherwise plain C. Either way every output element is computed
 * by the same sequence of operations whichever block it falls in (fused multiply-adds
 * in k order for the NN/TN products; 8 partial sums over p mod 8, combined in a fixed
 * order, for the NT product), so splitting rows or samples across threads never
 * changes a bit. */
#include "dptrain/kernels.h"

#include <math.h>
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
 * gemm_nn: A[i*lda + k]; gemm_tn: A[k*lda + i]. */
static void gemm_axpy_form(int M, int N, int K, const float *restrict A, size_t ars, size_t aks,
                           const float *restrict B, int ldb, float *restrict C, int ldc)
{
    int j0 = 0;
#if DP_AVX2
    for (; j0 + 16 <= N; j0 += 16) {
        int i = 0;
        for (; i + 4 <= M; i += 4) {
            __m256 c[4][2];
            for (int r = 0; r < 4; r++) {
                c[r][0] = _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j0);
                c[r][1] = _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j0 + 8);
            }
            const float *a = A + (size_t)i * ars;
            for (int k = 0; k < K; k++) {
                const float *b = B + (size_t)k * ldb + j0;
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                for (int r = 0; r < 4; r++) {
                    __m256 x = _mm256_broadcast_ss(a + r * ars + (size_t)k * aks);
                    c[r][0] = _mm256_fmadd_ps(x, b0, c[r][0]);
                    c[r][1] = _mm256_fmadd_ps(x, b1, c[r][1]);
                }
            }
            for (int r = 0; r < 4; r++) {
                _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j0, c[r][0]);
                _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j0 + 8, c[r][1]);
            }
        }
        for (; i < M; i++) {
            __m256 c0 = _mm256_loadu_ps(C + (size_t)i * ldc + j0);
            __m256 c1 = _mm256_loadu_ps(C + (size_t)i * ldc + j0 + 8);
            for (int k = 0; k < K; k++) {
                const float *b = B + (size_t)k * ldb + j0;
                __m256 x = _mm256_broadcast_ss(A + (size_t)i * ars + (size_t)k * aks);
                c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c0);
                c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), c1);
            }
            _mm256_storeu_ps(C + (size_t)i * ldc + j0, c0);
            _mm256_storeu_ps(C + (size_t)i * ldc + j0 + 8, c1);
        }
    }
#endif
    /* Remaining columns (all of them without AVX2): rows of C updated k by k. */
    if (j0 < N)
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            for (int k = 0; k < K; k++) {
                float x = A[(size_t)i * ars + (size_t)k * aks];
                const float *b = B + (size_t)k * ldb;
                for (int j = j0; j < N; j++)
                    c[j] = MADD(x, b[j], c[j]);
            }
        }
}

void gemm_nn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    gemm_axpy_form(M, N, K, A, (size_t)lda, 1, B, ldb, C, ldc);
}

void gemm_tn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc)
{
    gemm_axpy_form(M, N, K, A, 1, (size_t)lda, B, ldb, C, ldc);
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
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * stride - pad + j;
                        if (x >= 0 && x < W)
                            dst[x] += src[ox];
                    }
                }
            }
}
