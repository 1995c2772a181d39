/* fuse_qdq.c - pass fuse_qdq: QDQ models (QuantizeLinear / DequantizeLinear pairs
 * around float operators, as kiln quantize, ONNX Runtime's and PyTorch's
 * quantizers write them, see quant/quant.h) become integer operators that read and
 * write 8-bit tensors:
 *
 *   DQ(x), DQ(w const) [, bias] -> Conv [-> Relu/Clip] -> Q  =>  QLinearConv
 *   DQ(a), DQ(b const 2-D) -> MatMul [-> Relu/Clip] -> Q     =>  QLinearMatMul
 *   DQ(a), DQ(b const) [, bias] -> Gemm [-> Relu/Clip] -> Q  =>  com.microsoft QGemm
 *   DQ(a), DQ(b const), MatMul -> Add(bias) [-> act] -> Q     =>  com.microsoft QGemm
 *   DQ(a), DQ(b) -> Add [-> Relu/Clip] -> Q                   =>  com.microsoft QLinearAdd
 *   DQ(x) -> GlobalAveragePool -> Q             =>  com.microsoft QLinearGlobalAveragePool
 *   DQ(x) -> MaxPool / Reshape / Flatten -> Q (same scale, zero point, type)
 *                                               =>  the same operator on the 8-bit tensor
 *   DQ(x) -> Relu/Clip -> Q (same parameters, the Q's saturation is the clamp)  =>  x
 *   Gemm (or 2-D MatMul [+ bias]) on DQ inputs with no Q after  =>  QGemm, float output
 *   Q(DQ(v)) with DQ's scale, zero point and type  =>  v
 *
 * Activations are per-tensor (scale and zero point constants); weights int8/uint8
 * constants, per tensor or per output channel.  A bias is re-quantized to int32 at
 * scale x_scale * w_scale[c] (exact when the file already used that scale, else
 * within half a unit of the accumulator).  A Relu/Clip between the operator and
 * its Q is absorbed only when the Q's own saturation already clamps at the same
 * bounds (Q(lo) is the type's minimum and Q(hi) its maximum); otherwise the
 * pattern stays as it is, as does every pattern that does not match: QDQ around
 * float-only operators is correct, only slower.  The DequantizeLinear nodes that
 * lose their readers go with dead-code removal. */
#include "opt/fuse_match.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "ops/op.h"

/* One QuantizeLinear / DequantizeLinear's parameters. */
typedef struct qparam {
    int scale_v, zp_v;              /* value ids; zp_v -1 when omitted (zero) */
    const kn_tensor *scale, *zp;
    kn_dtype qt;                    /* the 8-bit type */
    int axis;                       /* per-axis: the normalized axis; -1 per tensor */
} qparam;

static bool is_q8(kn_dtype t)
{
    return t == KN_U8 || t == KN_I8;
}

static bool is_live_op(const kn_node *n, const char *op)
{
    return !kn_opt_node_deleted(n) && (!n->domain || !n->domain[0]) && !strcmp(n->op_type, op);
}

static float qp_scale(const qparam *p, int64_t i)
{
    return ((const float *)p->scale->data)[p->scale->numel == 1 ? 0 : i];
}

static int32_t qp_zero(const qparam *p, int64_t i)
{
    if (!p->zp)
        return 0;
    return (int32_t)kn_load_i64(p->zp->data, p->zp->dtype, (size_t)(p->zp->numel == 1 ? 0 : i));
}

static bool scales_ok(const kn_tensor *s)
{
    if (!s || s->kind != KN_VALUE_TENSOR || s->dtype != KN_F32 || s->rank > 1 || s->numel < 1 || !s->data)
        return false;
    for (int64_t i = 0; i < s->numel; i++) {
        float v = ((const float *)s->data)[i];
        if (!(v > 0.0f) || !isfinite(v))
            return false;
    }
    return true;
}

/* Scale and zero point of Q/DQ node n over a tensor of `rank` (-1 unknown: then
 * only per-tensor parameters are accepted); qt is the quantized type when there is
 * no zero point to tell it (callers check it is one they handle). */
