/* relu: max(x, 0) elementwise, as torch.nn.ReLU (NaN passes through). No arguments, no
 * tensors; backward reads its own output. A maxpool right after it absorbs it
 * (layer_pool.c). Otherwise it absorbs a conv right before it (conv2d_relu_*): each
 * sample's conv output is rectified while it is in cache, and in backward the conv
 * output's gradient is made from the relu's a sample at a time, sparing a pass over the
 * activation each way (nopool: 14.7 MB for conv2 at batch 100); the same bits. */
#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "layer_conv.h"

/* a conv before it: 1 */
static int absorbs(const dp_layer *L, int before)
{
    return before >= 1 && layer_is_conv(&L[-1]);
}

/* Absorbing a conv: its per-thread scratch with room for a sample's conv output gradient. */
static size_t scratch_bytes(const dp_layer *L, int B, int threads)
{
    (void)B;
    return L->absorbs == 1 ? layer_conv_fused_scratch_bytes(L - 1, threads) : 0;
}

static void forward(const dp_layer_io *io)
{
    if (io->absorbed) { /* io->in is the conv's input, its tensors io's */
        dp_conv_shape s = layer_conv_shape(io->L - 1, io->B);
        conv2d_relu_forward(io->out, layer_conv_col(io, &s, io->absorbed_work[0]), io->in,
                            io->param[0], io->param[1], io->scratch, &s);
        return;
    }
    relu_forward(io->out, io->in, (size_t)io->B * io->L->out_size);
}

static void backward(const dp_layer_io *io)
{
    if (io->absorbed) { /* the conv's weight gradient too (NULL when frozen) */
        dp_conv_shape s = layer_conv_shape(io->L - 1, io->B);
        conv2d_relu_backward(io->din, io->grad[0], io->grad[1],
                             layer_conv_col(io, &s, io->absorbed_work[0]), io->dout, io->out,
                             io->param[0], io->scratch, io->absorbed_dout[0], &s);
        return;
    }
    if (io->din)
        relu_backward(io->din, io->dout, io->out, (size_t)io->B * io->L->out_size);
}

/* Over groups: only an absorbed conv has parameter gradients to hand over by group. */
static void backward_groups(const dp_layer_io *io, const int *bounds, int ngroups)
{
    if (!io->absorbed) {
        backward(io);
        return;
    }
    dp_conv_shape s = layer_conv_shape(io->L - 1, io->B);
    conv2d_relu_backward_groups(io->din, io->grad[0], io->grad[1],
                                layer_conv_col(io, &s, io->absorbed_work[0]), io->dout, io->out,
                                io->param[0], io->scratch, io->absorbed_dout[0], &s, bounds,
                                ngroups, io->pass->move, io->pass->fixed_open,
                                io->pass->fixed_close, io->pass->done_ctx);
}

const dp_layer_kind layer_relu = {
    .name = "relu",
    .example = "relu",
    .absorbs = absorbs,
    .scratch_bytes = scratch_bytes,
    .forward = forward,
    .backward = backward,
    .backward_groups = backward_groups,
};
