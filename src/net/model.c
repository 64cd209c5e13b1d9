/* model: builds the layer list from a spec (spec.c), infers every shape and lays the
 * parameter tensors out in the flat buffers, all through the kinds' table
 * (layer_kind.h); initialises and describes the result. */
#include "dptrain/net/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/util/rng.h"
#include "spec.h"

/* Beyond these a spec is a typo, not a model: 2^31 floats are 8 GiB per flat buffer, and
 * keeping counts below 2^31 keeps every int shape, fan-in and product exact. */
#ifndef DPTRAIN_MAX_PARAMS
#define DPTRAIN_MAX_PARAMS (1LL << 31)
#endif
#define MAX_PARAMS ((long long)DPTRAIN_MAX_PARAMS)
#define MAX_ACTIVATIONS (1LL << 31) /* values per sample in one layer's output */

static const struct {
    const char *name, *spec;
} builtins[] = {
    /* The PyTorch MNIST tutorial net. */
    {"reference", "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) fc(128) relu fc(classes)"},
    /* The tutorial's literal code: the same layers without the two max-pools. */
    {"nopool", "conv(32,3) relu conv(64,3) relu fc(128) relu fc(classes)"},
};

const char *model_builtin_spec(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(name, builtins[i].name) == 0)
            return builtins[i].spec;
    return NULL;
}

/* ---- shapes and parameters -------------------------------------------------------- */

/* The tensors of layer i, checked against the size limits, appended to the table. */
static int add_tensors(dp_model *m, int i, dp_err *err)
{
    dp_layer *L = &m->layers[i];
    dp_tensor_desc t[DP_LAYER_MAX_TENSORS];
    int n = L->kind->tensors ? L->kind->tensors(L, t) : 0;
    L->param_first = m->nparams;
    L->param_count = n;
    double total = (double)m->size;
    for (int k = 0; k < n; k++) {
        double count = 1;
        char dims[96] = "";
        for (int d = 0; d < t[k].ndims; d++) {
            count *= t[k].dims[d];
            snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%s%d", d ? " x " : "",
                     t[k].dims[d]);
        }
        total += count;
        if (total > (double)MAX_PARAMS)
            return dp_fail(err, "layer %d %s: %s %ss bring the model past %lld parameters",
                           i + 1, L->text, dims, t[k].suffix, MAX_PARAMS);
    }
    for (int k = 0; k < n; k++) {
        dp_param *p = &m->params[m->nparams++];
        snprintf(p->name, sizeof p->name, "%s.%s", L->name, t[k].suffix);
        p->ndims = t[k].ndims;
        p->count = 1;
        for (int d = 0; d < t[k].ndims; d++) {
            p->dims[d] = t[k].dims[d];
            p->count *= (size_t)t[k].dims[d];
        }
        p->offset = m->size;
        m->size += p->count;
        p->fan_in = 0; /* below the limit checked above, so the product is exact */
        if (t[k].fan_in_of >= 0) {
            const dp_tensor_desc *w = &t[t[k].fan_in_of];
            p->fan_in = 1;
            for (int d = 1; d < w->ndims; d++)
                p->fan_in *= w->dims[d];
        }
        p->init_value = t[k].value;
        p->trainable = t[k].trainable;
        p->layer = i;
    }
    return 0;
}

static int infer_shapes(dp_model *m, dp_err *err)
{
    int c = m->in_c, h = m->in_h, w = m->in_w, count[DP_LAYER_MAX_KINDS] = {0};
    const dp_layer_kind *flat_by = NULL; /* the layer kind that made the data flat */
    for (int i = 0; i < m->nlayers; i++) {
        dp_layer *L = &m->layers[i];
        const dp_layer_kind *k = L->kind;
        L->in_c = L->out_c = c;
        L->in_h = L->out_h = h;
        L->in_w = L->out_w = w;
        if (k->spatial && flat_by)
            return dp_fail(err, "layer %d %s: comes after %s, whose output is flat (no height "
                                "and width)", i + 1, L->text, flat_by->name);
        if (k->shape && k->shape(L, m, i, err))
            return -1;
        if ((double)L->out_c * L->out_h * L->out_w > (double)MAX_ACTIVATIONS)
            return dp_fail(err, "layer %d %s: output %d x %d x %d is more than %lld values per "
                                "sample", i + 1, L->text, L->out_c, L->out_h, L->out_w,
                           MAX_ACTIVATIONS);
        for (int j = 0; j < layer_kind_count(); j++)
            if (layer_kind_at(j) == k)
                snprintf(L->name, sizeof L->name, "%s%d", k->name, ++count[j]);
        if (add_tensors(m, i, err))
            return -1;
        if (k->flattens)
            flat_by = k;
        c = L->out_c;
        h = L->out_h;
        w = L->out_w;
        L->in_size = (size_t)L->in_c * L->in_h * L->in_w;
        L->out_size = (size_t)c * h * w;
    }
    const dp_layer *last = &m->layers[m->nlayers - 1];
    if (!last->kind->scores)
        return dp_fail(err, "layer %d %s: the last layer must be fc (it gives one score per "
                            "class)", m->nlayers, last->text);
    if (last->out_size != (size_t)m->num_classes)
        return dp_fail(err, "layer %d %s: the last layer has %zu outputs but the data has %d "
                            "classes (write fc(classes))", m->nlayers, last->text,
                       last->out_size, m->num_classes);
    return 0;
}

/* A kind may do the layers right before it too (relu, or conv and relu, then maxpool; conv
 * then relu: one pass over memory), when none of them is absorbed or absorbing already
 * and their tensors fit one layer's io. From the last layer back, so that a maxpool takes
 * its conv and relu before that relu could take the conv alone. */
