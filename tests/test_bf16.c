/* --precision bf16: the products of convolutions and fc layers on bf16 operands with fp32
 * sums.
 *
 * The conv forward output and weight gradient, and the fc forward output, input gradient
 * and weight gradient are checked bit for bit against an oracle written here: im2col,
 * bf16 rounding (nearest of the two neighbours, ties to even, subnormals to zero: another
 * method than the kernels' bit trick) and one chain per element, VDPBF16PS's definition
 * (odd k, then even k, each an fmaf whose subnormal result is flushed). The fc layer's
 * groups (linear_backward_groups) hand over each group's partial as linear_backward on
 * that group alone. The conv input gradient, the fused conv + relu + pool layer and whole
 * models: the AVX512-BF16 path against the scalar emulation, bit for bit; 1 and 2 threads
 * alike; close to fp32 and yet not fp32 (the precision is in use). Convolutions with
 * fewer than 16 columns (MNIST's conv1) stay fp32, bit for bit. Packed operands hold no
 * subnormal bf16. The selection: refused on the avx2 path, where the CPU lacks
 * AVX512-BF16 (dp_isa_hide) and for an unknown name. Where the CPU
 * lacks AVX512-BF16 only the scalar emulation runs, and the program says so.
 *
 *   test_bf16 --path    print the path bf16 runs on here: avx512, or scalar (emulation) */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "bufs.h"
#include "check.h"
#include "conv_run.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* The bf16 nearest to x (finite x), ties to an even last bit; subnormals to zero. */
static float bf16_round(float x)
{
    if (fpclassify(x) == FP_SUBNORMAL || x == 0.0f)
        return copysignf(0.0f, x);
    const uint32_t lo = bits(x) & 0xffff0000u;
    const float down = from_bits(lo), up = from_bits(lo + 0x10000u);
    const double dd = fabs((double)x - down), du = fabs((double)up - x);
    if (dd != du)
        return dd < du ? down : up;
    return (lo >> 16) & 1u ? up : down;
}

static float flushed(float x) { return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x; }

/* One chain over K terms a[k]*b[k], given as functions of k, in pairs: odd k first. */
typedef struct {
    const float *a, *b;
    size_t as, bs; /* strides along k */
} chain_src;

static float chain(float c, const chain_src *s, int K)
{
    for (int k = 0; k < K; k += 2) {
        const float a1 = k + 1 < K ? bf16_round(s->a[(k + 1) * s->as]) : 0.0f;
        const float b1 = k + 1 < K ? bf16_round(s->b[(k + 1) * s->bs]) : 0.0f;
        c = flushed(fmaf(a1, b1, flushed(c)));
        c = flushed(fmaf(bf16_round(s->a[k * s->as]), bf16_round(s->b[k * s->bs]), c));
    }
    return c;
}

static void oracle_im2col(const float *in, const dp_conv_shape *s, float *col)
{
    const int P = s->OH * s->OW;
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->KH; i++)
            for (int j = 0; j < s->KW; j++)
                for (int p = 0; p < P; p++) {
                    const int y = p / s->OW * s->stride - s->pad + i;
                    const int x = p % s->OW * s->stride - s->pad + j;
                    const int inside = y >= 0 && y < s->H && x >= 0 && x < s->W;
                    col[((size_t)(c * s->KH + i) * s->KW + j) * P + p] =
                        inside ? in[((size_t)c * s->H + y) * s->W + x] : 0.0f;
                }
}

/* Floats in [-1, 1) with some that test the rounding: exact ties between two bf16 (both
 * parities), values that round up into the next binade, subnormals, zeros of both signs. */
static float *nasty_buf(size_t n)
{
    float *p = rand_buf(n);
    for (size_t i = 0; i < n; i++)
        switch (i % 23) {
        case 3: p[i] = from_bits((bits(p[i]) & 0xffff0000u) | 0x8000u); break;
        case 5: p[i] = from_bits((bits(p[i]) & 0xfffe0000u) | 0x18000u); break;
        case 7: p[i] = from_bits((bits(p[i]) & 0xff800000u) | 0x7fffffu); break;
        case 11: p[i] = from_bits((bits(p[i]) & 0x80000000u) | 0x00012345u); break;
        case 13: p[i] = i % 2 ? -0.0f : 0.0f; break;
        default: break;
        }
    return p;
}

