/* test_ops_matmul.c - the float32 MatMul / Gemm / FusedGemm / FusedMatMul /
 * MatMulBiasGelu paths on the packed SGEMM against a double-precision reference
 * written here: B fed at run time (packed per call) and B as an initializer (packed
 * once by the prepare hook, batched B included), run inline and on a 3-thread pool
 * (bit-identical), on odd shapes, batch broadcasting, the flattened 2-D-B case, many
 * batches (one per thread), Gemm's transA/transB/alpha/beta with every shape of C,
 * the fused activations; plus the load-time refusals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "exec/exec.h"
#include "exec/threadpool.h"
#include "op_harness.h"
#include "test.h"

static kn_threadpool *g_pool;

static uint32_t g_rng = 777u;
static float rndf(void)
{
    kt_lcg32(&g_rng);
    return (float)(g_rng >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* An owned float32 tensor of random values. */
static kn_tensor rnd_tensor(int rank, const int64_t *dims)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t.numel; i++) ((float *)t.data)[i] = rndf();
    return t;
}

/* ---- running one node with some inputs as initializers ---- */

typedef struct mnode {
    const char *domain, *op;
    int n_in;
    const kn_tensor *in[3];
    unsigned const_mask; /* bit i: input i is an initializer */
    int n_attr;
    kn_attr attrs[8];
} mnode;

static kn_graph *build_graph(kn_model *m, const mnode *n, const kn_tensor **feeds, int *n_feeds)
{
    m->opsets = kn_arena_calloc(&m->arena, 3, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = 17;
    m->opsets[1].domain = "com.microsoft";
    m->opsets[1].version = 1;
    m->opsets[2].domain = "kiln";
    m->opsets[2].version = 1;
    m->n_opsets = 3;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    kn_node *nd = kn_graph_add_node(g);
    nd->name = "node";
    nd->op_type = n->op;
    nd->domain = n->domain ? n->domain : "";
    nd->n_in = n->n_in;
    nd->in = kn_arena_calloc(&m->arena, 4, sizeof(int));
    *n_feeds = 0;
    for (int i = 0; i < n->n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        nd->in[i] = kn_graph_value(g, kn_arena_strdup(&m->arena, name));
        if (n->const_mask & (1u << i)) {
            /* the model owns its initializers: prepare may give back the pages
               of one it has packed, so it gets a copy of the test's data */
            kn_tensor *t = kn_arena_calloc(&m->arena, 1, sizeof *t);
            *t = *n->in[i];
            t->owns_data = false;
            t->data = kn_arena_alloc(&m->arena, t->nbytes ? t->nbytes : 1);
            if (t->nbytes)
                memcpy(t->data, n->in[i]->data, t->nbytes);
            g->values[nd->in[i]].init = t;
        } else {
            kn_graph_add_input(g, nd->in[i]);
            feeds[(*n_feeds)++] = n->in[i];
        }
    }
    nd->n_out = 1;
    nd->out = kn_arena_calloc(&m->arena, 2, sizeof(int));
    nd->out[0] = kn_graph_value(g, "out0");
    kn_graph_add_output(g, nd->out[0]);
    nd->n_attr = n->n_attr;
    nd->attrs = kn_arena_calloc(&m->arena, 9, sizeof(kn_attr));
    memcpy(nd->attrs, n->attrs, sizeof(kn_attr) * (size_t)n->n_attr);
    return g;
}

/* Load (finalize + prepare) and run on pool; returns the status. */
static int run_mnode(const mnode *n, kn_threadpool *pool, kn_tensor *out, kn_error *err)
{
    kn_model *m = kn_model_new();
    const kn_tensor *feeds[3];
    int n_feeds = 0;
    kn_graph *g = build_graph(m, n, feeds, &n_feeds);
    kn_scratch scratch = {0};
    kn_exec_env env = {.pool = pool, .scratch = &scratch};
    int rc = kn_model_finalize(m, err);
    if (!rc) rc = kn_model_prepare(m, err);
    if (!rc) rc = kn_exec_graph_env(g, &env, n_feeds, feeds, 1, out, err);
    kn_scratch_free(&scratch);
    kn_model_free(m);
    return rc;
}

/* ---- the reference ---- */

typedef struct ref_spec {
    int ta, tb;
    double alpha, beta;
    const char *act;
    float act_alpha;
} ref_spec;

static double ref_act(const ref_spec *s, double x)
{
    if (!s->act) return x;
    if (!strcmp(s->act, "Relu")) return x < 0 ? 0 : x;
    if (!strcmp(s->act, "LeakyRelu")) return x < 0 ? s->act_alpha * x : x;
    if (!strcmp(s->act, "Sigmoid")) return 1.0 / (1.0 + exp(-x));
    if (!strcmp(s->act, "Tanh")) return tanh(x);
    if (!strcmp(s->act, "Gelu")) return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
    if (!strcmp(s->act, "GeluTanh"))
        return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    return NAN;
}

/* Matrix (M x N) = alpha * op(A) op(B) (+ beta * C broadcast), act. */
static void ref_gemm(const ref_spec *s, int64_t M, int64_t N, int64_t K, const float *A,
                     const float *B, const kn_tensor *C, float *Y)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)(s->ta ? A[k * M + i] : A[i * K + k]) *
                       (double)(s->tb ? B[j * K + k] : B[k * N + j]);
            acc *= s->alpha;
            if (C) {
                int64_t ci = 0, cj = 0, r = C->rank;
                if (r == 2) ci = C->dims[0] == 1 ? 0 : i, cj = C->dims[1] == 1 ? 0 : j;
                if (r == 1) cj = C->dims[0] == 1 ? 0 : j;
                int64_t ld = r == 2 ? C->dims[1] : 0;
                acc += s->beta * ((const float *)C->data)[ci * ld + cj];
            }
            Y[i * N + j] = (float)ref_act(s, acc);
        }
}

