/* test_ops_binary.c - unit tests for src/ops/binary.c: broadcasting, exact integer
 * arithmetic (int64/uint64), division by zero, Mod signs, Pow over mixed types,
 * BitShift widths, NaN in Max/Min, variadic Sum/Mean, Where, empty tensors and
 * error cases.  Each test builds a one-node graph and runs it. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>
#include <stdlib.h>

#define MAX_IN 4

/* An input given inline as a compound literal: dtype, shape and raw elements. */
typedef struct tin {
    kn_dtype dt;
    int rank;
    int64_t dims[4];
    const void *data;
} tin;

/* Run a one-node graph `op` (opset) on copies of the inputs; the result goes to
 * *out (owned, release it).  attrs may be NULL.  Returns the status. */
static int run_op(const char *op, int opset, const kn_attr *attrs, int n_attr, int n_in,
                  const tin *ins, kn_tensor *out, kn_error *err)
{
    kn_tensor tensors[MAX_IN];
    const kn_tensor *ptrs[MAX_IN];
    for (int i = 0; i < n_in; i++) {
        tensors[i] = kt_tensor(ins[i].dt, ins[i].rank, ins[i].dims, ins[i].data);
        ptrs[i] = &tensors[i];
    }
    memset(out, 0, sizeof *out);
    int rc = kt_run_op(op, opset, n_in, ptrs, n_attr, attrs, 1, out, err);
    kt_release_all(tensors, n_in);
    return rc;
}

static int run2(const char *op, tin a, tin b, kn_tensor *out, kn_error *err)
{
    tin ins[2] = {a, b};
    return run_op(op, 17, NULL, 0, 2, ins, out, err);
}

#define T1(dt, n, ...) ((tin){dt, 1, {n}, (const void *)__VA_ARGS__})
#define T0(dt, ...) ((tin){dt, 0, {0}, (const void *)__VA_ARGS__})

static void test_add_f32_broadcast(void)
{
    kn_error err;
    kn_tensor out;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30}, s = 100;
    CHECK_EQ_INT(run2("Add", (tin){KN_F32, 2, {2, 3}, a}, T1(KN_F32, 3, b), &out, &err), KN_OK);
    const int64_t d23[2] = {2, 3};
    kt_check_dims(&out, 2, d23);
    const float *o = out.data;
    CHECK_NEAR(o[0], 11, 0);
    CHECK_NEAR(o[5], 36, 0);
    kn_tensor_release(&out);
    /* scalar on the left, Sub */
    CHECK_EQ_INT(run2("Sub", T0(KN_F32, &s), (tin){KN_F32, 2, {2, 3}, a}, &out, &err), KN_OK);
    o = out.data;
    CHECK_NEAR(o[0], 99, 0);
    CHECK_NEAR(o[5], 94, 0);
    kn_tensor_release(&out);
    /* [2,1,3] * [4,1] -> [2,4,3] */
    float c[4] = {1, 2, 3, 4};
    CHECK_EQ_INT(run2("Mul", (tin){KN_F32, 3, {2, 1, 3}, a}, (tin){KN_F32, 2, {4, 1}, c}, &out, &err), KN_OK);
    const int64_t d243[3] = {2, 4, 3};
    kt_check_dims(&out, 3, d243);
    o = out.data;
    CHECK_NEAR(o[0], 1, 0);         /* a[0,0,0]*c[0] */
    CHECK_NEAR(o[1 * 3 + 2], 6, 0); /* a[0,0,2]*c[1] */
    CHECK_NEAR(o[12 + 3 * 3 + 1], 20, 0); /* a[1,0,1]*c[3] */
    kn_tensor_release(&out);
}

