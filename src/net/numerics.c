#include "dptrain/net/numerics.h"

#include "dptrain/util/sums.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

/* 1 when x[0..n) holds a NaN or an Inf: an element whose exponent bits are all ones. A
 * maximum, so the answer is the same however the threads split the elements. */
static int any_nonfinite(const float *x, size_t n)
{
    uint32_t top = 0;
    #pragma omp parallel for simd reduction(max : top) schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7f800000u;
        top = u > top ? u : top;
    }
    return top == 0x7f800000u;
}

void grads_finite(const dp_model *m, const float *g, int *first_bad, int *nbad)
{
    *first_bad = -1;
    *nbad = 0;
    for (int p = 0; p < m->nparams; p++)
        if (any_nonfinite(g + m->params[p].offset, m->params[p].count)) {
            *first_bad = p;
            (*nbad)++;
        }
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

/* known: bad and nbad hold the answer already (where the norm is not wanted). */
static int guard(dp_model *m, long step, int epoch, double local_loss, double max_norm,
                 int known, int bad, int nbad, double *norm_out, dp_err *err)
{
    double norm = 0.0;
    if (max_norm > 0.0 || norm_out) /* the norm is wanted */
        norm = grads_norm(m, m->grads, &bad, &nbad);
    else if (!known) /* only whether it is finite: a parallel scan, not a serial sum of squares */
        grads_finite(m, m->grads, &bad, &nbad);
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

int grads_guard(dp_model *m, long step, int epoch, double local_loss, double max_norm,
                double *norm_out, dp_err *err)
{
    return guard(m, step, epoch, local_loss, max_norm, 0, -1, 0, norm_out, err);
}

int grads_guard_known(dp_model *m, long step, int epoch, double local_loss, double max_norm,
                      int first_bad, int nbad, double *norm_out, dp_err *err)
{
    return guard(m, step, epoch, local_loss, max_norm, 1, first_bad, nbad, norm_out, err);
}
