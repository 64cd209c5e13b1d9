/* setup: everything a run holds, made once before the first step (nothing is allocated
 * inside a step), and given back after the last; the end-of-run actions (--save, the stop
 * message). Every failure is agreed across ranks before anyone returns. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/driver/datasets.h"
#include "dptrain/driver/metrics.h"
#include "dptrain/driver/model_views.h"
#include "dptrain/driver/report.h"
#include "dptrain/driver/signals.h"
#include "dptrain/driver/threads.h"
#include "dptrain/net/isa.h"
#include "dptrain/net/threads.h"
#include "dptrain/persist/checkpoint.h"
#include "dptrain/persist/weights.h"
#include "dptrain/util/test_hooks.h"
#include "run.h"

static int say(const run_state *s) { return s->comm.rank == 0 && !s->cfg.quiet; }

/* The kernels' instruction set, once, before any kernel runs: --isa, else DPTRAIN_ISA,
 * else the widest this CPU offers (chosen before main already; selecting again reports a
 * DPTRAIN_ISA that could not be applied). Each rank chooses for its own CPU (every path
 * gives the same bits, so ranks on different CPUs still agree); a rank whose CPU lacks
 * the forced path, or bf16 products under --precision bf16, stops them all, none left
 * waiting in a collective. */
static int choose_kernels(run_state *s, dp_err *err)
{
    dp_isa_hide(test_hook_isa_lacking(s->comm.rank));
    return comm_agree(&s->comm, dp_isa_select(cli_isa_name(&s->cfg), err) ||
                                    dp_precision_select(cli_precision_name(&s->cfg), err) ||
                                    dp_conv_algorithm_select(
                                        cli_conv_algorithm_name(&s->cfg), err),
                      err);
}

/* Without --conv-algorithm a resumed run goes on under its checkpoint's algorithm, so that
 * a run begun under direct, the default before 2026-12-06 (and what a file without the
 * attribute ran), continues bit for bit. Rank 0 reads the picked checkpoint's; where there
 * is none, or it cannot be read, the default stays (the resume then starts afresh or
 * reports the file). */
