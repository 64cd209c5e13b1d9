#include "dptrain/net/layers.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "dptrain/net/kernels.h"
#include "kernel_table.h"
#include "thread_split.h"

static void pool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                         int K, int stride, int OH, int OW, int relu)
{
    const dp_kernel_table *kt = dp_kernels();
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B * C, &lo, &hi);
        for (int plane = lo; plane < hi; plane++)
            kt->pool_plane(out + (size_t)plane * OH * OW, argmax + (size_t)plane * OH * OW,
                           in + (size_t)plane * H * W, H, W, K, stride, OH, OW, relu);
    }
}

static void pool_backward(float *din, const float *dout, const float *out, const int32_t *argmax,
                          int B, int C, int H, int W, int OH, int OW)
{
    const dp_kernel_table *kt = dp_kernels();
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B * C, &lo, &hi);
        for (int plane = lo; plane < hi; plane++)
            kt->unpool_plane(din + (size_t)plane * H * W, dout + (size_t)plane * OH * OW,
                             out ? out + (size_t)plane * OH * OW : NULL,
                             argmax + (size_t)plane * OH * OW, H, W, OH, OW);
    }
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                     int K, int stride, int OH, int OW)
{
    pool_forward(out, argmax, in, B, C, H, W, K, stride, OH, OW, 0);
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int C, int H,
                      int W, int OH, int OW)
{
    pool_backward(din, dout, NULL, argmax, B, C, H, W, OH, OW);
}

void relu_maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C, int H, int W,
                          int K, int stride, int OH, int OW)
{
    pool_forward(out, argmax, in, B, C, H, W, K, stride, OH, OW, 1);
}

void relu_maxpool_backward(float *din, const float *dout, const float *out, const int32_t *argmax,
                           int B, int C, int H, int W, int OH, int OW)
{
    pool_backward(din, dout, out, argmax, B, C, H, W, OH, OW);
}

/* Blocks of whole cache lines per thread: the split changes no value. */
#define RELU_BLOCK 4096

void relu_forward(float *out, const float *in, size_t n)
{
    const dp_kernel_table *kt = dp_kernels();
    const long blocks = (long)((n + RELU_BLOCK - 1) / RELU_BLOCK);
    #pragma omp parallel
    {
        int lo, hi;
        thread_range((int)blocks, &lo, &hi);
        for (long b = lo; b < hi; b++) {
            size_t at = (size_t)b * RELU_BLOCK, len = n - at < RELU_BLOCK ? n - at : RELU_BLOCK;
            kt->relu_forward(out + at, in + at, len);
        }
    }
}

void relu_backward(float *din, const float *dout, const float *out, size_t n)
{
    const dp_kernel_table *kt = dp_kernels();
    const long blocks = (long)((n + RELU_BLOCK - 1) / RELU_BLOCK);
    #pragma omp parallel
    {
        int lo, hi;
        thread_range((int)blocks, &lo, &hi);
        for (long b = lo; b < hi; b++) {
            size_t at = (size_t)b * RELU_BLOCK, len = n - at < RELU_BLOCK ? n - at : RELU_BLOCK;
            kt->relu_backward(din + at, dout + at, out + at, len);
        }
    }
}

/* The weight gradient of the groups where it is not summed in registers (gemm_tn_fixed,
 * with the pass's fixed hooks and fp32: the trainer's way; the rest is bf16, and callers
 * that only hand partials to move), a block of dweight at a time through all the groups:
 * FC_TILE_COLS columns by FC_L1_ROWS rows (one row tile of the product) in fp32, so that
 * the block's float partial (12 KB) and its int64 sums (24 KB) stay in L1 across the
 * groups and only the inputs come from L2 again for each block. Before (2026-12-04) a
 * block was all of a thread's rows, which went to L2 and back once per group, 24 bytes per
 * element per group. Measured on Emerald Rapids, 1 thread, alternating: nopool's step
 * 136-139 ms against 149-154; 6 x 256 and 12 x 128/256 in between. bf16 keeps all the
 * thread's rows, whose packed operands would otherwise be made again for every block
 * (MNIST's nopool, 64 rows per thread: 128 KB + 256 KB + 100 samples x 2 KB in cache).
 * The blocking changes no chain. (Both tunable from the command line for experiments.) */
