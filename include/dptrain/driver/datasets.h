/* datasets: the driver's data set-up, shared by dptrain and dptrain-eval.
 *
 * Opens the files named by an option (--train, --test, --data), loads this rank's share
 * (data.h's filelist_share) and agrees across ranks, so that a bad file on one rank ends
 * every rank with the same message. Collective: every rank calls it with the same spec. */
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
 * must get at least one sample; otherwise a rank's slice may be empty (evaluation). */
int datasets_load_share(const dp_comm *c, const char *spec, const char *option, int need_samples,
                        dp_filelist *fl, dp_dataset *ds, dp_err *err);

/* The number of classes: the files' num_classes attribute, or the largest label over all
 * ranks + 1 when that is larger. Collective. */
int datasets_num_classes(const dp_comm *c, const dp_filelist *fl, const dp_dataset *ds);

#endif
