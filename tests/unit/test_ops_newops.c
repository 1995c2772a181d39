/* test_ops_newops.c - unit tests for the opset 24-28 operators: BitCast (cast.c),
 * SwiGLU (unary.c), TensorScatter (index.c), CausalConvWithState (conv.c), LinearAttention
 * and FlexAttention (attention.c).  Hand-computed small cases, edge shapes (empty,
 * kernel size one), and bad shapes / indices / attributes that must fail cleanly.
 * Most tests run a one-node graph through the executor; run_state calls the
 * registered kernel directly. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "ops/op.h"

#include <stdint.h>
#include <string.h>

/* Run the registered kernel for op directly on in[0..n_in) into out[0..n_out)
 * (at most 8 attributes; no graph attributes). */
static int run_state(const char *op, int opset, int n_in, const kn_tensor *const *in,
                     const kn_attr *attrs, int n_attr, int n_out, kn_tensor *out)
{
    const kn_op_def *def = kn_op_find("", op, opset);
    if (!def)
        return -1;
    kn_attr at[8];
    memset(at, 0, sizeof at);
    for (int a = 0; a < n_attr && a < 8; a++)
        at[a] = attrs[a];
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

/* Run FlexAttention (ai.onnx.preview, version 1) on q, k, v into *y. */
static int run_flex(const kn_tensor *const *in, const kn_attr *attrs, int n_attr, kn_tensor *y)
{
    kt_node n = kt_node_of("ai.onnx.preview", "FlexAttention", 1, 1);
    for (int i = 0; i < 3; i++)
        kt_add_input(&n, in[i]);
    for (int i = 0; i < n_attr; i++)
        kt_add_attr(&n, attrs[i]);
    return kt_rerun_node(&n, y);
}

/* ---------------------------------------------------------------- BitCast */

static void test_bitcast(void)
{
    int64_t d2[2] = {2, 1};
    double v[2] = {1.0, -2.0};
    kn_tensor x = kt_tensor_f64(KN_F32, 2, d2, v), y = {0};
    const kn_tensor *in[1] = {&x};
    kn_attr to_i32 = kt_attr_int("to", KN_I32);
    CHECK_EQ_INT(kt_run_op_replace("BitCast", 26, 1, in, 1, &to_i32, 1, &y), KN_OK);
    CHECK(y.dtype == KN_I32 && y.rank == 2 && y.dims[0] == 2 && y.dims[1] == 1);
    CHECK(((uint32_t *)y.data)[0] == 0x3f800000u && ((uint32_t *)y.data)[1] == 0xc0000000u);
    kn_attr to_i64 = kt_attr_int("to", KN_I64);
    CHECK_EQ_INT(kt_run_op_replace("BitCast", 26, 1, in, 1, &to_i64, 1, &y), KN_ERR_ARG);   /* 4 vs 8 bytes */
    kn_attr to_str = kt_attr_int("to", KN_STRING);
    CHECK_EQ_INT(kt_run_op_replace("BitCast", 26, 1, in, 1, &to_str, 1, &y), KN_ERR_UNSUPPORTED);
    CHECK(kt_run_op_replace("BitCast", 26, 1, in, 0, NULL, 1, &y) != KN_OK);                /* no 'to' */
    kn_tensor_release(&x);
    /* float16 -> bfloat16 keeps the bits; empty tensors are fine */
    int64_t d1[1] = {1};
    double h[1] = {1.0};
    x = kt_tensor_f64(KN_F16, 1, d1, h);
    kn_attr to_bf = kt_attr_int("to", KN_BF16);
    CHECK_EQ_INT(kt_run_op_replace("BitCast", 26, 1, in, 1, &to_bf, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BF16 && ((uint16_t *)y.data)[0] == 0x3c00);
    kn_tensor_release(&x);
    /* bytes other than 0/1 become true (kiln's bools are 0 or 1) */
    double bytes[1] = {7};
    x = kt_tensor_f64(KN_U8, 1, d1, bytes);
    kn_attr to_b = kt_attr_int("to", KN_BOOL);
    CHECK_EQ_INT(kt_run_op_replace("BitCast", 26, 1, in, 1, &to_b, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL && ((uint8_t *)y.data)[0] == 1);
    kn_tensor_release(&x);
    int64_t d0[2] = {0, 3};
    x = kt_tensor_f64(KN_U8, 2, d0, NULL);
    kn_attr to_bool = kt_attr_int("to", KN_BOOL);
    CHECK_EQ_INT(kt_run_op_replace("BitCast", 26, 1, in, 1, &to_bool, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL && y.numel == 0 && y.dims[1] == 3);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

/* ---------------------------------------------------------------- SwiGLU */

static void test_swiglu(void)
{
    int64_t d[1] = {3};
    double av[3] = {0.0, 1.0, -2.0}, bv[3] = {5.0, 2.0, 3.0};
    kn_tensor a = kt_tensor_f64(KN_F64, 1, d, av), b = kt_tensor_f64(KN_F64, 1, d, bv), y = {0};
    const kn_tensor *in[2] = {&a, &b};
    kn_attr alpha = kt_attr_float("alpha", 0.5);
    CHECK_EQ_INT(kt_run_op_replace("SwiGLU", 28, 2, in, 1, &alpha, 1, &y), KN_OK);
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(kt_at(&y, i), av[i] / (1.0 + exp(-0.5 * av[i])) * bv[i], 1e-12);
    int64_t d2[1] = {2};
    kn_tensor b2 = kt_tensor_f64(KN_F64, 1, d2, bv);
    const kn_tensor *bad[2] = {&a, &b2};
    CHECK_EQ_INT(kt_run_op_replace("SwiGLU", 28, 2, bad, 0, NULL, 1, &y), KN_ERR_ARG);   /* no broadcasting */
    kn_tensor ai = kt_tensor_f64(KN_I32, 1, d, av), bi = kt_tensor_f64(KN_I32, 1, d, bv);
    const kn_tensor *ints[2] = {&ai, &bi};
    CHECK_EQ_INT(kt_run_op_replace("SwiGLU", 28, 2, ints, 0, NULL, 1, &y), KN_ERR_UNSUPPORTED);
    const kn_tensor *missing[2] = {&a, NULL};
    CHECK(kt_run_op_replace("SwiGLU", 28, 2, missing, 0, NULL, 1, &y) != KN_OK);
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
    kn_tensor t = kt_tensor_f64(KN_I64, 1, d, NULL);
    for (int i = 0; i < n; i++)
        ((int64_t *)t.data)[i] = v[i];
    return t;
}

static void test_tensorscatter(void)
{
    /* cache [2, 4, 1], update [2, 2, 1] along axis -2 (= 1) */
    int64_t dc[3] = {2, 4, 1}, du[3] = {2, 2, 1};
    double cv[8] = {0, 1, 2, 3, 10, 11, 12, 13}, uv[4] = {-1, -2, -3, -4};
    kn_tensor cache = kt_tensor_f64(KN_F32, 3, dc, cv), upd = kt_tensor_f64(KN_F32, 3, du, uv), y = {0};
    int64_t w_ok[2] = {2, 0}, w_neg[2] = {-1, 3}, w_far[2] = {3, 0}, w_huge[2] = {INT64_MAX, 0};
    kn_tensor wi = make_idx(2, w_ok);
    const kn_tensor *in[3] = {&cache, &upd, &wi};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_OK);
    double want[8] = {0, 1, -1, -2, -3, -4, 12, 13};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(kt_at(&y, i), want[i], 0);
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
    kn_attr circ = kt_attr_str("mode", "circular");
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &circ, 1, 1, &y), KN_OK);
    double want_c[8] = {-2, 1, 2, -1, -4, 11, 12, -3};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(kt_at(&y, i), want_c[i], 0);
    /* no write_indices: writes at 0 */
    const kn_tensor *in2[2] = {&cache, &upd};
    CHECK_EQ_INT(run_state("TensorScatter", 24, 2, in2, NULL, 0, 1, &y), KN_OK);
    CHECK(kt_at(&y, 0) == -1 && kt_at(&y, 1) == -2 && kt_at(&y, 2) == 2 && kt_at(&y, 4) == -3);
    /* bad axis, mode, write_indices shape, update shape */
    kn_attr ax0 = kt_attr_int("axis", 0);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &ax0, 1, 1, &y), KN_ERR_ARG);
    kn_attr ax9 = kt_attr_int("axis", 9);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &ax9, 1, 1, &y), KN_ERR_ARG);
    kn_attr badmode = kt_attr_str("mode", "ring");
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, &badmode, 1, 1, &y), KN_ERR_ARG);
    kn_tensor_release(&wi);
    int64_t d2[1] = {2};
    double wf[2] = {0, 1};
    wi = kt_tensor_f64(KN_F32, 1, d2, wf);    /* float write_indices */
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_ARG);
    kn_tensor_release(&wi);
    wi = kt_tensor_f64(KN_I32, 1, d2, wf);    /* int32 is fine */
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_OK);
    CHECK(kt_at(&y, 0) == -1 && kt_at(&y, 5) == -3 && kt_at(&y, 6) == -4);
    kn_tensor_release(&wi);
    wi = make_idx(1, w_ok);
    CHECK_EQ_INT(run_state("TensorScatter", 24, 3, in, NULL, 0, 1, &y), KN_ERR_ARG);
    int64_t dbig[3] = {2, 5, 1};
    kn_tensor big = kt_tensor_f64(KN_F32, 3, dbig, NULL);
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
    kn_tensor cache = kt_tensor_f64(KN_I64, 2, dc, NULL), upd = kt_tensor_f64(KN_I64, 2, du, NULL), y = {0};
    ((int64_t *)upd.data)[0] = INT64_MAX;
    int64_t w[1] = {2};
    kn_tensor wi = make_idx(1, w);
    const kn_tensor *in[3] = {&cache, &upd, &wi};
    kn_attr ax = kt_attr_int("axis", -1);
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
    kn_tensor x = kt_tensor_f64(KN_F32, 3, dx, xv), w = kt_tensor_f64(KN_F32, 3, dw, wv), p = kt_tensor_f64(KN_F32, 3, dp, pv);
    kn_tensor b = kt_tensor_f64(KN_F32, 1, db, bv), out[2] = {{0}, {0}};
    const kn_tensor *in[4] = {&x, &w, &b, &p};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 4, in, NULL, 0, 2, out), KN_OK);
    CHECK_NEAR(kt_at(&out[0], 0), 10 + 40 + 3 + 0.5, 1e-6);
    CHECK_NEAR(kt_at(&out[0], 1), 20 + 2 + 6 + 0.5, 1e-6);
    CHECK_NEAR(kt_at(&out[0], 2), 1 + 4 + 9 + 0.5, 1e-6);
    CHECK(out[1].dims[2] == 2 && kt_at(&out[1], 0) == 2 && kt_at(&out[1], 1) == 3);
    /* empty sequence: output empty, state passes through */
    int64_t d0[3] = {1, 1, 0};
    kn_tensor x0 = kt_tensor_f64(KN_F32, 3, d0, NULL);
    const kn_tensor *in0[4] = {&x0, &w, NULL, &p};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 4, in0, NULL, 0, 2, out), KN_OK);
    CHECK(out[0].numel == 0 && kt_at(&out[1], 0) == 10 && kt_at(&out[1], 1) == 20);
    /* bad shapes and attributes */
    const kn_tensor *bad_past[4] = {&x, &w, NULL, &x};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 4, bad_past, NULL, 0, 2, out), KN_ERR_ARG);
    const kn_tensor *k2[2] = {&x, &p};   /* a [1, 1, 2] weight: kernel size 2 */
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, k2, NULL, 0, 2, out), KN_OK);
    CHECK(out[1].dims[2] == 1 && kt_at(&out[1], 0) == 3);
    const kn_tensor *bad_w[2] = {&x, &x};   /* weight [1, 1, 3] ok; [C, 2, k] is not */
    int64_t dw2[3] = {1, 2, 3};
    kn_tensor w2 = kt_tensor_f64(KN_F32, 3, dw2, NULL);
    bad_w[1] = &w2;
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, bad_w, NULL, 0, 2, out), KN_ERR_ARG);
    kn_tensor_release(&w2);
    const kn_tensor *bad_bias[3] = {&x, &w, &x};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 3, bad_bias, NULL, 0, 2, out), KN_ERR_ARG);
    const kn_tensor *bad_rank[2] = {&b, &w};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, bad_rank, NULL, 0, 2, out), KN_ERR_ARG);
    kn_attr act = kt_attr_str("activation", "gelu");
    const kn_tensor *in2[2] = {&x, &w};
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, in2, &act, 1, 2, out), KN_ERR_ARG);
    kn_attr silu = kt_attr_str("activation", "silu");
    CHECK_EQ_INT(run_state("CausalConvWithState", 27, 2, in2, &silu, 1, 2, out), KN_OK);
    CHECK_NEAR(kt_at(&out[0], 0), 3.0 / (1.0 + exp(-3.0)), 1e-6);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&p);
    kn_tensor_release(&b);
    kn_tensor_release(&x0);
    kt_release_all(out, 2);
}

