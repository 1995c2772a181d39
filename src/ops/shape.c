/* shape.c - operator family 'shape': operators that change or report a tensor's
 * shape or make tensors from shapes and attributes: Reshape, Flatten, Squeeze,
 * Unsqueeze, Shape, Size, Identity, Constant, ConstantOfShape, Expand, Range,
 * EyeLike, Dropout (inference behaviour).  Data is moved dtype-agnostically by
 * element size; only Range and EyeLike compute values. */
#include "ops/op_util.h"

#include <math.h>
#include <string.h>

/* Range refuses to produce more elements than this (guards absurd limits/deltas). */
#define RANGE_MAX_ELEMS ((int64_t)1 << 31)

/* ---- small helpers ---- */

/* Output i with input 0's data under a new shape (same element count): a view when
 * the executor allows, else a copy. */
static int output_reshaped(kn_op_ctx *c, int i, int rank, const int64_t *dims)
{
    return kn_op_output_view(c, i, 0, rank, dims) ? KN_OK : c->err->code;
}

/* ---- Reshape ---- */

static int reshape_target(kn_op_ctx *c, const kn_tensor *x, const int64_t *shape, int n,
                          bool allowzero, int64_t *dims)
{
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        int64_t d = shape[i];
        if (d == 0 && !allowzero) {
            if (i >= x->rank)
                return kn_fail(c->err, KN_ERR_ARG,
                               "Reshape: shape[%d] = 0 copies a dimension the rank-%d input lacks",
                               i, x->rank);
            d = x->dims[i];
        } else if (d == -1) {
            if (infer_at >= 0)
                return kn_fail(c->err, KN_ERR_ARG, "Reshape: more than one -1 in shape");
            infer_at = i;
            dims[i] = 1;
            continue;
        } else if (d < -1) {
            return kn_fail(c->err, KN_ERR_ARG, "Reshape: invalid dimension %lld in shape",
                           (long long)d);
        }
        dims[i] = d;
        if (!kn_mul_ok(known, d, &known))
            return kn_fail(c->err, KN_ERR_ARG, "Reshape: target shape element count overflows");
    }
    if (infer_at >= 0) {
        if (known == 0)
            return kn_fail(c->err, KN_ERR_ARG,
                           "Reshape: cannot infer -1 when other dimensions multiply to 0");
        if (x->numel % known)
            return kn_fail(c->err, KN_ERR_ARG,
                           "Reshape: %lld elements do not divide into dimensions of product %lld",
                           (long long)x->numel, (long long)known);
        dims[infer_at] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel) {
        char a[256];
        return kn_fail(c->err, KN_ERR_ARG, "Reshape: cannot reshape %lld elements into %s",
                       (long long)x->numel, kn_dims_str(n, dims, a, sizeof a));
    }
    return KN_OK;
}

static int run_reshape(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t shape[KN_MAX_RANK], dims[KN_MAX_RANK];
    int n = kn_read_int_list(c, c->opset < 5, "shape", 1, shape, KN_MAX_RANK);
    if (n == -2)
        return c->err->code;
    if (n < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "Reshape: missing shape");
    bool allowzero = c->opset >= 14 && kn_attr_int(c->node, "allowzero", 0) != 0;
    int rc = reshape_target(c, x, shape, n, allowzero, dims);
    return rc ? rc : output_reshaped(c, 0, n, dims);
}

/* ---- Flatten ---- */

static int run_flatten(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t axis = kn_attr_int(c->node, "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return kn_fail(c->err, KN_ERR_ARG, "Flatten: axis %lld out of range for rank %d",
                       (long long)kn_attr_int(c->node, "axis", 1), x->rank);
    int64_t dims[2] = {1, 1};
    for (int i = 0; i < x->rank; i++)
        if (!kn_mul_ok(dims[i < axis ? 0 : 1], x->dims[i], &dims[i < axis ? 0 : 1]))
            return kn_fail(c->err, KN_ERR_ARG, "Flatten: dimension product overflows");
    return output_reshaped(c, 0, 2, dims);
}

