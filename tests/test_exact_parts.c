/* test_exact_parts: the pieces that feed the exact gradient sum, on every instruction-set
 * path this CPU offers and at 1 and 2 threads. fixed_take (the sum back to float) as the
 * scalar conversions. fixed_accumulate (a partial gradient into
 * int64 fixed point) against an oracle in double, on every kind of value and every tail;
 * the layers' backward over groups (fc, conv, conv + relu + pool) against the same
 * layers group by group: each group's weight and bias gradients handed over in order,
 * bit for bit, every element once per group, and the input gradient of all the samples.
 * gemm_tn_fixed (every group's partials into the sum in registers) against gemm_tn and
 * fixed_accumulate group by group, and the fc backward with it against the moves; the conv
 * backward whose threads own whole groups against the moves; the conv's under
 * --conv-algorithm winograd as well. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "bufs.h"
#include "check.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/kernels.h"
#include "dptrain/net/layers.h"
#include "dptrain/util/rng.h"


/* ---- backward over groups --------------------------------------------------------- */

/* What a move hook saw: each element of a layer's two gradient tensors at its k-th move,
 * k being the group (seen[k * (nw + nb) + e]), and how many times each was moved. */
enum { REC_G = 4 };
static struct {
    float *w, *b;
    size_t nw, nb;
    float *seen;
    int *count;
} rec;

static void rec_start(float *w, size_t nw, float *b, size_t nb)
{
    rec.w = w, rec.nw = nw, rec.b = b, rec.nb = nb;
    rec.seen = calloc(REC_G * (nw + nb), sizeof(float));
    rec.count = calloc(nw + nb, sizeof(int));
}

static void rec_move(void *ctx, float *g, size_t rows, size_t cols, size_t ld)
{
    (void)ctx;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            float *at = g + r * ld + c;
            const size_t e = at >= rec.w && at < rec.w + rec.nw ? (size_t)(at - rec.w)
                                                               : rec.nw + (size_t)(at - rec.b);
            #pragma omp critical(rec_move)
            {
                if (rec.count[e] < REC_G)
                    rec.seen[rec.count[e] * (rec.nw + rec.nb) + e] = *at;
                rec.count[e]++;
            }
            *at = 0.0f;
        }
}

/* Group g's record against dw and db made for that group alone; at the end, every element
 * moved once per group. */
static int rec_check(int g, const float *dw, const float *db)
{
    const float *seen = rec.seen + (size_t)g * (rec.nw + rec.nb);
    return same(seen, dw, sizeof(float) * rec.nw) && same(seen + rec.nw, db, sizeof(float) * rec.nb);
}

static int rec_end(void)
{
    int ok = 1;
    for (size_t e = 0; e < rec.nw + rec.nb; e++)
        ok &= rec.count[e] == REC_G;
    free(rec.seen), free(rec.count);
    return ok;
}

static const int rec_bounds[REC_G + 1] = {0, 3, 8, 15, 20};

/* linear_backward_groups hands over, for every group in order, the bits linear_backward
 * gives on that group alone, and the input gradient of all of them; tiles with a tail. */
static void test_fc_groups(void)
{
    enum { I = 1100, O = 13, B = 20 };
    float *in = rand_buf(B * I), *w = rand_buf(O * I), *dout = rand_buf(B * O);
    float *din = malloc(sizeof(float) * B * I), *din1 = malloc(sizeof(float) * B * I);
    float *dw = calloc(O * I, sizeof(float)), *db = calloc(O, sizeof(float));
    float *dw1 = malloc(sizeof(float) * O * I), *db1 = malloc(sizeof(float) * O);
    rec_start(dw, O * I, db, O);
    linear_backward_groups(din, dw, db, dout, in, w, B, I, O, NULL, rec_bounds, REC_G, rec_move,
                           NULL, NULL, NULL);
    int ok = 1;
    for (int g = 0; g < REC_G; g++) {
        const int n0 = rec_bounds[g], n = rec_bounds[g + 1] - n0;
        memset(dw1, 0, sizeof(float) * O * I);
        memset(db1, 0, sizeof(float) * O);
        linear_backward(din1 + (size_t)n0 * I, dw1, db1, dout + (size_t)n0 * O,
                        in + (size_t)n0 * I, w, n, I, O, NULL);
        ok &= rec_check(g, dw1, db1);
    }
    ok &= rec_end() && same(din, din1, sizeof(float) * B * I);
    if (!ok) {
        fprintf(stderr, "%s: fc backward over groups differs from the groups one by one\n",
                dp_isa_name());
    }
    CHECK(ok);
    free(in), free(w), free(dout), free(din), free(din1), free(dw), free(db), free(dw1), free(db1);
}

