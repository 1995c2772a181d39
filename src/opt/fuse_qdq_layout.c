/* fuse_qdq_layout.c - pass qdq_channels_last: keeps 8-bit activations channels-last
 * between the integer operators that fuse_qdq made, so that convolutions need no
 * per-image transposes:
 *
 *   QLinearConv (2-D, group 1 or depthwise, constant weight)
 *       => Transpose(NHWC) -> com.microsoft QLinearConv(channels_last=1) -> Transpose(NCHW)
 *   com.microsoft QLinearAdd whose two inputs are both Transpose(NHWC -> NCHW)
 *       => the add on the transposes' inputs, then one Transpose(NCHW)
 *       (an elementwise operator commutes with the same permutation of both inputs);
 *   com.microsoft QLinearGlobalAveragePool (channels_last 0) reading Transpose(NHWC -> NCHW)
 *       => channels_last=1 on the transpose's input, then Transpose(NCHW);
 *   8-bit MaxPool reading Transpose(NHWC -> NCHW) => com.microsoft NhwcMaxPool;
 *   Transpose(QuantizeLinear(x)), per-tensor => QuantizeLinear(Transpose(x)), so the
 *       model input is transposed as float by the tiled kernel.
 *
 * Every rewrite is exact on its own; the gain comes from eliminate_transpose, which
 * cancels each Transpose(NCHW) -> Transpose(NHWC) pair this leaves between two
 * channels-last operators. */
#include "opt/fuse_match.h"

#include "ops/op.h"

static const int64_t to_last[4] = {0, 2, 3, 1}, to_first[4] = {0, 3, 1, 2};

static bool is_ms_op(const kn_node *n, const char *op)
{
    return !kn_opt_node_deleted(n) && n->domain && !strcmp(n->domain, KN_MS_DOMAIN) && !strcmp(n->op_type, op) &&
           n->n_out >= 1 && n->n_in >= 1;
}

/* v is made by a Transpose with permutation `perm` (rank 4): its input, else -1. */
static int transposed_from(const kn_graph *g, int v, const int64_t *perm)
{
    int p = fm_producer(g, v, "Transpose");
    const int64_t *pp;
    if (p < 0 || kn_attr_ints(&g->nodes[p], "perm", &pp) != 4)
        return -1;
    for (int k = 0; k < 4; k++)
        if (pp[k] != perm[k])
            return -1;
    return g->nodes[p].in[0];
}

/* Transpose(in, perm) -> out (out -1: a new value); returns out or -1. */
static int add_transpose(kn_graph *g, int in, int out, const int64_t *perm, kn_error *err)
{
    if (out < 0 && (out = kn_opt_new_value(g, "nhwc", err)) < 0)
        return -1;
    int ins[1] = {in}, outs[1] = {out};
    int i = kn_opt_add_node(g, "Transpose", "", 13, "layout", 1, ins, 1, outs, err);
    if (i < 0 || kn_opt_set_attr_ints(g, i, "perm", perm, 4, err))
        return -1;
    return out;
}

/* Replace node i by com.microsoft `op` reading ins (node i's attributes, plus
 * channels_last = 1 where op has it) that writes a new channels-last value, transposed back into
 * node i's output. */
static int replace_channels_last(kn_graph *g, int i, const char *op, int n_in, const int *ins, kn_error *err)
{
    /* NhwcMaxPool is channels-last by definition, QLinearAdd layout-free: neither
     * has the attribute (ONNX Runtime refuses unknown attributes) */
    bool attr = strcmp(op, "NhwcMaxPool") != 0 && strcmp(op, "QLinearAdd") != 0;
    int y = g->nodes[i].out[0], yl = kn_opt_new_value(g, "nhwc", err);
    if (yl < 0)
        return err->code;
    int del[1] = {i}, outs[1] = {yl};
    int k = fm_replace(g, del, 1, op, KN_MS_DOMAIN, 1, n_in, ins, 1, outs, err);
    if (k < 0 || kn_opt_copy_attrs(g, k, i, err) || (attr && kn_opt_set_attr_int(g, k, "channels_last", 1, err)) ||
        add_transpose(g, yl, y, to_first, err) < 0)
        return err->code ? err->code : KN_ERR_NOMEM;
    return KN_OK;
}

static int conv_to_last(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    const kn_tensor *w = n->n_in > 3 ? fm_const(g, n->in[3]) : NULL;
    int64_t group = kn_attr_int(n, "group", 1);
    if (!w || w->rank != 4 || n->n_out != 1 || n->n_in > 9 ||
        (group != 1 && (group != w->dims[0] || w->dims[1] != 1))) /* group 1 or depthwise */
        return KN_OK;
    int ins[9];
    for (int k = 0; k < n->n_in; k++)
        ins[k] = n->in[k];
    int n_in = n->n_in;
    if ((ins[0] = add_transpose(g, ins[0], -1, to_last, err)) < 0)
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return replace_channels_last(g, i, "QLinearConv", n_in, ins, err);
}

