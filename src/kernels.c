/* Plain C kernels written so that GCC vectorises the inner loops (AVX2/FMA with
 * -march=native) without reassociating any sum: the summation order is fixed by the
 * source, which keeps results identical across thread counts. */
#include "dptrain/kernels.h"

#include <string.h>

float dot_f32(const float *restrict a, const float *restrict b, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void gemm_nn_acc(int M, int N, int K, const float *restrict A, int lda, const float *restrict B,
                 int ldb, float *restrict C, int ldc)
{
    /* Four rows of C at a time so each row of B is loaded once per four rows. */
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        float *c0 = C + (size_t)i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        const float *a0 = A + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        for (int k = 0; k < K; k++) {
            const float *b = B + (size_t)k * ldb;
            float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
            for (int j = 0; j < N; j++) {
                float bj = b[j];
                c0[j] += x0 * bj;
                c1[j] += x1 * bj;
                c2[j] += x2 * bj;
                c3[j] += x3 * bj;
            }
        }
    }
    for (; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        const float *a = A + (size_t)i * lda;
        for (int k = 0; k < K; k++) {
            const float *b = B + (size_t)k * ldb;
            float x = a[k];
            for (int j = 0; j < N; j++)
                c[j] += x * b[j];
        }
    }
}

void gemm_nt_acc(int M, int N, int K, const float *restrict A, int lda, const float *restrict B,
                 int ldb, float *restrict C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] += dot_f32(A + (size_t)i * lda, B + (size_t)j * ldb, K);
}

void gemm_tn_acc(int M, int N, int K, const float *restrict A, int lda, const float *restrict B,
                 int ldb, float *restrict C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int k = 0; k < K; k++) {
            float x = A[(size_t)k * lda + i];
            const float *b = B + (size_t)k * ldb;
            for (int j = 0; j < N; j++)
                c[j] += x * b[j];
        }
    }
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
