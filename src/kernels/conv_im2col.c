/* conv_im2col.c - column matrices for the GEMM convolutions (2-D, one group):
 * im2col of a tile of output pixels (the forward conv's B operand), either as
 * plain rows or straight in the GEMM's packed-B panel layout (kernels/sgemm.h),
 * with the plain C row walk as the reference and an AVX-512 one (masked shifts
 * at stride 1, the even lanes of two loads at stride 2); and the col2im scatter
 * of one output channel over a band of input rows (the transposed conv's fold). */
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


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* Lanes [c, c + 16): the mask of those inside [lo, hi). */
static __mmask16 lanes(int64_t c, int64_t lo, int64_t hi)
{
    int64_t a = kn_clamp64(lo - c, 0, 16), b = kn_clamp64(hi - c, a, 16);
    return (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u));
}

/* Channels of a tile the AVX-512 walk takes at once: their input rows and
 * destination rows stay in L1 while every tap of a piece is gathered. */
#define CI_BLOCK 32

/* A piece of a tile: output row oy, columns [ox, ox + n), its destination at dst
 * (row 0 of the channel block), rows L->row_stride apart. */
typedef struct piece {
    int64_t oy, ox, n;
    float *dst;
} piece;

/* Lanes [c, c + 16) of one tap of a piece for nci channels (input planes plane
 * apart from base, the address of lane 0's input column, destination rows dstep
 * apart from d): lanes in [lo, hi) read input column s * lane, the others zero. */
KN_AVX512 static void tap_group_avx512(uintptr_t base, int64_t s, int64_t plane, int64_t nci,
                                       int64_t c, int64_t lo, int64_t hi, int64_t n, float *d,
                                       int64_t dstep)
{
    __mmask16 st = lanes(c, 0, n);
    const float *src = (const float *)(base + (uintptr_t)(c * s) * sizeof(float));
    if (s == 1) {
        __mmask16 m = lanes(c, lo, hi);
        for (int64_t ci = 0; ci < nci; ci++, src += plane, d += dstep)
            _mm512_mask_storeu_ps(d + c, st, _mm512_maskz_loadu_ps(m, src));
    } else if (s == 2) {
        /* the even lanes of the 32 floats from src; only those of lanes in [lo,
         * hi) are loaded, the rest (and every odd lane) read as zero */
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                               26, 28, 30);
        int64_t a = kn_clamp64(lo - c, 0, 16), b = kn_clamp64(hi - c, a, 16);
        uint64_t in = (((uint64_t)1 << (2 * b)) - 1) & ~(((uint64_t)1 << (2 * a)) - 1) &
                      0x55555555u;
        __mmask16 m0 = (__mmask16)in, m1 = (__mmask16)(in >> 16);
        for (int64_t ci = 0; ci < nci; ci++, src += plane, d += dstep) {
            __m512 v0 = _mm512_maskz_loadu_ps(m0, src), v1 = _mm512_maskz_loadu_ps(m1, src + 16);
            _mm512_mask_storeu_ps(d + c, st, _mm512_permutex2var_ps(v0, even, v1));
        }
    } else {
        int64_t e = n - c < 16 ? n - c : 16, a = kn_clamp64(lo - c, 0, e), b = kn_clamp64(hi - c, a, e);
        for (int64_t ci = 0; ci < nci; ci++, src += plane, d += dstep) {
            _mm512_mask_storeu_ps(d + c, st, _mm512_setzero_ps());
            for (int64_t j = a; j < b; j++)
                d[c + j] = src[j * s];
        }
    }
}

/* Every tap of piece pc for the nci channels from xb. */
KN_AVX512 static void piece_avx512(const kn_conv2d_geom *g, const col_layout *L, const float *xb,
                                   int64_t nci, const piece *pc)
{
    int64_t s = g->sw, plane = g->ih * g->iw, dstep = g->kh * g->kw * L->row_stride;
    float *d = pc->dst;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        int64_t iy = pc->oy * g->sh - g->pt + ky * g->dh;
        for (int64_t kx = 0; kx < g->kw; kx++, d += L->row_stride) {
            int64_t off = kx * g->dw - g->pl;
            /* this tap's columns whose input column (ox + c) * s + off is in [0, iw) */
            int64_t lo = 0, hi = 0;
            if (iy >= 0 && iy < g->ih) {
                lo = kn_clamp64(kn_ceil_div(-off, s) - pc->ox, 0, pc->n);
                hi = kn_clamp64(kn_ceil_div(g->iw - off, s) - pc->ox, lo, pc->n);
            }
            uintptr_t base = (uintptr_t)(xb + (hi > lo ? iy * g->iw : 0)) +
                             (uintptr_t)((pc->ox * s + off) * (int64_t)sizeof(float));
            for (int64_t c = 0; c < pc->n; c += 16)
                tap_group_avx512(base, s, plane, nci, c, lo, hi, pc->n, d, dstep);
        }
    }
}

/* The zero columns past np in the last chunk of every row. */
KN_AVX512 static void pad_chunk_avx512(const col_layout *L, int64_t K, int64_t np, float *col)
{
    int64_t c0 = np % L->chunk;
    if (c0 == 0)
        return;
    float *d = col + np / L->chunk * L->chunk_stride;
    for (int64_t k = 0; k < K; k++, d += L->row_stride)
        for (int64_t c = c0 / 16 * 16; c < L->chunk; c += 16)
            _mm512_mask_storeu_ps(d + c, lanes(c, c0, L->chunk), _mm512_setzero_ps());
}

/* The tile walked piece by piece (each within one output row and one chunk), for
 * blocks of CI_BLOCK channels. */
KN_AVX512 static void tile_avx512(const kn_conv2d_geom *g, const col_layout *L, const float *x,
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
            piece_avx512(g, L, x + ci0 * plane, nci, &pc);
            r += pc.n, c += pc.n, pc.ox += pc.n;
            if (pc.ox == g->ow)
                pc.ox = 0, pc.oy++;
            if (c == L->chunk)
                c = 0, d += L->chunk_stride;
        }
    }
    pad_chunk_avx512(L, g->channels * taps, np, col);
}

static tile_fn tile_fn_avx512(void) { return tile_avx512; }
#else
static tile_fn tile_fn_avx512(void) { return NULL; }
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
    if (isa > kn_cpu_isa_supported())
        isa = kn_cpu_isa_supported();
    tile_fn fn = isa >= KN_ISA_AVX512 ? tile_fn_avx512() : NULL;
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
