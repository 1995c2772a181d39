/* conv_nchwc_dw.c - depthwise convolution (group == channels == m) on blocked
 * NCHWc16 tensors: weight packing ([Cp/16][kh][kw][16] + bias [Cp], zeros in the
 * padding), the plain reference, and the AVX-512 driver.  With 16 channels per
 * vector a tap is one multiply-add of a weight vector by the input pixel vector,
 * no broadcasts: a row is done 8 interior pixels at a time with every tap (for
 * 3- and 5-wide kernels each input vector loaded once for the taps sharing it),
 * the interior's tail in one call of 1..7 accumulators, the edge pixels one at
 * a time over the taps inside the image; bias, residual and a clamp (none /
 * Relu / Clip) in the epilogue, the other activations over the stored row.
 * Work splits over (image, block, row chunk); ISAs below AVX-512 run the
 * reference's rows over the same split. */
#include "kernels/nchwc_internal.h"

#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/nchwc_taps.h"

/* output-pixel x tap products per parallel task (sets the row chunk) */
#define DW_TASK_WORK 8192

/* ------------------------------------------------------------- packing */

static void *dw_alloc(size_t floats)
{
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes ? bytes : 64);
    return p;
}

kn_nchwc_weights *kn_nchwc_dw_pack(const kn_nchwc_conv *g, const float *w, const float *bias)
{
    if (!g || !w || g->channels < 1 || g->group != g->channels || g->m != g->channels ||
        g->kh < 1 || g->kw < 1 || g->kh > (1 << 16) || g->kw > (1 << 16) ||
        g->channels > ((int64_t)1 << 30))
        return NULL;
    int64_t cp = kn_nchwc_padded(g->channels), taps = g->kh * g->kw;
    if (taps > ((int64_t)1 << 40) / cp)
        return NULL;
    kn_nchwc_weights *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->g = *g;
    p->w = dw_alloc((size_t)(cp * taps));
    p->bias = dw_alloc((size_t)cp);
    if (!p->w || !p->bias) {
        free(p->w);
        free(p->bias);
        free(p);
        return NULL;
    }
    for (int64_t c = 0; c < g->channels; c++) {
        float *dst = p->w + (c / KN_NCHWC_BLOCK) * taps * KN_NCHWC_BLOCK + c % KN_NCHWC_BLOCK;
        for (int64_t t = 0; t < taps; t++)
            dst[t * KN_NCHWC_BLOCK] = w[c * taps + t];
        p->bias[c] = bias ? bias[c] : 0.0f;
    }
    p->bytes = sizeof(float) * (size_t)(cp * taps + cp);
    return p;
}

/* ------------------------------------------------------------ geometry */

/* [oxa, oxb): the output columns whose every tap lies inside the image. */
static void dw_interior(const kn_nchwc_conv *g, int64_t *oxa, int64_t *oxb)
{
    int64_t last = g->iw - 1 - (g->kw - 1) * g->dw + g->pl; /* ox * sw <= last */
    *oxa = kn_ceil_div(g->pl, g->sw);
    *oxb = last >= 0 ? last / g->sw + 1 : 0;
    *oxa = *oxa < g->ow ? *oxa : g->ow;
    *oxb = *oxb < g->ow ? *oxb : g->ow;
    if (*oxb < *oxa)
        *oxb = *oxa;
}

/* One job: the arguments, the blocks, the row chunking, the columns whose taps
 * all lie inside the image, the epilogue's clamp. */
typedef struct dw_job {
    const kn_nchwc_conv_args *a;
    int64_t cb, chunk, nchunks, oxa, oxb;
    int clamp;
    float lo, hi;
} dw_job;

static void dw_job_init(dw_job *j, const kn_nchwc_conv_args *a)
{
    const kn_nchwc_conv *g = a->g;
    j->a = a;
    j->cb = kn_nchwc_padded(g->channels) / KN_NCHWC_BLOCK;
    int64_t per_row = g->ow * g->kh * g->kw + 1;
    j->chunk = DW_TASK_WORK / per_row + 1;
    j->chunk = j->chunk < g->oh ? j->chunk : g->oh;
    j->nchunks = j->chunk > 0 ? (g->oh + j->chunk - 1) / j->chunk : 0;
    j->clamp = kn_conv_act_is_clamp(&a->act, &j->lo, &j->hi);
    dw_interior(g, &j->oxa, &j->oxb);
}

