/* test_ops_nn.c - unit tests for the matmul, norm and softmax operator families:
 * edge shapes, broadcasting, exact integer products, einsum parsing, opset
 * differences, and bad inputs that must fail cleanly. */
#include "test.h"
#include "op_harness.h"

#include <stdlib.h>

#include "ir/ir.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static float *rand_f32(int64_t n, unsigned seed)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        p[i] = frand(&seed);
    return p;
}

/* ---- MatMul ---- */

static void test_matmul_broadcast(void)
{
    /* [2,1,2,3] x [3,3,2] -> [2,3,2,2] */
    int64_t da[4] = {2, 1, 2, 3}, db[3] = {3, 3, 2};
    float *a = rand_f32(12, 1), *b = rand_f32(18, 2);
    kn_tensor ta = kt_tensor(KN_F32, 4, da, a), tb = kt_tensor(KN_F32, 3, db, b), y = {0};
    const kn_tensor *ins[2] = {&ta, &tb};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 4);
    CHECK_EQ_INT(y.dims[0], 2);
    CHECK_EQ_INT(y.dims[1], 3);
    CHECK_EQ_INT(y.dims[2], 2);
    CHECK_EQ_INT(y.dims[3], 2);
    const float *yv = y.data;
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    double s = 0;
                    for (int k = 0; k < 3; k++)
                        s += a[p * 6 + i * 3 + k] * b[q * 6 + k * 2 + j];
                    CHECK_NEAR(yv[((p * 3 + q) * 2 + i) * 2 + j], s, 1e-6);
                }
    free(a), free(b);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&y);
}

static void test_matmul_vectors(void)
{
    int64_t d3[1] = {3}, d233[3] = {2, 3, 3};
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
    kn_tensor ta = kt_tensor(KN_F32, 1, d3, a), tb = kt_tensor(KN_F32, 1, d3, b), y = {0};
    const kn_tensor *ins[2] = {&ta, &tb};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 0);
    CHECK_NEAR(((float *)y.data)[0], 32, 0);
    kn_tensor_release(&y);
    /* 1-D x 3-D: [3] x [2,3,3] -> [2,3] */
    float m[18];
    for (int i = 0; i < 18; i++)
        m[i] = (float)i;
    kn_tensor tm = kt_tensor(KN_F32, 3, d233, m);
    const kn_tensor *ins2[2] = {&ta, &tm};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins2, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 2);
    CHECK_EQ_INT(y.dims[0], 2);
    CHECK_EQ_INT(y.dims[1], 3);
    /* batch 1, column 2: 1*11 + 2*14 + 3*17 = 90 */
    CHECK_NEAR(((float *)y.data)[5], 90, 0);
    kn_tensor_release(&y);
    /* 3-D x 1-D: [2,3,3] x [3] -> [2,3] */
    const kn_tensor *ins3[2] = {&tm, &ta};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins3, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 2);
    /* row [15,16,17] . [1,2,3] = 98 */
    CHECK_NEAR(((float *)y.data)[5], 98, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tm);
}

static void test_matmul_errors(void)
{
    int64_t d23[2] = {2, 3}, d2[1] = {2};
    kn_tensor ta = kt_tensor(KN_F32, 2, d23, NULL), tb = kt_tensor(KN_F32, 2, d23, NULL), y = {0};
    kn_tensor tc = kt_tensor(KN_F64, 1, d2, NULL), ts = kt_tensor(KN_F32, 0, NULL, NULL);
    kn_error err;
    const kn_tensor *ins[2] = {&ta, &tb};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    const kn_tensor *ins2[2] = {&ta, &tc};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins2, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    const kn_tensor *ins3[2] = {&ts, &ts};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins3, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tc), kn_tensor_release(&ts);
}

static void test_matmul_large_blocked(void)
{
    /* big enough to cross the kernel's cache blocks in K and N */
    int64_t M = 7, K = 300, N = 1100;
    int64_t da[2] = {M, K}, db[2] = {K, N};
    float *a = rand_f32(M * K, 3), *b = rand_f32(K * N, 4);
    kn_tensor ta = kt_tensor(KN_F32, 2, da, a), tb = kt_tensor(KN_F32, 2, db, b), y = {0};
    const kn_tensor *ins[2] = {&ta, &tb};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    double maxerr = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j += 7) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)a[i * K + k] * b[k * N + j];
            double e = fabs(((float *)y.data)[i * N + j] - s);
            maxerr = e > maxerr ? e : maxerr;
        }
    CHECK(maxerr < 1e-4);
    free(a), free(b);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&y);
}

static void test_matmul_empty(void)
{
    int64_t da[2] = {0, 3}, db[2] = {3, 4}, dk[2] = {2, 0}, dk2[2] = {0, 3};
    kn_tensor ta = kt_tensor(KN_F32, 2, da, NULL), tb = kt_tensor(KN_F32, 2, db, NULL), y = {0};
    kn_error err;
    const kn_tensor *ins[2] = {&ta, &tb};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    CHECK_EQ_INT(y.dims[1], 4);
    kn_tensor_release(&y);
    /* K == 0: result is zeros */
    kn_tensor tk = kt_tensor(KN_F32, 2, dk, NULL), tk2 = kt_tensor(KN_F32, 2, dk2, NULL);
    const kn_tensor *ins2[2] = {&tk, &tk2};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins2, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 6);
    CHECK_NEAR(((float *)y.data)[5], 0, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tk), kn_tensor_release(&tk2);
}

