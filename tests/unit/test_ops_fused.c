/* test_ops_fused.c - the com.microsoft fused operators of src/ops/fused.c against
 * the computation they replace: Gelu/BiasGelu/FastGelu/QuickGelu against the
 * formula in double, SkipLayerNormalization against Add + the standard
 * LayerNormalization, Attention against a plain double-precision reference, on
 * awkward shapes, through the reference path and (Attention) the prepared packed
 * path on a thread pool; bad inputs fail cleanly. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "exec/threadpool.h"

#include <stdlib.h>

#define CM "com.microsoft"

static uint32_t rng_state = 12345u;

static float frand(void)
{
    kt_lcg32(&rng_state);
    return (float)((rng_state >> 8) & 0xffff) / 65536.0f * 4.0f - 2.0f;
}

static kn_tensor rand_f32(int rank, const int64_t *dims)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t.numel; i++)
        ((float *)t.data)[i] = frand();
    return t;
}

static double gelu_erf(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_tanh(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* Runs op (x [, bias]) and compares with f(x + bias) element-wise. */
static void check_gelu_op(const char *op, int rank, const int64_t *dims, bool with_bias,
                          double (*f)(double))
{
    kn_tensor x = rand_f32(rank, dims);
    int64_t cols = dims[rank - 1];
    kn_tensor b = rand_f32(1, &cols);
    kt_node n = kt_node_of(CM, op, 1, 1);
    kt_add_input(&n, &x);
    if (with_bias)
        kt_add_input(&n, &b);
    kn_tensor y = kt_expect_ok(&n);
    CHECK(kt_same_dims(&y, rank, dims));
    for (int64_t i = 0; y.data && i < x.numel; i++) {
        double v = kt_at(&x, i) + (with_bias ? kt_at(&b, i % cols) : 0.0);
        CHECK_NEAR(kt_at(&y, i), f(v), 2e-6 + 2e-6 * fabs(f(v)));
    }
    kn_tensor outs[1] = {y};
    kt_release_all(outs, 1);
    kt_release_all(&x, 1);
    kt_release_all(&b, 1);
}

static void test_gelu_family(void)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {2, 1, 13}, {1, 17, 31}};
    for (int s = 0; s < KT_COUNT(shapes); s++) {
        check_gelu_op("Gelu", 3, shapes[s], false, gelu_erf);
        check_gelu_op("BiasGelu", 3, shapes[s], true, gelu_erf);
        check_gelu_op("FastGelu", 3, shapes[s], false, gelu_tanh);
        check_gelu_op("FastGelu", 3, shapes[s], true, gelu_tanh);
    }
    int64_t d1 = 5;
    check_gelu_op("Gelu", 1, &d1, false, gelu_erf);
}

static void test_quick_gelu(void)
{
    int64_t dims[2] = {3, 11};
    kn_tensor x = rand_f32(2, dims);
    kt_node n = kt_node_of(CM, "QuickGelu", 1, 1);
    kt_add_input(&n, &x);
    kt_add_attr(&n, kt_attr_float("alpha", 1.5f));
    kn_tensor y = kt_expect_ok(&n);
    for (int64_t i = 0; y.data && i < x.numel; i++) {
        double v = kt_at(&x, i);
        CHECK_NEAR(kt_at(&y, i), v / (1.0 + exp(-1.5 * v)), 1e-6);
    }
    kt_release_all(&y, 1);
    kt_release_all(&x, 1);
}

static void test_gelu_bad_inputs(void)
{
    int64_t dims[2] = {2, 3}, bad = 4;
    kn_tensor x = rand_f32(2, dims), b = rand_f32(1, &bad);
    kn_tensor xi = kt_tensor(KN_I32, 2, dims, NULL);
    kt_node n = kt_node_of(CM, "BiasGelu", 1, 1);
    kt_add_input(&n, &x);
    kt_add_input(&n, &b);
    kt_expect_fail(&n, KN_ERR_ARG);
    kt_node g = kt_node_of(CM, "Gelu", 1, 1);
    kt_add_input(&g, &xi);
    kt_expect_fail(&g, KN_ERR_UNSUPPORTED);
    kn_tensor all[3] = {x, b, xi};
    kt_release_all(all, 3);
}

