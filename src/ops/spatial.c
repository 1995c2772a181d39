/* spatial.c - the spatial attributes shared by the conv and pool families:
 * reading kernel/stride/dilation/pad attributes and auto_pad, SAME_* padding,
 * and overflow-checked geometry sizes (see spatial.h). */
#include "ops/spatial.h"

#include <string.h>

int kn_spatial_ints(kn_op_ctx *c, const char *name, int n, int64_t def, int64_t lo, int64_t *out)
{
    const int64_t *v;
    int cnt = kn_attr_ints(c->node, name, &v);
    for (int i = 0; i < n; i++)
        out[i] = def;
    if (cnt < 0)
        return KN_OK;
    if (cnt != n)
        return kn_fail(c->err, KN_ERR_ARG, "attribute '%s' has %d values, expected %d", name,
                       cnt, n);
    for (int i = 0; i < n; i++) {
        if (v[i] < lo || v[i] > KN_SPATIAL_ATTR_MAX)
            return kn_fail(c->err, KN_ERR_ARG, "attribute '%s' has invalid value %lld", name,
                           (long long)v[i]);
        out[i] = v[i];
    }
    return KN_OK;
}

int kn_read_auto_pad(kn_op_ctx *c, kn_auto_pad *ap)
{
    const char *s = kn_attr_string(c->node, "auto_pad", "NOTSET");
    if (!strcmp(s, "NOTSET") || !*s)
        *ap = KN_PAD_NOTSET;
    else if (!strcmp(s, "SAME_UPPER"))
        *ap = KN_PAD_SAME_UPPER;
    else if (!strcmp(s, "SAME_LOWER"))
        *ap = KN_PAD_SAME_LOWER;
    else if (!strcmp(s, "VALID"))
        *ap = KN_PAD_VALID;
    else
        return kn_fail(c->err, KN_ERR_ARG, "auto_pad '%s' is not valid", s);
    return KN_OK;
}

void kn_split_pads(int64_t total, bool upper, int64_t *pad_b, int64_t *pad_e)
{
    if (total < 0)
        total = 0;
    *pad_b = upper ? total / 2 : total - total / 2;
    *pad_e = total - *pad_b;
}

int64_t kn_same_pads(int64_t in, int64_t stride, int64_t ext, bool upper, int64_t *pad_b,
                     int64_t *pad_e)
{
    int64_t out = (in + stride - 1) / stride;
    kn_split_pads((out - 1) * stride + ext - in, upper, pad_b, pad_e);
    return out;
}

int kn_spatial_count_axis(kn_op_ctx *c, kn_spatial_geom *g, int i)
{
    if (!kn_mul_ok(g->in_size, g->in[i], &g->in_size) ||
        !kn_mul_ok(g->out_size, g->out[i], &g->out_size) ||
        !kn_mul_ok(g->k_size, g->k[i], &g->k_size))
        return kn_fail(c->err, KN_ERR_ARG, "%s sizes overflow", c->node->op_type);
    return KN_OK;
}
