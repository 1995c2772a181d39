/* test_ops_quant_gemm.c - the QLinearMatMul / QLinearConv fast paths (quant_gemm.c)
 * against their reference loops (quant.c): each case runs one node twice on the
 * same model, before and after the compile step that packs the constant weight,
 * single-threaded and on a 2-thread pool, and the outputs must be identical bytes.
 * Awkward shapes (1, primes, panel and k-group tails, batched A, more than one
 * im2col pixel block), uint8/int8 on every side, per-tensor and per-column weight
 * scales and zero points, padding, strides, dilations, bias; and the cases the fast
 * path declines (weights that do not fit int8 after the zero point, grouped but not
 * depthwise convolutions).  Depthwise convolutions take their own direct loop.
 * Also the com.microsoft operators of the QDQ fusion: QLinearConv with
 * channels_last (fast = its reference = the ONNX operator transposed), QGemm (fast
 * = reference), QLinearAdd and QLinearGlobalAveragePool (against their formulas
 * written out here, same and broadcast shapes, both layouts), 8-bit MaxPool (= the
 * float one) and NhwcMaxPool (= MaxPool transposed). */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "exec/threadpool.h"
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>

static uint32_t rng = 2463534242u;
static uint32_t next(void) { return kt_xorshift32(&rng); }

/* ---- a one-node model whose constant inputs are initializers ---- */

typedef struct qnode {
    const char *op;
    const char *domain;     /* NULL: the default domain */
    int n_in;
    kn_tensor *in[9];       /* NULL: omitted */
    unsigned const_mask;    /* bit i: input i is an initializer */
    int n_attr;
    kn_attr attrs[8];
} qnode;

