/* binary.c - elementwise operators with numpy broadcasting: arithmetic (Add, Sub,
 * Mul, Div, Pow, Mod), variadic Max/Min/Sum/Mean, logic (And, Or, Xor),
 * comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual), bit operators
 * (BitShift, BitwiseAnd/Or/Xor) and Where.
 *
 * How it works: the output shape and each input's broadcast strides are collapsed
 * into as few dimensions as possible (build_plan), then the kernel runs row by
 * row over the innermost dimension.  A row is either handled by a direct float32
 * loop (the fast path: all-float32 arithmetic) or by the generic path, which loads
 * a chunk of each input into one of three computing domains - double for floats
 * (float16/bfloat16 included, rounded on store), int64 for signed integers and
 * uint64 for unsigned integers and bool - runs the operator's kernel over the
 * chunk and stores the result.  Integer arithmetic is exact and wraps like C
 * unsigned arithmetic truncated to the output width.  All-float32 Add/Sub/Mul/Div/
 * Max/Min whose innermost collapsed dimension is contiguous or a scalar for each
 * input (same shape, scalar, bias over the last dim, per-channel NCHW) run the
 * vmath kernels (kernels/vmath.h) split over the session's threads. */
#include "ops/op_util.h"

#include <math.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* ---- computing domains ---- */

enum { DOM_F, DOM_I, DOM_U };

typedef union num {
    double f;
    int64_t i;
    uint64_t u;
} num;

static int dom_of(kn_dtype t)
{
    if (kn_dtype_is_float(t))
        return DOM_F;
    return kn_dtype_is_signed(t) ? DOM_I : DOM_U;
}

/* Load n elements of type t from p[off], p[off+st], ... into dst in t's domain. */
static void load_row(const void *p, kn_dtype t, int64_t off, int64_t st, int64_t n, num *dst)
{
#define LOAD(DT, CT, FIELD, CONV)                                \
    case DT: {                                                   \
        const CT *s = (const CT *)p + off;                       \
        for (int64_t k = 0; k < n; k++)                          \
            dst[k].FIELD = CONV(s[k * st]);                      \
    } break;
#define ASIS(x) (x)
#define NONZERO(x) ((x) != 0)
    switch (t) {
    LOAD(KN_F32, float, f, ASIS)
    LOAD(KN_F64, double, f, ASIS)
    LOAD(KN_F16, uint16_t, f, kn_f16_to_f32)
    LOAD(KN_BF16, uint16_t, f, kn_bf16_to_f32)
    LOAD(KN_I8, int8_t, i, ASIS)
    LOAD(KN_I16, int16_t, i, ASIS)
    LOAD(KN_I32, int32_t, i, ASIS)
    LOAD(KN_I64, int64_t, i, ASIS)
    LOAD(KN_U8, uint8_t, u, ASIS)
    LOAD(KN_U16, uint16_t, u, ASIS)
    LOAD(KN_U32, uint32_t, u, ASIS)
    LOAD(KN_U64, uint64_t, u, ASIS)
    LOAD(KN_BOOL, uint8_t, u, NONZERO)
    default: break;
    }
#undef LOAD
}

/* Store n values of t's domain into the contiguous buffer p at element off.
 * Integers are truncated to the type's width (two's complement wrap). */
static void store_row(void *p, kn_dtype t, int64_t off, int64_t n, const num *src)
{
#define STORE(DT, CT, EXPR)                                      \
    case DT: {                                                   \
        CT *d = (CT *)p + off;                                   \
        for (int64_t k = 0; k < n; k++)                          \
            d[k] = EXPR;                                         \
    } break;
    switch (t) {
    STORE(KN_F32, float, (float)src[k].f)
    STORE(KN_F64, double, src[k].f)
    STORE(KN_F16, uint16_t, kn_f32_to_f16((float)src[k].f))
    STORE(KN_BF16, uint16_t, kn_f32_to_bf16((float)src[k].f))
    STORE(KN_I8, int8_t, (int8_t)(uint8_t)src[k].u)
    STORE(KN_I16, int16_t, (int16_t)(uint16_t)src[k].u)
    STORE(KN_I32, int32_t, (int32_t)(uint32_t)src[k].u)
    STORE(KN_I64, int64_t, src[k].i)
    STORE(KN_U8, uint8_t, (uint8_t)src[k].u)
    STORE(KN_U16, uint16_t, (uint16_t)src[k].u)
    STORE(KN_U32, uint32_t, (uint32_t)src[k].u)
    STORE(KN_U64, uint64_t, src[k].u)
    STORE(KN_BOOL, uint8_t, src[k].u != 0)
    default: break;
    }
#undef STORE
}

/* ---- operator kernels over chunks ---- */

/* What a kernel knows: the domains of its inputs (equal except for Pow) and the
 * operator's integer parameter (Mod's fmod, BitShift's direction). */
