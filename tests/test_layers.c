/* Every layer on small hand-computed cases, then every layer kind, through its table
 * entry, against central finite differences of L = sum(out * R) for a random R (one row
 * per kind and code path in fd_rows; errors as in gradcheck.h). */
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dptrain/net/kernels.h"
#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"
#include "gradcheck.h"
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

/* A conv's per-thread scratch for the threads of this moment (caller frees). */
static float *conv_scratch(const dp_conv_shape *s)
{
    return malloc(sizeof(float) * conv2d_scratch_floats(s) * (size_t)omp_get_max_threads());
}

static void test_conv_worked_example(void)
{
    /* The tutorial's worked example: a 3x3 input, a 3x3 kernel and bias 1 give one output,
     * the sum of the elementwise products plus the bias. */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float w[9] = {1, 0, -1, 1, 0, -1, 1, 0, -1};
    float b[1] = {1}, out[9], col[81];
    dp_conv_shape s = {1, 1, 3, 3, 1, 3, 3, 1, 0, 1, 1};
    float *scratch = conv_scratch(&s);
    conv2d_forward(out, col, in, w, b, scratch, &s);
    free(scratch);
    CHECK_NEAR(out[0], (1 - 3) + (4 - 6) + (7 - 9) + 1, 0); /* -5 */

    /* With padding 1 the output is 3x3; corners see a 2x2 window. */
    dp_conv_shape p = {1, 1, 3, 3, 1, 3, 3, 1, 1, 3, 3};
    scratch = conv_scratch(&p);
    conv2d_forward(out, col, in, w, b, scratch, &p);
    free(scratch);
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
    scratch = conv_scratch(&s2);
    conv2d_forward(out2, col2, in2, w2, b2, scratch, &s2);
    free(scratch);
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
    double loss = softmax_xent(dz, &correct, z, label, 1, 2, 1.0);
    CHECK_NEAR(loss, log(2.0), 1e-7);
    CHECK_NEAR(dz[0], -0.5, 1e-7);
    CHECK_NEAR(dz[1], 0.5, 1e-7);
    CHECK(correct == 1);
    /* large logits must not overflow */
    float big[3] = {1000, 0, -1000};
    uint8_t l2[1] = {1};
    loss = softmax_xent(dz, &correct, big, l2, 1, 3, 1.0);
    CHECK_NEAR(loss, 1000.0, 1e-3);
    CHECK(correct == 0);
}

/* ---- finite-difference gradient checks, one row per layer kind and code path -------- */

/* The layer under test is `layer` of the model `spec` (a model must end with fc, which
 * is not tested here); its forward and backward are called through its kind's table
 * entry, in training mode, on a B x C x H x W input, with L = sum(out * R) for a random
 * R. Input values are distinct multiples of 1/64, none within 1/128 of zero, so a step
 * of eps < 1/128 crosses no relu or pooling kink; layers without kinks take a large
 * eps (they are linear in what is perturbed, so only rounding limits the check, and
 * rounding shrinks with 1/eps). */
static const struct fd_row {
    const char *spec;
    int layer, C, H, W, B;
    float eps;
} fd_rows[] = {
    {"conv(4,3) fc", 0, 3, 7, 6, 2, 0.5f},                    /* im2row weight gradient */
    {"conv(5,3,stride=2,pad=1) fc", 0, 2, 8, 9, 3, 0.5f},     /* stride and padding */
    {"conv(2,1) fc", 0, 1, 5, 5, 1, 0.5f},                    /* 1x1 kernel */
    {"conv(3,3,pad=1) fc", 0, 1, 9, 9, 2, 0.5f},              /* few columns: dot products */
    {"conv(3,4,stride=3,pad=2) fc", 0, 2, 6, 6, 2, 0.5f},
    {"maxpool(2) fc", 0, 3, 7, 6, 2, 1.0f / 512},
    {"maxpool(3,stride=2) fc", 0, 3, 7, 6, 2, 1.0f / 512},    /* overlapping windows */
    {"relu fc", 0, 2, 5, 4, 3, 1.0f / 512},
    {"relu maxpool(2) fc", 1, 3, 6, 6, 2, 1.0f / 512},        /* maxpool absorbing the relu */
    {"fc(11) fc", 0, 37, 1, 1, 5, 0.5f},
    {"fc(7) fc", 0, 3, 4, 5, 2, 0.5f},                        /* flattening C x H x W */
    {"dropout(0.3) fc", 0, 2, 5, 4, 3, 0.5f},                 /* a fixed mask: linear */
};

