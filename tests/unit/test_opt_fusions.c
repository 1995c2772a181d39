/* test_opt_fusions.c - the extended-level fusion passes (src/opt/fuse_*.c) on small
 * hand-built graphs: each builder makes the unfused pattern; the test optimizes one
 * copy, checks that the fused operator appeared (and the pattern's nodes went), and
 * that its outputs equal the unoptimized copy's on random inputs.  Negative cases
 * check that a pattern whose intermediate is read elsewhere, or whose shapes do not
 * prove the fusion, is left alone. */
#include "test.h"
#include "op_harness.h"

#include "core/cpu.h"
#include "exec/exec.h"
#include "ir/ir.h"
#include "opt/opt.h"
#include "ops/op_util.h"

#include <stdlib.h>

/* ---- graph building ---- */

static kn_error berr;

static int node(kn_graph *g, const char *op, int n_in, const char *const *ins, const char *out)
{
    kn_node *n = kn_graph_add_node(g);
    n->op_type = op;
    n->n_in = n_in;
    n->n_out = 1;
    n->in = kn_arena_calloc(&g->model->arena, (size_t)n_in + 1, sizeof(int));
    n->out = kn_arena_calloc(&g->model->arena, 2, sizeof(int));
    for (int k = 0; k < n_in; k++)
        n->in[k] = ins[k] ? kn_graph_value(g, ins[k]) : -1;
    n->out[0] = kn_graph_value(g, out);
    return g->n_nodes - 1;
}

static int op1(kn_graph *g, const char *op, const char *a, const char *out)
{
    return node(g, op, 1, &a, out);
}

static int op2(kn_graph *g, const char *op, const char *a, const char *b, const char *out)
{
    const char *ins[2] = {a, b};
    return node(g, op, 2, ins, out);
}

static void input(kn_graph *g, const char *name, int rank, const int64_t *dims)
{
    int v = kn_graph_value(g, name);
    kn_value *val = &g->values[v];
    val->has_type = true;
    val->type.kind = KN_TYPE_TENSOR;
    val->type.dtype = KN_F32;
    val->type.rank = rank;
    for (int d = 0; d < rank; d++)
        val->type.dims[d] = (kn_dim){dims[d], NULL};
    kn_graph_add_input(g, v);
}

static void output(kn_graph *g, const char *name)
{
    kn_graph_add_output(g, kn_graph_value(g, name));
}

static uint32_t seed = 99u;

