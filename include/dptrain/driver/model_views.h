/* model_views: the model as the other parts see it. The optimizer sees parameter tensors
 * (optim.h's dp_param_view), the gradient synchroniser sees segments of the gradient
 * buffer in backward order (gradsync.h), and --freeze/--reinit name layers. Neither optim
 * nor dist knows what a layer is; this is where the driver translates. */
#ifndef DPTRAIN_MODEL_VIEWS_H
#define DPTRAIN_MODEL_VIEWS_H

#include <stdint.h>

#include "dptrain/dist/gradsync.h"
#include "dptrain/net/model.h"
#include "dptrain/optim/optim.h"
#include "dptrain/util/error.h"

/* --reinit (freeze = 0: re-draw the layers' parameters from `seed`) or --freeze
 * (freeze = 1): a comma list of layer names with parameters; `option` names the option
 * in messages, which list the layers there are. */
int model_apply_layer_list(dp_model *m, const char *list, const char *option, int freeze,
                           uint64_t seed, dp_err *err);

/* One view per parameter tensor (trainable unless its layer is frozen); caller frees. */
dp_param_view *model_param_views(const dp_model *m, dp_err *err);

/* The trainable layers' parameters, last layer first, each ready after its layer's
 * backward (id = layer index); *n segments; caller frees. */
dp_grad_segment *model_grad_segments(const dp_model *m, int *n, dp_err *err);

#endif
