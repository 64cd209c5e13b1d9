/* gradcheck: an analytic gradient against central finite differences, element by element,
 * with an error measure that a wrong or sign-flipped small component cannot pass.
 *
 *   error_i = |numeric_i - analytic_i| / max(|numeric_i|, |analytic_i|, floor),
 *   floor = GRADCHECK_FLOOR * max_j |analytic_j| over the tensor
 *
 * A component as large as the floor must agree to `tol` relative; a smaller one to
 * tol * floor absolute, so a sign flip shows unless the component is below
 * tol/2 * floor (5e-7 of the tensor's largest in test_layers), which is noise.
 * The loss is summed in double and the step is the one the float perturbation really
 * took, (float)(x + eps) - (float)(x - eps), not 2 eps. A difference that crosses a
 * kink (a relu changing sign, a pooling window changing its maximum) is not a derivative:
 * callers keep clear of kinks (test_layers) or freeze the pieces (test_model). Include
 * after check.h. */
#ifndef DPTRAIN_TESTS_GRADCHECK_H
#define DPTRAIN_TESTS_GRADCHECK_H

#include <math.h>
#include <stdio.h>

#ifndef GRADCHECK_FLOOR
#define GRADCHECK_FLOOR 1e-2
#endif

typedef double (*gradcheck_loss)(void *ctx);

typedef struct {
    double worst; /* the largest error */
    size_t at;    /* where */
} gradcheck_result;

/* Checks analytic[0..n) against differences of f over p[0..n) (restored afterwards). */
static inline gradcheck_result gradcheck(const char *what, float *p, size_t n,
                                         const float *analytic, float eps, gradcheck_loss f,
                                         void *ctx, double tol)
{
    gradcheck_result r = {0, 0};
    double amax = 0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs(analytic[i]));
    const double floor = GRADCHECK_FLOOR * amax + 1e-30;
    double num_at = 0;
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        const float keep = p[i];
        const float up = keep + eps, down = keep - eps;
        p[i] = up;
        const double l_up = f(ctx);
        p[i] = down;
        const double l_down = f(ctx);
        p[i] = keep;
        const double num = (l_up - l_down) / ((double)up - (double)down);
        const double a = analytic[i];
        const double e = fabs(num - a) / fmax(fmax(fabs(num), fabs(a)), floor);
        if (!have || e > r.worst) {
            have = 1;
            r.worst = e;
            r.at = i;
            num_at = num;
        }
    }
    f(ctx); /* leave the workspace as at the unperturbed point */
    const int ok = r.worst <= tol;
    fprintf(ok ? stdout : stderr,
            "gradcheck %-34s %5zu elements: worst error %.2g (tol %.0e) at %zu (numeric %.6g, "
            "analytic %.6g)%s\n", what, n, r.worst, tol, r.at, num_at, (double)analytic[r.at],
            ok ? "" : ": FAILED");
    CHECK(r.worst <= tol);
    return r;
}

#endif
