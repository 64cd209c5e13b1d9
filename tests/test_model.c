/* The model as a whole: spec parsing and shape inference, parameter layout and
 * initialisation, whole-net finite-difference checks (the reference architecture at
 * a reduced size), buffers, thread-count determinism,
 * the optimizer against hand-computed steps, sampling and batch splitting, the
 * weights file, and option parsing. */
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "cli_parse.h"
#include "gradcheck.h"
#include "dptrain/driver/cli.h"
#include "dptrain/net/layer_kind.h"
#include "dptrain/net/model.h"
#include "dptrain/net/threads.h"
#include "dptrain/optim/optim.h"
#include "dptrain/util/rng.h"
#include "dptrain/persist/weights.h"

static void test_builtin_models(void)
{
    dp_model m;
    dp_err err = {{0}};
    CHECK(model_build(&m, "reference", 1, 28, 28, 10, &err) == 0);
    /* 32*9+32 + 64*32*9+64 + 128*1600+128 + 10*128+10 */
    CHECK(m.size == 320 + 18496 + 204928 + 1290);
    CHECK(m.nparams == 8);
    CHECK(strcmp(m.params[0].name, "conv1.weight") == 0);
    CHECK(m.params[0].dims[0] == 32 && m.params[0].dims[1] == 1 && m.params[0].dims[2] == 3);
    CHECK(strcmp(m.params[4].name, "fc1.weight") == 0);
    CHECK(m.params[4].dims[0] == 128 && m.params[4].dims[1] == 1600);
    CHECK(strcmp(m.params[7].name, "fc2.bias") == 0 && m.params[7].count == 10);
    CHECK(m.params[7].offset + 10 == m.size); /* contiguous, in order */
    model_free(&m);
    CHECK(model_build(&m, "nopool", 1, 28, 28, 10, &err) == 0);
    CHECK(m.params[4].dims[1] == 64 * 24 * 24);
    model_free(&m);
}

