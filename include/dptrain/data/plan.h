/* plan: the order in which an epoch visits the training set, and which rank computes
 * what, such that the training does not depend on the number of ranks.
 *
 * The training set is its files, in order (file f holds n_f samples; N in all). Each
 * epoch:
 *  - every file's samples are permuted from (seed, epoch, file) (identity with
 *    --no-shuffle);
 *  - the epoch is ceil(N / B) steps; step t takes the positions [tB, min(N, (t+1)B)) of
 *    one fixed interleaving of the files in which file f's i-th sample sits at its
 *    "ideal time" (i + 1/2) N / n_f (ties: PLAN_TIES_SPREAD, below). So every batch draws
 *    from every file in proportion to its size (within one sample), every sample is used
 *    exactly once per epoch, and the last step of an epoch takes what is left
 *    (N mod B samples, if any);
 *  - the step's slots are ordered by file (file 0's samples first), each file's in its
 *    permuted order; each file's share q of the step is cut into ceil(q / group) groups
 *    of balanced sizes (at most `group` slots). A group is the unit of the exact
 *    gradient sum (gradsync.h): its partial gradient is computed in float as one piece,
 *    and the groups are summed exactly.
 * None of this depends on the rank count P. The ranks split each step's groups into
 * contiguous runs: rank r owns the positions [rN/P, (r+1)N/P) of the files laid end to
 * end, and of each file's groups in a step it takes the part in proportion to how much
 * of the file it owns. So a rank loads only the files it owns part of: its N/P samples'
 * files, whole; when P divides the file count exactly its own files; otherwise it shares
 * a file with its neighbour at an end of its part (several ranks share a file when P
 * exceeds the file count).
 *
 * Balancing (plan_hold_neighbours, plan_set_speeds): each rank also holds the file next to
 * its part on either side, and the boundaries between the ranks' runs of groups move
 * towards the ranks' measured speeds, within what each rank holds. The groups, and so the
 * bits, stay the same: only which rank computes a group changes.
 *
 * The plan owns its tables; everything in it is the same on every rank except the
 * per-rank parts, which are computed for the rank it was made for. */
#ifndef DPTRAIN_PLAN_H
#define DPTRAIN_PLAN_H

#include <stdint.h>

#include "dptrain/util/error.h"

#define SHUFFLE_STREAM 0x5348554600000000ull /* "SHUF": the files' permutations */

/* The order of samples of different files due at the same time (equal-sized files: every
 * round). PLAN_TIES_SPREAD, the rule since 2026-12-03: bit-reversed file index (8 files:
 * 0 4 2 6 1 5 3 7), so the extra samples of a step whose batch the file count does not
 * divide fall on files far apart, hence on different ranks: 8 files, batch 100, 2 or 4
 * ranks take equal shares every step. PLAN_TIES_LOWER, the rule before: the lower file
 * first (2 ranks took 52 and 48 samples, in turn), kept for checkpoints written then. */
enum { PLAN_TIES_LOWER = 0, PLAN_TIES_SPREAD = 1 };

typedef struct {
    int nfiles;
    int64_t *counts, *first; /* [nfiles]: samples of file f, index of its first sample */
    int64_t total;           /* N */
    int batch, group;        /* B, the most slots in a group */
    long steps;              /* per epoch: ceil(N / B) */
    int64_t *cursor;         /* [(steps + 1) * nfiles]: file f's samples used before step t */
    int shuffle;
    int ties;                /* PLAN_TIES_* */
    uint64_t seed;
    int rank, ranks;
    int64_t owned_lo, owned_hi; /* this rank's part of the files laid end to end */
    int file_lo, file_hi;     /* the files it overlaps, which it holds: [file_lo, file_hi) */
    long epoch;               /* the epoch the permutations are drawn for, -1: none yet */
    int64_t **perm;           /* [nfiles]: this epoch's order of each held file, else NULL */
    int reach;                /* files held beyond the own part on either side (0 or 1) */
    double *speed;            /* [ranks]: relative speeds the split follows; NULL: none */
    int balanced;             /* plan_set_speeds gave speeds: the split follows them */
    int64_t *prefix;          /* [2 * (nfiles + 1)]: a step's groups and slots before file f */
    int *held;                /* [2 * ranks]: the files each rank holds, [lo, hi) */
    int64_t *bounds;          /* [2 * (ranks + 1)]: the split by speeds of the last step
                                 asked, and scratch */
} dp_plan;

/* The slots of one step that one rank computes. */
typedef struct {
    int slots;       /* samples in the whole global batch of this step */
    int groups;      /* groups in it */
    int group0, group1; /* this rank's groups [group0, group1) */
    int slot0, slot1;   /* and their slots [slot0, slot1) */
} dp_step_share;

int plan_create(dp_plan *p, const int64_t *counts, int nfiles, int batch, int group, int shuffle,
                uint64_t seed, int rank, int ranks, dp_err *err);
void plan_free(dp_plan *p);

/* Rebuild the interleaving under another rule for ties (plan_create takes
 * PLAN_TIES_SPREAD): to resume a checkpoint written under the older rule. */
int plan_set_ties(dp_plan *p, int ties, dp_err *err);

/* Rank r's groups and slots in step t (of any epoch): the split in proportion to the ranks'
 * parts of the files, or, after plan_set_speeds, to their speeds. */
void plan_share(const dp_plan *p, long t, int rank, dp_step_share *s);

/* Hold the file next to this rank's part on either side as well (file_lo, file_hi widen),
 * so that balancing can move groups across the boundaries between the ranks. Before the
 * data is loaded and plan_epoch. */
int plan_hold_neighbours(dp_plan *p, dp_err *err);
/* The split of every later plan_share follows speed[ranks] (anything in proportion to
 * samples per second; the same values on every rank): of the splits in which each rank
 * computes only groups of the files it holds, the one whose slowest share (its samples
 * over its speed) is shortest. NULL, or a speed that is not positive and finite: the
 * split of the parts.
 * Needs plan_hold_neighbours (else the split stays that of the parts). */
void plan_set_speeds(dp_plan *p, const double *speed);
/* The groups and slots of step t in the files rank `rank` holds: no split gives it more. */
void plan_share_most(const dp_plan *p, long t, int rank, dp_step_share *s);

/* Draw this rank's file orders for `epoch` (0-based; nothing to do if already drawn). */
void plan_epoch(dp_plan *p, long epoch);

/* The global sample index (files laid end to end) of slots [slot0, slot1) of step t of
 * the drawn epoch, into out[slot1 - slot0]. Every slot must come from a held file. */
void plan_samples(const dp_plan *p, long t, int slot0, int slot1, int64_t *out);

/* The first slot of group j of step t (the step's slot count for j = its group count). */
int plan_group_slot(const dp_plan *p, long t, int j);
/* The number of slots of group j of step t. */
int plan_group_size(const dp_plan *p, long t, int j);

#endif
