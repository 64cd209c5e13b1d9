/* kernel_table: the kernels of one instruction set, as one table of functions.
 *
 * There is one table per path (avx512, avx2, scalar), each filled by the same sources
 * compiled with that path's flags (simd.h). kernels.c picks one at start-up from CPUID
 * (or DPTRAIN_ISA, or dp_isa_select) and the public kernels and layers call through it.
 * Every entry computes the same bits on every path; only the speed differs. Internal to
 * the net library: nothing outside src/net includes this. */
#ifndef DPTRAIN_NET_KERNEL_TABLE_H
#define DPTRAIN_NET_KERNEL_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/net/kernels.h"

/* The inner-dimension block of the NT products with lanes (kern_dot.c, kernels.c). */
#define DP_NT_KC 512

/* The most columns (C*KH*KW) of a convolution that conv_direct computes. */
#define DP_DIRECT_MAX_K 15

/* How gemm_axpy starts each C element's chain. */
enum { GEMM_ZERO, GEMM_ACC, GEMM_BIAS };

typedef struct {
    const char *name;
    /* C[M,N] = start + A[M,K] B[K,N] with A[i*ars + k*aks]; start is 0 (GEMM_ZERO), C
     * itself (GEMM_ACC) or bias[i] (GEMM_BIAS). One chain of fused multiply-adds in k
     * order per element. */
    void (*gemm_axpy)(int M, int N, int K, const float *A, size_t ars, size_t aks,
                      const float *B, int ldb, float *C, int ldc, int start, const float *bias);
    /* C[M,N] += A[M,K] B[N,K]^T with 8 partial sums per element (kernels.h). */
    void (*gemm_nt_acc)(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        float *C, int ldc);
    void (*gemm_nt_acc_lanes)(int M, int N, int K, const float *A, int lda, const float *B,
                              int ldb, float *C, int ldc, float *lanes, float *pack);
    float (*dot)(const float *a, const float *b, int n);
    /* rows r0..r1-1 of the im2col matrix only, ldc floats apart (ldc >= OH*OW) */
    void (*im2col)(const float *in, int r0, int r1, int C, int H, int W, int KH, int KW,
                   int stride, int pad, int OH, int OW, float *col, size_t ldc);
    /* dst[c*ldd + r] = src[r*lds + c] for r < rows, c < cols */
    void (*transpose)(const float *src, int rows, int cols, size_t lds, float *dst, size_t ldd);
    /* rows of pixels p0..p1-1 only: consecutive calls continue the pixel order */
    void (*row2im_acc)(const float *row, int p0, int p1, int C, int H, int W, int KH, int KW,
                       int stride, int pad, int OH, int OW, float *in);
    void (*col2im_acc)(const float *col, int C, int H, int W, int KH, int KW, int stride,
                       int pad, int OH, int OW, float *in);
    /* col2im onto zero (in is overwritten) with each input element's terms in output-pixel
     * order: row2im_acc's bits on a zeroed in */
    void (*col2im_pixel_order)(const float *col, int C, int H, int W, int KH, int KW,
                               int stride, int pad, int OH, int OW, float *in);
    /* One plane of max pooling (relu after it when relu != 0), and its backward: din is
     * overwritten; out NULL, or the forward output whose entries <= 0 pass no gradient. */
    void (*pool_plane)(float *out, int32_t *argmax, const float *in, int H, int W, int K,
                       int stride, int OH, int OW, int relu);
    void (*unpool_plane)(float *din, const float *dout, const float *out,
                         const int32_t *argmax, int H, int W, int OH, int OW);
    void (*relu_forward)(float *out, const float *in, size_t n);
    void (*relu_backward)(float *din, const float *dout, const float *out, size_t n);
    /* sums[l] += x[p] for p = l (mod 8) in p order, p < n: the bias gradient's lanes. */
    void (*sum_lanes8)(float sums[8], const float *x, int n);
    /* One sample's convolution, stride 1, no padding, at most DP_DIRECT_MAX_K columns,
     * straight from the image: the bits of im2col and gemm_axpy with GEMM_BIAS. */
    void (*conv_direct)(const float *in, int C, int H, int W, int KH, int KW, int OC,
                        const float *weight, const float *bias, float *out);
    /* fixed_accumulate's (kernels.h) */
    void (*fixed_acc)(float *g, int64_t *acc, size_t n, double scale, double bound,
                      float *maxabs, int64_t *over, int64_t *nonfinite);
    /* fixed_take's (kernels.h) */
    void (*fixed_take)(float *g, int64_t *acc, size_t n, double unscale);
    /* gemm_tn_fixed's (kernels.h) */
    void (*gemm_tn_fixed)(int M, int N, const float *A, int lda, const float *B, int ldb,
                          const int *bounds, int ngroups, size_t ldacc, dp_fixed_block *b,
                          float *pack, size_t pack_floats);
    /* Winograd F(4x4, 3x3)'s transforms, channels last (kern_winograd.c): the input's tiles
     * V = B^T d B, the outputs bias + A^T M A, the output gradient's A dY A^T, and the
     * input gradient's B dV B^T added in tile order. Position xi of tile t, channel c, at
     * xi*xs + t*n + c; th x tw tiles of 4 x 4 outputs; the input PH = 4 th + 2 rows of PW. */
    void (*wino_in)(const float *xt, int PW, int th, int tw, int n, float *Vt, size_t xs);
    void (*wino_out)(const float *Mt, size_t xs, int th, int tw, int n, const float *bias,
                     float *Yt, int OH, int OW);
    void (*wino_dout)(const float *dYt, int OH, int OW, int th, int tw, int n, float *dMt,
                      size_t xs);
    void (*wino_din)(const float *dVt, size_t xs, int th, int tw, int n, float *dXt, int PW);
    /* the weight gradient: dweight[k][c][3][3] += G^T dU G, dU [36][OC][C], c0 <= c < c1 */
    void (*wino_wgrad)(const float *dU, int OC, int C, int c0, int c1, float *dweight);
    /* the filters' transform U = G g G^T of n filters: U [36][n] from their 9 taps' planes
     * g [9][n]; t: 3 n floats of work */
    void (*wino_filter)(const float *g, size_t n, float *U, float *t);
    /* the weight gradient of a 3x3 convolution of one channel through relu and 2x2 max
     * pooling, from the pooled gradient (kern_direct.c): a channel's plane of gradients
     * and argmax codes, then with those planes transposed a sample's chains */
    void (*pool_codes)(float *g, float *code, const float *dP, const float *pooled,
                       const int32_t *argmax, int POH, int POW, int OW);
    void (*pool_wgrad3)(float *dwT, size_t ld, float *db, const float *x, int W,
                        const float *gT, const float *cT, int n, int POH, int POW);
} dp_kernel_table;