static void test_spec_errors(void)
{
    dp_model m;
    dp_err err = {{0}};
    /* named and positional arguments, separators, comments, canonical form */
    CHECK(model_build(&m, "conv(out=8, kernel=5, stride=2, pad=2) -> relu; # hidden\n"
                          "pool(3,stride=1), flatten, linear(16) relu fc", 3, 32, 32, 4, &err) == 0);
    CHECK(m.layers[0].out_h == 16 && m.layers[2].out_h == 14);
    CHECK(m.params[2].dims[1] == 8 * 14 * 14);
    CHECK_MSG(m.spec, "conv(8,5,stride=2,pad=2) relu maxpool(3,stride=1) fc(16) relu fc(classes)");
    model_free(&m);

    struct {
        const char *spec, *needle;
    } bad[] = {
        {"conv(32,3) relu conv(64,30) fc(classes)", "layer 3 conv(64,30"},
        {"conv(32,3) relu maxpool(2) fc(128)", "has 128 outputs but the data has 10 classes"},
        {"conv(32,3) relu", "layer 2 relu: the last layer must be fc"},
        {"fc(20) conv(3,3) fc", "layer 2 conv(3,3,stride=1,pad=0): comes after fc"},
        {"conv(32) fc", "layer 1 (conv): needs its argument 'kernel', e.g. conv(32,3)"},
        {"conv(32,3,stride=0) fc", "layer 1 (conv): stride = 0 is out of range [1, 1000000]"},
        {"dense(10)", "layer 1: unknown layer 'dense'"},
        {"conv(32,3,dilation=2) fc", "unknown argument 'dilation'"},
        {"conv(32,x) fc", "expected a number"},
        {"maxpool fc", "layer 1 (maxpool): needs arguments"},
        {"fc(classes) fc(10)", "only the last layer"},
        {"", "has no layers"},
        {"conv(1,3,1,0,5) fc", "too many arguments"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(model_build(&m, bad[i].spec, 1, 28, 28, 10, &err) == -1);
        CHECK_MSG(err.msg, bad[i].needle);
        CHECK_MSG(err.msg, "--model");
    }

    /* a spec file */
    char path[] = "/tmp/dptrain-spec-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# tiny\nconv(4,3)\nrelu\nfc(classes)\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    CHECK(model_build(&m, path, 1, 8, 8, 3, &err) == 0);
    CHECK(m.nlayers == 3 && m.size == 4 * 9 + 4 + 3 * 4 * 36 + 3);
    model_free(&m);
    unlink(path);
}

static void test_init(void)
{
    dp_model m, m2;
    dp_err err;
    model_build(&m, "reference", 1, 28, 28, 10, &err);
    model_build(&m2, "reference", 1, 28, 28, 10, &err);
    model_init(&m, 42);
    model_init(&m2, 42);
    CHECK(memcmp(m.weights, m2.weights, m.size * sizeof(float)) == 0);
    model_init(&m2, 43);
    CHECK(memcmp(m.weights, m2.weights, m.size * sizeof(float)) != 0);
    /* uniform in +-1/sqrt(fan_in): range and variance b^2/3 */
    for (int p = 0; p < m.nparams; p++) {
        const dp_param *q = &m.params[p];
        double bound = 1.0 / sqrt((double)q->fan_in), sum2 = 0, mx = 0;
        for (size_t i = 0; i < q->count; i++) {
            double v = m.weights[q->offset + i];
            sum2 += v * v;
            mx = fmax(mx, fabs(v));
        }
        CHECK(mx <= bound);
        if (q->count > 1000)
            CHECK_NEAR(sum2 / q->count, bound * bound / 3, 0.05 * bound * bound / 3);
    }
    /* re-drawing one tensor alone gives the same values as the full init */
    float keep = m.weights[m.params[6].offset + 5];
    memset(m.weights + m.params[6].offset, 0, m.params[6].count * sizeof(float));
    model_init_param(&m, 6, 42);
    CHECK(m.weights[m.params[6].offset + 5] == keep);
    model_free(&m);
    model_free(&m2);
}

/* The whole net runs in float: rounding in the loss limits the differences to about 1e-3
 * of the tensor's largest gradient (measured worst 9.4e-4 at eps 1/64; 2e-3 at 1/256,
 * where rounding dominates, 5.9e-4 at 1/16, where curvature starts to), so the tolerance
 * is 5e-3, with gradcheck.h's floor of 1e-2 of the largest. */
#define WHOLE_NET_EPS (1.0f / 64)
#define WHOLE_NET_TOL 5e-3

static void fill_input(dp_workspace *ws, const dp_model *m, int B, uint64_t seed, uint8_t *labels)
{
    dp_rng r;
    rng_seed(&r, seed, 9, 9);
    for (size_t i = 0; i < (size_t)B * m->layers[0].in_size; i++)
        ws->input[i] = rng_uniform(&r);
    for (int n = 0; n < B; n++)
        labels[n] = (uint8_t)rng_below(&r, (uint64_t)m->num_classes);
}

/* ---- the whole net's gradient of the summed loss against central differences ---- */

typedef struct {
    dp_model *m;
    dp_workspace *ws;
    dp_pass pass;
} net_ctx;

static double net_loss(void *v)
{
    net_ctx *c = v;
    return model_forward_backward(c->m, c->ws, &c->pass, NULL);
}

/* The net is piecewise smooth: a difference that makes a relu change sign or a pooling
 * window change its maximum is not a derivative, and for the first layers nearly every
 * weight's does. So the differences are taken on the same net with its pieces frozen at
 * the unperturbed point, which has the same gradient there and is smooth: a relu keeps
 * its mask (absorbing a conv, it runs the conv, which is smooth, on its own first), a
 * pooling layer its argmax (and, absorbing a relu, the sign of its output; absorbing a
 * conv too, it runs the conv on its own first). The swap
 * goes through the kinds' table: the frozen layers are copies of the real kinds with
 * another forward. */
static uint8_t *frozen_mask[DP_MODEL_MAX_LAYERS]; /* relu, pool: output > 0 */
static dp_layer_kind frozen_relu, frozen_pool;
static dp_model *frozen_model; /* the net whose pieces are frozen, and its workspace */
static dp_workspace *frozen_ws;

/* The conv that layer io absorbs, alone, into its own output. */
static const float *frozen_conv(const dp_layer_io *io, int back)
{
    dp_layer_io conv;
    layer_io_init(&conv, frozen_model, frozen_ws, io->index - back, io->pass);
    io->L[-back].kind->forward(&conv);
    return conv.out;
}

static void frozen_relu_forward(const dp_layer_io *io)
{
    const size_t n = (size_t)io->B * io->L->out_size;
    const float *in = io->absorbed ? frozen_conv(io, 1) : io->in;
    for (size_t k = 0; k < n; k++)
        io->out[k] = frozen_mask[io->index][k] ? in[k] : 0.0f;
}

static void frozen_pool_forward(const dp_layer_io *io)
{
    const dp_layer *L = io->L;
    const int32_t *arg = io->work; /* left by the real forward at the unperturbed point */
    const size_t plane = (size_t)L->in_h * L->in_w, out_plane = (size_t)L->out_h * L->out_w;
    const float *in = io->in;
    if (io->absorbed == 2)
        in = frozen_conv(io, 2);
    for (size_t k = 0; k < (size_t)io->B * L->out_size; k++) {
        float v = in[(k / out_plane) * plane + (size_t)arg[k]];
        io->out[k] = !io->absorbed || frozen_mask[io->index][k] ? v : 0.0f;
    }
}

static void freeze_pieces(dp_model *m, dp_workspace *ws, int B)
{
    frozen_model = m;
    frozen_ws = ws;
    frozen_relu = *layer_kind_find("relu");
    frozen_relu.forward = frozen_relu_forward;
    frozen_pool = *layer_kind_find("maxpool");
    frozen_pool.forward = frozen_pool_forward;
    for (int i = 0; i < m->nlayers; i++) {
        dp_layer *L = &m->layers[i];
        const size_t n = (size_t)B * L->out_size;
        const int relu = L->kind == layer_kind_find("relu") && !L->absorbed;
        const int pool = L->kind == layer_kind_find("maxpool");
        if (!relu && !pool)
            continue;
        const float *x = ws->act[i]; /* a relu's output is > 0 where its input is */
        frozen_mask[i] = malloc(n);
        for (size_t k = 0; k < n; k++)
            frozen_mask[i][k] = x[k] > 0.0f;
        L->kind = relu ? &frozen_relu : &frozen_pool;
    }
}

static void whole_net_gradcheck(const char *spec, int C, int H, int W, int B, double tol)
{
    dp_model m;
    dp_workspace ws;
    dp_err err;
    CHECK(model_build(&m, spec, C, H, W, 5, &err) == 0);
    model_init(&m, 3);
    CHECK(workspace_create(&ws, &m, B, &err) == 0);
    uint8_t labels[16];
    fill_input(&ws, &m, B, 1, labels);
    net_ctx c = {&m, &ws, {.labels = labels, .B = B, .train = 1, .seed = 2, .step = 7}};
    memset(m.grads, 0, m.size * sizeof(float));
    const double loss = model_forward_backward(&m, &ws, &c.pass, NULL);
    c.pass.forward_only = 1; /* the same training-mode forward, without backward */
    freeze_pieces(&m, &ws, B);
    CHECK(net_loss(&c) == loss); /* the frozen net is the same function at this point */
    for (int p = 0; p < m.nparams; p++) {
        char what[96];
        snprintf(what, sizeof what, "net %s", m.params[p].name);
        gradcheck(what, m.weights + m.params[p].offset, m.params[p].count,
                  m.grads + m.params[p].offset, WHOLE_NET_EPS, net_loss, &c, tol);
    }
    for (int i = 0; i < m.nlayers; i++) {
        free(frozen_mask[i]);
        frozen_mask[i] = NULL;
    }
    workspace_free(&ws);
    model_free(&m);
}

static void test_whole_net_gradcheck(void)
{
    /* the reference architecture at a reduced size */
    whole_net_gradcheck("conv(4,3) relu maxpool(2) conv(6,3) relu maxpool(2) fc(16) relu fc", 1,
                        14, 14, 3, WHOLE_NET_TOL);
    /* stride, padding, a relu not followed by a pool */
    whole_net_gradcheck("conv(4,3,pad=1) relu maxpool(2) conv(6,3,stride=2) relu fc(8) relu fc", 2,
                        9, 9, 3, WHOLE_NET_TOL);
    /* dropout in training mode: fixed masks (same seed, step and samples every pass) */
    whole_net_gradcheck("conv(4,3) relu maxpool(2) dropout(0.25) conv(6,3) relu maxpool(2) "
                        "fc(16) relu dropout fc", 1, 14, 14, 3, WHOLE_NET_TOL);
}

/* A tensor with trainable 0 is a buffer: no gradient, no update, no reduction (the
 * driver's update ranges and buckets ask model_param_updated), and a buffer initialised
 * to a constant keeps it. Today's kinds have none, so conv1's tensors play the part: the
 * pass must treat them as it treats a frozen layer's. */
static void test_buffers(void)
{
    dp_model m;
    dp_workspace ws;
    dp_err err;
    const char *spec = "conv(4,3) relu maxpool(2) conv(6,3) relu fc";
    CHECK(model_build(&m, spec, 1, 12, 12, 5, &err) == 0);
    CHECK(workspace_create(&ws, &m, 4, &err) == 0);
    uint8_t labels[4];
    fill_input(&ws, &m, 4, 3, labels);
    int n;
    const dp_param *conv1 = model_layer_params(&m, 0, &n);
    CHECK(n == 2 && conv1 == &m.params[0] && strcmp(conv1[1].name, "conv1.bias") == 0);
    m.params[1].fan_in = 0; /* a buffer initialised to a constant */
    m.params[1].init_value = 0.25f;
    model_init(&m, 4);
    CHECK(m.weights[m.params[1].offset + 3] == 0.25f);
    dp_pass pass = {.labels = labels, .B = 4, .train = 1};
    float *frozen = malloc(m.size * sizeof(float));
    m.layers[0].frozen = 1;
    CHECK(!model_param_updated(&m, &m.params[0]) && model_param_updated(&m, &m.params[2]));
    memset(m.grads, 0, m.size * sizeof(float));
    model_forward_backward(&m, &ws, &pass, NULL);
    memcpy(frozen, m.grads, m.size * sizeof(float));
    m.layers[0].frozen = 0;
    m.params[0].trainable = m.params[1].trainable = 0;
    CHECK(!model_param_updated(&m, &m.params[0]) && !model_param_updated(&m, &m.params[1]));
    memset(m.grads, 0, m.size * sizeof(float));
    model_forward_backward(&m, &ws, &pass, NULL);
    CHECK(memcmp(frozen, m.grads, m.size * sizeof(float)) == 0);
    double above = 0, conv1_grad = 0;
    for (size_t i = 0; i < m.size; i++)
        *(i < m.params[2].offset ? &conv1_grad : &above) += fabs(m.grads[i]);
    CHECK(conv1_grad == 0 && above > 0);
    free(frozen);
    workspace_free(&ws);
    model_free(&m);
}

/* The done hook's calls in one backward: each layer once, last first, without gaps. */
static int done_next, done_ok;

static void count_done(void *ctx, int layer)
{
    (void)ctx;
    done_ok &= layer == done_next;
    done_next--;
}

/* Backward over a range of the samples after forward over all of them (per group, as the
 * driver runs it: every buffer narrowed to the range) gives the bits of forward and
 * backward over those samples alone, with conv, relu and maxpool done in one pass, frozen
 * layers (no weight gradient; below the lowest trained layer no backward at all) and
 * dropout (masks follow the samples); the done hook hears of every layer, absorbed or not,
 * down to the lowest trained one. */
static void test_backward_ranges(void)
{
    const char *pooled = "conv(4,3) relu maxpool(2) conv(6,3) relu maxpool(2) fc(16) relu fc";
    static const struct {
        int spec, frozen, lowest; /* spec 0: pooled; frozen: a layer, or -1 */
    } runs[] = {{0, -1, 0}, {0, 0, 3}, {0, 3, 0}, {1, -1, 0}};
    static const int ranges[][2] = {{0, 3}, {3, 4}, {4, 7}};
    const int64_t index[7] = {40, 3, 17, 8, 99, 23, 61};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const char *spec = runs[r].spec ? "conv(4,3,pad=1) relu conv(6,3,stride=2) relu dropout "
                                          "fc(8) relu fc" : pooled;
        dp_model m;
        dp_workspace ws, alone;
        dp_err err;
        CHECK(model_build(&m, spec, 1, 14, 14, 5, &err) == 0);
        CHECK(workspace_create(&ws, &m, 7, &err) == 0 && workspace_create(&alone, &m, 7, &err) == 0);
        model_init(&m, 5);
        if (runs[r].spec == 0) /* conv, relu and maxpool in one pass, twice */
            CHECK(m.layers[2].absorbs == 2 && m.layers[0].absorbed && m.layers[1].absorbed &&
                  m.layers[5].absorbs == 2 && m.layers[3].absorbed && !m.layers[2].absorbed);
        if (runs[r].frozen >= 0)
            m.layers[runs[r].frozen].frozen = 1;
        uint8_t labels[7];
        fill_input(&ws, &m, 7, 2, labels);
        dp_pass pass = {.labels = labels, .B = 7, .train = 1, .seed = 3, .step = 5,
                        .sample_index = index, .grad_scale = 1.0 / 7, .done = count_done};
        model_forward(&m, &ws, &pass, NULL);
        float *part = malloc(m.size * sizeof(float));
        for (int k = 0; k < 3; k++) {
            const int n0 = ranges[k][0], n = ranges[k][1] - n0;
            memset(m.grads, 0, m.size * sizeof(float));
            done_next = m.nlayers - 1, done_ok = 1;
            model_backward(&m, &ws, &pass, n0, n0 + n);
            CHECK(done_ok && done_next == runs[r].lowest - 1);
            memcpy(part, m.grads, m.size * sizeof(float));
            const size_t in = m.layers[0].in_size;
            memcpy(alone.input, ws.input + n0 * in, (size_t)n * in * sizeof(float));
            dp_pass one = pass;
            one.labels = labels + n0, one.B = n, one.sample_index = index + n0, one.done = NULL;
            memset(m.grads, 0, m.size * sizeof(float));
            model_forward_backward(&m, &alone, &one, NULL);
            CHECK(memcmp(part, m.grads, m.size * sizeof(float)) == 0);
            double frozen = 0, trained = 0;
            for (int p = 0; p < m.nparams; p++)
                for (size_t i = 0; i < m.params[p].count; i++)
                    *(model_param_updated(&m, &m.params[p]) ? &trained : &frozen) +=
                        fabs(part[m.params[p].offset + i]);
            CHECK(frozen == 0 && trained > 0);
        }
        free(part);
        workspace_free(&ws);
        workspace_free(&alone);
        model_free(&m);
    }
}

