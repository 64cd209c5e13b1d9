/* numerics: guards on the flat gradient buffer: the stop on NaN/Inf per parameter tensor
 * and global L2-norm clipping (as torch.nn.utils.clip_grad_norm_).
 *
 * Both run after the gradients are averaged over ranks, when the buffer holds the same
 * bits on every rank, so every rank reaches the same verdict without communicating.
 * Nothing here allocates or owns memory; the model owns the buffers. */
#ifndef DPTRAIN_NUMERICS_H
#define DPTRAIN_NUMERICS_H

#include <stddef.h>

#include "dptrain/util/error.h"
#include "dptrain/net/model.h"

/* Sum of squares of each parameter tensor's gradient, in double (a finite float squared
 * never overflows a double, so a non-finite sum means a non-finite element). Sets
 * *first_bad to the index of the last tensor in the table (the one nearest the output,
 * where backward starts) whose gradient holds a NaN or Inf, and *nbad to how many do;
 * returns the global L2 norm (NaN or Inf when *nbad > 0). Deterministic for any number
 * of threads. */
double grads_norm(const dp_model *m, const float *g, int *first_bad, int *nbad);

/* Scale g[0..n) by max_norm / (norm + 1e-6) when that is below 1, as PyTorch's
 * clip_grad_norm_ does; returns the factor applied (1 when not clipped). */
double grads_clip(float *g, size_t n, double norm, double max_norm);

/* The per-step guard: fails with a message naming the step, the layer and the tensors
 * when a gradient is not finite (the weights are left as they were, unchanged by this
 * step), then clips when max_norm > 0. Which tensors hold NaN or Inf is given, as the
 * exact sum found them (first_bad, nbad: gradsync_nonfinite), not scanned for: a read of
 * every gradient a step spared (nopool: 19 MB, about 3% of its step on an AMD Zen 5).
 * With the norm wanted, its pass finds them itself. *norm_out (may be NULL) gets the norm
 * before clipping; without it and without clipping the norm is not computed. */
int grads_guard(dp_model *m, long step, int epoch, double local_loss, double max_norm,
                int first_bad, int nbad, double *norm_out, dp_err *err);

#endif
