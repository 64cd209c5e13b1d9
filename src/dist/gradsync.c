#include "dptrain/dist/gradsync.h"

#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/dist/comm.h"
#include "dptrain/net/kernels.h"

#include "gradsync_impl.h"

static int ceil_log2(int n)
{
    int k = 0;
    while ((1L << k) < n)
        k++;
    return k;
}

double gradsync_quantum(int exponent, int groups) { return ldexp(1.0, exponent + ceil_log2(groups) - 51); }

/* ---- the plan: segments, their tensors, buckets, the accumulator's layout ------------ */

static int plan_segments(dp_gradsync *gs, const dp_grad_segment *seg, int nseg, dp_err *err)
{
    gs->seg = dp_calloc((size_t)nseg + 1, sizeof *gs->seg, "gradient segments", err);
    if (!gs->seg)
        return -1;
    gs->nseg = nseg;
    for (int k = 0; k < nseg; k++) {
        segment_state *s = &gs->seg[k];
        s->ready_after = seg[k].ready_after;
        s->tensor0 = gs->nt;
        s->tensor1 = 0;
        for (int i = 0; i < gs->nt; i++)
            if (gs->t[i].offset >= seg[k].begin && gs->t[i].offset < seg[k].end) {
                s->tensor0 = i < s->tensor0 ? i : s->tensor0;
                s->tensor1 = i + 1 > s->tensor1 ? i + 1 : s->tensor1;
                gs->t[i].segment = k;
            }
        if (s->tensor1 <= s->tensor0)
            return dp_fail(err, "gradient segment %d [%zu, %zu) holds no parameter tensor", k,
                           seg[k].begin, seg[k].end);
    }
    return 0;
}

/* Adjacent segments into buckets of at least `want` floats; a gap closes a bucket. */
static void plan_buckets(dp_gradsync *gs, const dp_grad_segment *seg, size_t want)
{
    size_t open_end = 0, open_begin = 0;
    int open = 0;
    for (int k = 0; k < gs->nseg; k++) {
        if (open && seg[k].end != open_begin) {
            gs->nb++;
            open = 0;
        }
        if (!open) {
            gs->b[gs->nb].seg0 = k;
            open_end = seg[k].end;
            open = 1;
        }
        open_begin = seg[k].begin;
        gs->b[gs->nb].seg1 = k + 1;
        if (open_end - open_begin >= want) {
            gs->nb++;
            open = 0;
        }
    }
    if (open)
        gs->nb++;
}

/* Bucket b: the values of its tensors, then their extras. */
static void plan_layout(dp_gradsync *gs)
{
    size_t at = 0;
    for (int b = 0; b < gs->nb; b++) {
        bucket_state *B = &gs->b[b];
        B->begin = at;
        size_t low = SIZE_MAX;
        for (int k = B->seg0; k < B->seg1; k++)
            for (int i = gs->seg[k].tensor0; i < gs->seg[k].tensor1; i++)
                low = gs->t[i].offset < low ? gs->t[i].offset : low;
        /* the values keep the floats' place within a cache line (both buffers on line
         * boundaries): threads that write a tensor's float partials side by side, on
         * line boundaries there, do not share a line of their sums either */
        const size_t base = at + ((low - at) & 7);
        for (int k = B->seg0; k < B->seg1; k++)
            for (int i = gs->seg[k].tensor0; i < gs->seg[k].tensor1; i++) {
                tensor_state *t = &gs->t[i];
                t->value = base + (t->offset - low);
                at = t->value + t->count > at ? t->value + t->count : at;
            }
        for (int k = B->seg0; k < B->seg1; k++)
            for (int i = gs->seg[k].tensor0; i < gs->seg[k].tensor1; i++) {
                gs->t[i].extra = at;
                at += EXTRAS;
            }
        B->end = at;
    }
    gs->acc_size = at;
}

