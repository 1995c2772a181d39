/* norm.c - normalization operators: BatchNormalization (inference and training
 * mode), InstanceNormalization, LayerNormalization, GroupNormalization,
 * RMSNormalization, LRN, MeanVarianceNormalization, LpNormalization.
 *
 * Inputs of any float dtype; statistics are accumulated in double and results
 * rounded on store to the input's dtype.  float32 LayerNormalization with per-row
 * scale/bias and inference BatchNormalization take vmath kernels (kernels/vmath.h)
 * over the session's threads instead; the double loops stay their reference. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* input elements per chunk handed to a thread */
#define NORM_GRAIN 16384

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static int require_float(kn_op_ctx *c, const kn_tensor *t)
{
    if (!kn_dtype_is_float(t->dtype))
        return kn_unsupported_dtype(c, t->dtype);
    return KN_OK;
}

static int require_numeric_param(kn_op_ctx *c, const kn_tensor *t, const char *what)
{
    if (!kn_dtype_is_float(t->dtype) && !kn_dtype_is_int(t->dtype))
        return kn_fail(c->err, KN_ERR_ARG, "%s: %s has dtype %s", c->node->op_type, what,
                       kn_dtype_name(t->dtype));
    return KN_OK;
}

/* Dtype of output i: its declared type when the graph gives one, else def. */
static kn_dtype declared_dtype(kn_op_ctx *c, int i, kn_dtype def)
{
    if (i >= c->node->n_out || c->node->out[i] < 0)
        return def;
    const kn_value *v = &c->graph->values[c->node->out[i]];
    if (v->has_type && v->type.kind == KN_TYPE_TENSOR && kn_dtype_is_float(v->type.dtype))
        return v->type.dtype;
    return def;
}

/* Stash dtype for statistic outputs (Mean / InvStdDev): stash_type attribute. */
static kn_dtype stash_dtype(kn_op_ctx *c)
{
    int64_t s = kn_attr_int(c->node, "stash_type", 1);
    kn_dtype dt = (s > 0 && s < KN_DTYPE_COUNT_ONNX) ? (kn_dtype)s : KN_F32;
    return kn_dtype_is_float(dt) ? dt : KN_F32;
}

/* A parameter (scale, bias) broadcast unidirectionally to x's shape: values as
 * doubles plus strides over x's dims. */
typedef struct bparam {
    double *v;
    int64_t strides[KN_MAX_RANK];
} bparam;

static int bparam_make(kn_op_ctx *c, const kn_tensor *p, const kn_tensor *x, const char *what,
                       bparam *bp)
{
    memset(bp, 0, sizeof *bp);
    bool ok = p->rank <= x->rank;
    for (int i = 0; ok && i < p->rank; i++) {
        int64_t d = p->dims[i], xd = x->dims[x->rank - p->rank + i];
        ok = d == xd || d == 1;
    }
    if (!ok) {
        char sp[128], sx[128];
        return kn_fail(c->err, KN_ERR_ARG, "%s: %s of shape %s cannot broadcast to %s",
                       c->node->op_type, what, kn_dims_str(p->rank, p->dims, sp, sizeof sp),
                       kn_dims_str(x->rank, x->dims, sx, sizeof sx));
    }
    int rc = require_numeric_param(c, p, what);
    if (rc)
        return rc;
    kn_broadcast_strides(x->rank, x->dims, p->rank, p->dims, bp->strides);
    return KN_OK;
}

/* The values of a checked parameter as doubles, for the reference path only (the
 * float32 fast path reads the tensor itself and allocates nothing). */
static int bparam_load(kn_op_ctx *c, const kn_tensor *p, bparam *bp)
{
    if (!p)
        return KN_OK;
    bp->v = malloc(sizeof(double) * (size_t)(p->numel > 0 ? p->numel : 1));
    if (!bp->v)
        return kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    for (int64_t i = 0; i < p->numel; i++)
        bp->v[i] = kn_load_f64(p->data, p->dtype, (size_t)i);
    return KN_OK;
}

