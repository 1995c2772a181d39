/* test_quantize.c - kn_quantize_model (src/quant/quantize.c and the per-mode files):
 * each mode on small graphs built here and on the Fashion-MNIST example.  Each
 * written file is read back, run, and must stay close to float - but not equal to
 * it, which would mean nothing was quantized; sizes shrink by the expected factor;
 * exclusions and missing ranges keep nodes in float; bad options are refused. */
#include "test.h"
#include "op_harness.h"

#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "formats/npy.h"
#include "formats/onnx.h"
#include "opt/opt.h"
#include "ops/op.h"
#include "quant/quant.h"

/* ---- helpers ---- */

static uint32_t rng = 12345;

static float frand(void)
{
    kt_lcg32(&rng);
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void add_const(kn_graph *g, const char *name, int rank, const int64_t *dims, float amp)
{
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= dims[d];
    float *v = malloc(sizeof *v * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = amp * frand();
    kn_tensor t = kt_tensor(KN_F32, rank, dims, v);
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
    free(v);
}

static void add_input(kn_graph *g, const char *name, int rank, const int64_t *dims)
{
    kn_graph_add_input(g, kn_graph_value(g, name));
    kt_graph_type(g, name, KN_F32, rank, dims);
}

static kn_tensor random_input(int rank, const int64_t *dims)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t.numel; i++)
        ((float *)t.data)[i] = frand();
    return t;
}

/* Serialize m and read it back (what a user of the written file gets). */
static kn_model *roundtrip(const kn_model *m)
{
    void *buf = NULL;
    size_t len = 0;
    kn_error err = {0};
    kn_model *back = NULL;
    if (kn_onnx_write_buffer(m, &buf, &len, &err) || kn_onnx_load_buffer(buf, len, NULL, &back, &err))
        fprintf(stderr, "roundtrip: %s\n", err.msg);
    free(buf);
    return back;
}

/* Run m on one input; output 0 into *out (owned).  0 on success. */
static int run1(const kn_model *m, const kn_tensor *in, kn_tensor *out)
{
    kn_error err = {0};
    const kn_tensor *ins[1] = {in};
    kn_tensor outs[4] = {{0}};
    int rc = kn_exec_graph(m->graph, NULL, 1, ins, m->graph->n_outputs, outs, &err);
    if (rc) {
        fprintf(stderr, "run: %s\n", err.msg);
        return rc;
    }
    *out = outs[0];
    for (int k = 1; k < m->graph->n_outputs; k++)
        kn_tensor_release(&outs[k]);
    return 0;
}

static double max_abs_diff(const kn_tensor *a, const kn_tensor *b)
{
    double d = 0;
    for (int64_t i = 0; i < a->numel && i < b->numel; i++)
        d = fmax(d, fabs((double)((const float *)a->data)[i] - ((const float *)b->data)[i]));
    return a->numel == b->numel ? d : INFINITY;
}

static double max_abs(const kn_tensor *a)
{
    double d = 0;
    for (int64_t i = 0; i < a->numel; i++)
        d = fmax(d, fabs((double)((const float *)a->data)[i]));
    return d;
}

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}

/* ---- ranges by min/max over observed runs ---- */

typedef struct minmax {
    kn_act_ranges r;
} minmax;

static int observe_minmax(void *user, const char *name, const kn_tensor *t, kn_error *err)
{
    kn_act_ranges *r = &((minmax *)user)->r;
    if (t->dtype != KN_F32)
        return KN_OK;
    kn_act_range *e = (kn_act_range *)kn_act_ranges_find(r, name);
    if (!e) {
        r->v = realloc(r->v, sizeof *r->v * (r->n + 1));
        e = &r->v[r->n++];
        e->name = strdup(name);
        e->lo = INFINITY;
        e->hi = -INFINITY;
    }
    for (int64_t i = 0; i < t->numel; i++) {
        float x = ((const float *)t->data)[i];
        e->lo = fminf(e->lo, x);
        e->hi = fmaxf(e->hi, x);
    }
    return KN_OK;
}

/* Min/max of every node output and graph input of the model at path on `in`. */
static kn_act_ranges calibrate(const char *path, const kn_tensor *in)
{
    minmax mm = {{0}};
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_EQ_INT(kn_onnx_load_file(path, &m, &err), KN_OK);
    if (!m)
        return mm.r;
    const char **names = calloc((size_t)m->graph->n_values, sizeof *names);
    size_t n = 0;
    for (int v = 0; v < m->graph->n_values; v++)
        if (!m->graph->values[v].init)
            names[n++] = m->graph->values[v].name;
    kn_observer *o = NULL;
    CHECK_EQ_INT(kn_observer_open(path, names, n, 1, &o, &err), KN_OK);
    const kn_tensor *ins[1] = {in};
    if (o)
        CHECK_EQ_INT(kn_observer_run(o, 1, ins, observe_minmax, &mm, &err), KN_OK);
    kn_observer_close(o);
    free(names);
    kn_model_free(m);
    return mm.r;
}

