/* index.c - operator family 'index': Gather, GatherElements, GatherND, Scatter,
 * ScatterElements, ScatterND, OneHot, NonZero, Compress, Unique, TopK, CumSum,
 * CumProd, TensorScatter.
 *
 * Data moves element by element through its byte size, so every dtype kiln holds
 * works.  Index tensors (int32 / int64) are validated before anything is written:
 * a negative index wraps once by the axis size, anything still out of range is a
 * KN_ERR_RUNTIME naming the index and its position.  Element arithmetic (scatter
 * reductions, cumulative ops) is done in the storage type's own semantics: float32
 * and float64 natively, float16 / bfloat16 in float with rounding on store,
 * integers exactly (wrap-around like the storage type). */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ---- */

static int check_index_dtype(kn_op_ctx *c, const kn_tensor *idx)
{
    if (idx->dtype != KN_I32 && idx->dtype != KN_I64)
        return kn_fail(c->err, KN_ERR_ARG, "%s: indices must be int32 or int64, got %s",
                       c->node->op_type, kn_dtype_name(idx->dtype));
    return KN_OK;
}

static inline int64_t raw_index(const kn_tensor *idx, int64_t pos)
{
    if (idx->dtype == KN_I32)
        return ((const int32_t *)idx->data)[pos];
    return ((const int64_t *)idx->data)[pos];
}

/* Index at flat position pos of idx, wrapped once and checked against [0, dim). */
static int get_index(kn_op_ctx *c, const kn_tensor *idx, int64_t pos, int64_t dim, int64_t *out)
{
    int64_t v = raw_index(idx, pos);
    int64_t w = v < 0 ? v + dim : v;
    if (w < 0 || w >= dim)
        return kn_fail(c->err, KN_ERR_RUNTIME,
                       "%s: index %lld at position %lld is out of range for a dimension of size %lld",
                       c->node->op_type, (long long)v, (long long)pos, (long long)dim);
    *out = w;
    return KN_OK;
}

static inline void copy_elems(void *dst, int64_t di, const void *src, int64_t si, int64_t n,
                              size_t esz)
{
    if (n > 0)
        memcpy((char *)dst + (size_t)di * esz, (const char *)src + (size_t)si * esz,
               (size_t)n * esz);
}

/* Three-way compare of element a of x with element b of y (same dtype); NaN is
 * larger than every number and equal to NaN. */
static int cmp_elem(const kn_tensor *x, int64_t a, const kn_tensor *y, int64_t b)
{
    kn_dtype t = x->dtype;
    if (kn_dtype_is_float(t)) {
        double u = kn_load_f64(x->data, t, (size_t)a), v = kn_load_f64(y->data, t, (size_t)b);
        if (isnan(u) || isnan(v))
            return isnan(u) - isnan(v);
        return (u > v) - (u < v);
    }
    int64_t s = kn_load_i64(x->data, t, (size_t)a), r = kn_load_i64(y->data, t, (size_t)b);
    if (kn_dtype_is_signed(t))
        return (s > r) - (s < r);
    return ((uint64_t)s > (uint64_t)r) - ((uint64_t)s < (uint64_t)r);
}

static bool numeric_dtype(kn_dtype t)
{
    return kn_dtype_is_float(t) || kn_dtype_is_int(t);
}

typedef enum combine_op { CB_NONE, CB_ADD, CB_MUL, CB_MAX, CB_MIN } combine_op;

static int parse_reduction(kn_op_ctx *c, combine_op *op)
{
    const char *r = kn_attr_string(c->node, "reduction", "none");
    if (!strcmp(r, "none")) *op = CB_NONE;
    else if (!strcmp(r, "add")) *op = CB_ADD;
    else if (!strcmp(r, "mul")) *op = CB_MUL;
    else if (!strcmp(r, "max")) *op = CB_MAX;
    else if (!strcmp(r, "min")) *op = CB_MIN;
    else
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s: reduction '%s' not supported",
                       c->node->op_type, r);
    return KN_OK;
}

static double combine_f(combine_op op, double a, double b)
{
    switch (op) {
    case CB_ADD: return a + b;
    case CB_MUL: return a * b;
    case CB_MAX: return (b > a || isnan(b)) ? b : a;
    case CB_MIN: return (b < a || isnan(b)) ? b : a;
    default: return b;
    }
}

