/* conv_run: one convolution's forward and backward through the layer functions, its four
 * results and their comparison, for the tests of the convolution's variants (test_bf16,
 * test_winograd). Include after bufs.h. */
#ifndef DPTRAIN_TESTS_CONV_RUN_H
#define DPTRAIN_TESTS_CONV_RUN_H

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/layers.h"

typedef struct {
    float *out, *din, *dw, *db; /* results */
} conv_result;

static size_t out_len(const dp_conv_shape *s) { return (size_t)s->B * s->OC * s->OH * s->OW; }
static size_t in_len(const dp_conv_shape *s) { return (size_t)s->B * s->C * s->H * s->W; }
static size_t w_len(const dp_conv_shape *s) { return (size_t)s->OC * s->C * s->KH * s->KW; }

/* Forward, then backward with the weight and bias gradients accumulated onto dw0 and db0
 * (NULL: zero). */
static conv_result run_conv(const dp_conv_shape *s, const float *in, const float *w,
                            const float *b, const float *dout, const float *dw0,
                            const float *db0)
{
    conv_result r = {malloc(sizeof(float) * out_len(s)), malloc(sizeof(float) * in_len(s)),
                     calloc(w_len(s), sizeof(float)), calloc((size_t)s->OC, sizeof(float))};
    float *col = malloc(sizeof(float) * conv2d_col_floats(s));
    float *scratch = malloc(sizeof(float) * conv2d_scratch_floats(s) * omp_get_max_threads());
    if (dw0)
        memcpy(r.dw, dw0, sizeof(float) * w_len(s));
    if (db0)
        memcpy(r.db, db0, sizeof(float) * s->OC);
    conv2d_forward(r.out, col, in, w, b, scratch, s);
    conv2d_backward(r.din, r.dw, r.db, col, dout, w, scratch, s);
    free(col), free(scratch);
    return r;
}

static void free_result(conv_result *r) { free(r->out), free(r->din), free(r->dw), free(r->db); }

static int same_result(const conv_result *x, const conv_result *y, const dp_conv_shape *s)
{
    return same(x->out, y->out, sizeof(float) * out_len(s)) &&
           same(x->din, y->din, sizeof(float) * in_len(s)) &&
           same(x->dw, y->dw, sizeof(float) * w_len(s)) &&
           same(x->db, y->db, sizeof(float) * s->OC);
}

#endif