/* The same for conv2d_backward_groups and the fused conv + relu + pool, on a shape of each
 * weight-gradient layout (few columns: dot products; many: rows), the fused one with and
 * without the conv output gradient made once (dconv). */
static void test_conv_groups(void)
{
    static const int shapes[][5] = {{1, 12, 12, 8, 3}, {6, 9, 9, 10, 3}}; /* C, H, W, OC, K */
    for (size_t t = 0; t < 2; t++)
        for (int fused = 0; fused < 3; fused++) {
            const int *v = shapes[t], B = 20, C = v[0], OC = v[3], KK = v[4];
            const int OH = v[1] - KK + 1, OW = v[2] - KK + 1;
            const dp_conv_shape s = {B, C, v[1], v[2], OC, KK, KK, 1, 0, OH, OW};
            const dp_pool_shape pl = {2, 2, (OH - 2) / 2 + 1, (OW - 2) / 2 + 1};
            const size_t nin = (size_t)B * C * v[1] * v[2], nw = (size_t)OC * C * KK * KK;
            const size_t nconv = (size_t)B * OC * OH * OW, npool = (size_t)B * OC * pl.OH * pl.OW;
            float *in = rand_buf(nin), *w = rand_buf(nw), *b = rand_buf((size_t)OC);
            float *dout = rand_buf(fused ? npool : nconv), *out = malloc(sizeof(float) * npool);
            int32_t *arg = malloc(sizeof(int32_t) * npool);
            float *col = malloc(sizeof(float) * conv2d_col_floats(&s)), *dconv = malloc(sizeof(float) * nconv);
            float *scratch = malloc(sizeof(float) * conv2d_pool_scratch_floats(&s) * omp_get_max_threads());
            float *din = malloc(sizeof(float) * nin), *din1 = malloc(sizeof(float) * nin);
            float *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)OC, sizeof(float));
            float *dw1 = malloc(sizeof(float) * nw), *db1 = malloc(sizeof(float) * OC);
            if (fused)
                conv2d_relu_maxpool_forward(out, arg, col, in, w, b, scratch, &s, &pl);
            else
                conv2d_forward(dconv, col, in, w, b, scratch, &s);
            rec_start(dw, nw, db, (size_t)OC);
            if (fused)
                conv2d_relu_maxpool_backward_groups(din, dw, db, col, dout, out, arg, w, scratch,
                                                    fused == 2 ? dconv : NULL, &s, &pl,
                                                    rec_bounds, REC_G, rec_move, NULL, NULL,
                                                    NULL);
            else
                conv2d_backward_groups(din, dw, db, col, dout, w, scratch, &s, rec_bounds, REC_G,
                                       rec_move, NULL, NULL, NULL);
            int ok = 1;
            for (int g = 0; g < REC_G; g++) {
                const int n0 = rec_bounds[g];
                dp_conv_shape sg = s, before = s;
                sg.B = rec_bounds[g + 1] - n0, before.B = n0;
                const size_t pq = (size_t)n0 * OC * pl.OH * pl.OW;
                memset(dw1, 0, sizeof(float) * nw);
                memset(db1, 0, sizeof(float) * OC);
                float *c = col + conv2d_col_floats(&before), *di = din1 + (size_t)n0 * C * v[1] * v[2];
                if (fused)
                    conv2d_relu_maxpool_backward(di, dw1, db1, c, dout + pq, out + pq, arg + pq, w,
                                                 scratch, NULL, &sg, &pl);
                else
                    conv2d_backward(di, dw1, db1, c, dout + (size_t)n0 * OC * OH * OW, w, scratch, &sg);
                ok &= rec_check(g, dw1, db1);
            }
            ok &= rec_end() && same(din, din1, sizeof(float) * nin);
            if (!ok) {
                fprintf(stderr, "%s: conv backward over groups differs from the groups one by "
                                "one, shape %zu, fused %d\n", dp_isa_name(), t, fused);
            }
            CHECK(ok);
            free(in), free(w), free(b), free(dout), free(out), free(arg), free(col), free(dconv);
            free(scratch), free(din), free(din1), free(dw), free(db), free(dw1), free(db1);
        }
}

