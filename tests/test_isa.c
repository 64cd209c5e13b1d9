/* Every instruction-set path gives the same bits. The products are checked against an
 * oracle written here with fmaf (one chain per element in k order; the 8-lane scheme for
 * the NT products), on many shapes with tails (odd M and N, K < 8, K not a multiple of
 * 8, long K that is sliced, strides that are packed); the other kernels and every layer's
 * forward and backward against the scalar path. A path this CPU lacks is reported and
 * skipped; the others must all run. Then whole models: a few SGD steps under every path
 * and thread count end in the same weights, bit for bit.
 *
 *   test_isa                  all of it
 *   test_isa --expect NAME    only check that the path chosen before main is NAME
 *   test_isa --list           print the paths this CPU offers, widest first (for scripts) */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "bufs.h"
#include "check.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/kernels.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"
#include "dptrain/util/rng.h"

static float *copy_buf(const float *src, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* ---- the oracles ------------------------------------------------------------------- */

/* C = start + A B, A[i*ars + k*aks]; start: 0 zero, 1 C, 2 bias[i] */
static void oracle_axpy(int M, int N, int K, const float *A, size_t ars, size_t aks,
                        const float *B, int ldb, float *C, int ldc, int start, const float *bias)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float c = start == 0 ? 0.0f : start == 1 ? C[(size_t)i * ldc + j] : bias[i];
            for (int k = 0; k < K; k++)
                c = fmaf(A[i * ars + k * aks], B[(size_t)k * ldb + j], c);
            C[(size_t)i * ldc + j] = c;
        }
}

static float oracle_dot(const float *a, const float *b, int n)
{
    float s[8] = {0};
    int n8 = n & ~7;
    for (int p = 0; p < n8; p++)
        s[p % 8] = fmaf(a[p], b[p], s[p % 8]);
    for (int p = n8; p < n; p++)
        s[p - n8] = fmaf(a[p], b[p], s[p - n8]);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* ---- products against the oracles ---------------------------------------------------- */

static const int dims_m[] = {1, 2, 3, 5, 6, 7, 8, 13, 17, 33, 64};
static const int dims_n[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 121};
static const int dims_k[] = {1, 2, 5, 8, 9, 16, 31, 121, 288};
#define PICK(a) a[rng_below(&rng, sizeof a / sizeof a[0])]

/* One product of each kind on M x N x K (lda, ldb, ldc padded), against the oracle. */
static int check_axpy(int M, int N, int K, int ldb_min)
{
    int ok = 1;
    for (int form = 0; form < 5; form++) { /* nn, nn_acc, tn, tn_acc, nn_bias */
        const int tn = form == 2 || form == 3, start = form == 4 ? 2 : form % 2;
        const int lda = (tn ? M : K) + 3, ldb = (N + 5 > ldb_min ? N + 5 : ldb_min), ldc = N + 2;
        size_t na = (size_t)(tn ? K : M) * lda, nb = (size_t)K * ldb, nc = (size_t)M * ldc;
        float *A = rand_buf(na), *B = rand_buf(nb), *bias = rand_buf((size_t)M);
        float *C = rand_buf(nc), *want = copy_buf(C, nc);
        oracle_axpy(M, N, K, A, tn ? 1 : (size_t)lda, tn ? (size_t)lda : 1, B, ldb, want, ldc,
                    start, bias);
        switch (form) {
        case 0: gemm_nn(M, N, K, A, lda, B, ldb, C, ldc); break;
        case 1: gemm_nn_acc(M, N, K, A, lda, B, ldb, C, ldc); break;
        case 2: gemm_tn(M, N, K, A, lda, B, ldb, C, ldc); break;
        case 3: gemm_tn_acc(M, N, K, A, lda, B, ldb, C, ldc); break;
        case 4: gemm_nn_bias(M, N, K, A, lda, B, ldb, bias, C, ldc); break;
        }
        if (!same(C, want, nc * sizeof(float))) {
            fprintf(stderr, "%s: product form %d, %dx%dx%d (ldb %d) differs from the fmaf "
                            "chain\n", dp_isa_name(), form, M, N, K, ldb);
            ok = 0;
        }
        free(A), free(B), free(bias), free(C), free(want);
    }
    return ok;
}

static int check_nt(int M, int N, int K)
{
    const int lda = K + 1, ldb = K + 7, ldc = N + 3;
    float *A = rand_buf((size_t)M * lda), *B = rand_buf((size_t)N * ldb);
    float *C = rand_buf((size_t)M * ldc), *want = copy_buf(C, (size_t)M * ldc);
    float *C2 = copy_buf(C, (size_t)M * ldc);
    float *lanes = malloc(sizeof(float) * 8 * M * N);
    float *pack = malloc(sizeof(float) * gemm_nt_pack_floats(M, N));
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            want[(size_t)i * ldc + j] += oracle_dot(A + (size_t)i * lda, B + (size_t)j * ldb, K);
    gemm_nt_acc(M, N, K, A, lda, B, ldb, C, ldc);
    gemm_nt_acc_lanes(M, N, K, A, lda, B, ldb, C2, ldc, lanes, pack);
    int ok = same(C, want, sizeof(float) * M * ldc) && same(C2, want, sizeof(float) * M * ldc) &&
             dot_f32(A, B, K) == oracle_dot(A, B, K);
    if (!ok)
        fprintf(stderr, "%s: NT product %dx%dx%d differs from the 8-lane fmaf scheme\n",
                dp_isa_name(), M, N, K);
    free(A), free(B), free(C), free(C2), free(want), free(lanes), free(pack);
    return ok;
}

static void test_products(void)
{
    int ok = 1;
    for (int t = 0; t < 120; t++)
        ok &= check_axpy(PICK(dims_m), PICK(dims_n), PICK(dims_k), 0);
    ok &= check_axpy(64, 121, 288, 0);  /* conv2's forward */
    ok &= check_axpy(20, 70, 700, 0);   /* K sliced, with a tail slice */
    ok &= check_axpy(30, 37, 100, 1024); /* rows of B 4 KiB apart: the packed panel */
    ok &= check_axpy(30, 150, 100, 1024); /* packed blocks, the next one prefetched, a tail */
    ok &= check_axpy(4, 5, 0, 0);        /* an empty chain */
    static const int nt_m[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17};
    static const int nt_n[] = {1, 2, 3, 4, 5, 7, 8, 9, 10, 17};
    static const int nt_k[] = {1, 3, 7, 8, 9, 15, 16, 17, 100, 676};
    for (int t = 0; t < 80; t++)
        ok &= check_nt(PICK(nt_m), PICK(nt_n), PICK(nt_k));
    ok &= check_nt(13, 11, 1100); /* three blocks of the lanes version, odd rows of B */
    ok &= check_nt(50, 128, 600);
    ok &= check_nt(100, 9, 1100); /* fc1's 100 rows: 16 tiles of 6 and one of 4 */
    CHECK(ok);
}

/* ---- everything else against the scalar path ------------------------------------------ */

/* Runs fn on the path and on scalar; outputs (n floats at out) must match bitwise. */
typedef void (*kernel_run)(float *out, uint64_t seed);

static void against_scalar(const char *what, kernel_run fn, size_t n, const char *isa)
{
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    dp_err err;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        memset(a, 0x5A, n * sizeof(float));
        memcpy(b, a, n * sizeof(float));
        CHECK(dp_isa_select("scalar", &err) == 0);
        fn(a, seed);
        CHECK(dp_isa_select(isa, &err) == 0);
        fn(b, seed);
        if (!same(a, b, n * sizeof(float))) {
            fprintf(stderr, "%s: %s differs from the scalar path (seed %llu)\n", isa, what,
                    (unsigned long long)seed);
            CHECK(0);
        }
    }
    free(a), free(b);
}

