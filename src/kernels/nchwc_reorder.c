/* nchwc_reorder.c - NCHW <-> blocked NCHWc16 reorders: plain loops, and an
 * AVX-512 version moving 16 channels x 16 pixels at a time through a register
 * transpose (opmask loads / stores for a pixel tail, zero vectors for the
 * padding channels on the way in; on the way out those are dropped).  The ISA
 * comes from kn_cpu_isa(); work splits over (image, block, pixel chunk). */
#include "kernels/nchwc.h"

#include <string.h>

#include "exec/threadpool.h"

/* pixels of one parallel task (a multiple of 16) */
#define REORDER_CHUNK 512

typedef struct reorder_job {
    const float *x;
    float *y;
    int64_t n, c, hw, cb, nchunks;
    int wide;
} reorder_job;

/* The task i's image-block index, its real channels and its pixel range. */
static void reorder_task(const reorder_job *j, int64_t i, int64_t *nb, int *real, int64_t *p0,
                         int64_t *p1)
{
    *nb = i / j->nchunks;
    int64_t r = j->c - *nb % j->cb * KN_NCHWC_BLOCK;
    *real = r < KN_NCHWC_BLOCK ? (int)r : KN_NCHWC_BLOCK;
    *p0 = i % j->nchunks * REORDER_CHUNK;
    *p1 = *p0 + REORDER_CHUNK < j->hw ? *p0 + REORDER_CHUNK : j->hw;
}

/* First channel row (NCHW) of image-block nb. */
static int64_t reorder_row0(const reorder_job *j, int64_t nb)
{
    return (nb / j->cb * j->c + nb % j->cb * KN_NCHWC_BLOCK) * j->hw;
}

static void from_nchw_plain(const reorder_job *j, int64_t nb, int real, int64_t p0, int64_t p1)
{
    const float *x = j->x + reorder_row0(j, nb);
    float *y = j->y + nb * j->hw * KN_NCHWC_BLOCK;
    for (int64_t p = p0; p < p1; p++)
        for (int l = 0; l < KN_NCHWC_BLOCK; l++)
            y[p * KN_NCHWC_BLOCK + l] = l < real ? x[l * j->hw + p] : 0.0f;
}

static void to_nchw_plain(const reorder_job *j, int64_t nb, int real, int64_t p0, int64_t p1)
{
    const float *x = j->x + nb * j->hw * KN_NCHWC_BLOCK;
    float *y = j->y + reorder_row0(j, nb);
    for (int l = 0; l < real; l++)
        for (int64_t p = p0; p < p1; p++)
            y[l * j->hw + p] = x[p * KN_NCHWC_BLOCK + l];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define REORDER_HAVE_AVX512 1
#define REORDER_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define REORDER_INLINE __attribute__((always_inline)) inline

/* r[i][k] -> r[k][i] for a 16 x 16 tile: pairs interleaved, then 4 x 4 groups
 * within the 128-bit lanes, then the lanes exchanged. */
REORDER_AVX512 static REORDER_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 16
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + j], lane k: rows 4g..4g+3 at column 4k + j */
#pragma GCC unroll 16
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
#pragma GCC unroll 16
    for (int jj = 0; jj < 4; jj++) {
        __m512 p = _mm512_shuffle_f32x4(u[jj], u[4 + jj], 0x44);
        __m512 q = _mm512_shuffle_f32x4(u[8 + jj], u[12 + jj], 0x44);
        __m512 p2 = _mm512_shuffle_f32x4(u[jj], u[4 + jj], 0xEE);
        __m512 q2 = _mm512_shuffle_f32x4(u[8 + jj], u[12 + jj], 0xEE);
        r[jj] = _mm512_shuffle_f32x4(p, q, 0x88);
        r[4 + jj] = _mm512_shuffle_f32x4(p, q, 0xDD);
        r[8 + jj] = _mm512_shuffle_f32x4(p2, q2, 0x88);
        r[12 + jj] = _mm512_shuffle_f32x4(p2, q2, 0xDD);
    }
}