/* A parameter of shape [n] (or n elements in any shape) as doubles. */
static double *param_vec(kn_op_ctx *c, const kn_tensor *p, int64_t n, const char *what)
{
    if (!p) {
        kn_fail(c->err, KN_ERR_MODEL, "%s: input %s is missing", c->node->op_type, what);
        return NULL;
    }
    if (p->numel != n) {
        char s[128];
        kn_fail(c->err, KN_ERR_ARG, "%s: %s has shape %s, expected %lld elements",
                c->node->op_type, what, kn_dims_str(p->rank, p->dims, s, sizeof s), (long long)n);
        return NULL;
    }
    if (require_numeric_param(c, p, what))
        return NULL;
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!v) {
        kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        v[i] = kn_load_f64(p->data, p->dtype, (size_t)i);
    return v;
}

/* Mean and (biased) variance of the strided sequence x[off + k*step], k < n. */
static void mean_var(const kn_tensor *x, int64_t off, int64_t step, int64_t n, double *mean,
                     double *var)
{
    double s = 0.0;
    for (int64_t k = 0; k < n; k++)
        s += kn_get_f64(x, off + k * step);
    double m = n ? s / (double)n : 0.0;
    double q = 0.0;
    for (int64_t k = 0; k < n; k++) {
        double d = kn_get_f64(x, off + k * step) - m;
        q += d * d;
    }
    *mean = m;
    *var = n ? q / (double)n : 0.0;
}

/* ------------------------------------------------------------------------ */
/* BatchNormalization                                                        */
/* ------------------------------------------------------------------------ */

typedef struct bn_params {
    int64_t N, C, S;        /* batch, channels, spatial size */
    int64_t pn;             /* elements per parameter: C, or C*S (opset 7 spatial=0) */
    double *scale, *bias, *mean, *var;
} bn_params;

static void bn_free(bn_params *p)
{
    free(p->scale), free(p->bias), free(p->mean), free(p->var);
}

static int bn_load(kn_op_ctx *c, const kn_tensor *x, bn_params *p)
{
    memset(p, 0, sizeof *p);
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "BatchNormalization: input rank %d < 2", x->rank);
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->S = x->rank > 2 ? kn_dims_prod(x->dims, 2, x->rank) : 1;
    const kn_tensor *sc = kn_op_in(c, 1);
    if (!sc)
        return kn_fail(c->err, KN_ERR_MODEL, "BatchNormalization: scale is missing");
    p->pn = p->C;
    if (sc->numel != p->C && sc->numel == p->C * p->S && c->opset < 9)
        p->pn = p->C * p->S;
    if (!(p->scale = param_vec(c, sc, p->pn, "scale")) ||
        !(p->bias = param_vec(c, kn_op_in(c, 2), p->pn, "B")) ||
        !(p->mean = param_vec(c, kn_op_in(c, 3), p->pn, "mean")) ||
        !(p->var = param_vec(c, kn_op_in(c, 4), p->pn, "var"))) {
        bn_free(p);
        return c->err->code;
    }
    return KN_OK;
}

/* Y = (X - mean) / sqrt(var + eps) * scale + B with the given statistics. */
static void bn_apply(const kn_tensor *x, kn_tensor *y, const bn_params *p, const double *mean,
                     const double *var, double eps)
{
    for (int64_t n = 0; n < p->N; n++) {
        for (int64_t ch = 0; ch < p->C; ch++) {
            int64_t base = (n * p->C + ch) * p->S;
            for (int64_t s = 0; s < p->S; s++) {
                int64_t k = p->pn == p->C ? ch : ch * p->S + s;
                double inv = 1.0 / sqrt(var[k] + eps);
                double v = (kn_get_f64(x, base + s) - mean[k]) * inv * p->scale[k] + p->bias[k];
                kn_set_f64(y, base + s, v);
            }
        }
    }
}

/* Batch mean and biased variance per channel (over N and spatial dims). */
static void bn_batch_stats(const kn_tensor *x, const bn_params *p, double *mean, double *var)
{
    for (int64_t ch = 0; ch < p->C; ch++) {
        double s = 0.0, q = 0.0;
        int64_t cnt = p->N * p->S;
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t k = 0; k < p->S; k++)
                s += kn_get_f64(x, (n * p->C + ch) * p->S + k);
        double m = cnt ? s / (double)cnt : 0.0;
        for (int64_t n = 0; n < p->N; n++)
            for (int64_t k = 0; k < p->S; k++) {
                double d = kn_get_f64(x, (n * p->C + ch) * p->S + k) - m;
                q += d * d;
            }
        mean[ch] = m;
        var[ch] = cnt ? q / (double)cnt : 0.0;
    }
}

