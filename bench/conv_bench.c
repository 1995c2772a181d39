/* conv_bench.c - single-thread timing of the float32 2-D conv kernels on layer
 * shapes of the reference CNNs (MobileNetV2 stem, expand / depthwise / project
 * convs, ResNet-50 3x3 convs), each with the path kn_conv2d_run picks and, where
 * that is the direct path, with the im2col path it replaced (weights given only
 * prepacked), and where the Winograd path applies, with the im2col path too;
 * the group-1 ResNet-50 / MobileNetV2 layers also on the blocked NCHWc path
 * (kn_nchwc_conv_run on blocked tensors, no reorder: the "nchwc" lines), and
 * the stems with the stem kernel (NCHW image in, blocked out: "nchwc-stem"),
 * and the 3x3 stride-1 ones with Winograd weights too ("nchwc-wino").
 * Reports the best and median thread CPU time of `reps` runs, so a loaded
 * machine inflates the numbers less than wall time would; with threads > 1 both
 * paths run on a pool of that many and the times are wall times.  Run by hand:
 *   build/conv_bench [reps] [generic|avx2|avx512] [name filter] [threads] */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cpu.h"
#include "exec/threadpool.h"
#include "kernels/conv_kernels.h"
#include "kernels/nchwc.h"
#include "kernels/sgemm.h"

typedef struct layer {
    const char *name;
    int64_t batch, C, M, group, ih, iw, k, s, pad;
    kn_conv_act_kind act;
} layer;

