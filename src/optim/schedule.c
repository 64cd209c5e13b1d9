#include "dptrain/optim/optim.h"

#include <math.h>

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