static void test_matmul_int_exact(void)
{
    int64_t d12[2] = {1, 2}, d21[2] = {2, 1};
    int64_t a[2] = {(1LL << 53) + 1, 3}, b[2] = {1, -1};
    kn_tensor ta = kt_tensor(KN_I64, 2, d12, a), tb = kt_tensor(KN_I64, 2, d21, b), y = {0};
    const kn_tensor *ins[2] = {&ta, &tb};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK(((int64_t *)y.data)[0] == (1LL << 53) - 2);
    kn_tensor_release(&y);
    /* int32 wraps */
    int32_t a32[2] = {65536, 1}, b32[2] = {65536, 5};
    kn_tensor ta32 = kt_tensor(KN_I32, 2, d12, a32), tb32 = kt_tensor(KN_I32, 2, d21, b32);
    const kn_tensor *ins2[2] = {&ta32, &tb32};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins2, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(((int32_t *)y.data)[0], 5);
    kn_tensor_release(&y);
    /* uint64 */
    uint64_t au[2] = {UINT64_MAX, 2}, bu[2] = {1, 3};
    kn_tensor tau = kt_tensor(KN_U64, 2, d12, au), tbu = kt_tensor(KN_U64, 2, d21, bu);
    const kn_tensor *ins3[2] = {&tau, &tbu};
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins3, 0, NULL, 1, &y, &err), KN_OK);
    CHECK(((uint64_t *)y.data)[0] == 5);
    kn_tensor_release(&y);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&ta32), kn_tensor_release(&tb32);
    kn_tensor_release(&tau), kn_tensor_release(&tbu);
}

static void test_matmul_f16(void)
{
    int64_t d22[2] = {2, 2};
    uint16_t a[4], b[4];
    float fa[4] = {1, 2, 3, 4}, fb[4] = {0.5f, -1, 2, 0.25f};
    for (int i = 0; i < 4; i++)
        a[i] = kn_f32_to_f16(fa[i]), b[i] = kn_f32_to_f16(fb[i]);
    kn_tensor ta = kt_tensor(KN_F16, 2, d22, a), tb = kt_tensor(KN_F16, 2, d22, b), y = {0};
    const kn_tensor *ins[2] = {&ta, &tb};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("MatMul", 13, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F16);
    const uint16_t *yv = y.data;
    CHECK_NEAR(kn_f16_to_f32(yv[0]), 4.5, 0);
    CHECK_NEAR(kn_f16_to_f32(yv[3]), -2, 0);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&y);
}

/* ---- Gemm and MatMulInteger ---- */

static void test_gemm_f16_int(void)
{
    int64_t d22[2] = {2, 2};
    float fa[4] = {1, 2, 3, 4}, fb[4] = {1, 2, 3, 4};
    uint16_t a[4], b[4];
    for (int i = 0; i < 4; i++)
        a[i] = kn_f32_to_f16(fa[i]), b[i] = kn_f32_to_f16(fb[i]);
    kn_tensor ta = kt_tensor(KN_F16, 2, d22, a), tb = kt_tensor(KN_F16, 2, d22, b), y = {0};
    const kn_tensor *ins[2] = {&ta, &tb};
    kn_attr at[1] = {kt_attr_int("transB", 1)};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Gemm", 13, 2, ins, 1, at, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F16);
    /* A * A^T = [[5,11],[11,25]] */
    CHECK_NEAR(kn_f16_to_f32(((uint16_t *)y.data)[1]), 11, 0);
    CHECK_NEAR(kn_f16_to_f32(((uint16_t *)y.data)[3]), 25, 0);
    kn_tensor_release(&y);
    /* int64 Gemm with C stays exact beyond 2^53 */
    int64_t ia[4] = {1, 0, 0, 1}, ib[4] = {1, 2, 3, 4}, ic[1] = {(1LL << 53) + 1}, d1[1] = {1};
    kn_tensor tia = kt_tensor(KN_I64, 2, d22, ia), tib = kt_tensor(KN_I64, 2, d22, ib), tic = kt_tensor(KN_I64, 1, d1, ic);
    const kn_tensor *ins2[3] = {&tia, &tib, &tic};
    CHECK_EQ_INT(kt_run_op("Gemm", 13, 3, ins2, 0, NULL, 1, &y, &err), KN_OK);
    CHECK(((int64_t *)y.data)[3] == (1LL << 53) + 5);
    kn_tensor_release(&y);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tia), kn_tensor_release(&tib);
    kn_tensor_release(&tic);
}

