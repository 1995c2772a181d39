/* conv_im2col.c - column matrices for the GEMM convolutions (2-D, one group):
 * im2col of a tile of output pixels (the forward conv's B operand), either as
 * plain rows or straight in the GEMM's packed-B panel layout (kernels/sgemm.h),
 * with the plain C row walk as the reference and an AVX-512 one (masked shifts
 * at stride 1, the even lanes of two loads at stride 2); and the col2im scatter
 * of one output channel over a band of input rows (the transposed conv's fold). */
#include "kernels/conv_kernels.h"

#include <string.h>

#include "kernels/sgemm.h"

#if defined(__GNUC__) || defined(__clang__)
#define KN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define KN_ALWAYS_INLINE inline
#endif

/* Where a tile's columns go: row k, column r (pixel p0 + r) lands at
 * r / chunk * chunk_stride + k * row_stride + r % chunk.  The plain layout is one
 * chunk of np columns per row; the packed one cuts every row into chunks of
 * KN_SGEMM_PANEL columns, one panel (K rows of a chunk) after another, the last
 * chunk zero padded. */
typedef struct col_layout {
    int64_t row_stride, chunk, chunk_stride;
} col_layout;

/* One row of a tile: tap (ky, kx) of the channel plane xc over pixels [p0, p0 +
 * np), written from dst (the row's first column) in layout L. */
typedef struct tile_row {
    const kn_conv2d_geom *g;
    const col_layout *L;
    const float *xc;
    int64_t ky, kx, p0, np;
    float *dst;
} tile_row;
typedef void (*tile_row_fn)(const tile_row *t);

/* A piece of one output row: dst[c] = src[s * (c - lo)] for lo <= c < hi, zero for
 * the other c < n (src is read only at those columns). */
typedef void (*piece_fn)(const float *src, int64_t s, int64_t lo, int64_t hi, int64_t n,
                         float *dst);

static void piece_plain(const float *src, int64_t s, int64_t lo, int64_t hi, int64_t n,
                        float *dst)
{
    memset(dst, 0, sizeof(float) * (size_t)lo);
    if (s == 1) {
        memcpy(dst + lo, src, sizeof(float) * (size_t)(hi - lo));
    } else {
        for (int64_t c = lo; c < hi; c++)
            dst[c] = src[(c - lo) * s];
    }
    memset(dst + hi, 0, sizeof(float) * (size_t)(n - hi));
}

