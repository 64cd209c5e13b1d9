/* test_gradsync_ranks: the gradient sum over ranks (gradsync.h), through MPI_Allreduce and
 * through shared memory (gradsync_share), against one gradsync that sums every group
 * itself. Run on 3 ranks, each holding the groups g with g % 3 == its rank. Both ways give
 * the one-rank bits; both ask for the step again when a partial passes its bound, and then
 * give the bits of the one rank; a NaN is handed on in its tensor only; the sums are left
 * zero for the next step (a step after one with a NaN gives a fresh gradsync's bits). The
 * shared sum cuts the values into chunks: small tensors are one chunk each, B at 40,000
 * floats five, a frozen tensor (never reduced) sits between two that are; with 1 and 2
 * threads, whose threads claim chunks too. A late rank's finished layers are summed by the
 * others while it goes on. Also: --overlap leaves the MPI path, and refuses a required
 * share; a consumer of the sums (gradsync_take_with) gets them on every path. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "check.h"
#include "dptrain/dist/comm.h"
#include "dptrain/dist/gradsync.h"
#include "dptrain/util/rng.h"

enum { G = 13, NT = 4 };

/* A (37 floats), F (11, frozen), B, C (5); B is 40,000 floats, or 29 in the small case. */
static size_t off[NT], cnt[NT], N;
static float *partial; /* [G][N] */

static void layout(size_t b)
{
    const size_t c[NT] = {37, 11, b, 5};
    N = 0;
    for (int i = 0; i < NT; i++) {
        off[i] = N;
        cnt[i] = c[i];
        N += c[i];
    }
    free(partial);
    partial = calloc(G * N, sizeof *partial);
}

/* Partials of many magnitudes and both signs, zero in the frozen tensor. */
static void make_partials(uint64_t seed, float scale)
{
    dp_rng r;
    rng_seed(&r, seed, 1, 2);
    for (int g = 0; g < G; g++)
        for (size_t i = 0; i < N; i++) {
            float m = rng_uniform(&r) - 0.5f;
            int e = -(int)rng_below(&r, 40);
            int frozen = i >= off[1] && i < off[1] + cnt[1];
            partial[g * N + i] = frozen ? 0.0f : scale * ldexpf(m, e);
        }
}

/* Segments in backward order: B and C (id 1), then A (id 0); F is in none. */
static dp_gradsync *make(float *grads, int nranks, int overlap)
{
    dp_grad_segment seg[2] = {{off[2], N, 1}, {0, cnt[0], 0}};
    dp_grad_tensor t[NT];
    for (int i = 0; i < NT; i++)
        t[i] = (dp_grad_tensor){off[i], cnt[i]};
    dp_gradsync *gs = NULL;
    dp_err err;
    CHECK(gradsync_create(&gs, grads, N, seg, 2, t, NT, 1024, overlap, nranks, &err) == 0);
    return gs;
}

/* One step over the groups g with g % stride == first; returns gradsync_finish's answer. */
static int step(dp_gradsync *gs, float *grads, int first, int stride)
{
    gradsync_begin(gs, G);
    gradsync_pass(gs, 1);
    for (int g = first; g < G; g += stride) {
        for (size_t i = 0; i < N; i++)
            grads[i] += partial[g * N + i];
        gradsync_partial(gs, 1);
        gradsync_partial(gs, 0);
    }
    gradsync_final(gs, 1);
    gradsync_final(gs, 0);
    double waited;
    return gradsync_finish(gs, &waited);
}

/* The three sums of one step (shared, MPI, one rank) and their answers alike; 1 when the
 * step was to be done again. */
static int compare_step(dp_gradsync *const gs[3], float *const g[3], const dp_comm *c)
{
    const int again[3] = {step(gs[0], g[0], c->rank, c->size),
                          step(gs[1], g[1], c->rank, c->size), step(gs[2], g[2], 0, 1)};
    CHECK(again[0] == again[2] && again[1] == again[2]);
    if (!again[2]) {
        CHECK(memcmp(g[0], g[2], N * sizeof(float)) == 0);
        CHECK(memcmp(g[1], g[2], N * sizeof(float)) == 0);
    }
    int e[3][NT];
    for (int k = 0; k < 3; k++)
        gradsync_get_exponents(gs[k], e[k]);
    CHECK(memcmp(e[0], e[2], sizeof e[0]) == 0 && memcmp(e[1], e[2], sizeof e[0]) == 0);
    return again[2];
}

