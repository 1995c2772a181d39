/* sgemm_avx2.c - AVX2 + FMA microkernel: 6 x 16 tile (12 ymm accumulators),
 * masked loads/stores for column tails, epilogue inlined, B prefetched ahead.
 * Compiled with per-function target attributes so the rest of the build stays
 * baseline x86-64. */
#include "kernels/sgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX2 __attribute__((target("avx2,fma")))
#define KN_INLINE inline __attribute__((always_inline))

enum { AMR = 6, ANR = 16 };

KN_AVX2 static __m256i tail_mask(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

KN_AVX2 static KN_INLINE __m256 finish8(__m256 x, const kn_ukr_epi *e, float *c, const float *bias,
                              const float *rbias, const float *res, __m256i mask)
{
    if (e->alpha != 1.0f) x = _mm256_mul_ps(x, _mm256_set1_ps(e->alpha));
    if (!e->first) x = _mm256_add_ps(x, _mm256_maskload_ps(c, mask));
    if (e->last) {
        if (bias) x = _mm256_add_ps(x, _mm256_maskload_ps(bias, mask));
        if (rbias) x = _mm256_add_ps(x, _mm256_set1_ps(*rbias));
        if (res) x = _mm256_add_ps(x, _mm256_maskload_ps(res, mask));
        if (e->clamp) {
            x = _mm256_max_ps(_mm256_set1_ps(e->lo), x);
            x = _mm256_min_ps(_mm256_set1_ps(e->hi), x);
        }
    }
    return x;
}

KN_AVX2 static KN_INLINE void store_row(__m256 x0, __m256 x1, int i, float *c, size_t ldc, int n,
                              const kn_ukr_epi *e)
{
    float *row = c + (size_t)i * ldc;
    const float *res = e->res ? e->res + (size_t)i * e->ldr : NULL;
    const float *bias = e->bias, *rbias = e->row_bias ? e->row_bias + i : NULL;
    __m256i m0 = tail_mask(n), m1 = tail_mask(n - 8);
    x0 = finish8(x0, e, row, bias, rbias, res, m0);
    _mm256_maskstore_ps(row, m0, x0);
    if (n > 8) {
        x1 = finish8(x1, e, row + 8, bias ? bias + 8 : NULL, rbias, res ? res + 8 : NULL, m1);
        _mm256_maskstore_ps(row + 8, m1, x1);
    }
}

KN_AVX2 static void ukr_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                             int m, int n, const kn_ukr_epi *e)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (size_t k = 0; k < kc; k++, a += AMR, b += KN_SGEMM_PANEL) {
        _mm_prefetch((const char *)(b + 8 * KN_SGEMM_PANEL), _MM_HINT_T0);
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 av = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    store_row(c00, c01, 0, c, ldc, n, e);
    if (m > 1) store_row(c10, c11, 1, c, ldc, n, e);
    if (m > 2) store_row(c20, c21, 2, c, ldc, n, e);
    if (m > 3) store_row(c30, c31, 3, c, ldc, n, e);
    if (m > 4) store_row(c40, c41, 4, c, ldc, n, e);
    if (m > 5) store_row(c50, c51, 5, c, ldc, n, e);
}

static const kn_sgemm_kernel k_avx2 = {AMR, ANR, ukr_avx2, NULL};

const kn_sgemm_kernel *kn_sgemm_kernel_avx2(void) { return &k_avx2; }

#else

const kn_sgemm_kernel *kn_sgemm_kernel_avx2(void) { return NULL; }

#endif
