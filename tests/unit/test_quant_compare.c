/* test_quant_compare.c - the error figures of kiln compare (src/quant/compare.c) on
 * vectors with known answers: identical, opposite, orthogonal, zero, NaN/Inf,
 * streaming equals one shot, the worst-first order, and argmax ties; then
 * kn_compare and the --auto-exclude ranking on two small hand-built models. */
#include "test.h"

#include "formats/onnx.h"
#include "op_harness.h"
#include "quant/quant.h"

#include <stdlib.h>
#include <unistd.h>

static kn_err_stats stats_of(const float *a, const float *b, size_t n)
{
    kn_err_stats s = {0};
    kn_err_stats_add(&s, a, b, n);
    return s;
}

static void test_identical(void)
{
    float a[5] = {0.1f, -3.0f, 7.25f, 1e-6f, 123456.f};
    kn_err_stats s = stats_of(a, a, 5);
    CHECK(kn_err_stats_cosine(&s) == 1.0);
    CHECK(kn_err_stats_rel(&s) == 0.0);
    CHECK(s.max_abs == 0.0);
    CHECK(kn_err_stats_mean_abs(&s) == 0.0);
    CHECK_EQ_INT(s.count, 5);
    float z[3] = {0, 0, 0};
    s = stats_of(z, z, 3);
    CHECK(kn_err_stats_cosine(&s) == 1.0); /* both zero: identical */
}

static void test_opposite_orthogonal_scaled(void)
{
    float a[4] = {1, -2, 3, 0.5f}, neg[4] = {-1, 2, -3, -0.5f}, twice[4] = {2, -4, 6, 1};
    kn_err_stats s = stats_of(a, neg, 4);
    CHECK_NEAR(kn_err_stats_cosine(&s), -1.0, 1e-12);
    CHECK_NEAR(kn_err_stats_rel(&s), 2.0, 1e-12);
    CHECK_NEAR(s.max_abs, 6.0, 0);
    CHECK_NEAR(kn_err_stats_mean_abs(&s), (2 + 4 + 6 + 1) / 4.0, 1e-12);
    s = stats_of(a, twice, 4);
    CHECK_NEAR(kn_err_stats_cosine(&s), 1.0, 1e-12);
    CHECK_NEAR(kn_err_stats_rel(&s), 1.0, 1e-12);
    float x[2] = {1, 0}, y[2] = {0, 1}, z[2] = {0, 0};
    s = stats_of(x, y, 2);
    CHECK_NEAR(kn_err_stats_cosine(&s), 0.0, 1e-12);
    s = stats_of(x, z, 2);
    CHECK(kn_err_stats_cosine(&s) == 0.0); /* one side zero */
    s = stats_of(z, x, 2);
    CHECK(isinf(kn_err_stats_rel(&s)));
}

static void test_nonfinite(void)
{
    float a[5] = {NAN, INFINITY, -INFINITY, 1.0f, 2.0f};
    float b[5] = {NAN, INFINITY, INFINITY, NAN, 2.0f};
    kn_err_stats s = stats_of(a, b, 5);
    CHECK_EQ_INT(s.matched_nonfinite, 2); /* NaN/NaN, +Inf/+Inf */
    CHECK_EQ_INT(s.nonfinite, 2);         /* -Inf/+Inf, 1/NaN */
    CHECK_EQ_INT(s.count, 1);
    CHECK(kn_err_stats_cosine(&s) == 1.0);
    CHECK(!isnan(s.max_abs) && s.max_abs == 0.0);
    kn_err_stats empty = stats_of(a, b, 1);
    CHECK(isnan(kn_err_stats_cosine(&empty))); /* nothing finite compared */
    /* a NaN disagreement ranks worse than any finite error */
    float c[2] = {1, 2}, d[2] = {-1, -2};
    kn_err_stats bad = stats_of(c, d, 2);
    CHECK(kn_err_stats_cmp_worse(&s, &bad) < 0);
    CHECK(kn_err_stats_cmp_worse(&bad, &s) > 0);
}

