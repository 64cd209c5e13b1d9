/* bench_kernels: each instruction-set path's FMA peak on one core, and the products of the
 * reference and nopool models on their real shapes, as the layers call them (one sample
 * at a time over a batch, operands in memory as in a training step), in GFLOP/s and as a
 * fraction of that path's peak (the vector paths: rate_cell); beside them OpenBLAS's SGEMM (one thread) on the same
 * shapes, as a fraction of the widest path's peak, when built with it. Then the fc
 * layers' weight gradients over the trainer's 16 groups into the exact sum, through the
 * layer, fused and moved (the product's FLOPs per second: what the exact sum leaves of
 * it), im2col, Winograd's filter transform and layout changes, and pooling.
 *
 *   bench_kernels [--isa avx512|avx2|scalar|all] [--batch 100] [--reps 5] [--cpu-time]
 *                 [--only TEXT]
 *
 * The peak: 12 independent chains of fused multiply-adds (enough to fill two pipes of
 * four-cycle latency), one per register, 512-bit, 256-bit or scalar; then the same on
 * every core at once, and its ratio to one core's (the ceiling of any scaling here). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dptrain/net/isa.h"
#include "dptrain/net/kernels.h"
#include "dptrain/net/layers.h"
#include "dptrain/util/rng.h"
#include "conv_impl.h" /* src/net: wino_filters */
#include "fma_peak.h"

#ifdef DPTRAIN_BENCH_OPENBLAS
#include <cblas.h>
#endif

/* "GF/s (fraction of the path's peak)". The scalar path's multiply-add is a call to the
 * C library's fmaf, whose throughput depends on the code around the call (the kernels ran
 * at 91-137% of the chain loop's figure on an AMD Zen 5): that figure bounds nothing, so
 * the scalar path gets no fraction. */
static void rate_cell(char *cell, size_t size, double gflops, double peak, const char *isa)
{
    if (strcmp(isa, "scalar"))
        snprintf(cell, size, "%.1f (%.0f%%)", gflops, 100 * gflops / peak);
    else
        snprintf(cell, size, "%.1f", gflops);
}

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef enum { NN_BIAS, NN_ACC, TN, TN_ACC, NN, NT_LANES, NT } form;

typedef struct {
    const char *name;
    form f;
    int M, N, K;
    int per_sample; /* 1: B products on per-sample operands; 0: one product over the batch */
    int shared_c;   /* C in cache for every sample, as the layer has it (scratch, or the
                       weight gradient it accumulates into); else C per sample, in memory */
} shape;

/* As the layers call them: the reference model's convs are fused with the pooling (their
 * output stays in scratch), the input gradient goes in blocks of 22 input channels. */
static const shape shapes[] = {
    {"ref conv1 forward  W.col", NN_BIAS, 32, 676, 9, 1, 1},
    {"ref conv1 weights  dY.col^T (dot)", NT, 32, 9, 676, 1, 1},
    {"ref conv2 forward  W.col", NN_BIAS, 64, 121, 288, 1, 1},
    {"ref conv2 weights  col.dY^T", NN_ACC, 288, 64, 121, 1, 1},
    {"ref conv2 input    W^T.dY, 22 channels", TN, 198, 121, 64, 1, 1},
    {"ref fc1 forward    X.W^T (dot)", NT_LANES, 100, 128, 1600, 0, 0},
    {"ref fc1 weights    dY^T.X", TN_ACC, 128, 1600, 100, 0, 0},
    {"ref fc1 input      dY.W", NN, 100, 1600, 128, 0, 0},
    {"nopool conv2 forward", NN_BIAS, 64, 576, 288, 1, 0},
    {"nopool conv2 weights", NN_ACC, 288, 64, 576, 1, 1},
    {"nopool conv2 input, 4 channels", TN, 36, 576, 64, 1, 1},
    {"nopool fc1 forward (dot)", NT_LANES, 100, 128, 36864, 0, 0},
    {"nopool fc1 weights", TN_ACC, 128, 36864, 100, 0, 0},
    {"nopool fc1 input", NN, 100, 36864, 128, 0, 0},
};

static float *rand_buf(size_t n)
{
    static dp_rng r;
    static int seeded;
    if (!seeded)
        rng_seed(&r, 5, 6, 7), seeded = 1;
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = rng_uniform(&r) - 0.5f;
    return p;
}

