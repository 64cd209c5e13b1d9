/* sha256: SHA-256 digests, to record and check the checksums of source files.
 *
 * The digest itself is OpenSSL's (libcrypto's EVP interface): a well-kept, tested and
 * hardware-accelerated implementation, where ours would be one more thing to get right.
 * This module only adapts it to dptrain's conventions (lower-case hex, dp_err). */
#ifndef DPTRAIN_SHA256_H
#define DPTRAIN_SHA256_H

#include <stddef.h>

#include "dptrain/util/error.h"

/* Lower-case hex digest of len bytes at data, into hex[65]. */
int sha256_hex(const void *data, size_t len, char hex[65], dp_err *err);
/* Lower-case hex digest of a whole file, read in pieces, into hex[65]. */
int sha256_file_hex(const char *path, char hex[65], dp_err *err);

#endif
