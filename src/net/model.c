#include "dptrain/net/model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/layers.h"
#include "dptrain/util/rng.h"

#define MAX_LAYERS 64
#define MAX_DIM 1000000
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

/* ---- parsing ---------------------------------------------------------------------- */

typedef struct {
    const char *p;
    int index; /* 1-based position of the layer being parsed */
} parser;

static void skip_separators(parser *ps)
{
    for (;;) {
        while (*ps->p && (isspace((unsigned char)*ps->p) || *ps->p == ',' || *ps->p == ';'))
            ps->p++;
        if (ps->p[0] == '-' && ps->p[1] == '>') {
            ps->p += 2;
            continue;
        }
        if (*ps->p == '#') {
            while (*ps->p && *ps->p != '\n')
                ps->p++;
            continue;
        }
        return;
    }
}

static void skip_space(parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t')
        ps->p++;
}

/* Which argument a key names, per layer kind: positional order and aliases. */
static int arg_slot(dp_layer_kind kind, const char *key)
{
    static const struct {
        dp_layer_kind kind;
        int slot;
        const char *key;
    } keys[] = {
        {LAYER_CONV, 0, "out"},     {LAYER_CONV, 0, "channels"}, {LAYER_CONV, 1, "kernel"},
        {LAYER_CONV, 1, "k"},       {LAYER_CONV, 2, "stride"},   {LAYER_CONV, 2, "s"},
        {LAYER_CONV, 3, "pad"},     {LAYER_CONV, 3, "padding"},  {LAYER_CONV, 3, "p"},
        {LAYER_MAXPOOL, 0, "kernel"}, {LAYER_MAXPOOL, 0, "k"},   {LAYER_MAXPOOL, 1, "stride"},
        {LAYER_MAXPOOL, 1, "s"},    {LAYER_FC, 0, "out"},        {LAYER_FC, 0, "features"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].kind == kind && strcmp(keys[i].key, key) == 0)
            return keys[i].slot;
    return -1;
}

