/* reduce.c - operator family 'reduce': ReduceSum, ReduceMean, ReduceMax,
 * ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp,
 * ReduceSumSquare, ArgMax, ArgMin.
 *
 * One driver serves every reduction: the input's axes are split into kept and
 * reduced ones; an odometer over the kept axes gives the base offset of each
 * output element and a second odometer over the reduced axes visits that
 * element's reduced set.  Each op supplies a small accumulator: a float one
 * (values as double, so float32 sums are accurate) and, for integer inputs, an
 * exact one (int64 / uint64 with wrap-around like the storage type).
 * Reducing an empty set gives the op's identity (0, 1, -inf, +inf, ...).
 * float32 Sum / Mean / Max / SumSquare / L2 over trailing axes (each reduced set a
 * contiguous row) use the vmath reductions instead, rows split over the threads. */
#include "ops/op_util.h"

#include <math.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"

typedef enum red_kind {
    RK_SUM, RK_MEAN, RK_MAX, RK_MIN, RK_PROD, RK_L1, RK_L2,
    RK_LOGSUM, RK_LOGSUMEXP, RK_SUMSQUARE,
} red_kind;

/* Kept / reduced split of an input shape. */
typedef struct reduce_plan {
    int n_keep, n_red;
    int64_t keep_dims[KN_MAX_RANK], keep_str[KN_MAX_RANK];
    int64_t red_dims[KN_MAX_RANK], red_str[KN_MAX_RANK];
    int64_t n_out, n_set;          /* output elements, elements per reduced set */
    int out_rank;
    int64_t out_dims[KN_MAX_RANK];
} reduce_plan;

/* ---- plan ---- */

static int make_plan(const kn_tensor *x, const bool *reduced, bool keepdims, reduce_plan *p)
{
    int64_t str[KN_MAX_RANK];
    kn_strides(x->rank, x->dims, str);
    memset(p, 0, sizeof *p);
    p->n_out = 1;
    p->n_set = 1;
    for (int d = 0; d < x->rank; d++) {
        if (reduced[d]) {
            p->red_dims[p->n_red] = x->dims[d];
            p->red_str[p->n_red++] = str[d];
            p->n_set *= x->dims[d];
            if (keepdims)
                p->out_dims[p->out_rank++] = 1;
        } else {
            p->keep_dims[p->n_keep] = x->dims[d];
            p->keep_str[p->n_keep++] = str[d];
            p->n_out *= x->dims[d];
            p->out_dims[p->out_rank++] = x->dims[d];
        }
    }
    return KN_OK;
}

static void iter_over(kn_iter *it, int n, const int64_t *dims, const int64_t *strides)
{
    int64_t s[1][KN_MAX_RANK];
    memcpy(s[0], strides, sizeof(int64_t) * (size_t)n);
    kn_iter_init(it, n, dims, 1, s);
}

/* ---- axes ---- */

/* Marks the reduced axes of x from the axes attribute or input. */
static int read_axes(kn_op_ctx *c, const kn_tensor *x, bool axes_is_input, bool *reduced)
{
    int64_t axes[KN_MAX_RANK];
    int n_axes = 0;
    if (axes_is_input) {
        const kn_tensor *t = kn_op_in(c, 1);
        if (t) {
            n_axes = kn_read_ints(t, axes, KN_MAX_RANK, c->err);
            if (n_axes < 0)
                return c->err->code;
        }
    } else {
        const int64_t *v;
        int n = kn_attr_ints(c->node, "axes", &v);
        if (n > KN_MAX_RANK)
            return kn_fail(c->err, KN_ERR_ARG, "%s: %d axes given for rank %d",
                           c->node->op_type, n, x->rank);
        for (int i = 0; i < n; i++)
            axes[n_axes++] = v[i];
    }
    /* No axes: reduce all, or with noop_with_empty_axes reduce none (each element
     * alone: Sum/Max/... pass it through, SumSquare squares it, as the reference does). */
    bool noop = n_axes == 0 && kn_attr_int(c->node, "noop_with_empty_axes", 0) != 0;
    for (int d = 0; d < x->rank; d++)
        reduced[d] = n_axes == 0 && !noop;
    if (n_axes == 0)
        return KN_OK;
    for (int i = 0; i < n_axes; i++) {
        int a;
        if (kn_norm_axis(axes[i], x->rank, &a, c->err))
            return c->err->code;
        if (x->rank == 0)
            continue;
        if (reduced[a])
            return kn_fail(c->err, KN_ERR_ARG, "%s: axis %lld is repeated",
                           c->node->op_type, (long long)axes[i]);
        reduced[a] = true;
    }
    return KN_OK;
}