static __mmask16 reorder_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

REORDER_AVX512 static void from_nchw_avx512(const reorder_job *j, int64_t nb, int real, int64_t p0,
                                            int64_t p1)
{
    const float *x = j->x + reorder_row0(j, nb);
    float *y = j->y + nb * j->hw * KN_NCHWC_BLOCK;
    for (int64_t p = p0; p < p1; p += 16) {
        int64_t cnt = p1 - p < 16 ? p1 - p : 16;
        __mmask16 m = reorder_mask(cnt);
        __m512 r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            r[i] = i < real ? _mm512_maskz_loadu_ps(m, x + (i * j->hw + p)) : _mm512_setzero_ps();
        transpose16(r);
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            if (k < cnt)
                _mm512_storeu_ps(y + (p + k) * KN_NCHWC_BLOCK, r[k]);
    }
}

REORDER_AVX512 static void to_nchw_avx512(const reorder_job *j, int64_t nb, int real, int64_t p0,
                                          int64_t p1)
{
    const float *x = j->x + nb * j->hw * KN_NCHWC_BLOCK;
    float *y = j->y + reorder_row0(j, nb);
    for (int64_t p = p0; p < p1; p += 16) {
        int64_t cnt = p1 - p < 16 ? p1 - p : 16;
        __mmask16 m = reorder_mask(cnt);
        __m512 r[16];
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            r[k] = k < cnt ? _mm512_loadu_ps(x + (p + k) * KN_NCHWC_BLOCK) : _mm512_setzero_ps();
        transpose16(r);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            if (i < real)
                _mm512_mask_storeu_ps(y + (i * j->hw + p), m, r[i]);
    }
}
#endif

typedef void (*reorder_fn)(const reorder_job *, int64_t, int, int64_t, int64_t);

typedef struct reorder_task_ctx {
    const reorder_job *j;
    reorder_fn fn;
} reorder_task_ctx;

static void reorder_tasks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const reorder_task_ctx *t = ctx;
    (void)thread_index;
    for (int64_t i = begin; i < end; i++) {
        int64_t nb, p0, p1;
        int real;
        reorder_task(t->j, i, &nb, &real, &p0, &p1);
        t->fn(t->j, nb, real, p0, p1);
    }
    if (t->j->wide)
        kn_cpu_clear_upper();
}

static void reorder_run(struct kn_threadpool *pool, reorder_job *j, reorder_fn plain,
                        reorder_fn wide)
{
    j->cb = kn_nchwc_padded(j->c) / KN_NCHWC_BLOCK;
    j->nchunks = (j->hw + REORDER_CHUNK - 1) / REORDER_CHUNK;
    j->wide = wide && kn_cpu_isa() >= KN_ISA_AVX512;
    reorder_task_ctx t = {j, j->wide ? wide : plain};
    kn_parallel_for(pool, j->n * j->cb * j->nchunks, 1, reorder_tasks, &t);
}

/* The job for either direction (x and y as the entry points name them). */
static void reorder(struct kn_threadpool *pool, const float *x, float *y, int64_t n, int64_t c,
                    int64_t hw, int to_nchw)
{
    reorder_job j = {.x = x, .y = y, .n = n, .c = c, .hw = hw};
    reorder_fn wide = NULL;
#ifdef REORDER_HAVE_AVX512
    wide = to_nchw ? to_nchw_avx512 : from_nchw_avx512;
#endif
    reorder_run(pool, &j, to_nchw ? to_nchw_plain : from_nchw_plain, wide);
}

void kn_nchwc_from_nchw(struct kn_threadpool *pool, const float *x, int64_t n, int64_t c,
                        int64_t hw, float *y)
{
    reorder(pool, x, y, n, c, hw, 0);
}

void kn_nchwc_to_nchw(struct kn_threadpool *pool, const float *x, int64_t n, int64_t c, int64_t hw,
                      float *y)
{
    reorder(pool, x, y, n, c, hw, 1);
}
