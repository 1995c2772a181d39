/* test_opt_qdq.c - the QDQ fusion passes (src/opt/fuse_qdq.c, fuse_qdq_layout.c) on
 * small hand-built QDQ graphs of the shapes kiln quantize and ONNX Runtime's
 * quantizer write: each builder makes the float operator between DequantizeLinear
 * and QuantizeLinear nodes; the test optimizes one copy at `extended`, checks which
 * operators remain, and compares its outputs with the unoptimized copy run by the
 * reference kernels.
 *
 * Why not bit-exact: the unfused graph computes the operator in float on
 * dequantized values (float accumulation, the float bias) and quantizes that; the
 * fused one accumulates exact integers and requantizes with the float multiplier
 * x_scale * w_scale / y_scale.  The two agree except where a value lies within
 * rounding error of a half step, so one fused operator differs by at most one
 * quantization step of its output; chains of them may compound (one step in an
 * intermediate moves the next operator's output by up to a few steps), hence the
 * looser bound of the block test. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "ir/ir.h"
#include "opt/opt.h"
#include "ops/op_util.h"

#include <stdlib.h>

static kn_error berr;
static uint32_t seed = 7u;

static float frand(void)
{
    kt_lcg32(&seed);
    return (float)((seed >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

/* ---- graph building ---- */

static void input(kn_graph *g, const char *name, int rank, const int64_t *dims)
{
    kt_graph_type(g, name, KN_F32, rank, dims);
    kn_graph_add_input(g, kn_graph_value(g, name));
}

static void output(kn_graph *g, const char *name)
{
    kn_graph_add_output(g, kn_graph_value(g, name));
}

static void cst(kn_graph *g, const char *name, kn_tensor t)
{
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
}

static void f32_scalar(kn_graph *g, const char *name, float v)
{
    cst(g, name, kt_tensor(KN_F32, 0, NULL, &v));
}

static void u8_scalar(kn_graph *g, const char *name, int v)
{
    uint8_t u = (uint8_t)v;
    cst(g, name, kt_tensor(KN_U8, 0, NULL, &u));
}

/* out = DequantizeLinear(QuantizeLinear(x)) with scale s and uint8 zero point z
 * (parameters named "<out>_s", "<out>_z"; the 8-bit value "<out>_q"). */
static void qdq(kn_graph *g, const char *x, const char *out, float s, int z)
{
    char sn[64], zn[64], qn[64], ins[256];
    snprintf(sn, sizeof sn, "%s_s", out);
    snprintf(zn, sizeof zn, "%s_z", out);
    snprintf(qn, sizeof qn, "%s_q", out);
    f32_scalar(g, sn, s);
    u8_scalar(g, zn, z);
    snprintf(ins, sizeof ins, "%s,%s,%s", x, sn, zn);
    kt_graph_node(g, "QuantizeLinear", ins, qn);
    snprintf(ins, sizeof ins, "%s,%s,%s", qn, sn, zn);
    kt_graph_node(g, "DequantizeLinear", ins, out);
}

/* out = DequantizeLinear(int8 weight of dims, per-channel scales along axis (n of
 * them) or one scale when n == 0); the scales go to ws when not NULL. */
static void weight(kn_graph *g, const char *out, int rank, const int64_t *dims, int axis, int64_t n, float *ws)
{
    char wn[64], sn[64], ins[160];
    snprintf(wn, sizeof wn, "%s_w", out);
    snprintf(sn, sizeof sn, "%s_s", out);
    kn_tensor w = kt_tensor(KN_I8, rank, dims, NULL);
    for (int64_t i = 0; i < w.numel; i++)
        ((int8_t *)w.data)[i] = (int8_t)(frand() * 127.0f);
    cst(g, wn, w);
    int64_t cnt = n ? n : 1;
    kn_tensor s = kt_tensor(KN_F32, n ? 1 : 0, &cnt, NULL);
    for (int64_t i = 0; i < cnt; i++) {
        ((float *)s.data)[i] = (0.6f + 0.4f * frand()) / 127.0f;
        if (ws)
            ws[i] = ((float *)s.data)[i];
    }
    cst(g, sn, s);
    snprintf(ins, sizeof ins, "%s,%s", wn, sn);
    int i = kt_graph_node(g, "DequantizeLinear", ins, out);
    if (n)
        kn_opt_set_attr_int(g, i, "axis", axis, &berr);
}

