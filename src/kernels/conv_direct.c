/* conv_direct.c - direct float32 NCHW 2-D convolution for convs over few input
 * channels (the RGB stem of a CNN: 3 -> 32, 3x3 stride 2, K = 27), where the
 * im2col + GEMM path is dominated by building columns for a GEMM with a tiny K.
 * Work is split into bands of output rows of one image: the band's input rows
 * of every channel are copied into per-thread scratch in the depthwise kernel's
 * padded, phase-split layout (conv_dw.c), so that each tap (ci, ky, kx) is one
 * contiguous run per output row; a row kernel (generic here, AVX-512 in
 * conv_direct_avx512.c) then sums all taps for KN_DIRECT_CO output channels at a
 * time, with bias, FusedConv residual and Relu/Clip in its epilogue. */
#include "kernels/conv_kernels.h"

#include <string.h>

#include "exec/threadpool.h"

/* Taps (input channels x kernel size) the direct path accepts. */
#define DIRECT_MAX_TAPS 160
/* A band's padded rows aim at this many floats (stays in L1 while all output
 * channels sweep it). */
#define BAND_FLOATS 8192
/* Bands larger than this (floats) are not worth it: the conv goes to im2col. */
#define BAND_MAX_FLOATS ((int64_t)1 << 22)
/* Zeroed floats after the band copy. */
#define BAND_SLACK 16

static kn_dw_geom plane_geom(const kn_conv2d_geom *g)
{
    kn_dw_geom d = {g->ih, g->iw, g->oh, g->ow, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw,
                    g->pt, g->pl};
    return d;
}

/* Padded input rows that `rows` consecutive output rows read. */
static int64_t band_in_rows(const kn_conv2d_geom *g, int64_t rows)
{
    return (rows - 1) * g->sh + (g->kh - 1) * g->dh + 1;
}

/* Output rows per band: as many as keep the copy near BAND_FLOATS (at least 1). */
static int64_t band_rows(const kn_conv2d_geom *g, int64_t rs)
{
    int64_t r = 1;
    while (r < g->oh && g->channels * band_in_rows(g, r + 1) * rs <= BAND_FLOATS)
        r++;
    return r;
}

/* Floats of one thread's band copy, or -1 when the direct path does not apply. */
static int64_t band_floats(const kn_conv2d_geom *g)
{
    if (g->channels < 1 || g->channels * g->kh * g->kw > DIRECT_MAX_TAPS)
        return -1;
    kn_dw_geom d = plane_geom(g);
    int64_t rs = kn_dw_padded_row_floats(&d);
    if (rs <= 0 || rs > BAND_MAX_FLOATS)
        return -1;
    int64_t per_ch = band_in_rows(g, band_rows(g, rs)) * rs;
    if (per_ch > BAND_MAX_FLOATS / g->channels)
        return -1;
    return (g->channels * per_ch + BAND_SLACK + 15) / 16 * 16;
}

int kn_conv2d_direct_weights(int64_t group, int64_t channels, int64_t kh, int64_t kw)
{
    return group == 1 && channels >= 1 && kh >= 1 && kw >= 1 &&
           channels * kh * kw <= DIRECT_MAX_TAPS && !(kh == 1 && kw == 1);
}

int kn_conv2d_direct_ok(const kn_conv2d_args *a)
{
    return kn_conv2d_direct_weights(a->group, a->g.channels, a->g.kh, a->g.kw) && a->w &&
           band_floats(&a->g) > 0;
}

size_t kn_conv2d_direct_slice_floats(const kn_conv2d_args *a)
{
    return (size_t)band_floats(&a->g);
}

void kn_direct_rows_generic(const kn_direct_rows *r)
{
    for (int co = 0; co < r->nco; co++) {
        const float *w = r->w + co * r->ntaps;
        for (int64_t i = 0; i < r->rows; i++) {
            const float *src = r->src + i * r->src_stride;
            const float *z = r->z ? r->z + co * r->plane + i * r->ow : NULL;
            float *y = r->y + co * r->plane + i * r->ow;
            for (int64_t ox = 0; ox < r->ow; ox++)
                y[ox] = r->bias[co];
            for (int t = 0; t < r->ntaps; t++) {
                const float *s = src + r->toff[t];
                for (int64_t ox = 0; ox < r->ow; ox++)
                    y[ox] += w[t] * s[ox];
            }
            for (int64_t ox = 0; z && ox < r->ow; ox++)
                y[ox] += z[ox];
            for (int64_t ox = 0; r->clamp && ox < r->ow; ox++) {
                float v = y[ox] < r->lo ? r->lo : y[ox];
                y[ox] = v > r->hi ? r->hi : v;
            }
        }
    }
}