static void test_broadcast_generic_matches_f32(void)
{
    /* [3,1,5,1] op [4,1,7] over int32 (generic path, several chunks) vs expected */
    kn_error err;
    kn_tensor out;
    int32_t a[15], b[28];
    for (int i = 0; i < 15; i++) a[i] = i * 3 - 20;
    for (int i = 0; i < 28; i++) b[i] = i - 9;
    CHECK_EQ_INT(run2("Sub", (tin){KN_I32, 4, {3, 1, 5, 1}, a}, (tin){KN_I32, 3, {4, 1, 7}, b}, &out, &err), KN_OK);
    const int64_t d[4] = {3, 4, 5, 7};
    kt_check_dims(&out, 4, d);
    int bad = 0;
    const int32_t *o = out.data;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 5; k++)
                for (int l = 0; l < 7; l++)
                    bad += o[((i * 4 + j) * 5 + k) * 7 + l] != a[i * 5 + k] - b[j * 7 + l];
    CHECK_EQ_INT(bad, 0);
    kn_tensor_release(&out);
    /* long rows (more than one chunk) with a broadcast scalar */
    int16_t big[1000], two = 2;
    for (int i = 0; i < 1000; i++) big[i] = (int16_t)(i - 500);
    CHECK_EQ_INT(run2("Mul", T1(KN_I16, 1000, big), T0(KN_I16, &two), &out, &err), KN_OK);
    bad = 0;
    for (int i = 0; i < 1000; i++)
        bad += ((int16_t *)out.data)[i] != (i - 500) * 2;
    CHECK_EQ_INT(bad, 0);
    kn_tensor_release(&out);
}

static void test_int64_exact(void)
{
    kn_error err;
    kn_tensor out;
    int64_t a[2] = {(INT64_C(1) << 62) + 1, INT64_MAX}, b[2] = {(INT64_C(1) << 62) + 3, 1};
    CHECK_EQ_INT(run2("Add", T1(KN_I64, 2, a), T1(KN_I64, 2, b), &out, &err), KN_OK);
    CHECK(((int64_t *)out.data)[0] == INT64_C(-9223372036854775804)); /* wraps */
    CHECK(((int64_t *)out.data)[1] == INT64_MIN);
    kn_tensor_release(&out);
    uint64_t u[2] = {UINT64_MAX, UINT64_C(1) << 63}, v[2] = {UINT64_MAX - 1, 3};
    CHECK_EQ_INT(run2("Greater", T1(KN_U64, 2, u), T1(KN_U64, 2, v), &out, &err), KN_OK);
    CHECK_EQ_INT(out.dtype, KN_BOOL);
    CHECK_EQ_INT(((uint8_t *)out.data)[0], 1);
    CHECK_EQ_INT(((uint8_t *)out.data)[1], 1);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("Div", T1(KN_U64, 2, u), T1(KN_U64, 2, v), &out, &err), KN_OK);
    CHECK(((uint64_t *)out.data)[0] == 1);
    CHECK(((uint64_t *)out.data)[1] == (UINT64_C(1) << 63) / 3);
    kn_tensor_release(&out);
    /* 2^53 + 1 survives Equal (would not through double) */
    int64_t e1 = (INT64_C(1) << 53) + 1, e2 = INT64_C(1) << 53;
    CHECK_EQ_INT(run2("Equal", T0(KN_I64, &e1), T0(KN_I64, &e2), &out, &err), KN_OK);
    CHECK_EQ_INT(((uint8_t *)out.data)[0], 0);
    kn_tensor_release(&out);
}

static void test_int_division(void)
{
    kn_error err;
    kn_tensor out;
    int32_t a[4] = {-7, 7, -7, INT32_MIN}, b[4] = {2, -2, -2, -1};
    CHECK_EQ_INT(run2("Div", T1(KN_I32, 4, a), T1(KN_I32, 4, b), &out, &err), KN_OK);
    const int32_t *o = out.data;
    CHECK_EQ_INT(o[0], -3);
    CHECK_EQ_INT(o[1], -3);
    CHECK_EQ_INT(o[2], 3);
    CHECK_EQ_INT(o[3], INT32_MIN); /* wraps, no trap */
    kn_tensor_release(&out);
    int64_t m = INT64_MIN, neg1 = -1;
    CHECK_EQ_INT(run2("Div", T0(KN_I64, &m), T0(KN_I64, &neg1), &out, &err), KN_OK);
    CHECK(((int64_t *)out.data)[0] == INT64_MIN);
    kn_tensor_release(&out);
    int32_t z[4] = {1, 0, 1, 1};
    CHECK_EQ_INT(run2("Div", T1(KN_I32, 4, a), T1(KN_I32, 4, z), &out, &err), KN_ERR_RUNTIME);
    CHECK(strstr(err.msg, "integer division by zero") != NULL);
    uint8_t ua = 5, ub = 0;
    CHECK_EQ_INT(run2("Div", T0(KN_U8, &ua), T0(KN_U8, &ub), &out, &err), KN_ERR_RUNTIME);
    CHECK_EQ_INT(run2("Mod", T0(KN_U8, &ua), T0(KN_U8, &ub), &out, &err), KN_ERR_RUNTIME);
    /* float division by zero is inf, not an error */
    float fa = 1, fb = 0;
    CHECK_EQ_INT(run2("Div", T0(KN_F32, &fa), T0(KN_F32, &fb), &out, &err), KN_OK);
    CHECK(isinf(((float *)out.data)[0]));
    kn_tensor_release(&out);
}