/* Inputs with the cases that tell implementations apart: ties, zeros of both signs, NaN. */
static float *nasty_buf(size_t n, uint64_t seed)
{
    rng_seed(&rng, seed, 1, 0);
    float *p = rand_buf(n);
    for (size_t i = 0; i < n; i += 5)
        p[i] = 0.25f;
    for (size_t i = 3; i < n; i += 11)
        p[i] = -0.0f;
    for (size_t i = 7; i < n; i += 13)
        p[i] = 0.0f;
    if (n > 40)
        p[40] = NAN;
    return p;
}

/* Shapes of the moving kernels and the element-wise layers, odd sizes included. */
static const int pool_hw[][2] = {{26, 26}, {11, 11}, {24, 24}, {7, 9}, {2, 2}, {33, 5}, {64, 40},
                                 {9, 9}, {13, 13}, {15, 14}, {3, 40}};

static int cur_h, cur_w, cur_k, cur_s;

static void run_pool(float *out, uint64_t seed)
{
    const int B = 2, C = 3, H = cur_h, W = cur_w, K = cur_k, S = cur_s;
    const int OH = (H - K) / S + 1, OW = (W - K) / S + 1;
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * OH * OW;
    float *in = nasty_buf(nin, seed), *dout = nasty_buf(nout, seed + 9);
    /* out: pooled, argmax, din; the same again with relu fused; relu alone and back */
    float *o = out, *din = out + 2 * nout;
    int32_t *arg = (int32_t *)(out + nout);
    maxpool_forward(o, arg, in, B, C, H, W, K, S, OH, OW);
    maxpool_backward(din, dout, arg, B, C, H, W, OH, OW);
    o = din + nin, arg = (int32_t *)(o + nout), din = o + 2 * nout;
    relu_maxpool_forward(o, arg, in, B, C, H, W, K, S, OH, OW);
    relu_maxpool_backward(din, dout, o, arg, B, C, H, W, OH, OW);
    relu_forward(din + nin, in, nin);
    float *g = nasty_buf(nin, seed + 3);
    relu_backward(din + 2 * nin, g, din + nin, nin);
    free(in), free(dout), free(g);
}

