/* optim_kind: what one kind of optimizer implements, private to src/optim. The table of
 * kinds (optimizer.c) names each kind's state; the kind's step (sgd.c, lars.c, lamb.c,
 * adamw.c) updates one parameter tensor in place from its gradient and that state.
 *
 * A step gets the tensor as an optim_tensor: weights and gradient of this tensor only,
 * its float states and counters in the order the table names them, and room the
 * optimizer allocated once (scratch: as many floats as the largest tensor; partials: one
 * double per norm block of the largest tensor), so that no step allocates. */
#ifndef DPTRAIN_OPTIM_KIND_H
#define DPTRAIN_OPTIM_KIND_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/optim/optim.h"

#define OPTIM_MAX_STATES 4
#define OPTIM_MAX_COUNTERS 2

typedef struct {
    const dp_param_view *param;           /* count, ndims (1: a bias) */
    float *w;                             /* [count] */
    const float *g;                       /* [count] */
    float *state[OPTIM_MAX_STATES];       /* [count] each */
    int64_t *counter[OPTIM_MAX_COUNTERS]; /* one element each */
    float *scratch;                       /* [count] at least */
    double *partials;                     /* [optim_norm_blocks(count)] at least */
} optim_tensor;

/* lr is the schedule's value in double: PyTorch computes AdamW's scalars in double. */
typedef void (*optim_step_fn)(const dp_optim_config *cfg, const optim_tensor *t, double lr);

/* The same update of n elements of one tensor, from weights w, gradient g and the float
 * states state[s] all at the elements' place, on the calling thread: for kinds whose
 * update is element by element (optimizer_step_piece), else NULL in the table. */
typedef void (*optim_piece_fn)(const dp_optim_config *cfg, float *w, const float *g,
                               float *const *state, size_t n, double lr);

void sgd_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr);
void sgd_piece(const dp_optim_config *cfg, float *w, const float *g, float *const *state,
               size_t n, double lr);
void lars_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr);
void lamb_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr);
void adamw_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr);

/* The L2 norm of x[0..n), in double: blocks of OPTIM_NORM_BLOCK elements are summed
 * (threads take whole blocks), then the block sums are added in block order, so the
 * bits do not depend on the thread count. partials: [optim_norm_blocks(n)]. */
#define OPTIM_NORM_BLOCK 4096
size_t optim_norm_blocks(size_t n);
double optim_norm(const float *x, size_t n, double *partials);

/* Adam's moments of one element, with torch.optim.AdamW's roundings (PyTorch's CPU
 * kernels fuse both updates into one FMA each, measured on PyTorch 1.13):
 *   m = beta1 * m + (1 - beta1) * g,  v = beta2 * v + (1 - beta2) * g * g
 * b1, b2 and the complements c1 = (float)(1 - beta1), c2 = (float)(1 - beta2) are the
 * double hyperparameters rounded to float, as PyTorch passes them to its kernels. */
static inline void adam_moments(float *m, float *v, float g, float b1, float c1, float b2,
                                float c2)
{
    *m = fmaf(g, c1, *m * b1);
    *v = fmaf(c2 * g, g, *v * b2);
}

/* Whether LARS and LAMB give tensor p the plain step (a bias under exclude_bias). */
int optim_excluded(const dp_optim_config *cfg, const dp_param_view *p);

#endif