/* The same product through OpenBLAS: beta 1 where dptrain accumulates, NT as A B^T. */
static void blas_product(const shape *s, const float *a, const float *b, float *c)
{
#ifdef DPTRAIN_BENCH_OPENBLAS
    const int M = s->M, N = s->N, K = s->K;
    switch (s->f) {
    case NN_BIAS: case NN: case NN_ACC:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N,
                    s->f == NN_ACC ? 1.0f : 0.0f, c, N);
        break;
    case TN: case TN_ACC:
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, a, M, b, N,
                    s->f == TN_ACC ? 1.0f : 0.0f, c, N);
        break;
    case NT: case NT_LANES:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 1.0f, c, N);
        break;
    }
#else
    (void)s, (void)a, (void)b, (void)c;
#endif
}

/* The median of t[0..n-1], which it sorts (insertion sort: n is a few repetitions). */
static double median_of(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && t[k] < t[k - 1]; k--) {
            double x = t[k];
            t[k] = t[k - 1], t[k - 1] = x;
        }
    return t[n / 2];
}

/* Median seconds of one pass over the batch (blas: through OpenBLAS). */
static double time_shape(const shape *s, int B, int reps, int blas)
{
    const int M = s->M, N = s->N, K = s->K, nb = s->per_sample ? B : 1;
    /* A [M,K] (or [K,M] for TN), B [K,N] (or [N,K] for NT), C [M,N]: per sample unless
     * the first operand is the weight (conv forward: W shared) */
    const int shared_a = s->f == NN_BIAS;
    float *A = rand_buf((size_t)M * K * (shared_a ? 1 : nb)), *Bm = rand_buf((size_t)K * N * nb);
    const int nc = s->shared_c ? 1 : nb;
    float *C = rand_buf((size_t)M * N * nc), *bias = rand_buf((size_t)M);
    float *lanes = malloc(sizeof(float) * 8 * (size_t)M * N);
    float *pack = malloc(sizeof(float) * gemm_nt_pack_floats(M, N));
    double t[64];
    if (reps > 64)
        reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        for (int n = 0; n < nb; n++) {
            const float *a = A + (shared_a ? 0 : (size_t)n * M * K);
            const float *b = Bm + (size_t)n * K * N;
            float *c = C + (s->shared_c ? 0 : (size_t)n * M * N);
            if (blas) {
                blas_product(s, a, b, c);
                continue;
            }
            switch (s->f) {
            case NN_BIAS: gemm_nn_bias(M, N, K, a, K, b, N, bias, c, N); break;
            case NN_ACC: gemm_nn_acc(M, N, K, a, K, b, N, c, N); break;
            case NN: gemm_nn(M, N, K, a, K, b, N, c, N); break;
            case TN: gemm_tn(M, N, K, a, M, b, N, c, N); break;
            case TN_ACC: gemm_tn_acc(M, N, K, a, M, b, N, c, N); break;
            case NT: gemm_nt_acc(M, N, K, a, K, b, K, c, N); break;
            case NT_LANES: gemm_nt_acc_lanes(M, N, K, a, K, b, K, c, N, lanes, pack); break;
            }
        }
        if (r >= 0)
            t[r] = now() - t0;
    }
    free(A), free(Bm), free(C), free(bias), free(lanes), free(pack);
    return median_of(t, reps);
}

/* The exact sum for bench_group_sum's layer: its weight's values (the bias's partials are
 * only cleared), as gradsync hands them to the layer. */
typedef struct {
    float *w;
    size_t nw;
    int64_t *acc;
} group_sum;

static const double sum_scale = 0x1p47, sum_bound = 1.0; /* 16 groups: E + F = 51 - 4 */

static void sum_move(void *ctx, float *g, size_t rows, size_t cols, size_t ld)
{
    group_sum *gs = ctx;
    float mx = 0.0f;
    int64_t over = 0, bad = 0;
    for (size_t r = 0; r < rows; r++) {
        float *row = g + r * ld;
        if (row >= gs->w && row < gs->w + gs->nw)
            fixed_accumulate(row, gs->acc + (row - gs->w), cols, sum_scale, sum_bound, &mx, &over,
                             &bad);
        else
            memset(row, 0, cols * sizeof(float));
    }
}

static int sum_open(void *ctx, const float *g, dp_fixed_block *b)
{
    group_sum *gs = ctx;
    /* as in a step's first pass, where the sums are known zero and stored */
    *b = (dp_fixed_block){gs->acc + (g - gs->w), sum_scale, sum_bound, 1, 0.0f, 0, 0};
    return 0;
}

