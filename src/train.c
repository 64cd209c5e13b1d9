#include "dptrain/train.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/cli.h"
#include "dptrain/comm.h"
#include "dptrain/data.h"
#include "dptrain/metrics.h"
#include "dptrain/model.h"
#include "dptrain/optim.h"
#include "dptrain/sampler.h"
#include "dptrain/weights.h"

/* Everything one run holds; set up once, nothing allocated per step. */
typedef struct {
    dp_comm comm;
    dp_config cfg;
    int threads;
    dp_filelist train_files, test_files;
    int has_test;
    dp_dataset train, test;
    int64_t share_begin, share_end;
    dp_model model;
    dp_sgd opt;
    dp_workspace ws;
    dp_sampler sampler;
    int local_batch, max_local_batch, eval_batch;
    int64_t *batch_idx;
    uint8_t *batch_labels;
    long steps_per_epoch;
    long total_steps;
    int epochs; /* epochs the run will touch (the last may be partial) */
    dp_lr_schedule lr;
    FILE *metrics;
    double start_time;
} run_state;

static int say(const run_state *s) { return s->comm.rank == 0 && !s->cfg.quiet; }

static int default_threads(const dp_comm *c)
{
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && atoi(env) > 0)
        return atoi(env);
    cpu_set_t set;
    int allowed = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        allowed = CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int share = online > 0 ? (int)(online / c->local_size) : 1;
    int t = allowed < share ? allowed : share;
    return t < 1 ? 1 : t;
}

/* Convert the samples idx[0..B) of ds into the workspace input and a label array. */
static void fill_batch(run_state *s, const dp_dataset *ds, const int64_t *idx, int64_t first,
                       int B, uint8_t *labels)
{
    const size_t sample = (size_t)ds->c * ds->h * ds->w;
    const float mean = s->cfg.normalize ? s->cfg.mean : 0.0f, sd = s->cfg.std;
    const int normalize = s->cfg.normalize;
    float *x = s->ws.input;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < B; n++) {
        int64_t at = idx ? idx[n] : first + n;
        const uint8_t *src = ds->images + (size_t)at * sample;
        float *dst = x + (size_t)n * sample;
        for (size_t i = 0; i < sample; i++) {
            float v = (float)src[i] / 255.0f; /* torchvision's ToTensor */
            dst[i] = normalize ? (v - mean) / sd : v;
        }
    }
    for (int n = 0; n < B; n++)
        labels[n] = ds->labels[idx ? idx[n] : first + n];
}

static int load_data(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    int rc = filelist_open(s->cfg.train, &s->train_files, err);
    if (rc)
        dp_prefix(err, "--train");
    if (comm_agree(c, rc, err))
        return -1;
    filelist_share(&s->train_files, c->rank, c->size, &s->share_begin, &s->share_end);
    rc = 0;
    if (s->share_end <= s->share_begin)
        rc = dp_fail(err, "--train %s: %lld samples cannot give each of %d ranks at least one; "
                          "use fewer ranks", s->cfg.train, (long long)s->train_files.total,
                     c->size);
    else
        rc = dataset_load(&s->train_files, s->share_begin, s->share_end, &s->train, err);
    if (comm_agree(c, rc, err))
        return -1;

    s->has_test = strcmp(s->cfg.test, "none") != 0;
    if (!s->has_test)
        return 0;
    rc = filelist_open(s->cfg.test, &s->test_files, err);
    if (rc)
        dp_prefix(err, "--test");
    else if (s->test_files.c != s->train_files.c || s->test_files.h != s->train_files.h ||
             s->test_files.w != s->train_files.w)
        rc = dp_fail(err, "--test %s: samples are %dx%dx%d but the training samples are "
                          "%dx%dx%d", s->cfg.test, s->test_files.c, s->test_files.h,
                     s->test_files.w, s->train_files.c, s->train_files.h, s->train_files.w);
    if (comm_agree(c, rc, err))
        return -1;
    int64_t b, e;
    filelist_share(&s->test_files, c->rank, c->size, &b, &e);
    rc = e > b ? dataset_load(&s->test_files, b, e, &s->test, err) : 0; /* a slice may be empty */
    if (rc)
        dp_prefix(err, "--test");
    return comm_agree(c, rc, err);
}