static float frand(void)
{
    kt_lcg32(&seed);
    return (float)((seed >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

/* Initializer `name`: float32 of dims, values vals or (NULL) random. */
static void cst(kn_graph *g, const char *name, int rank, const int64_t *dims, const float *vals)
{
    kn_tensor t = {0};
    kn_tensor_alloc(&t, KN_F32, rank, dims, &berr);
    for (int64_t i = 0; i < t.numel; i++)
        ((float *)t.data)[i] = vals ? vals[i] : frand();
    kn_opt_set_initializer(g, kn_graph_value(g, name), &t, &berr);
    kn_tensor_release(&t);
}

static void scalar(kn_graph *g, const char *name, float v)
{
    cst(g, name, 0, NULL, &v);
}

static void ints(kn_graph *g, const char *name, int n, const int64_t *v)
{
    kn_tensor t = kt_tensor_i64(KN_I64, n, v);
    kn_opt_set_initializer(g, kn_graph_value(g, name), &t, &berr);
    kn_tensor_release(&t);
}

static void attr_i(kn_graph *g, int i, const char *name, int64_t v)
{
    kn_opt_set_attr_int(g, i, name, v, &berr);
}

static void attr_ints(kn_graph *g, int i, const char *name, int n, const int64_t *v)
{
    kn_opt_set_attr_ints(g, i, name, v, n, &berr);
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

/* Runs m's graph on inputs made from `seed_in`; outs receive n_outputs tensors. */
static int run_model(kn_model *m, uint32_t seed_in, kn_tensor *outs)
{
    kn_graph *g = m->graph;
    kn_error err = {0};
    kn_tensor ins[4] = {{0}};
    const kn_tensor *feeds[4];
    uint32_t saved = seed;
    seed = seed_in;
    for (int k = 0; k < g->n_inputs && k < 4; k++) {
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
    for (int k = 0; k < g->n_inputs && k < 4; k++)
        kn_tensor_release(&ins[k]);
    return rc;
}

/* The level check_fusion optimizes at, and whether it leaves out the kiln-only
 * passes (kn_optimize_portable, what `kiln optimize` writes). */
static kn_opt_level fusion_level = KN_OPT_EXTENDED;
static bool fusion_portable;

/* Builds the graph twice, optimizes one copy at fusion_level; checks that `op`
 * appears `want` times afterwards and that every output matches within tol. */
static void check_fusion(builder_fn build, const char *op, int want, double tol)
{
    seed = 99u;
    kn_model *a = build();
    seed = 99u;
    kn_model *b = build();
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(a, &err), KN_OK);
    CHECK_EQ_INT(kn_model_finalize(b, &err), KN_OK);
    kn_opt_report rep;
    int rc = fusion_portable ? kn_optimize_portable(b, fusion_level, &rep, &err)
                             : kn_optimize(b, fusion_level, &rep, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "  optimize: %s\n", err.msg);
    CHECK_EQ_INT(count_op(b->graph, op), want);
    int n_out = a->graph->n_outputs;
    kn_tensor oa[4] = {{0}}, ob[4] = {{0}};
    if (run_model(a, 5u, oa) == KN_OK && run_model(b, 5u, ob) == KN_OK) {
        for (int k = 0; k < n_out; k++) {
            CHECK(kn_same_shape(&oa[k], &ob[k]));
            for (int64_t i = 0; kn_same_shape(&oa[k], &ob[k]) && i < oa[k].numel; i++)
                CHECK_NEAR(kt_at(&ob[k], i), kt_at(&oa[k], i), tol);
        }
    } else {
        CHECK(false);
    }
    kt_release_all(oa, n_out);
    kt_release_all(ob, n_out);
    kn_model_free(a);
    kn_model_free(b);
}

/* ---- GELU ---- */

static const int64_t d34[2] = {3, 4 * 5}, d20[1] = {20};

/* y = GELU(x) the way torch.onnx.export writes it, (x * (1 + e)) * 0.5 with e =
 * erf(x / sqrt 2), or with tanh_form e = tanh(k (x + c x^3)) using Pow(x, 3) */
static void gelu_of_x(kn_graph *g, bool tanh_form)
{
    scalar(g, "one", 1.0f);
    scalar(g, "half", 0.5f);
    if (tanh_form) {
        scalar(g, "three", 3.0f);
        scalar(g, "c", 0.044715f);
        scalar(g, "k", 0.7978845608f);
        op2(g, "Pow", "x", "three", "x3");
        op2(g, "Mul", "c", "x3", "cx3");
        op2(g, "Add", "x", "cx3", "in");
        op2(g, "Mul", "in", "k", "kin");
        op1(g, "Tanh", "kin", "e");
    } else {
        scalar(g, "sqrt2", 1.4142135f);
        op2(g, "Div", "x", "sqrt2", "s");
        op1(g, "Erf", "s", "e");
    }
    op2(g, "Add", "e", "one", "p");
    op2(g, "Mul", "x", "p", "xp");
    op2(g, "Mul", "xp", "half", "y");
}

/* the erf GELU after x = a + bias */
static kn_model *gelu_bias_model(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "a", 2, d34);
    cst(g, "bias", 1, d20, NULL);
    op2(g, "Add", "a", "bias", "x");
    gelu_of_x(g, false);
    output(g, "y");
    return m;
}

/* (x * 0.5) * (1 + erf(x * 0.7071)), x an input */
static kn_model *gelu_half_first_model(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 2, d34);
    scalar(g, "r", 0.70710678f);
    scalar(g, "one", 1.0f);
    scalar(g, "half", 0.5f);
    op2(g, "Mul", "r", "x", "s");
    op1(g, "Erf", "s", "e");
    op2(g, "Add", "one", "e", "p");
    op2(g, "Mul", "x", "half", "h");
    op2(g, "Mul", "h", "p", "y");
    output(g, "y");
    return m;
}

/* the tanh approximation of an input */
static kn_model *fast_gelu_model(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 2, d34);
    gelu_of_x(g, true);
    output(g, "y");
    return m;
}

/* the erf output is also a graph output: nothing may be fused */
static kn_model *gelu_shared_model(void)
{
    kn_model *m = gelu_half_first_model();
    output(m->graph, "e");
    return m;
}

/* SiLU: x * Sigmoid(x) after an (untyped) Add of the input and a constant */
static kn_model *silu_model(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "a", 2, d34);
    cst(g, "bias", 1, d20, NULL);
    op2(g, "Add", "a", "bias", "x");
    op1(g, "Sigmoid", "x", "s");
    op2(g, "Mul", "s", "x", "y");
    output(g, "y");
    return m;
}

