/* fuse_gelu.c - pass fuse_gelu: the GELU decompositions torch.onnx.export writes
 * become the com.microsoft contrib operators:
 *   x * 0.5 * (1 + Erf(x / sqrt 2))      (any grouping of the two Muls; x / sqrt 2
 *                                          also as x * (1 / sqrt 2))      -> Gelu(x)
 *   x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (x^3 as Pow(x, 3) or
 *                                          x * x * x)                      -> FastGelu(x)
 * and when x = Add(a, bias) with a constant 1-D bias over the last axis that only
 * the GELU reads: BiasGelu(a, bias), or FastGelu(a, bias).  Also SiLU / Swish as
 * exported (EfficientNet, MobileNetV3...):
 *   x * Sigmoid(x)  (the Sigmoid read only by the Mul)     -> QuickGelu(x, alpha 1)
 * one pass over x instead of two and no intermediate tensor. */
#include "opt/fuse_match.h"

#include <math.h>
#include <string.h>

#define TOL 1e-3

/* The nodes of one match; out is the value the GELU produces. */
typedef struct gelu_match {
    int x;             /* GELU input */
    int one;           /* the constant 1 (its dtype is x's) */
    int nodes[12];
    int n;
    int out;
} gelu_match;

static void take(gelu_match *m, int node)
{
    m->nodes[m->n++] = node;
}

/* core (the Erf or Tanh output) -> Add(1) -> Mul with x and 0.5 in either grouping. */
static bool match_tail(const kn_graph *g, int core, gelu_match *m)
{
    int a = fm_consumer(g, core, "Add");
    if (a < 0 || !fm_scalar_near(g, fm_other_input(&g->nodes[a], core), 1.0, TOL))
        return false;
    take(m, a);
    m->one = fm_other_input(&g->nodes[a], core);
    int one_plus = g->nodes[a].out[0];
    int mul = fm_consumer(g, one_plus, "Mul");
    if (mul < 0)
        return false;
    take(m, mul);
    int other = fm_other_input(&g->nodes[mul], one_plus);
    if (other == m->x) { /* (x * (1 + e)) * 0.5 */
        int half = fm_consumer(g, g->nodes[mul].out[0], "Mul");
        if (half < 0 || !fm_scalar_near(g, fm_other_input(&g->nodes[half], g->nodes[mul].out[0]),
                                        0.5, TOL))
            return false;
        take(m, half);
        m->out = g->nodes[half].out[0];
        return true;
    }
    int h = fm_producer(g, other, "Mul"); /* (x * 0.5) * (1 + e) */
    if (h < 0 || kn_opt_single_consumer(g, other) != mul ||
        !fm_scalar_near(g, fm_other_input(&g->nodes[h], m->x), 0.5, TOL))
        return false;
    take(m, h);
    m->out = g->nodes[mul].out[0];
    return true;
}

/* Erf node e reads x / sqrt 2 or x * (1 / sqrt 2). */
static bool match_erf(const kn_graph *g, int e, gelu_match *m)
{
    int in = g->nodes[e].in[0];
    int d = fm_producer(g, in, "Div");
    int mu = fm_producer(g, in, "Mul");
    if (kn_opt_single_consumer(g, in) != e)
        return false;
    if (d >= 0 && fm_scalar_near(g, g->nodes[d].in[1], sqrt(2.0), TOL)) {
        m->x = g->nodes[d].in[0];
        take(m, d);
    } else if (mu >= 0) {
        const kn_node *n = &g->nodes[mu];
        int s = fm_scalar_near(g, n->in[1], M_SQRT1_2, TOL) ? 1 :
                fm_scalar_near(g, n->in[0], M_SQRT1_2, TOL) ? 0 : -1;
        if (s < 0)
            return false;
        m->x = n->in[1 - s];
        take(m, mu);
    } else {
        return false;
    }
    take(m, e);
    return match_tail(g, g->nodes[e].out[0], m);
}

