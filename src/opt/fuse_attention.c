/* fuse_attention.c - pass fuse_attention: the self-attention block that
 * torch.onnx.export writes for nn.MultiheadAttention (BERT / ViT encoders,
 * batch-first input X [B, S, E]),
 *
 *   Xt = Transpose(X, 1 0 2); qkv = Xt W + b            (W [E, 3E], b [3E] constant)
 *   q, k, v = Slice(qkv, last axis, [0,E), [E,2E), [2E,3E))
 *   q' = Transpose(Reshape(q, [S, B*H, E/H]), 1 0 2) / c   (or * c)
 *   k' = Transpose(Reshape(k, [S, B*H, E/H]), 1 2 0)
 *   v' = Transpose(Reshape(v, [S, B*H, E/H]), 1 0 2)
 *   o  = Reshape(Transpose(Softmax(q' k') v', 1 0 2), [S*B, E])
 *   Y  = Transpose(Reshape(Gemm(o, Wo, bo), [S, B, E]), 1 0 2)
 *
 * becomes com.microsoft Attention(X, W, b; num_heads H, scale) followed by
 * MatMul(., Wo^T) + Add(bo), which later passes may fuse with the residual into
 * SkipLayerNormalization.  The Reshape targets are computed by shape subgraphs
 * (Shape/Gather/Unsqueeze/Concat/Mul/Div...) that kiln cannot fold while the batch
 * is symbolic, so this pass evaluates them symbolically, as products c * S^i * B^j
 * of the sequence and batch sizes, and checks each against what the fusion
 * assumes; anything it cannot prove makes it leave the block alone.  The shape
 * subgraphs, left without readers, are deleted with the block. */
#include "opt/fuse_match.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- symbolic shape values ---- */

/* One integer: c * S^ps * B^pb when known. */
typedef struct sdim {
    bool known;
    int64_t c;
    int ps, pb;
} sdim;

#define SV_MAX 8
typedef struct svec {
    bool ok;
    int n;
    sdim d[SV_MAX];
} svec;

/* Values whose shape the match knows: their dims as svecs. */
typedef struct shape_ctx {
    int n;
    int value[8];
    svec dims[8];
} shape_ctx;

static sdim sd_num(int64_t c)
{
    return (sdim){true, c, 0, 0};
}

static sdim sd_sym(int64_t c, int ps, int pb)
{
    return (sdim){true, c, ps, pb};
}

static bool sd_eq(sdim a, sdim b)
{
    return a.known && b.known && a.c == b.c && a.ps == b.ps && a.pb == b.pb;
}

static bool sd_is_num(sdim a)
{
    return a.known && !a.ps && !a.pb;
}

/* Values of the symbols S and B once known (0: unknown). */
typedef struct sbind {
    int64_t s, b;
} sbind;

/* x with its bound symbols multiplied in. */
static sdim sd_norm(sdim x, const sbind *bd)
{
    for (; x.known && x.ps > 0 && bd->s > 0 && x.c <= INT32_MAX; x.ps--)
        x.c *= bd->s;
    for (; x.known && x.pb > 0 && bd->b > 0 && x.c <= INT32_MAX; x.pb--)
        x.c *= bd->b;
    return x;
}

/* sym = c * (one unbound symbol) equals the number n: bind that symbol. */
static bool sd_bind(sdim sym, int64_t n, sbind *bd)
{
    if (!sym.known || sym.ps + sym.pb != 1 || sym.c <= 0 || n <= 0 || n % sym.c)
        return false;
    if (sym.ps)
        bd->s = n / sym.c;
    else
        bd->b = n / sym.c;
    return true;
}

/* want and got are equal, binding a symbol to a number where that makes them so
 * (a shape subgraph folded to constants meets a symbolic expectation). */
static bool sd_match(sdim want, sdim got, sbind *bd)
{
    want = sd_norm(want, bd);
    got = sd_norm(got, bd);
    if (sd_eq(want, got))
        return true;
    if (sd_is_num(got))
        return sd_bind(want, got.c, bd);
    return sd_is_num(want) && sd_bind(got, want.c, bd);
}

static svec sv_fail(void)
{
    svec v;
    memset(&v, 0, sizeof v);
    return v;
}

