/* test_gradsync: the exact gradient sum (gradsync.h). The sum of group partials does not
 * depend on the order or the grouping of the work, stays within its documented bound of
 * a float64 reference, recovers from a partial above its bound by asking for the step
 * again, hands NaN on, and leaves its accumulator zero for the next step; a layer that
 * sums its partials itself through the fixed hooks gets the moves' result. One rank: the
 * integer reduction over ranks is exact by construction (tested end to end by
 * mpi_training). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/net/kernels.h"
#include "dptrain/util/rng.h"

enum { T0 = 37, T1 = 5, N = T0 + T1, G = 13 };

static float partial[G][N];

/* Partials of very different magnitudes and signs: exponents from -40 to -1. */
static void make_partials(uint64_t seed, float scale)
{
    dp_rng r;
    rng_seed(&r, seed, 1, 2);
    for (int g = 0; g < G; g++)
        for (int i = 0; i < N; i++) {
            float m = rng_uniform(&r) - 0.5f;
            int e = -(int)rng_below(&r, 40);
            partial[g][i] = scale * ldexpf(m, e);
        }
}

static dp_gradsync *make(float *grads, int E)
{
    /* one segment holding two tensors, as a layer's weight and bias */
    dp_grad_segment seg = {0, N, 0};
    dp_grad_tensor t[2] = {{0, T0}, {T0, T1}};
    dp_gradsync *gs = NULL;
    dp_err err;
    CHECK(gradsync_create(&gs, grads, N, &seg, 1, t, 2, 1024, 1, 1, &err) == 0);
    int e[2] = {E, E};
    gradsync_set_exponents(gs, e);
    return gs;
}

/* Run one step with the groups in the given order; returns gradsync_finish's answer. Each
 * group's partial is taken whole by the layer hook on odd groups, in blocks (a 5 x 7 block
 * of the first tensor, its last 2, the second tensor) on even ones. */
static int step(dp_gradsync *gs, float *grads, const int *order)
{
    gradsync_begin(gs, G);
    gradsync_pass(gs, 1);
    for (int k = 0; k < G; k++) {
        for (int i = 0; i < N; i++)
            grads[i] += partial[order[k]][i]; /* a backward "accumulates" */
        if (k % 2) {
            gradsync_partial(gs, 0);
        } else {
            gradsync_move(gs, grads, 5, 7, 7);
            gradsync_move(gs, grads + 35, 1, T0 - 35, 0);
            gradsync_move(gs, grads + T0, 1, T1, 0);
        }
        for (int i = 0; i < N; i++)
            CHECK(grads[i] == 0.0f); /* taken, and zeroed for the next group */
    }
    gradsync_final(gs, 0);
    double waited;
    return gradsync_finish(gs, &waited);
}

static void test_order_and_bound(void)
{
    make_partials(7, 1.0f);
    int order[G], reverse[G];
    for (int k = 0; k < G; k++)
        order[k] = k, reverse[k] = G - 1 - k;
    float a[N], b[N];
    dp_gradsync *ga = make(a, 0), *gb = make(b, 0);
    CHECK(step(ga, a, order) == 0);
    CHECK(step(gb, b, reverse) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0); /* the order of the groups does not matter */
    /* within the bound of the float64 sum: G * quantum / 2, plus half an ulp */
    double quantum = gradsync_quantum(0, G);
    for (int i = 0; i < N; i++) {
        double ref = 0;
        for (int g = 0; g < G; g++)
            ref += partial[g][i];
        double err = fabs((double)a[i] - ref);
        double ulp = ldexp(1.0, ilogb(fabs(ref) > 0 ? ref : DBL_MIN) - 23);
        CHECK(err <= 0.5 * ulp + G * quantum / 2);
        if (fabs(ref) > 1e-6) /* sums well above the quantum: within one ulp */
            CHECK(err <= ulp);
    }
    /* a float sum in another order differs: the reason for all this */
    int differs = 0;
    for (int i = 0; i < N; i++) {
        float f1 = 0, f2 = 0;
        for (int g = 0; g < G; g++)
            f1 += partial[g][i], f2 += partial[G - 1 - g][i];
        differs |= f1 != f2;
    }
    CHECK(differs);
    gradsync_free(ga);
    gradsync_free(gb);
}

/* A partial above 2^E: the step must be computed again, then it is exact. */
static void test_overflow_redo(void)
{
    make_partials(9, 64.0f); /* partials up to 32: above the first bound of 2^0 */
    int order[G];
    for (int k = 0; k < G; k++)
        order[k] = k;
    float a[N], b[N];
    dp_gradsync *ga = make(a, 0), *gb = make(b, 20);
    CHECK(step(ga, a, order) == 1);          /* asks for the step again */
    int e[2];
    gradsync_get_exponents(ga, e);
    CHECK(e[0] >= 6 && e[0] <= 6 + GRADSYNC_HEADROOM); /* raised to what was seen */
    CHECK(step(ga, a, order) == 0);
    /* a run that had the bound high enough from the start differs only within the bound */
    CHECK(step(gb, b, order) == 0);
    for (int i = 0; i < N; i++)
        CHECK(fabs((double)a[i] - b[i]) <= 2 * G * gradsync_quantum(20, G) + 1e-6 * fabs(a[i]));
    gradsync_free(ga);
    gradsync_free(gb);
}

