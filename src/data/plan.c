#include "dptrain/data/plan.h"

#include <math.h>
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

/* The slots of step t: positions [tB, min(N, (t + 1)B)) of the interleaving. */
static int step_slots(const dp_plan *p, long t)
{
    const int64_t end = (int64_t)(t + 1) * p->batch;
    return (int)((end < p->total ? end : p->total) - (int64_t)t * p->batch);
}

int plan_group_slot(const dp_plan *p, long t, int j)
{
    group_place g;
    return place_group(p, t, j, &g) == 0 ? (int)g.slot : step_slots(p, t); /* past the last */
}

int plan_group_size(const dp_plan *p, long t, int j)
{
    group_place g;
    return place_group(p, t, j, &g) == 0 ? (int)g.size : 0;
}

/* The boundary of step t's groups where the files' split puts the start of rank r's part
 * (its share of the files laid end to end); `groups` for r = ranks. */
static int64_t files_boundary(const dp_plan *p, long t, int r, int64_t groups)
{
    return r == p->ranks ? groups
                         : groups_before(p, t, (int64_t)((__int128)p->total * r / p->ranks));
}

/* The groups and slots of step t before each file: gs[f], ss[f] for f = 0..nfiles. */
static void step_prefix(const dp_plan *p, long t, int64_t *gs, int64_t *ss)
{
    gs[0] = ss[0] = 0;
    for (int f = 0; f < p->nfiles; f++) {
        int64_t q = quota(p, t, f);
        gs[f + 1] = gs[f] + groups_of(p, q);
        ss[f + 1] = ss[f] + q;
    }
}

/* The first slot of group g (the step's slot count for g past the last group). */
static int64_t slot_of(const dp_plan *p, const int64_t *gs, const int64_t *ss, int64_t g)
{
    const int F = p->nfiles;
    if (g >= gs[F])
        return ss[F];
    int a = 0, b = F - 1; /* the file f with gs[f] <= g < gs[f + 1] */
    while (a < b) {
        int m = (a + b + 1) / 2;
        if (gs[m] <= g)
            a = m;
        else
            b = m - 1;
    }
    int64_t j = g - gs[a], n = gs[a + 1] - gs[a], q = ss[a + 1] - ss[a];
    return ss[a] + j * (q / n) + (j < q % n ? j : q % n);
}

/* The files rank `rank` holds: those its part of the files laid end to end overlaps,
 * widened by p->reach on either side. */
static void held_files(const dp_plan *p, int rank, int *lo, int *hi)
{
    int64_t a = (int64_t)((__int128)p->total * rank / p->ranks);
    int64_t b = (int64_t)((__int128)p->total * (rank + 1) / p->ranks);
    *lo = *hi = 0;
    if (b <= a)
        return;
    int f = 0;
    while (p->first[f] + p->counts[f] <= a)
        f++;
    *lo = f;
    while (f < p->nfiles && p->first[f] < b)
        f++;
    *hi = f;
    *lo = *lo - p->reach > 0 ? *lo - p->reach : 0;
    *hi = *hi + p->reach < p->nfiles ? *hi + p->reach : p->nfiles;
}

/* The first group boundary g in [a, z] whose slot is at least x (z if none). */
static int64_t first_at_least(const dp_plan *p, const int64_t *gs, const int64_t *ss, int64_t a,
                              int64_t z, double x)
{
    while (a < z) {
        int64_t m = (a + z) / 2;
        if ((double)slot_of(p, gs, ss, m) >= x)
            z = m;
        else
            a = m + 1;
    }
    return a;
}

/* Can every rank's share take at most T at its speed (slots per unit of time), each rank
 * computing only groups of the files it holds? From the last rank back, each starts as
 * early as T allows, but not before its files, and ends where the next one starts; that
 * leaves the most to the ranks before it, so this finds a split whenever one exists. The
 * earliest starts into e[ranks + 1]. */
static int earliest_starts(const dp_plan *p, const int64_t *gs, const int64_t *ss, double T,
                           int64_t *e)
{
    const int P = p->ranks;
    e[P] = gs[p->nfiles];
    for (int r = P - 1; r >= 0; r--) {
        if (e[r + 1] > gs[p->held[2 * r + 1]])
            return 0; /* rank r cannot reach where rank r + 1 must start */
        const double from = (double)slot_of(p, gs, ss, e[r + 1]) - T * p->speed[r];
        e[r] = first_at_least(p, gs, ss, gs[p->held[2 * r]], e[r + 1], from);
    }
    return e[0] == 0;
}

/* The split by speeds into p->bounds[ranks + 1]. First the shortest time T in which the
 * slowest share can be done (bisecting between 0 and the files' split's, to 2^-40 of it);
 * then, rank by rank, the boundary nearest to where the speeds put it (the slots times the
 * speeds of the ranks before it over all speeds) among those that keep every share within
 * T and within the files its rank holds. So among the fastest splits, the one closest to
 * proportional: equal speeds give the files' split where it is proportional. */
