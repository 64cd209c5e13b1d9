/* bench_layers: per-layer forward and backward time and GFLOP/s of a model at batch B,
 * beside the whole training step, and (when built with OpenBLAS) SGEMM on the same
 * shapes as the convolutions' matrix products.
 *
 *   bench_layers [--model reference|nopool|SPEC] [--batch 100] [--threads T] [--reps 20]
 *                [--cpu-time] [--step-only]
 *
 * FLOPs count 2 per multiply-add of the layer's matrix work: conv forward
 * 2*B*OC*OH*OW*C*K*K, backward twice that (weights and input; the first layer needs only
 * the weights), fc likewise with B*O*I. Times are medians over reps. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"
#include "dptrain/util/rng.h"

#include "dptrain/net/kernels.h"

#ifdef DPTRAIN_BENCH_OPENBLAS
#include <cblas.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* Wall clock, or with --cpu-time the process's CPU time: on a shared machine a
 * one-thread run then measures its own work, not its waiting. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Forward and backward of each layer alone; returns the matrix FLOPs of one step. */
static double time_layers(dp_model *m, dp_workspace *ws, const uint8_t *labels, int B, int reps)
{
    printf("%-10s %-14s %10s %10s %10s %10s\n", "layer", "shape", "fwd ms", "fwd GF/s", "bwd ms",
           "bwd GF/s");
    /* per layer: forward and backward of each layer alone (unfused), on the activations of
     * a real pass, through its kind's table entry */
    double total_flops = 0;
    dp_pass pass = {.labels = labels, .B = B, .train = 1};
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        dp_layer_io io;
        layer_io_init(&io, m, ws, i, &pass);
        io.absorbed = 0; /* this layer alone */
        io.in = i ? ws->act[i - 1] : ws->input;
        io.din = i ? ws->dact[i - 1] : NULL;
        double tf[64], tb[64];
        /* matrix work of a layer with weights: 2 FLOP per weight per output pixel */
        double flops = L->param_count ? 2.0 * B * L->out_h * L->out_w *
                                            (double)m->params[L->param_first].count : 0.0;
        int R = reps < 64 ? reps : 64;
        for (int k = -2; k < R; k++) {
            double t0 = now();
            L->kind->forward(&io);
            double t1 = now();
            L->kind->backward(&io);
            double t2 = now();
            if (k >= 0) {
                tf[k] = t1 - t0;
                tb[k] = t2 - t1;
            }
        }
        double f = median(tf, R), b = median(tb, R);
        double bflops = flops * (i == 0 ? 1 : 2);
        total_flops += flops + bflops;
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        printf("%-10s %-14s %10.3f %10.1f %10.3f %10.1f\n", L->name, shape, 1e3 * f,
               flops ? flops / f * 1e-9 : 0.0, 1e3 * b, bflops ? bflops / b * 1e-9 : 0.0);
    }
    return total_flops;
}

/* The FMA peak of one core: 12 independent chains of 8-wide fused multiply-adds, enough
 * to fill both FMA pipes (2 pipes x 8 floats x 2 FLOP = 32 FLOP per cycle). */
static void fma_peak(void)
{
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[12], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm256_set1_ps((float)i);
    const long n = 20000000;
    double t0 = now();
    for (long k = 0; k < n; k++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    double t = now() - t0;
    float sink[8], total = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(sink, acc[i]);
        total += sink[0];
    }
    double peak = n * 12 * 16.0 / t * 1e-9;
    double mhz = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
            break;
    if (f)
        fclose(f);
    printf("FMA peak, one core: %.1f GFLOP/s measured (= 32 FLOP/cycle at %.2f GHz; "
           "/proc/cpuinfo says %.0f MHz)%s\n", peak, peak / 32, mhz, total > 0 ? "" : " ");
#endif
}

/* The convolutions' matrix products, ours beside OpenBLAS on the same shapes: per
 * sample as dptrain does them (forward W x col, weight gradient dY x colT, input
 * gradient dY^T x W), and forward as one product over the whole batch. */
