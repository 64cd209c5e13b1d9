/* bench_layers: per-layer forward and backward time and GFLOP/s of a model at batch B,
 * beside the whole training step, as fractions of the kernels' path's measured FMA peak
 * (one core, times the threads). The products beside OpenBLAS: bench_kernels.
 *
 *   bench_layers [--model reference|nopool|SPEC] [--batch 100] [--threads T] [--reps 20]
 *                [--isa avx512|avx2|scalar] [--cpu-time] [--step-only]
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

#include "dptrain/net/isa.h"
#include "fma_peak.h"

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

/* Matrix work of one training image: 2 FLOP per weight per output pixel forward, backward
 * twice that (weights and input; the first layer needs only the weights). */
static double step_mflop_per_image(const dp_model *m)
{
    double total = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        const double f = L->param_count ? 2.0 * L->out_h * L->out_w *
                                              (double)m->params[L->param_first].count : 0.0;
        total += f * (i == 0 ? 2 : 3);
    }
    return total * 1e-6;
}

/* Forward and backward of each layer alone; returns the matrix FLOPs of one step. */
static double time_layers(dp_model *m, dp_workspace *ws, const uint8_t *labels, int B, int reps,
                          double peak)
{
    printf("%-10s %-14s %9s %9s %6s %9s %9s %6s\n", "layer", "shape", "fwd ms", "fwd GF/s",
           "peak", "bwd ms", "bwd GF/s", "peak");
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
        double gf = flops ? flops / f * 1e-9 : 0.0, gb = bflops ? bflops / b * 1e-9 : 0.0;
        printf("%-10s %-14s %9.3f %9.1f %5.0f%% %9.3f %9.1f %5.0f%%\n", L->name, shape, 1e3 * f,
               gf, 100 * gf / peak, 1e3 * b, gb, 100 * gb / peak);
    }
    return total_flops;
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
    dp_err err;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cpu-time") || !strcmp(argv[i], "--step-only"))
            i--;
        else if (!strcmp(argv[i], "--isa") && dp_isa_select(argv[i + 1], &err)) {
            fprintf(stderr, "bench_layers: %s\n", err.msg);
            return 1;
        } else if (!strcmp(argv[i], "--model"))
            spec = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
    }
    omp_set_num_threads(threads);
    dp_model m;
    dp_workspace ws;
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
    const double mflop = step_mflop_per_image(&m);
    printf("model %s, batch %d, %d thread%s: step %.2f ms, %.0f images/s, %.1f GFLOP/s (%.2f "
           "MFLOP per image) on %s\n", spec, B, threads, threads > 1 ? "s" : "", 1e3 * step,
           B / step, mflop * B / step * 1e-3, mflop, dp_isa_name());
    if (step_only)
        return 0;
    /* the peak of the path the kernels run on, one core, times the threads */
    const double peak = fma_peak_gflops(dp_isa_name()) * threads;
    printf("kernels: %s; FMA peak %.1f GFLOP/s (%d x one core's, 12 chains)\n",
           dp_isa_describe(), peak, threads);
    double total_flops = time_layers(&m, &ws, labels, B, reps, peak);
    printf("matrix work per image %.2f MFLOP; whole step %.1f GFLOP/s, %.0f%% of the peak\n",
           total_flops / B * 1e-6, total_flops / step * 1e-9,
           100 * total_flops / step * 1e-9 / peak);
    return 0;
}
