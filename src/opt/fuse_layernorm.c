/* fuse_layernorm.c - pass fuse_layernorm: the layer normalization that opset < 17
 * exports write out,
 *   m = ReduceMean(x, last axis); d = x - m; v = ReduceMean(d^2, last axis)
 *   y = d / Sqrt(v + eps) [* gamma] [+ beta]      (d^2 as Pow(d, 2) or d * d)
 * becomes LayerNormalization(x, gamma, beta; axis -1, epsilon eps); a missing
 * gamma becomes a constant of ones.  The node is written in the default domain at
 * the model's opset: kiln runs it at any opset, and ONNX Runtime registers
 * LayerNormalization in that domain since version 1 (its own contrib schema), so
 * the model's opset import is left as it is. */
#include "opt/fuse_match.h"

#include <stdlib.h>

typedef struct ln_match {
    int x, d, gamma, beta, out;
    int64_t h;          /* size of the normalized (last) axis */
    float eps;
    int nodes[10];
    int n;
} ln_match;

/* d's readers: the square (Pow(d, 2) or Mul(d, d)) and the Div; returns the square. */
static int match_square(const kn_graph *g, ln_match *m, int *div)
{
    int cons[3];
    if (fm_consumers(g, m->d, cons, 3) != 2 || kn_opt_value_is_pinned(g, m->d))
        return -1;
    for (int k = 0; k < 2; k++) {
        const kn_node *n = &g->nodes[cons[k]], *o = &g->nodes[cons[1 - k]];
        if (n->n_in != 2 || o->n_in != 2 || n->n_out < 1 || o->n_out < 1)
            continue;
        bool pow2 = !strcmp(n->op_type, "Pow") && n->in[0] == m->d &&
                    fm_scalar_near(g, n->in[1], 2.0, 1e-9);
        bool mul2 = !strcmp(n->op_type, "Mul") && n->in[0] == m->d && n->in[1] == m->d;
        if ((pow2 || mul2) && fm_producer(g, n->out[0], n->op_type) == cons[k] &&
            !strcmp(o->op_type, "Div") && o->in[0] == m->d && (!o->domain || !o->domain[0])) {
            *div = cons[1 - k];
            return cons[k];
        }
    }
    return -1;
}

/* square -> ReduceMean -> Add(eps) -> Sqrt -> the Div's divisor. */
static bool match_variance(const kn_graph *g, ln_match *m, int sq, int div)
{
    int r2 = fm_consumer(g, g->nodes[sq].out[0], "ReduceMean");
    if (r2 < 0 || !fm_reduces_last_axis(g, r2))
        return false;
    int add = fm_consumer(g, g->nodes[r2].out[0], "Add");
    double eps;
    if (add < 0 || !fm_scalar(g, fm_other_input(&g->nodes[add], g->nodes[r2].out[0]), &eps))
        return false;
    int sqrt_n = fm_consumer(g, g->nodes[add].out[0], "Sqrt");
    if (sqrt_n < 0 || g->nodes[div].in[1] != g->nodes[sqrt_n].out[0] ||
        kn_opt_single_consumer(g, g->nodes[sqrt_n].out[0]) != div)
        return false;
    m->eps = (float)eps;
    int more[5] = {sq, r2, add, sqrt_n, div};
    for (int k = 0; k < 5; k++)
        m->nodes[m->n++] = more[k];
    return true;
}

/* m->out read only by op(m->out, constant [h]): take that node, return the constant. */
static int absorb_param(const kn_graph *g, ln_match *m, const char *op, int64_t h)
{
    int n = fm_consumer(g, m->out, op);
    int p = n >= 0 ? fm_other_input(&g->nodes[n], m->out) : -1;
    if (p < 0 || !fm_vector_f32(g, p, h))
        return -1;
    m->nodes[m->n++] = n;
    m->out = g->nodes[n].out[0];
    return p;
}

/* Optional Mul(gamma) and Add(beta) after the Div. */
static void match_affine(const kn_graph *g, ln_match *m, int64_t h)
{
    m->out = g->nodes[m->nodes[m->n - 1]].out[0];
    if ((m->gamma = absorb_param(g, m, "Mul", h)) >= 0)
        m->beta = absorb_param(g, m, "Add", h);
}

static bool match(const kn_graph *g, int r1, ln_match *m)
{
    const kn_node *r = &g->nodes[r1];
    if (r->n_in < 1 || !fm_reduces_last_axis(g, r1))
        return false;
    m->x = r->in[0];
    int sub = fm_consumer(g, r->out[0], "Sub");
    if (sub < 0 || g->nodes[sub].in[0] != m->x || g->nodes[sub].in[1] != r->out[0])
        return false;
    m->d = g->nodes[sub].out[0];
    m->nodes[m->n++] = r1;
    m->nodes[m->n++] = sub;
    int div = -1, sq = match_square(g, m, &div);
    if (sq < 0 || !match_variance(g, m, sq, div))
        return false;
    /* the last axis from x's type, else from gamma (which broadcasts over it) */
    match_affine(g, m, fm_last_dim(g, m->x));
    m->h = fm_last_dim(g, m->x);
    if (m->h <= 0 && m->gamma >= 0)
        m->h = fm_const(g, m->gamma)->dims[0];
    if (m->beta >= 0 && fm_const(g, m->beta)->dims[0] != m->h)
        return false;
    return m->h > 0;
}

static int ones_vector(kn_graph *g, int64_t h, kn_error *err)
{
    kn_tensor t = {0};
    if (kn_tensor_alloc(&t, KN_F32, 1, &h, err))
        return -1;
    for (int64_t k = 0; k < h; k++)
        ((float *)t.data)[k] = 1.0f;
    int v = kn_opt_new_initializer(g, "layernorm_ones", &t, err);
    kn_tensor_release(&t);
    return v;
}

static int rewrite(kn_graph *g, const ln_match *m, kn_error *err)
{
    int gamma = m->gamma >= 0 ? m->gamma : ones_vector(g, m->h, err);
    if (gamma < 0)
        return err->code;
    int ins[3] = {m->x, gamma, m->beta}, outs[1] = {m->out};
    int i = fm_replace(g, m->nodes, m->n, "LayerNormalization", "", 17, m->beta >= 0 ? 3 : 2,
                       ins, 1, outs, err);
    if (i < 0 || kn_opt_set_attr_int(g, i, "axis", -1, err) ||
        kn_opt_set_attr_float(g, i, "epsilon", m->eps, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    return KN_OK;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    ln_match m = {.x = -1, .gamma = -1, .beta = -1};
    *done = match(g, i, &m);
    return *done ? rewrite(g, &m, err) : KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    return fm_each_node(g, "ReduceMean", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_layernorm = {"fuse_layernorm", KN_OPT_EXTENDED, run};
