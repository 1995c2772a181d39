/* quant_static.c - static int8 quantization into the QDQ form of quant.h, from the
 * activation ranges in o->ranges.
 *
 * Nodes take one of three roles:
 *   compute      Conv, MatMul, Gemm with a constant float weight: the weight becomes
 *                int8 (symmetric, per output channel: axis 0 for Conv and for Gemm
 *                with transB, axis 1 for a [K, N] matrix) -> DequantizeLinear; a
 *                constant 1-D bias becomes int32 with scale x_scale * w_scale[c] ->
 *                DequantizeLinear; Gemm's alpha and beta are folded in first;
 *   elementwise  Add, Mul of two activations;
 *   pass         Relu, Clip, MaxPool, AveragePool, GlobalAveragePool, Concat,
 *                Flatten, Reshape: their float inputs and output share one scale
 *                and zero point.  The range of that group is the union of its
 *                members' ranges, except that the input of a Relu/Clip it alone
 *                reads takes the activation's output range: the Relu right after a
 *                Conv then shares the Conv output's quantization (uint8 with zero
 *                point 0 clamps at 0 already).
 * Every float activation a quantized node reads gets x_f -> QuantizeLinear ->
 * DequantizeLinear -> x, keeping the name x for the readers (graph inputs, and graph
 * outputs also read by quantized nodes, get a new name for the dequantized copy
 * instead).  Values without a range, and graph outputs, stay float.  Activations are
 * uint8 asymmetric, or int8 with zero point 0 when o->symmetric_activations. */
#include "quant/quant_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROLE_NONE, ROLE_COMPUTE, ROLE_ELEMENTWISE, ROLE_PASS };

typedef struct st_ctx {
    kn_graph *g;
    const kn_quant_opts *o;
    int n0, nv;            /* original node and value counts */
    bool per_channel;
    int *parent;           /* union-find over values: groups sharing quantization */
    float *lo, *hi;        /* group range, at the group's root */
    bool *has_range;       /* at the root */
    bool *no_own_range;    /* value's own range does not count (Relu/Clip input) */
    bool *qdq;             /* value gets a Q/DQ pair */
    int *scale_v, *zp_v;   /* the group's scale / zero point initializers (root) */
    char *role;            /* per original node: ROLE_* when quantized, else NONE */
    kn_q_wcache weights;   /* weights already quantized */
} st_ctx;

/* ---- roles ---- */

static const char *const pass_ops[] = {"Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool",
                                       "Concat", "Flatten", "Reshape"};

static bool is_pass_op(const kn_node *n)
{
    for (size_t k = 0; k < sizeof pass_ops / sizeof *pass_ops; k++)
        if (kn_q_is_op(n, pass_ops[k]))
            return true;
    return false;
}

static bool is_relu_like(const kn_node *n)
{
    return kn_q_is_op(n, "Relu") || kn_q_is_op(n, "Clip");
}

/* The weight of a compute node, or NULL. */
static const kn_tensor *compute_weight(const kn_graph *g, const kn_node *n)
{
    if (n->n_in < 2 || n->n_out < 1 || n->out[0] < 0)
        return NULL;
    if (kn_q_is_op(n, "MatMul") || kn_q_is_op(n, "Gemm"))
        return kn_q_const_f32(g, n->in[1], 2);
    if (!kn_q_is_op(n, "Conv"))
        return NULL;
    const kn_tensor *w = kn_opt_const(g, n->in[1]);
    return w && w->dtype == KN_F32 && w->rank >= 3 && w->data ? w : NULL;
}

static int candidate_role(const kn_graph *g, const kn_node *n)
{
    if (compute_weight(g, n))
        return ROLE_COMPUTE;
    if ((kn_q_is_op(n, "Add") || kn_q_is_op(n, "Mul")) && n->n_in == 2)
        return ROLE_ELEMENTWISE;
    return is_pass_op(n) && n->n_out >= 1 ? ROLE_PASS : ROLE_NONE;
}

/* Is input k of n (of the given role) an activation the role quantizes? */
static bool activation_input(const kn_node *n, int role, int k)
{
    if (role == ROLE_ELEMENTWISE || (role == ROLE_PASS && kn_q_is_op(n, "Concat")))
        return true;
    return k == 0;
}

/* A float tensor computed at run time (not a constant). */
static bool float_activation(const st_ctx *c, int v)
{
    if (v < 0 || kn_opt_const(c->g, v))
        return false;
    kn_dtype dt = kn_opt_dtype(c->g, v);
    return dt == KN_F32 || (dt == KN_UNDEFINED && kn_act_ranges_find(c->o->ranges, c->g->values[v].name));
}

