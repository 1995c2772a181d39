/* unary.c - operator family 'unary': elementwise one-input operators (Abs ... Swish)
 * and the elementwise ops with small extra inputs, Clip (min/max) and PRelu (slope).
 * SwiGLU (opset 28, Swish_alpha(A) * B) lives here too: it is the Swish activation
 * gating a second input of the same shape, so it is kept next to Swish and PRelu.
 *
 * Every one-input op is a row of unary_ops: a float and a double function (both
 * generated from one expression by UNARY_FN through <tgmath.h>), optionally an exact
 * int64 function, the dtype classes the op accepts and its float attributes.  One
 * generic loop (apply_unary) serves them all: float32 computes in float, float16 and
 * bfloat16 through float, float64 in double, integers exactly through int64 (or
 * through double for the few ops without an integer function, e.g. Erf, Shrink).
 * float32 Exp, Tanh, Erf, Sigmoid, Gelu, Relu, LeakyRelu, Clip, HardSigmoid,
 * HardSwish and Sqrt take the vectorized kernels of kernels/vmath.h instead, split over the
 * session's threads (run_fast); the loop above stays their reference. */
#include "ops/op_util.h"

#include <string.h>
#include <tgmath.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* Attribute values of one node, read once per run. */
typedef struct uparams {
    double a, b, c;   /* float attributes in row order (alpha, beta, ...); Clip: min, max */
    int64_t lo, hi;   /* Clip bounds for integer dtypes */
    bool uns;         /* the integer dtype is unsigned */
} uparams;

typedef float (*unary_f32)(float x, const uparams *p);
typedef double (*unary_f64)(double x, const uparams *p);
typedef int64_t (*unary_int)(int64_t x, const uparams *p);

/* dtype classes an op accepts */
enum { DT_FLOAT = 1, DT_SINT = 2, DT_UINT = 4, DT_BOOL = 8, DT_INT = DT_SINT | DT_UINT };

/* the vmath kernel of a float32 op (FAST_NONE: the scalar loop) */
typedef enum fast_kind {
    FAST_NONE = 0, FAST_EXP, FAST_TANH, FAST_ERF, FAST_SIGMOID, FAST_GELU, FAST_RELU,
    FAST_LEAKY, FAST_CLIP, FAST_HARDSIGMOID, FAST_HARDSWISH, FAST_SQRT
} fast_kind;

typedef struct unary_op {
    const char *name;
    unary_f32 f32;
    unary_f64 f64;
    unary_int i64;         /* exact integer version, NULL: integers go through f64 */
    unsigned classes;
    bool out_bool;         /* output dtype is bool (IsNaN, IsInf) */
    int (*params)(kn_op_ctx *c, uparams *p); /* non-float attributes / extra inputs */
    const char *attr[3];   /* float attributes stored in a, b, c */
    float def[3];
    fast_kind fast;
} unary_op;

/* One expression, two functions: name##_f (float) and name##_d (double).  Inside the
 * expression x is the input, T its type and p the attributes. */
#define UNARY_FN(name, expr)                                                              \
    static float name##_f(float x, const uparams *p)                                      \
    {                                                                                     \
        typedef float T;                                                                  \
        (void)p; (void)sizeof(T);                                                         \
        return (T)(expr);                                                                 \
    }                                                                                     \
    static double name##_d(double x, const uparams *p)                                    \
    {                                                                                     \
        typedef double T;                                                                 \
        (void)p; (void)sizeof(T);                                                         \
        return (T)(expr);                                                                 \
    }

#define K_SQRT1_2 0.70710678118654752440
#define K_SQRT_2_OVER_PI 0.79788456080286535588

