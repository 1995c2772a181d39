/* quant_dynamic.c - dynamic int8 quantization (quant.h, ONNX Runtime's
 * quantize_dynamic form).  MatMul with a constant [K, N] weight, Gemm with a constant
 * B (transA = 0; transB and alpha folded into the weight and scale, beta * C kept as
 * an Add) and Conv with constant weights (and constant bias) become
 *   x -> DynamicQuantizeLinear -> (x_q, x_scale, x_zp)
 *   MatMulInteger / ConvInteger(x_q, W_q int8, x_zp, w_zp = 0) -> int32 -> Cast(float)
 *   -> Mul(x_scale * w_scale) [-> Add(bias)] -> y (the original output value).
 * Weight scales are per output channel unless o->per_channel is false.  Each
 * rewrite keeps the original output value, so consumers are untouched. */
#include "quant/quant_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Activations already quantized by a DynamicQuantizeLinear this pass emitted (the
 * Q, K and V projections of attention share one). */
typedef struct dq_cache {
    int n, cap;
    int (*e)[4];            /* x, x_q, x_scale, x_zp */
} dq_cache;

/* One node to rewrite, with everything the emitted nodes need. */
typedef struct dyn_node {
    kn_q_matrix m;          /* weight ([K, N] for matrices; Conv's as is), alpha, bias */
    int x, y;               /* float activation input, the output value to keep */
    int axis;               /* output-channel axis of the weight */
    const kn_tensor *conv_bias; /* Conv's [M] bias, reshaped before the Add */
    bool conv;
} dyn_node;

static bool plan_matmul(const kn_graph *g, const kn_node *n, dyn_node *d)
{
    const kn_tensor *w = n->n_in == 2 ? kn_q_const_f32(g, n->in[1], 2) : NULL;
    if (!w || !kn_q_float_activation(g, n->in[0]))
        return false;
    kn_tensor_view(&d->m.w, w);
    d->axis = 1;
    return true;
}

static bool plan_conv(const kn_graph *g, const kn_node *n, dyn_node *d)
{
    const kn_tensor *w = n->n_in >= 2 ? kn_opt_const(g, n->in[1]) : NULL;
    if (!w || w->dtype != KN_F32 || w->rank < 3 || !w->data || !kn_q_float_activation(g, n->in[0]))
        return false;
    if (n->n_in > 2 && n->in[2] >= 0) {
        d->conv_bias = kn_q_const_f32(g, n->in[2], 1);
        if (!d->conv_bias || d->conv_bias->dims[0] != w->dims[0])
            return false;
    }
    kn_tensor_view(&d->m.w, w);
    d->axis = 0;
    d->conv = true;
    return true;
}

/* Can node i be rewritten?  Fills d; *rc reports errors (then false). */
static bool plan(kn_graph *g, int i, dyn_node *d, int *rc, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    memset(d, 0, sizeof *d);
    d->m.bias = -1;
    d->m.alpha = 1;
    if (n->n_out != 1 || n->out[0] < 0 || n->n_in < 2)
        return false;
    d->x = n->in[0];
    d->y = n->out[0];
    if (kn_q_is_op(n, "MatMul"))
        return plan_matmul(g, n, d);
    if (kn_q_is_op(n, "Gemm")) {
        const kn_tensor *w = kn_q_const_f32(g, n->in[1], 2);
        d->axis = 1;
        return w && kn_q_float_activation(g, n->in[0]) && kn_q_plan_gemm(g, n, w, &d->m, rc, err);
    }
    if (kn_q_is_op(n, "Conv"))
        return plan_conv(g, n, d);
    return false;
}

/* The weight scale as an initializer: times alpha, shaped [M, 1, ...] for Conv so
 * that it broadcasts over the channel axis of the output. */
static int scale_init(kn_graph *g, const dyn_node *d, kn_tensor *s, const char *name, kn_error *err)
{
    float *p = s->data;
    for (int64_t c = 0; c < s->numel; c++)
        p[c] *= d->m.alpha;
    int64_t dims[KN_MAX_RANK];
    int rank = s->rank;
    if (d->conv && s->rank == 1) {
        rank = d->m.w.rank - 1;
        dims[0] = s->dims[0];
        for (int k = 1; k < rank; k++)
            dims[k] = 1;
    } else if (rank == 1) {
        dims[0] = s->dims[0];
    }
    char h[256];
    snprintf(h, sizeof h, "%s_w_scale", name);
    return kn_q_init(g, h, KN_F32, rank, dims, s->data, err);
}