static int num_classes(run_state *s)
{
    int64_t mx = 0;
    for (int64_t i = 0; i < s->train.n; i++)
        if (s->train.labels[i] > mx)
            mx = s->train.labels[i];
    mx = comm_allreduce_max_i64(mx) + 1;
    int declared = s->train_files.num_classes;
    return declared > mx ? declared : (int)mx;
}

/* Fail before training, not after it, when a result could not be written. */
static int check_writable_dir(const char *path, const char *option, dp_err *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (access(dir, W_OK | X_OK) != 0)
        return dp_fail(err, "%s %s: the directory %s does not exist or is not writable", option,
                       path, dir);
    return 0;
}

static int setup(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    dp_config *cfg = &s->cfg;
    s->threads = cfg->threads > 0 ? cfg->threads : default_threads(c);
    omp_set_num_threads(s->threads);

    if (load_data(s, err))
        return -1;
    int classes = num_classes(s);
    if (s->has_test && s->test_files.num_classes > 0 && s->test_files.num_classes != classes) {
        /* labels are checked against num_classes by dataset_load; this is only a warning */
        if (say(s))
            fprintf(stderr, "dptrain: warning: --test declares %d classes, training data %d\n",
                    s->test_files.num_classes, classes);
    }
    int rc = model_build(&s->model, cfg->model, s->train_files.c, s->train_files.h,
                         s->train_files.w, classes, err);
    if (comm_agree(c, rc, err))
        return -1;
    if (cfg->init_from) {
        rc = weights_load(&s->model, cfg->init_from, err);
        if (rc)
            dp_prefix(err, "--init-from");
        if (comm_agree(c, rc, err))
            return -1;
    } else {
        model_init(&s->model, cfg->seed);
    }

    /* Batch split, and the steps every rank takes per epoch. */
    const int P = c->size, B = cfg->batch;
    rc = 0;
    if (B < P)
        rc = dp_fail(err, "--batch %d: the global batch must give each of the %d ranks at "
                          "least one sample", B, P);
    else if (s->train_files.total < B)
        rc = dp_fail(err, "--batch %d: larger than the %lld training samples", B,
                     (long long)s->train_files.total);
    if (comm_agree(c, rc, err))
        return -1;
    s->local_batch = batch_split(B, P, c->rank, NULL);
    s->max_local_batch = batch_split(B, P, 0, NULL);
    if (s->train.n < s->local_batch)
        rc = dp_fail(err, "--batch %d: rank %d holds %lld training samples, fewer than its %d "
                          "per step; use fewer ranks or a smaller batch", B, c->rank,
                     (long long)s->train.n, s->local_batch);
    if (comm_agree(c, rc, err))
        return -1;
    s->steps_per_epoch = (long)(s->train_files.total / B);
    if (cfg->epochs > 0) {
        s->total_steps = s->steps_per_epoch * cfg->epochs;
        if (cfg->steps >= 0 && cfg->steps < s->total_steps)
            s->total_steps = cfg->steps;
    } else {
        s->total_steps = cfg->steps;
    }
    s->epochs = (int)((s->total_steps + s->steps_per_epoch - 1) / s->steps_per_epoch);
    if (s->total_steps < 0)
        s->total_steps = 0;

    s->lr.kind = cfg->schedule;
    s->lr.base = cli_peak_lr(cfg);
    s->lr.warmup_steps = (long)llround(cfg->warmup_epochs * s->steps_per_epoch);
    s->lr.total_steps = cfg->epochs > 0 ? s->steps_per_epoch * cfg->epochs : s->total_steps;
    s->lr.step_every = (long)llround(cfg->step_epochs * s->steps_per_epoch);
    if (s->lr.step_every < 1)
        s->lr.step_every = 1;
    s->lr.gamma = cfg->gamma;

    s->eval_batch = s->max_local_batch > 100 ? s->max_local_batch : 100;
    rc = sgd_create(&s->opt, s->model.size, (float)cfg->momentum, (float)cfg->weight_decay,
                    cfg->nesterov, err);
    if (rc == 0)
        rc = workspace_create(&s->ws, &s->model, s->eval_batch, err);
    if (rc == 0)
        rc = sampler_create(&s->sampler, s->train.n, cfg->shuffle, cfg->seed, c->rank, err);
    if (rc == 0) {
        s->batch_idx = dp_calloc((size_t)s->eval_batch, sizeof(int64_t), "batch", err);
        s->batch_labels = dp_calloc((size_t)s->eval_batch, 1, "batch", err);
        rc = s->batch_idx && s->batch_labels ? 0 : -1;
    }
    if (rc == 0 && c->rank == 0 && cfg->metrics)
        rc = metrics_open(&s->metrics, cfg->metrics, err);
    if (rc == 0 && c->rank == 0 && cfg->save)
        rc = check_writable_dir(cfg->save, "--save", err);
    return comm_agree(c, rc, err);
}

