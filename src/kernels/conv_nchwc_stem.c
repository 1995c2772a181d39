/* conv_nchwc_stem.c - stem convolutions: a group-1 conv over an NCHW input with
 * few channels (an image) into a blocked NCHWc16 output, so that a CNN's first
 * layer writes the layout its body reads without a reorder.  Here: the weight
 * packing ([Mp/16][channels][kh][kw][16]), the plain C reference, the driver
 * and the AVX-512 register tiles.  A tile holds OB (1..4) output blocks x NP
 * consecutive output pixels of one row (NP up to 6 with 4 blocks, 8 with 3, 12
 * with 1 or 2); for each input channel and tap it loads OB weight vectors,
 * broadcasts the NP input values (stride apart) and does OB * NP FMAs.  Tap rows
 * outside the image are skipped for the whole row; pixels whose window crosses
 * the left or right edge run as 1-pixel tiles over the tap columns inside, so
 * no tap ever reads outside the image.  Tasks are (image, output-block group,
 * block of output rows); each output element is summed by one tile in one
 * fixed order (channel, tap row, tap column), so results do not depend on the
 * thread count. */
#include "kernels/nchwc_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/bigalloc.h"
#include "exec/threadpool.h"
#include "kernels/nchwc_taps.h"

#define B KN_NCHWC_BLOCK
/* Output blocks one tile holds at most, and its pixels at most (with 1 or 2 blocks). */
#define STEM_OB 4
#define STEM_NP 12
/* Tasks per pool thread the split aims at. */
#define TASKS_PER_THREAD 4

/* ------------------------------------------------------------- packing */

/* Floats of one output block's packed weights. */
static size_t block_floats(const kn_nchwc_conv *g)
{
    return (size_t)(g->channels * g->kh * g->kw) * B;
}

/* Index of the weight of output channel m, input channel c, tap (ky, kx). */
static size_t packed_at(const kn_nchwc_conv *g, int64_t m, int64_t c, int64_t ky, int64_t kx)
{
    return (size_t)(m / B) * block_floats(g) +
           (size_t)(((c * g->kh + ky) * g->kw + kx) * B + m % B);
}

/* Zeroed packed weights of wf floats and a bias of mp, freed by
 * kn_nchwc_weights_free; NULL when out of memory. */
static kn_nchwc_weights *zeroed_weights(const kn_nchwc_conv *g, size_t wf, size_t mp)
{
    kn_nchwc_weights *p = calloc(1, sizeof *p);
    if (p) {
        p->w = kn_big_alloc(wf * sizeof(float));
        p->bias = kn_big_alloc(mp * sizeof(float));
    }
    if (!p || !p->w || !p->bias) {
        kn_nchwc_weights_free(p);
        return NULL;
    }
    memset(p->w, 0, wf * sizeof(float));
    memset(p->bias, 0, mp * sizeof(float));
    p->g = *g;
    p->bytes = (wf + mp) * sizeof(float);
    return p;
}

kn_nchwc_weights *kn_nchwc_stem_pack(const kn_nchwc_conv *g, const float *w, const float *bias)
{
    if (g->group != 1 || g->channels < 1 || g->m < 1 || g->kh < 1 || g->kw < 1)
        return NULL;
    int64_t mp = kn_nchwc_padded(g->m), taps = g->kh * g->kw;
    kn_nchwc_weights *p = zeroed_weights(g, (size_t)(mp / B) * block_floats(g), (size_t)mp);
    if (!p)
        return NULL;
    for (int64_t m = 0; m < g->m; m++)
        for (int64_t c = 0; c < g->channels; c++)
            for (int64_t t = 0; t < taps; t++)
                p->w[packed_at(g, m, c, t / g->kw, t % g->kw)] = w[(m * g->channels + c) * taps + t];
    if (bias)
        memcpy(p->bias, bias, (size_t)g->m * sizeof(float));
    return p;
}

/* ------------------------------------------------------------ reference */

/* The 16 conv sums of output block mb at (n, oy, ox), straight from the
 * definition (bias, then channel, tap row, tap column), into s. */
static void ref_pixel(const kn_nchwc_conv_args *a, int64_t n, int64_t mb, int64_t oy, int64_t ox,
                      float s[B])
{
    const kn_nchwc_conv *g = a->g;
    memcpy(s, a->w->bias + mb * B, B * sizeof(float));
    for (int64_t c = 0; c < g->channels; c++) {
        const float *xc = a->x + (n * g->channels + c) * g->ih * g->iw;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = oy * g->sh - g->pt + ky * g->dh;
            for (int64_t kx = 0; kx < g->kw; kx++) {
                int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw)
                    continue;
                const float *wt = a->w->w + packed_at(g, mb * B, c, ky, kx);
                for (int l = 0; l < B; l++)
                    s[l] += xc[iy * g->iw + ix] * wt[l];
            }
        }
    }
}