/* Check y against the reference, then rerun with the other pool / const mask
 * combinations and require bit-identical outputs. */
static void check_all_ways(mnode *n, const float *want, int rank, const int64_t *dims,
                           double tol, unsigned const_masks)
{
    kn_tensor first = {0};
    for (unsigned cm = 0; cm < 4; cm++) {
        if (!(const_masks & (1u << cm))) continue;
        n->const_mask = cm == 0 ? 0 : cm == 1 ? 2u : cm == 2 ? 6u : 4u;
        for (int usepool = 0; usepool < 2; usepool++) {
            kn_tensor y = {0};
            kn_error err = {0};
            int rc = run_mnode(n, usepool ? g_pool : NULL, &y, &err);
            CHECK_EQ_INT(rc, KN_OK);
            if (rc) {
                fprintf(stderr, "  %s: %s\n", n->op, err.msg);
                continue;
            }
            kt_check_f32_shaped(&y, rank, dims, want, tol);
            if (!first.data && y.numel) {
                first = y;
                continue;
            }
            if (first.data)
                CHECK(memcmp(first.data, y.data, (size_t)y.numel * sizeof(float)) == 0);
            kn_tensor_release(&y);
        }
    }
    kn_tensor_release(&first);
}

/* ---- MatMul ---- */

/* A [.., M, K] x B [.., K, N] with batch broadcasting, against the reference. */
static void matmul_case(int ra, const int64_t *da, int rb, const int64_t *db, int ro,
                        const int64_t *dout)
{
    kn_tensor a = rnd_tensor(ra, da), b = rnd_tensor(rb, db);
    int64_t M = ra >= 2 ? da[ra - 2] : 1, K = da[ra - 1], N = rb >= 2 ? db[rb - 1] : 1;
    int64_t nout = 1;
    for (int i = 0; i < ro; i++) nout *= dout[i];
    float *want = malloc((size_t)(nout ? nout : 1) * sizeof(float));
    /* batch index -> operand matrices by right-aligned broadcasting */
    int nb = ro - (ra >= 2) - (rb >= 2);
    int64_t batch = nout / (M * N > 0 ? M * N : 1);
    ref_spec s = {0, 0, 1.0, 0.0, NULL, 0};
    for (int64_t bi = 0; bi < batch && M * N > 0; bi++) {
        int64_t rem = bi, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t idx = rem % dout[d];
            rem /= dout[d];
            int xa = d - (nb - (ra - 2)), xb = d - (nb - (rb - 2));
            if (xa >= 0 && da[xa] > 1) ia += idx * sa;
            if (xb >= 0 && db[xb] > 1) ib += idx * sb;
            if (xa >= 0) sa *= da[xa];
            if (xb >= 0) sb *= db[xb];
        }
        ref_gemm(&s, M, N, K, (float *)a.data + ia * M * K, (float *)b.data + ib * K * N, NULL,
                 want + bi * M * N);
    }
    mnode n = {NULL, "MatMul", 2, {&a, &b, NULL}, 0, 0, {{0}}};
    check_all_ways(&n, want, ro, dout, 1e-5 * (double)(K + 4), rb >= 2 ? 3u : 1u);
    free(want);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
}