/* Block-plane offsets (floats) of image n, block b for the input and the output. */
static int64_t dw_x_plane(const dw_job *j, int64_t n, int64_t b)
{
    return ((n * j->cb + b) * j->a->g->ih * j->a->g->iw) * KN_NCHWC_BLOCK;
}

static int64_t dw_y_plane(const dw_job *j, int64_t n, int64_t b)
{
    return ((n * j->cb + b) * j->a->g->oh * j->a->g->ow) * KN_NCHWC_BLOCK;
}

/* The activation of a stored row when the epilogue did not apply it, then zeros
 * in the padding channels of the last block. */
static void dw_row_finish(const dw_job *j, int64_t b, float *y, int done_act)
{
    int64_t ow = j->a->g->ow, real = j->a->g->channels - b * KN_NCHWC_BLOCK;
    if (!done_act)
        kn_conv_act_apply(&j->a->act, y, (size_t)(ow * KN_NCHWC_BLOCK));
    for (int64_t p = 0; real < KN_NCHWC_BLOCK && p < ow; p++)
        memset(y + p * KN_NCHWC_BLOCK + real, 0, sizeof(float) * (size_t)(KN_NCHWC_BLOCK - real));
}

/* ----------------------------------------------------------- reference */

/* One lane of one output pixel, in double: bias + the taps inside the image. */
static float dw_ref_value(const dw_job *j, const float *x, const float *w, float bias,
                          int64_t oy, int64_t ox, int lane)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t iy = oy * g->sh - g->pt, ix = ox * g->sw - g->pl, kylo, kyhi, kxlo, kxhi;
    kn_nchwc_taps(iy, g->kh, g->dh, g->ih, &kylo, &kyhi);
    kn_nchwc_taps(ix, g->kw, g->dw, g->iw, &kxlo, &kxhi);
    double acc = bias;
    for (int64_t ky = kylo; ky < kyhi; ky++)
        for (int64_t kx = kxlo; kx < kxhi; kx++) {
            int64_t pix = (iy + ky * g->dh) * g->iw + ix + kx * g->dw;
            acc += (double)w[(ky * g->kw + kx) * KN_NCHWC_BLOCK + lane] * x[pix * KN_NCHWC_BLOCK + lane];
        }
    return (float)acc;
}

/* Output row oy of image n, block b, plain C. */
static void dw_row_ref(const dw_job *j, int64_t n, int64_t b, int64_t oy)
{
    const kn_nchwc_conv_args *a = j->a;
    const kn_nchwc_conv *g = a->g;
    const float *x = a->x + dw_x_plane(j, n, b);
    const float *w = a->w->w + b * g->kh * g->kw * KN_NCHWC_BLOCK;
    const float *bias = a->w->bias + b * KN_NCHWC_BLOCK;
    int64_t off = dw_y_plane(j, n, b) + oy * g->ow * KN_NCHWC_BLOCK;
    float *y = a->y + off;
    for (int64_t ox = 0; ox < g->ow; ox++)
        for (int l = 0; l < KN_NCHWC_BLOCK; l++) {
            float v = dw_ref_value(j, x, w, bias[l], oy, ox, l);
            int64_t o = ox * KN_NCHWC_BLOCK + l;
            v += a->z ? a->z[off + o] : 0.0f;
            y[o] = kn_conv_act_one(&a->act, v);
        }
    dw_row_finish(j, b, y, 1);
}

void kn_nchwc_dw_reference(const kn_nchwc_conv_args *a)
{
    dw_job j;
    dw_job_init(&j, a);
    for (int64_t n = 0; n < a->g->batch; n++)
        for (int64_t b = 0; b < j.cb; b++)
            for (int64_t oy = 0; oy < a->g->oh; oy++)
                dw_row_ref(&j, n, b, oy);
}

/* -------------------------------------------------------------- AVX-512 */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DW_HAVE_AVX512 1
#define DW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define DW_INLINE __attribute__((always_inline)) inline
/* full unrolling of the small constant loops keeps accumulators in registers */
#ifdef __clang__
#define DW_UNROLL _Pragma("unroll")
#else
#define DW_UNROLL _Pragma("GCC unroll 32")
#endif

/* What one output row shares: the input rows' origin, the taps' ranges. */
typedef struct dw_row {
    const float *x, *w; /* the block's input plane, its weights */
    const float *z;     /* residual row or NULL */
    float *y;
    int64_t iy, kylo, kyhi, dh16, dw16, sw16; /* iy = oy * sh - pt */
    int clamp;
    __m512 bias, lo, hi;
} dw_row;