/* ---- the exact sum's fixed-point step -------------------------------------------------- */

/* Partials of every kind that matters: ordinary, exact ties of the rounding, tiny and
 * subnormal, zeros of both signs, at and over the bound, Inf and NaN. `rare`: ordinary
 * ones with one of the others every 37 (whole vectors in range, as in training). */
static float fixed_input(size_t i, int rare, double bound, double scale)
{
    const double u = 2.0 * rng_uniform(&rng) - 1.0;
    if (rare && i % 37 != 36)
        return (float)(u * bound * 0.9);
    switch (rare ? i / 37 % 9 : i % 9) {
    case 0: return (float)(u * bound);
    case 1: return (float)(u * 1.5 * bound); /* a third of these over the bound */
    case 2: return (float)(((double)rng_below(&rng, 4096) - 2048.0 + 0.5) / scale); /* a tie */
    case 3: return (float)(u * 1e-30);
    case 4: return i % 2 ? -0.0f : 0x1p-140f;
    case 5: return (float)(i % 4 == 1 ? bound : -bound);
    case 6: return i % 3 ? INFINITY : NAN;
    default: return (float)(u * 1e-3);
    }
}

/* One fixed_accumulate call against an oracle in double (nearbyint: ties to even). */
static void check_fixed(size_t n, int rare, int E)
{
    const double bound = ldexp(1.0, E), scale = ldexp(1.0, 51 - E); /* the largest allowed */
    float *g = malloc((n + 1) * sizeof(float));
    int64_t *acc = malloc((n + 1) * sizeof(int64_t)), *want = malloc((n + 1) * sizeof(int64_t));
    float mx = 0.0f, want_mx = 0.0f;
    int64_t over = 1, bad = 2, want_over = 1, want_bad = 2;
    for (size_t i = 0; i < n; i++) {
        g[i] = fixed_input(i, rare, bound, scale);
        acc[i] = want[i] = (int64_t)rng_next(&rng) >> 12;
        const float a = fabsf(g[i]);
        if (a == a && a > want_mx)
            want_mx = a;
        if (isnan(g[i]) || isinf(g[i]))
            want_bad++;
        else if (a >= bound)
            want_over++;
        else
            want[i] += (int64_t)nearbyint((double)g[i] * scale);
    }
    fixed_accumulate(g, acc, n, scale, bound, &mx, &over, &bad);
    int zero = 1;
    for (size_t i = 0; i < n; i++)
        zero &= g[i] == 0.0f && !signbit(g[i]);
    if (!zero || !same(acc, want, n * sizeof(int64_t)) || mx != want_mx || over != want_over ||
        bad != want_bad) {
        fprintf(stderr, "%s: fixed_accumulate on %zu partials (%s, bound 2^%d): zeroed %d, "
                "sums %s, max %g (want %g), over %lld (want %lld), non-finite %lld (want %lld)\n",
                dp_isa_name(), n, rare ? "rarely out of range" : "mixed", E, zero,
                same(acc, want, n * sizeof(int64_t)) ? "ok" : "WRONG", mx, want_mx,
                (long long)over, (long long)want_over, (long long)bad, (long long)want_bad);
    }
    CHECK(zero && same(acc, want, n * sizeof(int64_t)) && mx == want_mx && over == want_over &&
          bad == want_bad);
    free(g), free(acc), free(want);
}

/* fixed_accumulate on lengths with every tail, inputs mixed and mostly in range, bounds
 * that float holds and ones it does not (2^-140: subnormal; 2^130: past its range). */
