/* --conv-algorithm winograd: Winograd's F(4x4, 3x3) for the 3x3 convolutions.
 *
 * Per shape (MNIST's conv2 with and without pooling, a shape whose tiles overhang the
 * output on both sides and whose channels fill no vector, and one with more channels than
 * a transform holds at once): forward, input, weight and bias gradients within 2e-5 of a
 * double-precision convolution and near direct's, yet not direct's bits (the algorithm is in
 * use); the bias gradient exactly direct's (no product); 1, 2 and 3 threads bit for bit;
 * every instruction-set path bit for bit; central finite differences of the Winograd
 * forward itself against its backward (the backward is that forward's adjoint, not
 * direct's); the fused conv + relu and conv + relu + max pooling and the backward over
 * groups (threads owning whole groups and not) give the bits of the plain layers; shapes
 * it does not suit (1 input channel, 5x5, stride 2, padding, bf16) stay direct, bit for
 * bit; the selection refuses an unknown name and says which it knows. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bufs.h"
#include "check.h"
#include "conv_run.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/layers.h"
#include "gradcheck.h"

static dp_conv_shape shape(int B, int C, int H, int W, int OC, int K, int stride, int pad)
{
    dp_conv_shape s = {B, C, H, W, OC, K, K, stride, pad, (H + 2 * pad - K) / stride + 1,
                       (W + 2 * pad - K) / stride + 1};
    return s;
}

static void select_algo(const char *name)
{
    dp_err err;
    if (dp_conv_algorithm_select(name, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
    }
}

/* max |x - y| over max |y| */
static double rel_diff(const float *x, const double *y, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(x[i] - y[i]));
        m = fmax(m, fabs(y[i]));
    }
    return m > 0 ? d / m : d;
}

static double rel_diff_f(const float *x, const float *y, size_t n)
{
    double *d = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++)
        d[i] = y[i];
    const double r = rel_diff(x, d, n);
    free(d);
    return r;
}

/* The convolution and its gradients in double, from the definition. */
static void reference(const dp_conv_shape *s, const float *in, const float *w, const float *b,
                      const float *dout, double *out, double *din, double *dw, double *db)
{
    const int C = s->C, H = s->H, W = s->W, OC = s->OC, OH = s->OH, OW = s->OW;
    memset(din, 0, sizeof(double) * in_len(s));
    memset(dw, 0, sizeof(double) * w_len(s));
    memset(db, 0, sizeof(double) * OC);
    for (int n = 0; n < s->B; n++)
        for (int k = 0; k < OC; k++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const size_t o = (((size_t)n * OC + k) * OH + oy) * OW + ox;
                    double acc = b[k];
                    db[k] += dout[o];
                    for (int c = 0; c < C; c++)
                        for (int p = 0; p < 9; p++) {
                            const size_t x = (((size_t)n * C + c) * H + oy + p / 3) * W + ox +
                                             p % 3;
                            const size_t wi = ((size_t)k * C + c) * 9 + p;
                            acc += (double)w[wi] * in[x];
                            din[x] += (double)dout[o] * w[wi];
                            dw[wi] += (double)dout[o] * in[x];
                        }
                    out[o] = acc;
                }
}