/* a squeeze-excitation style Mul(x, Sigmoid(z)) with z != x is not a SiLU */
static kn_model *sigmoid_gate_model(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 2, d34);
    input(g, "z", 2, d34);
    op1(g, "Sigmoid", "z", "s");
    op2(g, "Mul", "x", "s", "y");
    output(g, "y");
    return m;
}

static void test_fuse_gelu(void)
{
    check_fusion(silu_model, "QuickGelu", 1, 1e-6);
    check_fusion(sigmoid_gate_model, "Sigmoid", 1, 0);
    check_fusion(gelu_bias_model, "BiasGelu", 1, 1e-5);
    check_fusion(gelu_half_first_model, "Gelu", 1, 1e-5);
    check_fusion(fast_gelu_model, "FastGelu", 1, 1e-5);
    check_fusion(gelu_shared_model, "Erf", 1, 0);
}

/* ---- LayerNormalization and SkipLayerNormalization ---- */

static const int64_t d3[3] = {2, 3, 7}, d7[1] = {7};

/* the opset-13 decomposition of layer normalization of x */
static void layernorm_chain(kn_graph *g, const char *x, bool affine, const char *y)
{
    static const int64_t last[1] = {-1};
    scalar(g, "two", 2.0f);
    scalar(g, "eps", 1e-5f);
    int r1 = op1(g, "ReduceMean", x, "mean");
    attr_ints(g, r1, "axes", 1, last);
    op2(g, "Sub", x, "mean", "d");
    op2(g, "Pow", "d", "two", "d2");
    int r2 = op1(g, "ReduceMean", "d2", "var");
    attr_ints(g, r2, "axes", 1, last);
    op2(g, "Add", "var", "eps", "ve");
    op1(g, "Sqrt", "ve", "sd");
    op2(g, "Div", "d", "sd", affine ? "n" : y);
    if (affine) {
        cst(g, "gamma", 1, d7, NULL);
        cst(g, "beta", 1, d7, NULL);
        op2(g, "Mul", "n", "gamma", "ng");
        op2(g, "Add", "ng", "beta", y);
    }
}

static kn_model *layernorm_model(void)
{
    kn_model *m = kt_model_new(13);
    input(m->graph, "x", 3, d3);
    layernorm_chain(m->graph, "x", true, "y");
    output(m->graph, "y");
    return m;
}

static kn_model *layernorm_plain_model(void)
{
    kn_model *m = kt_model_new(13);
    input(m->graph, "x", 3, d3);
    layernorm_chain(m->graph, "x", false, "y");
    output(m->graph, "y");
    return m;
}

/* s = a + (b + bias); y = LN(s); s also read by a later Add (output 3 used) */
static kn_model *skip_layernorm_model(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "a", 3, d3);
    input(g, "b", 3, d3);
    cst(g, "bias", 1, d7, NULL);
    op2(g, "Add", "b", "bias", "bb");
    op2(g, "Add", "a", "bb", "s");
    layernorm_chain(g, "s", true, "y");
    op2(g, "Add", "y", "s", "z");
    output(g, "z");
    return m;
}

