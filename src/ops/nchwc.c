/* nchwc.c - the blocked-layout operators, domain "kiln.nchwc" (KN_NCHWC_DOMAIN):
 * ReorderInput (NCHW -> blocked), ReorderOutput (blocked -> NCHW, attribute
 * "channels"), Conv (Conv / FusedConv attributes and inputs X, W, B, Z, with X, Z
 * and Y blocked; with input_nchw = 1, X is an NCHW image with few channels),
 * MaxPool, AveragePool and GlobalAveragePool on blocked tensors, and Add / Mul of
 * a blocked tensor and one of the same shape or of one value per image and
 * channel ([N, Cp, 1, 1]: squeeze-excitation gates).  A blocked tensor has the
 * logical shape [N, Cp, H, W] (Cp = channels rounded up to 16) and is stored
 * [N][Cp/16][H][W][16] with zeros in the padding channels (kernels/nchwc.h).
 * Only the level-all pass src/opt/layout_nchwc.c writes these nodes, and only
 * kiln runs them (`kiln optimize` never writes them). */
#include "ops/op.h"
#include "ops/op_util.h"
#include "ops/spatial.h"

#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "kernels/nchwc.h"

/* ------------------------------------------------------------- checks */

/* x is a float32 4-D tensor whose dim 1 is `channels` padded to the block
 * (channels < 0: any multiple of the block). */
static int check_blocked(kn_op_ctx *c, const kn_tensor *x, int64_t channels, const char *what)
{
    if (x->dtype != KN_F32)
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 4)
        return kn_fail(c->err, KN_ERR_ARG, "%s %s must be 4-D, got rank %d", c->node->op_type,
                       what, x->rank);
    bool ok = channels < 0 ? x->dims[1] % KN_NCHWC_BLOCK == 0
                           : x->dims[1] == kn_nchwc_padded(channels);
    if (!ok)
        return kn_fail(c->err, KN_ERR_ARG, "%s %s has %lld channels, not a blocked count%s",
                       c->node->op_type, what, (long long)x->dims[1],
                       channels < 0 ? "" : " for the weights");
    return KN_OK;
}

/* x is a float32 4-D NCHW tensor of `channels` channels (a stem's input). */
static int check_nchw_input(kn_op_ctx *c, const kn_tensor *x, int64_t channels)
{
    if (x->dtype != KN_F32)
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 4 || x->dims[1] != channels)
        return kn_fail(c->err, KN_ERR_ARG, "blocked Conv NCHW input must be [N, %lld, H, W]",
                       (long long)channels);
    return KN_OK;
}

/* ----------------------------------------------------------- reorders */

static int run_reorder_input(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (x->dtype != KN_F32)
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 4)
        return kn_fail(c->err, KN_ERR_ARG, "ReorderInput input must be 4-D, got rank %d", x->rank);
    int64_t dims[4] = {x->dims[0], kn_nchwc_padded(x->dims[1]), x->dims[2], x->dims[3]};
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 4, dims);
    if (!y)
        return c->err->code;
    kn_nchwc_from_nchw(c->pool, x->data, x->dims[0], x->dims[1], x->dims[2] * x->dims[3], y->data);
    return KN_OK;
}

static int run_reorder_output(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t ch = kn_attr_int(c->node, "channels", -1);
    if (ch < 1)
        return kn_fail(c->err, KN_ERR_ARG, "ReorderOutput needs a positive 'channels' attribute");
    int rc = check_blocked(c, x, ch, "input");
    if (rc)
        return rc;
    int64_t dims[4] = {x->dims[0], ch, x->dims[2], x->dims[3]};
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 4, dims);
    if (!y)
        return c->err->code;
    kn_nchwc_to_nchw(c->pool, x->data, x->dims[0], ch, x->dims[2] * x->dims[3], y->data);
    return KN_OK;
}

/* Output type of a reorder: the input's with dim 1 = channels (< 0: padded input's). */
static int infer_reorder(kn_infer_ctx *ic, int64_t channels)
{
    const kn_type *xt = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!xt || xt->kind != KN_TYPE_TENSOR || xt->rank != 4 || ic->n_out < 1)
        return KN_OK;
    ic->out[0] = *xt;
    kn_dim *d = &ic->out[0].dims[1];
    d->param = NULL;
    d->value = channels > 0 ? channels : d->value > 0 ? kn_nchwc_padded(d->value) : -1;
    return KN_OK;
}

