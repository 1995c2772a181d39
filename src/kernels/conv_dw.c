/* conv_dw.c - depthwise 2-D convolution of one channel plane.  On AVX-512, 3x3 and
 * 5x5 kernels at strides 1 / 2 read the input in place (conv_dw_avx512.c).
 * Otherwise the input is first
 * copied into scratch with its padding made explicit and its columns split by
 * stride phase (column c goes to phase c % sw, position c / sw), so that every
 * kernel tap reads a contiguous run of the padded row for consecutive outputs,
 * whatever the stride, dilation or padding.  The row kernels (generic here,
 * AVX2 / AVX-512 in conv_dw_avx2.c / conv_dw_avx512.c) then sum the taps along
 * the output row.  kn_dwconv_plane_ref is the plain reference. */
#include "kernels/conv_kernels.h"

#include <string.h>

/* Taps the fast path handles (7 x 7 and smaller, or thin kernels up to 64). */
#define DW_MAX_TAPS 64
/* Largest padded plane accepted (floats), keeps scratch per thread bounded. */
#define DW_MAX_PLANE ((int64_t)1 << 24)
/* Zeroed floats after the padded plane: vector loads of the last row may run
 * past its valid part (results of those lanes are never stored). */
#define DW_SLACK 64

typedef struct dw_layout {
    int64_t ph, pw, pwp, rs; /* padded rows, padded width, phase width, row stride */
} dw_layout;

static int dw_layout_of(const kn_dw_geom *g, dw_layout *L)
{
    if (g->oh < 1 || g->ow < 1 || g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1 ||
        g->dh < 1 || g->dw < 1 || g->kh * g->kw > DW_MAX_TAPS)
        return 0;
    if (g->oh > DW_MAX_PLANE || g->ow > DW_MAX_PLANE || g->sh > DW_MAX_PLANE ||
        g->sw > DW_MAX_PLANE || g->dh > DW_MAX_PLANE || g->dw > DW_MAX_PLANE)
        return 0;
    L->ph = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    L->pw = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    if (L->ph > DW_MAX_PLANE || L->pw > DW_MAX_PLANE)
        return 0;
    L->pwp = (L->pw + g->sw - 1) / g->sw;
    L->rs = g->sw * L->pwp;
    return L->rs <= DW_MAX_PLANE && L->ph * L->rs <= DW_MAX_PLANE;
}

size_t kn_dw_scratch_floats(const kn_dw_geom *g)
{
    dw_layout L;
    if (!dw_layout_of(g, &L))
        return 0;
    return (size_t)(L.ph * L.rs + DW_SLACK);
}

static int64_t split2_generic(const float *src, int64_t pairs, float *even, float *odd)
{
    for (int64_t j = 0; j < pairs; j++) {
        even[j] = src[2 * j];
        odd[j] = src[2 * j + 1];
    }
    return pairs;
}

/* Stride 2: input columns ix, ix + 1 (ix even) land in the two phases at the
 * same or next position, so one pass deinterleaves pairs (a loop compilers vectorize). */
static void fill_row_stride2(const kn_dw_geom *g, const dw_layout *L, kn_dw_split2_fn split,
                             const float *xr, float *dst)
{
    int64_t n = g->iw < L->pw - g->pl ? g->iw : L->pw - g->pl; /* input columns that land */
    memset(dst, 0, sizeof(float) * (size_t)L->rs);
    if (n <= 0)
        return;
    int64_t h = g->pl / 2;
    float *first = (g->pl & 1) ? dst + L->pwp + h : dst + h;   /* gets the even ix */
    float *second = (g->pl & 1) ? dst + h + 1 : dst + L->pwp + h; /* gets the odd ix */
    int64_t pairs = n / 2;
    int64_t done = split(xr, pairs, first, second);
    split2_generic(xr + 2 * done, pairs - done, first + done, second + done);
    if (n & 1)
        first[pairs] = xr[n - 1];
}

/* One padded row (input row iy, or zeros when iy is outside), phase-split. */
/* The per-ISA helpers of the padded copy. */
typedef struct dw_fill_fns {
    kn_dw_split2_fn split;
    kn_dw_shift_fn shift; /* NULL: memset / memcpy */
} dw_fill_fns;

