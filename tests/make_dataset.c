/* make_dataset: synthetic HDF5 data for the training tests.
 *
 *   make_dataset synth OUT N SEED [SHARDS]   N images 1x28x28 of 10 classes; class k is a
 *                                            bright 6x6 square at a place set by k, plus
 *                                            noise. SHARDS > 1 makes OUT a directory.
 *   make_dataset synth OUT N SEED S1,S2,...  the same in shards of sizes S1, S2, ... (sum N)
 *   make_dataset synth OUT N SEED SHARDS BAD   the same, with one label out of range in
 *                                            shard BAD (for the error tests) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/data/data.h"
#include "dptrain/util/rng.h"

static int die(const dp_err *err)
{
    fprintf(stderr, "make_dataset: %s\n", err->msg);
    return 1;
}

/* sizes: NULL for shards of equal size (the first n % shards one larger), else each's. */
static int synth(const char *out, int n, uint64_t seed, int shards, const int *sizes,
                 int bad_shard)
{
    dp_err err;
    uint8_t *img = calloc((size_t)n * 784, 1), *lab = calloc((size_t)n, 1);
    dp_rng r;
    rng_seed(&r, seed, 77, 77);
    for (int i = 0; i < n; i++) {
        int k = (int)rng_below(&r, 10);
        lab[i] = (uint8_t)k;
        uint8_t *p = img + (size_t)i * 784;
        for (int j = 0; j < 784; j++)
            p[j] = (uint8_t)rng_below(&r, 60);
        int y0 = 2 + (k / 5) * 12 + (int)rng_below(&r, 4), x0 = 2 + (k % 5) * 5;
        for (int y = y0; y < y0 + 6; y++)
            for (int x = x0; x < x0 + 6 && x < 28; x++)
                p[y * 28 + x] = (uint8_t)(180 + rng_below(&r, 76));
    }
    int rc = 0;
    if (shards <= 1) {
        dp_shard_attrs a = {0, 1, 0, n, 10, NULL, NULL, NULL, NULL};
        rc = shard_write(out, img, lab, n, 1, 28, 28, &a, &err);
    } else {
        mkdir(out, 0755);
        int64_t first = 0;
        for (int s = 0; s < shards && rc == 0; s++) {
            int64_t cnt = sizes ? sizes[s] : n / shards + (s < n % shards);
            char path[4096];
            snprintf(path, sizeof path, "%s/synth-%05d-of-%05d.h5", out, s, shards);
            dp_shard_attrs a = {s, shards, first, n, 10, NULL, NULL, NULL, NULL};
            if (s == bad_shard)
                lab[first + 3] = 12; /* out of range for 10 classes */
            rc = shard_write(path, img + first * 784, lab + first, cnt, 1, 28, 28, &a, &err);
            first += cnt;
        }
    }
    free(img);
    free(lab);
    return rc ? die(&err) : 0;
}

/* "700,1300,410": shard sizes; returns how many, 0 when the text is a plain count. */
static int parse_sizes(const char *text, int *sizes, int most, int *total)
{
    if (!strchr(text, ','))
        return 0;
    int n = 0;
    *total = 0;
    for (const char *p = text; *p && n < most; n++) {
        char *end;
        sizes[n] = (int)strtol(p, &end, 10);
        *total += sizes[n];
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "synth") == 0) {
        int sizes[64], total = 0;
        int nsizes = argc > 5 ? parse_sizes(argv[5], sizes, 64, &total) : 0;
        if (nsizes > 0 && total != atoi(argv[3])) {
            fprintf(stderr, "make_dataset: the sizes %s add up to %d, not %s\n", argv[5], total,
                    argv[3]);
            return 2;
        }
        return synth(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10),
                     nsizes ? nsizes : argc > 5 ? atoi(argv[5]) : 1, nsizes ? sizes : NULL,
                     argc > 6 ? atoi(argv[6]) : -1);
    }
    fprintf(stderr, "usage: make_dataset synth OUT N SEED [SHARDS|SIZE,SIZE,... [BAD]]\n");
    return 2;
}