/* Round half to even, independent of the current rounding mode. */
static double round_even(double x)
{
    double r = floor(x), d = x - r;
    if (d > 0.5 || (d == 0.5 && fmod(r, 2.0) != 0))
        r += 1;
    return r == 0 ? copysign(0.0, x) : r;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

#define SOFTPLUS(x) ((x) > 0 ? (x) + log1p(exp(-(x))) : log1p(exp(x)))
#define PA ((T)p->a)
#define PB ((T)p->b)
#define PC ((T)p->c)

UNARY_FN(abs, fabs(x))
UNARY_FN(neg, -x)
UNARY_FN(exp, exp(x))
UNARY_FN(log, log(x))
UNARY_FN(sqrt, sqrt(x))
UNARY_FN(recip, (T)1 / x)
UNARY_FN(floor, floor(x))
UNARY_FN(ceil, ceil(x))
UNARY_FN(round, round_even(x))
UNARY_FN(sign, x > 0 ? (T)1 : x < 0 ? (T)-1 : x)
UNARY_FN(sin, sin(x))
UNARY_FN(cos, cos(x))
UNARY_FN(tan, tan(x))
UNARY_FN(asin, asin(x))
UNARY_FN(acos, acos(x))
UNARY_FN(atan, atan(x))
UNARY_FN(sinh, sinh(x))
UNARY_FN(cosh, cosh(x))
UNARY_FN(asinh, asinh(x))
UNARY_FN(acosh, acosh(x))
UNARY_FN(atanh, atanh(x))
UNARY_FN(tanh, tanh(x))
UNARY_FN(erf, erf(x))
UNARY_FN(isnan, isnan(x) ? 1 : 0)
/* a = detect_negative, b = detect_positive */
UNARY_FN(isinf, isinf(x) && (x > 0 ? p->b : p->a) != 0 ? 1 : 0)
UNARY_FN(relu, x < 0 ? (T)0 : x)
UNARY_FN(leaky, x < 0 ? PA * x : x)
UNARY_FN(elu, x < 0 ? PA * expm1(x) : x)
UNARY_FN(selu, x > 0 ? PB * x : PB * (PA * exp(x) - PA))
UNARY_FN(celu, x > 0 ? x : PA * expm1(x / PA))
UNARY_FN(sigmoid, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)))
UNARY_FN(hardsigmoid, clamp01(PA * x + PB))
UNARY_FN(hardswish, x * (T)clamp01(x / (T)6 + (T)0.5))
UNARY_FN(softplus, SOFTPLUS(x))
UNARY_FN(softsign, x / (1 + fabs(x)))
UNARY_FN(mish, x * tanh(SOFTPLUS(x)))
/* a != 0: tanh approximation */
UNARY_FN(gelu, p->a != 0
         ? (T)0.5 * x * (1 + tanh((T)K_SQRT_2_OVER_PI * (x + (T)0.044715 * x * x * x)))
         : (T)0.5 * x * (1 + erf(x * (T)K_SQRT1_2)))
UNARY_FN(thresholded, x > PA ? x : (T)0)
/* a = lambd, b = bias */
UNARY_FN(shrink, x < -PA ? x + PB : x > PA ? x - PB : (T)0)
UNARY_FN(swish, x / (1 + exp(-PA * x)))
/* a = min, b = max; min > max gives max everywhere (as min(max(x, lo), hi)) */
UNARY_FN(clip, x > PB || PA > PB ? PB : x < PA ? PA : x)

/* ---- exact integer versions (negation wraps through unsigned arithmetic) ---- */

static int64_t neg_wrap(int64_t x)
{
    return (int64_t)(0u - (uint64_t)x);
}

static int64_t abs_i(int64_t x, const uparams *p) { return !p->uns && x < 0 ? neg_wrap(x) : x; }
static int64_t neg_i(int64_t x, const uparams *p) { (void)p; return neg_wrap(x); }
static int64_t sign_i(int64_t x, const uparams *p) { return p->uns ? x != 0 : (x > 0) - (x < 0); }
static int64_t relu_i(int64_t x, const uparams *p) { return !p->uns && x < 0 ? 0 : x; }
static int64_t not_i(int64_t x, const uparams *p) { (void)p; return !x; }
static int64_t bitnot_i(int64_t x, const uparams *p) { (void)p; return ~x; }

