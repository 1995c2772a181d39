/* test_qbgemm.c - the block-quantized-weight GEMM (kernels/qbgemm.h): every kernel
 * variant the CPU has (AVX2 only for |w| <= 64: it must refuse others) against the plain reference on awkward shapes (1, primes,
 * tails of the 32-column panels, partial last blocks, block sizes 4, 32, 128, more
 * than one k slice), 4-bit and full int8 weights, with and without bias, inline and
 * on a pool (identical bytes); the row quantization of each variant against the
 * portable one (identical bytes, NaN / inf / zero rows); bad arguments. */
#include "test.h"

#include "exec/threadpool.h"
#include "kernels/qbgemm.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rng = 987654321u;
static uint32_t next(void) { return kt_xorshift32(&rng); }

static float frand(void) { return (float)((int)(next() % 20001) - 10000) * 1e-4f; }

typedef struct qbcase {
    size_t M, N, K, bs, nblocks;
    float *A, *scales, *bias;
    int8_t *W;
} qbcase;

static void make_case(qbcase *q, size_t M, size_t N, size_t K, size_t bs, int int8_range)
{
    q->M = M, q->N = N, q->K = K, q->bs = bs;
    q->nblocks = (K + bs - 1) / bs;
    q->A = malloc(sizeof(float) * M * K + 4);
    q->W = malloc(N * K + 1);
    q->scales = malloc(sizeof(float) * N * q->nblocks + 4);
    q->bias = malloc(sizeof(float) * N + 4);
    for (size_t i = 0; i < M * K; i++)
        q->A[i] = frand() * (i % 7 == 0 ? 3.0f : 1.0f) + (i % 2 ? 0.3f : 0.0f);
    for (size_t i = 0; i < N * K; i++)
        q->W[i] = int8_range ? (int8_t)next() : (int8_t)((int)(next() % 16) - 8);
    for (size_t i = 0; i < N * q->nblocks; i++)
        q->scales[i] = 0.001f + (float)(next() % 1000) * 1e-5f;
    for (size_t j = 0; j < N; j++)
        q->bias[j] = frand();
}

static void free_case(qbcase *q)
{
    free(q->A);
    free(q->W);
    free(q->scales);
    free(q->bias);
}

/* The size of the terms of C[i][n] (their reassociation error bound is relative to it). */
static double magnitude(const qbcase *q, size_t i, size_t n)
{
    double s = 0.0, sa = 0.0;
    for (size_t k = 0; k < q->K; k++)
        sa = fmax(sa, fabs(q->A[i * q->K + k]));
    for (size_t k = 0; k < q->K; k++)
        s += 2.0 * sa * fabs((double)q->W[n * q->K + k]) * q->scales[n * q->nblocks + k / q->bs];
    return s;
}

static void check_case(const qbcase *q, kn_qbkernel k, int with_bias, kn_threadpool *pool)
{
    size_t ldc = q->N + 3;
    float *want = calloc(q->M * ldc + 1, sizeof(float)), *got = calloc(q->M * ldc + 1, sizeof(float));
    float *got2 = calloc(q->M * ldc + 1, sizeof(float));
    const float *bias = with_bias ? q->bias : NULL;
    kn_qb_ref(q->M, q->N, q->K, q->bs, q->A, q->K, q->W, q->K, q->scales, q->nblocks, want, ldc, bias);
    kn_qb_packed *pb = kn_qb_pack(k, q->K, q->N, q->bs, q->W, q->K, q->scales, q->nblocks);
    int fits = 1;
    for (size_t i = 0; i < q->N * q->K; i++)
        fits &= (k != KN_QB_AVX2 && k != KN_QB_AVX512BW) || (q->W[i] >= -64 && q->W[i] <= 64);
    CHECK(fits ? pb != NULL : pb == NULL); /* vpmaddubsw variants refuse weights they would saturate on */
    if (!pb) {
        free(want);
        free(got);
        free(got2);
        return;
    }
    size_t bytes = kn_qb_work_bytes(q->M, pb);
    void *work = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    CHECK_EQ_INT(kn_qb_run(NULL, q->M, q->N, q->K, q->A, q->K, pb, got, ldc, bias, work), 0);
    CHECK_EQ_INT(kn_qb_run(pool, q->M, q->N, q->K, q->A, q->K, pb, got2, ldc, bias, work), 0);
    CHECK(memcmp(got, got2, sizeof(float) * q->M * ldc) == 0);
    int bad = 0;
    for (size_t i = 0; i < q->M; i++)
        for (size_t n = 0; n < q->N; n++) {
            double tol = 1e-6 * magnitude(q, i, n) + 1e-6;
            if (!(fabs(got[i * ldc + n] - want[i * ldc + n]) <= tol) && bad++ < 3)
                fprintf(stderr, "%s M=%zu N=%zu K=%zu bs=%zu: C[%zu][%zu] = %g, reference %g\n", kn_qbkernel_name(k),
                        q->M, q->N, q->K, q->bs, i, n, got[i * ldc + n], want[i * ldc + n]);
            if (n == q->N - 1 && got[i * ldc + n + 1] != 0.0f && bad++ < 3) /* past the row: untouched */
                fprintf(stderr, "wrote past N\n");
        }
    CHECK_EQ_INT(bad, 0);
    kn_qb_packed_free(pb);
    free(work);
    free(want);
    free(got);
    free(got2);
}