static const layer k_layers[] = {
    {"mnv2 stem 3->32 3x3 s2 224", 1, 3, 32, 1, 224, 224, 3, 2, 1, KN_CONV_ACT_CLIP},
    {"mnv2 f2 expand 16->96 112", 1, 16, 96, 1, 112, 112, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f2 dw 96 3x3 s2 112", 1, 96, 96, 96, 112, 112, 3, 2, 1, KN_CONV_ACT_CLIP},
    {"mnv2 f3 dw 144 3x3 s1 56", 1, 144, 144, 144, 56, 56, 3, 1, 1, KN_CONV_ACT_CLIP},
    {"mnv2 f8 dw 384 3x3 s1 14", 1, 384, 384, 384, 14, 14, 3, 1, 1, KN_CONV_ACT_CLIP},
    {"mnv2 f15 dw 960 3x3 s1 7", 1, 960, 960, 960, 7, 7, 3, 1, 1, KN_CONV_ACT_CLIP},
    {"effb0 dw 240 5x5 s2 28", 1, 240, 240, 240, 28, 28, 5, 2, 2, KN_CONV_ACT_NONE},
    {"mnv2 f2 project 96->24 56", 1, 96, 24, 1, 56, 56, 1, 1, 0, KN_CONV_ACT_NONE},
    {"mnv2 f17 expand 160->960 7", 1, 160, 960, 1, 7, 7, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f17 expand 160->960 7 b8", 8, 160, 960, 1, 7, 7, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f3 expand 24->144 56", 1, 24, 144, 1, 56, 56, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f5 expand 32->192 28", 1, 32, 192, 1, 28, 28, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f8 expand 64->384 14", 1, 64, 384, 1, 14, 14, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f8 expand 64->384 14 b8", 8, 64, 384, 1, 14, 14, 1, 1, 0, KN_CONV_ACT_CLIP},
    {"mnv2 f3 project 144->24 56", 1, 144, 24, 1, 56, 56, 1, 1, 0, KN_CONV_ACT_NONE},
    {"mnv2 f5 project 192->32 28", 1, 192, 32, 1, 28, 28, 1, 1, 0, KN_CONV_ACT_NONE},
    {"mnv2 f8 project 384->64 14", 1, 384, 64, 1, 14, 14, 1, 1, 0, KN_CONV_ACT_NONE},
    {"mnv2 f12 project 576->96 14", 1, 576, 96, 1, 14, 14, 1, 1, 0, KN_CONV_ACT_NONE},
    {"mnv2 f15 project 960->160 7", 1, 960, 160, 1, 7, 7, 1, 1, 0, KN_CONV_ACT_NONE},
    {"mnv2 f17 project 960->320 7", 1, 960, 320, 1, 7, 7, 1, 1, 0, KN_CONV_ACT_NONE},
    {"r50 1x1 256->64 56", 1, 256, 64, 1, 56, 56, 1, 1, 0, KN_CONV_ACT_RELU},
    {"r50 1x1 64->256 56", 1, 64, 256, 1, 56, 56, 1, 1, 0, KN_CONV_ACT_NONE},
    {"r50 1x1 1024->256 14", 1, 1024, 256, 1, 14, 14, 1, 1, 0, KN_CONV_ACT_RELU},
    {"r50 1x1 512->2048 7", 1, 512, 2048, 1, 7, 7, 1, 1, 0, KN_CONV_ACT_NONE},
    {"r50 stem 3->64 7x7 s2 224", 1, 3, 64, 1, 224, 224, 7, 2, 3, KN_CONV_ACT_RELU},
    {"r50 l1 3x3 64 56", 1, 64, 64, 1, 56, 56, 3, 1, 1, KN_CONV_ACT_RELU},
    {"w 3x3 16 56", 1, 16, 16, 1, 56, 56, 3, 1, 1, KN_CONV_ACT_RELU},
    {"w 3x3 32 112", 1, 32, 32, 1, 112, 112, 3, 1, 1, KN_CONV_ACT_RELU},
    {"w 3x3 64->128 56", 1, 64, 128, 1, 56, 56, 3, 1, 1, KN_CONV_ACT_RELU},
    {"w 3x3 256 4", 1, 256, 256, 1, 4, 4, 3, 1, 1, KN_CONV_ACT_RELU},
    {"w 3x3 512 3 nopad", 1, 512, 512, 1, 3, 3, 3, 1, 0, KN_CONV_ACT_RELU},
    {"r50 l1 3x3 64 56 b8", 8, 64, 64, 1, 56, 56, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l2 3x3 128 28", 1, 128, 128, 1, 28, 28, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l2 3x3 128 28 b8", 8, 128, 128, 1, 28, 28, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l3 3x3 256 14", 1, 256, 256, 1, 14, 14, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l3 3x3 256 14 b8", 8, 256, 256, 1, 14, 14, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l4 3x3 512 7", 1, 512, 512, 1, 7, 7, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l4 3x3 512 7 b2", 2, 512, 512, 1, 7, 7, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l4 3x3 512 7 b8", 8, 512, 512, 1, 7, 7, 3, 1, 1, KN_CONV_ACT_RELU},
    {"r50 l2.0 3x3 s2 128 56", 1, 128, 128, 1, 56, 56, 3, 2, 1, KN_CONV_ACT_RELU},
    {"r50 l3.0 3x3 s2 256 28", 1, 256, 256, 1, 28, 28, 3, 2, 1, KN_CONV_ACT_RELU},
    {"r50 l4.0 3x3 s2 512 14", 1, 512, 512, 1, 14, 14, 3, 2, 1, KN_CONV_ACT_RELU},
    {"r50 ds 1x1 s2 256->512 56", 1, 256, 512, 1, 56, 56, 1, 2, 0, KN_CONV_ACT_NONE},
    {"r50 ds 1x1 s2 1024->2048 14", 1, 1024, 2048, 1, 14, 14, 1, 2, 0, KN_CONV_ACT_NONE},
};

/* The pool of the run (NULL: single thread, timed in thread CPU time). */
static kn_threadpool *g_pool;

static double thread_ms(void)
{
    struct timespec ts;
    clock_gettime(g_pool ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *filled(int64_t n)
{
    float *p = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
    for (int64_t i = 0; p && i < n; i++)
        p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times a at isa: best and median ms of reps runs (one warm-up). */
static void time_conv(const kn_conv2d_args *a, kn_isa isa, int reps, double *best, double *med)
{
    size_t sf = kn_conv2d_scratch_floats(a, g_pool ? kn_threadpool_size(g_pool) : 1);
    float *scratch = sf && sf != SIZE_MAX ? filled((int64_t)sf) : NULL;
    double *t = calloc((size_t)reps, sizeof *t);
    kn_conv2d_run(g_pool, isa, a, scratch, sf);
    for (int r = 0; r < reps; r++) {
        double t0 = thread_ms();
        kn_conv2d_run(g_pool, isa, a, scratch, sf);
        t[r] = thread_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *best = t[0];
    *med = t[reps / 2];
    free(t);
    free(scratch);
}

/* The layer on the NCHWc path: blocked x / y, packed weights, best and median ms;
 * with stem, the stem kernel: x NCHW, y blocked. */
static void time_nchwc(const layer *l, const kn_nchwc_conv *g, kn_isa isa, int reps, int stem,
                       int wino, double *best, double *med)
{
    int64_t cp = stem ? l->C : kn_nchwc_padded(l->C), mp = kn_nchwc_padded(l->M);
    float *x = filled(l->batch * cp * l->ih * l->iw), *w = filled(l->M * l->C * l->k * l->k);
    float *b = filled(l->M), *y = filled(l->batch * mp * g->oh * g->ow);
    kn_nchwc_weights *pw = stem ? kn_nchwc_stem_pack(g, w, b) : kn_nchwc_pack(g, w, b);
    if (wino)
        kn_nchwc_add_winograd(pw, w);
    void (*run)(kn_threadpool *, kn_isa, const kn_nchwc_conv_args *) =
        stem ? kn_nchwc_stem_run : kn_nchwc_conv_run;
    kn_nchwc_conv_args a = {g, pw, x, NULL, {l->act, 0.0f, 6.0f}, y};
    double *t = calloc((size_t)reps, sizeof *t);
    run(g_pool, isa, &a);
    for (int r = 0; r < reps; r++) {
        double t0 = thread_ms();
        run(g_pool, isa, &a);
        t[r] = thread_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *best = t[0];
    *med = t[reps / 2];
    free(t);
    kn_nchwc_weights_free(pw);
    free(x), free(w), free(b), free(y);
}

/* The "nchwc" line of the group-1 ResNet-50 and MobileNetV2 layers, and for
 * their stems (under 16 input channels) the "nchwc-stem" line. */
static void bench_nchwc(const layer *l, kn_isa isa, int reps, int64_t oh, int64_t ow)
{
    if (l->group != 1 || (strncmp(l->name, "r50", 3) && strncmp(l->name, "mnv2", 4)))
        return;
    kn_nchwc_conv g = {l->batch, l->C, l->M, 1, l->ih, l->iw, oh, ow,
                       l->k, l->k, l->s, l->s, 1, 1, l->pad, l->pad};
    double best, med, macs = (double)l->batch * l->M * oh * ow * l->C * l->k * l->k;
    for (int stem = 0; stem <= (l->C < 16); stem++) {
        time_nchwc(l, &g, isa, reps, stem, 0, &best, &med);
        printf("%-32s %-10s best %8.3f ms  median %8.3f ms  %6.1f GFLOP/s\n", "",
               stem ? "nchwc-stem" : "nchwc", best, med, 2e-6 * macs / best);
    }
    if (kn_nchwc_wino_takes(&g) && isa >= KN_ISA_AVX512) {
        time_nchwc(l, &g, isa, reps, 0, 1, &best, &med);
        printf("%-32s %-10s best %8.3f ms  median %8.3f ms  %6.1f GFLOP/s\n", "", "nchwc-wino",
               best, med, 2e-6 * macs / best);
    }
}

static const char *algo_name(kn_conv_algo algo)
{
    static const char *names[] = {"depthwise", "pointwise", "im2col", "direct", "winograd"};
    return names[algo];
}

static void bench_layer(const layer *l, kn_isa isa, int reps)
{
    int64_t cg = l->C / l->group, mg = l->M / l->group, K = cg * l->k * l->k;
    int64_t oh = (l->ih + 2 * l->pad - l->k) / l->s + 1, ow = (l->iw + 2 * l->pad - l->k) / l->s + 1;
    kn_conv2d_geom g = {cg, l->ih, l->iw, oh, ow, l->k, l->k, l->s, l->s, 1, 1, l->pad, l->pad};
    kn_conv_act act = {l->act, 0.0f, 6.0f};
    float *x = filled(l->batch * l->C * l->ih * l->iw), *w = filled(l->M * K);
    float *b = filled(l->M), *y = filled(l->batch * l->M * oh * ow);
    kn_packed_a **pa = calloc((size_t)l->group, sizeof *pa);
    for (int64_t gi = 0; gi < l->group; gi++)
        pa[gi] = kn_sgemm_pack_a_isa(isa, 0, (size_t)mg, (size_t)K, w + gi * mg * K, (size_t)K);
    kn_wino_weights *ww = kn_wino_weights_ok(l->group, cg, l->M, l->k, l->k)
                              ? kn_wino_pack(isa, w, l->M, cg) : NULL;
    kn_conv2d_args a = {g, l->batch, l->group, l->M, x, w, b, NULL, pa, act, y, ww};
    double macs = (double)l->batch * l->M * oh * ow * K, best, med;
    kn_conv_algo algo = kn_conv2d_algo(&a);
    time_conv(&a, isa, reps, &best, &med);
    printf("%-32s %-10s best %8.3f ms  median %8.3f ms  %6.1f GFLOP/s\n", l->name,
           algo_name(algo), best, med, 2e-6 * macs / best);
    if (algo == KN_CONV_ALGO_DIRECT || algo == KN_CONV_ALGO_WINOGRAD) {
        a.w = NULL;
        a.wino = NULL;
        time_conv(&a, isa, reps, &best, &med);
        printf("%-32s %-10s best %8.3f ms  median %8.3f ms  %6.1f GFLOP/s\n", "", "im2col",
               best, med, 2e-6 * macs / best);
    }
    bench_nchwc(l, isa, reps, oh, ow);
    for (int64_t gi = 0; gi < l->group; gi++)
        kn_packed_a_free(pa[gi]);
    free(pa);
    kn_wino_free(ww);
    free(x);
    free(w);
    free(b);
    free(y);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    kn_isa isa = kn_cpu_isa();
    if (argc > 2)
        isa = !strcmp(argv[2], "generic") ? KN_ISA_GENERIC
              : !strcmp(argv[2], "avx2")  ? KN_ISA_AVX2
                                          : KN_ISA_AVX512;
    if (reps < 1)
        reps = 1;
    setenv("KILN_CONV_WINOGRAD", "1", 0); /* time Winograd wherever it applies */
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    kn_error err = {0};
    g_pool = threads > 1 ? kn_threadpool_create(threads, &err) : NULL;
    printf("conv_bench: %s, %d runs, %s\n", kn_isa_name(isa), reps,
           g_pool ? "wall time" : "thread CPU time");
    for (size_t i = 0; i < sizeof k_layers / sizeof k_layers[0]; i++)
        if (argc <= 3 || strstr(k_layers[i].name, argv[3]))
            bench_layer(&k_layers[i], isa, reps);
    kn_threadpool_free(g_pool);
    return 0;
}
