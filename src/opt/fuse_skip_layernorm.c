/* fuse_skip_layernorm.c - pass fuse_skip_layernorm: a residual Add feeding a
 * LayerNormalization over the last axis,
 *   s = a + b  [where b = c + bias, bias a constant over the last axis]
 *   y = LayerNormalization(s, gamma, beta)
 * becomes com.microsoft SkipLayerNormalization(input, skip, gamma, beta, bias) ->
 * y (and s as its input_skip_bias_sum output when something else reads s).  Both
 * Add operands must have s's shape (rank 2 or 3, float32, as ONNX Runtime's kernel
 * requires) where kiln knows the shapes, else the kernel checks them at run time;
 * a constant operand (position embeddings) becomes the skip when it is [S, H] or
 * [1, S, H]. */
#include "opt/fuse_match.h"

typedef struct sln_match {
    int ln, add, bias_add;
    int input, skip, bias;
} sln_match;

static bool ln_is_plain(const kn_graph *g, int i, int64_t h)
{
    const kn_node *n = &g->nodes[i];
    int rank = fm_rank(g, n->in[0]);
    int64_t axis = kn_attr_int(n, "axis", -1);
    if (n->n_in < 2 || (axis != -1 && axis != rank - 1) || kn_attr_int(n, "stash_type", 1) != 1)
        return false;
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && fm_uses(g, n->out[k]))
            return false;
    return fm_vector_f32(g, n->in[1], h) && (n->n_in < 3 || n->in[2] < 0 || fm_vector_f32(g, n->in[2], h));
}

/* Operand v of the residual Add is itself c + bias (bias constant [h], only read here). */
static void match_bias(const kn_graph *g, sln_match *m, int v, int other, int64_t h)
{
    int a = fm_producer(g, v, "Add");
    if (a < 0 || kn_opt_single_consumer(g, v) != m->add)
        return;
    const kn_node *n = &g->nodes[a];
    for (int side = 0; side < 2; side++) {
        int c = n->in[1 - side];
        if (fm_vector_f32(g, n->in[side], h) && !fm_const(g, c) && fm_maybe_same_shape(g, c, v)) {
            m->bias_add = a;
            m->input = c;
            m->skip = other;
            m->bias = n->in[side];
            return;
        }
    }
}

/* A constant skip ORT accepts: [S, H] or [1, S, H] (broadcast over the batch). */
static bool const_skip_ok(const kn_tensor *t, int64_t h)
{
    return t->dtype == KN_F32 && (t->rank == 2 || (t->rank == 3 && t->dims[0] == 1)) &&
           t->dims[t->rank - 1] == h;
}

/* The residual Add's operands: input and skip (a constant operand must be the skip). */
static bool match_operands(const kn_graph *g, sln_match *m, int s, int64_t h)
{
    const kn_node *a = &g->nodes[m->add];
    int c0 = fm_const(g, a->in[0]) != NULL, c1 = fm_const(g, a->in[1]) != NULL;
    if (c0 && c1)
        return false;
    m->input = c0 ? a->in[1] : a->in[0];
    m->skip = c0 ? a->in[0] : a->in[1];
    m->bias = m->bias_add = -1;
    if (c0 || c1)
        return const_skip_ok(fm_const(g, m->skip), h) && fm_maybe_same_shape(g, m->input, s);
    if (!fm_maybe_same_shape(g, a->in[0], s) || !fm_maybe_same_shape(g, a->in[1], s))
        return false;
    match_bias(g, m, a->in[1], a->in[0], h);
    if (m->bias_add < 0)
        match_bias(g, m, a->in[0], a->in[1], h);
    return true;
}

static bool match(const kn_graph *g, int ln, sln_match *m)
{
    const kn_node *n = &g->nodes[ln];
    int s = n->in[0];
    int rank = fm_rank(g, s);
    m->ln = ln;
    m->add = fm_producer(g, s, "Add");
    if (m->add < 0 || n->n_in < 2 || !fm_vector_f32(g, n->in[1], -1) || (rank >= 0 && rank != 2 && rank != 3))
        return false;
    int64_t h = fm_const(g, n->in[1])->dims[0];
    if ((fm_last_dim(g, s) >= 0 && fm_last_dim(g, s) != h) || !ln_is_plain(g, ln, h))
        return false;
    return match_operands(g, m, s, h);
}

static int rewrite(kn_graph *g, const sln_match *m, kn_error *err)
{
    const kn_node *ln = &g->nodes[m->ln];
    int s = ln->in[0];
    float eps = kn_attr_float(ln, "epsilon", 1e-5f);
    int beta = ln->n_in > 2 ? ln->in[2] : -1;
    int ins[5] = {m->input, m->skip, ln->in[1], beta, m->bias};
    int outs[4] = {ln->out[0], -1, -1, fm_uses(g, s) > 1 ? s : -1};
    int del[3] = {m->ln, m->add, m->bias_add};
    int i = fm_replace(g, del, m->bias_add >= 0 ? 3 : 2, "SkipLayerNormalization", KN_MS_DOMAIN, 1,
                       m->bias >= 0 ? 5 : beta >= 0 ? 4 : 3, ins, outs[3] >= 0 ? 4 : 1, outs, err);
    if (i < 0 || kn_opt_set_attr_float(g, i, "epsilon", eps, err))
        return err->code ? err->code : KN_ERR_NOMEM;
    return KN_OK;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    sln_match m;
    *done = match(g, i, &m);
    return *done ? rewrite(g, &m, err) : KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    return fm_each_node(g, "LayerNormalization", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_skip_layernorm = {"fuse_skip_layernorm", KN_OPT_EXTENDED, run};
