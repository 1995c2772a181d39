/* spatial.h - the spatial attributes shared by the conv and pool families (Conv,
 * ConvTranspose, ConvInteger, DeformConv, QLinearConv, MaxPool, AveragePool,
 * LpPool): per-axis ints attributes (kernel_shape, strides, dilations, pads,
 * output_padding), auto_pad, SAME_* padding, and the geometry record the kernels
 * walk. */
#ifndef KN_SPATIAL_H
#define KN_SPATIAL_H

#include "ops/op.h"

#define KN_MAX_SPATIAL (KN_MAX_RANK - 2)
/* Largest kernel/stride/dilation/pad value accepted (keeps products in int64). */
#define KN_SPATIAL_ATTR_MAX ((int64_t)1 << 31)

/* Geometry of a windowed op over nsp spatial axes (input [N, C, in...]). */
typedef struct kn_spatial_geom {
    int nsp;
    int64_t in[KN_MAX_SPATIAL], out[KN_MAX_SPATIAL], k[KN_MAX_SPATIAL];
    int64_t stride[KN_MAX_SPATIAL], dil[KN_MAX_SPATIAL];
    int64_t pad_b[KN_MAX_SPATIAL], pad_e[KN_MAX_SPATIAL];
    int64_t in_size, out_size, k_size; /* products of in, out, k */
} kn_spatial_geom;

typedef enum kn_auto_pad {
    KN_PAD_NOTSET,
    KN_PAD_SAME_UPPER,
    KN_PAD_SAME_LOWER,
    KN_PAD_VALID
} kn_auto_pad;

/* Reads an optional ints attribute of exactly n values into out (def when
 * absent); each value must lie in [lo, KN_SPATIAL_ATTR_MAX]. */
int kn_spatial_ints(kn_op_ctx *c, const char *name, int n, int64_t def, int64_t lo, int64_t *out);

/* Reads auto_pad ("" counts as NOTSET); KN_ERR_ARG for an unknown value. */
int kn_read_auto_pad(kn_op_ctx *c, kn_auto_pad *ap);

/* Splits total padding (negative counts as 0) between the begin and end of an
 * axis: SAME_UPPER puts the odd one at the end, SAME_LOWER at the begin. */
void kn_split_pads(int64_t total, bool upper, int64_t *pad_b, int64_t *pad_e);

/* SAME_UPPER / SAME_LOWER padding of a forward window of extent ext: returns the
 * output size ceil(in / stride) and sets the pads that produce it. */
int64_t kn_same_pads(int64_t in, int64_t stride, int64_t ext, bool upper, int64_t *pad_b,
                     int64_t *pad_e);

/* Multiplies g's in/out/k size products by axis i; KN_ERR_ARG on overflow. */
int kn_spatial_count_axis(kn_op_ctx *c, kn_spatial_geom *g, int i);

/* ---- shared with the blocked-layout operators (ops/nchwc.c) ---- */
struct kn_conv_act;
/* Conv's geometry from c->node's attributes, input x's spatial dims and weight w
 * (conv.c); KN_ERR_ARG naming the bad attribute or size. */
int kn_conv_geometry(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, kn_spatial_geom *g);
/* FusedConv's "activation" / "activation_params" (conv.c). */
int kn_conv_read_activation(kn_op_ctx *c, struct kn_conv_act *act);
/* Conv's static output type (conv.c). */
int kn_conv_infer(kn_infer_ctx *ic);
/* MaxPool / AveragePool geometry (kernel_shape, strides, dilations, pads, auto_pad,
 * ceil_mode) over input x (pool.c). */
int kn_pool_geometry(kn_op_ctx *c, const kn_tensor *x, kn_spatial_geom *g);
/* Static output types of MaxPool / AveragePool and of the global pools (pool.c). */
int kn_pool_infer(kn_infer_ctx *ic);
int kn_global_pool_infer(kn_infer_ctx *ic);

#endif
