/* test_ops_newops.c - unit tests for the opset 24-28 operators: BitCast (cast.c),
 * SwiGLU (unary.c), TensorScatter (index.c), CausalConvWithState (conv.c), LinearAttention
 * and FlexAttention (attention.c).  Hand-computed small cases, edge shapes (empty,
 * kernel size one), and bad shapes / indices / attributes that must fail cleanly.
 * Most tests run a one-node graph through the executor; run_state calls the
 * registered kernel directly. */
#include "test.h"

#include "exec/exec.h"
#include "ops/op.h"

#include <stdint.h>
#include <string.h>

typedef struct tattr {
    const char *name;
    kn_attr_type type;
    double f;
    int64_t i;
    const char *s;
    const char *graph_op;  /* KN_ATTR_GRAPH: a one-node body "out = graph_op(in)" */
} tattr;

/* A subgraph with one input "s_in" and one output "s_out" = op(s_in). */
static kn_graph *one_node_body(kn_model *m, kn_graph *parent, const char *op)
{
    kn_graph *b = kn_graph_new(m, parent);
    kn_node *n = kn_graph_add_node(b);
    n->op_type = op;
    n->n_in = 1;
    n->in = kn_arena_calloc(&m->arena, 1, sizeof *n->in);
    n->in[0] = kn_graph_value(b, "s_in");
    n->n_out = 1;
    n->out = kn_arena_calloc(&m->arena, 1, sizeof *n->out);
    n->out[0] = kn_graph_value(b, "s_out");
    kn_graph_add_input(b, n->in[0]);
    kn_graph_add_output(b, n->out[0]);
    return b;
}

static void fill_attrs(kn_model *m, kn_graph *g, kn_node *n, const tattr *attrs, int n_attr)
{
    n->n_attr = n_attr;
    n->attrs = n_attr ? kn_arena_calloc(&m->arena, (size_t)n_attr, sizeof *n->attrs) : NULL;
    for (int a = 0; a < n_attr; a++) {
        n->attrs[a].name = attrs[a].name;
        n->attrs[a].type = attrs[a].type;
        n->attrs[a].f = (float)attrs[a].f;
        n->attrs[a].i = attrs[a].i;
        n->attrs[a].s = attrs[a].s;
        n->attrs[a].s_len = attrs[a].s ? strlen(attrs[a].s) : 0;
        if (attrs[a].type == KN_ATTR_GRAPH)
            n->attrs[a].g = one_node_body(m, g, attrs[a].graph_op);
    }
}

/* Run op (domain, opset) on inputs in[0..n_in) (NULL: omitted) into out[0..n_out).
 * Returns the status of finalize or execution. */
static int runn(const char *domain, const char *op, int opset, int n_in, const kn_tensor *const *in,
                const tattr *attrs, int n_attr, int n_out, kn_tensor *out)
{
    kn_error err = {0};
    for (int k = 0; k < n_out; k++)
        kn_tensor_release(&out[k]);
    kn_model *m = kn_model_new();
    /* the node's domain, plus the default domain for subgraph bodies */
    m->n_opsets = domain[0] ? 2 : 1;
    m->opsets = kn_arena_calloc(&m->arena, 2, sizeof *m->opsets);
    m->opsets[0].domain = domain;
    m->opsets[0].version = opset;
    m->opsets[1].domain = "";
    m->opsets[1].version = 26;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    kn_node *n = kn_graph_add_node(g);
    n->op_type = op;
    n->domain = domain;
    n->n_in = n_in;
    n->in = kn_arena_calloc(&m->arena, (size_t)n_in + 1, sizeof *n->in);
    n->n_out = n_out;
    n->out = kn_arena_calloc(&m->arena, (size_t)n_out, sizeof *n->out);
    const kn_tensor *fed[8];
    int n_fed = 0;
    for (int k = 0; k < n_in; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", k);
        n->in[k] = in[k] ? kn_graph_value(g, name) : -1;
        if (in[k]) {
            kn_graph_add_input(g, n->in[k]);
            fed[n_fed++] = in[k];
        }
    }
    for (int k = 0; k < n_out; k++) {
        char name[16];
        snprintf(name, sizeof name, "y%d", k);
        n->out[k] = kn_graph_value(g, name);
        kn_graph_add_output(g, n->out[k]);
    }
    fill_attrs(m, g, n, attrs, n_attr);
    int rc = kn_model_finalize(m, &err);
    if (!rc)
        rc = kn_exec_graph(g, NULL, n_fed, fed, n_out, out, &err);
    if (rc)
        fprintf(stderr, "  (%s: %s)\n", op, err.msg);
    kn_model_free(m);
    return rc;
}

