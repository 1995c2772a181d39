/* qgemm_avx512.c - AVX-512 integer GEMM micro-kernels, 12 rows x 32 columns (24 zmm
 * accumulators, two B vectors, one broadcast): AVX-512BW on int16 pairs with vpmaddwd,
 * AVX-512BW on int8 quads with vpmaddubsw + vpmaddwd for 7-bit weights (|w| <= 64:
 * a pair of products stays within 2 x 255 x 64 < 32767, so the 16-bit step cannot
 * saturate), and AVX-512 VNNI on int8 quads with vpdpbusd (no saturation at all).
 * The quad kernels come in two forms: packed A, and A read in place. */
#include "kernels/qgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512BW __attribute__((target("avx512f,avx512bw,avx512vl")))
#define KN_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

enum { MR = 12, NR = KN_QGEMM_NR };

/* One macro body for every instruction choice and both ways of reading A:
 * STEP(acc, a, b) accumulates one group, WORD(g, i) is row i's word of group g. */
#define QGEMM_BODY(STEP, ELEM, GROUP, WORD)                                                              \
    const ELEM *bq = b;                                                                                  \
    __m512i c[MR][2];                                                                                    \
    _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                              \
        c[i][0] = acc_zero ? _mm512_setzero_si512() : _mm512_loadu_si512(acc + i * NR);                  \
        c[i][1] = acc_zero ? _mm512_setzero_si512() : _mm512_loadu_si512(acc + i * NR + 16);             \
    }                                                                                                    \
    for (size_t g = 0; g < kgroups; g++, bq += NR * GROUP) {                                             \
        __m512i b0 = _mm512_load_si512((const void *)bq);                                                \
        __m512i b1 = _mm512_load_si512((const void *)(bq + 16 * GROUP));                                 \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                          \
            __m512i av = _mm512_set1_epi32(WORD(g, i));                                                  \
            c[i][0] = STEP(c[i][0], av, b0);                                                             \
            c[i][1] = STEP(c[i][1], av, b1);                                                             \
        }                                                                                                \
    }                                                                                                    \
    _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                                              \
        _mm512_storeu_si512(acc + i * NR, c[i][0]);                                                      \
        _mm512_storeu_si512(acc + i * NR + 16, c[i][1]);                                                 \
    }

#define PACKED_WORD(g, i) ((int)aw[(g) * MR + (size_t)(i)])
#define ROW_WORD(g, i) row_word(row[i] + (g) * 4)

static inline int row_word(const uint8_t *p)
{
    int32_t w;
    __builtin_memcpy(&w, p, 4);
    return w;
}

/* Packed A (a[g*MR + i]). */
#define QGEMM_TILE(NAME, ATTR, STEP, ELEM, GROUP)                                      \
    ATTR static void NAME(size_t kgroups, const void *a, const void *b, int32_t *acc) \
    {                                                                                  \
        const uint32_t *aw = a;                                                        \
        const int acc_zero = 0;                                                        \
        QGEMM_BODY(STEP, ELEM, GROUP, PACKED_WORD)                                     \
    }

/* The quad kernel reading A's rows in place (no packing): the same products, the
 * same order of accumulation, so the same int32 results. */
#define QGEMM_ROWS(NAME, ATTR, STEP)                                                             \
    ATTR static void NAME(size_t kgroups, const uint8_t *a, size_t lda, int rows, const void *b, \
                          int32_t *acc, int acc_zero)                                            \
    {                                                                                            \
        const uint8_t *row[MR];                                                                  \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++)                                    \
            row[i] = a + (size_t)(i < rows ? i : rows - 1) * lda;                                \
        QGEMM_BODY(STEP, int8_t, 4, ROW_WORD)                                                    \
    }

KN_AVX512BW static inline __m512i step_madd(__m512i c, __m512i a, __m512i b)
{
    return _mm512_add_epi32(c, _mm512_madd_epi16(a, b));
}

KN_AVX512VNNI static inline __m512i step_dpbusd(__m512i c, __m512i a, __m512i b)
{
    return _mm512_dpbusd_epi32(c, a, b);
}

/* uint8 x int8 quads without VNNI: vpmaddubsw (pairs into int16, exact while
 * |w| <= 64), vpmaddwd by ones (into int32), add. */
KN_AVX512BW static inline __m512i step_maddubs(__m512i c, __m512i a, __m512i b)
{
    return _mm512_add_epi32(c, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)));
}

QGEMM_TILE(ukr_pairs, KN_AVX512BW, step_madd, int16_t, 2)
QGEMM_TILE(ukr_quads7, KN_AVX512BW, step_maddubs, int8_t, 4)
QGEMM_TILE(ukr_quads, KN_AVX512VNNI, step_dpbusd, int8_t, 4)
QGEMM_ROWS(ukr_quads7_rows, KN_AVX512BW, step_maddubs)
QGEMM_ROWS(ukr_quads_rows, KN_AVX512VNNI, step_dpbusd)

/* ---- vectorized output stage (same arithmetic as kn_qgemm_store_tile) ---- */

static __mmask16 cols_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

/* What the output stage needs of 16 columns, loaded once per tile: the additive
 * int32 offset (bias_i32 - a_zero * col_sum, wrapping like the scalar path), the
 * dequantization scale and the float bias. */
