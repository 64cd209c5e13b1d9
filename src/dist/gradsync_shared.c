/* gradsync_shared: the gradient sum through memory the ranks of one node share
 * (gradsync_share, gradsync.h): each rank sums and rounds its slice of every rank's
 * accumulator, then copies the other ranks' slices. The rest of gradsync is gradsync.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "gradsync_impl.h"

/* Rank q's slice [lo, hi) of the reduced tensors' values, taken in tensor order. */
static void slice_of(const dp_gradsync *gs, int q, size_t *lo, size_t *hi)
{
    const size_t P = (size_t)gs->nranks, V = gs->values;
    *lo = V * (size_t)q / P & ~(size_t)15;
    *hi = q + 1 == gs->nranks ? V : V * (size_t)(q + 1) / P & ~(size_t)15;
}

typedef struct {
    dp_gradsync *gs;
    tensor_state *t;
    size_t k0; /* the piece's first element in its tensor */
    int q;     /* whose slice */
} shared_piece;

/* fn(piece, n) over each tensor's part of rank q's slice. */
static void for_pieces(dp_gradsync *gs, int q, void (*fn)(shared_piece *, size_t))
{
    size_t lo, hi, at = 0;
    slice_of(gs, q, &lo, &hi);
    for (int i = 0; i < gs->nt; i++) {
        tensor_state *t = &gs->t[i];
        if (t->segment < 0)
            continue;
        const size_t a = lo > at ? lo : at, b = hi < at + t->count ? hi : at + t->count;
        shared_piece x = {gs, t, a - at, q};
        if (a < b)
            fn(&x, b - a);
        at += t->count;
    }
}

/* Elements [lo, hi) of a piece of this rank's slice: every rank's values added (and left
 * zero for the next step), rounded to float as after the reduction, into this rank's
 * stage and its gradients (or gradsync_take_with's consumer); in chunks that stay in L1. */
static void sum_part(void *piece, size_t lo, size_t hi)
{
    enum { CHUNK = TAKE_CHUNK };
    const shared_piece *x = piece;
    const dp_gradsync *gs = x->gs;
    const tensor_state *t = x->t;
    _Alignas(64) int64_t sum[CHUNK];
    for (size_t at = lo; at < hi; at += CHUNK) {
        const size_t n = hi - at < CHUNK ? hi - at : CHUNK, v = t->value + x->k0 + at;
        float *out = gs->stage[gs->rank] + t->offset + x->k0 + at;
        memcpy(sum, gs->peer[0] + v, n * sizeof *sum);
        for (int q = 1; q < gs->nranks; q++) {
            const int64_t *p = gs->peer[q] + v;
            for (size_t k = 0; k < n; k++)
                sum[k] += p[k];
        }
        for (int q = 0; q < gs->nranks; q++)
            memset(gs->peer[q] + v, 0, n * sizeof *sum);
        if (t->bad)
            for (size_t k = 0; k < n; k++)
                out[k] = NAN;
        else
            fixed_take(out, sum, n, t->unscale);
        const size_t offset = (size_t)(out - gs->stage[gs->rank]);
        if (gs->taken)
            gs->take(gs->take_ctx, offset, out, n); /* in L1 */
        else
            memcpy(gs->grads + offset, out, n * sizeof *out);
    }
}

static void sum_piece(shared_piece *x, size_t n) { gradsync_by_parts(n, sum_part, x); }

static void copy_part(void *piece, size_t lo, size_t hi)
{
    const shared_piece *x = piece;
    const dp_gradsync *gs = x->gs;
    const size_t at = x->t->offset + x->k0 + lo;
    if (gs->taken)
        gs->take(gs->take_ctx, at, gs->stage[x->q] + at, hi - lo);
    else
        memcpy(gs->grads + at, gs->stage[x->q] + at, (hi - lo) * sizeof(float));
}

static void copy_piece(shared_piece *x, size_t n) { gradsync_by_parts(n, copy_part, x); }

/* After every rank's accumulator is complete: the verdicts, this rank's slice summed, and
 * once every slice is, the floats of all of them. */
int gradsync_finish_shared(dp_gradsync *gs, double *waited)
{
    const double t0 = omp_get_wtime();
    if (gs->observe)
        gs->observe(gs->observe_ctx, 0, 0);
    shared_sync(gs->shared);
    const int redo = gradsync_verdicts(gs);
    if (!redo) {
        gradsync_use_take(gs);
        for_pieces(gs, gs->rank, sum_piece);
    }
    shared_sync(gs->shared); /* every slice summed, and nobody reads the extras any more */
    for (int q = 0; !redo && q < gs->nranks; q++)
        if (q != gs->rank) /* its own slice is there already */
            for_pieces(gs, q, copy_piece);
    for (int i = 0; !redo && i < gs->nt; i++)
        if (gs->t[i].segment >= 0)
            memset(gs->acc + gs->t[i].extra, 0, EXTRAS * sizeof(int64_t));
    gs->acc_zero = !redo; /* the values were left zero by their slices' ranks */
    if (gs->observe)
        gs->observe(gs->observe_ctx, 0, 1);
    *waited = omp_get_wtime() - t0;
    return redo;
}

int gradsync_share(dp_gradsync *gs, const dp_comm *c, int required, char *why, size_t why_len,
                   dp_err *err)
{
    snprintf(why, why_len, "%s", "");
    const size_t acc_bytes = (gs->acc_size + 1) * sizeof(int64_t);
    const size_t floats_at = (acc_bytes + 63) & ~(size_t)63;
    gs->peer = dp_calloc((size_t)c->size, sizeof *gs->peer, "shared sums", err);
    gs->stage = dp_calloc((size_t)c->size, sizeof *gs->stage, "shared sums", err);
    if (comm_agree(c, gs->peer && gs->stage ? 0 : -1, err))
        return -1;
    if (gs->overlap)
        snprintf(why, why_len, "--overlap reduces bucket by bucket with MPI");
    else if (!gs->reducer)
        snprintf(why, why_len, "%s", c->size < 2 ? "one rank" : "nothing to reduce");
    else if (shared_create(&gs->shared, c, floats_at + gs->size * sizeof(float), why, why_len,
                           err))
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
    gs->values = 0;
    for (int i = 0; i < gs->nt; i++)
        gs->values += gs->t[i].segment >= 0 ? gs->t[i].count : 0;
    return 0;
}

int gradsync_shared(const dp_gradsync *gs) { return gs->shared != NULL; }