/* One shape: the reference, direct, threads and paths. */
static void check_shape(const dp_conv_shape *s, uint64_t seed)
{
    rng_seed(&rng, seed, 3, 9);
    float *in = rand_buf(in_len(s)), *w = rand_buf(w_len(s)), *b = rand_buf((size_t)s->OC);
    float *dout = rand_buf(out_len(s));
    for (size_t i = 0; i < w_len(s); i++)
        w[i] *= 0.2f;
    double *out = malloc(sizeof(double) * out_len(s)), *din = malloc(sizeof(double) * in_len(s));
    double *dw = malloc(sizeof(double) * w_len(s)), *db = malloc(sizeof(double) * s->OC);
    reference(s, in, w, b, dout, out, din, dw, db);
    omp_set_num_threads(1);
    select_algo("direct");
    conv_result d = run_conv(s, in, w, b, dout, NULL, NULL);
    select_algo("winograd");
    conv_result r = run_conv(s, in, w, b, dout, NULL, NULL);
    const double e[4] = {rel_diff(r.out, out, out_len(s)), rel_diff(r.din, din, in_len(s)),
                         rel_diff(r.dw, dw, w_len(s)), rel_diff(r.db, db, (size_t)s->OC)};
    printf("shape %d x %dx%dx%d -> %dx%dx%d: error against double: out %.1e din %.1e dw %.1e "
           "db %.1e\n", s->B, s->C, s->H, s->W, s->OC, s->OH, s->OW, e[0], e[1], e[2], e[3]);
    CHECK(e[0] < 2e-5 && e[1] < 2e-5 && e[2] < 2e-5 && e[3] < 2e-5);
    /* not direct's bits: the algorithm runs (the bias gradient is no product: the same) */
    CHECK(!same(r.out, d.out, sizeof(float) * out_len(s)));
    CHECK(!same(r.din, d.din, sizeof(float) * in_len(s)));
    CHECK(!same(r.dw, d.dw, sizeof(float) * w_len(s)));
    CHECK(same(r.db, d.db, sizeof(float) * s->OC));
    CHECK(rel_diff_f(r.out, d.out, out_len(s)) < 2e-5);
    for (int t = 2; t <= 3; t++) {
        omp_set_num_threads(t);
        conv_result rt = run_conv(s, in, w, b, dout, NULL, NULL);
        if (!same_result(&r, &rt, s)) {
            fprintf(stderr, "shape %dx%dx%d: %d threads differ from 1\n", s->C, s->H, s->W, t);
            CHECK(0);
        }
        free_result(&rt);
    }
    omp_set_num_threads(1);
    for (int p = 0; dp_isa_names[p]; p++) {
        dp_err err;
        if (!dp_isa_available(dp_isa_names[p])) {
            printf("  %s: skipped, this CPU lacks it\n", dp_isa_names[p]);
            continue;
        }
        CHECK(dp_isa_select(dp_isa_names[p], &err) == 0);
        conv_result rp = run_conv(s, in, w, b, dout, NULL, NULL);
        if (!same_result(&r, &rp, s)) {
            fprintf(stderr, "shape %dx%dx%d: path %s differs\n", s->C, s->H, s->W,
                    dp_isa_names[p]);
            CHECK(0);
        }
        free_result(&rp);
    }
    CHECK(dp_isa_select(NULL, NULL) == 0);
    free_result(&d), free_result(&r);
    free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
}

/* Finite differences of the Winograd forward against its backward, for the loss
 * sum(out * dout). */
typedef struct {
    dp_conv_shape s;
    float *in, *w, *b, *dout, *out, *col, *scratch;
} fd_ctx;

static double fd_loss(void *p)
{
    fd_ctx *c = p;
    conv2d_forward(c->out, c->col, c->in, c->w, c->b, c->scratch, &c->s);
    double l = 0;
    for (size_t i = 0; i < out_len(&c->s); i++)
        l += (double)c->out[i] * c->dout[i];
    return l;
}

static void check_gradients(void)
{
    select_algo("winograd");
    omp_set_num_threads(1);
    fd_ctx c = {.s = shape(2, 3, 10, 9, 4, 3, 1, 0)};
    const dp_conv_shape *s = &c.s;
    rng_seed(&rng, 77, 1, 1);
    c.in = rand_buf(in_len(s)), c.w = rand_buf(w_len(s)), c.b = rand_buf((size_t)s->OC);
    c.dout = rand_buf(out_len(s));
    c.out = malloc(sizeof(float) * out_len(s));
    c.col = malloc(sizeof(float) * in_len(s));
    c.scratch = malloc(sizeof(float) * conv2d_scratch_floats(s));
    float *din = malloc(sizeof(float) * in_len(s)), *dw = calloc(w_len(s), sizeof(float));
    float *db = calloc((size_t)s->OC, sizeof(float));
    fd_loss(&c);
    conv2d_backward(din, dw, db, c.col, c.dout, c.w, c.scratch, s);
    gradcheck("winograd conv input", c.in, in_len(s), din, 1.0f / 64, fd_loss, &c, 2e-2);
    gradcheck("winograd conv weight", c.w, w_len(s), dw, 1.0f / 64, fd_loss, &c, 2e-2);
    gradcheck("winograd conv bias", c.b, (size_t)s->OC, db, 1.0f / 64, fd_loss, &c, 2e-2);
    free(c.in), free(c.w), free(c.b), free(c.dout), free(c.out), free(c.col), free(c.scratch);
    free(din), free(dw), free(db);
}