/* ---------------------------------------------------------------- LinearAttention */

static void test_linear_attention(void)
{
    /* B=1, T=2, one head, d_k = d_v = 1, rule 'linear', scale 1:
     * S1 = k1 v1, o1 = q1 S1; S2 = S1 + k2 v2, o2 = q2 S2 */
    int64_t d[3] = {1, 2, 1};
    double qv[2] = {2, 3}, kv[2] = {1, 4}, vv[2] = {5, 6};
    kn_tensor q = kt_tensor_f64(KN_F32, 3, d, qv), k = kt_tensor_f64(KN_F32, 3, d, kv), v = kt_tensor_f64(KN_F32, 3, d, vv);
    kn_tensor out[2] = {{0}, {0}};
    kn_attr lin[3] = {kt_attr_int("q_num_heads", 1),
                    kt_attr_int("kv_num_heads", 1),
                    kt_attr_str("update_rule", "linear")};
    const kn_tensor *in[3] = {&q, &k, &v};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 3, in, 3, lin, 2, out), KN_OK);
    CHECK_NEAR(kt_at(&out[0], 0), 10, 1e-5);
    CHECK_NEAR(kt_at(&out[0], 1), 3 * (5 + 24), 1e-4);
    CHECK(out[1].rank == 4 && out[1].numel == 1);
    CHECK_NEAR(kt_at(&out[1], 0), 29, 1e-5);
    /* delta with beta = 1 and past state 1: S1 = 1 + 1*(5 - 1) = 5, S2 = 5 + 4*(6 - 20) */
    int64_t dp[4] = {1, 1, 1, 1};
    double one = 1;
    kn_tensor past = kt_tensor_f64(KN_F32, 4, dp, &one), beta = kt_tensor_f64(KN_F32, 3, d, NULL);
    kn_store_f64(beta.data, KN_F32, 0, 1);
    kn_store_f64(beta.data, KN_F32, 1, 1);
    kn_attr delta[3] = {lin[0], lin[1], kt_attr_str("update_rule", "delta")};
    const kn_tensor *ind[6] = {&q, &k, &v, &past, NULL, &beta};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 6, ind, 3, delta, 2, out), KN_OK);
    CHECK_NEAR(kt_at(&out[1], 0), 5 + 4 * (6 - 20), 1e-4);
    /* gated_delta (the default) without decay, bad heads, bad past shape, bad rule */
    kn_attr heads[2] = {lin[0], lin[1]};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 6, ind, 2, heads, 2, out), KN_ERR_ARG);
    kn_attr bad_heads[3] = {kt_attr_int("q_num_heads", 3),
                          kt_attr_int("kv_num_heads", 2), lin[2]};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 3, in, 3, bad_heads, 2, out), KN_ERR_ARG);
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 3, in, 1, lin + 2, 2, out), KN_ERR_ARG);
    const kn_tensor *badpast[6] = {&q, &k, &v, &q, NULL, &beta};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 6, badpast, 3, delta, 2, out), KN_ERR_ARG);
    kn_attr rule[3] = {lin[0], lin[1], kt_attr_str("update_rule", "mamba")};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 3, in, 3, rule, 2, out), KN_ERR_ARG);
    int64_t d4[4] = {1, 2, 1, 1};
    kn_tensor q4 = kt_tensor_f64(KN_F32, 4, d4, NULL);
    const kn_tensor *in4[3] = {&q4, &k, &v};
    CHECK_EQ_INT(kt_run_op_replace("LinearAttention", 27, 3, in4, 3, lin, 2, out), KN_ERR_ARG);
    kn_tensor_release(&q);
    kn_tensor_release(&k);
    kn_tensor_release(&v);
    kn_tensor_release(&past);
    kn_tensor_release(&beta);
    kn_tensor_release(&q4);
    kt_release_all(out, 2);
}

