/* softmax.c - Softmax, LogSoftmax, Hardmax, and the losses built on them:
 * SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
 *
 * Before opset 13 the Softmax family flattens the input to 2-D at `axis`
 * (default 1) and works on rows; from opset 13 it works along one axis
 * (default -1).  Everything computes in double and rounds on store, except float32
 * Softmax / LogSoftmax, which run the vmath row kernels (kernels/vmath.h) over the
 * session's threads: whole rows when the axis is innermost, else column blocks. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* ------------------------------------------------------------------------ */
/* Softmax, LogSoftmax, Hardmax                                              */
/* ------------------------------------------------------------------------ */

typedef enum sm_kind { SM_SOFTMAX, SM_LOGSOFTMAX, SM_HARDMAX } sm_kind;

/* Split x into outer x n x inner, the reduced vectors having n elements spaced
 * by inner. */
static int sm_layout(kn_op_ctx *c, const kn_tensor *x, int64_t *outer, int64_t *n, int64_t *inner)
{
    bool coerce = c->opset < 13;
    int64_t axis_attr = kn_attr_int(c->node, "axis", coerce ? 1 : -1);
    if (x->rank == 0) {
        *outer = *n = *inner = 1;
        return KN_OK;
    }
    int axis;
    if (coerce && axis_attr == x->rank) {
        axis = x->rank;  /* flatten to [numel, 1] */
    } else {
        int rc = kn_norm_axis(axis_attr, x->rank, &axis, c->err);
        if (rc)
            return rc;
    }
    *outer = kn_dims_prod(x->dims, 0, axis);
    if (coerce) {
        *n = kn_dims_prod(x->dims, axis, x->rank);
        *inner = 1;
    } else {
        *n = x->dims[axis];
        *inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    }
    return KN_OK;
}

/* One vector x[base + k*step], k < n, into y. */
static void sm_vector(const kn_tensor *x, kn_tensor *y, int64_t base, int64_t step, int64_t n,
                      sm_kind kind)
{
    if (n == 0)
        return;
    double mx = kn_get_f64(x, base);
    int64_t arg = 0;
    for (int64_t k = 1; k < n; k++) {
        double v = kn_get_f64(x, base + k * step);
        if (v > mx || (isnan(v) && !isnan(mx))) {
            mx = v;
            arg = k;
        }
    }
    if (kind == SM_HARDMAX) {
        for (int64_t k = 0; k < n; k++)
            kn_set_f64(y, base + k * step, k == arg ? 1.0 : 0.0);
        return;
    }
    double sum = 0.0;
    for (int64_t k = 0; k < n; k++)
        sum += exp(kn_get_f64(x, base + k * step) - mx);
    double lse = log(sum);
    for (int64_t k = 0; k < n; k++) {
        double d = kn_get_f64(x, base + k * step) - mx;
        kn_set_f64(y, base + k * step, kind == SM_LOGSOFTMAX ? d - lse : exp(d) / sum);
    }
}

/* ---- float32 fast path ---- */

/* inner positions handled together when the axis is not innermost */
#define SM_COLS 256
/* elements per chunk handed to a thread */
#define SM_GRAIN 16384

typedef struct sm_job {
    const kn_vmath_ops *vm;
    bool log;
    const float *x;
    float *y;
    int64_t n, inner, nblk; /* axis length, inner size, column blocks per outer index */
} sm_job;

static void sm_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const sm_job *j = ctx;
    (void)thread_index;
    for (int64_t r = begin; r < end; r++)
        (j->log ? j->vm->log_softmax : j->vm->softmax)(j->x + r * j->n, j->y + r * j->n,
                                                       (size_t)j->n);
}

/* One block of m <= SM_COLS columns: x, y at the block's first element of k = 0. */
static void sm_columns(const sm_job *j, const float *x, float *y, size_t m)
{
    const kn_vmath_ops *vm = j->vm;
    float mx[SM_COLS], sum[SM_COLS], e[SM_COLS];
    size_t st = (size_t)j->inner;
    memcpy(mx, x, m * sizeof(float));
    for (int64_t k = 1; k < j->n; k++) vm->binary_vv(KN_VM_MAX, mx, x + (size_t)k * st, mx, m);
    memset(sum, 0, m * sizeof(float));
    for (int64_t k = 0; k < j->n; k++) {
        float *yk = y + (size_t)k * st;
        vm->binary_vv(KN_VM_SUB, x + (size_t)k * st, mx, yk, m);
        (vm->exp)(yk, j->log ? e : yk, m);
        vm->binary_vv(KN_VM_ADD, sum, j->log ? e : yk, sum, m);
    }
    if (j->log) {
        for (size_t i = 0; i < m; i++) sum[i] = logf(sum[i]);
        for (int64_t k = 0; k < j->n; k++)
            vm->binary_vv(KN_VM_SUB, y + (size_t)k * st, sum, y + (size_t)k * st, m);
    } else {
        vm->binary_sv(KN_VM_DIV, 1.0f, sum, sum, m);
        for (int64_t k = 0; k < j->n; k++)
            vm->binary_vv(KN_VM_MUL, y + (size_t)k * st, sum, y + (size_t)k * st, m);
    }
}