/* ---- quantize, read back, run ---- */

typedef struct result {
    kn_quant_report rep;
    kn_model *q;          /* the quantized model as read back */
    kn_tensor out;        /* its output on the test input */
    int rc;
} result;

static result quantize_and_run(const char *path, const kn_quant_opts *o, const kn_tensor *in)
{
    result r = {0};
    kn_error err = {0};
    kn_model *m = NULL;
    if ((r.rc = kn_onnx_load_file(path, &m, &err)) == KN_OK)
        r.rc = kn_quantize_model(m, o, &r.rep, &err);
    if (r.rc) {
        fprintf(stderr, "quantize %s: %s\n", path, err.msg);
        kn_model_free(m);
        return r;
    }
    r.q = roundtrip(m);
    kn_model_free(m);
    r.rc = r.q ? run1(r.q, in, &r.out) : KN_ERR_MODEL;
    return r;
}

static void result_free(result *r)
{
    kn_tensor_release(&r->out);
    kn_model_free(r->q);
}

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_test_quantize_XXXXXX");
        if (!mkdtemp(tmpdir))
            return NULL;
    }
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void save(kn_model *m, const char *path)
{
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    CHECK_EQ_INT(kn_onnx_write_file(m, path, NULL, &err), KN_OK);
    kn_model_free(m);
}

/* ---- models ---- */

/* x[4,256] -> MatMul W1 -> Relu -> MatMul W2 -> Add(residual) -> Gemm(W3 [128,256],
 * transB, alpha 0.5, C [128], beta 2) -> y: a MatMul-heavy graph. */
static void build_mlp_opset(const char *path, int opset)
{
    kn_model *m = kt_model_new(opset);
    kn_graph *g = m->graph;
    int64_t xd[2] = {4, 256}, wd[2] = {256, 256}, w3d[2] = {128, 256}, cd[1] = {128}, yd[2] = {4, 128};
    add_input(g, "x", 2, xd);
    add_const(g, "W1", 2, wd, 0.1f);
    add_const(g, "W2", 2, wd, 0.1f);
    add_const(g, "W3", 2, w3d, 0.1f);
    add_const(g, "C", 1, cd, 0.5f);
    kt_graph_node(g, "MatMul", "x,W1", "h1");
    kt_graph_node(g, "Relu", "h1", "r1");
    kt_graph_node(g, "MatMul", "r1,W2", "h2");
    kt_graph_node(g, "Add", "h2,r1", "s");
    int gi = kt_graph_node(g, "Gemm", "s,W3,C", "y");
    kn_error err;
    kn_opt_set_attr_int(g, gi, "transB", 1, &err);
    kn_opt_set_attr_float(g, gi, "alpha", 0.5f, &err);
    kn_opt_set_attr_float(g, gi, "beta", 2.0f, &err);
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    kt_graph_type(g, "y", KN_F32, 2, yd);
    save(m, path);
}

static void build_mlp(const char *path)
{
    build_mlp_opset(path, 17);
}

/* x[2,3,10,10] -> Conv(pads 1) -> Relu -> MaxPool 2 -> Conv(group 2) ->
 * GlobalAveragePool -> Flatten -> Gemm -> y. */
static void build_cnn(const char *path)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[4] = {2, 3, 10, 10}, w1[4] = {8, 3, 3, 3}, b1[1] = {8}, w2[4] = {16, 4, 3, 3}, b2[1] = {16};
    int64_t w3[2] = {16, 10}, b3[1] = {10};
    add_input(g, "x", 4, xd);
    add_const(g, "W1", 4, w1, 0.5f);
    add_const(g, "B1", 1, b1, 0.2f);
    add_const(g, "W2", 4, w2, 0.3f);
    add_const(g, "B2", 1, b2, 0.2f);
    add_const(g, "W3", 2, w3, 0.5f);
    add_const(g, "B3", 1, b3, 0.2f);
    kn_error err;
    int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
    int c1 = kt_graph_node(g, "Conv", "x,W1,B1", "c1");
    kn_opt_set_attr_ints(g, c1, "pads", pads, 4, &err);
    kt_graph_node(g, "Relu", "c1", "r1");
    int mp = kt_graph_node(g, "MaxPool", "r1", "p1");
    kn_opt_set_attr_ints(g, mp, "kernel_shape", k2, 2, &err);
    kn_opt_set_attr_ints(g, mp, "strides", k2, 2, &err);
    int c2 = kt_graph_node(g, "Conv", "p1,W2,B2", "c2");
    kn_opt_set_attr_int(g, c2, "group", 2, &err);
    kt_graph_node(g, "GlobalAveragePool", "c2", "gp");
    kt_graph_node(g, "Flatten", "gp", "f");
    kt_graph_node(g, "Gemm", "f,W3,B3", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    save(m, path);
}

