/* setup: everything a run holds, made once before the first step (nothing is allocated
 * inside a step), and given back after the last; the end-of-run actions (--save, the stop
 * message). Every failure is agreed across ranks before anyone returns. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/driver/datasets.h"
#include "dptrain/driver/metrics.h"
#include "dptrain/driver/model_views.h"
#include "dptrain/driver/report.h"
#include "dptrain/driver/signals.h"
#include "dptrain/persist/weights.h"
#include "run.h"

static int say(const run_state *s) { return s->comm.rank == 0 && !s->cfg.quiet; }

/* OMP_NUM_THREADS, else the cores this rank may use, capped at its share of the node. */
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

static int load_data(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    if (datasets_load_share(c, s->cfg.train, "--train", 1, &s->train_files, &s->train, err))
        return -1;
    s->has_test = strcmp(s->cfg.test, "none") != 0;
    if (!s->has_test)
        return 0;
    if (datasets_load_share(c, s->cfg.test, "--test", 0, &s->test_files, &s->test, err))
        return -1;
    const dp_filelist *t = &s->test_files, *f = &s->train_files;
    int rc = 0;
    if (t->c != f->c || t->h != f->h || t->w != f->w)
        rc = dp_fail(err, "--test %s: samples are %dx%dx%d but the training samples are "
                          "%dx%dx%d", s->cfg.test, t->c, t->h, t->w, f->c, f->h, f->w);
    return comm_agree(c, rc, err);
}

/* The model, its initial weights (or --init-from), --reinit and --freeze. */
static int build_model(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    int classes = 0;
    dp_class_sources from = {&s->train_files, &s->train, cfg->train,
                             s->has_test ? &s->test_files : NULL, cfg->test, cfg->classes};
    const char *why = cfg->classes ? "--classes" : "from the training data";
    /* every label below the classes: the loss reads the logit of each label */
    if (datasets_classes(c, &from, &classes, err) ||
        datasets_check_labels(c, &s->train_files, &s->train, classes, "--train", why, err) ||
        (s->has_test &&
         datasets_check_labels(c, &s->test_files, &s->test, classes, "--test", why, err)))
        return -1;
    int rc = model_build(&s->model, cfg->model, s->train_files.c, s->train_files.h,
                         s->train_files.w, classes, err);
    if (comm_agree(c, rc, err))
        return -1;
    if (cfg->init_from) {
        rc = weights_load(&s->model, cfg->init_from, err);
        if (rc)
            dp_prefix(err, "--init-from");
    } else {
        model_init(&s->model, cfg->seed);
    }
    if (rc == 0 && cfg->reinit)
        rc = model_apply_layer_list(&s->model, cfg->reinit, "--reinit", 0, cfg->seed, err);
    if (rc == 0 && cfg->freeze)
        rc = model_apply_layer_list(&s->model, cfg->freeze, "--freeze", 1, cfg->seed, err);
    return comm_agree(c, rc, err);
}

/* The batch split over the ranks, the steps per epoch and the learning-rate schedule. */
static int plan_steps(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    const int P = c->size, B = cfg->batch;
    int rc = 0;
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
    dp_run_desc *run = &s->run;
    run->steps_per_epoch = (long)(s->train_files.total / B);
    run->total_steps = cfg->epochs > 0 ? run->steps_per_epoch * cfg->epochs : cfg->steps;
    if (cfg->epochs > 0 && cfg->steps >= 0 && cfg->steps < run->total_steps)
        run->total_steps = cfg->steps;
    s->epochs = (int)((run->total_steps + run->steps_per_epoch - 1) / run->steps_per_epoch);
    if (run->total_steps < 0)
        run->total_steps = 0;
    s->lr.kind = cfg->schedule;
    s->lr.base = cli_peak_lr(cfg);
    s->lr.warmup_steps = (long)llround(cfg->warmup_epochs * run->steps_per_epoch);
    run->schedule_steps = cfg->epochs > 0 ? run->steps_per_epoch * cfg->epochs : run->total_steps;
    s->lr.total_steps = run->schedule_steps;
    s->lr.step_every = (long)llround(cfg->step_epochs * run->steps_per_epoch);
    if (s->lr.step_every < 1)
        s->lr.step_every = 1;
    s->lr.gamma = cfg->gamma;
    return 0;
}