static kn_model *build_model(const qnode *q, const kn_tensor **feeds, int *n_feeds)
{
    kn_model *m = kn_model_new();
    if (!m)
        return NULL;
    m->opsets = kn_arena_calloc(&m->arena, 2, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = 13;
    m->opsets[1].domain = "com.microsoft";
    m->opsets[1].version = 1;
    m->n_opsets = 2;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    kn_node *nd = kn_graph_add_node(g);
    nd->name = "node";
    nd->op_type = q->op;
    nd->domain = q->domain ? q->domain : "";
    nd->n_in = q->n_in;
    nd->in = kn_arena_calloc(&m->arena, (size_t)q->n_in + 1, sizeof(int));
    *n_feeds = 0;
    for (int i = 0; i < q->n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        nd->in[i] = q->in[i] ? kn_graph_value(g, kn_arena_strdup(&m->arena, name)) : -1;
        if (!q->in[i])
            continue;
        if (q->const_mask >> i & 1u) {
            g->values[nd->in[i]].init = q->in[i];
        } else {
            kn_graph_add_input(g, nd->in[i]);
            feeds[(*n_feeds)++] = q->in[i];
        }
    }
    nd->n_out = 1;
    nd->out = kn_arena_calloc(&m->arena, 2, sizeof(int));
    nd->out[0] = kn_graph_value(g, "out0");
    kn_graph_add_output(g, nd->out[0]);
    nd->n_attr = q->n_attr;
    nd->attrs = kn_arena_calloc(&m->arena, (size_t)q->n_attr + 1, sizeof(kn_attr));
    for (int i = 0; i < q->n_attr; i++)
        nd->attrs[i] = q->attrs[i];
    return m;
}

/* Runs the node: reference (no prepare) and fast (prepared) with and without a
 * pool; all outputs must be equal.  Returns whether prepare built a state. */
static bool check_fast_equals_reference(const qnode *q, kn_threadpool *pool)
{
    const kn_tensor *feeds[9];
    int n_feeds = 0;
    kn_error err = {0};
    kn_model *m = build_model(q, feeds, &n_feeds);
    CHECK(m != NULL);
    if (!m)
        return false;
    kn_tensor ref = {0}, fast1 = {0}, fast2 = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph(m->graph, NULL, n_feeds, feeds, 1, &ref, &err), KN_OK);
    CHECK_EQ_INT(kn_model_prepare(m, &err), KN_OK);
    bool has_state = m->graph->nodes[0].state != NULL;
    kn_exec_env env = {.pool = pool};
    CHECK_EQ_INT(kn_exec_graph(m->graph, NULL, n_feeds, feeds, 1, &fast1, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph_env(m->graph, &env, n_feeds, feeds, 1, &fast2, &err), KN_OK);
    if (err.code)
        fprintf(stderr, "  (%s: %s)\n", q->op, err.msg);
    CHECK(kn_same_shape(&ref, &fast1) && kn_same_shape(&ref, &fast2));
    CHECK_EQ_INT(ref.dtype, fast1.dtype);
    if (ref.data && fast1.data && fast2.data && kn_same_shape(&ref, &fast1) && kn_same_shape(&ref, &fast2)) {
        int64_t bad = 0;
        for (int64_t i = 0; i < ref.numel; i++)
            bad += ((uint8_t *)ref.data)[i] != ((uint8_t *)fast1.data)[i] ||
                   ((uint8_t *)ref.data)[i] != ((uint8_t *)fast2.data)[i];
        CHECK_EQ_INT(bad, 0);
    }
    kn_tensor_release(&ref);
    kn_tensor_release(&fast1);
    kn_tensor_release(&fast2);
    kn_model_free(m);
    return has_state;
}

/* ---- tensors ---- */

/* Random 8-bit values of dtype t; when around != NULL, value - around[slice] fits
 * int8 (slice = index / inner % count) so the weight can be packed. */
static kn_tensor random_q8(kn_dtype t, int rank, const int64_t *dims, const kn_tensor *around, int64_t inner)
{
    kn_tensor x = kt_tensor(t, rank, dims, NULL);
    for (int64_t i = 0; i < x.numel; i++) {
        int64_t v = t == KN_U8 ? (int64_t)(next() % 256) : (int64_t)(next() % 256) - 128;
        if (around) {
            int64_t z = kt_at_i64(around, around->numel == 1 ? 0 : (i / inner) % around->numel);
            v = z + (int64_t)(next() % 256) - 128;
            int64_t lo = t == KN_U8 ? 0 : -128, hi = t == KN_U8 ? 255 : 127;
            v = v < lo ? lo : v > hi ? hi : v;
        }
        if (t == KN_U8)
            ((uint8_t *)x.data)[i] = (uint8_t)v;
        else
            ((int8_t *)x.data)[i] = (int8_t)v;
    }
    return x;
}

static kn_tensor scalar_f32(float v)
{
    return kt_tensor(KN_F32, 0, NULL, &v);
}

static kn_tensor scalar_q8(kn_dtype t, int v)
{
    uint8_t u = (uint8_t)v;
    return kt_tensor(t, 0, NULL, &u);
}

/* n per-channel scales around s, or a scalar when n == 0. */
static kn_tensor scales(float s, int64_t n)
{
    if (!n)
        return scalar_f32(s);
    kn_tensor t = kt_tensor(KN_F32, 1, &n, NULL);
    for (int64_t i = 0; i < n; i++)
        ((float *)t.data)[i] = s * (0.5f + (float)(next() % 1000) / 1000.0f);
    return t;
}

/* n per-channel zero points of dtype t, or a scalar when n == 0. */
static kn_tensor zero_points(kn_dtype t, int64_t n)
{
    int64_t lo = t == KN_U8 ? 0 : -128;
    if (!n)
        return scalar_q8(t, (int)(lo + (int64_t)(next() % 256)));
    kn_tensor z = kt_tensor(t, 1, &n, NULL);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = lo + (int64_t)(next() % 256);
        if (t == KN_U8)
            ((uint8_t *)z.data)[i] = (uint8_t)v;
        else
            ((int8_t *)z.data)[i] = (int8_t)v;
    }
    return z;
}

/* y scale that spreads a*w*acc over the 8-bit range for k-term dot products. */
static float y_scale_for(float as, float ws, int64_t k)
{
    return as * ws * 74.0f * 74.0f * sqrtf((float)k) / 40.0f;
}

/* ---- QLinearMatMul ---- */

typedef struct mm_case {
    int rank;
    int64_t adims[4];
    int64_t n;
    kn_dtype at, bt, yt;
    int per_col;            /* weight scale and zero point per column */
} mm_case;