static int64_t clip_i(int64_t x, const uparams *p)
{
    if (p->uns) {
        uint64_t v = (uint64_t)x, lo = (uint64_t)p->lo, hi = (uint64_t)p->hi;
        return (int64_t)(v > hi || lo > hi ? hi : v < lo ? lo : v);
    }
    return x > p->hi || p->lo > p->hi ? p->hi : x < p->lo ? p->lo : x;
}

/* ---- parameter readers for ops with non-float attributes or extra inputs ---- */

static int isinf_params(kn_op_ctx *c, uparams *p)
{
    p->a = (double)kn_attr_int(c->node, "detect_negative", 1);
    p->b = (double)kn_attr_int(c->node, "detect_positive", 1);
    return KN_OK;
}

static int check_gelu(const kn_node *n, int opset, kn_error *err)
{
    const char *mode = kn_attr_string(n, "approximate", "none");
    if (strcmp(mode, "none") && strcmp(mode, "tanh"))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "Gelu approximate '%s' not supported", mode);
    return KN_OK;
}

static int gelu_params(kn_op_ctx *c, uparams *p)
{
    p->a = !strcmp(kn_attr_string(c->node, "approximate", "none"), "tanh");
    return check_gelu(c->node, c->opset, c->err);
}

/* One Clip bound from input k (opset >= 11): a one-element tensor, or omitted. */
static int clip_bound(kn_op_ctx *c, int k, double *f, int64_t *i)
{
    const kn_tensor *t = kn_op_in(c, k);
    if (!t)
        return KN_OK;
    if (t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "Clip %s must be a scalar, got %lld elements",
                       k == 1 ? "min" : "max", (long long)t->numel);
    if (t->dtype != c->in[0]->dtype)
        return kn_check_same_dtype(c, c->in[0], t);
    *f = kn_load_f64(t->data, t->dtype, 0);
    *i = kn_load_i64(t->data, t->dtype, 0);
    return KN_OK;
}

static int clip_params(kn_op_ctx *c, uparams *p)
{
    /* integer defaults: the whole int64 / uint64 range (uint64 max is -1 as int64) */
    p->lo = p->uns ? 0 : INT64_MIN;
    p->hi = p->uns ? -1 : INT64_MAX;
    p->a = -INFINITY;
    p->b = INFINITY;
    if (c->opset < 11) {
        p->a = kn_attr_float(c->node, "min", -INFINITY);
        p->b = kn_attr_float(c->node, "max", INFINITY);
        return KN_OK;
    }
    int rc = clip_bound(c, 1, &p->a, &p->lo);
    return rc ? rc : clip_bound(c, 2, &p->b, &p->hi);
}

/* ---- the op table ---- */

#define FN(n) n##_f, n##_d
#define SELU_ALPHA 1.67326319217681884765625f
#define SELU_GAMMA 1.05070102214813232421875f