static void sum_close(void *ctx, const float *g, const dp_fixed_block *b)
{
    (void)ctx, (void)g, (void)b;
}

/* An fc layer's weight gradient over 16 groups of the batch (the trainer's: 8 files of
 * 12-13 samples, groups of at most 8) into the exact int64 sum, through the layer itself
 * (linear_backward_groups, one thread, no input gradient): fused, each group's partials
 * into the sum in registers (the fixed hooks), or moved, each group's tiles handed to the
 * move hook (the layer's way without them). Median seconds. */
static double time_group_sum(int outs, int ins, int B, int reps, int fused)
{
    int bounds[17], ng = 0;
    bounds[0] = 0;
    for (int f = 0; f < 8; f++)
        for (int share = B * (f + 1) / 8 - B * f / 8; share > 0 && ng < 16; share -= 8, ng++)
            bounds[ng + 1] = bounds[ng] + (share < 8 ? share : 8);
    const int S = bounds[ng];
    float *dout = rand_buf((size_t)S * outs), *in = rand_buf((size_t)S * ins);
    for (size_t i = 0; i < (size_t)S * outs; i++)
        dout[i] *= 0.01f; /* partials well below the bound 1 */
    float *dw = calloc((size_t)outs * ins, sizeof(float));
    float *db = calloc((size_t)outs, sizeof(float));
    float *scratch = malloc(sizeof(float) * linear_scratch_floats(S, ins, outs, 1));
    group_sum gs = {dw, (size_t)outs * ins, calloc((size_t)outs * ins, sizeof(int64_t))};
    double t[64];
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        linear_backward_groups(NULL, dw, db, dout, in, NULL, S, ins, outs, scratch, bounds, ng,
                               sum_move, fused ? sum_open : NULL, fused ? sum_close : NULL, &gs);
        if (r >= 0)
            t[r] = now() - t0;
    }
    free(dout), free(in), free(dw), free(db), free(scratch), free(gs.acc);
    return median_of(t, reps);
}

/* im2col of a sample of MNIST's conv2 (32x13x13, 3x3) into one cache-resident buffer,
 * per sample over the batch: GB/s written. */
static double time_im2col(int C, int H, int W, int B, int reps)
{
    const int OH = H - 2, OW = W - 2, K = C * 9;
    float *in = rand_buf((size_t)B * C * H * W), *col = malloc(sizeof(float) * K * OH * OW);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int n = 0; n < B; n++)
            im2col(in + (size_t)n * C * H * W, C, H, W, 3, 3, 1, 0, OH, OW, col);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(in), free(col);
    return (double)B * K * OH * OW * sizeof(float) / best * 1e-9;
}

/* Winograd's layout changes for MNIST's conv2, a sample at a time over the batch: its input
 * (32 planes of 13x13) to pixel-major and its output gradient (64 planes of 11x11) to
 * pixel-major, from batch-sized tensors into one cache-resident buffer, as the trainer
 * does. GB/s read (the fastest of reps). */
static double time_transpose(int B, int reps)
{
    const int shapes[2][2] = {{32, 13 * 13}, {64, 11 * 11}};
    const size_t per = (size_t)shapes[0][0] * shapes[0][1] + (size_t)shapes[1][0] * shapes[1][1];
    float *src = rand_buf((size_t)B * per), *dst = malloc(sizeof(float) * per);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int n = 0; n < B; n++) {
            const float *at = src + (size_t)n * per;
            transpose(at, shapes[0][0], shapes[0][1], dst);
            transpose(at + (size_t)shapes[0][0] * shapes[0][1], shapes[1][0], shapes[1][1], dst);
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(src), free(dst);
    return (double)B * per * sizeof(float) / best * 1e-9;
}

/* Winograd's filter transform of MNIST's conv2 (64 x 32 filters of 3x3 to 6x6, then to
 * each position's C x OC layout), as each step makes it twice, in forward and for the
 * input gradient: microseconds a call (the fastest of reps rounds of 200). */
static double time_wino_filters(int reps)
{
    dp_conv_shape s;
    memset(&s, 0, sizeof s);
    s.B = 1, s.C = 32, s.H = s.W = 13, s.OC = 64, s.KH = s.KW = 3, s.stride = 1;
    s.OH = s.OW = 11;
    /* uw: U and its transposition, 36 positions each */
    float *w = rand_buf((size_t)s.OC * s.C * 9), *uw = malloc(sizeof(float) * 2 * 36 * s.OC * s.C);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < 200; i++)
            wino_filters(w, uw, &s);
        double t = (now() - t0) / 200;
        best = t < best ? t : best;
    }
    free(w), free(uw);
    return best * 1e6;
}

