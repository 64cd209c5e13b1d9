/* test_sha256: the FIPS 180-2 example vectors in memory and through files (sha256_file_hex
 * reads in 64 KiB pieces, so a million 'a' crosses many piece boundaries), lengths around
 * the padding boundary through both paths, and a missing file. */
#include "data_check.h"

#include "dptrain/util/sha256.h"

static const char million_a_hex[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

/* Write len bytes to dir/name and return sha256_file_hex's digest in hex. */
static void file_digest(const char *dir, const char *name, const void *data, size_t len,
                        char hex[65])
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, len, f) == len);
        fclose(f);
    }
    dp_err err;
    hex[0] = '\0';
    CHECK_OK(sha256_file_hex(path, hex, &err), &err);
    CHECK(strlen(hex) == 64);
}

static void test_vectors(const char *dir)
{
    static const struct {
        const char *msg, *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    dp_err err;
    char hex[65], fhex[65];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        CHECK_OK(sha256_hex(vectors[i].msg, strlen(vectors[i].msg), hex, &err), &err);
        file_digest(dir, "vector.bin", vectors[i].msg, strlen(vectors[i].msg), fhex);
        if (strcmp(hex, vectors[i].hex) != 0 || strcmp(fhex, vectors[i].hex) != 0)
            fprintf(stderr, "'%s': got %s (memory) and %s (file), expected %s\n",
                    vectors[i].msg, hex, fhex, vectors[i].hex);
        CHECK(strcmp(hex, vectors[i].hex) == 0);
        CHECK(strcmp(fhex, vectors[i].hex) == 0);
    }
}

int main(void)
{
    char *dir = check_tempdir("sha256");
    test_vectors(dir);

    /* One million 'a': in memory and from a file of 16 reads. */
    char *a = malloc(1000000);
    CHECK(a != NULL);
    if (a) {
        memset(a, 'a', 1000000);
        dp_err err;
        char hex[65];
        CHECK_OK(sha256_hex(a, 1000000, hex, &err), &err);
        CHECK(strcmp(hex, million_a_hex) == 0);
        file_digest(dir, "million_a.bin", a, 1000000, hex);
        CHECK(strcmp(hex, million_a_hex) == 0);
        /* Lengths around the padding boundary (55, 56, 64 bytes): memory and file agree,
         * and a length differs from its neighbour (the digest sees every byte). */
        char prev[65] = "";
        for (size_t len = 50; len <= 130; len++) {
            char mem[65], file[65];
            CHECK_OK(sha256_hex(a, len, mem, &err), &err);
            file_digest(dir, "pad.bin", a, len, file);
            CHECK(strcmp(mem, file) == 0);
            CHECK(strcmp(mem, prev) != 0);
            memcpy(prev, mem, sizeof prev);
        }
        free(a);
    }

    char missing[4200], got[65];
    dp_err err;
    snprintf(missing, sizeof missing, "%s/no-such-file", dir);
    CHECK_FAILS(sha256_file_hex(missing, got, &err), &err, missing, "No such file");
    check_rmtree(dir);
    free(dir);
    return check_finish("test_sha256");
}
