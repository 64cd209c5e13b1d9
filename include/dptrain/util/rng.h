/* rng: the project's own random numbers, so results never depend on the C library.
 *
 * Generator: xoshiro256** (Blackman & Vigna, 2018). A generator is seeded from a
 * 64-bit seed and two stream numbers (for example a parameter index, or an epoch and
 * a rank) through SplitMix64, so independent streams never share state:
 *   x = seed ^ (a * 0x9E3779B97F4A7C15) ^ (b * 0xD1B54A32D192ED03), s[i] = splitmix64(x).
 * Floats take the top 24 bits of a draw (uniform in [0, 1)); integers below n use
 * Lemire's unbiased multiply-and-reject method. */
#ifndef DPTRAIN_RNG_H
#define DPTRAIN_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} dp_rng;

void rng_seed(dp_rng *r, uint64_t seed, uint64_t stream_a, uint64_t stream_b);
uint64_t rng_next(dp_rng *r);
/* Uniform in [0, 1), 24 random bits. */
float rng_uniform(dp_rng *r);
/* Uniform integer in [0, n), n > 0, unbiased. */
uint64_t rng_below(dp_rng *r, uint64_t n);
/* Fisher-Yates shuffle (Durstenfeld): for i = n-1 down to 1, swap a[i] with a[rng_below(i+1)]. */
void rng_shuffle(dp_rng *r, int64_t *a, int64_t n);

#endif
