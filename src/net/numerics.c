#include "dptrain/net/numerics.h"

#include "dptrain/util/sums.h"

#include <math.h>
#include <stdio.h>

double grads_norm(const dp_model *m, const float *g, int *first_bad, int *nbad)
{
    /* Serial on purpose: one tensor (fc1.weight) dominates, so threads over tensors do not
     * help, and one pass is ~0.05 ms for the reference model, ~2 ms for nopool's 4.7M
     * parameters. The same bits for any thread count. */
    double sums[m->nparams > 0 ? m->nparams : 1];
    for (int p = 0; p < m->nparams; p++)
        sums[p] = dp_sum_squares(g + m->params[p].offset, m->params[p].count);
    double total = 0.0;
    *first_bad = -1;
    *nbad = 0;
    for (int p = 0; p < m->nparams; p++) {
        if (!isfinite(sums[p])) {
            *first_bad = p;
            (*nbad)++;
        }
        total += sums[p];
    }
    return sqrt(total);
}

double grads_clip(float *g, size_t n, double norm, double max_norm)
{
    double coef = max_norm / (norm + 1e-6);
    if (!(coef < 1.0))
        return 1.0;
    const float f = (float)coef;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        g[i] *= f;
    return coef;
}

int grads_guard(dp_model *m, long step, int epoch, double local_loss, double max_norm,
                int bad, int nbad, double *norm_out, dp_err *err)
{
    double norm = 0.0;
    if (max_norm > 0.0 || norm_out) /* the norm is wanted: its pass finds them too */
        norm = grads_norm(m, m->grads, &bad, &nbad);
    if (norm_out)
        *norm_out = norm;
    if (nbad > 0) {
        const dp_param *p = &m->params[bad];
        const dp_layer *l = &m->layers[p->layer];
        char loss[64] = "";
        if (!isfinite(local_loss))
            snprintf(loss, sizeof loss, "; the loss is %g", local_loss);
        return dp_fail(err, "numerical trouble at step %ld (epoch %d): the gradient of %s "
                            "(layer %d %s) holds NaN or Inf after averaging over ranks (%d of %d "
                            "parameter tensors do)%s; the weights are kept from step %ld. Lower "
                            "--lr, add --warmup-epochs or --clip-grad-norm, or check the data",
                       step, epoch, p->name, p->layer + 1, l->text, nbad, m->nparams, loss,
                       step - 1);
    }
    if (max_norm > 0.0)
        grads_clip(m->grads, m->size, norm, max_norm);
    return 0;
}