typedef struct bctx {
    int dom_a, dom_b;
    int param;
} bctx;

enum { KERN_OK = 0, KERN_DIV_ZERO = 1, KERN_POW_ZERO = 2 };

typedef int (*kern_fn)(const bctx *x, const num *a, const num *b, num *r, int64_t n);

#define EACH(stmt) for (int64_t k = 0; k < n; k++) { stmt; }

/* Operators that are the same on the bits of int64 and uint64 values. */
#define WRAPPING_KERNEL(name, OP)                                                  \
    static int name(const bctx *x, const num *a, const num *b, num *r, int64_t n) \
    {                                                                              \
        if (x->dom_a == DOM_F)                                                     \
            EACH(r[k].f = a[k].f OP b[k].f)                                        \
        else                                                                       \
            EACH(r[k].u = a[k].u OP b[k].u)                                        \
        return KERN_OK;                                                            \
    }
WRAPPING_KERNEL(k_add, +)
WRAPPING_KERNEL(k_sub, -)
WRAPPING_KERNEL(k_mul, *)

/* Comparisons: result 0/1 in .u. */
#define COMPARE_KERNEL(name, OP)                                                   \
    static int name(const bctx *x, const num *a, const num *b, num *r, int64_t n) \
    {                                                                              \
        switch (x->dom_a) {                                                        \
        case DOM_F: EACH(r[k].u = a[k].f OP b[k].f) break;                         \
        case DOM_I: EACH(r[k].u = a[k].i OP b[k].i) break;                         \
        default: EACH(r[k].u = a[k].u OP b[k].u) break;                            \
        }                                                                          \
        return KERN_OK;                                                            \
    }
COMPARE_KERNEL(k_equal, ==)
COMPARE_KERNEL(k_less, <)
COMPARE_KERNEL(k_greater, >)
COMPARE_KERNEL(k_less_equal, <=)
COMPARE_KERNEL(k_greater_equal, >=)

/* Bitwise operators and boolean logic (bool values are 0/1, so & | ^ suffice). */
#define BITS_KERNEL(name, OP)                                                      \
    static int name(const bctx *x, const num *a, const num *b, num *r, int64_t n) \
    {                                                                              \
        EACH(r[k].u = a[k].u OP b[k].u)                                            \
        return KERN_OK;                                                            \
    }
BITS_KERNEL(k_bit_and, &)
BITS_KERNEL(k_bit_or, |)
BITS_KERNEL(k_bit_xor, ^)

/* Max / Min: NaN in either operand gives NaN (numpy maximum/minimum). */
#define EXTREMUM_KERNEL(name, OP)                                                   \
    static int name(const bctx *x, const num *a, const num *b, num *r, int64_t n)  \
    {                                                                               \
        switch (x->dom_a) {                                                         \
        case DOM_F:                                                                 \
            EACH(r[k].f = isnan(a[k].f) || isnan(b[k].f) ? a[k].f + b[k].f          \
                                                         : (a[k].f OP b[k].f ? a[k].f : b[k].f)) \
            break;                                                                  \
        case DOM_I: EACH(r[k].i = a[k].i OP b[k].i ? a[k].i : b[k].i) break;        \
        default: EACH(r[k].u = a[k].u OP b[k].u ? a[k].u : b[k].u) break;           \
        }                                                                           \
        return KERN_OK;                                                             \
    }
EXTREMUM_KERNEL(k_max, >)
EXTREMUM_KERNEL(k_min, <)

/* Integer division truncates toward zero; INT64_MIN / -1 wraps instead of trapping. */
static int k_div(const bctx *x, const num *a, const num *b, num *r, int64_t n)
{
    switch (x->dom_a) {
    case DOM_F:
        EACH(r[k].f = a[k].f / b[k].f)
        return KERN_OK;
    case DOM_I:
        for (int64_t k = 0; k < n; k++) {
            if (b[k].i == 0)
                return KERN_DIV_ZERO;
            r[k].u = b[k].i == -1 ? 0 - a[k].u : (uint64_t)(a[k].i / b[k].i);
        }
        return KERN_OK;
    default:
        for (int64_t k = 0; k < n; k++) {
            if (b[k].u == 0)
                return KERN_DIV_ZERO;
            r[k].u = a[k].u / b[k].u;
        }
        return KERN_OK;
    }
}

/* Mod: param 1 = C fmod (sign of the dividend), 0 = sign of the divisor (Python). */
static double mod_f(double a, double b, int c_fmod)
{
    double m = fmod(a, b);
    if (!c_fmod && m != 0 && (m < 0) != (b < 0))
        m += b;
    return m;
}