static void test_mod_signs(void)
{
    kn_error err;
    kn_tensor out;
    int64_t a[4] = {-7, 7, -7, INT64_MIN}, b[4] = {3, -3, -3, -1};
    kn_attr fmod1 = kt_attr_int("fmod", 1);
    tin ins[2] = {T1(KN_I64, 4, a), T1(KN_I64, 4, b)};
    CHECK_EQ_INT(run_op("Mod", 13, NULL, 0, 2, ins, &out, &err), KN_OK);
    const int64_t *o = out.data;
    CHECK_EQ_INT(o[0], 2);   /* Python: sign of divisor */
    CHECK_EQ_INT(o[1], -2);
    CHECK_EQ_INT(o[2], -1);
    CHECK_EQ_INT(o[3], 0);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run_op("Mod", 13, &fmod1, 1, 2, ins, &out, &err), KN_OK);
    o = out.data;
    CHECK_EQ_INT(o[0], -1);  /* C: sign of dividend */
    CHECK_EQ_INT(o[1], 1);
    CHECK_EQ_INT(o[2], -1);
    kn_tensor_release(&out);
    double fa[2] = {-7.5, 7.5}, fb[2] = {2, -2};
    tin fins[2] = {T1(KN_F64, 2, fa), T1(KN_F64, 2, fb)};
    CHECK_EQ_INT(run_op("Mod", 13, &fmod1, 1, 2, fins, &out, &err), KN_OK);
    CHECK_NEAR(((double *)out.data)[0], -1.5, 0);
    CHECK_NEAR(((double *)out.data)[1], 1.5, 0);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run_op("Mod", 13, NULL, 0, 2, fins, &out, &err), KN_OK);
    CHECK_NEAR(((double *)out.data)[0], 0.5, 0);
    CHECK_NEAR(((double *)out.data)[1], -0.5, 0);
    kn_tensor_release(&out);
    kn_attr bad = kt_attr_int("fmod", 2);
    CHECK(run_op("Mod", 13, &bad, 1, 2, fins, &out, &err) != KN_OK);
}

static void test_pow_types(void)
{
    kn_error err;
    kn_tensor out;
    int64_t base[4] = {3, -2, 1, -1}, ex[4] = {39, 63, -5, -3};
    CHECK_EQ_INT(run2("Pow", T1(KN_I64, 4, base), T1(KN_I64, 4, ex), &out, &err), KN_OK);
    const int64_t *o = out.data;
    CHECK(o[0] == INT64_C(4052555153018976267));  /* 3^39 exactly */
    CHECK(o[1] == INT64_MIN);                     /* (-2)^63 */
    CHECK_EQ_INT(o[2], 1);
    CHECK_EQ_INT(o[3], -1);
    kn_tensor_release(&out);
    int32_t ib[3] = {1, 2, 3};
    float fe[3] = {4, 5, 0.5f};
    CHECK_EQ_INT(run2("Pow", T1(KN_I32, 3, ib), T1(KN_F32, 3, fe), &out, &err), KN_OK);
    CHECK_EQ_INT(out.dtype, KN_I32);
    CHECK_EQ_INT(((int32_t *)out.data)[0], 1);
    CHECK_EQ_INT(((int32_t *)out.data)[1], 32);
    CHECK_EQ_INT(((int32_t *)out.data)[2], 1); /* sqrt(3) truncated */
    kn_tensor_release(&out);
    float fb[2] = {2, -2};
    uint64_t ue[2] = {10, 3};
    CHECK_EQ_INT(run2("Pow", T1(KN_F32, 2, fb), T1(KN_U64, 2, ue), &out, &err), KN_OK);
    CHECK_EQ_INT(out.dtype, KN_F32);
    CHECK_NEAR(((float *)out.data)[0], 1024, 0);
    CHECK_NEAR(((float *)out.data)[1], -8, 0);
    kn_tensor_release(&out);
    int32_t zero = 0, neg = -1;
    CHECK_EQ_INT(run2("Pow", T0(KN_I32, &zero), T0(KN_I32, &neg), &out, &err), KN_ERR_RUNTIME);
}

