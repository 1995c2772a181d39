/* fuse_dynamic_quant.c - pass fuse_dynamic_quant: the dynamic INT8 form that
 * `kiln quantize --mode dynamic` and ONNX Runtime's quantize_dynamic write for a
 * MatMul / Gemm with a constant weight,
 *   (xq, xs, xz) = DynamicQuantizeLinear(x)
 *   acc = MatMulInteger(xq, Wq, xz [, Wzp])        Wq constant int8/uint8 [K, N]
 *   y   = Cast(acc, to=float) * Mul(xs, Ws)       Ws constant, 1 or N values
 *   [y  = y + bias]                                bias constant float [N]
 * becomes com.microsoft DynamicQuantizeMatMul(x, Wq, Ws, Wzp, bias) -> y, which
 * runs on the integer GEMM with Wq packed once (ops/quant_dynamic.c).  The
 * DynamicQuantizeLinear stays while other MatMulIntegers (Q, K and V projections
 * share one) still read it; dead-code removal drops it after the last.
 *
 * Pass order (optimize.c): after fuse_layernorm, before fuse_attention,
 * fuse_skip_layernorm and fuse_gelu.  Attention fusion matches float MatMul
 * projections, which a dynamically quantized model no longer has, so its
 * attention stays decomposed (the score and context MatMuls are float either way);
 * absorbing the bias Add here first leaves SkipLayerNormalization and Gelu their
 * plain forms to match. */
#include "opt/fuse_match.h"

typedef struct dq_match {
    int dql, mmi, cast, mul, smul, add;
    int x, w, w_scale, w_zero, bias, out;
} dq_match;

static bool const_8bit_matrix(const kn_graph *g, int v, int64_t *n)
{
    const kn_tensor *t = fm_const(g, v);
    if (!t || t->rank != 2 || (t->dtype != KN_I8 && t->dtype != KN_U8))
        return false;
    *n = t->dims[1];
    return true;
}

static bool const_vec(const kn_graph *g, int v, kn_dtype dt, int64_t n)
{
    const kn_tensor *t = fm_const(g, v);
    return t && t->dtype == dt && t->rank <= 1 && (t->numel == 1 || t->numel == n);
}

/* MatMulInteger reading all three outputs' worth of a DynamicQuantizeLinear. */
static bool match_integer_product(const kn_graph *g, int i, dq_match *m, int64_t *n)
{
    const kn_node *mm = &g->nodes[i];
    m->mmi = i;
    if (mm->n_in < 3 || mm->n_out != 1 || !const_8bit_matrix(g, mm->in[1], n))
        return false;
    m->dql = fm_producer(g, mm->in[0], "DynamicQuantizeLinear");
    if (m->dql < 0)
        return false;
    const kn_node *d = &g->nodes[m->dql];
    if (d->n_out < 3 || d->out[0] != mm->in[0] || d->out[2] != mm->in[2] || d->out[1] < 0)
        return false;
    m->x = d->in[0];
    m->w = mm->in[1];
    m->w_zero = mm->n_in > 3 ? mm->in[3] : -1;
    kn_dtype wt = fm_const(g, m->w)->dtype;
    return m->w_zero < 0 || const_vec(g, m->w_zero, wt, *n);
}

/* Cast(to float) -> Mul by Mul(x_scale, constant w_scale). */
static bool match_dequant(const kn_graph *g, dq_match *m, int64_t n)
{
    m->cast = fm_consumer(g, g->nodes[m->mmi].out[0], "Cast");
    if (m->cast < 0 || kn_attr_int(&g->nodes[m->cast], "to", 0) != KN_F32)
        return false;
    int cv = g->nodes[m->cast].out[0];
    m->mul = fm_consumer(g, cv, "Mul");
    if (m->mul < 0)
        return false;
    int s = fm_other_input(&g->nodes[m->mul], cv);
    m->smul = fm_producer(g, s, "Mul");
    if (m->smul < 0)
        return false;
    int xs = g->nodes[m->dql].out[1];
    m->w_scale = fm_other_input(&g->nodes[m->smul], xs);
    m->out = g->nodes[m->mul].out[0];
    return m->w_scale >= 0 && const_vec(g, m->w_scale, KN_F32, n);
}

/* y + bias, bias a constant float [N]. */
static void match_bias(const kn_graph *g, dq_match *m, int64_t n)
{
    m->add = fm_consumer(g, m->out, "Add");
    m->bias = -1;
    if (m->add < 0)
        return;
    int b = fm_other_input(&g->nodes[m->add], m->out);
    if (b >= 0 && fm_vector_f32(g, b, n)) {
        m->bias = b;
        m->out = g->nodes[m->add].out[0];
    } else {
        m->add = -1;
    }
}

static int rewrite(kn_graph *g, const dq_match *m, kn_error *err)
{
    int del[5] = {m->mmi, m->cast, m->mul}, n_del = 3;
    if (m->add >= 0)
        del[n_del++] = m->add;
    if (fm_uses(g, g->nodes[m->smul].out[0]) == 1)
        del[n_del++] = m->smul;
    int ins[5] = {m->x, m->w, m->w_scale, m->w_zero, m->bias};
    int n_in = m->bias >= 0 ? 5 : m->w_zero >= 0 ? 4 : 3;
    int outs[1] = {m->out};
    return fm_replace(g, del, n_del, "DynamicQuantizeMatMul", KN_MS_DOMAIN, 1, n_in, ins, 1, outs, err) < 0
               ? (err->code ? err->code : KN_ERR_NOMEM)
               : KN_OK;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    dq_match m;
    int64_t n;
    *done = match_integer_product(g, i, &m, &n) && match_dequant(g, &m, n);
    if (!*done)
        return KN_OK;
    match_bias(g, &m, n);
    return rewrite(g, &m, err);
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    return fm_each_node(g, "MatMulInteger", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_dynamic_quant = {"fuse_dynamic_quant", KN_OPT_EXTENDED, run};