/* ---- Squeeze / Unsqueeze ---- */

static int read_axes(kn_op_ctx *c, int64_t *axes, int max)
{
    return kn_read_int_list(c, c->opset < 13, "axes", 1, axes, max);
}

static int run_squeeze(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t axes[KN_MAX_RANK];
    int n = read_axes(c, axes, KN_MAX_RANK);
    if (n == -2)
        return c->err->code;
    bool drop[KN_MAX_RANK] = {false};
    if (n < 0) {
        for (int i = 0; i < x->rank; i++)
            drop[i] = x->dims[i] == 1;
    }
    for (int k = 0; k < n; k++) {
        int a;
        if (kn_norm_axis(axes[k], x->rank, &a, c->err) || x->rank == 0)
            return kn_fail(c->err, KN_ERR_ARG, "Squeeze: axis %lld out of range for rank %d",
                           (long long)axes[k], x->rank);
        if (drop[a])
            return kn_fail(c->err, KN_ERR_ARG, "Squeeze: axis %lld repeated", (long long)axes[k]);
        if (x->dims[a] != 1)
            return kn_fail(c->err, KN_ERR_ARG, "Squeeze: axis %d has size %lld, not 1", a,
                           (long long)x->dims[a]);
        drop[a] = true;
    }
    int64_t dims[KN_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!drop[i])
            dims[r++] = x->dims[i];
    return output_reshaped(c, 0, r, dims);
}

static int run_unsqueeze(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t axes[KN_MAX_RANK];
    int n = read_axes(c, axes, KN_MAX_RANK);
    if (n == -2)
        return c->err->code;
    if (n < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "Unsqueeze: missing axes");
    int r = x->rank + n;
    if (r > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Unsqueeze: output rank %d exceeds maximum %d",
                       r, KN_MAX_RANK);
    bool added[KN_MAX_RANK] = {false};
    for (int k = 0; k < n; k++) {
        int a;
        if (kn_norm_axis(axes[k], r, &a, c->err))
            return kn_fail(c->err, KN_ERR_ARG, "Unsqueeze: axis %lld out of range for output rank %d",
                           (long long)axes[k], r);
        if (added[a])
            return kn_fail(c->err, KN_ERR_ARG, "Unsqueeze: axis %lld repeated", (long long)axes[k]);
        added[a] = true;
    }
    int64_t dims[KN_MAX_RANK];
    for (int i = 0, j = 0; i < r; i++)
        dims[i] = added[i] ? 1 : x->dims[j++];
    return output_reshaped(c, 0, r, dims);
}

/* ---- Shape / Size ---- */

static int64_t clamp_shape_index(int64_t v, int rank)
{
    if (v < 0)
        v += rank;
    return v < 0 ? 0 : v > rank ? rank : v;
}

static int run_shape(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t start = 0, end = x->rank;
    if (c->opset >= 15) {
        start = clamp_shape_index(kn_attr_int(c->node, "start", 0), x->rank);
        if (kn_attr_find(c->node, "end"))
            end = clamp_shape_index(kn_attr_int(c->node, "end", x->rank), x->rank);
    }
    int64_t n = end > start ? end - start : 0;
    kn_tensor *o = kn_op_output(c, 0, KN_I64, 1, &n);
    if (!o)
        return c->err->code;
    int64_t *d = o->data;
    for (int64_t i = 0; i < n; i++)
        d[i] = x->dims[start + i];
    return KN_OK;
}

static int run_size(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    kn_tensor *o = kn_op_output(c, 0, KN_I64, 0, NULL);
    if (!o)
        return c->err->code;
    *(int64_t *)o->data = c->in[0]->numel;
    return KN_OK;
}

/* ---- Identity ---- */

