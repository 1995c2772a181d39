/* conv_pointwise_avx512.c - AVX-512 tile of the unpacked pointwise conv
 * (conv_pointwise.c): 14 output channels (one micro-panel of the GEMM's packed
 * weights) x up to 32 pixels, 28 zmm accumulators over all of K, the input
 * rows read where they lie (no B packing), bias / residual / clamp in the
 * epilogue, opmask loads and stores for the pixel tail.  Per-function target
 * attributes keep the rest of the build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_INLINE __attribute__((always_inline)) inline

enum { PW_MR = 14 };

static __mmask16 mask_of(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
}

KN_AVX512 static KN_INLINE void pw_store(const kn_pw_tile *t, int i, int64_t col, __mmask16 m,
                                         __m512 acc)
{
    if (t->bias)
        acc = _mm512_add_ps(acc, _mm512_set1_ps(t->bias[i]));
    if (t->z)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, t->z + i * t->ldy + col));
    if (t->clamp) /* max/min return the second operand for NaN: NaN stays NaN */
        acc = _mm512_min_ps(_mm512_set1_ps(t->hi), _mm512_max_ps(_mm512_set1_ps(t->lo), acc));
    _mm512_mask_storeu_ps(t->y + i * t->ldy + col, m, acc);
}

/* The tile with V vectors of 16 columns (masks m0, m1). */
KN_AVX512 static KN_INLINE void pw_tile_v(const kn_pw_tile *t, __mmask16 m0, __mmask16 m1,
                                          const int V)
{
    __m512 acc[PW_MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < PW_MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const float *a = t->a, *x = t->x;
    for (int64_t k = 0; k < t->K; k++, a += PW_MR, x += t->ldx) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, x);
        __m512 b1 = V > 1 ? _mm512_maskz_loadu_ps(m1, x + 16) : b0;
#pragma GCC unroll 14
        for (int i = 0; i < PW_MR; i++) {
            __m512 w = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(w, b0, acc[i][0]);
            if (V > 1)
                acc[i][1] = _mm512_fmadd_ps(w, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 14
    for (int i = 0; i < PW_MR; i++) {
        if (i >= t->m)
            break;
        pw_store(t, i, 0, m0, acc[i][0]);
        if (V > 1)
            pw_store(t, i, 16, m1, acc[i][1]);
    }
}

KN_AVX512 static void pw_tile_avx512(const kn_pw_tile *t)
{
    if (t->n > 16)
        pw_tile_v(t, 0xFFFF, mask_of(t->n - 16), 2);
    else
        pw_tile_v(t, mask_of(t->n), 0, 1);
}

int kn_pw_tile_rows_avx512(void) { return PW_MR; }
kn_pw_tile_fn kn_pw_tile_avx512(void) { return pw_tile_avx512; }

#else

int kn_pw_tile_rows_avx512(void) { return 0; }
kn_pw_tile_fn kn_pw_tile_avx512(void) { return NULL; }

#endif
