/* optim: optimizers on the flat parameter buffer, and the learning-rate schedule.
 *
 * An optimizer sees the model as a list of parameter tensors (dp_param_view: name,
 * where it lies in the flat buffers, rank, trainable) and never as layers. It owns its
 * state as named tensors, "<parameter>.<state>" as torch.optim names them (SGD:
 * "conv1.weight.momentum_buffer", AdamW: "conv1.weight.exp_avg", "...exp_avg_sq" and
 * the step count "conv1.weight.step"), each a view into blocks the optimizer allocates:
 * float32 tensors parallel to the parameter buffer, and int64 counters (one per tensor).
 * Checkpoints store and restore these by name and type without knowing which optimizer
 * wrote them. The model owns weights and gradients.
 *
 * Each kind is one table entry (optimizer.c): its name, its state names, and a step
 * over one tensor (sgd.c, lars.c, lamb.c, adamw.c; the formulas: docs/optimizers.md).
 * Element-wise work is in float32, each element owned by one thread; the per-tensor norms
 * of LARS and LAMB are sums in double over fixed blocks added in a fixed order, so every
 * rank and every thread count gives the same bits. Tensors that are not trainable (frozen
 * layers, buffers) are left alone, their state and step count too. */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"

typedef struct {
    const char *name;     /* state_dict key, e.g. "conv1.weight" (borrowed) */
    size_t offset, count; /* in the flat parameter and gradient buffers */
    int ndims;            /* 1 for biases */
    int trainable;        /* 0: frozen or a buffer, never updated */
} dp_param_view;

typedef enum { DP_STATE_F32, DP_STATE_I64 } dp_state_type;

typedef struct {
    char name[96];      /* "<parameter>.<state>" */
    dp_state_type type;
    float *data;        /* DP_STATE_F32: [count], owned by the optimizer; else NULL */
    int64_t *ints;      /* DP_STATE_I64: [count] (a step count: count 1); else NULL */
    size_t count;
} dp_optim_state;

/* The kinds optimizer_create knows, as --optimizer spells them. */
#define DP_OPTIMIZER_KINDS "sgd|lars|lamb|adamw"

/* Hyperparameters of every kind; each kind reads the ones it documents (docs/optimizers.md). */
typedef struct {
    const char *kind;            /* one of DP_OPTIMIZER_KINDS */
    double momentum;             /* sgd, lars */
    double weight_decay;         /* sgd, lars: added to the gradient; lamb, adamw: decoupled */
    int nesterov;                /* sgd, lars */
    double beta1, beta2, eps;    /* lamb, adamw */
    double trust_coefficient;    /* lars: eta */
    int exclude_bias;            /* lars, lamb: 1-D tensors take the plain step (no trust
                                  * ratio, no weight decay) */
} dp_optim_config;

typedef struct dp_optimizer dp_optimizer;

/* The view array is copied; the names it points to must outlive the optimizer. */
int optimizer_create(dp_optimizer **o, const dp_optim_config *cfg, const dp_param_view *params,
                     int nparams, dp_err *err);
void optimizer_free(dp_optimizer *o);
const char *optimizer_kind(const dp_optimizer *o);
/* One step on every trainable tensor: weights -= lr * update(grads, state). No
 * allocation: what a step needs (LAMB's update, the norms' partial sums) was allocated
 * by optimizer_create. */
void optimizer_step(dp_optimizer *o, float *weights, const float *grads, double lr);
/* Where the kind updates each element on its own (sgd), the step can also be made a piece
 * at a time, as the summed gradient arrives (gradsync_take_with), with the same bits:
 * optimizer_by_pieces says whether it can; optimizer_step_piece updates the n elements
 * from `offset` in the flat buffers (inside one trainable tensor; from any thread, on
 * pieces that do not overlap). */
int optimizer_by_pieces(const dp_optimizer *o);
void optimizer_step_piece(const dp_optimizer *o, float *weights, size_t offset, const float *g,
                          size_t n, double lr);
/* The same as a consumer of the summed gradient (gradsync_take_with's fn), ctx a
 * dp_optim_pieces whose lr the caller sets for each step. */
typedef struct {
    const dp_optimizer *opt;
    float *weights;
    double lr;
} dp_optim_pieces;
void optimizer_take_piece(void *ctx, size_t offset, const float *g, size_t n);
/* The named state tensors and counters, for checkpoints (data and ints may be
 * overwritten to restore). Parameter-major: each tensor's float states, then its
 * counters, in the kind's order. */
int optimizer_state_count(const dp_optimizer *o);
const dp_optim_state *optimizer_state(const dp_optimizer *o, int i);

/* SGD as torch.optim.SGD (dampening 0), element by element in float32:
 *   g = grad + weight_decay * w
 *   buf = momentum * buf + g        (buf starts at zero, which equals PyTorch's buf = g)
 *   g = nesterov ? g + momentum * buf : buf
 *   w = w - lr * g
 * Exposed for tests and benchmarks: one step over n contiguous elements. */
void sgd_update(float *w, const float *g, float *momentum_buffer, size_t n, float lr,
                float momentum, float weight_decay, int nesterov);

typedef enum { LR_CONSTANT, LR_COSINE, LR_STEP } dp_lr_kind;

typedef struct {
    dp_lr_kind kind;
    double base;          /* peak learning rate */
    long warmup_steps;    /* linear ramp from base/warmup_steps up to base */
    long total_steps;     /* cosine reaches 0 at total_steps */
    long step_every;      /* LR_STEP: multiply by gamma every step_every steps */
    double gamma;
} dp_lr_schedule;

/* The learning rate for 0-based optimizer step `step`. */
double lr_at(const dp_lr_schedule *s, long step);

#endif
