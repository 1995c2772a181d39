/* qgemm_bench.c - throughput of the 8-bit integer GEMM per kernel variant, single
 * thread: giga multiply-adds per second (GMAC/s; one MAC = 2 ops) on square and
 * transformer/convolution-like shapes.  Usage: qgemm_bench [repeats [kernel]]. */
#include "kernels/qgemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double bench(kn_qkernel k, size_t M, size_t N, size_t K, int reps)
{
    uint8_t *A = malloc(M * K);
    int8_t *B = malloc(K * N);
    int32_t *C = malloc(sizeof(int32_t) * M * N);
    for (size_t i = 0; i < M * K; i++)
        A[i] = (uint8_t)(i * 7);
    int w_max = k == KN_QK_AVX512BW7 ? 64 : 128; /* that variant is for 7-bit weights */
    for (size_t i = 0; i < K * N; i++)
        B[i] = (int8_t)((int)(i * 13 % (size_t)(2 * w_max)) - w_max);
    kn_qpacked_b *pb = kn_qgemm_pack_b(k, K, N, B, N, 0);
    kn_qgemm_output o = {KN_QOUT_INT32, C, N};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        kn_qgemm_run(NULL, M, N, K, A, K, 3, pb, &o);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    kn_qpacked_b_free(pb);
    free(A);
    free(B);
    free(C);
    return (double)M * (double)N * (double)K / best * 1e-9;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    static const size_t shapes[][3] = {{1024, 1024, 1024}, {128, 1024, 1024}, {1024, 128, 1024}, {1024, 1024, 128}, {128, 768, 768}, {128, 3072, 768}, {3136, 64, 576}};
    printf("%-12s %-18s %10s\n", "kernel", "M x N x K", "GMAC/s");
    for (int k = 0; k < KN_QK_COUNT; k++) {
        if (!kn_qgemm_supported((kn_qkernel)k) || (argc > 2 && strcmp(argv[2], kn_qkernel_name((kn_qkernel)k))))
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            char dims[64];
            snprintf(dims, sizeof dims, "%zux%zux%zu", shapes[s][0], shapes[s][1], shapes[s][2]);
            printf("%-12s %-18s %10.1f\n", kn_qkernel_name((kn_qkernel)k), dims,
                   bench((kn_qkernel)k, shapes[s][0], shapes[s][1], shapes[s][2], reps));
        }
    }
    return 0;
}