static void time_conv_gemms(const dp_layer *L, size_t weights, int B, int reps)
{
    int M = L->out_c, K = (int)(weights / (size_t)M), P = L->out_h * L->out_w;
    float *Wt = calloc((size_t)M * K, 4), *col = calloc((size_t)B * K * P, 4),
          *Y = calloc((size_t)B * M * P, 4), *dW = calloc((size_t)M * K, 4);
    for (size_t q = 0; q < (size_t)B * K * P; q++)
        col[q] = (float)(q % 7) * 0.1f;
    double t_ours[3][64], t_blas[3][64];
    int R = reps < 64 ? reps : 64;
    for (int k = -2; k < R; k++) {
        double t0 = now();
        for (int n = 0; n < B; n++)
            gemm_nn(M, P, K, Wt, K, col + (size_t)n * K * P, P, Y + (size_t)n * M * P, P);
        double t1 = now();
        for (int n = 0; n < B; n++)
            gemm_nn_acc(M, K, P, Y + (size_t)n * M * P, P, col + (size_t)n * K * P, K, dW, K);
        double t2 = now();
        for (int n = 0; n < B; n++)
            gemm_tn(P, K, M, Y + (size_t)n * M * P, P, Wt, K, col + (size_t)n * K * P, K);
        double t3 = now();
        if (k >= 0) {
            t_ours[0][k] = t1 - t0;
            t_ours[1][k] = t2 - t1;
            t_ours[2][k] = t3 - t2;
        }
#ifdef DPTRAIN_BENCH_OPENBLAS
        t0 = now();
        for (int n = 0; n < B; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, P, K, 1.0f, Wt, K,
                        col + (size_t)n * K * P, P, 0.0f, Y + (size_t)n * M * P, P);
        t1 = now();
        for (int n = 0; n < B; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, P, 1.0f,
                        Y + (size_t)n * M * P, P, col + (size_t)n * K * P, K, 1.0f, dW, K);
        t2 = now();
        for (int n = 0; n < B; n++)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, K, M, 1.0f,
                        Y + (size_t)n * M * P, P, Wt, K, 0.0f, col + (size_t)n * K * P, K);
        t3 = now();
        if (k >= 0) {
            t_blas[0][k] = t1 - t0;
            t_blas[1][k] = t2 - t1;
            t_blas[2][k] = t3 - t2;
        }
#endif
    }
    static const char *what[3] = {"forward W.col", "weights dY.colT", "input dY^T.W"};
    double flops = 2.0 * B * M * K * P;
    for (int q = 0; q < 3; q++) {
        double o = median(t_ours[q], R);
        printf("%s %-16s %dx%dx%d x%d: dptrain %.1f GF/s", L->name, what[q],
               q == 2 ? P : M, q == 0 ? P : K, q == 0 ? K : q == 1 ? P : M, B, flops / o * 1e-9);
#ifdef DPTRAIN_BENCH_OPENBLAS
        double bl = median(t_blas[q], R);
        printf(", openblas %.1f GF/s, ratio %.2f", flops / bl * 1e-9, bl / o);
#endif
        printf("\n");
    }
#ifdef DPTRAIN_BENCH_OPENBLAS
    double ts[64];
    for (int k = -2; k < R; k++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, P * B, K, 1.0f, Wt, K, col,
                    P * B, 0.0f, Y, P * B);
        if (k >= 0)
            ts[k] = now() - t0;
    }
    printf("%s forward as one product %dx%dx%d: openblas %.1f GF/s\n", L->name, M, P * B, K,
           flops / median(ts, R) * 1e-9);
#endif
    free(Wt), free(col), free(Y), free(dW);
}

int main(int argc, char **argv)
{
    const char *spec = "reference";
    int B = 100, threads = 1, reps = 20;
    int step_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu-time"))
            bench_clock = CLOCK_PROCESS_CPUTIME_ID;
        if (!strcmp(argv[i], "--step-only"))
            step_only = 1;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cpu-time") || !strcmp(argv[i], "--step-only"))
            i--;
        else if (!strcmp(argv[i], "--model"))
            spec = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
    }
    omp_set_num_threads(threads);
#ifdef DPTRAIN_BENCH_OPENBLAS
    openblas_set_num_threads(threads);
#endif
    dp_model m;
    dp_workspace ws;
    dp_err err;
    if (model_build(&m, spec, 1, 28, 28, 10, &err) || workspace_create(&ws, &m, B, &err)) {
        fprintf(stderr, "bench_layers: %s\n", err.msg);
        return 1;
    }
    model_init(&m, 1);
    dp_rng r;
    rng_seed(&r, 1, 2, 3);
    for (size_t i = 0; i < (size_t)B * 784; i++)
        ws.input[i] = rng_uniform(&r);
    uint8_t *labels = malloc((size_t)B);
    for (int n = 0; n < B; n++)
        labels[n] = (uint8_t)rng_below(&r, 10);
    float *velocity = calloc(m.size, sizeof(float));

    /* whole step */
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int k = -3; k < reps; k++) {
        double t0 = now();
        memset(m.grads, 0, m.size * sizeof(float));
        dp_pass step_pass = {.labels = labels, .B = B, .train = 1};
        model_forward_backward(&m, &ws, &step_pass, NULL);
        sgd_update(m.weights, m.grads, velocity, m.size, 0.0f, 0.9f, 0.0f, 0);
        if (k >= 0)
            t[k] = now() - t0;
    }
    double step = median(t, reps);
    printf("model %s, batch %d, %d thread%s: step %.2f ms, %.0f images/s\n", spec, B, threads,
           threads > 1 ? "s" : "", 1e3 * step, B / step);
    if (step_only)
        return 0;
    double total_flops = time_layers(&m, &ws, labels, B, reps);
    printf("matrix work per image %.2f MFLOP; whole step %.1f GFLOP/s\n", total_flops / B * 1e-6,
           total_flops / step * 1e-9);
    fma_peak();
    for (int i = 0; i < m.nlayers; i++)
        if (strcmp(m.layers[i].kind->name, "conv") == 0)
            time_conv_gemms(&m.layers[i], m.params[m.layers[i].param_first].count, B, reps);
    return 0;
}
