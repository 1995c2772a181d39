/* test_sgemm.c - every kernel level the CPU has (generic, AVX2, AVX-512) against
 * kn_sgemm_ref on awkward shapes: tails of every tile size, K and M blocks with
 * remainders, trans_a / trans_b, padded lda/ldc, all epilogue combinations (column
 * and row bias, Relu, Clip and the GELUs), K = 0, M or N = 0, residual aliasing C;
 * each through the drivers (packed B, packed A, both packed), inline and on a
 * 3-thread pool, the pooled results required to be bit-identical to the inline ones
 * (and both packed to the packed-A driver's); plus the CPU feature / KILN_ISA
 * plumbing. KILN_ISA=avx2 (or generic) runs it as a CPU without AVX-512 would. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "exec/threadpool.h"
#include "kernels/sgemm.h"
#include "test.h"

static kn_threadpool *g_pool; /* 3 threads: more than the machine's cores */

static const size_t SIZES[] = {1, 2, 3, 7, 13, 17, 31, 33, 63, 65, 127, 129, 255, 257};
enum { NSIZES = sizeof SIZES / sizeof SIZES[0] };
static const float SENTINEL = 12345.0f;

static uint32_t g_rng = 12345u;
static uint32_t rnd(void)
{
    kt_lcg32(&g_rng);
    return g_rng >> 8;
}
static float rndf(void) { return (float)rnd() / (float)(1u << 24) * 2.0f - 1.0f; }
static float *rnd_buf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rndf();
    return p;
}

typedef struct gcase {
    size_t M, N, K;
    int trans_a, trans_b;
    size_t pad_a, pad_b, pad_c;
    int epi; /* bit 0 alpha, 1 bias, 2 residual, 3 residual == C, 4 relu, 5 clip,
              * 6 row bias, 7 GELU (erf), 8 GELU (tanh) */
} gcase;

static kn_gemm_epilogue make_epi(const gcase *g, const float *bias, const float *rbias,
                                 const float *res, size_t ldr, float *C)
{
    kn_gemm_epilogue ep = {0};
    if (g->epi & 64) ep.row_bias = rbias;
    if (g->epi & 1) {
        ep.has_alpha = 1;
        ep.alpha = 0.75f;
    }
    if (g->epi & 2) ep.bias = bias;
    if (g->epi & 4) {
        ep.residual = res;
        ep.ldr = ldr;
    }
    if (g->epi & 8) {
        ep.residual = C;
        ep.ldr = ldr;
    }
    if (g->epi & 16) ep.act = KN_GEMM_ACT_RELU;
    if (g->epi & 32) {
        ep.act = KN_GEMM_ACT_CLIP;
        ep.clip_min = -0.5f;
        ep.clip_max = 1.25f;
    }
    if (g->epi & 128) ep.act = KN_GEMM_ACT_GELU;
    if (g->epi & 256) ep.act = KN_GEMM_ACT_GELU_TANH;
    return ep;
}

/* C buffer: M rows of ldc; the residual (for epi & 8) or NaN in the valid part,
 * SENTINEL in the padding. */
static void init_c(float *C, const float *res, const gcase *g, size_t ldc)
{
    for (size_t i = 0; i < g->M; i++)
        for (size_t j = 0; j < ldc; j++)
            C[i * ldc + j] = j >= g->N ? SENTINEL : (g->epi & 8) ? res[i * ldc + j] : NAN;
}

/* 1 (and a message) when C differs from the reference beyond rounding. */
static int compare_c(const gcase *g, int isa, int mode, const float *C, const float *Cref,
                     size_t ldc)
{
    double tol = 4e-6 * (double)(g->K + 4);
    for (size_t i = 0; i < g->M; i++) {
        for (size_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], want = Cref[i * ldc + j];
            if (!(fabs((double)got - (double)want) <= tol)) {
                fprintf(stderr,
                        "%s mode %d M=%zu N=%zu K=%zu ta=%d tb=%d epi=%d pads=%zu,%zu,%zu: "
                        "C[%zu,%zu] = %g, want %g\n",
                        kn_isa_name((kn_isa)isa), mode, g->M, g->N, g->K, g->trans_a,
                        g->trans_b, g->epi, g->pad_a, g->pad_b, g->pad_c, i, j, got, want);
                return 1;
            }
        }
    }
    return 0;
}