static void test_bitshift(void)
{
    kn_error err;
    kn_tensor out;
    kn_attr left = kt_attr_str("direction", "LEFT");
    kn_attr right = kt_attr_str("direction", "RIGHT");
    kn_attr bad = kt_attr_str("direction", "UP");
    uint8_t a[4] = {1, 0x81, 0xff, 3}, s[4] = {7, 1, 8, 200};
    tin ins[2] = {T1(KN_U8, 4, a), T1(KN_U8, 4, s)};
    CHECK_EQ_INT(run_op("BitShift", 11, &left, 1, 2, ins, &out, &err), KN_OK);
    const uint8_t *o = out.data;
    CHECK_EQ_INT(o[0], 0x80);
    CHECK_EQ_INT(o[1], 0x02);
    CHECK_EQ_INT(o[2], 0);
    CHECK_EQ_INT(o[3], 0);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run_op("BitShift", 11, &right, 1, 2, ins, &out, &err), KN_OK);
    o = out.data;
    CHECK_EQ_INT(o[0], 0);
    CHECK_EQ_INT(o[1], 0x40);
    CHECK_EQ_INT(o[2], 0);
    kn_tensor_release(&out);
    uint64_t big = UINT64_MAX, sh[2] = {63, 64};
    tin ins64[2] = {T0(KN_U64, &big), T1(KN_U64, 2, sh)};
    CHECK_EQ_INT(run_op("BitShift", 11, &left, 1, 2, ins64, &out, &err), KN_OK);
    CHECK(((uint64_t *)out.data)[0] == UINT64_C(1) << 63);
    CHECK(((uint64_t *)out.data)[1] == 0);
    kn_tensor_release(&out);
    CHECK(run_op("BitShift", 11, &bad, 1, 2, ins, &out, &err) != KN_OK);
    CHECK(run_op("BitShift", 11, NULL, 0, 2, ins, &out, &err) != KN_OK);
}

static void test_bitwise_and_logic(void)
{
    kn_error err;
    kn_tensor out;
    int16_t a[2] = {-1, 0x0f0f}, b[2] = {0x1234, -256};
    CHECK_EQ_INT(run2("BitwiseAnd", T1(KN_I16, 2, a), T1(KN_I16, 2, b), &out, &err), KN_OK);
    CHECK_EQ_INT(((int16_t *)out.data)[0], 0x1234);
    CHECK_EQ_INT(((int16_t *)out.data)[1], 0x0f00);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("BitwiseXor", T1(KN_I16, 2, a), T1(KN_I16, 2, b), &out, &err), KN_OK);
    CHECK_EQ_INT(((int16_t *)out.data)[0], (int16_t)(-1 ^ 0x1234));
    kn_tensor_release(&out);
    uint8_t p[4] = {0, 0, 1, 1}, q[4] = {0, 1, 0, 1};
    CHECK_EQ_INT(run2("Xor", T1(KN_BOOL, 4, p), T1(KN_BOOL, 4, q), &out, &err), KN_OK);
    CHECK_EQ_INT(((uint8_t *)out.data)[1], 1);
    CHECK_EQ_INT(((uint8_t *)out.data)[3], 0);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("Or", T1(KN_BOOL, 4, p), T1(KN_BOOL, 4, q), &out, &err), KN_OK);
    CHECK_EQ_INT(((uint8_t *)out.data)[0], 0);
    CHECK_EQ_INT(((uint8_t *)out.data)[2], 1);
    kn_tensor_release(&out);
    /* logic on non-bool, bitwise on floats: unsupported */
    float f[2] = {1, 2};
    CHECK_EQ_INT(run2("And", T1(KN_F32, 2, f), T1(KN_F32, 2, f), &out, &err), KN_ERR_UNSUPPORTED);
    CHECK_EQ_INT(run2("BitwiseOr", T1(KN_F32, 2, f), T1(KN_F32, 2, f), &out, &err), KN_ERR_UNSUPPORTED);
}