/* x + skip (+ bias) through Add, then LayerNormalization (axis -1). */
static kn_tensor unfused_skip_ln(const kn_tensor *x, const kn_tensor *skip, const kn_tensor *gamma,
                                 const kn_tensor *beta, const kn_tensor *bias, float eps)
{
    kn_tensor sum[1] = {{0}}, tmp[1] = {{0}}, y[3] = {{0}};
    const kn_tensor *ins[2] = {x, skip};
    kt_run_op_replace("Add", 17, 2, ins, 0, NULL, 1, sum);
    if (bias) {
        const kn_tensor *ins2[2] = {&sum[0], bias};
        kt_run_op_replace("Add", 17, 2, ins2, 0, NULL, 1, tmp);
        kt_release_all(sum, 1);
        sum[0] = tmp[0];
    }
    kn_attr a = kt_attr_float("epsilon", eps);
    const kn_tensor *ln_in[3] = {&sum[0], gamma, beta};
    kt_run_op_replace("LayerNormalization", 17, beta ? 3 : 2, ln_in, 1, &a, 1, y);
    kt_release_all(sum, 1);
    return y[0];
}

/* SkipLayerNormalization of x (dims) and a skip of sdims (broadcasting to dims);
 * swap: the broadcast operand comes first (the kernel takes the larger as input). */
static void check_skip_ln_bc(int rank, const int64_t *dims, int skip_rank, const int64_t *sdims,
                             bool beta_on, bool bias_on, bool swap)
{
    int64_t h = dims[rank - 1];
    kn_tensor x = rand_f32(rank, dims);
    kn_tensor skip = rand_f32(skip_rank, sdims);
    kn_tensor gamma = rand_f32(1, &h), beta = rand_f32(1, &h), bias = rand_f32(1, &h);
    kt_node n = kt_node_of(CM, "SkipLayerNormalization", 1, 4);
    kt_add_input(&n, swap ? &skip : &x);
    kt_add_input(&n, swap ? &x : &skip);
    kt_add_input(&n, &gamma);
    kt_add_input(&n, beta_on ? &beta : NULL);
    kt_add_input(&n, bias_on ? &bias : NULL);
    kt_add_attr(&n, kt_attr_float("epsilon", 1e-5f));
    kn_tensor outs[4] = {{0}};
    CHECK_EQ_INT(kt_rerun_node(&n, outs), KN_OK);
    kn_tensor want = unfused_skip_ln(&x, &skip, &gamma, beta_on ? &beta : NULL,
                                     bias_on ? &bias : NULL, 1e-5f);
    kt_check_f32_shaped(&outs[0], rank, dims, want.data, 2e-5);
    int64_t stat_dims[KN_MAX_RANK];
    memcpy(stat_dims, dims, sizeof(int64_t) * (size_t)rank);
    stat_dims[rank - 1] = 1;
    kt_check_dims(&outs[1], rank, stat_dims);
    kt_check_dims(&outs[2], rank, stat_dims);
    for (int64_t i = 0; outs[3].data && i < x.numel; i++) {
        double s = kt_at(&x, i) + kt_at(&skip, i % skip.numel) + (bias_on ? kt_at(&bias, i % h) : 0);
        CHECK_NEAR(kt_at(&outs[3], i), s, 1e-6);
    }
    kt_release_all(outs, 4);
    kn_tensor all[6] = {x, skip, gamma, beta, bias, want};
    kt_release_all(all, 6);
}

static void check_skip_ln(int rank, const int64_t *dims, int skip_rank, bool beta_on, bool bias_on)
{
    check_skip_ln_bc(rank, dims, skip_rank, dims + rank - skip_rank, beta_on, bias_on, false);
}

