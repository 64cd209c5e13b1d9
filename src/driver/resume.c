#include "dptrain/driver/resume.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dptrain/persist/checkpoint.h"

static int say(const dp_comm *c, const dp_config *cfg) { return c->rank == 0 && !cfg->quiet; }

/* The configuration a checkpoint records. */
static void describe_config(dp_ckpt_meta *m, const dp_run_desc *run, const dp_model *model)
{
    const dp_config *cfg = run->cfg;
    snprintf(m->model_spec, sizeof m->model_spec, "%s", model->spec);
    m->global_batch = cli_global_batch(cfg);
    m->seed = cfg->seed;
    m->shuffle = cfg->shuffle;
    m->lr = cfg->lr;
    m->momentum = cfg->momentum;
    m->weight_decay = cfg->weight_decay;
    m->warmup_epochs = cfg->warmup_epochs;
    m->step_epochs = cfg->step_epochs;
    m->gamma = cfg->gamma;
    m->nesterov = cfg->nesterov;
    snprintf(m->optimizer, sizeof m->optimizer, "%s", cli_optimizer_name(cfg));
    snprintf(m->precision, sizeof m->precision, "%s", cli_precision_name(cfg));
    snprintf(m->conv_algorithm, sizeof m->conv_algorithm, "%s", cli_conv_algorithm_name(cfg));
    m->beta1 = cfg->beta1;
    m->beta2 = cfg->beta2;
    m->eps = cfg->eps;
    m->trust_coefficient = cfg->trust_coefficient;
    m->exclude_bias = cfg->exclude_bias;
    m->schedule = cfg->schedule;
    m->epochs = cfg->epochs;
    m->steps = cfg->steps;
    m->group_size = cfg->group_size;
    m->normalize = cfg->normalize;
    m->mean = cfg->mean;
    m->std = cfg->std;
    snprintf(m->train, sizeof m->train, "%s", cfg->train);
    snprintf(m->frozen, sizeof m->frozen, "%s", cfg->freeze ? cfg->freeze : "");
}

/* Everything a checkpoint records: nothing of it depends on the rank count. */
static int fill_meta(dp_ckpt_meta *m, const dp_run_desc *run, const dp_model *model,
                     const dp_gradsync *sync, long step, uint64_t data_checksum,
                     const char *run_id)
{
    memset(m, 0, sizeof *m);
    m->format = DP_CKPT_FORMAT;
    m->step = step;
    m->steps_per_epoch = run->steps_per_epoch;
    m->total_steps = run->schedule_steps; /* what the schedule depends on */
    m->ranks = run->ranks;
    m->threads = run->threads;
    describe_config(m, run, model);
    const dp_filelist *fl = run->train_files;
    m->ties = run->plan->ties;
    m->train_total = fl->total;
    m->c = fl->c;
    m->h = fl->h;
    m->w = fl->w;
    m->num_classes = model->num_classes;
    m->nfiles = fl->nfiles;
    m->data_checksum = data_checksum;
    m->file_paths = fl->paths;
    m->file_counts = fl->counts;
    snprintf(m->run_id, sizeof m->run_id, "%s", run_id);
    m->nsync = gradsync_exponent_count(sync);
    m->sync_state = calloc((size_t)m->nsync + 1, sizeof(int32_t));
    int *e = calloc((size_t)m->nsync + 1, sizeof(int));
    if (!m->sync_state || !e) {
        free(e);
        return -1;
    }
    gradsync_get_exponents(sync, e);
    for (int i = 0; i < m->nsync; i++)
        m->sync_state[i] = e[i];
    free(e);
    return 0;
}

