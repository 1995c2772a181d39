/* conv_dw_avx512.c - AVX-512 kernels of the depthwise conv (conv_dw.c):
 *   - in place (3x3 / 5x5, strides 1 or 2): the input plane read where it lies,
 *     padding masked out of the loads, stride 2 by an even-lane permute of two
 *     loads; 4 output rows per tile, each loaded vector serving every row it feeds;
 *   - on the padded copy: the row-blocked kernel (3x3 / 5x5, stride 1 or 2 along
 *     y) and the plain row kernel (any kernel: two 16-float vectors per step,
 *     opmask stores for the row tail);
 *   - the padded copy's helpers: the stride-2 deinterleave and the masked shift
 *     of a stride-1 row (also used by im2col).
 * Per-function target attributes keep the rest of the build baseline x86-64. */
#include "kernels/conv_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <stdint.h>

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
    if (j < pairs) { /* the last 1..15 pairs: masked loads of 2 * left floats, masked stores */
        int64_t left = pairs - j;
        __mmask16 m = (__mmask16)((1u << left) - 1u);
        __mmask16 ma = left >= 8 ? (__mmask16)0xFFFF : (__mmask16)((1u << (2 * left)) - 1u);
        __mmask16 mb = left > 8 ? (__mmask16)((1u << (2 * left - 16)) - 1u) : 0;
        __m512 a = _mm512_maskz_loadu_ps(ma, src + 2 * j);
        __m512 b = _mm512_maskz_loadu_ps(mb, src + 2 * j + 16);
        _mm512_mask_storeu_ps(even + j, m, _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(odd + j, m, _mm512_permutex2var_ps(a, io, b));
        j = pairs;
    }
    return j;
}

/* ---- row-blocked kernel: R output rows x V vectors of 16 columns per tile ---- */

#define KN_INLINE __attribute__((always_inline)) inline

/* Output rows [i0, i0 + R), columns [ox, ox + 16 * V) (masks m0, m1) of a K x K
 * kernel at stride S along y: input row j of the tile feeds output row r through
 * kernel row ky = j - r * S, so each loaded vector serves every row it reaches. */