/* dst[di] = dst[di] (op) src[si], both of dtype t. */
static void combine_elem(kn_dtype t, void *dst, int64_t di, const void *src, int64_t si,
                         combine_op op)
{
    size_t esz = kn_dtype_size(t);
    if (op == CB_NONE) {
        copy_elems(dst, di, src, si, 1, esz);
    } else if (t == KN_F32) {
        float *d = (float *)dst + di, b = ((const float *)src)[si];
        *d = (float)combine_f(op, *d, b);
    } else if (kn_dtype_is_float(t)) {
        double a = kn_load_f64(dst, t, (size_t)di), b = kn_load_f64(src, t, (size_t)si);
        double r = combine_f(op, a, b);
        if (t != KN_F64)
            r = (float)r;
        kn_store_f64(dst, t, (size_t)di, r);
    } else {
        int64_t sa = kn_load_i64(dst, t, (size_t)di), sb = kn_load_i64(src, t, (size_t)si);
        uint64_t a = (uint64_t)sa, b = (uint64_t)sb, r = a;
        bool sgn = kn_dtype_is_signed(t);
        bool b_gt = sgn ? sb > sa : b > a, b_lt = sgn ? sb < sa : b < a;
        switch (op) {
        case CB_ADD: r = a + b; break;
        case CB_MUL: r = a * b; break;
        case CB_MAX: r = b_gt ? b : a; break;
        case CB_MIN: r = b_lt ? b : a; break;
        default: break;
        }
        kn_store_i64(dst, t, (size_t)di, (int64_t)r);
    }
}

/* ---- Gather ---- */

static int run_gather(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *idx = c->in[1];
    if (check_index_dtype(c, idx))
        return c->err->code;
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "Gather: data must have rank >= 1");
    int axis;
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 0), x->rank, &axis, c->err))
        return c->err->code;
    int out_rank = x->rank - 1 + idx->rank;
    if (out_rank > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Gather: output rank %d too large", out_rank);
    int64_t dims[KN_MAX_RANK];
    int r = 0;
    for (int i = 0; i < axis; i++) dims[r++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) dims[r++] = idx->dims[i];
    for (int i = axis + 1; i < x->rank; i++) dims[r++] = x->dims[i];
    int64_t D = x->dims[axis], n = idx->numel;
    int64_t outer = kn_dims_prod(x->dims, 0, axis), inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    int64_t tmp;
    for (int64_t i = 0; i < n; i++)
        if (get_index(c, idx, i, D, &tmp))
            return c->err->code;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, out_rank, dims);
    if (!y)
        return c->err->code;
    size_t esz = kn_dtype_size(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++) {
            get_index(c, idx, i, D, &tmp);
            copy_elems(y->data, (o * n + i) * inner, x->data, (o * D + tmp) * inner, inner, esz);
        }
    return KN_OK;
}

/* ---- GatherElements / ScatterElements share the addressing ---- */

/* Checks that idx has x's rank and fits inside x on every axis but 'axis'. */
static int check_elements_shape(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *idx, int axis)
{
    if (idx->rank != x->rank)
        return kn_fail(c->err, KN_ERR_ARG, "%s: indices rank %d differs from data rank %d",
                       c->node->op_type, idx->rank, x->rank);
    for (int d = 0; d < x->rank; d++)
        if (d != axis && idx->dims[d] > x->dims[d])
            return kn_fail(c->err, KN_ERR_ARG,
                           "%s: indices dim %d (%lld) exceeds data dim (%lld)", c->node->op_type,
                           d, (long long)idx->dims[d], (long long)x->dims[d]);
    return KN_OK;
}

/* Iterator over idx positions giving the matching data offset with axis term 0. */
static void elements_iter(kn_iter *it, const kn_tensor *x, const kn_tensor *idx, int axis,
                          int64_t *axis_stride)
{
    int64_t s[1][KN_MAX_RANK];
    kn_strides(x->rank, x->dims, s[0]);
    *axis_stride = x->rank ? s[0][axis] : 0;
    if (x->rank)
        s[0][axis] = 0;
    kn_iter_init(it, idx->rank, idx->dims, 1, s);
}

static int run_gather_elements(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *idx = c->in[1];
    if (check_index_dtype(c, idx))
        return c->err->code;
    int axis;
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "GatherElements: data must have rank >= 1");
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 0), x->rank, &axis, c->err) ||
        check_elements_shape(c, x, idx, axis))
        return c->err->code;
    int64_t tmp;
    for (int64_t i = 0; i < idx->numel; i++)
        if (get_index(c, idx, i, x->dims[axis], &tmp))
            return c->err->code;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, idx->rank, idx->dims);
    if (!y)
        return c->err->code;
    kn_iter it;
    int64_t astr;
    elements_iter(&it, x, idx, axis, &astr);
    size_t esz = kn_dtype_size(x->dtype);
    for (int64_t i = 0; i < idx->numel; i++, kn_iter_next(&it)) {
        get_index(c, idx, i, x->dims[axis], &tmp);
        copy_elems(y->data, i, x->data, it.off[0] + tmp * astr, 1, esz);
    }
    return KN_OK;
}

