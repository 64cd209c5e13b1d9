/* idx: the IDX file format of MNIST and friends, gzipped or not.
 *
 * An IDX file is a big-endian header (two zero bytes, a type code, the number of
 * dimensions d, then d uint32 sizes) followed by the data. We read type 0x08 (uint8),
 * the only type image-classification sets use. The caller owns the result and frees it
 * with idx_free. */
#ifndef DPTRAIN_IDX_H
#define DPTRAIN_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"

#define IDX_MAX_DIMS 4

typedef struct {
    int ndims;
    uint32_t dims[IDX_MAX_DIMS];
    uint8_t *data; /* product of dims bytes */
    size_t size;
} dp_idx;

/* Parse an in-memory IDX image (already decompressed). `name` is used in messages. */
int idx_parse(const uint8_t *buf, size_t len, const char *name, dp_idx *out, dp_err *err);
/* Read a file, gunzipping it when it starts with the gzip magic. */
int idx_read(const char *path, dp_idx *out, dp_err *err);
void idx_free(dp_idx *idx);

#endif
