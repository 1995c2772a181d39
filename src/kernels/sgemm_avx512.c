/* sgemm_avx512.c - AVX-512 microkernel: 14 x 32 tile (28 zmm accumulators, two
 * B vectors, one broadcast), opmask loads/stores for column tails.  Compiled with
 * per-function target attributes so the rest of the build stays baseline x86-64. */
#include "kernels/sgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

#ifndef KN_AVX512_MR
#define KN_AVX512_MR 14 /* 12 or 14 rows */
#endif
enum { XMR = KN_AVX512_MR, XNR = 32 };

static __mmask16 mask_for(int n)
{
    if (n <= 0) return 0;
    if (n >= 16) return (__mmask16)0xFFFF;
    return (__mmask16)((1u << n) - 1u);
}

KN_AVX512 static __m512 finish16(__m512 x, const kn_ukr_epi *e, float *c, const float *bias,
                                 const float *rbias, const float *res, __mmask16 mask)
{
    x = _mm512_mul_ps(x, _mm512_set1_ps(e->alpha));
    if (!e->first) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, c));
    if (e->last) {
        if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, bias));
        if (rbias) x = _mm512_add_ps(x, _mm512_set1_ps(*rbias));
        if (res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, res));
        if (e->clamp) {
            x = _mm512_max_ps(_mm512_set1_ps(e->lo), x);
            x = _mm512_min_ps(_mm512_set1_ps(e->hi), x);
        }
    }
    return x;
}

KN_AVX512 static void store_row(__m512 x0, __m512 x1, int i, float *c, size_t ldc, int n,
                                const kn_ukr_epi *e)
{
    float *row = c + (size_t)i * ldc;
    const float *res = e->res ? e->res + (size_t)i * e->ldr : NULL;
    const float *bias = e->bias, *rbias = e->row_bias ? e->row_bias + i : NULL;
    __mmask16 m0 = mask_for(n), m1 = mask_for(n - 16);
    x0 = finish16(x0, e, row, bias, rbias, res, m0);
    _mm512_mask_storeu_ps(row, m0, x0);
    if (m1) {
        x1 = finish16(x1, e, row + 16, bias ? bias + 16 : NULL, rbias, res ? res + 16 : NULL,
                      m1);
        _mm512_mask_storeu_ps(row + 16, m1, x1);
    }
}

#define DECL(i) __m512 c##i##_0 = _mm512_setzero_ps(), c##i##_1 = _mm512_setzero_ps();
#define STEP(i)                                                                        \
    av = _mm512_set1_ps(a[i]);                                                         \
    c##i##_0 = _mm512_fmadd_ps(av, b0, c##i##_0);                                      \
    c##i##_1 = _mm512_fmadd_ps(av, b1, c##i##_1);
#define STORE(i)                                                                       \
    if (m > i) store_row(c##i##_0, c##i##_1, i, c, ldc, n, e);

KN_AVX512 static void ukr_avx512(size_t kc, const float *a, const float *b, float *c,
                                 size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6)
    DECL(7) DECL(8) DECL(9) DECL(10) DECL(11)
#if KN_AVX512_MR == 14
    DECL(12) DECL(13)
#endif
    for (int i = 0; i < m; i++) { /* C is touched only at the end: start fetching it now */
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++, a += XMR, b += KN_SGEMM_PANEL) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), av;
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6)
        STEP(7) STEP(8) STEP(9) STEP(10) STEP(11)
#if KN_AVX512_MR == 14
        STEP(12) STEP(13)
#endif
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6)
    STORE(7) STORE(8) STORE(9) STORE(10) STORE(11)
#if KN_AVX512_MR == 14
    STORE(12) STORE(13)
#endif
}

static const kn_sgemm_kernel k_avx512 = {XMR, XNR, ukr_avx512};

const kn_sgemm_kernel *kn_sgemm_kernel_avx512(void) { return &k_avx512; }

#else

const kn_sgemm_kernel *kn_sgemm_kernel_avx512(void) { return NULL; }

#endif
