/* dropout(p=0.5), also dropout(P) and dropout: inverted dropout, as torch.nn.Dropout(p).
 * In training each element is kept with probability 1 - p and scaled by 1 / (1 - p)
 * (out = x * (keep ? scale : 0), scale = 1.0f / (float)(1 - p): torch's
 * x * bernoulli(1 - p).div_(1 - p), bit for bit); in evaluation it is the identity, and
 * p = 0 is the identity too. p must lie in [0, 1). No tensors.
 *
 * The mask of sample n is drawn from its own stream,
 *   rng_seed(seed, index + 1, DROPOUT_STREAM + step * DP_MODEL_MAX_LAYERS + layer),
 * index = the sample's global index in the training set (dp_pass.sample_index; its
 * position in the batch when that is NULL). Each 64-bit draw gives two elements, in
 * order, the uniforms u = (bits 63..40) / 2^24 and (bits 39..16) / 2^24; an element is
 * kept when u < 1 - p (two per draw: 0.5 instead of 1.4 ms for 100 x 1600 elements,
 * bench_layers). So a sample gets the same mask whatever the thread or rank count and
 * wherever it sits in the batch, and a resumed run draws the masks it would have drawn.
 * The mask (one byte per element) is kept in the workspace for backward, which scales the
 * output gradient by the same factors. */
#include <math.h>
#include <string.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/util/rng.h"
#include "thread_split.h"

#define DROPOUT_STREAM 0x44524F5000000000ull /* "DROP" */

static const dp_layer_arg args[] = {
    {.name = "p", .is_float = 1, .def = 0.5, .lo = 0, .hi = 1, .hi_open = 1, .named = 1},
};

static size_t work_bytes(const dp_layer *L, int B) { return (size_t)B * L->in_size; }

static float scale_of(const dp_layer *L) { return 1.0f / (float)(1.0 - L->arg[0]); }

static void forward(const dp_layer_io *io)
{
    const dp_pass *pass = io->pass;
    const size_t size = io->L->in_size;
    const double p = io->L->arg[0];
    if (!pass->train || p == 0.0) {
        memcpy(io->out, io->in, (size_t)io->B * size * sizeof(float));
        memset(io->work, 1, (size_t)io->B * size);
        return;
    }
    const float scale = scale_of(io->L);
    /* u = k / 2^24 < 1 - p  <=>  k < ceil((1 - p) 2^24) */
    const uint64_t keep_below = (uint64_t)ceil((1.0 - p) * 16777216.0);
    const uint64_t stream = DROPOUT_STREAM + (uint64_t)pass->step * DP_MODEL_MAX_LAYERS +
                            (uint64_t)io->index;
    #pragma omp parallel
    {
        int lo, hi;
        thread_range(io->B, &lo, &hi);
        for (int n = lo; n < hi; n++) {
            const uint64_t index =
                pass->sample_index ? (uint64_t)pass->sample_index[n] : (uint64_t)n;
            dp_rng r;
            rng_seed(&r, pass->seed, index + 1, stream);
            uint8_t *mask = (uint8_t *)io->work + (size_t)n * size;
            const float *x = io->in + (size_t)n * size;
            float *y = io->out + (size_t)n * size;
            for (size_t k = 0; k < size; k += 2) { /* two 24-bit uniforms per draw */
                const uint64_t v = rng_next(&r);
                mask[k] = (v >> 40) < keep_below;
                if (k + 1 < size)
                    mask[k + 1] = ((v >> 16) & 0xFFFFFF) < keep_below;
            }
            for (size_t k = 0; k < size; k++)
                y[k] = x[k] * (mask[k] ? scale : 0.0f);
        }
    }
}

static void backward(const dp_layer_io *io)
{
    if (!io->din)
        return;
    const float scale = scale_of(io->L);
    const uint8_t *mask = io->work;
    const size_t n = (size_t)io->B * io->L->in_size;
    #pragma omp parallel for schedule(static)
    for (size_t k = 0; k < n; k++)
        io->din[k] = io->dout[k] * (mask[k] ? scale : 0.0f);
}

const dp_layer_kind layer_dropout = {
    .name = "dropout",
    .example = "dropout(p=0.5)",
    .args = args,
    .nargs = 1,
    .work_bytes = work_bytes,
    .forward = forward,
    .backward = backward,
};
