/* test_ops_nchwc.c - the kiln.nchwc operators (src/ops/nchwc.c) one node at a time:
 * reorders both ways, Conv (weights packed per call, as without a prepare hook),
 * pools, GlobalAveragePool, Add / Mul per pixel and per channel, each against the
 * default-domain operator on the NCHW tensor, and the malformed inputs each one
 * must refuse with a clear error. */
#include "test.h"
#include "op_harness.h"

#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/nchwc.h"

#define ND "kiln.nchwc"

static uint32_t seed = 7u;

/* An owned float32 tensor of random values in [-1, 1). */
static kn_tensor rand_tensor(int rank, const int64_t *dims)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t.numel; i++)
        ((float *)t.data)[i] = (float)(kt_lcg32(&seed) >> 8) / 8388608.0f - 1.0f;
    return t;
}

/* Runs a one-input node of the blocked domain (or default when domain NULL). */
static kn_tensor run1(const char *domain, const char *op, const kn_tensor *x, int n_attr,
                      const kn_attr *attrs)
{
    kt_node n = kt_node_of(domain, op, domain ? 1 : 13, 1);
    kt_add_input(&n, x);
    for (int i = 0; i < n_attr; i++)
        kt_add_attr(&n, attrs[i]);
    return kt_expect_ok(&n);
}

static kn_tensor to_blocked(const kn_tensor *x)
{
    return run1(ND, "ReorderInput", x, 0, NULL);
}

static kn_tensor to_nchw(const kn_tensor *x, int64_t channels)
{
    kn_attr a = kt_attr_int("channels", channels);
    return run1(ND, "ReorderOutput", x, 1, &a);
}

static void check_same(const kn_tensor *got, const kn_tensor *want, double tol)
{
    kt_check_f32_shaped(got, want->rank, want->dims, want->data, tol);
}

static void test_reorder_round_trip(void)
{
    static const int64_t d[4] = {2, 20, 3, 5};
    kn_tensor x = rand_tensor(4, d), b = to_blocked(&x);
    static const int64_t bd[4] = {2, 32, 3, 5};
    kt_check_dims(&b, 4, bd);
    /* channel 17 of image 1 at pixel 4 sits in block 1, lane 1 */
    const float *bx = b.data, *xx = x.data;
    CHECK_NEAR(bx[((1 * 2 + 1) * 15 + 4) * 16 + 1], xx[(1 * 20 + 17) * 15 + 4], 0.0);
    CHECK_NEAR(bx[((1 * 2 + 1) * 15 + 4) * 16 + 9], 0.0, 0.0); /* padding channel 25 */
    kn_tensor back = to_nchw(&b, 20);
    check_same(&back, &x, 0.0);
    kn_tensor ts[3] = {x, b, back};
    kt_release_all(ts, 3);
}

/* Conv 20 -> 24, 3x3, stride 2, pads 1 0 1 2, bias, Relu, residual: blocked vs
 * FusedConv on NCHW. */
static void test_conv_matches_fused_conv(void)
{
    static const int64_t xd[4] = {2, 20, 9, 8}, wd[4] = {24, 20, 3, 3}, bd[1] = {24};
    static const int64_t zd[4] = {2, 24, 5, 4}, pads[4] = {1, 0, 1, 2}, st[2] = {2, 2};
    kn_tensor x = rand_tensor(4, xd), w = rand_tensor(4, wd), b = rand_tensor(1, bd);
    kn_tensor z = rand_tensor(4, zd);
    kn_attr attrs[3] = {kt_attr_ints("pads", 4, pads), kt_attr_ints("strides", 2, st),
                        kt_attr_str("activation", "Relu")};
    kt_node ref = kt_node_of("com.microsoft", "FusedConv", 1, 1);
    const kn_tensor *ins[4] = {&x, &w, &b, &z};
    for (int i = 0; i < 4; i++)
        kt_add_input(&ref, ins[i]);
    for (int i = 0; i < 3; i++)
        kt_add_attr(&ref, attrs[i]);
    kn_tensor want = kt_expect_ok(&ref);
    kn_tensor bx = to_blocked(&x), bz = to_blocked(&z);
    kt_node n = kt_node_of(ND, "Conv", 1, 1);
    const kn_tensor *bins[4] = {&bx, &w, &b, &bz};
    for (int i = 0; i < 4; i++)
        kt_add_input(&n, bins[i]);
    for (int i = 0; i < 3; i++)
        kt_add_attr(&n, attrs[i]);
    kn_tensor by = kt_expect_ok(&n), got = to_nchw(&by, 24);
    check_same(&got, &want, 1e-4);
    /* malformed: residual of another shape, input with the wrong channel count */
    n.in[3] = &bx;
    kt_expect_fail(&n, KN_ERR_ARG);
    n.in[3] = &bz;
    n.in[0] = &x; /* 20 channels, not the blocked 32 */
    kt_expect_fail(&n, KN_ERR_ARG);
    kn_tensor ts[9] = {x, w, b, z, want, bx, bz, by, got};
    kt_release_all(ts, 9);
}

