/* train: the loop. Each step takes this rank's samples of the global batch, runs forward
 * and backward (gradient buckets reduced over the ranks while backward goes on), and
 * applies the optimizer; each epoch ends with the evaluation, the epoch line and record,
 * and the checkpoint the policy asks for. Everything else is a part's job: gradsync
 * (the mean gradient), resume (checkpoint policy), report (what the user reads),
 * datasets and batch (the data), model_views (what optim and gradsync see of the net). */
#include "dptrain/driver/train.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "dptrain/data/batch.h"
#include "dptrain/data/plan.h"
#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/dist/watchdog.h"
#include "dptrain/driver/cli.h"
#include "dptrain/driver/datasets.h"
#include "dptrain/driver/metrics.h"
#include "dptrain/driver/model_views.h"
#include "dptrain/driver/observe.h"
#include "dptrain/driver/progress.h"
#include "dptrain/driver/report.h"
#include "dptrain/driver/resume.h"
#include "dptrain/driver/signals.h"
#include "dptrain/net/model.h"
#include "dptrain/net/numerics.h"
#include "dptrain/optim/optim.h"
#include "dptrain/persist/weights.h"
#include "dptrain/util/test_hooks.h"
#include "run.h"

/* One epoch's sums over this rank, then over all ranks. */
typedef struct {
    double loss, correct, samples;       /* training */
    double comm, data, compute;          /* seconds */
    double test_loss, test_correct, test_samples;
} epoch_sums;
_Static_assert(sizeof(epoch_sums) == 9 * sizeof(double), "epoch_sums is reduced as doubles");

/* What one step's passes add up on this rank. */
typedef struct {
    double loss, correct, samples;
    double data, waited; /* seconds assembling batches, waiting for the reductions */
    double own;          /* seconds of this rank's own passes (balance.h) */
} step_figures;

static int say(const run_state *s) { return s->comm.rank == 0 && !s->cfg.quiet; }

/* The signal any rank received, agreed without waiting: each step reads the vote of the
 * step before and starts its own, so all ranks stop at the same step boundary. */
static int agreed_stop(run_state *s)
{
    if (s->comm.size == 1)
        return stop_requested();
    int sig = comm_vote_finish(&s->vote);
    comm_vote_start(&s->vote, stop_requested());
    return sig;
}

/* Groups [a, b) of step t: the k-th of the --accumulate passes over this rank's groups. */
static void pass_groups(const run_state *s, const dp_step_share *sh, int k, int *a, int *b)
{
    const int n = sh->group1 - sh->group0, N = s->cfg.accumulate;
    *a = sh->group0 + (int)((long)n * k / N);
    *b = sh->group0 + (int)((long)n * (k + 1) / N);
}

/* The samples of slots [slot0, slot1) of step t into the input: global indices (they pick
 * dropout masks), then the batch. */
static int assemble(run_state *s, long t, int slot0, int slot1)
{
    const int n = slot1 - slot0;
    plan_samples(&s->plan, t, slot0, slot1, s->sample_index);
    test_hook_samples(s->comm.rank, s->step, s->sample_index, n);
    for (int k = 0; k < n; k++)
        s->batch_idx[k] = s->sample_index[k] - s->train.first;
    batch_fill(s->ws.input, s->batch_labels, &s->train, s->batch_idx, 0, n, &s->norm);
    return n;
}

/* Forward over groups [a, b) at once, then backward layer by layer, each layer group by
 * group, each group's partial into the exact sum (the rank's last pass of the step closes
 * its buckets). */
