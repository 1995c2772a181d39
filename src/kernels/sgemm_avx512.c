/* sgemm_avx512.c - AVX-512 microkernel: 14 x 32 tile (28 zmm accumulators, two
 * B vectors, one broadcast), opmask loads/stores for column tails, and narrower
 * instances of the same body (8 or 4 rows, 16 columns) for edge tiles so that a
 * tile of few valid rows or columns does not pay for a full one; 1- and 2-row
 * tiles keep partial sums over k phases so that they are not latency-bound.  Each
 * tile also fetches its share of the next B panel into L2 (kn_ukr_epi.pf), spread
 * evenly over its k steps.
 * Compiled with per-function target attributes so the rest of the build stays
 * baseline x86-64. */
#include "kernels/sgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_INLINE inline __attribute__((always_inline))

enum { XMR = 14, XNR = 32 };

static __mmask16 mask_for(int n)
{
    if (n <= 0) return 0;
    if (n >= 16) return (__mmask16)0xFFFF;
    return (__mmask16)((1u << n) - 1u);
}

KN_AVX512 static KN_INLINE __m512 finish16(__m512 x, const kn_ukr_epi *e, float *c,
                                           const float *bias, const float *rbias,
                                           const float *res, __mmask16 mask)
{
    if (e->alpha != 1.0f) x = _mm512_mul_ps(x, _mm512_set1_ps(e->alpha));
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

/* Row i of the tile: its first 16 columns from x0, the next 16 from x1. */
KN_AVX512 static KN_INLINE void store_row(__m512 x0, __m512 x1, int i, float *c, size_t ldc,
                                          int n, const kn_ukr_epi *e)
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

/* The kernel body for R rows and V 16-column vectors; A is the XMR-row packed
 * micro-panel, or with ROWS its rows as they lie, lda apart (rows 3q .. 3q+2 read
 * from one pointer at 0, 1 and 2 strides, so that the addresses fit base + index
 * * scale without a register a row).  R, V and ROWS are constants at every call,
 * so the loops unroll into registers. */
KN_AVX512 static KN_INLINE void tile(const int R, const int V, const int ROWS, size_t kc,
                                     const float *a, size_t lda, const float *b, float *c,
                                     size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    __m512 acc[XMR][2];
#pragma GCC unroll 14
    for (int i = 0; i < R; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    for (int i = 0; i < m; i++) { /* C is touched only at the end: start fetching it now */
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 16), _MM_HINT_T0);
    }
    /* its share of the next B panel, one line every pf_every k steps over the whole
     * tile: two lines a step at the start (as first written) kept the line fill
     * buffers full while B came from memory; spread out, GEMMs on cold B ran
     * 7..11% faster (1 and 2 threads), on warm B 1..7% */
    size_t pf_line = 0, pf_next = 0, pf_every = e->pf_lines ? kc / e->pf_lines : kc;
    if (pf_every < 1)
        pf_every = 1;
    const float *base[(XMR + 2) / 3];
    for (int q = 0; ROWS && q < (R + 2) / 3; q++)
        base[q] = a + (size_t)(3 * q) * lda;
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++, a += XMR, b += KN_SGEMM_PANEL) {
        if (k == pf_next && pf_line < e->pf_lines) {
            _mm_prefetch((const char *)(e->pf + 16 * pf_line), _MM_HINT_T1);
            pf_line++;
            pf_next += pf_every;
        }
        _mm_prefetch((const char *)(b + 8 * KN_SGEMM_PANEL), _MM_HINT_T0);
        if (V > 1) _mm_prefetch((const char *)(b + 8 * KN_SGEMM_PANEL + 16), _MM_HINT_T0);
        __m512 b0 = _mm512_load_ps(b), b1 = V > 1 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 14
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(ROWS ? base[i / 3][(size_t)(i % 3) * lda + k] : a[i]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            if (V > 1) acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 14
    for (int i = 0; i < R; i++)
        if (i < m) store_row(acc[i][0], acc[i][1], i, c, ldc, n, e);
}

/* A tile of R <= 2 rows has too few accumulators to hide the FMA latency (the 4-row
 * body waits 4 cycles a k step for 2 rows' worth of work): it keeps PH partial sums
 * per accumulator, k step k adding into phase k % PH, and adds them at the end.
 * ViT's 197 rows (14 x 14 + 1) and BERT's 128 (9 x 14 + 2) end in such a tile. */
enum { PH = 4 };

KN_AVX512 static KN_INLINE void tile_thin(const int R, size_t kc, const float *a, const float *b,
                                          float *c, size_t ldc, int m, int n,
                                          const kn_ukr_epi *e)
{
    __m512 acc[PH][2][2];
#pragma GCC unroll 4
    for (int p = 0; p < PH; p++)
        for (int i = 0; i < 2; i++) acc[p][i][0] = acc[p][i][1] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + PH <= kc; k += PH, a += PH * XMR, b += PH * KN_SGEMM_PANEL) {
        _mm_prefetch((const char *)(b + 8 * KN_SGEMM_PANEL), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 10 * KN_SGEMM_PANEL), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int p = 0; p < PH; p++) {
            const float *bp = b + p * KN_SGEMM_PANEL;
            __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 2
            for (int i = 0; i < R; i++) {
                __m512 av = _mm512_set1_ps(a[p * XMR + i]);
                acc[p][i][0] = _mm512_fmadd_ps(av, b0, acc[p][i][0]);
                acc[p][i][1] = _mm512_fmadd_ps(av, b1, acc[p][i][1]);
            }
        }
    }
    for (; k < kc; k++, a += XMR, b += KN_SGEMM_PANEL) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
            acc[0][i][0] = _mm512_fmadd_ps(av, b0, acc[0][i][0]);
            acc[0][i][1] = _mm512_fmadd_ps(av, b1, acc[0][i][1]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
        __m512 x0 = _mm512_add_ps(_mm512_add_ps(acc[0][i][0], acc[1][i][0]),
                                  _mm512_add_ps(acc[2][i][0], acc[3][i][0]));
        __m512 x1 = _mm512_add_ps(_mm512_add_ps(acc[0][i][1], acc[1][i][1]),
                                  _mm512_add_ps(acc[2][i][1], acc[3][i][1]));
        if (i < m) store_row(x0, x1, i, c, ldc, n, e);
    }
}

