/* conv_direct_avx512.c - AVX-512 row kernel of the direct conv (conv_direct.c):
 * KN_DIRECT_CO (4) output channels x 32 output columns per step, eight
 * independent accumulators so the FMA latency is hidden, each input vector
 * loaded once for the four channels; opmask loads and stores for the row tail.
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

/* Columns [ox, ox + 32) of row i, all four channels. */
KN_AVX512 static void block32(const kn_direct_rows *r, const float *src, int64_t i, int64_t ox)
{
    const float *w = r->w;
    int64_t nt = r->ntaps;
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
    __m512 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int64_t t = 0; t < nt; t++) {
        const float *s = src + r->toff[t] + ox;
        __m512 v0 = _mm512_loadu_ps(s), v1 = _mm512_loadu_ps(s + 16);
        __m512 w0 = _mm512_set1_ps(w[t]), w1 = _mm512_set1_ps(w[nt + t]);
        __m512 w2 = _mm512_set1_ps(w[2 * nt + t]), w3 = _mm512_set1_ps(w[3 * nt + t]);
        a00 = _mm512_fmadd_ps(w0, v0, a00);
        a01 = _mm512_fmadd_ps(w0, v1, a01);
        a10 = _mm512_fmadd_ps(w1, v0, a10);
        a11 = _mm512_fmadd_ps(w1, v1, a11);
        a20 = _mm512_fmadd_ps(w2, v0, a20);
        a21 = _mm512_fmadd_ps(w2, v1, a21);
        a30 = _mm512_fmadd_ps(w3, v0, a30);
        a31 = _mm512_fmadd_ps(w3, v1, a31);
    }
    int64_t at = i * r->ow + ox;
    __mmask16 all = (__mmask16)0xFFFF;
    store_vec(r, 0, at, all, a00);
    store_vec(r, 0, at + 16, all, a01);
    store_vec(r, 1, at, all, a10);
    store_vec(r, 1, at + 16, all, a11);
    store_vec(r, 2, at, all, a20);
    store_vec(r, 2, at + 16, all, a21);
    store_vec(r, 3, at, all, a30);
    store_vec(r, 3, at + 16, all, a31);
}

/* Columns [ox, ox + 16) of row i (masked by m), all four channels. */
KN_AVX512 static void block16(const kn_direct_rows *r, const float *src, int64_t i, int64_t ox,
                              __mmask16 m)
{
    const float *w = r->w;
    int64_t nt = r->ntaps;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t t = 0; t < nt; t++) {
        __m512 v = _mm512_maskz_loadu_ps(m, src + r->toff[t] + ox);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), v, a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(w[nt + t]), v, a1);
        a2 = _mm512_fmadd_ps(_mm512_set1_ps(w[2 * nt + t]), v, a2);
        a3 = _mm512_fmadd_ps(_mm512_set1_ps(w[3 * nt + t]), v, a3);
    }
    int64_t at = i * r->ow + ox;
    store_vec(r, 0, at, m, a0);
    store_vec(r, 1, at, m, a1);
    store_vec(r, 2, at, m, a2);
    store_vec(r, 3, at, m, a3);
}

KN_AVX512 static void direct_rows_avx512(const kn_direct_rows *r)
{
    for (int64_t i = 0; i < r->rows; i++) {
        const float *src = r->src + i * r->src_stride;
        int64_t ox = 0;
        for (; ox + 32 <= r->ow; ox += 32)
            block32(r, src, i, ox);
        for (; ox < r->ow; ox += 16) {
            int64_t left = r->ow - ox;
            block16(r, src, i, ox,
                    left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u));
        }
    }
}

kn_direct_row_fn kn_direct_row_avx512(void) { return direct_rows_avx512; }

#else

kn_direct_row_fn kn_direct_row_avx512(void) { return NULL; }

#endif
