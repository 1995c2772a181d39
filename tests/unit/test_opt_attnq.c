/* test_opt_attnq.c - attention fusion behind a quantized QKV projection: the
 * com.microsoft MultiHeadAttention kernel (separate Q, K, V) against a plain
 * double-precision reference on awkward shapes, with and without a 2-thread pool,
 * and its refusals; fuse_attention on tiny_bert quantized in-process by
 * kn_quantize_model (int4 and dynamic int8): node counts after optimization and
 * the fused graph's output against the unfused graph's. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "exec/threadpool.h"
#include "formats/npy.h"
#include "formats/onnx.h"
#include "ops/op_util.h"
#include "opt/opt.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng = 777u;
static float frnd(float amp)
{
    kt_lcg32(&rng);
    return ((float)((rng >> 8) % 20001) / 10000.0f - 1.0f) * amp;
}

static kn_tensor random_f32(int64_t b, int64_t s, int64_t e, float amp)
{
    int64_t dims[3] = {b, s, e};
    kn_tensor t = kt_tensor(KN_F32, 3, dims, NULL);
    float *d = t.data;
    for (int64_t i = 0; i < t.numel; i++)
        d[i] = frnd(amp);
    return t;
}

/* softmax(scale q k^T (+ causal mask)) v per head, in double. */
static void mha_reference(const kn_tensor *q, const kn_tensor *k, const kn_tensor *v, int64_t heads,
                          double scale, bool causal, float *out)
{
    int64_t B = q->dims[0], S = q->dims[1], E = q->dims[2], Ev = v->dims[2];
    int64_t hq = E / heads, hv = Ev / heads;
    const float *Q = q->data, *K = k->data, *V = v->data;
    double *p = malloc(sizeof(double) * (size_t)S);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < S; i++) {
                double mx = -INFINITY, sum = 0.0;
                for (int64_t t = 0; t < S; t++) {
                    double d = 0.0;
                    for (int64_t c = 0; c < hq; c++)
                        d += (double)Q[(b * S + i) * E + h * hq + c] * K[(b * S + t) * E + h * hq + c];
                    p[t] = d * scale + (causal && t > i ? -10000.0 : 0.0);
                    mx = fmax(mx, p[t]);
                }
                for (int64_t t = 0; t < S; t++)
                    sum += (p[t] = exp(p[t] - mx));
                for (int64_t c = 0; c < hv; c++) {
                    double o = 0.0;
                    for (int64_t t = 0; t < S; t++)
                        o += p[t] / sum * V[(b * S + t) * Ev + h * hv + c];
                    out[(b * S + i) * Ev + h * hv + c] = (float)o;
                }
            }
    free(p);
}

static kt_node mha_node(const kn_tensor *q, const kn_tensor *k, const kn_tensor *v, int64_t heads)
{
    kt_node n = kt_node_of("com.microsoft", "MultiHeadAttention", 1, 1);
    kt_add_input(&n, q);
    kt_add_input(&n, k);
    kt_add_input(&n, v);
    kt_add_attr(&n, kt_attr_int("num_heads", heads));
    return n;
}

/* One shape: the node (through the harness, single thread) and the kernel on a
 * 2-thread pool via a one-node graph both match the reference. */
static void check_mha_shape(int64_t B, int64_t S, int64_t E, int64_t Ev, int64_t heads, float scale,
                            bool causal)
{
    kn_tensor q = random_f32(B, S, E, 1.5f), k = random_f32(B, S, E, 1.5f), v = random_f32(B, S, Ev, 1.0f);
    kt_node n = mha_node(&q, &k, &v, heads);
    if (scale != 0.0f)
        kt_add_attr(&n, kt_attr_float("scale", scale));
    if (causal)
        kt_add_attr(&n, kt_attr_int("unidirectional", 1));
    float *want = malloc(sizeof(float) * (size_t)(B * S * Ev + 1));
    mha_reference(&q, &k, &v, heads, scale != 0.0f ? scale : 1.0 / sqrt((double)(E / heads)), causal,
                  want);
    int64_t od[3] = {B, S, Ev};
    kn_tensor y = kt_expect_ok(&n);
    kt_check_f32_shaped(&y, 3, od, want, 1e-4);
    kn_tensor_release(&y);
    free(want);
    kt_release_all((kn_tensor[]){q, k, v}, 3);
}

