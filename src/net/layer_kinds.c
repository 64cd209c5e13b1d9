/* layer_kinds: the table of layer kinds. A kind lives in its own file
 * (src/net/layer_<kind>.c, found by the build) and is listed here once. */
#include <string.h>

#include "dptrain/net/layer_kind.h"

#define LAYER_KINDS(X) X(conv) X(maxpool) X(relu) X(fc) X(dropout)

#define DECLARE(k) extern const dp_layer_kind layer_##k;
LAYER_KINDS(DECLARE)
#define ADDRESS(k) &layer_##k,
static const dp_layer_kind *const kinds[] = {LAYER_KINDS(ADDRESS)};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))
_Static_assert(sizeof kinds / sizeof kinds[0] <= DP_LAYER_MAX_KINDS, "raise DP_LAYER_MAX_KINDS");

const dp_layer_kind *layer_kind_find(const char *name)
{
    for (int i = 0; i < NKINDS; i++) {
        if (strcmp(kinds[i]->name, name) == 0)
            return kinds[i];
        for (int j = 0; j < 3 && kinds[i]->aliases[j]; j++)
            if (strcmp(kinds[i]->aliases[j], name) == 0)
                return kinds[i];
    }
    return NULL;
}

int layer_kind_count(void) { return NKINDS; }

const dp_layer_kind *layer_kind_at(int i) { return kinds[i]; }
