/* model: the network as a list of layers, built from a short text spec, with all
 * parameters in one flat buffer and all gradients in another.
 *
 * Spec grammar (whitespace, ',' ';' or '->' between layers; '#' starts a comment):
 *   NAME                      a layer without arguments, e.g. relu
 *   NAME(A, B, key=V, ...)    arguments by position, then by name (or alias)
 *   flatten                   accepted and ignored (fc flattens C x H x W)
 * The layer kinds, their names, aliases and arguments are the table in
 * src/net/layer_kinds.c; the opening comment of each kind's file src/net/layer_<kind>.c
 * gives its spec, e.g. conv(OUT, KERNEL, stride=1, pad=0), maxpool(KERNEL), relu,
 * fc(OUT | classes). The last layer gives one score per class (fc(classes)). Named
 * models: "reference" and "nopool" (see model_builtin_spec).
 *
 * Parameters are named as the equivalent PyTorch nn.Module's state_dict keys: layers
 * are numbered by kind in order (conv1, conv2, ..., fc1, fc2, ...), each tensor named
 * LAYER.SUFFIX (conv1.weight [out, in, kh, kw], conv1.bias [out], ...). A layer owns the
 * contiguous range params[param_first, param_first + param_count) of the table. A tensor
 * may be a buffer (trainable 0): kept and saved like the others, but never updated by
 * the optimizer nor reduced over ranks. The model owns its layer list, parameter table
 * and both flat buffers; the workspace owns the activations. */
#ifndef DPTRAIN_MODEL_H
#define DPTRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/net/layers.h"
#include "dptrain/util/error.h"

#define DP_LAYER_MAX_ARGS 4
#define DP_LAYER_MAX_TENSORS 4
#define DP_MODEL_MAX_LAYERS 64

typedef struct dp_layer_kind dp_layer_kind; /* the table entry: layer_kind.h */

typedef struct {
    const dp_layer_kind *kind;
    char name[32];   /* conv1, relu2, maxpool1, fc1, ... */
    char text[64];   /* the layer as written in canonical form, for messages */
    double arg[DP_LAYER_MAX_ARGS]; /* the spec arguments, in the kind's order */
    int in_c, in_h, in_w;    /* inferred input shape (after fc: in_c = features, h = w = 1) */
    int out_c, out_h, out_w; /* inferred output shape */
    size_t in_size, out_size; /* per sample */
    int param_first, param_count; /* its tensors in the parameter table */
    int absorbs;  /* its forward and backward also do this many layers before it (a
                   * maxpool: its relu, or its conv and relu) */
    int absorbed; /* done by the layer after it: skipped in the pass */
    int frozen;   /* --freeze: no weight gradients, no updates */
} dp_layer;

