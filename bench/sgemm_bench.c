/* sgemm_bench.c - sgemm throughput per kernel level (GFLOP/s, best and median of
 * several timed runs) on square, BERT-like and convolution-like shapes, for both
 * drivers (packed B "pb", packed A "pa") on one thread, and for the packed-B driver
 * on a thread pool ("pool", wall-clock time), with the ratio to the nominal FMA peaks
 * of the reference machine (AVX-512 188, AVX2 96 GFLOP/s per core) and to the peak
 * an FMA loop reaches right now.  The machine is shared and its FMA rate moves by
 * tens of percent from one second to the next, so a short FMA probe runs between
 * the timed runs: "of probe" is the best run over the best probe of its row,
 * "run/probe" the median over runs of each run over the probe beside it.
 * Usage: sgemm_bench [runs] [generic|avx2|avx512] [threads] [MxNxK]   (not a ctest test;
 * MxNxK: only that shape, e.g. 1024x1024x1024) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/threadpool.h"
#include "kernels/sgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KN_HAVE_PEAK_PROBE 1
#endif

/* Thread CPU time, so that time the (shared) machine gives to other processes does
 * not count; KILN_BENCH_WALL=1 (and the pooled runs, whose work is on several
 * threads) use wall-clock time. */
static int g_wall = -1;
static double now_s(void)
{
    struct timespec ts;
    if (g_wall < 0) g_wall = getenv("KILN_BENCH_WALL") != NULL;
    clock_gettime(g_wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#ifdef KN_HAVE_PEAK_PROBE
/* FMA throughput right now (the machine may be shared): NCH independent chains
 * (24 zmm for AVX-512, 12 ymm for AVX2 so that nothing spills). */
#define PROBE_BODY(V, FMA, SET1, NCH)                                                  \
    V acc[NCH], x = SET1(1.0000001f), y = SET1(0.9999999f);                            \
    for (int i = 0; i < NCH; i++) acc[i] = SET1((float)i);                             \
    double t0 = now_s();                                                               \
    for (long it = 0; it < iters; it++)                                                \
        _Pragma("GCC unroll 24")                                                       \
        for (int i = 0; i < NCH; i++) acc[i] = FMA(acc[i], x, y);                      \
    double t = now_s() - t0;                                                           \
    float sink = 0;                                                                    \
    for (int i = 0; i < NCH; i++) sink += ((float *)&acc[i])[0];                       \
    if (sink == 12345.678f) printf(" ");                                               \
    return (double)iters * NCH * lanes * 2.0 / t * 1e-9;

__attribute__((target("avx512f,fma"))) static double probe_avx512(long iters)
{
    const double lanes = 16;
    PROBE_BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps, 24)
}

__attribute__((target("avx2,fma"))) static double probe_avx2(long iters)
{
    const double lanes = 8;
    PROBE_BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps, 12)
}

static double probe_peak(kn_isa isa, int tries, long iters)
{
    double best = 0;
    for (int r = 0; r < tries; r++) {
        double g = isa == KN_ISA_AVX512 ? probe_avx512(iters) : probe_avx2(iters);
        if (g > best) best = g;
    }
    return best;
}
#else
static double probe_peak(kn_isa isa, int tries, long iters) { return 0.0; }
#endif

/* A probe of about a millisecond, run before and after every timed run: the
 * machine is shared, so the FMA rate on offer moves from one second to the next
 * and a run is judged against the rate beside it. */
static double probe_short(kn_isa isa)
{
    return isa == KN_ISA_GENERIC ? 0.0 : probe_peak(isa, 1, 200000);
}

static float *rnd_buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    unsigned s = 1;
    for (size_t i = 0; p && i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / (float)(1u << 24) - 0.5f;
    }
    return p;
}

typedef enum bmode { MODE_PB, MODE_PA, MODE_POOL } bmode;
static const char *const MODE_NAMES[] = {"pb", "pa", "pool"};

typedef struct bresult {
    double best, median; /* GFLOP/s */
    double probe;        /* the best FMA probe reading between the runs (0: none) */
    double ratio_median; /* median over runs of GFLOP/s / the probe beside the run */
} bresult;

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* One call of the measured driver. */
static void call_once(bmode mode, kn_isa isa, kn_threadpool *pool, size_t M, size_t N, size_t K,
                      const float *A, const float *B, const kn_packed_b *pb,
                      const kn_packed_a *pa, float *C)
{
    if (mode == MODE_PA)
        kn_sgemm_run_pa(NULL, M, N, K, pa, B, N, C, N, NULL);
    else
        kn_sgemm_run_pool_isa(mode == MODE_POOL ? pool : NULL, isa, 0, M, N, K, A, K, pb, C, N,
                              NULL);
}