static void speed_split(const dp_plan *p, long t, const int64_t *gs, const int64_t *ss)
{
    const int P = p->ranks;
    int64_t *b = p->bounds, *e = p->bounds + P + 1;
    double hi = 0.0, all = 0.0; /* the files' split's slowest share: a split that exists */
    for (int r = 0; r <= P; r++) {
        b[r] = files_boundary(p, t, r, gs[p->nfiles]);
        if (r > 0) {
            const double T = (double)(slot_of(p, gs, ss, b[r]) - slot_of(p, gs, ss, b[r - 1])) /
                             p->speed[r - 1];
            hi = T > hi ? T : hi;
            all += p->speed[r - 1];
        }
    }
    if (!earliest_starts(p, gs, ss, hi, e))
        return; /* cannot be; the files' split stays */
    double lo = 0.0;
    for (int i = 0; i < 40; i++) {
        const double mid = 0.5 * (lo + hi);
        if (earliest_starts(p, gs, ss, mid, e))
            hi = mid;
        else
            lo = mid;
    }
    earliest_starts(p, gs, ss, hi, e);
    double below = 0.0;
    for (int r = 0; r + 1 < P; r++) {
        below += p->speed[r];
        const double x = (double)ss[p->nfiles] * below / all;
        const double room = (double)slot_of(p, gs, ss, b[r]) + hi * p->speed[r];
        const int64_t lo_g = e[r + 1] > b[r] ? e[r + 1] : b[r];
        int64_t hi_g = first_at_least(p, gs, ss, lo_g, gs[p->held[2 * r + 1]], room);
        if (hi_g > lo_g && (double)slot_of(p, gs, ss, hi_g) > room)
            hi_g--; /* the last boundary within the room */
        int64_t g = first_at_least(p, gs, ss, lo_g, hi_g, x); /* nearest to x in [lo, hi] */
        if (g > lo_g && x - (double)slot_of(p, gs, ss, g - 1) <= (double)slot_of(p, gs, ss, g) - x)
            g--;
        b[r + 1] = g;
    }
    b[P] = gs[p->nfiles];
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
    group_place g;
    if (p->balanced) {
        int64_t *gs = p->prefix, *ss = p->prefix + p->nfiles + 1;
        step_prefix(p, t, gs, ss);
        speed_split(p, t, gs, ss);
        s->group0 = (int)p->bounds[rank];
        s->group1 = (int)p->bounds[rank + 1];
        s->slot0 = (int)slot_of(p, gs, ss, s->group0);
        s->slot1 = (int)slot_of(p, gs, ss, s->group1);
        return;
    }
    s->group0 = (int)files_boundary(p, t, rank, s->groups);
    s->group1 = (int)files_boundary(p, t, rank + 1, s->groups);
    s->slot0 = place_group(p, t, s->group0, &g) == 0 ? (int)g.slot : s->slots;
    s->slot1 = place_group(p, t, s->group1, &g) == 0 ? (int)g.slot : s->slots;
}

void plan_share_most(const dp_plan *p, long t, int rank, dp_step_share *s)
{
    if (!p->prefix) { /* nothing held beyond the part: its share is all it can get */
        plan_share(p, t, rank, s);
        return;
    }
    int64_t *gs = p->prefix, *ss = p->prefix + p->nfiles + 1;
    step_prefix(p, t, gs, ss);
    const int lo = p->held[2 * rank], hi = p->held[2 * rank + 1];
    s->slots = (int)ss[p->nfiles];
    s->groups = (int)gs[p->nfiles];
    s->group0 = (int)gs[lo];
    s->group1 = (int)gs[hi];
    s->slot0 = (int)ss[lo];
    s->slot1 = (int)ss[hi];
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

/* This rank's part of the files laid end to end, and the files it holds. */
static void owned_files(dp_plan *p)
{
    p->owned_lo = (int64_t)((__int128)p->total * p->rank / p->ranks);
    p->owned_hi = (int64_t)((__int128)p->total * (p->rank + 1) / p->ranks);
    held_files(p, p->rank, &p->file_lo, &p->file_hi);
}

/* An order for each held file that has none yet. */
static int alloc_orders(dp_plan *p, dp_err *err)
{
    for (int f = p->file_lo; f < p->file_hi; f++)
        if (!p->perm[f] && !(p->perm[f] = dp_calloc((size_t)p->counts[f] + 1, sizeof(int64_t),
                                                    "sample order", err)))
            return -1;
    return 0;
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
    if (alloc_orders(p, err)) {
        plan_free(p);
        return -1;
    }
    return 0;
}

int plan_hold_neighbours(dp_plan *p, dp_err *err)
{
    if (p->reach == 1)
        return 0;
    p->speed = dp_calloc((size_t)p->ranks, sizeof(double), "data plan", err);
    p->prefix = dp_calloc(2 * ((size_t)p->nfiles + 1), sizeof(int64_t), "data plan", err);
    p->held = dp_calloc(2 * (size_t)p->ranks, sizeof(int), "data plan", err);
    p->bounds = dp_calloc(2 * ((size_t)p->ranks + 1), sizeof(int64_t), "data plan", err);
    if (!p->speed || !p->prefix || !p->held || !p->bounds)
        return -1;
    p->reach = 1;
    for (int r = 0; r < p->ranks; r++)
        held_files(p, r, &p->held[2 * r], &p->held[2 * r + 1]);
    owned_files(p);
    p->epoch = -1; /* the orders of the files now held are drawn too */
    return alloc_orders(p, err);
}

void plan_set_speeds(dp_plan *p, const double *speed)
{
    int ok = speed && p->speed && p->ranks > 1;
    for (int r = 0; ok && r < p->ranks; r++)
        ok = isfinite(speed[r]) && speed[r] > 0.0;
    for (int r = 0; ok && r < p->ranks; r++)
        p->speed[r] = speed[r];
    p->balanced = ok;
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
    free(p->speed);
    free(p->prefix);
    free(p->held);
    free(p->bounds);
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