KN_AVX512 static void tile_2x32(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                int m, int n, const kn_ukr_epi *e)
{
    tile_thin(2, kc, a, b, c, ldc, m, n, e);
}

KN_AVX512 static void tile_1x32(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                int m, int n, const kn_ukr_epi *e)
{
    tile_thin(1, kc, a, b, c, ldc, m, n, e);
}

KN_AVX512 static void tile_14x32(size_t kc, const float *a, const float *b, float *c,
                                 size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    tile(14, 2, 0, kc, a, 0, b, c, ldc, m, n, e);
}

KN_AVX512 static void tile_14x16(size_t kc, const float *a, const float *b, float *c,
                                 size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    tile(14, 1, 0, kc, a, 0, b, c, ldc, m, n, e);
}

KN_AVX512 static void tile_8x32(size_t kc, const float *a, const float *b, float *c,
                                size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    tile(8, 2, 0, kc, a, 0, b, c, ldc, m, n, e);
}

KN_AVX512 static void tile_4x32(size_t kc, const float *a, const float *b, float *c,
                                size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    tile(4, 2, 0, kc, a, 0, b, c, ldc, m, n, e);
}

KN_AVX512 static void tile_4x16(size_t kc, const float *a, const float *b, float *c,
                                size_t ldc, int m, int n, const kn_ukr_epi *e)
{
    tile(4, 1, 0, kc, a, 0, b, c, ldc, m, n, e);
}

