/* op_util.h - shared helpers for operator kernels: axes, broadcasting, reading
 * small integer tensors and attribute-or-input lists (shapes, axes, indices),
 * element access and copies, shape products and comparisons, dtype checks and
 * common failures. */
#ifndef KN_OP_UTIL_H
#define KN_OP_UTIL_H

#include "ops/op.h"

#include <string.h>

/* Normalize a possibly negative axis into [0, rank); KN_ERR_ARG if out of range. */
int kn_norm_axis(int64_t axis, int rank, int *out, kn_error *err);

/* Numpy-style broadcast of two shapes. */
int kn_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db,
                       int *rank_out, int64_t *dims_out, kn_error *err);
/* Broadcast several shapes (NULL entries skipped). */
int kn_broadcast_shapes(int n, const kn_tensor *const *ts, int *rank_out, int64_t *dims_out,
                        kn_error *err);
/* Element strides of an input of shape (rin, din) viewed at output shape (rout, dout)
 * under broadcasting: 0 along broadcast axes.  strides has rout entries. */
void kn_broadcast_strides(int rout, const int64_t *dout, int rin, const int64_t *din,
                          int64_t *strides);

/* Odometer over an output shape that tracks up to KN_ITER_MAX input offsets.
 * Usage:  kn_iter it; kn_iter_init(&it, rank, dims, n, strides_per_input);
 *         for (int64_t k = 0; k < numel; k++) { use it.off[j]; kn_iter_next(&it); } */
#define KN_ITER_MAX 4
typedef struct kn_iter {
    int rank, n;
    int64_t dims[KN_MAX_RANK];
    int64_t idx[KN_MAX_RANK];
    int64_t strides[KN_ITER_MAX][KN_MAX_RANK];
    int64_t off[KN_ITER_MAX];
} kn_iter;
void kn_iter_init(kn_iter *it, int rank, const int64_t *dims, int n, int64_t strides[][KN_MAX_RANK]);
void kn_iter_next(kn_iter *it);

/* Element i of a float tensor as double, and storing one (rounded to the
 * tensor's dtype), with a direct path for float32. */
static inline double kn_get_f64(const kn_tensor *t, int64_t i)
{
    if (t->dtype == KN_F32)
        return ((const float *)t->data)[i];
    return kn_load_f64(t->data, t->dtype, (size_t)i);
}

static inline void kn_set_f64(kn_tensor *t, int64_t i, double v)
{
    if (t->dtype == KN_F32)
        ((float *)t->data)[i] = (float)v;
    else
        kn_store_f64(t->data, t->dtype, (size_t)i, v);
}

/* Copy one element of es bytes (constant sizes let the compiler emit plain moves). */
static inline void kn_copy_elem(char *dst, const char *src, size_t es)
{
    switch (es) {
    case 1: memcpy(dst, src, 1); break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es); break;
    }
}

/* True when a and b have the same rank and dims. */
bool kn_same_shape(const kn_tensor *a, const kn_tensor *b);

/* Read an integer tensor (any int dtype) of at most max elements into out;
 * returns count, or -1 with err set. */
int kn_read_ints(const kn_tensor *t, int64_t *out, int max, kn_error *err);
/* An integer list given as attribute `name` (when use_attr: the older opsets)
 * or as input idx (the newer ones), of at most max values: returns the count,
 * -1 when absent, or -2 with c->err set (too many values, input not 1-D). */
int kn_read_int_list(kn_op_ctx *c, bool use_attr, const char *name, int idx, int64_t *out,
                     int max);
/* First element of a tensor as int64 / double (scalars and 1-element tensors). */
int kn_scalar_i64(const kn_tensor *t, int64_t *out, kn_error *err);
int kn_scalar_f64(const kn_tensor *t, double *out, kn_error *err);

/* Product of dims[from..to) (1 when empty).  For a tensor's own dims: kiln
 * refuses shapes whose non-zero dims overflow, so any such product fits. */
int64_t kn_dims_prod(const int64_t *dims, int from, int to);

/* KN_ERR_NOMEM "<op>: out of memory" */
int kn_op_nomem(kn_op_ctx *c);
/* KN_ERR_UNSUPPORTED "<op> does not support dtype X" */
int kn_unsupported_dtype(kn_op_ctx *c, kn_dtype dt);
/* KN_ERR_ARG if two inputs have different dtypes. */
int kn_check_same_dtype(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b);

/* Generic inference helpers usable as kn_op_def.infer. */
int kn_infer_same_as_input0(kn_infer_ctx *ic);
int kn_infer_broadcast(kn_infer_ctx *ic);      /* dtype of input 0, broadcast shape of all */
int kn_infer_broadcast_bool(kn_infer_ctx *ic); /* comparisons: bool, broadcast shape */
/* For shape inference through an op's own run-time geometry code: a data-less
 * tensor with t's dims (rank >= 3; unknown leading dims 0 and 1 read as 1) when
 * every spatial dim (2 on) is known, and an op context naming ic's node with err. */
bool kn_infer_spatial_probe(const kn_type *t, kn_tensor *probe);
kn_op_ctx kn_infer_op_ctx(const kn_infer_ctx *ic, kn_error *err);
/* out = NCHW-like result type: dtype, rank and dims 0..1 given, spatial dims unknown. */
void kn_infer_spatial_out(kn_type *out, kn_dtype dt, int rank, kn_dim d0, kn_dim d1);

#endif