/* v is x^3: Pow(x, 3) or x * x * x (in either association); records its nodes. */
static bool match_cube(const kn_graph *g, int v, int x, gelu_match *m)
{
    int p = fm_producer(g, v, "Pow");
    if (p >= 0 && g->nodes[p].in[0] == x && fm_scalar_near(g, g->nodes[p].in[1], 3.0, 1e-9)) {
        take(m, p);
        return true;
    }
    int mu = fm_producer(g, v, "Mul");
    if (mu < 0)
        return false;
    int sq = fm_other_input(&g->nodes[mu], x);
    int s = fm_producer(g, sq, "Mul");
    if (s < 0 || g->nodes[s].in[0] != x || g->nodes[s].in[1] != x ||
        kn_opt_single_consumer(g, sq) != mu)
        return false;
    take(m, mu);
    take(m, s);
    return true;
}

/* One operand of Mul node i is a scalar near c: the other operand, else -1. */
static int mul_by(const kn_graph *g, int i, double c)
{
    const kn_node *n = &g->nodes[i];
    if (fm_scalar_near(g, n->in[1], c, TOL))
        return n->in[0];
    return fm_scalar_near(g, n->in[0], c, TOL) ? n->in[1] : -1;
}

/* Tanh node t reads sqrt(2/pi) * (x + 0.044715 * x^3). */
static bool match_tanh(const kn_graph *g, int t, gelu_match *m)
{
    int in = g->nodes[t].in[0];
    int k = fm_producer(g, in, "Mul");
    if (k < 0 || kn_opt_single_consumer(g, in) != t)
        return false;
    int inner = mul_by(g, k, sqrt(2.0 / M_PI));
    int add = fm_producer(g, inner, "Add");
    if (add < 0 || kn_opt_single_consumer(g, inner) != k)
        return false;
    take(m, t);
    take(m, k);
    take(m, add);
    for (int side = 0; side < 2; side++) {
        int x = g->nodes[add].in[side], cubic = g->nodes[add].in[1 - side];
        int c = fm_producer(g, cubic, "Mul");
        if (c < 0 || kn_opt_single_consumer(g, cubic) != add)
            continue;
        int cube = mul_by(g, c, 0.044715);
        if (cube < 0 || kn_opt_single_consumer(g, cube) != c)
            continue;
        int saved = m->n;
        take(m, c);
        m->x = x;
        if (match_cube(g, cube, x, m))
            return match_tail(g, g->nodes[t].out[0], m);
        m->n = saved;
    }
    return false;
}

/* Every reader of x is a node of the match. */
static bool x_only_read_inside(const kn_graph *g, const gelu_match *m)
{
    int inside = 0;
    for (int k = 0; k < m->n; k++) {
        const kn_node *n = &g->nodes[m->nodes[k]];
        for (int j = 0; j < n->n_in; j++)
            inside += n->in[j] == m->x;
    }
    return !kn_opt_value_is_pinned(g, m->x) && fm_uses(g, m->x) == inside;
}

/* x is float32: from its type, or from the constant 1 that Add requires to match it. */
static bool is_f32(const kn_graph *g, const gelu_match *m)
{
    const kn_tensor *one = fm_const(g, m->one);
    return fm_is_f32(g, m->x) || (one && one->dtype == KN_F32);
}

