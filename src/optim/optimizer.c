/* The optimizer interface: a table of kinds, the state they own, the step over tensors. */
#include "dptrain/optim/optim.h"
#include "dptrain/util/sums.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim_kind.h"

/* One kind: its state per parameter tensor (float tensors shaped as the parameter, int64
 * counters of one element) and its update of one tensor. */
typedef struct {
    const char *name;
    int nstates;
    const char *states[OPTIM_MAX_STATES];
    int ncounters;
    const char *counters[OPTIM_MAX_COUNTERS];
    optim_step_fn step;
    optim_piece_fn piece; /* NULL: the update needs whole tensors (norms, counters) */
} optim_kind;

/* State names are torch.optim's, so a checkpoint's state reads as PyTorch's state_dict. */
static const optim_kind kinds[] = {
    {"sgd", 1, {"momentum_buffer"}, 0, {NULL}, sgd_tensor, sgd_piece},
    {"lars", 1, {"momentum_buffer"}, 0, {NULL}, lars_tensor, NULL},
    {"lamb", 2, {"exp_avg", "exp_avg_sq"}, 1, {"step"}, lamb_tensor, NULL},
    {"adamw", 2, {"exp_avg", "exp_avg_sq"}, 1, {"step"}, adamw_tensor, NULL},
};

struct dp_optimizer {
    const optim_kind *kind;
    dp_optim_config cfg;
    dp_param_view *params;
    int nparams;
    float *block;           /* every float state, kind->nstates blocks parallel to weights */
    size_t size;            /* floats in one block (= the parameter buffer) */
    int64_t *counters;      /* [nparams * ncounters], parameter-major */
    dp_optim_state *state;  /* [nparams * (nstates + ncounters)], parameter-major */
    float *scratch;         /* [largest tensor] */
    double *partials;       /* [optim_norm_blocks(largest tensor)] */
};