static void ctx_add(shape_ctx *sc, int value, int n, const sdim *d)
{
    if (sc->n >= 8 || value < 0)
        return;
    sc->value[sc->n] = value;
    sc->dims[sc->n] = (svec){true, n, {{0}}};
    memcpy(sc->dims[sc->n].d, d, sizeof(sdim) * (size_t)n);
    sc->n++;
}

static svec eval_shape(const kn_graph *g, const shape_ctx *sc, int v);
static svec eval(const kn_graph *g, const shape_ctx *sc, int v, int depth);

/* Shape(a): from the match's table, else from a's static type. */
static svec eval_shape(const kn_graph *g, const shape_ctx *sc, int v)
{
    for (int k = 0; k < sc->n; k++)
        if (sc->value[k] == v)
            return sc->dims[k];
    int r = fm_rank(g, v);
    if (r < 0 || r > SV_MAX || !g->values[v].has_type)
        return sv_fail();
    svec out = {true, r, {{0}}};
    for (int d = 0; d < r; d++) {
        int64_t x = g->values[v].type.dims[d].value;
        out.d[d] = x >= 0 ? sd_num(x) : (sdim){0};
    }
    return out;
}

static svec eval_const(const kn_tensor *t)
{
    if (!kn_dtype_is_int(t->dtype) || t->rank > 1 || t->numel > SV_MAX)
        return sv_fail();
    svec out = {true, (int)t->numel, {{0}}};
    for (int64_t k = 0; k < t->numel; k++)
        out.d[k] = sd_num((int64_t)kn_load_f64(t->data, t->dtype, (size_t)k));
    return out;
}

static svec eval_gather(const kn_graph *g, const shape_ctx *sc, const kn_node *n, int depth)
{
    svec data = eval(g, sc, n->in[0], depth + 1), idx = eval(g, sc, n->in[1], depth + 1);
    if (!data.ok || !idx.ok || kn_attr_int(n, "axis", 0) != 0)
        return sv_fail();
    svec out = {true, idx.n, {{0}}};
    for (int k = 0; k < idx.n; k++) {
        if (!sd_is_num(idx.d[k]))
            return sv_fail();
        int64_t i = idx.d[k].c < 0 ? idx.d[k].c + data.n : idx.d[k].c;
        if (i < 0 || i >= data.n)
            return sv_fail();
        out.d[k] = data.d[i];
    }
    return out;
}

static svec eval_concat(const kn_graph *g, const shape_ctx *sc, const kn_node *n, int depth)
{
    svec out = {true, 0, {{0}}};
    for (int k = 0; k < n->n_in; k++) {
        svec p = eval(g, sc, n->in[k], depth + 1);
        if (!p.ok || out.n + p.n > SV_MAX)
            return sv_fail();
        memcpy(out.d + out.n, p.d, sizeof(sdim) * (size_t)p.n);
        out.n += p.n;
    }
    return out;
}

static sdim arith(char op, sdim a, sdim b)
{
    if (!a.known || !b.known)
        return (sdim){0};
    switch (op) {
    case '*':
        return sd_sym(a.c * b.c, a.ps + b.ps, a.pb + b.pb);
    case '/': /* integer division truncates; a symbolic a must divide exactly */
        if (!sd_is_num(b) || b.c <= 0 || a.c < 0 || (!sd_is_num(a) && a.c % b.c))
            return (sdim){0};
        return sd_sym(a.c / b.c, a.ps, a.pb);
    case '+':
    case '-':
        if (!sd_is_num(a) || !sd_is_num(b))
            return (sdim){0};
        return sd_num(op == '+' ? a.c + b.c : a.c - b.c);
    default:
        return (sdim){0};
    }
}

static svec eval_binary(const kn_graph *g, const shape_ctx *sc, const kn_node *n, char op, int depth)
{
    svec a = eval(g, sc, n->in[0], depth + 1), b = eval(g, sc, n->in[1], depth + 1);
    if (!a.ok || !b.ok || (a.n != b.n && a.n != 1 && b.n != 1))
        return sv_fail();
    svec out = {true, a.n > b.n ? a.n : b.n, {{0}}};
    for (int k = 0; k < out.n; k++) {
        sdim x = a.d[a.n == 1 ? 0 : k], y = b.d[b.n == 1 ? 0 : k];
        if (x.known && y.known && (x.c > INT32_MAX || y.c > INT32_MAX))
            return sv_fail();
        out.d[k] = arith(op, x, y);
    }
    return out;
}

