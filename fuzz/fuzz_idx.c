/* libFuzzer target: the IDX parser on arbitrary bytes. It must accept a well-formed
 * image or refuse it with a message, never read or write out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_idx idx;
    dp_err err = {{0}};
    if (idx_parse(data, size, "fuzz", &idx, &err) == 0) {
        size_t n = 1;
        for (int i = 0; i < idx.ndims; i++)
            n *= idx.dims[i];
        if (n != idx.size || idx.ndims < 1 || idx.ndims > IDX_MAX_DIMS)
            abort(); /* the header and the data must agree */
        volatile uint8_t sink = idx.size ? idx.data[idx.size - 1] : 0;
        (void)sink;
        idx_free(&idx);
    } else if (err.msg[0] == 0 || memchr(err.msg, 0, sizeof err.msg) == NULL) {
        abort(); /* a refusal must say why */
    }
    return 0;
}