static void groups_pass(run_state *s, long t, const dp_step_share *sh, int a, int b,
                        step_figures *f)
{
    const int slot0 = plan_group_slot(&s->plan, t, a), slot1 = plan_group_slot(&s->plan, t, b);
    double t0 = comm_time();
    const int n = assemble(s, t, slot0, slot1);
    f->data += comm_time() - t0;
    dp_pass pass = {.labels = s->batch_labels, .B = n, .train = 1, .seed = s->cfg.seed,
                    .step = s->step, .sample_index = s->sample_index,
                    .grad_scale = 1.0 / sh->slots, .done = gradsync_on_final,
                    .partial = gradsync_on_partial, .move = gradsync_on_move,
                    .fixed_open = gradsync_on_fixed_open,
                    .fixed_close = gradsync_on_fixed_close, .done_ctx = s->sync,
                    .timing = s->obs ? observe_layer : NULL, .timing_ctx = s->obs};
    int correct = 0;
    f->loss += model_forward(&s->model, &s->ws, &pass, &correct);
    f->correct += correct;
    f->samples += n;
    s->group_bounds[0] = 0;
    for (int j = a; j < b; j++)
        s->group_bounds[j - a + 1] = s->group_bounds[j - a] + plan_group_size(&s->plan, t, j);
    gradsync_pass(s->sync, b == sh->group1);
    model_backward_groups(&s->model, &s->ws, &pass, s->group_bounds, b - a);
}

/* The mean gradient of step t's global batch, the same bits on every rank. */
static void compute_gradient(run_state *s, long t, step_figures *f)
{
    plan_epoch(&s->plan, s->step / s->run.steps_per_epoch);
    dp_step_share sh;
    plan_share(&s->plan, t, s->comm.rank, &sh);
    int again;
    do { /* again: a partial exceeded its bound; the same answer on every rank */
        watchdog_phase(s->watchdog, s->step + 1, WATCH_COMPUTE);
        *f = (step_figures){0};
        const double t0 = comm_time();
        gradsync_begin(s->sync, sh.groups);
        for (int k = 0; k < s->cfg.accumulate; k++) {
            int a, b;
            pass_groups(s, &sh, k, &a, &b);
            if (b > a)
                groups_pass(s, t, &sh, a, b, f);
        }
        f->own = comm_time() - t0;
        watchdog_phase(s->watchdog, s->step + 1, WATCH_ALLREDUCE);
        again = gradsync_finish(s->sync, &f->waited); /* the stop vote follows, watched alike */
    } while (again);
}

/* One optimizer step on this rank's groups of the global batch. */
static int train_step(run_state *s, int epoch, epoch_sums *sums, double *lr, dp_err *err)
{
    observe_step_begin(s->obs, s->step + 1);
    const long t = s->step % s->run.steps_per_epoch;
    double t0 = comm_time();
    watchdog_phase(s->watchdog, s->step + 1, WATCH_COMPUTE);
    step_figures f;
    *lr = lr_at(&s->lr, s->step);
    s->update.lr = *lr; /* where the sums' pass makes the update (run.h) */
    compute_gradient(s, t, &f);
    double t2 = comm_time();
    int sig = agreed_stop(s); /* also waits for the others: the allreduce's limit */
    balance_note(&s->balance, (int)f.samples, f.own);
    balance_after_step(&s->balance, s->step + 1, &s->plan); /* every few steps, collective */
    watchdog_phase(s->watchdog, s->step + 1, WATCH_COMPUTE);
    double t3 = comm_time();
    /* Identical buffers on every rank: all ranks stop here together, or none. */
    int bad, nbad = gradsync_nonfinite(s->sync, &bad); /* no scan of the gradients */
    if (grads_guard(&s->model, s->step + 1, epoch, f.loss, s->cfg.clip_grad_norm, bad, nbad,
                    NULL, err))
        return -1;
    if (!gradsync_taken(s->sync)) /* else made as the sums were taken */
        optimizer_step(s->opt, s->model.weights, s->model.grads, *lr);
    s->step++;
    double t4 = comm_time();
    /* the step's marks as the observers read them: data first, the waiting last */
    observe_step_end(s->obs, s->step,
                     &(dp_step_marks){t0, t0 + f.data, t2 - f.waited, t3, t4}, f.loss,
                     (int)f.correct, (int)f.samples);
    sums->loss += f.loss;
    sums->correct += f.correct;
    sums->samples += f.samples;
    sums->comm += f.waited + (t3 - t2);
    sums->data += f.data;
    sums->compute += (t2 - t0 - f.waited - f.data) + (t4 - t3);
    if (sig)
        s->stop_signal = sig;
    return 0;
}

