#include "dptrain/driver/model_views.h"

#include <stdio.h>
#include <string.h>

static void list_layers_with_weights(const dp_model *m, char *names, size_t len)
{
    names[0] = 0;
    for (int k = 0; k < m->nlayers; k++)
        if (m->layers[k].param_count > 0)
            snprintf(names + strlen(names), len - strlen(names), "%s%s", names[0] ? ", " : "",
                     m->layers[k].name);
}

int model_apply_layer_list(dp_model *m, const char *list, const char *option, int freeze,
                           uint64_t seed, dp_err *err)
{
    char buf[1024];
    if (strlen(list) >= sizeof buf)
        return dp_fail(err, "%s: the list is longer than %zu characters", option, sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int i = model_find_layer(m, name);
        if (i < 0 || m->layers[i].param_count == 0) {
            char names[512];
            list_layers_with_weights(m, names, sizeof names);
            return dp_fail(err, "%s %s: '%s' is not a layer with weights of this model "
                                "(expected one of: %s)", option, list, name, names);
        }
        dp_layer *L = &m->layers[i];
        if (freeze)
            L->frozen = 1;
        else
            for (int k = 0; k < L->param_count; k++)
                model_init_param(m, L->param_first + k, seed);
    }
    return 0;
}

dp_param_view *model_param_views(const dp_model *m, dp_err *err)
{
    dp_param_view *v = dp_calloc((size_t)m->nparams + 1, sizeof *v, "parameter views", err);
    for (int i = 0; v && i < m->nparams; i++) {
        const dp_param *p = &m->params[i];
        v[i].name = p->name;
        v[i].offset = p->offset;
        v[i].count = p->count;
        v[i].ndims = p->ndims;
        v[i].trainable = model_param_updated(m, p);
    }
    return v;
}

dp_grad_segment *model_grad_segments(const dp_model *m, int *n, dp_err *err)
{
    /* at most one segment per tensor: runs of updated tensors, last layer first */
    dp_grad_segment *s = dp_calloc((size_t)m->nparams + 1, sizeof *s, "gradient segments", err);
    *n = 0;
    for (int i = m->nlayers - 1; s && i >= 0; i--) {
        int count;
        const dp_param *p = model_layer_params(m, i, &count);
        int open = 0;
        for (int k = count - 1; k >= 0; k--) {
            if (!model_param_updated(m, &p[k])) { /* frozen or a buffer: a gap */
                open = 0;
                continue;
            }
            if (!open) {
                s[*n].end = p[k].offset + p[k].count;
                s[*n].ready_after = i;
                (*n)++;
                open = 1;
            }
            s[*n - 1].begin = p[k].offset;
        }
    }
    return s;
}
