/* torch.optim.SGD on contiguous elements (see optim.h for the update). */
#include "dptrain/optim/optim.h"

#include "optim_kind.h"

void sgd_update(float *restrict w, const float *restrict g, float *restrict v, size_t n,
                float lr, float mu, float wd, int nesterov)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f)
            d = d + wd * w[i];
        if (mu != 0.0f) {
            v[i] = mu * v[i] + d;
            d = nesterov ? d + mu * v[i] : v[i];
        }
        w[i] = w[i] - lr * d;
    }
}

void sgd_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr)
{
    sgd_update(t->w, t->g, t->state[0], t->param->count, (float)lr, (float)cfg->momentum,
               (float)cfg->weight_decay, cfg->nesterov);
}
