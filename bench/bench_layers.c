/* bench_layers: per-layer forward and backward time and GFLOP/s of a model at batch B,
 * beside the whole training step, as fractions of the kernels' path's measured FMA peak
 * (one core, times the threads). The products beside OpenBLAS: bench_kernels.
 *
 *   bench_layers [--model reference|nopool|SPEC] [--batch 100] [--threads T] [--reps 20]
 *                [--isa avx512|avx2|scalar] [--precision fp32|bf16] [--cpu-time] [--step-only]
 *                [--files 8] [--group-size 8] [--conv-algorithm direct|winograd]
 *                [--layers-only] [--balance on|off]
 *
 * The whole step is the trainer's on one rank: forward over the batch, backward group by
 * group (the batch cut into --files shares, as a batch drawn from that many training
 * files, each cut into groups of at most --group-size: dptrain's defaults on MNIST's 8
 * shards give 16 groups), each group's gradients into the exact fixed-point sum
 * (dist/gradsync.c), and the SGD update (momentum 0.9, learning rate 0) made as the
 * trainer makes it, piece by piece as the sums are taken. Without --step-only it also
 * times the same step with one backward over the whole batch and no exact sum: what the
 * exact sum costs. --layers-only times the layers alone and not the step (for
 * bench/compare_layers.sh, beside PyTorch's layers: bench/torch_layers.py).
 * --conv-algorithm is direct unless given, unlike dptrain's default (winograd): the shares
 * of the FMA peak it prints are then the work the kernels really do. --balance: whether
 * the threads' shares follow their speeds (threads.h); on with 2 or more threads unless
 * off, as dptrain's --balance auto where the threads fit the cores.
 *
 * FLOPs count 2 per multiply-add of the layer's matrix work: conv forward
 * 2*B*OC*OH*OW*C*K*K, backward twice that (weights and input; the first layer needs only
 * the weights; under --conv-algorithm winograd still the direct convolution's count, so
 * that its GFLOP/s are effective ones and compare as speeds), fc likewise with B*O*I.
 * Times are medians over reps. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dptrain/dist/gradsync.h"
#include "dptrain/driver/model_views.h"
#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"
#include "dptrain/net/threads.h"
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

/* The trainer's step on one rank (the header says what it does). */
typedef struct {
    dp_model *m;
    dp_workspace *ws;
    const uint8_t *labels;
    float *velocity;     /* plain_step's */
    dp_gradsync *sync;   /* the trainer's step's, its update by pieces (as driver/setup.c) */
    dp_optimizer *opt;
    const int *bounds; /* the step's groups: [bounds[g], bounds[g + 1]) */
    int ngroups, B;
} step_ctx;

static void trainer_step(const step_ctx *c)
{
    dp_pass pass = {.labels = c->labels, .B = c->B, .train = 1, .grad_scale = 1.0 / c->B,
                    .done = gradsync_on_final, .partial = gradsync_on_partial,
                    .move = gradsync_on_move, .fixed_open = gradsync_on_fixed_open,
                    .fixed_close = gradsync_on_fixed_close, .done_ctx = c->sync};
    double waited;
    do { /* again: a partial over its bound (the first step, before the bounds are known) */
        gradsync_begin(c->sync, c->ngroups);
        model_forward(c->m, c->ws, &pass, NULL);
        gradsync_pass(c->sync, 1);
        model_backward_groups(c->m, c->ws, &pass, c->bounds, c->ngroups);
    } while (gradsync_finish(c->sync, &waited));
    if (!gradsync_taken(c->sync)) /* a NaN: as the trainer would (it stops instead) */
        optimizer_step(c->opt, c->m->weights, c->m->grads, 0.0);
}


/* The same step with one backward over the whole batch, no groups, no exact sum. */
static void plain_step(const step_ctx *c)
{
    memset(c->m->grads, 0, c->m->size * sizeof(float));
    dp_pass pass = {.labels = c->labels, .B = c->B, .train = 1, .grad_scale = 1.0 / c->B};
    model_forward_backward(c->m, c->ws, &pass, NULL);
    sgd_update(c->m->weights, c->m->grads, c->velocity, c->m->size, 0.0f, 0.9f, 0.0f, 0);
}

/* The batch cut as the trainer cuts it: `files` shares, each in groups of at most gs. */
static int cut_groups(int B, int files, int gs, int *bounds)
{
    int n = 0;
    bounds[0] = 0;
    for (int f = 0; f < files; f++)
        for (int share = (int)((long)B * (f + 1) / files - (long)B * f / files); share > 0;
             share -= gs, n++)
            bounds[n + 1] = bounds[n] + (share < gs ? share : gs);
    return n;
}

static int make_sync(dp_model *m, dp_gradsync **out, dp_err *err)
{
    int nseg;
    dp_grad_segment *seg = model_grad_segments(m, &nseg, err);
    dp_grad_tensor *t = calloc((size_t)m->nparams + 1, sizeof *t);
    int rc = seg && t ? 0 : -1;
    for (int i = 0; rc == 0 && i < m->nparams; i++)
        t[i] = (dp_grad_tensor){m->params[i].offset, m->params[i].count};
    if (rc == 0)
        rc = gradsync_create(out, m->grads, m->size, seg, nseg, t, m->nparams, 256 * 1024, 1, 1,
                             err);
    free(seg);
    free(t);
    return rc;
}

/* Median seconds of reps calls of fn, after 3 to warm up. */
static double time_step(void (*fn)(const step_ctx *), const step_ctx *c, int reps)
{
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int k = -3; k < reps; k++) {
        double t0 = now();
        fn(c);
        if (k >= 0)
            t[k] = now() - t0;
    }
    double step = median(t, reps);
    free(t);
    return step;
}