static int run_case(const gcase *g)
{
    size_t M = g->M, N = g->N, K = g->K;
    size_t arows = g->trans_a ? K : M, acols = g->trans_a ? M : K;
    size_t brows = g->trans_b ? N : K, bcols = g->trans_b ? K : N;
    size_t lda = acols + g->pad_a, ldb = bcols + g->pad_b, ldc = N + g->pad_c;
    float *A = rnd_buf(arows * lda), *B = rnd_buf(brows * ldb), *bias = rnd_buf(N);
    float *res = rnd_buf(M * ldc), *rbias = rnd_buf(M);
    size_t csize = M * ldc > 0 ? M * ldc : 1;
    float *Cref = malloc(csize * sizeof(float)), *C = malloc(csize * sizeof(float));
    float *Cinline = malloc(csize * sizeof(float)), *Cpa = malloc(csize * sizeof(float));
    init_c(Cref, res, g, ldc);
    kn_gemm_epilogue ep = make_epi(g, bias, rbias, res, ldc, Cref);
    kn_sgemm_ref(g->trans_a, g->trans_b, M, N, K, A, lda, B, ldb, Cref, ldc, &ep);
    kn_packed_b *pb = kn_sgemm_pack_b(K, N, B, ldb, g->trans_b);
    CHECK(pb != NULL);
    int bad = 0;
    for (int isa = 0; pb && isa <= (int)kn_cpu_isa(); isa++) {
        kn_packed_a *pa = g->trans_b ? NULL : kn_sgemm_pack_a_isa((kn_isa)isa, g->trans_a, M, K, A, lda);
        CHECK(g->trans_b || pa != NULL);
        for (int mode = 0; mode < 6 && !bad; mode++) {
            if (mode >= 2 && !pa) continue;
            kn_threadpool *pool = (mode & 1) ? g_pool : NULL;
            init_c(C, res, g, ldc);
            ep = make_epi(g, bias, rbias, res, ldc, C);
            int rc = mode < 2 ? kn_sgemm_run_pool_isa(pool, (kn_isa)isa, g->trans_a, M, N, K, A,
                                                      lda, pb, C, ldc, &ep)
                     : mode < 4 ? kn_sgemm_run_pa(pool, M, N, K, pa, B, ldb, C, ldc, &ep)
                                : kn_sgemm_run_pa_pb(pool, M, N, K, pa, pb, C, ldc, &ep);
            CHECK_EQ_INT(rc, 0);
            bad = compare_c(g, isa, mode, C, Cref, ldc);
            if (mode == 2)
                memcpy(Cpa, C, csize * sizeof(float));
            else if (mode == 4 && !bad && memcmp(Cpa, C, csize * sizeof(float)) != 0) {
                fprintf(stderr, "%s M=%zu N=%zu K=%zu: packed B differs from B packed per call\n",
                        kn_isa_name((kn_isa)isa), M, N, K);
                bad = 1; /* B given packed changes nothing, bit for bit */
            }
            if (!(mode & 1))
                memcpy(Cinline, C, csize * sizeof(float));
            else if (!bad && memcmp(Cinline, C, csize * sizeof(float)) != 0) {
                fprintf(stderr, "%s mode %d M=%zu N=%zu K=%zu: pooled result differs from inline\n",
                        kn_isa_name((kn_isa)isa), mode, M, N, K);
                bad = 1;
            }
        }
        kn_packed_a_free(pa);
    }
    CHECK(!bad);
    kn_packed_b_free(pb);
    free(A), free(B), free(bias), free(rbias), free(res), free(Cref), free(C), free(Cinline);
    free(Cpa);
    return bad;
}