static void fill_row(const kn_dw_geom *g, const dw_layout *L, const dw_fill_fns *f,
                     const float *x, int64_t iy, float *dst)
{
    kn_dw_split2_fn split = f->split;
    if (iy < 0 || iy >= g->ih) {
        memset(dst, 0, sizeof(float) * (size_t)L->rs);
        return;
    }
    const float *xr = x + iy * g->iw;
    if (g->sw == 1) {
        int64_t lo = g->pl < L->pw ? g->pl : L->pw;
        int64_t hi = g->pl + g->iw < L->pw ? g->pl + g->iw : L->pw;
        if (f->shift) {
            f->shift(xr, lo, hi > lo ? hi : lo, L->rs, dst);
            return;
        }
        memset(dst, 0, sizeof(float) * (size_t)lo);
        if (hi > lo)
            memcpy(dst + lo, xr, sizeof(float) * (size_t)(hi - lo));
        else
            hi = lo;
        memset(dst + hi, 0, sizeof(float) * (size_t)(L->rs - hi));
        return;
    }
    if (g->sw == 2) {
        fill_row_stride2(g, L, split, xr, dst);
        return;
    }
    for (int64_t ph = 0; ph < g->sw; ph++) {
        /* phase ph holds columns c = j * sw + ph, input column c - pl */
        float *d = dst + ph * L->pwp;
        int64_t jlo = kn_clamp64(kn_ceil_div(g->pl - ph, g->sw), 0, L->pwp);
        int64_t jhi = kn_clamp64(kn_ceil_div(g->iw + g->pl - ph, g->sw), jlo, L->pwp);
        jhi = kn_clamp64(kn_ceil_div(L->pw - ph, g->sw), jlo, jhi);
        const float *src = xr + ph - g->pl + jlo * g->sw;
        memset(d, 0, sizeof(float) * (size_t)jlo);
        for (int64_t j = jlo; j < jhi; j++, src += g->sw)
            d[j] = *src;
        memset(d + jhi, 0, sizeof(float) * (size_t)(L->pwp - jhi));
    }
}

static void dw_row_generic(const kn_dw_rows *r)
{
    for (int64_t i = 0; i < r->rows; i++) {
        const float *src = r->src + i * r->src_stride, *z = r->z ? r->z + i * r->ow : NULL;
        float *y = r->y + i * r->ow;
        for (int64_t ox = 0; ox < r->ow; ox++)
            y[ox] = r->bias;
        for (int t = 0; t < r->ntaps; t++) {
            const float *s = src + r->toff[t];
            float w = r->tw[t];
            for (int64_t ox = 0; ox < r->ow; ox++)
                y[ox] += w * s[ox];
        }
        for (int64_t ox = 0; z && ox < r->ow; ox++)
            y[ox] += z[ox];
        for (int64_t ox = 0; r->clamp && ox < r->ow; ox++) {
            float v = y[ox] < r->lo ? r->lo : y[ox];
            y[ox] = v > r->hi ? r->hi : v;
        }
    }
}

int64_t kn_dw_padded_row_floats(const kn_dw_geom *g)
{
    dw_layout L;
    return dw_layout_of(g, &L) ? L.rs : 0;
}

int64_t kn_dw_tap_offset(const kn_dw_geom *g, int64_t ky, int64_t kx)
{
    dw_layout L;
    if (!dw_layout_of(g, &L))
        return 0;
    int64_t c = kx * g->dw;
    return ky * g->dh * L.rs + (c % g->sw) * L.pwp + c / g->sw;
}

/* The row kernel and padded-copy helpers of level isa (capped by the CPU). */
static void kernels_for(kn_isa isa, kn_dw_row_fn *row, dw_fill_fns *f)
{
    *row = NULL;
    f->split = NULL;
    f->shift = NULL;
    isa = kn_cpu_isa_cap(isa);
    if (isa >= KN_ISA_AVX512 && (*row = kn_dw_row_avx512())) {
        f->split = kn_dw_split2_avx512();
        f->shift = kn_dw_shift_avx512();
    }
    if (!*row && isa >= KN_ISA_AVX2 && (*row = kn_dw_row_avx2()))
        f->split = kn_dw_split2_avx2();
    if (!*row || !f->split) {
        *row = dw_row_generic;
        f->split = split2_generic;
        f->shift = NULL;
    }
}

void kn_dw_fill_rows(kn_isa isa, const kn_dw_geom *g, const float *x, int64_t r0, int64_t n,
                     float *dst)
{
    dw_layout L;
    kn_dw_row_fn row;
    dw_fill_fns f;
    if (!dw_layout_of(g, &L))
        return;
    kernels_for(isa, &row, &f);
    for (int64_t r = 0; r < n; r++)
        fill_row(g, &L, &f, x, r0 + r - g->pt, dst + r * L.rs);
}