static int infer_reorder_input(kn_infer_ctx *ic)
{
    return infer_reorder(ic, -1);
}

static int infer_reorder_output(kn_infer_ctx *ic)
{
    return infer_reorder(ic, kn_attr_int(ic->node, "channels", -1));
}

/* ---------------------------------------------------------------- Conv */

/* What prepare packs: the weights and bias for one weight shape, group and input
 * layout. */
typedef struct nchwc_conv_state {
    kn_nchwc_weights *w;
    int64_t wdims[4], group;
    bool stem;
} nchwc_conv_state;

/* Attribute input_nchw = 1: X is an NCHW image (a stem over few channels), only Y
 * (and Z) are blocked. */
static bool stem_of(const kn_node *n)
{
    return kn_attr_int(n, "input_nchw", 0) != 0;
}

/* Packs for a stem or a blocked input. */
static kn_nchwc_weights *pack_for(bool stem, const kn_nchwc_conv *g, const float *w,
                                  const float *b)
{
    return stem ? kn_nchwc_stem_pack(g, w, b) : kn_nchwc_pack(g, w, b);
}

static void release_conv(void *state)
{
    nchwc_conv_state *s = state;
    if (s)
        kn_nchwc_weights_free(s->w);
    free(s);
}

/* The packing geometry of weight dims wd with `group` (channels, m, group, kernel). */
static kn_nchwc_conv pack_geometry(const int64_t *wd, int64_t group)
{
    kn_nchwc_conv g = {.batch = 1, .channels = wd[1] * group, .m = wd[0], .group = group,
                       .kh = wd[2], .kw = wd[3]};
    return g;
}

/* Group 1, or depthwise (one input channel per group, as many groups as channels)
 * over a blocked input. */
static bool supported_group(const int64_t *wd, int64_t group, bool stem)
{
    return group == 1 || (!stem && group > 1 && wd[1] == 1 && wd[0] == group);
}

/* True when the node's ints attribute `name` is absent or all `want`. */
static bool ints_all(const kn_node *node, const char *name, int64_t want, bool absent_ok)
{
    const int64_t *v;
    int n = kn_attr_ints(node, name, &v);
    for (int i = 0; i < n; i++)
        if (v[i] != want)
            return false;
    return n > 0 || absent_ok;
}

/* Also the Winograd weights, for a 3x3 group-1 conv of stride 1, dilation 1 and
 * pads of 1 (given, or SAME at stride 1) whose input size is known at load and
 * takes the path by kn_nchwc_wino_worth. */
static void prepare_winograd(kn_prepare_ctx *pc, const kn_tensor *w, nchwc_conv_state *s)
{
    const kn_type *t = pc->in_type ? pc->in_type[0] : NULL;
    const char *ap = kn_attr_string(pc->node, "auto_pad", "");
    bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
    if (s->stem || s->group != 1 || w->dims[2] != 3 || w->dims[3] != 3 || !t || t->rank != 4 ||
        !ints_all(pc->node, "strides", 1, true) || !ints_all(pc->node, "dilations", 1, true) ||
        !(same || ints_all(pc->node, "pads", 1, false)) ||
        !kn_nchwc_wino_worth(t->dims[0].value, t->dims[2].value, t->dims[3].value, w->dims[1],
                             w->dims[0]))
        return;
    (void)kn_nchwc_add_winograd(s->w, w->data); /* without them (no AVX-512, no memory
                                                 * for them) the direct path runs */
}

static int prepare_conv(kn_prepare_ctx *pc, void **state)
{
    const kn_tensor *w = pc->n_in > 1 ? pc->in_const[1] : NULL;
    const kn_tensor *b = pc->n_in > 2 ? pc->in_const[2] : NULL;
    bool bias_input = pc->node->n_in > 2 && pc->node->in[2] >= 0;
    int64_t group = kn_attr_int(pc->node, "group", 1);
    bool stem = stem_of(pc->node);
    if (!w || !w->data || w->dtype != KN_F32 || w->rank != 4 || w->numel == 0 ||
        !supported_group(w->dims, group, stem) || (bias_input && !b) ||
        (b && (b->dtype != KN_F32 || b->numel != w->dims[0])))
        return KN_OK; /* run packs per call, or reports the bad shapes */
    nchwc_conv_state *s = calloc(1, sizeof *s);
    kn_nchwc_conv g = pack_geometry(w->dims, group);
    if (!s || !(s->w = pack_for(stem, &g, w->data, b ? b->data : NULL))) {
        free(s);
        return kn_fail(pc->err, KN_ERR_NOMEM, "out of memory packing blocked Conv weights");
    }
    memcpy(s->wdims, w->dims, sizeof s->wdims);
    s->group = group;
    s->stem = stem;
    prepare_winograd(pc, w, s);
    *state = s;
    pc->drop_inputs |= (1u << 1) | (b ? 1u << 2 : 0);
    return KN_OK;
}

