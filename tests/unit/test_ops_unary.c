/* test_ops_unary.c - unit tests for src/ops/unary.c and src/ops/cast.c: integer
 * edge cases (wrap, unsigned), rounding, empty and scalar tensors, Clip and PRelu
 * argument checks, Cast rounding and saturation. Each test runs a one-node graph. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "ops/op.h"

#include <stdint.h>
#include <string.h>

/* Run a one-input op with no attributes. */
static int run_un(const char *op, const kn_tensor *x, kn_tensor *y)
{
    const kn_tensor *in[1] = {x};
    return kt_run_op_replace(op, 21, 1, in, 0, NULL, 1, y);
}

static void test_int_abs_neg_sign(void)
{
    int64_t v[4] = {INT64_MIN, -5, 0, 7};
    kn_tensor x = kt_tensor_i64(KN_I64, 4, v), y = {0};
    CHECK_EQ_INT(run_un("Abs", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == INT64_MIN && kt_at_i64(&y, 1) == 5 && kt_at_i64(&y, 3) == 7);
    CHECK_EQ_INT(run_un("Neg", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == INT64_MIN && kt_at_i64(&y, 1) == 5 && kt_at_i64(&y, 3) == -7);
    CHECK_EQ_INT(run_un("Sign", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -1 && kt_at_i64(&y, 2) == 0 && kt_at_i64(&y, 3) == 1);
    kn_tensor_release(&x);
    int64_t u[2] = {-1 /* UINT64_MAX */, 0};
    x = kt_tensor_i64(KN_U64, 2, u);
    CHECK_EQ_INT(run_un("Abs", &x, &y), KN_OK);
    CHECK(((uint64_t *)y.data)[0] == UINT64_MAX);
    CHECK_EQ_INT(run_un("Sign", &x, &y), KN_OK);
    CHECK(((uint64_t *)y.data)[0] == 1 && ((uint64_t *)y.data)[1] == 0);
    CHECK_EQ_INT(run_un("Neg", &x, &y), KN_ERR_UNSUPPORTED); /* unsigned Neg is not ONNX */
    kn_tensor_release(&x);
    int64_t b[3] = {-128, 127, -3};
    x = kt_tensor_i64(KN_I8, 3, b);
    CHECK_EQ_INT(run_un("Abs", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -128 && kt_at_i64(&y, 2) == 3);
    CHECK_EQ_INT(run_un("Relu", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == 0 && kt_at_i64(&y, 1) == 127);
    CHECK_EQ_INT(run_un("Exp", &x, &y), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_round_half_even(void)
{
    double v[9] = {0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6, INFINITY, NAN};
    double want[8] = {0, 2, 2, -0.0, -2, 2, -3, INFINITY};
    int64_t dims[1] = {9};
    kn_dtype types[3] = {KN_F32, KN_F64, KN_F16};
    for (int t = 0; t < 3; t++) {
        kn_tensor x = kt_tensor_f64(types[t], 1, dims, v), y = {0};
        CHECK_EQ_INT(run_un("Round", &x, &y), KN_OK);
        for (int i = 0; i < 8; i++)
            CHECK(kt_at(&y, i) == want[i]);
        CHECK(signbit(kt_at(&y, 3)));
        CHECK(isnan(kt_at(&y, 8)));
        kn_tensor_release(&x);
        kn_tensor_release(&y);
    }
}

static void test_empty_and_scalar(void)
{
    int64_t dims[2] = {0, 3};
    kn_tensor x = kt_tensor_f64(KN_F32, 2, dims, NULL), y = {0};
    CHECK_EQ_INT(run_un("Sigmoid", &x, &y), KN_OK);
    CHECK(y.rank == 2 && y.dims[0] == 0 && y.dims[1] == 3 && y.numel == 0);
    CHECK_EQ_INT(run_un("IsNaN", &x, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL && y.numel == 0);
    kn_tensor_release(&x);
    double v = -2.0;
    x = kt_tensor_f64(KN_F64, 0, NULL, &v);
    CHECK_EQ_INT(run_un("Softsign", &x, &y), KN_OK);
    CHECK(y.rank == 0 && y.dtype == KN_F64);
    CHECK_NEAR(kt_at(&y, 0), -2.0 / 3.0, 1e-15);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_half_types(void)
{
    double v[3] = {-1.0, 0.0, 2.0};
    int64_t dims[1] = {3};
    kn_dtype types[2] = {KN_F16, KN_BF16};
    for (int t = 0; t < 2; t++) {
        kn_tensor x = kt_tensor_f64(types[t], 1, dims, v), y = {0};
        CHECK_EQ_INT(run_un("Sigmoid", &x, &y), KN_OK);
        CHECK(y.dtype == types[t]);
        CHECK_NEAR(kt_at(&y, 0), 0.26894142, 4e-3);
        CHECK_NEAR(kt_at(&y, 1), 0.5, 0);
        CHECK_NEAR(kt_at(&y, 2), 0.88079708, 4e-3);
        kn_tensor_release(&x);
        kn_tensor_release(&y);
    }
}

static void test_large_inputs_stay_finite(void)
{
    double v[4] = {-1000, -90, 90, 1000};
    int64_t dims[1] = {4};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, dims, v), y = {0};
    CHECK_EQ_INT(run_un("Sigmoid", &x, &y), KN_OK);
    CHECK(kt_at(&y, 0) == 0 && kt_at(&y, 3) == 1);
    CHECK_EQ_INT(run_un("Softplus", &x, &y), KN_OK);
    CHECK(kt_at(&y, 0) == 0 && kt_at(&y, 3) == 1000);
    CHECK_EQ_INT(run_un("Mish", &x, &y), KN_OK);
    CHECK(kt_at(&y, 3) == 1000 && !isnan(kt_at(&y, 0)));
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_isinf_flags(void)
{
    double v[4] = {-INFINITY, INFINITY, NAN, 1};
    int64_t dims[1] = {4};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, dims, v), y = {0};
    const kn_tensor *in[1] = {&x};
    kn_attr neg_only[1] = {kt_attr_int("detect_positive", 0)};
    CHECK_EQ_INT(kt_run_op_replace("IsInf", 20, 1, in, 1, neg_only, 1, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL);
    CHECK(kt_at_i64(&y, 0) == 1 && kt_at_i64(&y, 1) == 0 && kt_at_i64(&y, 2) == 0 && kt_at_i64(&y, 3) == 0);
    CHECK_EQ_INT(run_un("IsNaN", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == 0 && kt_at_i64(&y, 2) == 1);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_not_bitwise_not(void)
{
    int64_t b[3] = {0, 1, 1};
    kn_tensor x = kt_tensor_i64(KN_BOOL, 3, b), y = {0};
    CHECK_EQ_INT(run_un("Not", &x, &y), KN_OK);
    CHECK(y.dtype == KN_BOOL && kt_at_i64(&y, 0) == 1 && kt_at_i64(&y, 1) == 0);
    CHECK_EQ_INT(run_un("BitwiseNot", &x, &y), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    int64_t u[2] = {0, 0xf0};
    x = kt_tensor_i64(KN_U8, 2, u);
    CHECK_EQ_INT(run_un("BitwiseNot", &x, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == 255 && kt_at_i64(&y, 1) == 0x0f);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_clip(void)
{
    int64_t v[4] = {-100, 0, 50, 100};
    kn_tensor x = kt_tensor_i64(KN_I8, 4, v), y = {0};
    int64_t lo_v = -10, hi_v = 60;
    kn_tensor lo = kt_tensor_i64(KN_I8, 1, &lo_v), hi = kt_tensor_i64(KN_I8, 1, &hi_v);
    lo.rank = 0;
    const kn_tensor *in[3] = {&x, &lo, &hi};
    CHECK_EQ_INT(kt_run_op_replace("Clip", 13, 3, in, 0, NULL, 1, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -10 && kt_at_i64(&y, 1) == 0 && kt_at_i64(&y, 2) == 50 && kt_at_i64(&y, 3) == 60);
    const kn_tensor *only_max[3] = {&x, NULL, &hi};
    CHECK_EQ_INT(kt_run_op_replace("Clip", 13, 3, only_max, 0, NULL, 1, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -100 && kt_at_i64(&y, 3) == 60);
    const kn_tensor *swapped[3] = {&x, &hi, &lo}; /* min > max: everything is max */
    CHECK_EQ_INT(kt_run_op_replace("Clip", 13, 3, swapped, 0, NULL, 1, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -10 && kt_at_i64(&y, 3) == -10);
    const kn_tensor *bad[3] = {&x, &x, NULL}; /* min is not a scalar */
    CHECK_EQ_INT(kt_run_op_replace("Clip", 13, 3, bad, 0, NULL, 1, &y), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&lo);
    kn_tensor_release(&hi);

    int64_t u[2] = {-1 /* UINT64_MAX */, 5};
    int64_t ulo = 10, uhi = INT64_MIN; /* 2^63 as uint64 */
    x = kt_tensor_i64(KN_U64, 2, u);
    lo = kt_tensor_i64(KN_U64, 1, &ulo);
    hi = kt_tensor_i64(KN_U64, 1, &uhi);
    const kn_tensor *uin[3] = {&x, &lo, &hi};
    CHECK_EQ_INT(kt_run_op_replace("Clip", 13, 3, uin, 0, NULL, 1, &y), KN_OK);
    CHECK(((uint64_t *)y.data)[0] == (uint64_t)1 << 63 && ((uint64_t *)y.data)[1] == 10);
    kn_tensor_release(&x);
    kn_tensor_release(&lo);
    kn_tensor_release(&hi);

    double f[3] = {-5, 0.5, NAN};
    int64_t dims[1] = {3};
    x = kt_tensor_f64(KN_F32, 1, dims, f);
    const kn_tensor *fin[1] = {&x};
    kn_attr mm[2] = {kt_attr_float("min", -1), kt_attr_float("max", 0.25)};
    CHECK_EQ_INT(kt_run_op_replace("Clip", 6, 1, fin, 2, mm, 1, &y), KN_OK);
    CHECK(kt_at(&y, 0) == -1 && kt_at(&y, 1) == 0.25 && isnan(kt_at(&y, 2)));
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_prelu(void)
{
    int64_t xd[3] = {2, 3, 2}, sd[2] = {3, 1};
    double xv[12] = {-1, 1, -1, 1, -1, 1, -2, 2, -2, 2, -2, 2};
    double sv[3] = {0.5, 2, 3};
    kn_tensor x = kt_tensor_f64(KN_F32, 3, xd, xv), s = kt_tensor_f64(KN_F32, 2, sd, sv), y = {0};
    const kn_tensor *in[2] = {&x, &s};
    CHECK_EQ_INT(kt_run_op_replace("PRelu", 16, 2, in, 0, NULL, 1, &y), KN_OK);
    CHECK(kt_at(&y, 0) == -0.5 && kt_at(&y, 1) == 1 && kt_at(&y, 2) == -2 && kt_at(&y, 4) == -3);
    CHECK(kt_at(&y, 6) == -1 && kt_at(&y, 10) == -6 && kt_at(&y, 11) == 2);
    /* slope that does not broadcast to X (it would grow X) */
    int64_t bd[4] = {2, 2, 3, 2};
    kn_tensor big = kt_tensor_f64(KN_F32, 4, bd, NULL);
    const kn_tensor *bad[2] = {&x, &big};
    CHECK_EQ_INT(kt_run_op_replace("PRelu", 16, 2, bad, 0, NULL, 1, &y), KN_ERR_ARG);
    /* opset 6: a 1-D slope of length C applies per channel */
    int64_t cd[1] = {3};
    kn_tensor ch = kt_tensor_f64(KN_F32, 1, cd, sv);
    const kn_tensor *old[2] = {&x, &ch};
    CHECK_EQ_INT(kt_run_op_replace("PRelu", 6, 2, old, 0, NULL, 1, &y), KN_OK);
    CHECK(kt_at(&y, 0) == -0.5 && kt_at(&y, 2) == -2 && kt_at(&y, 4) == -3);
    kn_tensor_release(&x);
    kn_tensor_release(&s);
    kn_tensor_release(&big);
    kn_tensor_release(&ch);

    int64_t iv[3] = {-3, 4, INT32_MIN}, is[1] = {2};
    x = kt_tensor_i64(KN_I32, 3, iv);
    s = kt_tensor_i64(KN_I32, 1, is);
    const kn_tensor *iin[2] = {&x, &s};
    CHECK_EQ_INT(kt_run_op_replace("PRelu", 16, 2, iin, 0, NULL, 1, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -6 && kt_at_i64(&y, 1) == 4 && kt_at_i64(&y, 2) == 0); /* wraps */
    kn_tensor_release(&x);
    kn_tensor_release(&s);
    kn_tensor_release(&y);
}

static void test_gelu_modes(void)
{
    double v[2] = {-1, 1};
    int64_t dims[1] = {2};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, dims, v), y = {0};
    const kn_tensor *in[1] = {&x};
    kn_attr tanh_mode[1] = {kt_attr_str("approximate", "tanh")};
    CHECK_EQ_INT(kt_run_op_replace("Gelu", 20, 1, in, 1, tanh_mode, 1, &y), KN_OK);
    CHECK_NEAR(kt_at(&y, 1), 0.841192, 1e-5);
    CHECK_EQ_INT(kt_run_op_replace("Gelu", 20, 1, in, 0, NULL, 1, &y), KN_OK);
    CHECK_NEAR(kt_at(&y, 1), 0.841345, 1e-5);
    kn_attr bad[1] = {kt_attr_str("approximate", "sigmoid")};
    CHECK_EQ_INT(kt_run_op_replace("Gelu", 20, 1, in, 1, bad, 1, &y), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static int cast(const kn_tensor *x, kn_dtype to, kn_tensor *y)
{
    const kn_tensor *in[1] = {x};
    kn_attr a[1] = {kt_attr_int("to", to)};
    return kt_run_op_replace("Cast", 21, 1, in, 1, a, 1, y);
}

static void test_cast_float_to_int(void)
{
    double v[6] = {2.9, -2.9, 1e10, -1e10, NAN, -0.5};
    int64_t dims[1] = {6};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, dims, v), y = {0};
    CHECK_EQ_INT(cast(&x, KN_I32, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == 2 && kt_at_i64(&y, 1) == -2 && kt_at_i64(&y, 2) == INT32_MAX &&
          kt_at_i64(&y, 3) == INT32_MIN && kt_at_i64(&y, 4) == 0 && kt_at_i64(&y, 5) == 0);
    CHECK_EQ_INT(cast(&x, KN_U8, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == 2 && kt_at_i64(&y, 1) == 0 && kt_at_i64(&y, 2) == 255);
    CHECK_EQ_INT(cast(&x, KN_BOOL, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == 1 && kt_at_i64(&y, 4) == 1 && kt_at_i64(&y, 5) == 1);
    CHECK_EQ_INT(cast(&x, KN_U64, &y), KN_OK);
    CHECK(kt_at_i64(&y, 1) == 0);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_cast_rounding(void)
{
    /* float64 -> float16 just above a tie: rounding through float32 would tie to even */
    double d = 1.0 + ldexp(1, -11) + ldexp(1, -40);
    kn_tensor x = kt_tensor_f64(KN_F64, 0, NULL, &d), y = {0};
    CHECK_EQ_INT(cast(&x, KN_F16, &y), KN_OK);
    CHECK_EQ_INT(((uint16_t *)y.data)[0], 0x3c01);
    kn_tensor_release(&x);
    /* int64 -> bfloat16 just above a tie */
    int64_t v[3] = {((int64_t)1 << 30) + ((int64_t)1 << 22) + 1, -3, INT64_MIN};
    x = kt_tensor_i64(KN_I64, 3, v);
    CHECK_EQ_INT(cast(&x, KN_BF16, &y), KN_OK);
    CHECK_EQ_INT(((uint16_t *)y.data)[0], 0x4e81);
    CHECK(kt_at(&y, 1) == -3 && kt_at(&y, 2) == -9223372036854775808.0);
    CHECK_EQ_INT(cast(&x, KN_F32, &y), KN_OK);
    CHECK(kt_at(&y, 1) == -3);
    CHECK_EQ_INT(cast(&x, KN_U8, &y), KN_OK); /* wraps */
    CHECK(kt_at_i64(&y, 1) == 253 && kt_at_i64(&y, 2) == 0);
    kn_tensor_release(&x);
    int64_t u = -1; /* UINT64_MAX */
    x = kt_tensor_i64(KN_U64, 1, &u);
    CHECK_EQ_INT(cast(&x, KN_F32, &y), KN_OK);
    CHECK(kt_at(&y, 0) == 18446744073709551616.0);
    CHECK_EQ_INT(cast(&x, KN_I64, &y), KN_OK);
    CHECK(kt_at_i64(&y, 0) == -1);
    kn_tensor_release(&x);
    /* float32 -> float16: ties to even, overflow to inf, NaN stays NaN */
    double f[4] = {1.0 + 1.0 / 2048, 70000, -70000, NAN};
    int64_t dims[1] = {4};
    x = kt_tensor_f64(KN_F32, 1, dims, f);
    CHECK_EQ_INT(cast(&x, KN_F16, &y), KN_OK);
    CHECK(kt_at(&y, 0) == 1 && kt_at(&y, 1) == INFINITY && kt_at(&y, 2) == -INFINITY && isnan(kt_at(&y, 3)));
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}

static void test_cast_unsupported_and_like(void)
{
    double v[2] = {1.5, -2};
    int64_t dims[1] = {2};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, dims, v), y = {0};
    CHECK_EQ_INT(cast(&x, KN_STRING, &y), KN_ERR_UNSUPPORTED);
    CHECK_EQ_INT(cast(&x, KN_F8E4M3FN, &y), KN_ERR_UNSUPPORTED);
    CHECK_EQ_INT(cast(&x, (kn_dtype)99, &y), KN_ERR_UNSUPPORTED);
    const kn_tensor *none[1] = {&x};
    CHECK_EQ_INT(kt_run_op_replace("Cast", 21, 1, none, 0, NULL, 1, &y), KN_ERR_MODEL);
    int64_t one[1] = {0};
    kn_tensor like = kt_tensor_i64(KN_I16, 1, one);
    const kn_tensor *in[2] = {&x, &like};
    CHECK_EQ_INT(kt_run_op_replace("CastLike", 21, 2, in, 0, NULL, 1, &y), KN_OK);
    CHECK(y.dtype == KN_I16 && kt_at_i64(&y, 0) == 1 && kt_at_i64(&y, 1) == -2);
    kn_tensor_release(&x);
    kn_tensor_release(&like);
    kn_tensor_release(&y);
}

static void test_infer(void)
{
    kn_type x = {KN_TYPE_TENSOR, KN_F16, 2, {{4, NULL}, {-1, "n"}}};
    const kn_type *in[2] = {&x, NULL};
    kn_type out[1];
    kn_error err = {0};
    kn_infer_ctx ic = {NULL, 20, 1, in, NULL, 1, out, &err};
    const kn_op_def *d = kn_op_find("", "IsInf", 20);
    CHECK(d && d->infer && d->infer(&ic) == KN_OK);
    CHECK(out[0].dtype == KN_BOOL && out[0].rank == 2 && out[0].dims[1].param);
    d = kn_op_find("", "Sigmoid", 13);
    CHECK(d && d->infer && d->infer(&ic) == KN_OK);
    CHECK(out[0].dtype == KN_F16 && out[0].dims[0].value == 4);
    kn_type like = {KN_TYPE_TENSOR, KN_I8, 0, {{0, NULL}}};
    in[1] = &like;
    ic.n_in = 2;
    d = kn_op_find("", "CastLike", 21);
    CHECK(d && d->infer && d->infer(&ic) == KN_OK);
    CHECK(out[0].dtype == KN_I8 && out[0].rank == 2);
}

TEST_MAIN(TEST_CASE(test_infer), TEST_CASE(test_int_abs_neg_sign), TEST_CASE(test_round_half_even),
          TEST_CASE(test_empty_and_scalar), TEST_CASE(test_half_types),
          TEST_CASE(test_large_inputs_stay_finite), TEST_CASE(test_isinf_flags),
          TEST_CASE(test_not_bitwise_not), TEST_CASE(test_clip), TEST_CASE(test_prelu),
          TEST_CASE(test_gelu_modes), TEST_CASE(test_cast_float_to_int),
          TEST_CASE(test_cast_rounding), TEST_CASE(test_cast_unsupported_and_like))