#ifndef FC_L1_ROWS
#define FC_L1_ROWS 6
#endif
#ifndef FC_TILE_COLS
#define FC_TILE_COLS 512
#endif

/* --precision bf16 (isa.h): the three products on bf16 pairs (kern_bf16.c), each element
 * one chain in a fixed order as in fp32. After the fp32 lanes the scratch holds the packed
 * weights (forward: [I2][O], pairs along the inputs; input gradient: [O2][I], pairs along
 * the outputs), the packed activations shared by the threads (forward: in [B][I2]; input
 * gradient: dout [B][O2]; weight gradient without groups: dout [B2][O] and in [B2][I]),
 * then each thread's packed group (its dout [G2][O] and in [G2][tile columns]). */
static size_t bf16_weight_floats(int I, int O)
{
    const size_t a = (size_t)(I + 1) / 2 * O, b = (size_t)(O + 1) / 2 * I;
    return dp_bf16() ? (a > b ? a : b) : 0;
}

static size_t bf16_shared_floats(int B, int I, int O)
{
    const size_t B2 = (size_t)(B + 1) / 2, fwd = (size_t)B * ((I + 1) / 2);
    const size_t dgrad = (size_t)B * ((O + 1) / 2), wgrad = B2 * ((size_t)O + I);
    const size_t most = fwd > dgrad ? fwd : dgrad;
    return dp_bf16() ? (most > wgrad ? most : wgrad) : 0;
}

static size_t bf16_thread_floats(int B, int O)
{
    return dp_bf16() ? (size_t)(B + 1) / 2 * ((size_t)O + FC_TILE_COLS) : 0;
}

static size_t lanes_floats(int B, int O, int threads)
{
    return (size_t)B * O * 8 + (size_t)threads * gemm_nt_pack_floats(B, O);
}

/* The calling thread's pack area in the lanes scratch, after the lanes of all B samples:
 * the forward's products use it, and the fused weight gradient (before the input
 * gradient's products, in another parallel region). */
static float *thread_pack(float *lanes, int B, int O)
{
    return lanes + (size_t)B * O * 8 + (size_t)omp_get_thread_num() * gemm_nt_pack_floats(B, O);
}

size_t linear_scratch_floats(int B, int I, int O, int threads)
{
    return lanes_floats(B, O, threads) + bf16_weight_floats(I, O) +
           bf16_shared_floats(B, I, O) + (size_t)threads * bf16_thread_floats(B, O);
}

/* The parts of the scratch (NULL: none, fp32) for bf16, and the table, or NULL: fp32. */
typedef struct {
    const dp_bf16_table *bf;
    uint32_t *weights, *shared, *threads;
} fc_pairs;

static fc_pairs fc_pairs_of(float *scratch, int B, int I, int O)
{
    fc_pairs p = {dp_bf16(), NULL, NULL, NULL};
    if (!p.bf || !scratch) {
        p.bf = NULL;
        return p;
    }
    float *at = scratch + lanes_floats(B, O, omp_get_max_threads());
    p.weights = (uint32_t *)at;
    p.shared = (uint32_t *)(at + bf16_weight_floats(I, O));
    p.threads = (uint32_t *)(at + bf16_weight_floats(I, O) + bf16_shared_floats(B, I, O));
    return p;
}