/* The fused layers and the groups under Winograd give the plain layers' bits. */
static void check_fused_and_groups(void)
{
    select_algo("winograd");
    const int B = 6;
    const dp_conv_shape s = shape(B, 32, 13, 13, 64, 3, 1, 0);
    const dp_pool_shape pl = {2, 2, s.OH / 2, s.OW / 2};
    const size_t nin = in_len(&s), nconv = out_len(&s), npool = (size_t)B * 64 * pl.OH * pl.OW;
    rng_seed(&rng, 5, 5, 5);
    float *in = rand_buf(nin), *w = rand_buf(w_len(&s)), *b = rand_buf(64);
    float *dpool = rand_buf(npool);
    float *drelu = rand_buf(nconv);
    for (size_t i = 0; i < w_len(&s); i++)
        w[i] *= 0.2f;
    float *scratch = malloc(sizeof(float) * conv2d_pool_scratch_floats(&s) * 3);
    float *conv = malloc(sizeof(float) * nconv), *dconv = malloc(sizeof(float) * nconv);
    float *p1 = malloc(sizeof(float) * npool), *p2 = malloc(sizeof(float) * npool);
    int32_t *a1 = malloc(sizeof(int32_t) * npool), *a2 = malloc(sizeof(int32_t) * npool);
    float *r1 = malloc(sizeof(float) * nconv), *r2 = malloc(sizeof(float) * nconv);
    float *din1 = malloc(sizeof(float) * nin), *din2 = malloc(sizeof(float) * nin);
    float *dw1 = calloc(w_len(&s), sizeof(float)), *dw2 = calloc(w_len(&s), sizeof(float));
    float *db1 = calloc(64, sizeof(float)), *db2 = calloc(64, sizeof(float));
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        /* conv + relu + max pooling */
        memset(dw1, 0, sizeof(float) * w_len(&s)), memset(db1, 0, sizeof(float) * 64);
        memset(dw2, 0, sizeof(float) * w_len(&s)), memset(db2, 0, sizeof(float) * 64);
        conv2d_forward(conv, in, in, w, b, scratch, &s);
        relu_maxpool_forward(p1, a1, conv, B, 64, s.OH, s.OW, pl.K, pl.stride, pl.OH, pl.OW);
        relu_maxpool_backward(dconv, dpool, p1, a1, B, 64, s.OH, s.OW, pl.OH, pl.OW);
        conv2d_backward(din1, dw1, db1, in, dconv, w, scratch, &s);
        conv2d_relu_maxpool_forward(p2, a2, in, in, w, b, scratch, &s, &pl);
        conv2d_relu_maxpool_backward(din2, dw2, db2, in, dpool, p2, a2, w, scratch, NULL, &s, &pl);
        CHECK(same(p1, p2, sizeof(float) * npool) && same(din1, din2, sizeof(float) * nin) &&
              same(dw1, dw2, sizeof(float) * w_len(&s)) && same(db1, db2, sizeof(float) * 64));
        /* conv + relu */
        memset(dw1, 0, sizeof(float) * w_len(&s)), memset(db1, 0, sizeof(float) * 64);
        memset(dw2, 0, sizeof(float) * w_len(&s)), memset(db2, 0, sizeof(float) * 64);
        conv2d_forward(conv, in, in, w, b, scratch, &s);
        relu_forward(r1, conv, nconv);
        relu_backward(dconv, drelu, r1, nconv);
        conv2d_backward(din1, dw1, db1, in, dconv, w, scratch, &s);
        conv2d_relu_forward(r2, in, in, w, b, scratch, &s);
        conv2d_relu_backward(din2, dw2, db2, in, drelu, r2, w, scratch, NULL, &s);
        CHECK(same(r1, r2, sizeof(float) * nconv) && same(din1, din2, sizeof(float) * nin) &&
              same(dw1, dw2, sizeof(float) * w_len(&s)) && same(db1, db2, sizeof(float) * 64));
    }
    free(in), free(w), free(b), free(dpool), free(drelu), free(scratch), free(conv), free(dconv);
    free(p1), free(p2), free(a1), free(a2), free(r1), free(r2), free(din1), free(din2);
    free(dw1), free(dw2), free(db1), free(db2);
}