static void test_fuse_layernorm(void)
{
    check_fusion(layernorm_model, "LayerNormalization", 1, 1e-5);
    check_fusion(layernorm_model, "ReduceMean", 0, 1e-5);
    check_fusion(layernorm_plain_model, "LayerNormalization", 1, 1e-5);
    check_fusion(skip_layernorm_model, "SkipLayerNormalization", 1, 1e-5);
    check_fusion(skip_layernorm_model, "Add", 1, 1e-5);
}

/* ---- Conv / Gemm + activation (only where kiln has the fused kernels) ---- */

static kn_model *conv_residual_model(void)
{
    static const int64_t xd[4] = {1, 3, 6, 5}, wd[4] = {3, 3, 3, 3}, bd[1] = {3};
    static const int64_t pads[4] = {1, 1, 1, 1};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 4, xd);
    cst(g, "w1", 4, wd, NULL);
    cst(g, "b1", 1, bd, NULL);
    cst(g, "w2", 4, wd, NULL);
    const char *c1[3] = {"x", "w1", "b1"}, *c2[2] = {"r1", "w2"};
    attr_ints(g, node(g, "Conv", 3, c1, "c1"), "pads", 4, pads);
    op1(g, "Relu", "c1", "r1");
    attr_ints(g, node(g, "Conv", 2, c2, "c2"), "pads", 4, pads);
    op2(g, "Add", "c2", "x", "s");
    op1(g, "Relu", "s", "y");
    output(g, "y");
    return m;
}

/* MobileNetV2's residual: Conv + Add, no activation after */
static kn_model *conv_add_model(void)
{
    static const int64_t xd[4] = {2, 3, 5, 4}, wd[4] = {3, 3, 3, 3}, pads[4] = {1, 1, 1, 1};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 4, xd);
    cst(g, "w", 4, wd, NULL);
    const char *c[2] = {"x", "w"};
    attr_ints(g, node(g, "Conv", 2, c, "c"), "pads", 4, pads);
    op2(g, "Add", "x", "c", "y");
    output(g, "y");
    return m;
}

static kn_model *gemm_sigmoid_model(void)
{
    static const int64_t xd[2] = {3, 5}, wd[2] = {4, 5}, bd[1] = {4};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 2, xd);
    cst(g, "w", 2, wd, NULL);
    cst(g, "b", 1, bd, NULL);
    const char *ins[3] = {"x", "w", "b"};
    attr_i(g, node(g, "Gemm", 3, ins, "gm"), "transB", 1);
    op1(g, "Sigmoid", "gm", "y");
    output(g, "y");
    return m;
}

static void test_fuse_conv_gemm_activation(void)
{
    bool conv = kn_op_find("com.microsoft", "FusedConv", 1) != NULL;
    bool gemm = kn_op_find("com.microsoft", "FusedGemm", 1) != NULL;
    check_fusion(conv_residual_model, "FusedConv", conv ? 2 : 0, 1e-4);
    check_fusion(conv_residual_model, "Relu", conv ? 0 : 2, 1e-4);
    check_fusion(conv_add_model, "FusedConv", conv ? 1 : 0, 1e-4);
    check_fusion(conv_add_model, "Add", conv ? 0 : 1, 1e-4);
    check_fusion(gemm_sigmoid_model, "FusedGemm", gemm ? 1 : 0, 1e-5);
}

/* ---- Conv + SiLU (level all, kiln only) ---- */

/* EfficientNet's Conv -> x * Sigmoid(x); with `residual` the Conv first gets a
 * residual Add (a FusedConv with Z and no activation before the SiLU); with
 * `pinned` the Conv output is also a graph output and must stay. */
static bool silu_residual, silu_pinned;