static int run1(const char *op, int opset, int n_in, const kn_tensor *const *in,
                const tattr *attrs, int n_attr, kn_tensor *out)
{
    return runn("", op, opset, n_in, in, attrs, n_attr, 1, out);
}

/* Run the registered kernel for op directly on in[0..n_in) into out[0..n_out)
 * (attributes: only INT / STRING / FLOAT from attrs). */
static int run_state(const char *op, int opset, int n_in, const kn_tensor *const *in,
                     const tattr *attrs, int n_attr, int n_out, kn_tensor *out)
{
    const kn_op_def *def = kn_op_find("", op, opset);
    if (!def)
        return -1;
    kn_attr at[8];
    memset(at, 0, sizeof at);
    for (int a = 0; a < n_attr && a < 8; a++) {
        at[a].name = attrs[a].name;
        at[a].type = attrs[a].type;
        at[a].f = (float)attrs[a].f;
        at[a].i = attrs[a].i;
        at[a].s = attrs[a].s;
        at[a].s_len = attrs[a].s ? strlen(attrs[a].s) : 0;
    }
    kn_node node;
    memset(&node, 0, sizeof node);
    node.op_type = op;
    node.domain = "";
    node.n_attr = n_attr;
    node.attrs = at;
    node.opset = opset;
    kn_tensor *outs[4];
    for (int k = 0; k < n_out && k < 4; k++) {
        kn_tensor_release(&out[k]);
        outs[k] = &out[k];
    }
    kn_error err = {0};
    kn_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    c.opset = opset;
    c.n_in = n_in;
    c.in = in;
    c.n_out = n_out;
    c.out = outs;
    c.err = &err;
    int rc = def->run(&c);
    if (rc)
        fprintf(stderr, "  (%s: %s)\n", op, err.msg);
    return rc;
}

static kn_tensor make(kn_dtype t, int rank, const int64_t *dims, const double *vals)
{
    kn_tensor x = {0};
    kn_error err;
    kn_tensor_alloc(&x, t, rank, dims, &err);
    for (int64_t i = 0; vals && i < x.numel; i++)
        kn_store_f64(x.data, t, (size_t)i, vals[i]);
    return x;
}

static double at(const kn_tensor *t, int i) { return kn_load_f64(t->data, t->dtype, (size_t)i); }

static void release(kn_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        kn_tensor_release(&t[i]);
}

/* ---------------------------------------------------------------- BitCast */