static int scatter_elements(kn_op_ctx *c, combine_op op)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    const kn_tensor *x = c->in[0], *idx = c->in[1], *upd = c->in[2];
    if (check_index_dtype(c, idx) || kn_check_same_dtype(c, x, upd))
        return c->err->code;
    if (op != CB_NONE && !numeric_dtype(x->dtype) && x->dtype != KN_BOOL)
        return kn_unsupported_dtype(c, x->dtype);
    int axis;
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s: data must have rank >= 1", c->node->op_type);
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 0), x->rank, &axis, c->err) ||
        check_elements_shape(c, x, idx, axis))
        return c->err->code;
    if (upd->rank != idx->rank || memcmp(upd->dims, idx->dims, sizeof(int64_t) * (size_t)idx->rank))
        return kn_fail(c->err, KN_ERR_ARG, "%s: updates shape differs from indices shape",
                       c->node->op_type);
    int64_t tmp;
    for (int64_t i = 0; i < idx->numel; i++)
        if (get_index(c, idx, i, x->dims[axis], &tmp))
            return c->err->code;
    kn_tensor *y = kn_op_output_copy(c, 0, x);
    if (!y)
        return c->err->code;
    kn_iter it;
    int64_t astr;
    elements_iter(&it, x, idx, axis, &astr);
    for (int64_t i = 0; i < idx->numel; i++, kn_iter_next(&it)) {
        get_index(c, idx, i, x->dims[axis], &tmp);
        combine_elem(x->dtype, y->data, it.off[0] + tmp * astr, upd->data, i, op);
    }
    return KN_OK;
}

static int run_scatter(kn_op_ctx *c) { return scatter_elements(c, CB_NONE); }

static int run_scatter_elements(kn_op_ctx *c)
{
    combine_op op;
    if (parse_reduction(c, &op))
        return c->err->code;
    return scatter_elements(c, op);
}

/* ---- GatherND / ScatterND ---- */

/* Data offset (in elements) of index tuple t (k entries of idx from position
 * t*k) inside a data block whose dims start at data_dims. */
static int nd_offset(kn_op_ctx *c, const kn_tensor *idx, int64_t t, int64_t k,
                     const int64_t *data_dims, const int64_t *data_str, int64_t *off)
{
    int64_t o = 0, v = 0;
    for (int64_t j = 0; j < k; j++) {
        if (get_index(c, idx, t * k + j, data_dims[j], &v))
            return c->err->code;
        o += v * data_str[j];
    }
    *off = o;
    return KN_OK;
}

static int run_gather_nd(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *idx = c->in[1];
    if (check_index_dtype(c, idx))
        return c->err->code;
    int64_t b = kn_attr_int(c->node, "batch_dims", 0);
    int q = idx->rank, r = x->rank;
    if (q < 1 || r < 1 || b < 0 || b >= q || b >= r)
        return kn_fail(c->err, KN_ERR_ARG, "GatherND: bad ranks (data %d, indices %d, batch_dims %lld)",
                       r, q, (long long)b);
    int64_t k = idx->dims[q - 1];
    if (k < 0 || b + k > r)
        return kn_fail(c->err, KN_ERR_ARG, "GatherND: index tuples of length %lld too long for data rank %d",
                       (long long)k, r);
    for (int i = 0; i < b; i++)
        if (idx->dims[i] != x->dims[i])
            return kn_fail(c->err, KN_ERR_ARG, "GatherND: batch dim %d differs (%lld vs %lld)", i,
                           (long long)idx->dims[i], (long long)x->dims[i]);
    int out_rank = (q - 1) + (r - (int)b - (int)k);
    if (out_rank > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "GatherND: output rank %d too large", out_rank);
    int64_t dims[KN_MAX_RANK], str[KN_MAX_RANK];
    int n = 0;
    for (int i = 0; i < q - 1; i++) dims[n++] = idx->dims[i];
    for (int i = (int)(b + k); i < r; i++) dims[n++] = x->dims[i];
    kn_strides(r, x->dims, str);
    int64_t batches = kn_dims_prod(x->dims, 0, (int)b);
    int64_t per_batch = kn_dims_prod(idx->dims, (int)b, q - 1); /* tuples per batch */
    int64_t slice = kn_dims_prod(x->dims, (int)(b + k), r);
    int64_t data_batch = kn_dims_prod(x->dims, (int)b, r);
    int64_t off;
    for (int64_t t = 0; t < batches * per_batch; t++)
        if (nd_offset(c, idx, t, k, x->dims + b, str + b, &off))
            return c->err->code;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, out_rank, dims);
    if (!y)
        return c->err->code;
    size_t esz = kn_dtype_size(x->dtype);
    for (int64_t t = 0; t < batches * per_batch; t++) {
        nd_offset(c, idx, t, k, x->dims + b, str + b, &off);
        copy_elems(y->data, t * slice, x->data, (t / per_batch) * data_batch + off, slice, esz);
    }
    return KN_OK;
}

