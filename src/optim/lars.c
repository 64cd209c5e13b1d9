/* LARS (You, Gitman, Ginsburg 2017) as the widely used PyTorch implementations write it
 * (NVIDIA apex LARC without clipping, torchlars): a trust ratio per tensor scales the
 * weight-decayed gradient, then the momentum step of torch.optim.SGD:
 *   lambda = eta * ||w|| / (||g|| + wd * ||w||)   (1 when ||w|| = 0 or ||g|| = 0)
 *   d = lambda * (g + wd * w)
 *   buf = momentum * buf + d;  d = nesterov ? d + momentum * buf : buf;  w = w - lr * d
 * Biases under exclude_bias take the plain step: lambda = 1, no weight decay. The norms
 * are in double (optim_norm), lambda is rounded to float once. */
#include "optim_kind.h"

void lars_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr)
{
    const size_t n = t->param->count;
    const float mu = (float)cfg->momentum;
    if (optim_excluded(cfg, t->param)) {
        sgd_update(t->w, t->g, t->state[0], n, (float)lr, mu, 0.0f, cfg->nesterov);
        return;
    }
    const double wd = cfg->weight_decay;
    const double wnorm = optim_norm(t->w, n, t->partials);
    const double gnorm = optim_norm(t->g, n, t->partials);
    const double trust = wnorm > 0.0 && gnorm > 0.0
                             ? cfg->trust_coefficient * wnorm / (gnorm + wd * wnorm)
                             : 1.0;
    const float scale = (float)trust, wdf = (float)wd;
    const float *restrict w = t->w, *restrict g = t->g;
    float *restrict d = t->scratch;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        d[i] = scale * (g[i] + wdf * w[i]);
    sgd_update(t->w, d, t->state[0], n, (float)lr, mu, 0.0f, cfg->nesterov);
}