int ckpt_policy_write(dp_ckpt_policy *p, const dp_comm *c, const dp_run_desc *run,
                      const dp_model *m, const dp_optimizer *opt, const dp_gradsync *sync,
                      long step, dp_watchdog *watchdog, dp_err *err)
{
    dp_ckpt_meta meta = {0}; /* filled on rank 0 only */
    double t0 = comm_time();
    char path[4096] = "";
    int rc = 0;
    if (c->rank == 0) {
        rc = fill_meta(&meta, run, m, sync, step, p->data_checksum, p->run_id);
        if (rc)
            dp_fail(err, "--checkpoint-dir: out of memory");
        else
            rc = checkpoint_write(p->dir, m, opt, &meta, run->cfg->keep, path, sizeof path, err);
    }
    checkpoint_meta_free(&meta);
    watchdog_written(watchdog, c->rank, step);
    if (comm_agree(c, rc, err))
        return -1;
    p->last_step = step;
    if (say(c, run->cfg)) {
        printf("checkpoint: %s (step %ld, %.2f s)\n", path, step, comm_time() - t0);
        fflush(stdout);
    }
    return 0;
}

int ckpt_policy_due(const dp_ckpt_policy *p, const dp_config *cfg, long step,
                    long steps_per_epoch, int end_of_epoch)
{
    const long every = cfg->checkpoint_every;
    if (!p->dir)
        return 0;
    if (!end_of_epoch) /* at the end of an epoch it waits for the evaluation */
        return every > 0 && step % every == 0 && step % steps_per_epoch != 0;
    return step != p->last_step &&
           (cfg->checkpoint_every_epoch || (every > 0 && step % every == 0));
}

/* ---- resuming ----------------------------------------------------------------------- */

/* "3 files of 200, 200, 200 samples" (cut short to fit). */
static void describe_files(int nfiles, const int64_t *counts, char *out, size_t len)
{
    snprintf(out, len, "%d file%s of ", nfiles, nfiles == 1 ? "" : "s");
    for (int i = 0; i < nfiles && strlen(out) + 32 < len; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%lld", i ? ", " : "",
                 (long long)counts[i]);
    if (nfiles > 0 && strlen(out) + 32 >= len)
        snprintf(out + strlen(out), len - strlen(out), ", ...");
    snprintf(out + strlen(out), len - strlen(out), " samples");
}

/* The same samples split into other files give the same size and checksum, but another
 * share per rank and another data order: refused, naming both splits. */
static int refuse_file_counts(const dp_ckpt_meta *m, const dp_filelist *fl, const char *train,
                              const char *path, dp_err *err)
{
    int same = m->nfiles == fl->nfiles && m->saved_counts;
    for (int i = 0; same && i < fl->nfiles; i++)
        same = m->saved_counts[i] == fl->counts[i];
    if (same)
        return 0;
    char was[256], now[256];
    describe_files(m->nfiles, m->saved_counts, was, sizeof was);
    describe_files(fl->nfiles, fl->counts, now, sizeof now);
    return dp_fail(err, "--resume %s: the training files differ: the checkpoint was trained on "
                        "%s (--train %s), this run has %s (--train %s)", path, was, m->train,
                   now, train);
}

/* The differences that make a checkpoint another run's: refused, naming them. */
static int refuse_differences(const dp_ckpt_meta *m, const dp_run_desc *run, const dp_model *model,
                              uint64_t checksum, const char *path, dp_err *err)
{
    const dp_config *cfg = run->cfg;
    const dp_filelist *fl = run->train_files;
    if (strcmp(m->model_spec, model->spec) != 0)
        return dp_fail(err, "--resume %s: the model differs: the checkpoint has '%s', this run "
                            "'%s' (pass the same --model)", path, m->model_spec, model->spec);
    if (m->global_batch != cli_global_batch(cfg))
        return dp_fail(err, "--resume %s: the global batch differs: the checkpoint has %d, this "
                            "run --batch %d%s", path, m->global_batch, cli_global_batch(cfg),
                       cfg->accumulate > 1 ? " (--batch x --accumulate)" : "");
    if (m->train_total != fl->total || m->c != fl->c || m->h != fl->h || m->w != fl->w)
        return dp_fail(err, "--resume %s: the training data differ: the checkpoint was trained "
                            "on %s (%lld samples of %dx%dx%d), this run has --train %s (%lld "
                            "samples of %dx%dx%d)", path, m->train, (long long)m->train_total,
                       m->c, m->h, m->w, cfg->train, (long long)fl->total, fl->c, fl->h, fl->w);
    if (refuse_file_counts(m, fl, cfg->train, path, err))
        return -1;
    if (m->data_checksum != checksum)
        return dp_fail(err, "--resume %s: the training data differ: same size (%lld samples) "
                            "but a different content checksum (checkpoint %016llx, --train %s "
                            "%016llx)", path, (long long)m->train_total,
                       (unsigned long long)m->data_checksum, cfg->train,
                       (unsigned long long)checksum);
    if (m->group_size != cfg->group_size)
        return dp_fail(err, "--resume %s: the gradient groups differ: the checkpoint has "
                            "--group-size %d, this run %d (pass the same --group-size)", path,
                       m->group_size, cfg->group_size);
    if (m->nsync != model->nparams)
        return dp_fail(err, "--resume %s: the gradient sum's state holds %d tensors, the model "
                            "%d", path, m->nsync, model->nparams);
    if (m->steps_per_epoch != run->steps_per_epoch)
        return dp_fail(err, "--resume %s: steps per epoch differ (%ld vs %ld)", path,
                       m->steps_per_epoch, run->steps_per_epoch);
    return 0;
}

