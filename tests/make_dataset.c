/* make_dataset: synthetic HDF5 data for the training tests, and the regrouping that
 * turns a P-rank run's global batches into a file a 1-rank run reads in the same order.
 *
 *   make_dataset synth OUT N SEED [SHARDS]   N images 1x28x28 of 10 classes; class k is a
 *                                            bright 6x6 square at a place set by k, plus
 *                                            noise. SHARDS > 1 makes OUT a directory.
 *   make_dataset synth OUT N SEED SHARDS BAD   the same, with one label out of range in
 *                                            shard BAD (for the error tests)
 *   make_dataset regroup IN OUT P B STEPS    the samples that ranks 0..P-1 of a --no-shuffle
 *                                            run with global batch B take in steps
 *                                            0..STEPS-1, written step by step, rank by rank */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/data/data.h"
#include "dptrain/util/rng.h"
#include "dptrain/data/sampler.h"

static int die(const dp_err *err)
{
    fprintf(stderr, "make_dataset: %s\n", err->msg);
    return 1;
}

static int synth(const char *out, int n, uint64_t seed, int shards, int bad_shard)
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
            int64_t cnt = n / shards + (s < n % shards);
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

static int regroup(const char *in, const char *out, int P, int B, int steps)
{
    dp_err err;
    dp_filelist fl;
    if (filelist_open(in, &fl, &err))
        return die(&err);
    size_t sample = (size_t)fl.c * fl.h * fl.w, total = (size_t)steps * B;
    uint8_t *img = malloc(total * sample), *lab = malloc(total);
    dp_dataset *share = calloc((size_t)P, sizeof *share);
    dp_sampler *smp = calloc((size_t)P, sizeof *smp);
    for (int r = 0; r < P; r++) {
        int64_t b, e;
        filelist_share(&fl, r, P, &b, &e);
        if (dataset_load(&fl, b, e, &share[r], &err) ||
            sampler_create(&smp[r], share[r].n, 0, 0, r, &err))
            return die(&err);
    }
    size_t at = 0;
    int64_t idx[4096];
    for (int s = 0; s < steps; s++)
        for (int r = 0; r < P; r++) {
            int cnt = batch_split(B, P, r, NULL);
            sampler_next(&smp[r], idx, cnt);
            for (int i = 0; i < cnt; i++, at++) {
                memcpy(img + at * sample, share[r].images + (size_t)idx[i] * sample, sample);
                lab[at] = share[r].labels[idx[i]];
            }
        }
    dp_shard_attrs a = {0, 1, 0, (int64_t)total, fl.num_classes, NULL, NULL, NULL, NULL};
    if (shard_write(out, img, lab, (int64_t)total, fl.c, fl.h, fl.w, &a, &err))
        return die(&err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "synth") == 0)
        return synth(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10),
                     argc > 5 ? atoi(argv[5]) : 1, argc > 6 ? atoi(argv[6]) : -1);
    if (argc == 7 && strcmp(argv[1], "regroup") == 0)
        return regroup(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    fprintf(stderr, "usage: make_dataset synth OUT N SEED [SHARDS [BAD]] | regroup IN OUT P B STEPS\n");
    return 2;
}