static void test_gemm_trans_bias(void)
{
    /* A' = A^T (A is [3,2] -> M=2,K=3), B' = B^T (B is [4,3] -> N=4), C is [4] */
    int64_t da[2] = {3, 2}, db[2] = {4, 3}, dc[1] = {4};
    float *a = rand_f32(6, 5), *b = rand_f32(12, 6);
    float cv[4] = {1, 2, 3, 4};
    kn_tensor ta = kt_tensor(KN_F32, 2, da, a), tb = kt_tensor(KN_F32, 2, db, b), tc = kt_tensor(KN_F32, 1, dc, cv);
    kn_tensor y = {0};
    const kn_tensor *ins[3] = {&ta, &tb, &tc};
    kn_attr at[4] = {kt_attr_int("transA", 1), kt_attr_int("transB", 1), kt_attr_float("alpha", 0.5f), kt_attr_float("beta", 2.0f)};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Gemm", 13, 3, ins, 4, at, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dims[0], 2);
    CHECK_EQ_INT(y.dims[1], 4);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++)
                s += a[k * 2 + i] * b[j * 3 + k];
            CHECK_NEAR(((float *)y.data)[i * 4 + j], 0.5 * s + 2 * cv[j], 1e-6);
        }
    kn_tensor_release(&y);
    /* C of shape [3] cannot broadcast to [2,4] */
    int64_t dbad[1] = {3};
    kn_tensor tbad = kt_tensor(KN_F32, 1, dbad, NULL);
    const kn_tensor *ins2[3] = {&ta, &tb, &tbad};
    CHECK_EQ_INT(kt_run_op("Gemm", 13, 3, ins2, 4, at, 1, &y, &err), KN_ERR_ARG);
    /* no C, float64 */
    int64_t d22[2] = {2, 2};
    double a64[4] = {1, 2, 3, 4}, b64[4] = {1, 0, 0, 1};
    kn_tensor t64a = kt_tensor(KN_F64, 2, d22, a64), t64b = kt_tensor(KN_F64, 2, d22, b64);
    const kn_tensor *ins3[3] = {&t64a, &t64b, NULL};
    CHECK_EQ_INT(kt_run_op("Gemm", 13, 3, ins3, 1, at, 1, &y, &err), KN_OK);
    CHECK_NEAR(((double *)y.data)[1], 3, 0); /* A^T */
    kn_tensor_release(&y);
    /* K == 0: Y = beta * C */
    int64_t dk0a[2] = {2, 0}, dk0b[2] = {0, 4};
    kn_tensor tka = kt_tensor(KN_F32, 2, dk0a, NULL), tkb = kt_tensor(KN_F32, 2, dk0b, NULL);
    const kn_tensor *ins4[3] = {&tka, &tkb, &tc};
    CHECK_EQ_INT(kt_run_op("Gemm", 13, 3, ins4, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 8);
    CHECK_NEAR(((float *)y.data)[7], 4, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&tka), kn_tensor_release(&tkb);
    free(a), free(b);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tc), kn_tensor_release(&tbad);
    kn_tensor_release(&t64a), kn_tensor_release(&t64b);
}

static void test_matmulinteger_zero_points(void)
{
    int64_t da[2] = {2, 2}, dz[1] = {2};
    uint8_t a[4] = {10, 20, 30, 40}, azp[2] = {10, 30};
    int8_t b[4] = {1, -2, 3, 4}, bzp[2] = {1, -1};
    kn_tensor ta = kt_tensor(KN_U8, 2, da, a), tb = kt_tensor(KN_I8, 2, da, b);
    kn_tensor tza = kt_tensor(KN_U8, 1, dz, azp), tzb = kt_tensor(KN_I8, 1, dz, bzp), y = {0};
    const kn_tensor *ins[4] = {&ta, &tb, &tza, &tzb};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("MatMulInteger", 13, 4, ins, 0, NULL, 1, &y, &err), KN_OK);
    /* A-zp = [[0,10],[0,10]], B-zp = [[0,-1],[2,5]] -> [[20,50],[20,50]] */
    const int32_t *yv = y.data;
    CHECK_EQ_INT(y.dtype, KN_I32);
    CHECK_EQ_INT(yv[0], 20);
    CHECK_EQ_INT(yv[1], 50);
    CHECK_EQ_INT(yv[3], 50);
    kn_tensor_release(&y);
    /* zero point of wrong length */
    int64_t d3[1] = {3};
    kn_tensor tz3 = kt_tensor(KN_U8, 1, d3, NULL);
    const kn_tensor *ins2[3] = {&ta, &tb, &tz3};
    CHECK_EQ_INT(kt_run_op("MatMulInteger", 13, 3, ins2, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tza), kn_tensor_release(&tzb);
    kn_tensor_release(&tz3);
}

/* ---- Einsum ---- */

static int einsum(const char *eq, int n, const kn_tensor *const *ins, kn_tensor *y)
{
    kn_attr at[1] = {kt_attr_str("equation", eq)};
    kn_error err;
    return kt_run_op("Einsum", 12, n, ins, 1, at, 1, y, &err);
}