static void test_max_min_nan_and_variadic(void)
{
    kn_error err;
    kn_tensor out;
    float a[3] = {1, NAN, 5}, b[3] = {NAN, 2, 4};
    CHECK_EQ_INT(run2("Max", T1(KN_F32, 3, a), T1(KN_F32, 3, b), &out, &err), KN_OK);
    CHECK(isnan(((float *)out.data)[0]));
    CHECK(isnan(((float *)out.data)[1]));
    CHECK_NEAR(((float *)out.data)[2], 5, 0);
    kn_tensor_release(&out);
    uint16_t ha[3], hb[3];
    for (int i = 0; i < 3; i++) {
        ha[i] = kn_f32_to_f16(a[i]);
        hb[i] = kn_f32_to_f16(b[i]);
    }
    CHECK_EQ_INT(run2("Min", T1(KN_F16, 3, ha), T1(KN_F16, 3, hb), &out, &err), KN_OK);
    CHECK(isnan(kn_f16_to_f32(((uint16_t *)out.data)[0])));
    CHECK_NEAR(kn_f16_to_f32(((uint16_t *)out.data)[2]), 4, 0);
    kn_tensor_release(&out);
    /* three inputs broadcasting to [2,3]: [2,1], [1,3], [3] */
    int64_t x[2] = {5, -5}, y[3] = {0, 10, -10}, z[3] = {1, 2, 3};
    tin ins[3] = {(tin){KN_I64, 2, {2, 1}, x}, (tin){KN_I64, 2, {1, 3}, y}, T1(KN_I64, 3, z)};
    CHECK_EQ_INT(run_op("Max", 13, NULL, 0, 3, ins, &out, &err), KN_OK);
    const int64_t d23[2] = {2, 3};
    kt_check_dims(&out, 2, d23);
    const int64_t *o = out.data;
    const int64_t want[6] = {5, 10, 5, 1, 10, 3};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(o[i], want[i]);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run_op("Min", 13, NULL, 0, 3, ins, &out, &err), KN_OK);
    o = out.data;
    CHECK_EQ_INT(o[1], 2);
    CHECK_EQ_INT(o[5], -10);
    kn_tensor_release(&out);
    /* Sum / Mean */
    float s1[2] = {1, 2}, s2[2] = {3, 4}, s3 = 5;
    tin fin[3] = {T1(KN_F32, 2, s1), T1(KN_F32, 2, s2), T0(KN_F32, &s3)};
    CHECK_EQ_INT(run_op("Sum", 13, NULL, 0, 3, fin, &out, &err), KN_OK);
    CHECK_NEAR(((float *)out.data)[0], 9, 0);
    CHECK_NEAR(((float *)out.data)[1], 11, 0);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run_op("Mean", 13, NULL, 0, 3, fin, &out, &err), KN_OK);
    CHECK_NEAR(((float *)out.data)[0], 3, 1e-6);
    CHECK_NEAR(((float *)out.data)[1], 11.0 / 3, 1e-6);
    kn_tensor_release(&out);
    /* single input: copy */
    CHECK_EQ_INT(run_op("Mean", 13, NULL, 0, 1, fin, &out, &err), KN_OK);
    CHECK_EQ_INT(out.numel, 2);
    CHECK_NEAR(((float *)out.data)[1], 2, 0);
    kn_tensor_release(&out);
    /* Mean over integers is not in the spec */
    CHECK_EQ_INT(run_op("Mean", 13, NULL, 0, 2, ins, &out, &err), KN_ERR_UNSUPPORTED);
    /* mixed dtypes */
    tin mixed[2] = {T1(KN_F32, 2, s1), T1(KN_I64, 3, z)};
    CHECK_EQ_INT(run_op("Max", 13, NULL, 0, 2, mixed, &out, &err), KN_ERR_ARG);
}

