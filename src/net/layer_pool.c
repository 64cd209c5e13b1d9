/* maxpool(KERNEL, stride=KERNEL), aliases pool, maxpool2d: max pooling over KxK windows
 * without padding, as torch.nn.MaxPool2d(KERNEL, stride) (the first maximum wins; NaN
 * wins). Arguments may be named: kernel (k), stride (s). Keeps the argmax of each window
 * from forward to backward. A relu right before it is absorbed: maxpool(relu(x)) is
 * computed as relu(maxpool(x)) in one pass, the same values and gradients, bit for bit,
 * with one pass over memory fewer. A conv right before that relu is absorbed too
 * (conv2d_relu_maxpool_*): each sample's conv output, and in backward its gradient, stays
 * in the thread's scratch, sparing the largest activation's trip through memory
 * (reference conv1: 8.6 MB each way at batch 100); again the same bits, but for a conv
 * of one channel, 3x3, under 2x2 pooling, whose weight gradient comes straight from the
 * pooled gradient (conv_pooled.c: a term per window, not four). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "layer_conv.h"

enum { KERNEL, STRIDE };

static const dp_layer_arg args[] = {
    [KERNEL] = {.name = "kernel", .aliases = {"k"}, .required = 1, .lo = 1, .hi = DP_ARG_MAX},
    [STRIDE] = {.name = "stride", .aliases = {"s"}, .def_from = "kernel", .lo = 1,
                .hi = DP_ARG_MAX, .named = 1},
};

static int shape(dp_layer *L, const dp_model *m, int i, dp_err *err)
{
    (void)m;
    const int K = (int)L->arg[KERNEL], S = (int)L->arg[STRIDE];
    if (L->in_h < K || L->in_w < K)
        return dp_fail(err, "layer %d %s: maxpool kernel %dx%d does not fit its %dx%d input "
                            "(padding 0)", i + 1, L->text, K, K, L->in_h, L->in_w);
    L->out_h = (L->in_h - K) / S + 1;
    L->out_w = (L->in_w - K) / S + 1;
    return 0;
}

static void describe(const dp_layer *L, char *buf, size_t len)
{
    snprintf(buf, len, "maxpool(%d)", (int)L->arg[KERNEL]);
}

/* relu before it: 1; conv and relu: 2. */
static int absorbs(const dp_layer *L, int before)
{
    if (before < 1 || strcmp(L[-1].kind->name, "relu") != 0)
        return 0;
    return before >= 2 && layer_is_conv(&L[-2]) ? 2 : 1;
}

static dp_pool_shape pool_shape(const dp_layer *L)
{
    dp_pool_shape p = {(int)L->arg[KERNEL], (int)L->arg[STRIDE], L->out_h, L->out_w};
    return p;
}

/* Absorbing a conv: its per-thread scratch with room for a sample's conv output. */
static size_t scratch_bytes(const dp_layer *L, int B, int threads)
{
    (void)B;
    return L->absorbs == 2 ? layer_conv_fused_scratch_bytes(L - 2, threads) : 0;
}

static size_t work_bytes(const dp_layer *L, int B)
{
    return (size_t)B * L->out_size * sizeof(int32_t);
}

/* conv, relu and maxpool: io->in is the conv's input, its tensors io's; its work (col)
 * and output gradient (room for the conv output's gradient) are the first absorbed. */
static void conv_relu_forward(const dp_layer_io *io)
{
    dp_conv_shape s = layer_conv_shape(io->L - 2, io->B);
    dp_pool_shape p = pool_shape(io->L);
    float *col = layer_conv_col(io, &s, io->absorbed_work[0]);
    conv2d_relu_maxpool_forward(io->out, io->work, col, io->in, io->param[0], io->param[1],
                                io->scratch, &s, &p);
}

static void conv_relu_backward(const dp_layer_io *io)
{
    dp_conv_shape s = layer_conv_shape(io->L - 2, io->B);
    dp_pool_shape p = pool_shape(io->L);
    float *col = layer_conv_col(io, &s, io->absorbed_work[0]);
    conv2d_relu_maxpool_backward(io->din, io->grad[0], io->grad[1], col, io->dout, io->out,
                                 io->work, io->param[0], io->scratch, io->absorbed_dout[0], &s,
                                 &p);
}

static void forward(const dp_layer_io *io)
{
    const dp_layer *L = io->L;
    if (io->absorbed == 2)
        conv_relu_forward(io);
    else if (io->absorbed) /* io->in is the relu's input */
        relu_maxpool_forward(io->out, io->work, io->in, io->B, L->in_c, L->in_h, L->in_w,
                             (int)L->arg[KERNEL], (int)L->arg[STRIDE], L->out_h, L->out_w);
    else
        maxpool_forward(io->out, io->work, io->in, io->B, L->in_c, L->in_h, L->in_w,
                        (int)L->arg[KERNEL], (int)L->arg[STRIDE], L->out_h, L->out_w);
}

static void backward(const dp_layer_io *io)
{
    const dp_layer *L = io->L;
    if (io->absorbed == 2) /* the conv's weight gradient too (NULL when frozen) */
        conv_relu_backward(io);
    if (io->absorbed == 2 || !io->din)
        return;
    if (io->absorbed) /* straight to the gradient of the relu's input */
        relu_maxpool_backward(io->din, io->dout, io->out, io->work, io->B, L->in_c, L->in_h,
                              L->in_w, L->out_h, L->out_w);
    else
        maxpool_backward(io->din, io->dout, io->work, io->B, L->in_c, L->in_h, L->in_w, L->out_h,
                         L->out_w);
}

/* Over groups: only an absorbed conv has parameter gradients to hand over by group. */
static void backward_groups(const dp_layer_io *io, const int *bounds, int ngroups)
{
    if (io->absorbed != 2) {
        backward(io);
        return;
    }
    dp_conv_shape s = layer_conv_shape(io->L - 2, io->B);
    dp_pool_shape p = pool_shape(io->L);
    float *col = layer_conv_col(io, &s, io->absorbed_work[0]);
    conv2d_relu_maxpool_backward_groups(io->din, io->grad[0], io->grad[1], col, io->dout,
                                        io->out, io->work, io->param[0], io->scratch,
                                        io->absorbed_dout[0], &s, &p, bounds, ngroups,
                                        io->pass->move, io->pass->fixed_open,
                                        io->pass->fixed_close, io->pass->done_ctx);
}

const dp_layer_kind layer_maxpool = {
    .name = "maxpool",
    .aliases = {"pool", "maxpool2d"},
    .example = "maxpool(2)",
    .args = args,
    .nargs = 2,
    .spatial = 1,
    .shape = shape,
    .describe = describe,
    .absorbs = absorbs,
    .work_bytes = work_bytes,
    .scratch_bytes = scratch_bytes,
    .forward = forward,
    .backward = backward,
    .backward_groups = backward_groups,
};
