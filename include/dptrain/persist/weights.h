/* weights: the model's parameters as an HDF5 file PyTorch users can read.
 *
 * One float32 dataset per parameter at the root of the file, named by its PyTorch
 * state_dict key ("conv1.weight" [out, in, kh, kw], "fc1.bias" [out], ...), plus root
 * attributes `dptrain_model` (canonical spec) and `dptrain_format` (1). Files are written
 * to PATH.tmp, flushed and renamed, so an existing file is never left half-written.
 * Loading checks that every parameter is present with exactly the model's shape and
 * ignores other datasets (so a checkpoint or a PyTorch export with extras loads too). */
#ifndef DPTRAIN_WEIGHTS_H
#define DPTRAIN_WEIGHTS_H

#include "dptrain/util/error.h"
#include "dptrain/net/model.h"

int weights_save(const dp_model *m, const char *path, dp_err *err);
int weights_load(dp_model *m, const char *path, dp_err *err);

#endif
