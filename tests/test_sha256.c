/* test_sha256: the FIPS 180-2 example vectors, chunked updates, and a file digest. */
#include "data_check.h"

#include "dptrain/util/sha256.h"

static void hex_of(const uint8_t d[32], char hex[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* Digest of data fed in pieces of `step` bytes (step 0: all at once). */
static void digest(const void *data, size_t len, size_t step, char hex[65])
{
    dp_sha256 s;
    uint8_t d[32];
    sha256_init(&s);
    if (step == 0) {
        sha256_update(&s, data, len);
    } else {
        for (size_t off = 0; off < len; off += step)
            sha256_update(&s, (const uint8_t *)data + off, len - off < step ? len - off : step);
    }
    sha256_final(&s, d);
    hex_of(d, hex);
}

int main(void)
{
    static const struct {
        const char *msg, *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        for (size_t step = 0; step < 8; step += 3) {
            digest(vectors[i].msg, strlen(vectors[i].msg), step, hex);
            if (strcmp(hex, vectors[i].hex) != 0)
                fprintf(stderr, "'%s' step %zu: got %s, expected %s\n", vectors[i].msg, step,
                        hex, vectors[i].hex);
            CHECK(strcmp(hex, vectors[i].hex) == 0);
        }
    }

    /* One million 'a': many blocks, and pieces that straddle block boundaries. */
    static const char million_a[] =
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    char *a = malloc(1000000);
    CHECK(a != NULL);
    if (a) {
        memset(a, 'a', 1000000);
        size_t steps[] = {0, 1, 63, 64, 65, 1000};
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            digest(a, 1000000, steps[i], hex);
            CHECK(strcmp(hex, million_a) == 0);
        }
    }

    /* Lengths around the padding boundary (55, 56, 64 bytes) agree chunked vs whole. */
    for (size_t len = 50; len <= 130; len++) {
        char whole[65], pieces[65];
        digest(a, len, 0, whole);
        digest(a, len, 7, pieces);
        CHECK(strcmp(whole, pieces) == 0);
    }
    free(a);

    /* sha256_file_hex of a file holding "abc" + 200 x 'z', against the in-memory digest. */
    char *dir = check_tempdir("sha256");
    char path[4200];
    snprintf(path, sizeof path, "%s/blob.bin", dir);
    char content[203] = "abc";
    memset(content + 3, 'z', 200);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(content, 1, sizeof content, f);
        fclose(f);
    }
    char expected[65], got[65];
    digest(content, sizeof content, 0, expected);
    dp_err err;
    CHECK_OK(sha256_file_hex(path, got, &err), &err);
    CHECK(strcmp(got, expected) == 0);
    CHECK(strlen(got) == 64);

    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    CHECK_FAILS(sha256_file_hex(missing, got, &err), &err, missing, NULL);
    check_rmtree(dir);
    free(dir);
    return check_finish("test_sha256");
}