/* ---- groups ---- */

static int root(st_ctx *c, int v)
{
    while (c->parent[v] != v)
        v = c->parent[v] = c->parent[c->parent[v]];
    return v;
}

static void unite(st_ctx *c, int a, int b)
{
    a = root(c, a);
    b = root(c, b);
    if (a != b)
        c->parent[b] = a;
}

/* Tie the float activations of each candidate pass node together. */
static void tie_pass_nodes(st_ctx *c)
{
    kn_graph *g = c->g;
    for (int i = 0; i < c->n0; i++) {
        const kn_node *n = &g->nodes[i];
        if (candidate_role(g, n) != ROLE_PASS || kn_q_excluded(c->o, n) || !float_activation(c, n->out[0]))
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (activation_input(n, ROLE_PASS, k) && float_activation(c, n->in[k]))
                unite(c, n->out[0], n->in[k]);
        if (is_relu_like(n) && kn_opt_single_consumer(g, n->in[0]) == i)
            c->no_own_range[n->in[0]] = true;
    }
}

/* Each group's range: the union of its members' own ranges, widened to hold 0. */
static void gather_ranges(st_ctx *c)
{
    for (int v = 0; v < c->nv; v++) {
        const kn_act_range *r = kn_act_ranges_find(c->o->ranges, c->g->values[v].name);
        if (!r || c->no_own_range[v] || !float_activation(c, v) || !(r->lo <= r->hi))
            continue;
        int t = root(c, v);
        c->lo[t] = c->has_range[t] ? fminf(c->lo[t], r->lo) : r->lo;
        c->hi[t] = c->has_range[t] ? fmaxf(c->hi[t], r->hi) : r->hi;
        c->has_range[t] = true;
    }
    for (int v = 0; v < c->nv; v++) {
        c->lo[v] = fminf(c->lo[v], 0.0f);
        c->hi[v] = fmaxf(c->hi[v], 0.0f);
    }
}

static bool has_range(st_ctx *c, int v)
{
    return v >= 0 && v < c->nv && float_activation(c, v) && c->has_range[root(c, v)];
}

/* ---- which nodes, which values ---- */

/* Every activation input (and, for pass nodes, the output) has a range. */
static bool node_quantizable(st_ctx *c, const kn_node *n, int role)
{
    for (int k = 0; k < n->n_in; k++)
        if (activation_input(n, role, k) && !has_range(c, n->in[k]))
            return false;
    return role != ROLE_PASS || has_range(c, n->out[0]);
}

/* Choose the quantized nodes and mark the activations they read for Q/DQ. */
static void select_nodes(st_ctx *c, kn_quant_report *rep)
{
    kn_graph *g = c->g;
    for (int i = 0; i < c->n0; i++) {
        const kn_node *n = &g->nodes[i];
        int role = candidate_role(g, n);
        if (role == ROLE_NONE)
            continue;
        bool ok = !kn_q_excluded(c->o, n) && node_quantizable(c, n, role);
        c->role[i] = ok ? (char)role : ROLE_NONE;
        rep->nodes_quantized += ok;
        rep->nodes_kept_float += !ok;
        for (int k = 0; ok && k < n->n_in; k++)
            if (activation_input(n, role, k))
                c->qdq[n->in[k]] = true;
    }
}

/* ---- quantization parameters ---- */

static void group_params(const st_ctx *c, int t, float *scale, int *zp)
{
    float lo = c->lo[t], hi = c->hi[t];
    if (c->o->symmetric_activations) {
        float amax = fmaxf(-lo, hi);
        *scale = amax > 0 ? amax / 127.0f : 1.0f;
        *zp = 0;
        return;
    }
    *scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float z = rintf(-lo / *scale);
    *zp = (int)(z < 0 ? 0 : z > 255 ? 255 : z);
}

/* The scale / zero point initializers of v's group (made on first use). */
static int group_inits(st_ctx *c, int v, int *scale_v, int *zp_v, kn_error *err)
{
    int t = root(c, v);
    if (c->scale_v[t] < 0) {
        float s;
        int z;
        group_params(c, t, &s, &z);
        char h[256];
        snprintf(h, sizeof h, "%.180s_scale", c->g->values[v].name);
        c->scale_v[t] = kn_q_scalar(c->g, h, KN_F32, s, err);
        snprintf(h, sizeof h, "%.180s_zero_point", c->g->values[v].name);
        c->zp_v[t] = c->scale_v[t] < 0 ? -1
                                        : kn_q_scalar(c->g, h, c->o->symmetric_activations ? KN_I8 : KN_U8, z, err);
        if (c->zp_v[t] < 0)
            return err->code;
    }
    *scale_v = c->scale_v[t];
    *zp_v = c->zp_v[t];
    return KN_OK;
}