static int run_identity(kn_op_ctx *c)
{
    if (!kn_op_in(c, 0))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Identity: missing (optional) input not supported");
    if (c->in[0]->kind != KN_VALUE_TENSOR) /* sequences and optionals: deep copy */
        return kn_tensor_copy(c->out[0], c->in[0], c->err);
    return kn_op_output_copy(c, 0, c->in[0]) ? KN_OK : c->err->code;
}

/* ---- Constant ---- */

static int constant_from_tensor(kn_op_ctx *c, const kn_tensor *t)
{
    if (!t)
        return kn_fail(c->err, KN_ERR_MODEL, "Constant: 'value' is not a tensor");
    if (kn_dtype_size(t->dtype) == 0)
        return kn_unsupported_dtype(c, t->dtype);
    if (t->numel > 0 && !t->data)
        return kn_fail(c->err, KN_ERR_MODEL, "Constant: tensor attribute has no data");
    return kn_op_output_copy(c, 0, t) ? KN_OK : c->err->code;
}

/* Output 0 as a scalar (rank 0) or a 1-D list of count values of dtype dt
 * copied from v (a negative count, from an absent list, gives an empty list). */
static int constant_values(kn_op_ctx *c, kn_dtype dt, int rank, int count, const void *v)
{
    int64_t len = count < 0 ? 0 : count;
    kn_tensor *o = kn_op_output(c, 0, dt, rank, &len);
    if (!o)
        return c->err->code;
    if (o->nbytes && v)
        memcpy(o->data, v, o->nbytes);
    return KN_OK;
}

static int run_constant(kn_op_ctx *c)
{
    const kn_node *n = c->node;
    const kn_attr *a;
    if ((a = kn_attr_find(n, "value")))
        return constant_from_tensor(c, a->type == KN_ATTR_TENSOR ? a->t : NULL);
    if (kn_attr_find(n, "value_float")) {
        float f = kn_attr_float(n, "value_float", 0.0f);
        return constant_values(c, KN_F32, 0, 1, &f);
    }
    if (kn_attr_find(n, "value_int")) {
        int64_t i = kn_attr_int(n, "value_int", 0);
        return constant_values(c, KN_I64, 0, 1, &i);
    }
    if (kn_attr_find(n, "value_floats")) {
        const float *v = NULL;
        int count = kn_attr_floats(n, "value_floats", &v);
        return constant_values(c, KN_F32, 1, count, v);
    }
    if (kn_attr_find(n, "value_ints")) {
        const int64_t *v = NULL;
        int count = kn_attr_ints(n, "value_ints", &v);
        return constant_values(c, KN_I64, 1, count, v);
    }
    if (kn_attr_find(n, "value_string") || kn_attr_find(n, "value_strings"))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Constant: string values are not supported");
    const kn_attr *sp = kn_attr_find(n, "sparse_value");
    if (sp && sp->t) /* the reader densifies sparse tensors */
        return kn_op_output_copy(c, 0, sp->t) ? KN_OK : c->err->code;
    if (sp)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Constant: sparse_value could not be read");
    return kn_fail(c->err, KN_ERR_MODEL, "Constant: no value attribute");
}

/* ---- ConstantOfShape ---- */