static void sm_blocks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const sm_job *j = ctx;
    (void)thread_index;
    for (int64_t b = begin; b < end; b++) {
        int64_t o = b / j->nblk, i0 = b % j->nblk * SM_COLS;
        int64_t m = j->inner - i0 < SM_COLS ? j->inner - i0 : SM_COLS;
        size_t off = (size_t)(o * j->n * j->inner + i0);
        sm_columns(j, j->x + off, j->y + off, (size_t)m);
    }
}

static void sm_run_f32(kn_op_ctx *c, const kn_tensor *x, kn_tensor *y, sm_kind kind,
                       int64_t outer, int64_t n, int64_t inner)
{
    sm_job j = {kn_vmath(), kind == SM_LOGSOFTMAX, x->data, y->data, n, inner,
                (inner + SM_COLS - 1) / SM_COLS};
    if (inner == 1) {
        kn_parallel_for(c->pool, outer, SM_GRAIN / n + 1, sm_rows, &j);
        return;
    }
    int64_t per_item = n * (inner < SM_COLS ? inner : SM_COLS);
    kn_parallel_for(c->pool, outer * j.nblk, SM_GRAIN / per_item + 1, sm_blocks, &j);
}

static int sm_run(kn_op_ctx *c, sm_kind kind)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int64_t outer, n, inner;
    int rc = sm_layout(c, x, &outer, &n, &inner);
    if (rc)
        return rc;
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    if (x->dtype == KN_F32 && kind != SM_HARDMAX && x->numel > 0) {
        sm_run_f32(c, x, y, kind, outer, n, inner);
        return KN_OK;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            sm_vector(x, y, o * n * inner + i, inner, n, kind);
    return KN_OK;
}

static int run_softmax(kn_op_ctx *c)
{
    return sm_run(c, SM_SOFTMAX);
}

static int run_logsoftmax(kn_op_ctx *c)
{
    return sm_run(c, SM_LOGSOFTMAX);
}

static int run_hardmax(kn_op_ctx *c)
{
    return sm_run(c, SM_HARDMAX);
}

/* ------------------------------------------------------------------------ */
/* Losses                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum loss_reduction { RED_NONE, RED_SUM, RED_MEAN } loss_reduction;

typedef struct loss_spec {
    int64_t N, C, D;            /* input viewed as [N, C, D] */
    loss_reduction red;
    bool has_ignore;
    int64_t ignore_index;
    const kn_tensor *target, *weight;
} loss_spec;

/* Validate shapes and attributes shared by both losses. */
static int loss_prepare(kn_op_ctx *c, const kn_tensor *x, loss_spec *ls)
{
    memset(ls, 0, sizeof *ls);
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "%s: input rank %d < 2", c->node->op_type, x->rank);
    ls->target = kn_op_in(c, 1);
    ls->weight = kn_op_in(c, 2);
    if (!ls->target)
        return kn_fail(c->err, KN_ERR_MODEL, "%s: target input is missing", c->node->op_type);
    if (!kn_dtype_is_int(ls->target->dtype))
        return kn_unsupported_dtype(c, ls->target->dtype);
    const kn_tensor *t = ls->target;
    bool ok = t->rank == x->rank - 1 && t->dims[0] == x->dims[0];
    for (int i = 1; ok && i < t->rank; i++)
        ok = t->dims[i] == x->dims[i + 1];
    if (!ok) {
        char sx[128], st_[128];
        return kn_fail(c->err, KN_ERR_ARG, "%s: target shape %s does not match input %s",
                       c->node->op_type, kn_dims_str(t->rank, t->dims, st_, sizeof st_),
                       kn_dims_str(x->rank, x->dims, sx, sizeof sx));
    }
    ls->N = x->dims[0];
    ls->C = x->dims[1];
    ls->D = kn_dims_prod(x->dims, 2, x->rank);
    if (ls->weight && (ls->weight->numel != ls->C || !kn_dtype_is_float(ls->weight->dtype)))
        return kn_fail(c->err, KN_ERR_ARG, "%s: weight must be a float vector of %lld elements",
                       c->node->op_type, (long long)ls->C);
    const char *red = kn_attr_string(c->node, "reduction", "mean");
    if (!strcmp(red, "none"))
        ls->red = RED_NONE;
    else if (!strcmp(red, "sum"))
        ls->red = RED_SUM;
    else if (!strcmp(red, "mean"))
        ls->red = RED_MEAN;
    else
        return kn_fail(c->err, KN_ERR_ARG, "%s: unknown reduction '%s'", c->node->op_type, red);
    ls->has_ignore = kn_attr_find(c->node, "ignore_index") != NULL;
    ls->ignore_index = kn_attr_int(c->node, "ignore_index", 0);
    return KN_OK;
}