static void test_shapes_all_kernels(void)
{
    static const size_t dims[][4] = {{1, 1, 1, 32},     {1, 32, 32, 32},   {3, 5, 7, 4},      {13, 33, 40, 32},
                                     {12, 32, 64, 32},  {25, 70, 100, 32}, {49, 31, 130, 128}, {5, 100, 257, 32},
                                     {97, 65, 31, 4},   {2, 300, 1000, 128}, {130, 64, 768, 32}, {24, 96, 800, 4}};
    kn_error err;
    kn_threadpool *pool = kn_threadpool_create(3, &err);
    for (int k = 0; k < KN_QB_COUNT; k++) {
        if (!kn_qb_supported((kn_qbkernel)k))
            continue;
        for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
            qbcase q;
            make_case(&q, dims[d][0], dims[d][1], dims[d][2], dims[d][3], (int)(d % 3 == 2));
            check_case(&q, (kn_qbkernel)k, (int)(d & 1), pool);
            free_case(&q);
        }
    }
    kn_threadpool_free(pool);
}

/* Each variant's row quantization gives the portable one's bytes and parameters. */
static void test_quantize_rows(void)
{
    enum { K = 77 };
    float rows[6][K];
    for (int r = 0; r < 6; r++)
        for (int k = 0; k < K; k++)
            rows[r][k] = frand() * (float)(r + 1);
    memset(rows[1], 0, sizeof rows[1]);            /* all zero */
    for (int k = 0; k < K; k++)
        rows[2][k] = -fabsf(rows[2][k]) - 0.1f;     /* all negative */
    rows[3][5] = NAN;
    rows[4][70] = INFINITY;
    rows[5][0] = 1e-30f;                             /* tiny against the rest */
    const kn_qb_kernel *ref = kn_qb_kernel_generic();
    for (int k = 0; k < KN_QB_COUNT; k++) {
        const kn_qb_kernel *kr = k == KN_QB_VNNI ? kn_qb_kernel_vnni() : k == KN_QB_AVX512BW ? kn_qb_kernel_avx512bw()
                                 : k == KN_QB_AMX      ? kn_qb_kernel_amx()
                                                       : ref;
        if (!kn_qb_supported((kn_qbkernel)k) || !kr)
            continue;
        for (int r = 0; r < 6; r++)
            for (size_t len = 1; len <= K; len += 19) {
                uint8_t qa[K + 8], qb[K + 8];
                float sa, sb;
                int32_t za, zb;
                ref->quantize_row(rows[r], len, len + 3, qa, &sa, &za);
                kr->quantize_row(rows[r], len, len + 3, qb, &sb, &zb);
                CHECK(memcmp(qa, qb, len + 3) == 0);
                CHECK(za == zb && (sa == sb || (isnan(sa) && isnan(sb))));
            }
        float sa;
        int32_t za;
        uint8_t q[K + 8];
        kr->quantize_row(rows[3], K, K, q, &sa, &za);
        CHECK(isnan(sa));
        kr->quantize_row(rows[4], K, K, q, &sa, &za);
        CHECK(isnan(sa));
        kr->quantize_row(rows[1], K, K, q, &sa, &za);
        CHECK(sa == 1.0f && za == 0 && q[0] == 0 && q[K - 1] == 0);
        kr->quantize_row(rows[2], K, K, q, &sa, &za);
        CHECK_EQ_INT(za, 255);
    }
}

static void test_bad_arguments(void)
{
    int8_t W[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float s[4] = {1, 1, 1, 1}, A[8] = {0}, C[4];
    CHECK(kn_qb_pack(KN_QB_GENERIC, 4, 2, 6, W, 4, s, 1) == NULL);      /* block not a multiple of 4 */
    CHECK(kn_qb_pack(KN_QB_GENERIC, 4, 2, 4, W, 3, s, 1) == NULL);      /* ldw short */
    CHECK(kn_qb_pack(KN_QB_GENERIC, 8, 1, 4, W, 8, s, 1) == NULL);      /* lds short: 2 blocks */
    CHECK(kn_qb_pack(KN_QB_GENERIC, 70000, 1, 4, W, 70000, s, 1) == NULL);
    kn_qb_packed *pb = kn_qb_pack(KN_QB_GENERIC, 4, 2, 4, W, 4, s, 1);
    CHECK(pb != NULL);
    void *work = aligned_alloc(64, 256);
    CHECK_EQ_INT(kn_qb_run(NULL, 2, 2, 3, A, 4, pb, C, 2, NULL, work), KN_ERR_ARG); /* K differs */
    CHECK_EQ_INT(kn_qb_run(NULL, 2, 2, 4, A, 3, pb, C, 2, NULL, work), KN_ERR_ARG); /* lda short */
    CHECK_EQ_INT(kn_qb_run(NULL, 2, 2, 4, A, 4, pb, C, 1, NULL, work), KN_ERR_ARG); /* ldc short */
    CHECK_EQ_INT(kn_qb_run(NULL, 0, 2, 4, A, 4, pb, C, 2, NULL, NULL), 0);         /* nothing to do */
    free(work);
    kn_qb_packed_free(pb);
}

TEST_MAIN(TEST_CASE(test_shapes_all_kernels), TEST_CASE(test_quantize_rows), TEST_CASE(test_bad_arguments))
