/* test_qdyn.c - dynamic INT8 execution: the uint8 activation quantizer
 * (kernels/dynquant: every ISA path the CPU has against the plain C reference,
 * exact bytes, awkward lengths, NaN/inf/-0, threaded whole tensors), the
 * DynamicQuantizeMatMul and MatMulInteger fast paths on the packed integer GEMM
 * against their reference loops (prepared vs unprepared, with and without a
 * 2-thread pool), the fuse_dynamic_quant pass on hand-built patterns (positive and
 * negative), and tiny_bert quantized by kn_quantize_model (ONNX Runtime's
 * quantize_dynamic form) run fused against unfused and against FP32. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "exec/threadpool.h"
#include "formats/npy.h"
#include "formats/onnx.h"
#include "kernels/dynquant.h"
#include "opt/opt.h"
#include "quant/quant.h"
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345u;
static uint32_t rnd(void)
{
    kt_lcg32(&rng);
    return rng >> 8;
}
static float frnd(float amp)
{
    return ((float)(rnd() % 20001) / 10000.0f - 1.0f) * amp;
}

/* ---- the quantizer kernels ---- */

static const size_t lengths[] = {0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 97, 1000, 4099, 70001};

/* x[i] random in [-amp, amp] plus (special) a few NaN, inf and -0 values */
static float *make_x(size_t n, float amp, int special)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        x[i] = frnd(amp);
    if (special && n > 3) {
        x[n / 2] = NAN;
        x[1] = -0.0f;
        if (special > 1)
            x[n - 1] = INFINITY;
    }
    return x;
}

static void check_isa_equals_ref(const float *x, size_t n)
{
    float lo_r = 0.0f, hi_r = 0.0f, s_r;
    uint8_t z_r;
    kn_dynq_minmax_ref(x, n, &lo_r, &hi_r);
    kn_dynq_params(lo_r, hi_r, &s_r, &z_r);
    uint8_t *qr = malloc(n + 1), *qi = malloc(n + 1);
    kn_dynq_quantize_ref(x, n, s_r, z_r, qr);
    for (int isa = KN_ISA_GENERIC; isa <= (int)kn_cpu_isa_supported(); isa++) {
        float lo = 0.0f, hi = 0.0f;
        kn_dynq_minmax_isa((kn_isa)isa, x, n, &lo, &hi);
        CHECK(lo == lo_r && hi == hi_r);
        kn_dynq_quantize_isa((kn_isa)isa, x, n, s_r, z_r, qi);
        CHECK(n == 0 || memcmp(qr, qi, n) == 0);
    }
    free(qr);
    free(qi);
}

static void test_quantizer_isa(void)
{
    for (size_t li = 0; li < KT_COUNT(lengths); li++) {
        for (int special = 0; special < 3; special++) {
            float *x = make_x(lengths[li], special ? 3.0f : 0.7f, special);
            check_isa_equals_ref(x, lengths[li]);
            free(x);
        }
    }
    /* all positive, all negative, all zero: the range still includes 0 */
    float pos[37], neg[37], zero[37] = {0};
    for (int i = 0; i < 37; i++) {
        pos[i] = 1.0f + (float)i;
        neg[i] = -2.0f - (float)i * 0.5f;
    }
    check_isa_equals_ref(pos, 37);
    check_isa_equals_ref(neg, 37);
    check_isa_equals_ref(zero, 37);
    /* the formula on a known case: range [-1, 2] */
    float s;
    uint8_t z;
    kn_dynq_params(-1.0f, 2.0f, &s, &z);
    CHECK_NEAR(s, 3.0f / 255.0f, 1e-9);
    CHECK_EQ_INT(z, 85);
}