/* relu + 2x2 max pooling of C planes of HxW, a sample at a time over the batch, as the
 * fused conv layers call it: the sample's conv output (forward) and its input gradient
 * (backward) in one cache-resident buffer, the pooled planes, their argmax and gradient
 * per sample in memory. ns per plane, forward and backward timed apart (medians). */
static void time_pool(int C, int H, int W, int B, int reps, double ns[2])
{
    const int OH = H / 2, OW = W / 2;
    const size_t nin = (size_t)C * H * W, nout = (size_t)C * OH * OW;
    float *in = rand_buf(nin), *din = malloc(sizeof(float) * nin);
    float *out = malloc(sizeof(float) * nout * B), *dout = rand_buf(nout * B);
    int32_t *arg = malloc(sizeof(int32_t) * nout * B);
    double t[2][64];
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int n = 0; n < B; n++)
            relu_maxpool_forward(out + n * nout, arg + n * nout, in, 1, C, H, W, 2, 2, OH, OW);
        double t1 = now();
        for (int n = 0; n < B; n++)
            relu_maxpool_backward(din, dout + n * nout, out + n * nout, arg + n * nout, 1, C, H,
                                  W, OH, OW);
        t[0][r] = t1 - t0, t[1][r] = now() - t1;
    }
    for (int k = 0; k < 2; k++)
        ns[k] = median_of(t[k], reps) / ((double)B * C) * 1e9;
    free(in), free(din), free(out), free(dout), free(arg);
}

/* --only TEXT: the rows whose label contains TEXT (the peaks always) */
static const char *only_rows;
static int rows_wanted;

static int wanted(const char *label)
{
    const int yes = !only_rows || strstr(label, only_rows);
    rows_wanted += yes;
    return yes;
}

int main(int argc, char **argv)
{
    const char *which = "all";
    int B = 100, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu-time"))
            bench_clock = CLOCK_PROCESS_CPUTIME_ID;
        else if (i + 1 < argc && !strcmp(argv[i], "--isa"))
            which = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch"))
            B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps"))
            reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--only"))
            only_rows = argv[++i];
    }
    omp_set_num_threads(1);
#ifdef DPTRAIN_BENCH_OPENBLAS
    openblas_set_num_threads(1);
    const int blas = 1;
#else
    const int blas = 0;