/* Zero points of the weight: int8 zeros, one per column of a matrix weight (a
 * scalar for Conv and per-tensor scales). */
static int weight_zero_point(kn_graph *g, const dyn_node *d, const kn_tensor *s, const char *name,
                             kn_error *err)
{
    char h[256];
    snprintf(h, sizeof h, "%s_w_zero_point", name);
    if (d->conv || s->rank == 0)
        return kn_q_scalar(g, h, KN_I8, 0, err);
    kn_tensor z = {0};
    int v = kn_tensor_alloc(&z, KN_I8, 1, s->dims, err) ? -1 : kn_opt_new_initializer(g, h, &z, err);
    kn_tensor_release(&z);
    return v;
}

/* Conv's bias reshaped to [M, 1, ...]. */
static int conv_bias_init(kn_graph *g, const dyn_node *d, const char *name, kn_error *err)
{
    int64_t dims[KN_MAX_RANK];
    int rank = d->m.w.rank - 1;
    dims[0] = d->conv_bias->dims[0];
    for (int k = 1; k < rank; k++)
        dims[k] = 1;
    char h[256];
    snprintf(h, sizeof h, "%s_bias", name);
    return kn_q_init(g, h, KN_F32, rank, dims, d->conv_bias->data, err);
}

/* A new value named "<name>_<suffix>". */
static int named_value(kn_graph *g, const char *name, const char *suffix, kn_error *err)
{
    char h[256];
    snprintf(h, sizeof h, "%.180s_%s", name, suffix);
    return kn_q_value(g, h, err);
}

/* The integer product and its rescaling: MatMulInteger/ConvInteger -> Cast -> Mul
 * [-> Add] -> d->y.  ids: x_q, x_scale, x_zp, w_q, w_scale, w_zp. */
static int emit_compute(kn_graph *g, int old, const dyn_node *d, const int *ids, int bias,
                        const char *name, kn_error *err)
{
    char h[256];
    int acc = named_value(g, name, "int32", err), accf = named_value(g, name, "float", err);
    int sc = named_value(g, name, "scale", err);
    int prod = bias < 0 ? d->y : named_value(g, name, "scaled", err);
    if (acc < 0 || accf < 0 || sc < 0 || prod < 0)
        return err->code;
    int ins[4] = {ids[0], ids[3], ids[2], ids[5]};
    snprintf(h, sizeof h, "%s_quant", name);
    int ci = kn_q_node(g, d->conv ? "ConvInteger" : "MatMulInteger", h, 4, ins, 1, &acc, err);
    if (ci < 0 || (d->conv && kn_opt_copy_attrs(g, ci, old, err)))
        return err->code;
    int sins[2] = {ids[1], ids[4]}, mins[2] = {accf, sc}, ains[2] = {prod, bias};
    char h2[256], h3[256];
    snprintf(h, sizeof h, "%s_cast", name);
    snprintf(h2, sizeof h2, "%s_scale", name);
    snprintf(h3, sizeof h3, "%s_rescale", name);
    if (kn_q_cast(g, h, acc, KN_F32, accf, err) < 0 || kn_q_node(g, "Mul", h2, 2, sins, 1, &sc, err) < 0 ||
        kn_q_node(g, "Mul", h3, 2, mins, 1, &prod, err) < 0)
        return err->code;
    snprintf(h, sizeof h, "%s_bias", name);
    if (bias >= 0 && kn_q_node(g, "Add", h, 2, ains, 1, &d->y, err) < 0)
        return err->code;
    return KN_OK;
}

/* ids[0..3) = x_q, x_scale, x_zp of activation x: from the cache, or from a new
 * DynamicQuantizeLinear. */