/* ---- float accumulation (double) ---- */

static inline double load_f(const kn_tensor *x, int64_t off)
{
    if (x->dtype == KN_F32)
        return ((const float *)x->data)[off];
    return kn_load_f64(x->data, x->dtype, (size_t)off);
}

static double max_of_set(const kn_tensor *x, const reduce_plan *p, int64_t base)
{
    kn_iter it;
    iter_over(&it, p->n_red, p->red_dims, p->red_str);
    double m = -INFINITY;
    for (int64_t j = 0; j < p->n_set; j++, kn_iter_next(&it)) {
        double v = load_f(x, base + it.off[0]);
        if (isnan(v))
            return v;
        if (v > m)
            m = v;
    }
    return m;
}

static double reduce_set_f(red_kind k, const kn_tensor *x, const reduce_plan *p, int64_t base)
{
    kn_iter it;
    iter_over(&it, p->n_red, p->red_dims, p->red_str);
    double shift = 0;
    if (k == RK_LOGSUMEXP) {
        shift = max_of_set(x, p, base);
        if (isnan(shift) || isinf(shift))
            return shift;
    }
    double a = k == RK_PROD ? 1.0 : k == RK_MAX ? -INFINITY : k == RK_MIN ? INFINITY : 0.0;
    for (int64_t j = 0; j < p->n_set; j++, kn_iter_next(&it)) {
        double v = load_f(x, base + it.off[0]);
        switch (k) {
        case RK_SUM: case RK_MEAN: case RK_LOGSUM: a += v; break;
        case RK_PROD: a *= v; break;
        case RK_L1: a += fabs(v); break;
        case RK_L2: case RK_SUMSQUARE: a += v * v; break;
        case RK_LOGSUMEXP: a += exp(v - shift); break;
        case RK_MAX: if (v > a || isnan(v)) a = v; break;
        case RK_MIN: if (v < a || isnan(v)) a = v; break;
        }
        if (isnan(a) && (k == RK_MAX || k == RK_MIN))
            break;
    }
    switch (k) {
    case RK_MEAN: return a / (double)p->n_set;
    case RK_L2: return sqrt(a);
    case RK_LOGSUM: return log(a);
    case RK_LOGSUMEXP: return log(a) + shift;
    default: return a;
    }
}

/* ---- exact integer accumulation ---- */

static int64_t int_min_of(kn_dtype t)
{
    switch (t) {
    case KN_I8: return INT8_MIN;
    case KN_I16: return INT16_MIN;
    case KN_I32: return INT32_MIN;
    case KN_I64: return INT64_MIN;
    default: return 0; /* unsigned, bool */
    }
}

static int64_t int_max_of(kn_dtype t)
{
    switch (t) {
    case KN_I8: return INT8_MAX;
    case KN_I16: return INT16_MAX;
    case KN_I32: return INT32_MAX;
    case KN_I64: return INT64_MAX;
    case KN_U8: return UINT8_MAX;
    case KN_U16: return UINT16_MAX;
    case KN_U32: return UINT32_MAX;
    case KN_U64: return -1; /* all ones: UINT64_MAX once stored */
    default: return 1;      /* bool */
    }
}

/* Sums and products wrap in uint64 arithmetic (no signed overflow UB). */
static void reduce_set_i(red_kind k, const kn_tensor *x, const reduce_plan *p, int64_t base,
                         void *out, int64_t oi)
{
    bool is_signed = kn_dtype_is_signed(x->dtype);
    kn_iter it;
    iter_over(&it, p->n_red, p->red_dims, p->red_str);
    uint64_t a = k == RK_PROD ? 1u : 0u;
    if (k == RK_MAX)
        a = (uint64_t)int_min_of(x->dtype);
    if (k == RK_MIN)
        a = (uint64_t)int_max_of(x->dtype);
    for (int64_t j = 0; j < p->n_set; j++, kn_iter_next(&it)) {
        int64_t s = kn_load_i64(x->data, x->dtype, (size_t)(base + it.off[0]));
        uint64_t v = (uint64_t)s;
        bool gt = is_signed ? s > (int64_t)a : v > a;
        bool lt = is_signed ? s < (int64_t)a : v < a;
        switch (k) {
        case RK_SUM: case RK_MEAN: a += v; break;
        case RK_PROD: a *= v; break;
        case RK_L1: a += (is_signed && s < 0) ? (uint64_t)0 - v : v; break;
        case RK_SUMSQUARE: a += v * v; break;
        case RK_MAX: if (gt) a = v; break;
        case RK_MIN: if (lt) a = v; break;
        default: break;
        }
    }
    if (k == RK_MEAN && p->n_set > 0) {
        if (is_signed)
            a = (uint64_t)((int64_t)a / p->n_set);
        else
            a = a / (uint64_t)p->n_set;
    }
    kn_store_i64(out, x->dtype, (size_t)oi, (int64_t)a);
}