/* out = DequantizeLinear(int32 bias, scale xs * ws[c]) for n channels (ws NULL: one
 * weight scale w0). */
static void bias(kn_graph *g, const char *out, int64_t n, float xs, const float *ws, float w0)
{
    char bn[64], sn[64], ins[160];
    snprintf(bn, sizeof bn, "%s_b", out);
    snprintf(sn, sizeof sn, "%s_s", out);
    kn_tensor b = kt_tensor(KN_I32, 1, &n, NULL), s = kt_tensor(KN_F32, 1, &n, NULL);
    for (int64_t c = 0; c < n; c++) {
        ((float *)s.data)[c] = xs * (ws ? ws[c] : w0);
        ((int32_t *)b.data)[c] = (int32_t)(frand() * 3000.0f);
    }
    cst(g, bn, b);
    cst(g, sn, s);
    snprintf(ins, sizeof ins, "%s,%s", bn, sn);
    int i = kt_graph_node(g, "DequantizeLinear", ins, out);
    kn_opt_set_attr_int(g, i, "axis", 0, &berr);
}

/* A model with float input "x" of dims and its quantized copy "xd" (scale s, uint8
 * zero point z): the start of every single-input builder. */
static kn_graph *start(kn_model **m, int rank, const int64_t *dims, float s, int z)
{
    *m = kt_model_new(13);
    kn_graph *g = (*m)->graph;
    input(g, "x", rank, dims);
    qdq(g, "x", "xd", s, z);
    return g;
}

/* ---- running and comparing ---- */

typedef kn_model *(*builder_fn)(void);

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}

static int run_model(kn_model *m, kn_tensor *outs)
{
    kn_graph *g = m->graph;
    kn_error err = {0};
    kn_tensor ins[2] = {{0}};
    const kn_tensor *feeds[2];
    uint32_t saved = seed;
    seed = 12345u;
    for (int k = 0; k < g->n_inputs && k < 2; k++) {
        const kn_type *ty = &g->values[g->inputs[k]].type;
        int64_t dims[KN_MAX_RANK];
        for (int d = 0; d < ty->rank; d++)
            dims[d] = ty->dims[d].value;
        kn_tensor_alloc(&ins[k], KN_F32, ty->rank, dims, &err);
        for (int64_t i = 0; i < ins[k].numel; i++)
            ((float *)ins[k].data)[i] = 2.0f * frand();
        feeds[k] = &ins[k];
    }
    seed = saved;
    int rc = kn_model_prepare(m, &err);
    if (!rc)
        rc = kn_exec_graph(g, NULL, g->n_inputs, feeds, g->n_outputs, outs, &err);
    if (rc)
        fprintf(stderr, "  run: %s\n", err.msg);
    kt_release_all(ins, 2);
    return rc;
}

/* Builds the graph twice, optimizes one copy; `op` must appear `want` times after,
 * and the outputs must agree within tol. */
