/* fuse_qdq_layout.c - pass qdq_channels_last: keeps 8-bit activations channels-last
 * between the integer operators that fuse_qdq made, so that convolutions need no
 * per-image transposes:
 *
 *   QLinearConv (2-D, group 1, constant weight)
 *       => Transpose(NHWC) -> com.microsoft QLinearConv(channels_last=1) -> Transpose(NCHW)
 *   com.microsoft QLinearAdd whose two inputs are both Transpose(NHWC -> NCHW)
 *       => the add on the transposes' inputs, then one Transpose(NCHW)
 *       (an elementwise operator commutes with the same permutation of both inputs);
 *   com.microsoft QLinearGlobalAveragePool (channels_last 0) reading Transpose(NHWC -> NCHW)
 *       => channels_last=1 on the transpose's input, then Transpose(NCHW).
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
 * channels_last = 1) that writes a new channels-last value, transposed back into
 * node i's output. */
static int replace_channels_last(kn_graph *g, int i, const char *op, int n_in, const int *ins, kn_error *err)
{
    int y = g->nodes[i].out[0], yl = kn_opt_new_value(g, "nhwc", err);
    if (yl < 0)
        return err->code;
    int del[1] = {i}, outs[1] = {yl};
    int k = fm_replace(g, del, 1, op, KN_MS_DOMAIN, 1, n_in, ins, 1, outs, err);
    if (k < 0 || kn_opt_copy_attrs(g, k, i, err) || kn_opt_set_attr_int(g, k, "channels_last", 1, err) ||
        add_transpose(g, yl, y, to_first, err) < 0)
        return err->code ? err->code : KN_ERR_NOMEM;
    return KN_OK;
}

static int conv_to_last(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    const kn_tensor *w = n->n_in > 3 ? fm_const(g, n->in[3]) : NULL;
    if (!w || w->rank != 4 || kn_attr_int(n, "group", 1) != 1 || n->n_out != 1 || n->n_in > 9)
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
    if (!is_ms_op(n, "QLinearAdd") || n->n_in < 7 || n->n_in > 8 || n->n_out != 1)
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
    if (!is_ms_op(n, "QLinearGlobalAveragePool") || kn_attr_int(n, "channels_last", 0) || n->n_in < 4 ||
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

/* The com.microsoft nodes (fm_each_node visits default-domain ones only). */
static int each_ms_node(kn_graph *g, fm_fuse_fn fn, int *rewrites, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        bool done = false;
        int rc = fn(g, i, &done, err);
        if (rc)
            return rc;
        *rewrites += done;
    }
    return KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!kn_op_find(KN_MS_DOMAIN, "QLinearConv", 1))
        return KN_OK;
    int rc = fm_each_node(g, "QLinearConv", conv_to_last, rewrites, err);
    if (!rc)
        rc = each_ms_node(g, add_to_last, rewrites, err);
    if (!rc)
        rc = each_ms_node(g, gap_to_last, rewrites, err);
    return rc;
}

const kn_opt_pass kn_pass_qdq_channels_last = {"qdq_channels_last", KN_OPT_EXTENDED, run};
