/* LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in
 * 76 minutes", Algorithm 2 with bias correction, phi = identity): Adam's moments, an
 * update with decoupled weight decay, and a trust ratio per tensor:
 *   t = t + 1;  m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
 *   r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * w
 *   ratio = ||w|| / ||r||   (1 when ||w|| = 0 or ||r|| = 0)
 *   w = w - lr * ratio * r
 * Biases under exclude_bias: no weight decay in r and ratio = 1 (an Adam step). The
 * moments round as AdamW's do; norms in double (optim_norm); lr * ratio is rounded to
 * float once. */
#include <math.h>

#include "optim_kind.h"

void lamb_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr)
{
    const size_t n = t->param->count;
    const int excluded = optim_excluded(cfg, t->param);
    const double step = (double)++*t->counter[0];
    const float bc1 = (float)(1.0 - pow(cfg->beta1, step));
    const float bc2 = (float)(1.0 - pow(cfg->beta2, step));
    const float b1 = (float)cfg->beta1, c1 = (float)(1.0 - cfg->beta1);
    const float b2 = (float)cfg->beta2, c2 = (float)(1.0 - cfg->beta2);
    const float eps = (float)cfg->eps, wd = excluded ? 0.0f : (float)cfg->weight_decay;
    float *restrict w = t->w, *restrict m = t->state[0], *restrict v = t->state[1];
    float *restrict r = t->scratch;
    const float *restrict g = t->g;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        adam_moments(&m[i], &v[i], g[i], b1, c1, b2, c2);
        r[i] = (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps) + wd * w[i];
    }
    double ratio = 1.0;
    if (!excluded) {
        const double wnorm = optim_norm(w, n, t->partials);
        const double rnorm = optim_norm(r, n, t->partials);
        if (wnorm > 0.0 && rnorm > 0.0)
            ratio = wnorm / rnorm;
    }
    const float rate = (float)(lr * ratio);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        w[i] = w[i] - rate * r[i];
}
