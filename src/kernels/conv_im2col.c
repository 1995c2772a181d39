/* conv_im2col.c - column matrices for the GEMM convolutions (2-D, one group):
 * im2col of a tile of output pixels (the forward conv's B operand), either as
 * plain rows or straight in the GEMM's packed-B panel layout (kernels/sgemm.h),
 * with the plain C row walk as the reference and a vector walk (piece by
 * piece, each tap down a block of channels) whose AVX-512 and AVX2 kernels do
 * stride 1 with masked loads and stride 2 with the even lanes of two loads; and
 * the col2im scatter of one output channel over a band of input rows (the
 * transposed conv's fold). */
#include "kernels/conv_kernels.h"

#include <string.h>

#include "kernels/sgemm.h"

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
/* A whole tile of columns for pixels [p0, p0 + np) in layout L. */
typedef void (*tile_fn)(const kn_conv2d_geom *g, const col_layout *L, const float *x, int64_t p0,
                        int64_t np, float *col);

/* A piece of one output row: dst[c] = src[s * (c - lo)] for lo <= c < hi, zero for
 * the other c < n (src is read only at those columns). */
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

/* Walks row t in pieces that stay within one output row and one chunk, then zero
 * pads the last chunk. */
static void walk_row(const tile_row *t)
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
            piece_plain(t->xc + iy * g->iw + lo * s + off, s, lo - ox, hi - ox, n, d + c);
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


/* ---- the vector walk: piece by piece, every tap of a piece down a block of
 * channels, so that a tap's masks are worked out once per piece ---- */

/* Channels of a tile the vector walk takes at once: their input rows and
 * destination rows stay in L1 while every tap of a piece is gathered. */
#define CI_BLOCK 32

/* One tap of a piece for nci channels: base is the address of column 0's input
 * (input planes plane floats apart), d its destination (rows dstep floats apart);
 * columns c in [lo, hi) of [0, n) take the input at base + s * c, the others zero. */
typedef struct tap_run {
    uintptr_t base;
    int64_t s, plane, nci, lo, hi, n, dstep;
    float *d;
} tap_run;
typedef void (*tap_fn)(const tap_run *t);

/* Columns the vector kernels do not take (strides other than 1 and 2), one by one. */
static void tap_plain(const tap_run *t)
{
    const float *src = (const float *)t->base;
    float *d = t->d;
    for (int64_t ci = 0; ci < t->nci; ci++, src += t->plane, d += t->dstep) {
        memset(d, 0, sizeof(float) * (size_t)t->n);
        for (int64_t c = t->lo; c < t->hi; c++)
            d[c] = src[c * t->s];
    }
}

/* A piece of a tile: output row oy, columns [ox, ox + n), its destination at dst
 * (row 0 of the channel block), rows L->row_stride apart. */
typedef struct piece {
    int64_t oy, ox, n;
    float *dst;
} piece;

/* Every tap of piece pc for the nci channels from xb. */
static void piece_taps(const kn_conv2d_geom *g, const col_layout *L, tap_fn tap,
                       const float *xb, int64_t nci, const piece *pc)
{
    int64_t s = g->sw;
    tap_run t = {0, s, g->ih * g->iw, nci, 0, 0, pc->n, g->kh * g->kw * L->row_stride, pc->dst};
    for (int64_t ky = 0; ky < g->kh; ky++) {
        int64_t iy = pc->oy * g->sh - g->pt + ky * g->dh;
        for (int64_t kx = 0; kx < g->kw; kx++, t.d += L->row_stride) {
            int64_t off = kx * g->dw - g->pl;
            /* this tap's columns whose input column (ox + c) * s + off is in [0, iw) */
            t.lo = t.hi = 0;
            if (iy >= 0 && iy < g->ih) {
                t.lo = kn_clamp64(kn_ceil_div(-off, s) - pc->ox, 0, pc->n);
                t.hi = kn_clamp64(kn_ceil_div(g->iw - off, s) - pc->ox, t.lo, pc->n);
            }
            t.base = (uintptr_t)(xb + (t.hi > t.lo ? iy * g->iw : 0)) +
                     (uintptr_t)((pc->ox * s + off) * (int64_t)sizeof(float));
            tap(&t);
        }
    }
}

/* The tile walked piece by piece (each within one output row and one chunk),
 * for blocks of CI_BLOCK channels, then the last chunk's zero padding. */
