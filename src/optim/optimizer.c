/* The optimizer interface: a table of kinds, the state they own, the step over tensors. */
#include "dptrain/optim/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATES 4

/* One kind: its state tensors (per parameter) and its update of one tensor. */
typedef struct {
    const char *name;
    int nstates;
    const char *states[MAX_STATES];
    void (*step)(const dp_optimizer *o, const dp_param_view *p, float *w, const float *g,
                 float *const *state, float lr);
} optim_kind;

struct dp_optimizer {
    const optim_kind *kind;
    dp_optim_config cfg;
    dp_param_view *params;
    int nparams;
    float *block;           /* every state tensor, kind->nstates blocks parallel to weights */
    size_t size;            /* floats in one block (= the parameter buffer) */
    dp_optim_state *state;  /* [nparams * nstates], parameter-major */
};

static void sgd_tensor(const dp_optimizer *o, const dp_param_view *p, float *w, const float *g,
                       float *const *state, float lr)
{
    sgd_update(w, g, state[0], p->count, lr, (float)o->cfg.momentum, (float)o->cfg.weight_decay,
               o->cfg.nesterov);
}

static const optim_kind kinds[] = {
    {"sgd", 1, {"momentum_buffer"}, sgd_tensor},
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

int optimizer_create(dp_optimizer **out, const dp_optim_config *cfg, const dp_param_view *params,
                     int nparams, dp_err *err)
{
    *out = NULL;
    const optim_kind *kind = find_kind(cfg->kind);
    if (!kind)
        return dp_fail(err, "--optimizer %s: unknown optimizer (expected sgd)", cfg->kind);
    dp_optimizer *o = dp_calloc(1, sizeof *o, "optimizer", err);
    if (!o)
        return -1;
    o->kind = kind;
    o->cfg = *cfg;
    o->nparams = nparams;
    o->size = span_of(params, nparams);
    o->params = dp_calloc((size_t)nparams, sizeof *o->params, "optimizer", err);
    o->block = dp_calloc(o->size * (size_t)kind->nstates, sizeof(float), "optimizer state", err);
    o->state = dp_calloc((size_t)nparams * (size_t)kind->nstates, sizeof *o->state,
                         "optimizer state", err);
    if (!o->params || (!o->block && o->size > 0) || !o->state) {
        optimizer_free(o);
        return -1;
    }
    memcpy(o->params, params, sizeof *params * (size_t)nparams);
    for (int i = 0; i < nparams; i++)
        for (int s = 0; s < kind->nstates; s++) {
            dp_optim_state *st = &o->state[(size_t)i * kind->nstates + s];
            snprintf(st->name, sizeof st->name, "%s.%s", params[i].name, kind->states[s]);
            st->data = o->block + (size_t)s * o->size + params[i].offset;
            st->count = params[i].count;
        }
    *out = o;
    return 0;
}

void optimizer_free(dp_optimizer *o)
{
    if (!o)
        return;
    free(o->params);
    free(o->block);
    free(o->state);
    free(o);
}

const char *optimizer_kind(const dp_optimizer *o) { return o->kind->name; }

void optimizer_step(dp_optimizer *o, float *weights, const float *grads, double lr)
{
    float *state[MAX_STATES];
    for (int i = 0; i < o->nparams; i++) {
        const dp_param_view *p = &o->params[i];
        if (!p->trainable)
            continue; /* frozen parameters keep their weights and state as they are */
        for (int s = 0; s < o->kind->nstates; s++)
            state[s] = o->state[(size_t)i * o->kind->nstates + s].data;
        o->kind->step(o, p, weights + p->offset, grads + p->offset, state, (float)lr);
    }
}

int optimizer_state_count(const dp_optimizer *o) { return o->nparams * o->kind->nstates; }

const dp_optim_state *optimizer_state(const dp_optimizer *o, int i) { return &o->state[i]; }