static kn_direct_row_fn row_kernel(kn_isa isa)
{
    kn_direct_row_fn f = NULL;
    isa = kn_cpu_isa_cap(isa);
    if (isa >= KN_ISA_AVX512)
        f = kn_direct_row_avx512();
    return f ? f : kn_direct_rows_generic;
}

typedef struct direct_job {
    const kn_conv2d_args *a;
    kn_isa isa;
    kn_direct_row_fn row;
    float *scratch;
    int64_t slice, rows, rs, cstride, bands, ntaps;
    int64_t toff[DIRECT_MAX_TAPS];
} direct_job;

/* Weights and bias of output channels [co0, co0 + nco), zero padded to KN_DIRECT_CO. */
static void block_weights(const direct_job *j, int64_t co0, int nco, float *w, float *bias)
{
    const kn_conv2d_args *a = j->a;
    memset(w, 0, sizeof(float) * (size_t)(KN_DIRECT_CO * j->ntaps));
    memcpy(w, a->w + co0 * j->ntaps, sizeof(float) * (size_t)(nco * j->ntaps));
    for (int c = 0; c < KN_DIRECT_CO; c++)
        bias[c] = a->bias && c < nco ? a->bias[co0 + c] : 0.0f;
}

/* All output channels of rows [oy0, oy0 + rows) of image n from the band copy. */
static void band_outputs(const direct_job *j, int64_t n, int64_t oy0, int64_t rows,
                         const float *band)
{
    const kn_conv2d_args *a = j->a;
    int64_t P = a->g.oh * a->g.ow;
    float w[KN_DIRECT_CO * DIRECT_MAX_TAPS], bias[KN_DIRECT_CO];
    kn_direct_rows r = {band, a->g.sh * j->rs, rows, a->g.ow, P, j->toff, w, bias,
                        (int)j->ntaps, 0, 0, 0.0f, 0.0f, NULL, NULL};
    int inline_act = kn_conv_act_is_clamp(&a->act, &r.lo, &r.hi);
    r.clamp = inline_act && a->act.kind != KN_CONV_ACT_NONE;
    for (int64_t co0 = 0; co0 < a->m; co0 += KN_DIRECT_CO) {
        int64_t off = (n * a->m + co0) * P + oy0 * a->g.ow;
        r.nco = a->m - co0 < KN_DIRECT_CO ? (int)(a->m - co0) : KN_DIRECT_CO;
        block_weights(j, co0, r.nco, w, bias);
        r.y = a->y + off;
        r.z = a->z ? a->z + off : NULL;
        j->row(&r);
        for (int c = 0; !inline_act && c < r.nco; c++)
            kn_conv_act_apply(&a->act, r.y + c * P, (size_t)(rows * a->g.ow));
    }
}

static void direct_bands(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const direct_job *j = ctx;
    const kn_conv2d_args *a = j->a;
    const kn_conv2d_geom *g = &a->g;
    kn_dw_geom d = plane_geom(g);
    float *band = j->scratch + thread_index * j->slice;
    for (int64_t q = begin; q < end; q++) {
        int64_t n = q / j->bands, oy0 = q % j->bands * j->rows;
        int64_t rows = g->oh - oy0 < j->rows ? g->oh - oy0 : j->rows;
        for (int64_t ci = 0; ci < g->channels; ci++)
            kn_dw_fill_rows(j->isa, &d, a->x + (n * g->channels + ci) * g->ih * g->iw,
                            oy0 * g->sh, band_in_rows(g, rows), band + ci * j->cstride);
        memset(band + g->channels * j->cstride, 0, sizeof(float) * BAND_SLACK);
        band_outputs(j, n, oy0, rows, band);
    }
    kn_cpu_clear_upper();
}

void kn_conv2d_direct_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                          float *scratch, size_t scratch_floats)
{
    const kn_conv2d_geom *g = &a->g;
    kn_dw_geom d = plane_geom(g);
    direct_job j = {.a = a, .isa = isa, .row = row_kernel(isa), .scratch = scratch};
    j.slice = band_floats(g);
    j.rs = kn_dw_padded_row_floats(&d);
    j.rows = band_rows(g, j.rs);
    j.cstride = band_in_rows(g, j.rows) * j.rs;
    j.bands = (g->oh + j.rows - 1) / j.rows;
    j.ntaps = g->channels * g->kh * g->kw;
    for (int64_t ci = 0, t = 0; ci < g->channels; ci++)
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++, t++)
                j.toff[t] = ci * j.cstride + kn_dw_tap_offset(&d, ky, kx);
    int64_t tasks = a->batch * j.bands;
    if ((int64_t)(scratch_floats / (size_t)j.slice) >= kn_threadpool_size(pool))
        kn_parallel_for(pool, tasks, 1, direct_bands, &j);
    else
        direct_bands(&j, 0, tasks, 0);
}