/* N steps of training with T threads; returns the final weights (caller frees). */
static float *train_steps(const char *spec, int threads, int steps, size_t *size)
{
    omp_set_num_threads(threads);
    dp_model m;
    dp_workspace ws;
    dp_err err;
    model_build(&m, spec, 1, 28, 28, 10, &err);
    model_init(&m, 11);
    workspace_create(&ws, &m, 7, &err);
    float *velocity = calloc(m.size, sizeof(float));
    uint8_t labels[7];
    for (int s = 0; s < steps; s++) {
        fill_input(&ws, &m, 7, (uint64_t)s, labels);
        memset(m.grads, 0, m.size * sizeof(float));
        dp_pass pass = {.labels = labels, .B = 7, .train = 1};
        model_forward_backward(&m, &ws, &pass, NULL);
        for (size_t i = 0; i < m.size; i++)
            m.grads[i] /= 7.0f;
        sgd_update(m.weights, m.grads, velocity, m.size, 0.05f, 0.9f, 1e-4f, 0);
    }
    float *out = malloc(m.size * sizeof(float));
    memcpy(out, m.weights, m.size * sizeof(float));
    *size = m.size;
    free(velocity);
    workspace_free(&ws);
    model_free(&m);
    return out;
}

static void test_thread_determinism(void)
{
    const char *specs[] = {"reference", "conv(8,3,stride=2,pad=1) relu maxpool(3,stride=2) fc(20) relu fc"};
    for (int k = 0; k < 2; k++) {
        size_t n1, n2, n3;
        float *a = train_steps(specs[k], 1, 3, &n1);
        float *b = train_steps(specs[k], 2, 3, &n2);
        float *c = train_steps(specs[k], 3, 3, &n3);
        CHECK(n1 == n2 && n1 == n3);
        CHECK(memcmp(a, b, n1 * sizeof(float)) == 0);
        CHECK(memcmp(a, c, n1 * sizeof(float)) == 0);
        free(a), free(b), free(c);
    }
}