static int run_scatter_nd(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    const kn_tensor *x = c->in[0], *idx = c->in[1], *upd = c->in[2];
    combine_op op;
    if (check_index_dtype(c, idx) || kn_check_same_dtype(c, x, upd) || parse_reduction(c, &op))
        return c->err->code;
    if (op != CB_NONE && !numeric_dtype(x->dtype) && x->dtype != KN_BOOL)
        return kn_unsupported_dtype(c, x->dtype);
    int q = idx->rank, r = x->rank;
    if (q < 1 || r < 1)
        return kn_fail(c->err, KN_ERR_ARG, "ScatterND: data and indices need rank >= 1");
    int64_t k = idx->dims[q - 1];
    if (k < 0 || k > r)
        return kn_fail(c->err, KN_ERR_ARG, "ScatterND: index tuples of length %lld exceed data rank %d",
                       (long long)k, r);
    /* updates shape must be indices.shape[:-1] + data.shape[k:] */
    bool ok = upd->rank == (q - 1) + (r - (int)k);
    for (int i = 0; ok && i < q - 1; i++)
        ok = upd->dims[i] == idx->dims[i];
    for (int i = (int)k; ok && i < r; i++)
        ok = upd->dims[q - 1 + i - k] == x->dims[i];
    if (!ok)
        return kn_fail(c->err, KN_ERR_ARG, "ScatterND: updates shape does not match indices and data");
    int64_t str[KN_MAX_RANK], off;
    kn_strides(r, x->dims, str);
    int64_t tuples = kn_dims_prod(idx->dims, 0, q - 1), slice = kn_dims_prod(x->dims, (int)k, r);
    for (int64_t t = 0; t < tuples; t++)
        if (nd_offset(c, idx, t, k, x->dims, str, &off))
            return c->err->code;
    kn_tensor *y = kn_op_output_copy(c, 0, x);
    if (!y)
        return c->err->code;
    for (int64_t t = 0; t < tuples; t++) {
        nd_offset(c, idx, t, k, x->dims, str, &off);
        for (int64_t e = 0; e < slice; e++)
            combine_elem(x->dtype, y->data, off + e, upd->data, t * slice + e, op);
    }
    return KN_OK;
}

/* ---- OneHot ---- */

static int run_onehot(kn_op_ctx *c)
{
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *ind = c->in[0], *depth_t = c->in[1], *vals = c->in[2];
    if (!numeric_dtype(ind->dtype) || !numeric_dtype(depth_t->dtype))
        return kn_fail(c->err, KN_ERR_ARG, "OneHot: indices and depth must be numeric");
    if (vals->numel != 2)
        return kn_fail(c->err, KN_ERR_ARG, "OneHot: values must have 2 elements, got %lld",
                       (long long)vals->numel);
    if (depth_t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "OneHot: depth must have one element");
    int64_t depth = kn_load_i64(depth_t->data, depth_t->dtype, 0);
    if (depth < 0)
        return kn_fail(c->err, KN_ERR_ARG, "OneHot: depth %lld is negative", (long long)depth);
    int r = ind->rank;
    if (r + 1 > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "OneHot: output rank %d too large", r + 1);
    int axis;
    if (kn_norm_axis(kn_attr_int(c->node, "axis", -1), r + 1, &axis, c->err))
        return c->err->code;
    int64_t dims[KN_MAX_RANK];
    for (int i = 0, n = 0; i <= r; i++)
        dims[i] = i == axis ? depth : ind->dims[n++];
    kn_tensor *y = kn_op_output(c, 0, vals->dtype, r + 1, dims);
    if (!y)
        return c->err->code;
    size_t esz = kn_dtype_size(vals->dtype);
    for (int64_t i = 0; i < y->numel; i++)
        copy_elems(y->data, i, vals->data, 0, 1, esz);
    int64_t inner = kn_dims_prod(ind->dims, axis, r), outer = kn_dims_prod(ind->dims, 0, axis);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t v = kn_load_i64(ind->data, ind->dtype, (size_t)(o * inner + in));
            if (v < 0)
                v += depth;
            if (v >= 0 && v < depth)
                copy_elems(y->data, (o * depth + v) * inner + in, vals->data, 1, 1, esz);
        }
    return KN_OK;
}

/* ---- NonZero / Compress ---- */

static bool elem_nonzero(const kn_tensor *x, int64_t i)
{
    if (kn_dtype_is_float(x->dtype))
        return kn_load_f64(x->data, x->dtype, (size_t)i) != 0.0;
    return kn_load_i64(x->data, x->dtype, (size_t)i) != 0;
}