static int k_mod(const bctx *x, const num *a, const num *b, num *r, int64_t n)
{
    switch (x->dom_a) {
    case DOM_F:
        EACH(r[k].f = mod_f(a[k].f, b[k].f, x->param))
        return KERN_OK;
    case DOM_I:
        for (int64_t k = 0; k < n; k++) {
            int64_t d = b[k].i;
            if (d == 0)
                return KERN_DIV_ZERO;
            int64_t m = d == -1 ? 0 : a[k].i % d;
            if (!x->param && m != 0 && (m < 0) != (d < 0))
                m += d;
            r[k].i = m;
        }
        return KERN_OK;
    default:
        for (int64_t k = 0; k < n; k++) {
            if (b[k].u == 0)
                return KERN_DIV_ZERO;
            r[k].u = a[k].u % b[k].u;
        }
        return KERN_OK;
    }
}

/* BitShift on unsigned values: param 0 = LEFT, 1 = RIGHT; shifting by the width
 * or more gives 0 (the store truncates narrower types). */
static int k_bitshift(const bctx *x, const num *a, const num *b, num *r, int64_t n)
{
    if (x->param)
        EACH(r[k].u = b[k].u >= 64 ? 0 : a[k].u >> b[k].u)
    else
        EACH(r[k].u = b[k].u >= 64 ? 0 : a[k].u << b[k].u)
    return KERN_OK;
}

/* Exact integer power with wrap-around: base^e for e >= 0 by squaring. */
static uint64_t ipow_u(uint64_t base, uint64_t e)
{
    uint64_t acc = 1;
    while (e) {
        if (e & 1)
            acc *= base;
        base *= base;
        e >>= 1;
    }
    return acc;
}

/* Integer base to a negative integer power: 1/base^e truncated toward zero. */
static int ipow_negative(const bctx *x, num base, uint64_t e, num *r)
{
    bool is_one = x->dom_a == DOM_I ? base.i == 1 : base.u == 1;
    bool is_minus_one = x->dom_a == DOM_I && base.i == -1;
    if (base.u == 0)
        return KERN_POW_ZERO;
    r->i = is_one ? 1 : is_minus_one ? ((e & 1) ? -1 : 1) : 0;
    return KERN_OK;
}

/* double -> the integer domain, truncating and saturating (NaN -> 0). */
static num int_from_double(double v, int dom)
{
    num r;
    if (isnan(v))
        r.u = 0;
    else if (dom == DOM_I)
        r.i = v >= 9.2233720368547758e18 ? INT64_MAX : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v;
    else
        r.u = v >= 1.8446744073709552e19 ? UINT64_MAX : v <= 0 ? 0 : (uint64_t)v;
    return r;
}

static double num_to_double(num v, int dom)
{
    return dom == DOM_F ? v.f : dom == DOM_I ? (double)v.i : (double)v.u;
}

/* Pow: the result has the base's type; the exponent may have any numeric type. */
static int k_pow(const bctx *x, const num *a, const num *b, num *r, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        if (x->dom_a == DOM_F) {
            r[k].f = pow(a[k].f, num_to_double(b[k], x->dom_b));
        } else if (x->dom_b == DOM_F) {
            r[k] = int_from_double(pow(num_to_double(a[k], x->dom_a), b[k].f), x->dom_a);
        } else if (x->dom_b == DOM_I && b[k].i < 0) {
            int rc = ipow_negative(x, a[k], 0 - b[k].u, &r[k]);
            if (rc)
                return rc;
        } else {
            r[k].u = ipow_u(a[k].u, b[k].u);
        }
    }
    return KERN_OK;
}

/* ---- float32 fast rows ---- */

typedef void (*f32_fn)(const float *a, int64_t sa, const float *b, int64_t sb, float *r, int64_t n);

/* A row r[k] = EXPR(x = a[k*sa], y = b[k*sb]) with the common stride patterns
 * written out so the compiler can vectorize them.  r may alias a. */
#define F32_ROW(name, EXPR)                                                        \
    static void name(const float *a, int64_t sa, const float *b, int64_t sb,       \
                     float *r, int64_t n)                                          \
    {                                                                              \
        if (sa == 1 && sb == 1) {                                                  \
            for (int64_t k = 0; k < n; k++) { float x = a[k], y = b[k]; r[k] = (EXPR); } \
        } else if (sa == 1 && sb == 0) {                                           \
            float y = b[0];                                                        \
            for (int64_t k = 0; k < n; k++) { float x = a[k]; r[k] = (EXPR); }    \
        } else if (sa == 0 && sb == 1) {                                           \
            float x = a[0];                                                        \
            for (int64_t k = 0; k < n; k++) { float y = b[k]; r[k] = (EXPR); }    \
        } else {                                                                   \
            for (int64_t k = 0; k < n; k++) {                                      \
                float x = a[k * sa], y = b[k * sb];                                \
                r[k] = (EXPR);                                                     \
            }                                                                      \
        }                                                                          \
    }