static void test_elementwise(const char *isa)
{
    for (size_t t = 0; t < sizeof pool_hw / sizeof pool_hw[0]; t++)
        for (int ks = 0; ks < 2; ks++) {
            cur_h = pool_hw[t][0], cur_w = pool_hw[t][1];
            cur_k = ks ? 3 : 2, cur_s = 2;
            if (cur_h < cur_k || cur_w < cur_k)
                continue;
            size_t nin = (size_t)6 * cur_h * cur_w;
            size_t nout = (size_t)6 * ((cur_h - cur_k) / 2 + 1) * ((cur_w - cur_k) / 2 + 1);
            char what[64];
            snprintf(what, sizeof what, "pooling and relu on %dx%d, window %d", cur_h, cur_w, cur_k);
            against_scalar(what, run_pool, 4 * nout + 5 * nin, isa);
        }
}

static dp_conv_shape cur_conv;

static void run_conv(float *out, uint64_t seed)
{
    const dp_conv_shape *s = &cur_conv;
    const int K = s->C * s->KH * s->KW, P = s->OH * s->OW;
    size_t nin = (size_t)s->B * s->C * s->H * s->W, nout = (size_t)s->B * s->OC * P;
    size_t nw = (size_t)s->OC * K;
    rng_seed(&rng, seed, 2, 0);
    float *in = rand_buf(nin), *w = rand_buf(nw), *b = rand_buf((size_t)s->OC);
    float *dout = rand_buf(nout), *col = malloc(sizeof(float) * s->B * K * P);
    float *scratch = malloc(sizeof(float) * (conv2d_scratch_floats(s) + 1) * omp_get_max_threads());
    float *dw = out + nout + nin, *db = dw + nw;
    memcpy(dw, w, sizeof(float) * nw); /* accumulate onto something non-zero */
    memcpy(db, b, sizeof(float) * s->OC);
    conv2d_forward(out, col, in, w, b, scratch, s);
    conv2d_backward(out + nout, dw, db, col, dout, w, scratch, s);
    free(in), free(w), free(b), free(dout), free(col), free(scratch);
}

static void test_conv(const char *isa)
{
    /* B, C, H, W, OC, KH, KW, stride, pad: MNIST's two layers, then odd ones */
    static const int shapes[][9] = {{3, 1, 28, 28, 32, 3, 3, 1, 0}, {2, 32, 13, 13, 64, 3, 3, 1, 0},
                                    {2, 3, 9, 7, 5, 3, 3, 2, 1},    {3, 2, 6, 11, 7, 2, 2, 1, 0},
                                    {1, 5, 8, 8, 17, 3, 3, 1, 1},   {2, 1, 5, 5, 3, 1, 1, 1, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *v = shapes[t];
        dp_conv_shape s = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
                           (v[2] + 2 * v[8] - v[5]) / v[7] + 1, (v[3] + 2 * v[8] - v[6]) / v[7] + 1};
        cur_conv = s;
        size_t n = (size_t)s.B * s.OC * s.OH * s.OW + (size_t)s.B * s.C * s.H * s.W +
                   (size_t)s.OC * s.C * s.KH * s.KW + s.OC;
        against_scalar("conv2d forward and backward", run_conv, n, isa);
    }
}

/* Convolutions with few columns, stride 1 and no padding run forward straight from the
 * image (kern_direct.c): bitwise what im2col and gemm_nn_bias give, on the path in use,
 * for output rows with and without a tail and output channels not a multiple of a block. */
static void test_conv_direct(void)
{
    /* B, C, H, W, OC, KH, KW */
    static const int shapes[][7] = {{3, 1, 28, 28, 32, 3, 3}, {2, 1, 9, 40, 17, 3, 3},
                                    {2, 2, 10, 21, 9, 2, 2},  {1, 1, 7, 19, 5, 3, 5},
                                    {2, 1, 4, 4, 1, 2, 2},    {1, 3, 6, 35, 23, 1, 3}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *v = shapes[t], B = v[0], C = v[1], H = v[2], W = v[3], OC = v[4];
        const int KH = v[5], KW = v[6], OH = H - KH + 1, OW = W - KW + 1;
        const int K = C * KH * KW, P = OH * OW;
        const dp_conv_shape s = {B, C, H, W, OC, KH, KW, 1, 0, OH, OW};
        float *in = rand_buf((size_t)B * C * H * W), *w = rand_buf((size_t)OC * K);
        float *b = rand_buf((size_t)OC), *col = malloc(sizeof(float) * conv2d_col_floats(&s));
        float *scratch = malloc(sizeof(float) * conv2d_scratch_floats(&s) * omp_get_max_threads());
        float *got = malloc(sizeof(float) * B * OC * P), *want = malloc(sizeof(float) * B * OC * P);
        float *rows = malloc(sizeof(float) * K * P);
        in[1] = NAN;
        conv2d_forward(got, col, in, w, b, scratch, &s);
        for (int n = 0; n < B; n++) {
            im2col(in + (size_t)n * C * H * W, C, H, W, KH, KW, 1, 0, OH, OW, rows);
            gemm_nn_bias(OC, P, K, w, K, rows, P, b, want + (size_t)n * OC * P, P);
        }
        if (!same(got, want, sizeof(float) * B * OC * P)) {
            fprintf(stderr, "%s: direct convolution differs from im2col and the product, "
                            "shape %zu\n", dp_isa_name(), t);
            CHECK(0);
        }
        free(in), free(w), free(b), free(col), free(scratch), free(got), free(want), free(rows);
    }
}