static int parse_layer(parser *ps, dp_layer *L, dp_err *err)
{
    char word[32];
    size_t n = 0;
    const char *start = ps->p;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') {
        if (n + 1 < sizeof word)
            word[n++] = (char)tolower((unsigned char)*ps->p);
        ps->p++;
    }
    word[n] = 0;
    if (n == 0)
        return dp_fail(err, "layer %d: unexpected character '%c' (expected a layer name: conv, "
                            "maxpool, relu, fc)", ps->index, *start);
    memset(L, 0, sizeof *L);
    L->weight = L->bias = -1;
    int nslots, args[4] = {-1, -1, -1, -1};
    if (!strcmp(word, "conv") || !strcmp(word, "conv2d")) {
        L->kind = LAYER_CONV;
        nslots = 4;
    } else if (!strcmp(word, "maxpool") || !strcmp(word, "pool") || !strcmp(word, "maxpool2d")) {
        L->kind = LAYER_MAXPOOL;
        nslots = 2;
    } else if (!strcmp(word, "relu")) {
        L->kind = LAYER_RELU;
        nslots = 0;
    } else if (!strcmp(word, "fc") || !strcmp(word, "linear")) {
        L->kind = LAYER_FC;
        nslots = 1;
    } else if (!strcmp(word, "flatten")) {
        return 1; /* accepted, nothing to build */
    } else {
        return dp_fail(err, "layer %d: unknown layer '%s' (expected conv, maxpool, relu, fc or "
                            "flatten)", ps->index, word);
    }
    skip_space(ps);
    if (*ps->p == '(') {
        ps->p++;
        int positional = 0;
        for (;;) {
            while (isspace((unsigned char)*ps->p))
                ps->p++;
            if (*ps->p == ')') {
                ps->p++;
                break;
            }
            char key[32] = "";
            const char *q = ps->p;
            size_t k = 0;
            while (isalpha((unsigned char)*q) || *q == '_') {
                if (k + 1 < sizeof key)
                    key[k++] = (char)tolower((unsigned char)*q);
                q++;
            }
            key[k] = 0;
            int slot, value;
            if (k > 0 && *q == '=') {
                slot = arg_slot(L->kind, key);
                if (slot < 0)
                    return dp_fail(err, "layer %d (%s): unknown argument '%s'", ps->index, word, key);
                ps->p = q + 1;
            } else {
                slot = positional++;
            }
            if (slot >= nslots)
                return dp_fail(err, "layer %d (%s): too many arguments (takes at most %d)", ps->index,
                               word, nslots);
            while (isspace((unsigned char)*ps->p))
                ps->p++;
            if (L->kind == LAYER_FC && slot == 0 && strncmp(ps->p, "classes", 7) == 0) {
                value = -1;
                ps->p += 7;
            } else {
                char *end;
                long v = strtol(ps->p, &end, 10);
                if (end == ps->p)
                    return dp_fail(err, "layer %d (%s): expected a number, found '%.10s'", ps->index,
                                   word, ps->p);
                if (v < 0 || v > MAX_DIM)
                    return dp_fail(err, "layer %d (%s): value %ld out of range [0, %d]", ps->index,
                                   word, v, MAX_DIM);
                value = (int)v;
                ps->p = end;
            }
            if (args[slot] != -1 && !(L->kind == LAYER_FC && value == -1))
                return dp_fail(err, "layer %d (%s): argument given twice", ps->index, word);
            args[slot] = value;
            while (isspace((unsigned char)*ps->p))
                ps->p++;
            if (*ps->p == ',')
                ps->p++;
            else if (*ps->p != ')')
                return dp_fail(err, "layer %d (%s): expected ',' or ')', found '%c'", ps->index,
                               word, *ps->p ? *ps->p : '$');
        }
    } else if (nslots > 0 && L->kind != LAYER_FC) {
        return dp_fail(err, "layer %d (%s): needs arguments, e.g. %s", ps->index, word,
                       L->kind == LAYER_CONV ? "conv(32,3)" : "maxpool(2)");
    }
    switch (L->kind) {
    case LAYER_CONV:
        if (args[0] < 1 || args[1] < 1)
            return dp_fail(err, "layer %d (conv): needs output channels >= 1 and kernel >= 1, "
                                "e.g. conv(32,3)", ps->index);
        L->out = args[0];
        L->kernel = args[1];
        L->stride = args[2] < 0 ? 1 : args[2];
        L->pad = args[3] < 0 ? 0 : args[3];
        if (L->stride < 1)
            return dp_fail(err, "layer %d (conv): stride must be >= 1", ps->index);
        snprintf(L->text, sizeof L->text, "conv(%d,%d,stride=%d,pad=%d)", L->out, L->kernel,
                 L->stride, L->pad);
        break;
    case LAYER_MAXPOOL:
        if (args[0] < 1)
            return dp_fail(err, "layer %d (maxpool): kernel must be >= 1", ps->index);
        L->kernel = args[0];
        L->stride = args[1] < 0 ? L->kernel : args[1];
        if (L->stride < 1)
            return dp_fail(err, "layer %d (maxpool): stride must be >= 1", ps->index);
        snprintf(L->text, sizeof L->text, "maxpool(%d,stride=%d)", L->kernel, L->stride);
        break;
    case LAYER_RELU:
        snprintf(L->text, sizeof L->text, "relu");
        break;
    case LAYER_FC:
        L->out = args[0] == 0 ? 0 : args[0]; /* -1 (absent or "classes") means classes */
        if (L->out == 0)
            return dp_fail(err, "layer %d (fc): needs at least 1 output", ps->index);
        if (L->out > 0)
            snprintf(L->text, sizeof L->text, "fc(%d)", L->out);
        else
            snprintf(L->text, sizeof L->text, "fc(classes)");
        break;
    }
    return 0;
}

