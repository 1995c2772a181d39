/* test_ops_shape.c - unit tests for the 'shape' and 'movement' operator families:
 * edge cases the ONNX conformance data does not cover (empty tensors, negative
 * axes, clamping, bad arguments returning errors instead of crashing). Each test
 * runs one node through a one-node graph and the reference executor. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>

#include "exec/exec.h"

static int64_t iota_i64[64] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                               16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                               32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
                               48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

/* ---- shape family ---- */

static void test_reshape(void)
{
    int64_t xd[3] = {2, 3, 4};
    kn_tensor x = kt_view(KN_I64, 3, xd, iota_i64);
    int64_t sv[3] = {0, -1, 2}, sd = 3;
    kn_tensor shp = kt_view(KN_I64, 1, &sd, sv);
    kt_node s = {"Reshape", 14, 2, {&x, &shp}, 1, 0, {{0}}};
    int64_t want[3] = {2, 6, 2};
    kt_expect_out(&s, KN_I64, 3, want, iota_i64);

    int64_t two_neg[2] = {-1, -1}, two = 2;
    kn_tensor s2 = kt_view(KN_I64, 1, &two, two_neg);
    kt_node bad = {"Reshape", 14, 2, {&x, &s2}, 1, 0, {{0}}};
    kt_expect_fail(&bad, KN_ERR_ARG);

    int64_t wrong[2] = {5, 5};
    kn_tensor s3 = kt_view(KN_I64, 1, &two, wrong);
    kt_node bad2 = {"Reshape", 14, 2, {&x, &s3}, 1, 0, {{0}}};
    kt_expect_fail(&bad2, KN_ERR_ARG);

    /* allowzero: a 0 stays 0, so the element counts must match (they do for empty input) */
    int64_t ed[2] = {0, 3};
    kn_tensor e = kt_view(KN_F32, 2, ed, NULL);
    int64_t z[2] = {3, 0};
    kn_tensor s4 = kt_view(KN_I64, 1, &two, z);
    kt_node az = {"Reshape", 14, 2, {&e, &s4}, 1, 1, {kt_attr_int("allowzero", 1)}};
    kt_expect_out(&az, KN_F32, 2, z, NULL);
    /* without allowzero, 0 copies dim 1 (=3): 9 != 0 elements */
    kt_node naz = {"Reshape", 14, 2, {&e, &s4}, 1, 0, {{0}}};
    kt_expect_fail(&naz, KN_ERR_ARG);
    /* 0 referring past the input rank */
    int64_t z4[4] = {1, 1, 1, 0}, four = 4;
    kn_tensor s5 = kt_view(KN_I64, 1, &four, z4);
    kt_node past = {"Reshape", 14, 2, {&x, &s5}, 1, 0, {{0}}};
    kt_expect_fail(&past, KN_ERR_ARG);
}

static void test_flatten_squeeze(void)
{
    int64_t xd[4] = {2, 1, 3, 1};
    kn_tensor x = kt_view(KN_I64, 4, xd, iota_i64);
    kt_node f = {"Flatten", 13, 1, {&x}, 1, 1, {kt_attr_int("axis", -4)}};
    int64_t fd[2] = {1, 6};
    kt_expect_out(&f, KN_I64, 2, fd, iota_i64);
    kt_node f2 = {"Flatten", 13, 1, {&x}, 1, 1, {kt_attr_int("axis", 5)}};
    kt_expect_fail(&f2, KN_ERR_ARG);

    kt_node sq = {"Squeeze", 13, 1, {&x}, 1, 0, {{0}}};
    int64_t sd[2] = {2, 3};
    kt_expect_out(&sq, KN_I64, 2, sd, iota_i64);
    int64_t ax[1] = {-1}, one = 1;
    kn_tensor axes = kt_view(KN_I64, 1, &one, ax);
    kt_node sq2 = {"Squeeze", 13, 2, {&x, &axes}, 1, 0, {{0}}};
    int64_t sd2[3] = {2, 1, 3};
    kt_expect_out(&sq2, KN_I64, 3, sd2, iota_i64);
    kt_node sq_attr = {"Squeeze", 11, 1, {&x}, 1, 1, {kt_attr_ints("axes", 1, ax)}};
    kt_expect_out(&sq_attr, KN_I64, 3, sd2, iota_i64);
    int64_t ax0[1] = {0};
    kt_node sq_bad = {"Squeeze", 11, 1, {&x}, 1, 1, {kt_attr_ints("axes", 1, ax0)}};
    kt_expect_fail(&sq_bad, KN_ERR_ARG);

    int64_t uax[2] = {-1, 0};
    kt_node un = {"Unsqueeze", 11, 1, {&x}, 1, 1, {kt_attr_ints("axes", 2, uax)}};
    int64_t ud[6] = {1, 2, 1, 3, 1, 1};
    kt_expect_out(&un, KN_I64, 6, ud, iota_i64);
    int64_t dup[2] = {1, -5}, two = 2;
    kn_tensor dupt = kt_view(KN_I64, 1, &two, dup);
    kt_node un_bad = {"Unsqueeze", 13, 2, {&x, &dupt}, 1, 0, {{0}}};
    kt_expect_fail(&un_bad, KN_ERR_ARG);
}