static int run_nonzero(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!numeric_dtype(x->dtype) && x->dtype != KN_BOOL)
        return kn_unsupported_dtype(c, x->dtype);
    int64_t n = 0;
    for (int64_t i = 0; i < x->numel; i++)
        n += elem_nonzero(x, i);
    int rank = x->rank ? x->rank : 1; /* a scalar is treated as shape [1] */
    int64_t dims[2] = {rank, n};
    kn_tensor *y = kn_op_output(c, 0, KN_I64, 2, dims);
    if (!y)
        return c->err->code;
    int64_t *out = y->data, coord[KN_MAX_RANK] = {0}, k = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        if (elem_nonzero(x, i)) {
            for (int d = 0; d < x->rank; d++)
                out[d * n + k] = coord[d];
            k++;
        }
        for (int d = x->rank - 1; d >= 0; d--) {
            if (++coord[d] < x->dims[d])
                break;
            coord[d] = 0;
        }
    }
    return KN_OK;
}

static int run_compress(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *cond = c->in[1];
    if (cond->rank != 1 || (!numeric_dtype(cond->dtype) && cond->dtype != KN_BOOL))
        return kn_fail(c->err, KN_ERR_ARG, "Compress: condition must be a 1-D bool tensor");
    const kn_attr *ax = kn_attr_find(c->node, "axis");
    int axis = 0;
    int64_t outer = 1, D = x->numel, inner = 1;
    if (ax) {
        if (kn_norm_axis(ax->i, x->rank, &axis, c->err))
            return c->err->code;
        if (x->rank < 1)
            return kn_fail(c->err, KN_ERR_ARG, "Compress: axis given for a scalar");
        outer = kn_dims_prod(x->dims, 0, axis);
        D = x->dims[axis];
        inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    }
    int64_t count = 0;
    for (int64_t j = 0; j < cond->numel; j++) {
        bool on = elem_nonzero(cond, j);
        if (on && j >= D)
            return kn_fail(c->err, KN_ERR_RUNTIME,
                           "Compress: condition is true at position %lld beyond axis size %lld",
                           (long long)j, (long long)D);
        count += on;
    }
    int64_t dims[KN_MAX_RANK];
    int rank = 1;
    dims[0] = count;
    if (ax) {
        rank = x->rank;
        memcpy(dims, x->dims, sizeof(int64_t) * (size_t)rank);
        dims[axis] = count;
    }
    kn_tensor *y = kn_op_output(c, 0, x->dtype, rank, dims);
    if (!y)
        return c->err->code;
    size_t esz = kn_dtype_size(x->dtype);
    int64_t lim = cond->numel < D ? cond->numel : D;
    for (int64_t o = 0, w = 0; o < outer; o++)
        for (int64_t j = 0; j < lim; j++)
            if (elem_nonzero(cond, j)) {
                copy_elems(y->data, w * inner, x->data, (o * D + j) * inner, inner, esz);
                w++;
            }
    return KN_OK;
}

/* ---- stable merge sort of int64 keys with a context comparator ---- */

typedef int (*key_cmp)(const void *ctx, int64_t a, int64_t b);

static void merge_sort(int64_t *v, int64_t *tmp, int64_t n, key_cmp cmp, const void *ctx)
{
    if (n < 2)
        return;
    int64_t h = n / 2;
    merge_sort(v, tmp, h, cmp, ctx);
    merge_sort(v + h, tmp, n - h, cmp, ctx);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp(ctx, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, sizeof(int64_t) * (size_t)n);
}

static int sort_keys(kn_op_ctx *c, int64_t *v, int64_t n, key_cmp cmp, const void *ctx)
{
    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!tmp)
        return kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    merge_sort(v, tmp, n, cmp, ctx);
    free(tmp);
    return KN_OK;
}

/* ---- Unique ---- */

/* x viewed as [outer, D, inner]; slices along D compared lexicographically. */
typedef struct slice_view {
    const kn_tensor *x;
    int64_t outer, D, inner;
} slice_view;

static int cmp_slices(const void *ctx, int64_t a, int64_t b)
{
    const slice_view *s = ctx;
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t i = 0; i < s->inner; i++) {
            int64_t base = o * s->D * s->inner + i;
            int r = cmp_elem(s->x, base + a * s->inner, s->x, base + b * s->inner);
            if (r)
                return r;
        }
    return 0;
}

static int cmp_first_pos(const void *ctx, int64_t a, int64_t b)
{
    const int64_t *first = ctx;
    return (first[a] > first[b]) - (first[a] < first[b]);
}