/* max |x - y| over max |y|: how far bf16 lands from fp32 */
static double rel_diff(const float *x, const float *y, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)x[i] - y[i]));
        m = fmax(m, fabs((double)y[i]));
    }
    return m > 0 ? d / m : d;
}

static int select_path(const char *isa, const char *precision)
{
    dp_err err;
    if (dp_isa_select(isa, &err) || dp_precision_select(precision, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

/* One shape under bf16 on path isa: the oracle, threads, fp32's neighbourhood; returns
 * the result of 1 thread (for the comparison across paths). */
static conv_result check_shape(const dp_conv_shape *s, const char *isa, uint64_t seed)
{
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW;
    rng_seed(&rng, seed, 7, 1);
    float *in = nasty_buf(in_len(s)), *w = nasty_buf(w_len(s)), *b = rand_buf((size_t)s->OC);
    float *dout = nasty_buf(out_len(s));
    CHECK(select_path(isa, "bf16") == 0);
    omp_set_num_threads(1);
    conv_result r1 = run_conv(s, in, w, b, dout, w, b);
    omp_set_num_threads(2);
    conv_result r2 = run_conv(s, in, w, b, dout, w, b);
    omp_set_num_threads(1);
    if (!same_result(&r1, &r2, s)) {
        fprintf(stderr, "%s bf16, shape %dx%dx%d -> %d: 1 and 2 threads differ\n", isa, s->C,
                s->H, s->W, s->OC);
        CHECK(0);
    }
    CHECK(select_path(isa, "fp32") == 0);
    conv_result f = run_conv(s, in, w, b, dout, w, b);
    if (K < 16) { /* stays fp32 */
        CHECK(same_result(&r1, &f, s));
    } else {
        /* the oracle: forward and the weight gradient, every element */
        float *col = malloc(sizeof(float) * (size_t)K * P);
        size_t bad = 0;
        float *dw = malloc(sizeof(float) * w_len(s));
        memcpy(dw, w, sizeof(float) * w_len(s));
        for (int n = 0; n < s->B; n++) {
            oracle_im2col(in + (size_t)n * s->C * s->H * s->W, s, col);
            const float *dn = dout + (size_t)n * s->OC * P;
            for (int oc = 0; oc < s->OC; oc++)
                for (int p = 0; p < P; p++) {
                    chain_src src = {w + (size_t)oc * K, col + p, 1, (size_t)P};
                    bad += bits(chain(b[oc], &src, K)) !=
                           bits(r1.out[((size_t)n * s->OC + oc) * P + p]);
                }
            for (int oc = 0; oc < s->OC; oc++)
                for (int k = 0; k < K; k++) {
                    chain_src src = {dn + (size_t)oc * P, col + (size_t)k * P, 1, 1};
                    dw[(size_t)oc * K + k] = chain(dw[(size_t)oc * K + k], &src, P);
                }
        }
        for (size_t i = 0; i < w_len(s); i++)
            bad += bits(dw[i]) != bits(r1.dw[i]);
        if (bad) {
            fprintf(stderr, "%s bf16, shape %dx%dx%d -> %d: %zu elements differ from the "
                            "oracle\n", isa, s->C, s->H, s->W, s->OC, bad);
            CHECK(0);
        }
        /* near fp32 (bf16 keeps 8 bits: a relative error of 2^-9 per operand), not fp32 */
        const double eo = rel_diff(r1.out, f.out, out_len(s)), ei = rel_diff(r1.din, f.din, in_len(s));
        const double ew = rel_diff(r1.dw, f.dw, w_len(s));
        CHECK(eo < 2e-2 && ei < 2e-2 && ew < 2e-2);
        CHECK(eo > 0 && ei > 0 && ew > 0);
        CHECK(same(r1.db, f.db, sizeof(float) * s->OC)); /* the bias gradient is no product */
        free(col), free(dw);
    }
    free_result(&r2), free_result(&f);
    free(in), free(w), free(b), free(dout);
    return r1;
}

/* The fused conv + relu + maxpool in bf16 equals the three layers in bf16. */
static void check_fused(void)
{
    const int B = 3, C = 32, H = 13, OC = 64, KK = 3, OH = H - KK + 1;
    dp_conv_shape s = {B, C, H, H, OC, KK, KK, 1, 0, OH, OH};
    dp_pool_shape pl = {2, 2, OH / 2, OH / 2};
    const size_t nin = in_len(&s), nconv = out_len(&s), npool = (size_t)B * OC * pl.OH * pl.OW;
    rng_seed(&rng, 5, 5, 5);
    float *in = rand_buf(nin), *w = rand_buf(w_len(&s)), *b = rand_buf(OC), *dpool = rand_buf(npool);
    float *col = malloc(sizeof(float) * nconv * C * KK * KK / OC + sizeof(float) * nin);
    float *scratch = malloc(sizeof(float) * conv2d_pool_scratch_floats(&s) * omp_get_max_threads());
    float *conv = malloc(sizeof(float) * nconv), *dconv = malloc(sizeof(float) * nconv);
    float *p1 = malloc(sizeof(float) * npool), *p2 = malloc(sizeof(float) * npool);
    int32_t *a1 = malloc(sizeof(int32_t) * npool), *a2 = malloc(sizeof(int32_t) * npool);
    float *din1 = malloc(sizeof(float) * nin), *din2 = malloc(sizeof(float) * nin);
    float *dw1 = calloc(w_len(&s), sizeof(float)), *dw2 = calloc(w_len(&s), sizeof(float));
    float *db1 = calloc(OC, sizeof(float)), *db2 = calloc(OC, sizeof(float));
    conv2d_forward(conv, col, in, w, b, scratch, &s);
    relu_maxpool_forward(p1, a1, conv, B, OC, OH, OH, pl.K, pl.stride, pl.OH, pl.OW);
    relu_maxpool_backward(dconv, dpool, p1, a1, B, OC, OH, OH, pl.OH, pl.OW);
    conv2d_backward(din1, dw1, db1, col, dconv, w, scratch, &s);
    conv2d_relu_maxpool_forward(p2, a2, col, in, w, b, scratch, &s, &pl);
    conv2d_relu_maxpool_backward(din2, dw2, db2, col, dpool, p2, a2, w, scratch, NULL, &s, &pl);
    CHECK(same(p1, p2, sizeof(float) * npool) && same(din1, din2, sizeof(float) * nin) &&
          same(dw1, dw2, sizeof(float) * w_len(&s)) && same(db1, db2, sizeof(float) * OC));
    free(in), free(w), free(b), free(dpool), free(col), free(scratch), free(conv), free(dconv);
    free(p1), free(p2), free(a1), free(a2), free(din1), free(din2), free(dw1), free(dw2);
    free(db1), free(db2);
}

/* ---- fully connected ---------------------------------------------------------------- */

typedef struct {
    float *dw, *db;
    double *sw, *sb; /* the moved partials, summed in the order they come */
    size_t nw, nb;
} moved;

static void take(void *ctx, float *g, size_t rows, size_t cols, size_t ld)
{
    moved *m = ctx;
    const int weights = g >= m->dw && g < m->dw + m->nw;
    double *sum = weights ? m->sw + (g - m->dw) : m->sb + (g - m->db);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            sum[r * ld + c] += g[r * ld + c];
            g[r * ld + c] = 0.0f;
        }
}

/* How many of an fc layer's results differ from the oracle: out = b + in w^T, din = dout w,
 * dw = dw0 + dout^T in, each element one chain. */
static size_t fc_oracle_misses(const float *in, const float *w, const float *b,
                               const float *dout, const float *dw0, const float *out,
                               const float *din, const float *dw, int B, int I, int O)
{
    size_t bad = 0;
    for (int s = 0; s < B; s++)
        for (int o = 0; o < O; o++) {
            chain_src f = {in + (size_t)s * I, w + (size_t)o * I, 1, 1};
            bad += bits(chain(b[o], &f, I)) != bits(out[(size_t)s * O + o]);
        }
    for (int s = 0; s < B; s++)
        for (int i = 0; i < I; i++) {
            chain_src g = {dout + (size_t)s * O, w + i, 1, (size_t)I};
            bad += bits(chain(0.0f, &g, O)) != bits(din[(size_t)s * I + i]);
        }
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            chain_src g = {dout + o, in + i, (size_t)O, (size_t)I};
            bad += bits(chain(dw0[(size_t)o * I + i], &g, B)) != bits(dw[(size_t)o * I + i]);
        }
    return bad;
}

/* fc forward, backward and backward over groups under bf16 on path isa: forward, input and
 * weight gradients bit for bit as the oracle; the groups' partials those of each group
 * alone; 1 and 2 threads alike; returns the results of 1 thread ([out|din|dw|db]). */
static float *check_fc(const char *isa, int B, int I, int O)
{
    const size_t nout = (size_t)B * O, nin = (size_t)B * I, nw = (size_t)O * I;
    const size_t n = nout + nin + nw + O;
    rng_seed(&rng, (uint64_t)I, (uint64_t)O, 3);
    float *in = nasty_buf(nin), *w = nasty_buf(nw), *b = rand_buf(O), *dout = nasty_buf(nout);
    float *res[2];
    CHECK(select_path(isa, "bf16") == 0);
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        float *scratch = malloc(sizeof(float) * linear_scratch_floats(B, I, O, t + 1));
        float *r = res[t] = malloc(sizeof(float) * n);
        float *out = r, *din = r + nout, *dw = din + nin, *db = dw + nw;
        memcpy(dw, w, sizeof(float) * nw); /* accumulate onto something non-zero */
        memcpy(db, b, sizeof(float) * O);
        linear_forward(out, in, w, b, B, I, O, scratch);
        linear_backward(din, dw, db, dout, in, w, B, I, O, scratch);
        free(scratch);
    }
    omp_set_num_threads(1);
    CHECK(same(res[0], res[1], sizeof(float) * n));
    const float *out = res[0], *din = out + nout, *dw = din + nin;
    const size_t bad = fc_oracle_misses(in, w, b, dout, w, out, din, dw, B, I, O);
    if (bad) {
        fprintf(stderr, "%s bf16 fc %d x %d -> %d: %zu elements differ from the oracle\n", isa,
                B, I, O, bad);
        CHECK(0);
    }
    /* groups of 2, 3, 4, 1, ...: each group's partial as linear_backward on it alone */
    int bounds[32], ng = 0;
    for (int at = 0; at < B; at += 1 + ng % 4)
        bounds[ng++] = at;
    bounds[ng] = B;
    float *scratch = malloc(sizeof(float) * linear_scratch_floats(B, I, O, 1));
    float *gw = calloc(nw, sizeof(float)), *gb = calloc(O, sizeof(float));
    float *din2 = malloc(sizeof(float) * nin), *din1 = malloc(sizeof(float) * nin);
    moved m = {gw, gb, calloc(nw, sizeof(double)), calloc(O, sizeof(double)), nw, (size_t)O};
    linear_backward_groups(din2, gw, gb, dout, in, w, B, I, O, scratch, bounds, ng, take, NULL, NULL, &m);
    double *sw = calloc(nw, sizeof(double)), *sb = calloc(O, sizeof(double));
    for (int g = 0; g < ng; g++) {
        const int n0 = bounds[g], len = bounds[g + 1] - n0;
        linear_backward(din1 + (size_t)n0 * I, gw, gb, dout + (size_t)n0 * O,
                        in + (size_t)n0 * I, w, len, I, O, scratch);
        for (size_t i = 0; i < nw; i++)
            sw[i] += gw[i], gw[i] = 0.0f;
        for (int o = 0; o < O; o++)
            sb[o] += gb[o], gb[o] = 0.0f;
    }
    CHECK(same(din1, din2, sizeof(float) * nin) && same(sw, m.sw, sizeof(double) * nw) &&
          same(sb, m.sb, sizeof(double) * O));
    free(scratch), free(gw), free(gb), free(din1), free(din2), free(m.sw), free(m.sb);
    free(sw), free(sb), free(res[1]);
    free(in), free(w), free(b), free(dout);
    return res[0];
}