static bool check_matmul(const mm_case *mc, kn_threadpool *pool, bool fit)
{
    int64_t k = mc->adims[mc->rank - 1], bdims[2] = {k, mc->n};
    int64_t nq = mc->per_col ? mc->n : 0;
    float as = 0.02f, bs = 0.01f;
    kn_tensor ins[8];
    ins[0] = random_q8(mc->at, mc->rank, mc->adims, NULL, 1);
    ins[1] = scalar_f32(as);
    ins[2] = zero_points(mc->at, 0);
    ins[5] = zero_points(mc->bt, nq);
    ins[3] = random_q8(mc->bt, 2, bdims, fit ? &ins[5] : NULL, 1);
    ins[4] = scales(bs, nq);
    ins[6] = scalar_f32(y_scale_for(as, bs, k));
    ins[7] = zero_points(mc->yt, 0);
    qnode q = {.op = "QLinearMatMul", .n_in = 8, .const_mask = 1u << 3 | 1u << 4 | 1u << 5};
    for (int i = 0; i < 8; i++)
        q.in[i] = &ins[i];
    bool st = check_fast_equals_reference(&q, pool);
    kt_release_all(ins, 8);
    return st;
}

static void test_matmul_fast_equals_reference(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    static const mm_case cases[] = {
        {2, {1, 1}, 1, KN_U8, KN_I8, KN_U8, 0},
        {2, {3, 7}, 5, KN_U8, KN_I8, KN_U8, 1},
        {2, {17, 64}, 97, KN_I8, KN_I8, KN_I8, 0},
        {2, {130, 129}, 67, KN_U8, KN_U8, KN_U8, 1},
        {3, {2, 5, 33}, 31, KN_I8, KN_U8, KN_U8, 0},
        {4, {2, 3, 4, 13}, 33, KN_U8, KN_I8, KN_I8, 1},
        {2, {97, 257}, 64, KN_U8, KN_U8, KN_I8, 0},
        {2, {200, 3}, 2, KN_I8, KN_U8, KN_U8, 1},
    };
    for (int i = 0; i < KT_COUNT(cases); i++) {
        CHECK(check_matmul(&cases[i], pool, true));
        CHECK(check_matmul(&cases[i], NULL, true));
    }
    kn_threadpool_free(pool);
}

/* uint8 weights far from their zero point do not fit int8: no state, reference. */
static void test_matmul_unpackable_weight_uses_reference(void)
{
    mm_case mc = {2, {5, 9}, 7, KN_U8, KN_U8, KN_U8, 0};
    bool any_state = false;
    for (int rep = 0; rep < 4; rep++)
        any_state |= check_matmul(&mc, NULL, false);
    CHECK(!any_state);
}

/* ---- QLinearConv ---- */

typedef struct conv_case {
    int64_t xdims[4];
    int64_t m, kh, kw;
    int64_t strides[2], dil[2], pads[4];
    kn_dtype xt, wt, yt;
    int per_ch, bias;       /* bias: 0 none, 1 small, 2 near the int32 limits */
    const char *auto_pad;
    int64_t group;          /* 0: 1 */
    int channels_last;      /* com.microsoft QLinearConv on [N, H, W, C] */
} conv_case;

/* The node's output run by the reference (no prepare, one thread). */
static kn_tensor run_reference(const qnode *q)
{
    const kn_tensor *feeds[9];
    int n_feeds = 0;
    kn_error err = {0};
    kn_tensor out = {0};
    kn_model *m = build_model(q, feeds, &n_feeds);
    CHECK(m && kn_model_finalize(m, &err) == KN_OK);
    CHECK_EQ_INT(m ? kn_exec_graph(m->graph, NULL, n_feeds, feeds, 1, &out, &err) : -1, KN_OK);
    kn_model_free(m);
    return out;
}

/* [N, C, H, W] <-> [N, H, W, C] copies of 8-bit data (dims: the NCHW dims). */
static kn_tensor nchw_to_nhwc(const kn_tensor *x, const int64_t *dims, bool to_last)
{
    int64_t last[4] = {dims[0], dims[2], dims[3], dims[1]};
    kn_tensor y = kt_tensor(x->dtype, 4, to_last ? last : dims, NULL);
    int64_t hw = dims[2] * dims[3];
    for (int64_t b = 0; b < dims[0]; b++)
        for (int64_t c = 0; c < dims[1]; c++)
            for (int64_t p = 0; p < hw; p++) {
                int64_t first = (b * dims[1] + c) * hw + p, at_last = (b * hw + p) * dims[1] + c;
                ((uint8_t *)y.data)[to_last ? at_last : first] = ((const uint8_t *)x->data)[to_last ? first : at_last];
            }
    return y;
}

