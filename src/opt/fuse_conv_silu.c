/* fuse_conv_silu.c - pass fuse_conv_silu (level all, kiln only): a float32 Conv,
 * or a FusedConv without an activation, whose output only QuickGelu with alpha 1
 * reads (x sigmoid(x), SiLU / Swish, which fuse_gelu makes of the exported
 * Sigmoid + Mul) becomes a FusedConv with activation "SiLU".  The convolution then
 * applies SiLU to each output tile while it is still in cache instead of sweeping
 * the whole tensor again (EfficientNet's every expand, depthwise and stem conv).
 * ONNX Runtime's FusedConv has no such activation, so this pass is marked kiln-only:
 * `kiln optimize` (kn_optimize_portable) leaves it out of the files it writes. */
#include "opt/fuse_match.h"

#include "ops/op.h"

/* QuickGelu node n (com.microsoft) computes SiLU: one input, one output, alpha
 * exactly 1. */
static bool is_silu(const kn_node *n)
{
    return n->n_in == 1 && n->n_out == 1 && kn_attr_float(n, "alpha", 1.702f) == 1.0f;
}

/* Conv (default domain) or FusedConv with no activation: the fusion's first half. */
static bool conv_without_activation(const kn_node *c)
{
    if (!strcmp(c->op_type, "Conv") && !*c->domain)
        return true;
    if (strcmp(c->op_type, "FusedConv") || strcmp(c->domain, KN_MS_DOMAIN))
        return false;
    const char *act = kn_attr_string(c, "activation", "");
    return !*act || !strcmp(act, "Identity");
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    *done = false;
    if (!is_silu(&g->nodes[i]))
        return KN_OK;
    int x = g->nodes[i].in[0], conv = g->values[x].producer;
    if (conv < 0 || kn_opt_node_deleted(&g->nodes[conv]) ||
        !conv_without_activation(&g->nodes[conv]) || kn_opt_single_consumer(g, x) != i)
        return KN_OK;
    const kn_node *c = &g->nodes[conv];
    if (c->n_in < 2 || c->n_out != 1 || !(fm_is_f32(g, c->in[0]) || fm_is_f32(g, c->in[1])))
        return KN_OK;
    int ins[4] = {c->in[0], c->in[1], c->n_in > 2 ? c->in[2] : -1, c->n_in > 3 ? c->in[3] : -1};
    int n_in = c->n_in > 3 ? 4 : 3, outs[1] = {g->nodes[i].out[0]}, del[2] = {conv, i};
    int f = fm_replace(g, del, 2, "FusedConv", KN_MS_DOMAIN, 1, n_in, ins, 1, outs, err);
    if (f < 0 || kn_opt_copy_attrs(g, f, conv, err) ||
        kn_opt_set_attr_string(g, f, "activation", "SiLU", err))
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!kn_op_find(KN_MS_DOMAIN, "FusedConv", 1))
        return KN_OK;
    return fm_each_node_in(g, KN_MS_DOMAIN, "QuickGelu", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_conv_silu = {"fuse_conv_silu", KN_OPT_ALL, run, .kiln_only = true};