static svec eval(const kn_graph *g, const shape_ctx *sc, int v, int depth)
{
    if (v < 0 || depth > 24)
        return sv_fail();
    const kn_tensor *t = fm_const(g, v);
    if (t)
        return eval_const(t);
    int p = g->values[v].producer;
    if (p < 0)
        return sv_fail();
    const kn_node *n = &g->nodes[p];
    if ((n->domain && n->domain[0]) || n->n_in < 1)
        return sv_fail();
    const char *op = n->op_type;
    if (!strcmp(op, "Shape"))
        return kn_attr_find(n, "start") || kn_attr_find(n, "end") ? sv_fail()
                                                                   : eval_shape(g, sc, n->in[0]);
    if (!strcmp(op, "Gather") && n->n_in == 2)
        return eval_gather(g, sc, n, depth);
    if (!strcmp(op, "Concat"))
        return kn_attr_int(n, "axis", 0) == 0 ? eval_concat(g, sc, n, depth) : sv_fail();
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze") || !strcmp(op, "Cast") ||
        !strcmp(op, "Identity"))
        return eval(g, sc, n->in[0], depth + 1);
    static const char *const bin[] = {"Mul", "Div", "Add", "Sub"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(op, bin[k]) && n->n_in == 2)
            return eval_binary(g, sc, n, "*/+-"[k], depth);
    return sv_fail();
}

/* ---- the block ---- */

typedef struct attn_match {
    int x, xt, w, bias, qkv;
    int64_t e, heads, hd;
    int slice[3], reshape[3], transpose[3];
    int scale_node, matmul_qk, softmax, matmul_pv;
    int tr_in, mm, add;                 /* input Transpose, projection MatMul and Add */
    int tr_ctx, reshape_ctx, gemm, reshape_out, tr_out;
    float scale;
    bool packed;                        /* float projection: Attention(X, W, b) */
    shape_ctx sc;
    sbind bind;
} attn_match;

static bool perm_is(const kn_graph *g, int i, int a, int b, int c)
{
    const int64_t *p = NULL;
    return kn_attr_ints(&g->nodes[i], "perm", &p) == 3 && p[0] == a && p[1] == b && p[2] == c;
}

/* Node producing v is a Transpose with perm (a, b, c): its index, else -1. */
static int transpose_of(const kn_graph *g, int v, int a, int b, int c)
{
    int t = fm_producer(g, v, "Transpose");
    return t >= 0 && perm_is(g, t, a, b, c) ? t : -1;
}

/* q' = Transpose(...) / c or * c: records the scale and returns the Transpose's input side. */
static int match_scaled_q(const kn_graph *g, attn_match *m, int v)
{
    int d = fm_producer(g, v, "Div"), mu = fm_producer(g, v, "Mul");
    double c;
    if (d >= 0 && fm_scalar(g, g->nodes[d].in[1], &c) && c != 0.0) {
        m->scale = (float)(1.0 / c);
        m->scale_node = d;
        return g->nodes[d].in[0];
    }
    if (mu >= 0) {
        int side = fm_scalar(g, g->nodes[mu].in[1], &c) ? 1 : fm_scalar(g, g->nodes[mu].in[0], &c) ? 0 : -1;
        if (side < 0)
            return -1;
        m->scale = (float)c;
        m->scale_node = mu;
        return g->nodes[mu].in[1 - side];
    }
    return -1;
}

/* Softmax(q' k') v' core, from the Softmax node. */
static bool match_core(const kn_graph *g, attn_match *m, int sm)
{
    const kn_node *s = &g->nodes[sm];
    int64_t axis = kn_attr_int(s, "axis", s->opset >= 13 ? -1 : 1);
    if (axis != -1 && axis != 2)
        return false;
    m->softmax = sm;
    m->matmul_qk = fm_producer(g, s->in[0], "MatMul");
    m->matmul_pv = fm_consumer(g, s->out[0], "MatMul");
    if (m->matmul_qk < 0 || m->matmul_pv < 0 || g->nodes[m->matmul_pv].in[0] != s->out[0])
        return false;
    const kn_node *qk = &g->nodes[m->matmul_qk];
    int q4 = match_scaled_q(g, m, qk->in[0]);
    m->transpose[0] = transpose_of(g, q4, 1, 0, 2);
    m->transpose[1] = transpose_of(g, qk->in[1], 1, 2, 0);
    m->transpose[2] = transpose_of(g, g->nodes[m->matmul_pv].in[1], 1, 0, 2);
    for (int k = 0; k < 3; k++) {
        if (m->transpose[k] < 0)
            return false;
        m->reshape[k] = fm_producer(g, g->nodes[m->transpose[k]].in[0], "Reshape");
        if (m->reshape[k] < 0)
            return false;
        m->slice[k] = fm_producer(g, g->nodes[m->reshape[k]].in[0], "Slice");
        if (m->slice[k] < 0)
            return false;
    }
    return true;
}