/* The operands as packed hold no subnormal bf16: AVX512-BF16 on Intel reads one as zero
 * and on AMD Zen 4 does not (both measured), so only a packing that flushes subnormal
 * floats gives the same bits on both, and on the emulation. fc on 2 samples where every
 * term of out[0][*], din[1][*] and dw is subnormal x 2^50 (about 1e-24 if the subnormal
 * survived): all zero, and bit for bit as the oracle. Covers the three packings. */
static void check_subnormal_operands(const char *isa)
{
    enum { B = 2, I = 37, O = 19 };
    float in[B * I], w[O * I], b[O] = {0}, dout[B * O];
    float out[B * O], din[B * I], dw[O * I] = {0}, dw0[O * I] = {0}, db[O] = {0};
    for (int k = 0; k < B * I + O * I + B * O; k++) {
        const uint32_t sign = (uint32_t)(k % 3 == 1) << 31, mant = 0x00400001u + 0x1357u * k;
        const float tiny = from_bits(sign | (mant & 0x007fffffu));
        const float huge = from_bits(sign | 0x58800000u);
        if (k < B * I)
            in[k] = k < I ? tiny : huge; /* sample 0 subnormal, sample 1 2^50 */
        else if (k < B * I + O * I)
            w[k - B * I] = huge;
        else
            dout[k - B * I - O * I] = k - B * I - O * I < O ? huge : tiny; /* sample 1 tiny */
    }
    CHECK(select_path(isa, "bf16") == 0);
    float *scratch = malloc(sizeof(float) * linear_scratch_floats(B, I, O, omp_get_max_threads()));
    linear_forward(out, in, w, b, B, I, O, scratch);
    linear_backward(din, dw, db, dout, in, w, B, I, O, scratch);
    free(scratch);
    const size_t bad = fc_oracle_misses(in, w, b, dout, dw0, out, din, dw, B, I, O);
    size_t nonzero = 0; /* the results whose every term is subnormal x 2^50 */
    for (int o = 0; o < O; o++)
        nonzero += out[o] != 0.0f;
    for (int i = 0; i < I; i++)
        nonzero += din[I + i] != 0.0f;
    for (int k = 0; k < O * I; k++)
        nonzero += dw[k] != 0.0f;
    if (bad || nonzero) {
        fprintf(stderr, "%s bf16: subnormal operands: %zu elements differ from the oracle, "
                        "%zu not zero\n", isa, bad, nonzero);
        CHECK(0);
    }
}