static float group_scale(st_ctx *c, int v)
{
    float s;
    int z;
    group_params(c, root(c, v), &s, &z);
    return s;
}

/* ---- building ---- */

/* DequantizeLinear(q, scale[, zp]) -> out, with axis when the scale is per channel. */
static int add_dq(kn_graph *g, const char *hint, int q, int s, int zp, int axis, int out, kn_error *err)
{
    int ins[3] = {q, s, zp};
    int i = kn_q_node(g, "DequantizeLinear", hint, zp >= 0 ? 3 : 2, ins, 1, &out, err);
    if (i < 0 || (axis >= 0 && kn_opt_set_attr_int(g, i, "axis", axis, err)))
        return -1;
    return i;
}

/* A new value "<name of v>_<suffix>". */
static int derived_value(kn_graph *g, int v, const char *suffix, kn_error *err)
{
    char h[256];
    snprintf(h, sizeof h, "%.180s_%s", g->values[v].name, suffix);
    return kn_q_value(g, h, err);
}

/* Initializer "<name of v>_<suffix>" holding t. */
static int derived_init(kn_graph *g, int v, const char *suffix, const kn_tensor *t, kn_error *err)
{
    char h[256];
    snprintf(h, sizeof h, "%.180s_%s", g->values[v].name, suffix);
    return kn_opt_new_initializer(g, h, t, err);
}

/* int8 zeros shaped like the scale s (a zero point per channel, or one). */
static int weight_zero_points(kn_graph *g, int w, const kn_tensor *s, kn_error *err)
{
    kn_tensor z = {0};
    int v = kn_tensor_alloc(&z, KN_I8, s->rank, s->dims, err) ? -1 : derived_init(g, w, "zero_point", &z, err);
    kn_tensor_release(&z);
    return v;
}

/* ---- compute nodes: weights and bias ---- */

/* The weight's output-channel axis (-1: per tensor). */
static int weight_axis(const st_ctx *c, const kn_node *n)
{
    if (!c->per_channel)
        return -1;
    if (kn_q_is_op(n, "Conv"))
        return 0;
    return kn_q_is_op(n, "Gemm") && kn_attr_int(n, "transB", 0) ? 0 : 1;
}

/* A copy of t times f. */
static int scaled_copy(const kn_tensor *t, float f, kn_tensor *out, kn_error *err)
{
    if (kn_tensor_copy(out, t, err))
        return err->code;
    for (int64_t i = 0; i < out->numel; i++)
        ((float *)out->data)[i] *= f;
    return KN_OK;
}

/* DequantizeLinear(int8 W (times alpha)) for weight value wv: ids = its output, the
 * scale initializer. */
static int dequantized_weight(st_ctx *c, int wv, int axis, float alpha, int *ids, kn_error *err)
{
    kn_graph *g = c->g;
    const int *hit = kn_q_wcache_find(&c->weights, wv, axis + 1, alpha);
    if (hit) {
        memcpy(ids, hit, 2 * sizeof *ids);
        return KN_OK;
    }
    kn_tensor w = {0}, q = {0}, s = {0};
    int rc = scaled_copy(kn_opt_const(g, wv), alpha, &w, err);
    if (!rc)
        rc = kn_q_weight_int8(&w, axis, &q, &s, err);
    int qv = rc ? -1 : derived_init(g, wv, "quantized", &q, err);
    int sv = qv < 0 ? -1 : derived_init(g, wv, "scale", &s, err);
    int zv = sv < 0 ? -1 : weight_zero_points(g, wv, &s, err);
    int out = zv < 0 ? -1 : derived_value(g, wv, "dequantized", err);
    kn_tensor_release(&w);
    kn_tensor_release(&q);
    kn_tensor_release(&s);
    if (out < 0 || add_dq(g, g->values[out].name, qv, sv, zv, axis, out, err) < 0)
        return err->code;
    ids[0] = out;
    ids[1] = sv;
    return kn_q_wcache_add(&c->weights, wv, axis + 1, alpha, ids, 2, err);
}