extern const dp_kernel_table dp_kernels_avx512, dp_kernels_avx2, dp_kernels_scalar;

/* The products of --precision bf16 (kern_bf16.c): bf16 operands in pairs along the inner
 * dimension (the even k in a uint32_t's low half), fp32 sums. Two builds give the same
 * bits: AVX512-BF16 (avx512bf16) and its emulation with fmaf (scalar). */
typedef struct {
    const char *name;
    /* C[M,N] = start + A[M,K] B[K,N], A's pair j of row i at A[i*ars + j*aks], B's pair j of
     * column n at B[j*ldb + n], K2 = (K+1)/2 pairs: gemm_axpy's chain on pairs. */
    void (*gemm)(int M, int N, int K2, const uint32_t *A, size_t ars, size_t aks,
                 const uint32_t *B, int ldb, float *C, int ldc, int start, const float *bias);
    /* dst[r*ldd + j] = (src[r][2j], src[r][2j+1]): pairs along each row of src[rows][cols] */
    void (*pack_rows)(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                      size_t ldd);
    /* dst[j*ldd + c] = (src[2j][c], src[2j+1][c]): pairs of neighbouring rows */
    void (*pack_cols)(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                      size_t ldd);
    /* dst[j*ldd + r] = (src[r][2j], src[r][2j+1]): pack_rows transposed */
    void (*pack_rows_t)(const float *src, int rows, int cols, size_t lds, uint32_t *dst,
                        size_t ldd);
} dp_bf16_table;

extern const dp_bf16_table dp_bf16_avx512bf16, dp_bf16_scalar;

/* The bf16 products in use, or NULL when the products are fp32 (dp_precision_select). */
const dp_bf16_table *dp_bf16(void);

/* The table in use (never NULL: chosen before main from CPUID and DPTRAIN_ISA). */
const dp_kernel_table *dp_kernels(void);

/* The 8-lane sums of the NT products combined: fixed order, the same on every path. */
static inline float combine8(const float s[8])
{
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

#endif
