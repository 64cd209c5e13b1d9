/* conv(OUT, KERNEL, stride=1, pad=0), alias conv2d: 2-D convolution with a square kernel,
 * as torch.nn.Conv2d(in, OUT, KERNEL, stride, pad). Arguments may be named: out
 * (channels), kernel (k), stride (s), pad (padding, p). Tensors: weight [OUT, in, K, K],
 * bias [OUT]. Keeps its input (or, when smaller, its im2col matrix) from forward to
 * backward; both passes work in a per-thread scratch. A maxpool after conv and relu does
 * all three in one pass (layer_pool.c). */
#include <stdio.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "layer_conv.h"

enum { OUT, KERNEL, STRIDE, PAD };

static const dp_layer_arg args[] = {
    [OUT] = {.name = "out", .aliases = {"channels"}, .required = 1, .lo = 1, .hi = DP_ARG_MAX},
    [KERNEL] = {.name = "kernel", .aliases = {"k"}, .required = 1, .lo = 1, .hi = DP_ARG_MAX},
    [STRIDE] = {.name = "stride", .aliases = {"s"}, .def = 1, .lo = 1, .hi = DP_ARG_MAX,
                .named = 1},
    [PAD] = {.name = "pad", .aliases = {"padding", "p"}, .def = 0, .lo = 0, .hi = DP_ARG_MAX,
             .named = 1},
};

dp_conv_shape layer_conv_shape(const dp_layer *L, int B)
{
    const int K = (int)L->arg[KERNEL];
    dp_conv_shape s = {B,         L->in_c, L->in_h, L->in_w, L->out_c, K, K, (int)L->arg[STRIDE],
                       (int)L->arg[PAD], L->out_h, L->out_w};
    return s;
}

static int shape(dp_layer *L, const dp_model *m, int i, dp_err *err)
{
    (void)m;
    const int K = (int)L->arg[KERNEL], S = (int)L->arg[STRIDE], P = (int)L->arg[PAD];
    if (L->in_h + 2 * P < K || L->in_w + 2 * P < K)
        return dp_fail(err, "layer %d %s: conv kernel %dx%d does not fit its %dx%d input "
                            "(padding %d)", i + 1, L->text, K, K, L->in_h, L->in_w, P);
    L->out_c = (int)L->arg[OUT];
    L->out_h = (L->in_h + 2 * P - K) / S + 1;
    L->out_w = (L->in_w + 2 * P - K) / S + 1;
    return 0;
}

static int tensors(const dp_layer *L, dp_tensor_desc t[DP_LAYER_MAX_TENSORS])
{
    const int K = (int)L->arg[KERNEL];
    t[0] = (dp_tensor_desc){"weight", 4, {L->out_c, L->in_c, K, K}, 0, 0.0f, 1};
    t[1] = (dp_tensor_desc){"bias", 1, {L->out_c}, 0, 0.0f, 1};
    return 2;
}

static void describe(const dp_layer *L, char *buf, size_t len)
{
    const int K = (int)L->arg[KERNEL];
    snprintf(buf, len, "%s(%d->%d, %dx%d%s%s)", L->name, L->in_c, L->out_c, K, K,
             L->arg[STRIDE] != 1 ? ", stride" : "", L->arg[PAD] != 0 ? ", pad" : "");
}

static size_t work_bytes(const dp_layer *L, int B)
{
    dp_conv_shape s = layer_conv_shape(L, B);
    return conv2d_col_is_input(&s) ? 0 : conv2d_col_floats(&s) * sizeof(float);
}

/* What backward reads of forward: the layer's input itself, which stays in the workspace
 * until then (copied, it cost 1.3% of the reference step), or the im2col matrices in the
 * layer's work. Only read when it is the input (layers.h). */
float *layer_conv_col(const dp_layer_io *io, const dp_conv_shape *s, void *work)
{
    return conv2d_col_is_input(s) ? (float *)io->in : work;
}

static size_t scratch_bytes(const dp_layer *L, int B, int threads)
{
    (void)B;
    dp_conv_shape s = layer_conv_shape(L, 1);
    return conv2d_scratch_floats(&s) * sizeof(float) * (size_t)threads;
}

size_t layer_conv_fused_scratch_bytes(const dp_layer *L, int threads)
{
    dp_conv_shape s = layer_conv_shape(L, 1);
    return conv2d_pool_scratch_floats(&s) * sizeof(float) * (size_t)threads;
}

static void forward(const dp_layer_io *io)
{
    dp_conv_shape s = layer_conv_shape(io->L, io->B);
    conv2d_forward(io->out, layer_conv_col(io, &s, io->work), io->in, io->param[0],
                   io->param[1], io->scratch, &s);
}

static void backward(const dp_layer_io *io)
{
    dp_conv_shape s = layer_conv_shape(io->L, io->B);
    conv2d_backward(io->din, io->grad[0], io->grad[1], layer_conv_col(io, &s, io->work),
                    io->dout, io->param[0], io->scratch, &s);
}

static void backward_groups(const dp_layer_io *io, const int *bounds, int ngroups)
{
    dp_conv_shape s = layer_conv_shape(io->L, io->B);
    conv2d_backward_groups(io->din, io->grad[0], io->grad[1], layer_conv_col(io, &s, io->work),
                           io->dout, io->param[0], io->scratch, &s, bounds, ngroups,
                           io->pass->move, io->pass->fixed_open, io->pass->fixed_close,
                           io->pass->done_ctx);
}

const dp_layer_kind layer_conv = {
    .name = "conv",
    .aliases = {"conv2d"},
    .example = "conv(32,3)",
    .args = args,
    .nargs = 4,
    .spatial = 1,
    .shape = shape,
    .tensors = tensors,
    .describe = describe,
    .work_bytes = work_bytes,
    .scratch_bytes = scratch_bytes,
    .forward = forward,
    .backward = backward,
    .backward_groups = backward_groups,
};

int layer_is_conv(const dp_layer *L) { return L->kind == &layer_conv; }