static const unary_op unary_ops[] = {
    {"Abs", FN(abs), abs_i, DT_FLOAT | DT_INT, false, NULL, {0}, {0}},
    {"Neg", FN(neg), neg_i, DT_FLOAT | DT_SINT, false, NULL, {0}, {0}},
    {"Exp", FN(exp), NULL, DT_FLOAT, false, NULL, {0}, {0}, FAST_EXP},
    {"Log", FN(log), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Sqrt", FN(sqrt), NULL, DT_FLOAT, false, NULL, {0}, {0}, FAST_SQRT},
    {"Reciprocal", FN(recip), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Floor", FN(floor), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Ceil", FN(ceil), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Round", FN(round), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Sign", FN(sign), sign_i, DT_FLOAT | DT_INT, false, NULL, {0}, {0}},
    {"Sin", FN(sin), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Cos", FN(cos), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Tan", FN(tan), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Asin", FN(asin), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Acos", FN(acos), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Atan", FN(atan), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Sinh", FN(sinh), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Cosh", FN(cosh), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Asinh", FN(asinh), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Acosh", FN(acosh), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Atanh", FN(atanh), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Tanh", FN(tanh), NULL, DT_FLOAT, false, NULL, {0}, {0}, FAST_TANH},
    {"Erf", FN(erf), NULL, DT_FLOAT | DT_INT, false, NULL, {0}, {0}, FAST_ERF},
    {"IsNaN", FN(isnan), NULL, DT_FLOAT, true, NULL, {0}, {0}},
    {"IsInf", FN(isinf), NULL, DT_FLOAT, true, isinf_params, {0}, {0}},
    /* Not and BitwiseNot take no floats: their float functions are never called */
    {"Not", FN(abs), not_i, DT_BOOL, false, NULL, {0}, {0}},
    {"BitwiseNot", FN(abs), bitnot_i, DT_INT, false, NULL, {0}, {0}},
    {"Relu", FN(relu), relu_i, DT_FLOAT | DT_SINT, false, NULL, {0}, {0}, FAST_RELU},
    {"LeakyRelu", FN(leaky), NULL, DT_FLOAT, false, NULL, {"alpha"}, {0.01f}, FAST_LEAKY},
    {"Elu", FN(elu), NULL, DT_FLOAT, false, NULL, {"alpha"}, {1.0f}},
    {"Selu", FN(selu), NULL, DT_FLOAT, false, NULL, {"alpha", "gamma"}, {SELU_ALPHA, SELU_GAMMA}},
    {"Celu", FN(celu), NULL, DT_FLOAT, false, NULL, {"alpha"}, {1.0f}},
    {"Sigmoid", FN(sigmoid), NULL, DT_FLOAT, false, NULL, {0}, {0}, FAST_SIGMOID},
    {"HardSigmoid", FN(hardsigmoid), NULL, DT_FLOAT, false, NULL, {"alpha", "beta"}, {0.2f, 0.5f}, FAST_HARDSIGMOID},
    {"HardSwish", FN(hardswish), NULL, DT_FLOAT, false, NULL, {0}, {0}, FAST_HARDSWISH},
    {"Softplus", FN(softplus), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Softsign", FN(softsign), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Mish", FN(mish), NULL, DT_FLOAT, false, NULL, {0}, {0}},
    {"Gelu", FN(gelu), NULL, DT_FLOAT, false, gelu_params, {0}, {0}, FAST_GELU},
    {"ThresholdedRelu", FN(thresholded), NULL, DT_FLOAT, false, NULL, {"alpha"}, {1.0f}},
    {"Shrink", FN(shrink), NULL, DT_FLOAT | DT_INT, false, NULL, {"lambd", "bias"}, {0.5f, 0.0f}},
    {"Swish", FN(swish), NULL, DT_FLOAT, false, NULL, {"alpha"}, {1.0f}},
    {"Clip", FN(clip), clip_i, DT_FLOAT | DT_INT, false, clip_params, {0}, {0}, FAST_CLIP},
};

#define N_UNARY_OPS (sizeof unary_ops / sizeof unary_ops[0])

static const unary_op *find_unary(const char *name)
{
    for (size_t i = 0; i < N_UNARY_OPS; i++)
        if (!strcmp(unary_ops[i].name, name))
            return &unary_ops[i];
    return NULL;
}

static unsigned dtype_class(kn_dtype t)
{
    if (kn_dtype_is_float(t))
        return DT_FLOAT;
    if (t == KN_BOOL)
        return DT_BOOL;
    if (kn_dtype_is_int(t))
        return kn_dtype_is_signed(t) ? DT_SINT : DT_UINT;
    return 0;
}

static int read_params(kn_op_ctx *c, const unary_op *op, uparams *p)
{
    memset(p, 0, sizeof *p);
    p->uns = dtype_class(c->in[0]->dtype) == DT_UINT;
    double *slot[3] = {&p->a, &p->b, &p->c};
    for (int k = 0; k < 3 && op->attr[k]; k++)
        *slot[k] = kn_attr_float(c->node, op->attr[k], op->def[k]);
    return op->params ? op->params(c, p) : KN_OK;
}

/* The one elementwise loop: x and y have the same number of elements.  float32 runs
 * in float, float16/bfloat16 through float, float64 in double; integers and bool
 * exactly through int64, or through double for ops without an integer function. */
static void apply_unary(const unary_op *op, const uparams *p, const kn_tensor *x, kn_tensor *y)
{
    size_t n = (size_t)x->numel;
    kn_dtype t = x->dtype;
    if (t == KN_F32 && y->dtype == KN_F32) {
        const float *xs = x->data;
        float *ys = y->data;
        for (size_t i = 0; i < n; i++)
            ys[i] = op->f32(xs[i], p);
    } else if (kn_dtype_is_float(t) && t != KN_F64) {
        for (size_t i = 0; i < n; i++)
            kn_store_f64(y->data, y->dtype, i, op->f32((float)kn_load_f64(x->data, t, i), p));
    } else if (t == KN_F64 || !op->i64) {
        for (size_t i = 0; i < n; i++)
            kn_store_f64(y->data, y->dtype, i, op->f64(kn_load_f64(x->data, t, i), p));
    } else {
        for (size_t i = 0; i < n; i++)
            kn_store_i64(y->data, y->dtype, i, op->i64(kn_load_i64(x->data, t, i), p));
    }
}

/* ---- float32 through vmath, split over the session's threads ---- */

typedef struct fast_job {
    const kn_vmath_ops *vm;
    fast_kind kind;
    bool tanh_gelu;
    float a, b;
    const float *x;
    float *y;
} fast_job;

static void fast_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const fast_job *j = ctx;
    const kn_vmath_ops *vm = j->vm;
    const float *x = j->x + begin;
    float *y = j->y + begin;
    size_t n = (size_t)(end - begin);
    (void)thread_index;
    switch (j->kind) {
    case FAST_EXP: (vm->exp)(x, y, n); break; /* parenthesized: tgmath macros */
    case FAST_TANH: (vm->tanh)(x, y, n); break;
    case FAST_ERF: (vm->erf)(x, y, n); break;
    case FAST_SIGMOID: vm->sigmoid(x, y, n); break;
    case FAST_GELU: (j->tanh_gelu ? vm->gelu_tanh : vm->gelu_erf)(x, y, n); break;
    case FAST_RELU: vm->relu(x, y, n); break;
    case FAST_LEAKY: vm->leaky_relu(x, y, n, j->a); break;
    case FAST_CLIP: vm->clip(x, y, n, j->a, j->b); break;
    case FAST_HARDSIGMOID: vm->hardsigmoid(x, y, n, j->a, j->b); break;
    case FAST_HARDSWISH: vm->hardswish(x, y, n); break;
    case FAST_SQRT: (vm->sqrt)(x, y, n); break;
    case FAST_NONE: break;
    }
}

/* Elements per chunk handed to a thread: fewer for the transcendental kernels. */
#define FAST_GRAIN_MATH 8192
#define FAST_GRAIN_CHEAP 32768

static void run_fast(kn_op_ctx *c, const unary_op *op, const uparams *p, const kn_tensor *x,
                     kn_tensor *y)
{
    fast_job j = {kn_vmath(), op->fast, p->a != 0, (float)p->a, (float)p->b, x->data, y->data};
    bool cheap = op->fast >= FAST_RELU;
    kn_parallel_for(c->pool, x->numel, cheap ? FAST_GRAIN_CHEAP : FAST_GRAIN_MATH, fast_range, &j);
}

static int run_unary(kn_op_ctx *c)
{
    const unary_op *op = find_unary(c->node->op_type);
    if (!op)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "unary op %s is not implemented", c->node->op_type);
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!(dtype_class(x->dtype) & op->classes))
        return kn_unsupported_dtype(c, x->dtype);
    uparams p;
    int rc = read_params(c, op, &p);
    if (rc)
        return rc;
    kn_tensor *y = kn_op_output_uninit(c, 0, op->out_bool ? KN_BOOL : x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    if (op->fast != FAST_NONE && x->dtype == KN_F32)
        run_fast(c, op, &p, x, y);
    else
        apply_unary(op, &p, x, y);
    return KN_OK;
}