static gcase random_case(size_t M, size_t N, size_t K)
{
    static const int epis[] = {0,  1, 2, 4, 8, 16, 32, 64, 1 | 2 | 4 | 16, 1 | 2 | 8 | 32,
                               2 | 32, 64 | 4 | 16, 64 | 2 | 8 | 1, 128, 2 | 128, 1 | 2 | 4 | 128,
                               256, 2 | 8 | 256};
    gcase g = {M, N, K, 0, 0, 0, 0, 0, 0};
    g.trans_a = (int)(rnd() & 1);
    g.trans_b = (int)(rnd() & 1);
    g.pad_a = rnd() % 3 ? 0 : 1 + rnd() % 9;
    g.pad_b = rnd() % 3 ? 0 : 1 + rnd() % 9;
    g.pad_c = rnd() % 2 ? 0 : 1 + rnd() % 17;
    g.epi = epis[rnd() % (sizeof epis / sizeof epis[0])];
    return g;
}

static void report_isas(void)
{
    for (int isa = 0; isa < KN_ISA_COUNT; isa++)
        if (isa > (int)kn_cpu_isa())
            printf("test_sgemm: skipping %s (not supported by this CPU, or capped by KILN_ISA)\n",
                   kn_isa_name((kn_isa)isa));
        else
            printf("test_sgemm: testing %s\n", kn_isa_name((kn_isa)isa));
}

static void test_cpu_features(void)
{
    const kn_cpu_feature_set *f = kn_cpu_features();
    CHECK(f == kn_cpu_features());
    kn_isa s = kn_cpu_isa_supported();
    CHECK(kn_cpu_isa() <= s);
    if (s >= KN_ISA_AVX2) CHECK(f->avx2 && f->fma);
    if (s >= KN_ISA_AVX512) CHECK(f->avx512f && f->avx512bw && f->avx512vl);
    report_isas();
}

/* Every tail of the generic (4), AVX2 (6 x 16) and AVX-512 (14 x 32) tiles: all
 * small M against small N with a K crossing nothing, then all of M x N sampled. */
static void test_small_tails(void)
{
    static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 13, 14, 15, 17, 28, 29};
    static const size_t ns[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 65};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++) {
            gcase g = random_case(ms[a], ns[b], SIZES[rnd() % 8]);
            run_case(&g);
        }
}

static void test_size_grid(void)
{
    int n = 0;
    for (size_t a = 0; a < NSIZES; a++)
        for (size_t b = 0; b < NSIZES; b++) {
            size_t M = SIZES[a], N = SIZES[b], K = SIZES[rnd() % NSIZES];
            if (M * N * K > 4u * 1000u * 1000u) K = SIZES[rnd() % 6];
            gcase g = random_case(M, N, K);
            run_case(&g);
            n++;
        }
    CHECK(n == NSIZES * NSIZES);
}

/* K spanning several kc blocks (at most 1024) with a remainder, M spanning several
 * row blocks of the packed-B driver and N several column blocks of the packed-A
 * driver (both sized from the k block: 400 x 600 x 1100 has kc 552, 308 rows and
 * 448 columns a block). */
