/* sampler: which of its samples a rank feeds into each step, and how the global batch
 * is split over the ranks.
 *
 * Each rank streams through its own share in passes. Pass k visits the share in the
 * order of a Fisher-Yates shuffle drawn from rng_seed(seed, k + 1, SHUFFLE_STREAM + rank)
 * (file order with --no-shuffle). A step takes the next `count` samples of the stream;
 * when a pass runs out mid-batch, the batch continues with the next pass, so no sample
 * is ever dropped and every sample of a rank is seen equally often. The sampler owns
 * its order array. */
#ifndef DPTRAIN_SAMPLER_H
#define DPTRAIN_SAMPLER_H

#include <stdint.h>

#include "dptrain/util/error.h"

#define SHUFFLE_STREAM 0x5348554600000000ull /* "SHUF" */

typedef struct {
    int64_t n;      /* samples in this rank's share */
    int64_t *order; /* the current pass's order, indices into the share */
    int64_t pass;   /* 0-based index of the current pass */
    int64_t pos;    /* next position in order */
    int shuffle;
    uint64_t seed;
    int rank;
} dp_sampler;

int sampler_create(dp_sampler *s, int64_t n, int shuffle, uint64_t seed, int rank, dp_err *err);
void sampler_free(dp_sampler *s);
/* The next `count` indices of the stream. */
void sampler_next(dp_sampler *s, int64_t *idx, int count);
/* Continue the stream at position `pos` of pass `pass` (a checkpoint's pass and pos):
 * the order of a pass depends only on (seed, pass, rank), so this is exact. */
int sampler_restore(dp_sampler *s, int64_t pass, int64_t pos, dp_err *err);

/* The global batch B split over P ranks as evenly as possible: the first B % P ranks
 * take one more. Returns rank r's count; *offset is where its samples start in the
 * global batch (rank order). */
int batch_split(int B, int P, int r, int *offset);

#endif
