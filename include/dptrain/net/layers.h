/* layers: forward and backward of every layer kind, on a batch, in NCHW layout.
 *
 * Shapes are in the argument names (B batch, C/OC channels, H/W height/width, I/O
 * features). Forward overwrites its output. Backward overwrites the input gradient
 * (`din`, may be NULL when nobody needs it, e.g. for the first layer) and ACCUMULATES
 * (+=) into parameter gradients, which the caller zeroes once per step (dweight and
 * dbias NULL: a frozen layer, no weight-gradient work). Each output
 * element is owned by one OpenMP thread and reduced in a fixed order, so results are
 * bitwise identical for any number of threads. The caller owns every buffer; nothing
 * here allocates. */
#ifndef DPTRAIN_LAYERS_H
#define DPTRAIN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* A block of a group's partial gradient, `rows` runs of `cols` floats `ld` apart from g,
 * handed over by the layer that computed it, which the callee takes and zeroes (the exact
 * sum, dist/gradsync.h). The *_backward_groups functions below call it. */
typedef void (*dp_partial_move)(void *ctx, float *g, size_t rows, size_t cols, size_t ld);
/* For a layer that makes every group's partial of a block at once and moves them into the
 * exact sum itself (gemm_tn_fixed), once per block and pass: open fills b for the block
 * starting at tensor slot g and returns 0, or returns -1 where g's tensor is not summed
 * (then the layer hands its partials to move); close hands b's maximum and counts back.
 * Both from any thread. */
typedef struct dp_fixed_block_s dp_fixed_block;
typedef int (*dp_fixed_open)(void *ctx, const float *g, dp_fixed_block *b);
typedef void (*dp_fixed_close)(void *ctx, const float *g, const dp_fixed_block *b);

typedef struct {
    int B, C, H, W;     /* input */
    int OC, KH, KW;     /* weight [OC, C, KH, KW] */
    int stride, pad;
    int OH, OW;         /* output [B, OC, OH, OW] */
} dp_conv_shape;

/* col: conv2d_col_floats(s) floats, sample-major and linear in s->B: what backward needs
 * after forward (each sample's input, or its im2col matrix: conv.c says when); sample n's
 * part starts at conv2d_col_floats of n samples. scratch: omp_get_max_threads() *
 * conv2d_scratch_floats(s) floats (that count does not depend on s->B). */
size_t conv2d_col_floats(const dp_conv_shape *s);
size_t conv2d_scratch_floats(const dp_conv_shape *s);
/* 1 when col holds each sample's input: then col may be the input itself, which forward
 * copies nothing into and backward only reads (the layers pass it so, and need no col of
 * their own); 0 when it holds the im2col matrices. */
int conv2d_col_is_input(const dp_conv_shape *s);
void conv2d_forward(float *out, float *col, const float *in, const float *weight,
                    const float *bias, float *scratch, const dp_conv_shape *s);
/* col: as conv2d_forward left it, for these s->B samples: backward over a range of the
 * forward's samples passes col, dout and din advanced to the first of them. */
void conv2d_backward(float *din, float *dweight, float *dbias, float *col, const float *dout,
                     const float *weight, float *scratch, const dp_conv_shape *s);
/* conv2d_backward over groups of the s->B samples, group g being [bounds[g] - bounds[0],
 * bounds[g + 1] - bounds[0]): each group's weight and bias gradients (dweight and dbias
 * zero, not NULL) handed to move before the next group's are made, then the input gradient
 * of all the samples at once: the bits of conv2d_backward group by group. With open and
 * close (NULL: not used), several threads and at least as many groups, each thread instead
 * makes whole groups' partials, a contiguous run of groups, each as conv2d_backward makes
 * it, and moves them into a fixed-point sum of its own with the block's scale and bound;
 * the threads' sums are then added into the block. The integer sums are exact, so the
 * block holds what the moves would have left there; each thread reads only its own
 * groups' samples (on a machine whose cores share data slowly, the threads' reading each
 * other's activations cost more than the work: bench/core_pairs). */
void conv2d_backward_groups(float *din, float *dweight, float *dbias, float *col,
                            const float *dout, const float *weight, float *scratch,
                            const dp_conv_shape *s, const int *bounds, int ngroups,
                            dp_partial_move move, dp_fixed_open open, dp_fixed_close close,
                            void *ctx);

/* conv2d, relu and max pooling in one pass: each sample's conv output stays in the
 * thread's scratch and only the pooled output and its argmax are written (backward makes
 * the conv output's gradient a sample at a time likewise), sparing the memory traffic of
 * the largest activation. The same bits as conv2d_forward then relu_maxpool_forward, and
 * relu_maxpool_backward then conv2d_backward. out, argmax, dout: [B, OC, pool->OH,
 * pool->OW]; col as for conv2d_forward and conv2d_backward (a range of samples likewise);
 * scratch: omp_get_max_threads() * conv2d_pool_scratch_floats(s) floats;
 * dconv: NULL, or [B, OC, s->OH, s->OW] where backward may make the conv output's gradient
 * when every thread would otherwise make all of it again. */