static int run_constant_of_shape(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    int64_t dims[KN_MAX_RANK];
    if (c->in[0]->rank != 1)
        return kn_fail(c->err, KN_ERR_ARG, "ConstantOfShape: shape input must be 1-D, got rank %d",
                       c->in[0]->rank);
    int r = kn_read_ints(c->in[0], dims, KN_MAX_RANK, c->err);
    if (r < 0)
        return c->err->code;
    for (int i = 0; i < r; i++)
        if (dims[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "ConstantOfShape: negative dimension %lld",
                           (long long)dims[i]);
    const kn_tensor *v = kn_attr_tensor(c->node, "value");
    kn_dtype dt = v ? v->dtype : KN_F32;
    size_t es = kn_dtype_size(dt);
    if (es == 0)
        return kn_unsupported_dtype(c, dt);
    if (v && (v->numel != 1 || !v->data))
        return kn_fail(c->err, KN_ERR_MODEL, "ConstantOfShape: 'value' must hold one element");
    kn_tensor *o = kn_op_output(c, 0, dt, r, dims);
    if (!o)
        return c->err->code;
    if (v) {
        char *d = o->data;
        for (int64_t i = 0; i < o->numel; i++)
            kn_copy_elem(d + (size_t)i * es, v->data, es);
    }
    return KN_OK;
}

/* ---- Expand ---- */

/* Fill dst (shape rank/dims, contiguous) from src read at element strides (0 on
 * broadcast axes).  Inner runs with stride 1 are copied with one memcpy. */
static void broadcast_copy(char *dst, const char *src, int rank, const int64_t *dims,
                           const int64_t *strides, size_t es, int64_t numel)
{
    if (numel == 0)
        return;
    if (rank == 0) {
        kn_copy_elem(dst, src, es);
        return;
    }
    int64_t inner = dims[rank - 1], istr = strides[rank - 1];
    int64_t idx[KN_MAX_RANK] = {0}, off = 0, rows = numel / inner;
    size_t run = (size_t)inner * es;
    for (int64_t r = 0; r < rows; r++) {
        const char *s = src + (size_t)off * es;
        if (istr == 1) {
            memcpy(dst, s, run);
        } else {
            for (int64_t j = 0; j < inner; j++)
                kn_copy_elem(dst + (size_t)j * es, s, es);
        }
        dst += run;
        for (int d = rank - 2; d >= 0; d--) {
            off += strides[d];
            if (++idx[d] < dims[d])
                break;
            off -= strides[d] * dims[d];
            idx[d] = 0;
        }
    }
}

static int run_expand(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0];
    int64_t shape[KN_MAX_RANK], dims[KN_MAX_RANK], strides[KN_MAX_RANK];
    if (c->in[1]->rank != 1)
        return kn_fail(c->err, KN_ERR_ARG, "Expand: shape input must be 1-D, got rank %d",
                       c->in[1]->rank);
    int n = kn_read_ints(c->in[1], shape, KN_MAX_RANK, c->err);
    if (n < 0)
        return c->err->code;
    for (int i = 0; i < n; i++)
        if (shape[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "Expand: negative dimension %lld in shape",
                           (long long)shape[i]);
    int r;
    int rc = kn_broadcast_shape(x->rank, x->dims, n, shape, &r, dims, c->err);
    if (rc)
        return rc;
    kn_tensor *o = kn_op_output(c, 0, x->dtype, r, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0)
        return KN_OK;
    kn_broadcast_strides(r, dims, x->rank, x->dims, strides);
    broadcast_copy(o->data, x->data, r, dims, strides, kn_dtype_size(x->dtype), o->numel);
    return KN_OK;
}

/* ---- Range ---- */

/* Number of elements of an exact integer range, or -1 if too many. */
static int64_t range_count_int(int64_t start, int64_t limit, int64_t delta)
{
    uint64_t span, step;
    if (delta > 0) {
        if (limit <= start)
            return 0;
        span = (uint64_t)limit - (uint64_t)start;
        step = (uint64_t)delta;
    } else {
        if (limit >= start)
            return 0;
        span = (uint64_t)start - (uint64_t)limit;
        step = delta == INT64_MIN ? (uint64_t)1 << 63 : (uint64_t)(-delta);
    }
    uint64_t n = span / step + (span % step != 0);
    return n > (uint64_t)RANGE_MAX_ELEMS ? -1 : (int64_t)n;
}

static int range_int(kn_op_ctx *c, kn_dtype dt)
{
    int64_t start, limit, delta;
    start = kn_load_i64(c->in[0]->data, dt, 0);
    limit = kn_load_i64(c->in[1]->data, dt, 0);
    delta = kn_load_i64(c->in[2]->data, dt, 0);
    if (delta == 0)
        return kn_fail(c->err, KN_ERR_ARG, "Range: delta is zero");
    int64_t n = range_count_int(start, limit, delta);
    if (n < 0)
        return kn_fail(c->err, KN_ERR_ARG, "Range: too many elements");
    kn_tensor *o = kn_op_output(c, 0, dt, 1, &n);
    if (!o)
        return c->err->code;
    int64_t v = start;
    for (int64_t i = 0; i < n; i++) {
        kn_store_i64(o->data, dt, (size_t)i, v);
        if (i + 1 < n)
            v += delta; /* stays within [start, limit): no overflow */
    }
    return KN_OK;
}

static int range_float(kn_op_ctx *c, kn_dtype dt)
{
    double start = kn_load_f64(c->in[0]->data, dt, 0);
    double limit = kn_load_f64(c->in[1]->data, dt, 0);
    double delta = kn_load_f64(c->in[2]->data, dt, 0);
    if (delta == 0 || !isfinite(start) || !isfinite(limit) || !isfinite(delta))
        return kn_fail(c->err, KN_ERR_ARG, "Range: start/limit must be finite and delta non-zero");
    double cnt = ceil((limit - start) / delta);
    if (!(cnt <= (double)RANGE_MAX_ELEMS))
        return kn_fail(c->err, KN_ERR_ARG, "Range: too many elements (%g)", cnt);
    int64_t n = cnt > 0 ? (int64_t)cnt : 0;
    kn_tensor *o = kn_op_output(c, 0, dt, 1, &n);
    if (!o)
        return c->err->code;
    if (dt == KN_F32) {
        float *d = o->data;
        for (int64_t i = 0; i < n; i++)
            d[i] = (float)(start + (double)i * delta);
    } else {
        for (int64_t i = 0; i < n; i++)
            kn_store_f64(o->data, dt, (size_t)i, start + (double)i * delta);
    }
    return KN_OK;
}

static int run_range(kn_op_ctx *c)
{
    for (int i = 0; i < 3; i++) {
        KN_REQUIRE_INPUT(c, i);
        if (c->in[i]->numel != 1)
            return kn_fail(c->err, KN_ERR_ARG, "Range: input %d must be a scalar, has %lld elements",
                           i, (long long)c->in[i]->numel);
    }
    kn_dtype dt = c->in[0]->dtype;
    if (c->in[1]->dtype != dt || c->in[2]->dtype != dt)
        return kn_fail(c->err, KN_ERR_ARG, "Range: start, limit and delta must share a dtype");
    if (kn_dtype_is_int(dt) && dt != KN_U64)
        return range_int(c, dt);
    if (kn_dtype_is_float(dt))
        return range_float(c, dt);
    return kn_unsupported_dtype(c, dt);
}

/* ---- EyeLike ---- */

static int run_eyelike(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (x->rank != 2)
        return kn_fail(c->err, KN_ERR_ARG, "EyeLike: input must be 2-D, got rank %d", x->rank);
    const kn_attr *da = kn_attr_find(c->node, "dtype");
    kn_dtype dt = da ? (kn_dtype)kn_attr_int(c->node, "dtype", 0) : x->dtype;
    if (da && (da->i < 0 || da->i >= KN_DTYPE_COUNT_ONNX))
        return kn_fail(c->err, KN_ERR_ARG, "EyeLike: invalid dtype %lld", (long long)da->i);
    if (!kn_dtype_supported(dt))
        return kn_unsupported_dtype(c, dt);
    int64_t k = kn_attr_int(c->node, "k", 0);
    kn_tensor *o = kn_op_output(c, 0, dt, 2, x->dims);
    if (!o)
        return c->err->code;
    int64_t rows = x->dims[0], cols = x->dims[1];
    for (int64_t i = 0; i < rows; i++) {
        /* j = i + k, computed so that huge |k| cannot overflow */
        if ((k >= 0 && k >= cols) || (k < 0 && -(k + 1) >= i))
            continue;
        int64_t j = i + k;
        if (j >= 0 && j < cols)
            kn_store_f64(o->data, dt, (size_t)(i * cols + j), 1.0);
    }
    return KN_OK;
}

/* ---- Dropout (inference) ---- */

static int dropout_ratio(kn_op_ctx *c, double *ratio)
{
    *ratio = 0.5;
    if (c->opset < 12) {
        *ratio = kn_attr_float(c->node, "ratio", 0.5f);
        return KN_OK;
    }
    const kn_tensor *r = kn_op_in(c, 1);
    if (r) {
        if (!kn_dtype_is_float(r->dtype))
            return kn_fail(c->err, KN_ERR_ARG, "Dropout: ratio must be a float");
        return kn_scalar_f64(r, ratio, c->err);
    }
    return KN_OK;
}

static int run_dropout(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    double ratio;
    int rc = dropout_ratio(c, &ratio);
    if (rc)
        return rc;
    bool training = false;
    if (c->opset >= 12 && kn_op_in(c, 2)) {
        int64_t t;
        if ((rc = kn_scalar_i64(c->in[2], &t, c->err)))
            return rc;
        training = t != 0;
    }
    if (training && !(ratio >= 0 && ratio < 1))
        return kn_fail(c->err, KN_ERR_ARG, "Dropout: ratio %g is outside [0, 1)", ratio);
    /* A non-zero ratio in training mode draws a random mask.  ONNX leaves the
     * generator open (the reference tests' masks are numpy's MT19937 draws), and
     * kiln's own generator (random.c) cannot reproduce them, so this stays out. */
    if (training && ratio != 0)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED,
                       "Dropout: training mode with a non-zero ratio (random mask) is not supported");
    if (!kn_op_output_copy(c, 0, x))
        return c->err->code;
    if (c->n_out > 1) {
        kn_dtype mdt = c->opset >= 10 ? KN_BOOL : x->dtype;
        kn_tensor *m = kn_op_output(c, 1, mdt, x->rank, x->dims);
        if (!m)
            return c->err->code;
        for (int64_t i = 0; i < m->numel; i++)
            kn_store_f64(m->data, mdt, (size_t)i, 1.0);
    }
    return KN_OK;
}

