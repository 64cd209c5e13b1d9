#include "dptrain/driver/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/driver/balance.h"
#include "dptrain/driver/threads.h"
#include "dptrain/net/isa.h"

/* "dptrain: 8 ranks x 1 thread on 1 node (vm ranks 0-7)": runs of equal host names. */
static void print_layout(const dp_comm *c, int threads, int cores, char (*hosts)[64])
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
    if (threads_oversubscribed(c, threads)) {
        if (threads > 1)
            printf("dptrain: warning: %d ranks x %d threads on this node exceed its %ld cores; "
                   "pass --threads %ld or start fewer ranks per node\n", c->local_size, threads,
                   online, online / c->local_size > 0 ? online / c->local_size : 1);
        else
            printf("dptrain: warning: %d ranks on this node share its %ld cores "
                   "(oversubscribed: they take turns on the cores)\n", c->local_size, online);
    } else if (threads > cores) { /* Open MPI binds each of 1 or 2 ranks to one core */
        printf("dptrain: warning: %d threads per rank, but rank 0 may run on %d core%s (its CPU "
               "affinity, set by the launcher), which the threads share; start the ranks with "
               "mpirun --bind-to none or --map-by slot:PE=%d (srun: -c %d)\n", threads, cores,
               cores > 1 ? "s" : "", threads, threads);
    }
}

/* What the banner gathers from each rank: its files [lo, hi), their samples, and its
 * kernels' path (an index in dp_isa_names). */
enum { HELD_LO, HELD_HI, HELD_SAMPLES, HELD_ISA, HELD_FIELDS };

/* "ranks hold: 0: file 0, 1: files 0-2, ...": which files each rank loaded (at most 16). */
static void print_holdings(const dp_comm *c, const int64_t *all)
{
    printf("      ranks hold:");
    const int shown = c->size < 16 ? c->size : 16;
    for (int r = 0; r < shown; r++) {
        const int64_t *h = all + HELD_FIELDS * r;
        if (h[1] <= h[0])
            printf("%s %d: nothing", r ? "," : "", r);
        else if (h[1] - h[0] == 1)
            printf("%s %d: file %lld", r ? "," : "", r, (long long)h[0]);
        else
            printf("%s %d: files %lld-%lld", r ? "," : "", r, (long long)h[0],
                   (long long)h[1] - 1);
        printf(" (%lld)", (long long)h[2]);
    }
    printf("%s\n", shown < c->size ? ", ..." : "");
}

/* A note where files of a set carry no checksums (shards made by other tools). */
static void print_unchecked(const char *option, const dp_filelist *fl)
{
    int bare = 0;
    for (int i = 0; i < fl->nfiles; i++)
        bare += !fl->checksummed[i];
    if (bare)
        printf("data: note: %s: %d of %d file%s without checksums: a damaged byte there "
               "would go unnoticed (dptrain-data convert writes them)\n", option, bare,
               fl->nfiles, fl->nfiles > 1 ? "s" : "");
}