static void test_skip_layernorm(void)
{
    static const int64_t d3[][3] = {{1, 1, 1}, {2, 3, 7}, {3, 5, 33}, {1, 13, 64}};
    for (int s = 0; s < KT_COUNT(d3); s++)
        for (int v = 0; v < 4; v++)
            check_skip_ln(3, d3[s], 3, v & 1, v & 2);
    int64_t d2[2] = {5, 19};
    check_skip_ln(2, d2, 2, true, true);
    int64_t bc[3] = {3, 4, 9};
    check_skip_ln(3, bc, 2, true, false); /* skip [S, H] broadcast over batch */
    int64_t ones[3] = {1, 1, 9}, one_s[3] = {1, 4, 9};
    check_skip_ln_bc(3, bc, 3, ones, true, true, false);  /* [1, 1, H] */
    check_skip_ln_bc(3, bc, 3, one_s, false, true, true); /* the smaller operand first */
}

static void test_skip_layernorm_bad(void)
{
    int64_t d[3] = {2, 3, 4}, ds[3] = {2, 3, 5}, h = 4, h5 = 5;
    kn_tensor x = rand_f32(3, d), skip = rand_f32(3, ds), gamma = rand_f32(1, &h);
    kn_tensor g5 = rand_f32(1, &h5);
    kt_node n = kt_node_of(CM, "SkipLayerNormalization", 1, 1);
    kt_add_input(&n, &x);
    kt_add_input(&n, &skip);
    kt_add_input(&n, &gamma);
    kt_expect_fail(&n, KN_ERR_ARG);
    n.in[1] = &x;
    n.in[2] = &g5;
    kt_expect_fail(&n, KN_ERR_ARG);
    kn_tensor all[4] = {x, skip, gamma, g5};
    kt_release_all(all, 4);
}

/* ---- Attention ---- */

typedef struct attn_case {
    int64_t batch, seq, d_in, dq, dv, heads;
    int mask_kind;      /* 0 none, 1: [B] ends, 2: [B, S], 3: [B, S, S], 4: [2B] */
    bool causal, with_bias;
    float scale;        /* 0: default */
} attn_case;

static int32_t mask_at(const attn_case *ac, const int32_t *mask, int64_t b, int64_t i, int64_t j)
{
    switch (ac->mask_kind) {
    case 1: return j < mask[b];
    case 2: return mask[b * ac->seq + j] > 0;
    case 3: return mask[(b * ac->seq + i) * ac->seq + j] > 0;
    case 4: return j < mask[b] && j >= mask[ac->batch + b];
    default: return 1;
    }
}

/* Plain double-precision attention with ORT's additive masking. */
static void attention_ref(const attn_case *ac, const float *x, const float *w, const float *bias,
                          const int32_t *mask, double *out)
{
    int64_t B = ac->batch, S = ac->seq, D = ac->d_in, W = 2 * ac->dq + ac->dv, H = ac->heads;
    int64_t hq = ac->dq / H, hv = ac->dv / H;
    double *qkv = calloc((size_t)(B * S * W), sizeof(double)), *p = calloc((size_t)S, sizeof(double));
    for (int64_t r = 0; r < B * S; r++)
        for (int64_t n = 0; n < W; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < D; k++)
                s += (double)x[r * D + k] * w[k * W + n];
            qkv[r * W + n] = s;
        }
    double scale = ac->scale != 0.0f ? ac->scale : 1.0 / sqrt((double)hq);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < S; i++) {
                double mx = -1e300, sum = 0.0;
                for (int64_t j = 0; j < S; j++) {
                    double s = 0.0;
                    for (int64_t d = 0; d < hq; d++)
                        s += qkv[(b * S + i) * W + h * hq + d] * qkv[(b * S + j) * W + ac->dq + h * hq + d];
                    s *= scale;
                    if (ac->mask_kind && !mask_at(ac, mask, b, i, j))
                        s += -10000.0;
                    if (ac->causal && j > i)
                        s += -10000.0;
                    p[j] = s;
                    mx = s > mx ? s : mx;
                }
                for (int64_t j = 0; j < S; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int64_t d = 0; d < hv; d++) {
                    double o = 0.0;
                    for (int64_t j = 0; j < S; j++)
                        o += p[j] / sum * qkv[(b * S + j) * W + 2 * ac->dq + h * hv + d];
                    out[(b * S + i) * ac->dv + h * hv + d] = o;
                }
            }
    free(qkv);
    free(p);
}