static int infer_dropout(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0])
        return KN_OK;
    for (int i = 0; i < ic->n_out && i < 2; i++) {
        ic->out[i] = *ic->in[0];
        if (i == 1 && ic->opset >= 10)
            ic->out[i].dtype = KN_BOOL;
    }
    return KN_OK;
}


/* ---- static inference ---- */

/* Output i becomes a tensor of dtype dt with unknown rank. */
static void infer_unknown(kn_infer_ctx *ic, int i, kn_dtype dt)
{
    kn_type *t = &ic->out[i];
    memset(t, 0, sizeof *t);
    t->kind = KN_TYPE_TENSOR;
    t->dtype = dt;
    t->rank = -1;
}

static void infer_set_dim(kn_type *t, int i, int64_t v)
{
    t->dims[i].value = v;
    t->dims[i].param = NULL;
}

static int infer_shape(kn_infer_ctx *ic)
{
    if (ic->n_out < 1)
        return KN_OK;
    infer_unknown(ic, 0, KN_I64);
    kn_type *t = &ic->out[0];
    t->rank = 1;
    infer_set_dim(t, 0, -1);
    const kn_type *x = ic->n_in > 0 ? ic->in[0] : NULL;
    if (x && x->rank >= 0) {
        int64_t start = 0, end = x->rank;
        if (ic->opset >= 15) {
            start = clamp_shape_index(kn_attr_int(ic->node, "start", 0), x->rank);
            if (kn_attr_find(ic->node, "end"))
                end = clamp_shape_index(kn_attr_int(ic->node, "end", x->rank), x->rank);
        }
        infer_set_dim(t, 0, end > start ? end - start : 0);
    }
    return KN_OK;
}