static kn_model *conv_silu_model(void)
{
    static const int64_t xd[4] = {2, 4, 7, 5}, wd[4] = {4, 4, 3, 3}, bd[1] = {4};
    static const int64_t pads[4] = {1, 1, 1, 1};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 4, xd);
    cst(g, "w", 4, wd, NULL);
    cst(g, "b", 1, bd, NULL);
    const char *c[3] = {"x", "w", "b"};
    attr_ints(g, node(g, "Conv", 3, c, "c"), "pads", 4, pads);
    const char *pre = "c";
    if (silu_residual) {
        op2(g, "Add", "c", "x", "r");
        pre = "r";
    }
    op1(g, "Sigmoid", pre, "s");
    op2(g, "Mul", pre, "s", "y");
    output(g, "y");
    if (silu_pinned)
        output(g, "c");
    return m;
}

static void test_fuse_conv_silu(void)
{
    if (!kn_op_find("com.microsoft", "FusedConv", 1))
        return;
    fusion_level = KN_OPT_ALL;
    check_fusion(conv_silu_model, "FusedConv", 1, 1e-6);
    check_fusion(conv_silu_model, "QuickGelu", 0, 1e-6);
    silu_residual = true; /* FusedConv(X, W, B, Z) then SiLU */
    check_fusion(conv_silu_model, "FusedConv", 1, 1e-6);
    check_fusion(conv_silu_model, "QuickGelu", 0, 1e-6);
    silu_residual = false;
    silu_pinned = true;
    check_fusion(conv_silu_model, "QuickGelu", 1, 1e-6);
    silu_pinned = false;
    fusion_portable = true; /* what kiln optimize writes keeps ORT's operators */
    check_fusion(conv_silu_model, "QuickGelu", 1, 1e-6);
    check_fusion(conv_silu_model, "FusedConv", 0, 1e-6);
    fusion_portable = false;
    fusion_level = KN_OPT_EXTENDED;
    check_fusion(conv_silu_model, "QuickGelu", 1, 1e-6);
}

/* ---- MatMul + BiasGelu / FastGelu (level all, kiln only) ---- */

/* A transformer's feed-forward up-projection: MatMul of a rank-3 input by a
 * constant [16, 20], + bias, then the erf GELU (or, with mm_gelu_tanh, the tanh
 * form); with mm_gelu_pinned the MatMul output is also a graph output. */
static bool mm_gelu_tanh, mm_gelu_pinned;

static kn_model *matmul_gelu_model(void)
{
    static const int64_t ad[3] = {2, 3, 16}, wd[2] = {16, 20};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "a", 3, ad);
    cst(g, "w", 2, wd, NULL);
    cst(g, "bias", 1, d20, NULL);
    op2(g, "MatMul", "a", "w", "mm");
    op2(g, "Add", "mm", "bias", "x");
    gelu_of_x(g, mm_gelu_tanh);
    output(g, "y");
    if (mm_gelu_pinned)
        output(g, "mm");
    return m;
}

static void test_fuse_matmul_gelu(void)
{
    fusion_level = KN_OPT_ALL;
    check_fusion(matmul_gelu_model, "MatMulBiasGelu", 1, 1e-5);
    check_fusion(matmul_gelu_model, "BiasGelu", 0, 1e-5);
    check_fusion(matmul_gelu_model, "MatMul", 0, 1e-5);
    mm_gelu_tanh = true;
    check_fusion(matmul_gelu_model, "MatMulBiasGelu", 1, 1e-5);
    check_fusion(matmul_gelu_model, "FastGelu", 0, 1e-5);
    mm_gelu_tanh = false;
    mm_gelu_pinned = true; /* the MatMul output is read elsewhere: left alone */
    check_fusion(matmul_gelu_model, "BiasGelu", 1, 1e-5);
    check_fusion(matmul_gelu_model, "MatMulBiasGelu", 0, 1e-5);
    mm_gelu_pinned = false;
    fusion_portable = true; /* what kiln optimize writes keeps ORT's operators */
    check_fusion(matmul_gelu_model, "BiasGelu", 1, 1e-5);
    check_fusion(matmul_gelu_model, "MatMulBiasGelu", 0, 1e-5);
    fusion_portable = false;
    fusion_level = KN_OPT_EXTENDED;
    check_fusion(matmul_gelu_model, "BiasGelu", 1, 1e-5);
}