static void print_banner(run_state *s)
{
    const dp_comm *c = &s->comm;
    char (*hosts)[64] = c->rank == 0 ? calloc((size_t)c->size, 64) : NULL;
    comm_gather_hosts(c, hosts);
    if (!say(s)) {
        free(hosts);
        return;
    }
    const dp_config *cfg = &s->cfg;
    printf("dptrain: %d rank%s x %d thread%s on %d node%s", c->size, c->size > 1 ? "s" : "",
           s->threads, s->threads > 1 ? "s" : "", c->nodes, c->nodes > 1 ? "s" : "");
    if (hosts) {
        printf(" (");
        /* runs of equal host names: "node1 x4, node2 x4" */
        for (int r = 0; r < c->size;) {
            int k = r;
            while (k < c->size && strcmp(hosts[k], hosts[r]) == 0)
                k++;
            printf("%s%s ranks %d-%d", r ? ", " : "", hosts[r], r, k - 1);
            r = k;
        }
        printf(")");
    }
    printf("\n");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0 && (long)s->threads * c->local_size > online) {
        if (s->threads > 1)
            printf("dptrain: warning: %d ranks x %d threads on this node exceed its %ld cores; "
                   "pass --threads %ld or start fewer ranks per node\n", c->local_size,
                   s->threads, online, online / c->local_size > 0 ? online / c->local_size : 1);
        else
            printf("dptrain: warning: %d ranks on this node share its %ld cores "
                   "(oversubscribed: they take turns on the cores)\n", c->local_size, online);
    }
    char desc[1024];
    model_describe(&s->model, desc, sizeof desc);
    printf("model: %s\n       %s, %zu parameters\n", cfg->model, desc, s->model.size);
    printf("data: %s: %lld samples (%dx%dx%d, %d classes) in %d file%s; rank 0 holds %lld%s\n",
           cfg->train, (long long)s->train_files.total, s->train_files.c, s->train_files.h,
           s->train_files.w, s->model.num_classes, s->train_files.nfiles,
           s->train_files.nfiles > 1 ? "s" : "", (long long)s->train.n,
           s->train_files.nfiles == c->size ? " (one file per rank)" : "");
    if (s->has_test)
        printf("test: %s: %lld samples, split over the ranks\n", cfg->test,
               (long long)s->test_files.total);
    int lo = batch_split(cfg->batch, c->size, c->size - 1, NULL);
    printf("batch: global %d, per rank %d", cfg->batch, s->max_local_batch);
    if (lo != s->max_local_batch)
        printf(" (ranks 0-%d) / %d (the rest)", cfg->batch % c->size - 1, lo);
    printf("; %ld steps per epoch, %ld steps in %d epoch%s\n", s->steps_per_epoch, s->total_steps,
           s->epochs, s->epochs > 1 ? "s" : "");
    static const char *sched[] = {"constant", "cosine", "step"};
    char scaled[96] = "";
    if (cfg->lr_scaling)
        snprintf(scaled, sizeof scaled, " = %g x %d/%d (linear scaling)", cfg->lr, cfg->batch,
                 cfg->lr_base_batch);
    printf("optimizer: SGD lr %g%s (%s, warm-up %g epochs) momentum %g weight decay %g%s; "
           "seed %llu%s\n",
           cli_peak_lr(cfg), scaled, sched[cfg->schedule], cfg->warmup_epochs, cfg->momentum, cfg->weight_decay,
           cfg->nesterov ? " nesterov" : "", (unsigned long long)cfg->seed,
           cfg->shuffle ? "" : ", no shuffle");
    fflush(stdout);
    free(hosts);
}

