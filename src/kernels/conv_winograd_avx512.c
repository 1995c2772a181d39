/* conv_winograd_avx512.c - AVX-512 row-run kernels of the Winograd F(2x2, 3x3)
 * transforms (conv_winograd.c; contract in conv_kernels.h), 16 tiles of one
 * tile row per vector: the input kernel loads each of the 4 input rows as two
 * pairs of vectors (at the tile start and 2 further), splits them into even and
 * odd columns (the 4 columns of 16 tiles) and writes B^T d B as 16 vectors; the
 * output kernel reads the 16 M vectors, forms A^T M A, interleaves the two
 * output columns of each tile and adds bias / residual, clamps and stores.
 * Opmask loads and stores cover the image's right edge and the run's tail.
 * Per-function target attributes keep the rest of the build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_INLINE __attribute__((always_inline)) inline

/* Lanes [0, left) set, at most 16. */
static __mmask16 lanes(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
}

/* 16 floats of row at [col, col + 16), zero at columns >= iw (row NULL: zeros). */
KN_AVX512 static KN_INLINE __m512 load_cols(const float *row, int64_t col, int64_t iw)
{
    if (!row)
        return _mm512_setzero_ps();
    __mmask16 m = lanes(iw - col);
    return _mm512_maskz_loadu_ps(m, row + (m ? col : 0));
}

/* The 4 columns c = 0..3 of 16 tiles in one input row: d[c][k] = row[ix + 2k + c]. */
KN_AVX512 static KN_INLINE void tile_row(const float *row, int64_t ix, int64_t iw, __m512 d[4])
{
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 a = load_cols(row, ix, iw), b = load_cols(row, ix + 16, iw);
    __m512 c = load_cols(row, ix + 2, iw), e = load_cols(row, ix + 18, iw);
    d[0] = _mm512_permutex2var_ps(a, even, b);
    d[1] = _mm512_permutex2var_ps(a, odd, b);
    d[2] = _mm512_permutex2var_ps(c, even, e);
    d[3] = _mm512_permutex2var_ps(c, odd, e);
}

/* x0 - x2, x1 + x2, x2 - x1, x1 - x3: one direction of B^T d B. */
KN_AVX512 static KN_INLINE void bt4(__m512 x0, __m512 x1, __m512 x2, __m512 x3, __m512 o[4])
{
    o[0] = _mm512_sub_ps(x0, x2);
    o[1] = _mm512_add_ps(x1, x2);
    o[2] = _mm512_sub_ps(x2, x1);
    o[3] = _mm512_sub_ps(x1, x3);
}

KN_AVX512 static void input_avx512(const kn_wino_in_run *r)
{
    for (int64_t k = 0; k < r->n; k += 16) {
        __mmask16 m = lanes(r->n - k);
        int64_t ix = r->ix0 + 2 * k;
        __m512 d[4][4], t[4][4], v[4];
        for (int y = 0; y < 4; y++)
            tile_row(r->rows[y], ix, r->iw, d[y]);
        for (int c = 0; c < 4; c++) { /* B^T d: combine the rows */
            __m512 o[4];
            bt4(d[0][c], d[1][c], d[2][c], d[3][c], o);
            for (int y = 0; y < 4; y++)
                t[y][c] = o[y];
        }
        for (int y = 0; y < 4; y++) { /* (B^T d) B: combine the columns */
            bt4(t[y][0], t[y][1], t[y][2], t[y][3], v);
            for (int c = 0; c < 4; c++)
                _mm512_mask_storeu_ps(r->v + (4 * y + c) * r->vs + k, m, v[c]);
        }
    }
}

/* Stores row (outputs of columns 2k.. of 16 tiles, as two vectors of the even and
 * odd columns) + bias + z, clamped, at y[col0 ..) below cols. */
KN_AVX512 static KN_INLINE void store_row(const kn_wino_out_run *r, int y, int64_t col0, __m512 ev,
                                          __m512 od)
{
    const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi_idx =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    __m512 half[2] = {_mm512_permutex2var_ps(ev, lo_idx, od),
                      _mm512_permutex2var_ps(ev, hi_idx, od)};
    __m512 bias = _mm512_set1_ps(r->bias), lo = _mm512_set1_ps(r->lo), hi = _mm512_set1_ps(r->hi);
    for (int h = 0; h < 2; h++) {
        int64_t col = col0 + 16 * h;
        __mmask16 m = lanes(r->cols - col);
        if (!m)
            return;
        __m512 s = _mm512_add_ps(half[h], bias);
        if (r->z[y])
            s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, r->z[y] + col));
        s = _mm512_min_ps(hi, _mm512_max_ps(lo, s)); /* NaN stays NaN */
        _mm512_mask_storeu_ps(r->y[y] + col, m, s);
    }
}

KN_AVX512 static void output_avx512(const kn_wino_out_run *r)
{
    for (int64_t k = 0; k < r->n; k += 16) {
        __mmask16 m = lanes(r->n - k);
        __m512 t[2][4];
        for (int c = 0; c < 4; c++) { /* A^T M: rows 0+1+2 and 1-2-3 */
            __m512 m0 = _mm512_maskz_loadu_ps(m, r->m + c * r->ms + k);
            __m512 m1 = _mm512_maskz_loadu_ps(m, r->m + (4 + c) * r->ms + k);
            __m512 m2 = _mm512_maskz_loadu_ps(m, r->m + (8 + c) * r->ms + k);
            __m512 m3 = _mm512_maskz_loadu_ps(m, r->m + (12 + c) * r->ms + k);
            t[0][c] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            t[1][c] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        for (int y = 0; y < 2 && r->y[y]; y++) { /* (A^T M) A: columns likewise */
            __m512 ev = _mm512_add_ps(_mm512_add_ps(t[y][0], t[y][1]), t[y][2]);
            __m512 od = _mm512_sub_ps(_mm512_sub_ps(t[y][1], t[y][2]), t[y][3]);
            store_row(r, y, 2 * k, ev, od);
        }
    }
}

kn_wino_in_fn kn_wino_input_avx512(void) { return input_avx512; }
kn_wino_out_fn kn_wino_output_avx512(void) { return output_avx512; }

#else

kn_wino_in_fn kn_wino_input_avx512(void) { return NULL; }
kn_wino_out_fn kn_wino_output_avx512(void) { return NULL; }

#endif