#endif
    dp_err err;
    printf("%-44s", "GFLOP/s (fraction of the path's peak)");
    int cols = 0;
    double peak[3] = {0};
    const char *names[3];
    for (int p = 0; dp_isa_names[p]; p++) {
        const char *isa = dp_isa_names[p];
        if ((strcmp(which, "all") && strcmp(which, isa)) || !dp_isa_available(isa))
            continue;
        names[cols] = isa;
        peak[cols] = fma_peak_gflops(isa);
        printf(" %16s", isa);
        cols++;
    }
    if (blas)
        printf(" %16s", "openblas");
    printf("\n%-44s", "FMA peak, one core, 12 chains");
    for (int c = 0; c < cols; c++)
        printf(" %16.1f", peak[c]);
    /* every core at once (one thread each): what a machine whose cores share a clock
     * budget, a power limit or a host's time-slicing gives; its ratio to one core's */
    const int T = omp_get_num_procs();
    printf("\n%-44s", "FMA peak, every core at once, total");
    char tag[32];
    snprintf(tag, sizeof tag, "(%d cores)", T);
    for (int c = 0; c < cols; c++) {
        double all = 0.0;
        #pragma omp parallel num_threads(T) reduction(+ : all)
        all += fma_peak_gflops(names[c]);
        printf(" %8.1f (%.2fx)", all, all / peak[c]);
    }
    printf("  %s\n", tag);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const shape *s = &shapes[k];
        char label[64];
        snprintf(label, sizeof label, "%s %dx%dx%d%s", s->name, s->M, s->N, s->K,
                 s->per_sample ? " xB" : "");
        if (!wanted(label))
            continue;
        printf("%-44s", label);
        double flops = 2.0 * s->M * s->N * s->K * (s->per_sample ? B : 1);
        for (int c = 0; c < cols; c++) {
            if (dp_isa_select(names[c], &err)) {
                fprintf(stderr, "bench_kernels: %s\n", err.msg);
                return 1;
            }
            /* the scalar path is ~50x slower: fewer repetitions */
            double t = time_shape(s, B, strcmp(names[c], "scalar") ? reps : 1, 0);
            char cell[32];
            rate_cell(cell, sizeof cell, flops / t * 1e-9, peak[c], names[c]);
            printf(" %16s", cell);
        }
        if (blas && cols) {
            double t = time_shape(s, B, reps, 1);
            char cell[32];
            rate_cell(cell, sizeof cell, flops / t * 1e-9, peak[0], names[0]);
            printf(" %16s", cell);
        }
        printf("\n");
        fflush(stdout);
    }
    static const int fcs[][2] = {{128, 1600}, {128, 36864}};
    for (int k = 0; k < 2; k++)
        for (int fused = 1; fused >= 0; fused--) {
            char label[64];
            snprintf(label, sizeof label, "%s fc1 weights 16 groups, sum %s",
                     k ? "nopool" : "ref", fused ? "fused" : "moved");
            if (!wanted(label))
                continue;
            printf("%-44s", label);
            const double flops = 2.0 * fcs[k][0] * fcs[k][1] * B;
            for (int c = 0; c < cols; c++) {
                dp_isa_select(names[c], &err);
                const double t = time_group_sum(fcs[k][0], fcs[k][1], B,
                                                strcmp(names[c], "scalar") ? reps : 1, fused);
                char cell[32];
                rate_cell(cell, sizeof cell, flops / t * 1e-9, peak[c], names[c]);
                printf(" %16s", cell);
            }
            printf("\n");
            fflush(stdout);
        }
    if (wanted("im2col 32x13x13 3x3, GB/s written")) {
        printf("%-44s", "im2col 32x13x13 3x3, GB/s written");
        for (int c = 0; c < cols; c++) {
            dp_isa_select(names[c], &err);
            printf(" %16.1f", time_im2col(32, 13, 13, B, reps));
        }
        printf("\n");
    }
    if (wanted("winograd filters 64x32 (conv2), us a call")) {
        printf("%-44s", "winograd filters 64x32 (conv2), us a call");
        for (int c = 0; c < cols; c++) {
            dp_isa_select(names[c], &err);
            printf(" %16.1f", time_wino_filters(strcmp(names[c], "scalar") ? 5 * reps : reps));
        }
        printf("\n");
    }
    if (wanted("transpose 32x169, 64x121 xB, GB/s read")) {
        printf("%-44s", "transpose 32x169, 64x121 xB, GB/s read");
        for (int c = 0; c < cols; c++) {
            dp_isa_select(names[c], &err);
            printf(" %16.1f", time_transpose(B, strcmp(names[c], "scalar") ? 5 * reps : reps));
        }
        printf("\n");
    }
    static const int pools[][3] = {{32, 26, 26}, {64, 11, 11}};
    for (int k = 0; k < 2; k++) {
        char label[2][64];
        int want[2];
        for (int dir = 0; dir < 2; dir++) {
            snprintf(label[dir], sizeof label[dir], "relu+maxpool %s %dx%dx%d, ns per plane",
                     dir ? "backward" : "forward ", pools[k][0], pools[k][1], pools[k][2]);
            want[dir] = wanted(label[dir]);
        }
        if (!want[0] && !want[1])
            continue;
        double ns[3][2]; /* per path: forward, backward, timed in one call */
        for (int c = 0; c < cols; c++) {
            dp_isa_select(names[c], &err);
            time_pool(pools[k][0], pools[k][1], pools[k][2], B, reps, ns[c]);
        }
        for (int dir = 0; dir < 2; dir++) {
            if (!want[dir])
                continue;
            printf("%-44s", label[dir]);
            for (int c = 0; c < cols; c++)
                printf(" %16.1f", ns[c][dir]);
            printf("\n");
        }
    }
    if (!rows_wanted) {
        fprintf(stderr, "bench_kernels: --only %s: no row's label contains it\n", only_rows);
        return 2;
    }
    for (int c = 0; c < cols; c++)
        if (!strcmp(names[c], "scalar"))
            printf("(scalar: no fraction of a peak; its multiply-add is a call to the C "
                   "library's fmaf, whose speed depends on the code around it)\n");
    return 0;
}
