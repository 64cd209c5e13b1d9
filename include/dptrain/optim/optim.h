/* optim: PyTorch's SGD with momentum, weight decay and Nesterov, on the flat buffers,
 * and the learning-rate schedule.
 *
 * The update is torch.optim.SGD's (dampening 0), element by element in float32:
 *   g = grad + weight_decay * w
 *   buf = momentum * buf + g        (buf starts at zero, which equals PyTorch's buf = g)
 *   g = nesterov ? g + momentum * buf : buf
 *   w = w - lr * g
 * The optimizer owns its momentum buffer; the model owns weights and gradients. */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stddef.h>

#include "dptrain/util/error.h"

typedef struct {
    float momentum, weight_decay;
    int nesterov;
    float *velocity; /* momentum buffer, one per parameter */
    size_t size;
} dp_sgd;

int sgd_create(dp_sgd *opt, size_t size, float momentum, float weight_decay, int nesterov,
               dp_err *err);
void sgd_free(dp_sgd *opt);
/* One step over w[0..size) with gradients g at learning rate lr. */
void sgd_step(dp_sgd *opt, float *w, const float *g, float lr);

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