static void test_sums(const dp_comm *c, size_t b, int threads)
{
    layout(b);
    omp_set_num_threads(threads);
    float *g[3];
    dp_gradsync *gs[3];
    for (int k = 0; k < 3; k++) {
        g[k] = calloc(N, sizeof(float));
        gs[k] = make(g[k], k == 2 ? 1 : c->size, 0);
    }
    char why[192];
    dp_err err;
    CHECK(gradsync_share(gs[0], c, 1, why, sizeof why, &err) == 0);
    CHECK(gradsync_shared(gs[0]) && !gradsync_shared(gs[1]) && !gradsync_shared(gs[2]));

    make_partials(7, 1.0f); /* below the first bound, 2^0 */
    CHECK(compare_step(gs, g, c) == 0);
    CHECK(g[2][off[1]] == 0.0f && g[2][0] != 0.0f);

    make_partials(9, 65536.0f); /* up to 2^15: past the bound the last step set, 2^7 */
    CHECK(compare_step(gs, g, c) == 1);
    CHECK(compare_step(gs, g, c) == 0);

    make_partials(11, 1.0f);
    partial[4 * N + off[2] + 2] = NAN; /* on rank 4 % 3 */
    CHECK(compare_step(gs, g, c) == 0);
    CHECK(isnan(g[0][off[2]]) && isnan(g[0][N - cnt[3] - 1])); /* the whole of B */
    CHECK(!isnan(g[0][0]) && !isnan(g[0][off[3]]) && g[0][off[1]] == 0.0f);
    int bad;
    for (int k = 0; k < 3; k++) /* the verdict the guard takes, on every path */
        CHECK(gradsync_nonfinite(gs[k], &bad) == 1 && bad == 2);

    make_partials(13, 1.0f); /* after the NaN: nothing of it is left in the sums */
    CHECK(compare_step(gs, g, c) == 0);
    CHECK(!isnan(g[0][off[2]]));
    for (int k = 0; k < 3; k++)
        CHECK(gradsync_nonfinite(gs[k], &bad) == 0 && bad == -1);
    for (int k = 0; k < 3; k++) {
        gradsync_free(gs[k]);
        free(g[k]);
    }
}

/* gradsync_take_with: what a consumer gets in place of the float buffer. */
typedef struct {
    float *out;
    int *seen;
} taken_to;

static void take_into(void *ctx, size_t offset, const float *g, size_t n)
{
    const taken_to *t = ctx;
    for (size_t i = 0; i < n; i++) {
        t->out[offset + i] = g[i];
        t->seen[offset + i]++;
    }
}

/* The sums handed to a consumer (shared memory, MPI, one rank) are those written into the
 * float buffer without one, each value once, the frozen tensor's never, and the buffer is
 * left as backward left it: zero, but for the frozen tensor's floats, which nothing moves
 * (here 1 from each of the rank's groups) and which each step starts from zero again,
 * though the others are not cleared after a step whose sums were taken; a step with a NaN
 * writes the buffer as ever and hands nothing; the next step hands the sums again, from a
 * cleared buffer. */
static void test_take_with(const dp_comm *c, size_t b, int threads)
{
    layout(b);
    omp_set_num_threads(threads);
    enum { K = 4 }; /* shared, MPI, one rank: with a consumer; one rank without */
    float *g[K];
    dp_gradsync *gs[K];
    taken_to to[K - 1];
    for (int k = 0; k < K; k++) {
        g[k] = calloc(N, sizeof(float));
        gs[k] = make(g[k], k >= 2 ? 1 : c->size, 0);
    }
    char why[192];
    dp_err err;
    CHECK(gradsync_share(gs[0], c, 1, why, sizeof why, &err) == 0);
    for (int k = 0; k < K - 1; k++) {
        to[k] = (taken_to){calloc(N, sizeof(float)), calloc(N, sizeof(int))};
        gradsync_take_with(gs[k], take_into, &to[k]);
    }
    for (int round = 0; round < 3; round++) {
        make_partials(17 + (uint64_t)round, 1.0f);
        for (int q = 0; q < G; q++)
            for (size_t i = off[1]; i < off[1] + cnt[1]; i++)
                partial[q * N + i] = 1.0f;
        if (round == 1)
            partial[5 * N + off[0] + 3] = NAN; /* in A, on rank 5 % 3 */
        int again;
        do {
            for (int k = 0; k < K - 1; k++)
                memset(to[k].seen, 0, N * sizeof(int));
            again = step(gs[K - 1], g[K - 1], 0, 1);
            for (int k = 0; k < K - 1; k++)
                CHECK(step(gs[k], g[k], k < 2 ? c->rank : 0, k < 2 ? c->size : 1) == again);
        } while (again);
        for (int k = 0; k < K - 1; k++) {
            CHECK(gradsync_taken(gs[k]) == (round != 1));
            CHECK(!gradsync_taken(gs[K - 1]));
            const int first = k < 2 ? c->rank : 0, stride = k < 2 ? c->size : 1;
            const float mine = (float)((G - first + stride - 1) / stride); /* its groups */
            size_t wrong = 0;
            for (size_t i = 0; i < N; i++) {
                const int frozen = i >= off[1] && i < off[1] + cnt[1];
                if (frozen) {
                    wrong += to[k].seen[i] != 0 || g[k][i] != mine;
                } else if (round == 1) { /* the buffer, as without a consumer, and nothing */
                    wrong += to[k].seen[i] != 0;
                    wrong += memcmp(&g[k][i], &g[K - 1][i], sizeof(float)) != 0;
                } else {
                    wrong += to[k].seen[i] != 1;
                    wrong += memcmp(&to[k].out[i], &g[K - 1][i], sizeof(float)) != 0;
                    wrong += g[k][i] != 0.0f;
                }
            }
            CHECK(wrong == 0);
        }
        CHECK((round == 1) == isnan(g[K - 1][off[0] + 3]));
    }
    for (int k = 0; k < K; k++) {
        if (k < K - 1) {
            free(to[k].out);
            free(to[k].seen);
        }
        gradsync_free(gs[k]);
        free(g[k]);
    }
}