static void test_matmul_shapes(void)
{
    int64_t a1[] = {37, 53}, b1[] = {53, 29}, o1[] = {37, 29};
    matmul_case(2, a1, 2, b1, 2, o1);
    int64_t a2[] = {2, 3, 17, 19}, b2[] = {19, 23}, o2[] = {2, 3, 17, 23}; /* flattened */
    matmul_case(4, a2, 2, b2, 4, o2);
    int64_t a3[] = {3, 1, 5, 7}, b3[] = {1, 4, 7, 9}, o3[] = {3, 4, 5, 9}; /* broadcast */
    matmul_case(4, a3, 4, b3, 4, o3);
    int64_t a4[] = {33}, b4[] = {33, 65}, o4[] = {65}; /* 1-D A */
    matmul_case(1, a4, 2, b4, 1, o4);
    int64_t a5[] = {9, 13, 11}, b5[] = {9, 11, 70}, o5[] = {9, 13, 70}; /* one batch per thread */
    matmul_case(3, a5, 3, b5, 3, o5);
    int64_t a6[] = {130, 300}, b6[] = {300, 200}, o6[] = {130, 200}; /* split over the pool */
    matmul_case(2, a6, 2, b6, 2, o6);
    int64_t a7[] = {4, 0, 5}, b7[] = {5, 6}, o7[] = {4, 0, 6}; /* empty */
    matmul_case(3, a7, 2, b7, 3, o7);
    int64_t a8[] = {3, 0}, b8[] = {0, 4}, o8[] = {3, 4}; /* K = 0 */
    matmul_case(2, a8, 2, b8, 2, o8);
    int64_t a9[] = {6, 7}, b9[] = {7}, o9[] = {6}; /* 1-D B: reference path */
    matmul_case(2, a9, 1, b9, 1, o9);
}

/* ---- Gemm and FusedGemm ---- */

static void gemm_case(const char *op, int64_t M, int64_t N, int64_t K, ref_spec s, int c_rank,
                      const int64_t *c_dims)
{
    int64_t da[2] = {s.ta ? K : M, s.ta ? M : K}, db[2] = {s.tb ? N : K, s.tb ? K : N};
    kn_tensor a = rnd_tensor(2, da), b = rnd_tensor(2, db), c = {0};
    if (c_rank >= 0) c = rnd_tensor(c_rank, c_dims);
    float *want = malloc((size_t)(M * N > 0 ? M * N : 1) * sizeof(float));
    ref_gemm(&s, M, N, K, a.data, b.data, c_rank >= 0 ? &c : NULL, want);
    mnode n = {strcmp(op, "Gemm") ? "com.microsoft" : NULL, op, c_rank >= 0 ? 3 : 2,
               {&a, &b, c_rank >= 0 ? &c : NULL}, 0, 0, {{0}}};
    n.attrs[n.n_attr++] = kt_attr_int("transA", s.ta);
    n.attrs[n.n_attr++] = kt_attr_int("transB", s.tb);
    n.attrs[n.n_attr++] = kt_attr_float("alpha", (float)s.alpha);
    n.attrs[n.n_attr++] = kt_attr_float("beta", (float)s.beta);
    if (s.act) n.attrs[n.n_attr++] = kt_attr_str("activation", s.act);
    if (s.act && !strcmp(s.act, "LeakyRelu"))
        n.attrs[n.n_attr++] = kt_attr_float("activation_alpha", s.act_alpha);
    int64_t dy[2] = {M, N};
    check_all_ways(&n, want, 2, dy, 1e-5 * (double)(K + 4), c_rank >= 0 ? 15u : 3u);
    free(want);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    kn_tensor_release(&c);
}