static void test_quantizer_threaded(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    CHECK(pool != NULL);
    size_t sizes[] = {1, 33, 16384, 16385, 100003, 1100017};
    for (size_t si = 0; si < KT_COUNT(sizes); si++) {
        size_t n = sizes[si];
        float *x = make_x(n, 5.0f, 1);
        uint8_t *qr = malloc(n), *q1 = malloc(n), *q2 = malloc(n);
        float lo = 0.0f, hi = 0.0f, sr, s1, s2;
        uint8_t zr, z1, z2;
        kn_dynq_minmax_ref(x, n, &lo, &hi);
        kn_dynq_params(lo, hi, &sr, &zr);
        kn_dynq_quantize_ref(x, n, sr, zr, qr);
        kn_dynq_tensor(NULL, x, n, q1, &s1, &z1);
        kn_dynq_tensor(pool, x, n, q2, &s2, &z2);
        CHECK(s1 == sr && s2 == sr && z1 == zr && z2 == zr);
        CHECK(memcmp(qr, q1, n) == 0 && memcmp(qr, q2, n) == 0);
        free(x), free(qr), free(q1), free(q2);
    }
    kn_threadpool_free(pool);
}

/* ---- one-node models: reference (unprepared) vs fast (prepared) ---- */

static kn_model *model_with_ms(void)
{
    kn_model *m = kt_model_new(13);
    kn_opset_import *o = kn_arena_calloc(&m->arena, 2, sizeof *o);
    o[0] = m->opsets[0];
    o[1].domain = "com.microsoft";
    o[1].version = 1;
    m->opsets = o;
    m->n_opsets = 2;
    return m;
}

static bool same_bytes(const kn_tensor *a, const kn_tensor *b)
{
    return a->dtype == b->dtype && kn_same_shape(a, b) && (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

/* Runs m's single output three ways: unprepared (reference), prepared inline and
 * prepared on a 2-thread pool.  tol 0: identical bytes (integer outputs, and
 * DynamicQuantizeMatMul, whose output stage computes the reference's float
 * formula); else floats within tol relative to the largest magnitude. */
static bool run_ref_and_fast(kn_model *m, const kn_tensor *feed, double tol)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    kn_tensor ref = {0}, f1 = {0}, f2 = {0};
    const kn_tensor *feeds[1] = {feed};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph(m->graph, NULL, 1, feeds, 1, &ref, &err), KN_OK);
    CHECK_EQ_INT(kn_model_prepare(m, &err), KN_OK);
    bool has_state = m->graph->nodes[0].state != NULL;
    kn_exec_env env = {.pool = pool};
    CHECK_EQ_INT(kn_exec_graph(m->graph, NULL, 1, feeds, 1, &f1, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph_env(m->graph, &env, 1, feeds, 1, &f2, &err), KN_OK);
    if (err.code)
        fprintf(stderr, "  run: %s\n", err.msg);
    if (ref.dtype != KN_F32 || tol == 0.0) {
        CHECK(same_bytes(&ref, &f1) && same_bytes(&ref, &f2));
    } else if (kn_same_shape(&ref, &f1) && kn_same_shape(&ref, &f2)) {
        double amax = 1e-30;
        for (int64_t i = 0; i < ref.numel; i++)
            amax = fmax(amax, fabs(kt_at(&ref, i)));
        for (int64_t i = 0; i < ref.numel; i++) {
            CHECK_NEAR(kt_at(&f1, i), kt_at(&ref, i), tol * amax);
            CHECK_NEAR(kt_at(&f2, i), kt_at(&ref, i), tol * amax);
        }
    } else {
        CHECK(false);
    }
    kn_tensor_release(&ref);
    kn_tensor_release(&f1);
    kn_tensor_release(&f2);
    kn_threadpool_free(pool);
    return has_state;
}

static kn_tensor random_8bit(kn_dtype t, int rank, const int64_t *dims, int span)
{
    kn_tensor x = kt_tensor(t, rank, dims, NULL);
    for (int64_t i = 0; i < x.numel; i++) {
        int v = (int)(rnd() % (unsigned)span) - span / 2;
        if (t == KN_U8)
            ((uint8_t *)x.data)[i] = (uint8_t)(v + 128);
        else
            ((int8_t *)x.data)[i] = (int8_t)v;
    }
    return x;
}

static kn_tensor random_f32(int rank, const int64_t *dims, float amp)
{
    kn_tensor x = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < x.numel; i++)
        ((float *)x.data)[i] = frnd(amp);
    return x;
}