static void mark_absorptions(dp_model *m)
{
    for (int i = m->nlayers - 1; i >= 1; i--) {
        dp_layer *L = &m->layers[i];
        if (L->absorbed)
            continue;
        int n = L->kind->absorbs ? L->kind->absorbs(L, i) : 0;
        if (n < 1 || n > DP_LAYER_MAX_ABSORBS || n > i)
            continue;
        int tensors = L->param_count, clear = 1;
        for (int k = 1; k <= n; k++) {
            tensors += L[-k].param_count;
            clear &= !L[-k].absorbs && !L[-k].absorbed;
        }
        if (!clear || tensors > DP_LAYER_MAX_TENSORS)
            continue;
        L->absorbs = n;
        for (int k = 1; k <= n; k++)
            L[-k].absorbed = 1;
    }
}

static int read_spec_file(const char *path, char *buf, size_t len, dp_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dp_fail(err, "--model %s: cannot open the spec file", path);
    size_t n = fread(buf, 1, len - 1, f);
    int too_long = n == len - 1 && fgetc(f) != EOF;
    fclose(f);
    if (too_long)
        return dp_fail(err, "--model %s: spec file is longer than %zu bytes", path, len - 1);
    buf[n] = 0;
    return 0;
}

/* The spec text behind a name, a file or the text itself; *owned is what to free. */
static const char *spec_text(const char *name_or_spec, char **owned, dp_err *err)
{
    *owned = NULL;
    const char *spec = model_builtin_spec(name_or_spec);
    if (spec)
        return spec;
    FILE *probe = fopen(name_or_spec, "rb");
    if (probe) {
        fclose(probe);
        enum { SPEC_FILE_MAX = 16384 };
        *owned = dp_calloc(SPEC_FILE_MAX, 1, "spec text", err);
        if (!*owned || read_spec_file(name_or_spec, *owned, SPEC_FILE_MAX, err))
            return NULL;
        return *owned;
    }
    /* A path that does not open is a missing file, not a one-layer spec named "x/y". */
    if (strchr(name_or_spec, '/') && !strchr(name_or_spec, '(')) {
        dp_fail(err, "--model %s: cannot open the spec file: %s", name_or_spec, strerror(errno));
        return NULL;
    }
    return name_or_spec;
}

int model_build(dp_model *m, const char *name_or_spec, int C, int H, int W, int num_classes,
                dp_err *err)
{
    memset(m, 0, sizeof *m);
    if (C < 1 || H < 1 || W < 1 || num_classes < 1)
        return dp_fail(err, "model: input %dx%dx%d with %d classes is not valid", C, H, W,
                       num_classes);
    char *text = NULL;
    const char *spec = spec_text(name_or_spec, &text, err);
    m->in_c = C;
    m->in_h = H;
    m->in_w = W;
    m->num_classes = num_classes;
    m->layers = dp_calloc(DP_MODEL_MAX_LAYERS, sizeof *m->layers, "layers", err);
    m->params = dp_calloc(DP_MODEL_MAX_LAYERS * DP_LAYER_MAX_TENSORS, sizeof *m->params,
                          "parameter table", err);
    if (!spec || !m->layers || !m->params || spec_parse(m, spec, err))
        goto fail;
    if (m->nlayers == 0) {
        dp_fail(err, "model: the spec '%s' has no layers (use a name: reference, nopool, or a "
                     "spec such as \"conv(32,3) relu maxpool(2) fc(classes)\")", name_or_spec);
        goto fail;
    }
    if (infer_shapes(m, err))
        goto fail;
    mark_absorptions(m);
    size_t at = 0;
    for (int i = 0; i < m->nlayers && at < sizeof m->spec; i++)
        at += (size_t)snprintf(m->spec + at, sizeof m->spec - at, "%s%s", i ? " " : "",
                               m->layers[i].text);
    m->weights = dp_calloc_lines(m->size, sizeof(float), "parameters", err);
    m->grads = dp_calloc_lines(m->size, sizeof(float), "gradients", err);
    if (!m->weights || !m->grads)
        goto fail;
    free(text);
    return 0;
fail:
    free(text);
    if (err && strncmp(err->msg, "--model", 7) != 0)
        dp_prefix(err, "--model");
    model_free(m);
    return -1;
}

void model_free(dp_model *m)
{
    free(m->layers);
    free(m->params);
    free(m->weights);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void model_init_param(dp_model *m, int param, uint64_t seed)
{
    const dp_param *p = &m->params[param];
    float *w = m->weights + p->offset;
    if (p->fan_in == 0) {
        for (size_t i = 0; i < p->count; i++)
            w[i] = p->init_value;
        return;
    }
    dp_rng r;
    rng_seed(&r, seed, (uint64_t)param + 1, 0x1417);
    float bound = 1.0f / sqrtf((float)p->fan_in);
    for (size_t i = 0; i < p->count; i++)
        w[i] = -bound + 2.0f * bound * rng_uniform(&r);
}

void model_init(dp_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nparams; i++)
        model_init_param(m, i, seed);
}

void model_describe(const dp_model *m, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < m->nlayers && at < len; i++) {
        const dp_layer *L = &m->layers[i];
        char one[128];
        if (L->kind->describe)
            L->kind->describe(L, one, sizeof one);
        else
            snprintf(one, sizeof one, "%s", L->text);
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? " " : "", one);
    }
}

int model_find_layer(const dp_model *m, const char *name)
{
    for (int i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return i;
    return -1;
}

const dp_param *model_layer_params(const dp_model *m, int layer, int *count)
{
    *count = m->layers[layer].param_count;
    return m->params + m->layers[layer].param_first;
}

int model_param_updated(const dp_model *m, const dp_param *p)
{
    return p->trainable && !m->layers[p->layer].frozen;
}
