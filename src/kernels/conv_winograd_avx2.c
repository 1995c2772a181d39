/* conv_winograd_avx2.c - AVX2 row-run kernels of the Winograd F(2x2, 3x3)
 * transforms (conv_winograd.c; contract in conv_kernels.h), 8 tiles of one tile
 * row per vector: the AVX-512 kernels' scheme (conv_winograd_avx512.c) at half
 * width, the even / odd column split done with an in-lane shuffle and a
 * cross-lane 64-bit permute, the output interleave with unpack and a 128-bit
 * lane permute; masked loads and stores cover the image edge and the run tail.
 * Per-function target attributes keep the rest of the build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX2 __attribute__((target("avx2,fma")))
#define KN_INLINE __attribute__((always_inline)) inline

/* Lane mask of lanes [0, left), left clamped to [0, 8]. */
KN_AVX2 static KN_INLINE __m256i lanes8(int64_t left)
{
    int l = left >= 8 ? 8 : left <= 0 ? 0 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* 8 floats of row at [col, col + 8), zero at columns >= iw (row NULL: zeros). */
KN_AVX2 static KN_INLINE __m256 load_cols8(const float *row, int64_t col, int64_t iw)
{
    if (!row || col >= iw)
        return _mm256_setzero_ps();
    return _mm256_maskload_ps(row + col, lanes8(iw - col));
}

/* Even (sel 0x88) or odd (sel 0xDD) elements of the 16 floats a, b, in order. */
#define SPLIT8(a, b, sel)                                                                     \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, sel)), 0xD8))

/* The 4 columns c = 0..3 of 8 tiles in one input row: d[c][k] = row[ix + 2k + c]. */
KN_AVX2 static KN_INLINE void tile_row8(const float *row, int64_t ix, int64_t iw, __m256 d[4])
{
    __m256 a = load_cols8(row, ix, iw), b = load_cols8(row, ix + 8, iw);
    __m256 c = load_cols8(row, ix + 2, iw), e = load_cols8(row, ix + 10, iw);
    d[0] = SPLIT8(a, b, 0x88);
    d[1] = SPLIT8(a, b, 0xDD);
    d[2] = SPLIT8(c, e, 0x88);
    d[3] = SPLIT8(c, e, 0xDD);
}

/* x0 - x2, x1 + x2, x2 - x1, x1 - x3: one direction of B^T d B. */
KN_AVX2 static KN_INLINE void bt4_8(__m256 x0, __m256 x1, __m256 x2, __m256 x3, __m256 o[4])
{
    o[0] = _mm256_sub_ps(x0, x2);
    o[1] = _mm256_add_ps(x1, x2);
    o[2] = _mm256_sub_ps(x2, x1);
    o[3] = _mm256_sub_ps(x1, x3);
}

KN_AVX2 static void input_avx2(const kn_wino_in_run *r)
{
    for (int64_t k = 0; k < r->n; k += 8) {
        __m256i m = lanes8(r->n - k);
        int64_t ix = r->ix0 + 2 * k;
        __m256 d[4][4], t[4][4], v[4];
        for (int y = 0; y < 4; y++)
            tile_row8(r->rows[y], ix, r->iw, d[y]);
        for (int c = 0; c < 4; c++) { /* B^T d: combine the rows */
            __m256 o[4];
            bt4_8(d[0][c], d[1][c], d[2][c], d[3][c], o);
            for (int y = 0; y < 4; y++)
                t[y][c] = o[y];
        }
        for (int y = 0; y < 4; y++) { /* (B^T d) B: combine the columns */
            bt4_8(t[y][0], t[y][1], t[y][2], t[y][3], v);
            for (int c = 0; c < 4; c++)
                _mm256_maskstore_ps(r->v + (4 * y + c) * r->vs + k, m, v[c]);
        }
    }
}

/* Stores row y (8 tiles' outputs as even and odd columns) + bias + z, clamped,
 * at y[col0 ..) below cols. */
KN_AVX2 static KN_INLINE void store_row8(const kn_wino_out_run *r, int y, int64_t col0, __m256 ev,
                                         __m256 od)
{
    __m256 lo8 = _mm256_unpacklo_ps(ev, od), hi8 = _mm256_unpackhi_ps(ev, od);
    __m256 half[2] = {_mm256_permute2f128_ps(lo8, hi8, 0x20),
                      _mm256_permute2f128_ps(lo8, hi8, 0x31)};
    __m256 bias = _mm256_set1_ps(r->bias), lo = _mm256_set1_ps(r->lo), hi = _mm256_set1_ps(r->hi);
    for (int h = 0; h < 2; h++) {
        int64_t col = col0 + 8 * h;
        if (col >= r->cols)
            return;
        __m256i m = lanes8(r->cols - col);
        __m256 s = _mm256_add_ps(half[h], bias);
        if (r->z[y])
            s = _mm256_add_ps(s, _mm256_maskload_ps(r->z[y] + col, m));
        s = _mm256_min_ps(hi, _mm256_max_ps(lo, s)); /* NaN stays NaN */
        _mm256_maskstore_ps(r->y[y] + col, m, s);
    }
}

KN_AVX2 static void output_avx2(const kn_wino_out_run *r)
{
    for (int64_t k = 0; k < r->n; k += 8) {
        __m256i m = lanes8(r->n - k);
        __m256 t[2][4];
        for (int c = 0; c < 4; c++) { /* A^T M: rows 0+1+2 and 1-2-3 */
            __m256 m0 = _mm256_maskload_ps(r->m + c * r->ms + k, m);
            __m256 m1 = _mm256_maskload_ps(r->m + (4 + c) * r->ms + k, m);
            __m256 m2 = _mm256_maskload_ps(r->m + (8 + c) * r->ms + k, m);
            __m256 m3 = _mm256_maskload_ps(r->m + (12 + c) * r->ms + k, m);
            t[0][c] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            t[1][c] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        for (int y = 0; y < 2 && r->y[y]; y++) { /* (A^T M) A: columns likewise */
            __m256 ev = _mm256_add_ps(_mm256_add_ps(t[y][0], t[y][1]), t[y][2]);
            __m256 od = _mm256_sub_ps(_mm256_sub_ps(t[y][1], t[y][2]), t[y][3]);
            store_row8(r, y, 2 * k, ev, od);
        }
    }
}

kn_wino_in_fn kn_wino_input_avx2(void) { return input_avx2; }
kn_wino_out_fn kn_wino_output_avx2(void) { return output_avx2; }

#else

kn_wino_in_fn kn_wino_input_avx2(void) { return NULL; }
kn_wino_out_fn kn_wino_output_avx2(void) { return NULL; }

#endif