static void test_gemm_c_shapes(void)
{
    const int64_t M = 23, N = 41, K = 19;
    int64_t row[] = {N}, row2[] = {1, N}, col[] = {M, 1}, full[] = {M, N}, one[] = {1};
    for (int t = 0; t < 4; t++) {
        ref_spec s = {t & 1, t >> 1, 1.0, 1.0, NULL, 0};
        gemm_case("Gemm", M, N, K, s, -1, NULL);
        s.alpha = 0.5, s.beta = 2.0;
        gemm_case("Gemm", M, N, K, s, 1, row);
        gemm_case("Gemm", M, N, K, s, 2, row2);
        gemm_case("Gemm", M, N, K, s, 2, col);
        gemm_case("Gemm", M, N, K, s, 2, full);
        gemm_case("Gemm", M, N, K, s, 1, one);
        s.beta = 1.0;
        gemm_case("Gemm", M, N, K, s, 2, col);
        gemm_case("Gemm", M, N, K, s, 2, full);
    }
    ref_spec s = {0, 1, 1.0, 1.0, NULL, 0};
    int64_t bias[] = {300};
    gemm_case("Gemm", 150, 300, 200, s, 1, bias); /* split over the pool */
    int64_t row7[] = {7}, full57[] = {5, 7};
    s.beta = 0.5;
    gemm_case("Gemm", 5, 7, 0, s, 1, row7); /* K = 0: Y = beta * C */
    gemm_case("Gemm", 5, 7, 0, s, 2, full57);
}

static void test_fused_gemm(void)
{
    static const char *acts[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh"};
    int64_t row[] = {37};
    for (int i = 0; i < 4; i++) {
        ref_spec s = {i & 1, 1, 0.75, 1.0, acts[i], 0.125f};
        gemm_case("FusedGemm", 29, 37, 31, s, 1, row);
        gemm_case("FusedGemm", 29, 37, 31, s, -1, NULL);
    }
}

/* ---- FusedMatMul ---- */

static void test_fused_matmul(void)
{
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        const int64_t B = 3, M = 13, K = 17, N = 35;
        int64_t da[3] = {B, ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N};
        kn_tensor a = rnd_tensor(3, da), b = rnd_tensor(2, db);
        float *want = malloc((size_t)(B * M * N) * sizeof(float));
        ref_spec s = {ta, tb, 0.5, 0.0, NULL, 0};
        for (int64_t bi = 0; bi < B; bi++)
            ref_gemm(&s, M, N, K, (float *)a.data + bi * M * K, b.data, NULL, want + bi * M * N);
        mnode n = {"com.microsoft", "FusedMatMul", 2, {&a, &b, NULL}, 0, 0, {{0}}};
        n.attrs[n.n_attr++] = kt_attr_int("transA", ta);
        n.attrs[n.n_attr++] = kt_attr_int("transB", tb);
        n.attrs[n.n_attr++] = kt_attr_float("alpha", 0.5f);
        int64_t dy[3] = {B, M, N};
        check_all_ways(&n, want, 3, dy, 1e-5 * (double)(K + 4), 3u);
        free(want);
        kn_tensor_release(&a);
        kn_tensor_release(&b);
    }
}

/* ---- kiln MatMulBiasGelu ---- */

static void test_matmul_bias_gelu(void)
{
    for (int tanh_form = 0; tanh_form < 2; tanh_form++) {
        const int64_t B = 3, M = 13, K = 17, N = 35;
        int64_t da[3] = {B, M, K}, db[2] = {K, N}, dc[1] = {N};
        kn_tensor a = rnd_tensor(3, da), b = rnd_tensor(2, db), bias = rnd_tensor(1, dc);
        float *want = malloc((size_t)(B * M * N) * sizeof(float));
        ref_spec s = {0, 0, 1.0, 1.0, tanh_form ? "GeluTanh" : "Gelu", 0};
        for (int64_t bi = 0; bi < B; bi++)
            ref_gemm(&s, M, N, K, (float *)a.data + bi * M * K, b.data, &bias, want + bi * M * N);
        mnode n = {"kiln", "MatMulBiasGelu", 3, {&a, &b, &bias}, 0, 0, {{0}}};
        n.attrs[n.n_attr++] = kt_attr_str("approximate", tanh_form ? "tanh" : "none");
        int64_t dy[3] = {B, M, N};
        check_all_ways(&n, want, 3, dy, 1e-5 * (double)(K + 4), 15u);
        free(want);
        kn_tensor_release(&a);
        kn_tensor_release(&b);
        kn_tensor_release(&bias);
    }
}

