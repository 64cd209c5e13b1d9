/* sha256: FIPS 180-4 SHA-256, to record and check the checksums of source files. */
#ifndef DPTRAIN_SHA256_H
#define DPTRAIN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"

typedef struct {
    uint32_t state[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} dp_sha256;

void sha256_init(dp_sha256 *s);
void sha256_update(dp_sha256 *s, const void *data, size_t len);
void sha256_final(dp_sha256 *s, uint8_t out[32]);
/* Lower-case hex digest of a whole file, into hex[65]. */
int sha256_file_hex(const char *path, char hex[65], dp_err *err);

#endif
