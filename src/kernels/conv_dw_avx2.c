/* conv_dw_avx2.c - AVX2 + FMA row kernel of the depthwise conv (conv_dw.c): two
 * 8-float output vectors per step, weights broadcast per tap, a masked tail; and
 * the stride-2 deinterleave of its padded copy.
 * Per-function target attributes keep the rest of the build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX2 __attribute__((target("avx2,fma")))

KN_AVX2 static __m256i tail_mask(int64_t left)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left > 8 ? 8 : left)), idx);
}

KN_AVX2 static __m256 finish(__m256 acc, const float *z, __m256i m, int clamp, __m256 lo,
                             __m256 hi)
{
    if (z)
        acc = _mm256_add_ps(acc, _mm256_maskload_ps(z, m));
    if (clamp) /* max/min return the second operand for NaN: NaN stays NaN */
        acc = _mm256_min_ps(hi, _mm256_max_ps(lo, acc));
    return acc;
}

KN_AVX2 static void dw_row_avx2(const kn_dw_rows *r)
{
    __m256 vb = _mm256_set1_ps(r->bias), vlo = _mm256_set1_ps(r->lo), vhi = _mm256_set1_ps(r->hi);
    __m256i all = _mm256_set1_epi32(-1);
    const int64_t *toff = r->toff;
    const float *tw = r->tw;
    int64_t ow = r->ow;
    for (int64_t i = 0; i < r->rows; i++) {
        const float *src = r->src + i * r->src_stride, *z = r->z ? r->z + i * ow : NULL;
        float *y = r->y + i * ow;
        int64_t ox = 0;
        for (; ox + 16 <= ow; ox += 16) {
            __m256 a0 = vb, a1 = vb;
            for (int t = 0; t < r->ntaps; t++) {
                const float *s = src + toff[t] + ox;
                __m256 w = _mm256_broadcast_ss(tw + t);
                a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(s), a0);
                a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(s + 8), a1);
            }
            _mm256_storeu_ps(y + ox, finish(a0, z ? z + ox : NULL, all, r->clamp, vlo, vhi));
            _mm256_storeu_ps(y + ox + 8, finish(a1, z ? z + ox + 8 : NULL, all, r->clamp, vlo, vhi));
        }
        for (; ox < ow; ox += 8) {
            __m256i m = tail_mask(ow - ox);
            __m256 a0 = vb;
            for (int t = 0; t < r->ntaps; t++)
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(tw + t),
                                     _mm256_maskload_ps(src + toff[t] + ox, m), a0);
            _mm256_maskstore_ps(y + ox, m, finish(a0, z ? z + ox : NULL, m, r->clamp, vlo, vhi));
        }
    }
}

KN_AVX2 static int64_t split2_avx2(const float *src, int64_t pairs, float *even, float *odd)
{
    int64_t j = 0;
    for (; j + 8 <= pairs; j += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * j), b = _mm256_loadu_ps(src + 2 * j + 8);
        /* per 128-bit lane [a0 a2 b0 b2 | a4 a6 b4 b6], then the 64-bit pieces in order */
        __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(even + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e),
                                                                          _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(odd + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o),
                                                                         _MM_SHUFFLE(3, 1, 2, 0))));
    }
    return j;
}

kn_dw_row_fn kn_dw_row_avx2(void) { return dw_row_avx2; }
kn_dw_split2_fn kn_dw_split2_avx2(void) { return split2_avx2; }

#else

kn_dw_row_fn kn_dw_row_avx2(void) { return NULL; }
kn_dw_split2_fn kn_dw_split2_avx2(void) { return NULL; }

#endif