static void test_einsum_forms(void)
{
    int64_t d33[2] = {3, 3}, d23[2] = {2, 3}, d234[3] = {2, 3, 4}, d34[2] = {3, 4};
    float m[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    kn_tensor tm = kt_tensor(KN_F32, 2, d33, m), y = {0};
    const kn_tensor *one[1] = {&tm};
    /* diagonal and trace */
    CHECK_EQ_INT(einsum("ii->i", 1, one, &y), KN_OK);
    CHECK_EQ_INT(y.rank, 1);
    CHECK_NEAR(((float *)y.data)[2], 9, 0);
    kn_tensor_release(&y);
    CHECK_EQ_INT(einsum("ii", 1, one, &y), KN_OK);
    CHECK_EQ_INT(y.rank, 0);
    CHECK_NEAR(((float *)y.data)[0], 15, 0);
    kn_tensor_release(&y);
    /* implicit output is alphabetical: "ji" -> "ij", a transpose */
    CHECK_EQ_INT(einsum("ji", 1, one, &y), KN_OK);
    CHECK_NEAR(((float *)y.data)[1], 4, 0);
    kn_tensor_release(&y);
    /* sum of everything */
    CHECK_EQ_INT(einsum("ij->", 1, one, &y), KN_OK);
    CHECK_NEAR(((float *)y.data)[0], 45, 0);
    kn_tensor_release(&y);
    /* ellipsis with broadcasting batch: [2,3,4] x [3,4]^T-ish  "...ij,jk" */
    float *a = rand_f32(24, 7), *b = rand_f32(12, 8);
    kn_tensor ta = kt_tensor(KN_F32, 3, d234, a), tb = kt_tensor(KN_F32, 2, d34, b);
    int64_t d43[2] = {4, 3};
    kn_tensor tb2 = kt_tensor(KN_F32, 2, d43, b);
    const kn_tensor *two[2] = {&ta, &tb2};
    CHECK_EQ_INT(einsum("...ij, jk -> ...ik", 2, two, &y), KN_OK);
    CHECK_EQ_INT(y.rank, 3);
    CHECK_EQ_INT(y.dims[0], 2);
    CHECK_EQ_INT(y.dims[2], 3);
    double s = 0;
    for (int j = 0; j < 4; j++)
        s += a[12 + 1 * 4 + j] * b[j * 3 + 2];
    CHECK_NEAR(((float *)y.data)[(1 * 3 + 1) * 3 + 2], s, 1e-6);
    kn_tensor_release(&y);
    /* errors: bad char, operand count, rank mismatch, size mismatch */
    /* malformed equations are rejected when the model is loaded */
    CHECK_EQ_INT(einsum("i#->i", 1, one, &y), KN_ERR_MODEL);
    CHECK_EQ_INT(einsum("ij,jk->ik", 1, one, &y), KN_ERR_MODEL);
    CHECK_EQ_INT(einsum("ijk->i", 1, one, &y), KN_ERR_ARG);
    CHECK_EQ_INT(einsum("ij->k", 1, one, &y), KN_ERR_ARG);
    CHECK_EQ_INT(einsum("..i.->i", 1, one, &y), KN_ERR_MODEL);
    kn_tensor t23 = kt_tensor(KN_F32, 2, d23, NULL);
    const kn_tensor *mis[2] = {&t23, &t23};
    CHECK_EQ_INT(einsum("ij,ij->i", 2, mis, &y), KN_OK);
    kn_tensor_release(&y);
    CHECK_EQ_INT(einsum("ij,jk->ik", 2, mis, &y), KN_ERR_ARG);
    /* int64 einsum is exact */
    int64_t iv[2] = {(1LL << 53) + 1, 1}, d2[1] = {2};
    kn_tensor ti = kt_tensor(KN_I64, 1, d2, iv);
    const kn_tensor *ione[1] = {&ti};
    CHECK_EQ_INT(einsum("i->", 1, ione, &y), KN_OK);
    CHECK(((int64_t *)y.data)[0] == (1LL << 53) + 2);
    kn_tensor_release(&y);
    free(a), free(b);
    kn_tensor_release(&tm), kn_tensor_release(&ta), kn_tensor_release(&tb), kn_tensor_release(&tb2);
    kn_tensor_release(&t23), kn_tensor_release(&ti);
}

/* Random equations and shapes: every outcome must be a clean status, never a crash. */
static void test_einsum_random(void)
{
    static const char alphabet[] = "ijk..,->, ";
    unsigned seed = 12345;
    int ok = 0;
    for (int iter = 0; iter < 400; iter++) {
        char eq[16];
        seed = seed * 1103515245u + 12345u;
        int len = (int)(seed >> 16) % 12;
        for (int i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            eq[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        eq[len] = 0;
        kn_tensor ts[2];
        const kn_tensor *ins[2];
        seed = seed * 1103515245u + 12345u;
        int n = 1 + (int)((seed >> 16) % 2);
        for (int k = 0; k < n; k++) {
            int64_t dims[3];
            seed = seed * 1103515245u + 12345u;
            int rank = (int)((seed >> 16) % 4);
            for (int d = 0; d < rank; d++) {
                seed = seed * 1103515245u + 12345u;
                dims[d] = (int64_t)((seed >> 16) % 4);
            }
            ts[k] = kt_tensor(KN_F32, rank, dims, NULL);
            ins[k] = &ts[k];
        }
        kn_tensor y = {0};
        int rc = einsum(eq, n, ins, &y);
        CHECK(rc == KN_OK || rc == KN_ERR_ARG || rc == KN_ERR_MODEL || rc == KN_ERR_UNSUPPORTED);
        ok += rc == KN_OK;
        kn_tensor_release(&y);
        for (int k = 0; k < n; k++)
            kn_tensor_release(&ts[k]);
    }
    CHECK(ok > 0);
}

/* ---- Softmax family and losses ---- */

static void test_softmax_opsets(void)
{
    int64_t d[2] = {2, 2};
    float x[4] = {0, 0, 0, 0};
    kn_tensor tx = kt_tensor(KN_F32, 2, d, x), y = {0};
    const kn_tensor *ins[1] = {&tx};
    kn_error err;
    kn_attr ax0[1] = {kt_attr_int("axis", 0)};
    /* opset 11, axis 0: coerced to [1,4] -> each 0.25 */
    CHECK_EQ_INT(kt_run_op("Softmax", 11, 1, ins, 1, ax0, 1, &y, &err), KN_OK);
    CHECK_NEAR(((float *)y.data)[3], 0.25, 1e-7);
    kn_tensor_release(&y);
    /* opset 13, axis 0: along axis 0 -> each 0.5 */
    CHECK_EQ_INT(kt_run_op("Softmax", 13, 1, ins, 1, ax0, 1, &y, &err), KN_OK);
    CHECK_NEAR(((float *)y.data)[3], 0.5, 1e-7);
    kn_tensor_release(&y);
    kn_attr bad[1] = {kt_attr_int("axis", 5)};
    CHECK_EQ_INT(kt_run_op("LogSoftmax", 13, 1, ins, 1, bad, 1, &y, &err), KN_ERR_ARG);
    /* hardmax picks the first maximum */
    float h[4] = {3, 3, 1, 2};
    kn_tensor th = kt_tensor(KN_F32, 2, d, h);
    const kn_tensor *hin[1] = {&th};
    CHECK_EQ_INT(kt_run_op("Hardmax", 13, 1, hin, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_NEAR(((float *)y.data)[0], 1, 0);
    CHECK_NEAR(((float *)y.data)[1], 0, 0);
    CHECK_NEAR(((float *)y.data)[3], 1, 0);
    kn_tensor_release(&y);
    /* empty input */
    int64_t d0[2] = {0, 3};
    kn_tensor te = kt_tensor(KN_F32, 2, d0, NULL);
    const kn_tensor *ein[1] = {&te};
    CHECK_EQ_INT(kt_run_op("Softmax", 13, 1, ein, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    kn_tensor_release(&y);
    /* integer input is unsupported */
    kn_tensor ti = kt_tensor(KN_I32, 2, d, NULL);
    const kn_tensor *iin[1] = {&ti};
    CHECK_EQ_INT(kt_run_op("Softmax", 13, 1, iin, 0, NULL, 1, &y, &err), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&tx), kn_tensor_release(&th), kn_tensor_release(&te), kn_tensor_release(&ti);
}

static void test_losses(void)
{
    int64_t dx[2] = {2, 3}, dt[1] = {2};
    float x[6] = {-1, -2, -3, -4, -5, -6};
    int64_t t[2] = {2, -1};
    kn_tensor tx = kt_tensor(KN_F32, 2, dx, x), tt = kt_tensor(KN_I64, 1, dt, t), y = {0};
    const kn_tensor *ins[2] = {&tx, &tt};
    kn_error err;
    /* -1 is out of range without ignore_index */
    CHECK_EQ_INT(kt_run_op("NegativeLogLikelihoodLoss", 13, 2, ins, 0, NULL, 1, &y, &err), KN_ERR_RUNTIME);
    kn_attr ii[2] = {kt_attr_int("ignore_index", -1), kt_attr_str("reduction", "mean")};
    CHECK_EQ_INT(kt_run_op("NegativeLogLikelihoodLoss", 13, 2, ins, 2, ii, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 0);
    CHECK_NEAR(((float *)y.data)[0], 3, 1e-6);
    kn_tensor_release(&y);
    kn_attr none[2] = {kt_attr_int("ignore_index", -1), kt_attr_str("reduction", "none")};
    CHECK_EQ_INT(kt_run_op("NegativeLogLikelihoodLoss", 13, 2, ins, 2, none, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 1);
    CHECK_NEAR(((float *)y.data)[1], 0, 0);
    kn_tensor_release(&y);
    kn_attr badred[1] = {kt_attr_str("reduction", "max")};
    CHECK_EQ_INT(kt_run_op("NegativeLogLikelihoodLoss", 13, 2, ins, 1, badred, 1, &y, &err), KN_ERR_MODEL);
    /* SCE with log_prob output; target shape mismatch fails */
    kn_tensor outs[2] = {{0}};
    CHECK_EQ_INT(kt_run_op("SoftmaxCrossEntropyLoss", 13, 2, ins, 2, ii, 2, outs, &err), KN_OK);
    CHECK_EQ_INT(outs[1].rank, 2);
    double lse = -1 + log(1 + exp(-1) + exp(-2));
    CHECK_NEAR(((float *)outs[1].data)[2], -3 - lse, 1e-6);
    CHECK_NEAR(((float *)outs[0].data)[0], 3 + lse, 1e-6);
    kn_tensor_release(&outs[0]), kn_tensor_release(&outs[1]);
    int64_t dt3[1] = {3};
    kn_tensor tt3 = kt_tensor(KN_I64, 1, dt3, NULL);
    const kn_tensor *ins2[2] = {&tx, &tt3};
    CHECK_EQ_INT(kt_run_op("SoftmaxCrossEntropyLoss", 13, 2, ins2, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&tx), kn_tensor_release(&tt), kn_tensor_release(&tt3);
}

/* ---- normalizations ---- */

static void test_layernorm_stats(void)
{
    int64_t dx[2] = {2, 4}, ds[1] = {4};
    float x[8] = {1, 2, 3, 4, 2, 2, 2, 2}, s[4] = {1, 1, 1, 1}, b[4] = {0, 0, 0, 1};
    kn_tensor tx = kt_tensor(KN_F32, 2, dx, x), ts = kt_tensor(KN_F32, 1, ds, s), tb = kt_tensor(KN_F32, 1, ds, b);
    kn_tensor outs[3] = {{0}};
    const kn_tensor *ins[3] = {&tx, &ts, &tb};
    kn_attr at[2] = {kt_attr_int("axis", -1), kt_attr_float("epsilon", 0.0f)};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("LayerNormalization", 17, 3, ins, 2, at, 3, outs, &err), KN_OK);
    CHECK_EQ_INT(outs[1].rank, 2);
    CHECK_EQ_INT(outs[1].dims[1], 1);
    CHECK_NEAR(((float *)outs[1].data)[0], 2.5, 1e-6);
    CHECK_NEAR(((float *)outs[2].data)[0], 1 / sqrt(1.25), 1e-6);
    CHECK_NEAR(((float *)outs[0].data)[3], 1.5 / sqrt(1.25) + 1, 1e-5);
    for (int i = 0; i < 3; i++)
        kn_tensor_release(&outs[i]);
    /* scale that cannot broadcast */
    int64_t d3[1] = {3};
    kn_tensor bad = kt_tensor(KN_F32, 1, d3, NULL), y = {0};
    const kn_tensor *ins2[2] = {&tx, &bad};
    CHECK_EQ_INT(kt_run_op("LayerNormalization", 17, 2, ins2, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_attr ax[1] = {kt_attr_int("axis", 2)};
    CHECK_EQ_INT(kt_run_op("LayerNormalization", 17, 2, ins, 1, ax, 1, &y, &err), KN_ERR_ARG);
    /* RMSNormalization: x / sqrt(mean(x^2)) */
    CHECK_EQ_INT(kt_run_op("RMSNormalization", 23, 2, ins, 1, at + 1, 1, &y, &err), KN_OK);
    CHECK_NEAR(((float *)y.data)[3], 4 / sqrt(7.5), 1e-6);
    kn_tensor_release(&y);
    kn_tensor_release(&tx), kn_tensor_release(&ts), kn_tensor_release(&tb), kn_tensor_release(&bad);
}

static void test_groupnorm_and_batchnorm(void)
{
    int64_t dx[3] = {1, 4, 2}, dg[1] = {2}, dc[1] = {4};
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float sg[2] = {1, 2}, bg[2] = {0, 0}, sc[4] = {1, 1, 2, 2}, bc[4] = {0, 0, 0, 0};
    kn_tensor tx = kt_tensor(KN_F32, 3, dx, x), tsg = kt_tensor(KN_F32, 1, dg, sg), tbg = kt_tensor(KN_F32, 1, dg, bg);
    kn_tensor tsc = kt_tensor(KN_F32, 1, dc, sc), tbc = kt_tensor(KN_F32, 1, dc, bc), y1 = {0}, y2 = {0};
    kn_attr at[2] = {kt_attr_int("num_groups", 2), kt_attr_float("epsilon", 0.0f)};
    kn_error err;
    const kn_tensor *g18[3] = {&tx, &tsg, &tbg}, *g21[3] = {&tx, &tsc, &tbc};
    CHECK_EQ_INT(kt_run_op("GroupNormalization", 18, 3, g18, 2, at, 1, &y1, &err), KN_OK);
    CHECK_EQ_INT(kt_run_op("GroupNormalization", 21, 3, g21, 2, at, 1, &y2, &err), KN_OK);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(((float *)y1.data)[i], ((float *)y2.data)[i], 1e-6);
    CHECK_NEAR(((float *)y1.data)[0], -1.5 / sqrt(1.25), 1e-6);
    kn_tensor_release(&y1), kn_tensor_release(&y2);
    kn_attr bad[1] = {kt_attr_int("num_groups", 3)};
    CHECK_EQ_INT(kt_run_op("GroupNormalization", 21, 3, g21, 1, bad, 1, &y1, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kt_run_op("GroupNormalization", 21, 3, g21, 0, NULL, 1, &y1, &err), KN_ERR_MODEL);
    /* BatchNormalization with a parameter of the wrong length */
    const kn_tensor *bn[5] = {&tx, &tsc, &tbc, &tsc, &tsg};
    CHECK_EQ_INT(kt_run_op("BatchNormalization", 15, 5, bn, 0, NULL, 1, &y1, &err), KN_ERR_ARG);
    const kn_tensor *bn2[5] = {&tx, &tsc, &tbc, &tbc, &tsc};
    CHECK_EQ_INT(kt_run_op("BatchNormalization", 15, 5, bn2, 0, NULL, 1, &y1, &err), KN_OK);
    /* channel 2: (5 - 0) / sqrt(2 + 1e-5) * 2 */
    CHECK_NEAR(((float *)y1.data)[4], 5 / sqrt(2 + 1e-5) * 2, 1e-5);
    kn_tensor_release(&y1);
    kn_tensor_release(&tx), kn_tensor_release(&tsg), kn_tensor_release(&tbg);
    kn_tensor_release(&tsc), kn_tensor_release(&tbc);
}

static void test_misc_norms(void)
{
    int64_t dx[2] = {2, 2};
    float x[4] = {3, 4, -1, 1};
    kn_tensor tx = kt_tensor(KN_F32, 2, dx, x), y = {0};
    const kn_tensor *ins[1] = {&tx};
    kn_error err;
    kn_attr p3[1] = {kt_attr_int("p", 3)};
    CHECK_EQ_INT(kt_run_op("LpNormalization", 1, 1, ins, 1, p3, 1, &y, &err), KN_ERR_MODEL);
    CHECK_EQ_INT(kt_run_op("LpNormalization", 1, 1, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_NEAR(((float *)y.data)[1], 0.8, 1e-6);
    kn_tensor_release(&y);
    int64_t rep[2] = {1, -1};
    kn_attr ax[1] = {kt_attr_ints("axes", 2, rep)};
    CHECK_EQ_INT(kt_run_op("MeanVarianceNormalization", 13, 1, ins, 1, ax, 1, &y, &err), KN_ERR_ARG);
    int64_t one[1] = {1};
    kn_attr ax1[1] = {kt_attr_ints("axes", 1, one)};
    CHECK_EQ_INT(kt_run_op("MeanVarianceNormalization", 13, 1, ins, 1, ax1, 1, &y, &err), KN_OK);
    CHECK_NEAR(((float *)y.data)[0], -1, 1e-6);
    kn_tensor_release(&y);
    /* default axes [0,2,3] need rank 4 */
    CHECK_EQ_INT(kt_run_op("MeanVarianceNormalization", 13, 1, ins, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_attr sz[1] = {kt_attr_int("size", 0)};
    CHECK_EQ_INT(kt_run_op("LRN", 13, 1, ins, 1, sz, 1, &y, &err), KN_ERR_MODEL);
    CHECK_EQ_INT(kt_run_op("InstanceNormalization", 6, 1, ins, 0, NULL, 1, &y, &err), KN_ERR_MODEL);
    kn_tensor_release(&tx);
}

/* ---- every float dtype agrees with float32 ---- */

static kn_tensor convert(const kn_tensor *t, kn_dtype dt)
{
    kn_tensor r = kt_tensor(dt, t->rank, t->dims, NULL);
    for (int64_t i = 0; i < t->numel; i++)
        kn_store_f64(r.data, dt, (size_t)i, kn_load_f64(t->data, t->dtype, (size_t)i));
    return r;
}

/* Run op on float32 inputs and on the same inputs in dt; outputs must agree. */
static void check_dtype_agrees(const char *op, int opset, int n_in, const kn_tensor *const *ins,
                               int n_attr, const kn_attr *attrs, kn_dtype dt, double tol)
{
    kn_tensor conv[8], y32 = {0}, yd = {0};
    const kn_tensor *cins[8];
    kn_error err;
    for (int i = 0; i < n_in; i++) {
        conv[i] = convert(ins[i], dt);
        cins[i] = &conv[i];
    }
    CHECK_EQ_INT(kt_run_op(op, opset, n_in, ins, n_attr, attrs, 1, &y32, &err), KN_OK);
    int rc = kt_run_op(op, opset, n_in, cins, n_attr, attrs, 1, &yd, &err);
    if (rc)
        fprintf(stderr, "%s in %s: %s\n", op, kn_dtype_name(dt), err.msg);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc == KN_OK) {
        CHECK_EQ_INT(yd.dtype, dt);
        CHECK_EQ_INT(yd.numel, y32.numel);
        double maxerr = 0;
        for (int64_t i = 0; i < y32.numel && i < yd.numel; i++) {
            double e = fabs(kn_load_f64(yd.data, dt, (size_t)i) - kn_load_f64(y32.data, KN_F32, (size_t)i));
            maxerr = e > maxerr ? e : maxerr;
        }
        if (!(maxerr <= tol))
            fprintf(stderr, "%s in %s: max error %g\n", op, kn_dtype_name(dt), maxerr);
        CHECK(maxerr <= tol);
    }
    kn_tensor_release(&y32), kn_tensor_release(&yd);
    for (int i = 0; i < n_in; i++)
        kn_tensor_release(&conv[i]);
}

static void test_float_dtypes(void)
{
    int64_t dx[4] = {2, 4, 3, 3}, dc[1] = {4}, dm[2] = {3, 3};
    float *x = rand_f32(72, 21), *sc = rand_f32(4, 22), *m = rand_f32(9, 23);
    for (int i = 0; i < 4; i++)
        sc[i] += 1.0f;
    kn_tensor tx = kt_tensor(KN_F32, 4, dx, x), tsc = kt_tensor(KN_F32, 1, dc, sc), tm = kt_tensor(KN_F32, 2, dm, m);
    kn_tensor tvar = kt_tensor(KN_F32, 1, dc, NULL);
    for (int i = 0; i < 4; i++)
        ((float *)tvar.data)[i] = 0.5f + (float)i;
    const kn_tensor *one[1] = {&tx}, *bn[5] = {&tx, &tsc, &tsc, &tsc, &tvar}, *inorm[3] = {&tx, &tsc, &tsc};
    const kn_tensor *mm[2] = {&tm, &tm}, *ln[3] = {&tm, &tm, &tm};
    int64_t ax1[1] = {1};
    kn_attr lrn[1] = {kt_attr_int("size", 3)}, mvn[1] = {kt_attr_ints("axes", 1, ax1)}, gn[1] = {kt_attr_int("num_groups", 2)};
    kn_attr ax0[1] = {kt_attr_int("axis", 0)}, eq[1] = {kt_attr_str("equation", "ij,kj->ik")};
    static const kn_dtype dts[3] = {KN_F64, KN_F16, KN_BF16};
    static const double tols[3] = {1e-6, 1e-2, 6e-2};
    for (int k = 0; k < 3; k++) {
        kn_dtype dt = dts[k];
        double tol = tols[k];
        check_dtype_agrees("Softmax", 13, 1, one, 0, NULL, dt, tol);
        check_dtype_agrees("LogSoftmax", 11, 1, one, 0, NULL, dt, tol * 4);
        check_dtype_agrees("Hardmax", 13, 1, one, 0, NULL, dt, 0);
        check_dtype_agrees("LpNormalization", 1, 1, one, 0, NULL, dt, tol);
        check_dtype_agrees("MeanVarianceNormalization", 13, 1, one, 1, mvn, dt, tol * 8);
        check_dtype_agrees("LRN", 13, 1, one, 1, lrn, dt, tol);
        check_dtype_agrees("BatchNormalization", 15, 5, bn, 0, NULL, dt, tol * 8);
        check_dtype_agrees("InstanceNormalization", 6, 3, inorm, 0, NULL, dt, tol * 8);
        check_dtype_agrees("GroupNormalization", 21, 3, inorm, 1, gn, dt, tol * 8);
        check_dtype_agrees("LayerNormalization", 17, 3, ln, 1, ax0, dt, tol * 8);
        check_dtype_agrees("RMSNormalization", 23, 2, ln, 0, NULL, dt, tol * 8);
        check_dtype_agrees("MatMul", 13, 2, mm, 0, NULL, dt, tol);
        check_dtype_agrees("Gemm", 13, 2, mm, 0, NULL, dt, tol);
        check_dtype_agrees("Einsum", 12, 2, mm, 1, eq, dt, tol);
    }
    free(x), free(sc), free(m);
    kn_tensor_release(&tx), kn_tensor_release(&tsc), kn_tensor_release(&tm), kn_tensor_release(&tvar);
}

TEST_MAIN(TEST_CASE(test_matmul_broadcast), TEST_CASE(test_matmul_vectors),
          TEST_CASE(test_matmul_errors), TEST_CASE(test_matmul_large_blocked),
          TEST_CASE(test_matmul_empty), TEST_CASE(test_matmul_int_exact),
          TEST_CASE(test_matmul_f16), TEST_CASE(test_gemm_trans_bias), TEST_CASE(test_gemm_f16_int),
          TEST_CASE(test_matmulinteger_zero_points), TEST_CASE(test_einsum_forms), TEST_CASE(test_einsum_random),
          TEST_CASE(test_softmax_opsets), TEST_CASE(test_losses),
          TEST_CASE(test_layernorm_stats), TEST_CASE(test_groupnorm_and_batchnorm),
          TEST_CASE(test_misc_norms), TEST_CASE(test_float_dtypes))
