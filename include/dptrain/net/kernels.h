/* kernels: the dense building blocks under the layers (GEMM variants, im2col/col2im).
 *
 * Each runs on the instruction set chosen at start-up (isa.h) and gives the same bits on
 * every one: the NN/TN products are one chain of fused multiply-adds in k order per
 * element, the NT products 8 partial sums (p mod 8) combined in a fixed order. All matrices are row-major float32 with explicit leading dimensions. The kernels are
 * serial and deterministic: every output element is reduced in an order that depends
 * only on the shapes, never on how the caller splits the work across threads, so a
 * caller may hand disjoint blocks of rows (or whole samples) to OpenMP threads and get
 * the same bits for any thread count. The caller owns every buffer. */
#ifndef DPTRAIN_KERNELS_H
#define DPTRAIN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* C[M,N] += A[M,K] * B[K,N] */
void gemm_nn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc);
/* C[M,N] = A[M,K] * B[K,N] and C[M,N] = A[K,M]^T * B[K,N]: the same bits as zeroing C
 * and accumulating, without touching C first. */
void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
             int ldc);
void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
             int ldc);
/* C[M,N] = bias[i] + A[M,K] * B[K,N]: the same bits as filling C with the bias and
 * accumulating. */
void gemm_nn_bias(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  const float *bias, float *C, int ldc);
/* C[M,N] += A[M,K] * B[N,K]^T */
void gemm_nt_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc);
/* The same bits as gemm_nt_acc, blocked over K for long inner dimensions; lanes is
 * scratch of 8*M*N floats, pack of gemm_nt_pack_floats(M, N). */
void gemm_nt_acc_lanes(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                       float *C, int ldc, float *lanes, float *pack);
size_t gemm_nt_pack_floats(int M, int N);
/* C[M,N] += A[K,M]^T * B[K,N] */
void gemm_tn_acc(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                 int ldc);

/* col[(c*KH + i)*KW + j][oy*OW + ox] = in[c][oy*stride - pad + i][ox*stride - pad + j] (0 outside) */
void im2col(const float *in, int C, int H, int W, int KH, int KW, int stride, int pad, int OH,
            int OW, float *col);
/* dst[cols, rows] = src[rows, cols]^T */
void transpose(const float *src, int rows, int cols, float *dst);
/* The adjoint of im2col for the transposed layout row[oy*OW + ox][(c*KH + i)*KW + j];
 * `in` must be zeroed by the caller. */
void row2im_acc(const float *row, int C, int H, int W, int KH, int KW, int stride, int pad, int OH,
                int OW, float *in);
/* The adjoint of im2col: in[...] += col[...]; `in` must be zeroed by the caller. */
void col2im_acc(const float *col, int C, int H, int W, int KH, int KW, int stride, int pad, int OH,
                int OW, float *in);
/* col2im onto zero (in is overwritten, C*H*W floats) with the terms of each input element in
 * output-pixel order, the order of row2im_acc: the same bits as row2im_acc on the
 * transposed matrix and a zeroed in. */
void col2im_pixel_order(const float *col, int C, int H, int W, int KH, int KW, int stride,
                        int pad, int OH, int OW, float *in);

/* The dot product of a and b with 8 fixed partial sums, combined in a fixed order. */
float dot_f32(const float *a, const float *b, int n);

/* The exact gradient sum's step from float to fixed point (dist/gradsync.c): for each i,
 * when |g[i]| < bound, acc[i] += round(g[i] * scale), ties to even; otherwise nothing is
 * added and the element is counted in *nonfinite (NaN, Inf) or *over (finite, too large).
 * g[i] becomes 0. *maxabs becomes the largest of itself and every |g[i]| that is not NaN.
 * scale must be a power of two with bound * scale <= 2^51. Exact on every path, so the
 * result does not depend on the path or on how a caller splits [0, n) between threads. */
void fixed_accumulate(float *g, int64_t *acc, size_t n, double scale, double bound,
                      float *maxabs, int64_t *over, int64_t *nonfinite);
/* The fixed-point sum back to float, leaving the accumulator zero for the next step: for
 * each i, g[i] = (float)((double)acc[i] * unscale) (each conversion rounding to nearest,
 * unscale a power of two), then acc[i] = 0. The same bits on every path. */
void fixed_take(float *g, int64_t *acc, size_t n, double unscale);

/* A block of a tensor's exact gradient sum (dist/gradsync.c), for gemm_tn_fixed: where its
 * values are, the step's scale and bound (fixed_accumulate's), whether they are all zero
 * (then the sums may be stored without reading them), and what the moves saw: the largest
 * |partial| and the counts, which gemm_tn_fixed updates as fixed_accumulate does its
 * maxabs, over and nonfinite. */
typedef struct dp_fixed_block_s {
    int64_t *acc;
    double scale, bound;
    int zero;
    float maxabs;
    int64_t over, nonfinite;
} dp_fixed_block;

/* A weight gradient's exact sum over groups: for each group g < ngroups, the partial
 * P_g[i, j] = sum of A[n, i] B[n, j] over n in [bounds[g], bounds[g + 1]) (A's and B's rows
 * counted from bounds[0]; i < M, j < N), each element gemm_tn's chain (fused multiply-adds
 * from zero, in n order); then b->acc[i * ldacc + j] gets it as fixed_accumulate would
 * (with b's scale and bound, counting into b). No partial is written anywhere. The same
 * bits as gemm_tn and fixed_accumulate group by group, on every path. pack (NULL, or
 * pack_floats floats, the calling thread's own): where columns of B are copied to, as many
 * as it holds of every sample (a few hundred KB suit the nopool model's fc1). */
void gemm_tn_fixed(int M, int N, const float *A, int lda, const float *B, int ldb,
                   const int *bounds, int ngroups, size_t ldacc, dp_fixed_block *b, float *pack,
                   size_t pack_floats);

#endif