static bool node_qparam(const kn_graph *g, const kn_node *n, kn_dtype qt, int rank, qparam *p)
{
    if (n->n_in < 2 || kn_attr_int(n, "block_size", 0) != 0)
        return false;
    p->scale_v = n->in[1];
    p->zp_v = n->n_in > 2 ? n->in[2] : -1;
    p->scale = fm_const(g, p->scale_v);
    p->zp = p->zp_v >= 0 ? fm_const(g, p->zp_v) : NULL;
    if (!scales_ok(p->scale) || (p->zp_v >= 0 && (!p->zp || p->zp->numel != p->scale->numel)))
        return false;
    p->qt = p->zp ? p->zp->dtype : qt;
    p->axis = -1;
    if (p->scale->numel == 1)
        return true;
    int64_t axis = kn_attr_int(n, "axis", 1);
    if (rank < 1 || axis < -rank || axis >= rank)
        return false;
    p->axis = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

/* v = DequantizeLinear(*src): its parameters (rank of src, -1 unknown). */
static bool dq_of(const kn_graph *g, int v, int rank, int *src, qparam *p)
{
    int i = fm_producer(g, v, "DequantizeLinear");
    if (i < 0)
        return false;
    const kn_node *n = &g->nodes[i];
    *src = n->in[0];
    return node_qparam(g, n, kn_opt_dtype(g, *src), rank, p) && (!p->zp || kn_opt_dtype(g, *src) == p->qt ||
                                                                 kn_opt_dtype(g, *src) == KN_UNDEFINED);
}

/* v = DequantizeLinear(*src) with per-tensor parameters (an activation). */
static bool dq_act(const kn_graph *g, int v, int *src, qparam *p)
{
    return dq_of(g, v, -1, src, p) && p->axis < 0 && is_q8(p->qt);
}

/* Node i is a per-tensor QuantizeLinear to an 8-bit type. */
static bool q_node(const kn_graph *g, int i, qparam *p)
{
    const kn_node *n = &g->nodes[i];
    if (!is_live_op(n, "QuantizeLinear") || n->n_out < 1)
        return false;
    int64_t odt = kn_attr_int(n, "output_dtype", 0);
    kn_dtype qt = odt == 0 ? KN_U8 : odt == KN_I8 ? KN_I8 : odt == KN_U8 ? KN_U8 : KN_UNDEFINED;
    return node_qparam(g, n, qt, -1, p) && p->axis < 0 && is_q8(p->qt);
}

static bool same_qparam(const qparam *a, const qparam *b)
{
    return a->axis < 0 && b->axis < 0 && a->qt == b->qt && qp_scale(a, 0) == qp_scale(b, 0) &&
           qp_zero(a, 0) == qp_zero(b, 0);
}

/* ---- activations absorbed by the output quantization ---- */

/* QuantizeLinear of one value (the kernel's formula: round half to even, saturate). */
static int64_t quantize_one(const qparam *p, double v)
{
    int64_t lo = p->qt == KN_U8 ? 0 : -128, hi = p->qt == KN_U8 ? 255 : 127;
    double r = nearbyint(v / (double)qp_scale(p, 0)) + qp_zero(p, 0);
    return r <= (double)lo ? lo : r >= (double)hi ? hi : (int64_t)r;
}

/* Bounds of a Relu or a Clip with constant bounds at node i. */
static bool clamp_bounds(const kn_graph *g, int i, double *lo, double *hi)
{
    const kn_node *n = &g->nodes[i];
    *lo = -DBL_MAX;
    *hi = DBL_MAX;
    if (is_live_op(n, "Relu")) {
        *lo = 0;
        return true;
    }
    if (!is_live_op(n, "Clip"))
        return false;
    if (n->opset < 11) {
        *lo = kn_attr_float(n, "min", -FLT_MAX);
        *hi = kn_attr_float(n, "max", FLT_MAX);
        return true;
    }
    return (n->n_in < 2 || n->in[1] < 0 || fm_scalar(g, n->in[1], lo)) &&
           (n->n_in < 3 || n->in[2] < 0 || fm_scalar(g, n->in[2], hi));
}

/* The quantization reading v: Q directly, or Relu/Clip -> Q where Q(clamp(x)) ==
 * Q(x) for every x.  Returns the Q node (its parameters in *yq) and the activation
 * node in *act (-1 when none); -1 when there is no such pattern. */
static int quantizing_reader(const kn_graph *g, int v, int *act, qparam *yq)
{
    *act = -1;
    int i = kn_opt_single_consumer(g, v);
    if (i < 0)
        return -1;
    if (q_node(g, i, yq) && g->nodes[i].in[0] == v)
        return i;
    double lo, hi;
    if (!clamp_bounds(g, i, &lo, &hi) || g->nodes[i].in[0] != v)
        return -1;
    int q = kn_opt_single_consumer(g, g->nodes[i].out[0]);
    if (q < 0 || !q_node(g, q, yq))
        return -1;
    int64_t qmin = yq->qt == KN_U8 ? 0 : -128, qmax = yq->qt == KN_U8 ? 255 : 127;
    if (quantize_one(yq, lo) != qmin || quantize_one(yq, hi) != qmax)
        return -1;
    *act = i;
    return q;
}

/* ---- building the fused node ---- */

/* The zero point input for p: its own, or new zeros of its type shaped as the
 * scale (ONNX Runtime wants equal shapes). */
static int zero_point_value(kn_graph *g, const qparam *p, kn_error *err)
{
    if (p->zp_v >= 0)
        return p->zp_v;
    kn_tensor t = {0};
    if (kn_tensor_alloc(&t, p->qt, p->scale->rank, p->scale->dims, err))
        return -1;
    int v = kn_opt_new_initializer(g, "zero_point", &t, err);
    kn_tensor_release(&t);
    return v;
}

/* A matched fusion: the nodes it replaces (anchor, optional activation, Q) and the
 * inputs of the new node; qparam inputs are filled in as (scale, zero point). */
typedef struct fusion {
    int del[4], n_del;
    int ins[9], n_in;
    const qparam *zps[9];          /* input k is the zero point of zps[k] (NULL: ins[k] is set) */
    int out;
} fusion;

static void fusion_begin(fusion *f, const kn_graph *g, int anchor, int extra, int act, int q)
{
    memset(f, 0, sizeof *f);
    f->del[f->n_del++] = anchor;
    if (extra >= 0)
        f->del[f->n_del++] = extra;
    if (act >= 0)
        f->del[f->n_del++] = act;
    if (q >= 0)
        f->del[f->n_del++] = q;
    f->out = g->nodes[f->del[f->n_del - 1]].out[0];
}

static void fusion_value(fusion *f, int v)
{
    f->zps[f->n_in] = NULL;
    f->ins[f->n_in++] = v;
}

/* Appends (scale, zero point) of p. */
static void fusion_qparam(fusion *f, const qparam *p)
{
    fusion_value(f, p->scale_v);
    f->zps[f->n_in] = p;
    f->ins[f->n_in++] = -1;
}

static int fusion_emit(kn_graph *g, fusion *f, const char *op, const char *domain, kn_error *err)
{
    for (int k = 0; k < f->n_in; k++)
        if (f->zps[k] && (f->ins[k] = zero_point_value(g, f->zps[k], err)) < 0)
            return -1;
    int outs[1] = {f->out};
    return fm_replace(g, f->del, f->n_del, op, domain, 1, f->n_in, f->ins, 1, outs, err);
}

/* ---- weights and biases ---- */

/* The constant that DequantizeLinear reads to make v, or NULL. */
static const kn_tensor *dq_source(const kn_graph *g, int v)
{
    int p = fm_producer(g, v, "DequantizeLinear");
    return p >= 0 ? fm_const(g, g->nodes[p].in[0]) : NULL;
}

/* w = DQ(constant 8-bit tensor of `rank`), per tensor or per index of `axis` with n
 * entries. */
static bool dq_weight(const kn_graph *g, int v, int rank, int axis, int64_t n, int *src, qparam *p)
{
    const kn_tensor *w = dq_source(g, v);
    if (!w || w->kind != KN_VALUE_TENSOR || !is_q8(w->dtype) || w->rank != rank || !w->data)
        return false;
    if (!dq_of(g, v, rank, src, p) || p->qt != w->dtype)
        return false;
    return p->axis < 0 || (p->axis == axis && p->scale->numel == n && w->dims[axis] == n);
}

/* The bias value v (DQ of a constant, or a float constant) as int32 at scale
 * x_scale * w_scale[c], n entries; NULL when it is something else or overflows. */
static int32_t *bias_as_int32(const kn_graph *g, int v, const qparam *xq, const qparam *wq, int64_t n)
{
    int src = -1;
    qparam bq;
    const kn_tensor *b = fm_const(g, v), *bi = b ? NULL : dq_source(g, v);
    bool dq = bi && bi->kind == KN_VALUE_TENSOR && bi->dtype == KN_I32 && bi->rank == 1 &&
              dq_of(g, v, 1, &src, &bq);
    if (dq)
        b = bi;
    else if (!b || b->kind != KN_VALUE_TENSOR || b->dtype != KN_F32)
        return NULL;
    if (!b->data || b->rank != 1 || b->numel != n || (dq && bq.zp && bq.zp->dtype != KN_I32))
        return NULL;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t c = 0; out && c < n; c++) {
        float target = qp_scale(xq, 0) * qp_scale(wq, c);
        double real = dq ? ((double)((const int32_t *)b->data)[c] - qp_zero(&bq, c)) * qp_scale(&bq, c)
                         : ((const float *)b->data)[c];
        double q = dq && qp_scale(&bq, c) == target && qp_zero(&bq, c) == 0
                       ? (double)((const int32_t *)b->data)[c]
                       : nearbyint(real / (double)target);
        if (!(fabs(q) < 2147483647.0)) {
            free(out);
            return NULL;
        }
        out[c] = (int32_t)q;
    }
    return out;
}