/* Output block mb of image n: the sums, residual and activation lane by lane,
 * the padding lanes (channels m and up) zero. */
static void ref_block(const kn_nchwc_conv_args *a, int64_t n, int64_t mb, float *y, const float *z)
{
    const kn_nchwc_conv *g = a->g;
    int lanes = g->m - mb * B < B ? (int)(g->m - mb * B) : B;
    float s[B];
    for (int64_t oy = 0; oy < g->oh; oy++)
        for (int64_t ox = 0; ox < g->ow; ox++, y += B, z = z ? z + B : NULL) {
            ref_pixel(a, n, mb, oy, ox, s);
            for (int l = 0; l < B; l++)
                y[l] = l < lanes ? kn_conv_act_one(&a->act, s[l] + (z ? z[l] : 0.0f)) : 0.0f;
        }
}

void kn_nchwc_stem_reference(const kn_nchwc_conv_args *a)
{
    const kn_nchwc_conv *g = a->g;
    int64_t mb = kn_nchwc_padded(g->m) / B, plane = g->oh * g->ow * B;
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t b = 0; b < mb; b++) {
            int64_t at = (n * mb + b) * plane;
            ref_block(a, n, b, a->y + at, a->z ? a->z + at : NULL);
        }
}

/* ------------------------------------------------------------ the tiles */

/* One register tile: ob output blocks x np pixels of one output row, over the
 * tap rows [ky0, ky1) and tap columns [kx0, kx1) (inside the image for every
 * pixel of the tile).  Offsets and strides in floats. */
typedef struct stem_tile {
    const float *x;            /* the image's channel 0 */
    int64_t org;               /* the first pixel's window origin (row * iw + column, may be < 0) */
    int64_t plane, x_ky, x_kx; /* input strides: channel, tap row, tap column */
    int64_t x_p;               /* between the tile's pixels (the column stride) */
    int64_t channels, kh, kw, ky0, ky1, kx0, kx1;
    const float *w;    /* the first block's weights; blocks w_ob apart */
    int64_t w_ob;
    const float *bias; /* the first block's 16 */
    const float *z;    /* residual at y's position, or NULL */
    float *y;          /* first block, first pixel; pixels 16 floats apart */
    int64_t y_ob;      /* y and z: output block stride */
    uint32_t last_lanes; /* lanes kept in the tile's last block */
    int clamp;
    float lo, hi;
} stem_tile;
typedef void (*stem_tile_fn)(const stem_tile *t);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_INLINE __attribute__((always_inline)) inline

/* acc += one channel's taps: the input row of tap row ky at xr, weights of the
 * tap row at w (blocks w_ob apart).  KW > 0: the kernel width (all columns
 * inside) as a constant, with the column stride 2 and dilation 1 of the stems,
 * so that the broadcasts address by constant offsets; 0: the tile's [kx0, kx1)
 * and its strides.  Unrolled by 3 (a 3-wide kernel whole; unrolled by 7, gcc
 * kept the weights of several columns live and spilled). */
KN_AVX512 static KN_INLINE void tap_row(const stem_tile *t, __m512 acc[4][STEM_NP], const float *xr,
                                        const float *w, const int OB, const int NP, const int KW)
{
    const int64_t n = KW > 0 ? KW : t->kx1 - t->kx0, step = KW > 0 ? 1 : t->x_kx;
    const int64_t x_p = KW > 0 ? 2 : t->x_p;
#pragma GCC unroll 3
    for (int64_t kx = 0; kx < n; kx++, xr += step, w += B) {
        /* the compiler forgets where xr points: with stride 2 it would otherwise
         * carry the inputs shared by neighbouring columns in registers, through
         * the stack (broadcasts from memory are cheaper) */
        __asm__("" : "+r"(xr));
        __m512 wv[4];
#pragma GCC unroll 4
        for (int o = 0; o < OB; o++)
            wv[o] = _mm512_loadu_ps(w + o * t->w_ob);
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++) {
            __m512 b = _mm512_set1_ps(xr[p * x_p]);
#pragma GCC unroll 4
            for (int o = 0; o < OB; o++)
                acc[o][p] = _mm512_fmadd_ps(wv[o], b, acc[o][p]);
        }
    }
}

