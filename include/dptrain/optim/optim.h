/* optim: optimizers on the flat parameter buffer, and the learning-rate schedule.
 *
 * An optimizer sees the model as a list of parameter tensors (dp_param_view: name,
 * where it lies in the flat buffers, rank, trainable) and never as layers. It owns its
 * state as named tensors, "<parameter>.<state>" as torch.optim names them (SGD:
 * "conv1.weight.momentum_buffer"), each a view into one block the optimizer allocates
 * parallel to the parameter buffer. Checkpoints store and restore these by name
 * without knowing which optimizer wrote them. The model owns weights and gradients.
 *
 * Each kind is one table entry (optimizer.c): its name, its state names, and a step
 * over one tensor. The update is element-wise and in float32, so every rank and every
 * thread count gives the same bits. Tensors that are not trainable (frozen layers,
 * buffers) are left alone, their state too. */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stddef.h>

#include "dptrain/util/error.h"

typedef struct {
    const char *name;     /* state_dict key, e.g. "conv1.weight" (borrowed) */
    size_t offset, count; /* in the flat parameter and gradient buffers */
    int ndims;            /* 1 for biases */
    int trainable;        /* 0: frozen or a buffer, never updated */
} dp_param_view;

typedef struct {
    char name[96]; /* "<parameter>.<state>" */
    float *data;   /* [count], owned by the optimizer */
    size_t count;
} dp_optim_state;

/* Hyperparameters of every kind; each kind reads the ones it documents. */
typedef struct {
    const char *kind; /* "sgd" */
    double momentum, weight_decay;
    int nesterov;
} dp_optim_config;

typedef struct dp_optimizer dp_optimizer;

/* The view array is copied; the names it points to must outlive the optimizer. */
int optimizer_create(dp_optimizer **o, const dp_optim_config *cfg, const dp_param_view *params,
                     int nparams, dp_err *err);
void optimizer_free(dp_optimizer *o);
const char *optimizer_kind(const dp_optimizer *o);
/* One step on every trainable tensor: weights -= lr * update(grads, state). */
void optimizer_step(dp_optimizer *o, float *weights, const float *grads, double lr);
/* The named state tensors, for checkpoints (data may be overwritten to restore). */
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