static void check_qdq(builder_fn build, const char *op, int want, double tol)
{
    seed = 7u;
    kn_model *a = build();
    seed = 7u;
    kn_model *b = build();
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(a, &err), KN_OK);
    CHECK_EQ_INT(kn_model_finalize(b, &err), KN_OK);
    int rc = kn_optimize(b, KN_OPT_EXTENDED, NULL, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "  optimize: %s\n", err.msg);
    int got = count_op(b->graph, op);
    CHECK_EQ_INT(got, want);
    if (got != want)
        fprintf(stderr, "  (%s)\n", op);
    kn_tensor oa[2] = {{0}}, ob[2] = {{0}};
    int n_out = a->graph->n_outputs;
    if (run_model(a, oa) == KN_OK && run_model(b, ob) == KN_OK) {
        for (int k = 0; k < n_out; k++) {
            CHECK(kn_same_shape(&oa[k], &ob[k]));
            double worst = 0;
            for (int64_t i = 0; kn_same_shape(&oa[k], &ob[k]) && i < oa[k].numel; i++)
                worst = fmax(worst, fabs(kt_at(&ob[k], i) - kt_at(&oa[k], i)));
            CHECK_NEAR(worst, 0, tol);
        }
    } else {
        CHECK(false);
    }
    kt_release_all(oa, n_out);
    kt_release_all(ob, n_out);
    kn_model_free(a);
    kn_model_free(b);
}

/* ---- Conv ---- */

static const int64_t x4[4] = {1, 5, 6, 6};
static const float y_step = 0.05f;

/* Conv 3x3 (per-channel weights, int32 bias) -> Relu -> Q with zero point zy. */
static kn_model *conv_relu(int zy)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, x4, 0.02f, 128);
    static const int64_t wd[4] = {7, 5, 3, 3}, pads[4] = {1, 1, 1, 1};
    float ws[7];
    weight(g, "wd", 4, wd, 0, 7, ws);
    bias(g, "bd", 7, 0.02f, ws, 0);
    int c = kt_graph_node(g, "Conv", "xd,wd,bd", "c");
    kn_opt_set_attr_ints(g, c, "pads", pads, 4, &berr);
    kt_graph_node(g, "Relu", "c", "r");
    qdq(g, "r", "y", y_step, zy);
    output(g, "y");
    return m;
}

static kn_model *conv_relu_absorbed(void)
{
    return conv_relu(0);
}

static kn_model *conv_relu_kept(void)
{
    return conv_relu(128);
}

/* the Conv output is also a graph output: nothing fuses */
static kn_model *conv_shared(void)
{
    kn_model *m = conv_relu(0);
    output(m->graph, "c");
    return m;
}

/* 1x1 stride 2, one weight scale, a float bias (re-quantized to int32), batch 2 */
static kn_model *conv_pointwise_float_bias(void)
{
    static const int64_t xdims[4] = {2, 6, 5, 7}, wd[4] = {9, 6, 1, 1}, s2[2] = {2, 2}, nine = 9;
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, xdims, 0.02f, 120);
    weight(g, "wd", 4, wd, 0, 0, NULL);
    kn_tensor b = kt_tensor(KN_F32, 1, &nine, NULL);
    for (int i = 0; i < 9; i++)
        ((float *)b.data)[i] = frand();
    cst(g, "b", b);
    int c = kt_graph_node(g, "Conv", "xd,wd,b", "c");
    kn_opt_set_attr_ints(g, c, "strides", s2, 2, &berr);
    qdq(g, "c", "y", y_step, 100);
    output(g, "y");
    return m;
}

/* depthwise 3x3 */
static kn_model *conv_depthwise(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, x4, 0.02f, 128);
    static const int64_t wd[4] = {5, 1, 3, 3}, pads[4] = {1, 1, 1, 1};
    float ws[5];
    weight(g, "wd", 4, wd, 0, 5, ws);
    bias(g, "bd", 5, 0.02f, ws, 0);
    int c = kt_graph_node(g, "Conv", "xd,wd,bd", "c");
    kn_opt_set_attr_ints(g, c, "pads", pads, 4, &berr);
    kn_opt_set_attr_int(g, c, "group", 5, &berr);
    qdq(g, "c", "y", 0.02f, 128);
    output(g, "y");
    return m;
}