static void test_bitcast(void)
{
    int64_t d2[2] = {2, 1};
    double v[2] = {1.0, -2.0};
    kn_tensor x = make(KN_F32, 2, d2, v), y = {0};
    const kn_tensor *in[1] = {&x};
    tattr to_i32 = {"to", KN_ATTR_INT, 0, KN_I32, NULL, NULL};
    CHECK_EQ_INT(run1("BitCast", 26, 1, in, &to_i32, 1, &y), KN_OK);
    CHECK(y.dtype == KN_I32 && y.rank == 2 && y.dims[0] == 2 && y.dims[1] == 1);
    CHECK(((uint32_t *)y.data)[0] == 0x3f800000u && ((uint32_t *)y.data)[1] == 0xc0000000u);
    tattr to_i64 = {"to", KN_ATTR_INT, 0, KN_I64, NULL, NULL};
    CHECK_EQ_INT(run1("BitCast", 26, 1, in, &to_i64, 1, &y), KN_ERR_ARG);   /* 4 vs 8 bytes */
    tattr to_str = {"to", KN_ATTR_INT, 0, KN_STRING, NULL, NULL};
    CHECK_EQ_INT(run1("BitCast", 26, 1, in, &to_str, 1, &y), KN_ERR_UNSUPPORTED);
    CHECK(run1("BitCast", 26, 1, in, NULL, 0, &y) != KN_OK);                /* no 'to' */
    kn_tensor_release(&x);
    /* float16 -> bfloat16 keeps the bits; empty tensors are fine */
    int64_t d1[1] = {1};
    double h[1] = {1.0};
    x = make(KN_F16, 1, d1, h);
    tattr to_bf = {"to", KN_ATTR_INT, 0, KN_BF16, NULL, NULL};
    CHECK_EQ_INT(run1("BitCast", 26, 1, in, &to_bf, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BF16 && ((uint16_t *)y.data)[0] == 0x3c00);
    kn_tensor_release(&x);
    /* bytes other than 0/1 become true (kiln's bools are 0 or 1) */
    double bytes[1] = {7};
    x = make(KN_U8, 1, d1, bytes);
    tattr to_b = {"to", KN_ATTR_INT, 0, KN_BOOL, NULL, NULL};
    CHECK_EQ_INT(run1("BitCast", 26, 1, in, &to_b, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL && ((uint8_t *)y.data)[0] == 1);
    kn_tensor_release(&x);
    int64_t d0[2] = {0, 3};
    x = make(KN_U8, 2, d0, NULL);
    tattr to_bool = {"to", KN_ATTR_INT, 0, KN_BOOL, NULL, NULL};
    CHECK_EQ_INT(run1("BitCast", 26, 1, in, &to_bool, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL && y.numel == 0 && y.dims[1] == 3);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

/* ---------------------------------------------------------------- SwiGLU */

static void test_swiglu(void)
{
    int64_t d[1] = {3};
    double av[3] = {0.0, 1.0, -2.0}, bv[3] = {5.0, 2.0, 3.0};
    kn_tensor a = make(KN_F64, 1, d, av), b = make(KN_F64, 1, d, bv), y = {0};
    const kn_tensor *in[2] = {&a, &b};
    tattr alpha = {"alpha", KN_ATTR_FLOAT, 0.5, 0, NULL, NULL};
    CHECK_EQ_INT(run1("SwiGLU", 28, 2, in, &alpha, 1, &y), KN_OK);
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(at(&y, i), av[i] / (1.0 + exp(-0.5 * av[i])) * bv[i], 1e-12);
    int64_t d2[1] = {2};
    kn_tensor b2 = make(KN_F64, 1, d2, bv);
    const kn_tensor *bad[2] = {&a, &b2};
    CHECK_EQ_INT(run1("SwiGLU", 28, 2, bad, NULL, 0, &y), KN_ERR_ARG);   /* no broadcasting */
    kn_tensor ai = make(KN_I32, 1, d, av), bi = make(KN_I32, 1, d, bv);
    const kn_tensor *ints[2] = {&ai, &bi};
    CHECK_EQ_INT(run1("SwiGLU", 28, 2, ints, NULL, 0, &y), KN_ERR_UNSUPPORTED);
    const kn_tensor *missing[2] = {&a, NULL};
    CHECK(run1("SwiGLU", 28, 2, missing, NULL, 0, &y) != KN_OK);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    kn_tensor_release(&b2);
    kn_tensor_release(&ai);
    kn_tensor_release(&bi);
    kn_tensor_release(&y);
}

/* ---------------------------------------------------------------- TensorScatter */

static kn_tensor make_idx(int n, const int64_t *v)
{
    int64_t d[1] = {n};
    kn_tensor t = make(KN_I64, 1, d, NULL);
    for (int i = 0; i < n; i++)
        ((int64_t *)t.data)[i] = v[i];
    return t;
}

static void test_tensorscatter(void)
{
    /* cache [2, 4, 1], update [2, 2, 1] along axis -2 (= 1) */
    int64_t dc[3] = {2, 4, 1}, du[3] = {2, 2, 1};
    double cv[8] = {0, 1, 2, 3, 10, 11, 12, 13}, uv[4] = {-1, -2, -3, -4};
    kn_tensor cache = make(KN_F32, 3, dc, cv), upd = make(KN_F32, 3, du, uv), y = {0};
    int64_t w_ok[2] = {2, 0}, w_neg[2] = {-1, 3}, w_far[2] = {3, 0}, w_huge[2] = {INT64_MAX, 0};
    kn_tensor wi = make_idx(2, w_ok);
    const kn_tensor *in[3] = {&cache, &upd, &wi};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_OK);
    double want[8] = {0, 1, -1, -2, -3, -4, 12, 13};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(at(&y, i), want[i], 0);
    /* linear writes past the end or before the start fail */
    kn_tensor_release(&wi);
    wi = make_idx(2, w_far);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_RUNTIME);
    kn_tensor_release(&wi);
    wi = make_idx(2, w_huge);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_RUNTIME);
    kn_tensor_release(&wi);
    wi = make_idx(2, w_neg);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_RUNTIME);
    /* circular wraps, negative indices count from the end */
    tattr circ = {"mode", KN_ATTR_STRING, 0, 0, "circular", NULL};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &circ, 1, 1, &y), KN_OK);
    double want_c[8] = {-2, 1, 2, -1, -4, 11, 12, -3};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(at(&y, i), want_c[i], 0);
    /* no write_indices: writes at 0 */
    const kn_tensor *in2[2] = {&cache, &upd};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 2, in2, NULL, 0, 1, &y), KN_OK);
    CHECK(at(&y, 0) == -1 && at(&y, 1) == -2 && at(&y, 2) == 2 && at(&y, 4) == -3);
    /* bad axis, mode, write_indices shape, update shape */
    tattr ax0 = {"axis", KN_ATTR_INT, 0, 0, NULL, NULL};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &ax0, 1, 1, &y), KN_ERR_ARG);
    tattr ax9 = {"axis", KN_ATTR_INT, 0, 9, NULL, NULL};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &ax9, 1, 1, &y), KN_ERR_ARG);
    tattr badmode = {"mode", KN_ATTR_STRING, 0, 0, "ring", NULL};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &badmode, 1, 1, &y), KN_ERR_ARG);
    kn_tensor_release(&wi);
    int64_t d2[1] = {2};
    double wf[2] = {0, 1};
    wi = make(KN_F32, 1, d2, wf);    /* float write_indices */
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_ARG);
    kn_tensor_release(&wi);
    wi = make(KN_I32, 1, d2, wf);    /* int32 is fine */
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_OK);
    CHECK(at(&y, 0) == -1 && at(&y, 5) == -3 && at(&y, 6) == -4);
    kn_tensor_release(&wi);
    wi = make_idx(1, w_ok);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_ARG);
    int64_t dbig[3] = {2, 5, 1};
    kn_tensor big = make(KN_F32, 3, dbig, NULL);
    const kn_tensor *in3[2] = {&cache, &big};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 2, in3, NULL, 0, 1, &y), KN_ERR_ARG);
    kn_tensor_release(&cache);
    kn_tensor_release(&upd);
    kn_tensor_release(&wi);
    kn_tensor_release(&big);
    kn_tensor_release(&y);
}