KN_AVX512 static KN_INLINE void dw_tile(const kn_dw_rows *p, int64_t i0, int64_t ox,
                                        __mmask16 m0, __mmask16 m1, const int K, const int S,
                                        const int R, const int V)
{
    const float *src = p->src + i0 * p->src_stride + ox;
    __m512 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm512_set1_ps(p->bias);
#pragma GCC unroll 16
    for (int j = 0; j < (R - 1) * S + K; j++) {
#pragma GCC unroll 8
        for (int kx = 0; kx < K; kx++) {
            const float *s = src + j * p->rs + p->toff[kx];
            __m512 v0 = _mm512_maskz_loadu_ps(m0, s);
            __m512 v1 = V > 1 ? _mm512_maskz_loadu_ps(m1, s + 16) : v0;
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int ky = j - r * S;
                if (ky < 0 || ky >= K)
                    continue;
                __m512 w = _mm512_set1_ps(p->tw[ky * K + kx]);
                acc[r][0] = _mm512_fmadd_ps(w, v0, acc[r][0]);
                if (V > 1)
                    acc[r][1] = _mm512_fmadd_ps(w, v1, acc[r][1]);
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(p->lo), vhi = _mm512_set1_ps(p->hi);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        int64_t at = (i0 + r) * p->ow + ox;
        const float *z = p->z ? p->z + at : NULL;
        _mm512_mask_storeu_ps(p->y + at, m0, finish(acc[r][0], z, m0, p->clamp, vlo, vhi));
        if (V > 1)
            _mm512_mask_storeu_ps(p->y + at + 16, m1,
                                  finish(acc[r][1], z ? z + 16 : NULL, m1, p->clamp, vlo, vhi));
    }
}

static __mmask16 tail_mask16(int64_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
}

/* Rows [i0, i0 + R) across the whole output row: 32-column tiles, then a
 * masked 16-column tile (and a second masked one) for the tail. */
KN_AVX512 static KN_INLINE void dw_rows_of(const kn_dw_rows *p, int64_t i0, const int K,
                                           const int S, const int R)
{
    int64_t ox = 0;
    for (; ox + 32 <= p->ow; ox += 32)
        dw_tile(p, i0, ox, 0xFFFF, 0xFFFF, K, S, R, 2);
    if (p->ow - ox > 16)
        dw_tile(p, i0, ox, 0xFFFF, tail_mask16(p->ow - ox - 16), K, S, R, 2);
    else if (ox < p->ow)
        dw_tile(p, i0, ox, tail_mask16(p->ow - ox), 0, K, S, R, 1);
}

/* All output rows for a K x K kernel at stride S: tiles of 4 rows, then 2, then 1. */
KN_AVX512 static KN_INLINE void dw_plane_k(const kn_dw_rows *p, const int K, const int S)
{
    int64_t i = 0;
    for (; i + 4 <= p->rows; i += 4)
        dw_rows_of(p, i, K, S, 4);
    for (; i + 2 <= p->rows; i += 2)
        dw_rows_of(p, i, K, S, 2);
    for (; i < p->rows; i++)
        dw_rows_of(p, i, K, S, 1);
}

KN_AVX512 static int dw_block_avx512(const kn_dw_rows *p)
{
    if (p->kh != p->kw || p->dh != 1 || (p->kh != 3 && p->kh != 5) || (p->sh != 1 && p->sh != 2))
        return 0;
    if (p->kh == 3 && p->sh == 1)
        dw_plane_k(p, 3, 1);
    else if (p->kh == 3)
        dw_plane_k(p, 3, 2);
    else if (p->sh == 1)
        dw_plane_k(p, 5, 1);
    else
        dw_plane_k(p, 5, 2);
    return 1;
}

/* Lanes [c, c + 16) of the padded row: mask of the lanes inside [lo, hi). */
static __mmask16 window_mask(int64_t c, int64_t lo, int64_t hi)
{
    int64_t a = lo - c, b = hi - c;
    a = a < 0 ? 0 : a > 16 ? 16 : a;
    b = b < a ? a : b > 16 ? 16 : b;
    return (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
}

KN_AVX512 static void shift_avx512(const float *src, int64_t lo, int64_t hi, int64_t n,
                                   float *dst)
{
    /* src - lo + c addresses the input column of padded column c; only lanes
     * inside [lo, hi) are loaded, so nothing outside src[0, hi - lo) is read */
    uintptr_t base = (uintptr_t)src - (uintptr_t)lo * sizeof(float);
    for (int64_t c = 0; c < n; c += 16) {
        __mmask16 m = window_mask(c, lo, hi), st = window_mask(c, 0, n);
        __m512 v = _mm512_maskz_loadu_ps(m, (const float *)(base + (uintptr_t)c * sizeof(float)));
        _mm512_mask_storeu_ps(dst + c, st, v);
    }
}

/* ---- stride-1 kernel on the input in place ---- */

typedef struct dw_inplace {
    const kn_dw_geom *g;
    const float *x, *w, *z;
    float *y;
    float bias, lo, hi;
    int clamp;
} dw_inplace;

/* Output rows [i0, i0 + R), columns [ox, ox + 16 * V): input row j of the tile
 * (input row i0 - pt + j, skipped when it is padding) feeds output row r through
 * kernel row j - r; the loads of tap column kx are masked to the input columns
 * that exist. */
KN_AVX512 static KN_INLINE void inplace_tile(const dw_inplace *p, int64_t i0, int64_t ox,
                                             const int K, const int R, const int V)
{
    const kn_dw_geom *g = p->g;
    __mmask16 mk0[5], mk1[5];
#pragma GCC unroll 5
    for (int kx = 0; kx < K; kx++) {
        int64_t c0 = ox + kx - g->pl;
        mk0[kx] = window_mask(c0, 0, g->iw);
        mk1[kx] = V > 1 ? window_mask(c0 + 16, 0, g->iw) : 0;
    }
    __m512 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm512_set1_ps(p->bias);
#pragma GCC unroll 8
    for (int j = 0; j < R - 1 + K; j++) {
        int64_t iy = i0 - g->pt + j;
        if (iy < 0 || iy >= g->ih)
            continue;
        uintptr_t row = (uintptr_t)(p->x + iy * g->iw);
#pragma GCC unroll 5
        for (int kx = 0; kx < K; kx++) {
            uintptr_t at = row + (uintptr_t)(ox + kx - g->pl) * sizeof(float);
            __m512 v0 = _mm512_maskz_loadu_ps(mk0[kx], (const float *)at);
            __m512 v1 = V > 1 ? _mm512_maskz_loadu_ps(mk1[kx], (const float *)(at + 64)) : v0;
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int ky = j - r;
                if (ky < 0 || ky >= K)
                    continue;
                __m512 w = _mm512_set1_ps(p->w[ky * K + kx]);
                acc[r][0] = _mm512_fmadd_ps(w, v0, acc[r][0]);
                if (V > 1)
                    acc[r][1] = _mm512_fmadd_ps(w, v1, acc[r][1]);
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(p->lo), vhi = _mm512_set1_ps(p->hi);
    __mmask16 om0 = window_mask(ox, 0, g->ow), om1 = window_mask(ox + 16, 0, g->ow);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        int64_t at = (i0 + r) * g->ow + ox;
        const float *z = p->z ? p->z + at : NULL;
        _mm512_mask_storeu_ps(p->y + at, om0, finish(acc[r][0], z, om0, p->clamp, vlo, vhi));
        if (V > 1)
            _mm512_mask_storeu_ps(p->y + at + 16, om1,
                                  finish(acc[r][1], z ? z + 16 : NULL, om1, p->clamp, vlo, vhi));
    }
}

/* Stride 2 along x: output columns [ox, ox + 16) of rows [i0, i0 + R) at stride S
 * along y.  Tap column kx reads input columns 2 * (ox + l) + kx - pl: two masked
 * loads of the 32 columns from 2 * ox + kx - pl and a permute of the even lanes. */
KN_AVX512 static KN_INLINE void inplace_tile_s2(const dw_inplace *p, int64_t i0, int64_t ox,
                                                const int K, const int S, const int R)
{
    const kn_dw_geom *g = p->g;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    __mmask16 ma[5], mb[5];
#pragma GCC unroll 5
    for (int kx = 0; kx < K; kx++) {
        int64_t c0 = 2 * ox + kx - g->pl;
        ma[kx] = window_mask(c0, 0, g->iw);
        mb[kx] = window_mask(c0 + 16, 0, g->iw);
    }
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_set1_ps(p->bias);
#pragma GCC unroll 16
    for (int j = 0; j < (R - 1) * S + K; j++) {
        int64_t iy = i0 * S - g->pt + j;
        if (iy < 0 || iy >= g->ih)
            continue;
        uintptr_t row = (uintptr_t)(p->x + iy * g->iw);
#pragma GCC unroll 5
        for (int kx = 0; kx < K; kx++) {
            uintptr_t at = row + (uintptr_t)(2 * ox + kx - g->pl) * sizeof(float);
            __m512 a = _mm512_maskz_loadu_ps(ma[kx], (const float *)at);
            __m512 b = _mm512_maskz_loadu_ps(mb[kx], (const float *)(at + 64));
            __m512 v = _mm512_permutex2var_ps(a, even, b);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int ky = j - r * S;
                if (ky >= 0 && ky < K)
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(p->w[ky * K + kx]), v, acc[r]);
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(p->lo), vhi = _mm512_set1_ps(p->hi);
    __mmask16 om = window_mask(ox, 0, g->ow);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        int64_t at = (i0 + r) * g->ow + ox;
        _mm512_mask_storeu_ps(p->y + at, om,
                              finish(acc[r], p->z ? p->z + at : NULL, om, p->clamp, vlo, vhi));
    }
}

KN_AVX512 static KN_INLINE void inplace_plane_s2(const dw_inplace *p, const int K, const int S)
{
    int64_t i = 0, oh = p->g->oh, ow = p->g->ow;
    for (; i + 4 <= oh; i += 4)
        for (int64_t ox = 0; ox < ow; ox += 16)
            inplace_tile_s2(p, i, ox, K, S, 4);
    for (; i < oh; i++)
        for (int64_t ox = 0; ox < ow; ox += 16)
            inplace_tile_s2(p, i, ox, K, S, 1);
}

KN_AVX512 static KN_INLINE void inplace_rows(const dw_inplace *p, int64_t i0, const int K,
                                             const int R)
{
    int64_t ox = 0, ow = p->g->ow;
    for (; ow - ox > 16; ox += 32)
        inplace_tile(p, i0, ox, K, R, 2);
    if (ox < ow)
        inplace_tile(p, i0, ox, K, R, 1);
}

KN_AVX512 static KN_INLINE void inplace_plane(const dw_inplace *p, const int K)
{
    int64_t i = 0, oh = p->g->oh;
    for (; i + 4 <= oh; i += 4)
        inplace_rows(p, i, K, 4);
    for (; i + 2 <= oh; i += 2)
        inplace_rows(p, i, K, 2);
    for (; i < oh; i++)
        inplace_rows(p, i, K, 1);
}

KN_AVX512 static int dw_inplace_avx512(const kn_dw_geom *g, const float *x, const float *w,
                                       float bias, const float *z, int clamp, float lo,
                                       float hi, float *y)
{
    if (g->kh != g->kw || (g->kh != 3 && g->kh != 5) || g->sh != g->sw || g->sh > 2 ||
        g->dh != 1 || g->dw != 1)
        return 0;
    dw_inplace p = {g, x, w, z, y, bias, lo, hi, clamp};
    if (g->sh == 2) {
        if (g->kh == 3)
            inplace_plane_s2(&p, 3, 2);
        else
            inplace_plane_s2(&p, 5, 2);
        return 1;
    }
    if (g->kh == 3)
        inplace_plane(&p, 3);
    else
        inplace_plane(&p, 5);
    return 1;
}

kn_dw_row_fn kn_dw_row_avx512(void) { return dw_row_avx512; }
kn_dw_inplace_fn kn_dw_inplace_avx512(void) { return dw_inplace_avx512; }
kn_dw_shift_fn kn_dw_shift_avx512(void) { return shift_avx512; }
kn_dw_block_fn kn_dw_block_avx512(void) { return dw_block_avx512; }
kn_dw_split2_fn kn_dw_split2_avx512(void) { return split2_avx512; }

#else

kn_dw_row_fn kn_dw_row_avx512(void) { return NULL; }
kn_dw_block_fn kn_dw_block_avx512(void) { return NULL; }
kn_dw_shift_fn kn_dw_shift_avx512(void) { return NULL; }
kn_dw_inplace_fn kn_dw_inplace_avx512(void) { return NULL; }
kn_dw_split2_fn kn_dw_split2_avx512(void) { return NULL; }

#endif
