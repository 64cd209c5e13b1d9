#include "dptrain/driver/train.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/persist/checkpoint.h"
#include "dptrain/driver/cli.h"
#include "dptrain/dist/comm.h"
#include "dptrain/data/data.h"
#include "dptrain/driver/metrics.h"
#include "dptrain/net/model.h"
#include "dptrain/net/numerics.h"
#include "dptrain/optim/optim.h"
#include "dptrain/data/sampler.h"
#include "dptrain/dist/watchdog.h"
#include "dptrain/persist/weights.h"

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
    /* gradient buckets, last layers first; bucket b may start once layer bucket_layer[b]
     * has finished its backward */
    dp_reducer *reducer;
    int nbuckets, next_bucket;
    size_t *bucket_begin, *bucket_end;
    int *bucket_layer;
    /* checkpoints and fine-tuning */
    const char *ckpt_dir;   /* where checkpoints go, NULL: none */
    long start_step;        /* optimizer steps already done (resume) */
    long last_ckpt_step;    /* step of the newest checkpoint written or resumed from */
    uint64_t data_checksum; /* over the whole training set */
    size_t *ranges;         /* [2 * nranges]: offset, count of the trainable parameters */
    int nranges;
    int stop_signal;        /* the signal that stopped the run, 0 */
    int stopped_ckpt;       /* a checkpoint was written on stop */
    long last_step;         /* steps done when the loop ended */
    dp_vote vote;           /* the stop vote in flight */
    dp_watchdog *watchdog;
} run_state;

static int say(const run_state *s) { return s->comm.rank == 0 && !s->cfg.quiet; }

/* Called after each layer's backward: start the buckets whose layers are all done. */
static void bucket_hook(void *ctx, int layer)
{
    run_state *s = ctx;
    while (s->next_bucket < s->nbuckets && layer <= s->bucket_layer[s->next_bucket])
        reducer_start(s->reducer, s->next_bucket++);
    if (s->next_bucket > 0)
        reducer_progress(s->reducer);
}

/* Cut the flat gradient buffer into buckets of at least bucket_kb KiB, walking the layers
 * from the last, so that each bucket is ready as early as backward allows. */
static int make_buckets(run_state *s, dp_err *err)
{
    const dp_model *m = &s->model;
    const size_t want = (size_t)s->cfg.bucket_kb * 1024 / sizeof(float);
    /* at most one bucket per tensor */
    s->bucket_begin = dp_calloc((size_t)m->nparams, sizeof(size_t), "buckets", err);
    s->bucket_end = dp_calloc((size_t)m->nparams, sizeof(size_t), "buckets", err);
    s->bucket_layer = dp_calloc((size_t)m->nparams, sizeof(int), "buckets", err);
    if (!s->bucket_begin || !s->bucket_end || !s->bucket_layer)
        return -1;
    int open = 0;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        int n;
        const dp_param *p = model_layer_params(m, i, &n);
        for (int k = n - 1; k >= 0; k--) {
            if (!model_param_updated(m, &p[k])) {
                /* frozen gradients and buffers are never reduced: a gap */
                if (open)
                    s->nbuckets++;
                open = 0;
                continue;
            }
            if (!open) {
                s->bucket_end[s->nbuckets] = p[k].offset + p[k].count;
                open = 1;
            }
            s->bucket_begin[s->nbuckets] = p[k].offset;
            s->bucket_layer[s->nbuckets] = i;
        }
        if (open && s->bucket_end[s->nbuckets] - s->bucket_begin[s->nbuckets] >= want) {
            s->nbuckets++;
            open = 0;
        }
    }
    if (open)
        s->nbuckets++;
    s->reducer = reducer_create(m->grads, s->bucket_begin, s->bucket_end, s->nbuckets, err);
    return s->reducer ? 0 : -1;
}

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
    else if ((rc = dataset_load(&s->train_files, s->share_begin, s->share_end, &s->train,
                                err)) != 0)
        dp_prefix(err, "--train");
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