static int quantized_input(kn_graph *g, dq_cache *c, int x, const char *name, int *ids, kn_error *err)
{
    for (int k = 0; k < c->n; k++)
        if (c->e[k][0] == x) {
            memcpy(ids, &c->e[k][1], 3 * sizeof *ids);
            return KN_OK;
        }
    const char *sfx[3] = {"quantized", "scale", "zero_point"};
    for (int k = 0; k < 3; k++)
        if ((ids[k] = named_value(g, g->values[x].name, sfx[k], err)) < 0)
            return err->code;
    char h[256];
    snprintf(h, sizeof h, "%s_quantize_input", name);
    if (kn_q_node(g, "DynamicQuantizeLinear", h, 1, &x, 3, ids, err) < 0)
        return err->code;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        void *p = realloc(c->e, sizeof *c->e * (size_t)cap);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        c->e = p;
        c->cap = cap;
    }
    c->e[c->n][0] = x;
    memcpy(&c->e[c->n++][1], ids, 3 * sizeof *ids);
    return KN_OK;
}

/* The caches of one pass: quantized activations and quantized weights. */
typedef struct dyn_pass {
    const kn_quant_opts *o;
    dq_cache acts;
    kn_q_wcache weights;
} dyn_pass;

/* ids[0..3) = w_q, w_scale, w_zp of node i's weight: cached, or made now. */
static int weight_inits(kn_graph *g, int i, const dyn_node *d, dyn_pass *p, const char *name, int *ids,
                        kn_error *err)
{
    int src = g->nodes[i].in[1], variant = 2 * d->conv + d->m.w.owns_data;
    const int *hit = kn_q_wcache_find(&p->weights, src, variant, d->m.alpha);
    if (hit) {
        memcpy(ids, hit, 3 * sizeof *ids);
        return KN_OK;
    }
    kn_tensor q = {0}, s = {0};
    char h[256];
    int rc = kn_q_weight_int8(&d->m.w, p->o->per_channel ? d->axis : -1, &q, &s, err);
    if (!rc) {
        snprintf(h, sizeof h, "%s_w_quantized", name);
        ids[0] = kn_opt_new_initializer(g, h, &q, err);
        ids[1] = ids[0] < 0 ? -1 : scale_init(g, d, &s, name, err);
        ids[2] = ids[1] < 0 ? -1 : weight_zero_point(g, d, &s, name, err);
        rc = ids[2] < 0 ? err->code : kn_q_wcache_add(&p->weights, src, variant, d->m.alpha, ids, 3, err);
    }
    kn_tensor_release(&q);
    kn_tensor_release(&s);
    return rc;
}

/* Replace node i (planned in d) by the dynamic form. */
static int rewrite(kn_graph *g, int i, const dyn_node *d, dyn_pass *p, kn_error *err)
{
    char name[200];
    snprintf(name, sizeof name, "%s", g->nodes[i].name && g->nodes[i].name[0] ? g->nodes[i].name
                                                                              : g->nodes[i].op_type);
    int ids[6] = {-1, -1, -1, -1, -1, -1};
    if (weight_inits(g, i, d, p, name, &ids[3], err))
        return err->code;
    int bias = d->conv_bias ? conv_bias_init(g, d, name, err) : d->m.bias;
    if (d->conv_bias && bias < 0)
        return err->code;
    kn_opt_delete_node(g, i);
    if (quantized_input(g, &p->acts, d->x, name, ids, err))
        return err->code;
    return emit_compute(g, i, d, ids, bias, name, err);
}

static bool is_candidate(const kn_node *n)
{
    return kn_q_is_op(n, "MatMul") || kn_q_is_op(n, "Gemm") || kn_q_is_op(n, "Conv");
}

int kn_quant_dynamic(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    if (kn_q_opset(g) < 11)
        return kn_fail(err, KN_ERR_UNSUPPORTED,
                       "dynamic quantization needs opset 11 or newer (the model imports %d)", kn_q_opset(g));
    int n0 = g->n_nodes, rc = KN_OK;   /* appended nodes are not visited */
    dyn_pass pass = {.o = o};
    for (int i = 0; i < n0 && !rc; i++) {
        if (kn_opt_node_deleted(&g->nodes[i]) || !is_candidate(&g->nodes[i]))
            continue;
        dyn_node d;
        bool ok = !kn_q_excluded(o, &g->nodes[i]) && plan(g, i, &d, &rc, err);
        if (ok)
            rc = rewrite(g, i, &d, &pass, err);
        if (ok || rc)
            kn_tensor_release(&d.m.w);
        rep->nodes_quantized += ok;
        rep->nodes_kept_float += !ok;
    }
    free(pass.acts.e);
    kn_q_wcache_free(&pass.weights);
    return rc;
}
