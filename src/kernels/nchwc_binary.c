/* nchwc_binary.c - Add and Mul on blocked tensors (kernels/nchwc.h): two images
 * of one shape, or an image and one 16-vector per channel block (a
 * squeeze-excitation gate).  A plain loop and an AVX-512 one, over the pool by
 * channel planes. */
#include "kernels/nchwc.h"

#include "exec/threadpool.h"

/* Floats of output per task, about. */
#define BINARY_GRAIN_FLOATS 16384

typedef struct binary_job {
    const float *a, *b;
    float *y;
    int64_t hw;
    int per_pixel, mul;
} binary_job;

typedef void (*plane_fn)(const binary_job *j, int64_t q);

/* Plane q, plain C. */
static void plane_generic(const binary_job *j, int64_t q)
{
    int64_t plane = j->hw * KN_NCHWC_BLOCK;
    const float *a = j->a + q * plane, *b = j->b + q * (j->per_pixel ? plane : KN_NCHWC_BLOCK);
    float *y = j->y + q * plane;
    for (int64_t i = 0; i < plane; i++) {
        float bv = b[j->per_pixel ? i : i % KN_NCHWC_BLOCK];
        y[i] = j->mul ? a[i] * bv : a[i] + bv;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* Plane q, one vector per pixel. */
KN_AVX512 static void plane_avx512(const binary_job *j, int64_t q)
{
    int64_t plane = j->hw * KN_NCHWC_BLOCK;
    const float *a = j->a + q * plane, *b = j->b + q * (j->per_pixel ? plane : KN_NCHWC_BLOCK);
    float *y = j->y + q * plane;
    __m512 gate = _mm512_loadu_ps(b);
    for (int64_t p = 0; p < j->hw; p++) {
        __m512 av = _mm512_loadu_ps(a + p * KN_NCHWC_BLOCK);
        __m512 bv = j->per_pixel ? _mm512_loadu_ps(b + p * KN_NCHWC_BLOCK) : gate;
        _mm512_storeu_ps(y + p * KN_NCHWC_BLOCK,
                         j->mul ? _mm512_mul_ps(av, bv) : _mm512_add_ps(av, bv));
    }
}
#define HAVE_AVX512 1
#endif

typedef struct binary_task {
    binary_job job;
    plane_fn fn;
} binary_task;

static void binary_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const binary_task *t = ctx;
    (void)thread_index;
    for (int64_t q = begin; q < end; q++)
        t->fn(&t->job, q);
    kn_cpu_clear_upper();
}

void kn_nchwc_binary(struct kn_threadpool *pool, kn_isa isa, const float *a, const float *b,
                     float *y, int64_t planes, int64_t hw, int per_pixel, int mul)
{
    binary_task t = {{a, b, y, hw, per_pixel, mul}, plane_generic};
#ifdef HAVE_AVX512
    isa = kn_cpu_isa_cap(isa);
    if (isa >= KN_ISA_AVX512)
        t.fn = plane_avx512;
#else
    (void)isa;
#endif
    int64_t grain = 1 + BINARY_GRAIN_FLOATS / (hw * KN_NCHWC_BLOCK + 1);
    kn_parallel_for(pool, planes, grain, binary_planes, &t);
}
