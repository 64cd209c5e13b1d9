/* torch.optim.AdamW (amsgrad False, maximize False), PyTorch 1.13's single-tensor path,
 * operation by operation with its roundings, so that the same gradients give PyTorch's
 * weights and state:
 *   t = t + 1
 *   w = w * (float)(1 - lr * wd)                      decoupled weight decay
 *   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g   (adam_moments)
 *   denom = sqrt(v) / (float)sqrt(1 - beta2^t) + (float)eps
 *   w = w + ((float)(-lr / (1 - beta1^t)) * m) / denom
 * The scalars are computed in double from the double lr and rounded to float, as PyTorch
 * hands Python floats to its float32 kernels. */
#include <math.h>

#include "optim_kind.h"

void adamw_tensor(const dp_optim_config *cfg, const optim_tensor *t, double lr)
{
    const size_t n = t->param->count;
    const double step = (double)++*t->counter[0];
    const double bias_correction1 = 1.0 - pow(cfg->beta1, step);
    const double bias_correction2 = 1.0 - pow(cfg->beta2, step);
    const float decay = (float)(1.0 - lr * cfg->weight_decay);
    const float step_size = (float)(-(lr / bias_correction1));
    const float bc2_sqrt = (float)sqrt(bias_correction2);
    const float b1 = (float)cfg->beta1, c1 = (float)(1.0 - cfg->beta1);
    const float b2 = (float)cfg->beta2, c2 = (float)(1.0 - cfg->beta2);
    const float eps = (float)cfg->eps;
    float *restrict w = t->w, *restrict m = t->state[0], *restrict v = t->state[1];
    const float *restrict g = t->g;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        w[i] = w[i] * decay;
        adam_moments(&m[i], &v[i], g[i], b1, c1, b2, c2);
        const float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] = w[i] + (step_size * m[i]) / denom;
    }
}
