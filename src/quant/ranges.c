/* ranges.c - the table of calibrated activation ranges (quant.h): lookup by value
 * name and release.  Filled by calib.c, read by the static quantizer. */
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

const kn_act_range *kn_act_ranges_find(const kn_act_ranges *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].name && strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

void kn_act_ranges_free(kn_act_ranges *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].name);
    free(r->v);
    r->v = NULL;
    r->n = 0;
}