/* Appends bias (n int32 values, taken) as a new initializer input. */
static int fusion_bias(kn_graph *g, fusion *f, int32_t *bias, int64_t n, kn_error *err)
{
    kn_tensor t = {0};
    int rc = kn_tensor_alloc(&t, KN_I32, 1, &n, err);
    if (!rc) {
        memcpy(t.data, bias, sizeof(int32_t) * (size_t)n);
        int v = kn_opt_new_initializer(g, "bias_int32", &t, err);
        rc = v < 0 ? (err->code ? err->code : KN_ERR_NOMEM) : KN_OK;
        fusion_value(f, v);
    }
    kn_tensor_release(&t);
    free(bias);
    return rc;
}

/* ---- Conv ---- */

static int fuse_conv(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *c = &g->nodes[i];
    int x, w, act, q;
    qparam xq, wq, yq;
    const kn_tensor *wt = c->n_in >= 2 ? dq_source(g, c->in[1]) : NULL;
    if (c->n_out != 1 || !wt || wt->rank < 3 || !dq_act(g, c->in[0], &x, &xq) ||
        !dq_weight(g, c->in[1], wt->rank, 0, wt->dims[0], &w, &wq))
        return KN_OK;
    if ((q = quantizing_reader(g, c->out[0], &act, &yq)) < 0)
        return KN_OK;
    int32_t *bias = NULL;
    int64_t m = wt->dims[0];
    if (c->n_in > 2 && c->in[2] >= 0 && !(bias = bias_as_int32(g, c->in[2], &xq, &wq, m)))
        return KN_OK;
    fusion f;
    fusion_begin(&f, g, i, -1, act, q);
    fusion_value(&f, x);
    fusion_qparam(&f, &xq);
    fusion_value(&f, w);
    fusion_qparam(&f, &wq);
    fusion_qparam(&f, &yq);
    if (bias && fusion_bias(g, &f, bias, m, err))
        return err->code;
    int n = fusion_emit(g, &f, "QLinearConv", "", err);
    if (n < 0 || kn_opt_copy_attrs(g, n, i, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return KN_OK;
}

/* ---- MatMul / Gemm ---- */

/* A matched linear layer: y = a x b (+ bias) -> [act] -> Q. */
typedef struct linear_match {
    int a, b, act, q, add;
    qparam aq, bq, yq;
    int64_t n;
    bool trans_b;
    int bias_v;                 /* -1 when none */
} linear_match;

/* a, b of a linear node: DQ activation, DQ constant 2-D weight per tensor or per
 * output column (axis 1, or 0 when transposed). */
static bool linear_inputs(const kn_graph *g, const kn_node *n, bool trans_b, linear_match *m)
{
    const kn_tensor *bt = dq_source(g, n->in[1]);
    if (!bt || bt->rank != 2 || !dq_act(g, n->in[0], &m->a, &m->aq))
        return false;
    m->trans_b = trans_b;
    m->n = bt->dims[trans_b ? 0 : 1];
    return dq_weight(g, n->in[1], 2, trans_b ? 0 : 1, m->n, &m->b, &m->bq);
}

static int emit_linear(kn_graph *g, int anchor, linear_match *m, kn_error *err)
{
    int32_t *bias = NULL;
    if (m->bias_v >= 0 && !(bias = bias_as_int32(g, m->bias_v, &m->aq, &m->bq, m->n)))
        return KN_OK;
    bool qgemm = m->bias_v >= 0 || m->trans_b || m->q < 0 || strcmp(g->nodes[anchor].op_type, "MatMul");
    fusion f;
    fusion_begin(&f, g, anchor, m->add, m->act, m->q);
    fusion_value(&f, m->a);
    fusion_qparam(&f, &m->aq);
    fusion_value(&f, m->b);
    fusion_qparam(&f, &m->bq);
    if (qgemm) {
        if (bias && fusion_bias(g, &f, bias, m->n, err))
            return err->code;
        if (!bias)
            fusion_value(&f, -1);
    }
    if (m->q >= 0)
        fusion_qparam(&f, &m->yq);
    int n = fusion_emit(g, &f, qgemm ? "QGemm" : "QLinearMatMul", qgemm ? KN_MS_DOMAIN : "", err);
    if (n < 0 || (qgemm && kn_opt_set_attr_int(g, n, "transB", m->trans_b, err)))
        return err->code ? err->code : KN_ERR_NOMEM;
    return 1;
}

static int fuse_matmul(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    linear_match m = {.add = -1, .bias_v = -1};
    if (n->n_out != 1 || !linear_inputs(g, n, false, &m))
        return KN_OK;
    int y = n->out[0];
    int add = fm_consumer(g, y, "Add");
    if (add >= 0) {
        int other = fm_other_input(&g->nodes[add], y);
        if (other < 0 || other == y || fm_rank(g, n->in[0]) != 2)
            return KN_OK;
        m.add = add;
        m.bias_v = other;
        y = g->nodes[add].out[0];
    }
    /* no quantization after: QGemm with float output, when A is known 2-D */
    if ((m.q = quantizing_reader(g, y, &m.act, &m.yq)) < 0 && fm_rank(g, n->in[0]) != 2)
        return KN_OK;
    int rc = emit_linear(g, i, &m, err);
    *done = rc == 1;
    return rc == 1 ? KN_OK : rc;
}

static int fuse_gemm(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    linear_match m = {.add = -1, .bias_v = n->n_in > 2 ? n->in[2] : -1};
    if (n->n_out != 1 || kn_attr_int(n, "transA", 0) || kn_attr_float(n, "alpha", 1.0f) != 1.0f ||
        kn_attr_float(n, "beta", 1.0f) != 1.0f || !linear_inputs(g, n, kn_attr_int(n, "transB", 0) != 0, &m))
        return KN_OK;
    m.q = quantizing_reader(g, n->out[0], &m.act, &m.yq); /* -1: QGemm with float output */
    int rc = emit_linear(g, i, &m, err);
    *done = rc == 1;
    return rc == 1 ? KN_OK : rc;
}

/* ---- Add, GlobalAveragePool ---- */

static int fuse_add(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    int a, b, act, q;
    qparam aq, bq, yq;
    if (n->n_in != 2 || n->n_out != 1 || !dq_act(g, n->in[0], &a, &aq) || !dq_act(g, n->in[1], &b, &bq) ||
        (q = quantizing_reader(g, n->out[0], &act, &yq)) < 0 || aq.qt != yq.qt || bq.qt != yq.qt)
        return KN_OK;
    fusion f;
    fusion_begin(&f, g, i, -1, act, q);
    fusion_value(&f, a);
    fusion_qparam(&f, &aq);
    fusion_value(&f, b);
    fusion_qparam(&f, &bq);
    fusion_qparam(&f, &yq);
    if (fusion_emit(g, &f, "QLinearAdd", KN_MS_DOMAIN, err) < 0)
        return err->code;
    *done = true;
    return KN_OK;
}

static int fuse_global_average_pool(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    int x, q = n->n_out == 1 ? kn_opt_single_consumer(g, n->out[0]) : -1;
    qparam xq, yq;
    if (q < 0 || !q_node(g, q, &yq) || !dq_act(g, n->in[0], &x, &xq) || xq.qt != yq.qt)
        return KN_OK;
    fusion f;
    fusion_begin(&f, g, i, -1, -1, q);
    fusion_value(&f, x);
    fusion_qparam(&f, &xq);
    fusion_qparam(&f, &yq);
    int k = fusion_emit(g, &f, "QLinearGlobalAveragePool", KN_MS_DOMAIN, err);
    if (k < 0 || kn_opt_set_attr_int(g, k, "channels_last", 0, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return KN_OK;
}

/* ---- operators that commute with quantization ---- */

/* DQ(x) -> op -> Q with Q's parameters equal to DQ's: op runs on x directly
 * (MaxPool picks a maximum, Reshape/Flatten move values: neither changes them). */
static int fuse_passthrough(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    int x, q = n->n_out >= 1 ? kn_opt_single_consumer(g, n->out[0]) : -1;
    qparam xq, yq;
    if (q < 0 || (n->n_out > 1 && n->out[1] >= 0) || !q_node(g, q, &yq) || !dq_act(g, n->in[0], &x, &xq) ||
        !same_qparam(&xq, &yq) || n->n_in > 9)
        return KN_OK;
    fusion f;
    fusion_begin(&f, g, i, -1, -1, q);
    fusion_value(&f, x);
    for (int k = 1; k < n->n_in; k++)
        fusion_value(&f, n->in[k]);
    int k = fusion_emit(g, &f, n->op_type, "", err);
    if (k < 0 || kn_opt_copy_attrs(g, k, i, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return KN_OK;
}

/* DQ(x) -> Relu/Clip -> Q with DQ's parameters, where the Q's own saturation is the
 * clamp (Q(lo) = type minimum, Q(hi) = maximum; kiln quantize gives a Relu its
 * input's uint8 parameters with zero point 0): the 8-bit x itself. */
static int fuse_clamp_identity(kn_graph *g, int i, bool *done, kn_error *err)
{
    int x, act, q;
    qparam xq, yq;
    (void)err;
    if (g->nodes[i].n_in < 1 || !dq_act(g, g->nodes[i].in[0], &x, &xq) ||
        (q = quantizing_reader(g, g->nodes[i].in[0], &act, &yq)) < 0 || act != i || !same_qparam(&xq, &yq) ||
        kn_opt_dtype(g, x) != yq.qt)
        return KN_OK;
    if (!kn_opt_replace_uses(g, g->nodes[q].out[0], x))
        return KN_OK;
    kn_opt_delete_node(g, q);
    *done = true;
    return KN_OK;
}

/* Q(DQ(v)) with equal parameters is v. */
static int fuse_requantize(kn_graph *g, int i, bool *done, kn_error *err)
{
    int v;
    qparam xq, yq;
    (void)err;
    if (!q_node(g, i, &yq) || !dq_act(g, g->nodes[i].in[0], &v, &xq) || !same_qparam(&xq, &yq) ||
        kn_opt_dtype(g, v) != yq.qt)
        return KN_OK;
    if (!kn_opt_replace_uses(g, g->nodes[i].out[0], v))
        return KN_OK;
    kn_opt_delete_node(g, i);
    *done = true;
    return KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    static const struct {
        const char *op;
        fm_fuse_fn fuse;
    } fusions[] = {
        {"QuantizeLinear", fuse_requantize}, {"Relu", fuse_clamp_identity}, {"Clip", fuse_clamp_identity},
        {"Conv", fuse_conv}, {"Gemm", fuse_gemm},
        {"MatMul", fuse_matmul}, {"Add", fuse_add}, {"GlobalAveragePool", fuse_global_average_pool},
        {"MaxPool", fuse_passthrough}, {"Reshape", fuse_passthrough}, {"Flatten", fuse_passthrough},
    };
    for (size_t k = 0; k < sizeof fusions / sizeof fusions[0]; k++) {
        int rc = fm_each_node(g, fusions[k].op, fusions[k].fuse, rewrites, err);
        if (rc)
            return rc;
    }
    return KN_OK;
}

const kn_opt_pass kn_pass_fuse_qdq = {"fuse_qdq", KN_OPT_EXTENDED, run};