/* C (14 rows x n columns, n 16 or 32; stride ldc) = A (14 rows of kc floats, lda
 * apart, as they lie) times one packed B panel (kc rows of KN_SGEMM_PANEL): the
 * 14 x 32 body above with unpacked A and a plain store (sgemm.h). */
static const kn_ukr_epi k_plain_store = {.alpha = 1.0f, .first = 1, .last = 1};

KN_AVX512 static void rows_14x32(size_t kc, const float *a, size_t lda, const float *b,
                                 float *c, size_t ldc)
{
    tile(14, 2, 1, kc, a, lda, b, c, ldc, 14, 32, &k_plain_store);
}

KN_AVX512 static void rows_14x16(size_t kc, const float *a, size_t lda, const float *b,
                                 float *c, size_t ldc)
{
    tile(14, 1, 1, kc, a, lda, b, c, ldc, 14, 16, &k_plain_store);
}

void kn_sgemm_tile_rows_avx512(size_t kc, const float *a, size_t lda, const float *b, float *c,
                               size_t ldc, int n)
{
    (n > 16 ? rows_14x32 : rows_14x16)(kc, a, lda, b, c, ldc);
}

/* The smallest instance covering m rows and n columns. */
static void ukr_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc, int m,
                       int n, const kn_ukr_epi *e)
{
    if (m > 8)
        (n > 16 ? tile_14x32 : tile_14x16)(kc, a, b, c, ldc, m, n, e);
    else if (m > 4)
        tile_8x32(kc, a, b, c, ldc, m, n, e);
    else if (m > 2 || n <= 16)
        (n > 16 ? tile_4x32 : tile_4x16)(kc, a, b, c, ldc, m, n, e);
    else
        (m > 1 ? tile_2x32 : tile_1x32)(kc, a, b, c, ldc, m, n, e);
}

/* 16 rows of 16 floats transposed in registers: c[j] lane i = r[i] lane j. */
KN_AVX512 static KN_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* u[i + c]: rows i..i+3 of column 4L + c */
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        t[8 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xDD);
    }
}

/* One 14-row micro-panel of plain A: 16 columns at a time, loaded by rows and
 * transposed in registers into 16 k-rows of 14 floats. */
KN_AVX512 static void pack_panel_avx512(float *dst, const float *A, size_t lda, size_t rows,
                                        size_t kc)
{
    for (size_t k = 0; k < kc; k += 16) {
        size_t kk = kc - k < 16 ? kc - k : 16;
        __mmask16 lm = mask_for((int)kk);
        __m512 r[16];
#pragma GCC unroll 16
        for (size_t i = 0; i < 16; i++)
            r[i] = i < rows ? _mm512_maskz_loadu_ps(lm, A + i * lda + k) : _mm512_setzero_ps();
        for (size_t i = 0; i < rows; i++) { /* A is often cold (the last op's output,
                                             * evicted by its weights): each row 4 lines
                                             * ahead into L1 and 16 into L2 (the L2 fetch
                                             * measured +1..7% at 168..1024 x 1024^2) */
            _mm_prefetch((const char *)(A + i * lda + k + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(A + i * lda + k + 256), _MM_HINT_T1);
        }
        transpose16(r);
        for (size_t j = 0; j < kk; j++)
            _mm512_mask_storeu_ps(dst + (k + j) * XMR, (__mmask16)((1u << XMR) - 1u), r[j]);
    }
}

static const kn_sgemm_kernel k_avx512 = {XMR, XNR, ukr_avx512, pack_panel_avx512};

const kn_sgemm_kernel *kn_sgemm_kernel_avx512(void) { return &k_avx512; }

#else

const kn_sgemm_kernel *kn_sgemm_kernel_avx512(void) { return NULL; }

void kn_sgemm_tile_rows_avx512(size_t kc, const float *a, size_t lda, const float *b, float *c,
                               size_t ldc, int n)
{
    (void)kc, (void)a, (void)lda, (void)b, (void)c, (void)ldc, (void)n;
}

#endif