/* Through shared memory a rank that ends its backward early sums what the others have
 * finished: rank 2 publishes B and C (segment id 1) and then sleeps before A, so ranks 0
 * and 1 sum every chunk of B and C meanwhile, and rank 2 at most A's. Each chunk is summed
 * once, and the bits are one rank's. */
static void test_late_rank(const dp_comm *c)
{
    layout(40000);
    omp_set_num_threads(1);
    float *g[2] = {calloc(N, sizeof(float)), calloc(N, sizeof(float))};
    dp_gradsync *gs[2] = {make(g[0], c->size, 0), make(g[1], 1, 0)};
    char why[192];
    dp_err err;
    CHECK(gradsync_share(gs[0], c, 1, why, sizeof why, &err) == 0);
    make_partials(19, 1.0f);
    CHECK(step(gs[1], g[1], 0, 1) == 0);
    gradsync_begin(gs[0], G);
    gradsync_pass(gs[0], 1);
    for (int k = c->rank; k < G; k += c->size) {
        for (size_t i = 0; i < N; i++)
            g[0][i] += partial[k * N + i];
        gradsync_partial(gs[0], 1);
        gradsync_partial(gs[0], 0);
    }
    gradsync_final(gs[0], 1);
    if (c->rank == 2)
        usleep(300 * 1000);
    gradsync_final(gs[0], 0);
    double waited;
    CHECK(gradsync_finish(gs[0], &waited) == 0);
    CHECK(memcmp(g[0], g[1], N * sizeof(float)) == 0);
    int chunks, summed[3], mine = gradsync_summed(gs[0], &chunks);
    MPI_Allgather(&mine, 1, MPI_INT, summed, 1, MPI_INT, MPI_COMM_WORLD);
    const int late = 1; /* A's chunk: the only one that waits for rank 2 */
    CHECK(chunks == (int)((cnt[2] + 8191) / 8192) + 1 + late);
    CHECK(summed[0] + summed[1] + summed[2] == chunks);
    CHECK(summed[2] <= late);
    for (int k = 0; k < 2; k++) {
        gradsync_free(gs[k]);
        free(g[k]);
    }
}

/* With --overlap the buckets go through MPI: auto says why, a required share fails. */
static void test_overlap(const dp_comm *c)
{
    layout(29);
    float *g = calloc(N, sizeof(float));
    dp_gradsync *gs = make(g, c->size, 1);
    char why[192];
    dp_err err;
    CHECK(gradsync_share(gs, c, 0, why, sizeof why, &err) == 0);
    CHECK(!gradsync_shared(gs));
    CHECK_MSG(why, "--overlap");
    CHECK(gradsync_share(gs, c, 1, why, sizeof why, &err) == -1);
    CHECK_MSG(err.msg, "--reduction shm");
    gradsync_free(gs);
    free(g);
}

int main(int argc, char **argv)
{
    dp_comm c;
    dp_err err;
    if (comm_init(&argc, &argv, &c, &err)) {
        fprintf(stderr, "test_gradsync_ranks: %s\n", err.msg);
        return 1;
    }
    CHECK(c.size == 3);
    test_sums(&c, 29, 1);
    test_sums(&c, 40000, 1);
    test_sums(&c, 40000, 2);
    test_overlap(&c);
    test_take_with(&c, 29, 1);
    test_take_with(&c, 40000, 2);
    test_late_rank(&c);
    free(partial);
    int rc = check_exit("test_gradsync_ranks");
    comm_finalize();
    return rc;
}
