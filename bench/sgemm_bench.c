/* sgemm_bench.c - single-thread sgemm throughput per kernel level (GFLOP/s, best of
 * several runs) on square and BERT-like shapes, with the ratio to the measured FMA
 * peaks of the reference machine (AVX-512 188, AVX2 96 GFLOP/s per core).
 * Usage: sgemm_bench [runs] [generic|avx2|avx512]   (not a ctest test) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/sgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KN_HAVE_PEAK_PROBE 1
#endif

/* Thread CPU time, so that time the (shared) machine gives to other processes does
 * not count; KILN_BENCH_WALL=1 switches to wall-clock time. */
static double now_s(void)
{
    struct timespec ts;
    static int wall = -1;
    if (wall < 0) wall = getenv("KILN_BENCH_WALL") != NULL;
    clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
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

static double probe_peak(kn_isa isa)
{
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double g = isa == KN_ISA_AVX512 ? probe_avx512(2000000) : probe_avx2(2000000);
        if (g > best) best = g;
    }
    return best;
}
#else
static double probe_peak(kn_isa isa) { return 0.0; }
#endif

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

static double bench_one(kn_isa isa, size_t M, size_t N, size_t K, int runs)
{
    float *A = rnd_buf(M * K), *B = rnd_buf(K * N), *C = rnd_buf(M * N);
    kn_packed_b *pb = kn_sgemm_pack_b(K, N, B, N, 0);
    double best = 1e30, flops = 2.0 * (double)M * (double)N * (double)K;
    if (!A || !B || !C || !pb) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    /* enough repetitions per timed run to last ~50 ms */
    int reps = (int)(0.05 * 20e9 / flops / (isa == KN_ISA_GENERIC ? 8 : 1)) + 1;
    kn_sgemm_run_isa(isa, 0, M, N, K, A, K, pb, C, N, NULL);
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++) kn_sgemm_run_isa(isa, 0, M, N, K, A, K, pb, C, N, NULL);
        double t = (now_s() - t0) / reps;
        if (t < best) best = t;
    }
    kn_packed_b_free(pb);
    free(A), free(B), free(C);
    return flops / best * 1e-9;
}

int main(int argc, char **argv)
{
    static const size_t shapes[][3] = {{168, 32, 256}, {256, 256, 256},  {512, 512, 512},  {1024, 1024, 1024},
                                       {2048, 2048, 2048}, {128, 3072, 768}, {128, 768, 3072}};
    static const double peak[KN_ISA_COUNT] = {0.0, 96.0, 188.0};
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) runs = 1;
    printf("sgemm_bench: single thread, best of %d; CPU supports up to %s\n", runs,
           kn_isa_name(kn_cpu_isa_supported()));
    printf("%-8s %6s %6s %6s %10s %8s %9s\n", "isa", "M", "N", "K", "GFLOP/s", "of peak",
           "of probe");
    for (int isa = (int)kn_cpu_isa_supported(); isa >= 0; isa--) {
        if (argc > 2 && strcmp(argv[2], kn_isa_name((kn_isa)isa)) != 0) continue;
        double probe = isa == KN_ISA_GENERIC ? 0.0 : probe_peak((kn_isa)isa);
        if (probe > 0)
            printf("%-8s FMA peak probed now: %.1f GFLOP/s (nominal %.0f)\n",
                   kn_isa_name((kn_isa)isa), probe, peak[isa]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            if (isa == KN_ISA_GENERIC && M * N * K > 600u * 1000u * 1000u) continue;
            double g = bench_one((kn_isa)isa, M, N, K, runs);
            if (peak[isa] > 0)
                printf("%-8s %6zu %6zu %6zu %10.1f %7.0f%% %8.0f%%\n", kn_isa_name((kn_isa)isa),
                       M, N, K, g, 100.0 * g / peak[isa], probe > 0 ? 100.0 * g / probe : 0.0);
            else
                printf("%-8s %6zu %6zu %6zu %10.1f %8s\n", kn_isa_name((kn_isa)isa), M, N, K, g,
                       "-");
            fflush(stdout);
        }
    }
    return 0;
}
