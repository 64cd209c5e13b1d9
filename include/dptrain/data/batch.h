/* batch: turning stored samples (uint8, as in the shards) into a network input, shared by
 * dptrain (training and test batches) and dptrain-eval so both feed the same floats.
 *
 * A pixel becomes pixel / 255 (torchvision's ToTensor), then (v - mean) / std when
 * normalising. The caller owns every buffer. */
#ifndef DPTRAIN_BATCH_H
#define DPTRAIN_BATCH_H

#include <stdint.h>

#include "dptrain/data/data.h"

typedef struct {
    int normalize;
    float mean, std;
} dp_input_norm;

/* Samples idx[0..B) of ds (indices into ds), or ds's samples first..first+B when idx is
 * NULL, into x [B, C*H*W] and labels [B]. */
void batch_fill(float *x, uint8_t *labels, const dp_dataset *ds, const int64_t *idx,
                int64_t first, int B, const dp_input_norm *norm);

#endif