/* A stem (input_nchw = 1): Conv 3 -> 24, 7x7, stride 2, pads 3, bias, Clip, on
 * the NCHW image, against FusedConv. */
static void test_stem_conv(void)
{
    static const int64_t xd[4] = {2, 3, 13, 12}, wd[4] = {24, 3, 7, 7}, bd[1] = {24};
    static const int64_t pads[4] = {3, 3, 3, 3}, st[2] = {2, 2};
    static const float clip[2] = {-0.5f, 0.5f};
    kn_tensor x = rand_tensor(4, xd), w = rand_tensor(4, wd), b = rand_tensor(1, bd);
    kn_attr attrs[4] = {kt_attr_ints("pads", 4, pads), kt_attr_ints("strides", 2, st),
                        kt_attr_str("activation", "Clip"),
                        kt_attr_floats("activation_params", 2, clip)};
    const kn_tensor *ins[3] = {&x, &w, &b};
    kt_node ref = kt_node_of("com.microsoft", "FusedConv", 1, 1), n = kt_node_of(ND, "Conv", 1, 1);
    for (int i = 0; i < 3; i++) {
        kt_add_input(&ref, ins[i]);
        kt_add_input(&n, ins[i]);
    }
    for (int i = 0; i < 4; i++) {
        kt_add_attr(&ref, attrs[i]);
        kt_add_attr(&n, attrs[i]);
    }
    kt_add_attr(&n, kt_attr_int("input_nchw", 1));
    kn_tensor want = kt_expect_ok(&ref), by = kt_expect_ok(&n), got = to_nchw(&by, 24);
    check_same(&got, &want, 1e-5);
    kn_tensor bx = to_blocked(&x);
    n.in[0] = &bx; /* a blocked input is not an NCHW image of 3 channels */
    kt_expect_fail(&n, KN_ERR_ARG);
    kn_tensor ts[7] = {x, w, b, want, by, got, bx};
    kt_release_all(ts, 7);
}

/* Depthwise 5x5 stride 1 with dilation 2 against Conv(group). */
static void test_depthwise_conv(void)
{
    static const int64_t xd[4] = {1, 24, 11, 10}, wd[4] = {24, 1, 3, 3};
    static const int64_t pads[4] = {2, 2, 2, 2}, dil[2] = {2, 2};
    kn_tensor x = rand_tensor(4, xd), w = rand_tensor(4, wd);
    kn_attr attrs[3] = {kt_attr_ints("pads", 4, pads), kt_attr_ints("dilations", 2, dil),
                        kt_attr_int("group", 24)};
    const kn_tensor *ins[2] = {&x, &w};
    kn_tensor want = {0};
    CHECK_EQ_INT(kt_run_op("Conv", 13, 2, ins, 3, attrs, 1, &want, &(kn_error){0}), KN_OK);
    kn_tensor bx = to_blocked(&x);
    kt_node n = kt_node_of(ND, "Conv", 1, 1);
    kt_add_input(&n, &bx);
    kt_add_input(&n, &w);
    for (int i = 0; i < 3; i++)
        kt_add_attr(&n, attrs[i]);
    kn_tensor by = kt_expect_ok(&n), got = to_nchw(&by, 24);
    check_same(&got, &want, 1e-5);
    kn_tensor ts[6] = {x, w, want, bx, by, got};
    kt_release_all(ts, 6);
}

/* MaxPool 3x3 s2 pads 1 (ceil_mode), AveragePool 2x2 count_include_pad with
 * pads, GlobalAveragePool: blocked vs NCHW. */
static void test_pools(void)
{
    static const int64_t xd[4] = {2, 17, 7, 6}, k3[2] = {3, 3}, k2[2] = {2, 2}, s2[2] = {2, 2};
    static const int64_t p1[4] = {1, 1, 1, 1}, p01[4] = {0, 1, 1, 0};
    kn_tensor x = rand_tensor(4, xd), bx = to_blocked(&x);
    kn_attr maxa[4] = {kt_attr_ints("kernel_shape", 2, k3), kt_attr_ints("strides", 2, s2),
                       kt_attr_ints("pads", 4, p1), kt_attr_int("ceil_mode", 1)};
    kn_attr avga[3] = {kt_attr_ints("kernel_shape", 2, k2), kt_attr_ints("pads", 4, p01),
                       kt_attr_int("count_include_pad", 1)};
    struct { const char *op; int n; const kn_attr *a; } cases[3] = {
        {"MaxPool", 4, maxa}, {"AveragePool", 3, avga}, {"GlobalAveragePool", 0, NULL}};
    for (int c = 0; c < 3; c++) {
        kn_tensor want = run1(NULL, cases[c].op, &x, cases[c].n, cases[c].a);
        kn_tensor by = run1(ND, cases[c].op, &bx, cases[c].n, cases[c].a);
        kn_tensor got = to_nchw(&by, 17);
        check_same(&got, &want, 1e-6);
        kn_tensor ts[3] = {want, by, got};
        kt_release_all(ts, 3);
    }
    kt_node n = kt_node_of(ND, "MaxPool", 1, 1);
    kt_add_input(&n, &x); /* 17 channels: not blocked */
    for (int i = 0; i < 4; i++)
        kt_add_attr(&n, maxa[i]);
    kt_expect_fail(&n, KN_ERR_ARG);
    kn_tensor ts[2] = {x, bx};
    kt_release_all(ts, 2);
}