/* Input 1 of node i becomes DequantizeLinear(int8 W); *ws gets the weight scales. */
static int quantize_weight(st_ctx *c, int i, int axis, const kn_tensor **ws, kn_error *err)
{
    kn_graph *g = c->g;
    float alpha = kn_q_is_op(&g->nodes[i], "Gemm") ? kn_attr_float(&g->nodes[i], "alpha", 1.0f) : 1.0f;
    int ids[2];
    if (dequantized_weight(c, g->nodes[i].in[1], axis, alpha, ids, err))
        return err->code;
    g->nodes[i].in[1] = ids[0];
    *ws = g->values[ids[1]].init;
    if (alpha != 1.0f && kn_opt_set_attr_float(g, i, "alpha", 1.0f, err))
        return err->code;
    return KN_OK;
}

/* The constant 1-D bias of compute node i with `channels` entries, or NULL. */
static const kn_tensor *compute_bias(const kn_graph *g, const kn_node *n, int64_t channels)
{
    if (n->n_in < 3 || n->in[2] < 0 || (!kn_q_is_op(n, "Conv") && !kn_q_is_op(n, "Gemm")))
        return NULL;
    const kn_tensor *b = kn_q_const_f32(g, n->in[2], 1);
    return b && b->dims[0] == channels ? b : NULL;
}

/* int32 codes of bias b (times beta) at scale x_scale * w_scale[c]; bs gets the scales. */
static int bias_codes(const kn_tensor *b, float beta, float x_scale, const kn_tensor *ws, kn_tensor *bq,
                      kn_tensor *bs, kn_error *err)
{
    if (kn_tensor_alloc(bq, KN_I32, 1, b->dims, err) || kn_tensor_alloc(bs, KN_F32, ws->rank, ws->dims, err))
        return err->code;
    const float *w = ws->data, *x = b->data;
    float *s = bs->data;
    int32_t *q = bq->data;
    for (int64_t k = 0; k < ws->numel; k++)
        s[k] = x_scale * w[k];
    for (int64_t k = 0; k < b->numel; k++) {
        float sc = s[ws->numel == 1 ? 0 : k];
        double r = sc > 0 ? rint((double)x[k] * beta / sc) : 0;
        q[k] = (int32_t)(r > INT32_MAX ? INT32_MAX : r < -INT32_MAX ? -INT32_MAX : r);
    }
    return KN_OK;
}

/* Input 2 of node i becomes DequantizeLinear(int32 bias). */
static int quantize_bias(st_ctx *c, int i, const kn_tensor *b, const kn_tensor *ws, int axis, kn_error *err)
{
    kn_graph *g = c->g;
    int bv = g->nodes[i].in[2];
    float beta = kn_q_is_op(&g->nodes[i], "Gemm") ? kn_attr_float(&g->nodes[i], "beta", 1.0f) : 1.0f;
    kn_tensor bq = {0}, bs = {0};
    int rc = bias_codes(b, beta, group_scale(c, g->nodes[i].in[0]), ws, &bq, &bs, err);
    int qv = rc ? -1 : derived_init(g, bv, "quantized", &bq, err);
    int sv = qv < 0 ? -1 : derived_init(g, bv, "scale", &bs, err);
    int out = sv < 0 ? -1 : derived_value(g, bv, "dequantized", err);
    kn_tensor_release(&bq);
    kn_tensor_release(&bs);
    if (out < 0 || add_dq(g, g->values[out].name, qv, sv, -1, axis < 0 ? -1 : 0, out, err) < 0)
        return err->code;
    g->nodes[i].in[2] = out;
    if (beta != 1.0f && kn_opt_set_attr_float(g, i, "beta", 1.0f, err))
        return err->code;
    return KN_OK;
}

static int quantize_compute(st_ctx *c, int i, kn_error *err)
{
    const kn_node *n = &c->g->nodes[i];
    int axis = weight_axis(c, n);
    const kn_tensor *w = kn_opt_const(c->g, n->in[1]);
    int64_t channels = axis == 0 ? w->dims[0] : w->dims[1];
    if (axis < 0)
        channels = kn_q_is_op(n, "Conv") || kn_attr_int(n, "transB", 0) ? w->dims[0] : w->dims[1];
    const kn_tensor *b = compute_bias(c->g, n, channels), *ws = NULL;
    int rc = quantize_weight(c, i, axis, &ws, err);
    if (!rc && b)
        rc = quantize_bias(c, i, b, ws, axis, err);
    return rc;
}

/* ---- activations ---- */