F32_ROW(f32_add, x + y)
F32_ROW(f32_sub, x - y)
F32_ROW(f32_mul, x * y)
F32_ROW(f32_div, x / y)
F32_ROW(f32_max, isnan(x) || isnan(y) ? x + y : (x > y ? x : y))
F32_ROW(f32_min, isnan(x) || isnan(y) ? x + y : (x < y ? x : y))

/* ---- operator descriptors ---- */

enum { TF = 1, TS = 2, TU = 4, TB = 8, TNUM = TF | TS | TU, TINT = TS | TU };

/* vmath operation of a binop, or VM_NONE */
#define VM_NONE (-1)

typedef struct binop {
    kern_fn kern;
    f32_fn f32;        /* optional direct float32 row */
    int vm;            /* kn_vm_binop for the vectorized rows, or VM_NONE */
    unsigned types;    /* dtype classes accepted for input A */
    bool bool_out;     /* comparisons and logic produce bool */
    bool mixed;        /* input B may have another dtype (Pow's exponent) */
} binop;

static const binop OP_ADD = {k_add, f32_add, KN_VM_ADD, TNUM, false, false};
static const binop OP_SUB = {k_sub, f32_sub, KN_VM_SUB, TNUM, false, false};
static const binop OP_MUL = {k_mul, f32_mul, KN_VM_MUL, TNUM, false, false};
static const binop OP_DIV = {k_div, f32_div, KN_VM_DIV, TNUM, false, false};
static const binop OP_POW = {k_pow, NULL, VM_NONE, TNUM, false, true};
static const binop OP_MOD = {k_mod, NULL, VM_NONE, TNUM, false, false};
static const binop OP_MAX = {k_max, f32_max, KN_VM_MAX, TNUM, false, false};
static const binop OP_MIN = {k_min, f32_min, KN_VM_MIN, TNUM, false, false};
static const binop OP_SUM = {k_add, f32_add, KN_VM_ADD, TNUM, false, false};
static const binop OP_MEAN = {k_add, f32_add, KN_VM_ADD, TF, false, false};
static const binop OP_AND = {k_bit_and, NULL, VM_NONE, TB, true, false};
static const binop OP_OR = {k_bit_or, NULL, VM_NONE, TB, true, false};
static const binop OP_XOR = {k_bit_xor, NULL, VM_NONE, TB, true, false};
static const binop OP_EQUAL = {k_equal, NULL, VM_NONE, TNUM | TB, true, false};
static const binop OP_LESS = {k_less, NULL, VM_NONE, TNUM | TB, true, false};
static const binop OP_GREATER = {k_greater, NULL, VM_NONE, TNUM | TB, true, false};
static const binop OP_LESS_EQUAL = {k_less_equal, NULL, VM_NONE, TNUM | TB, true, false};
static const binop OP_GREATER_EQUAL = {k_greater_equal, NULL, VM_NONE, TNUM | TB, true, false};
static const binop OP_BITSHIFT = {k_bitshift, NULL, VM_NONE, TU, false, false};
static const binop OP_BIT_AND = {k_bit_and, NULL, VM_NONE, TINT, false, false};
static const binop OP_BIT_OR = {k_bit_or, NULL, VM_NONE, TINT, false, false};
static const binop OP_BIT_XOR = {k_bit_xor, NULL, VM_NONE, TINT, false, false};

static unsigned type_class(kn_dtype t)
{
    if (!kn_dtype_supported(t))
        return 0;
    if (t == KN_BOOL)
        return TB;
    if (kn_dtype_is_float(t))
        return TF;
    return kn_dtype_is_signed(t) ? TS : TU;
}

/* ---- broadcast plan: collapsed shape and per-input strides ---- */

#define PLAN_MAX_IN 3

typedef struct plan {
    int rank;                               /* >= 1 */
    int64_t dims[KN_MAX_RANK];
    int64_t st[PLAN_MAX_IN][KN_MAX_RANK];
} plan;

/* Collapse the output shape: drop size-1 dims and merge neighbours that every
 * input walks contiguously (or broadcasts over entirely). */
static void build_plan(const kn_tensor *out, int n_in, const kn_tensor *const *ins, plan *p)
{
    int64_t st[PLAN_MAX_IN][KN_MAX_RANK];
    for (int j = 0; j < n_in; j++)
        kn_broadcast_strides(out->rank, out->dims, ins[j]->rank, ins[j]->dims, st[j]);
    int r = 0;
    for (int d = 0; d < out->rank; d++) {
        if (out->dims[d] == 1)
            continue;
        bool merge = r > 0;
        for (int j = 0; j < n_in && merge; j++)
            merge = p->st[j][r - 1] == st[j][d] * out->dims[d];
        if (merge) {
            p->dims[r - 1] *= out->dims[d];
        } else {
            p->dims[r] = out->dims[d];
            r++;
        }
        for (int j = 0; j < n_in; j++)
            p->st[j][r - 1] = st[j][d];
    }
    if (r == 0) {
        p->dims[0] = 1;
        for (int j = 0; j < n_in; j++)
            p->st[j][0] = 0;
        r = 1;
    }
    p->rank = r;
}

