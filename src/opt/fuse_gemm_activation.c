/* fuse_gemm_activation.c - pass fuse_gemm_activation: Gemm followed by Relu,
 * LeakyRelu, Sigmoid, Tanh or HardSigmoid becomes com.microsoft FusedGemm with the
 * Gemm's attributes plus "activation" and "activation_alpha" / "activation_beta"
 * (LeakyRelu alpha; HardSigmoid alpha, beta), as ONNX Runtime defines it.  float32
 * only; skipped while kiln has no FusedGemm kernel.  MatMul + Add(bias) is left
 * alone (FusedMatMul has no bias input). */
#include "opt/fuse_match.h"

#include "ops/op.h"

static int rewrite(kn_graph *g, int gemm, int act, const fm_activation *a, kn_error *err)
{
    const kn_node *n = &g->nodes[gemm];
    int ins[3] = {n->in[0], n->in[1], n->n_in > 2 ? n->in[2] : -1};
    int outs[1] = {g->nodes[act].out[0]};
    int del[2] = {gemm, act};
    int i = fm_replace(g, del, 2, "FusedGemm", KN_MS_DOMAIN, 1, ins[2] >= 0 ? 3 : 2, ins, 1, outs,
                       err);
    if (i < 0 || kn_opt_copy_attrs(g, i, gemm, err) ||
        kn_opt_set_attr_string(g, i, "activation", a->name, err) ||
        (a->n_params > 0 && kn_opt_set_attr_float(g, i, "activation_alpha", a->params[0], err)) ||
        (a->n_params > 1 && kn_opt_set_attr_float(g, i, "activation_beta", a->params[1], err)))
        return err->code ? err->code : KN_ERR_NOMEM;
    return KN_OK;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    *done = false;
    if (n->n_in < 2 || n->n_out != 1 || !(fm_is_f32(g, n->in[0]) || fm_is_f32(g, n->in[1])))
        return KN_OK;
    int act = kn_opt_single_consumer(g, n->out[0]);
    fm_activation a;
    *done = act >= 0 && fm_match_activation(g, act, false, &a);
    return *done ? rewrite(g, i, act, &a, err) : KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!kn_op_find(KN_MS_DOMAIN, "FusedGemm", 1))
        return KN_OK;
    return fm_each_node(g, "Gemm", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_gemm_activation = {"fuse_gemm_activation", KN_OPT_EXTENDED, run};