static void test_where(void)
{
    kn_error err;
    kn_tensor out;
    uint8_t cond[2] = {1, 0};
    int64_t x[3] = {1, 2, 3}, yv = -1;
    tin ins[3] = {(tin){KN_BOOL, 2, {2, 1}, cond}, T1(KN_I64, 3, x), T0(KN_I64, &yv)};
    CHECK_EQ_INT(run_op("Where", 16, NULL, 0, 3, ins, &out, &err), KN_OK);
    const int64_t d23[2] = {2, 3};
    kt_check_dims(&out, 2, d23);
    CHECK_EQ_INT(out.dtype, KN_I64);
    const int64_t *o = out.data;
    CHECK_EQ_INT(o[0], 1);
    CHECK_EQ_INT(o[2], 3);
    CHECK_EQ_INT(o[3], -1);
    CHECK_EQ_INT(o[5], -1);
    kn_tensor_release(&out);
    uint16_t h[3] = {kn_f32_to_f16(1.5f), kn_f32_to_f16(2.5f), kn_f32_to_f16(-3)};
    uint16_t hy = kn_f32_to_f16(7);
    tin hins[3] = {(tin){KN_BOOL, 2, {2, 1}, cond}, T1(KN_F16, 3, h), T0(KN_F16, &hy)};
    CHECK_EQ_INT(run_op("Where", 16, NULL, 0, 3, hins, &out, &err), KN_OK);
    CHECK_NEAR(kn_f16_to_f32(((uint16_t *)out.data)[1]), 2.5, 0);
    CHECK_NEAR(kn_f16_to_f32(((uint16_t *)out.data)[4]), 7, 0);
    kn_tensor_release(&out);
    /* non-bool condition, mismatched X/Y dtypes, unbroadcastable shapes */
    tin bad1[3] = {T1(KN_I64, 3, x), T1(KN_I64, 3, x), T0(KN_I64, &yv)};
    CHECK_EQ_INT(run_op("Where", 16, NULL, 0, 3, bad1, &out, &err), KN_ERR_ARG);
    tin bad2[3] = {T1(KN_BOOL, 2, cond), T1(KN_I64, 2, x), T0(KN_F16, &hy)};
    CHECK_EQ_INT(run_op("Where", 16, NULL, 0, 3, bad2, &out, &err), KN_ERR_ARG);
    tin bad3[3] = {T1(KN_BOOL, 2, cond), T1(KN_I64, 3, x), T0(KN_I64, &yv)};
    CHECK_EQ_INT(run_op("Where", 16, NULL, 0, 3, bad3, &out, &err), KN_ERR_ARG);
}

static void test_empty_and_errors(void)
{
    kn_error err;
    kn_tensor out;
    float b[3] = {1, 2, 3};
    CHECK_EQ_INT(run2("Add", (tin){KN_F32, 2, {0, 3}, NULL}, T1(KN_F32, 3, b), &out, &err), KN_OK);
    const int64_t d03[2] = {0, 3};
    kt_check_dims(&out, 2, d03);
    CHECK_EQ_INT(out.numel, 0);
    kn_tensor_release(&out);
    int32_t i0 = 0;
    CHECK_EQ_INT(run2("Div", (tin){KN_I32, 2, {4, 0}, NULL}, T0(KN_I32, &i0), &out, &err), KN_OK);
    CHECK_EQ_INT(out.numel, 0);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("Less", (tin){KN_F32, 1, {0}, NULL}, T1(KN_F32, 1, b), &out, &err), KN_OK);
    CHECK_EQ_INT(out.dtype, KN_BOOL);
    CHECK_EQ_INT(out.rank, 1);
    CHECK_EQ_INT(out.numel, 0);
    kn_tensor_release(&out);
    /* [2] + [3] cannot broadcast */
    CHECK_EQ_INT(run2("Add", T1(KN_F32, 2, b), T1(KN_F32, 3, b), &out, &err), KN_ERR_ARG);
    /* dtype mismatch */
    int32_t iv[3] = {1, 2, 3};
    CHECK_EQ_INT(run2("Mul", T1(KN_F32, 3, b), T1(KN_I32, 3, iv), &out, &err), KN_ERR_ARG);
    /* arithmetic on bool */
    uint8_t bb[3] = {1, 0, 1};
    CHECK_EQ_INT(run2("Add", T1(KN_BOOL, 3, bb), T1(KN_BOOL, 3, bb), &out, &err), KN_ERR_UNSUPPORTED);
    /* missing second input */
    tin one[1] = {T1(KN_F32, 3, b)};
    CHECK(run_op("Add", 14, NULL, 0, 1, one, &out, &err) != KN_OK);
}