/* ---- the binary driver ---- */

#define CHUNK 256

static int kern_error(kn_op_ctx *c, int rc)
{
    if (rc == KERN_DIV_ZERO)
        return kn_fail(c->err, KN_ERR_RUNTIME, "integer division by zero");
    return kn_fail(c->err, KN_ERR_RUNTIME, "integer zero raised to a negative power");
}

/* Generic row: out[oo .. oo+n) = op(a[oa + k*sa], b[ob + k*sb]) in chunks. */
static int generic_row(const binop *op, const bctx *x, const kn_tensor *a, int64_t oa, int64_t sa,
                       const kn_tensor *b, int64_t ob, int64_t sb, kn_tensor *out, int64_t oo,
                       int64_t n)
{
    num va[CHUNK], vb[CHUNK], vr[CHUNK];
    for (int64_t k = 0; k < n; k += CHUNK) {
        int64_t m = n - k < CHUNK ? n - k : CHUNK;
        load_row(a->data, a->dtype, oa + k * sa, sa, m, va);
        load_row(b->data, b->dtype, ob + k * sb, sb, m, vb);
        int rc = op->kern(x, va, vb, vr, m);
        if (rc)
            return rc;
        store_row(out->data, out->dtype, oo + k, m, vr);
    }
    return KERN_OK;
}

/* ---- vectorized, threaded float32 rows ---- */

/* Rows longer than this are split into segments so one long row spreads over the
 * threads; a chunk of work handed to a thread covers at least VEC_GRAIN elements. */
#define VEC_SEG 16384
#define VEC_GRAIN 16384
#define VEC_MIN_ROW 8

typedef struct vec_job {
    const kn_vmath_ops *vm;
    kn_vm_binop op;
    const plan *p;
    const float *a, *b;
    float *out;
    int64_t n, seg, nseg; /* row length, segment length, segments per row */
} vec_job;

/* Offsets of row `row` (index over the collapsed outer dims) into a and b. */
static void row_offsets(const plan *p, int64_t row, int64_t *oa, int64_t *ob)
{
    *oa = *ob = 0;
    for (int d = p->rank - 2; d >= 0; d--) {
        int64_t i = row % p->dims[d];
        row /= p->dims[d];
        *oa += i * p->st[0][d];
        *ob += i * p->st[1][d];
    }
}

static void vec_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const vec_job *j = ctx;
    (void)thread_index;
    int64_t sa = j->p->st[0][j->p->rank - 1], sb = j->p->st[1][j->p->rank - 1];
    for (int64_t item = begin; item < end; item++) {
        int64_t row = item / j->nseg, k0 = item % j->nseg * j->seg, oa, ob;
        int64_t m = j->n - k0 < j->seg ? j->n - k0 : j->seg;
        row_offsets(j->p, row, &oa, &ob);
        const float *a = j->a + oa + k0 * sa, *b = j->b + ob + k0 * sb;
        float *y = j->out + row * j->n + k0;
        if (sa && sb)
            j->vm->binary_vv(j->op, a, b, y, (size_t)m);
        else if (sa)
            j->vm->binary_vs(j->op, a, b[0], y, (size_t)m);
        else
            j->vm->binary_sv(j->op, a[0], b, y, (size_t)m);
    }
}

/* The vectorized path when it applies (float32, inner strides 1/1, 1/0 or 0/1, rows
 * long enough); false otherwise. */
static bool apply_vectorized(kn_op_ctx *c, const binop *op, const plan *p, const kn_tensor *a,
                             const kn_tensor *b, kn_tensor *out)
{
    int64_t n = p->dims[p->rank - 1];
    int64_t sa = p->st[0][p->rank - 1], sb = p->st[1][p->rank - 1];
    if (op->vm == VM_NONE || a->dtype != KN_F32 || b->dtype != KN_F32 || out->dtype != KN_F32)
        return false;
    if (n < VEC_MIN_ROW || sa > 1 || sb > 1 || (sa == 0 && sb == 0))
        return false;
    vec_job j = {kn_vmath(), (kn_vm_binop)op->vm, p, a->data, b->data, out->data, n, n, 1};
    if (n > 2 * VEC_SEG) {
        j.seg = VEC_SEG;
        j.nseg = (n + VEC_SEG - 1) / VEC_SEG;
    }
    int64_t items = out->numel / n * j.nseg;
    int64_t grain = VEC_GRAIN / j.seg > 1 ? VEC_GRAIN / j.seg : 1;
    kn_parallel_for(c->pool, items, grain, vec_range, &j);
    return true;
}