/* A few SGD steps of a model; the weights (the caller frees). */
static float *train(const char *spec, int threads)
{
    dp_err err;
    dp_model m;
    dp_workspace ws;
    const int B = 12;
    omp_set_num_threads(threads);
    if (model_build(&m, spec, 1, 28, 28, 10, &err) || workspace_create(&ws, &m, B, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        return NULL;
    }
    model_init(&m, 3);
    float *vel = calloc(m.size, sizeof(float));
    uint8_t labels[12];
    rng_seed(&rng, 9, 9, 9);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < (size_t)B * 784; i++)
            ws.input[i] = rng_uniform(&rng);
        for (int n = 0; n < B; n++)
            labels[n] = (uint8_t)rng_below(&rng, 10);
        memset(m.grads, 0, m.size * sizeof(float));
        dp_pass pass = {.labels = labels, .B = B, .train = 1, .grad_scale = 1.0 / B};
        model_forward(&m, &ws, &pass, NULL);
        model_backward(&m, &ws, &pass, 0, B);
        sgd_update(m.weights, m.grads, vel, m.size, 0.05f, 0.9f, 0.0f, 0);
    }
    float *w = malloc(sizeof(float) * m.size);
    memcpy(w, m.weights, sizeof(float) * m.size);
    free(vel);
    workspace_free(&ws);
    model_free(&m);
    return w;
}

