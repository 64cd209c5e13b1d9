/* fc(OUT), aliases linear; fc, fc(classes): fully connected, as torch.nn.Linear(in, OUT)
 * on the flattened C x H x W input. Argument: out (features), or the word "classes" (the
 * default), which only the last layer may take: the number of classes of the data.
 * Tensors: weight [OUT, in], bias [OUT]. Its output is flat; it may be the last layer. The
 * forward works on long rows in cache-sized blocks in a scratch of partial sums. */
#include <stdio.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"

#define CLASSES (-1.0)
#define MAX_INPUTS (100L * DP_ARG_MAX)

static const dp_layer_arg args[] = {
    {.name = "out", .aliases = {"features"}, .def = CLASSES, .lo = 1, .hi = DP_ARG_MAX,
     .word = "classes", .word_value = CLASSES},
};

static int shape(dp_layer *L, const dp_model *m, int i, dp_err *err)
{
    long in = (long)L->in_c * L->in_h * L->in_w;
    if (in > MAX_INPUTS)
        return dp_fail(err, "layer %d %s: %ld inputs is too many", i + 1, L->text, in);
    if (L->arg[0] == CLASSES && i != m->nlayers - 1)
        return dp_fail(err, "layer %d fc(classes): only the last layer can take the number of "
                            "classes as its size", i + 1);
    L->out_c = L->arg[0] == CLASSES ? m->num_classes : (int)L->arg[0];
    L->out_h = L->out_w = 1;
    return 0;
}

static int tensors(const dp_layer *L, dp_tensor_desc t[DP_LAYER_MAX_TENSORS])
{
    const int in = L->in_c * L->in_h * L->in_w;
    t[0] = (dp_tensor_desc){"weight", 2, {L->out_c, in}, 0, 0.0f, 1};
    t[1] = (dp_tensor_desc){"bias", 1, {L->out_c}, 0, 0.0f, 1};
    return 2;
}

static void describe(const dp_layer *L, char *buf, size_t len)
{
    snprintf(buf, len, "%s(%zu->%d)", L->name, L->in_size, L->out_c);
}

static size_t scratch_bytes(const dp_layer *L, int B, int threads)
{
    return linear_scratch_floats(B, (int)L->in_size, L->out_c, threads) * sizeof(float);
}

static void forward(const dp_layer_io *io)
{
    linear_forward(io->out, io->in, io->param[0], io->param[1], io->B, (int)io->L->in_size,
                   io->L->out_c, io->scratch);
}

static void backward(const dp_layer_io *io)
{
    linear_backward(io->din, io->grad[0], io->grad[1], io->dout, io->in, io->param[0], io->B,
                    (int)io->L->in_size, io->L->out_c, io->scratch);
}

static void backward_groups(const dp_layer_io *io, const int *bounds, int ngroups)
{
    linear_backward_groups(io->din, io->grad[0], io->grad[1], io->dout, io->in, io->param[0],
                           io->B, (int)io->L->in_size, io->L->out_c, io->scratch, bounds, ngroups,
                           io->pass->move, io->pass->fixed_open, io->pass->fixed_close,
                           io->pass->done_ctx);
}

const dp_layer_kind layer_fc = {
    .name = "fc",
    .aliases = {"linear"},
    .example = "fc(128)",
    .args = args,
    .nargs = 1,
    .flattens = 1,
    .scores = 1,
    .shape = shape,
    .tensors = tensors,
    .describe = describe,
    .scratch_bytes = scratch_bytes,
    .forward = forward,
    .backward = backward,
    .backward_groups = backward_groups,
};