/* Backward over a range of a batch's samples (col, dout and din advanced to its first, as
 * the whole-net pass does per group) gives the bits of forward and backward over those
 * samples alone: col is sample-major and what it keeps depends on the shape alone (conv.c).
 * A shape whose col keeps the inputs, and one whose col keeps the im2col matrices. */
static void test_conv_sample_ranges(void)
{
    /* B, C, H, W, OC, K, stride */
    static const int shapes[][7] = {{5, 8, 9, 9, 16, 3, 1}, {5, 8, 8, 8, 6, 2, 2}};
    static const int ranges[][2] = {{0, 2}, {2, 3}, {3, 5}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *v = shapes[t], B = v[0], C = v[1], OC = v[4], KK = v[5];
        const int OH = (v[2] - KK) / v[6] + 1, OW = (v[3] - KK) / v[6] + 1;
        const dp_conv_shape s = {B, C, v[2], v[3], OC, KK, KK, v[6], 0, OH, OW};
        const size_t CHW = (size_t)C * v[2] * v[3], OP = (size_t)OC * OH * OW;
        const size_t nw = (size_t)OC * C * KK * KK;
        float *in = rand_buf(B * CHW), *w = rand_buf(nw), *b = rand_buf((size_t)OC);
        float *dout = rand_buf(B * OP), *col = malloc(sizeof(float) * conv2d_col_floats(&s));
        float *col1 = malloc(sizeof(float) * conv2d_col_floats(&s));
        float *scratch = malloc(sizeof(float) * conv2d_scratch_floats(&s) * omp_get_max_threads());
        float *out_b = malloc(sizeof(float) * B * OP), *out_1 = malloc(sizeof(float) * B * OP);
        float *din_b = malloc(sizeof(float) * B * CHW), *din_1 = malloc(sizeof(float) * B * CHW);
        float *dw_b = calloc(nw, sizeof(float)), *dw_1 = calloc(nw, sizeof(float));
        float *db_b = calloc((size_t)OC, sizeof(float)), *db_1 = calloc((size_t)OC, sizeof(float));
        conv2d_forward(out_b, col, in, w, b, scratch, &s);
        for (int k = 0; k < 3; k++) {
            const int n0 = ranges[k][0];
            dp_conv_shape r = s, before = s;
            r.B = ranges[k][1] - n0;
            before.B = n0;
            conv2d_backward(din_b + n0 * CHW, dw_b, db_b, col + conv2d_col_floats(&before),
                            dout + n0 * OP, w, scratch, &r);
            conv2d_forward(out_1 + n0 * OP, col1, in + n0 * CHW, w, b, scratch, &r);
            conv2d_backward(din_1 + n0 * CHW, dw_1, db_1, col1, dout + n0 * OP, w, scratch, &r);
        }
        if (!same(out_b, out_1, sizeof(float) * B * OP) ||
            !same(din_b, din_1, sizeof(float) * B * CHW) || !same(dw_b, dw_1, sizeof(float) * nw) ||
            !same(db_b, db_1, sizeof(float) * OC)) {
            fprintf(stderr, "%s: conv backward over sample ranges differs from the ranges "
                            "alone, shape %zu\n", dp_isa_name(), t);
            CHECK(0);
        }
        free(in), free(w), free(b), free(dout), free(col), free(col1), free(scratch);
        free(out_b), free(out_1), free(din_b), free(din_1), free(dw_b), free(dw_1);
        free(db_b), free(db_1);
    }
}

/* The weight gradient of a conv of one channel, 3x3, under relu and 2x2 pooling of stride
 * 2, as the fused layer makes it from the pooled gradient (src/net/conv_pooled.c): for each
 * sample, window in order, one fused multiply-add into each weight's chain at the window's
 * argmax, and the bias's sum; mag gets each chain's sum of magnitudes (the weights', then
 * the biases' at 9 OC), a bound on how far from it the three layers' product of the
 * unpooled gradient may round. */
static void pooled_oracle(float *dw, float *db, double *mag, const float *in, const float *dpool,
                          const float *pooled, const int32_t *argmax, const dp_conv_shape *s,
                          const dp_pool_shape *pl)
{
    const int PQ = pl->OH * pl->OW;
    for (int i = 0; i < 9 * s->OC; i++)
        mag[i] = fabs(dw[i]);
    for (int o = 0; o < s->OC; o++)
        mag[9 * s->OC + o] = fabs(db[o]);
    for (int n = 0; n < s->B; n++)
        for (int o = 0; o < s->OC; o++)
            for (int q = 0; q < PQ; q++) {
                const size_t at = ((size_t)n * s->OC + o) * PQ + q;
                const float g = pooled[at] <= 0.0f ? 0.0f : dpool[at];
                const int y = argmax[at] / s->OW, x = argmax[at] % s->OW;
                for (int k = 0; k < 9; k++) {
                    const float v = in[((size_t)n * s->H + y + k / 3) * s->W + x + k % 3];
                    dw[o * 9 + k] = fmaf(g, v, dw[o * 9 + k]);
                    mag[o * 9 + k] += fabs((double)g * v);
                }
                db[o] += g;
                mag[9 * s->OC + o] += fabs(g);
            }
}