static int save_checkpoint(run_state *s, dp_err *err)
{
    /* Writing may take longer than a step: the slow phases' limit (the next step re-arms
     * the step limit). */
    watchdog_phase(s->watchdog, s->step, WATCH_CHECKPOINT);
    double t0 = comm_time();
    int rc = ckpt_policy_write(&s->ckpt, &s->comm, &s->run, &s->model, s->opt, s->sync, s->step,
                               s->watchdog, err);
    observe_span(s->obs, OBSERVE_CHECKPOINT, t0, comm_time());
    return rc;
}

/* The steps of one epoch (fewer when the run ends or stops in it). */
static int train_epoch(run_state *s, int epoch, long *in_epoch, epoch_sums *sums, double *lr,
                       dp_err *err)
{
    const long spe = s->run.steps_per_epoch, first = *in_epoch;
    const long epoch_steps = s->run.total_steps - (s->step - first) < spe
                                 ? s->run.total_steps - (s->step - first)
                                 : spe;
    progress_epoch_begin(&s->progress, epoch, first, epoch_steps, comm_time());
    for (; *in_epoch < spe && s->step < s->run.total_steps && !s->stop_signal; ++*in_epoch) {
        if (train_step(s, epoch, sums, lr, err))
            return -1;
        if (s->stop_signal && s->ckpt.dir) {
            if (save_checkpoint(s, err))
                return -1;
            s->stopped_ckpt = 1;
        } else if (!s->stop_signal && ckpt_policy_due(&s->ckpt, &s->cfg, s->step, spe, 0) &&
                   save_checkpoint(s, err)) {
            return -1;
        }
        if (observe_after_step(s->obs, s->step, epoch, *lr, comm_time() - s->start_time, 0,
                               &s->comm, err))
            return -1;
        progress_step(&s->progress, *in_epoch + 1, s->step, sums->loss / sums->samples,
                      comm_time());
    }
    progress_epoch_end(&s->progress, comm_time());
    return observe_after_step(s->obs, s->step, epoch, *lr, comm_time() - s->start_time, 1,
                              &s->comm, err);
}

/* Loss sum, correct count and sample count over this rank's test slice. */
static void evaluate(run_state *s, epoch_sums *sums)
{
    for (int64_t at = 0; at < s->test.n; at += s->eval_batch) {
        int B = (int)(s->test.n - at < s->eval_batch ? s->test.n - at : s->eval_batch);
        batch_fill(s->ws.input, s->batch_labels, &s->test, NULL, at, B, &s->norm);
        int correct = 0;
        dp_pass pass = {.labels = s->batch_labels, .B = B};
        sums->test_loss += model_forward_backward(&s->model, &s->ws, &pass, &correct);
        sums->test_correct += correct;
        sums->test_samples += B;
    }
}

/* The epoch's record from sums reduced over all ranks. */
static void fill_record(const run_state *s, dp_epoch_record *r, const epoch_sums *all, int epoch,
                        double lr, double seconds)
{
    const int P = s->comm.size;
    memset(r, 0, sizeof *r);
    r->epoch = epoch;
    r->step = s->step;
    r->lr = lr;
    r->train_loss = all->loss / all->samples;
    r->train_accuracy = all->correct / all->samples;
    r->has_test = s->has_test && all->test_samples > 0;
    r->test_loss = r->has_test ? all->test_loss / all->test_samples : 0.0;
    r->test_accuracy = r->has_test ? all->test_correct / all->test_samples : 0.0;
    r->images_per_sec = all->samples / seconds;
    r->seconds = seconds;
    r->comm_seconds = all->comm / P;
    r->data_seconds = all->data / P;
    r->compute_seconds = all->compute / P;
    r->wall_seconds = comm_time() - s->start_time;
    r->ranks = P;
    r->threads = s->run.threads;
    r->global_batch = cli_global_batch(&s->cfg);
    r->weights_checksum = weights_checksum(&s->model) >> 1; /* as the replica check prints */
}