static void print_data(const dp_comm *c, const dp_banner *b, const int64_t *holdings)
{
    const dp_config *cfg = b->cfg;
    const dp_filelist *fl = b->train_files;
    const dp_plan *p = b->plan;
    const int B = cli_global_batch(cfg);
    printf("data: %s: %lld samples (%dx%dx%d, %d classes) in %d file%s\n", cfg->train,
           (long long)fl->total, fl->c, fl->h, fl->w, b->model->num_classes, fl->nfiles,
           fl->nfiles > 1 ? "s" : "");
    print_holdings(c, holdings);
    print_unchecked("--train", fl);
    if (p->reach)
        printf("balance: each rank holds the files of its part and the next on either side; "
               "every %d steps its share of the batch follows its speed (--balance off: the "
               "shares of the parts)\n", BALANCE_EVERY);
    else if (cfg->balance == 0 && (c->size > 1 || b->threads > 1) && !b->thread_balancing)
        /* auto, and it said no */
        printf("balance: off: the %s take turns on a node's cores, so their timings say "
               "nothing lasting (--balance on forces it)\n", c->size > 1 ? "ranks" : "threads");
    if (b->thread_balancing)
        printf("balance: each rank's threads take shares of its samples and rows that follow "
               "their speeds, reviewed every few steps (--balance off: even shares)\n");
    if (b->test_files) {
        printf("test: %s: %lld samples, split over the ranks\n", cfg->test,
               (long long)b->test_files->total);
        print_unchecked("--test", b->test_files);
    }
    dp_step_share first, last;
    plan_share(p, 0, 0, &first);
    plan_share(p, p->steps - 1, 0, &last);
    printf("batch: global %d in %d groups of <= %d (each file's share cut into groups), about "
           "%d per rank; %ld steps per epoch", B, first.groups, p->group,
           (B + c->size - 1) / c->size, b->steps_per_epoch);
    if (last.slots != B)
        printf(" (the last takes the %d left)", last.slots);
    if (cfg->accumulate > 1)
        printf(", in %d passes of about %d", cfg->accumulate, cfg->batch);
    printf(", %ld steps in %d epoch%s\n", b->total_steps, b->epochs, b->epochs > 1 ? "s" : "");
    if (first.groups < c->size)
        printf("dptrain: warning: %d ranks but %d groups per batch: some ranks have no work in a "
               "step; use fewer ranks, a larger --batch or a smaller --group-size\n", c->size,
               first.groups);
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
        snprintf(scaled, sizeof scaled, " = %g x %d/%d (linear scaling)", cfg->lr, cli_global_batch(cfg),
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
    if (c->size > 1 && b->shared)
        printf("gradients: summed exactly (int64 fixed point) through shared memory, layer by "
               "layer as all ranks finish it, by whichever rank is free first\n");
    else if (c->size > 1)
        printf("gradients: summed exactly (int64 fixed point) in %d bucket%s of >= %d KiB, "
               "reduced with %s%s%s%s\n", b->buckets, b->buckets > 1 ? "s" : "", cfg->bucket_kb,
               cfg->overlap ? "MPI_Iallreduce overlapping backward"
                            : "one MPI_Allreduce after backward",
               b->why_not_shared && *b->why_not_shared ? " (not through shared memory: " : "",
               b->why_not_shared ? b->why_not_shared : "",
               b->why_not_shared && *b->why_not_shared ? ")" : "");
    char optimizer[512];
    describe_optimizer(cfg, optimizer, sizeof optimizer);
    printf("optimizer: %s; seed %llu%s\n", optimizer, (unsigned long long)cfg->seed,
           cfg->shuffle ? "" : ", no shuffle");
}

/* "kernels: avx512 (AVX-512F+VL+BW+DQ, chosen from CPUID)": rank 0's path and why, then
 * any rank on another one (each rank chooses for its own CPU; the bits are the same). */
static void print_kernels(const dp_comm *c, const int64_t *all)
{
    printf("kernels: %s", dp_isa_describe());
    int others = 0;
    for (int r = 1; r < c->size; r++) {
        const int64_t isa = all[HELD_FIELDS * r + HELD_ISA];
        if (isa != all[HELD_ISA] && ++others <= 8)
            printf("%s rank %d: %s", others == 1 ? "; other paths:" : ",", r, dp_isa_names[isa]);
    }
    printf("%s\n", others > 8 ? ", ..." : "");
}

/* This process's path as an index in dp_isa_names. */
static int64_t isa_index(void)
{
    int64_t i = 0;
    while (dp_isa_names[i + 1] && strcmp(dp_isa_names[i], dp_isa_name()) != 0)
        i++;
    return i;
}

void report_banner(const dp_comm *c, const dp_banner *b)
{
    char(*hosts)[64] = c->rank == 0 ? calloc((size_t)c->size, 64) : NULL;
    int64_t *holdings = c->rank == 0 ? calloc(HELD_FIELDS * (size_t)c->size, sizeof(int64_t))
                                     : NULL;
    if (c->rank == 0 && (!hosts || !holdings))
        comm_abort(1); /* cannot join the gathers: end the job rather than hang it */
    comm_gather_hosts(c, hosts);
    const dp_plan *p = b->plan;
    int64_t mine[HELD_FIELDS] = {[HELD_LO] = p->file_lo, [HELD_HI] = p->file_hi,
                                 [HELD_ISA] = isa_index()};
    for (int f = p->file_lo; f < p->file_hi; f++)
        mine[HELD_SAMPLES] += p->counts[f];
    comm_gather_i64(mine, HELD_FIELDS, holdings);
    if (c->rank == 0 && !b->cfg->quiet) {
        print_layout(c, b->threads, b->cores, hosts);
        print_kernels(c, holdings);
        if (strcmp(dp_precision_name(), "fp32") != 0)
            printf("precision: %s\n", dp_precision_describe());
        printf("convolutions: %s\n", dp_conv_algorithm_describe());
        char desc[1024];
        model_describe(b->model, desc, sizeof desc);
        printf("model: %s\n       %s, %zu parameters\n", b->cfg->model, desc, b->model->size);
        print_data(c, b, holdings);
        print_training(c, b);
        fflush(stdout);
    }
    free(hosts);
    free(holdings);
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