/* Residual, clamp and the store of the accumulators (which hold the bias). */
KN_AVX512 static KN_INLINE void tile_store(const stem_tile *t, __m512 acc[4][STEM_NP], const int OB,
                                           const int NP)
{
    const __m512 lo = _mm512_set1_ps(t->lo), hi = _mm512_set1_ps(t->hi);
    const float *z = t->z; /* the fields in locals: the stores may alias *t */
    float *y = t->y;
    const int64_t y_ob = t->y_ob;
    const int clamp = t->clamp;
    const __mmask16 last = (__mmask16)t->last_lanes;
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++) {
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++) {
            __m512 v = acc[o][p];
            if (z)
                v = _mm512_add_ps(v, _mm512_loadu_ps(z + o * y_ob + p * B));
            if (clamp) /* max/min return the second operand for NaN: NaN stays NaN */
                v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
            if (o == OB - 1)
                v = _mm512_maskz_mov_ps(last, v);
            _mm512_storeu_ps(y + o * y_ob + p * B, v);
        }
    }
}

KN_AVX512 static KN_INLINE void tile_body(const stem_tile *t, const int OB, const int NP,
                                          const int KW)
{
    __m512 acc[4][STEM_NP];
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++) {
        __m512 bias = _mm512_loadu_ps(t->bias + o * B);
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++)
            acc[o][p] = bias;
    }
    int64_t tap0 = t->ky0 * t->kw + t->kx0;
    int64_t channels = t->ky0 < t->ky1 && t->kx0 < t->kx1 ? t->channels : 0; /* no tap inside */
    for (int64_t c = 0; c < channels; c++) {
        const float *xc = t->x + (t->org + c * t->plane + t->ky0 * t->x_ky + t->kx0 * t->x_kx);
        const float *wc = t->w + (c * t->kh * t->kw + tap0) * B;
        for (int64_t ky = t->ky0; ky < t->ky1; ky++, xc += t->x_ky, wc += t->kw * B)
            tap_row(t, acc, xc, wc, OB, NP, KW);
    }
    tile_store(t, acc, OB, NP);
}

/* Every (OB, NP) the driver calls: NP up to 12 with 1 or 2 blocks, 8 with 3, 6 with 4. */
#define STEM_TILES(X)                                                                      \
    X(1, 1) X(1, 2) X(1, 3) X(1, 4) X(1, 5) X(1, 6) X(1, 7) X(1, 8) X(1, 9) X(1, 10)     \
    X(1, 11) X(1, 12) X(2, 1) X(2, 2) X(2, 3) X(2, 4) X(2, 5) X(2, 6) X(2, 7) X(2, 8)    \
    X(2, 9) X(2, 10) X(2, 11) X(2, 12) X(3, 1) X(3, 2) X(3, 3) X(3, 4) X(3, 5) X(3, 6)   \
    X(3, 7) X(3, 8) X(4, 1) X(4, 2) X(4, 3) X(4, 4) X(4, 5) X(4, 6)
#define DEFINE_TILE(OB, NP)                                                                \
    KN_AVX512 static void stem_##OB##x##NP(const stem_tile *t) { tile_body(t, OB, NP, 0); }
#define TILE_ENTRY(OB, NP) [OB - 1][NP - 1] = stem_##OB##x##NP,
STEM_TILES(DEFINE_TILE)

/* Full tiles of the common stem geometries (kernel width 3 or 7, column stride
 * 2, dilation 1), the tap columns unrolled. */
#define FULL(OB, NP, KW)                                                                   \
    KN_AVX512 static void stem_##OB##x##NP##_k##KW(const stem_tile *t) { tile_body(t, OB, NP, KW); }
FULL(1, 12, 3) FULL(2, 12, 3) FULL(3, 8, 3) FULL(4, 6, 3)
FULL(1, 12, 7) FULL(2, 12, 7) FULL(3, 8, 7) FULL(4, 6, 7)

/* The tile of ob blocks x np pixels; NULL when out of range. */
static stem_tile_fn stem_tile_avx512(int ob, int np)
{
    static const stem_tile_fn fns[4][STEM_NP] = {STEM_TILES(TILE_ENTRY)};
    return ob >= 1 && ob <= 4 && np >= 1 && np <= STEM_NP ? fns[ob - 1][np - 1] : NULL;
}

/* The full tile of ob blocks (all tap columns inside) for g's kernel width,
 * column stride and dilation; NULL when there is none of that geometry. */
