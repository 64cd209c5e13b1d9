/* Every layer on small hand-computed cases, then its backward pass against central
 * finite differences of L = sum(out * R) for a random R. */
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dptrain/net/kernels.h"
#include "dptrain/net/layers.h"
#include "dptrain/util/rng.h"

static dp_rng rng;

static float *rand_buf(size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * rng_uniform(&rng);
    return p;
}

static double dotd(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- hand-computed cases ---------------------------------------------------------- */

static void test_conv_worked_example(void)
{
    /* The tutorial's worked example: a 3x3 input, a 3x3 kernel and bias 1 give one output,
     * the sum of the elementwise products plus the bias. */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float w[9] = {1, 0, -1, 1, 0, -1, 1, 0, -1};
    float b[1] = {1}, out[9], col[81];
    dp_conv_shape s = {1, 1, 3, 3, 1, 3, 3, 1, 0, 1, 1};
    conv2d_forward(out, col, in, w, b, &s);
    CHECK_NEAR(out[0], (1 - 3) + (4 - 6) + (7 - 9) + 1, 0); /* -5 */

    /* With padding 1 the output is 3x3; corners see a 2x2 window. */
    dp_conv_shape p = {1, 1, 3, 3, 1, 3, 3, 1, 1, 3, 3};
    conv2d_forward(out, col, in, w, b, &p);
    float want[9] = {1 + (2 - 0) * -1 + (5) * -1 + 0 + 0, 0, 0, 0, 0, 0, 0, 0, 0};
    /* centre: same as the unpadded case */
    CHECK_NEAR(out[4], -5, 0);
    /* top-left: window rows -1..1, cols -1..1 -> w[1][0]*0 + ... = -(2) - (5) + 1 = ... */
    want[0] = 1.0f + (0 * 1 + 1 * 0 + 2 * -1) + (0 * 1 + 4 * 0 + 5 * -1); /* -6 */
    CHECK_NEAR(out[0], want[0], 0);
    /* top-right: cols 1..3, col 3 is padding: 2*1 + 3*0 + 5*1 + 6*0 + 1 = 8 */
    CHECK_NEAR(out[2], 8, 0);

    /* Two output channels, two input channels, stride 2. */
    float in2[2 * 4 * 4], w2[2 * 2 * 2 * 2], b2[2] = {0.5f, -1}, out2[2 * 2 * 2], col2[8 * 4];
    for (int i = 0; i < 32; i++)
        in2[i] = (float)i;
    for (int i = 0; i < 16; i++)
        w2[i] = (i % 3) - 1.0f;
    dp_conv_shape s2 = {1, 2, 4, 4, 2, 2, 2, 2, 0, 2, 2};
    conv2d_forward(out2, col2, in2, w2, b2, &s2);
    for (int oc = 0; oc < 2; oc++)
        for (int oy = 0; oy < 2; oy++)
            for (int ox = 0; ox < 2; ox++) {
                double ref = b2[oc];
                for (int c = 0; c < 2; c++)
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 2; j++)
                            ref += w2[((oc * 2 + c) * 2 + i) * 2 + j] *
                                   in2[(c * 4 + oy * 2 + i) * 4 + ox * 2 + j];
                CHECK_NEAR(out2[(oc * 2 + oy) * 2 + ox], ref, 1e-5);
            }
}