static void test_streaming_equals_one_shot(void)
{
    float a[7], b[7];
    for (int i = 0; i < 7; i++) {
        a[i] = (float)(i * i) - 10.f;
        b[i] = a[i] + (float)(i % 3) * 0.25f;
    }
    kn_err_stats whole = stats_of(a, b, 7), parts = {0}, tail = stats_of(a + 3, b + 3, 4);
    kn_err_stats_add(&parts, a, b, 3);
    kn_err_stats_merge(&parts, &tail);
    CHECK_NEAR(kn_err_stats_cosine(&parts), kn_err_stats_cosine(&whole), 1e-12);
    CHECK_NEAR(kn_err_stats_rel(&parts), kn_err_stats_rel(&whole), 1e-12);
    CHECK_NEAR(parts.max_abs, 0.5, 0);
    CHECK_EQ_INT(parts.count, 7);
}

static void test_worse_order(void)
{
    float a[3] = {1, 2, 3}, small[3] = {1, 2, 3.1f}, big[3] = {3, 2, 1};
    kn_err_stats s_same = stats_of(a, a, 3), s_small = stats_of(a, small, 3), s_big = stats_of(a, big, 3);
    CHECK(kn_err_stats_cmp_worse(&s_big, &s_small) < 0);
    CHECK(kn_err_stats_cmp_worse(&s_small, &s_same) < 0);
    CHECK(kn_err_stats_cmp_worse(&s_same, &s_big) > 0);
    CHECK(kn_err_stats_cmp_worse(&s_same, &s_same) == 0);
    /* same direction, different scale: cosine ties at 1, the relative error decides */
    float twice[3] = {2, 4, 6}, more[3] = {1.5f, 3, 4.5f};
    kn_err_stats s2 = stats_of(a, twice, 3), s15 = stats_of(a, more, 3);
    CHECK(kn_err_stats_cmp_worse(&s2, &s15) < 0);
}

static void test_argmax(void)
{
    float v[5] = {1, 3, 3, -2, 0};
    CHECK_EQ_INT(kn_argmax_f32(v, 5), 1); /* tie: the first */
    float w[4] = {NAN, -1, NAN, -0.5f};
    CHECK_EQ_INT(kn_argmax_f32(w, 4), 3);
    float all_nan[2] = {NAN, NAN};
    CHECK_EQ_INT(kn_argmax_f32(all_nan, 2), -1);
    CHECK_EQ_INT(kn_argmax_f32(v, 0), -1);
    float inf[3] = {INFINITY, 5, INFINITY};
    CHECK_EQ_INT(kn_argmax_f32(inf, 3), 0);
}

/* ---- models: x[2,4] -> MatMul(w1) -> h -> Relu -> r -> MatMul(w2) -> y[2,3] ---- */

static const float W1[16] = {0.5f, -1, 0.25f, 2, 1, 0.75f, -0.5f, 0.25f, -2, 0.5f, 1, 0.75f, 0.25f, -0.5f, 1, -1};
static const float W2[12] = {1, -1, 0.5f, 0.25f, 2, -0.75f, -0.5f, 1, 1, 0.75f, -0.25f, 2};

static void name_node(kn_graph *g, int i, const char *name)
{
    g->nodes[i].name = name;
    g->nodes[i].domain = "";
}

/* A weight, as a float initializer or (dq) as int8 -> DequantizeLinear with scale
 * 1/4 (exact: the weights are multiples of 1/4), noise steps added. */
static void add_weight(kn_graph *g, const char *name, const float *w, int rows, int cols, bool dq, float noise)
{
    int64_t dims[2] = {rows, cols};
    if (!dq) {
        kn_tensor t = kt_tensor(KN_F32, 2, dims, w);
        kt_graph_const(g, name, &t);
        kn_tensor_release(&t);
        return;
    }
    int8_t q[16];
    for (int i = 0; i < rows * cols; i++)
        q[i] = (int8_t)lrintf(w[i] * 4 + ((i % 3) - 1) * noise);
    char qn[32], sn[32];
    snprintf(qn, sizeof qn, "%s_q", name);
    snprintf(sn, sizeof sn, "%s_scale", name);
    kn_tensor tq = kt_tensor(KN_I8, 2, dims, q);
    float scale = 0.25f;
    kn_tensor ts = kt_tensor(KN_F32, 0, NULL, &scale);
    kt_graph_const(g, qn, &tq);
    kt_graph_const(g, sn, &ts);
    char ins[80];
    snprintf(ins, sizeof ins, "%s,%s", qn, sn);
    int k = kt_graph_node(g, "DequantizeLinear", ins, name);
    name_node(g, k, name);
    kn_tensor_release(&tq);
    kn_tensor_release(&ts);
}

