/* pass: the workspace (every activation, gradient and per-layer memory of a batch, in one
 * allocation sized from the shapes) and the whole-net forward, loss and backward, which
 * reach each layer's code through its kind (layer_kind.h). Nothing here allocates during
 * a pass. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"

static size_t align64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static size_t work_bytes(const dp_layer *L, int B)
{
    return L->kind->work_bytes ? align64(L->kind->work_bytes(L, B)) : 0;
}

/* The largest scratch any layer needs, for omp_get_max_threads() threads. */
static size_t scratch_bytes(const dp_model *m, int B)
{
    size_t most = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        size_t b = L->kind->scratch_bytes ? L->kind->scratch_bytes(L, B, omp_get_max_threads()) : 0;
        most = b > most ? b : most;
    }
    return align64(most);
}

int workspace_create(dp_workspace *ws, const dp_model *m, int max_batch, dp_err *err)
{
    memset(ws, 0, sizeof *ws);
    const size_t B = (size_t)max_batch, input = align64(B * m->layers[0].in_size * sizeof(float));
    size_t bytes = input + scratch_bytes(m, max_batch);
    for (int i = 0; i < m->nlayers; i++)
        bytes += 2 * align64(B * m->layers[i].out_size * sizeof(float)) +
                 work_bytes(&m->layers[i], max_batch);
    ws->act = dp_calloc((size_t)m->nlayers, sizeof(float *), "workspace", err);
    ws->dact = dp_calloc((size_t)m->nlayers, sizeof(float *), "workspace", err);
    ws->work = dp_calloc((size_t)m->nlayers, sizeof(void *), "workspace", err);
    ws->block = aligned_alloc(64, bytes);
    if (!ws->act || !ws->dact || !ws->work || !ws->block) {
        workspace_free(ws);
        return dp_fail(err, "out of memory: the workspace for batch %d needs %.1f MiB", max_batch,
                       bytes / 1048576.0);
    }
    memset(ws->block, 0, bytes);
    ws->bytes = bytes;
    ws->max_batch = max_batch;
    char *p = ws->block;
    ws->input = (float *)p;
    p += input;
    ws->scratch = p;
    p += scratch_bytes(m, max_batch);
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        ws->act[i] = (float *)p;
        p += align64(B * L->out_size * sizeof(float));
        ws->dact[i] = (float *)p;
        p += align64(B * L->out_size * sizeof(float));
        ws->work[i] = work_bytes(L, max_batch) ? p : NULL;
        p += work_bytes(L, max_batch);
    }
    return 0;
}

void workspace_free(dp_workspace *ws)
{
    free(ws->act);
    free(ws->dact);
    free(ws->work);
    free(ws->block);
    memset(ws, 0, sizeof *ws);
}

void layer_io_init(dp_layer_io *io, dp_model *m, dp_workspace *ws, int i, const dp_pass *pass)
{
    const dp_layer *L = &m->layers[i];
    const int first = i - L->absorbs; /* the first layer this one does */
    memset(io, 0, sizeof *io);
    io->L = L;
    io->index = i;
    io->B = pass->B;
    io->in = first > 0 ? ws->act[first - 1] : ws->input;
    io->out = ws->act[i];
    io->din = first > 0 ? ws->dact[first - 1] : NULL;
    io->dout = ws->dact[i];
    /* the tensors of layers first..i lie in a row in the table */
    const int p0 = m->layers[first].param_first, n = L->param_first + L->param_count - p0;
    for (int k = 0; k < n; k++) {
        const dp_param *p = &m->params[p0 + k];
        io->param[k] = m->weights + p->offset;
        io->grad[k] = model_param_updated(m, p) ? m->grads + p->offset : NULL;
    }
    io->work = ws->work[i];
    io->scratch = ws->scratch;
    io->absorbed = L->absorbs;
    for (int k = 0; k < L->absorbs; k++) {
        io->absorbed_work[k] = ws->work[first + k];
        io->absorbed_dout[k] = ws->dact[first + k];
    }
    io->pass = pass;
}

/* The lowest layer whose gradient anybody needs: the first with a tensor to update
 * (below it, frozen feature layers need no backward). nlayers when there is none. */
static int lowest_trained_layer(const dp_model *m)
{
    for (int p = 0; p < m->nparams; p++)
        if (model_param_updated(m, &m->params[p]))
            return m->params[p].layer;
    return m->nlayers;
}

/* The pass's timing hook, when it has one. */
static void timing(const dp_pass *pass, int layer, int backward, int end)
{
    if (pass->timing)
        pass->timing(pass->timing_ctx, layer, backward, end);
}

