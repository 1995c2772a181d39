/* conv_dw_avx512.c - AVX-512 row kernel of the depthwise conv (conv_dw.c): two
 * 16-float output vectors per step with every tap's weight broadcast, opmask
 * stores for the row tail; and the stride-2 deinterleave of its padded copy.  Per-function target attributes keep the rest of the
 * build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

KN_AVX512 static __m512 finish(__m512 acc, const float *z, __mmask16 m, int clamp, __m512 lo,
                               __m512 hi)
{
    if (z)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, z));
    if (clamp) /* max/min return the second operand for NaN: NaN stays NaN */
        acc = _mm512_min_ps(hi, _mm512_max_ps(lo, acc));
    return acc;
}

KN_AVX512 static void dw_row_avx512(const kn_dw_rows *r)
{
    __m512 vb = _mm512_set1_ps(r->bias), vlo = _mm512_set1_ps(r->lo), vhi = _mm512_set1_ps(r->hi);
    const int64_t *toff = r->toff;
    const float *tw = r->tw;
    int64_t ow = r->ow;
    for (int64_t i = 0; i < r->rows; i++) {
        const float *src = r->src + i * r->src_stride, *z = r->z ? r->z + i * ow : NULL;
        float *y = r->y + i * ow;
        int64_t ox = 0;
        for (; ox + 32 <= ow; ox += 32) {
            __m512 a0 = vb, a1 = vb;
            for (int t = 0; t < r->ntaps; t++) {
                const float *s = src + toff[t] + ox;
                __m512 w = _mm512_set1_ps(tw[t]);
                a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(s), a0);
                a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(s + 16), a1);
            }
            _mm512_storeu_ps(y + ox, finish(a0, z ? z + ox : NULL, 0xFFFF, r->clamp, vlo, vhi));
            _mm512_storeu_ps(y + ox + 16,
                             finish(a1, z ? z + ox + 16 : NULL, 0xFFFF, r->clamp, vlo, vhi));
        }
        for (; ox < ow; ox += 16) {
            int64_t left = ow - ox;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
            __m512 a0 = vb;
            for (int t = 0; t < r->ntaps; t++)
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(tw[t]),
                                     _mm512_maskz_loadu_ps(m, src + toff[t] + ox), a0);
            _mm512_mask_storeu_ps(y + ox, m, finish(a0, z ? z + ox : NULL, m, r->clamp, vlo, vhi));
        }
    }
}

KN_AVX512 static int64_t split2_avx512(const float *src, int64_t pairs, float *even, float *odd)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    int64_t j = 0;
    for (; j + 16 <= pairs; j += 16) {
        __m512 a = _mm512_loadu_ps(src + 2 * j), b = _mm512_loadu_ps(src + 2 * j + 16);
        _mm512_storeu_ps(even + j, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(odd + j, _mm512_permutex2var_ps(a, io, b));
    }
    return j;
}

kn_dw_row_fn kn_dw_row_avx512(void) { return dw_row_avx512; }
kn_dw_split2_fn kn_dw_split2_avx512(void) { return split2_avx512; }

#else

kn_dw_row_fn kn_dw_row_avx512(void) { return NULL; }
kn_dw_split2_fn kn_dw_split2_avx512(void) { return NULL; }

#endif