/* ---- PRelu: y = x < 0 ? slope * x : x, slope broadcast to x ---- */

/* Slope shape as used against x.  Before opset 7 a 1-D slope of x's channel count
 * applies per channel (axis 1). */
static void prelu_slope_shape(const kn_op_ctx *c, const kn_tensor *x, const kn_tensor *s,
                              int *rank, int64_t *dims)
{
    *rank = s->rank;
    memcpy(dims, s->dims, sizeof(int64_t) * (size_t)s->rank);
    if (c->opset < 7 && s->rank == 1 && x->rank >= 2 && s->dims[0] == x->dims[1] && s->dims[0] != 1) {
        *rank = x->rank - 1;
        for (int i = 0; i < *rank; i++)
            dims[i] = i == 0 ? s->dims[0] : 1;
    }
}

static void prelu_element(const kn_tensor *x, const kn_tensor *s, kn_tensor *y, size_t i, size_t j)
{
    kn_dtype t = x->dtype;
    if (t == KN_F32) {
        float v = ((const float *)x->data)[i];
        ((float *)y->data)[i] = v < 0 ? ((const float *)s->data)[j] * v : v;
    } else if (t == KN_F16 || t == KN_BF16) {
        float v = (float)kn_load_f64(x->data, t, i);
        float r = v < 0 ? (float)kn_load_f64(s->data, t, j) * v : v;
        kn_store_f64(y->data, t, i, r);
    } else if (t == KN_F64) {
        double v = kn_load_f64(x->data, t, i);
        kn_store_f64(y->data, t, i, v < 0 ? kn_load_f64(s->data, t, j) * v : v);
    } else {
        int64_t v = kn_load_i64(x->data, t, i);
        bool neg = kn_dtype_is_signed(t) && v < 0;
        uint64_t prod = (uint64_t)kn_load_i64(s->data, t, j) * (uint64_t)v;
        kn_store_i64(y->data, t, i, neg ? (int64_t)prod : v);
    }
}