/* Loss sum, correct count and sample count over this rank's test slice. */
static void evaluate(run_state *s, double out[3])
{
    out[0] = out[1] = out[2] = 0.0;
    for (int64_t at = 0; at < s->test.n; at += s->eval_batch) {
        int B = (int)(s->test.n - at < s->eval_batch ? s->test.n - at : s->eval_batch);
        fill_batch(s, &s->test, NULL, at, B, s->batch_labels);
        int correct = 0;
        out[0] += model_forward_backward(&s->model, &s->ws, s->batch_labels, B, 0, &correct);
        out[1] += correct;
        out[2] += B;
    }
}

static int train_loop(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const int P = c->size, B = s->cfg.batch, progress = s->comm.rank == 0 && !s->cfg.quiet &&
        (s->cfg.progress == 1 || (s->cfg.progress == -1 && isatty(STDERR_FILENO)));
    const float inv_batch_divisor = (float)B;
    long step = 0;
    s->start_time = comm_time();
    for (int epoch = 1; step < s->total_steps; epoch++) {
        /* sums over this rank: train loss, correct, samples, comm, data, compute seconds */
        double sums[6] = {0};
        double t_epoch = comm_time(), last_draw = 0.0, lr = 0.0;
        long in_epoch = 0, epoch_steps = s->total_steps - step < s->steps_per_epoch
                                              ? s->total_steps - step
                                              : s->steps_per_epoch;
        for (; in_epoch < s->steps_per_epoch && step < s->total_steps; in_epoch++, step++) {
            double t0 = comm_time();
            sampler_next(&s->sampler, s->batch_idx, s->local_batch);
            fill_batch(s, &s->train, s->batch_idx, 0, s->local_batch, s->batch_labels);
            double t1 = comm_time();
            memset(s->model.grads, 0, s->model.size * sizeof(float));
            int correct = 0;
            sums[0] += model_forward_backward(&s->model, &s->ws, s->batch_labels, s->local_batch,
                                              1, &correct);
            sums[1] += correct;
            sums[2] += s->local_batch;
            double t2 = comm_time();
            if (P > 1)
                comm_allreduce_sum_float(s->model.grads, s->model.size);
            double t3 = comm_time();
            /* The sum over the global batch, divided by its count: the exact mean. */
            float *g = s->model.grads;
            #pragma omp parallel for schedule(static)
            for (size_t i = 0; i < s->model.size; i++)
                g[i] = g[i] / inv_batch_divisor;
            lr = lr_at(&s->lr, step);
            sgd_step(&s->opt, s->model.weights, s->model.grads, (float)lr);
            double t4 = comm_time();
            sums[3] += t3 - t2;
            sums[4] += t1 - t0;
            sums[5] += (t2 - t1) + (t4 - t3);
            if (progress && (t4 - last_draw > 0.25 || in_epoch + 1 == epoch_steps)) {
                last_draw = t4;
                double ips = (double)(in_epoch + 1) * B / (t4 - t_epoch);
                progress_draw(stderr, epoch, s->epochs, in_epoch + 1, epoch_steps,
                              sums[0] / sums[2], ips);
            }
        }
        double seconds = comm_time() - t_epoch;
        if (progress)
            progress_clear(stderr);

        double t_eval = comm_time(), test[3] = {0};
        if (s->has_test)
            evaluate(s, test);
        double red[9] = {sums[0], sums[1], sums[2], sums[3], sums[4], sums[5],
                         test[0], test[1], test[2]};
        comm_allreduce_sum_double(red, 9);
        double eval_seconds = comm_time() - t_eval;
        seconds = comm_allreduce_max_double(seconds);

        dp_epoch_record r = {0};
        r.epoch = epoch;
        r.step = step;
        r.partial = in_epoch < s->steps_per_epoch;
        r.lr = lr;
        r.train_loss = red[0] / red[2];
        r.train_accuracy = red[1] / red[2];
        r.has_test = s->has_test && red[8] > 0;
        r.test_loss = r.has_test ? red[6] / red[8] : 0.0;
        r.test_accuracy = r.has_test ? red[7] / red[8] : 0.0;
        r.images_per_sec = red[2] / seconds;
        r.seconds = seconds;
        r.comm_seconds = red[3] / P;
        r.data_seconds = red[4] / P;
        r.compute_seconds = red[5] / P;
        r.eval_seconds = eval_seconds;
        r.wall_seconds = comm_time() - s->start_time;
        r.ranks = P;
        r.threads = s->threads;
        r.global_batch = B;
        if (!isfinite(r.train_loss)) {
            /* The sums are identical on every rank, so all ranks stop here together. */
            return dp_fail(err, "training diverged in epoch %d (train loss %g by step %ld); lower "
                                "--lr or add --warmup-epochs", epoch, r.train_loss, step);
        }
        if (say(s)) {
            printf("epoch %d%s step %ld lr %.4g | train loss %.4f acc %.2f%%", epoch,
                   r.partial ? " (partial)" : "", step, lr, r.train_loss,
                   100.0 * r.train_accuracy);
            if (r.has_test)
                printf(" | test loss %.4f acc %.2f%%", r.test_loss, 100.0 * r.test_accuracy);
            printf(" | %.0f img/s %.1f s (comm %.1f s) eval %.1f s\n", r.images_per_sec,
                   r.seconds, r.comm_seconds, r.eval_seconds);
            fflush(stdout);
        }
        int rc = 0;
        if (s->metrics)
            rc = metrics_write(s->metrics, &r, err);
        if (comm_agree(c, rc, err))
            return -1;
    }
    return 0;
}