typedef struct dq_case {
    int rank;
    int64_t adims[3];       /* A's dims, last = K */
    int64_t n;
    kn_dtype bt;
    int per_col, zp, bias;  /* per-column scale/zero point; zero point input; bias input */
} dq_case;

static const dq_case dq_cases[] = {
    {2, {1, 1}, 1, KN_I8, 0, 0, 0},        {2, {3, 5}, 7, KN_I8, 1, 1, 1},
    {2, {13, 97}, 33, KN_I8, 1, 0, 1},     {3, {2, 64, 64}, 65, KN_I8, 1, 1, 0},
    {2, {17, 31}, 96, KN_U8, 1, 1, 1},     {3, {1, 128, 40}, 130, KN_U8, 0, 1, 1},
    {1, {29}, 11, KN_I8, 1, 1, 1},         {2, {5, 300}, 3, KN_U8, 0, 0, 1},
    {2, {3, 0}, 5, KN_I8, 1, 1, 1}, /* K = 0: bias only */
};

static kn_tensor dq_zero_point(const dq_case *c, int64_t nq)
{
    kn_tensor z = kt_tensor(c->bt, nq ? 1 : 0, &nq, NULL);
    for (int64_t i = 0; i < z.numel; i++) {
        if (c->bt == KN_U8)
            ((uint8_t *)z.data)[i] = (uint8_t)(118 + rnd() % 20);
        else
            ((int8_t *)z.data)[i] = (int8_t)(c->per_col ? (int)(rnd() % 9) - 4 : 0);
    }
    return z;
}

static void check_dqmm_case(const dq_case *c)
{
    int64_t k = c->adims[c->rank - 1], bd[2] = {k, c->n}, nq = c->per_col ? c->n : 0;
    kn_model *m = model_with_ms();
    kn_graph *g = m->graph;
    kn_tensor a = random_f32(c->rank, c->adims, 2.0f), b = random_8bit(c->bt, 2, bd, 200);
    kn_tensor s = kt_tensor(KN_F32, nq ? 1 : 0, &nq, NULL), z = dq_zero_point(c, nq);
    for (int64_t i = 0; i < s.numel; i++)
        ((float *)s.data)[i] = 0.001f + (float)(rnd() % 100) * 1e-4f;
    kn_tensor bias = random_f32(1, &c->n, 0.5f);
    kt_graph_type(g, "a", KN_F32, c->rank, c->adims);
    kn_graph_add_input(g, kn_graph_value(g, "a"));
    kt_graph_const(g, "b", &b);
    kt_graph_const(g, "s", &s);
    kt_graph_const(g, "z", &z);
    kt_graph_const(g, "bias", &bias);
    const char *ins = c->bias ? (c->zp ? "a,b,s,z,bias" : "a,b,s,,bias") : c->zp ? "a,b,s,z" : "a,b,s";
    int i = kt_graph_node(g, "DynamicQuantizeMatMul", ins, "y");
    g->nodes[i].domain = "com.microsoft";
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    /* uint8 B without a zero point does not fit int8: the reference runs */
    bool packable = (c->bt == KN_I8 || c->zp) && k > 0;
    CHECK(run_ref_and_fast(m, &a, 0.0) == packable);
    kn_model_free(m);
    kt_release_all((kn_tensor[]){a, b, s, z, bias}, 5);
}

static void test_dynamic_quantize_matmul(void)
{
    for (size_t i = 0; i < KT_COUNT(dq_cases); i++)
        check_dqmm_case(&dq_cases[i]);
}

