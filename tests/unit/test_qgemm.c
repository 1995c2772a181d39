/* test_qgemm.c - the integer GEMM: every kernel variant the CPU has, against the
 * plain reference, on awkward shapes (1, primes, tails of the 32-column panels and of
 * the k groups), extreme values (A = 255, B = -128), every zero point class, every
 * output kind (exact int32, dequantized float with per-column scales, bias and
 * relu, requantized uint8/int8), with and without a thread pool, and bad arguments.
 * The 7-bit-weight variant (avx512bw7) runs on weights in [-64, 64], with A = 255
 * against w = +-64 at the edge of its 16-bit step, and falls back for 8-bit ones. */
#include "test.h"

#include "exec/threadpool.h"
#include "kernels/qgemm.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345;
static uint32_t next(void) { return kt_xorshift32(&rng); }

typedef struct qcase {
    size_t M, N, K;
    uint8_t *A;
    int8_t *B;
    float *scales, *bias;
} qcase;

/* w_max 128: any int8 B (extreme: all -128); 64: B in [-64, 64] (extreme: +-64
 * in runs of four, so each 16-bit pair sum reaches 2 x 255 x 64). */
static void make_case_w(qcase *q, size_t M, size_t N, size_t K, int extreme, int w_max)
{
    q->M = M, q->N = N, q->K = K;
    q->A = malloc(M * K + 1);
    q->B = malloc(K * N + 1);
    q->scales = malloc(sizeof(float) * (N + 1));
    q->bias = malloc(sizeof(float) * (N + 1));
    for (size_t i = 0; i < M * K; i++)
        q->A[i] = extreme ? 255 : (uint8_t)next();
    for (size_t i = 0; i < K * N; i++) {
        if (w_max == 128)
            q->B[i] = extreme ? -128 : (int8_t)next();
        else
            q->B[i] = (int8_t)(extreme ? (i / 4 % 2 ? w_max : -w_max) : (int)(next() % (2u * w_max + 1)) - w_max);
    }
    for (size_t j = 0; j < N; j++) {
        q->scales[j] = 0.001f + (float)(next() % 1000) * 1e-5f;
        q->bias[j] = (float)((int)(next() % 200) - 100) * 0.01f;
    }
}

static void make_case(qcase *q, size_t M, size_t N, size_t K, int extreme)
{
    make_case_w(q, M, N, K, extreme, 128);
}

static void free_case(qcase *q)
{
    free(q->A);
    free(q->B);
    free(q->scales);
    free(q->bias);
}

static size_t out_size(kn_qout_kind kind) { return kind == KN_QOUT_INT32 || kind == KN_QOUT_FLOAT ? 4 : 1; }

/* Run variant k (and the reference) for one output kind; outputs must be identical. */
static kn_qkernel check_kind(const qcase *q, kn_qkernel k, kn_qout_kind kind, uint8_t a_zero, int trans_b,
                             kn_threadpool *pool)
{
    kn_qkernel used = KN_QK_COUNT;
    size_t ldc = q->N + 3, bytes = out_size(kind) * q->M * ldc + 1;
    void *got = calloc(1, bytes), *want = calloc(1, bytes);
    kn_qgemm_output o = {kind, NULL, ldc, 0.02f, q->scales, 1, q->bias, kind != KN_QOUT_INT32, 0.05f, 7};
    if (kind == KN_QOUT_INT8)
        o.y_zero = -3;
    int8_t *Bt = malloc(q->K * q->N + 1);
    for (size_t kk = 0; kk < q->K; kk++)
        for (size_t n = 0; n < q->N; n++)
            Bt[n * q->K + kk] = q->B[kk * q->N + n];
    kn_qpacked_b *pb = trans_b ? kn_qgemm_pack_b(k, q->K, q->N, Bt, q->K, 1)
                               : kn_qgemm_pack_b(k, q->K, q->N, q->B, q->N, 0);
    CHECK(pb != NULL);
    o.out = want;
    kn_qgemm_ref(q->M, q->N, q->K, q->A, q->K, a_zero, q->B, q->N, 0, &o);
    o.out = got;
    CHECK_EQ_INT(pb ? kn_qgemm_run(pool, q->M, q->N, q->K, q->A, q->K, a_zero, pb, &o) : -1, 0);
    if (memcmp(got, want, bytes)) {
        fprintf(stderr, "mismatch: %s kind %d M=%zu N=%zu K=%zu zero=%d trans=%d\n", kn_qkernel_name(k), kind,
                q->M, q->N, q->K, a_zero, trans_b);
        CHECK(0);
    }
    if (pb)
        used = pb->kernel;
    kn_qpacked_b_free(pb);
    free(Bt);
    free(got);
    free(want);
    return used;
}