static void test_shape_size_constant(void)
{
    int64_t xd[4] = {2, 1, 3, 5};
    float xv[30] = {0};
    kn_tensor x = kt_view(KN_F32, 4, xd, xv);
    kt_node s = {"Shape", 15, 1, {&x}, 1, 2, {kt_attr_int("start", -3), kt_attr_int("end", -1)}};
    int64_t n2 = 2, want[2] = {1, 3};
    kt_expect_out(&s, KN_I64, 1, &n2, want);
    kt_node s2 = {"Shape", 15, 1, {&x}, 1, 2, {kt_attr_int("start", 3), kt_attr_int("end", 1)}};
    int64_t zero = 0;
    kt_expect_out(&s2, KN_I64, 1, &zero, NULL);
    kt_node sz = {"Size", 13, 1, {&x}, 1, 0, {{0}}};
    int64_t thirty = 30;
    kt_expect_out(&sz, KN_I64, 0, NULL, &thirty);

    int64_t v[3] = {7, -1, 9}, three = 3;
    kt_node k = {"Constant", 13, 0, {NULL}, 1, 1, {kt_attr_ints("value_ints", 3, v)}};
    kt_expect_out(&k, KN_I64, 1, &three, v);
    kt_node ks = {"Constant", 13, 0, {NULL}, 1, 1, {kt_attr_str("value_string", "x")}};
    kt_expect_fail(&ks, KN_ERR_UNSUPPORTED);
    float f = 2.5f;
    kt_node kf = {"Constant", 13, 0, {NULL}, 1, 1, {kt_attr_float("value_float", 2.5f)}};
    kt_expect_out(&kf, KN_F32, 0, NULL, &f);

    int64_t shp[2] = {2, 3}, two = 2;
    kn_tensor st = kt_view(KN_I64, 1, &two, shp);
    int32_t seven = 7;
    int64_t one = 1;
    kn_tensor val = kt_view(KN_I32, 1, &one, &seven);
    kn_attr va = {0};
    va.name = "value";
    va.type = KN_ATTR_TENSOR;
    va.t = &val;
    kt_node cs = {"ConstantOfShape", 13, 1, {&st}, 1, 1, {va}};
    int32_t sevens[6] = {7, 7, 7, 7, 7, 7};
    kt_expect_out(&cs, KN_I32, 2, shp, sevens);
    int64_t negs[2] = {2, -3};
    kn_tensor nt = kt_view(KN_I64, 1, &two, negs);
    kt_node csn = {"ConstantOfShape", 13, 1, {&nt}, 1, 0, {{0}}};
    kt_expect_fail(&csn, KN_ERR_ARG);
}