/* out[n, o] = bias[o] + sum_i in[n, i] weight[o, i], in pairs of i. */
static void linear_forward_bf16(float *out, const float *in, const float *weight,
                                const float *bias, int B, int I, int O, const fc_pairs *p)
{
    const int I2 = (I + 1) / 2;
    p->bf->pack_rows_t(weight, O, I, (size_t)I, p->weights, (size_t)O);
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B, &lo, &hi);
        uint32_t *a = p->shared + (size_t)lo * I2;
        p->bf->pack_rows(in + (size_t)lo * I, hi - lo, I, (size_t)I, a, (size_t)I2);
        for (int n = lo; n < hi; n++) /* each chain starts from its output's bias */
            memcpy(out + (size_t)n * O, bias, sizeof(float) * O);
        p->bf->gemm(hi - lo, O, I2, a, (size_t)I2, 1, p->weights, O, out + (size_t)lo * O, O,
                    GEMM_ACC, NULL);
    }
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias, int B,
                    int I, int O, float *lanes)
{
    const fc_pairs pairs = fc_pairs_of(lanes, B, I, O);
    if (pairs.bf) {
        linear_forward_bf16(out, in, weight, bias, B, I, O, &pairs);
        return;
    }
    /* Blocks of samples per thread; each element's dot product is blocking-independent. */
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(B, &lo, &hi);
        for (int n = lo; n < hi; n++)
            for (int o = 0; o < O; o++)
                out[(size_t)n * O + o] = bias[o];
        if (lanes)
            gemm_nt_acc_lanes(hi - lo, O, I, in + (size_t)lo * I, I, weight, I,
                              out + (size_t)lo * O, O, lanes + (size_t)lo * O * 8,
                              thread_pack(lanes, B, O));
        else
            gemm_nt_acc(hi - lo, O, I, in + (size_t)lo * I, I, weight, I, out + (size_t)lo * O, O);
    }
}


/* The bias gradient of samples [n0, n1), rows [lo, hi): the sum in sample order. */
static void bias_partial(float *dbias, const float *dout, int n0, int n1, int O, int lo, int hi)
{
    for (int o = lo; o < hi; o++) {
        float acc = 0.0f;
        for (int n = n0; n < n1; n++)
            acc += dout[(size_t)n * O + o];
        dbias[o] += acc;
    }
}

/* din[B, I] = dout[B, O] weight[O, I]: each element's chain is its own, so any split of
 * din gives the same bits. fp32 with long rows (nopool's fc1: 36864) by blocks of columns,
 * so that each thread packs and reads only its part of the weights, not all of them for
 * its samples; else rows by thread. */
enum { FC_DIN_COLUMNS_MIN = 1024, FC_DIN_COLUMN_BLOCK = 64 };

static void linear_input_grad(float *din, const float *dout, const float *weight, int B, int I,
                              int O, const fc_pairs *p)
{
    const int O2 = (O + 1) / 2;
    if (p->bf) /* pairs of outputs: of weight's rows, and along each row of dout */
        p->bf->pack_cols(weight, O, I, (size_t)I, p->weights, (size_t)I);
    #pragma omp parallel
    {
        int lo, hi;
        if (p->bf) {
            thread_range(B, &lo, &hi);
            uint32_t *a = p->shared + (size_t)lo * O2;
            p->bf->pack_rows(dout + (size_t)lo * O, hi - lo, O, (size_t)O, a, (size_t)O2);
            p->bf->gemm(hi - lo, I, O2, a, (size_t)O2, 1, p->weights, I, din + (size_t)lo * I, I,
                        GEMM_ZERO, NULL);
        } else if (I >= FC_DIN_COLUMNS_MIN) {
            thread_blocks(I, FC_DIN_COLUMN_BLOCK, &lo, &hi);
            if (lo < hi)
                gemm_nn(B, hi - lo, O, dout, O, weight + lo, I, din + lo, I);
        } else {
            thread_range(B, &lo, &hi);
            gemm_nn(hi - lo, I, O, dout + (size_t)lo * O, O, weight, I, din + (size_t)lo * I, I);
        }
    }
}