static void test_fixed(void)
{
    static const size_t lengths[] = {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 100, 1003};
    static const int exponents[] = {4, -140, 130};
    for (size_t e = 0; e < sizeof exponents / sizeof exponents[0]; e++)
        for (int rare = 0; rare < 2; rare++)
            for (size_t t = 0; t < sizeof lengths / sizeof lengths[0]; t++)
                check_fixed(lengths[t], rare, exponents[e]);
}

/* fixed_take against the scalar conversions, on sums of every magnitude (past 2^53, where
 * int64 to double rounds; negative; zero) and powers of two that make floats of every
 * kind (normal, subnormal, zero, overflowing to infinity): the floats, and a zero sum. */
static void test_fixed_take(void)
{
    static const size_t lengths[] = {0, 1, 7, 8, 9, 16, 17, 100, 1003};
    static const int shifts[] = {-47, -20, -191, 80};
    for (size_t s = 0; s < sizeof shifts / sizeof shifts[0]; s++)
        for (size_t t = 0; t < sizeof lengths / sizeof lengths[0]; t++) {
            const size_t n = lengths[t];
            const double unscale = ldexp(1.0, shifts[s]);
            float *g = malloc((n + 1) * sizeof(float)), *want = malloc((n + 1) * sizeof(float));
            int64_t *acc = malloc((n + 1) * sizeof(int64_t));
            for (size_t i = 0; i < n; i++) {
                acc[i] = (int64_t)rng_next(&rng) >> (rng_next(&rng) % 64);
                if (i % 5 == 3)
                    acc[i] = 0;
                want[i] = (float)((double)acc[i] * unscale);
                g[i] = -1.0f;
            }
            fixed_take(g, acc, n, unscale);
            int zero = 1;
            for (size_t i = 0; i < n; i++)
                zero &= acc[i] == 0;
            if (!zero || !same(g, want, n * sizeof(float)))
                fprintf(stderr, "%s: fixed_take on %zu sums (unscale 2^%d): floats %s, sums "
                        "zeroed %d\n", dp_isa_name(), n, shifts[s],
                        same(g, want, n * sizeof(float)) ? "ok" : "WRONG", zero);
            CHECK(zero && same(g, want, n * sizeof(float)));
            free(g), free(want), free(acc);
        }
}

/* ---- the weight gradient's partials into the exact sum in registers ------------------ */

/* gemm_tn_fixed against its definition: each group's gemm_tn from zero, then
 * fixed_accumulate, with the same scale and bound; sums, largest magnitude and counts.
 * kind 0: random values in range; 1: some partials over the bound; 2: NaNs of both signs
 * and an Inf among the inputs; 3: products of small integers times 2^-20, whose fixed
 * points are exact ties half the time; 4: partials near the bound, all of one sign, in
 * 2^lg groups of one sample (the int32 halves' sums at their largest); 5: a scale past
 * float's range (the unfused way throughout). */