/* --reinit and --freeze: look the layers up, re-draw or freeze them, and list the
 * contiguous runs of trainable parameters that the allreduce and the update touch. */
static int apply_layer_list(run_state *s, const char *list, const char *option, int freeze,
                            dp_err *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int i = model_find_layer(&s->model, name);
        if (i < 0 || s->model.layers[i].param_count == 0) {
            char names[512] = "";
            for (int k = 0; k < s->model.nlayers; k++)
                if (s->model.layers[k].param_count > 0)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                             names[0] ? ", " : "", s->model.layers[k].name);
            return dp_fail(err, "%s %s: '%s' is not a layer with weights of this model "
                                "(expected one of: %s)", option, list, name, names);
        }
        dp_layer *L = &s->model.layers[i];
        if (freeze) {
            L->frozen = 1;
        } else {
            for (int k = 0; k < L->param_count; k++)
                model_init_param(&s->model, L->param_first + k, s->cfg.seed);
        }
    }
    return 0;
}

static int setup_layers(run_state *s, dp_err *err)
{
    int rc = 0;
    if (s->cfg.reinit)
        rc = apply_layer_list(s, s->cfg.reinit, "--reinit", 0, err);
    if (rc == 0 && s->cfg.freeze)
        rc = apply_layer_list(s, s->cfg.freeze, "--freeze", 1, err);
    if (rc == 0) {
        s->ranges = dp_calloc(2 * (size_t)s->model.nparams + 2, sizeof(size_t), "ranges", err);
        rc = s->ranges ? 0 : -1;
    }
    if (rc == 0) {
        s->nranges = 0;
        for (int i = 0; i < s->model.nparams; i++) {
            const dp_param *p = &s->model.params[i];
            if (!model_param_updated(&s->model, p))
                continue;
            size_t *last = s->nranges ? &s->ranges[2 * (s->nranges - 1)] : NULL;
            if (last && last[0] + last[1] == p->offset) {
                last[1] += p->count;
            } else {
                s->ranges[2 * s->nranges] = p->offset;
                s->ranges[2 * s->nranges + 1] = p->count;
                s->nranges++;
            }
        }
    }
    return comm_agree(&s->comm, rc, err);
}

/* The configuration and state a checkpoint records; pass/pos gathered to rank 0. */
static int fill_meta(run_state *s, long step, dp_ckpt_meta *m, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    memset(m, 0, sizeof *m);
    m->format = DP_CKPT_FORMAT;
    m->step = step;
    m->steps_per_epoch = s->steps_per_epoch;
    m->total_steps = s->lr.total_steps; /* what the schedule depends on */
    m->ranks = s->comm.size;
    m->threads = s->threads;
    snprintf(m->model_spec, sizeof m->model_spec, "%s", s->model.spec);
    m->global_batch = cfg->batch;
    m->seed = cfg->seed;
    m->shuffle = cfg->shuffle;
    m->lr = cfg->lr;
    m->momentum = cfg->momentum;
    m->weight_decay = cfg->weight_decay;
    m->warmup_epochs = cfg->warmup_epochs;
    m->step_epochs = cfg->step_epochs;
    m->gamma = cfg->gamma;
    m->nesterov = cfg->nesterov;
    m->schedule = cfg->schedule;
    m->epochs = cfg->epochs;
    m->steps = cfg->steps;
    m->normalize = cfg->normalize;
    m->mean = cfg->mean;
    m->std = cfg->std;
    snprintf(m->train, sizeof m->train, "%s", cfg->train);
    m->train_total = s->train_files.total;
    m->c = s->train_files.c;
    m->h = s->train_files.h;
    m->w = s->train_files.w;
    m->num_classes = s->model.num_classes;
    m->nfiles = s->train_files.nfiles;
    m->data_checksum = s->data_checksum;
    m->file_paths = s->train_files.paths;
    m->file_counts = s->train_files.counts;
    snprintf(m->frozen, sizeof m->frozen, "%s", cfg->freeze ? cfg->freeze : "");
    int64_t mine[2] = {s->sampler.pass, s->sampler.pos};
    int64_t *all = NULL;
    if (s->comm.rank == 0) {
        all = dp_calloc(2 * (size_t)s->comm.size, sizeof(int64_t), "sampler state", err);
        m->pass = dp_calloc((size_t)s->comm.size, sizeof(int64_t), "sampler state", err);
        m->pos = dp_calloc((size_t)s->comm.size, sizeof(int64_t), "sampler state", err);
        if (!all || !m->pass || !m->pos) {
            free(all);
            checkpoint_meta_free(m);
            comm_abort(1); /* cannot join the gather: end the job rather than hang it */
        }
    }
    comm_gather_i64(mine, 2, all);
    if (all)
        for (int r = 0; r < s->comm.size; r++) {
            m->pass[r] = all[2 * r];
            m->pos[r] = all[2 * r + 1];
        }
    free(all);
    return 0;
}