static int run_prelu(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *s = c->in[1];
    if (!(dtype_class(x->dtype) & (DT_FLOAT | DT_INT)))
        return kn_unsupported_dtype(c, x->dtype);
    int rc = kn_check_same_dtype(c, x, s);
    if (rc)
        return rc;
    int srank, brank;
    int64_t sdims[KN_MAX_RANK], bdims[KN_MAX_RANK];
    prelu_slope_shape(c, x, s, &srank, sdims);
    rc = kn_broadcast_shape(x->rank, x->dims, srank, sdims, &brank, bdims, c->err);
    if (rc)
        return rc;
    if (brank != x->rank || memcmp(bdims, x->dims, sizeof(int64_t) * (size_t)brank)) {
        char sx[128], ss[128];
        return kn_fail(c->err, KN_ERR_ARG, "PRelu slope %s does not broadcast to X %s",
                       kn_dims_str(s->rank, s->dims, ss, sizeof ss),
                       kn_dims_str(x->rank, x->dims, sx, sizeof sx));
    }
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    int64_t strides[1][KN_MAX_RANK];
    kn_broadcast_strides(x->rank, x->dims, srank, sdims, strides[0]);
    kn_iter it;
    kn_iter_init(&it, x->rank, x->dims, 1, strides);
    for (int64_t i = 0; i < x->numel; i++, kn_iter_next(&it))
        prelu_element(x, s, y, (size_t)i, (size_t)it.off[0]);
    return KN_OK;
}

/* ---- SwiGLU: Y = Swish_alpha(A) * B, A and B of identical shape (no broadcasting).
 * As in the operator's function body, the Swish result is rounded to the input dtype
 * before the multiplication. */

