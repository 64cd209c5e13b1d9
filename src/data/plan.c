#include "dptrain/data/plan.h"

#include <stdlib.h>
#include <string.h>

#include "dptrain/util/rng.h"

/* ---- the interleaving --------------------------------------------------------------- */

/* Where file f stands among files whose samples fall due at the same time: ties to the
 * lower file (PLAN_TIES_LOWER), or in bit-reversed order of the file index (PLAN_TIES_SPREAD:
 * with 8 files 0 4 2 6 1 5 3 7), so that the extra samples of a step whose batch the file
 * count does not divide land on files far apart, and so on different ranks. */
static uint32_t tie_key(int ties, int nfiles, int f)
{
    if (ties == PLAN_TIES_LOWER)
        return (uint32_t)f;
    int bits = 0;
    while ((1L << bits) < nfiles)
        bits++;
    uint32_t r = 0;
    for (int b = 0; b < bits; b++)
        r |= (((uint32_t)f >> b) & 1u) << (bits - 1 - b);
    return r;
}

/* A binary heap of files keyed by the ideal time of their next sample. */
typedef struct {
    int *file;
    int size;
    const int64_t *n, *next;
    const uint32_t *key; /* [nfiles]: tie_key of each file */
} file_heap;

/* Is file a's next sample due before file b's? Their ideal times are (2i+1)/(2 n_a) and
 * (2j+1)/(2 n_b) of the epoch; compared exactly in integers, ties by the files' keys. */
static int heap_less(const file_heap *h, int x, int y)
{
    const int a = h->file[x], b = h->file[y];
    __int128 l = (__int128)(2 * h->next[a] + 1) * h->n[b];
    __int128 r = (__int128)(2 * h->next[b] + 1) * h->n[a];
    return l < r || (l == r && h->key[a] < h->key[b]);
}

static void heap_sift_down(file_heap *h, int at)
{
    for (;;) {
        int l = 2 * at + 1, r = l + 1, best = at;
        if (l < h->size && heap_less(h, l, best))
            best = l;
        if (r < h->size && heap_less(h, r, best))
            best = r;
        if (best == at)
            return;
        int t = h->file[at];
        h->file[at] = h->file[best];
        h->file[best] = t;
        at = best;
    }
}

/* cursor[t][f] for every step boundary: one merge of the files by ideal time. */
static int build_cursors(dp_plan *p, dp_err *err)
{
    const int F = p->nfiles;
    int64_t *next = dp_calloc((size_t)F, sizeof(int64_t), "data plan", err);
    uint32_t *key = dp_calloc((size_t)F, sizeof(uint32_t), "data plan", err);
    file_heap h = {dp_calloc((size_t)F, sizeof(int), "data plan", err), 0, p->counts, next, key};
    int rc = next && key && h.file ? 0 : -1;
    for (int f = 0; rc == 0 && f < F; f++)
        key[f] = tie_key(p->ties, F, f);
    for (int f = 0; rc == 0 && f < F; f++)
        if (p->counts[f] > 0)
            h.file[h.size++] = f;
    for (int at = h.size / 2 - 1; rc == 0 && at >= 0; at--)
        heap_sift_down(&h, at);
    for (int64_t k = 0; rc == 0 && k < p->total; k++) {
        if (k % p->batch == 0)
            memcpy(p->cursor + (size_t)(k / p->batch) * F, next, sizeof(int64_t) * F);
        int f = h.file[0];
        if (++next[f] == p->counts[f])
            h.file[0] = h.file[--h.size];
        heap_sift_down(&h, 0);
    }
    if (rc == 0)
        memcpy(p->cursor + (size_t)p->steps * F, next, sizeof(int64_t) * F);
    free(next);
    free(key);
    free(h.file);
    return rc;
}

/* ---- groups and the split over the ranks ---------------------------------------------- */

/* File f's share of step t, and the groups it is cut into: ceil(q / group) of balanced
 * sizes (the first q mod n one slot larger). */