/* tile[o - lo, i - i0] (start: GEMM_ZERO or GEMM_ACC) += sum over samples [n0, n1) of
 * dout[n, o] in[n, i], for o in [lo, hi), i in [i0, i0 + cols): fp32 in sample order, or
 * bf16 in pairs of samples packed in buf. */
static void weight_grad_block(float *tile, const float *dout, const float *in, int n0, int n1,
                              int I, int O, int lo, int hi, int i0, int cols, int start,
                              const dp_bf16_table *bf, uint32_t *buf)
{
    const float *d = dout + (size_t)n0 * O + lo, *x = in + (size_t)n0 * I + i0;
    if (!bf) {
        if (start == GEMM_ACC)
            gemm_tn_acc(hi - lo, cols, n1 - n0, d, O, x, I, tile, I);
        else
            gemm_tn(hi - lo, cols, n1 - n0, d, O, x, I, tile, I);
        return;
    }
    const int rows = hi - lo, G2 = (n1 - n0 + 1) / 2;
    uint32_t *dp = buf, *xp = buf + (size_t)G2 * rows;
    bf->pack_cols(d, n1 - n0, rows, (size_t)O, dp, (size_t)rows);
    bf->pack_cols(x, n1 - n0, cols, (size_t)I, xp, (size_t)cols);
    bf->gemm(rows, cols, G2, dp, 1, (size_t)rows, xp, cols, tile, I, start, NULL);
}

void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, int B, int I, int O, float *scratch)
{
    const fc_pairs p = fc_pairs_of(scratch, B, I, O);
    #pragma omp parallel if (dweight)
    if (dweight) { /* NULL: a frozen layer, only din wanted */
        int lo, hi;
        thread_range(O, &lo, &hi);
        uint32_t *buf = p.bf ? p.threads + (size_t)omp_get_thread_num() * bf16_thread_floats(B, O)
                             : NULL;
        /* dweight[o, :] += sum_n dout[n, o] * in[n, :], in sample order (bf16: a tile of
         * columns at a time, which changes no chain) */
        const int step = p.bf ? FC_TILE_COLS : I;
        for (int i0 = 0; lo < hi && i0 < I; i0 += step)
            weight_grad_block(dweight + (size_t)lo * I + i0, dout, in, 0, B, I, O, lo, hi, i0,
                              I - i0 < step ? I - i0 : step, GEMM_ACC, p.bf, buf);
        bias_partial(dbias, dout, 0, B, O, lo, hi);
    }
    if (din)
        linear_input_grad(din, dout, weight, B, I, O, &p);
}

/* The moves' way for rows [r_lo, r_hi) by columns [c_lo, c_hi) of dweight: a block at a
 * time through all the groups, each group's chain from zero, moved into the sum. */
static void moved_region(float *dweight, const float *dout, const float *in, int I, int O,
                         int r_lo, int r_hi, int c_lo, int c_hi, const int *bounds, int ngroups,
                         dp_partial_move move, void *ctx, const dp_bf16_table *bf,
                         uint32_t *buf)
{
    const int block_rows = bf ? r_hi - r_lo : FC_L1_ROWS; /* the header of FC_L1_ROWS */
    for (int i0 = c_lo; r_lo < r_hi && i0 < c_hi; i0 += FC_TILE_COLS) {
        const int cols = c_hi - i0 < FC_TILE_COLS ? c_hi - i0 : FC_TILE_COLS;
        for (int r0 = r_lo; r0 < r_hi; r0 += block_rows) {
            const int r1 = r_hi - r0 < block_rows ? r_hi : r0 + block_rows;
            float *tile = dweight + (size_t)r0 * I + i0;
            for (int g = 0; g < ngroups; g++) {
                const int n0 = bounds[g] - bounds[0], n1 = bounds[g + 1] - bounds[0];
                /* the chain of linear_backward on this group, from zero, without reading
                 * the tile */
                weight_grad_block(tile, dout, in, n0, n1, I, O, r0, r1, i0, cols, GEMM_ZERO, bf,
                                  buf);
                move(ctx, tile, (size_t)(r1 - r0), (size_t)cols, (size_t)I);
            }
        }
    }
}