static void check_tn_fixed(int M, int N, int ngroups, int per_group, int kind, size_t pack_floats)
{
    const int S = ngroups * per_group, lg = ngroups > 1 ? 32 - __builtin_clz((unsigned)ngroups - 1) : 0;
    int E = kind == 3 ? 10 : kind == 5 ? -100 : 0;
    const double bound = ldexp(1.0, E), scale = ldexp(1.0, 51 - lg - E);
    int *bounds = malloc(sizeof(int) * (size_t)(ngroups + 1));
    bounds[0] = 5; /* counted from bounds[0] */
    for (int g = 0; g < ngroups; g++)
        bounds[g + 1] = bounds[g] + per_group;
    float *A = malloc(sizeof(float) * (size_t)S * M), *B = malloc(sizeof(float) * (size_t)S * N);
    for (size_t i = 0; i < (size_t)S * M; i++) {
        const double u = 2.0 * rng_uniform(&rng) - 1.0;
        A[i] = kind == 3 ? (float)ldexp((double)((int)rng_below(&rng, 15) - 7), -20)
             : kind == 4 ? 0.99f : kind == 5 ? (float)(u * 1e-16) : (float)(u * 0.5);
    }
    for (size_t i = 0; i < (size_t)S * N; i++) {
        const double u = 2.0 * rng_uniform(&rng) - 1.0;
        B[i] = kind == 3 ? (float)ldexp((double)((int)rng_below(&rng, 15) - 7), -20)
             : kind == 4 ? (float)(0.995 + 0.005 * u) : kind == 5 ? (float)(u * 1e-16)
             : (float)(u * (kind == 1 && i % 97 == 3 ? 40.0 : 1.0) / per_group);
    }
    if (kind == 2) {
        B[(size_t)S / 2 * N + 7] = NAN;
        B[(size_t)S / 3 * N + N - 40] = -NAN; /* a NaN with its sign bit set, in another tile */
        A[(size_t)(S - 1) * M] = INFINITY;
    }
    const size_t n = (size_t)M * N;
    int64_t *acc = malloc(sizeof(int64_t) * n), *want = malloc(sizeof(int64_t) * n);
    float *tile = malloc(sizeof(float) * n);
    const int zero = kind == 0 && M % 2; /* the block known zero: stored, not added */
    for (size_t i = 0; i < n; i++)
        acc[i] = want[i] = zero ? 0 : (int64_t)rng_next(&rng) >> 13;
    float want_mx = 0.25f;
    int64_t want_over = 3, want_bad = 4;
    for (int g = 0; g < ngroups; g++) {
        const int n0 = bounds[g] - bounds[0];
        gemm_tn(M, N, per_group, A + (size_t)n0 * M, M, B + (size_t)n0 * N, N, tile, N);
        fixed_accumulate(tile, want, n, scale, bound, &want_mx, &want_over, &want_bad);
    }
    dp_fixed_block blk = {acc, scale, bound, zero, 0.25f, 3, 4};
    float *pack = pack_floats ? malloc(sizeof(float) * pack_floats) : NULL;
    gemm_tn_fixed(M, N, A, M, B, N, bounds, ngroups, (size_t)N, &blk, pack, pack_floats);
    free(pack);
    const int ok = same(acc, want, sizeof(int64_t) * n) && blk.maxabs == want_mx &&
                   blk.over == want_over && blk.nonfinite == want_bad;
    if (!ok)
        fprintf(stderr, "%s: gemm_tn_fixed %dx%d, %d groups of %d, kind %d, pack %zu: sums %s, "
                "max %g (want %g), over %lld (want %lld), non-finite %lld (want %lld)\n",
                dp_isa_name(), M, N, ngroups, per_group, kind, pack_floats,
                same(acc, want, sizeof(int64_t) * n) ? "ok" : "WRONG",
                blk.maxabs, want_mx, (long long)blk.over, (long long)want_over,
                (long long)blk.nonfinite, (long long)want_bad);
    CHECK(ok);
    free(bounds), free(A), free(B), free(acc), free(want), free(tile);
}

static void test_tn_fixed(void)
{
    /* pack: none (B read in place), one column block of every sample (32 x 96 floats
     * holds one block of 32 or two of 16, or three of 8 columns), several, plenty */
    static const size_t packs[] = {0, 32 * 96, 7 * 32 * 96 + 5, 1 << 20};
    for (int p = 0; p < 4; p++) {
        const size_t pk = packs[p];
        check_tn_fixed(64, 1600, 16, 6, 0, pk);   /* fc1 of the reference model, a thread's rows */
        check_tn_fixed(11, 16 * 21 + 7, 16, 6, 0, pk); /* row and column tails */
        check_tn_fixed(3, 40, 3, 4, 0, pk);       /* fewer rows than a tile */
        check_tn_fixed(9, 64 * 7, 16, 6, 0, pk);  /* (odd rows: a block known zero) */
        check_tn_fixed(12, 96 * 3, 16, 6, 1, pk);
        check_tn_fixed(12, 96 * 3, 16, 6, 2, pk);
        check_tn_fixed(8, 64, 4, 3, 3, pk);
        check_tn_fixed(8, 64, 4, 6, 5, pk);
        check_tn_fixed(4, 32, 512, 1, 4, pk);
    }
    check_tn_fixed(4, 32, 1024, 1, 4, 0);
    check_tn_fixed(8, 64, 1, 600, 0, 1 << 16);  /* one group of more samples than pack holds */
}