static void test_pool_relu_linear_loss_cases(void)
{
    float in[16] = {1, 5, 2, 0, 3, 4, 8, 1, -1, -2, 0, 0, -3, -4, 0, 7};
    float out[4], din[16], dout[4] = {1, 2, 3, 4};
    int32_t arg[4];
    maxpool_forward(out, arg, in, 1, 1, 4, 4, 2, 2, 2, 2);
    CHECK_NEAR(out[0], 5, 0);
    CHECK_NEAR(out[1], 8, 0);
    CHECK_NEAR(out[2], -1, 0);
    CHECK_NEAR(out[3], 7, 0);
    maxpool_backward(din, dout, arg, 1, 1, 4, 4, 2, 2);
    CHECK_NEAR(din[1], 1, 0);
    CHECK_NEAR(din[6], 2, 0);
    CHECK_NEAR(din[8], 3, 0);
    CHECK_NEAR(din[15], 4, 0);
    CHECK_NEAR(dotd(din, din, 16), 1 + 4 + 9 + 16, 0); /* nothing else */
    /* ties: the first maximum wins, as in PyTorch */
    float tie[4] = {2, 2, 2, 2};
    maxpool_forward(out, arg, tie, 1, 1, 2, 2, 2, 2, 1, 1);
    CHECK(arg[0] == 0);

    float r_in[4] = {-1, 0, 2, -0.5f}, r_out[4], r_d[4] = {1, 1, 1, 1}, r_din[4];
    relu_forward(r_out, r_in, 4);
    CHECK(r_out[0] == 0 && r_out[1] == 0 && r_out[2] == 2 && r_out[3] == 0);
    relu_backward(r_din, r_d, r_out, 4);
    CHECK(r_din[0] == 0 && r_din[1] == 0 && r_din[2] == 1 && r_din[3] == 0);

    /* y = W x + b with W [2, 3] */
    float x[3] = {1, 2, 3}, W[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {1, -1}, y[2];
    linear_forward(y, x, W, b, 1, 3, 2, NULL);
    CHECK_NEAR(y[0], 1 - 3 + 1, 0);
    CHECK_NEAR(y[1], 3 - 1, 0);

    /* two equal logits: loss log 2, gradient (0.5 - 1, 0.5) */
    float z[2] = {3, 3}, dz[3];
    uint8_t label[1] = {0};
    int correct;
    double loss = softmax_xent(dz, &correct, z, label, 1, 2);
    CHECK_NEAR(loss, log(2.0), 1e-7);
    CHECK_NEAR(dz[0], -0.5, 1e-7);
    CHECK_NEAR(dz[1], 0.5, 1e-7);
    CHECK(correct == 1);
    /* large logits must not overflow */
    float big[3] = {1000, 0, -1000};
    uint8_t l2[1] = {1};
    loss = softmax_xent(dz, &correct, big, l2, 1, 3);
    CHECK_NEAR(loss, 1000.0, 1e-3);
    CHECK(correct == 0);
}

/* ---- finite-difference gradient checks --------------------------------------------- */

/* Central difference of L(p) = sum(out(p) * R) for element i of p, in double. */
typedef double (*loss_fn)(void *ctx);

static void fd_compare(const char *what, float *p, size_t n, const float *analytic, loss_fn f,
                       void *ctx, int stride)
{
    const float eps = 1e-2f;
    double worst = 0;
    for (size_t i = 0; i < n; i += (size_t)stride) {
        float keep = p[i];
        p[i] = keep + eps;
        double up = f(ctx);
        p[i] = keep - eps;
        double down = f(ctx);
        p[i] = keep;
        double num = (up - down) / (2.0 * eps);
        double diff = fabs(num - analytic[i]) / fmax(1.0, fabs(num));
        if (diff > worst)
            worst = diff;
    }
    if (!(worst < 2e-3))
        fprintf(stderr, "gradcheck %s: worst relative error %g\n", what, worst);
    CHECK(worst < 2e-3);
}

typedef struct {
    dp_conv_shape s;
    float *in, *w, *b, *out, *col, *R;
} conv_ctx;

static double conv_loss(void *v)
{
    conv_ctx *c = v;
    conv2d_forward(c->out, c->col, c->in, c->w, c->b, &c->s);
    return dotd(c->out, c->R, (size_t)c->s.B * c->s.OC * c->s.OH * c->s.OW);
}

static void gradcheck_conv(int B, int C, int H, int W, int OC, int K, int stride, int pad)
{
    conv_ctx c;
    int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    dp_conv_shape s = {B, C, H, W, OC, K, K, stride, pad, OH, OW};
    c.s = s;
    size_t nin = (size_t)B * C * H * W, nw = (size_t)OC * C * K * K, nout = (size_t)B * OC * OH * OW;
    c.in = rand_buf(nin, -1, 1);
    c.w = rand_buf(nw, -1, 1);
    c.b = rand_buf(OC, -1, 1);
    c.R = rand_buf(nout, -1, 1);
    c.out = malloc(nout * sizeof(float));
    c.col = malloc((size_t)B * C * K * K * OH * OW * sizeof(float));
    float *din = malloc(nin * sizeof(float)), *dw = calloc(nw, sizeof(float)),
          *db = calloc(OC, sizeof(float));
    float *scratch = malloc((conv2d_scratch_floats(&s) + 1) * sizeof(float) * omp_get_max_threads());
    conv_loss(&c);
    conv2d_backward(din, dw, db, c.col, c.R, c.w, scratch, &s);
    fd_compare("conv input", c.in, nin, din, conv_loss, &c, 1);
    fd_compare("conv weight", c.w, nw, dw, conv_loss, &c, 1);
    fd_compare("conv bias", c.b, OC, db, conv_loss, &c, 1);
    /* backward accumulates: a second call doubles the parameter gradients */
    conv_loss(&c);
    conv2d_backward(NULL, dw, db, c.col, c.R, c.w, scratch, &s);
    float *dw1 = calloc(nw, sizeof(float)), *db1 = calloc(OC, sizeof(float));
    conv_loss(&c);
    conv2d_backward(NULL, dw1, db1, c.col, c.R, c.w, scratch, &s);
    CHECK_NEAR(dw[0], 2 * dw1[0], 1e-4 * fabs(dw1[0]) + 1e-6);
    CHECK_NEAR(db[OC - 1], 2 * db1[OC - 1], 1e-4 * fabs(db1[OC - 1]) + 1e-6);
    free(c.in), free(c.w), free(c.b), free(c.R), free(c.out), free(c.col);
    free(din), free(dw), free(db), free(dw1), free(db1), free(scratch);
}

typedef struct {
    int B, C, H, W, K, S, OH, OW;
    float *in, *out, *R;
    int32_t *arg;
} pool_ctx;

static double pool_loss(void *v)
{
    pool_ctx *c = v;
    maxpool_forward(c->out, c->arg, c->in, c->B, c->C, c->H, c->W, c->K, c->S, c->OH, c->OW);
    return dotd(c->out, c->R, (size_t)c->B * c->C * c->OH * c->OW);
}

static void gradcheck_pool(int K, int S)
{
    pool_ctx c = {2, 3, 7, 6, K, S, (7 - K) / S + 1, (6 - K) / S + 1, 0, 0, 0, 0};
    size_t nin = (size_t)c.B * c.C * c.H * c.W, nout = (size_t)c.B * c.C * c.OH * c.OW;
    /* distinct values spaced well beyond eps so no window changes its maximum */
    c.in = malloc(nin * sizeof(float));
    int64_t *perm = malloc(nin * sizeof(int64_t));
    for (size_t i = 0; i < nin; i++)
        perm[i] = (int64_t)i;
    rng_shuffle(&rng, perm, (int64_t)nin);
    for (size_t i = 0; i < nin; i++)
        c.in[i] = 0.1f * (float)perm[i];
    c.out = malloc(nout * sizeof(float));
    c.arg = malloc(nout * sizeof(int32_t));
    c.R = rand_buf(nout, -1, 1);
    float *din = malloc(nin * sizeof(float));
    pool_loss(&c);
    maxpool_backward(din, c.R, c.arg, c.B, c.C, c.H, c.W, c.OH, c.OW);
    fd_compare("maxpool input", c.in, nin, din, pool_loss, &c, 1);
    free(c.in), free(c.out), free(c.arg), free(c.R), free(din), free(perm);
}

typedef struct {
    size_t n;
    float *in, *out, *R;
} relu_ctx;

static double relu_loss(void *v)
{
    relu_ctx *c = v;
    relu_forward(c->out, c->in, c->n);
    return dotd(c->out, c->R, c->n);
}

static void gradcheck_relu(void)
{
    relu_ctx c = {200, 0, 0, 0};
    c.in = rand_buf(c.n, -1, 1);
    for (size_t i = 0; i < c.n; i++) /* keep clear of the kink at 0 */
        if (fabsf(c.in[i]) < 0.05f)
            c.in[i] = 0.5f;
    c.out = malloc(c.n * sizeof(float));
    c.R = rand_buf(c.n, -1, 1);
    float *din = malloc(c.n * sizeof(float));
    relu_loss(&c);
    relu_backward(din, c.R, c.out, c.n);
    fd_compare("relu input", c.in, c.n, din, relu_loss, &c, 1);
    free(c.in), free(c.out), free(c.R), free(din);
}

typedef struct {
    int B, I, O;
    float *in, *w, *b, *out, *R, *lanes;
} fc_ctx;

static double fc_loss(void *v)
{
    fc_ctx *c = v;
    linear_forward(c->out, c->in, c->w, c->b, c->B, c->I, c->O, c->lanes);
    return dotd(c->out, c->R, (size_t)c->B * c->O);
}

static void gradcheck_linear(int use_lanes)
{
    fc_ctx c = {5, 37, 11, 0, 0, 0, 0, 0, 0};
    c.in = rand_buf((size_t)c.B * c.I, -1, 1);
    c.w = rand_buf((size_t)c.O * c.I, -1, 1);
    c.b = rand_buf(c.O, -1, 1);
    c.R = rand_buf((size_t)c.B * c.O, -1, 1);
    c.out = malloc((size_t)c.B * c.O * sizeof(float));
    c.lanes = use_lanes ? malloc(linear_scratch_floats(c.B, c.O, omp_get_max_threads()) * sizeof(float))
                        : NULL;
    float *din = malloc((size_t)c.B * c.I * sizeof(float));
    float *dw = calloc((size_t)c.O * c.I, sizeof(float)), *db = calloc(c.O, sizeof(float));
    fc_loss(&c);
    linear_backward(din, dw, db, c.R, c.in, c.w, c.B, c.I, c.O);
    fd_compare("linear input", c.in, (size_t)c.B * c.I, din, fc_loss, &c, 1);
    fd_compare("linear weight", c.w, (size_t)c.O * c.I, dw, fc_loss, &c, 1);
    fd_compare("linear bias", c.b, c.O, db, fc_loss, &c, 1);
    free(c.in), free(c.w), free(c.b), free(c.R), free(c.out), free(din), free(dw), free(db);
    free(c.lanes);
}

typedef struct {
    int B, NC;
    float *z;
    uint8_t *y;
} xent_ctx;

static double xent_loss(void *v)
{
    xent_ctx *c = v;
    return softmax_xent(NULL, NULL, c->z, c->y, c->B, c->NC);
}

static void gradcheck_xent(void)
{
    xent_ctx c = {4, 10, 0, 0};
    c.z = rand_buf(40, -3, 3);
    uint8_t y[4] = {0, 9, 3, 3};
    c.y = y;
    float dz[40];
    softmax_xent(dz, NULL, c.z, y, 4, 10);
    fd_compare("softmax cross-entropy", c.z, 40, dz, xent_loss, &c, 1);
    free(c.z);
}

/* A label past the classes would read past the logits: debug and sanitizer builds stop
 * at the assertion inside the loss (release builds rely on the driver's check). */
static void test_label_bound_asserted(void)
{
#ifdef NDEBUG
    printf("label bound: assert not compiled in (NDEBUG), checked in debug/sanitizer builds\n");
#else
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        float z[3] = {0, 1, 2};
        uint8_t y[1] = {3}; /* 3 classes: labels 0..2 */
        softmax_xent(NULL, NULL, z, y, 1, 3);
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

/* The kernel variants that promise the same bits deliver them: blocked and plain dot
 * products, overwriting and accumulating products, and the 8x8 transpose. */
static void test_kernels_agree(void)
{
    const int M = 7, N = 5, K = 1301;
    float *A = rand_buf((size_t)M * K, -1, 1), *B = rand_buf((size_t)N * K, -1, 1);
    float c1[35] = {0}, c2[35] = {0}, *lanes = malloc(sizeof(float) * 8 * M * N);
    float *pack = malloc(sizeof(float) * gemm_nt_pack_floats(M, N));
    gemm_nt_acc(M, N, K, A, K, B, K, c1, N);
    gemm_nt_acc_lanes(M, N, K, A, K, B, K, c2, N, lanes, pack);
    free(pack);
    CHECK(memcmp(c1, c2, sizeof c1) == 0);
    CHECK_NEAR(c1[12], dotd(A + 2 * K, B + 2 * K, K), 1e-3);
    /* C = A B (33 x 21 x 19, masked tails) equals zeroed C += A B, and the reference */
    const int m = 33, n = 21, k = 19;
    float *X = rand_buf((size_t)m * k, -1, 1), *Y = rand_buf((size_t)k * n, -1, 1);
    float *d1 = rand_buf((size_t)m * n, -1, 1), *d2 = calloc((size_t)m * n, sizeof(float));
    gemm_nn(m, n, k, X, k, Y, n, d1, n);
    gemm_nn_acc(m, n, k, X, k, Y, n, d2, n);
    CHECK(memcmp(d1, d2, sizeof(float) * m * n) == 0);
    double ref = 0;
    for (int q = 0; q < k; q++)
        ref += (double)X[5 * k + q] * Y[q * n + 20];
    CHECK_NEAR(d1[5 * n + 20], ref, 1e-4);
    /* a long inner dimension is worked on in slices: the same bits as two calls by hand */
    const int kl = 700;
    float *XL = rand_buf((size_t)m * kl, -1, 1), *YL = rand_buf((size_t)kl * n, -1, 1);
    float *e1 = calloc((size_t)m * n, sizeof(float)), *e2 = calloc((size_t)m * n, sizeof(float));
    gemm_nn(m, n, kl, XL, kl, YL, n, e1, n);
    gemm_nn(m, n, 300, XL, kl, YL, n, e2, n);
    gemm_nn_acc(m, n, kl - 300, XL + 300, kl, YL + (size_t)300 * n, n, e2, n);
    CHECK(memcmp(e1, e2, sizeof(float) * m * n) == 0);
    free(XL), free(YL), free(e1), free(e2);
    float *T = malloc(sizeof(float) * m * n);
    transpose(d1, m, n, T);
    int same = 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            same &= T[j * m + i] == d1[i * n + j];
    CHECK(same);
    free(A), free(B), free(lanes), free(X), free(Y), free(d1), free(d2), free(T);
}

/* relu then maxpool in one pass gives the same bits as the two layers, values and
 * gradients, negatives, ties and NaN included. */
static void test_relu_maxpool_fused(void)
{
    const int B = 2, C = 3, H = 26, W = 26, OH = 13, OW = 13;
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * OH * OW;
    float *in = rand_buf(nin, -1, 1), *r = malloc(nin * 4), *a = malloc(nout * 4),
          *b = malloc(nout * 4), *dout = rand_buf(nout, -1, 1), *d1 = malloc(nin * 4),
          *d2 = malloc(nin * 4), *dr = malloc(nin * 4);
    int32_t *ia = malloc(nout * 4), *ib = malloc(nout * 4);
    for (size_t i = 0; i < nin; i += 7)
        in[i] = 0.0f; /* ties at zero */
    in[5] = NAN;
    relu_forward(r, in, nin);
    maxpool_forward(a, ia, r, B, C, H, W, 2, 2, OH, OW);
    relu_maxpool_forward(b, ib, in, B, C, H, W, 2, 2, OH, OW);
    CHECK(memcmp(a, b, nout * 4) == 0);
    CHECK(isnan(b[2])); /* the window holding the NaN */
    maxpool_backward(dr, dout, ia, B, C, H, W, OH, OW);
    relu_backward(d1, dr, r, nin);
    relu_maxpool_backward(d2, dout, b, ib, B, C, H, W, OH, OW);
    CHECK(memcmp(d1, d2, nin * 4) == 0);
    free(in), free(r), free(a), free(b), free(dout), free(d1), free(d2), free(dr), free(ia), free(ib);
}

int main(void)
{
    rng_seed(&rng, 7, 0, 0);
    test_label_bound_asserted(); /* first: it forks, before OpenMP starts threads */
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        test_conv_worked_example();
        test_pool_relu_linear_loss_cases();
        gradcheck_conv(2, 3, 7, 6, 4, 3, 1, 0);
        gradcheck_conv(3, 2, 8, 9, 5, 3, 2, 1); /* stride and padding */
        gradcheck_conv(1, 1, 5, 5, 2, 1, 1, 0); /* 1x1 kernel */
        gradcheck_conv(2, 1, 9, 9, 3, 3, 1, 1); /* few columns: the dot-product path */
        gradcheck_conv(2, 2, 6, 6, 3, 4, 3, 2);
        test_relu_maxpool_fused();
        gradcheck_pool(2, 2);
        gradcheck_pool(3, 2); /* overlapping windows */
        gradcheck_relu();
        gradcheck_linear(0);
        gradcheck_linear(1);
        test_kernels_agree();
        gradcheck_xent();
    }
    return check_exit("test_layers");
}