/* ---- checks ---- */

/* Quantized output q close to float output f (within rel * max|f|) but not equal. */
static void check_close_not_equal(const kn_tensor *q, const kn_tensor *f, double rel, const char *what)
{
    double d = max_abs_diff(q, f), scale = max_abs(f);
    if (getenv("KT_VERBOSE") || !(d <= rel * scale) || !(d > 0))
        fprintf(stderr, "%s: max abs diff %g (max |float| %g, bound %g)\n", what, d, scale, rel * scale);
    CHECK(d <= rel * scale);
    CHECK(d > 0);
}

static void check_size_ratio(const kn_quant_report *rep, double lo, double hi)
{
    double ratio = (double)rep->weight_bytes_before / (double)(rep->weight_bytes_after ? rep->weight_bytes_after : 1);
    if (ratio < lo || ratio > hi)
        fprintf(stderr, "size ratio %.3f not in [%.2f, %.2f]\n", ratio, lo, hi);
    CHECK(ratio >= lo && ratio <= hi);
}

static kn_tensor float_output(const char *path, const kn_tensor *in)
{
    kn_error err = {0};
    kn_model *m = NULL;
    kn_tensor out = {0};
    CHECK_EQ_INT(kn_onnx_load_file(path, &m, &err), KN_OK);
    if (m)
        CHECK_EQ_INT(run1(m, in, &out), 0);
    kn_model_free(m);
    return out;
}

static kn_quant_opts opts(kn_qmode mode)
{
    kn_quant_opts o;
    kn_quant_opts_init(&o);
    o.mode = mode;
    return o;
}

/* ---- tests ---- */

static void test_mlp_dynamic_static_fp16(void)
{
    const char *path = tmp_path("mlp.onnx");
    build_mlp(path);
    int64_t xd[2] = {4, 256};
    kn_tensor in = random_input(2, xd), ref = float_output(path, &in);
    kn_act_ranges ranges = calibrate(path, &in);

    kn_quant_opts o = opts(KN_QMODE_DYNAMIC);
    result r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_quantized, 3);
    if (!r.rc) {
        CHECK_EQ_INT(count_op(r.q->graph, "MatMulInteger"), 3);
        CHECK_EQ_INT(count_op(r.q->graph, "DynamicQuantizeLinear"), 3);
        check_close_not_equal(&r.out, &ref, 0.015, "mlp dynamic");
        check_size_ratio(&r.rep, 3.8, 4.1);
    }
    result_free(&r);

    o = opts(KN_QMODE_STATIC);
    o.ranges = &ranges;
    r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_quantized, 5);   /* 2 MatMul, Relu, Add, Gemm */
    if (!r.rc) {
        CHECK(count_op(r.q->graph, "QuantizeLinear") >= 4);
        CHECK_EQ_INT(count_op(r.q->graph, "DequantizeLinear"), count_op(r.q->graph, "QuantizeLinear") + 4);
        check_close_not_equal(&r.out, &ref, 0.015, "mlp static");
        check_size_ratio(&r.rep, 3.8, 4.1);
    }
    result_free(&r);

    o = opts(KN_QMODE_FP16);
    r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    if (!r.rc) {
        CHECK_EQ_INT(count_op(r.q->graph, "Cast"), 4);   /* W1, W2, W3, C */
        check_close_not_equal(&r.out, &ref, 6e-4, "mlp fp16");
        check_size_ratio(&r.rep, 1.99, 2.01);
    }
    result_free(&r);
    kn_act_ranges_free(&ranges);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* Per-tensor weights: one scale per weight, results still close. */