static int infer_size(kn_infer_ctx *ic)
{
    if (ic->n_out >= 1) {
        infer_unknown(ic, 0, KN_I64);
        ic->out[0].rank = 0;
    }
    return KN_OK;
}

static int infer_flatten(kn_infer_ctx *ic)
{
    const kn_type *x = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!x || ic->n_out < 1)
        return KN_OK;
    infer_unknown(ic, 0, x->dtype);
    if (x->rank < 0)
        return KN_OK;
    int64_t axis = kn_attr_int(ic->node, "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return KN_OK; /* the kernel reports it */
    kn_type *t = &ic->out[0];
    t->rank = 2;
    int64_t p[2] = {1, 1};
    for (int i = 0; i < x->rank; i++) {
        int64_t *q = &p[i < axis ? 0 : 1];
        if (*q >= 0 && (x->dims[i].value < 0 || !kn_mul_ok(*q, x->dims[i].value, q)))
            *q = -1;
    }
    infer_set_dim(t, 0, p[0]);
    infer_set_dim(t, 1, p[1]);
    return KN_OK;
}

static int infer_constant(kn_infer_ctx *ic)
{
    if (ic->n_out < 1)
        return KN_OK;
    const kn_node *n = ic->node;
    const kn_attr *a;
    kn_type *t = &ic->out[0];
    if ((a = kn_attr_find(n, "value")) && a->type == KN_ATTR_TENSOR && a->t) {
        kn_type_from_tensor(t, a->t);
    } else if (kn_attr_find(n, "value_float") || kn_attr_find(n, "value_int")) {
        infer_unknown(ic, 0, kn_attr_find(n, "value_float") ? KN_F32 : KN_I64);
        t->rank = 0;
    } else if ((a = kn_attr_find(n, "value_floats")) || (a = kn_attr_find(n, "value_ints"))) {
        infer_unknown(ic, 0, a->type == KN_ATTR_FLOATS ? KN_F32 : KN_I64);
        t->rank = 1;
        infer_set_dim(t, 0, a->n);
    }
    return KN_OK;
}

