/* spec: the model spec text -> layers (kind, arguments, canonical text). Private to the
 * net; the grammar is in model.h, the kinds and their arguments in layer_kinds.c. */
#ifndef DPTRAIN_NET_SPEC_H
#define DPTRAIN_NET_SPEC_H

#include "dptrain/net/model.h"

/* Parse `spec` into m->layers[0 .. m->nlayers) (m->layers holds DP_MODEL_MAX_LAYERS);
 * shapes are left to the model. Messages name the layer by position. */
int spec_parse(dp_model *m, const char *spec, dp_err *err);

#endif