/* Write the two-layer model to path; dq: weights through DequantizeLinear, with
 * noise (in quantization steps) added to the first. */
static bool write_model(const char *path, bool dq, float noise)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    add_weight(g, "w1", W1, 4, 4, dq, noise);
    add_weight(g, "w2", W2, 4, 3, dq, 0);
    name_node(g, kt_graph_node(g, "MatMul", "x,w1", "h"), "mm1");
    name_node(g, kt_graph_node(g, "Relu", "h", "r"), "relu");
    name_node(g, kt_graph_node(g, "MatMul", "r,w2", "y"), "mm2");
    int64_t xd[2] = {2, 4}, yd[2] = {2, 3};
    kt_graph_type(g, "x", KN_F32, 2, xd);
    kt_graph_type(g, "y", KN_F32, 2, yd);
    kn_graph_add_input(g, kn_graph_find(g, "x"));
    kn_graph_add_output(g, kn_graph_find(g, "y"));
    kn_error err = {0};
    kn_onnx_write_options o;
    kn_onnx_write_options_init(&o);
    bool ok = kn_model_finalize(m, &err) == KN_OK && kn_onnx_write_file(m, path, &o, &err) == KN_OK;
    if (!ok)
        fprintf(stderr, "write_model: %s\n", err.msg);
    kn_model_free(m);
    return ok;
}

typedef struct model_files {
    char dir[64], a[96], b[96], noisy[96];
} model_files;

static bool make_models(model_files *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/kiln_compare_XXXXXX");
    if (!mkdtemp(f->dir))
        return false;
    snprintf(f->a, sizeof f->a, "%s/a.onnx", f->dir);
    snprintf(f->b, sizeof f->b, "%s/b.onnx", f->dir);
    snprintf(f->noisy, sizeof f->noisy, "%s/noisy.onnx", f->dir);
    return write_model(f->a, false, 0) && write_model(f->b, true, 0) && write_model(f->noisy, true, 1.0f);
}

static void remove_models(const model_files *f)
{
    unlink(f->a);
    unlink(f->b);
    unlink(f->noisy);
    rmdir(f->dir);
}

static int run_batches(kn_compare *c, int n)
{
    kn_error err = {0};
    int rc = KN_OK;
    for (int b = 0; b < n && !rc; b++) {
        float x[8];
        for (int i = 0; i < 8; i++)
            x[i] = (float)((i * 7 + b * 3) % 11) / 5.0f - 1.0f;
        int64_t dims[2] = {2, 4};
        kn_tensor t = kt_view(KN_F32, 2, dims, x);
        const kn_tensor *ins[1] = {&t};
        rc = kn_compare_batch(c, 1, ins, NULL, 0, &err);
        if (rc)
            fprintf(stderr, "compare: %s\n", err.msg);
    }
    return rc;
}