/* The threads' shares (threads.h) change who does what, never a bit: uneven splits, one
 * that moves after every timed region (so a layer's backward sees another split than its
 * forward), and balancing on with one thread made slow, which must also move the shares
 * away from it. Against 1 thread, evenly. */
static void test_thread_shares(void)
{
    const char *specs[] = {"reference",
                           "conv(8,3,stride=2,pad=1) relu maxpool(3,stride=2) fc(20) relu fc",
                           "conv(4,3) relu conv(6,3) maxpool(2) dropout(0.3) fc(12) relu fc"};
    const double two[] = {0.2, 0.8}, three[] = {0.6, 0.1, 0.3};
    for (int k = 0; k < 3; k++) {
        size_t n0, n;
        float *even = train_steps(specs[k], 1, 3, &n0);
        for (int rotate = 0; rotate < 2; rotate++) {
            dp_threads_force(two, 2, rotate);
            float *w = train_steps(specs[k], 2, 3, &n);
            CHECK(n == n0 && memcmp(w, even, n * sizeof(float)) == 0);
            free(w);
            dp_threads_force(three, 3, rotate);
            w = train_steps(specs[k], 3, 3, &n);
            CHECK(n == n0 && memcmp(w, even, n * sizeof(float)) == 0);
            free(w);
        }
        dp_threads_force(NULL, 0, 0);
        double shares[2] = {0, 0};
        CHECK(dp_threads_shares(shares, 2) == 0); /* even again */
        /* 40 steps: 3-4 timed regions a step, a review every 24 */
        dp_threads_balance(1);
        dp_threads_slow(1, 8.0);
        float *w = train_steps(specs[k], 2, 40, &n);
        CHECK(n == n0);
        float *ref = train_steps(specs[k], 1, 40, &n0);
        CHECK(memcmp(w, ref, n * sizeof(float)) == 0);
        CHECK(dp_threads_shares(shares, 2) == 2);
        CHECK(shares[1] < 0.4 && shares[0] > 0.6 && fabs(shares[0] + shares[1] - 1.0) < 1e-9);
        dp_threads_slow(1, 1.0);
        dp_threads_balance(0);
        CHECK(dp_threads_shares(shares, 2) == 0);
        free(w), free(ref), free(even);
    }
}

