/* conv_im2col.c - column matrices for the GEMM convolutions (2-D, one group):
 * im2col of a tile of output pixels (the forward conv's B operand) and the
 * col2im scatter of one output channel over a band of input rows (the
 * transposed conv's fold). */
#include "kernels/conv_kernels.h"

#include <string.h>

/* Output columns [ox0, ox0 + n) of one row for tap offset kx: zeros where the
 * input column ox * sw - pl + kx * dw falls outside [0, iw), else xr at it. */
static void gather_segment(const kn_conv2d_geom *g, const float *xr, int64_t kx, int64_t ox0,
                           int64_t n, float *dst)
{
    int64_t shift = kx * g->dw - g->pl;
    int64_t lo = kn_clamp64(kn_ceil_div(-shift, g->sw), ox0, ox0 + n);
    int64_t hi = kn_clamp64(kn_ceil_div(g->iw - shift, g->sw), lo, ox0 + n);
    memset(dst, 0, sizeof(float) * (size_t)(lo - ox0));
    if (g->sw == 1) {
        memcpy(dst + (lo - ox0), xr + lo + shift, sizeof(float) * (size_t)(hi - lo));
    } else {
        for (int64_t ox = lo; ox < hi; ox++)
            dst[ox - ox0] = xr[ox * g->sw + shift];
    }
    memset(dst + (hi - ox0), 0, sizeof(float) * (size_t)(ox0 + n - hi));
}

void kn_im2col_tile(const kn_conv2d_geom *g, const float *x, int64_t p0, int64_t np, float *col)
{
    int64_t plane = g->ih * g->iw;
    for (int64_t ci = 0; ci < g->channels; ci++) {
        const float *xc = x + ci * plane;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            for (int64_t kx = 0; kx < g->kw; kx++, col += np) {
                for (int64_t p = p0; p < p0 + np;) {
                    int64_t oy = p / g->ow, ox0 = p % g->ow;
                    int64_t seg = g->ow - ox0 < p0 + np - p ? g->ow - ox0 : p0 + np - p;
                    int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->ih)
                        memset(col + (p - p0), 0, sizeof(float) * (size_t)seg);
                    else
                        gather_segment(g, xc + iy * g->iw, kx, ox0, seg, col + (p - p0));
                    p += seg;
                }
            }
        }
    }
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
