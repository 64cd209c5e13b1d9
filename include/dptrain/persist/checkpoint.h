/* checkpoint: everything a run needs to go on exactly where it stopped, in one HDF5 file
 * per checkpoint: the file format (when to write one is the driver's policy).
 *
 * File DIR/ckpt-SSSSSSSS.h5 (S = optimizer steps done, zero-padded):
 *   /<param>           the weights, exactly as a weights file (weights.h), so --init-from,
 *                      dptrain-eval and PyTorch read a checkpoint as they read weights
 *   /dptrain/optimizer/<state>  the optimizer's named state: float32 tensors (SGD:
 *                      "conv1.weight.momentum_buffer", ...) and int64 counters (AdamW,
 *                      LAMB: "conv1.weight.step"), attribute kind ("sgd", "adamw", ...);
 *                      resuming with another kind is refused
 *   /dptrain/gradsync_exponents  int32 [tensors]: the exact gradient sum's bounds (gradsync.h)
 *   /dptrain/train_file_samples  int64 [files]: samples per training file (names in the
 *                      attribute train_file_names, one per line)
 *   /dptrain attribute run_id: the identity of the run that wrote it (a fresh run draws
 *                      one, a resumed run keeps the one it resumed); pruning deletes only
 *                      the writing run's own checkpoints. Absent in older files: read as ""
 *   /dptrain attributes: format, complete, step, steps_per_epoch, total_steps, ranks,
 *                      threads, the hyperparameters, model spec, data description and
 *                      checksum (see dp_ckpt_meta)
 * A checkpoint is written to DIR/.ckpt-S.h5.tmp, `complete` = 1 is set last, the file is
 * flushed and fsync'ed, renamed into place, and the directory is fsync'ed; only files
 * with the final name and complete = 1 are ever resumed from, so a crash (kill -9) at
 * any point leaves the earlier checkpoints as they were.
 *
 * Random state: every random number dptrain draws comes from a counter-based stream
 * (rng.h) keyed by the seed and counters: parameter i for initialisation, (epoch, file)
 * for the data order (plan.h), (step, sample, layer) for dropout. The seed and the step
 * are therefore the complete random state. Nothing in a checkpoint depends on the rank
 * count, so any number of ranks resumes it.
 *
 * Only rank 0 writes. Nothing here calls MPI. dp_ckpt_meta owns sync_state when read
 * (checkpoint_meta_free). */
#ifndef DPTRAIN_CHECKPOINT_H
#define DPTRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/util/error.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"

#define DP_CKPT_FORMAT 2
#define DP_RUN_ID_LEN 24 /* a run identity: 16 hex digits and the terminating 0 fit */

typedef struct {
    int format;
    long step;             /* optimizer steps done */
    long steps_per_epoch, total_steps; /* total_steps: the schedule's (cosine) length */
    int ranks, threads;
    int group_size;        /* --group-size: the groups of the exact gradient sum */
    int ties;              /* the data order's rule for ties (plan.h); PLAN_TIES_LOWER in
                              files written before it was recorded */
    int32_t *sync_state;   /* [nsync]: the gradient sum's per-tensor exponent bounds */
    int nsync;
    /* configuration */
    char model_spec[2048];
    int global_batch;
    uint64_t seed;
    int shuffle;
    double lr, momentum, weight_decay, warmup_epochs, step_epochs, gamma;
    int nesterov, schedule, epochs;
    long steps;            /* --steps, -1 when not given */
    int normalize;
    double mean, std;
    char train[2048];      /* --train as given */
    int64_t train_total;   /* samples in the training set */
    int c, h, w, num_classes, nfiles;
    uint64_t data_checksum; /* data_checksum_sample over every sample, summed */
    char **file_paths;     /* [nfiles] when writing (borrowed, not read back) */
    const int64_t *file_counts; /* [nfiles] samples per file, when writing (borrowed) */
    char frozen[256];      /* --freeze as given, "" when none */
    char optimizer[16];    /* --optimizer; "sgd" for files written before it existed */
    char precision[8];     /* --precision; "fp32" for files written before it existed */
    char conv_algorithm[16]; /* --conv-algorithm; "direct" for files written before it */
    double beta1, beta2, eps, trust_coefficient; /* what the optimizer reads (cli.h) */
    int exclude_bias;
    char run_id[DP_RUN_ID_LEN]; /* the writing run's identity; "" in files older than it */
    int64_t *saved_counts; /* [nfiles] samples per training file, when read (owned) */
} dp_ckpt_meta;

void checkpoint_meta_free(dp_ckpt_meta *meta);

/* A hash of sample `index` (its global index, image bytes and label) such that the
 * wrapping sum over all samples does not depend on how they are split over ranks. */
uint64_t data_checksum_sample(int64_t index, const uint8_t *image, size_t bytes, uint8_t label);

/* Write DIR/ckpt-<step>.h5 atomically (see above), then delete all but the newest `keep`
 * complete checkpoints of this run (meta->run_id; other runs' are never touched) and any
 * stale temporary files in DIR. `written` receives the path. Rank 0 only. */
int checkpoint_write(const char *dir, const dp_model *m, const dp_optimizer *opt,
                     const dp_ckpt_meta *meta, int keep, char *written, size_t len, dp_err *err);

/* The newest complete checkpoint in DIR whose checksums all match (every dataset is read
 * once to check them): 0 with its path, 1 when DIR holds none or does not exist (the
 * message says what was skipped), -1 when DIR cannot be read. Where a newer complete
 * checkpoint was damaged, damaged[damaged_len] (when not NULL) names it and why, else it
 * is "". */
int checkpoint_find_latest(const char *dir, char *path, size_t len, char *damaged,
                           size_t damaged_len, dp_err *err);

/* One complete checkpoint in a directory. */
typedef struct {
    long step;
    char name[256];              /* ckpt-SSSSSSSS.h5 */
    char run_id[DP_RUN_ID_LEN]; /* "" for files older than run identities */
} dp_ckpt_entry;

/* The complete checkpoints in DIR, newest first (*out malloc'ed, *count of them; files
 * with a checkpoint's name that are not complete checkpoints are left out). */
int checkpoint_list(const char *dir, dp_ckpt_entry **out, int *count, dp_err *err);

/* Read the metadata (allocates meta->sync_state and meta->saved_counts; checkpoint_meta_free). */
int checkpoint_read_meta(const char *path, dp_ckpt_meta *meta, dp_err *err);
/* Read the weights into m and the optimizer's state tensors, by name, into opt (refused
 * when the checkpoint was written by another kind of optimizer). */
int checkpoint_read_state(const char *path, dp_model *m, dp_optimizer *opt, dp_err *err);

#endif