typedef struct bn_job {
    const kn_vmath_ops *vm;
    const float *x, *a, *b; /* per channel: y = x * a + b */
    float *y;
    int64_t C, S;
} bn_job;

static void bn_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const bn_job *j = ctx;
    (void)thread_index;
    for (int64_t pl = begin; pl < end; pl++) {
        int64_t ch = pl % j->C;
        j->vm->affine(j->x + pl * j->S, j->y + pl * j->S, (size_t)j->S, j->a[ch], j->b[ch]);
    }
}

/* float32 inference with per-channel statistics: one affine map per (n, c) plane.
 * Returns false (nothing done) when it does not apply. */
static bool bn_apply_f32(kn_op_ctx *c, const kn_tensor *x, kn_tensor *y, const bn_params *p,
                         double eps)
{
    if (x->dtype != KN_F32 || p->pn != p->C || x->numel == 0)
        return false;
    float *ab = malloc(sizeof(float) * 2 * (size_t)p->C);
    if (!ab)
        return false;
    for (int64_t ch = 0; ch < p->C; ch++) {
        double a = p->scale[ch] / sqrt(p->var[ch] + eps);
        ab[ch] = (float)a;
        ab[p->C + ch] = (float)(p->bias[ch] - p->mean[ch] * a);
    }
    bn_job j = {kn_vmath(), x->data, ab, ab + p->C, y->data, p->C, p->S};
    kn_parallel_for(c->pool, p->N * p->C, NORM_GRAIN / (p->S + 1) + 1, bn_planes, &j);
    free(ab);
    return true;
}

static bool bn_training(kn_op_ctx *c)
{
    if (c->opset >= 14)
        return kn_attr_int(c->node, "training_mode", 0) != 0;
    /* before opset 14 the training outputs' presence selects training mode */
    return c->node->n_out > 1 && c->node->out[1] >= 0;
}

/* Output i (if the node has it) filled from a per-channel vector. */
static int bn_store_vec(kn_op_ctx *c, int i, const kn_tensor *like, const double *v, int64_t n)
{
    if (i >= c->n_out)
        return KN_OK;
    kn_dtype dt = like ? like->dtype : c->in[0]->dtype;
    if (!kn_dtype_is_float(dt))
        dt = c->in[0]->dtype;
    kn_tensor *t = kn_op_output(c, i, dt, 1, &n);
    if (!t)
        return c->err->code;
    for (int64_t k = 0; k < n; k++)
        kn_set_f64(t, k, v[k]);
    return KN_OK;
}

static int bn_run_training(kn_op_ctx *c, const kn_tensor *x, kn_tensor *y, const bn_params *p,
                           double eps)
{
    if (p->pn != p->C)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED,
                       "BatchNormalization: training mode with spatial=0 not supported");
    double momentum = kn_attr_float(c->node, "momentum", 0.9f);
    double *bm = calloc((size_t)p->C + 1, sizeof(double));
    double *bv = calloc((size_t)p->C + 1, sizeof(double));
    double *rm = calloc((size_t)p->C + 1, sizeof(double));
    double *rv = calloc((size_t)p->C + 1, sizeof(double));
    int rc = bm && bv && rm && rv ? KN_OK : kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    if (!rc) {
        bn_batch_stats(x, p, bm, bv);
        bn_apply(x, y, p, bm, bv, eps);
        for (int64_t k = 0; k < p->C; k++) {
            rm[k] = p->mean[k] * momentum + bm[k] * (1.0 - momentum);
            rv[k] = p->var[k] * momentum + bv[k] * (1.0 - momentum);
        }
        rc = bn_store_vec(c, 1, kn_op_in(c, 3), rm, p->C);
        if (!rc)
            rc = bn_store_vec(c, 2, kn_op_in(c, 4), rv, p->C);
        if (!rc)  /* opset < 14: saved_mean, saved_var */
            rc = bn_store_vec(c, 3, kn_op_in(c, 3), bm, p->C);
        if (!rc)
            rc = bn_store_vec(c, 4, kn_op_in(c, 4), bv, p->C);
    }
    free(bm), free(bv), free(rm), free(rv);
    return rc;
}