static void test_tensorscatter_int_last_axis(void)
{
    /* int64 cache [1, 3] written along axis -1 */
    int64_t dc[2] = {1, 3}, du[2] = {1, 1};
    kn_tensor cache = make(KN_I64, 2, dc, NULL), upd = make(KN_I64, 2, du, NULL), y = {0};
    ((int64_t *)upd.data)[0] = INT64_MAX;
    int64_t w[1] = {2};
    kn_tensor wi = make_idx(1, w);
    const kn_tensor *in[3] = {&cache, &upd, &wi};
    tattr ax = {"axis", KN_ATTR_INT, 0, -1, NULL, NULL};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &ax, 1, 1, &y), KN_OK);
    CHECK(((int64_t *)y.data)[2] == INT64_MAX && ((int64_t *)y.data)[0] == 0);
    kn_tensor_release(&cache);
    kn_tensor_release(&upd);
    kn_tensor_release(&wi);
    kn_tensor_release(&y);
}

/* ---------------------------------------------------------------- CausalConvWithState */

static void test_causal_conv(void)
{
    /* one channel, kernel [1, 2, 3]: y[t] = x[t-2] + 2 x[t-1] + 3 x[t] with past [p0, p1] */
    int64_t dx[3] = {1, 1, 3}, dw[3] = {1, 1, 3}, dp[3] = {1, 1, 2}, db[1] = {1};
    double xv[3] = {1, 2, 3}, wv[3] = {1, 2, 3}, pv[2] = {10, 20}, bv[1] = {0.5};
    kn_tensor x = make(KN_F32, 3, dx, xv), w = make(KN_F32, 3, dw, wv), p = make(KN_F32, 3, dp, pv);
    kn_tensor b = make(KN_F32, 1, db, bv), out[2] = {{0}, {0}};
    const kn_tensor *in[4] = {&x, &w, &b, &p};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 4, in, NULL, 0, 2, out), KN_OK);
    CHECK_NEAR(at(&out[0], 0), 10 + 40 + 3 + 0.5, 1e-6);
    CHECK_NEAR(at(&out[0], 1), 20 + 2 + 6 + 0.5, 1e-6);
    CHECK_NEAR(at(&out[0], 2), 1 + 4 + 9 + 0.5, 1e-6);
    CHECK(out[1].dims[2] == 2 && at(&out[1], 0) == 2 && at(&out[1], 1) == 3);
    /* empty sequence: output empty, state passes through */
    int64_t d0[3] = {1, 1, 0};
    kn_tensor x0 = make(KN_F32, 3, d0, NULL);
    const kn_tensor *in0[4] = {&x0, &w, NULL, &p};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 4, in0, NULL, 0, 2, out), KN_OK);
    CHECK(out[0].numel == 0 && at(&out[1], 0) == 10 && at(&out[1], 1) == 20);
    /* bad shapes and attributes */
    const kn_tensor *bad_past[4] = {&x, &w, NULL, &x};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 4, bad_past, NULL, 0, 2, out), KN_ERR_ARG);
    const kn_tensor *k2[2] = {&x, &p};   /* a [1, 1, 2] weight: kernel size 2 */
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, k2, NULL, 0, 2, out), KN_OK);
    CHECK(out[1].dims[2] == 1 && at(&out[1], 0) == 3);
    const kn_tensor *bad_w[2] = {&x, &x};   /* weight [1, 1, 3] ok; [C, 2, k] is not */
    int64_t dw2[3] = {1, 2, 3};
    kn_tensor w2 = make(KN_F32, 3, dw2, NULL);
    bad_w[1] = &w2;
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, bad_w, NULL, 0, 2, out), KN_ERR_ARG);
    kn_tensor_release(&w2);
    const kn_tensor *bad_bias[3] = {&x, &w, &x};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 3, bad_bias, NULL, 0, 2, out), KN_ERR_ARG);
    const kn_tensor *bad_rank[2] = {&b, &w};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, bad_rank, NULL, 0, 2, out), KN_ERR_ARG);
    tattr act = {"activation", KN_ATTR_STRING, 0, 0, "gelu", NULL};
    const kn_tensor *in2[2] = {&x, &w};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, in2, &act, 1, 2, out), KN_ERR_ARG);
    tattr silu = {"activation", KN_ATTR_STRING, 0, 0, "silu", NULL};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, in2, &silu, 1, 2, out), KN_OK);
    CHECK_NEAR(at(&out[0], 0), 3.0 / (1.0 + exp(-3.0)), 1e-6);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&p);
    kn_tensor_release(&b);
    kn_tensor_release(&x0);
    release(out, 2);
}