#define NOTE_IF(cond, ...)                                                                     \
    do {                                                                                      \
        if (cond)                                                                             \
            snprintf(notes + strlen(notes), sizeof notes - strlen(notes), __VA_ARGS__);       \
    } while (0)

/* The settings only some optimizers read, when this run's optimizer reads them (the
 * optimizer itself is the checkpoint's: another is refused with its state). */
static void note_optimizer_differences(const dp_ckpt_meta *m, const dp_config *cfg,
                                       char *notes, size_t len)
{
    const int adam = cfg->optimizer == OPT_LAMB || cfg->optimizer == OPT_ADAMW;
    const int adapts = cfg->optimizer == OPT_LARS || cfg->optimizer == OPT_LAMB;
    if (adam && (m->beta1 != cfg->beta1 || m->beta2 != cfg->beta2))
        snprintf(notes + strlen(notes), len - strlen(notes), " --beta1/--beta2 (%g, %g, was %g, "
                 "%g)", cfg->beta1, cfg->beta2, m->beta1, m->beta2);
    if (adam && m->eps != cfg->eps)
        snprintf(notes + strlen(notes), len - strlen(notes), " --eps (%g, was %g)", cfg->eps,
                 m->eps);
    if (cfg->optimizer == OPT_LARS && m->trust_coefficient != cfg->trust_coefficient)
        snprintf(notes + strlen(notes), len - strlen(notes), " --trust-coefficient (%g, was %g)",
                 cfg->trust_coefficient, m->trust_coefficient);
    if (adapts && m->exclude_bias != cfg->exclude_bias)
        snprintf(notes + strlen(notes), len - strlen(notes), " the biases' exclusion from "
                 "adaptation");
}