static int run_batchnorm(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = require_float(c, x);
    if (rc)
        return rc;
    bn_params p;
    if ((rc = bn_load(c, x, &p)))
        return rc;
    double eps = kn_attr_float(c->node, "epsilon", 1e-5f);
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        rc = c->err->code;
    else if (bn_training(c))
        rc = bn_run_training(c, x, y, &p, eps);
    else {
        if (!bn_apply_f32(c, x, y, &p, eps))
            bn_apply(x, y, &p, p.mean, p.var, eps);
        /* inference: optional outputs pass the running statistics through */
        for (int i = 1; !rc && i < c->n_out; i++)
            rc = bn_store_vec(c, i, kn_op_in(c, i % 2 ? 3 : 4), i % 2 ? p.mean : p.var, p.pn);
    }
    bn_free(&p);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* InstanceNormalization                                                     */
/* ------------------------------------------------------------------------ */

static int run_instancenorm(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = require_float(c, x);
    if (rc)
        return rc;
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "InstanceNormalization: input rank %d < 2", x->rank);
    int64_t N = x->dims[0], C = x->dims[1], S = kn_dims_prod(x->dims, 2, x->rank);
    double eps = kn_attr_float(c->node, "epsilon", 1e-5f);
    double *scale = param_vec(c, kn_op_in(c, 1), C, "scale");
    double *bias = scale ? param_vec(c, kn_op_in(c, 2), C, "B") : NULL;
    kn_tensor *y = bias ? kn_op_output(c, 0, x->dtype, x->rank, x->dims) : NULL;
    if (!y) {
        free(scale), free(bias);
        return c->err->code;
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t ch = 0; ch < C; ch++) {
            int64_t base = (n * C + ch) * S;
            double m, v;
            mean_var(x, base, 1, S, &m, &v);
            double inv = 1.0 / sqrt(v + eps);
            for (int64_t s = 0; s < S; s++)
                kn_set_f64(y, base + s, (kn_get_f64(x, base + s) - m) * inv * scale[ch] + bias[ch]);
        }
    }
    free(scale), free(bias);
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* LayerNormalization and RMSNormalization                                   */
/* ------------------------------------------------------------------------ */

/* Allocate the optional statistic output i with shape dims[:axis] + ones. */
static kn_tensor *stat_output(kn_op_ctx *c, int i, const kn_tensor *x, int axis)
{
    int64_t dims[KN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        dims[d] = d < axis ? x->dims[d] : 1;
    return kn_op_output(c, i, declared_dtype(c, i, stash_dtype(c)), x->rank, dims);
}

typedef struct ln_job {
    const kn_vmath_ops *vm;
    const float *x, *scale, *bias;
    float *y;
    int64_t inner;
    float eps;
    kn_tensor *mean_out, *inv_out;
} ln_job;

static void ln_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const ln_job *j = ctx;
    (void)thread_index;
    for (int64_t o = begin; o < end; o++) {
        float m, r;
        j->vm->layer_norm(j->x + o * j->inner, j->y + o * j->inner, (size_t)j->inner, j->scale,
                          j->bias, j->eps, &m, &r);
        if (j->mean_out)
            kn_set_f64(j->mean_out, o, m);
        if (j->inv_out)
            kn_set_f64(j->inv_out, o, r);
    }
}

/* p (float32) holds one value per element of a row: its broadcast strides over x
 * are 0 before axis and x's own strides from axis on. */
static bool per_row_param(const kn_tensor *p, const kn_tensor *x, const bparam *bp, int axis)
{
    if (!p)
        return true;
    if (p->dtype != KN_F32)
        return false;
    int64_t st[KN_MAX_RANK];
    kn_strides(x->rank, x->dims, st);
    for (int d = 0; d < x->rank; d++)
        if (x->dims[d] != 1 && bp->strides[d] != (d < axis ? 0 : st[d]))
            return false;
    return true;
}

static bool layernorm_f32(kn_op_ctx *c, const kn_tensor *x, kn_tensor *y, const bparam *ps,
                          const bparam *pb, int axis, float eps, kn_tensor *mean_out,
                          kn_tensor *inv_out)
{
    const kn_tensor *scale = c->in[1], *bias = kn_op_in(c, 2);
    int64_t outer = kn_dims_prod(x->dims, 0, axis), inner = kn_dims_prod(x->dims, axis, x->rank);
    if (x->dtype != KN_F32 || inner == 0 || !per_row_param(scale, x, ps, axis) ||
        !per_row_param(bias, x, pb, axis))
        return false;
    ln_job j = {kn_vmath(), x->data, scale->data, bias ? bias->data : NULL, y->data, inner, eps,
                mean_out, inv_out};
    kn_parallel_for(c->pool, outer, NORM_GRAIN / inner + 1, ln_rows, &j);
    return true;
}

