#include "dptrain/driver/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/data/sampler.h"

/* "dptrain: 8 ranks x 1 thread on 1 node (vm ranks 0-7)": runs of equal host names. */
static void print_layout(const dp_comm *c, int threads, char (*hosts)[64])
{
    printf("dptrain: %d rank%s x %d thread%s on %d node%s (", c->size, c->size > 1 ? "s" : "",
           threads, threads > 1 ? "s" : "", c->nodes, c->nodes > 1 ? "s" : "");
    for (int r = 0; r < c->size;) {
        int k = r;
        while (k < c->size && strcmp(hosts[k], hosts[r]) == 0)
            k++;
        printf("%s%s ranks %d-%d", r ? ", " : "", hosts[r], r, k - 1);
        r = k;
    }
    printf(")\n");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0 && (long)threads * c->local_size > online) {
        if (threads > 1)
            printf("dptrain: warning: %d ranks x %d threads on this node exceed its %ld cores; "
                   "pass --threads %ld or start fewer ranks per node\n", c->local_size, threads,
                   online, online / c->local_size > 0 ? online / c->local_size : 1);
        else
            printf("dptrain: warning: %d ranks on this node share its %ld cores "
                   "(oversubscribed: they take turns on the cores)\n", c->local_size, online);
    }
}

static void print_data(const dp_comm *c, const dp_banner *b)
{
    const dp_config *cfg = b->cfg;
    const dp_filelist *fl = b->train_files;
    printf("data: %s: %lld samples (%dx%dx%d, %d classes) in %d file%s; rank 0 holds %ld%s\n",
           cfg->train, (long long)fl->total, fl->c, fl->h, fl->w, b->model->num_classes,
           fl->nfiles, fl->nfiles > 1 ? "s" : "", b->share,
           fl->nfiles == c->size ? " (one file per rank)" : "");
    if (b->test_files)
        printf("test: %s: %lld samples, split over the ranks\n", cfg->test,
               (long long)b->test_files->total);
    int lo = batch_split(cfg->batch, c->size, c->size - 1, NULL);
    printf("batch: global %d, per rank %d", cfg->batch, b->local_batch_max);
    if (lo != b->local_batch_max)
        printf(" (ranks 0-%d) / %d (the rest)", cfg->batch % c->size - 1, lo);
    printf("; %ld steps per epoch, %ld steps in %d epoch%s\n", b->steps_per_epoch,
           b->total_steps, b->epochs, b->epochs > 1 ? "s" : "");
}

/* The optimizer and the settings it reads, e.g. "SGD ... momentum 0.9 weight decay 0". */
static void describe_optimizer(const dp_config *cfg, char *buf, size_t len)
{
    static const char *titles[] = {"SGD", "LARS", "LAMB", "AdamW"};
    static const char *sched[] = {"constant", "cosine", "step"};
    const char *bias = cfg->exclude_bias ? ", biases excluded from adaptation and weight decay"
                                         : ", biases adapted and decayed";
    char scaled[96] = "";
    if (cfg->lr_scaling)
        snprintf(scaled, sizeof scaled, " = %g x %d/%d (linear scaling)", cfg->lr, cfg->batch,
                 cfg->lr_base_batch);
    int n = snprintf(buf, len, "%s lr %g%s (%s, warm-up %g epochs)", titles[cfg->optimizer],
                     cli_peak_lr(cfg), scaled, sched[cfg->schedule], cfg->warmup_epochs);
    if (n < 0 || (size_t)n >= len)
        return;
    buf += n, len -= (size_t)n;
    switch (cfg->optimizer) {
    case OPT_SGD:
        snprintf(buf, len, " momentum %g weight decay %g%s", cfg->momentum, cfg->weight_decay,
                 cfg->nesterov ? " nesterov" : "");
        break;
    case OPT_LARS:
        snprintf(buf, len, " momentum %g%s trust coefficient %g weight decay %g%s",
                 cfg->momentum, cfg->nesterov ? " nesterov" : "", cfg->trust_coefficient,
                 cfg->weight_decay, bias);
        break;
    default: /* lamb, adamw */
        snprintf(buf, len, " betas %g, %g eps %g decoupled weight decay %g%s", cfg->beta1,
                 cfg->beta2, cfg->eps, cfg->weight_decay,
                 cfg->optimizer == OPT_LAMB ? bias : "");
    }
}

static void print_training(const dp_comm *c, const dp_banner *b)
{
    const dp_config *cfg = b->cfg;
    if (c->size > 1)
        printf("gradients: %d bucket%s of >= %d KiB, reduced with %s\n", b->buckets,
               b->buckets > 1 ? "s" : "", cfg->bucket_kb,
               cfg->overlap ? "MPI_Iallreduce overlapping backward"
                            : "MPI_Iallreduce after backward");
    char optimizer[512];
    describe_optimizer(cfg, optimizer, sizeof optimizer);
    printf("optimizer: %s; seed %llu%s\n", optimizer, (unsigned long long)cfg->seed,
           cfg->shuffle ? "" : ", no shuffle");
}

void report_banner(const dp_comm *c, const dp_banner *b)
{
    char(*hosts)[64] = c->rank == 0 ? calloc((size_t)c->size, 64) : NULL;
    if (c->rank == 0 && !hosts)
        comm_abort(1); /* cannot join the gather: end the job rather than hang it */
    comm_gather_hosts(c, hosts);
    if (c->rank == 0 && !b->cfg->quiet) {
        print_layout(c, b->threads, hosts);
        char desc[1024];
        model_describe(b->model, desc, sizeof desc);
        printf("model: %s\n       %s, %zu parameters\n", b->cfg->model, desc, b->model->size);
        print_data(c, b);
        print_training(c, b);
        fflush(stdout);
    }
    free(hosts);
}

void report_epoch(const dp_epoch_record *r)
{
    printf("epoch %d%s step %ld lr %.4g | train loss %.4f acc %.2f%%", r->epoch,
           r->partial ? " (partial)" : "", r->step, r->lr, r->train_loss,
           100.0 * r->train_accuracy);
    if (r->has_test)
        printf(" | test loss %.4f acc %.2f%%", r->test_loss, 100.0 * r->test_accuracy);
    printf(" | %.0f img/s %.1f s (comm %.1f s) eval %.1f s | %.0f MiB/rank\n", r->images_per_sec,
           r->seconds, r->comm_seconds, r->eval_seconds, r->max_rss_mib);
    fflush(stdout);
}

uint64_t weights_checksum(const dp_model *m)
{
    const unsigned char *p = (const unsigned char *)m->weights;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < m->size * sizeof(float); i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int report_replicas(const dp_comm *c, const dp_model *m, int quiet, dp_err *err)
{
    int64_t h = (int64_t)(weights_checksum(m) >> 1);
    int64_t lo = comm_allreduce_min_i64(h), hi = comm_allreduce_max_i64(h);
    if (lo != hi)
        return dp_fail(err, "model replicas differ across ranks after training (checksums "
                            "%016llx vs %016llx): please report this", (unsigned long long)lo,
                       (unsigned long long)hi);
    if (c->rank == 0 && !quiet)
        printf("replicas identical on %d rank%s (weights checksum %016llx)\n", c->size,
               c->size > 1 ? "s" : "", (unsigned long long)lo);
    return 0;
}