static int unique_outputs(kn_op_ctx *c, const slice_view *s, int axis, const int64_t *order,
                          int64_t n_uniq, const int64_t *group_first, const int64_t *inverse,
                          const int64_t *counts)
{
    const kn_tensor *x = s->x;
    int64_t dims[KN_MAX_RANK];
    int rank = 1;
    dims[0] = n_uniq;
    if (axis >= 0) {
        rank = x->rank;
        memcpy(dims, x->dims, sizeof(int64_t) * (size_t)rank);
        dims[axis] = n_uniq;
    }
    kn_tensor *y = kn_op_output(c, 0, x->dtype, rank, dims);
    if (!y)
        return c->err->code;
    size_t esz = kn_dtype_size(x->dtype);
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t u = 0; u < n_uniq; u++)
            copy_elems(y->data, (o * n_uniq + u) * s->inner, x->data,
                       (o * s->D + group_first[order[u]]) * s->inner, s->inner, esz);
    int64_t d1[1] = {n_uniq}, d2[1] = {s->D};
    kn_tensor *ti = c->n_out > 1 ? kn_op_output(c, 1, KN_I64, 1, d1) : NULL;
    kn_tensor *tv = c->n_out > 2 ? kn_op_output(c, 2, KN_I64, 1, d2) : NULL;
    kn_tensor *tc = c->n_out > 3 ? kn_op_output(c, 3, KN_I64, 1, d1) : NULL;
    if ((c->n_out > 1 && !ti) || (c->n_out > 2 && !tv) || (c->n_out > 3 && !tc))
        return c->err->code;
    int64_t *rank_of = malloc(sizeof(int64_t) * (size_t)(n_uniq ? n_uniq : 1));
    if (!rank_of)
        return kn_fail(c->err, KN_ERR_NOMEM, "Unique: out of memory");
    for (int64_t u = 0; u < n_uniq; u++) {
        rank_of[order[u]] = u;
        if (ti) ((int64_t *)ti->data)[u] = group_first[order[u]];
        if (tc) ((int64_t *)tc->data)[u] = counts[order[u]];
    }
    for (int64_t j = 0; tv && j < s->D; j++)
        ((int64_t *)tv->data)[j] = rank_of[inverse[j]];
    free(rank_of);
    return KN_OK;
}

static int run_unique(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!numeric_dtype(x->dtype) && x->dtype != KN_BOOL)
        return kn_unsupported_dtype(c, x->dtype);
    slice_view s = {x, 1, x->numel, 1};
    int axis = -1;
    if (kn_attr_find(c->node, "axis")) {
        if (x->rank < 1)
            return kn_fail(c->err, KN_ERR_ARG, "Unique: axis given for a scalar");
        if (kn_norm_axis(kn_attr_int(c->node, "axis", 0), x->rank, &axis, c->err))
            return c->err->code;
        s.outer = kn_dims_prod(x->dims, 0, axis);
        s.D = x->dims[axis];
        s.inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    }
    bool sorted = kn_attr_int(c->node, "sorted", 1) != 0;
    size_t n = (size_t)(s.D ? s.D : 1);
    /* perm: slices in sorted order; per group: first position, count; inverse */
    int64_t *perm = malloc(n * sizeof(int64_t)), *first = malloc(n * sizeof(int64_t));
    int64_t *counts = malloc(n * sizeof(int64_t)), *inverse = malloc(n * sizeof(int64_t));
    int64_t *order = malloc(n * sizeof(int64_t));
    int rc = KN_OK;
    if (!perm || !first || !counts || !inverse || !order) {
        rc = kn_fail(c->err, KN_ERR_NOMEM, "Unique: out of memory");
        goto done;
    }
    for (int64_t j = 0; j < s.D; j++)
        perm[j] = j;
    if ((rc = sort_keys(c, perm, s.D, cmp_slices, &s)))
        goto done;
    int64_t g = -1;
    for (int64_t j = 0; j < s.D; j++) {
        if (j == 0 || cmp_slices(&s, perm[j - 1], perm[j]) != 0) {
            g++;
            first[g] = perm[j]; /* stable sort: the lowest position of the group */
            counts[g] = 0;
        }
        counts[g]++;
        inverse[perm[j]] = g;
    }
    int64_t n_uniq = g + 1;
    for (int64_t u = 0; u < n_uniq; u++)
        order[u] = u;
    if (!sorted && (rc = sort_keys(c, order, n_uniq, cmp_first_pos, first)))
        goto done;
    rc = unique_outputs(c, &s, axis, order, n_uniq, first, inverse, counts);
done:
    free(perm);
    free(first);
    free(counts);
    free(inverse);
    free(order);
    return rc;
}

/* ---- TopK ---- */

