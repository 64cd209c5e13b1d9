/* layer_kind: one table entry per kind of layer, as darknet reaches a layer's code through
 * the layer and ggml keeps one table of ops.
 *
 * An entry says all the model needs to know about its kind: the spec name and aliases,
 * the arguments (names, aliases, positional order, defaults, integer or float, range), the
 * output shape, the parameter tensors (any number; each with its PyTorch state_dict
 * suffix, dims, initialisation, and whether the optimizer trains it), the memory it keeps
 * from forward to backward and the scratch it needs during a call, and its forward and
 * backward. The spec parser (spec.c), the model (model.c) and the whole-net pass
 * (pass.c) only go through this table. Adding a kind is one file src/net/layer_<kind>.c
 * holding its entry and functions, one line in layer_kinds.c, and one row in the
 * finite-difference test (tests/test_layers.c).
 *
 * Forward and backward follow layers.h: forward overwrites `out`; backward overwrites
 * `din` (NULL when nobody needs it) and ADDS into the parameter gradients (NULL when the
 * layer is frozen or the tensor is a buffer); every output element is owned by one
 * thread, so the bits do not depend on the thread count. Nothing here allocates. */
#ifndef DPTRAIN_LAYER_KIND_H
#define DPTRAIN_LAYER_KIND_H

#include <stddef.h>

#include "dptrain/net/model.h"

#define DP_LAYER_MAX_KINDS 32
#define DP_LAYER_MAX_ABSORBS 2 /* layers one layer may also do: a maxpool its conv and relu */
#define DP_ARG_MAX 1000000 /* the largest integer argument: beyond it a spec is a typo */

/* One spec argument. A value must lie in [lo, hi] ([lo, hi) with hi_open). */
typedef struct {
    const char *name;       /* its key, and how the canonical text names it */
    const char *aliases[3]; /* other keys accepted */
    int is_float;           /* else an integer */
    int required;
    double def;             /* the default when not required ... */
    const char *def_from;   /* ... or, when set, the value of that argument (pool stride) */
    double lo, hi;
    int hi_open;
    int named;              /* the canonical text writes name=value (else the value alone) */
    const char *word;       /* a word accepted as a value, e.g. fc's "classes" ... */
    double word_value;      /* ... and the value it stands for */
} dp_layer_arg;

/* One parameter tensor of a layer: m->params gets one entry per tensor, in order. */
typedef struct {
    const char *suffix; /* state_dict suffix: "weight", "bias", "running_mean", ... */
    int ndims, dims[4];
    int fan_in_of;      /* init U(+-1/sqrt(fan_in)) with the fan-in (dims[1] * dims[2] * ...)
                         * of this tensor of the layer: PyTorch gives a bias its weight's;
                         * -1: every element `value` */
    float value;
    int trainable;      /* 0: a buffer (saved, never updated by the optimizer nor reduced) */
} dp_tensor_desc;

/* What one layer's forward or backward works on, for a batch of B samples. */
typedef struct {
    const dp_layer *L;
    int index;          /* the layer's position in the model */
    int B;
    const float *in;    /* [B, in_size] the layer's input (absorbing: the first absorbed's) */
    float *out;         /* [B, out_size] */
    float *din;         /* backward: gradient of `in`, overwritten; NULL: nobody needs it */
    const float *dout;  /* backward: gradient of `out` */
    /* The tensors of the layers it does, first layer first, each in its table's order (a
     * maxpool absorbing conv and relu: the conv's weight and bias). */
    float *param[DP_LAYER_MAX_TENSORS];
    float *grad[DP_LAYER_MAX_TENSORS];  /* += their gradients; NULL: frozen, or a buffer */
    void *work;         /* work_bytes(L, B), kept from forward to backward */
    void *scratch;      /* scratch_bytes(L, B, threads) or more, only during this call */
    int absorbed;       /* how many layers right before it this one also does (absorbs):
                         * L[-absorbed] .. L[-1] */
    /* Theirs, first first, narrowed like the io: the work their kinds keep (work_bytes),
     * and their output gradients' buffers [B, out_size], room for a gradient on the way. */
    void *absorbed_work[DP_LAYER_MAX_ABSORBS];
    float *absorbed_dout[DP_LAYER_MAX_ABSORBS];
    const dp_pass *pass; /* mode, seed, step, sample indices (random layers) */
} dp_layer_io;

struct dp_layer_kind {
    const char *name;        /* in specs, in layer names (conv1) and messages */
    const char *aliases[3];
    const char *example;     /* a valid use, shown when arguments are missing: "conv(32,3)" */
    const dp_layer_arg *args;
    int nargs;
    int spatial;             /* needs an input with height and width (not after a flattening) */
    int flattens;            /* its output is flat: C features, 1 x 1 */
    int scores;              /* may be the last layer (one output per class) */
    /* Every hook's L is the model's m->layers[i], so L[-1] is the layer before it.
     * Output shape from L->in_* and L->arg (L->text is set); may refuse, naming the layer.
     * m: the model being built (num_classes, nlayers); i: the layer's position. */
    int (*shape)(dp_layer *L, const dp_model *m, int i, dp_err *err);
    /* Fill t[] with the layer's tensors (shapes known); return how many (NULL: none). */
    int (*tensors)(const dp_layer *L, dp_tensor_desc t[DP_LAYER_MAX_TENSORS]);
    /* For model_describe (NULL: the canonical text). */
    void (*describe)(const dp_layer *L, char *buf, size_t len);
    /* NULL, or how many of the layers right before L (L[-1] .. L[-before] exist, shapes
     * known) it also does, at most DP_LAYER_MAX_ABSORBS: those are then skipped, and L's
     * forward and backward (L->absorbs set, io->absorbed) do them too, with their tensors,
     * work and frozen state: fewer passes over memory, the same bits as the layers one by
     * one. The model refuses an absorption that would take a layer already absorbed or
     * absorbing, or more than DP_LAYER_MAX_TENSORS tensors in all. */
    int (*absorbs)(const dp_layer *L, int before);
    /* NULL: none. Linear in B: sample n's work starts at work_bytes(L, n) (backward over a
     * range of samples addresses it so). Absorbed layers keep theirs (absorbed_work). */
    size_t (*work_bytes)(const dp_layer *L, int B);
    size_t (*scratch_bytes)(const dp_layer *L, int B, int threads); /* NULL: none */
    void (*forward)(const dp_layer_io *io);
    void (*backward)(const dp_layer_io *io);
    /* NULL, or backward over groups of io's samples at once, group g being samples
     * [bounds[g] - bounds[0], bounds[g + 1] - bounds[0]) of io (io->B in all), handing
     * each group's parameter gradients to io->pass->move block by block: the same bits as
     * backward group by group, each group's partial taken before the next. Called only
     * with a move hook, for more than one group, on a layer with parameter gradients
     * (its own or an absorbed layer's); never for an absorbed layer. */
    void (*backward_groups)(const dp_layer_io *io, const int *bounds, int ngroups);
};

/* The kind called `name` (or an alias), or NULL. */
const dp_layer_kind *layer_kind_find(const char *name);
/* The kinds, in table order: for messages that list them. */
int layer_kind_count(void);
const dp_layer_kind *layer_kind_at(int i);

/* The io of layer i of m as the whole-net pass gives it (din NULL for the first layer):
 * for tests and benchmarks that run one layer. */
void layer_io_init(dp_layer_io *io, dp_model *m, dp_workspace *ws, int i, const dp_pass *pass);

#endif