static void tile_pieces(const kn_conv2d_geom *g, const col_layout *L, tap_fn tap, const float *x,
                        int64_t p0, int64_t np, float *col)
{
    int64_t taps = g->kh * g->kw, plane = g->ih * g->iw;
    for (int64_t ci0 = 0; ci0 < g->channels; ci0 += CI_BLOCK) {
        int64_t nci = g->channels - ci0 < CI_BLOCK ? g->channels - ci0 : CI_BLOCK;
        piece pc = {p0 / g->ow, p0 % g->ow, 0, NULL};
        float *d = col + ci0 * taps * L->row_stride;
        for (int64_t r = 0, c = 0; r < np;) {
            pc.n = min3(g->ow - pc.ox, np - r, L->chunk - c);
            pc.dst = d + c;
            piece_taps(g, L, tap, x + ci0 * plane, nci, &pc);
            r += pc.n, c += pc.n, pc.ox += pc.n;
            if (pc.ox == g->ow)
                pc.ox = 0, pc.oy++;
            if (c == L->chunk)
                c = 0, d += L->chunk_stride;
        }
    }
    int64_t c0 = np % L->chunk;
    float *d = col + np / L->chunk * L->chunk_stride + c0;
    for (int64_t k = 0; c0 && k < g->channels * taps; k++, d += L->row_stride)
        memset(d, 0, sizeof(float) * (size_t)(L->chunk - c0));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_AVX2 __attribute__((target("avx2,fma")))

/* Lanes [c, c + 16): the mask of those inside [lo, hi). */
static __mmask16 lanes(int64_t c, int64_t lo, int64_t hi)
{
    int64_t a = kn_clamp64(lo - c, 0, 16), b = kn_clamp64(hi - c, a, 16);
    return (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
}

/* Stride 1: one masked load per 16 columns. */
KN_AVX512 static void tap_s1_avx512(const tap_run *t)
{
    for (int64_t c = 0; c < t->n; c += 16) {
        __mmask16 st = lanes(c, 0, t->n), m = lanes(c, t->lo, t->hi);
        const float *src = (const float *)t->base + c;
        float *d = t->d + c;
        for (int64_t ci = 0; ci < t->nci; ci++, src += t->plane, d += t->dstep)
            _mm512_mask_storeu_ps(d, st, _mm512_maskz_loadu_ps(m, src));
    }
}

/* Stride 2: per 16 columns the even lanes of two loads of 16; only the lanes of
 * columns in [lo, hi) are loaded, the rest (and every odd lane) read as zero. */
KN_AVX512 static void tap_s2_avx512(const tap_run *t)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    for (int64_t c = 0; c < t->n; c += 16) {
        int64_t a = kn_clamp64(t->lo - c, 0, 16), b = kn_clamp64(t->hi - c, a, 16);
        uint64_t in = (((uint64_t)1 << (2 * b)) - 1) & ~(((uint64_t)1 << (2 * a)) - 1) &
                      0x55555555u;
        __mmask16 st = lanes(c, 0, t->n), m0 = (__mmask16)in, m1 = (__mmask16)(in >> 16);
        const float *src = (const float *)t->base + 2 * c;
        float *d = t->d + c;
        for (int64_t ci = 0; ci < t->nci; ci++, src += t->plane, d += t->dstep) {
            __m512 v0 = _mm512_maskz_loadu_ps(m0, src), v1 = _mm512_maskz_loadu_ps(m1, src + 16);
            _mm512_mask_storeu_ps(d, st, _mm512_permutex2var_ps(v0, even, v1));
        }
    }
}

KN_AVX512 static void tile_avx512(const kn_conv2d_geom *g, const col_layout *L, const float *x,
                                  int64_t p0, int64_t np, float *col)
{
    tap_fn tap = g->sw == 1 ? tap_s1_avx512 : g->sw == 2 ? tap_s2_avx512 : tap_plain;
    tile_pieces(g, L, tap, x, p0, np, col);
}

/* Lanes [c, c + 8) as an AVX2 mask: all bits set for those inside [lo, hi). */
KN_AVX2 static __m256i lanes8(__m256i idx, int64_t c, int64_t lo, int64_t hi)
{
    __m256i a = _mm256_set1_epi32((int)kn_clamp64(lo - c, 0, 8));
    __m256i b = _mm256_set1_epi32((int)kn_clamp64(hi - c, 0, 8));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(a, idx), _mm256_cmpgt_epi32(b, idx));
}