typedef struct {
    char name[48]; /* state_dict key, e.g. "conv1.weight" */
    int ndims;
    int dims[4];
    size_t offset, count; /* into the flat buffers */
    int fan_in;           /* initialisation: U(+-1/sqrt(fan_in)); 0: every element init_value */
    float init_value;
    int trainable;        /* 0: a buffer, never touched by the optimizer or the reduction */
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
 * [-1/sqrt(fan_in), 1/sqrt(fan_in)), value = -b + 2b*u (a buffer: its constant).
 * Parameter i draws from its own stream rng_seed(seed, i + 1, 0x1417), so one tensor
 * can be re-drawn alone. */
void model_init_param(dp_model *m, int param, uint64_t seed);
void model_init(dp_model *m, uint64_t seed);

/* A one-line description, e.g. "conv1(1->32, 3x3) relu maxpool(2) ... fc2(128->10)". */
void model_describe(const dp_model *m, char *buf, size_t len);

/* Index of the layer called `name` (conv1, fc2, ...), or -1. */
int model_find_layer(const dp_model *m, const char *name);

/* The tensors of layer i: m->params[first .. first + *count), e.g.
 *   int n; const dp_param *p = model_layer_params(m, i, &n);
 *   for (int k = 0; k < n; k++) use(p[k].offset, p[k].count); */
const dp_param *model_layer_params(const dp_model *m, int layer, int *count);

/* Whether the optimizer updates the tensor p (one of m->params) and the reduction over
 * ranks carries its gradient: trainable (not a buffer) and its layer not frozen. */
int model_param_updated(const dp_model *m, const dp_param *p);

typedef struct {
    int max_batch;
    float *input;      /* [B, in_c, in_h, in_w] */
    float **act;       /* per layer output [B, out_size] */
    float **dact;      /* per layer gradient of the output [B, out_size] */
    void **work;       /* per layer: what its kind keeps from forward to backward, or NULL */
    void *scratch;     /* shared by all layers, valid during one layer call (omp_get_max_threads()
                        * at creation) */
    void *block;       /* the one allocation behind all of the above */
    size_t bytes;
} dp_workspace;

int workspace_create(dp_workspace *ws, const dp_model *m, int max_batch, dp_err *err);
void workspace_free(dp_workspace *ws);

/* After the backward of layer i (last layer first), the gradients of layers i.. are
 * final and may be reduced. */
typedef void (*dp_layer_done)(void *ctx, int layer);

/* Timing (profilers, traces): called just before (end 0) and just after (end 1) each
 * layer's forward (backward 0) and backward (backward 1), and around the loss with
 * layer == nlayers (backward 0). Layers done by the layer after them are not called. */
typedef void (*dp_layer_timing)(void *ctx, int layer, int backward, int end);

/* One whole-net pass over the B samples in ws->input. */
typedef struct {
    const uint8_t *labels; /* [B], each < num_classes */
    int B;
    int train;        /* training mode (dropout on) and backward; 0: evaluation */
    int forward_only; /* with train: the training-mode forward alone (finite-difference checks) */
    uint64_t seed;    /* the run's seed: dropout masks */
    long step;        /* 0-based step of the run: dropout masks */
    const int64_t *sample_index; /* [B] each sample's global index in the training set, which
                                  * picks its dropout masks; NULL: the position in the batch */
    double grad_scale;           /* the loss gradient is (softmax - onehot) * grad_scale:
                                  * 1/B of the global batch in training; 0 means 1 */
    dp_layer_done done;          /* NULL, or called after each layer's backward (all groups) */
    dp_layer_done partial;       /* NULL, or called after each layer's backward of each group:
                                  * its gradient slots hold that group's partial; the callee
                                  * takes it and zeroes them (the exact sum) */
    dp_partial_move move;        /* NULL, or a layer hands blocks of a group's partial here
                                  * itself (from any thread), instead of partial */
    dp_fixed_open fixed_open;    /* NULL, or with move: a layer may move all its groups'
                                  * partials of a block into the exact sum at once */
    dp_fixed_close fixed_close;  /* (layers.h) */
    void *done_ctx;              /* all three's ctx */
    dp_layer_timing timing;      /* NULL, or called around each layer's work */
    void *timing_ctx;
} dp_pass;

/* Forward over the B samples, the loss (its sum is returned) and, with train, the loss
 * gradient for backward; correct (may be NULL) counts the right predictions. */
double model_forward(dp_model *m, dp_workspace *ws, const dp_pass *pass, int *correct);
/* Backward over samples [n0, n1) of the last forward, accumulating their parameter
 * gradients into m->grads (each element summed over those samples in order, whatever the
 * thread count): a group's partial gradient. Calls pass->done after each layer. */
void model_backward(dp_model *m, dp_workspace *ws, const dp_pass *pass, int n0, int n1);
/* Backward over groups of samples, group g being [bounds[g], bounds[g + 1]) of the last
 * forward, layer by layer (last first), each layer over the groups in order: while a
 * layer's tensors and its part of the exact sum are in cache. After each group of each
 * layer, pass->partial takes that group's partial (or the layer hands it to pass->move in
 * blocks); without them each group's gradients add onto the last's, in float.
 * pass->done after each layer's last group. */
void model_backward_groups(dp_model *m, dp_workspace *ws, const dp_pass *pass,
                           const int *bounds, int ngroups);

/* Forward; return the sum of the B losses and count the correct predictions (correct may
 * be NULL). With train (and not forward_only), backward too, accumulating into m->grads.
 * Frozen layers get no weight gradients (their slots in m->grads are left alone), and
 * backward stops at the lowest layer that is not frozen. Allocates nothing. */
double model_forward_backward(dp_model *m, dp_workspace *ws, const dp_pass *pass, int *correct);

#endif