/* Inputs that do not fit fail with an error naming them, never crash. */
static void test_dqmm_bad_inputs(void)
{
    const int64_t ad[2] = {3, 4}, bd[2] = {4, 5}, bad_k[2] = {6, 5}, n5[1] = {5}, n4[1] = {4};
    kn_tensor a = random_f32(2, ad, 1.0f), b = random_8bit(KN_I8, 2, bd, 50), bk = random_8bit(KN_I8, 2, bad_k, 50);
    kn_tensor s5 = random_f32(1, n5, 0.1f), s4 = random_f32(1, n4, 0.1f), bias4 = random_f32(1, n4, 1.0f);
    kn_tensor ai = random_8bit(KN_I8, 2, ad, 50), z16 = kt_tensor(KN_I16, 1, n5, NULL);
    const kn_tensor *cases[][5] = {
        {&a, &bk, &s5, NULL, NULL},   /* K differs */
        {&a, &b, &s4, NULL, NULL},    /* 4 scales for N = 5 */
        {&a, &b, &s5, NULL, &bias4},  /* bias of 4 */
        {&ai, &b, &s5, NULL, NULL},   /* integer A */
        {&a, &b, &s5, &z16, NULL},    /* zero point type differs from B */
        {&a, &s5, &s5, NULL, NULL},   /* float B */
    };
    for (size_t i = 0; i < KT_COUNT(cases); i++) {
        kt_node nd = kt_node_of("com.microsoft", "DynamicQuantizeMatMul", 1, 1);
        for (int k = 0; k < 5; k++)
            kt_add_input(&nd, cases[i][k]);
        kt_expect_any_fail(&nd);
    }
    kt_release_all((kn_tensor[]){a, b, bk, s5, s4, bias4, ai, z16}, 8);
}

/* MatMulInteger with a constant B: exact int32 either way. */
static void check_mmi(kn_dtype at, kn_dtype bt, int rank, const int64_t *adims, int64_t n, bool per_col_zp)
{
    int64_t k = adims[rank - 1], bd[2] = {k, n}, nz = per_col_zp ? n : 0;
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    kn_tensor a = random_8bit(at, rank, adims, 256), b = random_8bit(bt, 2, bd, 120);
    kn_tensor az = random_8bit(at, 0, NULL, 256), bz = random_8bit(bt, nz ? 1 : 0, &nz, 16);
    kt_graph_type(g, "a", at, rank, adims);
    kn_graph_add_input(g, kn_graph_value(g, "a"));
    kt_graph_const(g, "b", &b);
    kt_graph_const(g, "az", &az);
    kt_graph_const(g, "bz", &bz);
    kt_graph_node(g, "MatMulInteger", "a,b,az,bz", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    CHECK(run_ref_and_fast(m, &a, 0.0));
    kn_model_free(m);
    kt_release_all((kn_tensor[]){a, b, az, bz}, 4);
}

static void test_matmul_integer_fast(void)
{
    const int64_t d1[2] = {1, 1}, d2[2] = {7, 19}, d3[3] = {2, 33, 64}, d4[2] = {128, 97}, d5[1] = {45};
    check_mmi(KN_U8, KN_I8, 2, d1, 1, false);
    check_mmi(KN_U8, KN_I8, 2, d2, 37, true);
    check_mmi(KN_I8, KN_I8, 3, d3, 65, true);
    check_mmi(KN_U8, KN_U8, 2, d4, 31, false);
    check_mmi(KN_I8, KN_U8, 1, d5, 8, true);
}

/* ConvInteger (2-D, group 1) with a constant weight: exact int32 either way. */
typedef struct ci_case {
    kn_dtype xt, wt;
    int64_t n, c, h, w, m, kh, kw;
    int64_t stride, dil, pad;
    bool per_channel_zp;
} ci_case;

static void check_conv_integer(const ci_case *cc)
{
    int64_t xd[4] = {cc->n, cc->c, cc->h, cc->w}, wd[4] = {cc->m, cc->c, cc->kh, cc->kw};
    int64_t nz = cc->per_channel_zp ? cc->m : 0;
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    kn_tensor x = random_8bit(cc->xt, 4, xd, 256), w = random_8bit(cc->wt, 4, wd, 100);
    kn_tensor xz = random_8bit(cc->xt, 0, NULL, 256), wz = random_8bit(cc->wt, nz ? 1 : 0, &nz, 16);
    kt_graph_type(g, "x", cc->xt, 4, xd);
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    kt_graph_const(g, "w", &w);
    kt_graph_const(g, "xz", &xz);
    kt_graph_const(g, "wz", &wz);
    int i = kt_graph_node(g, "ConvInteger", "x,w,xz,wz", "y");
    int64_t st[2] = {cc->stride, cc->stride}, dl[2] = {cc->dil, cc->dil};
    int64_t pads[4] = {cc->pad, cc->pad, cc->pad, cc->pad};
    kn_error err = {0};
    kn_opt_set_attr_ints(g, i, "strides", st, 2, &err);
    kn_opt_set_attr_ints(g, i, "dilations", dl, 2, &err);
    kn_opt_set_attr_ints(g, i, "pads", pads, 4, &err);
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    CHECK(run_ref_and_fast(m, &x, 0.0));
    kn_model_free(m);
    kt_release_all((kn_tensor[]){x, w, xz, wz}, 4);
}

static void test_conv_integer_fast(void)
{
    static const ci_case cases[] = {
        {KN_U8, KN_I8, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, false},
        {KN_U8, KN_I8, 2, 3, 9, 7, 5, 3, 3, 1, 1, 1, true},
        {KN_I8, KN_I8, 1, 8, 17, 19, 33, 3, 3, 2, 1, 1, true},
        {KN_U8, KN_U8, 1, 5, 20, 20, 4, 5, 3, 1, 2, 2, false},
        {KN_I8, KN_U8, 2, 16, 18, 18, 7, 1, 1, 1, 1, 0, true}, /* 324 pixels: two blocks */
    };
    for (size_t i = 0; i < KT_COUNT(cases); i++)
        check_conv_integer(&cases[i]);
}

/* Cast int32 -> float (after ConvInteger) rounds to nearest even, symmetrically. */
static void test_cast_accumulators(void)
{
    const int32_t v[7] = {0, 16777217, -16777217, 33554435, -33554437, INT32_MAX, INT32_MIN};
    const float want[7] = {0.0f, 16777216.0f, -16777216.0f, 33554436.0f, -33554436.0f, 2147483648.0f, -2147483648.0f};
    const int64_t d[1] = {7};
    kn_tensor x = kt_tensor(KN_I32, 1, d, v);
    kt_node nd = kt_node_of("", "Cast", 13, 1);
    kt_add_input(&nd, &x);
    kt_add_attr(&nd, kt_attr_int("to", KN_F32));
    kt_expect_out(&nd, KN_F32, 1, d, want);
    kn_tensor_release(&x);
}

/* ---- the fusion ---- */

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}