static double swiglu_gate(kn_dtype t, double a, double alpha)
{
    if (t == KN_F64)
        return a / (1.0 + exp(-alpha * a));
    float g = (float)a / (1.0f + expf(-(float)alpha * (float)a));
    if (t == KN_F16)
        return kn_f16_to_f32(kn_f32_to_f16(g));
    if (t == KN_BF16)
        return kn_bf16_to_f32(kn_f32_to_bf16(g));
    return g;
}

static int run_swiglu(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *a = c->in[0], *b = c->in[1];
    if (!(dtype_class(a->dtype) & DT_FLOAT))
        return kn_unsupported_dtype(c, a->dtype);
    int rc = kn_check_same_dtype(c, a, b);
    if (rc)
        return rc;
    if (a->rank != b->rank || memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank)) {
        char sa[128], sb[128];
        return kn_fail(c->err, KN_ERR_ARG, "SwiGLU inputs must have the same shape, got %s and %s",
                       kn_dims_str(a->rank, a->dims, sa, sizeof sa),
                       kn_dims_str(b->rank, b->dims, sb, sizeof sb));
    }
    double alpha = kn_attr_float(c->node, "alpha", 1.0f);
    kn_tensor *y = kn_op_output(c, 0, a->dtype, a->rank, a->dims);
    if (!y)
        return c->err->code;
    kn_dtype t = a->dtype;
    for (int64_t i = 0; i < a->numel; i++) {
        double g = swiglu_gate(t, kn_load_f64(a->data, t, (size_t)i), alpha);
        double v = kn_load_f64(b->data, t, (size_t)i);
        if (t == KN_F64)
            ((double *)y->data)[i] = g * v;
        else
            kn_store_f64(y->data, t, (size_t)i, (float)g * (float)v);
    }
    return KN_OK;
}

/* ---- inference ---- */

static int infer_bool(kn_infer_ctx *ic)
{
    int rc = kn_infer_same_as_input0(ic);
    if (!rc && ic->n_out >= 1 && ic->n_in >= 1 && ic->in[0])
        ic->out[0].dtype = KN_BOOL;
    return rc;
}

#define UNARY(name) {"", name, 1, run_unary, NULL, kn_infer_same_as_input0}

const kn_op_def kn_ops_unary[] = {
    UNARY("Abs"), UNARY("Neg"), UNARY("Exp"), UNARY("Log"), UNARY("Sqrt"),
    UNARY("Reciprocal"), UNARY("Floor"), UNARY("Ceil"), UNARY("Round"), UNARY("Sign"),
    UNARY("Sin"), UNARY("Cos"), UNARY("Tan"), UNARY("Asin"), UNARY("Acos"), UNARY("Atan"),
    UNARY("Sinh"), UNARY("Cosh"), UNARY("Asinh"), UNARY("Acosh"), UNARY("Atanh"),
    UNARY("Tanh"), UNARY("Erf"), UNARY("Not"), UNARY("BitwiseNot"), UNARY("Relu"),
    UNARY("LeakyRelu"), UNARY("Elu"), UNARY("Selu"), UNARY("Celu"), UNARY("Sigmoid"),
    UNARY("HardSigmoid"), UNARY("HardSwish"), UNARY("Softplus"), UNARY("Softsign"),
    UNARY("Mish"), UNARY("ThresholdedRelu"), UNARY("Shrink"), UNARY("Swish"),
    UNARY("Clip"),
    {"", "Gelu", 1, run_unary, check_gelu, kn_infer_same_as_input0},
    {"", "IsNaN", 1, run_unary, NULL, infer_bool},
    {"", "IsInf", 1, run_unary, NULL, infer_bool},
    {"", "PRelu", 1, run_prelu, NULL, kn_infer_same_as_input0},
    {"", "SwiGLU", 1, run_swiglu, NULL, kn_infer_same_as_input0},
    {0},
};