static void test_sgd(void)
{
    /* torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01) by hand:
     * w0 = 1, g = 0.5 both steps.
     * step 1: d = 0.5 + 0.01 = 0.51; buf = 0.51; w = 1 - 0.051 = 0.949
     * step 2: d = 0.5 + 0.00949 = 0.50949; buf = 0.459 + 0.50949 = 0.96849; w = 0.949 - 0.096849 */
    dp_err err;
    float w[3] = {1, 1, 7}, g[3] = {0.5f, 0.5f, 0.5f};
    /* two tensors through the optimizer interface: "a" trainable, "b" frozen */
    dp_param_view views[2] = {{"a", 0, 2, 1, 1}, {"b", 2, 1, 1, 0}};
    dp_optim_config cfg = {.kind = "sgd", .momentum = 0.9, .weight_decay = 0.01};
    dp_optimizer *opt = NULL;
    CHECK(optimizer_create(&opt, &cfg, views, 2, &err) == 0);
    CHECK(optimizer_state_count(opt) == 2);
    CHECK(strcmp(optimizer_state(opt, 0)->name, "a.momentum_buffer") == 0);
    CHECK(strcmp(optimizer_state(opt, 1)->name, "b.momentum_buffer") == 0);
    CHECK(optimizer_state(opt, 0)->count == 2 && optimizer_state(opt, 1)->count == 1);
    optimizer_step(opt, w, g, 0.1);
    CHECK_NEAR(w[0], 0.949, 1e-6);
    CHECK_NEAR(optimizer_state(opt, 0)->data[1], 0.51, 1e-6);
    optimizer_step(opt, w, g, 0.1);
    CHECK_NEAR(w[0], 0.949 - 0.096849, 1e-6);
    CHECK(w[0] == w[1]);
    CHECK(w[2] == 7.0f && optimizer_state(opt, 1)->data[0] == 0.0f); /* frozen: untouched */
    optimizer_free(opt);
    cfg.kind = "adagrad";
    CHECK(optimizer_create(&opt, &cfg, views, 2, &err) != 0 && strstr(err.msg, "adagrad"));
    /* nesterov: step 1 d = g + mu*buf = 0.5 + 0.45 = 0.95 */
    float w2[1] = {1}, v2[1] = {0};
    sgd_update(w2, g, v2, 1, 0.1f, 0.9f, 0.0f, 1);
    CHECK_NEAR(w2[0], 1 - 0.095, 1e-6);

    dp_lr_schedule s = {LR_COSINE, 0.1, 10, 110, 0, 0};
    CHECK_NEAR(lr_at(&s, 0), 0.01, 1e-12);  /* warm-up starts at base/warmup */
    CHECK_NEAR(lr_at(&s, 9), 0.1, 1e-12);
    CHECK_NEAR(lr_at(&s, 10), 0.1, 1e-12);
    CHECK_NEAR(lr_at(&s, 60), 0.05, 1e-12); /* half-way down the cosine */
    CHECK_NEAR(lr_at(&s, 110), 0.0, 1e-12);
    dp_lr_schedule st = {LR_STEP, 1.0, 0, 0, 5, 0.5};
    CHECK_NEAR(lr_at(&st, 4), 1.0, 0);
    CHECK_NEAR(lr_at(&st, 5), 0.5, 0);
    CHECK_NEAR(lr_at(&st, 12), 0.25, 0);
}