enum { SHARED_DQL = 1, CAST_READ = 2, NO_BIAS = 4, PER_TENSOR = 8, SCALE_FIRST = 16 };

/* x [5, 24] -> DynamicQuantizeLinear -> MatMulInteger(W [24, 10] int8) -> Cast ->
 * Mul(x_scale * w_scale) [-> Add(bias)]; SHARED_DQL: a second branch on the same
 * quantized x; CAST_READ: the Cast output is also a graph output. */
static kn_model *dyn_pattern(int flags)
{
    static const int64_t xd[2] = {5, 24}, wd[2] = {24, 10}, nd[1] = {10};
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    kt_graph_type(g, "x", KN_F32, 2, xd);
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    kn_tensor w = random_8bit(KN_I8, 2, wd, 254), w1 = random_8bit(KN_I8, 2, wd, 254);
    kn_tensor wz = kt_tensor(KN_I8, 1, nd, NULL);
    kn_tensor ws = random_f32(flags & PER_TENSOR ? 0 : 1, nd, 0.01f), bias = random_f32(1, nd, 1.0f);
    for (int64_t i = 0; i < ws.numel; i++)
        ((float *)ws.data)[i] = fabsf(((float *)ws.data)[i]) + 1e-3f;
    kt_graph_const(g, "w", &w);
    kt_graph_const(g, "w1", &w1);
    kt_graph_const(g, "wz", &wz);
    kt_graph_const(g, "ws", &ws);
    kt_graph_const(g, "bias", &bias);
    kt_graph_node(g, "DynamicQuantizeLinear", "x", "xq,xs,xz");
    for (int br = 0; br < (flags & SHARED_DQL ? 2 : 1); br++) {
        char ins[64], outs[16];
        snprintf(outs, sizeof outs, "acc%d", br);
        kt_graph_node(g, "MatMulInteger", br ? "xq,w1,xz,wz" : "xq,w,xz,wz", outs); /* distinct: no CSE */
        snprintf(ins, sizeof ins, "acc%d", br), snprintf(outs, sizeof outs, "f%d", br);
        int ci = kt_graph_node(g, "Cast", ins, outs);
        kn_error err = {0};
        kn_opt_set_attr_int(g, ci, "to", KN_F32, &err);
        snprintf(outs, sizeof outs, "sc%d", br);
        kt_graph_node(g, "Mul", flags & SCALE_FIRST ? "ws,xs" : "xs,ws", outs);
        snprintf(ins, sizeof ins, br ? "sc1,f1" : "f0,sc0"), snprintf(outs, sizeof outs, "p%d", br);
        kt_graph_node(g, "Mul", ins, flags & NO_BIAS ? (br ? "y1" : "y0") : outs);
        if (!(flags & NO_BIAS)) {
            snprintf(ins, sizeof ins, br ? "bias,p1" : "p0,bias");
            kt_graph_node(g, "Add", ins, br ? "y1" : "y0");
        }
        kn_graph_add_output(g, kn_graph_value(g, br ? "y1" : "y0"));
    }
    if (flags & CAST_READ)
        kn_graph_add_output(g, kn_graph_value(g, "f0"));
    kt_release_all((kn_tensor[]){w, w1, wz, ws, bias}, 5);
    return m;
}

