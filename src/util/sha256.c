#include "dptrain/util/sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static void to_hex(const unsigned char digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

int sha256_hex(const void *data, size_t len, char hex[65], dp_err *err)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL) || n != 32)
        return dp_fail(err, "SHA-256 of %zu bytes: libcrypto failed", len);
    to_hex(digest, hex);
    return 0;
}

/* Feed the open file f to ctx: 0, or -1 on a read error, -2 when libcrypto fails. */
static int digest_stream(EVP_MD_CTX *ctx, FILE *f)
{
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        if (!EVP_DigestUpdate(ctx, buf, got))
            return -2;
    return ferror(f) ? -1 : 0;
}

int sha256_file_hex(const char *path, char hex[65], dp_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dp_fail(err, "%s: cannot open for checksum: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    int stream = ok ? digest_stream(ctx, f) : 0;
    int read_error = stream == -1;
    ok = ok && stream == 0 && EVP_DigestFinal_ex(ctx, digest, &n) && n == 32;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (read_error)
        return dp_fail(err, "%s: read error while computing checksum", path);
    if (!ok)
        return dp_fail(err, "%s: SHA-256: libcrypto failed", path);
    to_hex(digest, hex);
    return 0;
}