/* Slices of one qkv value; qkv = Xt W + b with constant W [E, 3E] and b [3E]. */
static bool match_projection(const kn_graph *g, attn_match *m)
{
    m->qkv = g->nodes[m->slice[0]].in[0];
    if (g->nodes[m->slice[1]].in[0] != m->qkv || g->nodes[m->slice[2]].in[0] != m->qkv)
        return false;
    int add = fm_producer(g, m->qkv, "Add");
    if (add < 0)
        return false;
    const kn_node *a = &g->nodes[add];
    int side = fm_vector_f32(g, a->in[0], -1) ? 0 : fm_vector_f32(g, a->in[1], -1) ? 1 : -1;
    int mm = side >= 0 ? fm_producer(g, a->in[1 - side], "MatMul") : -1;
    if (mm < 0)
        return false;
    m->bias = a->in[side];
    m->xt = g->nodes[mm].in[0];
    m->w = g->nodes[mm].in[1];
    const kn_tensor *w = fm_const(g, m->w), *b = fm_const(g, m->bias);
    int tr = transpose_of(g, m->xt, 1, 0, 2);
    if (!w || w->dtype != KN_F32 || w->rank != 2 || w->dims[1] != 3 * w->dims[0] ||
        b->dims[0] != w->dims[1] || tr < 0)
        return false;
    m->e = w->dims[0];
    m->x = g->nodes[tr].in[0];
    m->tr_in = tr;
    m->mm = mm;
    m->add = add;
    return true;
}

/* Width 3E of the projected qkv [S, B, 3E] when the projection is not a float
 * MatMul: from its static type, else from the producing MatMulNBits (N) or
 * DynamicQuantizeMatMul / MatMulInteger-style constant weight [K, 3E]; 0 if unknown. */
static int64_t qkv_width(const kn_graph *g, int qkv)
{
    int64_t w = fm_last_dim(g, qkv);
    if (w > 0)
        return w;
    int p = g->values[qkv].producer;
    if (p < 0)
        return 0;
    const kn_node *n = &g->nodes[p];
    if (!strcmp(n->op_type, "Add")) { /* + bias vector [3E] */
        for (int k = 0; k < 2 && n->n_in == 2; k++) {
            const kn_tensor *b = fm_const(g, n->in[k]);
            if (b && b->rank == 1)
                return b->dims[0];
        }
        return 0;
    }
    if (!strcmp(n->op_type, "MatMulNBits"))
        return kn_attr_int(n, "N", 0);
    const kn_tensor *wt = n->n_in > 1 ? fm_const(g, n->in[1]) : NULL;
    return wt && wt->rank == 2 ? wt->dims[1] : 0;
}

/* Slices of one qkv value [S, B, 3E] produced by anything (the quantized
 * projections): the fusion then starts at qkv. */
static bool match_qkv(const kn_graph *g, attn_match *m)
{
    m->qkv = g->nodes[m->slice[0]].in[0];
    if (g->nodes[m->slice[1]].in[0] != m->qkv || g->nodes[m->slice[2]].in[0] != m->qkv ||
        !fm_is_f32(g, m->qkv) || (fm_rank(g, m->qkv) >= 0 && fm_rank(g, m->qkv) != 3))
        return false;
    int64_t w = qkv_width(g, m->qkv);
    if (w <= 0 || w % 3)
        return false;
    m->e = w / 3;
    m->x = m->xt = m->w = m->bias = m->tr_in = m->mm = m->add = -1;
    int p = g->values[m->qkv].producer;
    int in = p >= 0 && g->nodes[p].n_in > 0 ? g->nodes[p].in[0] : -1;
    int tr = in >= 0 ? transpose_of(g, in, 1, 0, 2) : -1;
    if (tr < 0 && p >= 0 && !strcmp(g->nodes[p].op_type, "Add")) { /* Add(bias, MatMul...(Xt)) */
        for (int k = 0; k < 2 && tr < 0; k++) {
            int q = g->values[g->nodes[p].in[k]].producer;
            in = q >= 0 && g->nodes[q].n_in > 0 ? g->nodes[q].in[0] : -1;
            tr = in >= 0 ? transpose_of(g, in, 1, 0, 2) : -1;
        }
    }
    if (tr >= 0) { /* Xt = Transpose(X): its shape feeds the shape subgraphs */
        m->xt = in;
        m->x = g->nodes[tr].in[0];
    }
    return true;
}

