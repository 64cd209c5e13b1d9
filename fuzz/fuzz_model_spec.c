/* libFuzzer target: the model-spec parser and shape inference (model_build) on
 * arbitrary text, for an MNIST-shaped input and 10 classes. Run it from a directory
 * without files named like specs (the fuzz runner uses an empty one), since a spec that
 * names an existing file is read from that file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/net/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    dp_model m;
    dp_err err = {{0}};
    if (model_build(&m, text, 1, 28, 28, 10, &err) == 0) {
        /* the parameter table must tile the flat buffer exactly */
        size_t at = 0;
        for (int p = 0; p < m.nparams; p++) {
            if (m.params[p].offset != at)
                abort();
            at += m.params[p].count;
        }
        if (at != m.size || m.layers[m.nlayers - 1].out_c != 10)
            abort();
        char desc[1024];
        model_describe(&m, desc, sizeof desc);
        model_free(&m);
    } else if (err.msg[0] == 0) {
        abort();
    }
    free(text);
    return 0;
}