/* conv2d and relu in one pass: each sample's conv output is rectified in place while it is
 * in cache, and backward makes the conv output's gradient from the relu's a sample at a
 * time; the same bits as conv2d_forward then relu_forward, and relu_backward then
 * conv2d_backward. out, dout: the relu's [B, OC, OH, OW]; scratch: omp_get_max_threads()
 * * conv2d_pool_scratch_floats(s) floats; dconv as for conv2d_relu_maxpool_backward. */
void conv2d_relu_forward(float *out, float *col, const float *in, const float *weight,
                         const float *bias, float *scratch, const dp_conv_shape *s);
void conv2d_relu_backward(float *din, float *dweight, float *dbias, float *col,
                          const float *dout, const float *out, const float *weight,
                          float *scratch, float *dconv, const dp_conv_shape *s);
/* Its backward over groups, as conv2d_backward_groups. */
void conv2d_relu_backward_groups(float *din, float *dweight, float *dbias, float *col,
                                 const float *dout, const float *out, const float *weight,
                                 float *scratch, float *dconv, const dp_conv_shape *s,
                                 const int *bounds, int ngroups, dp_partial_move move,
                                 dp_fixed_open open, dp_fixed_close close, void *ctx);

typedef struct {
    int K, stride; /* window and stride, no padding */
    int OH, OW;    /* output */
} dp_pool_shape;
size_t conv2d_pool_scratch_floats(const dp_conv_shape *s);
void conv2d_relu_maxpool_forward(float *out, int32_t *argmax, float *col, const float *in,
                                 const float *weight, const float *bias, float *scratch,
                                 const dp_conv_shape *s, const dp_pool_shape *pool);
void conv2d_relu_maxpool_backward(float *din, float *dweight, float *dbias, float *col,
                                  const float *dout, const float *out, const int32_t *argmax,
                                  const float *weight, float *scratch, float *dconv,
                                  const dp_conv_shape *s, const dp_pool_shape *pool);
/* Its backward over groups, as conv2d_backward_groups. */
void conv2d_relu_maxpool_backward_groups(float *din, float *dweight, float *dbias, float *col,
                                         const float *dout, const float *out,
                                         const int32_t *argmax, const float *weight,
                                         float *scratch, float *dconv, const dp_conv_shape *s,
                                         const dp_pool_shape *pool, const int *bounds,
                                         int ngroups, dp_partial_move move, dp_fixed_open open,
                                         dp_fixed_close close, void *ctx);

/* Max pooling with a KxK window and stride, no padding; argmax [B, C, OH, OW] holds the
 * index inside the input plane of the first maximum (NaN wins, as in PyTorch). */
void maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                     int K, int stride, int OH, int OW);
void maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int C, int H,
                      int W, int OH, int OW);

/* maxpool(relu(x)) in one pass, as relu(maxpool(x)): the same values and gradients as
 * the two layers in a row, bit for bit. Backward needs the forward output. */
void relu_maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                          int K, int stride, int OH, int OW);
void relu_maxpool_backward(float *din, const float *dout, const float *out, const int32_t *argmax,
                           int B, int C, int H, int W, int OH, int OW);

/* max(x, 0); NaN passes through, as in PyTorch. */
void relu_forward(float *out, const float *in, size_t n);
/* Gradient passes where the forward output was > 0 (PyTorch's threshold_backward). */
void relu_backward(float *din, const float *dout, const float *out, size_t n);

/* in [B, I], weight [O, I] (PyTorch layout), bias [O], out [B, O]; lanes (forward) and
 * scratch (backward): NULL or linear_scratch_floats(B, I, O, threads) floats, which lets
 * long rows be worked on in cache-sized blocks (same bits) and holds the packed operands
 * of --precision bf16 (isa.h; sized for the precision in use). With NULL the products are
 * fp32 whatever the precision. */
size_t linear_scratch_floats(int B, int I, int O, int threads);
void linear_forward(float *out, const float *in, const float *weight, const float *bias, int B,
                    int I, int O, float *lanes);
void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, int B, int I, int O, float *scratch);
/* linear_backward over groups of the B samples, group g being [bounds[g] - bounds[0],
 * bounds[g + 1] - bounds[0]), each group's parameter gradients handed to
 * move(ctx, g, rows, cols, ld) (which takes and zeroes them) before the next group's are
 * made: the bits of linear_backward group by group with the partials taken in between,
 * made a tile of dweight at a time for every group while the tile is in cache. With open
 * and close (may be NULL) and fp32 products, the weight gradient's partials go into the
 * exact sum in registers instead (gemm_tn_fixed), none of them written to dweight: the
 * same sum. dweight and dbias must be zero. */
void linear_backward_groups(float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, int B, int I, int O,
                            float *scratch, const int *bounds, int ngroups,
                            dp_partial_move move, dp_fixed_open open, dp_fixed_close close,
                            void *ctx);

/* Softmax cross-entropy over NC classes; every label must be < NC (the caller checks the
 * data; debug and sanitizer builds assert it here). Returns the SUM of per-sample losses; when
 * dlogits is not NULL writes (softmax - onehot) * scale, computed in double and rounded to
 * float once: the per-sample gradient of the loss times scale (1/B for the mean over a
 * global batch of B). *correct counts samples whose first maximal logit is the label. */
double softmax_xent(float *dlogits, int *correct, const float *logits, const uint8_t *labels,
                    int B, int NC, double scale);

#endif