/* q (an ONNX QLinearConv on NCHW x) as com.microsoft QLinearConv with
 * channels_last = 1: its fast path equals its reference, and both equal the ONNX
 * operator's output transposed. */
static bool check_channels_last_conv(const qnode *q, kn_threadpool *pool, const int64_t *xdims)
{
    kn_tensor want = run_reference(q);
    qnode ql = *q;
    kn_tensor xl = nchw_to_nhwc(q->in[0], xdims, true);
    ql.in[0] = &xl;
    ql.domain = "com.microsoft";
    ql.attrs[ql.n_attr++] = kt_attr_int("channels_last", 1);
    bool st = check_fast_equals_reference(&ql, pool);
    kn_tensor got = run_reference(&ql);
    if (want.rank == 4 && got.rank == 4) {
        kn_tensor back = nchw_to_nhwc(&got, want.dims, false);
        CHECK(kn_same_shape(&back, &want));
        CHECK(kn_same_shape(&back, &want) && !memcmp(back.data, want.data, (size_t)want.numel));
        kn_tensor_release(&back);
    } else {
        CHECK(false);
    }
    kn_tensor_release(&want);
    kn_tensor_release(&got);
    kn_tensor_release(&xl);
    return st;
}

static bool check_conv(const conv_case *cc, kn_threadpool *pool)
{
    int64_t group = cc->group ? cc->group : 1, cpg = cc->xdims[1] / group;
    int64_t wdims[4] = {cc->m, cpg, cc->kh, cc->kw}, k = cpg * cc->kh * cc->kw;
    int64_t nq = cc->per_ch ? cc->m : 0;
    float xs = 0.03f, ws = 0.005f;
    kn_tensor ins[9];
    ins[0] = random_q8(cc->xt, 4, cc->xdims, NULL, 1);
    ins[1] = scalar_f32(xs);
    ins[2] = zero_points(cc->xt, 0);
    ins[5] = zero_points(cc->wt, nq);
    ins[3] = random_q8(cc->wt, 4, wdims, &ins[5], k);
    ins[4] = scales(ws, nq);
    ins[6] = scalar_f32(y_scale_for(xs, ws, k));
    ins[7] = zero_points(cc->yt, 0);
    ins[8] = kt_tensor(KN_I32, 1, &cc->m, NULL);
    for (int64_t i = 0; i < cc->m; i++) {
        int32_t big = next() % 2 ? INT32_MAX - (int32_t)(next() % 1000) : INT32_MIN + (int32_t)(next() % 1000);
        ((int32_t *)ins[8].data)[i] = cc->bias == 2 ? big : (int32_t)(next() % 20001) - 10000;
    }
    qnode q = {.op = "QLinearConv", .n_in = cc->bias ? 9 : 8,
               .const_mask = 1u << 3 | 1u << 4 | 1u << 5 | 1u << 8};
    for (int i = 0; i < 9; i++)
        q.in[i] = &ins[i];
    q.attrs[q.n_attr++] = kt_attr_ints("strides", 2, cc->strides);
    q.attrs[q.n_attr++] = kt_attr_ints("dilations", 2, cc->dil);
    q.attrs[q.n_attr++] = kt_attr_int("group", group);
    if (cc->auto_pad)
        q.attrs[q.n_attr++] = kt_attr_str("auto_pad", cc->auto_pad);
    else
        q.attrs[q.n_attr++] = kt_attr_ints("pads", 4, cc->pads);
    bool st;
    if (cc->channels_last)
        st = check_channels_last_conv(&q, pool, cc->xdims);
    else
        st = check_fast_equals_reference(&q, pool);
    kt_release_all(ins, 9);
    return st;
}

static void test_conv_fast_equals_reference(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    static const conv_case cases[] = {
        {{1, 1, 1, 1}, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_U8, 0, 0, NULL},
        {{2, 3, 7, 5}, 5, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 1, NULL},
        {{1, 4, 9, 11}, 7, 3, 2, {2, 1}, {1, 2}, {0, 1, 2, 1}, KN_I8, KN_I8, KN_I8, 0, 1, NULL},
        {{1, 16, 20, 20}, 33, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_U8, KN_U8, 1, 0, NULL},
        {{1, 3, 40, 41}, 8, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_I8, KN_U8, KN_U8, 0, 1, NULL},
        {{2, 5, 13, 17}, 3, 5, 3, {2, 3}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_I8, 1, 1, "SAME_UPPER"},
        {{1, 2, 6, 6}, 4, 7, 7, {1, 1}, {1, 1}, {3, 3, 3, 3}, KN_U8, KN_I8, KN_U8, 0, 1, NULL},
        {{1, 3, 9, 10}, 5, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_I8, KN_I8, KN_I8, 1, 2, NULL},
    };
    for (int i = 0; i < KT_COUNT(cases); i++) {
        CHECK(check_conv(&cases[i], pool));
        CHECK(check_conv(&cases[i], NULL));
    }
    kn_threadpool_free(pool);
}

