/* dynquant.c - dynamic uint8 quantization of float tensors (dynquant.h): the plain C
 * references, their AVX-512 versions (per-function target attributes; the build
 * stays baseline x86-64) and the threaded whole-tensor driver. */
#include "kernels/dynquant.h"

#include <math.h>

#include "exec/threadpool.h"

/* ---- plain C ---- */

void kn_dynq_minmax_ref(const float *x, size_t n, float *lo, float *hi)
{
    float l = *lo, h = *hi;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < l)
            l = x[i];
        if (x[i] > h)
            h = x[i];
    }
    *lo = l;
    *hi = h;
}

/* Round half to even, NaN -> 0, saturate into [lo, hi]. */
static int32_t rne_saturate(float v, int32_t lo, int32_t hi)
{
    if (isnan(v))
        return 0;
    float r = rintf(v);
    if (r <= (float)lo)
        return lo;
    if (r >= (float)hi)
        return hi;
    return (int32_t)r;
}

void kn_dynq_params(float lo, float hi, float *scale, uint8_t *zero)
{
    float s = (hi - lo) / 255.0f;
    *scale = s;
    *zero = 0;
    if (s != 0.0f && isfinite(s))
        *zero = (uint8_t)rne_saturate(0.0f - lo / s, 0, 255);
}

void kn_dynq_quantize_ref(const float *x, size_t n, float scale, uint8_t zero, uint8_t *q)
{
    for (size_t i = 0; i < n; i++) {
        int32_t v = zero;
        if (scale != 0.0f)
            v = rne_saturate(x[i] / scale, -1024, 1024) + zero;
        q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* ---- AVX-512 ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline __mmask16 tail_mask(size_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* min_ps(x, acc) returns acc when x is NaN, like the reference's comparisons;
 * masked-off tail lanes load 0, which is inside the range already. */
KN_AVX512 static void minmax_avx512(const float *x, size_t n, float *lo, float *hi)
{
    __m512 l = _mm512_set1_ps(*lo), h = _mm512_set1_ps(*hi);
    __m512 l2 = l, h2 = h;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        l = _mm512_min_ps(a, l);
        h = _mm512_max_ps(a, h);
        l2 = _mm512_min_ps(b, l2);
        h2 = _mm512_max_ps(b, h2);
    }
    for (; i < n; i += 16) {
        __m512 a = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        l = _mm512_min_ps(a, l);
        h = _mm512_max_ps(a, h);
    }
    *lo = _mm512_reduce_min_ps(_mm512_min_ps(l, l2));
    *hi = _mm512_reduce_max_ps(_mm512_max_ps(h, h2));
}

KN_AVX512 static inline __m512i quantize16(__m512 x, __m512 s, __m512 z)
{
    __m512 r = _mm512_roundscale_ps(_mm512_div_ps(x, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, r, _CMP_ORD_Q), r); /* NaN -> 0 */
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-1024.0f)), _mm512_set1_ps(1024.0f));
    r = _mm512_add_ps(r, z);
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
    return _mm512_cvtps_epi32(r);
}

KN_AVX512 static void quantize_avx512(const float *x, size_t n, float scale, uint8_t zero, uint8_t *q)
{
    __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps((float)zero);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(quantize16(_mm512_loadu_ps(x + i), s, z)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, m, quantize16(_mm512_maskz_loadu_ps(m, x + i), s, z));
    }
}
#else
#define HAVE_AVX512_PATH 0
#endif

static int use_avx512(kn_isa isa)
{
    return HAVE_AVX512_PATH && isa >= KN_ISA_AVX512 && kn_cpu_isa_supported() >= KN_ISA_AVX512;
}

void kn_dynq_minmax_isa(kn_isa isa, const float *x, size_t n, float *lo, float *hi)
{
#if HAVE_AVX512_PATH
    if (use_avx512(isa)) {
        minmax_avx512(x, n, lo, hi);
        kn_cpu_clear_upper();
        return;
    }
#endif
    kn_dynq_minmax_ref(x, n, lo, hi);
}

void kn_dynq_quantize_isa(kn_isa isa, const float *x, size_t n, float scale, uint8_t zero, uint8_t *q)
{
#if HAVE_AVX512_PATH
    if (use_avx512(isa) && scale != 0.0f) {
        quantize_avx512(x, n, scale, zero, q);
        kn_cpu_clear_upper();
        return;
    }
#endif
    kn_dynq_quantize_ref(x, n, scale, zero, q);
}

/* ---- threaded driver ---- */

enum { CHUNK = 16384, MAX_CHUNKS = 64 };

typedef struct dynq_job {
    const float *x;
    size_t n, chunk;
    uint8_t *q;
    float scale;
    uint8_t zero;
    kn_isa isa;
    float lo[MAX_CHUNKS], hi[MAX_CHUNKS];
} dynq_job;

static size_t chunk_len(const dynq_job *j, int64_t c)
{
    size_t b = (size_t)c * j->chunk;
    return j->n - b < j->chunk ? j->n - b : j->chunk;
}

static void minmax_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    dynq_job *j = ctx;
    (void)thread_index;
    for (int64_t c = begin; c < end; c++) {
        j->lo[c] = j->hi[c] = 0.0f;
        kn_dynq_minmax_isa(j->isa, j->x + (size_t)c * j->chunk, chunk_len(j, c), &j->lo[c], &j->hi[c]);
    }
}

static void quantize_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    dynq_job *j = ctx;
    (void)thread_index;
    for (int64_t c = begin; c < end; c++) {
        size_t b = (size_t)c * j->chunk;
        kn_dynq_quantize_isa(j->isa, j->x + b, chunk_len(j, c), j->scale, j->zero, j->q + b);
    }
}

void kn_dynq_tensor(struct kn_threadpool *pool, const float *x, size_t n, uint8_t *q, float *scale,
                    uint8_t *zero)
{
    dynq_job j;
    j.x = x;
    j.n = n;
    j.q = q;
    j.isa = kn_cpu_isa();
    j.chunk = n / MAX_CHUNKS + 1 > CHUNK ? n / MAX_CHUNKS + 1 : CHUNK;
    int64_t chunks = n ? (int64_t)((n + j.chunk - 1) / j.chunk) : 0;
    kn_parallel_for(pool, chunks, 1, minmax_range, &j);
    float lo = 0.0f, hi = 0.0f;
    for (int64_t c = 0; c < chunks; c++) {
        lo = j.lo[c] < lo ? j.lo[c] : lo;
        hi = j.hi[c] > hi ? j.hi[c] : hi;
    }
    kn_dynq_params(lo, hi, &j.scale, &j.zero);
    kn_parallel_for(pool, chunks, 1, quantize_range, &j);
    *scale = j.scale;
    *zero = j.zero;
}