/* ---------------------------------------------------------------- LinearAttention */

static void test_linear_attention(void)
{
    /* B=1, T=2, one head, d_k = d_v = 1, rule 'linear', scale 1:
     * S1 = k1 v1, o1 = q1 S1; S2 = S1 + k2 v2, o2 = q2 S2 */
    int64_t d[3] = {1, 2, 1};
    double qv[2] = {2, 3}, kv[2] = {1, 4}, vv[2] = {5, 6};
    kn_tensor q = make(KN_F32, 3, d, qv), k = make(KN_F32, 3, d, kv), v = make(KN_F32, 3, d, vv);
    kn_tensor out[2] = {{0}, {0}};
    tattr lin[3] = {{"q_num_heads", KN_ATTR_INT, 0, 1, NULL, NULL},
                    {"kv_num_heads", KN_ATTR_INT, 0, 1, NULL, NULL},
                    {"update_rule", KN_ATTR_STRING, 0, 0, "linear", NULL}};
    const kn_tensor *in[3] = {&q, &k, &v};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 3, in, lin, 3, 2, out), KN_OK);
    CHECK_NEAR(at(&out[0], 0), 10, 1e-5);
    CHECK_NEAR(at(&out[0], 1), 3 * (5 + 24), 1e-4);
    CHECK(out[1].rank == 4 && out[1].numel == 1);
    CHECK_NEAR(at(&out[1], 0), 29, 1e-5);
    /* delta with beta = 1 and past state 1: S1 = 1 + 1*(5 - 1) = 5, S2 = 5 + 4*(6 - 20) */
    int64_t dp[4] = {1, 1, 1, 1};
    double one = 1;
    kn_tensor past = make(KN_F32, 4, dp, &one), beta = make(KN_F32, 3, d, NULL);
    kn_store_f64(beta.data, KN_F32, 0, 1);
    kn_store_f64(beta.data, KN_F32, 1, 1);
    tattr delta[3] = {lin[0], lin[1], {"update_rule", KN_ATTR_STRING, 0, 0, "delta", NULL}};
    const kn_tensor *ind[6] = {&q, &k, &v, &past, NULL, &beta};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 6, ind, delta, 3, 2, out), KN_OK);
    CHECK_NEAR(at(&out[1], 0), 5 + 4 * (6 - 20), 1e-4);
    /* gated_delta (the default) without decay, bad heads, bad past shape, bad rule */
    tattr heads[2] = {lin[0], lin[1]};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 6, ind, heads, 2, 2, out), KN_ERR_ARG);
    tattr bad_heads[3] = {{"q_num_heads", KN_ATTR_INT, 0, 3, NULL, NULL},
                          {"kv_num_heads", KN_ATTR_INT, 0, 2, NULL, NULL}, lin[2]};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 3, in, bad_heads, 3, 2, out), KN_ERR_ARG);
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 3, in, lin + 2, 1, 2, out), KN_ERR_ARG);
    const kn_tensor *badpast[6] = {&q, &k, &v, &q, NULL, &beta};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 6, badpast, delta, 3, 2, out), KN_ERR_ARG);
    tattr rule[3] = {lin[0], lin[1], {"update_rule", KN_ATTR_STRING, 0, 0, "mamba", NULL}};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 3, in, rule, 3, 2, out), KN_ERR_ARG);
    int64_t d4[4] = {1, 2, 1, 1};
    kn_tensor q4 = make(KN_F32, 4, d4, NULL);
    const kn_tensor *in4[3] = {&q4, &k, &v};
    CHECK_EQ_INT(runn("", "LinearAttention", 27, 3, in4, lin, 3, 2, out), KN_ERR_ARG);
    kn_tensor_release(&q);
    kn_tensor_release(&k);
    kn_tensor_release(&v);
    kn_tensor_release(&past);
    kn_tensor_release(&beta);
    kn_tensor_release(&q4);
    release(out, 2);
}

