/* model: the network as a list of layers, built from a short text spec, with all
 * parameters in one flat buffer and all gradients in another.
 *
 * Spec grammar (whitespace, ',' ';' or '->' between layers; '#' starts a comment):
 *   conv(OUT, KERNEL[, stride=S][, pad=P])   2-D convolution, square kernel (alias conv2d)
 *   maxpool(KERNEL[, stride=S])             max pooling, stride defaults to KERNEL (alias pool)
 *   relu
 *   fc(OUT) | fc(classes) | fc               fully connected (alias linear); the last layer
 *                                            must be fc and its OUT is the number of classes
 *   flatten                                  accepted and ignored (fc flattens C x H x W)
 * Arguments may also be named: conv(out=32, kernel=3, stride=1, pad=0).
 * Named models: "reference" and "nopool" (see model_builtin_spec).
 *
 * Parameters are named as the equivalent PyTorch nn.Module's state_dict keys: layers
 * with weights are numbered by kind in order (conv1, conv2, ..., fc1, fc2, ...), with
 * `.weight` [out, in, kh, kw] or [out, in] and `.bias` [out]. The model owns its layer
 * list, parameter table and both flat buffers; the workspace owns the activations. */
#ifndef DPTRAIN_MODEL_H
#define DPTRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"

typedef enum { LAYER_CONV, LAYER_MAXPOOL, LAYER_RELU, LAYER_FC } dp_layer_kind;

typedef struct {
    dp_layer_kind kind;
    char name[32];   /* conv1, relu2, maxpool1, fc1, ... */
    char text[64];   /* the layer as written in canonical form, for messages */
    int out;         /* conv: output channels; fc: outputs (-1: number of classes) */
    int kernel, stride, pad;
    int in_c, in_h, in_w;    /* inferred input shape (fc: in_c = features, h = w = 1) */
    int out_c, out_h, out_w; /* inferred output shape */
    size_t in_size, out_size; /* per sample */
    int weight, bias;         /* indices into the parameter table, -1 when none */
    int fused;                /* relu computed by the maxpool after it (set on both) */
    int frozen;               /* --freeze: no weight gradients, no updates */
} dp_layer;

typedef struct {
    char name[48]; /* state_dict key, e.g. "conv1.weight" */
    int ndims;
    int dims[4];
    size_t offset, count; /* into the flat buffers */
    int fan_in;           /* for initialisation */
    int layer;
} dp_param;

typedef struct {
    dp_layer *layers;
    int nlayers;
    dp_param *params;
    int nparams;
    size_t size;     /* floats in each flat buffer */
    float *weights;  /* all parameters, contiguous */
    float *grads;    /* all gradients, same layout */
    int in_c, in_h, in_w, num_classes;
    char spec[2048]; /* canonical spec */
} dp_model;

/* The spec text of a named model, or NULL. */
const char *model_builtin_spec(const char *name);

/* Build from a name, a spec file's path, or spec text; infer every shape from the
 * input C x H x W and the number of classes. A wrong spec is refused with a message
 * that names the layer (its position and text). */
int model_build(dp_model *m, const char *name_or_spec, int C, int H, int W, int num_classes,
                dp_err *err);
void model_free(dp_model *m);

/* PyTorch's default initialisation: every weight and bias uniform in
 * [-1/sqrt(fan_in), 1/sqrt(fan_in)), value = -b + 2b*u. Parameter i draws from its own
 * stream rng_seed(seed, i + 1, 0x1417), so one tensor can be re-drawn alone. */
void model_init_param(dp_model *m, int param, uint64_t seed);
void model_init(dp_model *m, uint64_t seed);

/* A one-line description, e.g. "conv1(1->32, 3x3) relu maxpool(2) ... fc2(128->10)". */
void model_describe(const dp_model *m, char *buf, size_t len);

typedef struct {
    int max_batch;
    float *input;      /* [B, in_c, in_h, in_w] */
    float **act;       /* per layer output [B, out_size] */
    float **dact;      /* per layer gradient of the output [B, out_size] */
    float **col;       /* per conv layer: im2col workspace, else NULL */
    int32_t **argmax;  /* per maxpool layer, else NULL */
    float *scratch;    /* per-thread scratch of the conv layers (omp_get_max_threads() at creation) */
    float *lanes;      /* partial sums of the fc layers, 8 * max_batch * outputs */
    void *block;       /* the one allocation behind all of the above */
    size_t bytes;
} dp_workspace;

/* Index of the layer called `name` (conv1, fc2, ...), or -1. */
int model_find_layer(const dp_model *m, const char *name);

int workspace_create(dp_workspace *ws, const dp_model *m, int max_batch, dp_err *err);
void workspace_free(dp_workspace *ws);

/* Forward the B samples in ws->input; return the sum of their losses and count the
 * correct predictions. With train != 0, backward too, accumulating into m->grads.
 * Frozen layers get no weight gradients (their slots in m->grads are left alone), and
 * backward stops at the lowest layer that is not frozen. */
double model_forward_backward(dp_model *m, dp_workspace *ws, const uint8_t *labels, int B,
                              int train, int *correct);

/* The same, calling done(ctx, i) after the backward of layer i (last layer first): from
 * then on the gradients of layers i.. are final and may be reduced. */
typedef void (*dp_layer_done)(void *ctx, int layer);
double model_forward_backward_hooked(dp_model *m, dp_workspace *ws, const uint8_t *labels, int B,
                                     int train, int *correct, dp_layer_done done, void *ctx);

#endif