/* Collective: every rank calls it at the same step. */
static int write_checkpoint(run_state *s, long step, dp_err *err)
{
    /* Writing may take longer than a step: not watched (the next step re-arms it). */
    watchdog_phase(s->watchdog, step, WATCH_IDLE);
    dp_ckpt_meta meta;
    double t0 = comm_time();
    fill_meta(s, step, &meta, err);
    char path[4096] = "";
    int rc = 0;
    if (s->comm.rank == 0)
        rc = checkpoint_write(s->ckpt_dir, &s->model, s->opt.velocity, &meta, s->cfg.keep, path,
                              sizeof path, err);
    checkpoint_meta_free(&meta);
    if (comm_agree(&s->comm, rc, err))
        return -1;
    s->last_ckpt_step = step;
    if (say(s)) {
        printf("checkpoint: %s (step %ld, %.2f s)\n", path, step, comm_time() - t0);
        fflush(stdout);
    }
    return 0;
}

/* Resume: the refusals name the difference; everything else is a note. */
static int check_resume(run_state *s, const dp_ckpt_meta *m, const char *path, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    if (strcmp(m->model_spec, s->model.spec) != 0)
        return dp_fail(err, "--resume %s: the model differs: the checkpoint has '%s', this run "
                            "'%s' (pass the same --model)", path, m->model_spec, s->model.spec);
    if (m->global_batch != cfg->batch)
        return dp_fail(err, "--resume %s: the global batch differs: the checkpoint has %d, this "
                            "run --batch %d", path, m->global_batch, cfg->batch);
    if (m->train_total != s->train_files.total || m->c != s->train_files.c ||
        m->h != s->train_files.h || m->w != s->train_files.w)
        return dp_fail(err, "--resume %s: the training data differ: the checkpoint was trained "
                            "on %s (%lld samples of %dx%dx%d), this run has --train %s (%lld "
                            "samples of %dx%dx%d)", path, m->train, (long long)m->train_total,
                       m->c, m->h, m->w, cfg->train, (long long)s->train_files.total,
                       s->train_files.c, s->train_files.h, s->train_files.w);
    if (m->data_checksum != s->data_checksum)
        return dp_fail(err, "--resume %s: the training data differ: same size (%lld samples) "
                            "but a different content checksum (checkpoint %016llx, --train %s "
                            "%016llx)", path, (long long)m->train_total,
                       (unsigned long long)m->data_checksum, cfg->train,
                       (unsigned long long)s->data_checksum);
    if (m->steps_per_epoch != s->steps_per_epoch)
        return dp_fail(err, "--resume %s: steps per epoch differ (%ld vs %ld)", path,
                       m->steps_per_epoch, s->steps_per_epoch);
    if (!say(s))
        return 0;
    /* accepted differences: say what they mean */
    char notes[1024] = "";
#define NOTE_IF(cond, ...)                                                                      \
    do {                                                                                       \
        if (cond)                                                                              \
            snprintf(notes + strlen(notes), sizeof notes - strlen(notes), __VA_ARGS__);        \
    } while (0)
    NOTE_IF(m->lr != cfg->lr, " --lr (%g, was %g)", cfg->lr, m->lr);
    NOTE_IF(m->momentum != cfg->momentum, " --momentum (%g, was %g)", cfg->momentum, m->momentum);
    NOTE_IF(m->weight_decay != cfg->weight_decay, " --weight-decay (%g, was %g)",
            cfg->weight_decay, m->weight_decay);
    NOTE_IF(m->nesterov != cfg->nesterov, " --nesterov");
    NOTE_IF(m->schedule != (int)cfg->schedule || m->warmup_epochs != cfg->warmup_epochs ||
                m->step_epochs != cfg->step_epochs || m->gamma != cfg->gamma,
            " the learning-rate schedule");
    NOTE_IF(m->total_steps != s->lr.total_steps, " the schedule's length (%ld steps, was %ld)",
            s->lr.total_steps, m->total_steps);
    NOTE_IF(m->seed != cfg->seed, " --seed (%llu, was %llu)", (unsigned long long)cfg->seed,
            (unsigned long long)m->seed);
    NOTE_IF(m->shuffle != cfg->shuffle, " shuffling");
    NOTE_IF(m->normalize != cfg->normalize || (m->normalize && (m->mean != (double)cfg->mean ||
                                                               m->std != (double)cfg->std)),
            " --normalize");
    NOTE_IF(strcmp(m->frozen, cfg->freeze ? cfg->freeze : "") != 0, " --freeze");
#undef NOTE_IF
    if (notes[0])
        printf("resume: note: changed since the checkpoint:%s; the run continues with the new "
               "settings, so it will not match an uninterrupted run\n", notes);
    if (m->threads != s->threads)
        printf("resume: note: %d threads per rank (the checkpoint ran %d); results do not depend "
               "on the thread count\n", s->threads, m->threads);
    return 0;
}