/* ---- shapes and parameters -------------------------------------------------------- */

static int add_param(dp_model *m, int layer, const char *lname, const char *suffix, int ndims,
                     const int *dims, int fan_in)
{
    dp_param *p = &m->params[m->nparams];
    snprintf(p->name, sizeof p->name, "%s.%s", lname, suffix);
    p->ndims = ndims;
    p->count = 1;
    for (int d = 0; d < ndims; d++) {
        p->dims[d] = dims[d];
        p->count *= (size_t)dims[d];
    }
    p->offset = m->size;
    p->fan_in = fan_in;
    p->layer = layer;
    m->size += p->count;
    return m->nparams++;
}

static int infer_shapes(dp_model *m, dp_err *err)
{
    int c = m->in_c, h = m->in_h, w = m->in_w, flat = 0;
    int nconv = 0, nfc = 0, nrelu = 0, npool = 0;
    for (int i = 0; i < m->nlayers; i++) {
        dp_layer *L = &m->layers[i];
        L->in_c = c;
        L->in_h = h;
        L->in_w = w;
        switch (L->kind) {
        case LAYER_CONV:
        case LAYER_MAXPOOL: {
            const char *what = L->kind == LAYER_CONV ? "conv" : "maxpool";
            if (flat)
                return dp_fail(err, "layer %d %s: comes after fc, whose output is flat (no "
                                    "height and width)", i + 1, L->text);
            int pad = L->kind == LAYER_CONV ? L->pad : 0;
            if (h + 2 * pad < L->kernel || w + 2 * pad < L->kernel)
                return dp_fail(err, "layer %d %s: %s kernel %dx%d does not fit its %dx%d input "
                                    "(padding %d)", i + 1, L->text, what, L->kernel, L->kernel, h,
                               w, pad);
            h = (h + 2 * pad - L->kernel) / L->stride + 1;
            w = (w + 2 * pad - L->kernel) / L->stride + 1;
            int out_c = L->kind == LAYER_CONV ? L->out : c;
            if ((double)out_c * h * w > (double)MAX_ACTIVATIONS)
                return dp_fail(err, "layer %d %s: output %d x %d x %d is more than %lld values "
                                    "per sample", i + 1, L->text, out_c, h, w, MAX_ACTIVATIONS);
            if (L->kind == LAYER_CONV) {
                double count = (double)L->out * c * L->kernel * L->kernel;
                if ((double)c * L->kernel * L->kernel > (double)MAX_PARAMS ||
                    (double)m->size + count > (double)MAX_PARAMS)
                    return dp_fail(err, "layer %d %s: %.0f weights bring the model past %lld "
                                        "parameters", i + 1, L->text, count, MAX_PARAMS);
                snprintf(L->name, sizeof L->name, "conv%d", ++nconv);
                int dims[4] = {L->out, c, L->kernel, L->kernel};
                int fan_in = c * L->kernel * L->kernel;
                L->weight = add_param(m, i, L->name, "weight", 4, dims, fan_in);
                L->bias = add_param(m, i, L->name, "bias", 1, dims, fan_in);
                c = L->out;
            } else {
                snprintf(L->name, sizeof L->name, "maxpool%d", ++npool);
            }
            break;
        }
        case LAYER_RELU:
            snprintf(L->name, sizeof L->name, "relu%d", ++nrelu);
            break;
        case LAYER_FC: {
            long in = (long)c * h * w;
            if (in > MAX_DIM * 100L)
                return dp_fail(err, "layer %d %s: %ld inputs is too many", i + 1, L->text, in);
            int out = L->out;
            if (out < 0) {
                if (i != m->nlayers - 1)
                    return dp_fail(err, "layer %d fc(classes): only the last layer can take the "
                                        "number of classes as its size", i + 1);
                out = m->num_classes;
            }
            if ((double)m->size + (double)out * (double)in > (double)MAX_PARAMS)
                return dp_fail(err, "layer %d %s: %d x %ld weights bring the model past %lld "
                                    "parameters", i + 1, L->text, out, in, MAX_PARAMS);
            snprintf(L->name, sizeof L->name, "fc%d", ++nfc);
            int dims[2] = {out, (int)in};
            L->weight = add_param(m, i, L->name, "weight", 2, dims, (int)in);
            L->bias = add_param(m, i, L->name, "bias", 1, dims, (int)in);
            L->out = out;
            c = out;
            h = w = 1;
            flat = 1;
            break;
        }
        }
        L->out_c = c;
        L->out_h = h;
        L->out_w = w;
        L->in_size = (size_t)L->in_c * L->in_h * L->in_w;
        L->out_size = (size_t)c * h * w;
    }
    const dp_layer *last = &m->layers[m->nlayers - 1];
    if (last->kind != LAYER_FC)
        return dp_fail(err, "layer %d %s: the last layer must be fc (it gives one score per "
                            "class)", m->nlayers, last->text);
    if (last->out != m->num_classes)
        return dp_fail(err, "layer %d %s: the last layer has %d outputs but the data has %d "
                            "classes (write fc(classes))", m->nlayers, last->text, last->out,
                       m->num_classes);
    return 0;
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

int model_build(dp_model *m, const char *name_or_spec, int C, int H, int W, int num_classes,
                dp_err *err)
{
    memset(m, 0, sizeof *m);
    if (C < 1 || H < 1 || W < 1 || num_classes < 1)
        return dp_fail(err, "model: input %dx%dx%d with %d classes is not valid", C, H, W,
                       num_classes);
    char *text = NULL;
    const char *spec = model_builtin_spec(name_or_spec);
    FILE *probe = spec ? NULL : fopen(name_or_spec, "rb");
    if (probe) {
        fclose(probe);
        enum { SPEC_FILE_MAX = 16384 };
        text = dp_calloc(SPEC_FILE_MAX, 1, "spec text", err);
        if (!text || read_spec_file(name_or_spec, text, SPEC_FILE_MAX, err)) {
            free(text);
            return -1;
        }
        spec = text;
    } else if (!spec) {
        /* A path that does not open is a missing file, not a one-layer spec named "x/y". */
        if (strchr(name_or_spec, '/') && !strchr(name_or_spec, '('))
            return dp_fail(err, "--model %s: cannot open the spec file: %s", name_or_spec,
                           strerror(errno));
        spec = name_or_spec;
    }
    m->in_c = C;
    m->in_h = H;
    m->in_w = W;
    m->num_classes = num_classes;
    m->layers = dp_calloc(MAX_LAYERS, sizeof *m->layers, "layers", err);
    m->params = dp_calloc(2 * MAX_LAYERS, sizeof *m->params, "parameter table", err);
    if (!m->layers || !m->params)
        goto fail;
    parser ps = {spec, 1};
    for (;;) {
        skip_separators(&ps);
        if (!*ps.p)
            break;
        if (m->nlayers == MAX_LAYERS) {
            dp_fail(err, "model: more than %d layers", MAX_LAYERS);
            goto fail;
        }
        int rc = parse_layer(&ps, &m->layers[m->nlayers], err);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            m->nlayers++;
        ps.index++;
    }
    if (m->nlayers == 0) {
        dp_fail(err, "model: the spec '%s' has no layers (use a name: reference, nopool, or a "
                     "spec such as \"conv(32,3) relu maxpool(2) fc(classes)\")", name_or_spec);
        goto fail;
    }
    if (infer_shapes(m, err))
        goto fail;
    /* relu then maxpool runs as one pass (the same bits, one memory pass fewer) */
    for (int i = 0; i + 1 < m->nlayers; i++)
        if (m->layers[i].kind == LAYER_RELU && m->layers[i + 1].kind == LAYER_MAXPOOL)
            m->layers[i].fused = m->layers[i + 1].fused = 1;
    size_t at = 0;
    for (int i = 0; i < m->nlayers && at < sizeof m->spec; i++)
        at += (size_t)snprintf(m->spec + at, sizeof m->spec - at, "%s%s", i ? " " : "",
                               m->layers[i].text);
    m->weights = dp_calloc(m->size, sizeof(float), "parameters", err);
    m->grads = dp_calloc(m->size, sizeof(float), "gradients", err);
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
    dp_rng r;
    rng_seed(&r, seed, (uint64_t)param + 1, 0x1417);
    float bound = 1.0f / sqrtf((float)p->fan_in);
    float *w = m->weights + p->offset;
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
        const char *sep = i ? " " : "";
        switch (L->kind) {
        case LAYER_CONV:
            at += (size_t)snprintf(buf + at, len - at, "%s%s(%d->%d, %dx%d%s%s)", sep, L->name,
                                   L->in_c, L->out_c, L->kernel, L->kernel,
                                   L->stride != 1 ? ", stride" : "", L->pad ? ", pad" : "");
            break;
        case LAYER_MAXPOOL:
            at += (size_t)snprintf(buf + at, len - at, "%smaxpool(%d)", sep, L->kernel);
            break;
        case LAYER_RELU:
            at += (size_t)snprintf(buf + at, len - at, "%srelu", sep);
            break;
        case LAYER_FC:
            at += (size_t)snprintf(buf + at, len - at, "%s%s(%zu->%d)", sep, L->name, L->in_size,
                                   L->out_c);
            break;
        }
    }
}