static void test_nan(void)
{
    make_partials(11, 1.0f);
    partial[4][T0 + 2] = NAN;
    int order[G];
    for (int k = 0; k < G; k++)
        order[k] = k;
    float a[N];
    dp_gradsync *ga = make(a, 0);
    CHECK(step(ga, a, order) == 0);
    CHECK(isnan(a[T0])); /* the whole tensor holding it */
    CHECK(!isnan(a[0]) && !isnan(a[T0 - 1]));
    int bad = 7;
    CHECK(gradsync_nonfinite(ga, &bad) == 1 && bad == 1); /* the verdict the guard takes */
    gradsync_free(ga);
}

/* Steps in a row on one gradsync: gradsync_finish leaves the accumulator zero for the
 * next (gradsync_begin no longer clears it), its values and its extras alike. A step after
 * a normal one, and after one that handed a NaN on, gives the bits of a fresh gradsync
 * with the same exponents. */
static void test_steps_in_a_row(void)
{
    int order[G];
    for (int k = 0; k < G; k++)
        order[k] = k;
    float a[N], b[N];
    dp_gradsync *ga = make(a, 0);
    for (int before_nan = 0; before_nan < 2; before_nan++) {
        make_partials(13, 1.0f);
        if (before_nan)
            partial[2][3] = NAN;
        CHECK(step(ga, a, order) == 0);
        CHECK(isnan(a[3]) == before_nan);
        int bad = 7;
        CHECK(gradsync_nonfinite(ga, &bad) == before_nan && bad == (before_nan ? 0 : -1));
        make_partials(15, 1.0f);
        int e[2];
        gradsync_get_exponents(ga, e);
        CHECK(step(ga, a, order) == 0); /* the second step in a row */
        dp_gradsync *gb = make(b, 0);
        gradsync_set_exponents(gb, e);
        CHECK(step(gb, b, order) == 0); /* a fresh one */
        CHECK(memcmp(a, b, sizeof a) == 0);
        gradsync_free(gb);
    }
    gradsync_free(ga);
}

/* A layer that moves its groups' partials into the sum itself (the fixed hooks, as the fc
 * layer's gemm_tn_fixed): the block it opens is known zero in the step's first pass only,
 * and what it adds and hands back (maximum, counts) gives the step the moves give. Here
 * the weight goes through the hooks, in two passes of the groups, the bias through moves. */
static void test_fixed_hooks(void)
{
    make_partials(11, 1.0f);
    float a[N], b[N];
    dp_gradsync *ga = make(a, 0), *gb = make(b, 0);
    int order[G];
    for (int k = 0; k < G; k++)
        order[k] = k;
    while (step(ga, a, order))
        ;
    double waited;
    int again, tries = 0;
    do {
        gradsync_begin(gb, G);
        for (int pass = 0; pass < 2; pass++) {
            const int g0 = pass ? 6 : 0, g1 = pass ? G : 6;
            gradsync_pass(gb, pass == 1);
            dp_fixed_block blk;
            CHECK(gradsync_on_fixed_open(gb, b, &blk) == 0);
            CHECK(blk.zero == (pass == 0));
            for (int g = g0; g < g1; g++) {
                float w[T0];
                memcpy(w, partial[g], sizeof w);
                fixed_accumulate(w, blk.acc, T0, blk.scale, blk.bound, &blk.maxabs, &blk.over,
                                 &blk.nonfinite);
            }
            gradsync_on_fixed_close(gb, b, &blk);
            for (int g = g0; g < g1; g++) {
                for (int i = T0; i < N; i++)
                    b[i] += partial[g][i];
                gradsync_move(gb, b + T0, 1, T1, 0);
            }
        }
        gradsync_final(gb, 0);
        again = gradsync_finish(gb, &waited);
    } while (again && ++tries < 3);
    CHECK(!again);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int ea[2], eb[2];
    gradsync_get_exponents(ga, ea);
    gradsync_get_exponents(gb, eb);
    CHECK(ea[0] == eb[0] && ea[1] == eb[1]); /* the same maximum seen */
    gradsync_free(ga);
    gradsync_free(gb);
}

int main(void)
{
    test_order_and_bound();
    test_overflow_redo();
    test_nan();
    test_steps_in_a_row();
    test_fixed_hooks();
    return check_exit("test_gradsync");
}