/* FNV-1a over the bytes of the weights: replicas must agree to the bit. */
static uint64_t weights_checksum(const dp_model *m)
{
    const unsigned char *p = (const unsigned char *)m->weights;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < m->size * sizeof(float); i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Every rank must hold the same bits; a difference is a bug worth stopping for. */
static int check_replicas(run_state *s, dp_err *err)
{
    int64_t h = (int64_t)(weights_checksum(&s->model) >> 1);
    int64_t lo = comm_allreduce_min_i64(h), hi = comm_allreduce_max_i64(h);
    if (lo != hi)
        return dp_fail(err, "model replicas differ across ranks after training (checksums "
                            "%016llx vs %016llx): please report this", (unsigned long long)lo,
                       (unsigned long long)hi);
    if (say(s))
        printf("replicas identical on %d rank%s (weights checksum %016llx)\n", s->comm.size,
               s->comm.size > 1 ? "s" : "", (unsigned long long)lo);
    return 0;
}

static void teardown(run_state *s)
{
    if (s->metrics)
        fclose(s->metrics);
    free(s->batch_idx);
    free(s->batch_labels);
    sampler_free(&s->sampler);
    workspace_free(&s->ws);
    sgd_free(&s->opt);
    model_free(&s->model);
    dataset_free(&s->train);
    dataset_free(&s->test);
    filelist_free(&s->train_files);
    filelist_free(&s->test_files);
}

int dptrain_main(int argc, char **argv)
{
    run_state *s = calloc(1, sizeof *s);
    if (!s || comm_init(&argc, &argv, &s->comm) != 0) {
        fprintf(stderr, "dptrain: MPI initialisation failed\n");
        return 1;
    }
    dp_err err = {{0}};
    int status = 0;
    int rc = cli_parse(argc, argv, &s->cfg, s->comm.rank == 0 ? stdout : NULL, &err);
    if (rc != 0) {
        if (rc < 0 && s->comm.rank == 0)
            fprintf(stderr, "dptrain: %s\n", err.msg);
        comm_finalize();
        free(s);
        return rc < 0 ? 2 : 0;
    }
    if (setup(s, &err) != 0) {
        status = 1;
    } else {
        print_banner(s);
        if (train_loop(s, &err) != 0 || check_replicas(s, &err) != 0) {
            status = 1;
        } else if (s->cfg.save) {
            rc = s->comm.rank == 0 ? weights_save(&s->model, s->cfg.save, &err) : 0;
            if (rc)
                dp_prefix(&err, "--save");
            if (comm_agree(&s->comm, rc, &err) != 0)
                status = 1;
            else if (say(s))
                printf("saved weights to %s\n", s->cfg.save);
        }
    }
    if (status && s->comm.rank == 0)
        fprintf(stderr, "dptrain: error: %s\n", err.msg);
    teardown(s);
    comm_finalize();
    free(s);
    return status;
}
