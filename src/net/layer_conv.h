/* layer_conv: what another kind needs of a conv layer it absorbs (layer_pool.c does conv,
 * relu and maxpool in one pass). Internal to the net library. */
#ifndef DPTRAIN_NET_LAYER_CONV_H
#define DPTRAIN_NET_LAYER_CONV_H

#include "dptrain/net/layers.h"
#include "dptrain/net/model.h"

/* Whether L is a conv layer. */
int layer_is_conv(const dp_layer *L);
/* The conv layer L's shape for a batch of B. */
dp_conv_shape layer_conv_shape(const dp_layer *L, int B);

#endif
