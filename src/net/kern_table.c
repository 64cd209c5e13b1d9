/* kern_table: this instruction set's kernels as one table (kernel_table.h). Compiled once
 * per path, like the kernels themselves. */
#include "simd.h"

void KFN(kern_gemm_axpy)(int M, int N, int K, const float *A, size_t ars, size_t aks,
                         const float *B, int ldb, float *C, int ldc, int start,
                         const float *bias);
void KFN(kern_gemm_nt_acc)(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                           float *C, int ldc);
void KFN(kern_gemm_nt_acc_lanes)(int M, int N, int K, const float *A, int lda, const float *B,
                                 int ldb, float *C, int ldc, float *lanes, float *pack);
float KFN(kern_dot)(const float *a, const float *b, int n);
void KFN(kern_im2col)(const float *in, int r0, int r1, int C, int H, int W, int KH, int KW,
                      int stride, int pad, int OH, int OW, float *col, size_t ldc);
void KFN(kern_transpose)(const float *src, int rows, int cols, size_t lds, float *dst,
                         size_t ldd);
void KFN(kern_row2im_acc)(const float *row, int p0, int p1, int C, int H, int W, int KH,
                          int KW, int stride, int pad, int OH, int OW, float *in);
void KFN(kern_col2im_acc)(const float *col, int C, int H, int W, int KH, int KW, int stride,
                          int pad, int OH, int OW, float *in);
void KFN(kern_col2im_pixel_order)(const float *col, int C, int H, int W, int KH, int KW,
                                  int stride, int pad, int OH, int OW, float *in);
void KFN(kern_pool_plane)(float *out, int32_t *argmax, const float *in, int H, int W, int K,
                          int stride, int OH, int OW, int relu);
void KFN(kern_unpool_plane)(float *din, const float *dout, const float *out,
                            const int32_t *argmax, int H, int W, int OH, int OW);
void KFN(kern_relu_forward)(float *out, const float *in, size_t n);
void KFN(kern_relu_backward)(float *din, const float *dout, const float *out, size_t n);
void KFN(kern_sum_lanes8)(float sums[8], const float *x, int n);
void KFN(kern_conv_direct)(const float *in, int C, int H, int W, int KH, int KW, int OC,
                           const float *weight, const float *bias, float *out);
void KFN(kern_fixed_acc)(float *g, int64_t *acc, size_t n, double scale, double bound,
                         float *maxabs, int64_t *over, int64_t *nonfinite);
void KFN(kern_fixed_take)(float *g, int64_t *acc, size_t n, double unscale);
void KFN(kern_gemm_tn_fixed)(int M, int N, const float *A, int lda, const float *B, int ldb,
                             const int *bounds, int ngroups, size_t ldacc, dp_fixed_block *b,
                             float *pack, size_t pack_floats);

void KFN(kern_wino_in)(const float *xt, int PW, int th, int tw, int n, float *Vt, size_t xs);
void KFN(kern_wino_out)(const float *Mt, size_t xs, int th, int tw, int n, const float *bias,
                        float *Yt, int OH, int OW);
void KFN(kern_wino_dout)(const float *dYt, int OH, int OW, int th, int tw, int n, float *dMt,
                         size_t xs);
void KFN(kern_wino_din)(const float *dVt, size_t xs, int th, int tw, int n, float *dXt, int PW);
void KFN(kern_wino_wgrad)(const float *dU, int OC, int C, int c0, int c1, float *dweight);
void KFN(kern_pool_codes)(float *g, float *code, const float *dP, const float *pooled,
                          const int32_t *argmax, int POH, int POW, int OW);
void KFN(kern_pool_wgrad3)(float *dwT, size_t ld, float *db, const float *x, int W,
                           const float *gT, const float *cT, int n, int POH, int POW);
void KFN(kern_wino_filter)(const float *g, size_t n, float *U, float *t);

#define STR2(x) #x
#define STR(x) STR2(x)

const dp_kernel_table KCAT(dp_kernels, DP_ISA_SUFFIX) = {
    .name = STR(DP_ISA_SUFFIX),
    .gemm_axpy = KFN(kern_gemm_axpy),
    .gemm_nt_acc = KFN(kern_gemm_nt_acc),
    .gemm_nt_acc_lanes = KFN(kern_gemm_nt_acc_lanes),
    .dot = KFN(kern_dot),
    .im2col = KFN(kern_im2col),
    .transpose = KFN(kern_transpose),
    .row2im_acc = KFN(kern_row2im_acc),
    .col2im_acc = KFN(kern_col2im_acc),
    .col2im_pixel_order = KFN(kern_col2im_pixel_order),
    .pool_plane = KFN(kern_pool_plane),
    .unpool_plane = KFN(kern_unpool_plane),
    .relu_forward = KFN(kern_relu_forward),
    .relu_backward = KFN(kern_relu_backward),
    .sum_lanes8 = KFN(kern_sum_lanes8),
    .conv_direct = KFN(kern_conv_direct),
    .fixed_acc = KFN(kern_fixed_acc),
    .fixed_take = KFN(kern_fixed_take),
    .gemm_tn_fixed = KFN(kern_gemm_tn_fixed),
    .wino_in = KFN(kern_wino_in),
    .wino_out = KFN(kern_wino_out),
    .wino_dout = KFN(kern_wino_dout),
    .wino_din = KFN(kern_wino_din),
    .wino_wgrad = KFN(kern_wino_wgrad),
    .wino_filter = KFN(kern_wino_filter),
    .pool_codes = KFN(kern_pool_codes),
    .pool_wgrad3 = KFN(kern_pool_wgrad3),
};