/* linear_backward_groups with the fixed hooks (every group's weight partials into the sum
 * in registers) against the move hook (each group's partials handed over, then moved):
 * the same sums, maxima and counts, and the float gradient untouched. */
typedef struct {
    int64_t *acc;         /* the weight's sums, then the bias's when b is given */
    float *w, *b;         /* b NULL: bias partials are not summed, only taken */
    size_t nw;
    double scale, bound;
    float mx;
    int64_t over, bad;
    int moves, refuse;    /* moves made; refuse: open says the tensor is not summed */
} hook_state;
static hook_state hk;

/* Where element g's sum lies, or NULL where it is not summed. */
static int64_t *hk_slot(const float *g)
{
    if (g >= hk.w && g < hk.w + hk.nw)
        return hk.acc + (g - hk.w);
    return hk.b ? hk.acc + hk.nw + (g - hk.b) : NULL;
}

static int hk_open(void *ctx, const float *g, dp_fixed_block *b)
{
    (void)ctx;
    *b = (dp_fixed_block){hk_slot(g), hk.scale, hk.bound, 1, 0.0f, 0, 0};
    return hk.refuse ? -1 : 0;
}

static void hk_close(void *ctx, const float *g, const dp_fixed_block *b)
{
    (void)ctx, (void)g;
    #pragma omp critical(hk_close)
    {
        hk.mx = b->maxabs > hk.mx ? b->maxabs : hk.mx;
        hk.over += b->over;
        hk.bad += b->nonfinite;
    }
}

static void hk_move(void *ctx, float *g, size_t rows, size_t cols, size_t ld)
{
    (void)ctx;
    float mx = 0.0f;
    int64_t over = 0, bad = 0, *slot = hk_slot(g);
    for (size_t r = 0; r < rows; r++)
        if (slot)
            fixed_accumulate(g + r * ld, slot + r * ld, cols, hk.scale, hk.bound, &mx, &over,
                             &bad);
        else
            memset(g + r * ld, 0, cols * sizeof(float));
    #pragma omp atomic
    hk.moves++;
    hk_close(NULL, g, &(dp_fixed_block){NULL, 0, 0, 0, mx, over, bad});
}

static void test_fc_fixed_hooks(void)
{
    enum { I = 1600, O = 13, B = 20 };
    float *in = rand_buf(B * I), *w = rand_buf(O * I), *dout = rand_buf(B * O);
    float *din = malloc(sizeof(float) * B * I), *dw = calloc(O * I, sizeof(float));
    float *db = calloc(O, sizeof(float)), *zero = calloc(O * I, sizeof(float));
    int64_t *sums[3];
    float mx[3];
    int64_t counts[3];
    int moves[3];
    for (int k = 0; k < 3; k++) { /* the moves, the hooks, the hooks refused */
        hk = (hook_state){.acc = calloc(O * I, sizeof(int64_t)), .w = dw, .nw = O * I,
                          .scale = 0x1p40, .bound = 0x1p9, .refuse = k == 2};
        linear_backward_groups(din, dw, db, dout, in, w, B, I, O, NULL, rec_bounds, REC_G,
                               hk_move, k ? hk_open : NULL, k ? hk_close : NULL, NULL);
        sums[k] = hk.acc, mx[k] = hk.mx, counts[k] = hk.over + hk.bad, moves[k] = hk.moves;
        CHECK(same(dw, zero, sizeof(float) * O * I));
    }
    /* with the hooks only the bias is moved: once per group by each thread with rows */
    const int threads = omp_get_max_threads() < O ? omp_get_max_threads() : O;
    const int ok = same(sums[0], sums[1], sizeof(int64_t) * O * I) &&
                   same(sums[0], sums[2], sizeof(int64_t) * O * I) && mx[0] == mx[1] &&
                   mx[0] == mx[2] && mx[0] > 0.0f && counts[0] == 0 && counts[1] == 0 &&
                   counts[2] == 0 && moves[1] == REC_G * threads && moves[2] == moves[0] &&
                   moves[0] > moves[1];
    if (!ok)
        fprintf(stderr, "%s, %d threads: fc backward with the fixed hooks differs from the "
                "moves (moves %d %d %d)\n", dp_isa_name(), omp_get_max_threads(), moves[0],
                moves[1], moves[2]);
    CHECK(ok);
    free(in), free(w), free(dout), free(din), free(dw), free(db), free(zero);
    free(sums[0]), free(sums[1]), free(sums[2]);
}

