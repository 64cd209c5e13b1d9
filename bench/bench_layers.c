/* bench_layers: per-layer forward and backward time and GFLOP/s of a model at batch B,
 * beside the whole training step, as fractions of the kernels' path's measured FMA peak
 * (one core, times the threads), and (when built with OpenBLAS) SGEMM on the same shapes
 * as the layers' matrix products.
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

#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"
#include "dptrain/util/rng.h"

#include "dptrain/net/isa.h"
#include "dptrain/net/kernels.h"
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

/* Matrix work of one training image: forward, and backward twice that (weights and input;
 * the first layer needs only the weights). */
static double step_mflop_per_image(const dp_model *m)
{
    double total = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        double f = 0;
        if (L->kind == LAYER_CONV)
            f = 2.0 * L->out_c * L->out_h * L->out_w * L->in_c * L->kernel * L->kernel;
        else if (L->kind == LAYER_FC)
            f = 2.0 * L->out_c * L->in_size;
        total += f * (i == 0 ? 2 : 3);
    }
    return total * 1e-6;
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
        }
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
    dp_sgd opt;
    sgd_create(&opt, m.size, 0.9f, 0, 0, &err);

    /* whole step */
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int k = -3; k < reps; k++) {
        double t0 = now();
        memset(m.grads, 0, m.size * sizeof(float));
        model_forward_backward(&m, &ws, labels, B, 1, NULL);
        sgd_step(&opt, m.weights, m.grads, 0.0f);
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
    printf("kernels: %s; FMA peak %.1f GFLOP/s (%d x one core's, 12 chains)\n", dp_isa_describe(),
           peak, threads);
    printf("%-10s %-14s %9s %9s %6s %9s %9s %6s\n", "layer", "shape", "fwd ms", "fwd GF/s",
           "peak", "bwd ms", "bwd GF/s", "peak");

    /* per layer: forward and backward of each layer alone, on the activations of a real pass */
    double total_flops = 0;
    for (int i = 0; i < m.nlayers; i++) {
        const dp_layer *L = &m.layers[i];
        const float *in = i ? ws.act[i - 1] : ws.input;
        float *W = m.weights, *G = m.grads;
        double tf[64], tb[64], flops = 0;
        int R = reps < 64 ? reps : 64;
        for (int k = -2; k < R; k++) {
            double t0 = now(), t1 = 0, t2 = 0;
            switch (L->kind) {
            case LAYER_CONV: {
                dp_conv_shape s = {B, L->in_c, L->in_h, L->in_w, L->out_c, L->kernel,
                                   L->kernel, L->stride, L->pad, L->out_h, L->out_w};
                conv2d_forward(ws.act[i], ws.col[i], in, W + m.params[L->weight].offset,
                               W + m.params[L->bias].offset, &s);
                t1 = now();
                conv2d_backward(i ? ws.dact[i - 1] : NULL, G + m.params[L->weight].offset,
                                G + m.params[L->bias].offset, ws.col[i], ws.dact[i],
                                W + m.params[L->weight].offset, ws.scratch, &s);
                t2 = now();
                flops = 2.0 * B * L->out_c * L->out_h * L->out_w * L->in_c * L->kernel * L->kernel;
                break;
            }
            case LAYER_MAXPOOL:
                maxpool_forward(ws.act[i], ws.argmax[i], in, B, L->in_c, L->in_h, L->in_w,
                                L->kernel, L->stride, L->out_h, L->out_w);
                t1 = now();
                maxpool_backward(ws.dact[i - 1], ws.dact[i], ws.argmax[i], B, L->in_c, L->in_h,
                                 L->in_w, L->out_h, L->out_w);
                t2 = now();
                break;
            case LAYER_RELU:
                relu_forward(ws.act[i], in, (size_t)B * L->out_size);
                t1 = now();
                relu_backward(ws.dact[i - 1], ws.dact[i], ws.act[i], (size_t)B * L->out_size);
                t2 = now();
                break;
            case LAYER_FC:
                linear_forward(ws.act[i], in, W + m.params[L->weight].offset,
                               W + m.params[L->bias].offset, B, (int)L->in_size, L->out_c,
                               ws.lanes);
                t1 = now();
                linear_backward(ws.dact[i - 1], G + m.params[L->weight].offset,
                                G + m.params[L->bias].offset, ws.dact[i], in,
                                W + m.params[L->weight].offset, B, (int)L->in_size, L->out_c);
                t2 = now();
                flops = 2.0 * B * L->out_c * L->in_size;
                break;
            }
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
        printf("%-10s %-14s %9.3f %9.1f %5.0f%% %9.3f %9.1f %5.0f%%\n", L->name, shape, 1e3 * f, gf,
               100 * gf / peak, 1e3 * b, gb, 100 * gb / peak);
    }
    printf("matrix work per image %.2f MFLOP; whole step %.1f GFLOP/s, %.0f%% of the peak\n",
           total_flops / B * 1e-6, total_flops / step * 1e-9, 100 * total_flops / step * 1e-9 / peak);

    return 0;
}