static void test_depthwise_conv_fast_equals_reference(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    static const conv_case cases[] = {
        {{1, 8, 9, 7}, 8, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 1, NULL, 8},
        {{2, 5, 10, 13}, 5, 3, 5, {2, 3}, {2, 1}, {0, 2, 1, 3}, KN_I8, KN_I8, KN_I8, 0, 1, NULL, 5},
        {{1, 3, 1, 1}, 3, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_U8, KN_U8, 1, 0, NULL, 3},
        {{1, 6, 14, 15}, 6, 5, 5, {2, 2}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_I8, 1, 1, "SAME_UPPER", 6},
        {{1, 2, 3, 4}, 2, 5, 6, {1, 1}, {1, 1}, {2, 3, 2, 3}, KN_I8, KN_U8, KN_U8, 0, 1, NULL, 2},
        {{1, 4, 5, 37}, 4, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_I8, KN_I8, KN_U8, 1, 1, NULL, 4},
        {{2, 3, 6, 64}, 3, 3, 4, {1, 1}, {1, 2}, {0, 3, 2, 0}, KN_U8, KN_I8, KN_I8, 0, 1, NULL, 3},
        {{1, 4, 5, 37}, 4, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 2, NULL, 4},
    };
    for (int i = 0; i < KT_COUNT(cases); i++) {
        CHECK(check_conv(&cases[i], pool));
        CHECK(check_conv(&cases[i], NULL));
    }
    kn_threadpool_free(pool);
}

/* com.microsoft QLinearConv, channels_last: pointwise (one GEMM over the batch,
 * bias in the GEMM output stage), strided pointwise and general (im2col blocks),
 * int8 inputs (shifted), more than one pixel block; depthwise (channel-vector taps,
 * channel counts off the vector width, strides, dilations, asymmetric pads, a bias
 * near the int32 limits). */
static void test_channels_last_conv(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    static const conv_case cases[] = {
        {{1, 1, 1, 1}, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_U8, 0, 0, NULL, 0, 1},
        {{2, 16, 7, 5}, 33, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_U8, 1, 1, NULL, 0, 1},
        {{1, 13, 9, 11}, 7, 1, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, KN_I8, KN_I8, KN_I8, 0, 1, NULL, 0, 1},
        {{2, 3, 7, 5}, 5, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 1, NULL, 0, 1},
        {{1, 4, 9, 11}, 7, 3, 2, {2, 1}, {1, 2}, {0, 1, 2, 1}, KN_I8, KN_I8, KN_I8, 0, 1, NULL, 0, 1},
        {{1, 3, 40, 41}, 8, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_I8, KN_U8, KN_U8, 0, 1, NULL, 0, 1},
        {{2, 5, 13, 17}, 3, 5, 3, {2, 3}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_I8, 1, 1, "SAME_UPPER", 0, 1},
        {{1, 3, 9, 10}, 5, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_I8, KN_I8, KN_I8, 1, 2, NULL, 0, 1},
        {{1, 8, 9, 7}, 8, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 1, NULL, 8, 1},
        {{2, 37, 10, 13}, 37, 3, 5, {2, 3}, {2, 1}, {0, 2, 1, 3}, KN_I8, KN_I8, KN_I8, 0, 1, NULL, 37, 1},
        {{1, 3, 1, 1}, 3, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_U8, KN_U8, 1, 0, NULL, 3, 1},
        {{1, 19, 14, 15}, 19, 5, 5, {2, 2}, {1, 1}, {0, 0, 0, 0}, KN_U8, KN_I8, KN_I8, 1, 1, "SAME_UPPER", 19, 1},
        {{1, 16, 5, 37}, 16, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 2, NULL, 16, 1},
    };
    for (int i = 0; i < KT_COUNT(cases); i++) {
        check_conv(&cases[i], pool);
        check_conv(&cases[i], NULL);
    }
    kn_threadpool_free(pool);
}