typedef struct line_view {
    const kn_tensor *x;
    int64_t base, stride;
    bool largest;
} line_view;

/* Ties keep the lower index first (the sort is stable). */
static int cmp_line(const void *ctx, int64_t a, int64_t b)
{
    const line_view *l = ctx;
    int r = cmp_elem(l->x, l->base + a * l->stride, l->x, l->base + b * l->stride);
    return l->largest ? -r : r;
}

static int run_topk(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!numeric_dtype(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int64_t k;
    if (c->opset >= 10) {
        KN_REQUIRE_INPUT(c, 1);
        if (!kn_dtype_is_int(c->in[1]->dtype) || c->in[1]->numel != 1)
            return kn_fail(c->err, KN_ERR_ARG, "TopK: K must be a single integer");
        k = kn_load_i64(c->in[1]->data, c->in[1]->dtype, 0);
    } else {
        k = kn_attr_int(c->node, "k", -1);
    }
    int axis;
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "TopK: input must have rank >= 1");
    if (kn_norm_axis(kn_attr_int(c->node, "axis", -1), x->rank, &axis, c->err))
        return c->err->code;
    int64_t D = x->dims[axis];
    if (k < 0 || k > D)
        return kn_fail(c->err, KN_ERR_ARG, "TopK: k = %lld out of range for axis size %lld",
                       (long long)k, (long long)D);
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[axis] = k;
    kn_tensor *yv = kn_op_output(c, 0, x->dtype, x->rank, dims);
    kn_tensor *yi = yv ? kn_op_output(c, 1, KN_I64, x->rank, dims) : NULL;
    if (!yi)
        return c->err->code;
    int64_t outer = kn_dims_prod(x->dims, 0, axis), inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)(D ? D : 1));
    if (!perm)
        return kn_fail(c->err, KN_ERR_NOMEM, "TopK: out of memory");
    line_view l = {x, 0, inner, kn_attr_int(c->node, "largest", 1) != 0};
    size_t esz = kn_dtype_size(x->dtype);
    int rc = KN_OK;
    for (int64_t o = 0; o < outer && !rc; o++)
        for (int64_t in = 0; in < inner && !rc; in++) {
            l.base = o * D * inner + in;
            for (int64_t j = 0; j < D; j++)
                perm[j] = j;
            if ((rc = sort_keys(c, perm, D, cmp_line, &l)))
                break;
            for (int64_t j = 0; j < k; j++) {
                int64_t dst = (o * k + j) * inner + in;
                copy_elems(yv->data, dst, x->data, l.base + perm[j] * inner, 1, esz);
                ((int64_t *)yi->data)[dst] = perm[j];
            }
        }
    free(perm);
    return rc;
}

/* ---- CumSum / CumProd ---- */