static void test_mha_kernel(void)
{
    check_mha_shape(1, 1, 4, 4, 1, 0.0f, false);
    check_mha_shape(2, 5, 12, 12, 3, 0.0f, false);
    check_mha_shape(3, 7, 14, 21, 7, 0.3f, false);  /* V wider than Q/K, odd head sizes */
    check_mha_shape(1, 13, 8, 8, 2, 0.0f, true);    /* unidirectional */
    check_mha_shape(2, 131, 16, 16, 2, 0.0f, false); /* more rows than one query block */
    check_mha_shape(1, 0, 8, 8, 2, 0.0f, false);     /* empty sequence */
}

/* A model importing com.microsoft, one MultiHeadAttention node q, k, v -> y. */
static kn_model *mha_model(int64_t heads, const int64_t *dims)
{
    kn_model *m = kt_model_new(17);
    kn_opset_import *o = kn_arena_calloc(&m->arena, 2, sizeof *o);
    o[0] = m->opsets[0];
    o[1].domain = "com.microsoft";
    o[1].version = 1;
    m->opsets = o;
    m->n_opsets = 2;
    kn_graph *g = m->graph;
    static const char *const names[3] = {"q", "k", "v"};
    for (int k = 0; k < 3; k++) {
        kt_graph_type(g, names[k], KN_F32, 3, dims);
        kn_graph_add_input(g, kn_graph_value(g, names[k]));
    }
    int i = kt_graph_node(g, "MultiHeadAttention", "q,k,v", "y");
    g->nodes[i].domain = "com.microsoft";
    kn_error err = {0};
    CHECK_EQ_INT(kn_opt_set_attr_int(g, i, "num_heads", heads, &err), KN_OK);
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    return m;
}

/* The same graph run on a 2-thread pool gives the single-thread bytes (heads are
 * split between threads, no sum is). */
static void test_mha_threads(void)
{
    int64_t d[3] = {3, 37, 40};
    kn_model *m = mha_model(5, d);
    kn_error err = {0};
    kn_tensor q = random_f32(3, 37, 40, 2.0f), k = random_f32(3, 37, 40, 2.0f), v = random_f32(3, 37, 40, 1.0f);
    const kn_tensor *feeds[3] = {&q, &k, &v};
    kn_tensor y1 = {0}, y2 = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    CHECK(pool != NULL);
    kn_exec_env env = {.pool = pool};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph(m->graph, NULL, 3, feeds, 1, &y1, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph_env(m->graph, &env, 3, feeds, 1, &y2, &err), KN_OK);
    if (err.code)
        fprintf(stderr, "  run: %s\n", err.msg);
    if (kn_same_shape(&y1, &y2) && y1.numel == 3 * 37 * 40)
        CHECK(!memcmp(y1.data, y2.data, sizeof(float) * (size_t)y1.numel));
    else
        CHECK(false);
    kn_threadpool_free(pool);
    kt_release_all((kn_tensor[]){q, k, v, y1, y2}, 5);
    kn_model_free(m);
}

static void test_mha_refusals(void)
{
    kn_tensor q = random_f32(2, 4, 6, 1.0f), k5 = random_f32(2, 5, 6, 1.0f), k = random_f32(2, 4, 6, 1.0f);
    kt_node n = mha_node(&q, &k5, &k, 2); /* key length differs from the query's */
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    n = mha_node(&q, &k, &k, 4); /* 4 heads do not divide 6 */
    kt_expect_fail(&n, KN_ERR_ARG);
    int64_t bd[1] = {18};
    kn_tensor bias = kt_tensor(KN_F32, 1, bd, NULL);
    n = mha_node(&q, &k, &k, 2);
    kt_add_input(&n, &bias);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    n = kt_node_of("com.microsoft", "MultiHeadAttention", 1, 1); /* packed QKV form */
    kt_add_input(&n, &q);
    kt_add_attr(&n, kt_attr_int("num_heads", 2));
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    int64_t d2[2] = {4, 6};
    kn_tensor flat = kt_tensor(KN_F32, 2, d2, NULL);
    n = mha_node(&flat, &flat, &flat, 2);
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    kt_release_all((kn_tensor[]){q, k5, k, bias, flat}, 5);
}

/* ---- tiny_bert quantized, fused vs unfused ---- */

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}

