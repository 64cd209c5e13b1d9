/* weights: the model's parameters as an HDF5 file PyTorch users can read.
 *
 * One float32 dataset per parameter at the root of the file, named by its PyTorch
 * state_dict key ("conv1.weight" [out, in, kh, kw], "fc1.bias" [out], ...), plus root
 * attributes `dptrain_model` (canonical spec), `dptrain_format` (1), and how the run that
 * wrote them computed: `dptrain_precision` ("fp32" or "bf16"), `dptrain_conv_algorithm`
 * ("direct" or "winograd") and its input normalisation, `dptrain_normalize` (0 or 1),
 * `dptrain_normalize_mean` and `dptrain_normalize_std`. Files are written
 * to PATH.tmp, flushed and renamed, so an existing file is never left half-written.
 * Loading checks that every parameter is present with exactly the model's shape and
 * ignores other datasets (so a checkpoint or a PyTorch export with extras loads too). */
#ifndef DPTRAIN_WEIGHTS_H
#define DPTRAIN_WEIGHTS_H

#include "dptrain/util/error.h"
#include "dptrain/net/model.h"

/* How the run that wrote a weights file computed: the model's spec, the precision, the
 * convolutions' algorithm ("" where a file does not say) and the input normalisation
 * (normalize -1 where a file does not say, else 0 or 1 with mean and std). */
typedef struct {
    char model[2048];
    char precision[16];
    char conv_algorithm[16];
    int normalize;
    double mean, std;
} dp_weights_info;

/* info: what to record beside the weights (its model is m's spec whatever it says), or
 * NULL to record only the model. */
int weights_save(const dp_model *m, const char *path, const dp_weights_info *info,
                 dp_err *err);
int weights_load(dp_model *m, const char *path, dp_err *err);

/* What a weights file records of the run that wrote it (a PyTorch export: nothing; a
 * checkpoint from before the root attributes: what its /dptrain group says). Fails on a
 * file that cannot be read, or an attribute of another type or size than expected. */
int weights_info(const char *path, dp_weights_info *info, dp_err *err);

#endif