/* ---- workspace and the whole-net pass ---------------------------------------------- */

int model_find_layer(const dp_model *m, const char *name)
{
    for (int i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return i;
    return -1;
}

static size_t align64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static dp_conv_shape conv_shape(const dp_layer *L, int B)
{
    dp_conv_shape s = {B, L->in_c, L->in_h, L->in_w, L->out_c, L->kernel, L->kernel,
                       L->stride, L->pad, L->out_h, L->out_w};
    return s;
}

/* conv, relu, maxpool: run as one pass (conv2d_relu_maxpool_*), the conv output never
 * leaving the cache; the same bits as the three layers. */
static int conv_pooled(const dp_model *m, int i)
{
    return i >= 0 && i + 2 < m->nlayers && m->layers[i].kind == LAYER_CONV &&
           m->layers[i + 1].kind == LAYER_RELU && m->layers[i + 1].fused &&
           m->layers[i + 2].kind == LAYER_MAXPOOL;
}

static dp_pool_shape pool_shape(const dp_layer *L)
{
    dp_pool_shape p = {L->kernel, L->stride, L->out_h, L->out_w};
    return p;
}

static void conv_layer_forward(const dp_model *m, dp_workspace *ws, int i, const float *in, int B)
{
    const dp_layer *L = &m->layers[i];
    const float *w = m->weights + m->params[L->weight].offset;
    const float *b = m->weights + m->params[L->bias].offset;
    dp_conv_shape s = conv_shape(L, B);
    if (conv_pooled(m, i)) {
        dp_pool_shape p = pool_shape(&m->layers[i + 2]);
        conv2d_relu_maxpool_forward(ws->act[i + 2], ws->argmax[i + 2], ws->col[i], in, w, b,
                                    ws->scratch, &s, &p);
    } else {
        conv2d_forward(ws->act[i], ws->col[i], in, w, b, &s);
    }
}

static void conv_layer_backward(const dp_model *m, dp_workspace *ws, int i, float *din, float *dw,
                                float *db, int B)
{
    const float *w = m->weights + m->params[m->layers[i].weight].offset;
    dp_conv_shape s = conv_shape(&m->layers[i], B);
    if (conv_pooled(m, i)) { /* from the gradient of the pool's output */
        dp_pool_shape p = pool_shape(&m->layers[i + 2]);
        conv2d_relu_maxpool_backward(din, dw, db, ws->col[i], ws->dact[i + 2], ws->act[i + 2],
                                     ws->argmax[i + 2], w, ws->scratch, ws->dact[i], &s, &p);
    } else {
        conv2d_backward(din, dw, db, ws->col[i], ws->dact[i], w, ws->scratch, &s);
    }
}

/* Bytes of per-thread scratch the conv layers need, for all threads. */
static size_t scratch_bytes(const dp_model *m)
{
    size_t most = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == LAYER_CONV) {
            dp_conv_shape s = conv_shape(&m->layers[i], 1);
            size_t f = conv_pooled(m, i) ? conv2d_pool_scratch_floats(&s)
                                         : conv2d_scratch_floats(&s);
            most = f > most ? f : most;
        }
    return align64(most * sizeof(float) * (size_t)omp_get_max_threads());
}