/* Accepted differences: say what they mean. */
static void note_differences(const dp_ckpt_meta *m, const dp_run_desc *run)
{
    const dp_config *cfg = run->cfg;
    char notes[1024] = "";
    NOTE_IF(m->lr != cfg->lr, " --lr (%g, was %g)", cfg->lr, m->lr);
    NOTE_IF(m->momentum != cfg->momentum, " --momentum (%g, was %g)", cfg->momentum, m->momentum);
    NOTE_IF(m->weight_decay != cfg->weight_decay, " --weight-decay (%g, was %g)",
            cfg->weight_decay, m->weight_decay);
    NOTE_IF(m->nesterov != cfg->nesterov, " --nesterov");
    note_optimizer_differences(m, cfg, notes, sizeof notes);
    NOTE_IF(m->schedule != (int)cfg->schedule || m->warmup_epochs != cfg->warmup_epochs ||
                m->step_epochs != cfg->step_epochs || m->gamma != cfg->gamma,
            " the learning-rate schedule");
    NOTE_IF(m->total_steps != run->schedule_steps, " the schedule's length (%ld steps, was %ld)",
            run->schedule_steps, m->total_steps);
    NOTE_IF(m->seed != cfg->seed, " --seed (%llu, was %llu)", (unsigned long long)cfg->seed,
            (unsigned long long)m->seed);
    NOTE_IF(m->shuffle != cfg->shuffle, " shuffling");
    NOTE_IF(m->normalize != cfg->normalize || (m->normalize && (m->mean != (double)cfg->mean ||
                                                               m->std != (double)cfg->std)),
            " --normalize");
    NOTE_IF(strcmp(m->frozen, cfg->freeze ? cfg->freeze : "") != 0, " --freeze");
    NOTE_IF(strcmp(m->precision, cli_precision_name(cfg)) != 0, " --precision (%s, was %s)",
            cli_precision_name(cfg), m->precision);
    NOTE_IF(strcmp(m->conv_algorithm, cli_conv_algorithm_name(cfg)) != 0,
            " --conv-algorithm (%s, was %s)", cli_conv_algorithm_name(cfg), m->conv_algorithm);
    if (notes[0])
        printf("resume: note: changed since the checkpoint:%s; the run continues with the new "
               "settings, so it will not match an uninterrupted run\n", notes);
    if (m->threads != run->threads)
        printf("resume: note: %d threads per rank (the checkpoint ran %d); results do not depend "
               "on the thread count\n", run->threads, m->threads);
}
#undef NOTE_IF

/* The gradient sum's bounds, so the next steps round exactly as they would have. */
static void restore_sync(dp_gradsync *sync, const dp_ckpt_meta *meta, const dp_comm *c, int say)
{
    int *e = calloc((size_t)meta->nsync + 1, sizeof(int));
    if (!e)
        comm_abort(1); /* every rank is here together: end the job rather than hang it */
    for (int i = 0; i < meta->nsync; i++)
        e[i] = meta->sync_state[i];
    gradsync_set_exponents(sync, e);
    free(e);
    if (say && meta->ranks != c->size)
        printf("resume: the checkpoint was written by %d rank%s, this run has %d: the run "
               "continues exactly as it would have (the data order and the gradient sums do "
               "not depend on the rank count)\n", meta->ranks, meta->ranks > 1 ? "s" : "",
               c->size);
}

/* The data order goes on under the rule for ties the checkpoint was written under (older
 * files: the lower file first), so the rest of its epoch draws the samples it would have. */
static int restore_ties(const dp_run_desc *run, const dp_ckpt_meta *meta, int talk,
                        const char *path, dp_err *err)
{
    if (meta->ties == run->plan->ties)
        return 0;
    if (meta->ties != PLAN_TIES_LOWER && meta->ties != PLAN_TIES_SPREAD)
        return dp_fail(err, "--resume %s: data_order_ties is %d, a rule this program does "
                            "not know (0 or 1; written by a newer dptrain?)", path, meta->ties);
    if (plan_set_ties(run->plan, meta->ties, err))
        return -1;
    if (talk && meta->ties == PLAN_TIES_LOWER)
        printf("resume: the checkpoint was written before 2026-12-03: its data order (samples "
               "due at the same time: the lower file first) goes on\n");
    else if (talk)
        printf("resume: the checkpoint's data order (samples due at the same time: in "
               "bit-reversed file order) goes on\n");
    return 0;
}

/* Read and check the checkpoint at path, restore everything from it. */
static int resume_from(dp_ckpt_policy *p, const dp_comm *c, const dp_run_desc *run, dp_model *m,
                       dp_optimizer *opt, dp_gradsync *sync, const char *path, long *start,
                       dp_err *err)
{
    dp_ckpt_meta meta;
    int rc = checkpoint_read_meta(path, &meta, err);
    if (rc != 0)
        return comm_agree(c, rc, err);
    snprintf(p->run_id, sizeof p->run_id, "%s", meta.run_id); /* the run goes on */
    rc = refuse_differences(&meta, run, m, p->data_checksum, path, err);
    if (rc == 0)
        rc = checkpoint_read_state(path, m, opt, err);
    if (rc == 0 && meta.step > run->total_steps)
        rc = dp_fail(err, "--resume %s: the checkpoint is at step %ld, past the %ld steps of "
                          "this run (raise --epochs or --steps)", path, meta.step,
                     run->total_steps);
    if (rc == 0 && say(c, run->cfg))
        note_differences(&meta, run);
    if (rc == 0)
        rc = restore_ties(run, &meta, say(c, run->cfg), path, err);
    if (rc == 0)
        restore_sync(sync, &meta, c, say(c, run->cfg));
    *start = meta.step;
    p->last_step = meta.step;
    checkpoint_meta_free(&meta);
    return comm_agree(c, rc, err);
}