/* Normalize each row of `inner` trailing elements; rms selects RMSNormalization
 * (no mean subtraction, no bias). */
static int row_norm(kn_op_ctx *c, bool rms)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *scale = c->in[1], *bias = rms ? NULL : kn_op_in(c, 2);
    int rc = require_float(c, x);
    if (rc)
        return rc;
    int axis;
    if ((rc = kn_norm_axis(kn_attr_int(c->node, "axis", -1), x->rank, &axis, c->err)))
        return rc;
    if (x->rank == 0)
        return kn_fail(c->err, KN_ERR_ARG, "%s: input must have rank >= 1", c->node->op_type);
    double eps = kn_attr_float(c->node, "epsilon", 1e-5f);
    int64_t outer = kn_dims_prod(x->dims, 0, axis), inner = kn_dims_prod(x->dims, axis, x->rank);
    bparam ps = {0}, pb = {0};
    kn_tensor *y = NULL, *mean_out = NULL, *inv_out = NULL;
    if (!(rc = bparam_make(c, scale, x, "scale", &ps)) &&
        !(bias && (rc = bparam_make(c, bias, x, "B", &pb)))) {
        y = kn_op_output_uninit(c, 0, x->dtype, x->rank, x->dims);
        if (y && !rms && c->n_out > 1)
            mean_out = stat_output(c, 1, x, axis);
        if (y && !rms && c->n_out > 2 && mean_out)
            inv_out = stat_output(c, 2, x, axis);
        if (!y || (!rms && c->n_out > 1 && !mean_out) || (!rms && c->n_out > 2 && !inv_out))
            rc = c->err->code;
    }
    if (!rc && !rms && layernorm_f32(c, x, y, &ps, &pb, axis, (float)eps, mean_out, inv_out))
        return KN_OK;
    if (!rc && !(rc = bparam_load(c, scale, &ps)))
        rc = bparam_load(c, bias, &pb);
    if (!rc) {
        int64_t strides[2][KN_MAX_RANK];
        memcpy(strides[0], ps.strides, sizeof strides[0]);
        memcpy(strides[1], pb.strides, sizeof strides[1]);
        kn_iter it;
        kn_iter_init(&it, x->rank, x->dims, 2, strides);
        for (int64_t o = 0; o < outer; o++) {
            int64_t base = o * inner;
            double m = 0.0, v;
            if (rms) {
                double q = 0.0;
                for (int64_t k = 0; k < inner; k++) {
                    double e = kn_get_f64(x, base + k);
                    q += e * e;
                }
                v = inner ? q / (double)inner : 0.0;
            } else {
                mean_var(x, base, 1, inner, &m, &v);
            }
            double inv = 1.0 / sqrt(v + eps);
            for (int64_t k = 0; k < inner; k++) {
                double r = (kn_get_f64(x, base + k) - m) * inv * ps.v[it.off[0]];
                if (pb.v)
                    r += pb.v[it.off[1]];
                kn_set_f64(y, base + k, r);
                kn_iter_next(&it);
            }
            if (mean_out)
                kn_set_f64(mean_out, o, m);
            if (inv_out)
                kn_set_f64(inv_out, o, inv);
        }
    }
    free(ps.v), free(pb.v);
    return rc;
}

static int run_layernorm(kn_op_ctx *c)
{
    return row_norm(c, false);
}

static int run_rmsnorm(kn_op_ctx *c)
{
    return row_norm(c, true);
}

/* ------------------------------------------------------------------------ */
/* GroupNormalization                                                        */
/* ------------------------------------------------------------------------ */