static void check_dyn_fusion(int flags, int want_fused)
{
    uint32_t saved = rng;
    kn_model *a = dyn_pattern(flags);
    rng = saved;
    kn_model *b = dyn_pattern(flags);
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(a, &err), KN_OK);
    CHECK_EQ_INT(kn_model_finalize(b, &err), KN_OK);
    CHECK_EQ_INT(kn_optimize(b, KN_OPT_EXTENDED, NULL, &err), KN_OK);
    CHECK_EQ_INT(count_op(b->graph, "DynamicQuantizeMatMul"), want_fused);
    if (want_fused == (flags & SHARED_DQL ? 2 : 1)) {
        CHECK_EQ_INT(count_op(b->graph, "MatMulInteger"), 0);
        CHECK_EQ_INT(count_op(b->graph, "DynamicQuantizeLinear"), 0);
        CHECK_EQ_INT(count_op(b->graph, "Add"), 0);
    }
    static const int64_t xd[2] = {5, 24};
    kn_tensor x = random_f32(2, xd, 3.0f);
    const kn_tensor *feeds[1] = {&x};
    int n_out = a->graph->n_outputs;
    kn_tensor oa[3] = {{0}}, ob[3] = {{0}};
    CHECK_EQ_INT(kn_model_prepare(b, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph(a->graph, NULL, 1, feeds, n_out, oa, &err), KN_OK);
    CHECK_EQ_INT(kn_exec_graph(b->graph, NULL, 1, feeds, n_out, ob, &err), KN_OK);
    for (int k = 0; k < n_out; k++) {
        CHECK(kn_same_shape(&oa[k], &ob[k]));
        for (int64_t i = 0; kn_same_shape(&oa[k], &ob[k]) && i < oa[k].numel; i++)
            CHECK_NEAR(kt_at(&ob[k], i), kt_at(&oa[k], i), 1e-5 * (1.0 + fabs(kt_at(&oa[k], i))));
    }
    kt_release_all(oa, n_out);
    kt_release_all(ob, n_out);
    kn_tensor_release(&x);
    kn_model_free(a);
    kn_model_free(b);
}

static void test_fuse_dynamic_quant(void)
{
    check_dyn_fusion(0, 1);
    check_dyn_fusion(NO_BIAS, 1);
    check_dyn_fusion(PER_TENSOR | SCALE_FIRST, 1);
    check_dyn_fusion(SHARED_DQL, 2);
    check_dyn_fusion(SHARED_DQL | NO_BIAS | PER_TENSOR, 2);
    check_dyn_fusion(CAST_READ, 0);
}

/* ---- tiny_bert through kiln quantize --mode dynamic ---- */