static void test_fuse_conv(void)
{
    check_qdq(conv_relu_absorbed, "QLinearConv", 1, y_step * 1.001);
    check_qdq(conv_relu_absorbed, "Relu", 0, y_step * 1.001);
    check_qdq(conv_relu_absorbed, "Transpose", 2, y_step * 1.001);
    /* the Relu is not the Q's clamp: the pattern stays float (the float fusions may
     * still take Conv + Relu) */
    check_qdq(conv_relu_kept, "QLinearConv", 0, y_step * 1.001);
    check_qdq(conv_relu_kept, "QuantizeLinear", 2, y_step * 1.001);
    check_qdq(conv_shared, "QLinearConv", 0, y_step * 1.001);
    check_qdq(conv_pointwise_float_bias, "QLinearConv", 1, y_step * 1.001);
    check_qdq(conv_depthwise, "QLinearConv", 1, 0.02 * 1.001);
    check_qdq(conv_depthwise, "Transpose", 2, 0.02 * 1.001); /* channels-last depthwise too */
}

/* ---- MatMul, Gemm ---- */

static const int64_t x2[2] = {3, 8};

static kn_model *matmul_plain(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 2, x2, 0.02f, 128);
    static const int64_t wd[2] = {8, 5};
    weight(g, "wd", 2, wd, 1, 5, NULL);
    kt_graph_node(g, "MatMul", "xd,wd", "mm");
    qdq(g, "mm", "y", 0.01f, 128);
    output(g, "y");
    return m;
}

/* MatMul + Add(DQ int32 bias) -> Relu -> Q: com.microsoft QGemm */
static kn_model *matmul_bias_relu(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 2, x2, 0.02f, 128);
    static const int64_t wd[2] = {8, 5};
    float ws[5];
    weight(g, "wd", 2, wd, 1, 5, ws);
    bias(g, "bd", 5, 0.02f, ws, 0);
    kt_graph_node(g, "MatMul", "xd,wd", "mm");
    kt_graph_node(g, "Add", "mm,bd", "a");
    kt_graph_node(g, "Relu", "a", "r");
    qdq(g, "r", "y", 0.01f, 0);
    output(g, "y");
    return m;
}

/* Gemm transB = 1 with a bias at a different scale (re-quantized) */
static kn_model *gemm_trans_b(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 2, x2, 0.02f, 128);
    static const int64_t wd[2] = {5, 8};
    float ws[5];
    weight(g, "wd", 2, wd, 0, 5, ws);
    bias(g, "bd", 5, 0.015f, ws, 0);
    int i = kt_graph_node(g, "Gemm", "xd,wd,bd", "gm");
    kn_opt_set_attr_int(g, i, "transB", 1, &berr);
    qdq(g, "gm", "y", 0.01f, 128);
    output(g, "y");
    return m;
}

static void test_fuse_matmul_gemm(void)
{
    check_qdq(matmul_plain, "QLinearMatMul", 1, 0.01 * 1.001);
    check_qdq(matmul_bias_relu, "QGemm", 1, 0.01 * 1.001);
    check_qdq(matmul_bias_relu, "Add", 0, 0.01 * 1.001);
    check_qdq(matmul_bias_relu, "Relu", 0, 0.01 * 1.001);
    check_qdq(gemm_trans_b, "QGemm", 1, 0.01 * 1.001);
}

/* ---- Add, pools, pass-through, requantization ---- */

static kn_model *add_relu(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "a", 4, x4);
    input(g, "b", 4, x4);
    qdq(g, "a", "ad", 0.02f, 128);
    qdq(g, "b", "bd", 0.015f, 110);
    kt_graph_node(g, "Add", "ad,bd", "s");
    kt_graph_node(g, "Relu", "s", "r");
    qdq(g, "r", "y", 0.03f, 0);
    output(g, "y");
    return m;
}

static kn_model *global_pool(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, x4, 0.02f, 128);
    kt_graph_node(g, "GlobalAveragePool", "xd", "p");
    qdq(g, "p", "y", 0.005f, 128);
    output(g, "y");
    return m;
}