int ckpt_policy_pick(dp_ckpt_policy *p, const dp_comm *c, const dp_config *cfg, dp_err *err)
{
    p->resume_path[0] = '\0';
    if (!cfg->resume)
        return 0;
    /* Rank 0 picks the file, so every rank resumes from the same one. */
    char damaged[1024] = "";
    int rc = 0;
    if (c->rank == 0) {
        int found = checkpoint_find_latest(cfg->resume, p->resume_path, sizeof p->resume_path,
                                           damaged, sizeof damaged, err);
        rc = found < 0 ? dp_prefix(err, "--resume") : 0;
        if (damaged[0] && say(c, cfg))
            printf("resume: warning: skipped the damaged checkpoint %s\n", damaged);
        if (found == 1) { /* nothing to resume yet (a requeued job's first run) */
            p->resume_path[0] = '\0';
            if (say(c, cfg))
                printf("resume: %s; starting from the beginning\n", err->msg);
        }
    }
    if (comm_agree(c, rc, err))
        return -1;
    comm_broadcast(p->resume_path, sizeof p->resume_path, 0);
    return 0;
}

int ckpt_policy_resume(dp_ckpt_policy *p, const dp_comm *c, const dp_run_desc *run, dp_model *m,
                       dp_optimizer *opt, dp_gradsync *sync, long *start_step, dp_err *err)
{
    const dp_config *cfg = run->cfg;
    *start_step = 0;
    if (!cfg->resume || !p->resume_path[0])
        return 0;
    if (resume_from(p, c, run, m, opt, sync, p->resume_path, start_step, err) != 0)
        return -1;
    if (say(c, cfg))
        printf("resume: %s: step %ld of %ld (epoch %ld, step %ld of %ld in it)\n",
               p->resume_path, *start_step, run->total_steps,
               *start_step / run->steps_per_epoch + 1, *start_step % run->steps_per_epoch,
               run->steps_per_epoch);
    return 0;
}

/* A fresh run's identity: 64 random bits (the clock and the process when there is no
 * /dev/urandom), as 16 hex digits. */
static void new_run_id(char id[DP_RUN_ID_LEN])
{
    uint64_t x = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&x, sizeof x, 1, f) != 1) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        x = ((uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec) ^
            ((uint64_t)getpid() << 40);
        x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull; /* SplitMix64's finaliser */
        x ^= x >> 29;
    }
    if (f)
        fclose(f);
    snprintf(id, DP_RUN_ID_LEN, "%016llx", (unsigned long long)x);
}

int ckpt_policy_setup(dp_ckpt_policy *p, const dp_comm *c, const dp_config *cfg,
                      const dp_plan *plan, const dp_dataset *train, dp_err *err)
{
    p->dir = cfg->checkpoint_dir ? cfg->checkpoint_dir : cfg->resume;
    const char *option = cfg->checkpoint_dir ? "--checkpoint-dir" : "--resume";
    p->last_step = -1;
    if (c->rank == 0)
        new_run_id(p->run_id); /* replaced by the resumed run's, if any */
    int rc = 0;
    if (c->rank == 0 && p->dir) {
        if (mkdir(p->dir, 0777) != 0 && errno != EEXIST)
            rc = dp_fail(err, "%s %s: cannot create the directory (%s)", option, p->dir,
                         strerror(errno));
        else if (access(p->dir, W_OK | X_OK) != 0)
            rc = dp_fail(err, "%s %s: not a writable directory", option, p->dir);
    }
    if (comm_agree(c, rc, err))
        return -1;
    if (!p->dir)
        return 0;
    /* A checksum of the training set that does not depend on the rank count: each rank
     * sums the samples of its own part (ranks may hold the same file). */
    uint64_t sum = 0;
    const size_t bytes = (size_t)train->c * train->h * train->w;
    for (int64_t g = plan->owned_lo; g < plan->owned_hi; g++) {
        int64_t i = g - train->first;
        sum += data_checksum_sample(g, train->images + (size_t)i * bytes, bytes,
                                    train->labels[i]);
    }
    p->data_checksum = comm_allreduce_sum_u64(sum);
    return 0;
}