static int add_to_last(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    if (n->n_in < 7 || n->n_in > 8 || n->n_out != 1)
        return KN_OK;
    int a = transposed_from(g, n->in[0], to_first), b = transposed_from(g, n->in[3], to_first);
    if (a < 0 || b < 0)
        return KN_OK;
    int ins[8];
    for (int k = 0; k < n->n_in; k++)
        ins[k] = n->in[k];
    ins[0] = a;
    ins[3] = b;
    *done = true;
    return replace_channels_last(g, i, "QLinearAdd", n->n_in, ins, err);
}

static int gap_to_last(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    if (kn_attr_int(n, "channels_last", 0) || n->n_in < 4 ||
        n->n_in > 5 || n->n_out != 1)
        return KN_OK;
    int x = transposed_from(g, n->in[0], to_first);
    if (x < 0)
        return KN_OK;
    int ins[5];
    for (int k = 0; k < n->n_in; k++)
        ins[k] = n->in[k];
    ins[0] = x;
    *done = true;
    return replace_channels_last(g, i, "QLinearGlobalAveragePool", n->n_in, ins, err);
}

/* v holds 8-bit data: its type says so, or a quantized com.microsoft operator made it. */
static bool is_q8_value(const kn_graph *g, int v)
{
    kn_dtype t = kn_opt_dtype(g, v);
    int p = v >= 0 ? g->values[v].producer : -1;
    if (t == KN_U8 || t == KN_I8)
        return true;
    return p >= 0 && (is_ms_op(&g->nodes[p], "QLinearConv") || is_ms_op(&g->nodes[p], "QLinearAdd"));
}

/* 8-bit 2-D MaxPool reading Transpose(NHWC -> NCHW): com.microsoft NhwcMaxPool. */
static int maxpool_to_last(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    int x = transposed_from(g, n->in[0], to_first);
    /* NhwcMaxPool has no storage_order (ONNX Runtime refuses unknown attributes) */
    if (x < 0 || (n->n_out > 1 && n->out[1] >= 0) || !is_q8_value(g, x) || kn_attr_find(n, "storage_order") ||
        !kn_op_find(KN_MS_DOMAIN, "NhwcMaxPool", 1))
        return KN_OK;
    int ins[1] = {x};
    *done = true;
    return replace_channels_last(g, i, "NhwcMaxPool", 1, ins, err);
}

/* Transpose(QuantizeLinear(x)) with per-tensor parameters is
 * QuantizeLinear(Transpose(x)): the float transpose has the fast tiled kernel. */
static int transpose_before_quantize(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *t = &g->nodes[i];
    int q = fm_producer(g, t->in[0], "QuantizeLinear");
    if (q < 0 || kn_opt_single_consumer(g, t->in[0]) != i || g->nodes[q].n_in < 2 || g->nodes[q].n_in > 3)
        return KN_OK;
    const kn_node *qn = &g->nodes[q];
    const kn_tensor *s = fm_const(g, qn->in[1]), *z = qn->n_in > 2 && qn->in[2] >= 0 ? fm_const(g, qn->in[2]) : NULL;
    if (!s || s->numel != 1 || (qn->n_in > 2 && qn->in[2] >= 0 && (!z || z->numel != 1)) ||
        kn_opt_dtype(g, qn->in[0]) != KN_F32)
        return KN_OK;
    int ins[3] = {qn->in[0], qn->in[1], qn->n_in > 2 ? qn->in[2] : -1}, n_in = qn->n_in, out = t->out[0];
    int tf = kn_opt_new_value(g, "transposed", err), del[2] = {i, q}, tins[1] = {ins[0]}, touts[1] = {tf};
    if (tf < 0)
        return err->code;
    int k = fm_replace(g, del, 2, "Transpose", "", 13, 1, tins, 1, touts, err);
    if (k < 0 || kn_opt_copy_attrs(g, k, i, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    ins[0] = tf;
    int outs[1] = {out};
    int qk = kn_opt_add_node(g, "QuantizeLinear", "", 13, "quantize", n_in, ins, 1, outs, err);
    if (qk < 0 || kn_opt_copy_attrs(g, qk, q, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!kn_op_find(KN_MS_DOMAIN, "QLinearConv", 1))
        return KN_OK;
    int rc = fm_each_node(g, "QLinearConv", conv_to_last, rewrites, err);
    if (!rc)
        rc = fm_each_node_in(g, KN_MS_DOMAIN, "QLinearAdd", add_to_last, rewrites, err);
    if (!rc)
        rc = fm_each_node_in(g, KN_MS_DOMAIN, "QLinearGlobalAveragePool", gap_to_last, rewrites,
                             err);
    if (!rc)
        rc = fm_each_node(g, "MaxPool", maxpool_to_last, rewrites, err);
    if (!rc)
        rc = fm_each_node(g, "Transpose", transpose_before_quantize, rewrites, err);
    return rc;
}

const kn_opt_pass kn_pass_qdq_channels_last = {"qdq_channels_last", KN_OPT_EXTENDED, run};