/* Checks W and B against X (NCHW for a stem, else blocked) and the geometry;
 * fills the kernel geometry. */
static int conv_shapes(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, const kn_tensor *b,
                       int64_t group, bool stem, kn_nchwc_conv *k)
{
    if (w->dtype != KN_F32 || w->rank != 4 || !supported_group(w->dims, group, stem))
        return kn_fail(c->err, KN_ERR_ARG, "blocked Conv takes float32 4-D weights, group 1%s",
                       stem ? " for an NCHW input" : " or depthwise");
    if (b && (b->dtype != KN_F32 || b->rank != 1 || b->dims[0] != w->dims[0]))
        return kn_fail(c->err, KN_ERR_ARG, "blocked Conv bias must be float32 [%lld]",
                       (long long)w->dims[0]);
    int rc = stem ? check_nchw_input(c, x, w->dims[1])
                  : check_blocked(c, x, w->dims[1] * group, "input");
    kn_spatial_geom g;
    if (rc || (rc = kn_conv_geometry(c, x, w, &g)))
        return rc;
    *k = pack_geometry(w->dims, group);
    k->batch = x->dims[0];
    k->ih = g.in[0], k->iw = g.in[1], k->oh = g.out[0], k->ow = g.out[1];
    k->sh = g.stride[0], k->sw = g.stride[1], k->dh = g.dil[0], k->dw = g.dil[1];
    k->pt = g.pad_b[0], k->pl = g.pad_b[1];
    return KN_OK;
}

/* The prepared weights when they were packed for w, group and input layout,
 * else NULL. */
static const kn_nchwc_weights *prepared(const kn_op_ctx *c, const kn_tensor *w, int64_t group,
                                        bool stem)
{
    const nchwc_conv_state *s = c->state;
    if (!s || s->group != group || s->stem != stem ||
        memcmp(s->wdims, w->dims, sizeof s->wdims))
        return NULL;
    return s->w;
}

static int run_conv(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *w = c->in[1], *b = kn_op_in(c, 2), *z = kn_op_in(c, 3);
    int64_t group = kn_attr_int(c->node, "group", 1);
    bool stem = stem_of(c->node);
    kn_nchwc_conv_args a = {.z = z ? z->data : NULL};
    kn_nchwc_conv k;
    int rc;
    if ((rc = conv_shapes(c, x, w, b, group, stem, &k)) || (rc = kn_conv_read_activation(c, &a.act)))
        return rc;
    int64_t dims[4] = {k.batch, kn_nchwc_padded(k.m), k.oh, k.ow};
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 4, dims);
    if (!y)
        return c->err->code;
    if (z && (z->dtype != KN_F32 || !kn_same_shape(z, y)))
        return kn_fail(c->err, KN_ERR_ARG, "blocked Conv input Z must be float32 shaped like Y");
    if (y->numel == 0)
        return KN_OK;
    kn_nchwc_weights *owned = NULL;
    a.w = prepared(c, w, group, stem);
    if (!a.w) {
        if (!w->data || (b && !b->data))
            return kn_fail(c->err, KN_ERR_RUNTIME, "blocked Conv weights released but not packed");
        if (!(a.w = owned = pack_for(stem, &k, w->data, b ? b->data : NULL)))
            return kn_op_nomem(c);
    }
    a.g = &k;
    a.x = x->data;
    a.y = y->data;
    if (stem)
        kn_nchwc_stem_run(c->pool, kn_cpu_isa(), &a);
    else
        kn_nchwc_conv_run(c->pool, kn_cpu_isa(), &a);
    kn_nchwc_weights_free(owned);
    return KN_OK;
}

/* Conv's output type with the output channels padded to the block. */
static int infer_conv(kn_infer_ctx *ic)
{
    int rc = kn_conv_infer(ic);
    if (!rc && ic->n_out > 0 && ic->out[0].kind == KN_TYPE_TENSOR && ic->out[0].rank == 4) {
        kn_dim *d = &ic->out[0].dims[1];
        d->param = NULL;
        d->value = d->value > 0 ? kn_nchwc_padded(d->value) : -1;
    }
    return rc;
}