/* ---------------------------------------------------------------- FlexAttention */

static void test_flex_attention(void)
{
    /* zero keys: uniform probabilities, Y = mean of V over the keys */
    int64_t dq[4] = {1, 2, 1, 2}, dk[4] = {1, 1, 3, 2};
    double qv[4] = {1, 2, 3, 4}, vv[6] = {1, 10, 2, 20, 6, 60};
    kn_tensor q = kt_tensor_f64(KN_F32, 4, dq, qv), k = kt_tensor_f64(KN_F32, 4, dk, NULL), v = kt_tensor_f64(KN_F32, 4, dk, vv);
    kn_tensor y = {0};
    const kn_tensor *in[3] = {&q, &k, &v};
    CHECK_EQ_INT(run_flex(in, NULL, 0, &y), KN_OK);
    CHECK(y.rank == 4 && y.dims[1] == 2 && y.dims[3] == 2);
    CHECK_NEAR(kt_at(&y, 0), 3, 1e-5);
    CHECK_NEAR(kt_at(&y, 3), 30, 1e-4);
    /* score_mod = Identity changes nothing; prob_mod = Neg negates the output */
    kn_attr ident = kt_attr_body("score_mod", "Identity", 1, 1);
    CHECK_EQ_INT(run_flex(in, &ident, 1, &y), KN_OK);
    CHECK_NEAR(kt_at(&y, 0), 3, 1e-5);
    kn_attr neg = kt_attr_body("prob_mod", "Neg", 1, 1);
    CHECK_EQ_INT(run_flex(in, &neg, 1, &y), KN_OK);
    CHECK_NEAR(kt_at(&y, 0), -3, 1e-5);
    /* a subgraph returning the wrong shape is an error */
    kn_attr shape = kt_attr_body("score_mod", "Shape", 1, 1);
    CHECK_EQ_INT(run_flex(in, &shape, 1, &y), KN_ERR_RUNTIME);
    /* heads that do not divide, rank 3, dtype mismatch */
    int64_t dq3[4] = {1, 3, 1, 2}, dk2[4] = {1, 2, 3, 2};
    kn_tensor q3 = kt_tensor_f64(KN_F32, 4, dq3, NULL), k2 = kt_tensor_f64(KN_F32, 4, dk2, NULL), v2 = kt_tensor_f64(KN_F32, 4, dk2, NULL);
    const kn_tensor *bad[3] = {&q3, &k2, &v2};
    CHECK_EQ_INT(run_flex(bad, NULL, 0, &y), KN_ERR_ARG);
    int64_t d3[3] = {1, 1, 2};
    kn_tensor r3 = kt_tensor_f64(KN_F32, 3, d3, NULL);
    const kn_tensor *bad3[3] = {&r3, &k, &v};
    CHECK_EQ_INT(run_flex(bad3, NULL, 0, &y), KN_ERR_ARG);
    kn_tensor kd = kt_tensor_f64(KN_F64, 4, dk, NULL);
    const kn_tensor *badt[3] = {&q, &kd, &v};
    CHECK_EQ_INT(run_flex(badt, NULL, 0, &y), KN_ERR_ARG);
    /* no keys: softmax over nothing gives an empty sum; output is NaN-free shape-wise */
    int64_t dk0[4] = {1, 1, 0, 2};
    kn_tensor k0 = kt_tensor_f64(KN_F32, 4, dk0, NULL), v0 = kt_tensor_f64(KN_F32, 4, dk0, NULL);
    const kn_tensor *in0[3] = {&q, &k0, &v0};
    CHECK_EQ_INT(run_flex(in0, NULL, 0, &y), KN_OK);
    CHECK(y.numel == 4 && kt_at(&y, 0) == 0);
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