static void test_half_and_narrow_ints(void)
{
    kn_error err;
    kn_tensor out;
    uint16_t ha = kn_f32_to_f16(1.0f), hb = kn_f32_to_f16(1.0f / 2048);
    CHECK_EQ_INT(run2("Add", T0(KN_F16, &ha), T0(KN_F16, &hb), &out, &err), KN_OK);
    CHECK_EQ_INT(((uint16_t *)out.data)[0], 0x3c00); /* ties to even */
    kn_tensor_release(&out);
    uint16_t ba = kn_f32_to_bf16(3.0f), bb = kn_f32_to_bf16(0.5f);
    CHECK_EQ_INT(run2("Mul", T0(KN_BF16, &ba), T0(KN_BF16, &bb), &out, &err), KN_OK);
    CHECK_NEAR(kn_bf16_to_f32(((uint16_t *)out.data)[0]), 1.5, 0);
    kn_tensor_release(&out);
    int8_t ia[2] = {100, -128}, ib[2] = {100, -1};
    CHECK_EQ_INT(run2("Add", T1(KN_I8, 2, ia), T1(KN_I8, 2, ib), &out, &err), KN_OK);
    CHECK_EQ_INT(((int8_t *)out.data)[0], -56); /* wraps */
    CHECK_EQ_INT(((int8_t *)out.data)[1], 127);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("Div", T1(KN_I8, 2, ia), T1(KN_I8, 2, ib), &out, &err), KN_OK);
    CHECK_EQ_INT(((int8_t *)out.data)[1], -128);
    kn_tensor_release(&out);
    uint32_t ua = 3, ub = 5;
    CHECK_EQ_INT(run2("Sub", T0(KN_U32, &ua), T0(KN_U32, &ub), &out, &err), KN_OK);
    CHECK(((uint32_t *)out.data)[0] == UINT32_MAX - 1);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("LessOrEqual", T0(KN_U32, &ua), T0(KN_U32, &ub), &out, &err), KN_OK);
    CHECK_EQ_INT(((uint8_t *)out.data)[0], 1);
    kn_tensor_release(&out);
    CHECK_EQ_INT(run2("GreaterOrEqual", T0(KN_U32, &ua), T0(KN_U32, &ub), &out, &err), KN_OK);
    CHECK_EQ_INT(((uint8_t *)out.data)[0], 0);
    kn_tensor_release(&out);
}

static void test_legacy_broadcast_axis(void)
{
    kn_error err;
    kn_tensor out;
    /* opset 6: A [2,3,2] + B [3] with broadcast=1, axis=1 -> B lines up with dim 1 */
    float a[12] = {0};
    float b[3] = {1, 2, 3};
    kn_attr attrs[2] = {kt_attr_int("broadcast", 1),
                        kt_attr_int("axis", 1)};
    tin ins[2] = {(tin){KN_F32, 3, {2, 3, 2}, a}, T1(KN_F32, 3, b)};
    CHECK_EQ_INT(run_op("Add", 6, attrs, 2, 2, ins, &out, &err), KN_OK);
    const float *o = out.data;
    CHECK_NEAR(o[0], 1, 0);
    CHECK_NEAR(o[1], 1, 0);
    CHECK_NEAR(o[2], 2, 0);
    CHECK_NEAR(o[5], 3, 0);
    CHECK_NEAR(o[11], 3, 0);
    kn_tensor_release(&out);
}

TEST_MAIN(TEST_CASE(test_add_f32_broadcast), TEST_CASE(test_broadcast_generic_matches_f32),
          TEST_CASE(test_int64_exact), TEST_CASE(test_int_division), TEST_CASE(test_mod_signs),
          TEST_CASE(test_pow_types), TEST_CASE(test_bitshift), TEST_CASE(test_bitwise_and_logic),
          TEST_CASE(test_max_min_nan_and_variadic), TEST_CASE(test_where),
          TEST_CASE(test_empty_and_errors), TEST_CASE(test_half_and_narrow_ints),
          TEST_CASE(test_legacy_broadcast_axis))