static void conv_algorithm_of_checkpoint(run_state *s)
{
    dp_config *cfg = &s->cfg;
    if (!cfg->resume || cfg->conv_algorithm_given || !s->ckpt.resume_path[0])
        return;
    const int was = cfg->conv_algorithm;
    if (s->comm.rank == 0) {
        dp_ckpt_meta meta;
        dp_err ignored;
        memset(&meta, 0, sizeof meta);
        if (checkpoint_read_meta(s->ckpt.resume_path, &meta, &ignored) == 0) {
            cli_set_conv_algorithm(cfg, meta.conv_algorithm); /* unknown: the default stays */
            checkpoint_meta_free(&meta);
        }
    }
    comm_broadcast(&cfg->conv_algorithm, sizeof cfg->conv_algorithm, 0);
    if (cfg->conv_algorithm != was && say(s))
        printf("resume: note: --conv-algorithm %s, as the checkpoint ran (give the option to "
               "choose another)\n", cli_conv_algorithm_name(cfg));
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

/* The training files, the data plan, and the files this rank's part of them touches. */
static int load_train(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    if (datasets_open(c, cfg->train, "--train", &s->train_files, err))
        return -1;
    const dp_filelist *fl = &s->train_files;
    int rc = 0;
    if (fl->total < c->size)
        rc = dp_fail(err, "--train %s: %lld samples cannot give each of %d ranks at least one; use "
                          "fewer ranks", cfg->train, (long long)fl->total, c->size);
    else if (fl->total < cli_global_batch(cfg))
        rc = dp_fail(err, "--batch %d: larger than the %lld training samples", cli_global_batch(cfg),
                     (long long)fl->total);
    else
        rc = plan_create(&s->plan, fl->counts, fl->nfiles, cli_global_batch(cfg), cfg->group_size,
                         cfg->shuffle, cfg->seed, c->rank, c->size, err);
    if (rc == 0 && s->balancing) /* balance.h: the neighbours' files too */
        rc = plan_hold_neighbours(&s->plan, err);
    if (comm_agree(c, rc, err))
        return -1;
    const dp_plan *p = &s->plan;
    int64_t begin = p->file_hi > p->file_lo ? p->first[p->file_lo] : 0;
    int64_t end = p->file_hi > p->file_lo ? p->first[p->file_hi - 1] + p->counts[p->file_hi - 1]
                                          : 0;
    return datasets_load_range(c, fl, begin, end, "--train", &s->train, err);
}

/* --balance (cli_options.c), decided: whether the ranks' shares follow their speeds
 * (s->balancing) and whether each rank's threads' do (s->thread_balancing). auto: both,
 * unless a node has more ranks x threads than cores: they take turns on the cores then, and
 * their timings say nothing lasting. The same answer on every rank. Collective. */
static void balance_wanted(run_state *s)
{
    const int mode = s->cfg.balance;
    int on = mode == 2;
    if (mode == 0)
        on = comm_allreduce_max_i64(threads_oversubscribed(&s->comm, s->run.threads)) == 0;
    s->balancing = on && s->comm.size > 1;
    s->thread_balancing =
        on && s->run.threads > 1 && s->run.threads <= DP_THREADS_BALANCED_MAX ? s->run.threads : 0;
}

static int load_data(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    balance_wanted(s);
    if (load_train(s, err))
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

/* Fine-tuning weights trained on other inputs than this run feeds learns from a shift it
 * does not know about: say so (rank 0). */
static void note_init_normalize(const run_state *s)
{
    const dp_config *cfg = &s->cfg;
    dp_weights_info in;
    dp_err ignored = {{0}};
    if (!say(s) || weights_info(cfg->init_from, &in, &ignored) || in.normalize < 0 ||
        (in.normalize == cfg->normalize &&
         (!in.normalize || (in.mean == (double)cfg->mean && in.std == (double)cfg->std))))
        return;
    char was[64] = "pixel/255", now[64] = "pixel/255";
    if (in.normalize)
        snprintf(was, sizeof was, "(pixel/255 - %g) / %g", in.mean, in.std);
    if (cfg->normalize)
        snprintf(now, sizeof now, "(pixel/255 - %g) / %g", cfg->mean, cfg->std);
    printf("--init-from %s: note: those weights were trained on %s; this run feeds %s "
           "(--normalize)\n", cfg->init_from, was, now);
}

/* The model, its initial weights (or --init-from), --reinit and --freeze. */
static int build_model(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    int classes = 0;
    dp_class_sources from = {&s->train_files, &s->train, s->plan.owned_lo, s->plan.owned_hi,
                             cfg->train, s->has_test ? &s->test_files : NULL, cfg->test,
                             cfg->classes};
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
        else
            note_init_normalize(s);
    } else {
        model_init(&s->model, cfg->seed);
    }
    if (rc == 0 && cfg->reinit)
        rc = model_apply_layer_list(&s->model, cfg->reinit, "--reinit", 0, cfg->seed, err);
    if (rc == 0 && cfg->freeze)
        rc = model_apply_layer_list(&s->model, cfg->freeze, "--freeze", 1, cfg->seed, err);
    return comm_agree(c, rc, err);
}

/* The most groups and samples one pass gives this rank, under the plan's rule for ties. */
static void pass_sizes(run_state *s)
{
    const int N = s->cfg.accumulate;
    for (long t = 0; t < s->plan.steps; t++) {
        dp_step_share sh;
        plan_share(&s->plan, t, s->comm.rank, &sh);
        if (sh.group1 - sh.group0 > s->max_groups)
            s->max_groups = sh.group1 - sh.group0;
        for (int k = 0; k < N; k++) {
            const int n = sh.group1 - sh.group0;
            const int a = sh.group0 + (int)((long)n * k / N);
            const int b = sh.group0 + (int)((long)n * (k + 1) / N);
            const int slots = plan_group_slot(&s->plan, t, b) - plan_group_slot(&s->plan, t, a);
            s->max_local = slots > s->max_local ? slots : s->max_local;
        }
        if (!s->plan.reach)
            continue;
        /* balancing may give it any run of the groups of the files it holds */
        plan_share_most(&s->plan, t, s->comm.rank, &sh);
        const int n = sh.group1 - sh.group0, most = (n + N - 1) / N * s->cfg.group_size;
        const int slots = most < sh.slot1 - sh.slot0 ? most : sh.slot1 - sh.slot0;
        s->max_groups = n > s->max_groups ? n : s->max_groups;
        s->max_local = slots > s->max_local ? slots : s->max_local;
    }
}

/* The steps per epoch, the most samples a step gives this rank (when resuming, under
 * either rule for ties: the checkpoint may bring the other one), the schedule. */
static int plan_steps(run_state *s, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    dp_run_desc *run = &s->run;
    run->steps_per_epoch = s->plan.steps;
    const int ties = test_hook_ties(PLAN_TIES_SPREAD);
    int rc = plan_set_ties(&s->plan, ties, err);
    if (rc == 0)
        pass_sizes(s);
    if (rc == 0 && cfg->resume) {
        rc = plan_set_ties(&s->plan, ties == PLAN_TIES_SPREAD ? PLAN_TIES_LOWER : PLAN_TIES_SPREAD,
                           err);
        if (rc == 0)
            pass_sizes(s);
        if (rc == 0)
            rc = plan_set_ties(&s->plan, ties, err);
    }
    if (comm_agree(&s->comm, rc, err))
        return -1;
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

/* The update inside the sums' last pass where it gives the same bits (run.h). */
static void fuse_update(run_state *s)
{
    int fuse = optimizer_by_pieces(s->opt) && !(s->cfg.clip_grad_norm > 0.0);
    for (int i = 0; i < s->model.nparams; i++)
        fuse &= !s->views[i].trainable == !gradsync_reduces(s->sync, i);
    if (!fuse)
        return;
    s->update = (dp_optim_pieces){s->opt, s->model.weights, 0.0};
    gradsync_take_with(s->sync, optimizer_take_piece, &s->update);
}

/* The optimizer on the parameter views, and the gradient buckets. */
static int make_optimizer(run_state *s, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    s->views = model_param_views(&s->model, err);
    if (!s->views)
        return -1;
    dp_optim_config oc = {.kind = cli_optimizer_name(cfg), .momentum = cfg->momentum,
                          .weight_decay = cfg->weight_decay, .nesterov = cfg->nesterov,
                          .beta1 = cfg->beta1, .beta2 = cfg->beta2, .eps = cfg->eps,
                          .trust_coefficient = cfg->trust_coefficient,
                          .exclude_bias = cfg->exclude_bias};
    if (optimizer_create(&s->opt, &oc, s->views, s->model.nparams, err))
        return -1;
    int nseg = 0;
    dp_grad_segment *seg = model_grad_segments(&s->model, &nseg, err);
    dp_grad_tensor *t = dp_calloc((size_t)s->model.nparams + 1, sizeof *t, "tensors", err);
    int rc = seg && t ? 0 : -1;
    for (int i = 0; rc == 0 && i < s->model.nparams; i++)
        t[i] = (dp_grad_tensor){s->model.params[i].offset, s->model.params[i].count};
    if (rc == 0)
        rc = gradsync_create(&s->sync, s->model.grads, s->model.size, seg, nseg, t,
                             s->model.nparams, (size_t)cfg->bucket_kb * 1024, cfg->overlap,
                             s->comm.size, err);
    if (rc == 0)
        fuse_update(s);
    free(seg);
    free(t);
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

/* Buffers, optimizer, gradient sum, metrics file, watchdog: everything a step touches. */
static int allocate(run_state *s, dp_err *err)
{
    const dp_comm *c = &s->comm;
    const dp_config *cfg = &s->cfg;
    s->eval_batch = s->max_local > 100 ? s->max_local : 100;
    int rc = make_optimizer(s, err);
    if (rc == 0)
        rc = workspace_create(&s->ws, &s->model, s->eval_batch, err);
    if (rc == 0) {
        s->sample_index = dp_calloc((size_t)s->eval_batch, sizeof(int64_t), "batch", err);
        s->batch_idx = dp_calloc((size_t)s->eval_batch, sizeof(int64_t), "batch", err);
        s->batch_labels = dp_calloc((size_t)s->eval_batch, 1, "batch", err);
        s->group_bounds = dp_calloc((size_t)s->max_groups + 1, sizeof(int), "batch", err);
        rc = s->sample_index && s->batch_idx && s->batch_labels && s->group_bounds ? 0 : -1;
    }
    if (rc == 0 && c->rank == 0 && cfg->metrics)
        rc = metrics_open(&s->metrics, cfg->metrics, err);
    if (rc == 0)
        rc = watchdog_start(&s->watchdog, cfg->watchdog, io_watchdog(cfg), c->rank, err);
    if (rc == 0 && c->rank == 0 && cfg->save)
        rc = check_writable_dir(cfg->save, "--save", err);
    return comm_agree(c, rc, err);
}

/* Collective, once every rank has its buffers: the gradient sum through shared memory
 * (--reduction), where it can be had. */
static int share_gradients(run_state *s, dp_err *err)
{
    const int mode = s->cfg.reduction; /* 0 auto, 1 mpi, 2 shm */
    if (mode == 1 || s->comm.size < 2)
        return 0;
    int rc = gradsync_share(s->sync, &s->comm, mode == 2, s->why_not_shared,
                            sizeof s->why_not_shared, err);
    return comm_agree(&s->comm, rc, err);
}

/* The progress bar or lines (rank 0), the step log and the trace. */
static int start_observers(run_state *s, dp_err *err)
{
    const dp_config *cfg = &s->cfg;
    progress_init(&s->progress, s->comm.rank == 0 ? cfg->progress : 0, cfg->quiet, s->epochs,
                  s->run.total_steps, cli_global_batch(cfg));
    int rc = observe_create(&s->obs, &s->comm, cfg, s->metrics, &s->model, s->sync,
                            s->run.total_steps - s->step, s->max_groups, err);
    if (comm_agree(&s->comm, rc, err))
        return -1;
    observe_start(s->obs, &s->comm);
    return 0;
}

/* The tests' fixed or moving split of the threads, and a thread made slow (test_hooks.h). */
static void test_thread_split(void)
{
    double shares[DP_THREADS_BALANCED_MAX], factor;
    int rotate = 0, slow = 0;
    const int T = test_hook_thread_split(shares, DP_THREADS_BALANCED_MAX, &rotate);
    if (T)
        dp_threads_force(shares, T, rotate);
    if ((factor = test_hook_thread_slow(&slow)) != 1.0)
        dp_threads_slow(slow, factor);
}

static void show_banner(const run_state *s)
{
    dp_banner b = {&s->cfg, &s->model, &s->train_files, s->has_test ? &s->test_files : NULL,
                   &s->plan, s->run.threads, s->run.steps_per_epoch, s->run.total_steps,
                   s->epochs, gradsync_buckets(s->sync), threads_cores_allowed(),
                   gradsync_shared(s->sync), s->why_not_shared, s->thread_balancing};
    report_banner(&s->comm, &b);
}

int setup(run_state *s, dp_err *err)
{
    dp_config *cfg = &s->cfg;
    s->run.cfg = cfg;
    if (cfg->overlap < 0) /* within a node nothing overlaps the copies: see cli_options */
        cfg->overlap = s->comm.nodes > 1;
    s->run.train_files = &s->train_files;
    s->run.plan = &s->plan;
    s->run.ranks = s->comm.size;
    s->run.threads = cfg->threads > 0 ? cfg->threads : threads_default(&s->comm);
    omp_set_num_threads(s->run.threads);
    s->norm = (dp_input_norm){cfg->normalize, cfg->mean, cfg->std};
    if (ckpt_policy_pick(&s->ckpt, &s->comm, cfg, err))
        return -1;
    conv_algorithm_of_checkpoint(s);
    if (choose_kernels(s, err) || load_data(s, err) || build_model(s, err))
        return -1;
    if (plan_steps(s, err) || allocate(s, err) || share_gradients(s, err))
        return -1;
    if (comm_agree(&s->comm, balance_init(&s->balance, &s->comm, s->balancing,
                                          s->cfg.balance == 1, s->thread_balancing, err), err))
        return -1;
    test_thread_split();
    watchdog_phase(s->watchdog, 0, WATCH_RESUME);
    if (ckpt_policy_setup(&s->ckpt, &s->comm, cfg, &s->plan, &s->train, err) ||
        ckpt_policy_resume(&s->ckpt, &s->comm, &s->run, &s->model, s->opt, s->sync, &s->step,
                           err) ||
        ckpt_policy_claim(&s->ckpt, &s->comm, cfg, err))
        return -1;
    watchdog_phase(s->watchdog, s->step, WATCH_IDLE);
    if (start_observers(s, err))
        return -1;
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
    dp_weights_info info = {.normalize = cfg->normalize, .mean = cfg->mean, .std = cfg->std};
    snprintf(info.precision, sizeof info.precision, "%s", cli_precision_name(cfg));
    snprintf(info.conv_algorithm, sizeof info.conv_algorithm, "%s", cli_conv_algorithm_name(cfg));
    int rc = s->comm.rank == 0 ? weights_save(&s->model, cfg->save, &info, err) : 0;
    if (rc)
        dp_prefix(err, "--save");
    watchdog_written(s->watchdog, s->comm.rank, s->step);
    if (comm_agree(&s->comm, rc, err) != 0)
        return 1;
    if (say(s))
        printf("saved weights to %s\n", cfg->save);
    return 0;
}

void teardown(run_state *s)
{
    observe_free(s->obs);
    gradsync_free(s->sync);
    watchdog_stop(s->watchdog);
    if (s->metrics)
        fclose(s->metrics);
    free(s->batch_idx);
    free(s->batch_labels);
    free(s->group_bounds);
    plan_free(&s->plan);
    balance_free(&s->balance);
    free(s->sample_index);
    workspace_free(&s->ws);
    optimizer_free(s->opt);
    free(s->views);
    model_free(&s->model);
    dataset_free(&s->train);
    dataset_free(&s->test);
    filelist_free(&s->train_files);
    filelist_free(&s->test_files);
}
