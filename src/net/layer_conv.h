/* layer_conv: what another kind needs of a conv layer it absorbs (layer_pool.c does conv,
 * relu and maxpool in one pass). Internal to the net library. */
#ifndef DPTRAIN_NET_LAYER_CONV_H
#define DPTRAIN_NET_LAYER_CONV_H

#include "dptrain/net/layer_kind.h"
#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"

/* Whether L is a conv layer. */
int layer_is_conv(const dp_layer *L);
/* The conv layer L's shape for a batch of B. */
dp_conv_shape layer_conv_shape(const dp_layer *L, int B);
/* The per-thread scratch of `threads` threads for the conv layer L done with the layers
 * after it (room for a sample's conv output or its gradient). */
size_t layer_conv_fused_scratch_bytes(const dp_layer *L, int threads);
/* The col the conv functions get for io's conv of shape s, whose work is `work`: io->in
 * when col holds the inputs (conv2d_col_is_input), else work. */
float *layer_conv_col(const dp_layer_io *io, const dp_conv_shape *s, void *work);

#endif