/* Context side of the quantized form: Transpose -> Reshape [S*B, E]. */
static bool match_context(const kn_graph *g, attn_match *m)
{
    int pv = g->nodes[m->matmul_pv].out[0];
    m->tr_ctx = fm_consumer(g, pv, "Transpose");
    if (m->tr_ctx < 0 || !perm_is(g, m->tr_ctx, 1, 0, 2))
        return false;
    m->reshape_ctx = fm_consumer(g, g->nodes[m->tr_ctx].out[0], "Reshape");
    return m->reshape_ctx >= 0;
}

/* Output side: Transpose -> Reshape [S*B, E] -> Gemm -> Reshape [S, B, E] -> Transpose. */
static bool match_output(const kn_graph *g, attn_match *m)
{
    int pv = g->nodes[m->matmul_pv].out[0];
    m->tr_ctx = fm_consumer(g, pv, "Transpose");
    if (m->tr_ctx < 0 || !perm_is(g, m->tr_ctx, 1, 0, 2))
        return false;
    m->reshape_ctx = fm_consumer(g, g->nodes[m->tr_ctx].out[0], "Reshape");
    if (m->reshape_ctx < 0)
        return false;
    m->gemm = fm_consumer(g, g->nodes[m->reshape_ctx].out[0], "Gemm");
    if (m->gemm < 0)
        return false;
    const kn_node *gm = &g->nodes[m->gemm];
    const kn_tensor *wo = fm_const(g, gm->in[1]);
    if (!wo || wo->dtype != KN_F32 || wo->rank != 2 || wo->dims[0] != m->e || wo->dims[1] != m->e ||
        kn_attr_float(gm, "alpha", 1.0f) != 1.0f || kn_attr_float(gm, "beta", 1.0f) != 1.0f ||
        kn_attr_int(gm, "transA", 0) || (gm->n_in > 2 && gm->in[2] >= 0 && !fm_vector_f32(g, gm->in[2], m->e)))
        return false;
    int gout = gm->out[0];
    int r = -1;
    int cons[4];
    int nc = fm_consumers(g, gout, cons, 4);
    for (int k = 0; k < nc && k < 4; k++)
        if (!strcmp(g->nodes[cons[k]].op_type, "Reshape") && g->nodes[cons[k]].in[0] == gout)
            r = cons[k];
    if (r < 0)
        return false;
    m->reshape_out = r;
    m->tr_out = fm_consumer(g, g->nodes[r].out[0], "Transpose");
    return m->tr_out >= 0 && perm_is(g, m->tr_out, 1, 0, 2);
}

/* Known shapes: X [B,S,E], Xt [S,B,E], qkv [S,B,3E], q/k/v [S,B,E], Gemm out [S*B,E]. */
static void fill_shapes(const kn_graph *g, attn_match *m)
{
    sdim S = sd_sym(1, 1, 0), B = sd_sym(1, 0, 1), E = sd_num(m->e);
    sdim xt[3] = {S, B, E}, x[3] = {B, S, E}, qkv[3] = {S, B, sd_num(3 * m->e)};
    sdim go[2] = {sd_sym(1, 1, 1), E};
    m->sc.n = 0;
    bool from_x = m->x >= 0 && g->values[m->x].has_type; /* X [B, S, E], else qkv [S, B, 3E] */
    const kn_value *xv = &g->values[from_x ? m->x : m->qkv];
    if (xv->has_type && xv->type.rank == 3) { /* bind S and B when the shape is known */
        int64_t b = xv->type.dims[from_x ? 0 : 1].value, s = xv->type.dims[from_x ? 1 : 0].value;
        m->bind.b = b > 0 ? b : 0;
        m->bind.s = s > 0 ? s : 0;
    }
    ctx_add(&m->sc, m->x, 3, x);
    ctx_add(&m->sc, m->xt, 3, xt);
    if (m->packed)
        ctx_add(&m->sc, g->nodes[m->mm].out[0], 3, qkv);
    ctx_add(&m->sc, m->qkv, 3, qkv);
    for (int k = 0; k < 3; k++)
        ctx_add(&m->sc, g->nodes[m->slice[k]].out[0], 3, xt);
    if (m->packed)
        ctx_add(&m->sc, g->nodes[m->gemm].out[0], 2, go);
}