/* The optimizer on the parameter views, and the gradient buckets. */
static int make_optimizer(run_state *s, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    s->views = model_param_views(&s->model, err);
    if (!s->views)
        return -1;
    dp_optim_config oc = {"sgd", cfg->momentum, cfg->weight_decay, cfg->nesterov};
    if (optimizer_create(&s->opt, &oc, s->views, s->model.nparams, err))
        return -1;
    int nseg = 0;
    dp_grad_segment *seg = model_grad_segments(&s->model, &nseg, err);
    if (!seg)
        return -1;
    int rc = gradsync_create(&s->sync, s->model.grads, s->model.size, seg, nseg,
                             (size_t)cfg->bucket_kb * 1024, cfg->overlap, s->comm.size, err);
    free(seg);
    return rc;
}

/* The slow phases' limit: --watchdog-io, else 10 x --watchdog and at least 120 s (a
 * checkpoint on a busy shared file system), else off. */
static double io_watchdog(const dp_config *cfg)
{
    if (cfg->watchdog_io > 0)
        return cfg->watchdog_io;
    return cfg->watchdog > 0 ? fmax(10.0 * cfg->watchdog, 120.0) : 0.0;
}

/* Buffers, optimizer, sampler, metrics file, watchdog: everything a step touches. */
static int allocate(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    s->eval_batch = s->max_local_batch > 100 ? s->max_local_batch : 100;
    int rc = make_optimizer(s, err);
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
    if (rc == 0)
        rc = watchdog_start(&s->watchdog, cfg->watchdog, io_watchdog(cfg), c->rank, err);
    if (rc == 0 && c->rank == 0 && cfg->save)
        rc = check_writable_dir(cfg->save, "--save", err);
    return comm_agree(c, rc, err);
}

static void show_banner(const run_state *s)
{
    dp_banner b = {&s->cfg, &s->model, &s->train_files, s->has_test ? &s->test_files : NULL,
                   (long)s->train.n, s->run.threads, s->max_local_batch, s->run.steps_per_epoch,
                   s->run.total_steps, s->epochs, gradsync_buckets(s->sync)};
    report_banner(&s->comm, &b);
}

int setup(run_state *s, dp_err *err)
{
    dp_config *cfg = &s->cfg;
    s->run.cfg = cfg;
    s->run.train_files = &s->train_files;
    s->run.threads = cfg->threads > 0 ? cfg->threads : default_threads(&s->comm);
    omp_set_num_threads(s->run.threads);
    s->norm = (dp_input_norm){cfg->normalize, cfg->mean, cfg->std};
    if (load_data(s, err) || build_model(s, err) || plan_steps(s, err) || allocate(s, err))
        return -1;
    watchdog_phase(s->watchdog, 0, WATCH_RESUME);
    if (ckpt_policy_setup(&s->ckpt, &s->comm, cfg, &s->train, err) ||
        ckpt_policy_resume(&s->ckpt, &s->comm, &s->run, &s->model, s->opt, &s->sampler, &s->step,
                           err) ||
        ckpt_policy_claim(&s->ckpt, &s->comm, cfg, err))
        return -1;
    watchdog_phase(s->watchdog, s->step, WATCH_IDLE);
    show_banner(s);
    return 0;
}

int finish_run(run_state *s, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    if (s->stop_signal) {
        const char *skipped = cfg->save ? "; --save skipped" : "";
        if (s->comm.rank == 0 && !s->stopped_ckpt)
            fprintf(stderr, "dptrain: stopped by %s at step %ld: no checkpoint was written (no "
                            "--checkpoint-dir or --resume)%s\n", signal_name(s->stop_signal),
                    s->step, skipped);
        else if (say(s))
            printf("dptrain: stopped by %s at step %ld: checkpoint written; resume with --resume "
                   "%s (exit status %d)%s\n", signal_name(s->stop_signal), s->step, s->ckpt.dir,
                   DP_EXIT_REQUEUE, skipped);
        return DP_EXIT_REQUEUE;
    }
    if (!cfg->save)
        return 0;
    watchdog_phase(s->watchdog, s->step, WATCH_SAVE);
    int rc = s->comm.rank == 0 ? weights_save(&s->model, cfg->save, err) : 0;
    if (rc)
        dp_prefix(err, "--save");
    if (comm_agree(&s->comm, rc, err) != 0)
        return 1;
    if (say(s))
        printf("saved weights to %s\n", cfg->save);
    return 0;
}

void teardown(run_state *s)
{
    gradsync_free(s->sync);
    watchdog_stop(s->watchdog);
    if (s->metrics)
        fclose(s->metrics);
    free(s->batch_idx);
    free(s->batch_labels);
    sampler_free(&s->sampler);
    workspace_free(&s->ws);
    optimizer_free(s->opt);
    free(s->views);
    model_free(&s->model);
    dataset_free(&s->train);
    dataset_free(&s->test);
    filelist_free(&s->train_files);
    filelist_free(&s->test_files);
}