static int run_cumulative(kn_op_ctx *c, combine_op op)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *ax = c->in[1];
    if (!numeric_dtype(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (!kn_dtype_is_int(ax->dtype) || ax->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s: axis must be a single integer", c->node->op_type);
    int axis;
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s: input must have rank >= 1", c->node->op_type);
    if (kn_norm_axis(kn_load_i64(ax->data, ax->dtype, 0), x->rank, &axis, c->err))
        return c->err->code;
    bool exclusive = kn_attr_int(c->node, "exclusive", 0) != 0;
    bool reverse = kn_attr_int(c->node, "reverse", 0) != 0;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    int64_t D = x->dims[axis];
    int64_t outer = kn_dims_prod(x->dims, 0, axis), inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    int64_t step = reverse ? -inner : inner;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner && D > 0; in++) {
            int64_t pos = o * D * inner + in + (reverse ? (D - 1) * inner : 0);
            if (exclusive)
                kn_store_i64(y->data, y->dtype, (size_t)pos, op == CB_MUL ? 1 : 0);
            else
                copy_elems(y->data, pos, x->data, pos, 1, kn_dtype_size(x->dtype));
            for (int64_t j = 1; j < D; j++, pos += step) {
                int64_t next = pos + step;
                copy_elems(y->data, next, y->data, pos, 1, kn_dtype_size(x->dtype));
                combine_elem(x->dtype, y->data, next, x->data, exclusive ? pos : next, op);
            }
        }
    return KN_OK;
}

static int run_cumsum(kn_op_ctx *c) { return run_cumulative(c, CB_ADD); }
static int run_cumprod(kn_op_ctx *c) { return run_cumulative(c, CB_MUL); }

/* ---- TensorScatter (opset 24): KV-cache update along a sequence axis ---- */

static int tensor_scatter_shapes(kn_op_ctx *c, const kn_tensor *past, const kn_tensor *upd,
                                 const kn_tensor *wi, int *axis)
{
    if (past->rank < 2 || upd->rank != past->rank)
        return kn_fail(c->err, KN_ERR_ARG, "TensorScatter: past_cache rank %d and update rank %d "
                       "must be equal and >= 2", past->rank, upd->rank);
    if (kn_norm_axis(kn_attr_int(c->node, "axis", -2), past->rank, axis, c->err))
        return c->err->code;
    if (*axis == 0)
        return kn_fail(c->err, KN_ERR_ARG, "TensorScatter: axis cannot be the batch axis 0");
    for (int d = 0; d < past->rank; d++)
        if (d == *axis ? upd->dims[d] > past->dims[d] : upd->dims[d] != past->dims[d])
            return kn_fail(c->err, KN_ERR_ARG, "TensorScatter: update dim %d (%lld) does not fit "
                           "past_cache dim (%lld)", d, (long long)upd->dims[d],
                           (long long)past->dims[d]);
    if (wi && check_index_dtype(c, wi))
        return c->err->code;
    if (wi && wi->numel != past->dims[0])
        return kn_fail(c->err, KN_ERR_ARG, "TensorScatter: write_indices has %lld entries for "
                       "a batch of %lld", (long long)wi->numel, (long long)past->dims[0]);
    return KN_OK;
}

/* Start position in the cache of batch b's update; checked in linear mode. */
static int write_start(kn_op_ctx *c, const kn_tensor *wi, int64_t b, int64_t seq, int64_t max_seq,
                       bool circular, int64_t *start)
{
    int64_t w = wi ? raw_index(wi, b) : 0;
    if (circular) {
        *start = max_seq ? ((w % max_seq) + max_seq) % max_seq : 0;
        return KN_OK;
    }
    if (w < 0 || w > max_seq - seq)
        return kn_fail(c->err, KN_ERR_RUNTIME, "TensorScatter: write index %lld at position %lld "
                       "with %lld updates exceeds the cache length %lld", (long long)w,
                       (long long)b, (long long)seq, (long long)max_seq);
    *start = w;
    return KN_OK;
}

static int run_tensor_scatter(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *past = c->in[0], *upd = c->in[1], *wi = kn_op_in(c, 2);
    const char *mode = kn_attr_string(c->node, "mode", "linear");
    bool circular = !strcmp(mode, "circular");
    if (!circular && strcmp(mode, "linear"))
        return kn_fail(c->err, KN_ERR_ARG, "TensorScatter: mode '%s' is not one of linear, circular", mode);
    int axis;
    if (kn_check_same_dtype(c, past, upd) || tensor_scatter_shapes(c, past, upd, wi, &axis))
        return c->err->code;
    int64_t max_seq = past->dims[axis], seq = upd->dims[axis], start;
    int64_t outer = kn_dims_prod(past->dims, 0, axis), per_batch = kn_dims_prod(past->dims, 1, axis);
    int64_t inner = kn_dims_prod(past->dims, axis + 1, past->rank);
    for (int64_t b = 0; b < past->dims[0]; b++)
        if (write_start(c, wi, b, seq, max_seq, circular, &start))
            return c->err->code;
    kn_tensor *y = kn_op_output_copy(c, 0, past);
    if (!y)
        return c->err->code;
    size_t esz = kn_dtype_size(past->dtype);
    for (int64_t o = 0; o < outer; o++) {
        write_start(c, wi, o / per_batch, seq, max_seq, circular, &start);
        for (int64_t s = 0; s < seq; s++) {
            int64_t pos = (start + s) % max_seq;
            copy_elems(y->data, (o * max_seq + pos) * inner, upd->data, (o * seq + s) * inner,
                       inner, esz);
        }
    }
    return KN_OK;
}

const kn_op_def kn_ops_index[] = {
    {"", "Gather", 1, run_gather, NULL, NULL},
    {"", "GatherElements", 1, run_gather_elements, NULL, NULL},
    {"", "GatherND", 1, run_gather_nd, NULL, NULL},
    {"", "Scatter", 1, run_scatter, NULL, NULL},
    {"", "ScatterElements", 1, run_scatter_elements, NULL, NULL},
    {"", "ScatterND", 1, run_scatter_nd, NULL, NULL},
    {"", "OneHot", 1, run_onehot, NULL, NULL},
    {"", "NonZero", 1, run_nonzero, NULL, NULL},
    {"", "Compress", 1, run_compress, NULL, NULL},
    {"", "Unique", 1, run_unique, NULL, NULL},
    {"", "TopK", 1, run_topk, NULL, NULL},
    {"", "CumSum", 1, run_cumsum, NULL, NULL},
    {"", "CumProd", 1, run_cumprod, NULL, NULL},
    {"", "TensorScatter", 1, run_tensor_scatter, NULL, NULL},
    {0},
};
