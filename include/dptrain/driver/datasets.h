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

/* need_samples: every rank must get at least one sample (training); otherwise a rank's
 * slice may be empty (evaluation). Messages start with `option` and the path. */
int datasets_load_share(const dp_comm *c, const char *spec, const char *option, int need_samples,
                        dp_filelist *fl, dp_dataset *ds, dp_err *err);

/* The number of classes: the files' num_classes attribute, or the largest label over all
 * ranks + 1 when that is larger. Collective. */
int datasets_num_classes(const dp_comm *c, const dp_filelist *fl, const dp_dataset *ds);

#endif