/* The in-place stride-1 kernel of level isa (capped by the CPU), or NULL. */
static kn_dw_inplace_fn inplace_kernel(kn_isa isa)
{
    isa = kn_cpu_isa_cap(isa);
    return isa >= KN_ISA_AVX512 ? kn_dw_inplace_avx512() : NULL;
}

/* The row-blocked kernel of level isa (capped by the CPU), or NULL. */
static kn_dw_block_fn block_kernel(kn_isa isa)
{
    isa = kn_cpu_isa_cap(isa);
    return isa >= KN_ISA_AVX512 ? kn_dw_block_avx512() : NULL;
}

/* Each tap's offset in the padded copy (from an output row's start) and weight. */
static int build_taps(const kn_dw_geom *g, const dw_layout *L, const float *w, int64_t *toff,
                      float *tw)
{
    int nt = 0;
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++, nt++) {
            int64_t c = kx * g->dw, phase = g->sw == 1 ? 0 : c % g->sw; /* no divides at stride 1 */
            toff[nt] = ky * g->dh * L->rs + phase * L->pwp + (g->sw == 1 ? c : c / g->sw);
            tw[nt] = w[nt];
        }
    return nt;
}

/* The plane through the padded copy in scratch and the row kernels. */
static void plane_padded(kn_isa isa, const kn_dw_geom *g, const dw_layout *L, const float *x,
                         const float *w, float bias, const float *z, int clamp, float lo,
                         float hi, float *scratch, float *y)
{
    kn_dw_row_fn row;
    dw_fill_fns f;
    kernels_for(isa, &row, &f);
    for (int64_t r = 0; r < L->ph; r++)
        fill_row(g, L, &f, x, r - g->pt, scratch + r * L->rs);
    memset(scratch + L->ph * L->rs, 0, sizeof(float) * DW_SLACK);
    int64_t toff[DW_MAX_TAPS];
    float tw[DW_MAX_TAPS];
    int nt = build_taps(g, L, w, toff, tw);
    kn_dw_rows rows = {scratch, g->sh * L->rs, g->oh, g->ow, toff, tw, nt, clamp, bias,
                       lo, hi, z, y, L->rs, (int)g->kh, (int)g->kw, (int)g->sh, (int)g->dh};
    kn_dw_block_fn block = block_kernel(isa);
    if (!block || !block(&rows))
        row(&rows);
}

void kn_dwconv_plane(kn_isa isa, const kn_dw_geom *g, const float *x, const float *w, float bias,
                     const float *z, const kn_conv_act *act, float *scratch, float *y)
{
    dw_layout L;
    float lo = 0.0f, hi = 0.0f;
    int inline_act = kn_conv_act_is_clamp(act, &lo, &hi);
    int clamp = inline_act && act && act->kind != KN_CONV_ACT_NONE;
    kn_dw_inplace_fn inplace = inplace_kernel(isa); /* needs no scratch: tried first */
    int done = inplace && inplace(g, x, w, bias, z, clamp, lo, hi, y);
    if (!done && !dw_layout_of(g, &L)) { /* callers check kn_dw_scratch_floats first */
        kn_dwconv_plane_ref(g, x, w, bias, z, act, y);
        return;
    }
    if (!done)
        plane_padded(isa, g, &L, x, w, bias, z, clamp, lo, hi, scratch, y);
    if (!inline_act)
        kn_conv_act_apply(act, y, (size_t)(g->oh * g->ow));
}

void kn_dwconv_plane_ref(const kn_dw_geom *g, const float *x, const float *w, float bias,
                         const float *z, const kn_conv_act *act, float *y)
{
    for (int64_t oy = 0; oy < g->oh; oy++)
        for (int64_t ox = 0; ox < g->ow; ox++) {
            double acc = bias;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                for (int64_t kx = 0; iy >= 0 && iy < g->ih && kx < g->kw; kx++) {
                    int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix >= 0 && ix < g->iw)
                        acc += (double)w[ky * g->kw + kx] * x[iy * g->iw + ix];
                }
            }
            float v = (float)acc + (z ? z[oy * g->ow + ox] : 0.0f);
            y[oy * g->ow + ox] = kn_conv_act_one(act, v);
        }
}