static int64_t quota(const dp_plan *p, long t, int f)
{
    return p->cursor[(size_t)(t + 1) * p->nfiles + f] - p->cursor[(size_t)t * p->nfiles + f];
}

static int64_t groups_of(const dp_plan *p, int64_t q) { return (q + p->group - 1) / p->group; }

/* The group of step t that file f's part at position `at` (files end to end) begins:
 * groups of the files before it, and of its own in proportion to where `at` lies. */
static int64_t groups_before(const dp_plan *p, long t, int64_t at)
{
    int64_t groups = 0;
    for (int f = 0; f < p->nfiles; f++) {
        int64_t n = groups_of(p, quota(p, t, f));
        if (at >= p->first[f] + p->counts[f]) {
            groups += n;
            continue;
        }
        if (at > p->first[f])
            groups += (int64_t)((__int128)(at - p->first[f]) * n / p->counts[f]);
        break;
    }
    return groups;
}

/* Where group j of step t lies: its file, its index among the file's groups, the slot it
 * starts at and its size. */
typedef struct {
    int file;
    int64_t slot, size, within; /* within: its first sample's position in the file's order */
} group_place;

static int place_group(const dp_plan *p, long t, int64_t j, group_place *g)
{
    int64_t slot = 0;
    for (int f = 0; f < p->nfiles; f++) {
        int64_t q = quota(p, t, f), n = groups_of(p, q);
        if (j < n) {
            int64_t small = q / n, big = q % n; /* the first `big` groups hold small + 1 */
            int64_t before = j * small + (j < big ? j : big);
            g->file = f;
            g->slot = slot + before;
            g->size = small + (j < big);
            g->within = p->cursor[(size_t)t * p->nfiles + f] + before;
            return 0;
        }
        j -= n;
        slot += q;
    }
    return -1;
}

int plan_group_slot(const dp_plan *p, long t, int j)
{
    group_place g;
    if (place_group(p, t, j, &g) == 0)
        return (int)g.slot;
    dp_step_share s; /* j past the last group: the end of the step */
    plan_share(p, t, 0, &s);
    return s.slots;
}

int plan_group_size(const dp_plan *p, long t, int j)
{
    group_place g;
    return place_group(p, t, j, &g) == 0 ? (int)g.size : 0;
}

void plan_share(const dp_plan *p, long t, int rank, dp_step_share *s)
{
    s->slots = 0;
    s->groups = 0;
    for (int f = 0; f < p->nfiles; f++) {
        int64_t q = quota(p, t, f);
        s->slots += (int)q;
        s->groups += (int)groups_of(p, q);
    }
    int64_t lo = (int64_t)((__int128)p->total * rank / p->ranks);
    int64_t hi = (int64_t)((__int128)p->total * (rank + 1) / p->ranks);
    s->group0 = (int)groups_before(p, t, lo);
    s->group1 = rank + 1 == p->ranks ? s->groups : (int)groups_before(p, t, hi);
    group_place g;
    s->slot0 = place_group(p, t, s->group0, &g) == 0 ? (int)g.slot : s->slots;
    s->slot1 = place_group(p, t, s->group1, &g) == 0 ? (int)g.slot : s->slots;
}

/* The file of slot s of step t, and the slot's position in that file's order. */
static int file_of_slot(const dp_plan *p, long t, int s, int64_t *within)
{
    for (int f = 0; f < p->nfiles; f++) {
        int64_t q = quota(p, t, f);
        if (s < q) {
            *within = p->cursor[(size_t)t * p->nfiles + f] + s;
            return f;
        }
        s -= (int)q;
    }
    *within = 0;
    return p->nfiles - 1;
}