/* out = op(a, b), with a and b broadcast to out's (already allocated) shape.
 * a may be out itself (in-place accumulation for the variadic operators). */
static int apply_binop(kn_op_ctx *c, const binop *op, int param, const kn_tensor *a,
                       const kn_tensor *b, kn_tensor *out)
{
    if (out->numel == 0)
        return KN_OK;
    const kn_tensor *ins[2] = {a, b};
    plan p;
    build_plan(out, 2, ins, &p);
    if (apply_vectorized(c, op, &p, a, b, out))
        return KN_OK;
    bctx x = {dom_of(a->dtype), dom_of(b->dtype), param};
    bool fast = op->f32 && a->dtype == KN_F32 && b->dtype == KN_F32 && out->dtype == KN_F32;
    int64_t n = p.dims[p.rank - 1];
    int64_t sa = p.st[0][p.rank - 1], sb = p.st[1][p.rank - 1];
    int64_t rows = out->numel / n;
    kn_iter it;
    kn_iter_init(&it, p.rank - 1, p.dims, 2, p.st);
    for (int64_t row = 0; row < rows; row++) {
        if (fast) {
            op->f32((const float *)a->data + it.off[0], sa, (const float *)b->data + it.off[1], sb,
                    (float *)out->data + row * n, n);
        } else {
            int rc = generic_row(op, &x, a, it.off[0], sa, b, it.off[1], sb, out, row * n, n);
            if (rc)
                return kern_error(c, rc);
        }
        kn_iter_next(&it);
    }
    return KN_OK;
}

/* Check input dtypes against the operator: A's class, and B equal to A unless mixed. */
static int check_types(kn_op_ctx *c, const binop *op, const kn_tensor *a, const kn_tensor *b)
{
    if (!(type_class(a->dtype) & op->types))
        return kn_unsupported_dtype(c, a->dtype);
    if (op->mixed) {
        if (!(type_class(b->dtype) & TNUM))
            return kn_unsupported_dtype(c, b->dtype);
        return KN_OK;
    }
    return kn_check_same_dtype(c, a, b);
}

/* Opsets before 7: with broadcast=1, B's shape lines up with A's starting at 'axis'
 * (default: trailing alignment, which is numpy's).  Returns B viewed accordingly. */
static int legacy_broadcast_view(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, kn_tensor *view)
{
    kn_tensor_view(view, b);
    const kn_attr *axis_attr = kn_attr_find(c->node, "axis");
    if (c->opset >= 7 || !kn_attr_int(c->node, "broadcast", 0) || !axis_attr)
        return KN_OK;
    int axis;
    if (kn_norm_axis(axis_attr->i, a->rank, &axis, c->err))
        return c->err->code;
    if (axis + b->rank > a->rank)
        return kn_fail(c->err, KN_ERR_ARG, "legacy broadcast: B of rank %d does not fit A of rank %d at axis %d",
                       b->rank, a->rank, axis);
    for (int d = b->rank; d < a->rank - axis; d++)
        view->dims[view->rank++] = 1;
    return KN_OK;
}

/* Pow(x, 2) on float32 is x * x exactly (the reference rounds pow in double, where
 * the square is exact): taken as Mul for the vectorized path. */
static bool is_f32_square(const binop *op, const kn_tensor *a, const kn_tensor *b)
{
    double e;
    kn_error ignored = {0};
    return op == &OP_POW && a->dtype == KN_F32 && b->numel == 1 &&
           kn_scalar_f64(b, &e, &ignored) == KN_OK && e == 2.0;
}

static int run_binop(kn_op_ctx *c, const binop *op, int param)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *a = c->in[0];
    kn_tensor b;
    int rc = check_types(c, op, a, c->in[1]);
    if (!rc)
        rc = legacy_broadcast_view(c, a, c->in[1], &b);
    if (rc)
        return rc;
    int rank;
    int64_t dims[KN_MAX_RANK];
    rc = kn_broadcast_shape(a->rank, a->dims, b.rank, b.dims, &rank, dims, c->err);
    if (rc)
        return rc;
    kn_tensor *out = kn_op_output_uninit(c, 0, op->bool_out ? KN_BOOL : a->dtype, rank, dims);
    if (!out)
        return c->err->code;
    if (is_f32_square(op, a, &b))
        return apply_binop(c, &OP_MUL, 0, a, a, out);
    return apply_binop(c, op, param, a, &b, out);
}

/* ---- variadic Max / Min / Sum / Mean ---- */

/* Divide every element of a float tensor by count (Mean). */
static void divide_by(kn_tensor *t, int count)
{
    if (t->dtype == KN_F32) {
        float *d = (float *)t->data;
        for (int64_t k = 0; k < t->numel; k++)
            d[k] /= (float)count;
        return;
    }
    for (int64_t k = 0; k < t->numel; k++)
        kn_store_f64(t->data, t->dtype, (size_t)k, kn_load_f64(t->data, t->dtype, (size_t)k) / count);
}

