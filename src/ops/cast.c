/* cast.c - operator family 'cast': Cast (target dtype from the 'to' attribute) and
 * CastLike (target dtype from the second input).
 *
 * Conversions between every pair of dtypes kiln holds:
 *   float -> float   float64 -> float32 rounds once; to float16/bfloat16 rounds to
 *                    nearest even, float64 sources first rounded to odd in float32 so
 *                    there is no double rounding;
 *   float -> int     truncation toward zero, saturating at the target's range, NaN -> 0;
 *   any   -> bool    x != 0 (NaN is true);
 *   int   -> float   one rounding (uint64 read as unsigned);
 *   int   -> int     two's complement wrap, as C / numpy.
 * float8, int4, string and complex are not held by kiln: KN_ERR_UNSUPPORTED.
 * The 'saturate' attribute (opset 19) only concerns float8 and is ignored.
 *
 * BitCast (opset 26) reinterprets the bytes of each element (little endian, as kiln
 * stores them) as another dtype of the same size; the shape is unchanged.  A byte
 * bitcast to bool other than 0 or 1 becomes 1: kiln holds bools as 0/1 only. */
#include "ops/op_util.h"

#include <math.h>
#include <string.h>

/* d rounded to float32 with round-to-odd: truncate, then set the last bit when
 * inexact.  A second rounding to a format with at most 22 significand bits is then
 * the same as rounding d directly. */
static float f64_to_f32_odd(double d)
{
    float f = (float)d;
    if (isnan(d) || (double)f == d)
        return f;
    if (fabs((double)f) > fabs(d))
        f = nextafterf(f, 0.0f);
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits |= 1;
    memcpy(&f, &bits, 4);
    return f;
}

/* Magnitude of an integer rounded to float32 with round-to-odd (see above). */
static float u64_to_f32_odd(uint64_t m)
{
    if (m < ((uint64_t)1 << 24))
        return (float)m;
    int shift = 0;
    while ((m >> shift) >= ((uint64_t)1 << 24))
        shift++;
    uint64_t top = m >> shift;
    if (m & (((uint64_t)1 << shift) - 1))
        top |= 1;
    return ldexpf((float)top, shift);
}

static void store_half(void *data, kn_dtype t, size_t i, float f)
{
    ((uint16_t *)data)[i] = t == KN_F16 ? kn_f32_to_f16(f) : kn_f32_to_bf16(f);
}

static void float_to_float(const kn_tensor *x, kn_tensor *y, size_t i)
{
    double d = kn_load_f64(x->data, x->dtype, i);
    if (y->dtype == KN_F16 || y->dtype == KN_BF16)
        store_half(y->data, y->dtype, i, x->dtype == KN_F64 ? f64_to_f32_odd(d) : (float)d);
    else
        kn_store_f64(y->data, y->dtype, i, d);
}

static void int_to_float(const kn_tensor *x, kn_tensor *y, size_t i)
{
    int64_t v = kn_load_i64(x->data, x->dtype, i);
    bool neg = x->dtype != KN_U64 && v < 0;
    uint64_t mag = neg ? 0u - (uint64_t)v : (uint64_t)v;
    switch (y->dtype) {
    case KN_F64: {
        double d = (double)mag;
        ((double *)y->data)[i] = neg ? -d : d;
        break;
    }
    case KN_F32: {
        float f = (float)mag;
        ((float *)y->data)[i] = neg ? -f : f;
        break;
    }
    default: {
        float f = u64_to_f32_odd(mag);
        store_half(y->data, y->dtype, i, neg ? -f : f);
        break;
    }
    }
}

/* Convert every element of x into y (same shape, any supported dtypes). */
static void cast_elements(const kn_tensor *x, kn_tensor *y)
{
    size_t n = (size_t)x->numel;
    if (x->dtype == y->dtype) {
        if (x->nbytes)
            memcpy(y->data, x->data, x->nbytes);
        return;
    }
    if ((x->dtype == KN_F16 || x->dtype == KN_BF16) && y->dtype == KN_F32) { /* float16 weights */
        (x->dtype == KN_F16 ? kn_f16_to_f32_n : kn_bf16_to_f32_n)(x->data, y->data, n);
        return;
    }
    if (x->dtype == KN_I32 && y->dtype == KN_F32) { /* integer accumulators (ConvInteger -> Cast) */
        const int32_t *xv = x->data;
        float *yv = y->data;
        for (size_t i = 0; i < n; i++) /* rounds like int_to_float: to nearest, symmetric */
            yv[i] = (float)xv[i];
        return;
    }
    bool xf = kn_dtype_is_float(x->dtype), yf = kn_dtype_is_float(y->dtype);
    for (size_t i = 0; i < n; i++) {
        if (xf && yf)
            float_to_float(x, y, i);
        else if (xf)
            kn_store_f64(y->data, y->dtype, i, kn_load_f64(x->data, x->dtype, i));
        else if (yf)
            int_to_float(x, y, i);
        else
            kn_store_i64(y->data, y->dtype, i, kn_load_i64(x->data, x->dtype, i));
    }
}