/* ---------------------------------------------------------------- FlexAttention */

static void test_flex_attention(void)
{
    /* zero keys: uniform probabilities, Y = mean of V over the keys */
    int64_t dq[4] = {1, 2, 1, 2}, dk[4] = {1, 1, 3, 2};
    double qv[4] = {1, 2, 3, 4}, vv[6] = {1, 10, 2, 20, 6, 60};
    kn_tensor q = make(KN_F32, 4, dq, qv), k = make(KN_F32, 4, dk, NULL), v = make(KN_F32, 4, dk, vv);
    kn_tensor y = {0};
    const kn_tensor *in[3] = {&q, &k, &v};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, in, NULL, 0, 1, &y), KN_OK);
    CHECK(y.rank == 4 && y.dims[1] == 2 && y.dims[3] == 2);
    CHECK_NEAR(at(&y, 0), 3, 1e-5);
    CHECK_NEAR(at(&y, 3), 30, 1e-4);
    /* score_mod = Identity changes nothing; prob_mod = Neg negates the output */
    tattr ident = {"score_mod", KN_ATTR_GRAPH, 0, 0, NULL, "Identity"};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, in, &ident, 1, 1, &y), KN_OK);
    CHECK_NEAR(at(&y, 0), 3, 1e-5);
    tattr neg = {"prob_mod", KN_ATTR_GRAPH, 0, 0, NULL, "Neg"};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, in, &neg, 1, 1, &y), KN_OK);
    CHECK_NEAR(at(&y, 0), -3, 1e-5);
    /* a subgraph returning the wrong shape is an error */
    tattr shape = {"score_mod", KN_ATTR_GRAPH, 0, 0, NULL, "Shape"};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, in, &shape, 1, 1, &y), KN_ERR_RUNTIME);
    /* heads that do not divide, rank 3, dtype mismatch */
    int64_t dq3[4] = {1, 3, 1, 2}, dk2[4] = {1, 2, 3, 2};
    kn_tensor q3 = make(KN_F32, 4, dq3, NULL), k2 = make(KN_F32, 4, dk2, NULL), v2 = make(KN_F32, 4, dk2, NULL);
    const kn_tensor *bad[3] = {&q3, &k2, &v2};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, bad, NULL, 0, 1, &y), KN_ERR_ARG);
    int64_t d3[3] = {1, 1, 2};
    kn_tensor r3 = make(KN_F32, 3, d3, NULL);
    const kn_tensor *bad3[3] = {&r3, &k, &v};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, bad3, NULL, 0, 1, &y), KN_ERR_ARG);
    kn_tensor kd = make(KN_F64, 4, dk, NULL);
    const kn_tensor *badt[3] = {&q, &kd, &v};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, badt, NULL, 0, 1, &y), KN_ERR_ARG);
    /* no keys: softmax over nothing gives an empty sum; output is NaN-free shape-wise */
    int64_t dk0[4] = {1, 1, 0, 2};
    kn_tensor k0 = make(KN_F32, 4, dk0, NULL), v0 = make(KN_F32, 4, dk0, NULL);
    const kn_tensor *in0[3] = {&q, &k0, &v0};
    CHECK_EQ_INT(runn("ai.onnx.preview", "FlexAttention", 1, 3, in0, NULL, 0, 1, &y), KN_OK);
    CHECK(y.numel == 4 && at(&y, 0) == 0);
    kn_tensor_release(&q);
    kn_tensor_release(&k);
    kn_tensor_release(&v);
    kn_tensor_release(&q3);
    kn_tensor_release(&k2);
    kn_tensor_release(&v2);
    kn_tensor_release(&r3);
    kn_tensor_release(&kd);
    kn_tensor_release(&k0);
    kn_tensor_release(&v0);
    kn_tensor_release(&y);
}

int main(void)
{
    static const kt_case cases[] = {
        TEST_CASE(test_bitcast),
        TEST_CASE(test_swiglu),
        TEST_CASE(test_tensorscatter),
        TEST_CASE(test_tensorscatter_int_last_axis),
        TEST_CASE(test_causal_conv),
        TEST_CASE(test_linear_attention),
        TEST_CASE(test_flex_attention),
    };
    return kt_run(cases, (int)(sizeof cases / sizeof cases[0]));
}