static kn_model *tiny_bert_dynamic(void)
{
    kn_model *m = NULL;
    kn_error err = {0};
    if (kn_onnx_load_file(KILN_SHARED_DIR "/models/tiny_bert.onnx", &m, &err))
        return NULL;
    kn_quant_opts o;
    kn_quant_opts_init(&o);
    o.mode = KN_QMODE_DYNAMIC;
    kn_quant_report rep;
    CHECK_EQ_INT(kn_quantize_model(m, &o, &rep, &err), KN_OK);
    CHECK(rep.nodes_quantized >= 6);
    return m;
}

static int run_on_recorded(kn_model *m, kn_tensor *out)
{
    kn_error err = {0};
    kn_tensor ids = {0};
    int rc = kn_npy_read_file(KILN_SHARED_DIR "/models/tiny_bert.in.input_ids.npy", &ids, &err);
    const kn_tensor *feeds[1] = {&ids};
    if (!rc)
        rc = kn_model_prepare(m, &err);
    if (!rc)
        rc = kn_exec_graph(m->graph, NULL, 1, feeds, 1, out, &err);
    if (rc)
        fprintf(stderr, "  tiny_bert: %s\n", err.msg);
    kn_tensor_release(&ids);
    return rc;
}

static void test_tiny_bert_dynamic(void)
{
    kn_model *fused = tiny_bert_dynamic(), *plain = tiny_bert_dynamic(), *fp32 = NULL;
    kn_error err = {0};
    CHECK(fused && plain);
    if (!fused || !plain || kn_onnx_load_file(KILN_SHARED_DIR "/models/tiny_bert.onnx", &fp32, &err)) {
        kn_model_free(fused), kn_model_free(plain);
        return;
    }
    int n_mmi = count_op(fused->graph, "MatMulInteger");
    CHECK(n_mmi >= 6);
    kn_opt_report rep;
    CHECK_EQ_INT(kn_optimize(fused, KN_OPT_EXTENDED, &rep, &err), KN_OK);
    CHECK_EQ_INT(count_op(fused->graph, "DynamicQuantizeMatMul"), n_mmi);
    CHECK_EQ_INT(count_op(fused->graph, "MatMulInteger"), 0);
    CHECK(count_op(fused->graph, "SkipLayerNormalization") > 0);
    CHECK(count_op(fused->graph, "LayerNormalization") > 0);
    CHECK(count_op(fused->graph, "Gelu") > 0);
    kn_tensor yf = {0}, yp = {0}, y32 = {0};
    CHECK_EQ_INT(run_on_recorded(fused, &yf), KN_OK);
    CHECK_EQ_INT(run_on_recorded(plain, &yp), KN_OK);
    CHECK_EQ_INT(run_on_recorded(fp32, &y32), KN_OK);
    if (kn_same_shape(&yf, &y32) && kn_same_shape(&yp, &y32)) {
        double amax = 0.0;
        for (int64_t i = 0; i < y32.numel; i++)
            amax = fmax(amax, fabs(kt_at(&y32, i)));
        for (int64_t i = 0; i < y32.numel; i++) {
            /* fused vs unfused: float reassociation can move a value across a
             * rounding boundary of the activation quantizer; vs FP32: int8 error */
            CHECK_NEAR(kt_at(&yf, i), kt_at(&yp, i), 0.02 * amax);
            CHECK_NEAR(kt_at(&yf, i), kt_at(&y32, i), 0.1 * amax);
        }
    } else {
        CHECK(false);
    }
    kt_release_all((kn_tensor[]){yf, yp, y32}, 3);
    kn_model_free(fused);
    kn_model_free(plain);
    kn_model_free(fp32);
}

TEST_MAIN(TEST_CASE(test_quantizer_isa), TEST_CASE(test_quantizer_threaded),
          TEST_CASE(test_dynamic_quantize_matmul), TEST_CASE(test_dqmm_bad_inputs), TEST_CASE(test_matmul_integer_fast),
          TEST_CASE(test_conv_integer_fast), TEST_CASE(test_cast_accumulators),
          TEST_CASE(test_fuse_dynamic_quant), TEST_CASE(test_tiny_bert_dynamic))