static int cast_to(kn_op_ctx *c, const kn_tensor *x, kn_dtype to)
{
    if (!kn_dtype_supported(x->dtype))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s from %s is not supported",
                       c->node->op_type, kn_dtype_name(x->dtype));
    if (!kn_dtype_supported(to))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s to %s is not supported",
                       c->node->op_type, kn_dtype_name(to));
    kn_tensor *y = kn_op_output(c, 0, to, x->rank, x->dims);
    if (!y)
        return c->err->code;
    cast_elements(x, y);
    return KN_OK;
}

/* The 'to' attribute of a Cast node. */
static int cast_attr_to(const kn_node *n, kn_dtype *to, kn_error *err)
{
    const kn_attr *a = kn_attr_find(n, "to");
    if (!a || a->type != KN_ATTR_INT)
        return kn_fail(err, KN_ERR_MODEL, "Cast needs an integer attribute 'to'");
    if (a->i <= 0 || a->i > 1000)
        return kn_fail(err, KN_ERR_MODEL, "Cast 'to' = %lld is not a data type", (long long)a->i);
    *to = (kn_dtype)a->i;
    if (!kn_dtype_supported(*to))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "Cast to %s (data type %d) is not supported",
                       kn_dtype_name(*to), (int)*to);
    return KN_OK;
}

static int check_cast(const kn_node *n, int opset, kn_error *err)
{
    kn_dtype to;
    return cast_attr_to(n, &to, err);
}

static int run_cast(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    kn_dtype to;
    int rc = cast_attr_to(c->node, &to, c->err);
    return rc ? rc : cast_to(c, c->in[0], to);
}

static int run_castlike(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    return cast_to(c, c->in[0], c->in[1]->dtype);
}

/* ---- BitCast ---- */

/* The 'to' attribute of a BitCast node, validated as a dtype kiln holds. */
static int bitcast_attr_to(const kn_node *n, kn_dtype *to, kn_error *err)
{
    const kn_attr *a = kn_attr_find(n, "to");
    if (!a || a->type != KN_ATTR_INT)
        return kn_fail(err, KN_ERR_MODEL, "BitCast needs an integer attribute 'to'");
    if (a->i <= 0 || a->i > 1000)
        return kn_fail(err, KN_ERR_MODEL, "BitCast 'to' = %lld is not a data type", (long long)a->i);
    *to = (kn_dtype)a->i;
    if (!kn_dtype_supported(*to))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "BitCast to %s (data type %d) is not supported",
                       kn_dtype_name(*to), (int)*to);
    return KN_OK;
}

static int check_bitcast(const kn_node *n, int opset, kn_error *err)
{
    (void)opset;
    kn_dtype to;
    return bitcast_attr_to(n, &to, err);
}

static int run_bitcast(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    kn_dtype to;
    int rc = bitcast_attr_to(c->node, &to, c->err);
    if (rc)
        return rc;
    if (!kn_dtype_supported(x->dtype) || x->kind != KN_VALUE_TENSOR)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "BitCast from %s is not supported",
                       kn_dtype_name(x->dtype));
    if (kn_dtype_size(x->dtype) != kn_dtype_size(to))
        return kn_fail(c->err, KN_ERR_ARG, "BitCast from %s to %s: element sizes differ (%zu vs %zu bytes)",
                       kn_dtype_name(x->dtype), kn_dtype_name(to), kn_dtype_size(x->dtype),
                       kn_dtype_size(to));
    kn_tensor *y = kn_op_output(c, 0, to, x->rank, x->dims);
    if (!y)
        return c->err->code;
    if (y->nbytes > 0 && x->data && x->nbytes >= y->nbytes)
        memcpy(y->data, x->data, y->nbytes);
    if (to == KN_BOOL)
        for (int64_t i = 0; i < y->numel; i++)
            ((uint8_t *)y->data)[i] = ((uint8_t *)y->data)[i] != 0;
    return KN_OK;
}

/* ---- inference: shape of input 0, dtype of the target ---- */

static int infer_with_dtype(kn_infer_ctx *ic, kn_dtype to)
{
    if (ic->n_out < 1)
        return KN_OK;
    if (ic->n_in >= 1 && ic->in[0]) {
        ic->out[0] = *ic->in[0];
    } else {
        ic->out[0].kind = KN_TYPE_TENSOR;
        ic->out[0].rank = -1;
    }
    ic->out[0].dtype = to;
    return KN_OK;
}

static int infer_cast(kn_infer_ctx *ic)
{
    kn_dtype to;
    int rc = cast_attr_to(ic->node, &to, ic->err);
    return rc ? rc : infer_with_dtype(ic, to);
}

static int infer_castlike(kn_infer_ctx *ic)
{
    if (ic->n_in < 2 || !ic->in[1])
        return KN_OK;
    return infer_with_dtype(ic, ic->in[1]->dtype);
}

static int infer_bitcast(kn_infer_ctx *ic)
{
    kn_dtype to;
    int rc = bitcast_attr_to(ic->node, &to, ic->err);
    return rc ? rc : infer_with_dtype(ic, to);
}

const kn_op_def kn_ops_cast[] = {
    {"", "Cast", 1, run_cast, check_cast, infer_cast},
    {"", "CastLike", 1, run_castlike, NULL, infer_castlike},
    {"", "BitCast", 1, run_bitcast, check_bitcast, infer_bitcast},
    {0},
};