/* ---- blocked layout (level all, kiln only, AVX-512 CPUs) ---- */

/* A small CNN body: Conv 20->24 3x3 + Relu, MaxPool 3x3 s2, 1x1 Conv + residual
 * Add + Relu (a graph output, so it must come back in NCHW), AveragePool 2x2,
 * Conv 24->40 3x3 s2, GlobalAveragePool.  Channel counts off the block size so
 * the padding channels are exercised. */
static bool body_stem; /* the first conv reads a 3-channel image (a stem) */

static kn_model *cnn_body_model(void)
{
    const int64_t xd[4] = {2, body_stem ? 3 : 20, 11, 9}, w1d[4] = {24, xd[1], 3, 3};
    static const int64_t b1d[1] = {24};
    static const int64_t w2d[4] = {24, 24, 1, 1}, w3d[4] = {40, 24, 3, 3}, b3d[1] = {40};
    static const int64_t p1[4] = {1, 1, 1, 1}, k3[2] = {3, 3}, k2[2] = {2, 2}, s2[2] = {2, 2};
    static const int64_t p0[4] = {0, 1, 1, 0};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 4, xd);
    cst(g, "w1", 4, w1d, NULL);
    cst(g, "b1", 1, b1d, NULL);
    cst(g, "w2", 4, w2d, NULL);
    cst(g, "w3", 4, w3d, NULL);
    cst(g, "b3", 1, b3d, NULL);
    const char *c1[3] = {"x", "w1", "b1"}, *c2[2] = {"p", "w2"}, *c3[3] = {"a", "w3", "b3"};
    attr_ints(g, node(g, "Conv", 3, c1, "c1"), "pads", 4, p1);
    op1(g, "Relu", "c1", "r1");
    int mp = op1(g, "MaxPool", "r1", "p");
    attr_ints(g, mp, "kernel_shape", 2, k3);
    attr_ints(g, mp, "strides", 2, s2);
    attr_ints(g, mp, "pads", 4, p1);
    node(g, "Conv", 2, c2, "c2");
    op2(g, "Add", "c2", "p", "s");
    op1(g, "Relu", "s", "y1");
    int ap = op1(g, "AveragePool", "y1", "a");
    attr_ints(g, ap, "kernel_shape", 2, k2);
    attr_ints(g, ap, "pads", 4, p0);
    int cv = node(g, "Conv", 3, c3, "c3");
    attr_ints(g, cv, "pads", 4, p1);
    attr_ints(g, cv, "strides", 2, s2);
    op1(g, "GlobalAveragePool", "c3", "y2");
    output(g, "y1");
    output(g, "y2");
    return m;
}

static void test_layout_nchwc(void)
{
    bool on = kn_cpu_isa() >= KN_ISA_AVX512 && kn_op_find("kiln.nchwc", "Conv", 1);
    fusion_level = KN_OPT_ALL;
    check_fusion(cnn_body_model, "ReorderInput", on ? 1 : 0, 1e-4);
    check_fusion(cnn_body_model, "ReorderOutput", on ? 2 : 0, 1e-4); /* y1 and y2 */
    check_fusion(cnn_body_model, "GlobalAveragePool", 1, 1e-4);
    body_stem = true; /* the stem reads the image as it is: no ReorderInput */
    check_fusion(cnn_body_model, "ReorderInput", 0, 1e-4);
    check_fusion(cnn_body_model, "ReorderOutput", on ? 2 : 0, 1e-4);
    body_stem = false;
    fusion_portable = true; /* never in what kiln optimize writes */
    check_fusion(cnn_body_model, "ReorderInput", 0, 1e-4);
    fusion_portable = false;
    fusion_level = KN_OPT_EXTENDED;
    check_fusion(cnn_body_model, "ReorderInput", 0, 1e-4);
}

/* ---- Attention (torch nn.MultiheadAttention export with constant shapes) ---- */

enum { AS = 5, AB = 2, AE = 12, AH = 3 };

/* Softmax axis: -1 (the pattern) or 1 (not attention over keys: no fusion). */
static int softmax_axis = -1;