static size_t lanes_bytes(const dp_model *m, size_t B)
{
    size_t most = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == LAYER_FC) {
            size_t f = linear_scratch_floats((int)B, m->layers[i].out_c, omp_get_max_threads());
            most = f > most ? f : most;
        }
    return align64(most * sizeof(float));
}

int workspace_create(dp_workspace *ws, const dp_model *m, int max_batch, dp_err *err)
{
    memset(ws, 0, sizeof *ws);
    size_t B = (size_t)max_batch, bytes = align64(B * m->layers[0].in_size * sizeof(float));
    bytes += scratch_bytes(m) + lanes_bytes(m, B);
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        bytes += 2 * align64(B * L->out_size * sizeof(float));
        if (L->kind == LAYER_CONV)
            bytes += align64(B * (size_t)L->in_c * L->kernel * L->kernel * L->out_h * L->out_w *
                             sizeof(float));
        if (L->kind == LAYER_MAXPOOL)
            bytes += align64(B * L->out_size * sizeof(int32_t));
    }
    ws->act = dp_calloc((size_t)m->nlayers, sizeof(float *), "workspace", err);
    ws->dact = dp_calloc((size_t)m->nlayers, sizeof(float *), "workspace", err);
    ws->col = dp_calloc((size_t)m->nlayers, sizeof(float *), "workspace", err);
    ws->argmax = dp_calloc((size_t)m->nlayers, sizeof(int32_t *), "workspace", err);
    ws->block = aligned_alloc(64, bytes);
    if (!ws->act || !ws->dact || !ws->col || !ws->argmax || !ws->block) {
        workspace_free(ws);
        return dp_fail(err, "out of memory: the workspace for batch %d needs %.1f MiB", max_batch,
                       bytes / 1048576.0);
    }
    memset(ws->block, 0, bytes);
    ws->bytes = bytes;
    ws->max_batch = max_batch;
    char *p = ws->block;
    ws->input = (float *)p;
    p += align64(B * m->layers[0].in_size * sizeof(float));
    ws->scratch = (float *)p;
    p += scratch_bytes(m);
    ws->lanes = (float *)p;
    p += lanes_bytes(m, B);
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        ws->act[i] = (float *)p;
        p += align64(B * L->out_size * sizeof(float));
        ws->dact[i] = (float *)p;
        p += align64(B * L->out_size * sizeof(float));
        if (L->kind == LAYER_CONV) {
            ws->col[i] = (float *)p;
            p += align64(B * (size_t)L->in_c * L->kernel * L->kernel * L->out_h * L->out_w *
                         sizeof(float));
        }
        if (L->kind == LAYER_MAXPOOL) {
            ws->argmax[i] = (int32_t *)p;
            p += align64(B * L->out_size * sizeof(int32_t));
        }
    }
    return 0;
}

