#include "dptrain/data/sampler.h"

#include <stdlib.h>

#include "dptrain/util/rng.h"

static void start_pass(dp_sampler *s)
{
    for (int64_t i = 0; i < s->n; i++)
        s->order[i] = i;
    if (s->shuffle) {
        dp_rng r;
        rng_seed(&r, s->seed, (uint64_t)s->pass + 1, SHUFFLE_STREAM + (uint64_t)s->rank);
        rng_shuffle(&r, s->order, s->n);
    }
    s->pos = 0;
}

int sampler_create(dp_sampler *s, int64_t n, int shuffle, uint64_t seed, int rank, dp_err *err)
{
    s->n = n;
    s->shuffle = shuffle;
    s->seed = seed;
    s->rank = rank;
    s->pass = 0;
    s->order = dp_calloc((size_t)n, sizeof(int64_t), "sample order", err);
    if (!s->order)
        return -1;
    start_pass(s);
    return 0;
}

void sampler_free(dp_sampler *s)
{
    free(s->order);
    s->order = NULL;
}

void sampler_next(dp_sampler *s, int64_t *idx, int count)
{
    for (int i = 0; i < count; i++) {
        if (s->pos == s->n) {
            s->pass++;
            start_pass(s);
        }
        idx[i] = s->order[s->pos++];
    }
}

int batch_split(int B, int P, int r, int *offset)
{
    int base = B / P, extra = B % P;
    if (offset)
        *offset = r * base + (r < extra ? r : extra);
    return base + (r < extra ? 1 : 0);
}

int sampler_restore(dp_sampler *s, int64_t pass, int64_t pos, dp_err *err)
{
    if (pass < 0 || pos < 0 || pos > s->n)
        return dp_fail(err, "sampler state (pass %lld, position %lld) does not fit a share of "
                            "%lld samples", (long long)pass, (long long)pos, (long long)s->n);
    s->pass = pass;
    start_pass(s);
    s->pos = pos;
    return 0;
}