static stem_tile_fn stem_full_avx512(int ob, const kn_nchwc_conv *g)
{
    int64_t kw = g->sw == 2 && g->dw == 1 ? g->kw : 0;
    static const stem_tile_fn k3[4] = {stem_1x12_k3, stem_2x12_k3, stem_3x8_k3, stem_4x6_k3};
    static const stem_tile_fn k7[4] = {stem_1x12_k7, stem_2x12_k7, stem_3x8_k7, stem_4x6_k7};
    return ob < 1 || ob > 4 ? NULL : kw == 3 ? k3[ob - 1] : kw == 7 ? k7[ob - 1] : NULL;
}
#else
static stem_tile_fn stem_tile_avx512(int ob, int np)
{
    (void)ob, (void)np;
    return NULL;
}

static stem_tile_fn stem_full_avx512(int ob, const kn_nchwc_conv *g)
{
    (void)ob, (void)g;
    return NULL;
}
#endif

/* --------------------------------------------------------------- driver */

typedef struct stem_job {
    const kn_nchwc_conv_args *a;
    stem_tile_fn tiles[STEM_OB][STEM_NP];
    stem_tile_fn full[STEM_OB]; /* the full tiles of ob + 1 blocks, or NULL */
    int np[STEM_OB];            /* pixels of a full tile with ob + 1 blocks */
    int64_t ox_in[2];           /* the output columns whose taps all lie inside */
    int64_t mb, groups;         /* output blocks, groups of STEM_OB of them */
    int64_t rows, row_blocks;   /* output rows per task, tasks along the rows */
    int clamp, inline_act;
    float lo, hi;
} stem_job;

/* Pixels per tile by its blocks: OB * NP accumulators + OB weights within 32 registers. */
static int pixels_for(int ob)
{
    return ob >= 4 ? 6 : ob == 3 ? 8 : STEM_NP;
}

static int fill_tiles(stem_job *j, kn_isa isa)
{
    isa = kn_cpu_isa_cap(isa);
    if (isa < KN_ISA_AVX512)
        return 0;
    for (int o = 0; o < STEM_OB; o++) {
        int np = pixels_for(o + 1);
        j->np[o] = np;
        j->full[o] = stem_full_avx512(o + 1, j->a->g);
        for (int p = 0; p < np; p++)
            if (!(j->tiles[o][p] = stem_tile_avx512(o + 1, p + 1)))
                return 0;
    }
    return 1;
}

/* The output columns [r[0], r[1]) whose window (kw taps dw apart from ox * sw - pl)
 * lies inside [0, iw). */
static void inside_columns(const kn_nchwc_conv *g, int64_t r[2])
{
    int64_t last = g->iw - 1 + g->pl - (g->kw - 1) * g->dw; /* ox * sw <= last */
    r[0] = kn_ceil_div(g->pl, g->sw);
    r[1] = last < 0 ? 0 : last / g->sw + 1;
    r[0] = r[0] > g->ow ? g->ow : r[0];
    r[1] = r[1] > g->ow ? g->ow : r[1] < r[0] ? r[0] : r[1];
}

/* Pixel ox of the row alone, over the tap columns inside the image. */
static void edge_pixel(const stem_job *j, stem_tile t, int ob, int64_t ox)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t ix = ox * g->sw - g->pl;
    kn_nchwc_taps(ix, g->kw, g->dw, g->iw, &t.kx0, &t.kx1);
    t.org += ox * g->sw;
    t.y += ox * B;
    t.z = t.z ? t.z + ox * B : NULL;
    j->tiles[ob - 1][0](&t);
}

/* Output pixels [ox0, ox1) of the row in tiles of np pixels (the last shorter). */
static void interior_run(const stem_job *j, stem_tile t, int ob, int64_t ox0, int64_t ox1)
{
    const kn_nchwc_conv *g = j->a->g;
    int np = j->np[ob - 1];
    t.kx0 = 0, t.kx1 = g->kw;
    for (int64_t ox = ox0; ox < ox1; ox += np) {
        int n = ox1 - ox < np ? (int)(ox1 - ox) : np;
        stem_tile u = t;
        u.org += ox * g->sw;
        u.y += ox * B;
        u.z = t.z ? t.z + ox * B : NULL;
        if (n == np && j->full[ob - 1])
            j->full[ob - 1](&u);
        else
            j->tiles[ob - 1][n - 1](&u);
    }
}

/* Non-clamp activations over the row's stored outputs, padding lanes back to zero. */
static void row_act(const stem_job *j, const stem_tile *t, int ob)
{
    const kn_nchwc_conv *g = j->a->g;
    for (int o = 0; o < ob; o++)
        kn_conv_act_apply(&j->a->act, t->y + o * t->y_ob, (size_t)(g->ow * B));
    float *last = t->y + (ob - 1) * t->y_ob;
    for (int64_t p = 0; p < g->ow; p++)
        for (int l = 0; l < B; l++)
            if (!(t->last_lanes >> l & 1u))
                last[p * B + l] = 0.0f;
}