/* Add of two images and Mul by a per-channel gate, blocked vs NCHW broadcasting. */
static void test_binary(void)
{
    static const int64_t xd[4] = {2, 40, 3, 5}, gd[4] = {2, 40, 1, 1}, bad[4] = {1, 40, 1, 1};
    kn_tensor x = rand_tensor(4, xd), y = rand_tensor(4, xd), s = rand_tensor(4, gd);
    kn_tensor bx = to_blocked(&x), by = to_blocked(&y), bs = to_blocked(&s);
    const char *ops[2] = {"Add", "Mul"};
    const kn_tensor *second[2] = {&y, &s}, *bsecond[2] = {&by, &bs};
    for (int c = 0; c < 2; c++) {
        const kn_tensor *ins[2] = {&x, second[c]};
        kn_tensor want = {0};
        CHECK_EQ_INT(kt_run_op(ops[c], 13, 2, ins, 0, NULL, 1, &want, &(kn_error){0}), KN_OK);
        kt_node n = kt_node_of(ND, ops[c], 1, 1);
        kt_add_input(&n, &bx);
        kt_add_input(&n, bsecond[c]);
        kn_tensor bo = kt_expect_ok(&n), got = to_nchw(&bo, 40);
        check_same(&got, &want, 1e-6);
        kn_tensor ts[3] = {want, bo, got};
        kt_release_all(ts, 3);
    }
    kn_tensor g1 = rand_tensor(4, bad), bg1 = to_blocked(&g1);
    kt_node n = kt_node_of(ND, "Mul", 1, 1);
    kt_add_input(&n, &bx);
    kt_add_input(&n, &bg1); /* one image's gate for two images */
    kt_expect_fail(&n, KN_ERR_ARG);
    kn_tensor ts[8] = {x, y, s, bx, by, bs, g1, bg1};
    kt_release_all(ts, 8);
}

/* The AVX-512 loop against the plain one, both forms, an odd pixel count, with a
 * 2-thread pool and in place. */
static void test_binary_kernel_isas(void)
{
    enum { PLANES = 5, HW = 7, N = PLANES * HW * 16 };
    static float a[N], b[N], g[PLANES * 16], want[N], got[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)(kt_lcg32(&seed) >> 8) / 8388608.0f - 1.0f;
        b[i] = (float)(kt_lcg32(&seed) >> 8) / 8388608.0f - 1.0f;
    }
    for (int i = 0; i < PLANES * 16; i++)
        g[i] = b[i * 3];
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    for (int form = 0; form < 4; form++) {
        int per_pixel = form & 1, mul = form >> 1;
        const float *bb = per_pixel ? b : g;
        kn_nchwc_binary(NULL, KN_ISA_GENERIC, a, bb, want, PLANES, HW, per_pixel, mul);
        for (int i = 0; i < N; i++) { /* the definition */
            float bv = bb[per_pixel ? i : (i / (HW * 16)) * 16 + i % 16];
            CHECK_NEAR(want[i], mul ? a[i] * bv : a[i] + bv, 0.0);
        }
        memcpy(got, a, sizeof got);
        kn_nchwc_binary(pool, KN_ISA_AVX512, got, bb, got, PLANES, HW, per_pixel, mul);
        for (int i = 0; i < N; i++)
            CHECK_NEAR(got[i], want[i], 0.0);
    }
    kn_threadpool_free(pool);
}

static void test_malformed_reorders(void)
{
    static const int64_t d3[3] = {2, 16, 4}, d4[4] = {1, 16, 2, 2};
    kn_tensor x3 = rand_tensor(3, d3), x4 = rand_tensor(4, d4);
    kt_node n = kt_node_of(ND, "ReorderInput", 1, 1);
    kt_add_input(&n, &x3);
    kt_expect_fail(&n, KN_ERR_ARG);
    kt_node o = kt_node_of(ND, "ReorderOutput", 1, 1);
    kt_add_input(&o, &x4);
    kt_expect_fail(&o, KN_ERR_ARG); /* no channels attribute */
    kt_add_attr(&o, kt_attr_int("channels", 17)); /* 17 pads to 32, not 16 */
    kt_expect_fail(&o, KN_ERR_ARG);
    kn_tensor ts[2] = {x3, x4};
    kt_release_all(ts, 2);
}

TEST_MAIN(TEST_CASE(test_reorder_round_trip), TEST_CASE(test_conv_matches_fused_conv),
          TEST_CASE(test_stem_conv), TEST_CASE(test_depthwise_conv), TEST_CASE(test_pools), TEST_CASE(test_binary),
          TEST_CASE(test_binary_kernel_isas), TEST_CASE(test_malformed_reorders))