static void test_shapes_all_kernels(void)
{
    static const size_t dims[][3] = {{1, 1, 1},   {1, 32, 4},   {3, 5, 7},    {13, 33, 9},  {12, 32, 64},
                                     {25, 70, 3}, {49, 31, 130}, {5, 100, 257}, {97, 65, 31}, {2, 300, 1000}};
    kn_error err;
    kn_threadpool *pool = kn_threadpool_create(3, &err);
    for (int k = 0; k < KN_QK_COUNT; k++) {
        if (!kn_qgemm_supported((kn_qkernel)k))
            continue;
        for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
            qcase q;
            make_case(&q, dims[d][0], dims[d][1], dims[d][2], 0);
            for (int kind = 0; kind < 4; kind++)
                check_kind(&q, (kn_qkernel)k, (kn_qout_kind)kind, (uint8_t)(d * 37 % 256), (int)(d & 1),
                           d % 2 ? pool : NULL);
            free_case(&q);
        }
    }
    kn_threadpool_free(pool);
}

static void test_extremes_exact(void)
{
    /* 255 x -128 at the largest K keeps int32 exact; zero points 0 and 255 */
    for (int k = 0; k < KN_QK_COUNT; k++) {
        if (!kn_qgemm_supported((kn_qkernel)k))
            continue;
        qcase q;
        make_case(&q, 3, 40, 4099, 1);
        check_kind(&q, (kn_qkernel)k, KN_QOUT_INT32, 0, 0, NULL);
        check_kind(&q, (kn_qkernel)k, KN_QOUT_INT32, 255, 1, NULL);
        free_case(&q);
    }
}

static void test_7bit_weights(void)
{
    if (!kn_qgemm_supported(KN_QK_AVX512BW7))
        return;
    static const size_t dims[][3] = {{1, 1, 1}, {13, 33, 9}, {25, 70, 3}, {49, 31, 130}, {97, 65, 31}, {2, 300, 1000}};
    kn_error err;
    kn_threadpool *pool = kn_threadpool_create(2, &err);
    for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
        qcase q;
        make_case_w(&q, dims[d][0], dims[d][1], dims[d][2], 0, 64);
        for (int kind = 0; kind < 4; kind++)
            CHECK_EQ_INT(check_kind(&q, KN_QK_AVX512BW7, (kn_qout_kind)kind, (uint8_t)(d * 53 % 256), (int)(d & 1),
                                    d % 2 ? pool : NULL),
                         KN_QK_AVX512BW7);
        free_case(&q);
    }
    qcase q;
    make_case_w(&q, 5, 40, 4099, 1, 64); /* A = 255, w = +-64: the 16-bit step's limit */
    CHECK_EQ_INT(check_kind(&q, KN_QK_AVX512BW7, KN_QOUT_INT32, 0, 0, NULL), KN_QK_AVX512BW7);
    CHECK_EQ_INT(check_kind(&q, KN_QK_AVX512BW7, KN_QOUT_INT32, 255, 1, NULL), KN_QK_AVX512BW7);
    free_case(&q);
    make_case_w(&q, 5, 40, 64, 0, 128); /* 8-bit weights: packed for the exact pairs kernel */
    q.B[17] = 65;
    CHECK_EQ_INT(check_kind(&q, KN_QK_AVX512BW7, KN_QOUT_INT32, 9, 0, NULL), KN_QK_AVX512BW);
    free_case(&q);
    kn_threadpool_free(pool);
}

static void test_bad_arguments(void)
{
    int8_t B[6] = {1, 2, 3, 4, 5, 6};
    uint8_t A[6] = {0};
    int32_t C[4];
    kn_qgemm_output o = {KN_QOUT_INT32, C, 2};
    kn_qpacked_b *pb = kn_qgemm_pack_b(KN_QK_GENERIC, 3, 2, B, 2, 0);
    CHECK(pb != NULL);
    CHECK_EQ_INT(kn_qgemm_run(NULL, 2, 2, 4, A, 4, 0, pb, &o), KN_ERR_ARG);  /* K differs */
    CHECK_EQ_INT(kn_qgemm_run(NULL, 2, 2, 3, A, 2, 0, pb, &o), KN_ERR_ARG);  /* lda short */
    o.kind = KN_QOUT_UINT8;
    CHECK_EQ_INT(kn_qgemm_run(NULL, 2, 2, 3, A, 3, 0, pb, &o), KN_ERR_ARG);  /* no scales */
    CHECK(kn_qgemm_pack_b(KN_QK_GENERIC, 3, 2, B, 1, 0) == NULL);            /* ldb short */
    CHECK(kn_qgemm_pack_b(KN_QK_GENERIC, 70000, 2, B, 2, 0) == NULL);        /* K too big */
    kn_qpacked_b_free(pb);
}

TEST_MAIN(TEST_CASE(test_shapes_all_kernels), TEST_CASE(test_extremes_exact), TEST_CASE(test_7bit_weights),
          TEST_CASE(test_bad_arguments))