static void check_models(const char *isa, float **ref, size_t *size)
{
    static const char *const spec = "reference";
    dp_model m;
    dp_err err;
    model_build(&m, spec, 1, 28, 28, 10, &err);
    *size = m.size;
    model_free(&m);
    CHECK(select_path(isa, "bf16") == 0);
    float *w1 = train(spec, 1), *w2 = train(spec, 2);
    CHECK(w1 && w2 && same(w1, w2, sizeof(float) * *size));
    if (*ref)
        CHECK(same(*ref, w1, sizeof(float) * *size)); /* the other path's */
    CHECK(select_path(isa, "fp32") == 0);
    float *f = train(spec, 1);
    CHECK(f && !same(f, w1, sizeof(float) * *size) && rel_diff(w1, f, *size) < 1e-2);
    if (!*ref)
        *ref = w1;
    else
        free(w1);
    free(w2), free(f);
}

static void check_selection(void)
{
    dp_err err;
    CHECK(strcmp(dp_precision_name(), "fp32") == 0);
    CHECK(dp_precision_select("fp16", &err) == -1);
    CHECK_MSG(err.msg, "unknown precision 'fp16'");
    if (dp_isa_available("avx2")) {
        CHECK(dp_isa_select("avx2", &err) == 0);
        CHECK(dp_precision_select("bf16", &err) == -1);
        CHECK_MSG(err.msg, "avx2 path");
        CHECK(strcmp(dp_precision_name(), "fp32") == 0);
    }
    if (dp_isa_available("avx512")) {
        dp_isa_hide("bf16");
        CHECK(dp_isa_select("avx512", &err) == 0);
        CHECK(dp_precision_select("bf16", &err) == -1);
        CHECK_MSG(err.msg, "lacks AVX512-BF16");
        dp_isa_hide(NULL);
    }
    CHECK(dp_isa_select("scalar", &err) == 0 && dp_precision_select("bf16", &err) == 0);
    CHECK(strstr(dp_precision_describe(), "emulated") != NULL);
    CHECK(dp_precision_select("fp32", &err) == 0);
}

