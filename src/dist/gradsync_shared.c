/* gradsync_shared: the gradient sum through memory the ranks of one node share
 * (gradsync_share, gradsync.h). The reduced values are cut into chunks, a tensor's at a
 * time, in backward order. Each rank says in the window how many segments of its partials
 * are final; once a chunk's are on every rank, whichever thread of whichever rank claims it
 * first adds every rank's integers there, leaves them zero for the next step and rounds the
 * sum to float in its own part of the window. So a rank whose backward ends first sums what
 * the others have finished while they go on, instead of waiting at a barrier and then
 * summing a fixed share. When every chunk is summed, each rank reads every rank's extras
 * (the verdicts) and takes every chunk's floats; a rank that finds every partial final as it
 * arrives reads them first, and hands what it sums on while it is in L1. Integer sums are
 * exact in any order, so who sums what changes no bit. The marks are C11 atomics in the
 * shared pages (lock-free, so they work across processes); no MPI call. The rest of
 * gradsync is gradsync.c. */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "gradsync_impl.h"

/* The values a chunk holds at most: 64 KiB of each rank's integers. */
#define CHUNK_VALUES 8192

/* One cache line of the window's control area: a rank's marks (its part, lines 0 and 1),
 * or chunk c's claim and completion (rank 0's part, line 2 + c). */
typedef struct {
    _Alignas(64) _Atomic int64_t x, y;
} control_line;

static control_line *control(const dp_gradsync *gs, int q)
{
    return (control_line *)((char *)gs->peer[q] + gs->control_at);
}

/* The mark "segments [0, k) of step seq are final" in a rank's line 0: it only grows. */
static int64_t ready_mark(const dp_gradsync *gs, int k) { return gs->seq * (gs->nseg + 1) + k; }

/* Until *x >= v: a short spin, then the CPU is given up each time; given up at once where
 * the ranks' threads outnumber the CPUs (gradsync_share), as the one awaited needs one. */