/* runs timed runs of ~5 ms each (at least one call): best and median. */
static bresult bench_one(bmode mode, kn_isa isa, kn_threadpool *pool, size_t M, size_t N,
                         size_t K, int runs)
{
    float *A = rnd_buf(M * K), *B = rnd_buf(K * N), *C = rnd_buf(M * N);
    kn_packed_b *pb = kn_sgemm_pack_b(K, N, B, N, 0);
    kn_packed_a *pa = kn_sgemm_pack_a_isa(isa, 0, M, K, A, K);
    double flops = 2.0 * (double)M * (double)N * (double)K, *t = calloc((size_t)runs, sizeof *t);
    if (!A || !B || !C || !pb || !pa || !t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    int reps = (int)(0.005 * 20e9 / flops / (isa == KN_ISA_GENERIC ? 8 : 1)) + 1;
    int wall = g_wall;
    if (mode == MODE_POOL) g_wall = 1;
    double *ratio = calloc((size_t)runs, sizeof *ratio), probe = 0, before = probe_short(isa);
    if (!ratio) exit(1);
    call_once(mode, isa, pool, M, N, K, A, B, pb, pa, C);
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++) call_once(mode, isa, pool, M, N, K, A, B, pb, pa, C);
        t[r] = (now_s() - t0) / reps;
        double after = probe_short(isa), beside = before > after ? before : after;
        ratio[r] = beside > 0 ? flops / t[r] * 1e-9 / beside : 0.0;
        probe = beside > probe ? beside : probe;
        before = after;
    }
    g_wall = wall;
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    qsort(ratio, (size_t)runs, sizeof *ratio, cmp_double);
    bresult res = {flops / t[0] * 1e-9, flops / t[runs / 2] * 1e-9, probe, ratio[runs / 2]};
    free(ratio);
    kn_packed_b_free(pb);
    kn_packed_a_free(pa);
    free(A), free(B), free(C), free(t);
    return res;
}

/* GFLOP/s, then against the nominal peak and against the probes run between the
 * runs (x threads for the pool, whose probe ran on one of them): the best run over
 * the best probe, and the median of each run over the probe beside it. */
static void print_row(kn_isa isa, bmode mode, size_t M, size_t N, size_t K, bresult g,
                      double peak, int threads)
{
    printf("%-8s %-5s %6zu %6zu %6zu %9.1f %9.1f", kn_isa_name(isa), MODE_NAMES[mode], M, N, K,
           g.best, g.median);
    if (peak > 0 && g.probe > 0)
        printf(" %7.0f%% %7.1f %8.0f%% %8.0f%%\n", 100.0 * g.best / peak, g.probe,
               100.0 * g.best / (g.probe * threads), 100.0 * g.ratio_median / threads);
    else
        printf(" %8s\n", "-");
    fflush(stdout);
}

/* "MxNxK" names this shape. */
static int shape_matches(const char *want, size_t M, size_t N, size_t K)
{
    char name[64];
    snprintf(name, sizeof name, "%zux%zux%zu", M, N, K);
    return strcmp(want, name) == 0;
}

int main(int argc, char **argv)
{
    static const size_t shapes[][3] = {{168, 32, 256},    {256, 256, 256},  {512, 512, 512},
                                       {1024, 1024, 1024}, {2048, 2048, 2048}, {128, 3072, 768},
                                       {128, 768, 3072},   {64, 3136, 576},  {256, 196, 2304},
                                       {96, 196, 576},     {320, 49, 960}};
    static const double peak[KN_ISA_COUNT] = {0.0, 96.0, 188.0};
    int runs = argc > 1 ? atoi(argv[1]) : 15;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    if (runs < 1) runs = 1;
    kn_error err;
    kn_threadpool *pool = kn_threadpool_create(threads, &err);
    if (!pool) {
        fprintf(stderr, "thread pool: %s\n", err.msg);
        return 1;
    }
    printf("sgemm_bench: best and median of %d runs; pb/pa on one thread (thread CPU time), "
           "pool on %d threads (wall time); CPU supports up to %s\n",
           runs, kn_threadpool_size(pool), kn_isa_name(kn_cpu_isa_supported()));
    printf("%-8s %-5s %6s %6s %6s %9s %9s %8s %7s %9s %9s\n", "isa", "mode", "M", "N", "K",
           "best", "median", "of peak", "probe", "of probe", "run/probe");
    for (int isa = (int)kn_cpu_isa_supported(); isa >= 0; isa--) {
        if (argc > 2 && strcmp(argv[2], kn_isa_name((kn_isa)isa)) != 0) continue;
        double probe = isa == KN_ISA_GENERIC ? 0.0 : probe_peak((kn_isa)isa, 5, 2000000);
        if (probe > 0)
            printf("%-8s FMA peak probed now: %.1f GFLOP/s per core (nominal %.0f)\n",
                   kn_isa_name((kn_isa)isa), probe, peak[isa]);
        for (int mode = MODE_PB; mode <= MODE_POOL; mode++) {
            int nthr = mode == MODE_POOL ? kn_threadpool_size(pool) : 1;
            double pk = peak[isa] * nthr;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                if (isa == KN_ISA_GENERIC && (M * N * K > 600u * 1000u * 1000u || mode)) continue;
                if (mode == MODE_POOL && kn_threadpool_size(pool) < 2) continue;
                if (argc > 4 && !shape_matches(argv[4], M, N, K)) continue;
                bresult g = bench_one((bmode)mode, (kn_isa)isa, pool, M, N, K, runs);
                print_row((kn_isa)isa, (bmode)mode, M, N, K, g, pk, nthr);
            }
        }
    }
    kn_threadpool_free(pool);
    return 0;
}
