/* dropout_reference: one training-mode pass of a small net with dropout layers, written
 * out for tests/dropout_torch.py to recompute in PyTorch with the same masks.
 *
 *   dropout_reference OUT
 *
 * OUT: one line of JSON (spec, shapes, loss, the parameter table, the dropout layers),
 * then raw little-endian data in this order: input float32 [B, C, H, W], labels uint8 [B],
 * weights float32 [size], gradients float32 [size] (of the summed loss), logits float32
 * [B, classes], and per dropout layer its input float32, its mask uint8 and its output
 * float32, each [B, size]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/model.h"
#include "dptrain/util/rng.h"

#define SPEC "conv(4,3) relu maxpool(2) dropout(0.25) conv(6,3) relu dropout(0.4) fc(16) relu " \
             "dropout fc"
enum { C = 2, H = 12, W = 12, B = 6, CLASSES = 5 };

static void write_header(FILE *f, const dp_model *m, double loss)
{
    fprintf(f, "{\"spec\": \"%s\", \"C\": %d, \"H\": %d, \"W\": %d, \"B\": %d, \"classes\": %d, "
               "\"loss\": %.17g, \"size\": %zu, \"params\": [", m->spec, C, H, W, B, CLASSES,
            loss, m->size);
    for (int p = 0; p < m->nparams; p++) {
        fprintf(f, "%s{\"name\": \"%s\", \"offset\": %zu, \"dims\": [", p ? ", " : "",
                m->params[p].name, m->params[p].offset);
        for (int d = 0; d < m->params[p].ndims; d++)
            fprintf(f, "%s%d", d ? ", " : "", m->params[p].dims[d]);
        fprintf(f, "]}");
    }
    fprintf(f, "], \"dropout\": [");
    int first = 1;
    for (int i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].kind->name, "dropout") == 0) {
            fprintf(f, "%s{\"layer\": %d, \"p\": %.17g, \"size\": %zu}", first ? "" : ", ", i,
                    m->layers[i].arg[0], m->layers[i].in_size);
            first = 0;
        }
    fprintf(f, "]}\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dropout_reference OUT\n");
        return 2;
    }
    dp_model m;
    dp_workspace ws;
    dp_err err;
    if (model_build(&m, SPEC, C, H, W, CLASSES, &err) || workspace_create(&ws, &m, B, &err)) {
        fprintf(stderr, "dropout_reference: %s\n", err.msg);
        return 1;
    }
    model_init(&m, 7);
    dp_rng r;
    rng_seed(&r, 3, 1, 4);
    uint8_t labels[B];
    for (size_t i = 0; i < (size_t)B * C * H * W; i++)
        ws.input[i] = rng_uniform(&r);
    for (int n = 0; n < B; n++)
        labels[n] = (uint8_t)rng_below(&r, CLASSES);
    const int64_t index[B] = {100, 7, 55, 3, 91, 12}; /* global sample indices */
    dp_pass pass = {.labels = labels, .B = B, .train = 1, .seed = 11, .step = 5,
                    .sample_index = index};
    memset(m.grads, 0, m.size * sizeof(float));
    const double loss = model_forward_backward(&m, &ws, &pass, NULL);
    FILE *f = fopen(argv[1], "wb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    write_header(f, &m, loss);
    fwrite(ws.input, sizeof(float), (size_t)B * C * H * W, f);
    fwrite(labels, 1, B, f);
    fwrite(m.weights, sizeof(float), m.size, f);
    fwrite(m.grads, sizeof(float), m.size, f);
    fwrite(ws.act[m.nlayers - 1], sizeof(float), (size_t)B * CLASSES, f);
    for (int i = 1; i < m.nlayers; i++)
        if (strcmp(m.layers[i].kind->name, "dropout") == 0) {
            const size_t n = (size_t)B * m.layers[i].in_size;
            fwrite(ws.act[i - 1], sizeof(float), n, f);
            fwrite(ws.work[i], 1, n, f);
            fwrite(ws.act[i], sizeof(float), n, f);
        }
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    workspace_free(&ws);
    model_free(&m);
    return 0;
}