static const optim_kind *find_kind(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

static size_t span_of(const dp_param_view *params, int n)
{
    size_t end = 0;
    for (int i = 0; i < n; i++)
        if (params[i].offset + params[i].count > end)
            end = params[i].offset + params[i].count;
    return end;
}

static size_t largest_of(const dp_param_view *params, int n)
{
    size_t most = 1;
    for (int i = 0; i < n; i++)
        if (params[i].count > most)
            most = params[i].count;
    return most;
}

/* Name every state tensor and counter and point it into the blocks. */
static void lay_out_state(dp_optimizer *o)
{
    const optim_kind *k = o->kind;
    const int per = k->nstates + k->ncounters;
    for (int i = 0; i < o->nparams; i++) {
        const dp_param_view *p = &o->params[i];
        for (int s = 0; s < per; s++) {
            dp_optim_state *st = &o->state[(size_t)i * per + s];
            const int is_counter = s >= k->nstates;
            snprintf(st->name, sizeof st->name, "%s.%s", p->name,
                     is_counter ? k->counters[s - k->nstates] : k->states[s]);
            st->type = is_counter ? DP_STATE_I64 : DP_STATE_F32;
            if (is_counter) {
                st->ints = o->counters + (size_t)i * k->ncounters + (s - k->nstates);
                st->count = 1;
            } else {
                st->data = o->block + (size_t)s * o->size + p->offset;
                st->count = p->count;
            }
        }
    }
}

int optimizer_create(dp_optimizer **out, const dp_optim_config *cfg, const dp_param_view *params,
                     int nparams, dp_err *err)
{
    *out = NULL;
    const optim_kind *kind = find_kind(cfg->kind);
    if (!kind)
        return dp_fail(err, "--optimizer %s: unknown optimizer (expected sgd, lars, lamb or "
                            "adamw)", cfg->kind);
    dp_optimizer *o = dp_calloc(1, sizeof *o, "optimizer", err);
    if (!o)
        return -1;
    o->kind = kind;
    o->cfg = *cfg;
    o->nparams = nparams;
    o->size = span_of(params, nparams);
    const size_t largest = largest_of(params, nparams);
    const size_t per = (size_t)(kind->nstates + kind->ncounters);
    o->params = dp_calloc((size_t)nparams + 1, sizeof *o->params, "optimizer", err);
    o->block = dp_calloc(o->size * (size_t)kind->nstates + 1, sizeof(float), "optimizer state",
                         err);
    o->counters = dp_calloc((size_t)nparams * (size_t)kind->ncounters + 1, sizeof(int64_t),
                            "optimizer step counts", err);
    o->state = dp_calloc((size_t)nparams * per + 1, sizeof *o->state, "optimizer state", err);
    o->scratch = dp_calloc(largest, sizeof(float), "optimizer scratch", err);
    o->partials = dp_calloc(optim_norm_blocks(largest), sizeof(double), "optimizer norms", err);
    if (!o->params || !o->block || !o->counters || !o->state || !o->scratch || !o->partials) {
        optimizer_free(o);
        return -1;
    }
    memcpy(o->params, params, sizeof *params * (size_t)nparams);
    lay_out_state(o);
    *out = o;
    return 0;
}

void optimizer_free(dp_optimizer *o)
{
    if (!o)
        return;
    free(o->params);
    free(o->block);
    free(o->counters);
    free(o->state);
    free(o->scratch);
    free(o->partials);
    free(o);
}

const char *optimizer_kind(const dp_optimizer *o) { return o->kind->name; }

void optimizer_step(dp_optimizer *o, float *weights, const float *grads, double lr)
{
    const optim_kind *k = o->kind;
    const int per = k->nstates + k->ncounters;
    optim_tensor t = {.scratch = o->scratch, .partials = o->partials};
    for (int i = 0; i < o->nparams; i++) {
        const dp_param_view *p = &o->params[i];
        if (!p->trainable)
            continue; /* frozen parameters keep their weights, state and step count */
        t.param = p;
        t.w = weights + p->offset;
        t.g = grads + p->offset;
        for (int s = 0; s < k->nstates; s++)
            t.state[s] = o->state[(size_t)i * per + s].data;
        for (int c = 0; c < k->ncounters; c++)
            t.counter[c] = o->state[(size_t)i * per + k->nstates + c].ints;
        k->step(&o->cfg, &t, lr);
    }
}

int optimizer_by_pieces(const dp_optimizer *o) { return o->kind->piece != NULL; }

void optimizer_step_piece(const dp_optimizer *o, float *weights, size_t offset, const float *g,
                          size_t n, double lr)
{
    float *state[OPTIM_MAX_STATES];
    for (int s = 0; s < o->kind->nstates; s++) /* each block lies parallel to the weights */
        state[s] = o->block + (size_t)s * o->size + offset;
    o->kind->piece(&o->cfg, weights + offset, g, state, n, lr);
}

void optimizer_take_piece(void *ctx, size_t offset, const float *g, size_t n)
{
    const dp_optim_pieces *p = ctx;
    optimizer_step_piece(p->opt, p->weights, offset, g, n, p->lr);
}

int optimizer_state_count(const dp_optimizer *o)
{
    return o->nparams * (o->kind->nstates + o->kind->ncounters);
}

const dp_optim_state *optimizer_state(const dp_optimizer *o, int i) { return &o->state[i]; }

/* ---- shared by the kinds ------------------------------------------------------------ */

size_t optim_norm_blocks(size_t n) { return n / OPTIM_NORM_BLOCK + 1; }

double optim_norm(const float *x, size_t n, double *partials)
{
    const long nblocks = (long)((n + OPTIM_NORM_BLOCK - 1) / OPTIM_NORM_BLOCK);
    #pragma omp parallel for schedule(static) if (nblocks > 1)
    for (long b = 0; b < nblocks; b++) {
        const size_t lo = (size_t)b * OPTIM_NORM_BLOCK;
        const size_t len = n - lo < OPTIM_NORM_BLOCK ? n - lo : OPTIM_NORM_BLOCK;
        partials[b] = dp_sum_squares(x + lo, len);
    }
    double total = 0.0;
    for (long b = 0; b < nblocks; b++)
        total += partials[b];
    return sqrt(total);
}

int optim_excluded(const dp_optim_config *cfg, const dp_param_view *p)
{
    return cfg->exclude_bias && p->ndims == 1;
}