/* ---- com.microsoft QGemm, QLinearAdd, QLinearGlobalAveragePool ---- */

typedef struct gemm_case {
    int64_t m, k, n;
    int trans_b, per_col, bias, quantized;
    kn_dtype at, bt, yt;
} gemm_case;

static bool check_qgemm(const gemm_case *gc, kn_threadpool *pool)
{
    int64_t bdims[2] = {gc->trans_b ? gc->n : gc->k, gc->trans_b ? gc->k : gc->n}, adims[2] = {gc->m, gc->k};
    int64_t nq = gc->per_col ? gc->n : 0;
    float as = 0.02f, bs = 0.01f;
    kn_tensor ins[9];
    ins[0] = random_q8(gc->at, 2, adims, NULL, 1);
    ins[1] = scalar_f32(as);
    ins[2] = zero_points(gc->at, 0);
    ins[5] = zero_points(gc->bt, nq);
    ins[3] = random_q8(gc->bt, 2, bdims, &ins[5], gc->trans_b ? gc->k : 1);
    ins[4] = scales(bs, nq);
    ins[6] = kt_tensor(KN_I32, 1, &gc->n, NULL);
    for (int64_t i = 0; i < gc->n; i++)
        ((int32_t *)ins[6].data)[i] = (int32_t)(next() % 20001) - 10000;
    ins[7] = scalar_f32(y_scale_for(as, bs, gc->k));
    ins[8] = zero_points(gc->quantized ? gc->yt : KN_U8, 0); /* unused for float output */
    qnode q = {.op = "QGemm", .domain = "com.microsoft", .n_in = gc->quantized ? 9 : 7,
               .const_mask = 1u << 3 | 1u << 4 | 1u << 5 | 1u << 6};
    for (int i = 0; i < 9; i++)
        q.in[i] = &ins[i];
    if (!gc->bias)
        q.in[6] = NULL;
    q.attrs[q.n_attr++] = kt_attr_int("transB", gc->trans_b);
    bool st = check_fast_equals_reference(&q, pool);
    kt_release_all(ins, 9);
    return st;
}

static void test_qgemm_fast_equals_reference(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    static const gemm_case cases[] = {
        {1, 1, 1, 0, 0, 0, 1, KN_U8, KN_I8, KN_U8},
        {1, 2048, 1000, 1, 1, 1, 1, KN_U8, KN_I8, KN_U8},
        {3, 7, 5, 0, 1, 1, 1, KN_I8, KN_I8, KN_I8},
        {17, 64, 97, 1, 0, 0, 1, KN_U8, KN_U8, KN_I8},
        {5, 33, 31, 0, 1, 1, 0, KN_U8, KN_I8, KN_F32},
    };
    for (int i = 0; i < KT_COUNT(cases); i++) {
        CHECK(check_qgemm(&cases[i], pool));
        CHECK(check_qgemm(&cases[i], NULL));
    }
    kn_threadpool_free(pool);
}

/* QLinearAdd's formula, written out. */
static int64_t qadd_expected(int64_t a, int64_t b, float ma, float mb, int64_t za, int64_t zb, int64_t zy, bool u8)
{
    float u = (float)(a - za) * ma, v = (float)(b - zb) * mb;
    float q = nearbyintf(u + v) + (float)zy;
    float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
    return (int64_t)(q < lo ? lo : q > hi ? hi : q);
}

