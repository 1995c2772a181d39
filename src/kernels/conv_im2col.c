/* conv_im2col.c - column matrices for the GEMM convolutions (2-D, one group):
 * im2col of a tile of output pixels (the forward conv's B operand; stride-1
 * segments go through the depthwise kernel's masked AVX-512 shift) and the
 * col2im scatter of one output channel over a band of input rows (the
 * transposed conv's fold). */
#include "kernels/conv_kernels.h"

#include <string.h>

/* Output columns [ox0, ox0 + n) of one row for tap offset kx: zeros where the
 * input column ox * sw - pl + kx * dw falls outside [0, iw), else xr at it.
 * shift (may be NULL) copies stride-1 segments in one pass. */
static void gather_segment(const kn_conv2d_geom *g, kn_dw_shift_fn shift, const float *xr,
                           int64_t kx, int64_t ox0, int64_t n, float *dst)
{
    int64_t off = kx * g->dw - g->pl, s = g->sw;
    int64_t lo = kn_clamp64(s == 1 ? -off : kn_ceil_div(-off, s), ox0, ox0 + n); /* no divide at stride 1 */
    int64_t hi = kn_clamp64(s == 1 ? g->iw - off : kn_ceil_div(g->iw - off, s), lo, ox0 + n);
    if (s == 1 && shift) {
        shift(xr + lo + off, lo - ox0, hi - ox0, n, dst);
        return;
    }
    memset(dst, 0, sizeof(float) * (size_t)(lo - ox0));
    if (g->sw == 1) {
        memcpy(dst + (lo - ox0), xr + lo + off, sizeof(float) * (size_t)(hi - lo));
    } else {
        for (int64_t ox = lo; ox < hi; ox++)
            dst[ox - ox0] = xr[ox * g->sw + off];
    }
    memset(dst + (hi - ox0), 0, sizeof(float) * (size_t)(ox0 + n - hi));
}

static void im2col_tile(const kn_conv2d_geom *g, kn_dw_shift_fn shift, const float *x,
                        int64_t p0, int64_t np, float *col)
{
    int64_t plane = g->ih * g->iw, oy0 = p0 / g->ow, ox00 = p0 % g->ow;
    for (int64_t ci = 0; ci < g->channels; ci++) {
        const float *xc = x + ci * plane;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            for (int64_t kx = 0; kx < g->kw; kx++, col += np) {
                /* the tile's pixels row by row: the first from ox00, the rest from 0 */
                for (int64_t p = p0, oy = oy0, ox0 = ox00; p < p0 + np; oy++, ox0 = 0) {
                    int64_t seg = g->ow - ox0 < p0 + np - p ? g->ow - ox0 : p0 + np - p;
                    int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->ih)
                        memset(col + (p - p0), 0, sizeof(float) * (size_t)seg);
                    else
                        gather_segment(g, shift, xc + iy * g->iw, kx, ox0, seg, col + (p - p0));
                    p += seg;
                }
            }
        }
    }
}

void kn_im2col_tile(const kn_conv2d_geom *g, const float *x, int64_t p0, int64_t np, float *col)
{
    im2col_tile(g, NULL, x, p0, np, col);
}

void kn_im2col_tile_isa(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                        int64_t np, float *col)
{
    if (isa > kn_cpu_isa_supported())
        isa = kn_cpu_isa_supported();
    im2col_tile(g, isa >= KN_ISA_AVX512 ? kn_dw_shift_avx512() : NULL, x, p0, np, col);
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