static kn_tensor make_mask(const attn_case *ac)
{
    int64_t B = ac->batch, S = ac->seq;
    int64_t dims[3] = {B, S, S};
    int rank = ac->mask_kind == 1 || ac->mask_kind == 4 ? 1 : ac->mask_kind == 2 ? 2 : 3;
    if (ac->mask_kind == 4)
        dims[0] = 2 * B;
    kn_tensor m = kt_tensor(KN_I32, rank, dims, NULL);
    int32_t *v = m.data;
    for (int64_t i = 0; i < m.numel; i++) {
        if (ac->mask_kind == 1 || ac->mask_kind == 4)
            v[i] = i < B ? (int32_t)(1 + (i * 7) % S) : (int32_t)((i - B) % 2);
        else
            v[i] = (int32_t)((i * 5 + 1) % 4 != 0 || i % S == 0); /* key 0 kept: no row
                * is fully masked, where float32 rounding of score - 10000 shows */
    }
    return m;
}

/* Runs Attention as a graph with constant weights (prepared: packed SGEMM) on a pool
 * of `threads` (0: no prepare, no pool = the reference path). */
static int run_attention_graph(const attn_case *ac, kn_tensor *x, kn_tensor *w, kn_tensor *b,
                               kn_tensor *mask, int threads, kn_tensor *out)
{
    kn_error err = {0};
    kn_model *m = kn_model_new();
    kn_opset_import *imp = kn_arena_calloc(&m->arena, 2, sizeof *imp);
    imp[0] = (kn_opset_import){"", 17};
    imp[1] = (kn_opset_import){CM, 1};
    m->opsets = imp;
    m->n_opsets = 2;
    kn_graph *g = m->graph = kn_graph_new(m, NULL);
    int vx = kn_graph_value(g, "x"), vw = kn_graph_value(g, "w"), vb = kn_graph_value(g, "b");
    int vm = kn_graph_value(g, "mask"), vy = kn_graph_value(g, "y");
    kn_graph_add_input(g, vx);
    if (mask)
        kn_graph_add_input(g, vm);
    kn_graph_add_output(g, vy);
    kn_tensor w_rec = *w, b_rec = *b; /* the compile step may drop the weights' data */
    g->values[vw].init = &w_rec;
    g->values[vb].init = &b_rec;
    kn_node *nd = kn_graph_add_node(g);
    int ins[4] = {vx, vw, ac->with_bias ? vb : -1, mask ? vm : -1};
    nd->name = "attn";
    nd->op_type = "Attention";
    nd->domain = CM;
    nd->n_in = 4;
    nd->in = kn_arena_alloc(&m->arena, sizeof ins);
    memcpy(nd->in, ins, sizeof ins);
    nd->n_out = 1;
    nd->out = kn_arena_alloc(&m->arena, sizeof(int));
    nd->out[0] = vy;
    kn_attr attrs[3] = {kt_attr_int("num_heads", ac->heads), kt_attr_int("unidirectional", ac->causal),
                        kt_attr_float("scale", ac->scale)};
    nd->attrs = attrs;
    nd->n_attr = 3;
    int64_t qkv[3] = {ac->dq, ac->dq, ac->dv};
    kn_attr sizes = kt_attr_ints("qkv_hidden_sizes", 3, qkv);
    if (ac->dv != ac->dq) {
        nd->attrs = kn_arena_alloc(&m->arena, sizeof attrs + sizeof sizes);
        memcpy(nd->attrs, attrs, sizeof attrs);
        nd->attrs[3] = sizes;
        nd->n_attr = 4;
    }
    int rc = kn_model_finalize(m, &err);
    if (!rc && threads)
        rc = kn_model_prepare(m, &err);
    if (!rc && threads)
        CHECK(g->nodes[0].state != NULL);
    kn_threadpool *pool = threads ? kn_threadpool_create(threads, &err) : NULL;
    kn_exec_env env = {pool, NULL};
    const kn_tensor *feeds[2] = {x, mask};
    if (!rc)
        rc = kn_exec_graph_env(g, &env, mask ? 2 : 1, feeds, 1, out, &err);
    if (rc)
        fprintf(stderr, "  attention: %s\n", err.msg);
    kn_threadpool_free(pool);
    kn_model_free(m);
    return rc;
}