/* Shapes Winograd does not suit run direct under it, bit for bit. */
static void check_direct_shapes(void)
{
    const dp_conv_shape shapes[] = {
        shape(3, 1, 12, 12, 8, 3, 1, 0), /* 9 columns: straight from the image */
        shape(3, 4, 12, 12, 8, 5, 1, 0), /* 5x5 */
        shape(3, 4, 12, 12, 8, 3, 2, 0), /* stride 2 */
        shape(3, 4, 12, 12, 8, 3, 1, 1), /* padding */
    };
    omp_set_num_threads(2);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const dp_conv_shape *s = &shapes[k];
        rng_seed(&rng, 40 + k, 2, 2);
        float *in = rand_buf(in_len(s)), *w = rand_buf(w_len(s)), *b = rand_buf((size_t)s->OC);
        float *dout = rand_buf(out_len(s));
        select_algo("direct");
        conv_result d = run_conv(s, in, w, b, dout, NULL, NULL);
        select_algo("winograd");
        conv_result r = run_conv(s, in, w, b, dout, NULL, NULL);
        CHECK(same_result(&d, &r, s));
        free_result(&d), free_result(&r);
        free(in), free(w), free(b), free(dout);
    }
    /* under bf16 (its scalar emulation, which every CPU has) the convolutions stay direct */
    dp_err err;
    const dp_conv_shape s = shape(2, 8, 10, 10, 6, 3, 1, 0);
    rng_seed(&rng, 50, 2, 2);
    float *in = rand_buf(in_len(&s)), *w = rand_buf(w_len(&s)), *b = rand_buf((size_t)s.OC);
    float *dout = rand_buf(out_len(&s));
    CHECK(dp_isa_select("scalar", &err) == 0 && dp_precision_select("bf16", &err) == 0);
    select_algo("direct");
    conv_result d = run_conv(&s, in, w, b, dout, NULL, NULL);
    select_algo("winograd");
    conv_result r = run_conv(&s, in, w, b, dout, NULL, NULL);
    CHECK(same_result(&d, &r, &s));
    CHECK(dp_precision_select("fp32", &err) == 0 && dp_isa_select(NULL, &err) == 0);
    free_result(&d), free_result(&r);
    free(in), free(w), free(b), free(dout);
    omp_set_num_threads(1);
}

static void check_selection(void)
{
    dp_err err;
    CHECK(dp_conv_algorithm_select(NULL, &err) == 0);
    CHECK(strcmp(dp_conv_algorithm_name(), "direct") == 0);
    CHECK(dp_conv_algorithm_select("winograd", &err) == 0);
    CHECK(strcmp(dp_conv_algorithm_name(), "winograd") == 0);
    CHECK(dp_conv_algorithm_select("fft", &err) == -1);
    CHECK(strstr(err.msg, "--conv-algorithm") && strstr(err.msg, "'fft'") &&
          strstr(err.msg, "direct or winograd"));
    CHECK(strcmp(dp_conv_algorithm_name(), "winograd") == 0); /* a refusal changes nothing */
    CHECK(dp_conv_algorithm_select("direct", &err) == 0);
    CHECK(strcmp(dp_conv_algorithm_name(), "direct") == 0);
}

int main(void)
{
    check_selection();
    const dp_conv_shape shapes[] = {
        shape(5, 32, 26, 26, 64, 3, 1, 0), /* nopool's conv2: whole tiles */
        shape(5, 32, 13, 13, 64, 3, 1, 0), /* the reference's: 11 = 4 + 4 + 3 */
        shape(3, 3, 11, 9, 5, 3, 1, 0),    /* tiles overhang both ways; 3 and 5 channels */
        shape(2, 70, 8, 8, 67, 3, 1, 0),   /* more channels than a transform holds at once */
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        check_shape(&shapes[k], 100 + k);
    check_gradients();
    check_fused_and_groups();
    check_direct_shapes();
    select_algo("direct");
    return check_exit("test_winograd");
}