static int setup_checkpoints(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    s->ckpt_dir = cfg->checkpoint_dir ? cfg->checkpoint_dir : cfg->resume;
    s->last_ckpt_step = -1;
    int rc = 0;
    if (c->rank == 0 && s->ckpt_dir) {
        if (mkdir(s->ckpt_dir, 0777) != 0 && errno != EEXIST)
            rc = dp_fail(err, "--checkpoint-dir %s: cannot create the directory (%s)",
                         s->ckpt_dir, strerror(errno));
        else if (access(s->ckpt_dir, W_OK | X_OK) != 0)
            rc = dp_fail(err, "--checkpoint-dir %s: not a writable directory", s->ckpt_dir);
    }
    if (comm_agree(c, rc, err))
        return -1;
    if (!s->ckpt_dir)
        return 0;
    /* A checksum of the training set that does not depend on the rank count. */
    uint64_t sum = 0;
    const size_t bytes = (size_t)s->train.c * s->train.h * s->train.w;
    for (int64_t i = 0; i < s->train.n; i++)
        sum += data_checksum_sample(s->train.first + i, s->train.images + (size_t)i * bytes, bytes,
                                    s->train.labels[i]);
    s->data_checksum = comm_allreduce_sum_u64(sum);
    if (!cfg->resume)
        return 0;

    /* Rank 0 picks the file, so every rank resumes from the same one. */
    char path[4096] = "";
    int found = 0;
    if (c->rank == 0) {
        found = checkpoint_find_latest(cfg->resume, path, sizeof path, err);
        rc = found < 0 ? dp_prefix(err, "--resume") : 0;
    }
    if (comm_agree(c, rc, err))
        return -1;
    comm_broadcast(&found, sizeof found, 0);
    if (found == 1) {
        /* nothing to resume yet (first run of a requeued job): start fresh */
        if (say(s))
            printf("resume: %s; starting from the beginning\n", err->msg);
        return 0;
    }
    comm_broadcast(path, sizeof path, 0);
    dp_ckpt_meta meta;
    rc = checkpoint_read_meta(path, &meta, err);
    if (rc == 0) {
        rc = check_resume(s, &meta, path, err);
        if (rc == 0)
            rc = checkpoint_read_state(path, &s->model, s->opt.velocity, err);
        if (rc == 0 && meta.step > s->total_steps)
            rc = dp_fail(err, "--resume %s: the checkpoint is at step %ld, past the %ld steps "
                              "of this run (raise --epochs or --steps)", path, meta.step,
                         s->total_steps);
        if (rc == 0 && meta.ranks == c->size) {
            rc = sampler_restore(&s->sampler, meta.pass[c->rank], meta.pos[c->rank], err);
        } else if (rc == 0) {
            /* New shares: every rank starts a fresh pass, past any pass used so far. */
            int64_t next = 0;
            for (int r = 0; r < meta.ranks; r++)
                next = meta.pass[r] + 1 > next ? meta.pass[r] + 1 : next;
            rc = sampler_restore(&s->sampler, next, 0, err);
            if (rc == 0 && say(s))
                printf("resume: the checkpoint was written by %d ranks, this run has %d: each "
                       "rank now owns a different share of the training set, so the data order "
                       "changes: every rank starts a fresh shuffle of its new share (pass %lld) "
                       "at step %ld; weights, momentum, step count and learning-rate schedule "
                       "continue exactly\n", meta.ranks, c->size, (long long)next, meta.step);
        }
        s->start_step = meta.step;
        s->last_ckpt_step = meta.step;
        checkpoint_meta_free(&meta);
    }
    if (comm_agree(c, rc, err))
        return -1;
    if (say(s))
        printf("resume: %s: step %ld of %ld (epoch %ld, step %ld of %ld in it)\n", path,
               s->start_step, s->total_steps, s->start_step / s->steps_per_epoch + 1,
               s->start_step % s->steps_per_epoch, s->steps_per_epoch);
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
    if (setup_layers(s, err) != 0)
        return -1;

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
    if (rc == 0 && c->size > 1)
        rc = make_buckets(s, err);
    if (rc == 0 && c->rank == 0 && cfg->metrics)
        rc = metrics_open(&s->metrics, cfg->metrics, err);
    if (rc == 0)
        rc = watchdog_start(&s->watchdog, cfg->watchdog, c->rank, err);
    if (rc == 0 && c->rank == 0 && cfg->save)
        rc = check_writable_dir(cfg->save, "--save", err);
    if (comm_agree(c, rc, err))
        return -1;
    return setup_checkpoints(s, err);
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
    if (c->size > 1)
        printf("gradients: %d bucket%s of >= %d KiB, reduced with %s\n", s->nbuckets,
               s->nbuckets > 1 ? "s" : "", cfg->bucket_kb,
               cfg->overlap ? "MPI_Iallreduce overlapping backward" : "MPI_Iallreduce after backward");
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
        dp_pass pass = {.labels = s->batch_labels, .B = B};
        out[0] += model_forward_backward(&s->model, &s->ws, &pass, &correct);
        out[1] += correct;
        out[2] += B;
    }
}

