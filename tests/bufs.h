/* bufs: the random and compared buffers of the kernel tests (test_isa, test_exact_parts),
 * drawn from one generator per test program, which seeds it per case. */
#ifndef DPTRAIN_TESTS_BUFS_H
#define DPTRAIN_TESTS_BUFS_H

#include <stdlib.h>
#include <string.h>

#include "dptrain/util/rng.h"

static dp_rng rng;

/* n floats uniform in [-1, 1) (the caller frees) */
static float *rand_buf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * rng_uniform(&rng) - 1.0f;
    return p;
}

static int same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

#endif
