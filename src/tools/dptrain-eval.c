/* dptrain-eval: load weights (a weights file, a checkpoint, or a PyTorch export) and
 * report loss, accuracy, per-class accuracy and the confusion matrix on a data set,
 * on any number of ranks; optionally write per-sample predictions as CSV and the
 * confusion matrix as a picture (eval_plot.c).
 *
 *   mpirun -n 4 dptrain-eval --weights model.h5 [--model M] [--data PATH]
 *                            [--predictions FILE] [--plot FILE.png] [--normalize M,S]
 *                            [--classes K] [--isa NAME] [--precision P]
 *                            [--conv-algorithm A] [--threads N]
 *
 * The model, the input normalisation, the precision and the convolutions' algorithm are by
 * default those the weights file records (weights.h), so that a model is evaluated as it
 * was trained and the figures are dptrain's own, bit for bit.
 *
 * Each rank evaluates a contiguous slice of the data (the same split as dptrain's test
 * evaluation); the sums and the confusion matrix are reduced, and the prediction lines
 * are appended rank after rank, so the file is in data order. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data/batch.h"
#include "dptrain/data/data.h"
#include "dptrain/dist/comm.h"
#include "dptrain/driver/datasets.h"
#include "dptrain/driver/threads.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/model.h"
#include "dptrain/persist/weights.h"
#include "eval_plot.h"

static const char usage_text[] =
    "usage: mpirun -n RANKS dptrain-eval --weights FILE [options]\n"
    "Evaluate saved weights on a data set: loss, accuracy, per-class accuracy, confusion\n"
    "matrix; any number of ranks (each evaluates a contiguous slice).\n"
    "  --weights FILE      weights: --save output, a checkpoint (ckpt-*.h5), or a file\n"
    "                      written from PyTorch (README snippet)\n"
    "  --model M           the model the weights belong to, as dptrain's --model\n"
    "                      (default: the one the weights file records, else reference)\n"
    "  --data PATH         data: directory of shards, one .h5 or a comma list\n"
    "                      (default data/mnist/test.h5)\n"
    "  --predictions FILE  per-sample CSV: index,label,predicted,prob0,...,probK-1\n"
    "  --plot FILE.png     the confusion matrix as a heat map (rows normalised, counts in\n"
    "                      the cells) and each class's accuracy as bars (gnuplot, or\n"
    "                      the one DPTRAIN_GNUPLOT names)\n"
    "  --normalize M,S     feed (pixel/255 - M)/S, or 'off': pixel/255 (default: as the\n"
    "                      weights file records, else off)\n"
    "  --classes K         number of classes (default: the data's num_classes attribute,\n"
    "                      else the largest label + 1)\n"
    "  --batch N           samples per forward pass (default 100)\n"
    "  --threads N         OpenMP threads per rank (default: OMP_NUM_THREADS, else the\n"
    "                      rank's share of the node's cores, as dptrain); any number\n"
    "                      gives the same figures\n"
    "  --isa NAME          kernels' instruction set, as dptrain's --isa: avx512, avx2,\n"
    "                      scalar or auto (default: DPTRAIN_ISA if set, else auto); every\n"
    "                      path gives the same bits\n"
    "  --precision P       fp32 or bf16, as dptrain's --precision (default: the one the\n"
    "                      weights file records, else fp32; a recorded bf16 this CPU\n"
    "                      cannot run falls back to fp32, with a note)\n"
    "  --conv-algorithm A  direct or winograd, as dptrain's --conv-algorithm (default: the\n"
    "                      one the weights file records, else direct)\n"
    "Exit status: 0 done, 1 runtime error, 2 bad options.\n";

typedef struct {
    const char *weights, *model, *data, *predictions, *plot;
    const char *isa; /* NULL: DPTRAIN_ISA, else auto (dp_isa_select) */
    const char *precision, *conv; /* NULL: as the weights file records */
    int normalize, classes, batch; /* normalize: -1 as the weights file records, 0, 1 */
    int threads;                   /* 0: threads_default */
    float mean, std;
} eval_options;