static int train_steps(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const int P = c->size, B = s->cfg.batch, progress = s->comm.rank == 0 && !s->cfg.quiet &&
        (s->cfg.progress == 1 || (s->cfg.progress == -1 && isatty(STDERR_FILENO)));
    const float inv_batch_divisor = (float)B;
    long step = s->start_step;
    s->last_step = step;
    const long every = s->cfg.checkpoint_every;
    s->start_time = comm_time();
    for (int epoch = (int)(step / s->steps_per_epoch) + 1; step < s->total_steps; epoch++) {
        /* sums over this rank: train loss, correct, samples, comm, data, compute seconds */
        double sums[6] = {0};
        double t_epoch = comm_time(), last_draw = 0.0, lr = 0.0;
        /* A resumed run starts mid-epoch; its first record covers the steps it ran. */
        long in_epoch = step % s->steps_per_epoch, first_in_epoch = in_epoch;
        long epoch_steps = s->total_steps - (step - in_epoch) < s->steps_per_epoch
                               ? s->total_steps - (step - in_epoch)
                               : s->steps_per_epoch;
        for (; in_epoch < s->steps_per_epoch && step < s->total_steps && !s->stop_signal;
             in_epoch++) {
            double t0 = comm_time();
            watchdog_phase(s->watchdog, step + 1, WATCH_COMPUTE);
            sampler_next(&s->sampler, s->batch_idx, s->local_batch);
            fill_batch(s, &s->train, s->batch_idx, 0, s->local_batch, s->batch_labels);
            for (int n = 0; n < s->local_batch; n++) /* global indices: dropout masks follow */
                s->batch_idx[n] += s->share_begin;  /* the sample, whichever rank holds it */
            double t1 = comm_time();
            memset(s->model.grads, 0, s->model.size * sizeof(float));
            int correct = 0;
            s->next_bucket = 0;
            dp_pass pass = {.labels = s->batch_labels, .B = s->local_batch, .train = 1,
                            .seed = s->cfg.seed, .step = step, .sample_index = s->batch_idx,
                            .done = s->reducer && s->cfg.overlap ? bucket_hook : NULL,
                            .done_ctx = s};
            double loss = model_forward_backward(&s->model, &s->ws, &pass, &correct);
            sums[0] += loss;
            sums[1] += correct;
            sums[2] += s->local_batch;
            double t2 = comm_time();
            watchdog_phase(s->watchdog, step + 1, WATCH_ALLREDUCE);
            if (s->reducer) {
                while (s->next_bucket < s->nbuckets) /* all of them without overlap */
                    reducer_start(s->reducer, s->next_bucket++);
                reducer_wait(s->reducer);
            }
            watchdog_phase(s->watchdog, step + 1, WATCH_COMPUTE);
            /* Stop requests: each step reads the vote of the step before and starts its
             * own, so the ranks agree without waiting for each other; any rank's signal
             * stops all of them at the same step boundary, one step later. */
            int sig = stop_requested();
            if (P > 1) {
                sig = comm_vote_finish(&s->vote);
                comm_vote_start(&s->vote, stop_requested());
            }
            double t3 = comm_time();
            /* The sum over the global batch, divided by its count: the exact mean. */
            float *g = s->model.grads;
            #pragma omp parallel for schedule(static)
            for (size_t i = 0; i < s->model.size; i++)
                g[i] = g[i] / inv_batch_divisor;
            /* Identical buffers on every rank: all ranks stop here together, or none. */
            if (grads_guard(&s->model, step + 1, epoch, loss, s->cfg.clip_grad_norm, NULL, err))
                return -1;
            lr = lr_at(&s->lr, step);
            for (int k = 0; k < s->nranges; k++) {
                /* frozen parameters keep their weights and momentum as they are */
                dp_sgd part = s->opt;
                size_t off = s->ranges[2 * k];
                part.velocity += off;
                part.size = s->ranges[2 * k + 1];
                sgd_step(&part, s->model.weights + off, s->model.grads + off, (float)lr);
            }
            step++;
            double t4 = comm_time();
            if (sig) {
                s->stop_signal = sig;
                if (s->ckpt_dir) {
                    if (write_checkpoint(s, step, err) != 0)
                        return -1;
                    s->stopped_ckpt = 1;
                }
            } else if (every > 0 && step % every == 0 && step % s->steps_per_epoch != 0) {
                /* at the end of an epoch it waits for the evaluation (below) */
                if (write_checkpoint(s, step, err) != 0)
                    return -1;
            }
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
        watchdog_phase(s->watchdog, step, WATCH_IDLE);
        if (progress)
            progress_clear(stderr);

        double t_eval = comm_time(), test[3] = {0};
        if (s->has_test && !s->stop_signal)
            evaluate(s, test);
        double red[9] = {sums[0], sums[1], sums[2], sums[3], sums[4], sums[5],
                         test[0], test[1], test[2]};
        comm_allreduce_sum_double(red, 9);
        double eval_seconds = comm_time() - t_eval;
        seconds = comm_allreduce_max_double(seconds);

        dp_epoch_record r = {0};
        r.epoch = epoch;
        r.step = step;
        r.partial = in_epoch < s->steps_per_epoch || first_in_epoch > 0;
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
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        r.max_rss_mib = (double)comm_allreduce_max_i64(ru.ru_maxrss) / 1024.0;
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
            printf(" | %.0f img/s %.1f s (comm %.1f s) eval %.1f s | %.0f MiB/rank\n",
                   r.images_per_sec, r.seconds, r.comm_seconds, r.eval_seconds, r.max_rss_mib);
            fflush(stdout);
        }
        int rc = 0;
        if (s->metrics)
            rc = metrics_write(s->metrics, &r, err);
        if (comm_agree(c, rc, err))
            return -1;
        s->last_step = step;
        if (s->stop_signal)
            break;
        if (in_epoch == s->steps_per_epoch && s->ckpt_dir && step != s->last_ckpt_step &&
            (s->cfg.checkpoint_every_epoch || (every > 0 && step % every == 0)) &&
            write_checkpoint(s, step, err) != 0)
            return -1;
    }
    return 0;
}