/* --------------------------------------------------------------- pools */

static int run_pool(kn_op_ctx *c, bool is_max)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    kn_spatial_geom g;
    int rc = check_blocked(c, x, -1, "input");
    if (rc || (rc = kn_pool_geometry(c, x, &g)))
        return rc;
    if (is_max && c->n_out > 1)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "blocked MaxPool has no Indices output");
    int64_t dims[4] = {x->dims[0], x->dims[1], g.out[0], g.out[1]};
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 4, dims);
    if (!y)
        return c->err->code;
    kn_nchwc_pool p = {x->dims[0], x->dims[1], g.in[0], g.in[1], g.out[0], g.out[1],
                       g.k[0], g.k[1], g.stride[0], g.stride[1], g.dil[0], g.dil[1],
                       g.pad_b[0], g.pad_b[1], g.pad_e[0], g.pad_e[1], is_max,
                       !is_max && kn_attr_int(c->node, "count_include_pad", 0) != 0};
    if (y->numel)
        kn_nchwc_pool_run(c->pool, kn_cpu_isa(), &p, x->data, y->data);
    return KN_OK;
}

static int run_max_pool(kn_op_ctx *c)
{
    return run_pool(c, true);
}

static int run_average_pool(kn_op_ctx *c)
{
    return run_pool(c, false);
}

static int run_global_average_pool(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = check_blocked(c, x, -1, "input");
    if (rc)
        return rc;
    int64_t dims[4] = {x->dims[0], x->dims[1], 1, 1};
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 4, dims);
    if (!y)
        return c->err->code;
    if (x->dims[2] * x->dims[3] == 0)
        return kn_fail(c->err, KN_ERR_ARG, "GlobalAveragePool over an empty image");
    if (y->numel)
        kn_nchwc_global_avg(c->pool, kn_cpu_isa(), x->data, x->dims[0], x->dims[1],
                            x->dims[2] * x->dims[3], y->data);
    return KN_OK;
}

/* ---------------------------------------------------- Add / Mul */

static int run_binary(kn_op_ctx *c, bool mul)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *a = c->in[0], *b = c->in[1];
    int rc = check_blocked(c, a, -1, "input A");
    if (rc || (rc = check_blocked(c, b, a->dims[1], "input B")))
        return rc;
    bool per_pixel = kn_same_shape(a, b);
    if (!per_pixel && (b->dims[0] != a->dims[0] || b->dims[2] != 1 || b->dims[3] != 1))
        return kn_fail(c->err, KN_ERR_ARG, "blocked %s takes B shaped like A or [N, C, 1, 1]",
                       c->node->op_type);
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 4, a->dims);
    if (!y)
        return c->err->code;
    kn_nchwc_binary(c->pool, kn_cpu_isa(), a->data, b->data, y->data,
                    a->dims[0] * (a->dims[1] / KN_NCHWC_BLOCK), a->dims[2] * a->dims[3],
                    per_pixel, mul);
    return KN_OK;
}

static int run_add(kn_op_ctx *c)
{
    return run_binary(c, false);
}

static int run_mul(kn_op_ctx *c)
{
    return run_binary(c, true);
}

const kn_op_def kn_ops_nchwc[] = {
    {KN_NCHWC_DOMAIN, "ReorderInput", 1, run_reorder_input, NULL, infer_reorder_input},
    {KN_NCHWC_DOMAIN, "ReorderOutput", 1, run_reorder_output, NULL, infer_reorder_output},
    {KN_NCHWC_DOMAIN, "Conv", 1, run_conv, NULL, infer_conv, .prepare = prepare_conv,
     .release = release_conv},
    {KN_NCHWC_DOMAIN, "MaxPool", 1, run_max_pool, NULL, kn_pool_infer},
    {KN_NCHWC_DOMAIN, "AveragePool", 1, run_average_pool, NULL, kn_pool_infer},
    {KN_NCHWC_DOMAIN, "GlobalAveragePool", 1, run_global_average_pool, NULL,
     kn_global_pool_infer},
    {KN_NCHWC_DOMAIN, "Add", 1, run_add, NULL, kn_infer_same_as_input0},
    {KN_NCHWC_DOMAIN, "Mul", 1, run_mul, NULL, kn_infer_same_as_input0},
    {0},
};