/* Integer inputs reduced exactly except where the result is inherently real. */
static bool int_exact(red_kind k)
{
    return k != RK_L2 && k != RK_LOGSUM && k != RK_LOGSUMEXP;
}

static bool dtype_ok(red_kind k, kn_dtype t)
{
    if (kn_dtype_is_float(t) || kn_dtype_is_int(t))
        return true;
    return t == KN_BOOL && (k == RK_MAX || k == RK_MIN);
}

/* ---- float32 rows ---- */

#define RED_GRAIN 16384 /* input elements per chunk handed to a thread */

typedef struct red_job {
    const kn_vmath_ops *vm;
    red_kind k;
    const float *x;
    float *y;
    int64_t n; /* row length */
} red_job;

static void red_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const red_job *j = ctx;
    size_t n = (size_t)j->n;
    (void)thread_index;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * j->n;
        float v;
        switch (j->k) {
        case RK_MAX: v = j->vm->max(x, n); break;
        case RK_SUMSQUARE: v = j->vm->sumsq_dev(x, n, 0.0f); break;
        case RK_L2: v = sqrtf(j->vm->sumsq_dev(x, n, 0.0f)); break;
        case RK_MEAN: v = j->vm->sum(x, n) / (float)n; break;
        default: v = j->vm->sum(x, n); break;
        }
        j->y[r] = v;
    }
}

/* The reduced axes are the trailing ones (size-1 axes aside) and not empty. */
static bool trailing_rows(const kn_tensor *x, const bool *reduced, const reduce_plan *p)
{
    bool seen = false;
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] == 1)
            continue;
        if (seen && !reduced[d])
            return false;
        seen |= reduced[d];
    }
    return p->n_set > 0;
}

static bool reduce_f32(kn_op_ctx *c, red_kind k, const kn_tensor *x, const bool *reduced,
                       const reduce_plan *p, kn_tensor *y)
{
    if (x->dtype != KN_F32 || !trailing_rows(x, reduced, p))
        return false;
    if (k != RK_SUM && k != RK_MEAN && k != RK_MAX && k != RK_SUMSQUARE && k != RK_L2)
        return false;
    red_job j = {kn_vmath(), k, x->data, y->data, p->n_set};
    kn_parallel_for(c->pool, p->n_out, RED_GRAIN / p->n_set + 1, red_rows, &j);
    return true;
}

/* ---- driver ---- */

static int run_reduce(kn_op_ctx *c, red_kind k, int axes_input_opset)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!dtype_ok(k, x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    bool reduced[KN_MAX_RANK];
    if (read_axes(c, x, c->opset >= axes_input_opset, reduced))
        return c->err->code;
    reduce_plan p;
    make_plan(x, reduced, kn_attr_int(c->node, "keepdims", 1) != 0, &p);
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, p.out_rank, p.out_dims);
    if (!y)
        return c->err->code;
    if (reduce_f32(c, k, x, reduced, &p, y))
        return KN_OK;
    kn_iter it;
    iter_over(&it, p.n_keep, p.keep_dims, p.keep_str);
    bool exact = !kn_dtype_is_float(x->dtype) && int_exact(k);
    for (int64_t o = 0; o < p.n_out; o++, kn_iter_next(&it)) {
        if (exact)
            reduce_set_i(k, x, &p, it.off[0], y->data, o);
        else if (y->dtype == KN_F32)
            ((float *)y->data)[o] = (float)reduce_set_f(k, x, &p, it.off[0]);
        else
            kn_store_f64(y->data, y->dtype, (size_t)o, reduce_set_f(k, x, &p, it.off[0]));
    }
    return KN_OK;
}