static int run_groupnorm(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0], *sc = kn_op_in(c, 1);
    int rc = require_float(c, x);
    if (rc)
        return rc;
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "GroupNormalization: input rank %d < 2", x->rank);
    if (!sc)
        return kn_fail(c->err, KN_ERR_MODEL, "GroupNormalization: scale is missing");
    int64_t G = kn_attr_int(c->node, "num_groups", 0);
    int64_t N = x->dims[0], C = x->dims[1], S = kn_dims_prod(x->dims, 2, x->rank);
    if (G <= 0 || C % G != 0)
        return kn_fail(c->err, KN_ERR_ARG, "GroupNormalization: num_groups %lld does not divide %lld channels",
                       (long long)G, (long long)C);
    /* opset 18: scale/bias per group; opset 21: per channel */
    int64_t pn = sc->numel == C ? C : G;
    double eps = kn_attr_float(c->node, "epsilon", 1e-5f);
    double *scale = param_vec(c, sc, pn, "scale");
    double *bias = scale ? param_vec(c, kn_op_in(c, 2), pn, "bias") : NULL;
    kn_tensor *y = bias ? kn_op_output(c, 0, x->dtype, x->rank, x->dims) : NULL;
    if (!y) {
        free(scale), free(bias);
        return c->err->code;
    }
    int64_t cpg = C / G, gsize = cpg * S;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < G; g++) {
            int64_t base = (n * C + g * cpg) * S;
            double m, v;
            mean_var(x, base, 1, gsize, &m, &v);
            double inv = 1.0 / sqrt(v + eps);
            for (int64_t k = 0; k < gsize; k++) {
                int64_t pi = pn == C ? g * cpg + k / (S ? S : 1) : g;
                kn_set_f64(y, base + k, (kn_get_f64(x, base + k) - m) * inv * scale[pi] + bias[pi]);
            }
        }
    }
    free(scale), free(bias);
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* LRN                                                                       */
/* ------------------------------------------------------------------------ */

static int run_lrn(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = require_float(c, x);
    if (rc)
        return rc;
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "LRN: input rank %d < 2", x->rank);
    int64_t size = kn_attr_int(c->node, "size", 0);
    if (size <= 0)
        return kn_fail(c->err, KN_ERR_ARG, "LRN: attribute 'size' must be positive");
    double alpha = kn_attr_float(c->node, "alpha", 1e-4f);
    double beta = kn_attr_float(c->node, "beta", 0.75f);
    double bias = kn_attr_float(c->node, "bias", 1.0f);
    int64_t N = x->dims[0], C = x->dims[1], S = kn_dims_prod(x->dims, 2, x->rank);
    int64_t lo_off = (size - 1) / 2, hi_off = size - 1 - lo_off; /* floor / ceil */
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < C; ch++) {
            int64_t lo = ch - lo_off > 0 ? ch - lo_off : 0;
            int64_t hi = ch + hi_off < C - 1 ? ch + hi_off : C - 1;
            for (int64_t s = 0; s < S; s++) {
                double sq = 0.0;
                for (int64_t k = lo; k <= hi; k++) {
                    double e = kn_get_f64(x, (n * C + k) * S + s);
                    sq += e * e;
                }
                int64_t i = (n * C + ch) * S + s;
                kn_set_f64(y, i, kn_get_f64(x, i) / pow(bias + alpha / (double)size * sq, beta));
            }
        }
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* MeanVarianceNormalization                                                 */
/* ------------------------------------------------------------------------ */

static int run_mvn(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = require_float(c, x);
    if (rc)
        return rc;
    static const int64_t def_axes[3] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int n_axes = kn_attr_ints(c->node, "axes", &axes);
    if (n_axes < 0) {
        axes = def_axes;
        n_axes = 3;
    }
    bool reduced[KN_MAX_RANK] = {0};
    for (int i = 0; i < n_axes; i++) {
        int a;
        if ((rc = kn_norm_axis(axes[i], x->rank, &a, c->err)))
            return rc;
        if (reduced[a])
            return kn_fail(c->err, KN_ERR_ARG, "MeanVarianceNormalization: axis %d repeated", a);
        reduced[a] = true;
    }
    /* key = flat index over the kept axes; strides 0 along reduced axes */
    int64_t kstr[1][KN_MAX_RANK], nkeys = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        kstr[0][d] = reduced[d] ? 0 : nkeys;
        if (!reduced[d])
            nkeys *= x->dims[d];
    }
    int64_t per_key = nkeys ? x->numel / nkeys : 0;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    double *sum = y ? calloc((size_t)nkeys + 1, sizeof(double)) : NULL;
    double *sq = sum ? calloc((size_t)nkeys + 1, sizeof(double)) : NULL;
    if (!sq) {
        free(sum);
        return y ? kn_fail(c->err, KN_ERR_NOMEM, "out of memory") : c->err->code;
    }
    kn_iter it;
    for (int pass = 0; pass < 3; pass++) {
        kn_iter_init(&it, x->rank, x->dims, 1, kstr);
        for (int64_t i = 0; i < x->numel; i++) {
            int64_t k = it.off[0];
            double v = kn_get_f64(x, i);
            if (pass == 0)
                sum[k] += v;
            else if (pass == 1)
                sq[k] += (v - sum[k]) * (v - sum[k]);
            else
                kn_set_f64(y, i, (v - sum[k]) / (sqrt(sq[k]) + 1e-9));
            kn_iter_next(&it);
        }
        for (int64_t k = 0; k < nkeys; k++) {
            if (pass == 0)
                sum[k] /= (double)per_key;
            else if (pass == 1)
                sq[k] /= (double)per_key;
        }
    }
    free(sum), free(sq);
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* LpNormalization                                                           */
/* ------------------------------------------------------------------------ */

