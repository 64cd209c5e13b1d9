/* weights: the model's parameters as an HDF5 file PyTorch users can read.
 *
 * One float32 dataset per parameter at the root of the file, named by its PyTorch
 * state_dict key ("conv1.weight" [out, in, kh, kw], "fc1.bias" [out], ...), plus root
 * attributes `dptrain_model` (canonical spec), `dptrain_format` (1), and the arithmetic
 * of the run that wrote them: `dptrain_precision` ("fp32" or "bf16") and
 * `dptrain_conv_algorithm` ("direct" or "winograd"), as selected (isa.h). Files are written
 * to PATH.tmp, flushed and renamed, so an existing file is never left half-written.
 * Loading checks that every parameter is present with exactly the model's shape and
 * ignores other datasets (so a checkpoint or a PyTorch export with extras loads too). */
#ifndef DPTRAIN_WEIGHTS_H
#define DPTRAIN_WEIGHTS_H

#include "dptrain/util/error.h"
#include "dptrain/net/model.h"

int weights_save(const dp_model *m, const char *path, dp_err *err);
int weights_load(dp_model *m, const char *path, dp_err *err);

/* What a weights file records of the run that wrote it, each "" where the file does not
 * say (a PyTorch export, or a file from before the attribute): the model's spec, the
 * precision and the convolutions' algorithm (a checkpoint's /dptrain group says the last
 * two where its root does not). Fails on a file that cannot be read, or an attribute that
 * is not a string of the size expected. */
typedef struct {
    char model[2048];
    char precision[16];
    char conv_algorithm[16];
} dp_weights_info;
int weights_info(const char *path, dp_weights_info *info, dp_err *err);

#endif
