#include "dptrain/optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sgd_create(dp_sgd *opt, size_t size, float momentum, float weight_decay, int nesterov,
               dp_err *err)
{
    memset(opt, 0, sizeof *opt);
    opt->velocity = dp_calloc(size, sizeof(float), "momentum buffer", err);
    if (!opt->velocity)
        return -1;
    opt->size = size;
    opt->momentum = momentum;
    opt->weight_decay = weight_decay;
    opt->nesterov = nesterov;
    return 0;
}

void sgd_free(dp_sgd *opt)
{
    free(opt->velocity);
    memset(opt, 0, sizeof *opt);
}

void sgd_step(dp_sgd *opt, float *restrict w, const float *restrict g, float lr)
{
    const float mu = opt->momentum, wd = opt->weight_decay;
    float *restrict v = opt->velocity;
    const size_t n = opt->size;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f)
            d = d + wd * w[i];
        if (mu != 0.0f) {
            v[i] = mu * v[i] + d;
            d = opt->nesterov ? d + mu * v[i] : v[i];
        }
        w[i] = w[i] - lr * d;
    }
}

double lr_at(const dp_lr_schedule *s, long step)
{
    double lr = s->base;
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        return s->base * (double)(step + 1) / (double)s->warmup_steps;
    switch (s->kind) {
    case LR_CONSTANT:
        break;
    case LR_COSINE: {
        long span = s->total_steps - s->warmup_steps;
        double t = span > 0 ? (double)(step - s->warmup_steps) / (double)span : 0.0;
        if (t > 1.0)
            t = 1.0;
        lr = 0.5 * s->base * (1.0 + cos(M_PI * t));
        break;
    }
    case LR_STEP:
        if (s->step_every > 0)
            lr = s->base * pow(s->gamma, (double)(step / s->step_every));
        break;
    }
    return lr;
}