/* MaxPool and Flatten between Q/DQ pairs with the same parameters, then Q(DQ(v)) */
static kn_model *maxpool_flatten(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, x4, 0.02f, 128);
    static const int64_t k2[2] = {2, 2};
    int i = kt_graph_node(g, "MaxPool", "xd", "mp");
    kn_opt_set_attr_ints(g, i, "kernel_shape", k2, 2, &berr);
    kn_opt_set_attr_ints(g, i, "strides", k2, 2, &berr);
    qdq(g, "mp", "md", 0.02f, 128);
    kt_graph_node(g, "Flatten", "md", "fl");
    qdq(g, "fl", "fd", 0.02f, 128);
    qdq(g, "fd", "y", 0.02f, 128);
    output(g, "y");
    return m;
}

/* the MaxPool's Q has other parameters: it stays float */
static kn_model *maxpool_other_params(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, x4, 0.02f, 128);
    static const int64_t k2[2] = {2, 2};
    int i = kt_graph_node(g, "MaxPool", "xd", "mp");
    kn_opt_set_attr_ints(g, i, "kernel_shape", k2, 2, &berr);
    qdq(g, "mp", "y", 0.03f, 128);
    output(g, "y");
    return m;
}

static void test_fuse_add_pools(void)
{
    check_qdq(add_relu, "QLinearAdd", 1, 0.03 * 1.001);
    check_qdq(add_relu, "Relu", 0, 0.03 * 1.001);
    check_qdq(global_pool, "QLinearGlobalAveragePool", 1, 0.005 * 1.001);
    check_qdq(maxpool_flatten, "MaxPool", 1, 0);
    check_qdq(maxpool_flatten, "QuantizeLinear", 1, 0);
    check_qdq(maxpool_flatten, "DequantizeLinear", 1, 0);
    check_qdq(maxpool_other_params, "DequantizeLinear", 2, 0);
    check_qdq(maxpool_other_params, "QuantizeLinear", 2, 0);
}

/* ---- a residual block: the activations stay channels-last ---- */

/* conv 3x3 -> conv 1x1, + the first conv's output, Relu, global pool */
static kn_model *residual_block(void)
{
    kn_model *m = NULL;
    kn_graph *g = start(&m, 4, x4, 0.02f, 128);
    static const int64_t w1[4] = {5, 5, 3, 3}, w2[4] = {5, 5, 1, 1}, pads[4] = {1, 1, 1, 1};
    float s1[5], s2[5];
    weight(g, "w1", 4, w1, 0, 5, s1);
    bias(g, "b1", 5, 0.02f, s1, 0);
    int c = kt_graph_node(g, "Conv", "xd,w1,b1", "c1");
    kn_opt_set_attr_ints(g, c, "pads", pads, 4, &berr);
    kt_graph_node(g, "Relu", "c1", "r1");
    qdq(g, "r1", "h", 0.03f, 0);
    weight(g, "w2", 4, w2, 0, 5, s2);
    bias(g, "b2", 5, 0.03f, s2, 0);
    kt_graph_node(g, "Conv", "h,w2,b2", "c2");
    qdq(g, "c2", "hd", 0.02f, 128);
    kt_graph_node(g, "Add", "hd,h", "s");
    kt_graph_node(g, "Relu", "s", "r");
    qdq(g, "r", "rd", 0.04f, 0);
    kt_graph_node(g, "GlobalAveragePool", "rd", "p");
    qdq(g, "p", "y", 0.01f, 0);
    output(g, "y");
    return m;
}

static void test_channels_last_block(void)
{
    check_qdq(residual_block, "QLinearConv", 2, 0.01 * 4.001);
    check_qdq(residual_block, "QLinearAdd", 1, 0.01 * 4.001);
    /* one into channels-last after the input's Q, one out after the pool */
    check_qdq(residual_block, "Transpose", 2, 0.01 * 4.001);
}

TEST_MAIN(TEST_CASE(test_fuse_conv), TEST_CASE(test_fuse_matmul_gemm), TEST_CASE(test_fuse_add_pools),
          TEST_CASE(test_channels_last_block))