/* With the exact sum's hooks (fp32), each thread takes a run of whole column blocks of
 * dweight over every row, so that it reads and packs only its own columns of the inputs
 * (nopool's fc1: 7.4 of 14.7 MB each at 2 threads, where a split by rows had every thread
 * pack all of them); the bounds are multiples of FC_FUSED_ALIGN columns. Without them,
 * the moves take the rows by thread. Neither split changes a chain. */
#define FC_FUSED_ALIGN 32

void linear_backward_groups(float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, int B, int I, int O,
                            float *scratch, const int *bounds, int ngroups,
                            dp_partial_move move, dp_fixed_open open, dp_fixed_close close,
                            void *ctx)
{
    const fc_pairs p = fc_pairs_of(scratch, B, I, O);
    dp_fixed_block probe;
    const int fused = dweight && !p.bf && open && close && open(ctx, dweight, &probe) == 0;
    #pragma omp parallel if (dweight)
    if (dweight) {
        int lo, hi;
        thread_range(O, &lo, &hi);
        uint32_t *buf = p.bf ? p.threads + (size_t)omp_get_thread_num() * bf16_thread_floats(B, O)
                             : NULL;
        if (fused) { /* every group's partials straight into the exact sum */
            int c0, c1;
            thread_blocks(I, FC_FUSED_ALIGN, &c0, &c1);
            dp_fixed_block blk;
            if (c0 < c1 && open(ctx, dweight + c0, &blk) == 0) {
                gemm_tn_fixed(O, c1 - c0, dout, O, in + c0, I, bounds, ngroups, (size_t)I, &blk,
                              scratch ? thread_pack(scratch, B, O) : NULL,
                              scratch ? gemm_nt_pack_floats(B, O) : 0);
                close(ctx, dweight + c0, &blk);
            } else if (c0 < c1) { /* not the tensor the whole opened in: moved instead */
                moved_region(dweight, dout, in, I, O, 0, O, c0, c1, bounds, ngroups, move, ctx,
                             NULL, NULL);
            }
        } else {
            moved_region(dweight, dout, in, I, O, lo, hi, 0, I, bounds, ngroups, move, ctx, p.bf,
                         buf);
        }
        for (int g = 0; lo < hi && g < ngroups; g++) {
            bias_partial(dbias, dout, bounds[g] - bounds[0], bounds[g + 1] - bounds[0], O, lo, hi);
            move(ctx, dbias + lo, 1, (size_t)(hi - lo), 0);
        }
    }
    if (din)
        linear_input_grad(din, dout, weight, B, I, O, &p);
}

double softmax_xent(float *dlogits, int *correct, const float *logits, const uint8_t *labels,
                    int B, int NC, double scale)
{
    double loss = 0.0;
    int right = 0;
    for (int n = 0; n < B; n++) {
        const float *z = logits + (size_t)n * NC;
        int y = labels[n];
        /* The driver refuses such data with a message; this catches a caller that did not
         * check (debug and sanitizer builds) before z[y] reads past the logits. */
        assert(y < NC && "softmax_xent: a label is not below the number of classes");
        float zmax = z[0];
        int arg = 0;
        for (int k = 1; k < NC; k++)
            if (z[k] > zmax) {
                zmax = z[k];
                arg = k;
            }
        double sum = 0.0;
        for (int k = 0; k < NC; k++)
            sum += exp((double)z[k] - zmax);
        double logsum = log(sum) + zmax;
        loss += logsum - z[y];
        right += (arg == y);
        if (dlogits) {
            float *g = dlogits + (size_t)n * NC;
            for (int k = 0; k < NC; k++) /* in double, one rounding to float */
                g[k] = (float)((exp((double)z[k] - logsum) - (k == y ? 1.0 : 0.0)) * scale);
        }
    }
    if (correct)
        *correct = right;
    return loss;
}