/* The state of a kind with counters, as checkpoints see it: names, types, sizes; a
 * frozen tensor's step count stays 0. AdamW by hand, one element, wd 0: step 1 moves w
 * by lr in the direction of -g (m_hat / sqrt(v_hat) = g / |g|). */
static void test_optimizer_state(void)
{
    dp_err err;
    float w[3] = {1, 1, 7}, g[3] = {0.5f, -0.25f, 0.5f};
    dp_param_view views[2] = {{"a", 0, 2, 1, 1}, {"b", 2, 1, 1, 0}};
    dp_optim_config cfg = {.kind = "adamw", .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    dp_optimizer *opt = NULL;
    CHECK(optimizer_create(&opt, &cfg, views, 2, &err) == 0);
    CHECK(strcmp(optimizer_kind(opt), "adamw") == 0);
    CHECK(optimizer_state_count(opt) == 6);
    const char *names[] = {"a.exp_avg", "a.exp_avg_sq", "a.step", "b.exp_avg", "b.exp_avg_sq",
                           "b.step"};
    for (int i = 0; i < 6; i++) {
        const dp_optim_state *st = optimizer_state(opt, i);
        CHECK(strcmp(st->name, names[i]) == 0);
        const int counter = i % 3 == 2;
        CHECK(st->type == (counter ? DP_STATE_I64 : DP_STATE_F32));
        CHECK(counter ? st->ints && !st->data && st->count == 1
                      : st->data && !st->ints && st->count == (i < 3 ? 2u : 1u));
    }
    optimizer_step(opt, w, g, 0.01);
    optimizer_step(opt, w, g, 0.01);
    CHECK(optimizer_state(opt, 2)->ints[0] == 2 && optimizer_state(opt, 5)->ints[0] == 0);
    CHECK_NEAR(w[0], 0.98, 1e-6);
    CHECK_NEAR(w[1], 1.02, 1e-6);
    CHECK(w[2] == 7.0f && optimizer_state(opt, 3)->data[0] == 0.0f);
    optimizer_free(opt);
}

static void test_weights_file(void)
{
    dp_model m, m2;
    dp_err err;
    model_build(&m, "reference", 1, 28, 28, 10, &err);
    model_build(&m2, "reference", 1, 28, 28, 10, &err);
    model_init(&m, 8);
    char dir[] = "/tmp/dptrain-w-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/w.h5", dir);
    CHECK(weights_save(&m, path, NULL, &err) == 0);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0); /* renamed into place */
    CHECK(weights_load(&m2, path, &err) == 0);
    CHECK(memcmp(m.weights, m2.weights, m.size * sizeof(float)) == 0);
    /* a model of another shape is refused, naming the dataset and both shapes */
    dp_model other;
    model_build(&other, "conv(16,3) relu maxpool(2) conv(64,3) relu maxpool(2) fc(128) relu fc",
                1, 28, 28, 10, &err);
    CHECK(weights_load(&other, path, &err) == -1);
    CHECK_MSG(err.msg, "conv1.weight");
    CHECK_MSG(err.msg, "[32,1,3,3]");
    CHECK_MSG(err.msg, "[16,1,3,3]");
    model_free(&other);
    /* missing file, non-HDF5 file, unwritable target */
    snprintf(tmp, sizeof tmp, "%s/missing.h5", dir);
    CHECK(weights_load(&m2, tmp, &err) == -1);
    CHECK_MSG(err.msg, "missing.h5");
    snprintf(tmp, sizeof tmp, "%s/text.h5", dir);
    FILE *f = fopen(tmp, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    CHECK(weights_load(&m2, tmp, &err) == -1);
    CHECK_MSG(err.msg, "not an HDF5 file");
    unlink(tmp);
    snprintf(tmp, sizeof tmp, "%s/no/such/dir/w.h5", dir);
    CHECK(weights_save(&m, tmp, NULL, &err) == -1);
    CHECK_MSG(err.msg, "cannot create");
    unlink(path);
    rmdir(dir);
    model_free(&m);
    model_free(&m2);
}