/* Integer list from attribute `name` (use_attr) or constant input idx: count, or -1
 * when unknown at load time. */
static int infer_int_list(kn_infer_ctx *ic, bool use_attr, const char *name, int idx,
                          int64_t *out)
{
    if (use_attr) {
        const int64_t *v;
        int n = kn_attr_ints(ic->node, name, &v);
        if (n < 0 || n > KN_MAX_RANK)
            return -1;
        memcpy(out, v, sizeof(int64_t) * (size_t)n);
        return n;
    }
    const kn_tensor *t = idx < ic->n_in ? ic->in_const[idx] : NULL;
    if (!t || t->rank > 1)
        return -1;
    return kn_read_ints(t, out, KN_MAX_RANK, NULL);
}

static int infer_reshape(kn_infer_ctx *ic)
{
    const kn_type *x = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!x || ic->n_out < 1)
        return KN_OK;
    infer_unknown(ic, 0, x->dtype);
    int64_t shape[KN_MAX_RANK];
    int n = infer_int_list(ic, ic->opset < 5, "shape", 1, shape);
    if (n < 0)
        return KN_OK;
    bool allowzero = ic->opset >= 14 && kn_attr_int(ic->node, "allowzero", 0) != 0;
    kn_type *t = &ic->out[0];
    t->rank = n;
    int infer_at = -1;
    int64_t known = 1, total = 1;
    for (int i = 0; i < x->rank && total >= 0; i++)
        if (x->dims[i].value < 0 || !kn_mul_ok(total, x->dims[i].value, &total))
            total = -1;
    if (x->rank < 0)
        total = -1;
    for (int i = 0; i < n; i++) {
        infer_set_dim(t, i, shape[i] >= 0 ? shape[i] : -1);
        if (shape[i] == 0 && !allowzero)
            t->dims[i] = i < x->rank ? x->dims[i] : (kn_dim){-1, NULL};
        if (shape[i] == -1)
            infer_at = i;
        else if (known >= 0 && (t->dims[i].value < 0 || !kn_mul_ok(known, t->dims[i].value, &known)))
            known = -1;
    }
    if (infer_at >= 0 && known > 0 && total >= 0 && total % known == 0)
        infer_set_dim(t, infer_at, total / known);
    return KN_OK;
}