/* Slice k takes [k*E, (k+1)*E) of the last axis with step 1. */
static bool slice_ok(const kn_graph *g, const attn_match *m, int k)
{
    const kn_node *n = &g->nodes[m->slice[k]];
    if (n->n_in < 4 || n->n_in > 5)
        return false;
    svec st = eval(g, &m->sc, n->in[1], 0), en = eval(g, &m->sc, n->in[2], 0);
    svec ax = eval(g, &m->sc, n->in[3], 0);
    svec sp = n->n_in > 4 && n->in[4] >= 0 ? eval(g, &m->sc, n->in[4], 0) : (svec){true, 1, {sd_num(1)}};
    if (!st.ok || !en.ok || !ax.ok || !sp.ok || st.n != 1 || en.n != 1 || ax.n != 1 || sp.n != 1)
        return false;
    bool last = sd_eq(ax.d[0], sd_num(-1)) || sd_eq(ax.d[0], sd_num(2));
    return last && sd_eq(sp.d[0], sd_num(1)) && sd_eq(st.d[0], sd_num(k * m->e)) &&
           sd_eq(en.d[0], sd_num((k + 1) * m->e));
}

/* Reshape node r's target equals want[0..n). */
static bool target_is(const kn_graph *g, attn_match *m, int r, int n, const sdim *want)
{
    const kn_node *nd = &g->nodes[r];
    if (nd->n_in != 2 || kn_attr_int(nd, "allowzero", 0))
        return false;
    svec t = eval(g, &m->sc, nd->in[1], 0);
    if (!t.ok || t.n != n)
        return false;
    for (int k = 0; k < n; k++)
        if (!sd_match(want[k], t.d[k], &m->bind))
            return false;
    return true;
}

/* Heads from the Q reshape target [S, B*H, E/H]; all targets checked against it. */
static bool shapes_ok(const kn_graph *g, attn_match *m)
{
    for (int k = 0; k < 3; k++)
        if (!slice_ok(g, m, k))
            return false;
    svec tq = eval(g, &m->sc, g->nodes[m->reshape[0]].in[1], 0);
    if (!tq.ok || tq.n != 3 || !sd_is_num(tq.d[2]) || tq.d[2].c <= 0 || m->e % tq.d[2].c)
        return false;
    m->hd = tq.d[2].c;
    m->heads = m->e / m->hd;
    sdim S = sd_sym(1, 1, 0), B = sd_sym(1, 0, 1), E = sd_num(m->e);
    sdim heads[3] = {S, sd_sym(m->heads, 0, 1), sd_num(m->hd)};
    sdim ctx[2] = {sd_sym(1, 1, 1), E}, out[3] = {S, B, E};
    for (int k = 0; k < 3; k++)
        if (!target_is(g, m, m->reshape[k], 3, heads))
            return false;
    return target_is(g, m, m->reshape_ctx, 2, ctx) &&
           (!m->packed || target_is(g, m, m->reshape_out, 3, out));
}

/* Nodes of the quantized form, from the slices to the context reshape. */
#define ATTN_CORE_NODES 15

static bool match(const kn_graph *g, int sm, attn_match *m, int nodes[21])
{
    memset(m, 0, sizeof *m);
    if (!match_core(g, m, sm))
        return false;
    m->packed = match_projection(g, m) && match_output(g, m);
    if (!m->packed && (!match_qkv(g, m) || !match_context(g, m)))
        return false;
    fill_shapes(g, m);
    if (!shapes_ok(g, m))
        return false;
    if (!m->packed) {
        int core[ATTN_CORE_NODES] = {m->slice[0], m->slice[1], m->slice[2], m->reshape[0],
                                     m->reshape[1], m->reshape[2], m->transpose[0],
                                     m->transpose[1], m->transpose[2], m->scale_node,
                                     m->matmul_qk, m->softmax, m->matmul_pv, m->tr_ctx,
                                     m->reshape_ctx};
        memcpy(nodes, core, sizeof core);
        return true;
    }
    int list[21] = {m->tr_in, m->mm, m->add, m->slice[0], m->slice[1], m->slice[2], m->reshape[0],
                    m->reshape[1], m->reshape[2], m->transpose[0], m->transpose[1],
                    m->transpose[2], m->scale_node, m->matmul_qk, m->softmax, m->matmul_pv,
                    m->tr_ctx, m->reshape_ctx, m->gemm, m->reshape_out, m->tr_out};
    memcpy(nodes, list, sizeof list);
    return true;
}