/* ---- the directory belongs to one run ------------------------------------------------ */

/* "run 5f3e... (ckpt-00000010.h5 to ckpt-00000030.h5, 3 files)" for each other run in
 * list (newest first), at most three. */
static void describe_others(const dp_ckpt_entry *e, int n, const char *mine, char *out,
                            size_t len)
{
    out[0] = 0;
    int runs = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i].run_id, mine) == 0)
            continue;
        int seen = 0, files = 0, oldest = i;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(e[j].run_id, e[i].run_id) == 0;
        if (seen)
            continue;
        for (int j = i; j < n; j++)
            if (strcmp(e[j].run_id, e[i].run_id) == 0) {
                files++;
                oldest = j;
            }
        if (++runs > 3) {
            snprintf(out + strlen(out), len - strlen(out), "; and more");
            return;
        }
        snprintf(out + strlen(out), len - strlen(out), "%s%s%s (%s to %s, %d file%s)",
                 runs > 1 ? "; " : "", e[i].run_id[0] ? "run " : "a run without an identity",
                 e[i].run_id, e[oldest].name, e[i].name, files, files == 1 ? "" : "s");
    }
}

/* Rank 0: refuse, or with --overwrite-checkpoints delete, other runs' checkpoints. */
static int claim_directory(const dp_ckpt_policy *p, const dp_config *cfg, int say_it,
                           dp_err *err)
{
    dp_ckpt_entry *e = NULL;
    int n = 0, others = 0;
    if (checkpoint_list(p->dir, &e, &n, err) != 0)
        return -1;
    for (int i = 0; i < n; i++)
        others += strcmp(e[i].run_id, p->run_id) != 0;
    const char *option = cfg->checkpoint_dir ? "--checkpoint-dir" : "--resume";
    int rc = 0;
    if (others > 0 && !cfg->overwrite_checkpoints) {
        char names[700];
        describe_others(e, n, p->run_id, names, sizeof names);
        rc = dp_fail(err, "%s %s holds checkpoints of another run: %s. This run (run %s) "
                          "would mix its checkpoints with them; resume that run with --resume "
                          "%s, choose another directory, or pass --overwrite-checkpoints to "
                          "delete them and start over", option, p->dir, names, p->run_id,
                     p->dir);
    }
    for (int i = 0; rc == 0 && others > 0 && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", p->dir, e[i].name);
        if (strcmp(e[i].run_id, p->run_id) != 0 && unlink(path) != 0)
            rc = dp_fail(err, "--overwrite-checkpoints: cannot delete %s (%s)", path,
                         strerror(errno));
    }
    if (rc == 0 && others > 0 && say_it)
        printf("checkpoint: deleted %d checkpoint%s of other runs in %s "
               "(--overwrite-checkpoints)\n", others, others == 1 ? "" : "s", p->dir);
    free(e);
    return rc;
}

int ckpt_policy_claim(dp_ckpt_policy *p, const dp_comm *c, const dp_config *cfg, dp_err *err)
{
    if (!p->dir)
        return 0;
    int rc = c->rank == 0 ? claim_directory(p, cfg, say(c, cfg), err) : 0;
    if (rc == 0 && say(c, cfg))
        printf("checkpoint: run %s writes to %s\n", p->run_id, p->dir);
    return comm_agree(c, rc, err);
}