/* Loss from log-probabilities logp[N, C, D] into output 0 (dtype dt). */
static int loss_compute(kn_op_ctx *c, const loss_spec *ls, const double *logp, kn_dtype dt)
{
    const kn_tensor *t = ls->target;
    kn_tensor *y = ls->red == RED_NONE ? kn_op_output(c, 0, dt, t->rank, t->dims)
                                       : kn_op_output(c, 0, dt, 0, NULL);
    if (!y)
        return c->err->code;
    double total = 0.0, wsum = 0.0;
    for (int64_t n = 0; n < ls->N; n++) {
        for (int64_t d = 0; d < ls->D; d++) {
            int64_t ti = n * ls->D + d;
            int64_t label = kn_load_i64(t->data, t->dtype, (size_t)ti);
            double loss = 0.0, w = 0.0;
            if (!(ls->has_ignore && label == ls->ignore_index)) {
                if (label < 0 || label >= ls->C)
                    return kn_fail(c->err, KN_ERR_RUNTIME, "%s: target %lld out of range [0, %lld)",
                                   c->node->op_type, (long long)label, (long long)ls->C);
                w = ls->weight ? kn_load_f64(ls->weight->data, ls->weight->dtype, (size_t)label) : 1.0;
                loss = -logp[(n * ls->C + label) * ls->D + d] * w;
            }
            if (ls->red == RED_NONE)
                kn_set_f64(y, ti, loss);
            total += loss;
            wsum += w;
        }
    }
    if (ls->red == RED_SUM)
        kn_set_f64(y, 0, total);
    else if (ls->red == RED_MEAN)
        kn_set_f64(y, 0, total / wsum);
    return KN_OK;
}

static int run_nllloss(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    loss_spec ls;
    int rc = loss_prepare(c, x, &ls);
    if (rc)
        return rc;
    double *logp = malloc(sizeof(double) * (size_t)(x->numel > 0 ? x->numel : 1));
    if (!logp)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < x->numel; i++)
        logp[i] = kn_get_f64(x, i);
    rc = loss_compute(c, &ls, logp, x->dtype);
    free(logp);
    return rc;
}

/* Log-softmax over axis 1 of x viewed as [N, C, D] into logp. */
static void log_softmax_axis1(const kn_tensor *x, const loss_spec *ls, double *logp)
{
    for (int64_t n = 0; n < ls->N; n++)
        for (int64_t d = 0; d < ls->D; d++) {
            int64_t base = n * ls->C * ls->D + d;
            double mx = -INFINITY, sum = 0.0;
            for (int64_t k = 0; k < ls->C; k++) {
                double v = kn_get_f64(x, base + k * ls->D);
                mx = v > mx ? v : mx;
            }
            for (int64_t k = 0; k < ls->C; k++)
                sum += exp(kn_get_f64(x, base + k * ls->D) - mx);
            double lse = mx + log(sum);
            for (int64_t k = 0; k < ls->C; k++)
                logp[base + k * ls->D] = kn_get_f64(x, base + k * ls->D) - lse;
        }
}

static int run_sce(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    loss_spec ls;
    int rc = loss_prepare(c, x, &ls);
    if (rc)
        return rc;
    double *logp = malloc(sizeof(double) * (size_t)(x->numel > 0 ? x->numel : 1));
    if (!logp)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    log_softmax_axis1(x, &ls, logp);
    rc = loss_compute(c, &ls, logp, x->dtype);
    if (!rc && c->n_out > 1) {
        kn_tensor *lp = kn_op_output(c, 1, x->dtype, x->rank, x->dims);
        if (!lp)
            rc = c->err->code;
        for (int64_t i = 0; lp && i < x->numel; i++)
            kn_set_f64(lp, i, logp[i]);
    }
    free(logp);
    return rc;
}

/* Load-time check of the losses' reduction attribute. */
static int check_loss(const kn_node *node, int opset, kn_error *err)
{
    const char *red = kn_attr_string(node, "reduction", "mean");
    if (strcmp(red, "none") && strcmp(red, "sum") && strcmp(red, "mean"))
        return kn_fail(err, KN_ERR_MODEL, "%s: unknown reduction '%s'", node->op_type, red);
    return KN_OK;
}

const kn_op_def kn_ops_softmax[] = {
    {"", "Softmax", 1, run_softmax, NULL, kn_infer_same_as_input0},
    {"", "LogSoftmax", 1, run_logsoftmax, NULL, kn_infer_same_as_input0},
    {"", "Hardmax", 1, run_hardmax, NULL, kn_infer_same_as_input0},
    {"", "SoftmaxCrossEntropyLoss", 1, run_sce, check_loss, NULL},
    {"", "NegativeLogLikelihoodLoss", 1, run_nllloss, check_loss, NULL},
    {0},
};
