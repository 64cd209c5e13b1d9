/* optim_steps: dptrain's optimizer on given tensors and gradients, step by step, for
 * tests/optim_reference.py to compare with PyTorch and with NumPy references.
 *
 *   optim_steps CASE.h5 OUT.h5 THREADS
 *
 * CASE.h5 (written by optim_reference.py): attributes kind (string), names (the tensor
 * names, one per line), momentum, weight_decay, beta1, beta2, eps, trust_coefficient
 * (float), nesterov, exclude_bias (integer); 1-D datasets count, ndims, trainable (int64
 * [tensors]; the tensors lie one after the other), weights (float32 [size]), grads
 * (float32 [steps * size], step-major) and lr (float64 [steps]).
 * OUT.h5: one group per step, "1" ... "steps", each holding weights (float32 [size]) and
 * every state tensor and counter under its name ("fc.weight.exp_avg", "fc.weight.step"),
 * as optimizer_state lists them. THREADS: OpenMP threads for the steps. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/optim/optim.h"
#include "dptrain/util/h5util.h"

#define MAX_TENSORS 64

typedef struct {
    dp_optim_config cfg;
    char kind[32], names[4096];
    dp_param_view views[MAX_TENSORS];
    int n;
    size_t size;
    long steps;
    float *weights, *grads;
    double *lr;
} opt_case;

static int get_f64(hid_t f, const char *name, double *v)
{
    return h5_attr_get_f64(f, name, v, NULL) == 0 ? 0 : -1;
}

static int get_int(hid_t f, const char *name, int *v)
{
    int64_t x = 0;
    int rc = h5_attr_get_i64(f, name, &x, NULL) == 0 ? 0 : -1;
    *v = (int)x;
    return rc;
}

/* The hyperparameters and the tensor table. */
static int read_header(hid_t f, opt_case *c)
{
    dp_optim_config *cfg = &c->cfg;
    if (h5_attr_get_str(f, "kind", c->kind, sizeof c->kind, NULL) ||
        h5_attr_get_str(f, "names", c->names, sizeof c->names, NULL) ||
        get_f64(f, "momentum", &cfg->momentum) || get_f64(f, "weight_decay", &cfg->weight_decay) ||
        get_f64(f, "beta1", &cfg->beta1) || get_f64(f, "beta2", &cfg->beta2) ||
        get_f64(f, "eps", &cfg->eps) || get_f64(f, "trust_coefficient", &cfg->trust_coefficient) ||
        get_int(f, "nesterov", &cfg->nesterov) || get_int(f, "exclude_bias", &cfg->exclude_bias))
        return -1;
    cfg->kind = c->kind;
    char *save = NULL;
    for (char *s = strtok_r(c->names, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        if (c->n == MAX_TENSORS)
            return -1;
        c->views[c->n++].name = s;
    }
    int64_t count[MAX_TENSORS], ndims[MAX_TENSORS], trainable[MAX_TENSORS];
    if (c->n == 0 || h5_get_1d(f, "count", H5T_NATIVE_INT64, c->n, count, NULL) ||
        h5_get_1d(f, "ndims", H5T_NATIVE_INT64, c->n, ndims, NULL) ||
        h5_get_1d(f, "trainable", H5T_NATIVE_INT64, c->n, trainable, NULL))
        return -1;
    for (int i = 0; i < c->n; i++) {
        c->views[i].offset = c->size;
        c->views[i].count = (size_t)count[i];
        c->views[i].ndims = (int)ndims[i];
        c->views[i].trainable = (int)trainable[i];
        c->size += (size_t)count[i];
    }
    return 0;
}

static int read_case(const char *path, opt_case *c)
{
    hid_t f = h5_open(path, H5F_ACC_RDONLY, NULL);
    if (f < 0)
        return -1;
    int rc = read_header(f, c);
    hid_t set = rc == 0 ? H5Dopen2(f, "lr", H5P_DEFAULT) : -1;
    hid_t space = set >= 0 ? H5Dget_space(set) : -1;
    hsize_t steps = 0;
    if (space < 0 || H5Sget_simple_extent_dims(space, &steps, NULL) != 1 || steps == 0)
        rc = -1;
    if (space >= 0)
        H5Sclose(space);
    if (set >= 0)
        H5Dclose(set);
    c->steps = (long)steps;
    c->weights = malloc(c->size * sizeof(float));
    c->grads = malloc(c->size * (size_t)c->steps * sizeof(float));
    c->lr = malloc((size_t)c->steps * sizeof(double));
    if (rc || !c->weights || !c->grads || !c->lr ||
        h5_get_1d(f, "weights", H5T_NATIVE_FLOAT, c->size, c->weights, NULL) ||
        h5_get_1d(f, "grads", H5T_NATIVE_FLOAT, c->size * (size_t)c->steps, c->grads, NULL) ||
        h5_get_1d(f, "lr", H5T_NATIVE_DOUBLE, (hsize_t)c->steps, c->lr, NULL))
        rc = -1;
    H5Fclose(f);
    return rc;
}

/* Group "<step>" of out: the weights and every named state. */
static int write_step(hid_t out, long step, const dp_optimizer *opt, const float *w, size_t size)
{
    char name[32];
    snprintf(name, sizeof name, "%ld", step);
    hid_t g = H5Gcreate2(out, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    int rc = h5_put_1d(g, "weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, size, w);
    for (int i = 0; i < optimizer_state_count(opt) && rc == 0; i++) {
        const dp_optim_state *st = optimizer_state(opt, i);
        rc = st->type == DP_STATE_I64
                 ? h5_put_1d(g, st->name, H5T_STD_I64LE, H5T_NATIVE_INT64, st->count, st->ints)
                 : h5_put_1d(g, st->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, st->count, st->data);
    }
    H5Gclose(g);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: optim_steps CASE.h5 OUT.h5 THREADS\n");
        return 2;
    }
    omp_set_num_threads(atoi(argv[3]));
    opt_case c;
    memset(&c, 0, sizeof c);
    if (read_case(argv[1], &c)) {
        fprintf(stderr, "optim_steps: %s: not a readable case file\n", argv[1]);
        return 1;
    }
    dp_err err;
    dp_optimizer *opt = NULL;
    if (optimizer_create(&opt, &c.cfg, c.views, c.n, &err)) {
        fprintf(stderr, "optim_steps: %s\n", err.msg);
        return 1;
    }
    hid_t out = h5_create(argv[2], NULL);
    int rc = out < 0 ? -1 : 0;
    for (long s = 0; s < c.steps && rc == 0; s++) {
        optimizer_step(opt, c.weights, c.grads + (size_t)s * c.size, c.lr[s]);
        rc = write_step(out, s + 1, opt, c.weights, c.size);
    }
    if (out >= 0 && H5Fclose(out) < 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "optim_steps: cannot write %s\n", argv[2]);
    optimizer_free(opt);
    free(c.weights), free(c.grads), free(c.lr);
    return rc ? 1 : 0;
}
