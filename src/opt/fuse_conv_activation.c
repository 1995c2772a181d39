/* fuse_conv_activation.c - pass fuse_conv_activation: Conv followed by an
 * activation (Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid, Clip with constant
 * bounds), or by a residual Add of the Conv output's shape with or without such an
 * activation after it (the ResNet block tail Conv + Add + Relu, MobileNetV2's Conv +
 * Add), becomes com.microsoft FusedConv(X, W, B, Z) with the Conv's attributes,
 * "activation" and "activation_params" (LeakyRelu alpha; Clip min, max; HardSigmoid
 * alpha, beta); without an activation the attribute is left out (identity, in kiln
 * and ONNX Runtime alike).  Z must not be a constant (a broadcast bias); where kiln
 * does not know the shapes, the FusedConv kernel checks Z's at run time.  float32
 * only; skipped while kiln has no FusedConv kernel. */
#include "opt/fuse_match.h"

#include "ops/op.h"

typedef struct conv_match {
    int conv, add, act;
    int z;
    fm_activation a;
} conv_match;

static bool match(const kn_graph *g, int conv, conv_match *m)
{
    const kn_node *c = &g->nodes[conv];
    if (c->n_in < 2 || c->n_out != 1 || !(fm_is_f32(g, c->in[0]) || fm_is_f32(g, c->in[1])))
        return false;
    int y = c->out[0];
    m->conv = conv;
    m->add = -1;
    m->z = -1;
    int next = kn_opt_single_consumer(g, y);
    if (next < 0)
        return false;
    if (fm_match_activation(g, next, true, &m->a)) {
        m->act = next;
        return true;
    }
    if (fm_consumer(g, y, "Add") != next)
        return false;
    int z = fm_other_input(&g->nodes[next], y);
    if (z < 0 || z == y || fm_const(g, z) || !fm_maybe_same_shape(g, z, y) ||
        !fm_maybe_same_shape(g, g->nodes[next].out[0], y))
        return false;
    int act = kn_opt_single_consumer(g, g->nodes[next].out[0]);
    if (act < 0 || !fm_match_activation(g, act, true, &m->a))
        act = -1; /* Conv + Add alone */
    m->add = next;
    m->z = z;
    m->act = act;
    return true;
}

static int rewrite(kn_graph *g, const conv_match *m, kn_error *err)
{
    const kn_node *c = &g->nodes[m->conv];
    int ins[4] = {c->in[0], c->in[1], c->n_in > 2 ? c->in[2] : -1, m->z};
    int last = m->act >= 0 ? m->act : m->add;
    int outs[1] = {g->nodes[last].out[0]};
    int del[3] = {m->conv, last, m->add};
    int conv = m->conv;
    int i = fm_replace(g, del, m->add >= 0 && m->act >= 0 ? 3 : 2, "FusedConv", KN_MS_DOMAIN, 1,
                       m->z >= 0 ? 4 : 3, ins, 1, outs, err);
    if (i < 0 || kn_opt_copy_attrs(g, i, conv, err) ||
        (m->act >= 0 && kn_opt_set_attr_string(g, i, "activation", m->a.name, err)) ||
        (m->a.n_params &&
         kn_opt_set_attr_floats(g, i, "activation_params", m->a.params, m->a.n_params, err)))
        return err->code ? err->code : KN_ERR_NOMEM;
    return KN_OK;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    conv_match m;
    *done = match(g, i, &m);
    return *done ? rewrite(g, &m, err) : KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!kn_op_find(KN_MS_DOMAIN, "FusedConv", 1))
        return KN_OK;
    return fm_each_node(g, "Conv", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_conv_activation = {"fuse_conv_activation", KN_OPT_EXTENDED, run};