static int64_t min3(int64_t a, int64_t b, int64_t c)
{
    int64_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Walks row t in pieces that stay within one output row and one chunk, each
 * gathered by piece (inlined into the per-ISA callers), then zero pads the last
 * chunk. */
static KN_ALWAYS_INLINE void walk_row(const tile_row *t, piece_fn piece)
{
    const kn_conv2d_geom *g = t->g;
    int64_t off = t->kx * g->dw - g->pl, s = g->sw, chunk = t->L->chunk;
    /* the output columns whose input column ox * s + off lies in [0, iw) */
    int64_t wlo = kn_clamp64(kn_ceil_div(-off, s), 0, g->ow);
    int64_t whi = kn_clamp64(kn_ceil_div(g->iw - off, s), wlo, g->ow);
    int64_t oy = t->p0 / g->ow, ox = t->p0 % g->ow, c = 0;
    float *d = t->dst;
    for (int64_t r = 0; r < t->np;) {
        int64_t n = min3(g->ow - ox, t->np - r, chunk - c);
        int64_t iy = oy * g->sh - g->pt + t->ky * g->dh;
        if (iy < 0 || iy >= g->ih) {
            memset(d + c, 0, sizeof(float) * (size_t)n);
        } else {
            int64_t lo = kn_clamp64(wlo, ox, ox + n), hi = kn_clamp64(whi, lo, ox + n);
            piece(t->xc + iy * g->iw + lo * s + off, s, lo - ox, hi - ox, n, d + c);
        }
        r += n, c += n, ox += n;
        if (ox == g->ow)
            ox = 0, oy++;
        if (c == chunk)
            c = 0, d += t->L->chunk_stride;
    }
    if (c)
        memset(d + c, 0, sizeof(float) * (size_t)(chunk - c));
}

static void row_plain(const tile_row *t) { walk_row(t, piece_plain); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* Lanes [c, c + 16): the mask of those inside [lo, hi). */
static __mmask16 lanes(int64_t c, int64_t lo, int64_t hi)
{
    int64_t a = kn_clamp64(lo - c, 0, 16), b = kn_clamp64(hi - c, a, 16);
    return (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
}

KN_AVX512 static KN_ALWAYS_INLINE void piece_s1_avx512(const float *src, int64_t s, int64_t lo,
                                                       int64_t hi, int64_t n, float *dst)
{
    (void)s;
    /* base + c addresses column c's input; only lanes in [lo, hi) are loaded */
    uintptr_t base = (uintptr_t)src - (uintptr_t)lo * sizeof(float);
    for (int64_t c = 0; c < n; c += 16) {
        __m512 v = _mm512_maskz_loadu_ps(lanes(c, lo, hi),
                                         (const float *)(base + (uintptr_t)c * sizeof(float)));
        _mm512_mask_storeu_ps(dst + c, lanes(c, 0, n), v);
    }
}

KN_AVX512 static KN_ALWAYS_INLINE void piece_s2_avx512(const float *src, int64_t s, int64_t lo,
                                                       int64_t hi, int64_t n, float *dst)
{
    (void)s;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    /* base + 2c addresses column c's input: lanes [c, c + 16) take the even lanes
     * of the 32 floats from there, of which only those of columns in [lo, hi)
     * are loaded (the others, and every odd lane, read as zero) */
    uintptr_t base = (uintptr_t)src - (uintptr_t)(2 * lo) * sizeof(float);
    for (int64_t c = 0; c < n; c += 16) {
        int64_t a = kn_clamp64(lo - c, 0, 16), b = kn_clamp64(hi - c, a, 16);
        uint64_t in = (((uint64_t)1 << (2 * b)) - 1) & ~(((uint64_t)1 << (2 * a)) - 1) &
                      0x55555555u;
        const float *p = (const float *)(base + (uintptr_t)(2 * c) * sizeof(float));
        __m512 v0 = _mm512_maskz_loadu_ps((__mmask16)in, p);
        __m512 v1 = _mm512_maskz_loadu_ps((__mmask16)(in >> 16), p + 16);
        _mm512_mask_storeu_ps(dst + c, lanes(c, 0, n), _mm512_permutex2var_ps(v0, even, v1));
    }
}

KN_AVX512 static void row_avx512(const tile_row *t)
{
    if (t->g->sw == 1)
        walk_row(t, piece_s1_avx512);
    else if (t->g->sw == 2)
        walk_row(t, piece_s2_avx512);
    else
        walk_row(t, piece_plain);
}

static tile_row_fn row_fn_avx512(void) { return row_avx512; }
#else
static tile_row_fn row_fn_avx512(void) { return NULL; }
#endif

/* The row walk of kernel level isa (capped by the CPU). */
static tile_row_fn row_fn_for(kn_isa isa)
{
    if (isa > kn_cpu_isa_supported())
        isa = kn_cpu_isa_supported();
    tile_row_fn fn = isa >= KN_ISA_AVX512 ? row_fn_avx512() : NULL;
    return fn ? fn : row_plain;
}

static void im2col_rows(const kn_conv2d_geom *g, const col_layout *L, tile_row_fn fn,
                        const float *x, int64_t p0, int64_t np, float *col)
{
    tile_row t = {g, L, x, 0, 0, p0, np, col};
    int64_t plane = g->ih * g->iw;
    for (int64_t ci = 0; ci < g->channels; ci++, t.xc += plane)
        for (t.ky = 0; t.ky < g->kh; t.ky++)
            for (t.kx = 0; t.kx < g->kw; t.kx++, t.dst += L->row_stride)
                fn(&t);
}

void kn_im2col_tile(const kn_conv2d_geom *g, const float *x, int64_t p0, int64_t np, float *col)
{
    col_layout L = {np, np, 0};
    im2col_rows(g, &L, row_plain, x, p0, np, col);
}

void kn_im2col_tile_isa(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                        int64_t np, float *col)
{
    col_layout L = {np, np, 0};
    im2col_rows(g, &L, row_fn_for(isa), x, p0, np, col);
}

void kn_im2col_tile_packed(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                           int64_t np, float *col)
{
    int64_t K = g->channels * g->kh * g->kw;
    col_layout L = {KN_SGEMM_PANEL, KN_SGEMM_PANEL, K * KN_SGEMM_PANEL};
    im2col_rows(g, &L, row_fn_for(isa), x, p0, np, col);
}

void kn_col2im_rows(const kn_conv2d_geom *g, const float *col, int64_t iy0, int64_t nrows, float *y)
{
    int64_t np = nrows * g->iw;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        for (int64_t kx = 0; kx < g->kw; kx++, col += np) {
            int64_t shift = kx * g->dw - g->pl;
            /* input columns ix whose output column ix * sw + shift lies in [0, ow) */
            int64_t lo = kn_clamp64(kn_ceil_div(-shift, g->sw), 0, g->iw);
            int64_t hi = kn_clamp64(kn_ceil_div(g->ow - shift, g->sw), lo, g->iw);
            for (int64_t r = 0; r < nrows; r++) {
                int64_t oy = (iy0 + r) * g->sh - g->pt + ky * g->dh;
                if (oy < 0 || oy >= g->oh)
                    continue;
                const float *cr = col + r * g->iw;
                float *yr = y + oy * g->ow;
                for (int64_t ix = lo; ix < hi; ix++)
                    yr[ix * g->sw + shift] += cr[ix];
            }
        }
    }
}