static int parse(int argc, char **argv, eval_options *o, dp_err *err)
{
    static const struct option opts[] = {
        {"weights", required_argument, 0, 'w'}, {"model", required_argument, 0, 'm'},
        {"data", required_argument, 0, 'd'},    {"predictions", required_argument, 0, 'p'},
        {"normalize", required_argument, 0, 'n'}, {"classes", required_argument, 0, 'k'},
        {"batch", required_argument, 0, 'b'},   {"plot", required_argument, 0, 'P'},
        {"isa", required_argument, 0, 'i'},     {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'r'}, {"conv-algorithm", required_argument, 0, 'a'},
        {"threads", required_argument, 0, 't'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->data = "data/mnist/test.h5";
    o->batch = 100;
    o->std = 1.0f;
    o->normalize = -1;
    optind = 0;
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'w': o->weights = optarg; break;
        case 'm': o->model = optarg; break;
        case 'd': o->data = optarg; break;
        case 'p': o->predictions = optarg; break;
        case 'P': o->plot = optarg; break;
        case 'i': o->isa = optarg; break;
        case 'r':
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16"))
                return dp_fail(err, "--precision: expected fp32 or bf16, got '%s'", optarg);
            o->precision = optarg;
            break;
        case 'a':
            if (strcmp(optarg, "direct") && strcmp(optarg, "winograd"))
                return dp_fail(err, "--conv-algorithm: expected direct or winograd, got '%s'",
                               optarg);
            o->conv = optarg;
            break;
        case 'n': {
            if (!strcmp(optarg, "off")) {
                o->normalize = 0;
                break;
            }
            double m = strtod(optarg, &end), s = 0;
            if (end == optarg || *end != ',' || (s = strtod(end + 1, &end)) <= 0 || *end ||
                !isfinite(m) || !isfinite(s))
                return dp_fail(err, "--normalize: expected MEAN,STD with STD > 0, or off, got "
                                    "'%s'", optarg);
            o->normalize = 1;
            o->mean = (float)m;
            o->std = (float)s;
            break;
        }
        case 'k':
            o->classes = (int)strtol(optarg, &end, 10);
            if (*end || o->classes < 1 || o->classes > 256)
                return dp_fail(err, "--classes: expected 1..256, got '%s'", optarg);
            break;
        case 'b':
            o->batch = (int)strtol(optarg, &end, 10);
            if (*end || o->batch < 1 || o->batch > 1 << 20)
                return dp_fail(err, "--batch: expected a positive integer, got '%s'", optarg);
            break;
        case 't':
            o->threads = (int)strtol(optarg, &end, 10);
            if (*end || o->threads < 1 || o->threads > 1024)
                return dp_fail(err, "--threads: expected 1..1024, got '%s'", optarg);
            break;
        case 'h': return 1;
        case ':': return dp_fail(err, "%s: needs a value", argv[optind - 1]);
        default: return dp_fail(err, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return dp_fail(err, "unexpected argument '%s'", argv[optind]);
    if (!o->weights)
        return dp_fail(err, "--weights FILE is required");
    return 0;
}

/* What one evaluation holds. */
typedef struct {
    dp_filelist fl;
    dp_dataset ds;
    dp_model m;
    dp_workspace ws;
    uint8_t *labels;
    int K;
    double *cm; /* confusion matrix [true][predicted], then the loss sum */
    char *lines; /* this rank's prediction lines */
    size_t lines_len;
    dp_weights_info info;   /* what the weights file records */
    const char *model;      /* the --model in use */
    const char *from[4];    /* where the model, precision, algorithm, normalisation came from */
    dp_input_norm norm;     /* the normalisation in use */
    int threads;            /* OpenMP threads of this rank */
    char note[256];         /* why the precision is not the recorded one, or "" */
} eval_state;

/* Where a setting came from: its option, else the weights file, else the default. */
static const char *setting(const char *option_value, const char *recorded, const char *dflt,
                           const char *option, const char **from)
{
    if (option_value) {
        *from = option;
        return option_value;
    }
    *from = recorded[0] ? "as the weights file records" : "the default";
    return recorded[0] ? recorded : dflt;
}

/* The precision and the convolutions' algorithm: the options', else the weights file's,
 * else fp32 and direct. A recorded bf16 that some rank's CPU cannot run falls back to
 * fp32 on every rank, with a note; a --precision bf16 it cannot run stops them all. */
static int choose_arithmetic(const dp_comm *comm, const eval_options *o, eval_state *e,
                             dp_err *err)
{
    const char *prec = setting(o->precision, e->info.precision, "fp32", "--precision",
                               &e->from[1]);
    const char *conv = setting(o->conv, e->info.conv_algorithm, "direct", "--conv-algorithm",
                               &e->from[2]);
    const char *weights = o->weights;
    if (strcmp(prec, "fp32") && strcmp(prec, "bf16"))
        return dp_fail(err, "--weights %s: records the precision '%s', which this program "
                            "does not know (choose one with --precision)", weights, prec);
    if (strcmp(conv, "direct") && strcmp(conv, "winograd"))
        return dp_fail(err, "--weights %s: records the convolutions' algorithm '%s', which "
                            "this program does not know (choose one with --conv-algorithm)",
                       weights, conv);
    dp_err why = {{0}};
    int ok = dp_precision_select(prec, o->precision ? err : &why) == 0;
    if (!o->precision && comm_allreduce_min_i64(ok) == 0) {
        snprintf(e->note, sizeof e->note, "the weights were trained in %s, which %s cannot "
                 "run here; evaluated in fp32, so the figures may differ from dptrain's in "
                 "the last digits", prec, comm->size > 1 ? "some rank's CPU" : "this CPU");
        e->from[1] = "fallback";
        ok = dp_precision_select("fp32", err) == 0;
    }
    if (comm_agree(comm, ok ? 0 : -1, err))
        return -1;
    return dp_conv_algorithm_select(conv, err);
}

/* Kernels, data, classes, model with its weights, buffers: agreed across ranks. The
 * kernels are chosen as dptrain chooses them (--isa, else DPTRAIN_ISA, else CPUID), each
 * rank for its own CPU; a path some rank's CPU lacks stops them all. */
static int eval_setup(const dp_comm *comm, const eval_options *o, eval_state *e, dp_err *err)
{
    if (comm_agree(comm, dp_isa_select(o->isa, err), err) ||
        comm_agree(comm, weights_info(o->weights, &e->info, err) ? dp_prefix(err, "--weights")
                                                                 : 0, err) ||
        comm_agree(comm, choose_arithmetic(comm, o, e, err), err))
        return -1;
    e->model = setting(o->model, e->info.model, "reference", "--model", &e->from[0]);
    e->threads = o->threads ? o->threads : threads_default(comm);
    omp_set_num_threads(e->threads); /* before the workspace, sized per thread */
    e->norm = (dp_input_norm){o->normalize > 0, o->mean, o->std};
    e->from[3] = "--normalize";
    if (o->normalize < 0) {
        e->norm = (dp_input_norm){e->info.normalize > 0, (float)e->info.mean,
                                  (float)e->info.std};
        e->from[3] = e->info.normalize < 0 ? "the default" : "as the weights file records";
    }
    if (datasets_load_share(comm, o->data, "--data", 0, &e->fl, &e->ds, err))
        return -1;
    int top = datasets_num_classes(comm, &e->fl, &e->ds);
    e->K = o->classes ? o->classes : top;
    if (datasets_check_labels(comm, &e->fl, &e->ds, e->K, "--data",
                              o->classes ? "--classes" : "from the data", err))
        return -1;
    int rc = model_build(&e->m, e->model, e->fl.c, e->fl.h, e->fl.w, e->K, err);
    if (rc == 0 && (rc = weights_load(&e->m, o->weights, err)) != 0)
        dp_prefix(err, "--weights");
    if (rc == 0)
        rc = workspace_create(&e->ws, &e->m, o->batch, err);
    if (rc == 0 && o->plot && comm->rank == 0) /* before the work, not after it */
        rc = eval_plot_check(o->plot, err);
    if (rc == 0) {
        e->cm = dp_calloc((size_t)e->K * e->K + 1, sizeof(double), "confusion matrix", err);
        e->labels = dp_calloc((size_t)o->batch, 1, "labels", err);
        rc = e->cm && e->labels ? 0 : -1;
    }
    return comm_agree(comm, rc, err);
}

/* One prediction line: index,label,predicted,prob0,...,probK-1 (softmax in double). */
static void write_prediction(FILE *pred, int64_t index, int label, int best, const float *z, int K)
{
    double sum = 0;
    for (int k = 0; k < K; k++)
        sum += exp((double)z[k] - z[best]);
    fprintf(pred, "%lld,%d,%d", (long long)index, label, best);
    for (int k = 0; k < K; k++)
        fprintf(pred, ",%.6g", exp((double)z[k] - z[best]) / sum);
    fputc('\n', pred);
}

/* This rank's slice, batch by batch, into the confusion matrix and prediction lines. */
static int eval_run(const eval_options *o, eval_state *e, dp_err *err)
{
    const int K = e->K;
    FILE *pred = NULL;
    if (o->predictions && !(pred = open_memstream(&e->lines, &e->lines_len)))
        return dp_fail(err, "--predictions: out of memory");
    for (int64_t at = 0; at < e->ds.n; at += o->batch) {
        int B = (int)(e->ds.n - at < o->batch ? e->ds.n - at : o->batch);
        batch_fill(e->ws.input, e->labels, &e->ds, NULL, at, B, &e->norm);
        int correct = 0;
        dp_pass pass = {.labels = e->labels, .B = B};
        e->cm[(size_t)K * K] += model_forward_backward(&e->m, &e->ws, &pass, &correct);
        const float *logits = e->ws.act[e->m.nlayers - 1];
        for (int n = 0; n < B; n++) {
            const float *z = logits + (size_t)n * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[best])
                    best = k;
            e->cm[(size_t)e->labels[n] * K + best] += 1;
            if (pred)
                write_prediction(pred, e->ds.first + at + n, e->labels[n], best, z, K);
        }
    }
    if (pred)
        fclose(pred);
    return 0;
}

/* The prediction lines, rank after rank, so the file is in data order. */
static int write_predictions(const dp_comm *comm, const eval_options *o, const eval_state *e,
                             dp_err *err)
{
    for (int r = 0; r < comm->size; r++) {
        int rc = 0;
        if (r == comm->rank) {
            FILE *f = fopen(o->predictions, r == 0 ? "w" : "a");
            if (f && r == 0) {
                fprintf(f, "index,label,predicted");
                for (int k = 0; k < e->K; k++)
                    fprintf(f, ",prob%d", k);
                fputc('\n', f);
            }
            rc = f && fwrite(e->lines, 1, e->lines_len, f) == e->lines_len ? 0 : -1;
            if (f && fclose(f) != 0)
                rc = -1;
            if (rc)
                dp_fail(err, "--predictions %s: cannot write the file", o->predictions);
        }
        if (comm_agree(comm, rc, err))
            return -1;
    }
    return 0;
}

/* Loss, accuracy, per-class accuracy and the confusion matrix (rank 0). */
static void print_report(const eval_options *o, const eval_state *e, int ranks)
{
    const int K = e->K;
    const double *cm = e->cm;
    double total = 0, right = 0;
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) {
            total += cm[(size_t)t * K + p];
            right += t == p ? cm[(size_t)t * K + p] : 0;
        }
    printf("eval: %s on %s: %.0f samples, %d classes, %d rank%s x %d thread%s\n", o->weights,
           o->data, total, K, ranks, ranks > 1 ? "s" : "", e->threads, e->threads > 1 ? "s" : "");
    printf("kernels: %s\n", dp_isa_describe());
    printf("model: %s (%s)\n", e->model, e->from[0]);
    printf("precision: %s (%s); convolutions: %s (%s)\n", dp_precision_name(), e->from[1],
           dp_conv_algorithm_name(), e->from[2]);
    if (e->norm.normalize)
        printf("input: (pixel/255 - %g) / %g (%s)\n", e->norm.mean, e->norm.std, e->from[3]);
    else
        printf("input: pixel/255 (%s)\n", e->from[3]);
    if (e->note[0])
        printf("note: %s\n", e->note);
    printf("loss %.6f accuracy %.2f%% (%.0f of %.0f)\n", total ? cm[(size_t)K * K] / total : 0,
           total ? 100.0 * right / total : 0, right, total);
    printf("per class:\n  class  samples  correct  accuracy\n");
    for (int t = 0; t < K; t++) {
        double n = 0;
        for (int p = 0; p < K; p++)
            n += cm[(size_t)t * K + p];
        if (n > 0)
            printf("  %5d  %7.0f  %7.0f  %7.2f%%\n", t, n, cm[(size_t)t * K + t],
                   100.0 * cm[(size_t)t * K + t] / n);
        else
            printf("  %5d  %7d  %7d         -\n", t, 0, 0);
    }
    printf("confusion matrix (rows: true label, columns: predicted):\n      ");
    for (int p = 0; p < K; p++)
        printf(" %6d", p);
    printf("\n");
    for (int t = 0; t < K; t++) {
        printf("  %3d ", t);
        for (int p = 0; p < K; p++)
            printf(" %6.0f", cm[(size_t)t * K + p]);
        printf("\n");
    }
    if (o->predictions)
        printf("predictions: %s\n", o->predictions);
}

/* --plot (rank 0), agreed; 0 or 1, the exit status. */
static int plot(const dp_comm *comm, const eval_options *o, const eval_state *e, dp_err *err)
{
    if (!o->plot)
        return 0;
    int rc = 0;
    if (comm->rank == 0) {
        double total = 0, right = 0;
        for (int t = 0; t < e->K; t++)
            for (int p = 0; p < e->K; p++) {
                total += e->cm[(size_t)t * e->K + p];
                right += t == p ? e->cm[(size_t)t * e->K + p] : 0;
            }
        char title[1024];
        snprintf(title, sizeof title, "%s on %s: %.0f samples, accuracy %.2f%%", o->weights,
                 o->data, total, total > 0 ? 100.0 * right / total : 0.0);
        rc = eval_plot_write(o->plot, e->cm, e->K, title, err);
        if (rc == 0)
            printf("plot: %s\n", o->plot);
    }
    return comm_agree(comm, rc, err) ? 1 : 0;
}

static void eval_free(eval_state *e)
{
    free(e->lines);
    free(e->cm);
    free(e->labels);
    workspace_free(&e->ws);
    model_free(&e->m);
    dataset_free(&e->ds);
    filelist_free(&e->fl);
}

int main(int argc, char **argv)
{
    dp_comm comm;
    dp_err err = {{0}};
    if (comm_init(&argc, &argv, &comm, &err) != 0) {
        fprintf(stderr, "dptrain-eval: error: %s\n", err.msg);
        return 1;
    }
    eval_options o;
    int rc = parse(argc, argv, &o, &err);
    if (rc != 0) {
        if (comm.rank == 0)
            rc < 0 ? fprintf(stderr, "dptrain-eval: %s\n", err.msg)
                   : fprintf(stdout, "%s", usage_text);
        comm_finalize();
        return rc < 0 ? 2 : 0;
    }
    eval_state e = {0};
    int status = 1;
    if (eval_setup(&comm, &o, &e, &err) == 0 &&
        comm_agree(&comm, eval_run(&o, &e, &err), &err) == 0) {
        comm_allreduce_sum_double(e.cm, e.K * e.K + 1);
        if (!o.predictions || write_predictions(&comm, &o, &e, &err) == 0) {
            if (comm.rank == 0)
                print_report(&o, &e, comm.size);
            status = plot(&comm, &o, &e, &err);
        }
    }
    if (status && comm.rank == 0)
        fprintf(stderr, "dptrain-eval: error: %s\n", err.msg);
    eval_free(&e);
    comm_finalize();
    return status;
}