/* Same shapes (the vector path, sizes around its chunks) and broadcast shapes. */
static void check_qadd(kn_dtype t, int ra, const int64_t *da, int rb, const int64_t *db, kn_threadpool *pool)
{
    kn_tensor ins[8];
    ins[0] = random_q8(t, ra, da, NULL, 1);
    ins[1] = scalar_f32(0.05f);
    ins[2] = zero_points(t, 0);
    ins[3] = random_q8(t, rb, db, NULL, 1);
    ins[4] = scalar_f32(0.08f);
    ins[5] = zero_points(t, 0);
    ins[6] = scalar_f32(0.1f);
    ins[7] = zero_points(t, 0);
    qnode q = {.op = "QLinearAdd", .domain = "com.microsoft", .n_in = 8};
    for (int i = 0; i < 8; i++)
        q.in[i] = &ins[i];
    check_fast_equals_reference(&q, pool);
    kn_tensor y = run_reference(&q);
    int rank;
    int64_t dims[KN_MAX_RANK], sa[KN_MAX_RANK], sb[KN_MAX_RANK];
    kn_error err = {0};
    CHECK_EQ_INT(kn_broadcast_shape(ra, da, rb, db, &rank, dims, &err), KN_OK);
    kn_broadcast_strides(rank, dims, ra, da, sa);
    kn_broadcast_strides(rank, dims, rb, db, sb);
    int64_t bad = 0, idx[KN_MAX_RANK] = {0};
    for (int64_t i = 0; i < y.numel; i++) {
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < rank; d++) {
            oa += idx[d] * sa[d];
            ob += idx[d] * sb[d];
        }
        int64_t want = qadd_expected(kt_at_i64(&ins[0], oa), kt_at_i64(&ins[3], ob), 0.05f / 0.1f, 0.08f / 0.1f,
                                     kt_at_i64(&ins[2], 0), kt_at_i64(&ins[5], 0), kt_at_i64(&ins[7], 0), t == KN_U8);
        bad += kt_at_i64(&y, i) != want;
        for (int d = rank - 1; d >= 0 && ++idx[d] == dims[d]; d--)
            idx[d] = 0;
    }
    CHECK_EQ_INT(bad, 0);
    kn_tensor_release(&y);
    kt_release_all(ins, 8);
}

static void test_qlinear_add(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    static const int64_t one[1] = {1}, odd[1] = {4096 * 3 + 17}, img[4] = {1, 5, 7, 3}, row[2] = {1, 3},
                         chan[4] = {1, 5, 1, 1}, d15[1] = {15};
    check_qadd(KN_U8, 1, one, 1, one, pool);
    check_qadd(KN_U8, 1, odd, 1, odd, pool);
    check_qadd(KN_I8, 1, odd, 1, odd, NULL);
    check_qadd(KN_I8, 1, d15, 1, d15, pool);
    check_qadd(KN_U8, 4, img, 2, row, pool);
    check_qadd(KN_I8, 4, img, 4, chan, NULL);
    kn_threadpool_free(pool);
}

/* QLinearGlobalAveragePool in both layouts against the formula. */
static void check_qgap(kn_dtype t, const int64_t *dims, bool last)
{
    kn_tensor ins[5];
    ins[0] = random_q8(t, 4, dims, NULL, 1);
    ins[1] = scalar_f32(0.05f);
    ins[2] = zero_points(t, 0);
    ins[3] = scalar_f32(0.03f);
    ins[4] = zero_points(t, 0);
    qnode q = {.op = "QLinearGlobalAveragePool", .domain = "com.microsoft", .n_in = 5};
    for (int i = 0; i < 5; i++)
        q.in[i] = &ins[i];
    q.attrs[q.n_attr++] = kt_attr_int("channels_last", last);
    kn_tensor y = run_reference(&q);
    int64_t ch = last ? dims[3] : dims[1], px = last ? dims[1] * dims[2] : dims[2] * dims[3];
    CHECK_EQ_INT(y.numel, dims[0] * ch);
    CHECK_EQ_INT(y.dims[last ? 3 : 1], ch);
    for (int64_t o = 0; o < y.numel && y.numel == dims[0] * ch; o++) {
        int64_t b = o / ch, c = o % ch, sum = 0;
        for (int64_t p = 0; p < px; p++)
            sum += kt_at_i64(&ins[0], last ? (b * px + p) * ch + c : (b * ch + c) * px + p) - kt_at_i64(&ins[2], 0);
        double v = nearbyint((double)sum * (0.05 / (0.03 * (double)px))) + (double)kt_at_i64(&ins[4], 0);
        double lo = t == KN_U8 ? 0 : -128, hi = t == KN_U8 ? 255 : 127;
        CHECK_EQ_INT(kt_at_i64(&y, o), (int64_t)(v < lo ? lo : v > hi ? hi : v));
    }
    kn_tensor_release(&y);
    kt_release_all(ins, 5);
}

static void test_qlinear_global_average_pool(void)
{
    static const int64_t a[4] = {1, 1, 1, 1}, b[4] = {2, 5, 7, 3}, c[4] = {1, 7, 7, 64};
    check_qgap(KN_U8, a, false);
    check_qgap(KN_U8, b, false);
    check_qgap(KN_I8, b, true);
    check_qgap(KN_U8, c, true);
}

