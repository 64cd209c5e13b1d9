/* torch.optim.SGD on contiguous elements (see optim.h for the update). */
#include "dptrain/optim/optim.h"

#include "optim_kind.h"

/* n elements on the calling thread. */
static void sgd_span(float *restrict w, const float *restrict g, float *restrict v, size_t n,
                     float lr, float mu, float wd, int nesterov)
{
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

void sgd_update(float *restrict w, const float *restrict g, float *restrict v, size_t n,
                float lr, float mu, float wd, int nesterov)
{
    enum { BLOCK = 4096 }; /* whole cache lines a thread */
    const size_t blocks = (n + BLOCK - 1) / BLOCK;
    #pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        const size_t lo = b * BLOCK, m = n - lo < BLOCK ? n - lo : BLOCK;
        sgd_span(w + lo, g + lo, v + lo, m, lr, mu, wd, nesterov);
    }
}

void sgd_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr)
{
    sgd_update(t->w, t->g, t->state[0], t->param->count, (float)lr, (float)cfg->momentum,
               (float)cfg->weight_decay, cfg->nesterov);
}

void sgd_piece(const dp_optim_config *cfg, float *w, const float *g, float *const *state,
               size_t n, double lr)
{
    sgd_span(w, g, state[0], n, (float)lr, (float)cfg->momentum, (float)cfg->weight_decay,
             cfg->nesterov);
}