/* ---- rewrite ---- */

/* t holds the transpose of the e x e matrix src. */
static bool is_transpose(const kn_tensor *t, const float *src, int64_t e)
{
    if (!t || t->dtype != KN_F32 || t->rank != 2 || t->dims[0] != e || t->dims[1] != e)
        return false;
    const float *d = t->data;
    for (int64_t i = 0; i < e; i++)
        for (int64_t j = 0; j < e; j++)
            if (memcmp(&d[j * e + i], &src[i * e + j], sizeof(float)))
                return false;
    return true;
}

/* Wo as the MatMul right operand: Wo^T when the Gemm had transB (one copy shared
 * by the layers that share Wo). */
static int output_weight(kn_graph *g, int wo_v, bool trans_b, int64_t e, kn_error *err)
{
    if (!trans_b)
        return wo_v;
    const float *src = fm_const(g, wo_v)->data;
    char hint[200];
    snprintf(hint, sizeof hint, "%s_transposed", g->values[wo_v].name);
    int have = kn_graph_find(g, hint);
    if (have >= 0 && is_transpose(kn_opt_const(g, have), src, e))
        return have;
    kn_tensor t = {0};
    int64_t dims[2] = {e, e};
    if (kn_tensor_alloc(&t, KN_F32, 2, dims, err))
        return -1;
    float *dst = t.data;
    for (int64_t i = 0; i < e; i++)
        for (int64_t j = 0; j < e; j++)
            dst[j * e + i] = src[i * e + j];
    int v = kn_opt_new_initializer(g, hint, &t, err);
    kn_tensor_release(&t);
    return v;
}

static int add_node(kn_graph *g, const char *op, const char *domain, const char *hint, int n_in,
                    const int *ins, int out, kn_error *err)
{
    return kn_opt_add_node(g, op, domain, 1, hint, n_in, ins, 1, &out, err);
}

static int rewrite(kn_graph *g, const attn_match *m, const int *nodes, bool *done, kn_error *err)
{
    const kn_node *gm = &g->nodes[m->gemm];
    int y = g->nodes[m->tr_out].out[0], bo = gm->n_in > 2 ? gm->in[2] : -1, wo_v = gm->in[1];
    bool trans_b = kn_attr_int(gm, "transB", 0) != 0;
    char hint[200];
    snprintf(hint, sizeof hint, "%s", g->nodes[m->softmax].name);
    int reads[5] = {m->x, m->w, m->bias, wo_v, bo};
    *done = fm_delete_with_dead(g, nodes, 21, reads, 5, &y, 1, err);
    if (!*done)
        return err->code;
    int wo = output_weight(g, wo_v, trans_b, m->e, err);
    int att = kn_opt_new_value(g, "attention_out", err);
    int proj = bo >= 0 ? kn_opt_new_value(g, "attention_proj", err) : y;
    if (wo < 0 || att < 0 || proj < 0)
        return err->code;
    int ai[3] = {m->x, m->w, m->bias}, mi[2] = {att, wo}, bi[2] = {proj, bo};
    int a = add_node(g, "Attention", KN_MS_DOMAIN, hint, 3, ai, att, err);
    if (a < 0 || kn_opt_set_attr_int(g, a, "num_heads", m->heads, err))
        return err->code;
    if (fabs(m->scale * sqrt((double)m->hd) - 1.0) > 1e-6 &&
        kn_opt_set_attr_float(g, a, "scale", m->scale, err))
        return err->code;
    if (add_node(g, "MatMul", "", "attention_out_proj", 2, mi, proj, err) < 0)
        return err->code;
    if (bo >= 0 && add_node(g, "Add", "", "attention_out_bias", 2, bi, y, err) < 0)
        return err->code;
    return KN_OK;
}