static int train_loop(run_state *s, dp_err *err)
{
    int rc = train_steps(s, err);
    comm_vote_finish(&s->vote); /* every rank leaves with the same vote in flight */
    return rc;
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
    reducer_free(s->reducer);
    free(s->bucket_begin);
    free(s->bucket_end);
    free(s->bucket_layer);
    watchdog_stop(s->watchdog);
    if (s->metrics)
        fclose(s->metrics);
    free(s->batch_idx);
    free(s->batch_labels);
    free(s->ranges);
    sampler_free(&s->sampler);
    workspace_free(&s->ws);
    sgd_free(&s->opt);
    model_free(&s->model);
    dataset_free(&s->train);
    dataset_free(&s->test);
    filelist_free(&s->train_files);
    filelist_free(&s->test_files);
}

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT"
                                                                                    : "a signal";
}

int dptrain_main(int argc, char **argv)
{
    run_state *s = calloc(1, sizeof *s);
    if (!s || comm_init(&argc, &argv, &s->comm) != 0) {
        fprintf(stderr, "dptrain: MPI initialisation failed\n");
        return 1;
    }
    stop_signals_install();
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
        } else if (s->stop_signal) {
            status = DP_EXIT_REQUEUE;
            if (s->comm.rank == 0 && !s->stopped_ckpt)
                fprintf(stderr, "dptrain: stopped by %s at step %ld: no checkpoint was "
                                "written (no --checkpoint-dir or --resume)%s\n",
                        signal_name(s->stop_signal), s->last_step, s->cfg.save ? "; --save skipped" : "");
            else if (say(s))
                printf("dptrain: stopped by %s at step %ld: checkpoint written; resume "
                       "with --resume %s (exit status %d)%s\n", signal_name(s->stop_signal), s->last_step,
                       s->ckpt_dir, DP_EXIT_REQUEUE, s->cfg.save ? "; --save skipped" : "");
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
    if (status == 1 && s->comm.rank == 0)
        fprintf(stderr, "dptrain: error: %s\n", err.msg);
    teardown(s);
    comm_finalize();
    free(s);
    return status;
}