typedef struct cols16 {
    __mmask16 mk;
    __m512i off;
    __m512 scale, bias;
} cols16;

KN_AVX512BW static cols16 cols_of(const kn_qgemm_output *o, size_t col, int n, int32_t a_zero,
                                  const int32_t *col_sum)
{
    cols16 c;
    c.mk = cols_mask(n);
    c.off = _mm512_setzero_si512();
    if (col_sum)
        c.off = _mm512_sub_epi32(c.off, _mm512_mullo_epi32(_mm512_set1_epi32(a_zero),
                                                           _mm512_maskz_loadu_epi32(c.mk, col_sum + col)));
    if (o->bias_i32)
        c.off = _mm512_add_epi32(c.off, _mm512_maskz_loadu_epi32(c.mk, o->bias_i32 + col));
    c.scale = c.bias = _mm512_setzero_ps();
    if (o->kind == KN_QOUT_INT32)
        return c;
    c.scale = o->b_scale_per_col ? _mm512_maskz_loadu_ps(c.mk, o->b_scale + col) : _mm512_set1_ps(o->b_scale[0]);
    if (o->a_scale != 1.0f) /* 1 * scale is scale */
        c.scale = _mm512_mul_ps(_mm512_set1_ps(o->a_scale), c.scale);
    if (o->bias)
        c.bias = _mm512_maskz_loadu_ps(c.mk, o->bias + col);
    return c;
}

KN_AVX512BW static __m512 dequant16(const kn_qgemm_output *o, __m512i v, const cols16 *c)
{
    __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(v), c->scale);
    if (o->bias)
        y = _mm512_add_ps(y, c->bias);
    if (o->relu)
        y = _mm512_max_ps(y, _mm512_setzero_ps());
    return y;
}

KN_AVX512BW static __m512i requant16(const kn_qgemm_output *o, __m512 y, float lo, float hi)
{
    if (o->y_scale != 1.0f) /* y / 1 is y: callers folding y_scale into b_scale skip the division */
        y = _mm512_div_ps(y, _mm512_set1_ps(o->y_scale));
    __m512 q = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_add_ps(q, _mm512_set1_ps((float)o->y_zero));
    q = _mm512_max_ps(q, _mm512_set1_ps(lo)); /* NaN -> lo, as the scalar path */
    q = _mm512_min_ps(q, _mm512_set1_ps(hi));
    return _mm512_cvttps_epi32(q);
}

KN_AVX512BW static void store16(const kn_qgemm_output *o, const int32_t *acc, size_t row, size_t col,
                                const cols16 *c)
{
    __m512i v = _mm512_add_epi32(_mm512_loadu_si512(acc), c->off);
    size_t at = row * o->ldc + col;
    if (o->kind == KN_QOUT_INT32) {
        _mm512_mask_storeu_epi32((int32_t *)o->out + at, c->mk, v);
        return;
    }
    __m512 y = dequant16(o, v, c);
    if (o->kind == KN_QOUT_FLOAT)
        _mm512_mask_storeu_ps((float *)o->out + at, c->mk, y);
    else if (o->kind == KN_QOUT_UINT8)
        _mm_mask_storeu_epi8((uint8_t *)o->out + at, c->mk, _mm512_cvtepi32_epi8(requant16(o, y, 0.0f, 255.0f)));
    else
        _mm_mask_storeu_epi8((int8_t *)o->out + at, c->mk, _mm512_cvtepi32_epi8(requant16(o, y, -128.0f, 127.0f)));
}

KN_AVX512BW void kn_qgemm_store_tile_avx512(const kn_qgemm_output *o, const int32_t *acc, size_t i0, size_t j0,
                                            int m, int n, int32_t a_zero, const int32_t *col_sum)
{
    cols16 c0 = cols_of(o, j0, n, a_zero, col_sum), c1 = cols_of(o, j0 + 16, n - 16, a_zero, col_sum);
    for (int i = 0; i < m; i++) {
        store16(o, acc + i * NR, i0 + (size_t)i, j0, &c0);
        if (n > 16)
            store16(o, acc + i * NR + 16, i0 + (size_t)i, j0 + 16, &c1);
    }
}

const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw(void)
{
    static const kn_qgemm_kernel k = {MR, 2, ukr_pairs};
    return &k;
}

const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw7(void)
{
    static const kn_qgemm_kernel k = {MR, 4, ukr_quads7, ukr_quads7_rows, 64};
    return &k;
}

const kn_qgemm_kernel *kn_qgemm_kernel_vnni(void)
{
    static const kn_qgemm_kernel k = {MR, 4, ukr_quads, ukr_quads_rows};
    return &k;
}

#else
void kn_qgemm_store_tile_avx512(const kn_qgemm_output *o, const int32_t *acc, size_t i0, size_t j0, int m,
                                int n, int32_t a_zero, const int32_t *col_sum)
{
    kn_qgemm_store_tile(o, acc, i0, j0, m, n, a_zero, col_sum);
}
const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw(void) { return NULL; }
const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw7(void) { return NULL; }
const kn_qgemm_kernel *kn_qgemm_kernel_vnni(void) { return NULL; }
#endif