static int run_variadic(kn_op_ctx *c, const binop *op, bool mean)
{
    if (c->n_in < 1)
        return kn_fail(c->err, KN_ERR_MODEL, "%s needs at least one input", c->node->op_type);
    for (int i = 0; i < c->n_in; i++) {
        KN_REQUIRE_INPUT(c, i);
        int rc = check_types(c, op, c->in[0], c->in[i]);
        if (rc)
            return rc;
    }
    if (c->n_in == 1)
        return kn_op_output_copy(c, 0, c->in[0]) ? KN_OK : c->err->code;
    int rank;
    int64_t dims[KN_MAX_RANK];
    int rc = kn_broadcast_shapes(c->n_in, c->in, &rank, dims, c->err);
    if (rc)
        return rc;
    kn_tensor *out = kn_op_output(c, 0, c->in[0]->dtype, rank, dims);
    if (!out)
        return c->err->code;
    rc = apply_binop(c, op, 0, c->in[0], c->in[1], out);
    for (int i = 2; i < c->n_in && !rc; i++)
        rc = apply_binop(c, op, 0, out, c->in[i], out);
    if (!rc && mean)
        divide_by(out, c->n_in);
    return rc;
}

/* ---- Where ---- */

/* out[k] = cond ? x : y over a collapsed row, copying elements of size es. */
static void where_row(const uint8_t *cond, int64_t sc, const char *x, int64_t sx, const char *y,
                      int64_t sy, char *out, int64_t n, size_t es)
{
#define WHERE_LOOP(CT)                                                                  \
    for (int64_t k = 0; k < n; k++)                                                     \
        ((CT *)out)[k] = cond[k * sc] ? ((const CT *)x)[k * sx] : ((const CT *)y)[k * sy];
    switch (es) {
    case 1: WHERE_LOOP(uint8_t) break;
    case 2: WHERE_LOOP(uint16_t) break;
    case 4: WHERE_LOOP(uint32_t) break;
    default: WHERE_LOOP(uint64_t) break;
    }
#undef WHERE_LOOP
}