/* The three layers' gradient within rounding of the pooled chains', n values. */
static int near_pooled(const float *x, const float *pooled_x, const double *mag, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i] - pooled_x[i]) > 1e-5 * mag[i])
            return 0;
    return 1;
}

/* conv2d + relu + max pooling in one pass gives the bits of the three layers in a row,
 * forward and backward, for both weight-gradient layouts, pools with overlapping windows,
 * a frozen conv and no input gradient; but for a conv of one channel, 3x3, under 2x2
 * pooling, whose weight gradient it makes from the pooled gradient (pooled_oracle): the
 * oracle's bits, and the three layers' within rounding. */
static void test_conv_pool_fused(void)
{
    /* B, C, H, W, OC, K, pool window, pool stride */
    static const int shapes[][8] = {{5, 1, 28, 28, 32, 3, 2, 2}, {4, 32, 13, 13, 64, 3, 2, 2},
                                    {3, 3, 12, 11, 6, 3, 3, 2},  {1, 2, 9, 9, 5, 2, 2, 2},
                                    /* odd sizes, a row and a column no window covers; 20
                                     * channels: a part-filled vector on every path */
                                    {2, 1, 14, 12, 20, 3, 2, 2}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *v = shapes[t];
        const int B = v[0], C = v[1], OC = v[4], KK = v[5], OH = v[2] - KK + 1, OW = v[3] - KK + 1;
        dp_conv_shape s = {B, C, v[2], v[3], OC, KK, KK, 1, 0, OH, OW};
        dp_pool_shape pl = {v[6], v[7], (OH - v[6]) / v[7] + 1, (OW - v[6]) / v[7] + 1};
        const size_t nin = (size_t)B * C * v[2] * v[3], nconv = (size_t)B * OC * OH * OW;
        const size_t npool = (size_t)B * OC * pl.OH * pl.OW, nw = (size_t)OC * C * KK * KK;
        float *in = rand_buf(nin), *w = rand_buf(nw), *b = rand_buf((size_t)OC);
        float *dpool = rand_buf(npool), *col = malloc(sizeof(float) * B * C * KK * KK * OH * OW);
        float *scratch = malloc(sizeof(float) * conv2d_pool_scratch_floats(&s) * omp_get_max_threads());
        float *conv = malloc(sizeof(float) * nconv), *dconv = malloc(sizeof(float) * nconv);
        float *p1 = malloc(sizeof(float) * npool), *p2 = malloc(sizeof(float) * npool);
        int32_t *a1 = malloc(sizeof(int32_t) * npool), *a2 = malloc(sizeof(int32_t) * npool);
        float *din1 = malloc(sizeof(float) * nin), *din2 = malloc(sizeof(float) * nin);
        float *dw1 = copy_buf(w, nw), *dw2 = copy_buf(w, nw), *db1 = copy_buf(b, OC), *db2 = copy_buf(b, OC);
        for (size_t i = 0; i < npool; i += 7)
            dpool[i] = 0.0f;
        const int pooled = C == 1 && KK == 3 && pl.K == 2 && pl.stride == 2;
        float *dwo = copy_buf(w, nw), *dbo = copy_buf(b, OC);
        double *mag = malloc(sizeof(double) * (nw + OC));
        conv2d_forward(conv, col, in, w, b, scratch, &s);
        relu_maxpool_forward(p1, a1, conv, B, OC, OH, OW, pl.K, pl.stride, pl.OH, pl.OW);
        relu_maxpool_backward(dconv, dpool, p1, a1, B, OC, OH, OW, pl.OH, pl.OW);
        conv2d_backward(din1, dw1, db1, col, dconv, w, scratch, &s);
        conv2d_relu_maxpool_forward(p2, a2, col, in, w, b, scratch, &s, &pl);
        conv2d_relu_maxpool_backward(din2, dw2, db2, col, dpool, p2, a2, w, scratch,
                                     t % 2 ? dconv : NULL, &s, &pl);
        if (pooled)
            pooled_oracle(dwo, dbo, mag, in, dpool, p1, a1, &s, &pl);
        int ok = same(p1, p2, sizeof(float) * npool) && same(a1, a2, sizeof(int32_t) * npool) &&
                 same(din1, din2, sizeof(float) * nin);
        ok &= pooled ? same(dwo, dw2, sizeof(float) * nw) && same(dbo, db2, sizeof(float) * OC) &&
                           near_pooled(dw1, dw2, mag, nw) && near_pooled(db1, db2, mag + nw, OC)
                     : same(dw1, dw2, sizeof(float) * nw) && same(db1, db2, sizeof(float) * OC);
        /* frozen: no parameter gradients; no input gradient */
        conv2d_relu_maxpool_backward(din2, NULL, NULL, col, dpool, p2, a2, w, scratch, NULL, &s, &pl);
        conv2d_relu_maxpool_backward(NULL, dw2, db2, col, dpool, p2, a2, w, scratch, dconv, &s, &pl);
        conv2d_backward(NULL, dw1, db1, col, dconv, w, scratch, &s);
        if (pooled)
            pooled_oracle(dwo, dbo, mag, in, dpool, p1, a1, &s, &pl);
        ok &= same(din1, din2, sizeof(float) * nin) &&
              same(pooled ? dwo : dw1, dw2, sizeof(float) * nw);
        if (!ok) {
            fprintf(stderr, "%s: conv + relu + maxpool in one pass differs from the three "
                            "layers, shape %zu\n", dp_isa_name(), t);
            CHECK(0);
        }
        free(in), free(w), free(b), free(dpool), free(col), free(scratch), free(conv);
        free(dconv), free(p1), free(p2), free(a1), free(a2), free(din1), free(din2);
        free(dw1), free(dw2), free(db1), free(db2), free(dwo), free(dbo), free(mag);
    }
}