int main(int argc, char **argv)
{
    dp_err err;
    if (argc == 2 && !strcmp(argv[1], "--path")) { /* for scripts: where bf16 runs here */
        const int hw = dp_isa_available("avx512") && dp_isa_select("avx512", &err) == 0 &&
                       dp_precision_select("bf16", &err) == 0;
        printf("%s\n", hw ? "avx512" : "scalar");
        return 0;
    }
    check_selection();
    const char *paths[2] = {NULL, "scalar"};
    if (dp_isa_available("avx512") && dp_isa_select("avx512", &err) == 0 &&
        dp_precision_select("bf16", &err) == 0)
        paths[0] = "avx512";
    else
        printf("AVX512-BF16: skipped, this CPU lacks it (only the scalar emulation runs)\n");
    CHECK(dp_precision_select("fp32", &err) == 0);
    /* B, C, H, W, OC, K, stride, pad: MNIST's conv2 and conv1, odd sizes, few columns */
    static const int shapes[][8] = {{2, 32, 13, 13, 64, 3, 1, 0}, {2, 1, 28, 28, 32, 3, 1, 0},
                                    {2, 3, 9, 7, 5, 3, 2, 1},
                                    {1, 5, 8, 8, 17, 3, 1, 1},    {3, 2, 6, 11, 7, 2, 1, 0},
                                    {2, 7, 10, 10, 33, 3, 1, 0}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    conv_result first[8];
    /* B, I, O: the reference model's fc1 and fc2, odd sizes, columns past one tile (512) */
    static const int fc[][3] = {{12, 1600, 128}, {12, 128, 10}, {7, 37, 9}, {5, 601, 33}};
    const int nfc = (int)(sizeof fc / sizeof fc[0]);
    float *fc_first[4] = {NULL};
    for (int p = 0; p < 2; p++) {
        if (!paths[p])
            continue;
        for (int t = 0; t < nshapes; t++) {
            const int *v = shapes[t];
            dp_conv_shape s = {v[0], v[1], v[2], v[3], v[4], v[5], v[5], v[6], v[7],
                               (v[2] + 2 * v[7] - v[5]) / v[6] + 1, (v[3] + 2 * v[7] - v[5]) / v[6] + 1};
            conv_result r = check_shape(&s, paths[p], (uint64_t)t + 1);
            if (p == 1 && paths[0]) {
                if (!same_result(&first[t], &r, &s)) {
                    fprintf(stderr, "shape %d: AVX512-BF16 and the scalar emulation differ\n", t);
                    CHECK(0);
                }
                free_result(&first[t]);
            }
            if (p == 0)
                first[t] = r;
            else
                free_result(&r);
        }
        CHECK(select_path(paths[p], "bf16") == 0);
        check_fused();
        check_subnormal_operands(paths[p]);
        for (int f = 0; f < nfc; f++) {
            float *r = check_fc(paths[p], fc[f][0], fc[f][1], fc[f][2]);
            const size_t n = (size_t)fc[f][0] * (fc[f][1] + fc[f][2]) +
                             (size_t)fc[f][2] * (fc[f][1] + 1);
            if (p == 0)
                fc_first[f] = r;
            if (p == 1 && paths[0]) {
                if (!same(fc_first[f], r, sizeof(float) * n)) {
                    fprintf(stderr, "fc %d: AVX512-BF16 and the scalar emulation differ\n", f);
                    CHECK(0);
                }
                free(fc_first[f]);
            }
            if (p == 1)
                free(r);
        }
        if (!check_failures)
            printf("%s: bf16 convolutions and fc layers bitwise as the oracle, for 1 and 2 "
                   "threads\n",
                   paths[p]);
    }
    float *ref = NULL;
    size_t size = 0;
    for (int p = 0; p < 2; p++)
        if (paths[p])
            check_models(paths[p], &ref, &size);
    printf("whole model in bf16: the same weights for 1 and 2 threads%s; near fp32's\n",
           paths[0] ? " and on both paths" : "");
    free(ref);
    return check_exit("test_bf16");
}