/* Malformed MatMulBiasGelu nodes: a clear error, no crash. */
static void test_matmul_bias_gelu_refusals(void)
{
    int64_t da[2] = {4, 5}, db[2] = {5, 6}, dc[1] = {7}, dv[1] = {5};
    kn_tensor a = rnd_tensor(2, da), b = rnd_tensor(2, db), c = rnd_tensor(1, dc);
    kn_tensor v = rnd_tensor(1, dv), y = {0};
    kn_error err = {0};
    mnode wrong_bias = {"kiln", "MatMulBiasGelu", 3, {&a, &b, &c}, 2u, 0, {{0}}}; /* [7] vs N 6 */
    CHECK_EQ_INT(run_mnode(&wrong_bias, NULL, &y, &err), KN_ERR_ARG);
    CHECK(strstr(err.msg, "bias") != NULL);
    mnode vector_a = {"kiln", "MatMulBiasGelu", 3, {&v, &b, &c}, 2u, 0, {{0}}}; /* A rank 1 */
    CHECK_EQ_INT(run_mnode(&vector_a, NULL, &y, &err), KN_ERR_ARG);
    mnode two_inputs = {"kiln", "MatMulBiasGelu", 2, {&a, &b, NULL}, 2u, 0, {{0}}};
    CHECK(run_mnode(&two_inputs, NULL, &y, &err) != KN_OK);
    int64_t dn[1] = {6};
    kn_tensor bias = rnd_tensor(1, dn);
    mnode bad_attr = {"kiln", "MatMulBiasGelu", 3, {&a, &b, &bias}, 2u, 1, {{0}}};
    bad_attr.attrs[0] = kt_attr_str("approximate", "sigmoid");
    CHECK(run_mnode(&bad_attr, NULL, &y, &err) != KN_OK);
    CHECK(strstr(err.msg, "approximate") != NULL);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    kn_tensor_release(&c);
    kn_tensor_release(&v);
    kn_tensor_release(&bias);
}

static void test_refusals(void)
{
    int64_t d[2] = {2, 2};
    kn_tensor a = rnd_tensor(2, d), b = rnd_tensor(2, d);
    kn_tensor y = {0};
    kn_error err = {0};
    mnode n = {"com.microsoft", "FusedMatMul", 2, {&a, &b, NULL}, 0, 1, {{0}}};
    n.attrs[0] = kt_attr_int("transBatchA", 1);
    CHECK_EQ_INT(run_mnode(&n, NULL, &y, &err), KN_ERR_UNSUPPORTED);
    mnode g = {"com.microsoft", "FusedGemm", 2, {&a, &b, NULL}, 0, 1, {{0}}};
    g.attrs[0] = kt_attr_str("activation", "Bogus");
    CHECK_EQ_INT(run_mnode(&g, NULL, &y, &err), KN_ERR_UNSUPPORTED);
    int64_t d3[2] = {3, 2};
    kn_tensor c = rnd_tensor(2, d3);
    mnode bad = {NULL, "MatMul", 2, {&c, &c, NULL}, 2u, 0, {{0}}}; /* [3,2] x [3,2] */
    CHECK_EQ_INT(run_mnode(&bad, g_pool, &y, &err), KN_ERR_ARG);
    mnode badg = {NULL, "Gemm", 3, {&a, &b, &c}, 2u, 0, {{0}}}; /* C [3,2] vs [2,2] */
    CHECK_EQ_INT(run_mnode(&badg, NULL, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    kn_tensor_release(&c);
}

static void test_pool_start(void)
{
    kn_error err;
    g_pool = kn_threadpool_create(3, &err);
    CHECK(g_pool != NULL);
}

static void test_pool_stop(void) { kn_threadpool_free(g_pool); }

TEST_MAIN(TEST_CASE(test_pool_start), TEST_CASE(test_matmul_shapes),
          TEST_CASE(test_gemm_c_shapes), TEST_CASE(test_fused_gemm),
          TEST_CASE(test_fused_matmul), TEST_CASE(test_matmul_bias_gelu),
          TEST_CASE(test_matmul_bias_gelu_refusals), TEST_CASE(test_refusals),
          TEST_CASE(test_pool_stop))