typedef struct {
    dp_model m;
    dp_workspace ws;
    dp_pass pass;
    dp_layer_io io;
    float *R;
    size_t nout;
} fd_ctx;

static double fd_loss(void *v)
{
    fd_ctx *c = v;
    c->io.L->kind->forward(&c->io);
    return dotd(c->io.out, c->R, c->nout);
}

static void fd_input(float *x, size_t n)
{
    int64_t *perm = malloc(n * sizeof(int64_t));
    for (size_t i = 0; i < n; i++)
        perm[i] = (int64_t)i;
    rng_shuffle(&rng, perm, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        x[i] = ((float)perm[i] - (float)(n / 2) + 0.5f) / 64.0f;
    free(perm);
}

#define FD_TOL 2e-4 /* per layer: both sides are exact up to float rounding */

static void gradcheck_row(const struct fd_row *row)
{
    fd_ctx c;
    dp_err err;
    memset(&c, 0, sizeof c);
    if (model_build(&c.m, row->spec, row->C, row->H, row->W, 3, &err) ||
        workspace_create(&c.ws, &c.m, row->B, &err)) {
        fprintf(stderr, "gradcheck %s: %s\n", row->spec, err.msg);
        CHECK(0);
        return;
    }
    model_init(&c.m, 5);
    const dp_layer *L = &c.m.layers[row->layer];
    const size_t nin = (size_t)row->B * c.m.layers[0].in_size;
    c.nout = (size_t)row->B * L->out_size;
    c.pass = (dp_pass){.B = row->B, .train = 1, .seed = 9, .step = 4};
    layer_io_init(&c.io, &c.m, &c.ws, row->layer, &c.pass);
    float *din = calloc(nin, sizeof(float));
    c.io.din = din; /* the first layer: nobody else needs it */
    fd_input(c.ws.input, nin);
    c.R = rand_buf(c.nout, -1, 1);
    memcpy(c.ws.dact[row->layer], c.R, c.nout * sizeof(float));
    memset(c.m.grads, 0, c.m.size * sizeof(float));
    fd_loss(&c);
    L->kind->backward(&c.io);
    char what[96];
    snprintf(what, sizeof what, "%s input", L->text);
    gradcheck(what, c.ws.input, nin, din, row->eps, fd_loss, &c, FD_TOL);
    for (int k = 0; k < L->param_count; k++) {
        const dp_param *p = &c.m.params[L->param_first + k];
        snprintf(what, sizeof what, "%s %s", L->text, strchr(p->name, '.') + 1);
        gradcheck(what, c.m.weights + p->offset, p->count, c.m.grads + p->offset, row->eps,
                  fd_loss, &c, FD_TOL);
    }
    /* backward accumulates into the parameter gradients: a second call doubles them */
    float *once = malloc(c.m.size * sizeof(float) + 1);
    memcpy(once, c.m.grads, c.m.size * sizeof(float));
    fd_loss(&c);
    L->kind->backward(&c.io);
    for (int k = 0; k < L->param_count; k++) {
        const dp_param *p = &c.m.params[L->param_first + k];
        for (size_t i = p->offset; i < p->offset + p->count; i += 7)
            CHECK_NEAR(c.m.grads[i], 2 * once[i], 1e-5 * fabs(once[i]) + 1e-7);
    }
    free(once), free(din), free(c.R);
    workspace_free(&c.ws);
    model_free(&c.m);
}

typedef struct {
    int B, NC;
    float *z;
    uint8_t *y;
} xent_ctx;

static double xent_loss(void *v)
{
    xent_ctx *c = v;
    return softmax_xent(NULL, NULL, c->z, c->y, c->B, c->NC, 1.0);
}

static void gradcheck_xent(void)
{
    xent_ctx c = {4, 10, 0, 0};
    c.z = rand_buf(40, -3, 3);
    uint8_t y[4] = {0, 9, 3, 3};
    c.y = y;
    float dz[40];
    softmax_xent(dz, NULL, c.z, y, 4, 10, 1.0);
    /* smooth: the step trades truncation (eps^2) against rounding in the loss (1/eps) */
    gradcheck("softmax cross-entropy", c.z, 40, dz, 1.0f / 1024, xent_loss, &c, FD_TOL);
    free(c.z);
}

/* ---- dropout: the mask, the scaling, and where the mask comes from ------------------ */

typedef struct {
    dp_model m;
    dp_workspace ws;
    dp_layer_io io;
    dp_pass pass;
} one_layer;

/* Layer 0 of `spec` on a B x 1 x 32 x 32 input of random values. */
static void one_layer_open(one_layer *t, const char *spec, int B, dp_pass pass)
{
    dp_err err;
    CHECK(model_build(&t->m, spec, 1, 32, 32, 3, &err) == 0);
    CHECK(workspace_create(&t->ws, &t->m, B, &err) == 0);
    for (size_t i = 0; i < (size_t)B * 1024; i++)
        t->ws.input[i] = 2.0f * rng_uniform(&rng) - 1.0f;
    t->pass = pass;
    layer_io_init(&t->io, &t->m, &t->ws, 0, &t->pass);
}

static void one_layer_close(one_layer *t)
{
    workspace_free(&t->ws);
    model_free(&t->m);
}

static void test_dropout_values(void)
{
    one_layer t;
    const int B = 8;
    one_layer_open(&t, "dropout(p=0.25) fc", B, (dp_pass){.B = B, .train = 1, .seed = 3});
    const size_t n = (size_t)B * 1024;
    const float scale = 1.0f / 0.75f, *x = t.ws.input, *y = t.io.out;
    const uint8_t *mask = t.io.work;
    t.io.L->kind->forward(&t.io);
    size_t kept = 0, exact = 0;
    for (size_t k = 0; k < n; k++) {
        kept += mask[k];
        exact += y[k] == (mask[k] ? x[k] * scale : 0.0f);
    }
    CHECK(exact == n);
    CHECK_NEAR((double)kept / n, 0.75, 0.02); /* binomial sd 0.005 */
    float *dout = rand_buf(n, -1, 1), *din = malloc(n * sizeof(float));
    t.io.dout = dout;
    t.io.din = din;
    t.io.L->kind->backward(&t.io);
    exact = 0;
    for (size_t k = 0; k < n; k++)
        exact += din[k] == (mask[k] ? dout[k] * scale : 0.0f);
    CHECK(exact == n);
    /* evaluation: the identity */
    t.pass.train = 0;
    t.io.L->kind->forward(&t.io);
    CHECK(memcmp(y, x, n * sizeof(float)) == 0);
    one_layer_close(&t);
    /* p = 0 in training: the identity */
    one_layer_open(&t, "dropout(0) fc", B, (dp_pass){.B = B, .train = 1, .seed = 3});
    t.io.L->kind->forward(&t.io);
    CHECK(memcmp(t.io.out, t.ws.input, n * sizeof(float)) == 0);
    one_layer_close(&t);
    free(dout), free(din);
}

/* The masks of `index` (one row per sample) at `step` with T threads: malloc'ed. */
static uint8_t *dropout_masks(const int64_t *index, int B, long step, int threads)
{
    one_layer t;
    const int keep_threads = omp_get_max_threads();
    omp_set_num_threads(threads);
    one_layer_open(&t, "dropout(0.5) fc", B,
                   (dp_pass){.B = B, .train = 1, .seed = 42, .step = step, .sample_index = index});
    t.io.L->kind->forward(&t.io);
    uint8_t *out = malloc((size_t)B * 1024);
    memcpy(out, t.io.work, (size_t)B * 1024);
    one_layer_close(&t);
    omp_set_num_threads(keep_threads);
    return out;
}

/* A sample's mask depends on (seed, step, its global index, the layer) alone: not on the
 * thread count, its position in the batch, or how the batch is split over ranks. */
static void test_dropout_masks_follow_the_sample(void)
{
    const int64_t all[6] = {5, 70000, 3, 12, 999, 41}, moved[6] = {999, 3, 41, 5, 12, 70000};
    uint8_t *a = dropout_masks(all, 6, 17, 1), *b = dropout_masks(all, 6, 17, 3);
    uint8_t *c = dropout_masks(moved, 6, 17, 2), *d = dropout_masks(all, 6, 18, 1);
    uint8_t *half = dropout_masks(all + 3, 3, 17, 1); /* the second "rank" */
    CHECK(memcmp(a, b, 6 * 1024) == 0);
    static const int at[6] = {4, 2, 5, 0, 3, 1}; /* moved[k] == all[at[k]] */
    for (int k = 0; k < 6; k++)
        CHECK(memcmp(c + k * 1024, a + at[k] * 1024, 1024) == 0);
    CHECK(memcmp(half, a + 3 * 1024, 3 * 1024) == 0);
    CHECK(memcmp(a, d, 1024) != 0);          /* another step, another mask */
    CHECK(memcmp(a, a + 1024, 1024) != 0);   /* another sample, another mask */
    free(a), free(b), free(c), free(d), free(half);
    /* two dropout layers of one model draw different masks for the same input */
    one_layer t;
    one_layer_open(&t, "dropout(0.5) dropout(0.5) fc", 1, (dp_pass){.B = 1, .train = 1});
    dp_layer_io second;
    layer_io_init(&second, &t.m, &t.ws, 1, &t.pass);
    t.io.L->kind->forward(&t.io);
    second.L->kind->forward(&second);
    CHECK(memcmp(t.io.work, second.work, 1024) != 0);
    one_layer_close(&t);
}

static void test_dropout_spec(void)
{
    dp_model m;
    dp_err err;
    CHECK(model_build(&m, "dropout fc(4) dropout(0.3) fc(3) dropout(p=0.1) fc", 1, 2, 2, 3, &err) == 0);
    CHECK_MSG(m.spec, "dropout(p=0.5) fc(4) dropout(p=0.3) fc(3) dropout(p=0.1) fc(classes)");
    model_free(&m);
    static const struct {
        const char *spec, *needle;
    } bad[] = {
        {"dropout(1) fc", "layer 1 (dropout): p = 1 is out of range [0, 1)"},
        {"conv(2,3) dropout(p=-0.5) fc", "layer 2 (dropout): p = -0.5 is out of range [0, 1)"},
        {"dropout(p=nan) fc", "layer 1 (dropout): p = nan is out of range"},
        {"dropout(0.5, 2) fc", "layer 1 (dropout): too many arguments"},
        {"dropout(q=0.5) fc", "layer 1 (dropout): unknown argument 'q'"},
        {"fc(8) dropout", "layer 2 dropout(p=0.5): the last layer must be fc"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(model_build(&m, bad[i].spec, 1, 4, 4, 3, &err) == -1);
        CHECK_MSG(err.msg, bad[i].needle);
    }
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
        softmax_xent(NULL, NULL, z, y, 1, 3, 1.0);
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

/* fc's input gradient, split by columns where rows are long (I >= 1024) and by samples
 * otherwise: every element is the fmaf chain over the outputs in order, at 1-3 threads. */
static void test_fc_input_grad_split(void)
{
    const int B = 5, O = 13, shapes[] = {1100, 2048, 300};
    const int keep = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        const int I = shapes[t];
        float *in = rand_buf((size_t)B * I, -1, 1), *w = rand_buf((size_t)O * I, -1, 1);
        float *dout = rand_buf((size_t)B * O, -1, 1), *din = malloc(sizeof(float) * B * I);
        float *dw = calloc((size_t)O * I, sizeof(float)), *db = calloc((size_t)O, sizeof(float));
        int same = 1;
        for (int threads = 1; threads <= 3; threads++) {
            omp_set_num_threads(threads);
            linear_backward(din, dw, db, dout, in, w, B, I, O, NULL);
            for (int n = 0; n < B; n++)
                for (int i = 0; i < I; i++) {
                    float acc = 0.0f;
                    for (int o = 0; o < O; o++)
                        acc = fmaf(dout[n * O + o], w[(size_t)o * I + i], acc);
                    same &= din[(size_t)n * I + i] == acc;
                }
        }
        if (!same)
            fprintf(stderr, "fc input gradient, I = %d: not the fmaf chain at some thread "
                            "count\n", I);
        CHECK(same);
        free(in), free(w), free(dout), free(din), free(dw), free(db);
    }
    omp_set_num_threads(keep);
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

/* Through the kinds' table: a layer absorbing a conv (a maxpool: conv and relu; a relu:
 * the conv) in one pass gives the bits of the n layers one by one, forward (output; the
 * argmax where it passes a gradient) and backward (input and parameter gradients). */
static void check_conv_absorbed(const char *spec, int n)
{
    const int B = 3, a = n - 1; /* the absorbing layer */
    dp_model m;
    dp_workspace ws;
    dp_err err;
    CHECK(model_build(&m, spec, 2, 9, 8, 3, &err) == 0);
    CHECK(workspace_create(&ws, &m, B, &err) == 0);
    CHECK(m.layers[a].absorbs == a && !m.layers[a].absorbed);
    for (int i = 0; i < a; i++)
        CHECK(m.layers[i].absorbed && !m.layers[i].absorbs);
    model_init(&m, 6);
    const size_t nin = (size_t)B * m.layers[0].in_size, nout = (size_t)B * m.layers[a].out_size;
    for (size_t i = 0; i < nin; i++)
        ws.input[i] = 2.0f * rng_uniform(&rng) - 1.0f;
    dp_pass pass = {.B = B, .train = 1};
    dp_layer_io fused, one[3];
    layer_io_init(&fused, &m, &ws, a, &pass);
    float *din1 = malloc(nin * sizeof(float)), *din2 = malloc(nin * sizeof(float));
    float *out1 = malloc(nout * sizeof(float)), *grads1 = calloc(m.size, sizeof(float));
    int32_t *arg1 = malloc(nout * sizeof(int32_t));
    fused.din = din1;
    for (size_t i = 0; i < nout; i++)
        ws.dact[a][i] = 2.0f * rng_uniform(&rng) - 1.0f;
    memset(m.grads, 0, m.size * sizeof(float));
    fused.L->kind->forward(&fused);
    fused.L->kind->backward(&fused);
    memcpy(out1, ws.act[a], nout * sizeof(float));
    memcpy(grads1, m.grads, m.size * sizeof(float));
    if (ws.work[a])
        memcpy(arg1, ws.work[a], nout * sizeof(int32_t));
    for (int i = 0; i < n; i++) { /* each alone, on the previous one's output */
        layer_io_init(&one[i], &m, &ws, i, &pass);
        one[i].absorbed = 0;
        one[i].in = i ? ws.act[i - 1] : ws.input;
        one[i].din = i ? ws.dact[i - 1] : din2;
    }
    memset(m.grads, 0, m.size * sizeof(float));
    for (int i = 0; i < n; i++)
        one[i].L->kind->forward(&one[i]);
    for (int i = a; i >= 0; i--)
        one[i].L->kind->backward(&one[i]);
    CHECK(memcmp(out1, ws.act[a], nout * sizeof(float)) == 0);
    size_t same_arg = 0, positive = 0; /* a window whose maximum is <= 0 passes nothing */
    for (size_t i = 0; i < nout; i++) {
        positive += out1[i] > 0;
        same_arg += out1[i] > 0 && (!ws.work[a] || arg1[i] == ((const int32_t *)ws.work[a])[i]);
    }
    CHECK(positive > 0 && same_arg == positive);
    CHECK(memcmp(din1, din2, nin * sizeof(float)) == 0);
    CHECK(memcmp(grads1, m.grads, m.size * sizeof(float)) == 0);
    CHECK(dotd(grads1, grads1, m.params[2].offset) > 0); /* the conv's: not blind */
    free(din1), free(din2), free(out1), free(grads1), free(arg1);
    workspace_free(&ws);
    model_free(&m);
}

static void test_conv_absorbed(void)
{
    check_conv_absorbed("conv(5,3) relu maxpool(2) fc", 3);
    check_conv_absorbed("conv(4,3,pad=1) relu maxpool(3,stride=2) fc", 3); /* overlapping */
    check_conv_absorbed("conv(5,3) relu fc", 2);                  /* the rows layout */
    check_conv_absorbed("conv(4,2,stride=2,pad=1) relu fc", 2);   /* few columns */
    check_conv_absorbed("conv(3,2) relu fc", 2);                  /* the direct forward */
}

int main(void)
{
    rng_seed(&rng, 7, 0, 0);
    test_label_bound_asserted(); /* first: it forks, before OpenMP starts threads */
    test_fc_input_grad_split();
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        test_conv_worked_example();
        test_pool_relu_linear_loss_cases();
        for (size_t r = 0; r < sizeof fd_rows / sizeof fd_rows[0]; r++)
            gradcheck_row(&fd_rows[r]);
        test_relu_maxpool_fused();
        test_conv_absorbed();
        test_dropout_values();
        test_dropout_masks_follow_the_sample();
        test_dropout_spec();
        test_kernels_agree();
        gradcheck_xent();
    }
    return check_exit("test_layers");
}