static void test_per_tensor(void)
{
    const char *path = tmp_path("mlp_pt.onnx");
    build_mlp(path);
    int64_t xd[2] = {4, 256};
    kn_tensor in = random_input(2, xd), ref = float_output(path, &in);
    kn_quant_opts o = opts(KN_QMODE_DYNAMIC);
    o.per_channel = false;
    result r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    if (!r.rc) {
        const kn_graph *g = r.q->graph;
        for (int i = 0; i < g->n_nodes; i++)
            if (!strcmp(g->nodes[i].op_type, "MatMulInteger"))
                CHECK_EQ_INT(g->values[g->nodes[i].in[3]].init->rank, 0);
        check_close_not_equal(&r.out, &ref, 0.02, "mlp dynamic per-tensor");
    }
    result_free(&r);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* Decode the MatMulNBits weight of node n and compare with w (as [N, K] when
 * nk, else [K, N]) times alpha: each code within half a block scale. */
static void check_int4_weight(const kn_graph *g, const kn_node *n, const kn_tensor *w, bool nk, float alpha)
{
    int64_t K = kn_attr_int(n, "K", 0), N = kn_attr_int(n, "N", 0), bs = kn_attr_int(n, "block_size", 0);
    const kn_tensor *B = g->values[n->in[1]].init, *S = g->values[n->in[2]].init;
    CHECK(B && S && bs > 0);
    if (!B || !S || bs <= 0)
        return;
    int64_t nb = (K + bs - 1) / bs;
    CHECK_EQ_INT(B->dims[0], N);
    CHECK_EQ_INT(B->dims[1], nb);
    CHECK_EQ_INT(B->dims[2], bs / 2);
    CHECK_EQ_INT(S->numel, N * nb);
    int bad = 0;
    for (int64_t c = 0; c < N; c++)
        for (int64_t k = 0; k < K; k++) {
            uint8_t byte = ((const uint8_t *)B->data)[(c * nb + k / bs) * (bs / 2) + (k % bs) / 2];
            int code = (k % 2 ? byte >> 4 : byte & 15) - 8;
            float s = ((const float *)S->data)[c * nb + k / bs];
            float want = alpha * ((const float *)w->data)[nk ? c * K + k : k * N + c];
            bad += fabsf(code * s - want) > s * 0.5f + 1e-6f;
        }
    CHECK_EQ_INT(bad, 0);
}

static void test_mlp_int4(void)
{
    const char *path = tmp_path("mlp4.onnx");
    build_mlp(path);
    kn_error err = {0};
    kn_model *f = NULL, *m = NULL;
    CHECK_EQ_INT(kn_onnx_load_file(path, &f, &err), KN_OK);
    CHECK_EQ_INT(kn_onnx_load_file(path, &m, &err), KN_OK);
    if (!f || !m)
        return;
    int block[2] = {32, 128};
    double lo[2] = {6.0, 6.5};
    for (int b = 0; b < 2; b++) {
        kn_model *q = NULL;
        CHECK_EQ_INT(kn_onnx_load_file(path, &q, &err), KN_OK);
        kn_quant_opts o = opts(KN_QMODE_INT4);
        o.int4_block = block[b];
        kn_quant_report rep;
        CHECK_EQ_INT(kn_quantize_model(q, &o, &rep, &err), KN_OK);
        CHECK_EQ_INT(rep.nodes_quantized, 3);
        check_size_ratio(&rep, lo[b], 8.0);
        const kn_graph *g = q->graph, *fg = f->graph;
        CHECK_EQ_INT(count_op(g, "MatMulNBits"), 3);
        CHECK(kn_model_opset(q, "com.microsoft") >= 1);
        for (int i = 0; i < g->n_nodes; i++) {
            const kn_node *n = &g->nodes[i];
            if (strcmp(n->op_type, "MatMulNBits"))
                continue;
            CHECK_EQ_INT(kn_attr_int(n, "bits", 0), 4);
            CHECK_EQ_INT(kn_attr_int(n, "block_size", 0), block[b]);
            const char *wn = g->values[n->in[1]].name;
            bool w3 = !strncmp(wn, "W3", 2);
            char base[8];
            snprintf(base, sizeof base, "%.2s", wn);
            const kn_tensor *w = fg->values[kn_graph_find(fg, base)].init;
            check_int4_weight(g, n, w, w3, w3 ? 0.5f : 1.0f);
        }
        kn_model_free(q);
    }
    kn_model_free(f);
    kn_model_free(m);
}

/* When this build runs MatMulNBits, the int4 model must also run close to float. */
static void test_mlp_int4_runs(void)
{
    if (!kn_op_find("com.microsoft", "MatMulNBits", 1))
        return;
    const char *path = tmp_path("mlp4r.onnx");
    build_mlp(path);
    int64_t xd[2] = {4, 256};
    kn_tensor in = random_input(2, xd), ref = float_output(path, &in);
    kn_quant_opts o = opts(KN_QMODE_INT4);
    result r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    if (!r.rc)
        check_close_not_equal(&r.out, &ref, 0.15, "mlp int4");
    result_free(&r);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* One mode on a model: quantize, run, compare with float. */
typedef struct mode_case {
    kn_qmode mode;
    bool sym;
    double rel;       /* error bound relative to max |float output| */
    int quantized;    /* nodes the report must count as quantized */
} mode_case;

static result run_case(const char *path, const mode_case *c, const kn_act_ranges *ranges, const kn_tensor *in,
                       const kn_tensor *ref, const char *what)
{
    kn_quant_opts o = opts(c->mode);
    o.ranges = ranges;
    o.symmetric_activations = c->sym;
    result r = quantize_and_run(path, &o, in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_quantized, c->quantized);
    if (!r.rc)
        check_close_not_equal(&r.out, ref, c->rel, what);
    return r;
}

static void test_cnn_modes(void)
{
    const char *path = tmp_path("cnn.onnx");
    build_cnn(path);
    int64_t xd[4] = {2, 3, 10, 10};
    kn_tensor in = random_input(4, xd), ref = float_output(path, &in);
    kn_act_ranges ranges = calibrate(path, &in);
    const mode_case modes[] = {
        {KN_QMODE_DYNAMIC, false, 0.02, 3},
        {KN_QMODE_STATIC, false, 0.025, 7},
        {KN_QMODE_STATIC, true, 0.04, 7},
        {KN_QMODE_FP16, false, 1.5e-3, 3},
    };
    for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) {
        result r = run_case(path, &modes[k], &ranges, &in, &ref, "cnn");
        if (!r.rc && modes[k].mode == KN_QMODE_DYNAMIC)
            CHECK_EQ_INT(count_op(r.q->graph, "ConvInteger"), 2);
        result_free(&r);
    }
    kn_act_ranges_free(&ranges);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* ---- the Fashion-MNIST example ---- */

static int top1(const kn_tensor *t, int64_t row)
{
    const float *p = (const float *)t->data + row * 10;
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (p[k] > p[best])
            best = k;
    return best;
}

static int agreement(const kn_tensor *a, const kn_tensor *b)
{
    int same = 0;
    for (int64_t r = 0; r < a->dims[0]; r++)
        same += top1(a, r) == top1(b, r);
    return same;
}

static kn_tensor example_images(void)
{
    kn_tensor in = {0};
    kn_error err = {0};
    char path[1024];   /* next to the model: fmnist_cnn.in.image.npy */
    snprintf(path, sizeof path, "%.*s.in.image.npy", (int)(strlen(KILN_EXAMPLE_MODEL) - 5), KILN_EXAMPLE_MODEL);
    CHECK_EQ_INT(kn_npy_read_file(path, &in, &err), KN_OK);
    return in;
}

static void test_fmnist_modes(void)
{
    kn_tensor in = example_images(), ref = float_output(KILN_EXAMPLE_MODEL, &in);
    kn_act_ranges ranges = calibrate(KILN_EXAMPLE_MODEL, &in);
    const mode_case modes[] = {
        {KN_QMODE_DYNAMIC, false, 0.015, 5},
        {KN_QMODE_STATIC, false, 0.02, 12},
        {KN_QMODE_STATIC, true, 0.03, 12},
        {KN_QMODE_FP16, false, 1.2e-3, 5},
    };
    const double ratio[] = {3.9, 3.9, 3.9, 1.99};
    for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) {
        result r = run_case(KILN_EXAMPLE_MODEL, &modes[k], &ranges, &in, &ref, "fmnist");
        CHECK_EQ_INT(r.rep.nodes_kept_float, 0);
        if (!r.rc) {
            CHECK(agreement(&r.out, &ref) >= 15);
            check_size_ratio(&r.rep, ratio[k], 4.1);
        }
        result_free(&r);
    }
    kn_act_ranges_free(&ranges);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

static void test_exclusions(void)
{
    kn_tensor in = example_images(), ref = float_output(KILN_EXAMPLE_MODEL, &in);
    kn_act_ranges ranges = calibrate(KILN_EXAMPLE_MODEL, &in);
    const char *by_type[1] = {"Conv"}, *by_name[2] = {"/head/head.4/Gemm", "/body/body.3/MaxPool"};
    kn_quant_opts o = opts(KN_QMODE_DYNAMIC);
    o.exclude = by_type;
    o.n_exclude = 1;
    result r = quantize_and_run(KILN_EXAMPLE_MODEL, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_quantized, 2);
    CHECK_EQ_INT(r.rep.nodes_kept_float, 3);
    if (!r.rc) {
        CHECK_EQ_INT(count_op(r.q->graph, "Conv"), 3);
        CHECK_EQ_INT(count_op(r.q->graph, "ConvInteger"), 0);
        check_close_not_equal(&r.out, &ref, 0.015, "fmnist dynamic, Conv excluded");
    }
    result_free(&r);

    o = opts(KN_QMODE_STATIC);
    o.ranges = &ranges;
    o.exclude = by_name;
    o.n_exclude = 2;
    r = quantize_and_run(KILN_EXAMPLE_MODEL, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_kept_float, 2);
    if (!r.rc) {
        const kn_graph *g = r.q->graph;
        for (int i = 0; i < g->n_nodes; i++)
            if (!strcmp(g->nodes[i].name, "/head/head.4/Gemm")) {
                /* kept float: reads the original float weight, not a dequantized one */
                CHECK(g->values[g->nodes[i].in[1]].init != NULL);
                CHECK(!strcmp(g->values[g->nodes[i].in[1]].name, "head.4.weight"));
            }
        check_close_not_equal(&r.out, &ref, 0.02, "fmnist static, exclusions");
    }
    result_free(&r);
    kn_act_ranges_free(&ranges);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* Only the input has a range: the first Conv is quantized, the rest stays float. */
static void test_missing_ranges(void)
{
    kn_tensor in = example_images(), ref = float_output(KILN_EXAMPLE_MODEL, &in);
    kn_act_range one = {"image", -1.0f, 2.5f};
    kn_act_ranges ranges = {&one, 1};
    kn_quant_opts o = opts(KN_QMODE_STATIC);
    o.ranges = &ranges;
    result r = quantize_and_run(KILN_EXAMPLE_MODEL, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_quantized, 1);
    CHECK_EQ_INT(r.rep.nodes_kept_float, 11);
    if (!r.rc) {
        CHECK_EQ_INT(count_op(r.q->graph, "QuantizeLinear"), 1);
        check_close_not_equal(&r.out, &ref, 0.015, "fmnist static, input range only");
    }
    result_free(&r);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* Before opset 13 DequantizeLinear has no axis: static falls back to per-tensor
 * weights; dynamic needs opset 11 (DynamicQuantizeLinear). */
static void test_old_opsets(void)
{
    const char *path = tmp_path("mlp12.onnx");
    build_mlp_opset(path, 12);
    int64_t xd[2] = {4, 256};
    kn_tensor in = random_input(2, xd), ref = float_output(path, &in);
    kn_act_ranges ranges = calibrate(path, &in);
    kn_quant_opts o = opts(KN_QMODE_STATIC);
    o.ranges = &ranges;
    result r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    if (!r.rc) {
        const kn_graph *g = r.q->graph;
        for (int i = 0; i < g->n_nodes; i++)
            if (!strcmp(g->nodes[i].op_type, "DequantizeLinear")) {
                CHECK(kn_attr_find(&g->nodes[i], "axis") == NULL);
                CHECK_EQ_INT(g->values[g->nodes[i].in[1]].init->numel, 1);
            }
        check_close_not_equal(&r.out, &ref, 0.02, "mlp static, opset 12");
    }
    result_free(&r);
    kn_act_ranges_free(&ranges);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);

    path = tmp_path("mlp10.onnx");
    build_mlp_opset(path, 10);
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_EQ_INT(kn_onnx_load_file(path, &m, &err), KN_OK);
    o = opts(KN_QMODE_DYNAMIC);
    if (m)
        CHECK_EQ_INT(kn_quantize_model(m, &o, NULL, &err), KN_ERR_UNSUPPORTED);
    kn_model_free(m);
}

static void test_bad_options(void)
{
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_EQ_INT(kn_onnx_load_file(KILN_EXAMPLE_MODEL, &m, &err), KN_OK);
    if (!m)
        return;
    kn_quant_opts o = opts(KN_QMODE_INT4);
    o.int4_block = 64;
    CHECK_EQ_INT(kn_quantize_model(m, &o, NULL, &err), KN_ERR_ARG);
    CHECK(strstr(err.msg, "32 or 128") != NULL);
    o = opts(KN_QMODE_STATIC);
    CHECK_EQ_INT(kn_quantize_model(m, &o, NULL, &err), KN_ERR_ARG);
    CHECK(strstr(err.msg, "ranges") != NULL);
    o.mode = (kn_qmode)9;
    CHECK_EQ_INT(kn_quantize_model(m, &o, NULL, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kn_quantize_model(NULL, &o, NULL, &err), KN_ERR_ARG);
    /* the refused calls left the model untouched: it still quantizes */
    o = opts(KN_QMODE_DYNAMIC);
    CHECK_EQ_INT(kn_quantize_model(m, &o, NULL, &err), KN_OK);
    kn_model_free(m);
}

/* ids int64 [2, 5] -> Gather(E [rows, cols]) -> MatMul W [cols, 32] -> y. */
static void build_embedding_cols(const char *path, int64_t rows, int64_t cols)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t ed[2] = {rows, cols}, wd[2] = {cols, 32}, idd[2] = {2, 5};
    kn_graph_add_input(g, kn_graph_value(g, "ids"));
    kt_graph_type(g, "ids", KN_I64, 2, idd);
    add_const(g, "E", 2, ed, 0.1f);
    float *e = g->values[kn_graph_value(g, "E")].init->data;
    for (int64_t r = 0; r < rows; r++)      /* rows of very different magnitudes */
        for (int64_t k = 0; k < cols; k++)
            e[r * cols + k] *= (float)(1 + r % 7) * (r % 5 ? 1.0f : 0.01f);
    add_const(g, "W", 2, wd, 0.2f);
    kt_graph_node(g, "Gather", "E,ids", "emb");
    kt_graph_node(g, "MatMul", "emb,W", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    save(m, path);
}

/* The embedding model with E [rows, 64] (65536 values when rows is 1024: just large
 * enough to be quantized). */
static void build_embedding(const char *path, int64_t rows)
{
    build_embedding_cols(path, rows, 64);
}

static kn_tensor embedding_ids(int64_t rows)
{
    int64_t idd[2] = {2, 5}, ids[10] = {0, 1, rows - 1, 5, 5, 10, 3, 999, rows / 2, 2};
    return kt_tensor(KN_I64, 2, idd, ids);
}

/* Quantizing the embedding model at path with o leaves its one float Gather. */
static void check_gather_kept_float(const char *path, const kn_quant_opts *o, const kn_tensor *in)
{
    result r = quantize_and_run(path, o, in);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.rep.nodes_quantized, 1);   /* the MatMul */
    if (!r.rc)
        CHECK_EQ_INT(count_op(r.q->graph, "Gather"), 1);
    result_free(&r);
}

static void test_embedding_modes(void)
{
    const char *path = tmp_path("emb.onnx");
    build_embedding(path, 1024);
    kn_tensor in = embedding_ids(1024), ref = float_output(path, &in);
    kn_act_ranges ranges = calibrate(path, &in);
    for (int k = 0; k < 2; k++) {
        kn_quant_opts o = opts(k ? KN_QMODE_STATIC : KN_QMODE_DYNAMIC);
        o.ranges = &ranges;
        result r = quantize_and_run(path, &o, &in);
        CHECK_EQ_INT(r.rc, 0);
        CHECK_EQ_INT(r.rep.nodes_quantized, 2);   /* Gather, MatMul */
        if (!r.rc) {
            CHECK_EQ_INT(count_op(r.q->graph, "Gather"), 2);  /* int8 rows, row scales */
            check_close_not_equal(&r.out, &ref, 0.02, k ? "embedding static" : "embedding dynamic");
            check_size_ratio(&r.rep, 3.6, 4.0);
        }
        result_free(&r);
    }
    /* an excluded Gather stays float */
    kn_quant_opts o = opts(KN_QMODE_DYNAMIC);
    const char *ex[1] = {"Gather"};
    o.exclude = ex;
    o.n_exclude = 1;
    check_gather_kept_float(path, &o, &in);
    kn_act_ranges_free(&ranges);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* Node n's GatherBlockQuantized table decodes to e [V, D] within half a block scale. */
static void check_int4_table(const kn_graph *g, const kn_node *n, const kn_tensor *e)
{
    const kn_tensor *T = g->values[n->in[0]].init, *S = g->values[n->in[2]].init;
    int64_t V = e->dims[0], D = e->dims[1], nb = (D + 31) / 32;
    CHECK(T && S && kn_attr_int(n, "block_size", 0) == 32 && kn_attr_int(n, "bits", 0) == 4);
    if (!T || !S)
        return;
    CHECK(T->dtype == KN_U8 && T->rank == 2 && T->dims[0] == V && T->dims[1] == D / 2);
    CHECK(S->dtype == KN_F32 && S->rank == 2 && S->dims[0] == V && S->dims[1] == nb);
    if (T->numel != V * D / 2 || S->numel != V * nb)
        return;
    int bad = 0;
    for (int64_t v = 0; v < V; v++)
        for (int64_t k = 0; k < D; k++) {
            uint8_t byte = ((const uint8_t *)T->data)[v * (D / 2) + k / 2];
            int code = (k % 2 ? byte >> 4 : byte & 15) - 8;
            float s = ((const float *)S->data)[v * nb + k / 32];
            bad += fabsf(code * s - ((const float *)e->data)[v * D + k]) > s * 0.5f + 1e-6f;
        }
    CHECK_EQ_INT(bad, 0);
}

/* int4: the MatMul becomes MatMulNBits and the table one GatherBlockQuantized
 * (4-bit blocks of 32 along D; D = 80 ends in a partial block); the model runs
 * close to float.  An odd D cannot be packed two codes a byte: int8 table instead. */
static void test_embedding_int4(void)
{
    const char *path = tmp_path("emb4.onnx");
    build_embedding_cols(path, 1024, 80);
    kn_tensor in = embedding_ids(1024), ref = float_output(path, &in);
    kn_quant_opts o = opts(KN_QMODE_INT4);
    kn_error err = {0};
    kn_model *m = NULL, *f = NULL;
    CHECK_EQ_INT(kn_onnx_load_file(path, &m, &err), KN_OK);
    CHECK_EQ_INT(kn_onnx_load_file(path, &f, &err), KN_OK);
    kn_quant_report rep;
    if (m && f && kn_quantize_model(m, &o, &rep, &err) == KN_OK) {
        CHECK_EQ_INT(rep.nodes_quantized, 2);
        CHECK_EQ_INT(count_op(m->graph, "Gather"), 0);
        CHECK_EQ_INT(count_op(m->graph, "GatherBlockQuantized"), 1);
        check_size_ratio(&rep, 5.8, 7.0);
        for (int i = 0; i < m->graph->n_nodes; i++)
            if (!strcmp(m->graph->nodes[i].op_type, "GatherBlockQuantized"))
                check_int4_table(m->graph, &m->graph->nodes[i], f->graph->values[kn_graph_value(f->graph, "E")].init);
    } else
        CHECK(false);
    kn_model_free(m);
    kn_model_free(f);
    result r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    if (!r.rc)
        check_close_not_equal(&r.out, &ref, 0.1, "embedding int4");
    result_free(&r);
    build_embedding_cols(path, 1024, 65);
    r = quantize_and_run(path, &o, &in);
    CHECK_EQ_INT(r.rc, 0);
    if (!r.rc) {
        CHECK_EQ_INT(count_op(r.q->graph, "GatherBlockQuantized"), 0);
        CHECK_EQ_INT(count_op(r.q->graph, "Gather"), 2);  /* int8 rows, row scales */
    }
    result_free(&r);
    kn_tensor_release(&in);
    kn_tensor_release(&ref);
}

/* A table another node also reads (here a Transpose to a second output) stays
 * float: an int8 copy would only add bytes. */
static void test_shared_embedding_kept(void)
{
    const char *path = tmp_path("emb_shared.onnx");
    build_embedding(path, 1024);
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_EQ_INT(kn_onnx_load_file(path, &m, &err), KN_OK);
    if (!m)
        return;
    kt_graph_node(m->graph, "Transpose", "E", "Et");
    kn_graph_add_output(m->graph, kn_graph_value(m->graph, "Et"));
    save(m, path);
    kn_tensor in = embedding_ids(1024);
    kn_quant_opts o = opts(KN_QMODE_DYNAMIC);
    check_gather_kept_float(path, &o, &in);
    kn_tensor_release(&in);
}

/* A table one row short of the size threshold stays float. */
static void test_small_embedding_kept(void)
{
    const char *path = tmp_path("emb_small.onnx");
    build_embedding(path, 1023);
    kn_tensor in = embedding_ids(1023);
    kn_quant_opts o = opts(KN_QMODE_DYNAMIC);
    check_gather_kept_float(path, &o, &in);
    kn_tensor_release(&in);
}

static void cleanup(void)
{
    const char *names[] = {"mlp.onnx", "mlp_pt.onnx", "mlp4.onnx", "mlp4r.onnx", "cnn.onnx", "mlp12.onnx",
                           "mlp10.onnx", "emb.onnx", "emb4.onnx", "emb_small.onnx", "emb_shared.onnx"};
    for (size_t k = 0; tmpdir[0] && k < sizeof names / sizeof *names; k++)
        remove(tmp_path(names[k]));
    if (tmpdir[0])
        remove(tmpdir);
}

TEST_MAIN(TEST_CASE(test_mlp_dynamic_static_fp16), TEST_CASE(test_per_tensor), TEST_CASE(test_mlp_int4),
          TEST_CASE(test_mlp_int4_runs), TEST_CASE(test_cnn_modes), TEST_CASE(test_fmnist_modes),
          TEST_CASE(test_exclusions), TEST_CASE(test_missing_ranges), TEST_CASE(test_old_opsets), TEST_CASE(test_bad_options),
          TEST_CASE(test_embedding_modes), TEST_CASE(test_embedding_int4), TEST_CASE(test_small_embedding_kept),
          TEST_CASE(test_shared_embedding_kept),
          TEST_CASE(cleanup))
