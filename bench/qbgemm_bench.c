/* qbgemm_bench.c - the block-quantized-weight GEMM (INT4 weight-only MatMulNBits)
 * against the float SGEMM on transformer shapes, single thread: GMAC/s of each
 * (min time over the repeats), per kernel variant and block size, with the time of
 * the row quantization included.  Usage: qbgemm_bench [repeats]. */
#include "kernels/qbgemm.h"
#include "kernels/sgemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double gmacs(size_t M, size_t N, size_t K, double t) { return (double)M * (double)N * (double)K / t * 1e-9; }

static double bench_qb(kn_qbkernel k, size_t M, size_t N, size_t K, size_t bs, const float *A, int reps)
{
    size_t nb = (K + bs - 1) / bs;
    int8_t *W = malloc(N * K);
    float *s = malloc(sizeof(float) * N * nb), *C = malloc(sizeof(float) * M * N);
    for (size_t i = 0; i < N * K; i++)
        W[i] = (int8_t)((int)(i * 7 % 16) - 8);
    for (size_t i = 0; i < N * nb; i++)
        s[i] = 0.01f;
    kn_qb_packed *pb = kn_qb_pack(k, K, N, bs, W, K, s, nb);
    void *work = aligned_alloc(64, (kn_qb_work_bytes(M, pb) + 63) / 64 * 64);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        kn_qb_run(NULL, M, N, K, A, K, pb, C, N, NULL, work);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    kn_qb_packed_free(pb);
    free(work);
    free(W);
    free(s);
    free(C);
    return gmacs(M, N, K, best);
}

static double bench_sgemm(size_t M, size_t N, size_t K, const float *A, int reps)
{
    float *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
    for (size_t i = 0; i < K * N; i++)
        B[i] = (float)(i % 17) * 0.01f;
    kn_packed_b *pb = kn_sgemm_pack_b(K, N, B, N, 0);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        kn_sgemm_run(M, N, K, A, K, pb, C, N, NULL);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    kn_packed_b_free(pb);
    free(B);
    free(C);
    return gmacs(M, N, K, best);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    static const size_t shapes[][3] = {{128, 768, 768}, {128, 3072, 768}, {128, 768, 3072}, {197, 2304, 768},
                                       {1, 3072, 768}, {8, 768, 3072}};
    printf("%-18s %8s %12s %12s %12s\n", "M x N x K", "sgemm", "qb32", "qb128", "kernel");
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        size_t M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
        float *A = malloc(sizeof(float) * M * K);
        for (size_t i = 0; i < M * K; i++)
            A[i] = (float)((int)(i * 31 % 200) - 100) * 0.01f;
        char dims[64];
        snprintf(dims, sizeof dims, "%zux%zux%zu", M, N, K);
        double sg = bench_sgemm(M, N, K, A, reps);
        for (int k = KN_QB_COUNT - 1; k >= 0; k--) {
            if (!kn_qb_supported((kn_qbkernel)k) || (k == KN_QB_GENERIC && M * N * K > 100000000))
                continue;
            printf("%-18s %8.1f %12.1f %12.1f %12s\n", dims, sg, bench_qb((kn_qbkernel)k, M, N, K, 32, A, reps),
                   bench_qb((kn_qbkernel)k, M, N, K, 128, A, reps), kn_qbkernel_name((kn_qbkernel)k));
        }
        free(A);
    }
    return 0;
}