static void test_expand(void)
{
    int64_t xd[2] = {3, 1};
    int16_t xv[3] = {1, 2, 3};
    kn_tensor x = kt_view(KN_I16, 2, xd, xv);
    int64_t sv[3] = {2, 1, 4}, three = 3;
    kn_tensor s = kt_view(KN_I64, 1, &three, sv);
    kt_node e = {"Expand", 13, 2, {&x, &s}, 1, 0, {{0}}};
    int64_t od[3] = {2, 3, 4};
    int16_t want[24] = {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
    kt_expect_out(&e, KN_I16, 3, od, want);
    int64_t bad[1] = {2}, one = 1;
    kn_tensor b = kt_view(KN_I64, 1, &one, bad);
    int64_t xd2[1] = {3};
    kn_tensor x2 = kt_view(KN_I16, 1, xd2, xv);
    kt_node eb = {"Expand", 13, 2, {&x2, &b}, 1, 0, {{0}}};
    kt_expect_fail(&eb, KN_ERR_ARG);
}

static void test_range_eyelike_dropout(void)
{
    int64_t a = 10, l = 1, d = -3;
    kn_tensor ta = kt_view(KN_I64, 0, NULL, &a), tl = kt_view(KN_I64, 0, NULL, &l),
              td = kt_view(KN_I64, 0, NULL, &d);
    int64_t three = 3;
    kt_node r = {"Range", 11, 3, {&ta, &tl, &td}, 1, 0, {{0}}};
    int64_t want[3] = {10, 7, 4};
    kt_expect_out(&r, KN_I64, 1, &three, want);
    int64_t zero = 0;
    kn_tensor tz = kt_view(KN_I64, 0, NULL, &zero);
    kt_node rz = {"Range", 11, 3, {&ta, &tl, &tz}, 1, 0, {{0}}};
    kt_expect_fail(&rz, KN_ERR_ARG);
    int64_t lo = INT64_MIN, hi = INT64_MAX, one = 1;
    kn_tensor tlo = kt_view(KN_I64, 0, NULL, &lo), thi = kt_view(KN_I64, 0, NULL, &hi),
              tone = kt_view(KN_I64, 0, NULL, &one);
    kt_node rh = {"Range", 11, 3, {&tlo, &thi, &tone}, 1, 0, {{0}}};
    kt_expect_fail(&rh, KN_ERR_ARG);
    kt_node re = {"Range", 11, 3, {&thi, &tlo, &tone}, 1, 0, {{0}}};
    kt_expect_out(&re, KN_I64, 1, &zero, NULL);
    /* one element from the far ends without overflow */
    kt_node r1 = {"Range", 11, 3, {&tlo, &thi, &thi}, 1, 0, {{0}}};
    int64_t w3[3] = {INT64_MIN, -1, INT64_MAX - 1};
    kt_expect_out(&r1, KN_I64, 1, &three, w3);
    float fs = 0.5f, fl = 2.0f, fd = 0.5f;
    kn_tensor fa = kt_view(KN_F32, 0, NULL, &fs), fb = kt_view(KN_F32, 0, NULL, &fl),
              fc = kt_view(KN_F32, 0, NULL, &fd);
    kt_node rf = {"Range", 11, 3, {&fa, &fb, &fc}, 1, 0, {{0}}};
    float fw[3] = {0.5f, 1.0f, 1.5f};
    kt_expect_out(&rf, KN_F32, 1, &three, fw);

    int64_t ed[2] = {2, 3};
    kn_tensor x = kt_view(KN_I32, 2, ed, iota_i64);
    kt_node ey = {"EyeLike", 9, 1, {&x}, 1, 2, {kt_attr_int("k", -1), kt_attr_int("dtype", KN_F64)}};
    double ew[6] = {0, 0, 0, 1, 0, 0};
    kt_expect_out(&ey, KN_F64, 2, ed, ew);
    kt_node eyh = {"EyeLike", 9, 1, {&x}, 1, 1, {kt_attr_int("k", INT64_MIN)}};
    int32_t zeros[6] = {0};
    kt_expect_out(&eyh, KN_I32, 2, ed, zeros);

    float xv[3] = {1, 2, 3};
    kn_tensor xf = kt_view(KN_F32, 1, &three, xv);
    kt_node dr = {"Dropout", 13, 1, {&xf}, 2, 0, {{0}}};
    kn_tensor outs[KT_MAX_IO];
    kn_error err = {0};
    CHECK_EQ_INT(kt_run_node(&dr, outs, &err), KN_OK);
    CHECK(!memcmp(outs[0].data, xv, sizeof xv));
    CHECK_EQ_INT(outs[1].dtype, KN_BOOL);
    CHECK(((uint8_t *)outs[1].data)[2] == 1);
    kn_tensor_release(&outs[0]);
    kn_tensor_release(&outs[1]);
    bool tr = true;
    float ratio = 0.3f;
    kn_tensor ttr = kt_view(KN_BOOL, 0, NULL, &tr), trat = kt_view(KN_F32, 0, NULL, &ratio);
    kt_node dt = {"Dropout", 13, 3, {&xf, &trat, &ttr}, 1, 0, {{0}}};
    kt_expect_fail(&dt, KN_ERR_UNSUPPORTED);
}

/* ---- movement family ---- */

static void test_transpose_concat(void)
{
    int64_t xd[3] = {2, 3, 2};
    uint8_t xv[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    kn_tensor x = kt_view(KN_U8, 3, xd, xv);
    kt_node t = {"Transpose", 13, 1, {&x}, 1, 0, {{0}}};
    int64_t td[3] = {2, 3, 2};
    uint8_t tw[12] = {0, 6, 2, 8, 4, 10, 1, 7, 3, 9, 5, 11};
    kt_expect_out(&t, KN_U8, 3, td, tw);
    int64_t bad[3] = {0, 0, 1};
    kt_node tb = {"Transpose", 13, 1, {&x}, 1, 1, {kt_attr_ints("perm", 3, bad)}};
    kt_expect_fail(&tb, KN_ERR_ARG);

    int64_t ed[3] = {2, 0, 2};
    kn_tensor e = kt_view(KN_U8, 3, ed, NULL);
    kt_node cc = {"Concat", 13, 3, {&e, &x, &e}, 1, 1, {kt_attr_int("axis", -2)}};
    kt_expect_out(&cc, KN_U8, 3, xd, xv);
    int64_t od[3] = {2, 3, 3};
    kn_tensor o = kt_view(KN_U8, 3, od, xv);
    kt_node cb = {"Concat", 13, 2, {&x, &o}, 1, 1, {kt_attr_int("axis", 0)}};
    kt_expect_fail(&cb, KN_ERR_ARG);
    kt_node cax = {"Concat", 13, 2, {&x, &x}, 1, 1, {kt_attr_int("axis", 3)}};
    kt_expect_fail(&cax, KN_ERR_ARG);
}

static void test_split(void)
{
    int64_t n = 7;
    kn_tensor x = kt_view(KN_I64, 1, &n, iota_i64);
    kt_node s = {"Split", 18, 1, {&x}, 3, 1, {kt_attr_int("num_outputs", 3)}};
    kn_tensor outs[KT_MAX_IO];
    kn_error err = {0};
    CHECK_EQ_INT(kt_run_node(&s, outs, &err), KN_OK);
    CHECK_EQ_INT(outs[0].dims[0], 3);
    CHECK_EQ_INT(outs[1].dims[0], 3);
    CHECK_EQ_INT(outs[2].dims[0], 1);
    CHECK_EQ_INT(((int64_t *)outs[2].data)[0], 6);
    for (int i = 0; i < 3; i++)
        kn_tensor_release(&outs[i]);
    int64_t sp[2] = {4, 2};
    kt_node sa = {"Split", 11, 1, {&x}, 2, 1, {kt_attr_ints("split", 2, sp)}};
    kt_expect_fail(&sa, KN_ERR_ARG);
    int64_t sp2[2] = {0, 7}, two = 2;
    kn_tensor spt = kt_view(KN_I64, 1, &two, sp2);
    kt_node sb = {"Split", 13, 2, {&x, &spt}, 2, 0, {{0}}};
    int64_t zero = 0;
    kt_expect_out(&sb, KN_I64, 1, &zero, NULL);
    kt_node se = {"Split", 13, 1, {&x}, 2, 0, {{0}}};
    kt_expect_fail(&se, KN_ERR_ARG);
}

static void test_slice(void)
{
    int64_t xd[2] = {3, 4};
    kn_tensor x = kt_view(KN_I64, 2, xd, iota_i64);
    int64_t one = 1, two = 2;
    int64_t st[2] = {-1, INT64_MAX}, en[2] = {INT64_MIN, -10}, ax[2] = {0, -1},
            sp[2] = {-2, INT64_MIN};
    kn_tensor ts = kt_view(KN_I64, 1, &two, st), te = kt_view(KN_I64, 1, &two, en),
              ta = kt_view(KN_I64, 1, &two, ax), tp = kt_view(KN_I64, 1, &two, sp);
    kt_node s = {"Slice", 13, 5, {&x, &ts, &te, &ta, &tp}, 1, 0, {{0}}};
    int64_t od[2] = {2, 1}, want[2] = {11, 3};
    kt_expect_out(&s, KN_I64, 2, od, want);
    /* start past the end: empty */
    int64_t s1[1] = {5}, e1[1] = {INT64_MAX};
    kn_tensor ts1 = kt_view(KN_I64, 1, &one, s1), te1 = kt_view(KN_I64, 1, &one, e1);
    kt_node se = {"Slice", 13, 3, {&x, &ts1, &te1}, 1, 0, {{0}}};
    int64_t ed[2] = {0, 4};
    kt_expect_out(&se, KN_I64, 2, ed, NULL);
    /* step 0 and bad axis */
    int64_t z[1] = {0};
    kn_tensor tz = kt_view(KN_I64, 1, &one, z);
    kt_node s0 = {"Slice", 13, 5, {&x, &tz, &te1, NULL, &tz}, 1, 0, {{0}}};
    kt_expect_fail(&s0, KN_ERR_ARG);
    int64_t a5[1] = {5};
    kn_tensor ta5 = kt_view(KN_I64, 1, &one, a5);
    kt_node sax = {"Slice", 13, 4, {&x, &tz, &te1, &ta5}, 1, 0, {{0}}};
    kt_expect_fail(&sax, KN_ERR_ARG);
    /* opset 1 attributes, int32 inputs at opset 13 */
    int64_t as[1] = {1}, ae[1] = {3}, aa[1] = {1};
    kt_node sattr = {"Slice", 9, 1, {&x}, 1, 3,
                       {kt_attr_ints("starts", 1, as), kt_attr_ints("ends", 1, ae), kt_attr_ints("axes", 1, aa)}};
    int64_t ad[2] = {3, 2}, aw[6] = {1, 2, 5, 6, 9, 10};
    kt_expect_out(&sattr, KN_I64, 2, ad, aw);
    int32_t is[1] = {1}, ie[1] = {3}, ia[1] = {1};
    kn_tensor tis = kt_view(KN_I32, 1, &one, is), tie = kt_view(KN_I32, 1, &one, ie),
              tia = kt_view(KN_I32, 1, &one, ia);
    kt_node s32 = {"Slice", 13, 4, {&x, &tis, &tie, &tia}, 1, 0, {{0}}};
    kt_expect_out(&s32, KN_I64, 2, ad, aw);
}

static void test_tile_pad(void)
{
    int64_t xd[2] = {2, 2}, two = 2;
    int32_t xv[4] = {1, 2, 3, 4};
    kn_tensor x = kt_view(KN_I32, 2, xd, xv);
    int64_t rp[2] = {2, 0};
    kn_tensor tr = kt_view(KN_I64, 1, &two, rp);
    kt_node t0 = {"Tile", 13, 2, {&x, &tr}, 1, 0, {{0}}};
    int64_t zd[2] = {4, 0};
    kt_expect_out(&t0, KN_I32, 2, zd, NULL);
    int64_t rp2[2] = {1, 2};
    kn_tensor tr2 = kt_view(KN_I64, 1, &two, rp2);
    kt_node t1 = {"Tile", 13, 2, {&x, &tr2}, 1, 0, {{0}}};
    int64_t td[2] = {2, 4};
    int32_t tw[8] = {1, 2, 1, 2, 3, 4, 3, 4};
    kt_expect_out(&t1, KN_I32, 2, td, tw);
    int64_t rneg[2] = {1, -1};
    kn_tensor trn = kt_view(KN_I64, 1, &two, rneg);
    kt_node tn = {"Tile", 13, 2, {&x, &trn}, 1, 0, {{0}}};
    kt_expect_fail(&tn, KN_ERR_ARG);

    /* reflect with pads larger than the axis: 1 2 3 -> reflected repeatedly */
    int64_t three = 3, n8 = 8;
    int32_t v3[3] = {1, 2, 3};
    kn_tensor x3 = kt_view(KN_I32, 1, &three, v3);
    int64_t pads[2] = {3, 2};
    kn_tensor tp = kt_view(KN_I64, 1, &two, pads);
    kt_node pr = {"Pad", 13, 2, {&x3, &tp}, 1, 1, {kt_attr_str("mode", "reflect")}};
    int32_t rw[8] = {2, 3, 2, 1, 2, 3, 2, 1};
    kt_expect_out(&pr, KN_I32, 1, &n8, rw);
    kt_node pw = {"Pad", 19, 2, {&x3, &tp}, 1, 1, {kt_attr_str("mode", "wrap")}};
    int32_t ww[8] = {1, 2, 3, 1, 2, 3, 1, 2};
    kt_expect_out(&pw, KN_I32, 1, &n8, ww);
    kt_node pe = {"Pad", 13, 2, {&x3, &tp}, 1, 1, {kt_attr_str("mode", "edge")}};
    int32_t ew[8] = {1, 1, 1, 1, 2, 3, 3, 3};
    kt_expect_out(&pe, KN_I32, 1, &n8, ew);
    /* negative pads crop; constant_value input */
    int64_t crop[4] = {-1, 1, 0, -2}, four = 4;
    kn_tensor tc = kt_view(KN_I64, 1, &four, crop);
    int32_t cv = 9;
    kn_tensor tcv = kt_view(KN_I32, 0, NULL, &cv);
    kt_node pc = {"Pad", 13, 3, {&x, &tc, &tcv}, 1, 0, {{0}}};
    int64_t cd[2] = {1, 1};
    int32_t cw[1] = {9};
    kt_expect_out(&pc, KN_I32, 2, cd, cw);
    /* axes input (opset 18), negative axis */
    int64_t ap[2] = {1, 0}, ax[1] = {-1}, one = 1;
    kn_tensor tap = kt_view(KN_I64, 1, &two, ap), tax = kt_view(KN_I64, 1, &one, ax);
    kt_node pa = {"Pad", 18, 4, {&x, &tap, NULL, &tax}, 1, 0, {{0}}};
    int64_t pd[2] = {2, 3};
    int32_t pw2[6] = {0, 1, 2, 0, 3, 4};
    kt_expect_out(&pa, KN_I32, 2, pd, pw2);
    /* old attribute form with float value */
    int64_t op[2] = {0, 1};
    kt_node po = {"Pad", 2, 1, {&x3}, 1, 2, {kt_attr_ints("pads", 2, op), kt_attr_float("value", 5.0f)}};
    int32_t ow[4] = {1, 2, 3, 5};
    kt_expect_out(&po, KN_I32, 1, &four, ow);
    /* errors: too-negative pads, edge on an empty axis, wrong pad count */
    int64_t big[2] = {-3, -1};
    kn_tensor tbig = kt_view(KN_I64, 1, &two, big);
    kt_node pb = {"Pad", 13, 2, {&x3, &tbig}, 1, 0, {{0}}};
    kt_expect_fail(&pb, KN_ERR_ARG);
    int64_t zero = 0;
    kn_tensor empty = kt_view(KN_I32, 1, &zero, NULL);
    kt_node pem = {"Pad", 13, 2, {&empty, &tp}, 1, 1, {kt_attr_str("mode", "edge")}};
    kt_expect_fail(&pem, KN_ERR_ARG);
    kt_node pcount = {"Pad", 13, 2, {&x, &tp}, 1, 0, {{0}}};
    kt_expect_fail(&pcount, KN_ERR_ARG);
    kt_node pmode = {"Pad", 13, 2, {&x3, &tp}, 1, 1, {kt_attr_str("mode", "mirror")}};
    kt_expect_fail(&pmode, KN_ERR_UNSUPPORTED);
}

static void test_blocks_trilu_reverse(void)
{
    int64_t xd[4] = {1, 8, 1, 2};
    kn_tensor x = kt_view(KN_I64, 4, xd, iota_i64);
    kt_node d2s = {"DepthToSpace", 13, 1, {&x}, 1, 2, {kt_attr_int("blocksize", 2), kt_attr_str("mode", "CRD")}};
    kn_tensor outs[KT_MAX_IO];
    kn_error err = {0};
    CHECK_EQ_INT(kt_run_node(&d2s, outs, &err), KN_OK);
    int64_t dd[4] = {1, 2, 2, 4};
    CHECK(kt_same_dims(&outs[0], 4, dd));
    /* and back: SpaceToDepth inverts DCR DepthToSpace, not CRD; check CRD values */
    int64_t crdw[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
    CHECK(!memcmp(outs[0].data, crdw, sizeof crdw));
    kt_node s2d = {"SpaceToDepth", 13, 1, {&outs[0]}, 1, 1, {kt_attr_int("blocksize", 2)}};
    kn_tensor back[KT_MAX_IO];
    CHECK_EQ_INT(kt_run_node(&s2d, back, &err), KN_OK);
    CHECK(kt_same_dims(&back[0], 4, xd));
    kn_tensor_release(&back[0]);
    kt_node dcr = {"DepthToSpace", 13, 1, {&x}, 1, 1, {kt_attr_int("blocksize", 2)}};
    kn_tensor o2[KT_MAX_IO];
    CHECK_EQ_INT(kt_run_node(&dcr, o2, &err), KN_OK);
    kt_node s2d2 = {"SpaceToDepth", 13, 1, {&o2[0]}, 1, 1, {kt_attr_int("blocksize", 2)}};
    kt_expect_out(&s2d2, KN_I64, 4, xd, iota_i64);
    kn_tensor_release(&o2[0]);
    kn_tensor_release(&outs[0]);
    kt_node bad = {"DepthToSpace", 13, 1, {&x}, 1, 1, {kt_attr_int("blocksize", 3)}};
    kt_expect_fail(&bad, KN_ERR_ARG);
    kt_node bad0 = {"SpaceToDepth", 13, 1, {&x}, 1, 1, {kt_attr_int("blocksize", 0)}};
    kt_expect_fail(&bad0, KN_ERR_ARG);

    int64_t md[2] = {3, 3};
    kn_tensor m = kt_view(KN_I64, 2, md, iota_i64 + 1);
    int64_t kmax = INT64_MAX, kmin = INT64_MIN;
    kn_tensor tkx = kt_view(KN_I64, 0, NULL, &kmax), tkn = kt_view(KN_I64, 0, NULL, &kmin);
    int64_t zeros[9] = {0};
    kt_node tu = {"Trilu", 14, 2, {&m, &tkx}, 1, 0, {{0}}};
    kt_expect_out(&tu, KN_I64, 2, md, zeros);
    kt_node tl = {"Trilu", 14, 2, {&m, &tkn}, 1, 1, {kt_attr_int("upper", 0)}};
    kt_expect_out(&tl, KN_I64, 2, md, zeros);
    kt_node tl0 = {"Trilu", 14, 1, {&m}, 1, 1, {kt_attr_int("upper", 0)}};
    int64_t lw[9] = {1, 0, 0, 4, 5, 0, 7, 8, 9};
    kt_expect_out(&tl0, KN_I64, 2, md, lw);

    int64_t lens[3] = {3, 1, 2}, three = 3;
    kn_tensor tlen = kt_view(KN_I64, 1, &three, lens);
    kt_node rs = {"ReverseSequence", 10, 2, {&m, &tlen}, 1, 2,
                    {kt_attr_int("time_axis", 1), kt_attr_int("batch_axis", 0)}};
    int64_t rw[9] = {3, 2, 1, 4, 5, 6, 8, 7, 9};
    kt_expect_out(&rs, KN_I64, 2, md, rw);
    int64_t blens[3] = {3, 4, 0};
    kn_tensor tbl = kt_view(KN_I64, 1, &three, blens);
    kt_node rsb = {"ReverseSequence", 10, 2, {&m, &tbl}, 1, 0, {{0}}};
    kt_expect_fail(&rsb, KN_ERR_ARG);

    /* CenterCropPad: crop 3 -> 1 on axis 0, pad 3 -> 6 on axis 1 */
    int64_t cs[2] = {1, 6}, two = 2;
    kn_tensor tcs = kt_view(KN_I64, 1, &two, cs);
    kt_node cc = {"CenterCropPad", 18, 2, {&m, &tcs}, 1, 0, {{0}}};
    int64_t cw[6] = {0, 4, 5, 6, 0, 0};
    kt_expect_out(&cc, KN_I64, 2, cs, cw);
}

/* ---- static inference ---- */

static int infer_one2(const char *op, int opset, kn_attr *attrs, int n_attr, const kn_type *in,
                      const kn_tensor *const1, kn_type *out)
{
    const kn_op_def *d = kn_op_find("", op, opset);
    if (!d || !d->infer)
        return -1;
    kn_node n = {0};
    n.op_type = op;
    n.domain = "";
    n.n_attr = n_attr;
    n.attrs = attrs;
    kn_type t1 = {0};
    if (const1)
        kn_type_from_tensor(&t1, const1);
    const kn_type *ins[2] = {in, const1 ? &t1 : NULL};
    const kn_tensor *consts[2] = {NULL, const1};
    kn_error err = {0};
    kn_infer_ctx ic = {&n, opset, const1 ? 2 : 1, ins, consts, 1, out, &err};
    memset(out, 0, sizeof *out);
    return d->infer(&ic);
}

static int infer_one(const char *op, int opset, kn_attr *attrs, int n_attr, const kn_type *in,
                     kn_type *out)
{
    return infer_one2(op, opset, attrs, n_attr, in, NULL, out);
}

static void test_infer(void)
{
    kn_type x = {0};
    x.kind = KN_TYPE_TENSOR;
    x.dtype = KN_F16;
    x.rank = 3;
    x.dims[0].value = -1;
    x.dims[0].param = "batch";
    x.dims[1].value = 4;
    x.dims[2].value = 5;
    kn_type o;
    CHECK_EQ_INT(infer_one("Transpose", 13, NULL, 0, &x, &o), KN_OK);
    CHECK_EQ_INT(o.rank, 3);
    CHECK_EQ_INT(o.dims[0].value, 5);
    CHECK(o.dims[2].param && !strcmp(o.dims[2].param, "batch"));
    kn_attr sa[2] = {kt_attr_int("start", 1), kt_attr_int("end", 100)};
    CHECK_EQ_INT(infer_one("Shape", 15, sa, 2, &x, &o), KN_OK);
    CHECK_EQ_INT(o.dtype, KN_I64);
    CHECK_EQ_INT(o.rank, 1);
    CHECK_EQ_INT(o.dims[0].value, 2);
    kn_attr fa[1] = {kt_attr_int("axis", -2)};
    CHECK_EQ_INT(infer_one("Flatten", 13, fa, 1, &x, &o), KN_OK);
    CHECK_EQ_INT(o.rank, 2);
    CHECK_EQ_INT(o.dims[0].value, -1);
    CHECK_EQ_INT(o.dims[1].value, 20);
    CHECK_EQ_INT(infer_one("Identity", 13, NULL, 0, &x, &o), KN_OK);
    CHECK_EQ_INT(o.dtype, KN_F16);

    /* Reshape [batch,4,5] by constant [0,-1]: [batch,20]; -1 unknown when batch is */
    int64_t sv[2] = {0, -1}, two = 2;
    kn_tensor shp = kt_view(KN_I64, 1, &two, sv);
    CHECK_EQ_INT(infer_one2("Reshape", 14, NULL, 0, &x, &shp, &o), KN_OK);
    CHECK_EQ_INT(o.rank, 2);
    CHECK(o.dims[0].param && !strcmp(o.dims[0].param, "batch"));
    CHECK_EQ_INT(o.dims[1].value, -1);
    x.dims[0].value = 3;
    x.dims[0].param = NULL;
    CHECK_EQ_INT(infer_one2("Reshape", 14, NULL, 0, &x, &shp, &o), KN_OK);
    CHECK_EQ_INT(o.dims[0].value, 3);
    CHECK_EQ_INT(o.dims[1].value, 20);
    CHECK_EQ_INT(infer_one("Reshape", 14, NULL, 0, &x, &o), KN_OK);
    CHECK_EQ_INT(o.rank, -1);

    int64_t ax[2] = {0, -1};
    kn_attr ua[1] = {kt_attr_ints("axes", 2, ax)};
    CHECK_EQ_INT(infer_one("Unsqueeze", 11, ua, 1, &x, &o), KN_OK);
    CHECK_EQ_INT(o.rank, 5);
    CHECK_EQ_INT(o.dims[0].value, 1);
    CHECK_EQ_INT(o.dims[1].value, 3);
    CHECK_EQ_INT(o.dims[4].value, 1);
    kn_type y = o;
    CHECK_EQ_INT(infer_one("Squeeze", 13, NULL, 0, &y, &o), KN_OK);
    CHECK_EQ_INT(o.rank, 3);
    CHECK_EQ_INT(o.dims[2].value, 5);
}

/* ---- random smoke: arbitrary parameters must give a result or an error, never a
 * crash (run under ASan/UBSan) ---- */

static uint64_t rng_state = 88172645463325252ull;

static int64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (int64_t)(rng_state >> 1);
}

/* Mostly small values, sometimes extremes. */
static int64_t rnd_param(void)
{
    static const int64_t extremes[] = {INT64_MIN, INT64_MAX, INT64_MIN + 1, -1, 0, 1 << 16};
    int64_t r = rnd() % 10;
    if (r == 0)
        return extremes[rnd() % 6];
    return rnd() % 11 - 5;
}

static void run_quiet(const kt_node *s)
{
    kn_tensor outs[KT_MAX_IO];
    kn_error err = {0};
    if (kt_run_node(s, outs, &err) == KN_OK)
        for (int i = 0; i < s->n_out; i++)
            kn_tensor_release(&outs[i]);
}

static void test_random_params(void)
{
    int64_t xd[3] = {2, 3, 4};
    kn_tensor x = kt_view(KN_I64, 3, xd, iota_i64);
    static const char *modes[] = {"constant", "reflect", "edge", "wrap"};
    for (int iter = 0; iter < 400; iter++) {
        int64_t a[6], b[6], c3[3], d3[3], n3 = 3, n6 = 6, n2 = 2;
        for (int i = 0; i < 6; i++)
            a[i] = rnd_param(), b[i] = rnd_param();
        for (int i = 0; i < 3; i++)
            c3[i] = rnd() % 7 - 3, d3[i] = rnd_param();
        kn_tensor ta = kt_view(KN_I64, 1, &n3, a), tb = kt_view(KN_I64, 1, &n3, b),
                  tc = kt_view(KN_I64, 1, &n3, c3), td = kt_view(KN_I64, 1, &n3, d3);
        kt_node sl = {"Slice", 13, 5, {&x, &ta, &tb, &tc, &td}, 1, 0, {{0}}};
        run_quiet(&sl);
        int64_t pads[6];
        for (int i = 0; i < 6; i++)
            pads[i] = rnd() % 9 - 4;
        kn_tensor tp = kt_view(KN_I64, 1, &n6, pads);
        kt_node pd = {"Pad", 19, 2, {&x, &tp}, 1, 1, {kt_attr_str("mode", modes[rnd() % 4])}};
        run_quiet(&pd);
        kn_tensor tp2 = kt_view(KN_I64, 1, &n2, pads);
        int64_t ax[1] = {c3[0]}, one = 1;
        kn_tensor tax = kt_view(KN_I64, 1, &one, ax);
        kt_node pa = {"Pad", 19, 4, {&x, &tp2, NULL, &tax}, 1, 1, {kt_attr_str("mode", modes[rnd() % 4])}};
        run_quiet(&pa);
        int64_t rp[3] = {rnd() % 3, rnd() % 3, rnd() % 4 - 1};
        kn_tensor tr = kt_view(KN_I64, 1, &n3, rp);
        kt_node tl = {"Tile", 13, 2, {&x, &tr}, 1, 0, {{0}}};
        run_quiet(&tl);
        kt_node tp3 = {"Transpose", 13, 1, {&x}, 1, 1, {kt_attr_ints("perm", 3, c3)}};
        run_quiet(&tp3);
        kt_node rs = {"Reshape", 14, 2, {&x, &tc}, 1, 1, {kt_attr_int("allowzero", rnd() % 2)}};
        run_quiet(&rs);
        kt_node ex = {"Expand", 13, 2, {&x, &tc}, 1, 0, {{0}}};
        run_quiet(&ex);
        kt_node sp = {"Split", 13, 2, {&x, &tc}, 3, 1, {kt_attr_int("axis", c3[1])}};
        run_quiet(&sp);
        kt_node sq = {"Squeeze", 13, 2, {&x, &tc}, 1, 0, {{0}}};
        run_quiet(&sq);
        kt_node us = {"Unsqueeze", 13, 2, {&x, &tc}, 1, 0, {{0}}};
        run_quiet(&us);
        kt_node cc = {"CenterCropPad", 18, 2, {&x, &tc}, 1, 0, {{0}}};
        run_quiet(&cc);
        kn_tensor k = kt_view(KN_I64, 0, NULL, &d3[0]);
        kt_node tu = {"Trilu", 14, 2, {&x, &k}, 1, 1, {kt_attr_int("upper", rnd() % 2)}};
        run_quiet(&tu);
        kn_tensor r0 = kt_view(KN_I64, 0, NULL, &a[0]), r1 = kt_view(KN_I64, 0, NULL, &b[0]),
                  r2 = kt_view(KN_I64, 0, NULL, &c3[0]);
        kt_node rg = {"Range", 11, 3, {&r0, &r1, &r2}, 1, 0, {{0}}};
        run_quiet(&rg);
        kt_node d2s = {"DepthToSpace", 13, 1, {&x}, 1, 1, {kt_attr_int("blocksize", d3[1])}};
        run_quiet(&d2s);
        kt_node ey = {"EyeLike", 9, 1, {&tp2}, 1, 1, {kt_attr_int("k", d3[2])}};
        run_quiet(&ey);
    }
    CHECK(1);
}

/* Empty tensors may have enormous other dimensions: sizes must not overflow. */
static void test_huge_empty_dims(void)
{
    int64_t hd[2] = {0, INT64_MAX / 2 + 1};
    kn_tensor h = kt_view(KN_F32, 2, hd, NULL);
    kt_node cc = {"Concat", 13, 2, {&h, &h}, 1, 1, {kt_attr_int("axis", 1)}};
    kt_expect_any_fail(&cc);
    int64_t pads[4] = {0, 0, 0, INT64_MAX / 2}, four = 4;
    kn_tensor tp = kt_view(KN_I64, 1, &four, pads);
    kt_node pd = {"Pad", 13, 2, {&h, &tp}, 1, 0, {{0}}};
    kt_expect_any_fail(&pd);
    int64_t rd[2] = {0, INT64_MAX}, two = 2, r2[2] = {1, 2};
    kn_tensor hr = kt_view(KN_F32, 2, rd, NULL), rep = kt_view(KN_I64, 1, &two, r2);
    kt_node tl = {"Tile", 13, 2, {&hr, &rep}, 1, 0, {{0}}};
    kt_expect_any_fail(&tl);
    kt_node fl = {"Flatten", 13, 1, {&hr}, 1, 1, {kt_attr_int("axis", 0)}};
    int64_t fd[2] = {1, 0};
    kt_expect_out(&fl, KN_F32, 2, fd, NULL);
    int64_t d4[4] = {1, 0, INT64_MAX / 4, 8};
    kn_tensor h4 = kt_view(KN_F32, 4, d4, NULL);
    kt_node d2s = {"DepthToSpace", 13, 1, {&h4}, 1, 1, {kt_attr_int("blocksize", 8)}};
    kt_expect_any_fail(&d2s);
    /* the reversed shape's running product overflows before reaching the 0 */
    kt_node tr = {"Transpose", 13, 1, {&h4}, 1, 0, {{0}}};
    kt_expect_any_fail(&tr);
    int64_t perm[4] = {1, 0, 2, 3};
    kt_node tr2 = {"Transpose", 13, 1, {&h4}, 1, 1, {kt_attr_ints("perm", 4, perm)}};
    /* kiln refuses any shape whose non-zero dims overflow, even an empty one */
    kt_expect_any_fail(&tr2);
    int64_t one = 1, st[1] = {1}, en[1] = {INT64_MAX};
    kn_tensor ts = kt_view(KN_I64, 1, &one, st), te = kt_view(KN_I64, 1, &one, en);
    kt_node sl = {"Slice", 13, 3, {&h4, &ts, &te}, 1, 0, {{0}}};
    kt_expect_any_fail(&sl);
    kt_node sp = {"Split", 13, 1, {&h4}, 2, 1, {kt_attr_int("axis", 3)}};
    kt_expect_any_fail(&sp);
    int64_t lens[1] = {0};
    kn_tensor tl2 = kt_view(KN_I64, 1, &one, lens);
    int64_t rsd[4] = {0, 1, INT64_MAX / 4, 8};
    kn_tensor hrs = kt_view(KN_F32, 4, rsd, NULL);
    kt_node rs = {"ReverseSequence", 10, 2, {&hrs, &tl2}, 1, 0, {{0}}};
    kt_expect_any_fail(&rs);
}

TEST_MAIN(TEST_CASE(test_reshape), TEST_CASE(test_flatten_squeeze),
          TEST_CASE(test_shape_size_constant), TEST_CASE(test_expand),
          TEST_CASE(test_range_eyelike_dropout), TEST_CASE(test_transpose_concat),
          TEST_CASE(test_split), TEST_CASE(test_slice), TEST_CASE(test_tile_pad),
          TEST_CASE(test_blocks_trilu_reverse), TEST_CASE(test_infer),
          TEST_CASE(test_random_params), TEST_CASE(test_huge_empty_dims))