static int run_lpnorm(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = require_float(c, x);
    if (rc)
        return rc;
    int64_t p = kn_attr_int(c->node, "p", 2);
    if (p != 1 && p != 2)
        return kn_fail(c->err, KN_ERR_ARG, "LpNormalization: p must be 1 or 2, got %lld", (long long)p);
    int axis;
    if ((rc = kn_norm_axis(kn_attr_int(c->node, "axis", -1), x->rank, &axis, c->err)))
        return rc;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    if (x->rank == 0) {
        double v = kn_get_f64(x, 0);
        kn_set_f64(y, 0, v == 0.0 ? v : v / fabs(v));
        return KN_OK;
    }
    int64_t outer = kn_dims_prod(x->dims, 0, axis), n = x->dims[axis];
    int64_t inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t base = o * n * inner + in;
            double s = 0.0;
            for (int64_t k = 0; k < n; k++) {
                double v = kn_get_f64(x, base + k * inner);
                s += p == 1 ? fabs(v) : v * v;
            }
            double norm = p == 1 ? s : sqrt(s);
            if (norm == 0.0)
                norm = 1.0; /* a zero vector stays zero */
            for (int64_t k = 0; k < n; k++)
                kn_set_f64(y, base + k * inner, kn_get_f64(x, base + k * inner) / norm);
        }
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* Load-time attribute checks                                                */
/* ------------------------------------------------------------------------ */

static int check_lpnorm(const kn_node *node, int opset, kn_error *err)
{
    int64_t p = kn_attr_int(node, "p", 2);
    if (p != 1 && p != 2)
        return kn_fail(err, KN_ERR_MODEL, "LpNormalization: p must be 1 or 2, got %lld", (long long)p);
    return KN_OK;
}

static int check_lrn(const kn_node *node, int opset, kn_error *err)
{
    if (kn_attr_int(node, "size", 0) <= 0)
        return kn_fail(err, KN_ERR_MODEL, "LRN: attribute 'size' must be given and positive");
    return KN_OK;
}

static int check_groupnorm(const kn_node *node, int opset, kn_error *err)
{
    if (kn_attr_int(node, "num_groups", 0) <= 0)
        return kn_fail(err, KN_ERR_MODEL, "GroupNormalization: attribute 'num_groups' must be given and positive");
    return KN_OK;
}

const kn_op_def kn_ops_norm[] = {
    {"", "BatchNormalization", 1, run_batchnorm, NULL, kn_infer_same_as_input0},
    {"", "InstanceNormalization", 1, run_instancenorm, NULL, kn_infer_same_as_input0},
    {"", "LayerNormalization", 1, run_layernorm, NULL, kn_infer_same_as_input0},
    {"", "RMSNormalization", 1, run_rmsnorm, NULL, kn_infer_same_as_input0},
    {"", "GroupNormalization", 1, run_groupnorm, check_groupnorm, kn_infer_same_as_input0},
    {"", "LRN", 1, run_lrn, check_lrn, kn_infer_same_as_input0},
    {"", "MeanVarianceNormalization", 1, run_mvn, NULL, kn_infer_same_as_input0},
    {"", "LpNormalization", 1, run_lpnorm, check_lpnorm, kn_infer_same_as_input0},
    {0},
};