double model_forward(dp_model *m, dp_workspace *ws, const dp_pass *pass, int *correct)
{
    dp_layer_io io;
    for (int i = 0; i < m->nlayers; i++) {
        if (m->layers[i].absorbed)
            continue;
        layer_io_init(&io, m, ws, i, pass);
        timing(pass, i, 0, 0);
        m->layers[i].kind->forward(&io);
        timing(pass, i, 0, 1);
    }
    const int last = m->nlayers - 1, backward = pass->train && !pass->forward_only;
    timing(pass, m->nlayers, 0, 0);
    double loss = softmax_xent(backward ? ws->dact[last] : NULL, correct, ws->act[last],
                               pass->labels, pass->B, m->num_classes,
                               pass->grad_scale != 0.0 ? pass->grad_scale : 1.0);
    timing(pass, m->nlayers, 0, 1);
    return loss;
}

/* Where sample n's work of layer L starts. */
static size_t work_at(const dp_layer *L, int n)
{
    return L->kind->work_bytes ? L->kind->work_bytes(L, n) : 0;
}

/* Narrow a layer's io to samples [n0, n1): every buffer is sample-major, and a kind's work
 * for n samples is work_bytes(L, n) (layer_kind.h); so are those of the layers it absorbs. */
static void io_narrow(dp_layer_io *io, const dp_model *m, int i, int n0, int n1)
{
    const dp_layer *L = &m->layers[i], *first = L - L->absorbs;
    const size_t in = first->in_size, out = L->out_size;
    io->in += (size_t)n0 * in;
    io->out += (size_t)n0 * out;
    if (io->din)
        io->din += (size_t)n0 * in;
    io->dout += (size_t)n0 * out;
    if (io->work)
        io->work = (char *)io->work + work_at(L, n0);
    for (int k = 0; k < L->absorbs; k++) {
        if (io->absorbed_work[k])
            io->absorbed_work[k] = (char *)io->absorbed_work[k] + work_at(&first[k], n0);
        io->absorbed_dout[k] += (size_t)n0 * first[k].out_size;
    }
    io->B = n1 - n0;
}

/* Layer i's backward over the groups: at once where its kind can hand its partials over
 * itself, else group by group, each partial taken before the next group adds its own. */
static void layer_backward_groups(dp_model *m, dp_workspace *ws, const dp_pass *pass, int i,
                                  int lowest, const int *bounds, int ngroups)
{
    const dp_layer *L = &m->layers[i];
    dp_layer_io all;
    layer_io_init(&all, m, ws, i, pass);
    if (i - L->absorbs <= lowest) /* nobody needs the gradient below */
        all.din = NULL;
    int grads = 0; /* parameter gradients to hand over group by group */
    for (int k = 0; k < DP_LAYER_MAX_TENSORS; k++)
        grads |= all.grad[k] != NULL;
    if (ngroups > 1 && (!grads || (L->kind->backward_groups && pass->move))) {
        io_narrow(&all, m, i, bounds[0], bounds[ngroups]);
        if (grads) /* the kind hands its groups' partials over itself */
            L->kind->backward_groups(&all, bounds, ngroups);
        else /* no parameters: each sample's input gradient is its own, so all at once */
            L->kind->backward(&all);
        return;
    }
    for (int g = 0; g < ngroups; g++) {
        dp_layer_io io = all;
        io_narrow(&io, m, i, bounds[g], bounds[g + 1]);
        L->kind->backward(&io);
        for (int k = 0; pass->partial && k <= L->absorbs; k++) /* its own and theirs */
            pass->partial(pass->done_ctx, i - k);
    }
}

void model_backward_groups(dp_model *m, dp_workspace *ws, const dp_pass *pass,
                           const int *bounds, int ngroups)
{
    const int last = m->nlayers - 1, lowest = lowest_trained_layer(m);
    for (int i = last; i >= lowest; i--) {
        if (!m->layers[i].absorbed) { /* else done by the layer after it, partials too */
            timing(pass, i, 1, 0);
            layer_backward_groups(m, ws, pass, i, lowest, bounds, ngroups);
            timing(pass, i, 1, 1);
        }
        if (pass->done)
            pass->done(pass->done_ctx, i);
    }
}

void model_backward(dp_model *m, dp_workspace *ws, const dp_pass *pass, int n0, int n1)
{
    const int bounds[2] = {n0, n1};
    model_backward_groups(m, ws, pass, bounds, 1);
}

double model_forward_backward(dp_model *m, dp_workspace *ws, const dp_pass *pass, int *correct)
{
    double loss = model_forward(m, ws, pass, correct);
    if (pass->train && !pass->forward_only)
        model_backward(m, ws, pass, 0, pass->B);
    return loss;
}