/* A constant int64 vector initializer. */
static int int64_const(kn_graph *g, const char *hint, int n, const int64_t *vals, kn_error *err)
{
    kn_tensor t = {0};
    int64_t dims[1] = {n};
    if (kn_tensor_alloc(&t, KN_I64, 1, dims, err))
        return -1;
    memcpy(t.data, vals, sizeof(int64_t) * (size_t)n);
    int v = kn_opt_new_initializer(g, hint, &t, err);
    kn_tensor_release(&t);
    return v;
}

/* q, k, v [B, S, E] = Slice(Transpose(qkv, 1 0 2), last axis, thirds): values in qkv3. */
static int split_qkv(kn_graph *g, const attn_match *m, int qkv3[3], kn_error *err)
{
    int64_t axis = 2, bounds[4] = {0, m->e, 2 * m->e, 3 * m->e};
    int qkvb = kn_opt_new_value(g, "attention_qkv_bsd", err);
    int ax = int64_const(g, "attention_axis", 1, &axis, err);
    if (qkvb < 0 || ax < 0)
        return err->code;
    int t = add_node(g, "Transpose", "", "attention_qkv_transpose", 1, &m->qkv, qkvb, err);
    int64_t perm[3] = {1, 0, 2};
    if (t < 0 || kn_opt_set_attr_ints(g, t, "perm", perm, 3, err))
        return err->code;
    static const char *const names[3] = {"attention_q", "attention_k", "attention_v"};
    for (int k = 0; k < 3; k++) {
        int st = int64_const(g, "attention_start", 1, &bounds[k], err);
        int en = int64_const(g, "attention_end", 1, &bounds[k + 1], err);
        qkv3[k] = kn_opt_new_value(g, names[k], err);
        int ins[4] = {qkvb, st, en, ax};
        if (st < 0 || en < 0 || qkv3[k] < 0 || add_node(g, "Slice", "", names[k], 4, ins, qkv3[k], err) < 0)
            return err->code;
    }
    return KN_OK;
}

/* The quantized form: slices ... context reshape become
 * Transpose + 3 Slices -> MultiHeadAttention -> Transpose -> Reshape [S*B, E]. */
static int rewrite_core(kn_graph *g, const attn_match *m, const int *nodes, bool *done, kn_error *err)
{
    int ctx = g->nodes[m->reshape_ctx].out[0];
    char hint[200];
    snprintf(hint, sizeof hint, "%s", g->nodes[m->softmax].name);
    *done = fm_delete_with_dead(g, nodes, ATTN_CORE_NODES, &m->qkv, 1, &ctx, 1, err);
    if (!*done)
        return err->code;
    int qkv3[3], att = kn_opt_new_value(g, "attention_out", err);
    int att_t = kn_opt_new_value(g, "attention_out_sbd", err);
    int64_t target[2] = {-1, m->e};
    int shp = int64_const(g, "attention_ctx_shape", 2, target, err);
    if (att < 0 || att_t < 0 || shp < 0 || split_qkv(g, m, qkv3, err))
        return err->code;
    int a = add_node(g, "MultiHeadAttention", KN_MS_DOMAIN, hint, 3, qkv3, att, err);
    if (a < 0 || kn_opt_set_attr_int(g, a, "num_heads", m->heads, err))
        return err->code;
    if (fabs(m->scale * sqrt((double)m->hd) - 1.0) > 1e-6 &&
        kn_opt_set_attr_float(g, a, "scale", m->scale, err))
        return err->code;
    int t = add_node(g, "Transpose", "", "attention_out_transpose", 1, &att, att_t, err);
    int64_t perm[3] = {1, 0, 2};
    if (t < 0 || kn_opt_set_attr_ints(g, t, "perm", perm, 3, err))
        return err->code;
    int ri[2] = {att_t, shp};
    return add_node(g, "Reshape", "", "attention_ctx", 2, ri, ctx, err) < 0 ? err->code : KN_OK;
}

static int fuse_at(kn_graph *g, int i, bool *done, kn_error *err)
{
    attn_match m;
    int nodes[21];
    *done = false;
    if (!match(g, i, &m, nodes))
        return KN_OK;
    return m.packed ? rewrite(g, &m, nodes, done, err) : rewrite_core(g, &m, nodes, done, err);
}

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    return fm_each_node(g, "Softmax", fuse_at, rewrites, err);
}

const kn_opt_pass kn_pass_fuse_attention = {"fuse_attention", KN_OPT_EXTENDED, run};