static void test_cli(void)
{
    dp_config c;
    dp_err err;
    CHECK(parse("", &c, &err) == 0);
    CHECK(c.batch == 100 && c.momentum == 0.9 && c.shuffle && c.steps == -1 && c.epochs > 0);
    CHECK(strcmp(c.model, "reference") == 0);
    CHECK(parse("--epochs 3 --steps 10 --batch 64 --lr 0.1 --weight-decay 0.0005 --seed 9 "
                "--no-shuffle --threads 2 --model nopool --lr-schedule step --nesterov",
                &c, &err) == 0);
    CHECK(c.epochs == 3 && c.steps == 10 && c.batch == 64 && c.lr == 0.1 && c.seed == 9);
    CHECK(!c.shuffle && c.threads == 2 && c.schedule == LR_STEP && c.nesterov);
    CHECK(parse("--steps 5", &c, &err) == 0 && c.epochs == 0 && c.steps == 5);
    CHECK(parse("--tutorial", &c, &err) == 0 && c.lr == 0.001 && c.epochs == 10 &&
          c.schedule == LR_CONSTANT);
    /* the warm-up defaults per optimizer (lars and lamb: the large-batch search's 1
     * epoch); an explicit value or --tutorial's 0 wins, in either order */
    CHECK(parse("", &c, &err) == 0 && c.warmup_epochs == 0.1);
    CHECK(parse("--optimizer lars", &c, &err) == 0 && c.warmup_epochs == 1 && c.lr == 3 &&
          c.trust_coefficient == 0.008);
    CHECK(parse("--optimizer lamb", &c, &err) == 0 && c.warmup_epochs == 1 && c.lr == 0.03);
    CHECK(parse("--optimizer adamw", &c, &err) == 0 && c.warmup_epochs == 0.1);
    CHECK(parse("--warmup-epochs 0.5 --optimizer lars", &c, &err) == 0 &&
          c.warmup_epochs == 0.5);
    CHECK(parse("--optimizer lamb --tutorial", &c, &err) == 0 && c.warmup_epochs == 0);
    CHECK(parse("--help", &c, &err) == 1);
    struct {
        const char *line, *needle;
    } bad[] = {
        {"--batch 0", "--batch: 0 is out of range"},
        {"--batch ten", "--batch: expected an integer, got 'ten'"},
        {"--lr -1", "--lr: -1 is out of range"},
        {"--lr nan", "--lr: expected a number"},
        {"--momentum 1.5", "--momentum"},
        {"--threads 0", "--threads"},
        {"--lr-schedule linear", "--lr-schedule: expected constant, cosine or step"},
        {"--frobnicate", "unknown option '--frobnicate'"},
        {"--epochs", "--epochs: needs a value"},
        {"stray", "unexpected argument 'stray'"},
        {"--normalize 0.1", "--normalize: expected MEAN,STD"},
        {"--normalize 0.1,0", "--normalize"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK(parse(bad[i].line, &c, &err) == -1);
        CHECK_MSG(err.msg, bad[i].needle);
    }
}

int main(void)
{
    test_builtin_models();
    test_spec_errors();
    test_init();
    test_whole_net_gradcheck();
    test_buffers();
    test_backward_ranges();
    test_thread_determinism();
    test_thread_shares();
    test_sgd();
    test_optimizer_state();
    test_weights_file();
    test_cli();
    return check_exit("test_model");
}