#define REDUCE_OP(fn, kind, opset) \
    static int fn(kn_op_ctx *c) { return run_reduce(c, kind, opset); }

REDUCE_OP(run_sum, RK_SUM, 13)
REDUCE_OP(run_mean, RK_MEAN, 18)
REDUCE_OP(run_max, RK_MAX, 18)
REDUCE_OP(run_min, RK_MIN, 18)
REDUCE_OP(run_prod, RK_PROD, 18)
REDUCE_OP(run_l1, RK_L1, 18)
REDUCE_OP(run_l2, RK_L2, 18)
REDUCE_OP(run_logsum, RK_LOGSUM, 18)
REDUCE_OP(run_logsumexp, RK_LOGSUMEXP, 18)
REDUCE_OP(run_sumsquare, RK_SUMSQUARE, 18)

/* ---- ArgMax / ArgMin ---- */

/* Three-way compare of two elements of x; NaN counts as larger than any number. */
static int cmp_elems(const kn_tensor *x, int64_t a, int64_t b)
{
    if (kn_dtype_is_float(x->dtype)) {
        double u = load_f(x, a), v = load_f(x, b);
        if (isnan(u) || isnan(v))
            return isnan(u) - isnan(v);
        return (u > v) - (u < v);
    }
    int64_t s = kn_load_i64(x->data, x->dtype, (size_t)a);
    int64_t t = kn_load_i64(x->data, x->dtype, (size_t)b);
    if (kn_dtype_is_signed(x->dtype))
        return (s > t) - (s < t);
    return ((uint64_t)s > (uint64_t)t) - ((uint64_t)s < (uint64_t)t);
}

static int run_arg(kn_op_ctx *c, bool want_max)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!kn_dtype_is_float(x->dtype) && !kn_dtype_is_int(x->dtype) && x->dtype != KN_BOOL)
        return kn_unsupported_dtype(c, x->dtype);
    int axis = 0;
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 0), x->rank, &axis, c->err))
        return c->err->code;
    bool reduced[KN_MAX_RANK] = {false};
    if (x->rank > 0)
        reduced[axis] = true;
    bool last = kn_attr_int(c->node, "select_last_index", 0) != 0;
    reduce_plan p;
    make_plan(x, reduced, kn_attr_int(c->node, "keepdims", 1) != 0, &p);
    kn_tensor *y = kn_op_output(c, 0, KN_I64, p.out_rank, p.out_dims);
    if (!y)
        return c->err->code;
    if (p.n_out > 0 && p.n_set == 0)
        return kn_fail(c->err, KN_ERR_RUNTIME, "%s over an empty axis %d",
                       c->node->op_type, axis);
    int64_t step = p.n_red ? p.red_str[0] : 0;
    kn_iter it;
    iter_over(&it, p.n_keep, p.keep_dims, p.keep_str);
    for (int64_t o = 0; o < p.n_out; o++, kn_iter_next(&it)) {
        int64_t best = 0;
        for (int64_t j = 1; j < p.n_set; j++) {
            int r = cmp_elems(x, it.off[0] + j * step, it.off[0] + best * step);
            if (!want_max)
                r = -r;
            if (r > 0 || (r == 0 && last))
                best = j;
        }
        ((int64_t *)y->data)[o] = best;
    }
    return KN_OK;
}

static int run_argmax(kn_op_ctx *c) { return run_arg(c, true); }
static int run_argmin(kn_op_ctx *c) { return run_arg(c, false); }

const kn_op_def kn_ops_reduce[] = {
    {"", "ReduceSum", 1, run_sum, NULL, NULL},
    {"", "ReduceMean", 1, run_mean, NULL, NULL},
    {"", "ReduceMax", 1, run_max, NULL, NULL},
    {"", "ReduceMin", 1, run_min, NULL, NULL},
    {"", "ReduceProd", 1, run_prod, NULL, NULL},
    {"", "ReduceL1", 1, run_l1, NULL, NULL},
    {"", "ReduceL2", 1, run_l2, NULL, NULL},
    {"", "ReduceLogSum", 1, run_logsum, NULL, NULL},
    {"", "ReduceLogSumExp", 1, run_logsumexp, NULL, NULL},
    {"", "ReduceSumSquare", 1, run_sumsquare, NULL, NULL},
    {"", "ArgMax", 1, run_argmax, NULL, NULL},
    {"", "ArgMin", 1, run_argmin, NULL, NULL},
    {0},
};