/* Point the quantized original nodes that read `from` at `to`. */
static void reroute_quantized_readers(st_ctx *c, int from, int to)
{
    for (int i = 0; i < c->n0; i++) {
        kn_node *n = &c->g->nodes[i];
        for (int k = 0; c->role[i] != ROLE_NONE && k < n->n_in; k++)
            if (n->in[k] == from)
                n->in[k] = to;
    }
}

/* v (float, with a range) gets Q/DQ: its producer writes v_float, the dequantized
 * copy is v; graph inputs and pinned values get a dequantized copy under a new name. */
static int insert_qdq(st_ctx *c, int v, kn_error *err)
{
    kn_graph *g = c->g;
    int sv = -1, zv = -1;
    if (group_inits(c, v, &sv, &zv, err))
        return err->code;
    int q = derived_value(g, v, "quantized", err);
    int p = g->values[v].producer;
    bool in_place = p >= 0 && !kn_opt_value_is_pinned(g, v);
    int src = v, dst = v;
    if (in_place) {
        if ((src = derived_value(g, v, "float", err)) < 0)
            return err->code;
        kn_node *pn = &g->nodes[p];
        for (int k = 0; k < pn->n_out; k++)
            if (pn->out[k] == v)
                pn->out[k] = src;
        g->values[src].producer = p;
        g->values[v].producer = -1;
    } else if ((dst = derived_value(g, v, "dequantized", err)) >= 0) {
        reroute_quantized_readers(c, v, dst);
    }
    if (q < 0 || dst < 0)
        return err->code;
    int qins[3] = {src, sv, zv};
    char h[256];
    snprintf(h, sizeof h, "%.180s_QuantizeLinear", g->values[v].name);
    if (kn_q_node(g, "QuantizeLinear", h, 3, qins, 1, &q, err) < 0)
        return err->code;
    snprintf(h, sizeof h, "%.180s_DequantizeLinear", g->values[v].name);
    return add_dq(g, h, q, sv, zv, -1, dst, err) < 0 ? err->code : KN_OK;
}

/* ---- driver ---- */

static int ctx_init(st_ctx *c, kn_graph *g, const kn_quant_opts *o, kn_error *err)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->o = o;
    c->n0 = g->n_nodes;
    c->nv = g->n_values;
    c->per_channel = o->per_channel && kn_q_opset(g) >= 13;
    size_t nv = (size_t)(c->nv ? c->nv : 1);
    c->parent = malloc(nv * sizeof *c->parent);
    c->scale_v = malloc(nv * sizeof *c->scale_v);
    c->zp_v = malloc(nv * sizeof *c->zp_v);
    c->lo = calloc(nv, sizeof *c->lo);
    c->hi = calloc(nv, sizeof *c->hi);
    c->has_range = calloc(nv, sizeof *c->has_range);
    c->no_own_range = calloc(nv, sizeof *c->no_own_range);
    c->qdq = calloc(nv, sizeof *c->qdq);
    c->role = calloc((size_t)(c->n0 ? c->n0 : 1), 1);
    if (!c->parent || !c->scale_v || !c->zp_v || !c->lo || !c->hi || !c->has_range || !c->no_own_range ||
        !c->qdq || !c->role)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int v = 0; v < c->nv; v++) {
        c->parent[v] = v;
        c->scale_v[v] = c->zp_v[v] = -1;
    }
    return KN_OK;
}

static void ctx_free(st_ctx *c)
{
    free(c->parent);
    free(c->scale_v);
    free(c->zp_v);
    free(c->lo);
    free(c->hi);
    free(c->has_range);
    free(c->no_own_range);
    free(c->qdq);
    free(c->role);
    kn_q_wcache_free(&c->weights);
}

static int rewrite(st_ctx *c, kn_error *err)
{
    for (int i = 0; i < c->n0; i++)
        if (c->role[i] == ROLE_COMPUTE && quantize_compute(c, i, err))
            return err->code;
    for (int v = 0; v < c->nv; v++)
        if (c->qdq[v] && has_range(c, v) && insert_qdq(c, v, err))
            return err->code;
    return KN_OK;
}

int kn_quant_static(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    if (kn_q_opset(g) < 10)
        return kn_fail(err, KN_ERR_UNSUPPORTED,
                       "static quantization needs opset 10 or newer (the model imports %d)", kn_q_opset(g));
    st_ctx c;
    int rc = ctx_init(&c, g, o, err);
    if (!rc) {
        tie_pass_nodes(&c);
        gather_ranges(&c);
        select_nodes(&c, rep);
        rc = rewrite(&c, err);
    }
    ctx_free(&c);
    return rc;
}