static void test_compare_same_and_exact(void)
{
    model_files f;
    CHECK(make_models(&f));
    kn_compare_opts o = {.layers = true, .threads = 1};
    kn_compare *c = NULL;
    kn_error err = {0};
    /* B's weights are exactly representable: everything matches A */
    CHECK_EQ_INT(kn_compare_open(f.a, f.b, &o, &c, &err), KN_OK);
    if (c) {
        CHECK_EQ_INT(run_batches(c, 3), KN_OK);
        const kn_compare_report *r = kn_compare_report_get(c);
        CHECK_EQ_INT(r->batches, 3);
        CHECK_EQ_INT(r->n_outputs, 1);
        CHECK(r->outputs[0].classifier);
        CHECK_EQ_INT(r->outputs[0].rows, 6);
        CHECK_EQ_INT(r->outputs[0].agree, 6);
        CHECK(r->outputs[0].err.max_abs == 0.0);
        CHECK(kn_err_stats_cosine(&r->outputs[0].err) == 1.0);
        CHECK_EQ_INT(r->n_layers, 3); /* h, r, y (w1, w2 are initializers in A) */
        for (size_t i = 0; i < r->n_layers; i++) {
            CHECK(r->layers[i].err.max_abs == 0.0);
            CHECK(kn_err_stats_cosine(&r->layers[i].err) == 1.0);
        }
        char **names = NULL;
        size_t n = 9;
        CHECK_EQ_INT(kn_compare_sensitive_nodes(c, 5, &names, &n, &err), KN_OK);
        CHECK_EQ_INT(n, 2); /* mm1 and mm2 read DequantizeLinear; Relu does not */
        kn_names_free(names, n);
    }
    kn_compare_close(c);
    remove_models(&f);
}

static void test_auto_exclude_picks_noisy_layer(void)
{
    model_files f;
    CHECK(make_models(&f));
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)((i * 5) % 9) / 4.0f - 1.0f;
    int64_t dims[2] = {2, 4};
    kn_tensor t0 = kt_view(KN_F32, 2, dims, x), t1 = kt_view(KN_F32, 2, dims, x + 8);
    const kn_tensor *batches[2] = {&t0, &t1};
    char **names = NULL;
    size_t n = 0;
    kn_error err = {0};
    CHECK_EQ_INT(kn_quant_auto_exclude(f.a, f.noisy, batches, 2, 1, 1, &names, &n, &err), KN_OK);
    CHECK_EQ_INT(n, 1);
    if (n == 1)
        CHECK(!strcmp(names[0], "mm1")); /* mm2's output error flows in from mm1 */
    kn_names_free(names, n);
    /* the full comparison shows the error in the output too */
    kn_compare *c = NULL;
    kn_compare_opts o = {.layers = true};
    CHECK_EQ_INT(kn_compare_open(f.a, f.noisy, &o, &c, &err), KN_OK);
    if (c && run_batches(c, 2) == KN_OK) {
        const kn_compare_report *r = kn_compare_report_get(c);
        CHECK(r->outputs[0].err.max_abs > 0);
        CHECK(kn_err_stats_cosine(&r->outputs[0].err) < 1.0);
        CHECK(r->n_layers == 3 && kn_err_stats_cmp_worse(&r->layers[0].err, &r->layers[2].err) <= 0);
    }
    kn_compare_close(c);
    remove_models(&f);
}

static void test_compare_bad_input(void)
{
    model_files f;
    CHECK(make_models(&f));
    kn_compare *c = NULL;
    kn_error err = {0};
    CHECK(kn_compare_open(f.a, "/nonexistent/model.onnx", NULL, &c, &err) != KN_OK);
    CHECK(c == NULL);
    CHECK_EQ_INT(kn_compare_open(f.a, f.a, NULL, &c, &err), KN_OK);
    if (c) {
        CHECK(kn_compare_batch(c, 0, NULL, NULL, 0, &err) != KN_OK); /* wrong input count */
        float x[3] = {1, 2, 3};
        int64_t d[1] = {3};
        kn_tensor t = kt_view(KN_F32, 1, d, x);
        const kn_tensor *ins[1] = {&t};
        CHECK(kn_compare_batch(c, 1, ins, NULL, 0, &err) != KN_OK); /* wrong shape */
        char **names = NULL;
        size_t n = 0;
        CHECK(kn_compare_sensitive_nodes(c, 1, &names, &n, &err) != KN_OK); /* no layers */
    }
    kn_compare_close(c);
    remove_models(&f);
}

TEST_MAIN(TEST_CASE(test_identical), TEST_CASE(test_opposite_orthogonal_scaled), TEST_CASE(test_nonfinite),
          TEST_CASE(test_streaming_equals_one_shot), TEST_CASE(test_worse_order), TEST_CASE(test_argmax),
          TEST_CASE(test_compare_same_and_exact), TEST_CASE(test_auto_exclude_picks_noisy_layer),
          TEST_CASE(test_compare_bad_input))
