/* fuse_matmul_gelu.c - pass fuse_matmul_gelu (level all, kiln only): a float32
 * MatMul by a constant matrix B [K, N] whose output only a com.microsoft BiasGelu
 * or FastGelu with a constant bias [N] reads (what fuse_gelu makes of a
 * transformer's feed-forward MatMul + Add + Gelu) becomes kiln's
 * MatMulBiasGelu(A, B, bias), approximate "none" or "tanh".  The GEMM then adds
 * the bias in its epilogue and applies the GELU to each tile while it is in
 * cache, where the two ops swept the [tokens, 4 x hidden] activation twice more.
 * ONNX Runtime has no such operator, so the pass is kiln-only: `kiln optimize`
 * (kn_optimize_portable) leaves it out of the files it writes. */
#include "opt/fuse_match.h"

#include "ops/op.h"

/* A MatMul (default domain) of two inputs by a constant float32 matrix (so A is
 * float32 too: MatMul's inputs share a type), whose output node gi alone reads;
 * its B's column count in *n. */
static bool matmul_by_constant(const kn_graph *g, int mi, int gi, int64_t *n)
{
    if (mi < 0 || kn_opt_node_deleted(&g->nodes[mi]))
        return false;
    const kn_node *m = &g->nodes[mi];
    if (strcmp(m->op_type, "MatMul") || *m->domain || m->n_in != 2 || m->n_out != 1 ||
        kn_opt_single_consumer(g, m->out[0]) != gi)
        return false;
    const kn_tensor *b = kn_opt_const(g, m->in[1]);
    if (!b || b->dtype != KN_F32 || b->rank != 2)
        return false;
    *n = b->dims[1];
    return true;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    *done = false;
    const kn_node *gelu = &g->nodes[i];
    if (gelu->n_in != 2 || gelu->n_out != 1 || gelu->in[1] < 0)
        return KN_OK;
    int x = gelu->in[0], mi = g->values[x].producer;
    int64_t n;
    const kn_tensor *bias = kn_opt_const(g, gelu->in[1]);
    if (!matmul_by_constant(g, mi, i, &n) || !bias || bias->dtype != KN_F32 || bias->rank != 1 ||
        bias->dims[0] != n)
        return KN_OK;
    bool tanh_form = !strcmp(gelu->op_type, "FastGelu");
    int ins[3] = {g->nodes[mi].in[0], g->nodes[mi].in[1], gelu->in[1]};
    int outs[1] = {gelu->out[0]}, del[2] = {mi, i};
    int f = fm_replace(g, del, 2, "MatMulBiasGelu", KN_KILN_DOMAIN, 1, 3, ins, 1, outs, err);
    if (f < 0 || kn_opt_set_attr_string(g, f, "approximate", tanh_form ? "tanh" : "none", err))
        return err->code ? err->code : KN_ERR_NOMEM;
    *done = true;
    return KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    if (!kn_op_find(KN_KILN_DOMAIN, "MatMulBiasGelu", 1))
        return KN_OK;
    int rc = fm_each_node_in(g, KN_MS_DOMAIN, "BiasGelu", fuse_at, rewrites, err);
    return rc ? rc : fm_each_node_in(g, KN_MS_DOMAIN, "FastGelu", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_matmul_gelu = {"fuse_matmul_gelu", KN_OPT_ALL, run,
                                              .kiln_only = true};