/* This rank's part of the files laid end to end, and the files it overlaps. */
static void owned_files(dp_plan *p)
{
    p->owned_lo = (int64_t)((__int128)p->total * p->rank / p->ranks);
    p->owned_hi = (int64_t)((__int128)p->total * (p->rank + 1) / p->ranks);
    p->file_lo = p->file_hi = 0;
    if (p->owned_hi <= p->owned_lo)
        return;
    int f = 0;
    while (p->first[f] + p->counts[f] <= p->owned_lo)
        f++;
    p->file_lo = f;
    while (f < p->nfiles && p->first[f] < p->owned_hi)
        f++;
    p->file_hi = f;
}

int plan_create(dp_plan *p, const int64_t *counts, int nfiles, int batch, int group, int shuffle,
                uint64_t seed, int rank, int ranks, dp_err *err)
{
    memset(p, 0, sizeof *p);
    p->nfiles = nfiles;
    p->batch = batch;
    p->group = group;
    p->shuffle = shuffle;
    p->seed = seed;
    p->rank = rank;
    p->ranks = ranks;
    p->epoch = -1;
    p->ties = PLAN_TIES_SPREAD;
    p->counts = dp_calloc((size_t)nfiles, sizeof(int64_t), "data plan", err);
    p->first = dp_calloc((size_t)nfiles, sizeof(int64_t), "data plan", err);
    p->perm = dp_calloc((size_t)nfiles, sizeof(int64_t *), "data plan", err);
    if (!p->counts || !p->first || !p->perm || batch < 1 || group < 1) {
        plan_free(p);
        return -1;
    }
    for (int f = 0; f < nfiles; f++) {
        p->counts[f] = counts[f];
        p->first[f] = p->total;
        p->total += counts[f];
    }
    p->steps = (long)((p->total + batch - 1) / batch);
    p->cursor = dp_calloc((size_t)(p->steps + 1) * nfiles, sizeof(int64_t), "data plan", err);
    if (!p->cursor || build_cursors(p, err)) {
        plan_free(p);
        return -1;
    }
    owned_files(p);
    for (int f = p->file_lo; f < p->file_hi; f++)
        if (!(p->perm[f] = dp_calloc((size_t)p->counts[f] + 1, sizeof(int64_t), "sample order",
                                     err))) {
            plan_free(p);
            return -1;
        }
    return 0;
}

int plan_set_ties(dp_plan *p, int ties, dp_err *err)
{
    if (ties != PLAN_TIES_LOWER && ties != PLAN_TIES_SPREAD)
        return dp_fail(err, "data order: unknown rule %d for samples due at the same time", ties);
    if (ties == p->ties)
        return 0;
    p->ties = ties;
    return build_cursors(p, err);
}

void plan_free(dp_plan *p)
{
    for (int f = 0; p->perm && f < p->nfiles; f++)
        free(p->perm[f]);
    free(p->perm);
    free(p->counts);
    free(p->first);
    free(p->cursor);
    memset(p, 0, sizeof *p);
}

void plan_epoch(dp_plan *p, long epoch)
{
    if (epoch == p->epoch)
        return;
    for (int f = p->file_lo; f < p->file_hi; f++) {
        for (int64_t i = 0; i < p->counts[f]; i++)
            p->perm[f][i] = i;
        if (p->shuffle) {
            dp_rng r;
            rng_seed(&r, p->seed, (uint64_t)epoch + 1, SHUFFLE_STREAM + (uint64_t)f);
            rng_shuffle(&r, p->perm[f], p->counts[f]);
        }
    }
    p->epoch = epoch;
}

void plan_samples(const dp_plan *p, long t, int slot0, int slot1, int64_t *out)
{
    int64_t within;
    int f = file_of_slot(p, t, slot0, &within);
    int64_t left = p->cursor[(size_t)(t + 1) * p->nfiles + f] - within; /* in file f */
    for (int s = slot0; s < slot1; s++) {
        while (left == 0) { /* on to the next file with a share in this step */
            f++;
            within = p->cursor[(size_t)t * p->nfiles + f];
            left = p->cursor[(size_t)(t + 1) * p->nfiles + f] - within;
        }
        out[s - slot0] = p->first[f] + p->perm[f][within++];
        left--;
    }
}
