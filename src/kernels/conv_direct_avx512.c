/* conv_direct_avx512.c - AVX-512 row kernel of the direct conv (conv_direct.c):
 * KN_DIRECT_CO (8) output channels x 32 output columns per step, sixteen
 * independent accumulators so the FMA latency is hidden, each input vector
 * loaded once for the eight channels; opmask loads and stores for the row tail.
 * Per-function target attributes keep the rest of the build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* Bias, residual, clamp and store of one 16-column vector of channel c. */
KN_AVX512 static void store_vec(const kn_direct_rows *r, int c, int64_t at, __mmask16 m,
                                __m512 acc)
{
    if (c >= r->nco)
        return;
    acc = _mm512_add_ps(acc, _mm512_set1_ps(r->bias[c]));
    if (r->z)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, r->z + c * r->plane + at));
    if (r->clamp) /* max/min return the second operand for NaN: NaN stays NaN */
        acc = _mm512_min_ps(_mm512_set1_ps(r->hi), _mm512_max_ps(_mm512_set1_ps(r->lo), acc));
    _mm512_mask_storeu_ps(r->y + c * r->plane + at, m, acc);
}

/* Columns [ox, ox + 16 V) of row i (the last vector masked by m), all
 * KN_DIRECT_CO channels: 8 V accumulators, each input vector loaded once for
 * the eight channels, each weight broadcast once for the V vectors. */
KN_AVX512 static inline __attribute__((always_inline)) void block(const int V,
                                                                const kn_direct_rows *r,
                                                                const float *src, int64_t i,
                                                                int64_t ox, __mmask16 m)
{
    const float *w = r->w;
    int64_t nt = r->ntaps;
    __m512 acc[KN_DIRECT_CO][2];
#pragma GCC unroll 8
    for (int c = 0; c < KN_DIRECT_CO; c++)
        acc[c][0] = acc[c][1] = _mm512_setzero_ps();
    for (int64_t t = 0; t < nt; t++) {
        const float *s = src + r->toff[t] + ox;
        __m512 v0 = V == 2 ? _mm512_loadu_ps(s) : _mm512_maskz_loadu_ps(m, s);
        __m512 v1 = V == 2 ? _mm512_maskz_loadu_ps(m, s + 16) : v0;
#pragma GCC unroll 8
        for (int c = 0; c < KN_DIRECT_CO; c++) {
            __m512 wc = _mm512_set1_ps(w[c * nt + t]);
            acc[c][0] = _mm512_fmadd_ps(wc, v0, acc[c][0]);
            if (V == 2)
                acc[c][1] = _mm512_fmadd_ps(wc, v1, acc[c][1]);
        }
    }
    int64_t at = i * r->ow + ox;
#pragma GCC unroll 8
    for (int c = 0; c < KN_DIRECT_CO; c++) {
        store_vec(r, c, at, V == 2 ? (__mmask16)0xFFFF : m, acc[c][0]);
        if (V == 2)
            store_vec(r, c, at + 16, m, acc[c][1]);
    }
}

KN_AVX512 static void direct_rows_avx512(const kn_direct_rows *r)
{
    for (int64_t i = 0; i < r->rows; i++) {
        const float *src = r->src + i * r->src_stride;
        int64_t ox = 0;
        for (; ox + 32 <= r->ow; ox += 32)
            block(2, r, src, i, ox, (__mmask16)0xFFFF);
        int64_t left = r->ow - ox;
        if (left > 16)
            block(2, r, src, i, ox, (__mmask16)((1u << (left - 16)) - 1u));
        else if (left > 0)
            block(1, r, src, i, ox, left == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u));
    }
}

kn_direct_row_fn kn_direct_row_avx512(void) { return direct_rows_avx512; }

#else

kn_direct_row_fn kn_direct_row_avx512(void) { return NULL; }

#endif