static int infer_squeeze(kn_infer_ctx *ic)
{
    const kn_type *x = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!x || ic->n_out < 1)
        return KN_OK;
    infer_unknown(ic, 0, x->dtype);
    if (x->rank < 0)
        return KN_OK;
    int64_t axes[KN_MAX_RANK];
    int n = infer_int_list(ic, ic->opset < 13, "axes", 1, axes);
    bool given = ic->opset < 13 ? kn_attr_find(ic->node, "axes") != NULL
                                : ic->n_in > 1 && ic->in[1] != NULL;
    if (given && n < 0)
        return KN_OK;
    bool drop[KN_MAX_RANK] = {false};
    for (int i = 0; !given && i < x->rank; i++) {
        if (x->dims[i].value < 0)
            return KN_OK; /* might be 1 */
        drop[i] = x->dims[i].value == 1;
    }
    for (int k = 0; given && k < n; k++) {
        int a;
        if (kn_norm_axis(axes[k], x->rank, &a, NULL) || x->rank == 0)
            return KN_OK;
        drop[a] = true;
    }
    kn_type *t = &ic->out[0];
    t->rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (!drop[i])
            t->dims[t->rank++] = x->dims[i];
    return KN_OK;
}

static int infer_unsqueeze(kn_infer_ctx *ic)
{
    const kn_type *x = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!x || ic->n_out < 1)
        return KN_OK;
    infer_unknown(ic, 0, x->dtype);
    int64_t axes[KN_MAX_RANK];
    int n = infer_int_list(ic, ic->opset < 13, "axes", 1, axes);
    if (x->rank < 0 || n < 0 || x->rank + n > KN_MAX_RANK)
        return KN_OK;
    int r = x->rank + n;
    bool added[KN_MAX_RANK] = {false};
    for (int k = 0; k < n; k++) {
        int a;
        if (kn_norm_axis(axes[k], r, &a, NULL))
            return KN_OK;
        added[a] = true;
    }
    kn_type *t = &ic->out[0];
    t->rank = r;
    for (int i = 0, j = 0; i < r; i++) {
        if (added[i])
            infer_set_dim(t, i, 1);
        else if (j < x->rank)
            t->dims[i] = x->dims[j++];
        else
            infer_set_dim(t, i, -1); /* repeated axis: the kernel reports it */
    }
    return KN_OK;
}

const kn_op_def kn_ops_shape[] = {
    {"", "Reshape", 1, run_reshape, NULL, infer_reshape},
    {"", "Flatten", 1, run_flatten, NULL, infer_flatten},
    {"", "Squeeze", 1, run_squeeze, NULL, infer_squeeze},
    {"", "Unsqueeze", 1, run_unsqueeze, NULL, infer_unsqueeze},
    {"", "Shape", 1, run_shape, NULL, infer_shape},
    {"", "Size", 1, run_size, NULL, infer_size},
    {"", "Identity", 1, run_identity, NULL, kn_infer_same_as_input0, true},
    {"", "Constant", 1, run_constant, NULL, infer_constant},
    {"", "ConstantOfShape", 1, run_constant_of_shape, NULL, NULL},
    {"", "Expand", 1, run_expand, NULL, NULL},
    {"", "Range", 1, run_range, NULL, NULL},
    {"", "EyeLike", 1, run_eyelike, NULL, NULL},
    {"", "Dropout", 1, run_dropout, NULL, infer_dropout},
    {0},
};