static kn_model *tiny_bert_quantized(kn_qmode mode)
{
    kn_model *m = NULL;
    kn_error err = {0};
    if (kn_onnx_load_file(KILN_SHARED_DIR "/models/tiny_bert.onnx", &m, &err))
        return NULL;
    kn_quant_opts o;
    kn_quant_opts_init(&o);
    o.mode = mode;
    kn_quant_report rep;
    CHECK_EQ_INT(kn_quantize_model(m, &o, &rep, &err), KN_OK);
    return m;
}

/* ids [2, S]: the recorded first row, then a shifted copy of it. */
static kn_tensor two_rows(void)
{
    kn_error err = {0};
    kn_tensor ids = {0};
    CHECK_EQ_INT(kn_npy_read_file(KILN_SHARED_DIR "/models/tiny_bert.in.input_ids.npy", &ids, &err),
                 KN_OK);
    int64_t seq = ids.rank > 0 ? ids.dims[ids.rank - 1] : 0, dims[2] = {2, seq};
    kn_tensor two = kt_tensor(KN_I64, 2, dims, NULL);
    int64_t *d = two.data;
    for (int64_t i = 0; i < seq; i++) {
        d[i] = kt_at_i64(&ids, i);
        d[seq + i] = kt_at_i64(&ids, (i + 3) % seq);
    }
    kn_tensor_release(&ids);
    return two;
}

static int run_model(kn_model *m, const kn_tensor *ids, kn_tensor *out)
{
    kn_error err = {0};
    const kn_tensor *feeds[1] = {ids};
    int rc = kn_model_prepare(m, &err);
    if (!rc)
        rc = kn_exec_graph(m->graph, NULL, 1, feeds, 1, out, &err);
    if (rc)
        fprintf(stderr, "  tiny_bert: %s\n", err.msg);
    return rc;
}

static void check_tiny_bert(kn_qmode mode)
{
    kn_model *fused = tiny_bert_quantized(mode), *plain = tiny_bert_quantized(mode);
    CHECK(fused && plain);
    if (!fused || !plain) {
        kn_model_free(fused), kn_model_free(plain);
        return;
    }
    kn_error err = {0};
    kn_opt_report rep;
    int softmax = count_op(plain->graph, "Softmax");
    CHECK(softmax > 0);
    CHECK_EQ_INT(kn_optimize(fused, KN_OPT_EXTENDED, &rep, &err), KN_OK);
    CHECK_EQ_INT(count_op(fused->graph, "MultiHeadAttention"), softmax);
    CHECK_EQ_INT(count_op(fused->graph, "Softmax"), 0);
    CHECK_EQ_INT(count_op(fused->graph, "Attention"), 0);
    CHECK_EQ_INT(count_op(fused->graph, "MatMul"), 0); /* Q K^T and P V are gone */
    kn_tensor ids = two_rows(), yf = {0}, yp = {0};
    CHECK_EQ_INT(run_model(fused, &ids, &yf), KN_OK);
    CHECK_EQ_INT(run_model(plain, &ids, &yp), KN_OK);
    if (kn_same_shape(&yf, &yp) && yf.numel > 0) {
        double amax = 0.0;
        for (int64_t i = 0; i < yp.numel; i++)
            amax = fmax(amax, fabs(kt_at(&yp, i)));
        /* int4: float reassociation only; dynamic: it may move an activation across
         * a rounding boundary of the 8-bit quantizer */
        double tol = (mode == KN_QMODE_INT4 ? 1e-4 : 0.02) * fmax(amax, 1.0);
        for (int64_t i = 0; i < yp.numel; i++)
            CHECK_NEAR(kt_at(&yf, i), kt_at(&yp, i), tol);
    } else {
        CHECK(false);
    }
    kt_release_all((kn_tensor[]){ids, yf, yp}, 3);
    kn_model_free(fused);
    kn_model_free(plain);
}

static void test_tiny_bert_int4(void)
{
    check_tiny_bert(KN_QMODE_INT4);
}

static void test_tiny_bert_dynamic(void)
{
    check_tiny_bert(KN_QMODE_DYNAMIC);
}

TEST_MAIN(TEST_CASE(test_mha_kernel), TEST_CASE(test_mha_threads), TEST_CASE(test_mha_refusals),
          TEST_CASE(test_tiny_bert_int4), TEST_CASE(test_tiny_bert_dynamic))