/* 8-bit 2-D MaxPool (pool.c's direct loop) equals float MaxPool on the same values,
 * and com.microsoft NhwcMaxPool equals it transposed. */
static void check_maxpool_q8(kn_dtype t, const int64_t *xdims, const int64_t *k, const int64_t *st,
                             const int64_t *dil, const int64_t *pads, int ceil_mode)
{
    kn_tensor x = random_q8(t, 4, xdims, NULL, 1), xf = kt_tensor(KN_F32, 4, xdims, NULL);
    for (int64_t i = 0; i < x.numel; i++)
        ((float *)xf.data)[i] = (float)kt_at_i64(&x, i);
    qnode q = {.op = "MaxPool", .n_in = 1};
    q.attrs[q.n_attr++] = kt_attr_ints("kernel_shape", 2, k);
    q.attrs[q.n_attr++] = kt_attr_ints("strides", 2, st);
    q.attrs[q.n_attr++] = kt_attr_ints("dilations", 2, dil);
    q.attrs[q.n_attr++] = kt_attr_ints("pads", 4, pads);
    q.attrs[q.n_attr++] = kt_attr_int("ceil_mode", ceil_mode);
    q.in[0] = &xf;
    kn_tensor want = run_reference(&q);
    q.in[0] = &x;
    kn_tensor got = run_reference(&q);
    CHECK(kn_same_shape(&want, &got));
    int64_t bad = 0;
    for (int64_t i = 0; kn_same_shape(&want, &got) && i < got.numel; i++)
        bad += (double)kt_at_i64(&got, i) != kt_at(&want, i);
    CHECK_EQ_INT(bad, 0);
    kn_tensor xl = nchw_to_nhwc(&x, xdims, true);
    q.in[0] = &xl;
    q.op = "NhwcMaxPool";
    q.domain = "com.microsoft";
    kn_tensor gl = run_reference(&q);
    if (gl.rank == 4 && got.rank == 4) {
        kn_tensor back = nchw_to_nhwc(&gl, got.dims, false);
        CHECK(kn_same_shape(&back, &got) && !memcmp(back.data, got.data, (size_t)got.numel));
        kn_tensor_release(&back);
    } else {
        CHECK(false);
    }
    kn_tensor_release(&gl);
    kn_tensor_release(&xl);
    kn_tensor_release(&want);
    kn_tensor_release(&got);
    kn_tensor_release(&x);
    kn_tensor_release(&xf);
}

static void test_maxpool_q8(void)
{
    static const int64_t a[4] = {1, 3, 7, 9}, b[4] = {2, 70, 9, 8}, c[4] = {1, 1, 1, 1};
    static const int64_t k3[2] = {3, 3}, k2[2] = {2, 2}, k1[2] = {1, 1}, s1[2] = {1, 1}, s2[2] = {2, 2},
                         d2[2] = {2, 1}, p0[4] = {0, 0, 0, 0}, p1[4] = {1, 1, 1, 1}, p2[4] = {0, 1, 2, 0};
    check_maxpool_q8(KN_U8, a, k3, s2, s1, p1, 0);
    check_maxpool_q8(KN_I8, a, k3, s2, s1, p1, 1);
    check_maxpool_q8(KN_U8, b, k2, s1, d2, p2, 0);
    check_maxpool_q8(KN_I8, b, k3, s2, s1, p0, 1);
    check_maxpool_q8(KN_U8, c, k1, s1, s1, p0, 0);
}

/* Other grouped convolutions keep the reference (no state), with equal results. */
static void test_grouped_conv_uses_reference(void)
{
    conv_case cc = {{1, 4, 6, 5}, 6, 3, 3, {1, 1}, {1, 1}, {1, 1, 1, 1}, KN_U8, KN_I8, KN_U8, 1, 1, NULL, 2};
    CHECK(!check_conv(&cc, NULL));
}

TEST_MAIN(TEST_CASE(test_matmul_fast_equals_reference),
          TEST_CASE(test_matmul_unpackable_weight_uses_reference),
          TEST_CASE(test_conv_fast_equals_reference),
          TEST_CASE(test_depthwise_conv_fast_equals_reference),
          TEST_CASE(test_grouped_conv_uses_reference),
          TEST_CASE(test_channels_last_conv), TEST_CASE(test_qgemm_fast_equals_reference),
          TEST_CASE(test_qlinear_add), TEST_CASE(test_qlinear_global_average_pool), TEST_CASE(test_maxpool_q8))