static void wait_for(const dp_gradsync *gs, _Atomic int64_t *x, int64_t v)
{
    for (int k = 0; atomic_load_explicit(x, memory_order_acquire) < v;) {
        if (k < gs->spins) {
            k++; /* counts the spins only: a long wait yields, and k does not overflow */
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

void gradsync_publish(dp_gradsync *gs, int segments)
{
    atomic_store_explicit(&control(gs, gs->rank)[0].x, ready_mark(gs, segments),
                          memory_order_release);
}

/* Chunk c: every rank's values added (and left zero for the next step), rounded to float
 * as after the reduction, into this rank's stage; in pieces that stay in L1, which also go
 * to the consumer when the step's verdicts allow it already (take_now), or without a
 * consumer into the gradients (take_chunks then skips the chunk on this rank). */
static void sum_chunk(const dp_gradsync *gs, const shared_chunk *c, int64_t *sum)
{
    const tensor_state *t = &gs->t[c->tensor];
    for (size_t at = 0; at < c->n; at += TAKE_CHUNK) {
        const size_t n = c->n - at < TAKE_CHUNK ? c->n - at : TAKE_CHUNK;
        const size_t v = t->value + c->k0 + at;
        float *out = gs->stage[gs->rank] + t->offset + c->k0 + at;
        memcpy(sum, gs->peer[0] + v, n * sizeof *sum);
        for (int q = 1; q < gs->nranks; q++) {
            const int64_t *p = gs->peer[q] + v;
            for (size_t k = 0; k < n; k++)
                sum[k] += p[k];
        }
        for (int q = 0; q < gs->nranks; q++)
            memset(gs->peer[q] + v, 0, n * sizeof *sum);
        fixed_take(out, sum, n, t->unscale); /* a tensor with a NaN: replaced when taken */
        const size_t offset = (size_t)(out - gs->stage[gs->rank]);
        if (gs->take_now)
            gs->take(gs->take_ctx, offset, out, n);
        else if (!gs->take)
            memcpy(gs->grads + offset, out, n * sizeof *out);
    }
}

/* How many segments are final on every rank in this step, now. */
static int final_everywhere(const dp_gradsync *gs)
{
    int64_t low = INT64_MAX;
    for (int q = 0; q < gs->nranks; q++) {
        const int64_t v = atomic_load_explicit(&control(gs, q)[0].x, memory_order_acquire);
        low = v < low ? v : low;
    }
    return low < ready_mark(gs, 0) ? 0 : (int)(low - ready_mark(gs, 0));
}

/* Chunk c summed by this thread, if no one has claimed it in this step (a claim is the
 * step and the claiming rank); 1 when it was. */
static int try_chunk(dp_gradsync *gs, int c, int64_t *sum)
{
    const int64_t fresh = gs->seq * gs->nranks;
    control_line *line = &control(gs, 0)[2 + c];
    int64_t claim = atomic_load_explicit(&line->x, memory_order_relaxed);
    if (claim >= fresh || !atomic_compare_exchange_strong(&line->x, &claim, fresh + gs->rank))
        return 0;
    sum_chunk(gs, &gs->chunk[c], sum);
    atomic_store_explicit(&line->y, gs->seq, memory_order_release);
    return 1;
}

/* One thread's part of the sums. First the chunks final on every rank already, from this
 * thread's own place in the list on: where all are (the ranks ended backward together) the
 * threads of all ranks take a run each, with few claims in each other's way. Then the
 * rest in backward order, each once its layer is final on every rank. */
static void claim_chunks(dp_gradsync *gs)
{
    _Alignas(64) int64_t sum[TAKE_CHUNK];
    const int T = omp_get_num_threads(), parties = gs->nranks * T;
    const int start = (int)((long)gs->nchunks * (gs->rank * T + omp_get_thread_num()) / parties);
    int known = final_everywhere(gs), summed = 0;
    for (int i = 0; i < gs->nchunks; i++) {
        const int c = (start + i) % gs->nchunks;
        if (gs->chunk[c].need <= known)
            summed += try_chunk(gs, c, sum);
    }
    for (int c = 0; c < gs->nchunks; c++) {
        for (; known < gs->chunk[c].need; known = gs->chunk[c].need)
            for (int q = 0; q < gs->nranks; q++)
                wait_for(gs, &control(gs, q)[0].x, ready_mark(gs, gs->chunk[c].need));
        summed += try_chunk(gs, c, sum);
    }
    #pragma omp atomic
    gs->summed += summed;
}

/* Chunks [c0, c1) from the stages of the ranks that summed them into the gradients, or
 * to gradsync_take_with's consumer; NaN for a tensor with a NaN or an Inf on any rank (the
 * consumer gets no such step). */
static void take_chunks(const dp_gradsync *gs, int c0, int c1)
{
    for (int c = c0; c < c1; c++) {
        const shared_chunk *x = &gs->chunk[c];
        const int q = (int)(atomic_load_explicit(&control(gs, 0)[2 + c].x,
                                                 memory_order_relaxed) % gs->nranks);
        const size_t at = gs->t[x->tensor].offset + x->k0;
        if (gs->t[x->tensor].bad)
            for (size_t k = 0; k < x->n; k++)
                gs->grads[at + k] = NAN;
        else if (q == gs->rank && (gs->take_now || !gs->take))
            continue; /* taken as it was summed (sum_chunk) */
        else if (gs->taken)
            gs->take(gs->take_ctx, at, gs->stage[q] + at, x->n);
        else
            memcpy(gs->grads + at, gs->stage[q] + at, x->n * sizeof(float));
    }
}

/* The verdicts from every rank's extras, and the mark that this rank has read them. */
static int judge(dp_gradsync *gs)
{
    const int redo = gradsync_verdicts(gs);
    atomic_store_explicit(&control(gs, gs->rank)[1].x, gs->seq, memory_order_release);
    return redo;
}

/* After this rank's partials are all final (gradsync_publish): the chunks summed, by this
 * rank's threads too; the verdicts; once every rank has read the extras, this rank's
 * cleared, and the floats of all chunks taken. Where every rank's partials are final
 * already (this rank ended backward last, or all together), the verdicts come first, and
 * the chunks this rank sums go to the consumer while in L1. */
int gradsync_finish_shared(dp_gradsync *gs, double *waited)
{
    const double t0 = omp_get_wtime();
    if (gs->observe)
        gs->observe(gs->observe_ctx, 0, 0);
    const int fork = gs->values >= SPLIT_MIN && omp_get_max_threads() > 1;
    const int judged = final_everywhere(gs) == gs->nseg;
    int redo = judged ? judge(gs) : 0;
    gs->take_now = judged && !redo && gradsync_use_take(gs);
    gs->summed = 0;
    if (fork) {
        #pragma omp parallel
        claim_chunks(gs);
    } else {
        claim_chunks(gs);
    }
    for (int c = 0; c < gs->nchunks; c++)
        wait_for(gs, &control(gs, 0)[2 + c].y, gs->seq);
    if (!judged)
        redo = judge(gs);
    for (int q = 0; q < gs->nranks; q++) /* nobody reads this rank's extras any more */
        wait_for(gs, &control(gs, q)[1].x, gs->seq);
    if (!redo) {
        for (int i = 0; i < gs->nt; i++)
            if (gs->t[i].segment >= 0)
                memset(gs->acc + gs->t[i].extra, 0, EXTRAS * sizeof(int64_t));
        if (!judged)
            gradsync_use_take(gs);
        if (fork) {
            #pragma omp parallel for schedule(dynamic, 1)
            for (int c = 0; c < gs->nchunks; c++)
                take_chunks(gs, c, c + 1);
        } else {
            take_chunks(gs, 0, gs->nchunks);
        }
    }
    gs->take_now = 0;
    gs->acc_zero = !redo; /* the values were left zero by the ranks that summed them */
    if (gs->observe)
        gs->observe(gs->observe_ctx, 0, 1);
    *waited = omp_get_wtime() - t0;
    return redo;
}

/* The chunks, in the order their segments become final (backward order), into
 * gs->chunk when it is not NULL; returns how many. */
static int plan_chunks(dp_gradsync *gs)
{
    int n = 0;
    for (int k = 0; k < gs->nseg; k++)
        for (int i = 0; i < gs->nt; i++)
            for (size_t k0 = 0; gs->t[i].segment == k && k0 < gs->t[i].count; k0 += CHUNK_VALUES) {
                const size_t left = gs->t[i].count - k0;
                if (gs->chunk)
                    gs->chunk[n] = (shared_chunk){i, k0, left < CHUNK_VALUES ? left : CHUNK_VALUES,
                                                  k + 1};
                n++;
            }
    return n;
}

int gradsync_share(dp_gradsync *gs, const dp_comm *c, int required, char *why, size_t why_len,
                   dp_err *err)
{
    snprintf(why, why_len, "%s", "");
    const size_t acc_bytes = (gs->acc_size + 1) * sizeof(int64_t);
    const size_t floats_at = (acc_bytes + 63) & ~(size_t)63;
    gs->control_at = (floats_at + gs->size * sizeof(float) + 63) & ~(size_t)63;
    free(gs->peer); /* a second call (auto, then required) */
    free(gs->stage);
    free(gs->chunk);
    gs->chunk = NULL;
    gs->peer = dp_calloc((size_t)c->size, sizeof *gs->peer, "shared sums", err);
    gs->stage = dp_calloc((size_t)c->size, sizeof *gs->stage, "shared sums", err);
    gs->nchunks = plan_chunks(gs);
    gs->chunk = dp_calloc((size_t)gs->nchunks + 1, sizeof *gs->chunk, "shared sums", err);
    if (comm_agree(c, gs->peer && gs->stage && gs->chunk ? 0 : -1, err))
        return -1;
    plan_chunks(gs);
    if (gs->overlap)
        snprintf(why, why_len, "--overlap reduces bucket by bucket with MPI");
    else if (!gs->reducer)
        snprintf(why, why_len, "%s", c->size < 2 ? "one rank" : "nothing to reduce");
    else if (shared_create(&gs->shared, c,
                           gs->control_at + (2 + (size_t)gs->nchunks) * sizeof(control_line),
                           why, why_len, err))
        return -1;
    if (!gs->shared)
        return required ? dp_fail(err, "--reduction shm: cannot sum through shared memory here: %s "
                                   "(--reduction auto or mpi can)", why) : 0;
    for (int q = 0; q < c->size; q++) {
        gs->peer[q] = shared_part(gs->shared, q);
        gs->stage[q] = (float *)((char *)gs->peer[q] + floats_at);
    }
    memcpy(gs->peer[c->rank], gs->acc, acc_bytes);
    free(gs->acc);
    gs->acc = gs->peer[c->rank];
    reducer_free(gs->reducer); /* its buffer was the accumulator */
    gs->reducer = NULL;
    gs->rank = c->rank;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    gs->spins = (long)c->size * omp_get_max_threads() > cpus ? 0 : 2000;
    gs->values = 0;
    for (int i = 0; i < gs->nt; i++)
        gs->values += gs->t[i].segment >= 0 ? gs->t[i].count : 0;
    return 0;
}

int gradsync_shared(const dp_gradsync *gs) { return gs->shared != NULL; }

int gradsync_summed(const dp_gradsync *gs, int *chunks)
{
    *chunks = gs->shared ? gs->nchunks : 0;
    return gs->shared ? gs->summed : 0;
}