KN_AVX2 static void tap_s1_avx2(const tap_run *t)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t c = 0; c < t->n; c += 8) {
        __m256i st = lanes8(idx, c, 0, t->n), m = lanes8(idx, c, t->lo, t->hi);
        const float *src = (const float *)t->base + c;
        float *d = t->d + c;
        for (int64_t ci = 0; ci < t->nci; ci++, src += t->plane, d += t->dstep)
            _mm256_maskstore_ps(d, st, _mm256_maskload_ps(src, m));
    }
}

/* Stride 2: per 8 columns the even lanes of two loads of 8 (masked like the
 * AVX-512 kernel's): a shuffle picks them per 128-bit half, a permute of the
 * 64-bit quarters puts them in order. */
KN_AVX2 static void tap_s2_avx2(const tap_run *t)
{
    /* input lane e of a load holds column e / 2 (odd lanes: never, -1) */
    const __m256i half0 = _mm256_setr_epi32(0, -1, 1, -1, 2, -1, 3, -1);
    const __m256i half1 = _mm256_setr_epi32(4, -1, 5, -1, 6, -1, 7, -1);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t c = 0; c < t->n; c += 8) {
        __m256i st = lanes8(idx, c, 0, t->n);
        __m256i m0 = lanes8(half0, c, t->lo, t->hi), m1 = lanes8(half1, c, t->lo, t->hi);
        const float *src = (const float *)t->base + 2 * c;
        float *d = t->d + c;
        for (int64_t ci = 0; ci < t->nci; ci++, src += t->plane, d += t->dstep) {
            __m256 v0 = _mm256_maskload_ps(src, m0), v1 = _mm256_maskload_ps(src + 8, m1);
            __m256 e = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
            __m256d q = _mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0));
            e = _mm256_castpd_ps(q);
            _mm256_maskstore_ps(d, st, e);
        }
    }
}

KN_AVX2 static void tile_avx2(const kn_conv2d_geom *g, const col_layout *L, const float *x,
                              int64_t p0, int64_t np, float *col)
{
    tap_fn tap = g->sw == 1 ? tap_s1_avx2 : g->sw == 2 ? tap_s2_avx2 : tap_plain;
    tile_pieces(g, L, tap, x, p0, np, col);
}

static tile_fn tile_fn_avx512(void) { return tile_avx512; }
static tile_fn tile_fn_avx2(void) { return tile_avx2; }
#else
static tile_fn tile_fn_avx512(void) { return NULL; }
static tile_fn tile_fn_avx2(void) { return NULL; }
#endif

static void tile_plain(const kn_conv2d_geom *g, const col_layout *L, const float *x, int64_t p0,
                       int64_t np, float *col)
{
    tile_row t = {g, L, x, 0, 0, p0, np, col};
    int64_t plane = g->ih * g->iw;
    for (int64_t ci = 0; ci < g->channels; ci++, t.xc += plane)
        for (t.ky = 0; t.ky < g->kh; t.ky++)
            for (t.kx = 0; t.kx < g->kw; t.kx++, t.dst += L->row_stride)
                walk_row(&t);
}

/* The tile walk of kernel level isa (capped by the CPU). */
static tile_fn tile_fn_for(kn_isa isa)
{
    isa = kn_cpu_isa_cap(isa);
    tile_fn fn = isa >= KN_ISA_AVX512 ? tile_fn_avx512() : NULL;
    if (!fn && isa >= KN_ISA_AVX2)
        fn = tile_fn_avx2();
    return fn ? fn : tile_plain;
}

void kn_im2col_tile(const kn_conv2d_geom *g, const float *x, int64_t p0, int64_t np, float *col)
{
    col_layout L = {np, np, 0};
    tile_plain(g, &L, x, p0, np, col);
}

void kn_im2col_tile_isa(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                        int64_t np, float *col)
{
    col_layout L = {np, np, 0};
    tile_fn_for(isa)(g, &L, x, p0, np, col);
}

void kn_im2col_tile_packed(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                           int64_t np, float *col)
{
    int64_t K = g->channels * g->kh * g->kw;
    col_layout L = {KN_SGEMM_PANEL, KN_SGEMM_PANEL, K * KN_SGEMM_PANEL};
    tile_fn_for(isa)(g, &L, x, p0, np, col);
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