static int cur_b, cur_i, cur_o, cur_lanes;

static void run_linear(float *out, uint64_t seed)
{
    const int B = cur_b, I = cur_i, O = cur_o;
    rng_seed(&rng, seed, 3, 0);
    float *in = rand_buf((size_t)B * I), *w = rand_buf((size_t)O * I), *b = rand_buf((size_t)O);
    float *dout = rand_buf((size_t)B * O);
    float *lanes = cur_lanes ? malloc(sizeof(float) * linear_scratch_floats(B, I, O, omp_get_max_threads())) : NULL;
    float *din = out + (size_t)B * O, *dw = din + (size_t)B * I, *db = dw + (size_t)O * I;
    memcpy(dw, w, sizeof(float) * O * I);
    memcpy(db, b, sizeof(float) * O);
    linear_forward(out, in, w, b, B, I, O, lanes);
    linear_backward(din, dw, db, dout, in, w, B, I, O, lanes);
    free(in), free(w), free(b), free(dout), free(lanes);
}

static void test_linear(const char *isa)
{
    static const int shapes[][3] = {{7, 1600, 128}, {5, 128, 10}, {3, 37, 9}, {4, 1100, 33}, {1, 5, 1}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
        for (cur_lanes = 0; cur_lanes < 2; cur_lanes++) {
            cur_b = shapes[t][0], cur_i = shapes[t][1], cur_o = shapes[t][2];
            size_t n = (size_t)cur_b * cur_o + (size_t)cur_b * cur_i +
                       (size_t)cur_o * cur_i + cur_o;
            against_scalar("linear forward and backward", run_linear, n, isa);
        }
}

#define TR_ROWS 37 /* 2 x 16 + 5 */
#define TR_COLS 61 /* 3 x 16 + 8 + 5 */

static void run_moves(float *out, uint64_t seed)
{
    /* im2col of a padded, strided conv; its adjoints from random rows; a transpose */
    const int C = 3, H = 10, W = 9, KH = 3, KW = 2, S = 2, P = 1;
    const int OH = (H + 2 * P - KH) / S + 1, OW = (W + 2 * P - KW) / S + 1, K = C * KH * KW;
    rng_seed(&rng, seed, 4, 0);
    float *in = rand_buf((size_t)C * H * W), *r = rand_buf((size_t)K * OH * OW);
    im2col(in, C, H, W, KH, KW, S, P, OH, OW, out);
    out += (size_t)K * OH * OW;
    memset(out, 0, sizeof(float) * 2 * C * H * W);
    row2im_acc(r, C, H, W, KH, KW, S, P, OH, OW, out);
    col2im_acc(r, C, H, W, KH, KW, S, P, OH, OW, out + C * H * W);
    transpose(r, 19, K * OH * OW / 19, out + 2 * C * H * W);
    out += 2 * C * H * W + K * OH * OW;
    /* whole 8x8 blocks and single elements at the edges, both ways round */
    float *t = nasty_buf(TR_ROWS * TR_COLS, seed);
    transpose(t, TR_ROWS, TR_COLS, out);
    transpose(t, TR_COLS, TR_ROWS, out + TR_ROWS * TR_COLS);
    free(in), free(r), free(t);
}

/* Scattering the col layout back with each element's terms in pixel order gives the bits of
 * scattering the row layout back pixel by pixel: strides, padding, windows wider than the
 * output, rows longer than a vector. */
static void test_pixel_order(void)
{
    static const int shapes[][7] = {{32, 13, 13, 3, 3, 1, 0}, {3, 10, 9, 3, 2, 2, 1},
                                    {2, 5, 4, 3, 3, 1, 0},    {1, 40, 37, 5, 5, 1, 2},
                                    {4, 6, 6, 2, 2, 2, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *v = shapes[t];
        const int C = v[0], H = v[1], W = v[2], KH = v[3], KW = v[4], S = v[5], P = v[6];
        const int OH = (H + 2 * P - KH) / S + 1, OW = (W + 2 * P - KW) / S + 1, K = C * KH * KW;
        float *row = rand_buf((size_t)OH * OW * K), *col = malloc(sizeof(float) * K * OH * OW);
        float *a = calloc((size_t)C * H * W, sizeof(float)), *b = calloc((size_t)C * H * W, sizeof(float));
        transpose(row, OH * OW, K, col);
        row2im_acc(row, C, H, W, KH, KW, S, P, OH, OW, a);
        memset(b, 0x5A, sizeof(float) * C * H * W); /* overwritten */
        col2im_pixel_order(col, C, H, W, KH, KW, S, P, OH, OW, b);
        if (!same(a, b, sizeof(float) * C * H * W)) {
            fprintf(stderr, "%s: col2im in pixel order differs from row2im, shape %zu\n",
                    dp_isa_name(), t);
            CHECK(0);
        }
        free(row), free(col), free(a), free(b);
    }
}

/* im2col with stride 1 and no padding, which the AVX-512 path makes a vector of output at a
 * time from windows of the input: MNIST's conv2; rows shorter than a vector; pieces one
 * input apart; windows too wide (5x5 kernels on 2 columns, one column) and rows too long
 * for it, which it leaves to the piece by piece copy; shapes one after another whose output
 * is as wide and as high but whose input is not (the window table is kept per shape and
 * thread). Each input buffer is exactly C*H*W floats, so a read past it shows under the
 * sanitizers. */
static const int unstrided[][5] = {{32, 13, 13, 3, 3}, {1, 13, 12, 3, 2}, {32, 13, 13, 3, 3},
                                   {1, 12, 13, 2, 3},  {2, 5, 4, 3, 3},   {4, 8, 8, 2, 2},
                                   {3, 3, 20, 3, 3},   {1, 34, 9, 3, 3},  {1, 6, 6, 5, 5},
                                   {2, 9, 3, 3, 3},    {1, 40, 40, 3, 3}, {1, 28, 28, 3, 3}};

static size_t unstrided_floats(void)
{
    size_t n = 0;
    for (size_t t = 0; t < sizeof unstrided / sizeof unstrided[0]; t++) {
        const int *v = unstrided[t];
        n += (size_t)v[0] * v[3] * v[4] * (v[1] - v[3] + 1) * (v[2] - v[4] + 1);
    }
    return n;
}

static void run_im2col_unstrided(float *out, uint64_t seed)
{
    rng_seed(&rng, seed, 5, 0);
    for (size_t t = 0; t < sizeof unstrided / sizeof unstrided[0]; t++) {
        const int *v = unstrided[t];
        const int C = v[0], H = v[1], W = v[2], KH = v[3], KW = v[4];
        const int OH = H - KH + 1, OW = W - KW + 1;
        float *in = rand_buf((size_t)C * H * W);
        im2col(in, C, H, W, KH, KW, 1, 0, OH, OW, out);
        out += (size_t)C * KH * KW * OH * OW;
        free(in);
    }
}

/* The transposition against its definition on this path (against_scalar: every path
 * alike), its edges included. */
static void test_transpose_oracle(const char *isa)
{
    dp_err err;
    CHECK(dp_isa_select(isa, &err) == 0);
    float *t = nasty_buf(TR_ROWS * TR_COLS, 5), *a = malloc(sizeof(float) * TR_ROWS * TR_COLS);
    transpose(t, TR_ROWS, TR_COLS, a);
    int bad = 0;
    for (int r = 0; r < TR_ROWS; r++)
        for (int c = 0; c < TR_COLS; c++)
            bad += !same(&a[c * TR_ROWS + r], &t[r * TR_COLS + c], sizeof(float));
    if (bad)
        fprintf(stderr, "%s: %d elements of the transposition are wrong\n", isa, bad);
    CHECK(bad == 0);
    free(t), free(a);
}

static void test_moves(const char *isa)
{
    test_transpose_oracle(isa);
    const int K = 18, PP = 5 * 5;
    against_scalar("im2col, row2im, col2im, transpose", run_moves,
                   (size_t)2 * K * PP + 2 * 3 * 10 * 9 + 2 * TR_ROWS * TR_COLS, isa);
    against_scalar("im2col, stride 1, no padding", run_im2col_unstrided, unstrided_floats(),
                   isa);
}

/* ---- whole models ------------------------------------------------------------------- */

/* STEPS SGD steps of SPEC on synthetic batches of B, backward in groups of GROUP samples
 * after one forward (as the driver does); returns the weights (caller frees). */
static float *train_steps(const char *spec, int B, int group, int steps, size_t *size)
{
    dp_model m;
    dp_workspace ws;
    dp_err err;
    if (model_build(&m, spec, 1, 28, 28, 10, &err) || workspace_create(&ws, &m, B, &err)) {
        fprintf(stderr, "%s: %s\n", spec, err.msg);
        exit(1);
    }
    model_init(&m, 11);
    uint8_t *labels = malloc((size_t)B);
    float *velocity = calloc(m.size, sizeof(float));
    dp_rng r;
    rng_seed(&r, 3, 1, 4);
    for (int step = 0; step < steps; step++) {
        for (size_t i = 0; i < (size_t)B * 784; i++)
            ws.input[i] = rng_uniform(&r);
        for (int n = 0; n < B; n++)
            labels[n] = (uint8_t)rng_below(&r, 10);
        memset(m.grads, 0, m.size * sizeof(float));
        dp_pass pass = {.labels = labels, .B = B, .train = 1, .grad_scale = 1.0 / B};
        model_forward(&m, &ws, &pass, NULL);
        for (int n0 = 0; n0 < B; n0 += group)
            model_backward(&m, &ws, &pass, n0, n0 + group < B ? n0 + group : B);
        sgd_update(m.weights, m.grads, velocity, m.size, 0.05f, 0.9f, 1e-4f, 0);
    }
    float *out = malloc(m.size * sizeof(float));
    memcpy(out, m.weights, m.size * sizeof(float));
    *size = m.size;
    free(labels), free(velocity);
    workspace_free(&ws);
    model_free(&m);
    return out;
}

static void test_whole_models(void)
{
    static const struct {
        const char *spec;
        int B, group, steps;
    } runs[] = {
        {"reference", 12, 5, 3},
        {"nopool", 5, 5, 2},
        /* a padded, strided first conv; a second with few columns (dot products, col2im) */
        {"conv(5,3,stride=2,pad=1) relu conv(4,2) relu maxpool(3,stride=2) fc(11) relu fc", 9, 4,
         3},
    };
    dp_err err;
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        float *first = NULL;
        size_t n0 = 0;
        const char *first_isa = NULL;
        for (int p = 0; dp_isa_names[p]; p++) {
            if (!dp_isa_available(dp_isa_names[p]))
                continue;
            for (int threads = 1; threads <= 2; threads++) {
                omp_set_num_threads(threads);
                CHECK(dp_isa_select(dp_isa_names[p], &err) == 0);
                size_t n;
                float *w = train_steps(runs[k].spec, runs[k].B, runs[k].group, runs[k].steps, &n);
                if (!first) {
                    first = w, n0 = n, first_isa = dp_isa_names[p];
                    continue;
                }
                if (n != n0 || !same(w, first, n * sizeof(float))) {
                    fprintf(stderr, "%s: weights after %d steps under %s x %d threads differ "
                                    "from %s x 1 thread\n", runs[k].spec, runs[k].steps,
                            dp_isa_names[p], threads, first_isa);
                    CHECK(0);
                }
                free(w);
            }
        }
        /* the weights did move: a comparison of untouched weights would prove nothing */
        size_t n;
        dp_model m;
        CHECK(model_build(&m, runs[k].spec, 1, 28, 28, 10, &err) == 0);
        model_init(&m, 11);
        n = m.size;
        CHECK(n == n0 && !same(m.weights, first, n * sizeof(float)));
        model_free(&m);
        free(first);
    }
}

int main(int argc, char **argv)
{
    dp_err err;
    if (argc == 2 && !strcmp(argv[1], "--list")) {
        for (int p = 0; dp_isa_names[p]; p++)
            if (dp_isa_available(dp_isa_names[p]))
                printf("%s\n", dp_isa_names[p]);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--expect")) {
        /* DPTRAIN_ISA was read before main */
        CHECK(strcmp(dp_isa_name(), argv[2]) == 0);
        CHECK(strstr(dp_isa_describe(), "forced by DPTRAIN_ISA") != NULL);
        printf("chosen before main: %s\n", dp_isa_describe());
        return check_exit("test_isa --expect");
    }
    CHECK(dp_isa_select("auto", &err) == 0);
    printf("widest path here: %s\n", dp_isa_describe());
    CHECK(dp_isa_select("sse9", &err) == -1);
    CHECK_MSG(err.msg, "unknown instruction set 'sse9'");
    CHECK(dp_isa_available("scalar") && !dp_isa_available("sse9"));
    int ran = 0;
    for (int p = 0; dp_isa_names[p]; p++) {
        const char *isa = dp_isa_names[p];
        if (!dp_isa_available(isa)) {
            printf("%s: skipped, this CPU lacks it\n", isa);
            CHECK(dp_isa_select(isa, &err) == -1);
            CHECK_MSG(err.msg, "this CPU lacks");
            continue;
        }
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            rng_seed(&rng, 11, (uint64_t)p, (uint64_t)threads);
            CHECK(dp_isa_select(isa, &err) == 0);
            CHECK(strcmp(dp_isa_name(), isa) == 0);
            test_products();
            test_elementwise(isa);
            test_conv(isa);
            test_conv_direct();
            test_conv_sample_ranges();
            test_conv_pool_fused();
            test_linear(isa);
            test_moves(isa);
            test_pixel_order();
        }
        printf("%s: bitwise the same as the oracle and the scalar path\n", isa);
        ran++;
    }
    CHECK(ran >= 1);
    test_whole_models();
    printf("whole models: the same weights under every path and thread count\n");
    return check_exit("test_isa");
}