static int by_offset(const void *a, const void *b)
{
    const tensor_state *x = *(tensor_state *const *)a, *y = *(tensor_state *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* The float buffer's spans outside every reduced tensor (frozen layers', and what no
 * tensor holds). */
static int plan_gaps(dp_gradsync *gs, dp_err *err)
{
    tensor_state **by = dp_calloc((size_t)gs->nt + 1, sizeof *by, "gradient sync", err);
    gs->gap = dp_calloc(2 * (size_t)gs->nt + 2, sizeof *gs->gap, "gradient sync", err);
    if (!by || !gs->gap) {
        free(by);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < gs->nt; i++)
        if (gs->t[i].segment >= 0)
            by[n++] = &gs->t[i];
    qsort(by, (size_t)n, sizeof *by, by_offset);
    size_t at = 0;
    for (int k = 0; k <= n; k++) {
        const size_t end = k < n ? by[k]->offset : gs->size;
        if (end > at) {
            gs->gap[2 * gs->ngaps] = at;
            gs->gap[2 * gs->ngaps++ + 1] = end;
        }
        at = k < n && by[k]->offset + by[k]->count > at ? by[k]->offset + by[k]->count : at;
    }
    free(by);
    return 0;
}

static int make_reducer(dp_gradsync *gs, dp_err *err)
{
    size_t *begin = dp_calloc((size_t)gs->nb + 1, sizeof(size_t), "gradient buckets", err);
    size_t *end = dp_calloc((size_t)gs->nb + 1, sizeof(size_t), "gradient buckets", err);
    if (begin && end) {
        for (int b = 0; b < gs->nb; b++) {
            begin[b] = gs->b[b].begin;
            end[b] = gs->b[b].end;
        }
        gs->reducer = reducer_create(gs->acc, begin, end, gs->nb, err);
    }
    free(begin);
    free(end);
    return gs->reducer ? 0 : -1;
}

int gradsync_create(dp_gradsync **out, float *grads, size_t size, const dp_grad_segment *seg,
                    int nseg, const dp_grad_tensor *tensors, int ntensors, size_t bucket_bytes,
                    int overlap, int nranks, dp_err *err)
{
    *out = NULL;
    dp_gradsync *gs = dp_calloc(1, sizeof *gs, "gradient sync", err);
    if (!gs)
        return -1;
    gs->grads = grads;
    gs->size = size;
    gs->overlap = overlap;
    gs->nranks = nranks;
    gs->nt = ntensors;
    gs->t = dp_calloc((size_t)ntensors + 1, sizeof *gs->t, "gradient sync", err);
    gs->b = dp_calloc((size_t)nseg + 1, sizeof *gs->b, "gradient buckets", err);
    int rc = gs->t && gs->b ? 0 : -1;
    for (int i = 0; rc == 0 && i < ntensors; i++) {
        gs->t[i].offset = tensors[i].offset;
        gs->t[i].count = tensors[i].count;
        gs->t[i].segment = -1;
    }
    if (rc == 0)
        rc = plan_segments(gs, seg, nseg, err);
    if (rc == 0) {
        plan_buckets(gs, seg, bucket_bytes / sizeof(float));
        plan_layout(gs);
        gs->acc = dp_calloc_lines(gs->acc_size + 1, sizeof(int64_t), "gradient accumulator", err);
        rc = gs->acc ? 0 : -1;
        gs->acc_zero = 1;
    }
    if (rc == 0)
        rc = plan_gaps(gs, err);
    if (rc == 0 && nranks > 1 && gs->nb > 0)
        rc = make_reducer(gs, err);
    if (rc) {
        gradsync_free(gs);
        return -1;
    }
    *out = gs;
    return 0;
}

void gradsync_free(dp_gradsync *gs)
{
    if (!gs)
        return;
    reducer_free(gs->reducer);
    free(gs->t);
    free(gs->seg);
    free(gs->b);
    if (gs->shared) /* the accumulator is its part of the shared memory */
        shared_free(gs->shared);
    else
        free(gs->acc);
    free(gs->peer);
    free(gs->stage);
    free(gs->chunk);
    free(gs->gap);
    free(gs);
}

/* Through shared memory the whole sum is one "bucket", for the trace. */
int gradsync_buckets(const dp_gradsync *gs) { return gs->shared ? 1 : gs->reducer ? gs->nb : 0; }

size_t gradsync_bucket_bytes(const dp_gradsync *gs, int b)
{
    if (gs->shared)
        return gs->acc_size * sizeof(int64_t);
    return (gs->b[b].end - gs->b[b].begin) * sizeof(int64_t);
}

static void bucket_done(void *ctx, int b)
{
    const dp_gradsync *gs = ctx;
    gs->observe(gs->observe_ctx, b, 1);
}

void gradsync_observe(dp_gradsync *gs, dp_bucket_event fn, void *ctx)
{
    gs->observe = fn;
    gs->observe_ctx = ctx;
    if (gs->reducer)
        reducer_on_done(gs->reducer, fn ? bucket_done : NULL, gs);
}

int gradsync_exponent_count(const dp_gradsync *gs) { return gs->nt; }

void gradsync_get_exponents(const dp_gradsync *gs, int *e)
{
    for (int i = 0; i < gs->nt; i++)
        e[i] = gs->t[i].E;
}

void gradsync_set_exponents(dp_gradsync *gs, const int *e)
{
    for (int i = 0; i < gs->nt; i++)
        gs->t[i].E = e[i];
}

/* ---- one step ------------------------------------------------------------------------ */

/* A tensor's floats and its values in the accumulator, for a pass over elements; for the
 * sums' pass, the consumer they go to instead of the floats (or NULL). */
typedef struct {
    tensor_state *t;
    float *g;
    int64_t *acc;
    const dp_gradsync *take;
} tensor_span;

/* gradsync_impl.h; below SPLIT_MIN elements on the calling thread. */
void gradsync_by_parts(size_t n, void (*part)(void *ctx, size_t lo, size_t hi), void *ctx)
{
    if (n < SPLIT_MIN) {
        part(ctx, 0, n);
        return;
    }
    #pragma omp parallel
    {
        const size_t T = (size_t)omp_get_num_threads(), k = (size_t)omp_get_thread_num();
        const size_t lo = n * k / T & ~(size_t)15;
        part(ctx, lo, k + 1 == T ? n : n * (k + 1) / T & ~(size_t)15);
    }
}

static void clear_part(void *x, size_t lo, size_t hi)
{
    memset((float *)x + lo, 0, (hi - lo) * sizeof(float));
}

#ifndef NDEBUG
/* What gradsync_begin rests on after a taken step: every reduced tensor's floats are zero
 * (each partial moved, nothing written since). Checked where assert() is on: the sanitizer
 * build runs the whole suite so, every model and layer kind it trains. */
static int reduced_zero(const dp_gradsync *gs)
{
    for (int i = 0; i < gs->nt; i++)
        for (size_t k = 0; gs->t[i].segment >= 0 && k < gs->t[i].count; k++)
            if (gs->grads[gs->t[i].offset + k] != 0.0f)
                return 0;
    return 1;
}
#endif

void gradsync_begin(dp_gradsync *gs, int groups)
{
    /* the last step finished and its sums went to the consumer: the moves zeroed every
     * partial of the reduced tensors, and nothing wrote their floats since */
    const int reduced_left_zero = gs->acc_zero && gs->taken;
    assert(!reduced_left_zero || reduced_zero(gs));
    gs->groups = groups > 0 ? groups : 1;
    const int lg = ceil_log2(gs->groups);
    for (int i = 0; i < gs->nt; i++) {
        tensor_state *t = &gs->t[i];
        const int F = 51 - lg - t->E;
        t->scale = ldexp(1.0, F);
        t->unscale = ldexp(1.0, -F);
        t->bound = ldexp(1.0, t->E);
        t->maxabs = 0.0f;
        t->over = t->nonfinite = 0;
    }
    if (!gs->acc_zero) /* a step that did not finish (or must be done again) */
        memset(gs->acc, 0, gs->acc_size * sizeof(int64_t));
    gs->acc_zero = 0;
    if (!reduced_left_zero) /* nopool's: 19 MB a step */
        gradsync_by_parts(gs->size, clear_part, gs->grads);
    else /* the rest: a frozen fc1 is 19 MB too, so all threads */
        for (int k = 0; k < gs->ngaps; k++)
            gradsync_by_parts(gs->gap[2 * k + 1] - gs->gap[2 * k], clear_part,
                              gs->grads + gs->gap[2 * k]);
    gs->next_bucket = gs->started = gs->closed = 0;
    gs->last = gs->pass = 0;
    gs->seq++;
}

void gradsync_pass(dp_gradsync *gs, int last)
{
    gs->last = last;
    gs->pass++;
}

/* What a thread's moves saw, into the tensor's: a maximum and two counts, the same
 * whatever order the threads arrive in. */
static void tensor_saw(tensor_state *t, float mx, int64_t over, int64_t bad)
{
    #pragma omp critical(gradsync_move)
    {
        t->maxabs = mx > t->maxabs ? mx : t->maxabs;
        t->over += over;
        t->nonfinite += bad;
    }
}

/* acc += round(g * 2^F) for every partial below the bound, g = 0, counting the rest, for
 * `rows` runs of `cols` floats `ld` apart (fixed_accumulate: exact, so the same bits
 * whichever thread moves which part). Safe from several threads at once. */
static void move_rows(tensor_state *t, float *g, int64_t *acc, size_t rows, size_t cols,
                      size_t ld)
{
    float mx = 0.0f;
    int64_t over = 0, bad = 0;
    for (size_t r = 0; r < rows; r++)
        fixed_accumulate(g + r * ld, acc + r * ld, cols, t->scale, t->bound, &mx, &over, &bad);
    tensor_saw(t, mx, over, bad);
}

static void move_part(void *span, size_t lo, size_t hi)
{
    const tensor_span *x = span;
    move_rows(x->t, x->g + lo, x->acc + lo, 1, hi - lo, 0);
}

void gradsync_partial(dp_gradsync *gs, int id)
{
    for (int k = 0; k < gs->nseg; k++)
        if (gs->seg[k].ready_after == id)
            for (int i = gs->seg[k].tensor0; i < gs->seg[k].tensor1; i++) {
                tensor_span x = {&gs->t[i], gs->grads + gs->t[i].offset,
                                 gs->acc + gs->t[i].value, NULL};
                gradsync_by_parts(x.t->count, move_part, &x); /* a whole tensor, between layers */
            }
}

/* The tensor holding float slot `at`, or NULL. */
static tensor_state *tensor_at(dp_gradsync *gs, size_t at)
{
    for (int i = 0; i < gs->nt; i++)
        if (at >= gs->t[i].offset && at < gs->t[i].offset + gs->t[i].count)
            return gs->t[i].segment >= 0 ? &gs->t[i] : NULL;
    return NULL;
}

void gradsync_move(dp_gradsync *gs, float *g, size_t rows, size_t cols, size_t ld)
{
    const size_t at = (size_t)(g - gs->grads);
    tensor_state *t = rows && cols ? tensor_at(gs, at) : NULL;
    if (t)
        move_rows(t, g, gs->acc + t->value + (at - t->offset), rows, cols, ld);
    if (gs->reducer && gs->started > 0 && !omp_in_parallel())
        reducer_progress(gs->reducer); /* the main thread, between groups of a layer */
}

/* After the rank's last pass: the extras of segment k's tensors. */
static void close_segment(dp_gradsync *gs, int k)
{
    for (int i = gs->seg[k].tensor0; i < gs->seg[k].tensor1; i++) {
        tensor_state *t = &gs->t[i];
        int64_t *x = gs->acc + t->extra;
        x[0] += t->nonfinite;
        x[1] += t->over;
        if (t->maxabs > 0.0f && t->maxabs <= FLT_MAX) {
            int e;
            frexpf(t->maxabs, &e);
            x[2 + (e - EMIN)] += 1;
        }
    }
}

/* Segments [0, upto) closed; then the buckets they complete may start reducing (MPI), or
 * the other ranks are told (shared memory: segment by segment, so they may sum them). */
static void close_and_start(dp_gradsync *gs, int upto, int start)
{
    if (gs->shared) {
        while (gs->closed < upto)
            close_segment(gs, gs->closed++);
        gradsync_publish(gs, gs->closed);
        return;
    }
    for (; gs->next_bucket < gs->nb && gs->b[gs->next_bucket].seg1 <= upto; gs->next_bucket++)
        for (int k = gs->b[gs->next_bucket].seg0; k < gs->b[gs->next_bucket].seg1; k++)
            close_segment(gs, k);
    while (start && gs->reducer && gs->started < gs->next_bucket) {
        if (gs->observe)
            gs->observe(gs->observe_ctx, gs->started, 0);
        reducer_start(gs->reducer, gs->started++);
    }
}

void gradsync_final(dp_gradsync *gs, int id)
{
    if (!gs->last)
        return;
    int upto = 0; /* segments are in backward order: those of id and the layers after it */
    while (upto < gs->nseg && gs->seg[upto].ready_after >= id)
        upto++;
    close_and_start(gs, upto, gs->overlap);
    if (gs->reducer && gs->started > 0)
        reducer_progress(gs->reducer);
}

void gradsync_on_partial(void *gs, int id) { gradsync_partial(gs, id); }
void gradsync_on_move(void *gs, float *g, size_t rows, size_t cols, size_t ld)
{
    gradsync_move(gs, g, rows, cols, ld);
}
void gradsync_on_final(void *gs, int id) { gradsync_final(gs, id); }

int gradsync_on_fixed_open(void *ctx, const float *g, dp_fixed_block *b)
{
    dp_gradsync *gs = ctx;
    const size_t at = (size_t)(g - gs->grads);
    const tensor_state *t = tensor_at(gs, at);
    if (!t)
        return -1;
    /* in the step's first pass nothing has reached the accumulator yet, and a layer that
     * moves its partials this way moves each block once */
    *b = (dp_fixed_block){gs->acc + t->value + (at - t->offset), t->scale, t->bound,
                          gs->pass == 1, 0.0f, 0, 0};
    return 0;
}

void gradsync_on_fixed_close(void *ctx, const float *g, const dp_fixed_block *b)
{
    dp_gradsync *gs = ctx;
    tensor_saw(tensor_at(gs, (size_t)(g - gs->grads)), b->maxabs, b->over, b->nonfinite);
}

/* The highest exponent any rank saw for tensor i, or INT_MIN when all were zero. */
static int top_exponent(const int64_t *x)
{
    for (int k = NBINS - 1; k >= 0; k--)
        if (x[2 + k] != 0)
            return k + EMIN;
    return INT_MIN;
}

static void take_part(void *span, size_t lo, size_t hi)
{
    const tensor_span *x = span;
    if (!x->take) {
        fixed_take(x->g + lo, x->acc + lo, hi - lo, x->t->unscale);
        return;
    }
    _Alignas(64) float g[TAKE_CHUNK];
    for (size_t at = lo; at < hi; at += TAKE_CHUNK) {
        const size_t n = hi - at < TAKE_CHUNK ? hi - at : TAKE_CHUNK;
        fixed_take(g, x->acc + at, n, x->t->unscale);
        x->take->take(x->take->take_ctx, x->t->offset + at, g, n);
    }
}

void gradsync_take_with(dp_gradsync *gs, dp_take_fn fn, void *ctx)
{
    gs->take = fn;
    gs->take_ctx = ctx;
}

int gradsync_taken(const dp_gradsync *gs) { return gs->taken; }

int gradsync_reduces(const dp_gradsync *gs, int i) { return gs->t[i].segment >= 0; }

int gradsync_use_take(dp_gradsync *gs)
{
    int bad = 0;
    for (int i = 0; i < gs->nt; i++)
        bad |= gs->t[i].segment >= 0 && gs->t[i].bad;
    return gs->taken = gs->take && !bad;
}

/* Tensor t's extras over all ranks: after the reduction, in the accumulator; through
 * shared memory, in every rank's. Returns 1 when the step must be computed again (a
 * partial over its bound, and no NaN or Inf, which do not go away: they are handed on);
 * sets t->bad and the bound of the next step. */
static int tensor_verdict(const dp_gradsync *gs, tensor_state *t)
{
    int64_t nonfinite = 0, over = 0;
    int top = INT_MIN;
    for (int q = 0; q < (gs->shared ? gs->nranks : 1); q++) {
        const int64_t *x = (gs->shared ? gs->peer[q] : gs->acc) + t->extra;
        const int e = top_exponent(x);
        nonfinite += x[0];
        over += x[1];
        top = e > top ? e : top;
    }
    if (top != INT_MIN)
        t->E = top + GRADSYNC_HEADROOM;
    t->bad = nonfinite > 0;
    return over > 0 && nonfinite == 0;
}

int gradsync_verdicts(dp_gradsync *gs)
{
    int redo = 0;
    for (int i = 0; i < gs->nt; i++)
        if (gs->t[i].segment >= 0)
            redo |= tensor_verdict(gs, &gs->t[i]);
    return redo;
}

int gradsync_nonfinite(const dp_gradsync *gs, int *first_bad)
{
    int n = 0;
    *first_bad = -1;
    for (int i = 0; i < gs->nt; i++)
        if (gs->t[i].segment >= 0 && gs->t[i].bad) {
            *first_bad = i;
            n++;
        }
    return n;
}

int gradsync_finish(dp_gradsync *gs, double *waited)
{
    /* With overlap every rank reduces every bucket with MPI_Iallreduce, the buckets its
     * backward did not start too (a rank without groups in this step starts them all
     * here): a blocking collective would not match the others' non-blocking one. */
    close_and_start(gs, gs->nseg, gs->overlap);
    if (gs->shared)
        return gradsync_finish_shared(gs, waited);
    *waited = gs->reducer ? reducer_wait(gs->reducer) : 0.0;
    if (gs->reducer && !gs->overlap) { /* every rank: one blocking reduction (comm.h) */
        for (int b = gs->started; gs->observe && b < gs->next_bucket; b++)
            gs->observe(gs->observe_ctx, b, 0);
        *waited += reducer_run(gs->reducer, gs->started, gs->next_bucket);
        gs->started = gs->next_bucket;
    }
    if (gradsync_verdicts(gs))
        return 1;
    const dp_gradsync *take = gradsync_use_take(gs) ? gs : NULL;
    /* The sums back to float (take_part); what was written of the accumulator (the reduced
     * tensors' values and extras: nothing else is) becomes zero on the way, sparing the
     * next gradsync_begin a pass over all of it. */
    for (int i = 0; i < gs->nt; i++) {
        tensor_state *t = &gs->t[i];
        if (t->segment < 0)
            continue;
        tensor_span x = {t, gs->grads + t->offset, gs->acc + t->value, take};
        if (t->bad) {
            for (size_t k = 0; k < t->count; k++)
                x.g[k] = NAN;
            memset(x.acc, 0, t->count * sizeof(int64_t));
        } else {
            gradsync_by_parts(t->count, take_part, &x);
        }
        memset(gs->acc + t->extra, 0, EXTRAS * sizeof(int64_t));
    }
    gs->acc_zero = 1;
    return 0;
}