int main(int argc, char **argv)
{
    const char *spec = "reference";
    int B = 100, threads = 1, reps = 20, files = 8, gs = 8;
    int step_only = 0, layers_only = 0, balance = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu-time"))
            bench_clock = CLOCK_PROCESS_CPUTIME_ID;
        if (!strcmp(argv[i], "--step-only"))
            step_only = 1;
        if (!strcmp(argv[i], "--layers-only"))
            layers_only = 1;
    }
    dp_err err;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cpu-time") || !strcmp(argv[i], "--step-only") ||
            !strcmp(argv[i], "--layers-only"))
            i--;
        else if (!strcmp(argv[i], "--isa") && dp_isa_select(argv[i + 1], &err)) {
            fprintf(stderr, "bench_layers: %s\n", err.msg);
            return 1;
        } else if (!strcmp(argv[i], "--precision") && dp_precision_select(argv[i + 1], &err)) {
            fprintf(stderr, "bench_layers: %s\n", err.msg);
            return 1;
        } else if (!strcmp(argv[i], "--conv-algorithm") &&
                   dp_conv_algorithm_select(argv[i + 1], &err)) {
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
        else if (!strcmp(argv[i], "--files"))
            files = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--group-size"))
            gs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--balance")) {
            balance = !strcmp(argv[i + 1], "on") ? 1 : !strcmp(argv[i + 1], "off") ? 0 : -1;
            if (balance < 0) {
                fprintf(stderr, "bench_layers: --balance: expected on or off, got '%s'\n",
                        argv[i + 1]);
                return 2;
            }
        }
    }
    if (step_only && layers_only) {
        fprintf(stderr, "bench_layers: --step-only and --layers-only exclude each other\n");
        return 2;
    }
    if (B < 1 || threads < 1 || reps < 1 || files < 1 || gs < 1) {
        fprintf(stderr, "bench_layers: --batch, --threads, --reps, --files and --group-size "
                        "must be at least 1\n");
        return 2;
    }
    omp_set_num_threads(threads);
    dp_threads_balance(balance && threads > 1);
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
    int *group = malloc(sizeof(int) * (size_t)(B + files + 1));
    step_ctx c = {&m, &ws, labels, velocity, NULL, NULL, group, cut_groups(B, files, gs, group),
                  B};
    dp_param_view *views = model_param_views(&m, &err);
    const dp_optim_config oc = {.kind = "sgd", .momentum = 0.9};
    if (!views || optimizer_create(&c.opt, &oc, views, m.nparams, &err) ||
        make_sync(&m, &c.sync, &err)) {
        fprintf(stderr, "bench_layers: %s\n", err.msg);
        return 1;
    }
    dp_optim_pieces upd = {c.opt, m.weights, 0.0}; /* learning rate 0 */
    gradsync_take_with(c.sync, optimizer_take_piece, &upd);

    /* the peak of the path the kernels run on, one core, times the threads */
    const double peak = fma_peak_gflops(dp_isa_name()) * threads;
    if (layers_only) {
        printf("model %s, batch %d, %d thread%s: layers alone on %s, %s, %s convolutions\n",
               spec, B, threads, threads > 1 ? "s" : "", dp_isa_name(), dp_precision_name(),
               dp_conv_algorithm_name());
        printf("kernels: %s; FMA peak %.1f GFLOP/s (%d x one core's, 12 chains)\n",
               dp_isa_describe(), peak, threads);
        time_layers(&m, &ws, labels, B, reps, peak);
        return 0;
    }
    /* whole step */
    double step = time_step(trainer_step, &c, reps);
    const double mflop = step_mflop_per_image(&m);
    printf("model %s, batch %d, %d thread%s: step %.2f ms, %.0f images/s, %.1f GFLOP/s (%.2f "
           "MFLOP per image) on %s, %s, %s convolutions%s\n", spec, B, threads,
           threads > 1 ? "s" : "", 1e3 * step, B / step, mflop * B / step * 1e-3, mflop,
           dp_isa_name(), dp_precision_name(), dp_conv_algorithm_name(),
           threads > 1 ? (balance ? ", threads balanced" : ", threads even") : "");
    if (step_only)
        return 0;
    /* alternated, so that both see the same machine */
    double plain = time_step(plain_step, &c, reps), again = time_step(trainer_step, &c, reps);
    step = (step + again) / 2;
    printf("the step with one backward over the batch and no exact sum: %.2f ms; the %d "
           "groups and the exact sum cost %.1f%% of the trainer's step (%.2f ms)\n",
           1e3 * plain, c.ngroups, 100 * (1 - plain / step), 1e3 * step);
    printf("kernels: %s; FMA peak %.1f GFLOP/s (%d x one core's, 12 chains)\n",
           dp_isa_describe(), peak, threads);
    if (strcmp(dp_precision_name(), "fp32") != 0)
        printf("precision: %s; bf16 dot-product peak %.1f GFLOP/s (VDPBF16PS, %d x one "
               "core's); the peak columns below are fractions of the FMA peak\n",
               dp_precision_describe(), fma_peak_gflops("avx512bf16") * threads, threads);
    double total_flops = time_layers(&m, &ws, labels, B, reps, peak);
    printf("matrix work per image %.2f MFLOP; whole step %.1f GFLOP/s, %.0f%% of the peak\n",
           total_flops / B * 1e-6, total_flops / step * 1e-9,
           100 * total_flops / step * 1e-9 / peak);
    return 0;
}
