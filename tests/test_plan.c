/* test_plan: the data order of an epoch (plan.h) does not depend on the rank count: every
 * sample once per epoch whatever the file sizes, every batch in proportion to the files,
 * the same groups and samples for P = 1..16, each rank's slots drawn from its own files;
 * the interleaving against a sort by ideal time under both rules for ties, and equal
 * shares for the ranks under the spread rule where the sizes allow them. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dptrain/data/plan.h"

/* Every slot of every step of one epoch, gathered rank by rank. Checks that the ranks'
 * slot ranges tile each step in rank order, and that each rank only draws from the files
 * it holds. Returns the samples in step-and-slot order (caller frees). With `speeds`, the
 * plans hold their neighbours' files and split by uneven speeds (the same on all ranks). */
static int64_t *gather_epoch(const int64_t *counts, int F, int B, int g, int P, long epoch,
                             long *nslots, int speeds)
{
    dp_err err;
    dp_plan *plans = calloc((size_t)P, sizeof *plans);
    double *speed = calloc((size_t)P, sizeof *speed);
    for (int r = 0; r < P; r++)
        speed[r] = 1.0 + (double)((r * 7919 + 3) % 13) / 4.0; /* 1.75, 2.5, 0.25... */
    for (int r = 0; r < P; r++) {
        CHECK(plan_create(&plans[r], counts, F, B, g, 1, 42, r, P, &err) == 0);
        if (speeds) {
            CHECK(plan_hold_neighbours(&plans[r], &err) == 0);
            plan_set_speeds(&plans[r], speed);
            CHECK(plans[r].balanced == (P > 1));
        }
        plan_epoch(&plans[r], epoch);
    }
    free(speed);
    int64_t *all = calloc((size_t)plans[0].total + 1, sizeof(int64_t));
    long at = 0;
    for (long t = 0; t < plans[0].steps; t++) {
        int expect = 0;
        for (int r = 0; r < P; r++) {
            dp_step_share s;
            plan_share(&plans[r], t, r, &s);
            CHECK(s.slot0 == expect || s.slot1 == s.slot0);
            if (s.slot1 > s.slot0)
                expect = s.slot1;
            plan_samples(&plans[r], t, s.slot0, s.slot1, all + at);
            for (int k = 0; k < s.slot1 - s.slot0; k++) { /* from a held file */
                int64_t x = all[at + k];
                CHECK(x >= plans[r].first[plans[r].file_lo] &&
                      x < plans[r].first[plans[r].file_hi - 1] + counts[plans[r].file_hi - 1]);
            }
            at += s.slot1 - s.slot0;
        }
        dp_step_share s;
        plan_share(&plans[0], t, 0, &s);
        CHECK(expect == s.slots);
    }
    *nslots = at;
    for (int r = 0; r < P; r++)
        plan_free(&plans[r]);
    free(plans);
    return all;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Each sample exactly once per epoch, and the order the same for every P. */
static void test_once_and_same(const int64_t *counts, int F, int B, int g)
{
    int64_t N = 0;
    for (int f = 0; f < F; f++)
        N += counts[f];
    long n1;
    int64_t *ref = gather_epoch(counts, F, B, g, 1, 3, &n1, 0);
    CHECK(n1 == N);
    int64_t *sorted = malloc(sizeof(int64_t) * (size_t)N);
    memcpy(sorted, ref, sizeof(int64_t) * (size_t)N);
    qsort(sorted, (size_t)N, sizeof *sorted, cmp64);
    for (int64_t i = 0; i < N; i++)
        CHECK(sorted[i] == i);
    const int Ps[] = {2, 3, 4, 5, 8, 16};
    for (size_t k = 0; k < 2 * sizeof Ps / sizeof *Ps; k++) {
        long n; /* the second round split by speeds: the same samples in the same order */
        int64_t *other = gather_epoch(counts, F, B, g, Ps[k % 6], 3, &n, k >= 6);
        CHECK(n == N && memcmp(other, ref, sizeof(int64_t) * (size_t)N) == 0);
        free(other);
    }
    long n;
    int64_t *next = gather_epoch(counts, F, B, g, 1, 4, &n, 0); /* another epoch, another order */
    CHECK(memcmp(next, ref, sizeof(int64_t) * (size_t)N) != 0);
    free(next);
    free(sorted);
    free(ref);
}

/* Every step draws from every file in proportion to its size, within one sample. */
static void test_proportions(const int64_t *counts, int F, int B)
{
    dp_plan p;
    dp_err err;
    CHECK(plan_create(&p, counts, F, B, 4, 1, 1, 0, 1, &err) == 0);
    for (long t = 0; t < p.steps; t++)
        for (int f = 0; f < F; f++) {
            int64_t q = p.cursor[(t + 1) * F + f] - p.cursor[t * F + f];
            int64_t taken = p.cursor[(t + 1) * F + f];
            int64_t pos = (t + 1) * B < p.total ? (t + 1) * B : p.total;
            double ideal = (double)pos * counts[f] / p.total;
            CHECK(q >= 0 && taken >= ideal - 1.0 && taken <= ideal + 1.0);
        }
    plan_free(&p);
}

/* The interleaving as a sort: every (file, i) by ideal time (2i+1)/(2 n_f), ties by the
 * given key of the file; the cursors must be the counts per file of each step's prefix. */
typedef struct {
    int64_t num, den; /* ideal time num/den */
    int key, file;
} due;

static int cmp_due(const void *a, const void *b)
{
    const due *x = a, *y = b;
    __int128 l = (__int128)x->num * y->den, r = (__int128)y->num * x->den;
    return l < r ? -1 : l > r ? 1 : x->key - y->key;
}

static void test_interleaving_oracle(const int64_t *counts, int F, int B, int ties,
                                     const int *key)
{
    int64_t N = 0;
    for (int f = 0; f < F; f++)
        N += counts[f];
    due *d = calloc((size_t)N, sizeof *d);
    int64_t at = 0;
    for (int f = 0; f < F; f++)
        for (int64_t i = 0; i < counts[f]; i++)
            d[at++] = (due){2 * i + 1, 2 * counts[f], key[f], f};
    qsort(d, (size_t)N, sizeof *d, cmp_due);
    dp_plan p;
    dp_err err;
    CHECK(plan_create(&p, counts, F, B, 4, 1, 1, 0, 1, &err) == 0);
    CHECK(plan_set_ties(&p, ties, &err) == 0);
    int64_t *seen = calloc((size_t)F, sizeof(int64_t));
    for (int64_t k = 0; k <= N; k++) {
        if (k % B == 0 || k == N) {
            const long t = (long)((k + B - 1) / B);
            for (int f = 0; f < F; f++)
                CHECK(p.cursor[(size_t)t * F + f] == seen[f]);
        }
        if (k < N)
            seen[d[k].file]++;
    }
    free(seen);
    free(d);
    plan_free(&p);
}

/* MNIST's training shards: 8 files of 7500. */
static void mnist_shards(int64_t counts[8])
{
    for (int f = 0; f < 8; f++)
        counts[f] = 7500;
}

/* Samples rank r computes in step t. */
static int rank_slots(const dp_plan *p, long t, int r)
{
    dp_step_share s;
    plan_share(p, t, r, &s);
    return s.slot1 - s.slot0;
}

/* 8 files of 7500, batch 100 (MNIST's shards): 12.5 samples per file and step. Spread ties
 * give 2 and 4 ranks equal shares in every step (50, 25); the older rule gave the first
 * files the extra samples, 52 and 48 in turn on 2 ranks. */
static void test_balanced_shares(void)
{
    int64_t counts[8];
    mnist_shards(counts);
    dp_err err;
    for (int P = 2; P <= 4; P += 2)
        for (int r = 0; r < P; r++) {
            dp_plan p;
            CHECK(plan_create(&p, counts, 8, 100, 8, 1, 1, r, P, &err) == 0);
            for (long t = 0; t < p.steps; t++)
                CHECK(rank_slots(&p, t, r) == 100 / P);
            CHECK(plan_set_ties(&p, PLAN_TIES_LOWER, &err) == 0);
            for (long t = 0; P == 2 && t < 4; t++)
                CHECK(rank_slots(&p, t, r) == (t % 2 == r ? 52 : 48));
            plan_free(&p);
        }
    dp_plan p;
    CHECK(plan_create(&p, counts, 8, 100, 8, 1, 1, 0, 1, &err) == 0);
    CHECK(plan_set_ties(&p, 7, &err) != 0 && strstr(err.msg, "unknown rule"));
    plan_free(&p);
}

/* Rank memory: a rank holds its part of the files plus at most the files at its ends. */
static void test_held_files(void)
{
    int64_t counts[8];
    mnist_shards(counts);
    dp_err err;
    for (int P = 1; P <= 16; P++)
        for (int r = 0; r < P; r++) {
            dp_plan p;
            CHECK(plan_create(&p, counts, 8, 100, 4, 1, 1, r, P, &err) == 0);
            int64_t held = 0;
            for (int f = p.file_lo; f < p.file_hi; f++)
                held += counts[f];
            CHECK(held <= 60000 / P + 2 * 7500);
            if (P == 8 || P == 4 || P == 2 || P == 1) /* P divides the files: exactly its own */
                CHECK(held == 60000 / P);
            plan_free(&p);
        }
}

/* Rank r's groups of step t of plan p made for it. */
static dp_step_share share_of(const dp_plan *p, long t, int r)
{
    dp_step_share s;
    plan_share(p, t, r, &s);
    return s;
}

/* The split by speeds on MNIST's shards: equal speeds keep the files' split on 2, 4 and 8
 * ranks; 1.3 to 1 gives rank 0 one group more (9 of 16); a rank far slower or faster moves
 * the boundary to the end of what the other holds; a bad speed falls back to the files'
 * split; no split gives a rank more than plan_share_most says. */
static void test_speed_split(void)
{
    int64_t counts[8];
    mnist_shards(counts);
    dp_err err;
    for (int P = 2; P <= 8; P *= 2)
        for (int r = 0; r < P; r++) {
            dp_plan base, p;
            CHECK(plan_create(&base, counts, 8, 100, 8, 1, 1, r, P, &err) == 0);
            CHECK(plan_create(&p, counts, 8, 100, 8, 1, 1, r, P, &err) == 0);
            CHECK(plan_hold_neighbours(&p, &err) == 0);
            CHECK(p.file_lo == (r * 8 / P > 0 ? r * 8 / P - 1 : 0));
            CHECK(p.file_hi == ((r + 1) * 8 / P < 8 ? (r + 1) * 8 / P + 1 : 8));
            double equal[8] = {2, 2, 2, 2, 2, 2, 2, 2};
            plan_set_speeds(&p, equal);
            CHECK(p.balanced);
            for (long t = 0; t < p.steps; t++) {
                dp_step_share a = share_of(&base, t, r), b = share_of(&p, t, r);
                CHECK(a.group0 == b.group0 && a.group1 == b.group1 && a.slot0 == b.slot0 &&
                      a.slot1 == b.slot1);
            }
            plan_free(&base);
            plan_free(&p);
        }
    const double ratios[4][2] = {{1.3, 1}, {1, 1.3}, {1e-3, 1}, {1, 1e-3}};
    const int groups0[4] = {9, 7, 6, 10}; /* rank 0 holds files 0-4, rank 1 files 3-7 */
    for (int k = 0; k < 4; k++)
        for (int r = 0; r < 2; r++) {
            dp_plan p;
            CHECK(plan_create(&p, counts, 8, 100, 8, 1, 1, r, 2, &err) == 0);
            CHECK(plan_hold_neighbours(&p, &err) == 0);
            plan_set_speeds(&p, ratios[k]);
            for (long t = 0; t < p.steps; t++) {
                dp_step_share s = share_of(&p, t, r), most;
                CHECK(r == 0 ? s.group0 == 0 && s.group1 == groups0[k]
                             : s.group0 == groups0[k] && s.group1 == 16);
                plan_share_most(&p, t, r, &most);
                CHECK(most.group0 <= s.group0 && s.group1 <= most.group1);
                CHECK(most.group1 - most.group0 == 10);
            }
            const double bad[2] = {1.0, 0.0 / 0.0};
            plan_set_speeds(&p, bad);
            CHECK(!p.balanced && share_of(&p, 0, r).group1 - share_of(&p, 0, r).group0 == 8);
            plan_free(&p);
        }
}

/* The slowest share of step t (its slots over its rank's speed) under plans[P]. */
static double slowest(dp_plan *plans, int P, long t, const double *speed)
{
    double worst = 0.0;
    for (int r = 0; r < P; r++) {
        dp_step_share s = share_of(&plans[r], t, r);
        const double T = (s.slot1 - s.slot0) / speed[r];
        worst = T > worst ? T : worst;
    }
    return worst;
}

/* The split by speeds is the fastest: its slowest share never takes longer than the files'
 * split's, for uneven speeds on 2-8 ranks and uneven files; a rank 1000x slower between
 * two others gets nothing where its neighbours can take its files' groups. */
static void test_speed_split_fastest(void)
{
    const int64_t files[2][8] = {{7500, 7500, 7500, 7500, 7500, 7500, 7500, 7500},
                                 {700, 1300, 410, 5000, 60, 900, 2200, 3000}};
    dp_err err;
    for (int k = 0; k < 2; k++)
        for (int P = 2; P <= 8; P++) {
            dp_plan base[8], p[8];
            double speed[8];
            for (int r = 0; r < P; r++) {
                speed[r] = 1.0 + (double)((r * 7919 + 3 * P + k) % 11) / 5.0 +
                           (double)((r * 104729 + P) % 7 == 0) * 20.0; /* some 10x faster */
                CHECK(plan_create(&base[r], files[k], 8, 100, 8, 1, 1, r, P, &err) == 0);
                CHECK(plan_create(&p[r], files[k], 8, 100, 8, 1, 1, r, P, &err) == 0);
                CHECK(plan_hold_neighbours(&p[r], &err) == 0);
            }
            for (int r = 0; r < P; r++)
                plan_set_speeds(&p[r], speed);
            for (long t = 0; t < base[0].steps; t += 7)
                CHECK(slowest(p, P, t, speed) <= slowest(base, P, t, speed) * (1 + 1e-9));
            for (int r = 0; r < P; r++) {
                plan_free(&base[r]);
                plan_free(&p[r]);
            }
        }
    const double starved[3] = {1.0, 1e-3, 1.5}; /* nearest to proportional: 2 groups */
    for (int r = 0; r < 3; r++) {
        dp_plan p;
        CHECK(plan_create(&p, files[0], 8, 100, 8, 1, 1, r, 3, &err) == 0);
        CHECK(plan_hold_neighbours(&p, &err) == 0);
        plan_set_speeds(&p, starved);
        for (long t = 0; r == 1 && t < p.steps; t++)
            CHECK(share_of(&p, t, 1).group1 == share_of(&p, t, 1).group0);
        plan_free(&p);
    }
}

int main(void)
{
    const int64_t even[8] = {7, 7, 7, 7, 7, 7, 7, 7};
    const int64_t uneven[3] = {13, 250, 61};
    const int64_t tiny_big[2] = {20, 380};
    test_once_and_same(even, 8, 10, 2);
    test_once_and_same(uneven, 3, 32, 4);
    test_once_and_same(uneven, 3, 100, 3);
    test_once_and_same(tiny_big, 2, 100, 4);
    test_once_and_same(tiny_big, 2, 64, 1);
    test_proportions(uneven, 3, 32);
    test_proportions(tiny_big, 2, 100);
    test_held_files();
    const int lower8[8] = {0, 1, 2, 3, 4, 5, 6, 7}, spread8[8] = {0, 4, 2, 6, 1, 5, 3, 7};
    const int lower3[3] = {0, 1, 2}, spread3[3] = {0, 2, 1}; /* bit-reversed in 2 bits */
    const int64_t odd_ratio[3] = {9, 27, 45}; /* ideal times tie across different sizes */
    for (int rule = PLAN_TIES_LOWER; rule <= PLAN_TIES_SPREAD; rule++) {
        /* spread8 and spread3 give each file's rank in the order: the inverse of the key */
        int key8[8], key3[3];
        for (int f = 0; f < 8; f++)
            key8[rule ? spread8[f] : lower8[f]] = f;
        for (int f = 0; f < 3; f++)
            key3[rule ? spread3[f] : lower3[f]] = f;
        test_interleaving_oracle(even, 8, 10, rule, key8);
        test_interleaving_oracle(odd_ratio, 3, 10, rule, key3);
        test_interleaving_oracle(uneven, 3, 32, rule, key3);
    }
    test_balanced_shares();
    test_speed_split();
    test_speed_split_fastest();
    return check_exit("test_plan");
}