static kn_model *attention_model(void)
{
    static const int64_t xd[3] = {AB, AS, AE}, wd[2] = {AE, 3 * AE}, bd[1] = {3 * AE};
    static const int64_t wod[2] = {AE, AE}, bod[1] = {AE};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    input(g, "x", 3, xd);
    cst(g, "w", 2, wd, NULL);
    cst(g, "b", 1, bd, NULL);
    cst(g, "wo", 2, wod, NULL);
    cst(g, "bo", 1, bod, NULL);
    int64_t st[3] = {0, AE, 2 * AE}, en[3] = {AE, 2 * AE, 3 * AE}, axes[1] = {-1};
    int64_t hq[3] = {AS, AB * AH, AE / AH};
    int64_t ctx[2] = {AS * AB, AE}, out[3] = {AS, AB, AE};
    ints(g, "s0", 1, st), ints(g, "s1", 1, st + 1), ints(g, "s2", 1, st + 2);
    ints(g, "e0", 1, en), ints(g, "e1", 1, en + 1), ints(g, "e2", 1, en + 2);
    ints(g, "axes", 1, axes);
    ints(g, "tq", 3, hq), ints(g, "tc", 2, ctx), ints(g, "to", 3, out);
    scalar(g, "c", 2.0f); /* sqrt(head size 4) */
    static const int64_t p102[3] = {1, 0, 2}, p120[3] = {1, 2, 0};
    attr_ints(g, op1(g, "Transpose", "x", "xt"), "perm", 3, p102);
    op2(g, "MatMul", "xt", "w", "mm");
    op2(g, "Add", "b", "mm", "qkv");
    const char *sq[4] = {"qkv", "s0", "e0", "axes"}, *sk[4] = {"qkv", "s1", "e1", "axes"};
    const char *sv[4] = {"qkv", "s2", "e2", "axes"};
    node(g, "Slice", 4, sq, "q"), node(g, "Slice", 4, sk, "k"), node(g, "Slice", 4, sv, "v");
    op2(g, "Reshape", "q", "tq", "q3"), op2(g, "Reshape", "k", "tq", "k3");
    op2(g, "Reshape", "v", "tq", "v3");
    attr_ints(g, op1(g, "Transpose", "q3", "q4"), "perm", 3, p102);
    attr_ints(g, op1(g, "Transpose", "k3", "kt"), "perm", 3, p120);
    attr_ints(g, op1(g, "Transpose", "v3", "vt"), "perm", 3, p102);
    op2(g, "Div", "q4", "c", "qs");
    op2(g, "MatMul", "qs", "kt", "sc");
    attr_i(g, op1(g, "Softmax", "sc", "p"), "axis", softmax_axis);
    op2(g, "MatMul", "p", "vt", "o");
    attr_ints(g, op1(g, "Transpose", "o", "o2"), "perm", 3, p102);
    op2(g, "Reshape", "o2", "tc", "o3");
    const char *gi[3] = {"o3", "wo", "bo"};
    attr_i(g, node(g, "Gemm", 3, gi, "go"), "transB", 1);
    op2(g, "Reshape", "go", "to", "go3");
    attr_ints(g, op1(g, "Transpose", "go3", "att"), "perm", 3, p102);
    op2(g, "Add", "x", "att", "y");
    output(g, "y");
    return m;
}

static void test_fuse_attention(void)
{
    check_fusion(attention_model, "Attention", 1, 1e-4);
    check_fusion(attention_model, "Softmax", 0, 1e-4);
    softmax_axis = 1;
    check_fusion(attention_model, "Attention", 0, 1e-4);
    softmax_axis = -1;
}

TEST_MAIN(TEST_CASE(test_fuse_gelu), TEST_CASE(test_fuse_layernorm),
          TEST_CASE(test_fuse_conv_gemm_activation), TEST_CASE(test_fuse_conv_silu),
          TEST_CASE(test_fuse_matmul_gelu),
          TEST_CASE(test_layout_nchwc),
          TEST_CASE(test_fuse_attention))