/* acc[0..ns) + z (when there is one), clamped (when the act is a clamp), stored
 * at pixels ox..ox+ns-1 (ns <= np); the branches outside the per-pixel work. */
DW_AVX512 static DW_INLINE void dw_store(const dw_row *r, int64_t ox, __m512 *acc, const int np,
                                         int64_t ns)
{
    float *y = r->y + ox * KN_NCHWC_BLOCK;
    if (r->z) {
        const float *z = r->z + ox * KN_NCHWC_BLOCK;
DW_UNROLL
        for (int p = 0; p < np; p++)
            if (p < ns)
                acc[p] = _mm512_add_ps(acc[p], _mm512_loadu_ps(z + p * KN_NCHWC_BLOCK));
    }
    if (r->clamp) { /* max/min return the second operand for NaN: NaN stays NaN */
DW_UNROLL
        for (int p = 0; p < np; p++)
            acc[p] = _mm512_min_ps(r->hi, _mm512_max_ps(r->lo, acc[p]));
    }
DW_UNROLL
    for (int p = 0; p < np; p++)
        if (p < ns)
            _mm512_storeu_ps(y + p * KN_NCHWC_BLOCK, acc[p]);
}

/* np interior pixels from ox: every tap, np accumulators. */
DW_AVX512 static DW_INLINE void dw_pixels(const dw_job *j, const dw_row *r, int64_t ox, const int np)
{
    int64_t kw = j->a->g->kw;
    __m512 acc[8];
DW_UNROLL
    for (int p = 0; p < np; p++)
        acc[p] = r->bias;
    const kn_nchwc_conv *g = j->a->g;
    int64_t x0 = (r->iy * g->iw + ox * g->sw - g->pl) * KN_NCHWC_BLOCK;
    for (int64_t ky = r->kylo; ky < r->kyhi; ky++) {
        const float *xr = r->x + x0 + ky * r->dh16, *wr = r->w + ky * kw * KN_NCHWC_BLOCK;
        for (int64_t kx = 0; kx < kw; kx++, xr += r->dw16) {
            __m512 wv = _mm512_load_ps(wr + kx * KN_NCHWC_BLOCK);
DW_UNROLL
            for (int p = 0; p < np; p++)
                acc[p] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xr + p * r->sw16), acc[p]);
        }
    }
    dw_store(r, ox, acc, np, np);
}

/* 8 pixels from ox (the first ns of them stored) with a fixed kernel width KW,
 * stride S along x and dilation 1: each input row's 7 * S + KW column vectors
 * are loaded once and shared by the taps that read them.  With EDGE, columns
 * outside the image are zero vectors (not loaded), so the row's edges and tail
 * need no tap ranges; without, all lie inside. */
DW_AVX512 static DW_INLINE void dw_group(const dw_job *j, const dw_row *r, int64_t ox, int64_t ns,
                                         const int KW, const int S, const int EDGE)
{
    const kn_nchwc_conv *g = j->a->g;
    __m512 acc[8], xv[7 * 2 + 5];
DW_UNROLL
    for (int p = 0; p < 8; p++)
        acc[p] = r->bias;
    /* columns c0 + i, i in [ilo, ihi), lie in the image */
    int64_t c0 = ox * S - g->pl, ilo = EDGE ? -c0 : 0, ihi = EDGE ? g->iw - c0 : 7 * S + KW;
    for (int64_t ky = r->kylo; ky < r->kyhi; ky++) {
        int64_t row = (r->iy + ky * g->dh) * g->iw;
        const float *wr = r->w + ky * KW * KN_NCHWC_BLOCK;
DW_UNROLL
        for (int i = 0; i < 7 * S + KW; i++)
            xv[i] = i >= ilo && i < ihi ? _mm512_loadu_ps(r->x + (row + c0 + i) * KN_NCHWC_BLOCK)
                                        : _mm512_setzero_ps();
DW_UNROLL
        for (int kx = 0; kx < KW; kx++) {
            __m512 wv = _mm512_load_ps(wr + kx * KN_NCHWC_BLOCK);
DW_UNROLL
            for (int p = 0; p < 8; p++)
                acc[p] = _mm512_fmadd_ps(wv, xv[p * S + kx], acc[p]);
        }
    }
    dw_store(r, ox, acc, 8, ns);
}