static void check_attention(const attn_case *ac)
{
    int64_t xd[3] = {ac->batch, ac->seq, ac->d_in}, wd[2] = {ac->d_in, 2 * ac->dq + ac->dv};
    kn_tensor x = rand_f32(3, xd), w = rand_f32(2, wd), b = rand_f32(1, wd + 1);
    for (int64_t i = 0; i < w.numel; i++)
        ((float *)w.data)[i] *= 0.3f;
    kn_tensor mask = ac->mask_kind ? make_mask(ac) : (kn_tensor){0};
    double *want = calloc((size_t)(ac->batch * ac->seq * ac->dv), sizeof(double));
    attention_ref(ac, x.data, w.data, ac->with_bias ? b.data : NULL, mask.data, want);
    for (int threads = 0; threads <= 3; threads += 3) {
        kn_tensor out[1] = {{0}};
        int rc = run_attention_graph(ac, &x, &w, &b, ac->mask_kind ? &mask : NULL, threads, out);
        CHECK_EQ_INT(rc, KN_OK);
        int64_t od[3] = {ac->batch, ac->seq, ac->dv};
        if (!rc && kt_same_dims(&out[0], 3, od))
            for (int64_t i = 0; i < out[0].numel; i++)
                CHECK_NEAR(kt_at(&out[0], i), want[i], 2e-4 + 2e-4 * fabs(want[i]));
        else
            CHECK(false);
        kt_release_all(out, 1);
    }
    free(want);
    kn_tensor all[4] = {x, w, b, mask};
    kt_release_all(all, ac->mask_kind ? 4 : 3);
}

static void test_attention(void)
{
    static const attn_case cases[] = {
        {1, 1, 3, 3, 3, 1, 0, false, true, 0.0f},
        {2, 5, 7, 6, 6, 2, 0, false, true, 0.0f},
        {2, 7, 9, 12, 12, 3, 2, false, true, 0.0f},
        {3, 4, 5, 4, 8, 2, 1, true, false, 0.5f},
        {2, 13, 16, 16, 16, 4, 3, false, true, 0.0f},
        {2, 6, 8, 8, 8, 2, 4, true, true, 0.0f},
        {1, 33, 24, 24, 24, 3, 2, true, true, 0.0f},
        {2, 131, 8, 8, 8, 2, 2, true, true, 0.0f}, /* query rows past one block */
    };
    for (int i = 0; i < KT_COUNT(cases); i++)
        check_attention(&cases[i]);
}

static void test_attention_bad(void)
{
    int64_t xd[3] = {1, 2, 4}, wd[2] = {4, 12}, wbad[2] = {5, 12};
    kn_tensor x = rand_f32(3, xd), w = rand_f32(2, wd), wb = rand_f32(2, wbad);
    kt_node n = kt_node_of(CM, "Attention", 1, 1);
    kt_add_input(&n, &x);
    kt_add_input(&n, &wb);
    kt_add_attr(&n, kt_attr_int("num_heads", 2));
    kt_expect_fail(&n, KN_ERR_ARG);          /* weights rows != hidden */
    n.in[1] = &w;
    n.attrs[0] = kt_attr_int("num_heads", 5);
    kt_expect_fail(&n, KN_ERR_ARG);          /* 4 not divisible by 5 heads */
    n.attrs[0] = kt_attr_int("num_heads", 0);
    kt_expect_any_fail(&n);                  /* num_heads missing */
    n.attrs[0] = kt_attr_int("num_heads", 2);
    int64_t md[1] = {3};
    kn_tensor mbad = kt_tensor(KN_I32, 1, md, NULL);
    kt_add_input(&n, NULL);
    kt_add_input(&n, &mbad);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);  /* mask of a shape ORT does not define */
    kt_add_input(&n, &x);
    n.in[3] = NULL;
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);  /* past */
    kn_tensor all[4] = {x, w, wb, mbad};
    kt_release_all(all, 4);
}

TEST_MAIN(TEST_CASE(test_gelu_family), TEST_CASE(test_quick_gelu), TEST_CASE(test_gelu_bad_inputs),
          TEST_CASE(test_skip_layernorm), TEST_CASE(test_skip_layernorm_bad),
          TEST_CASE(test_attention), TEST_CASE(test_attention_bad))