void workspace_free(dp_workspace *ws)
{
    free(ws->act);
    free(ws->dact);
    free(ws->col);
    free(ws->argmax);
    free(ws->block);
    memset(ws, 0, sizeof *ws);
}

double model_forward_backward(dp_model *m, dp_workspace *ws, const uint8_t *labels, int B,
                              int train, int *correct)
{
    return model_forward_backward_hooked(m, ws, labels, B, train, correct, NULL, NULL);
}

double model_forward_backward_hooked(dp_model *m, dp_workspace *ws, const uint8_t *labels, int B,
                                     int train, int *correct, dp_layer_done done, void *ctx)
{
    const float *W = m->weights;
    for (int i = 0; i < m->nlayers; i++) {
        const dp_layer *L = &m->layers[i];
        const float *in = i ? ws->act[i - 1] : ws->input;
        float *out = ws->act[i];
        switch (L->kind) {
        case LAYER_CONV:
            conv_layer_forward(m, ws, i, in, B);
            break;
        case LAYER_MAXPOOL:
            if (conv_pooled(m, i - 2)) /* done with the conv */
                break;
            if (L->fused) /* the relu before it was skipped: read the relu's input */
                relu_maxpool_forward(out, ws->argmax[i], i >= 2 ? ws->act[i - 2] : ws->input, B,
                                     L->in_c, L->in_h, L->in_w, L->kernel, L->stride, L->out_h,
                                     L->out_w);
            else
                maxpool_forward(out, ws->argmax[i], in, B, L->in_c, L->in_h, L->in_w, L->kernel,
                                L->stride, L->out_h, L->out_w);
            break;
        case LAYER_RELU:
            if (!L->fused)
                relu_forward(out, in, (size_t)B * L->out_size);
            break;
        case LAYER_FC:
            linear_forward(out, in, W + m->params[L->weight].offset, W + m->params[L->bias].offset,
                           B, (int)L->in_size, L->out_c, ws->lanes);
            break;
        }
    }
    const int last = m->nlayers - 1;
    double loss = softmax_xent(train ? ws->dact[last] : NULL, correct, ws->act[last], labels, B,
                               m->num_classes);
    if (!train)
        return loss;
    float *G = m->grads;
    /* Below the lowest trainable layer nobody needs a gradient (frozen feature layers). */
    int lowest = last + 1;
    for (int i = 0; i <= last && lowest > last; i++)
        if (m->layers[i].weight >= 0 && !m->layers[i].frozen)
            lowest = i;
    for (int i = last; i >= lowest; i--) {
        const dp_layer *L = &m->layers[i];
        const float *in = i ? ws->act[i - 1] : ws->input;
        float *din = i > lowest ? ws->dact[i - 1] : NULL; /* nobody needs the gradient below */
        float *dw = L->weight >= 0 && !L->frozen ? G + m->params[L->weight].offset : NULL;
        float *db = L->bias >= 0 && !L->frozen ? G + m->params[L->bias].offset : NULL;
        const float *dout = ws->dact[i];
        switch (L->kind) {
        case LAYER_CONV:
            conv_layer_backward(m, ws, i, din, dw, db, B);
            break;
        case LAYER_MAXPOOL:
            if (conv_pooled(m, i - 2)) /* done with the conv */
                break;
            if (L->fused) { /* straight to the gradient of the relu's input */
                if (i - 2 >= lowest)
                    relu_maxpool_backward(ws->dact[i - 2], dout, ws->act[i], ws->argmax[i], B,
                                          L->in_c, L->in_h, L->in_w, L->out_h, L->out_w);
            } else if (din) {
                maxpool_backward(din, dout, ws->argmax[i], B, L->in_c, L->in_h, L->in_w, L->out_h,
                                 L->out_w);
            }
            break;
        case LAYER_RELU:
            if (din && !L->fused)
                relu_backward(din, dout, ws->act[i], (size_t)B * L->out_size);
            break;
        case LAYER_FC:
            linear_backward(din, dw, db, dout, in, W + m->params[L->weight].offset, B,
                            (int)L->in_size, L->out_c);
            break;
        }
        if (done)
            done(ctx, i);
    }
    return loss;
}