/* One pixel with its own column range of taps (the edges, and interior tails). */
DW_AVX512 static DW_INLINE void dw_pixel(const dw_job *j, const dw_row *r, int64_t ox)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t ix = ox * g->sw - g->pl, kxlo, kxhi;
    kn_nchwc_taps(ix, g->kw, g->dw, g->iw, &kxlo, &kxhi);
    __m512 acc = r->bias, acc2 = _mm512_setzero_ps();
    for (int64_t ky = r->kylo; ky < r->kyhi; ky++) {
        /* offsets summed before they touch the pointer: ix may be negative */
        int64_t xo = ((r->iy + ky * g->dh) * g->iw + ix) * KN_NCHWC_BLOCK;
        const float *wr = r->w + ky * g->kw * KN_NCHWC_BLOCK;
        int64_t kx = kxlo;
        for (; kx + 1 < kxhi; kx += 2) {
            acc = _mm512_fmadd_ps(_mm512_load_ps(wr + kx * KN_NCHWC_BLOCK),
                                  _mm512_loadu_ps(r->x + (xo + kx * r->dw16)), acc);
            acc2 = _mm512_fmadd_ps(_mm512_load_ps(wr + (kx + 1) * KN_NCHWC_BLOCK),
                                   _mm512_loadu_ps(r->x + (xo + (kx + 1) * r->dw16)), acc2);
        }
        if (kx < kxhi)
            acc = _mm512_fmadd_ps(_mm512_load_ps(wr + kx * KN_NCHWC_BLOCK),
                                  _mm512_loadu_ps(r->x + (xo + kx * r->dw16)), acc);
    }
    acc = _mm512_add_ps(acc, acc2);
    dw_store(r, ox, &acc, 1, 1);
}

typedef void (*dw_pixels_fn)(const dw_job *, const dw_row *, int64_t);

#define DW_PIXELS(name, call)                                                    \
    DW_AVX512 static void name(const dw_job *j, const dw_row *r, int64_t ox)     \
    {                                                                            \
        call;                                                                    \
    }
DW_PIXELS(dw_pixels1, dw_pixels(j, r, ox, 1))
DW_PIXELS(dw_pixels2, dw_pixels(j, r, ox, 2))
DW_PIXELS(dw_pixels3, dw_pixels(j, r, ox, 3))
DW_PIXELS(dw_pixels4, dw_pixels(j, r, ox, 4))
DW_PIXELS(dw_pixels5, dw_pixels(j, r, ox, 5))
DW_PIXELS(dw_pixels6, dw_pixels(j, r, ox, 6))
DW_PIXELS(dw_pixels7, dw_pixels(j, r, ox, 7))
DW_PIXELS(dw_pixels8, dw_pixels(j, r, ox, 8))

typedef void (*dw_group_fn)(const dw_job *, const dw_row *, int64_t, int64_t);

#define DW_GROUP(name, kw, s, edge)                                                     \
    DW_AVX512 static void name(const dw_job *j, const dw_row *r, int64_t ox, int64_t ns) \
    {                                                                                   \
        dw_group(j, r, ox, ns, kw, s, edge);                                            \
    }
DW_GROUP(dw_group_3s1, 3, 1, 0)
DW_GROUP(dw_group_3s1_edge, 3, 1, 1)
DW_GROUP(dw_group_3s2, 3, 2, 0)
DW_GROUP(dw_group_3s2_edge, 3, 2, 1)
DW_GROUP(dw_group_5s1, 5, 1, 0)
DW_GROUP(dw_group_5s1_edge, 5, 1, 1)
DW_GROUP(dw_group_5s2, 5, 2, 0)
DW_GROUP(dw_group_5s2_edge, 5, 2, 1)

/* The kernel for n < 8 interior pixels (index n). */
static const dw_pixels_fn dw_tails[8] = {NULL,        dw_pixels1, dw_pixels2, dw_pixels3,
                                         dw_pixels4,  dw_pixels5, dw_pixels6, dw_pixels7};

/* The group kernels {inside, edge} for g's kernel width, stride and dilation
 * along x, or NULL: 3 or 5 wide, stride 1 or 2, dilation 1. */
static const dw_group_fn *dw_group_kernels(const kn_nchwc_conv *g)
{
    static const dw_group_fn k3s1[2] = {dw_group_3s1, dw_group_3s1_edge};
    static const dw_group_fn k3s2[2] = {dw_group_3s2, dw_group_3s2_edge};
    static const dw_group_fn k5s1[2] = {dw_group_5s1, dw_group_5s1_edge};
    static const dw_group_fn k5s2[2] = {dw_group_5s2, dw_group_5s2_edge};
    if (g->dw != 1 || (g->sw != 1 && g->sw != 2) || (g->kw != 3 && g->kw != 5))
        return NULL;
    return g->kw == 3 ? (g->sw == 1 ? k3s1 : k3s2) : (g->sw == 1 ? k5s1 : k5s2);
}