static void test_blocking(void)
{
    gcase cases[] = {
        {3, 5, 1300, 0, 0, 0, 0, 0, 1 | 2 | 4 | 16},
        {33, 65, 1031, 0, 1, 3, 0, 5, 8 | 2},
        {400, 600, 1100, 0, 0, 0, 0, 0, 2 | 4 | 16},
        {400, 17, 9, 1, 0, 0, 2, 0, 32},
        {7, 1100, 5, 0, 0, 0, 0, 3, 2 | 4},
        {2, 2049, 3, 1, 1, 1, 1, 1, 1},
        {171, 40, 300, 0, 0, 0, 0, 0, 8 | 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

static void test_empty(void)
{
    for (int epi = 0; epi < 128; epi++) {
        if ((epi & 4) && (epi & 8)) continue;
        if ((epi & 16) && (epi & 32)) continue;
        gcase g = {5, 37, 0, 0, 0, 0, 0, 3, epi}; /* K = 0: C = epilogue(0) */
        run_case(&g);
    }
    gcase z[] = {{0, 9, 4, 0, 0, 0, 0, 0, 2}, {9, 0, 4, 0, 0, 0, 0, 0, 2},
                 {0, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 0, 0, 0, 0, 0, 0}};
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) run_case(&z[i]);
}

/* A NaN in A reaches C through every activation (max/min keep NaN, as the
 * reference's comparisons do), and does not leak into other rows. */
static void test_nan_propagates(void)
{
    enum { M = 15, N = 33, K = 5 };
    float A[M * K], B[K * N], C[M * N];
    for (int i = 0; i < M * K; i++) A[i] = 0.25f;
    for (int i = 0; i < K * N; i++) B[i] = 0.5f;
    A[3 * K + 2] = NAN;
    kn_packed_b *pb = kn_sgemm_pack_b(K, N, B, N, 0);
    CHECK(pb != NULL);
    for (int act = 0; pb && act < 3; act++) {
        kn_gemm_epilogue ep = {0};
        ep.act = (kn_gemm_act)act;
        ep.clip_min = -1.0f;
        ep.clip_max = 0.5f;
        for (int isa = 0; isa <= (int)kn_cpu_isa(); isa++) {
            CHECK(kn_sgemm_run_isa((kn_isa)isa, 0, M, N, K, A, K, pb, C, N, &ep) == 0);
            CHECK(isnan(C[3 * N + 0]) && isnan(C[3 * N + N - 1]));
            CHECK(!isnan(C[2 * N + 5]) && !isnan(C[4 * N + 32]));
        }
    }
    kn_packed_b_free(pb);
}

static void test_api(void)
{
    float B[6] = {1, 2, 3, 4, 5, 6}, A[2] = {1, -1}, C[3] = {0, 0, 0};
    kn_packed_b *pb = kn_sgemm_pack_b(2, 3, B, 3, 0);
    CHECK(pb != NULL);
    CHECK(kn_sgemm_run(1, 3, 2, A, 2, pb, C, 3, NULL) == 0);
    CHECK_NEAR(C[0], -3, 0);
    CHECK_NEAR(C[2], -3, 0);
    CHECK(kn_sgemm_run(1, 4, 2, A, 2, pb, C, 3, NULL) != 0); /* N mismatch */
    CHECK(kn_sgemm_run(1, 3, 2, A, 2, NULL, C, 3, NULL) != 0);
    CHECK(kn_sgemm_run(1, 3, 2, A, 1, pb, C, 3, NULL) != 0); /* lda < K */
    CHECK(kn_sgemm_run(1, 3, 2, A, 2, pb, C, 2, NULL) != 0); /* ldc < N */
    kn_gemm_epilogue ep = {0};
    ep.residual = C;
    ep.ldr = 1;
    CHECK(kn_sgemm_run(1, 3, 2, A, 2, pb, C, 3, &ep) != 0); /* ldr < N */
    CHECK(kn_sgemm_pack_b(2, 3, B, 2, 0) == NULL);          /* ldb < N */
    CHECK(kn_sgemm_pack_b(2, 3, B, 1, 1) == NULL);          /* ldb < K (transposed) */
    kn_packed_b_free(pb);
    kn_packed_b_free(NULL);
}

static void test_pool_start(void)
{
    kn_error err;
    g_pool = kn_threadpool_create(3, &err);
    CHECK(g_pool != NULL);
}

static void test_pool_stop(void)
{
    kn_threadpool_free(g_pool);
    g_pool = NULL;
}

static void test_packed_a_api(void)
{
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[6], rb[2] = {10, 20};
    kn_packed_a *pa = kn_sgemm_pack_a(2, 3, A, 3); /* A 2x3, B 3x2 */
    CHECK(pa != NULL);
    kn_gemm_epilogue ep = {0};
    ep.row_bias = rb;
    CHECK(kn_sgemm_run_pa(g_pool, 2, 2, 3, pa, B, 2, C, 2, &ep) == 0);
    CHECK_NEAR(C[0], 1 + 3 + 10, 0);
    CHECK_NEAR(C[1], 2 + 3 + 10, 0);
    CHECK_NEAR(C[2], 4 + 6 + 20, 0);
    CHECK_NEAR(C[3], 5 + 6 + 20, 0);
    CHECK(kn_sgemm_run_pa(NULL, 3, 2, 3, pa, B, 2, C, 2, NULL) != 0); /* M mismatch */
    CHECK(kn_sgemm_run_pa(NULL, 2, 2, 2, pa, B, 2, C, 2, NULL) != 0); /* K mismatch */
    CHECK(kn_sgemm_run_pa(NULL, 2, 2, 3, NULL, B, 2, C, 2, NULL) != 0);
    CHECK(kn_sgemm_run_pa(NULL, 2, 2, 3, pa, B, 1, C, 2, NULL) != 0); /* ldb < N */
    CHECK(kn_sgemm_run_pa(NULL, 2, 2, 3, pa, B, 2, C, 1, NULL) != 0); /* ldc < N */
    CHECK(kn_sgemm_run_pa(NULL, 2, 0, 3, pa, B, 2, C, 2, NULL) == 0); /* N = 0 */
    kn_packed_b *pb = kn_sgemm_pack_b(3, 2, B, 2, 0);
    CHECK(pb != NULL);
    CHECK(kn_sgemm_run_pa_pb(g_pool, 2, 2, 3, pa, pb, C, 2, &ep) == 0);
    CHECK_NEAR(C[0], 1 + 3 + 10, 0);
    CHECK_NEAR(C[3], 5 + 6 + 20, 0);
    CHECK(kn_sgemm_run_pa_pb(NULL, 2, 3, 3, pa, pb, C, 3, NULL) != 0); /* N differs from pb's */
    CHECK(kn_sgemm_run_pa_pb(NULL, 2, 2, 2, pa, pb, C, 2, NULL) != 0); /* K mismatch */
    CHECK(kn_sgemm_run_pa_pb(NULL, 2, 2, 3, NULL, pb, C, 2, NULL) != 0);
    CHECK(kn_sgemm_run_pa_pb(NULL, 2, 2, 3, pa, NULL, C, 2, NULL) != 0);
    CHECK(kn_sgemm_run_pa_pb(NULL, 2, 2, 3, pa, pb, C, 1, NULL) != 0); /* ldc < N */
    kn_packed_b_free(pb);
    CHECK(kn_sgemm_pack_a(2, 3, A, 2) == NULL);                       /* lda < K */
    CHECK(kn_sgemm_pack_a_isa(KN_ISA_GENERIC, 1, 2, 3, A, 1) == NULL); /* lda < M */
    kn_packed_a_free(pa);
    kn_packed_a_free(NULL);
}

/* Shapes that the pool splits into many tasks along M, N or both. */
static void test_pool_split(void)
{
    gcase cases[] = {
        {500, 70, 40, 0, 0, 0, 0, 0, 64 | 2},   {30, 900, 300, 0, 0, 0, 0, 0, 64 | 16},
        {128, 768, 40, 0, 1, 0, 0, 0, 2},       {700, 1100, 20, 1, 0, 3, 0, 2, 8 | 64},
        {57, 4000, 11, 0, 0, 0, 0, 0, 64 | 32}, {2000, 33, 17, 0, 0, 0, 0, 0, 2 | 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

TEST_MAIN(TEST_CASE(test_pool_start), TEST_CASE(test_cpu_features), TEST_CASE(test_api),
          TEST_CASE(test_packed_a_api), TEST_CASE(test_empty), TEST_CASE(test_nan_propagates),
          TEST_CASE(test_small_tails), TEST_CASE(test_blocking), TEST_CASE(test_pool_split),
          TEST_CASE(test_size_grid), TEST_CASE(test_pool_stop))