static int run_where(kn_op_ctx *c)
{
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *cond = c->in[0], *x = c->in[1], *y = c->in[2];
    if (cond->dtype != KN_BOOL)
        return kn_fail(c->err, KN_ERR_ARG, "Where condition must be bool, got %s",
                       kn_dtype_name(cond->dtype));
    if (!kn_dtype_supported(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int rc = kn_check_same_dtype(c, x, y);
    if (rc)
        return rc;
    int rank;
    int64_t dims[KN_MAX_RANK];
    rc = kn_broadcast_shapes(3, c->in, &rank, dims, c->err);
    if (rc)
        return rc;
    kn_tensor *out = kn_op_output(c, 0, x->dtype, rank, dims);
    if (!out)
        return c->err->code;
    if (out->numel == 0)
        return KN_OK;
    plan p;
    build_plan(out, 3, c->in, &p);
    size_t es = kn_dtype_size(x->dtype);
    int64_t n = p.dims[p.rank - 1], rows = out->numel / n;
    int64_t sc = p.st[0][p.rank - 1], sx = p.st[1][p.rank - 1], sy = p.st[2][p.rank - 1];
    kn_iter it;
    kn_iter_init(&it, p.rank - 1, p.dims, 3, p.st);
    for (int64_t row = 0; row < rows; row++) {
        where_row((const uint8_t *)cond->data + it.off[0], sc,
                  (const char *)x->data + (size_t)it.off[1] * es, sx,
                  (const char *)y->data + (size_t)it.off[2] * es, sy,
                  (char *)out->data + (size_t)(row * n) * es, n, es);
        kn_iter_next(&it);
    }
    return KN_OK;
}

static int infer_where(kn_infer_ctx *ic)
{
    int rc = kn_infer_broadcast(ic);
    if (!rc && ic->n_out >= 1 && ic->n_in >= 2 && ic->in[1])
        ic->out[0].dtype = ic->in[1]->dtype;
    return rc;
}

/* ---- attributes ---- */

static int fmod_attr(const kn_node *node, int *fmod_out, kn_error *err)
{
    int64_t f = kn_attr_int(node, "fmod", 0);
    if (f != 0 && f != 1)
        return kn_fail(err, KN_ERR_ARG, "Mod: fmod must be 0 or 1, got %lld", (long long)f);
    *fmod_out = (int)f;
    return KN_OK;
}

static int shift_direction(const kn_node *node, int *right, kn_error *err)
{
    const char *dir = kn_attr_string(node, "direction", NULL);
    if (!dir)
        return kn_fail(err, KN_ERR_MODEL, "BitShift: attribute 'direction' is required");
    if (strcmp(dir, "LEFT") && strcmp(dir, "RIGHT"))
        return kn_fail(err, KN_ERR_ARG, "BitShift: direction must be LEFT or RIGHT, got '%s'", dir);
    *right = strcmp(dir, "RIGHT") == 0;
    return KN_OK;
}

static int check_bitshift(const kn_node *node, int opset, kn_error *err)
{
    int right = 0;
    return shift_direction(node, &right, err);
}

static int check_mod(const kn_node *node, int opset, kn_error *err)
{
    int fmod_flag = 0;
    return fmod_attr(node, &fmod_flag, err);
}

/* ---- run entry points ---- */

#define BINARY_RUN(fn, desc) \
    static int fn(kn_op_ctx *c) { return run_binop(c, &desc, 0); }
BINARY_RUN(run_add, OP_ADD)
BINARY_RUN(run_sub, OP_SUB)
BINARY_RUN(run_mul, OP_MUL)
BINARY_RUN(run_div, OP_DIV)
BINARY_RUN(run_pow, OP_POW)
BINARY_RUN(run_and, OP_AND)
BINARY_RUN(run_or, OP_OR)
BINARY_RUN(run_xor, OP_XOR)
BINARY_RUN(run_equal, OP_EQUAL)
BINARY_RUN(run_less, OP_LESS)
BINARY_RUN(run_greater, OP_GREATER)
BINARY_RUN(run_less_equal, OP_LESS_EQUAL)
BINARY_RUN(run_greater_equal, OP_GREATER_EQUAL)
BINARY_RUN(run_bitwise_and, OP_BIT_AND)
BINARY_RUN(run_bitwise_or, OP_BIT_OR)
BINARY_RUN(run_bitwise_xor, OP_BIT_XOR)

static int run_mod(kn_op_ctx *c)
{
    int fmod_flag = 0;
    int rc = fmod_attr(c->node, &fmod_flag, c->err);
    return rc ? rc : run_binop(c, &OP_MOD, fmod_flag);
}

static int run_bitshift(kn_op_ctx *c)
{
    int right = 0;
    int rc = shift_direction(c->node, &right, c->err);
    return rc ? rc : run_binop(c, &OP_BITSHIFT, right);
}

static int run_max(kn_op_ctx *c) { return run_variadic(c, &OP_MAX, false); }
static int run_min(kn_op_ctx *c) { return run_variadic(c, &OP_MIN, false); }
static int run_sum(kn_op_ctx *c) { return run_variadic(c, &OP_SUM, false); }
static int run_mean(kn_op_ctx *c) { return run_variadic(c, &OP_MEAN, true); }

const kn_op_def kn_ops_binary[] = {
    {"", "Add", 1, run_add, NULL, kn_infer_broadcast},
    {"", "Sub", 1, run_sub, NULL, kn_infer_broadcast},
    {"", "Mul", 1, run_mul, NULL, kn_infer_broadcast},
    {"", "Div", 1, run_div, NULL, kn_infer_broadcast},
    {"", "Pow", 1, run_pow, NULL, kn_infer_broadcast},
    {"", "Mod", 1, run_mod, check_mod, kn_infer_broadcast},
    {"", "Max", 1, run_max, NULL, kn_infer_broadcast},
    {"", "Min", 1, run_min, NULL, kn_infer_broadcast},
    {"", "Sum", 1, run_sum, NULL, kn_infer_broadcast},
    {"", "Mean", 1, run_mean, NULL, kn_infer_broadcast},
    {"", "And", 1, run_and, NULL, kn_infer_broadcast_bool},
    {"", "Or", 1, run_or, NULL, kn_infer_broadcast_bool},
    {"", "Xor", 1, run_xor, NULL, kn_infer_broadcast_bool},
    {"", "Equal", 1, run_equal, NULL, kn_infer_broadcast_bool},
    {"", "Less", 1, run_less, NULL, kn_infer_broadcast_bool},
    {"", "Greater", 1, run_greater, NULL, kn_infer_broadcast_bool},
    {"", "LessOrEqual", 1, run_less_equal, NULL, kn_infer_broadcast_bool},
    {"", "GreaterOrEqual", 1, run_greater_equal, NULL, kn_infer_broadcast_bool},
    {"", "BitShift", 1, run_bitshift, check_bitshift, kn_infer_broadcast},
    {"", "BitwiseAnd", 1, run_bitwise_and, NULL, kn_infer_broadcast},
    {"", "BitwiseOr", 1, run_bitwise_or, NULL, kn_infer_broadcast},
    {"", "BitwiseXor", 1, run_bitwise_xor, NULL, kn_infer_broadcast},
    {"", "Where", 1, run_where, NULL, infer_where},
    {0},
};
