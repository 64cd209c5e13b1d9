#include "dptrain/dist/gradsync.h"

#include <stdlib.h>

#include "dptrain/dist/comm.h"

struct dp_gradsync {
    float *grads;
    size_t size;
    int overlap;
    dp_reducer *reducer;   /* NULL on one rank */
    int nbuckets, next;    /* buckets in backward order; the next one to start */
    size_t *begin, *end;
    int *ready;            /* bucket b may start once id ready[b] is reported */
    dp_bucket_event observe; /* tracing, or NULL */
    void *observe_ctx;
};

/* Pack the segments into buckets of at least `want` floats (see gradsync.h). */
static void plan_buckets(dp_gradsync *gs, const dp_grad_segment *seg, int nseg, size_t want)
{
    int open = 0;
    for (int k = 0; k < nseg; k++) {
        if (open && seg[k].end != gs->begin[gs->nbuckets]) { /* a gap: close the bucket */
            gs->nbuckets++;
            open = 0;
        }
        if (!open) {
            gs->end[gs->nbuckets] = seg[k].end;
            open = 1;
        }
        gs->begin[gs->nbuckets] = seg[k].begin;
        gs->ready[gs->nbuckets] = seg[k].ready_after;
        if (gs->end[gs->nbuckets] - seg[k].begin >= want) {
            gs->nbuckets++;
            open = 0;
        }
    }
    if (open)
        gs->nbuckets++;
}

int gradsync_create(dp_gradsync **out, float *grads, size_t size, const dp_grad_segment *seg,
                    int nseg, size_t bucket_bytes, int overlap, int nranks, dp_err *err)
{
    dp_gradsync *gs = dp_calloc(1, sizeof *gs, "gradient buckets", err);
    *out = NULL;
    if (!gs)
        return -1;
    gs->grads = grads;
    gs->size = size;
    gs->overlap = overlap;
    if (nranks > 1 && nseg > 0) {
        gs->begin = dp_calloc((size_t)nseg, sizeof(size_t), "gradient buckets", err);
        gs->end = dp_calloc((size_t)nseg, sizeof(size_t), "gradient buckets", err);
        gs->ready = dp_calloc((size_t)nseg, sizeof(int), "gradient buckets", err);
        if (!gs->begin || !gs->end || !gs->ready) {
            gradsync_free(gs);
            return -1;
        }
        plan_buckets(gs, seg, nseg, bucket_bytes / sizeof(float));
        gs->reducer = reducer_create(grads, gs->begin, gs->end, gs->nbuckets, err);
        if (!gs->reducer) {
            gradsync_free(gs);
            return -1;
        }
    }
    *out = gs;
    return 0;
}

void gradsync_free(dp_gradsync *gs)
{
    if (!gs)
        return;
    reducer_free(gs->reducer);
    free(gs->begin);
    free(gs->end);
    free(gs->ready);
    free(gs);
}

int gradsync_buckets(const dp_gradsync *gs) { return gs->nbuckets; }

size_t gradsync_bucket_bytes(const dp_gradsync *gs, int b)
{
    return (gs->end[b] - gs->begin[b]) * sizeof(float);
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

/* Start the next bucket's reduction. */
static void start_next(dp_gradsync *gs)
{
    if (gs->observe)
        gs->observe(gs->observe_ctx, gs->next, 0);
    reducer_start(gs->reducer, gs->next++);
}

void gradsync_begin(dp_gradsync *gs) { gs->next = 0; }

void gradsync_ready(dp_gradsync *gs, int ready_after)
{
    if (!gs->reducer || !gs->overlap)
        return;
    while (gs->next < gs->nbuckets && ready_after <= gs->ready[gs->next])
        start_next(gs);
    if (gs->next > 0)
        reducer_progress(gs->reducer);
}

double gradsync_finish(dp_gradsync *gs, int global_batch)
{
    double waited = 0.0;
    if (gs->reducer) {
        while (gs->next < gs->nbuckets)
            start_next(gs);
        waited = reducer_wait(gs->reducer);
    }
    /* The sum over the global batch, divided by its count: the mean, as PyTorch's loss
     * reduction 'mean' gives it. */
    const float count = (float)global_batch;
    float *g = gs->grads;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < gs->size; i++)
        g[i] = g[i] / count;
    return waited;
}