/* A row in groups of 8 pixels, the groups touching the edges masked. */
static void dw_row_groups(const dw_job *j, const dw_row *r, const dw_group_fn *k)
{
    const kn_nchwc_conv *g = j->a->g;
    for (int64_t ox = 0; ox < g->ow; ox += 8) {
        int64_t c0 = ox * g->sw - g->pl, last = c0 + 7 * g->sw + g->kw - 1;
        k[c0 < 0 || last >= g->iw](j, r, ox, g->ow - ox < 8 ? g->ow - ox : 8);
    }
}

/* A row of any other geometry: edge pixels one at a time over their taps, the
 * interior 8 pixels at a time, its tail in one call. */
DW_AVX512 static void dw_row_pixels(const dw_job *j, const dw_row *r)
{
    int64_t oxb = j->oxb, ox = 0;
    for (; ox < j->oxa; ox++)
        dw_pixel(j, r, ox);
    for (; ox + 8 <= oxb; ox += 8)
        dw_pixels8(j, r, ox);
    if (ox < oxb) {
        dw_tails[oxb - ox](j, r, ox);
        ox = oxb;
    }
    for (; ox < j->a->g->ow; ox++)
        dw_pixel(j, r, ox);
}

DW_AVX512 static void dw_row_avx512(const dw_job *j, int64_t n, int64_t b, int64_t oy)
{
    const kn_nchwc_conv_args *a = j->a;
    const kn_nchwc_conv *g = a->g;
    int64_t iy = oy * g->sh - g->pt, off = dw_y_plane(j, n, b) + oy * g->ow * KN_NCHWC_BLOCK;
    dw_row r = {
        .x = a->x + dw_x_plane(j, n, b),
        .w = a->w->w + b * g->kh * g->kw * KN_NCHWC_BLOCK,
        .z = a->z ? a->z + off : NULL,
        .y = a->y + off,
        .iy = iy,
        .dh16 = g->dh * g->iw * KN_NCHWC_BLOCK,
        .dw16 = g->dw * KN_NCHWC_BLOCK,
        .sw16 = g->sw * KN_NCHWC_BLOCK,
        .clamp = j->clamp,
        .bias = _mm512_load_ps(a->w->bias + b * KN_NCHWC_BLOCK),
        .lo = _mm512_set1_ps(j->lo),
        .hi = _mm512_set1_ps(j->hi),
    };
    kn_nchwc_taps(iy, g->kh, g->dh, g->ih, &r.kylo, &r.kyhi);
    const dw_group_fn *k = dw_group_kernels(g);
    if (k)
        dw_row_groups(j, &r, k);
    else
        dw_row_pixels(j, &r);
    dw_row_finish(j, b, r.y, j->clamp);
}
#endif

/* ---------------------------------------------------------------- driver */

typedef struct dw_task {
    const dw_job *j;
    void (*row)(const dw_job *, int64_t, int64_t, int64_t);
    int wide; /* the row function runs AVX-512 code */
} dw_task;

static void dw_chunks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dw_task *t = ctx;
    const dw_job *j = t->j;
    (void)thread_index;
    for (int64_t i = begin; i < end; i++) {
        int64_t c = i % j->nchunks, nb = i / j->nchunks;
        int64_t r0 = c * j->chunk, r1 = r0 + j->chunk < j->a->g->oh ? r0 + j->chunk : j->a->g->oh;
        for (int64_t oy = r0; oy < r1; oy++)
            t->row(j, nb / j->cb, nb % j->cb, oy);
    }
    if (t->wide)
        kn_cpu_clear_upper();
}

void kn_nchwc_dw_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    dw_job j;
    dw_job_init(&j, a);
    isa = kn_cpu_isa_cap(isa);
    dw_task t = {&j, dw_row_ref, 0};
#ifdef DW_HAVE_AVX512
    if (isa >= KN_ISA_AVX512)
        t = (dw_task){&j, dw_row_avx512, 1};
#endif
    if (j.nchunks > 0)
        kn_parallel_for(pool, a->g->batch * j.cb * j.nchunks, 1, dw_chunks, &t);
}