static int rewrite(kn_graph *g, gelu_match *m, bool tanh_form, kn_error *err)
{
    int ins[2] = {m->x, -1};
    const char *op = tanh_form ? "FastGelu" : "Gelu";
    int a = fm_producer(g, m->x, "Add");
    if (a >= 0 && x_only_read_inside(g, m)) {
        const kn_node *n = &g->nodes[a];
        int side = fm_vector_f32(g, n->in[1], fm_last_dim(g, m->x)) ? 1 :
                   fm_vector_f32(g, n->in[0], fm_last_dim(g, m->x)) ? 0 : -1;
        /* bias [h] broadcast over x: x's last axis is h unless it is 1 (rare: then
         * the kernel's bias check fails at run time rather than computing wrong) */
        if (side >= 0 && fm_maybe_same_shape(g, n->in[1 - side], m->x) &&
            !fm_const(g, n->in[1 - side])) {
            ins[0] = n->in[1 - side];
            ins[1] = n->in[side];
            take(m, a);
            op = tanh_form ? "FastGelu" : "BiasGelu";
        }
    }
    int outs[1] = {m->out};
    return fm_replace(g, m->nodes, m->n, op, KN_MS_DOMAIN, 1, ins[1] >= 0 ? 2 : 1, ins, 1, outs,
                      err) < 0 ? err->code : KN_OK;
}

static int fuse_erf(kn_graph *g, int i, bool *done, kn_error *err)
{
    gelu_match m = {.x = -1};
    *done = g->nodes[i].n_in == 1 && match_erf(g, i, &m) && is_f32(g, &m);
    return *done ? rewrite(g, &m, false, err) : KN_OK;
}

static int fuse_tanh(kn_graph *g, int i, bool *done, kn_error *err)
{
    gelu_match m = {.x = -1};
    *done = g->nodes[i].n_in == 1 && match_tanh(g, i, &m) && is_f32(g, &m);
    return *done ? rewrite(g, &m, true, err) : KN_OK;
}

/* x is float32: its type, or the type of the first typed value up a chain of
 * operators whose output has their input 0's element type (CNN blocks leave the
 * Conv outputs between a typed input and the SiLU untyped). */
static bool chain_is_f32(const kn_graph *g, int x)
{
    static const char *const same_type[] = {"Conv", "FusedConv", "BatchNormalization", "Add", "Mul",
                                            "Sub", "Relu", "Clip", "Sigmoid", "QuickGelu", "MaxPool",
                                            "AveragePool", "GlobalAveragePool", "Identity"};
    for (int steps = 0; x >= 0 && steps < 256; steps++) {
        kn_dtype t = kn_opt_dtype(g, x);
        if (t != KN_UNDEFINED)
            return t == KN_F32;
        int p = g->values[x].producer;
        if (p < 0 || g->nodes[p].n_in < 1)
            return false;
        bool same = false;
        for (size_t k = 0; k < sizeof same_type / sizeof same_type[0]; k++)
            same = same || strcmp(g->nodes[p].op_type, same_type[k]) == 0;
        if (!same)
            return false;
        x = g->nodes[p].in[0];
    }
    return false;
}

/* Sigmoid(x) at node i, read only by a Mul whose other operand is x itself. */
static int fuse_silu(kn_graph *g, int i, bool *done, kn_error *err)
{
    const kn_node *sig = &g->nodes[i];
    *done = false;
    if (sig->n_in != 1 || sig->n_out != 1 || fm_uses(g, sig->out[0]) != 1 ||
        kn_opt_value_is_pinned(g, sig->out[0]))
        return KN_OK;
    int x = sig->in[0], mul = fm_consumer(g, sig->out[0], "Mul");
    if (mul < 0 || !chain_is_f32(g, x) || fm_other_input(&g->nodes[mul], sig->out[0]) != x)
        return KN_OK;
    int del[2] = {i, mul}, ins[1] = {x}, outs[1] = {g->nodes[mul].out[0]};
    int q = fm_replace(g, del, 2, "QuickGelu", KN_MS_DOMAIN, 1, 1, ins, 1, outs, err);
    if (q < 0 || kn_opt_set_attr_float(g, q, "alpha", 1.0f, err))
        return err->code;
    *done = true;
    return KN_OK;
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    int rc = fm_each_node(g, "Erf", fuse_erf, rewrites, err);
    if (!rc)
        rc = fm_each_node(g, "Tanh", fuse_tanh, rewrites, err);
    return rc ? rc : fm_each_node(g, "Sigmoid", fuse_silu, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_gelu = {"fuse_gelu", KN_OPT_EXTENDED, run};