/* Evaluation, the epoch line and record; agreed, so every rank returns the same. */
static int finish_epoch(run_state *s, int epoch, long in_epoch, long first, epoch_sums *sums,
                        double lr, double seconds, dp_err *err)
{
    double t_eval = comm_time();
    if (s->has_test && !s->stop_signal) {
        evaluate(s, sums);
        observe_span(s->obs, OBSERVE_EVAL, t_eval, comm_time());
    }
    watchdog_phase(s->watchdog, s->step, WATCH_EVAL_SUMS);
    comm_allreduce_sum_double((double *)sums, (int)(sizeof *sums / sizeof(double)));
    dp_epoch_record r;
    fill_record(s, &r, sums, epoch, lr, comm_allreduce_max_double(seconds));
    r.partial = in_epoch < s->run.steps_per_epoch || first > 0;
    r.eval_seconds = comm_time() - t_eval;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.max_rss_mib = (double)comm_allreduce_max_i64(ru.ru_maxrss) / 1024.0;
    if (!isfinite(r.train_loss)) /* the sums are identical on every rank: all stop here */
        return dp_fail(err, "training diverged in epoch %d (train loss %g by step %ld); lower "
                            "--lr or add --warmup-epochs", epoch, r.train_loss, s->step);
    if (say(s))
        report_epoch(&r);
    watchdog_phase(s->watchdog, s->step, WATCH_METRICS);
    int rc = s->metrics ? metrics_write(s->metrics, &r, err) : 0;
    watchdog_written(s->watchdog, s->comm.rank, s->step);
    return comm_agree(&s->comm, rc, err);
}

static int train_loop(run_state *s, dp_err *err)
{
    const long spe = s->run.steps_per_epoch;
    s->start_time = comm_time();
    int rc = 0;
    for (int epoch = (int)(s->step / spe) + 1; rc == 0 && s->step < s->run.total_steps; epoch++) {
        epoch_sums sums = {0};
        double lr = 0.0, t0 = comm_time();
        /* A resumed run starts mid-epoch; its first record covers the steps it ran. */
        long in_epoch = s->step % spe, first = in_epoch;
        rc = train_epoch(s, epoch, &in_epoch, &sums, &lr, err);
        double seconds = comm_time() - t0;
        watchdog_phase(s->watchdog, s->step, WATCH_EVAL);
        if (rc == 0)
            rc = finish_epoch(s, epoch, in_epoch, first, &sums, lr, seconds, err);
        if (rc || s->stop_signal)
            break;
        if (in_epoch == spe && ckpt_policy_due(&s->ckpt, &s->cfg, s->step, spe, 1))
            rc = save_checkpoint(s, err);
    }
    comm_vote_finish(&s->vote); /* every rank leaves with the same vote in flight */
    if (rc == 0)
        rc = observe_finish(s->obs, &s->comm, &s->model, s->sync, err);
    return rc;
}

int dptrain_main(int argc, char **argv)
{
    run_state *s = calloc(1, sizeof *s);
    dp_err err = {{0}};
    if (!s || comm_init(&argc, &argv, &s->comm, &err) != 0) {
        fprintf(stderr, "dptrain: error: %s\n", s ? err.msg : "out of memory");
        free(s);
        return 1;
    }
    stop_signals_install();
    int status = 0;
    int rc = cli_parse(argc, argv, &s->cfg, s->comm.rank == 0 ? stdout : NULL, &err);
    if (rc != 0) {
        if (rc < 0 && s->comm.rank == 0)
            fprintf(stderr, "dptrain: %s\n", err.msg);
        comm_finalize();
        free(s);
        return rc < 0 ? 2 : 0;
    }
    if (setup(s, &err) != 0 || train_loop(s, &err) != 0 ||
        report_replicas(&s->comm, &s->model, s->cfg.quiet, &err) != 0)
        status = 1;
    else {
        /* a balance record that cannot be written fails the run, after its weights are saved */
        dp_err berr = {0};
        int brc = balance_report(&s->balance, &s->comm, say(s), s->metrics, &berr);
        status = finish_run(s, &err);
        if (status == 0 && brc != 0) {
            status = 1;
            err = berr;
        }
    }
    if (status == 1 && s->comm.rank == 0)
        fprintf(stderr, "dptrain: error: %s\n", err.msg);
    teardown(s);
    comm_finalize();
    free(s);
    return status;
}
