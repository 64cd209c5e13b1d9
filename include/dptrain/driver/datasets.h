/* datasets: the driver's data set-up, shared by dptrain and dptrain-eval.
 *
 * Opens the files named by an option (--train, --test, --data), loads this rank's share
 * (data.h's filelist_share) and agrees across ranks, so that a bad file on one rank ends
 * every rank with the same message. Decides the number of classes from the data (or
 * --classes) and checks every label against it, naming the file, so that the loss never
 * reads past the logits. Collective: every rank calls these with the same arguments. */
#ifndef DPTRAIN_DATASETS_H
#define DPTRAIN_DATASETS_H

#include "dptrain/data/data.h"
#include "dptrain/dist/comm.h"
#include "dptrain/util/error.h"

/* Open the files (agreed); messages start with `option`. */
int datasets_open(const dp_comm *c, const char *spec, const char *option, dp_filelist *fl,
                  dp_err *err);
/* Load samples [begin, end) of the files laid end to end (nothing when empty); agreed. */
int datasets_load_range(const dp_comm *c, const dp_filelist *fl, int64_t begin, int64_t end,
                        const char *option, dp_dataset *ds, dp_err *err);

/* Open and load this rank's contiguous slice (filelist_share). need_samples: every rank
 * must get at least one sample; otherwise a rank's slice may be empty (evaluation).
 * Messages start with `option` and the path. */
int datasets_load_share(const dp_comm *c, const char *spec, const char *option, int need_samples,
                        dp_filelist *fl, dp_dataset *ds, dp_err *err);

/* The number of classes: the files' num_classes attribute, or the largest label over all
 * ranks + 1 when that is larger. Collective. */
int datasets_num_classes(const dp_comm *c, const dp_filelist *fl, const dp_dataset *ds);

/* Samples per label over all ranks (counts[256]), each rank counting the samples of global
 * index [lo, hi) it holds (its own part: ranks may hold the same file). Collective. */
void datasets_label_counts(const dp_dataset *ds, int64_t lo, int64_t hi, double counts[256]);

/* Every label of the data set below `classes`; else refused, naming the option, the file,
 * the sample, the label and the classes (`why`: where the classes came from). Agreed. */
int datasets_check_labels(const dp_comm *c, const dp_filelist *fl, const dp_dataset *ds,
                          int classes, const char *option, const char *why, dp_err *err);

/* What decides the model's classes. */
typedef struct {
    const dp_filelist *train_files;
    const dp_dataset *train;
    int64_t train_lo, train_hi; /* this rank's own part of the training set, for the counts */
    const char *train_spec;
    const dp_filelist *test_files; /* NULL: no test set */
    const char *test_spec;
    int requested; /* --classes N, 0: from the data */
} dp_class_sources;

/* The model's classes: --classes N (at least every num_classes attribute), else the
 * training data's num_classes attribute or largest label + 1. Without --classes, refused
 * (naming the label counts) when classes inferred from the labels have no sample, or when
 * the test set declares another number. Agreed. Labels are checked separately
 * (datasets_check_labels). */
int datasets_classes(const dp_comm *c, const dp_class_sources *in, int *classes, dp_err *err);

#endif