/* conv2d_backward_groups (and the fused conv + relu + pool, and conv + relu) with the
 * fixed hooks: at 2 threads each thread owns whole groups and sums them in fixed point
 * itself; the sums, maxima and counts must be the moves' (1 thread, or no hooks), and the
 * float gradients untouched. With a NaN in dout, the same count of NaN partials; where
 * open refuses a tensor, the moves serve as before. conv + relu's moves must also be
 * those of relu_backward then conv2d_backward_groups. */
static void test_conv_fixed_hooks(void)
{
    static const int shapes[][5] = {{1, 12, 12, 8, 3}, {6, 9, 9, 10, 3}}; /* C, H, W, OC, K */
    const int threads = omp_get_max_threads();
    for (size_t t = 0; t < 2; t++)
        for (int fused = 0; fused < 3; fused++) /* 1: + relu + pool; 2: + relu */
            for (int nan = 0; nan < 2; nan++) {
                const int *v = shapes[t], B = 20, C = v[0], OC = v[3], KK = v[4];
                const int OH = v[1] - KK + 1, OW = v[2] - KK + 1;
                const dp_conv_shape s = {B, C, v[1], v[2], OC, KK, KK, 1, 0, OH, OW};
                const dp_pool_shape pl = {2, 2, (OH - 2) / 2 + 1, (OW - 2) / 2 + 1};
                const size_t nin = (size_t)B * C * v[1] * v[2], nw = (size_t)OC * C * KK * KK;
                const size_t nconv = (size_t)B * OC * OH * OW, npool = (size_t)B * OC * pl.OH * pl.OW;
                float *in = rand_buf(nin), *w = rand_buf(nw), *bias = rand_buf((size_t)OC);
                const size_t ndout = fused == 1 ? npool : nconv;
                float *dout = rand_buf(ndout), *out = malloc(sizeof(float) * npool);
                int32_t *arg = malloc(sizeof(int32_t) * npool);
                float *col = malloc(sizeof(float) * conv2d_col_floats(&s));
                float *conv_out = malloc(sizeof(float) * nconv);
                float *scratch = malloc(sizeof(float) * conv2d_pool_scratch_floats(&s) *
                                        omp_get_max_threads());
                float *din = malloc(sizeof(float) * nin);
                float *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)OC, sizeof(float));
                float *zero = calloc(nw, sizeof(float));
                if (fused == 1)
                    conv2d_relu_maxpool_forward(out, arg, col, in, w, bias, scratch, &s, &pl);
                else if (fused == 2)
                    conv2d_relu_forward(conv_out, col, in, w, bias, scratch, &s);
                else
                    conv2d_forward(conv_out, col, in, w, bias, scratch, &s);
                if (nan) /* a sample of group 1, passed on by the pooling or relu */
                    for (size_t i = 4 * ndout / B; i < 5 * ndout / B; i++)
                        dout[i] = NAN;
                int64_t *sums[3];
                float mx[3];
                int64_t over[3], bad[3];
                int moves[3];
                for (int k = 0; k < 3; k++) { /* the moves, the hooks, the hooks refused */
                    hk = (hook_state){.acc = calloc(nw + OC, sizeof(int64_t)), .w = dw, .b = db,
                                      .nw = nw, .scale = 0x1p38, .bound = 0x1p11, .refuse = k == 2};
                    dp_fixed_open op = k ? hk_open : NULL;
                    dp_fixed_close cl = k ? hk_close : NULL;
                    if (fused == 1)
                        conv2d_relu_maxpool_backward_groups(din, dw, db, col, dout, out, arg, w,
                                                            scratch, NULL, &s, &pl, rec_bounds,
                                                            REC_G, hk_move, op, cl, NULL);
                    else if (fused == 2)
                        conv2d_relu_backward_groups(din, dw, db, col, dout, conv_out, w, scratch,
                                                    NULL, &s, rec_bounds, REC_G, hk_move, op, cl,
                                                    NULL);
                    else
                        conv2d_backward_groups(din, dw, db, col, dout, w, scratch, &s,
                                               rec_bounds, REC_G, hk_move, op, cl, NULL);
                    sums[k] = hk.acc, mx[k] = hk.mx, over[k] = hk.over, bad[k] = hk.bad;
                    moves[k] = hk.moves;
                    CHECK(same(dw, zero, sizeof(float) * nw) && same(db, zero, sizeof(float) * OC));
                }
                int ok = 1;
                for (int k = 1; k < 3; k++)
                    ok &= same(sums[0], sums[k], sizeof(int64_t) * (nw + OC)) && mx[0] == mx[k] &&
                          over[0] == over[k] && bad[0] == bad[k];
                ok &= mx[0] > 0.0f && (nan ? bad[0] > 0 : bad[0] == 0);
                if (fused == 2) { /* the relu's gradient first, then the conv's backward */
                    float *drelu = malloc(sizeof(float) * nconv);
                    relu_backward(drelu, dout, conv_out, nconv);
                    hk = (hook_state){.acc = calloc(nw + OC, sizeof(int64_t)), .w = dw, .b = db,
                                      .nw = nw, .scale = 0x1p38, .bound = 0x1p11};
                    conv2d_backward_groups(din, dw, db, col, drelu, w, scratch, &s, rec_bounds,
                                           REC_G, hk_move, NULL, NULL, NULL);
                    ok &= same(sums[0], hk.acc, sizeof(int64_t) * (nw + OC)) && hk.mx == mx[0] &&
                          hk.bad == bad[0];
                    free(hk.acc), free(drelu);
                }
                /* the hooks take the threads' own path at 2 threads, the moves at 1 */
                ok &= moves[0] > 0 && moves[2] == moves[0] &&
                      (threads > 1 ? moves[1] == 0 : moves[1] == moves[0]);
                if (!ok)
                    fprintf(stderr, "%s, %d threads: conv backward with the fixed hooks differs "
                                    "from the moves, shape %zu, fused %d, nan %d (moves %d %d %d)\n",
                            dp_isa_name(), threads, t, fused, nan, moves[0], moves[1], moves[2]);
                CHECK(ok);
                free(in), free(w), free(bias), free(dout), free(out), free(arg), free(col);
                free(conv_out), free(scratch), free(din), free(dw), free(db), free(zero);
                for (int k = 0; k < 3; k++)
                    free(sums[k]);
            }
}

int main(void)
{
    dp_err err;
    int ran = 0;
    for (int p = 0; dp_isa_names[p]; p++) {
        const char *isa = dp_isa_names[p];
        if (!dp_isa_available(isa)) {
            printf("%s: skipped, this CPU lacks it\n", isa);
            continue;
        }
        for (int threads = 1; threads <= 3; threads++) {
            omp_set_num_threads(threads);
            rng_seed(&rng, 17, (uint64_t)p, (uint64_t)threads);
            CHECK(dp_isa_select(isa, &err) == 0);
            test_fixed();
            test_fixed_take();
            test_fc_groups();
            test_conv_groups();
            test_tn_fixed();
            test_fc_fixed_hooks();
            test_conv_fixed_hooks();
            /* the convolutions again under Winograd (the second shape: 3x3 over 6 channels) */
            CHECK(dp_conv_algorithm_select("winograd", &err) == 0);
            test_conv_groups();
            test_conv_fixed_hooks();
            CHECK(dp_conv_algorithm_select("direct", &err) == 0);
        }
        printf("%s: fixed point as the oracle; every layer's groups as one by one\n", isa);
        ran++;
    }
    CHECK(ran >= 1);
    return check_exit("test_exact_parts");
}
