/* relu: max(x, 0) elementwise, as torch.nn.ReLU (NaN passes through). No arguments, no
 * tensors; backward reads its own output. A maxpool right after it absorbs it
 * (layer_pool.c). */
#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"

static void forward(const dp_layer_io *io)
{
    relu_forward(io->out, io->in, (size_t)io->B * io->L->out_size);
}

static void backward(const dp_layer_io *io)
{
    if (io->din)
        relu_backward(io->din, io->dout, io->out, (size_t)io->B * io->L->out_size);
}

const dp_layer_kind layer_relu = {
    .name = "relu",
    .example = "relu",
    .forward = forward,
    .backward = backward,
};