/* Output row oy of image n, output blocks [mb0, mb0 + ob). */
static void stem_row(const stem_job *j, int64_t n, int64_t mb0, int ob, int64_t oy)
{
    const kn_nchwc_conv_args *a = j->a;
    const kn_nchwc_conv *g = a->g;
    int64_t plane = g->oh * g->ow * B, out = (n * j->mb + mb0) * plane + oy * g->ow * B;
    int64_t iy = oy * g->sh - g->pt, tail_m = g->m - (j->mb - 1) * B;
    stem_tile t = {.x = a->x + n * g->channels * g->ih * g->iw, .org = iy * g->iw - g->pl,
                   .plane = g->ih * g->iw, .x_ky = g->dh * g->iw, .x_kx = g->dw, .x_p = g->sw,
                   .channels = g->channels, .kh = g->kh, .kw = g->kw,
                   .w = a->w->w + (size_t)mb0 * block_floats(g), .w_ob = (int64_t)block_floats(g),
                   .bias = a->w->bias + mb0 * B, .z = a->z ? a->z + out : NULL, .y = a->y + out,
                   .y_ob = plane,
                   .last_lanes = mb0 + ob == j->mb ? (1u << tail_m) - 1u : 0xFFFFu,
                   .clamp = j->clamp, .lo = j->lo, .hi = j->hi};
    kn_nchwc_taps(iy, g->kh, g->dh, g->ih, &t.ky0, &t.ky1);
    for (int64_t ox = 0; ox < j->ox_in[0]; ox++)
        edge_pixel(j, t, ob, ox);
    interior_run(j, t, ob, j->ox_in[0], j->ox_in[1]);
    for (int64_t ox = j->ox_in[1] > j->ox_in[0] ? j->ox_in[1] : j->ox_in[0]; ox < g->ow; ox++)
        edge_pixel(j, t, ob, ox);
    if (!j->inline_act)
        row_act(j, &t, ob);
}

static void stem_tasks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const stem_job *j = ctx;
    const kn_nchwc_conv *g = j->a->g;
    (void)thread_index;
    for (int64_t q = begin; q < end; q++) {
        int64_t rb = q % j->row_blocks, gi = q / j->row_blocks % j->groups;
        int64_t n = q / j->row_blocks / j->groups;
        int64_t oy0 = rb * j->rows, oy1 = oy0 + j->rows < g->oh ? oy0 + j->rows : g->oh;
        int64_t mb0 = gi * STEM_OB;
        int ob = (int)(j->mb - mb0 < STEM_OB ? j->mb - mb0 : STEM_OB);
        for (int64_t oy = oy0; oy < oy1; oy++)
            stem_row(j, n, mb0, ob, oy);
    }
    kn_cpu_clear_upper(); /* the tiles leave wide registers dirty */
}

/* Rows per task: the whole image single-threaded; with a pool, enough tasks
 * (with the images and block groups) for TASKS_PER_THREAD a thread. */
static void plan_tasks(stem_job *j, struct kn_threadpool *pool)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t threads = kn_threadpool_size(pool), have = g->batch * j->groups;
    int64_t want = threads > 1 ? threads * TASKS_PER_THREAD : 1;
    int64_t blocks = have >= want ? 1 : (want + have - 1) / have;
    blocks = blocks > g->oh ? g->oh : blocks < 1 ? 1 : blocks;
    j->rows = (g->oh + blocks - 1) / blocks;
    j->row_blocks = (g->oh + j->rows - 1) / j->rows;
}

void kn_nchwc_stem_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    const kn_nchwc_conv *g = a->g;
    stem_job j = {.a = a, .mb = kn_nchwc_padded(g->m) / B};
    if (g->batch < 1 || g->oh < 1 || g->ow < 1)
        return;
    if (!fill_tiles(&j, isa)) {
        kn_nchwc_stem_reference(a);
        return;
    }
    j.groups = (j.mb + STEM_OB - 1) / STEM_OB;
    inside_columns(g, j.ox_in);
    j.inline_act = kn_conv_act_is_clamp(&a->act, &j.lo, &j.hi);
    j.clamp = j.inline_act && a->act.kind != KN_CONV_ACT_NONE;
    plan_tasks(&j, pool);
    kn_parallel_for(pool, g->batch * j.groups * j.row_blocks, 1, stem_tasks, &j);
}
