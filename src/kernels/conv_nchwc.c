/* conv_nchwc.c - group-1 2-D convolution on blocked (NCHWc16) tensors: the weight
 * packing, the plain C reference, and the driver that cuts the output into
 * register tiles for the AVX-512 kernels of conv_nchwc_avx512.c: up to 4 output
 * blocks x 6 consecutive output pixels of one image (a run that may cross rows;
 * 8 or 12 pixels when the conv has fewer blocks), the taps of edge pixels that
 * fall outside the image reading a zero vector.  Tasks are (images, output-block
 * groups, rows); inside a task, passes of 64 tiles are set up once and swept by
 * each group's weights, chunk of input blocks by chunk (the chunk's weights in
 * L1 across the pass, partial sums stored in the output between chunks); big
 * weights go group by group over all the task's images, prefetching the next
 * group into L2.  Depthwise convs (group > 1) go to conv_nchwc_dw.c, 3x3 stride-1
 * ones with Winograd weights to conv_nchwc_wino.c.  Each output element is summed
 * by one tile in one fixed order (input block, tap row, tap column, channel)
 * whatever the split, so results do not depend on the thread count. */
#include "kernels/nchwc_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/bigalloc.h"
#include "exec/threadpool.h"

#define B KN_NCHWC_BLOCK
/* Output blocks one tile holds; pixels of one tile: 6 with 4 output blocks (24
 * accumulators), more when the groups have fewer blocks (see tile_pixels_for). */
#define TILE_OB 4
#define TILE_NP KN_NCHWC_TILE_NP
/* Input floats (rows of every input block) one task aims to read. */
#define TASK_INPUT_FLOATS (64 * 1024)
/* Packed weights up to this size stay in L2 while a task goes over its images
 * one by one (each image swept by every group); bigger ones are swept group by
 * group, each group's weights over all the task's images. */
#define WEIGHTS_L2_BYTES ((size_t)1 << 20)
/* Tasks per pool thread the split aims at. */
#define TASKS_PER_THREAD 4
/* A group's weights for one chunk of input blocks: a pass of tiles goes over them
 * chunk by chunk (partial sums stored between chunks), so that they stay in L1
 * across its tiles instead of streaming from L2 for every tile (a 1x1 from 1024
 * channels is 256 KiB a group, 42 bytes a cycle of L2 at full FMA rate). */
#define CHUNK_WEIGHT_BYTES ((size_t)32 * 1024)

/* ------------------------------------------------------------- packing */

/* The output blocks in groups of at most TILE_OB, as even as can be (the first
 * ones one block more): 9 blocks are 3 + 3 + 3, not 4 + 4 + 1, so that no tile
 * holds a lone block (too few accumulators to hide the FMA latency). */
static int64_t group_count(int64_t mbs)
{
    return (mbs + TILE_OB - 1) / TILE_OB;
}

/* First block of group gi of mbs blocks; *n = its blocks. */
static int64_t group_start(int64_t mbs, int64_t gi, int *n)
{
    int64_t groups = group_count(mbs), base = mbs / groups, extra = mbs % groups;
    *n = (int)(base + (gi < extra));
    return gi * base + (gi < extra ? gi : extra);
}

/* The group holding block b of mbs. */
static int64_t group_of(int64_t mbs, int64_t b)
{
    int64_t groups = group_count(mbs), base = mbs / groups, extra = mbs % groups;
    return b < extra * (base + 1) ? b / (base + 1) : extra + (b - extra * (base + 1)) / base;
}

/* Index of the weight of output channel m, input channel c, tap ky kx in the
 * packed order (the definition the reference reads by; pack_group writes the
 * same order fast, and the tests hold the two together). */
static size_t packed_at(const kn_nchwc_conv *g, int64_t m, int64_t c, int64_t ky, int64_t kx)
{
    int64_t mbs = kn_nchwc_padded(g->m) / B, cbs = kn_nchwc_padded(g->channels) / B;
    int gob;
    int64_t g0 = group_start(mbs, group_of(mbs, m / B), &gob);
    size_t tap = (((size_t)(c / B) * (size_t)g->kh + (size_t)ky) * (size_t)g->kw + (size_t)kx) * B +
                 (size_t)(c % B);
    return (size_t)g0 * (size_t)cbs * (size_t)(g->kh * g->kw) * B * B +
           (tap * (size_t)gob + (size_t)(m / B - g0)) * B + (size_t)(m % B);
}

/* The packed order: groups of output blocks (group_start), each [Cp/16][kh][kw]
 * [16 in][blocks of the group][16 out], so that a tile sweeps its group's weights
 * in one stream.  Written row after row of 16 output lanes, each row gathered
 * from the 16 output channels' weights, which are read in order as 16 streams
 * (the load of a model packs some 25 M weights this way). */
static void pack_group(const kn_nchwc_conv *g, const float *w, int64_t g0, int gob, float *dst)
{
    int64_t taps = g->kh * g->kw, per_m = g->channels * taps;
    size_t row = (size_t)gob * B; /* floats from one (input channel, tap) to the next */
    for (int ob = 0; ob < gob; ob++) {
        int64_t m0 = (g0 + ob) * B, lanes = g->m - m0 < B ? g->m - m0 : B;
        if (lanes <= 0)
            return;
        const float *src = w + m0 * per_m;
        for (int64_t c = 0; c < g->channels; c++) {
            float *d = dst + ((size_t)(c / B) * (size_t)taps * B + (size_t)(c % B)) * row +
                       (size_t)ob * B;
            for (int64_t t = 0; t < taps; t++, d += B * row)
                for (int64_t co = 0; co < lanes; co++)
                    d[co] = src[co * per_m + c * taps + t];
        }
    }
}

static void pack_weights(const kn_nchwc_conv *g, const float *w, float *dst)
{
    int64_t mbs = kn_nchwc_padded(g->m) / B, cbs = kn_nchwc_padded(g->channels) / B;
    size_t per_block = (size_t)cbs * (size_t)(g->kh * g->kw) * B * B;
    for (int64_t gi = 0; gi < group_count(mbs); gi++) {
        int gob;
        int64_t g0 = group_start(mbs, gi, &gob);
        pack_group(g, w, g0, gob, dst + (size_t)g0 * per_block);
    }
}

/* Group 1: w in the order of pack_group, bias [Mp], zeros in the padding. */
kn_nchwc_weights *kn_nchwc_pack(const kn_nchwc_conv *g, const float *w, const float *bias)
{
    if (g->group > 1)
        return kn_nchwc_dw_pack(g, w, bias);
    if (g->channels < 1 || g->m < 1 || g->kh < 1 || g->kw < 1)
        return NULL;
    int64_t mp = kn_nchwc_padded(g->m), cp = kn_nchwc_padded(g->channels);
    size_t wf = (size_t)mp * (size_t)cp * (size_t)(g->kh * g->kw);
    kn_nchwc_weights *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->g = *g;
    p->w = kn_big_alloc(wf * sizeof(float));
    p->bias = kn_big_alloc((size_t)mp * sizeof(float));
    if (!p->w || !p->bias) {
        kn_nchwc_weights_free(p);
        return NULL;
    }
    memset(p->w, 0, wf * sizeof(float));
    memset(p->bias, 0, (size_t)mp * sizeof(float));
    pack_weights(g, w, p->w);
    if (bias)
        memcpy(p->bias, bias, (size_t)g->m * sizeof(float));
    p->bytes = (wf + (size_t)mp) * sizeof(float);
    return p;
}

int kn_nchwc_add_winograd(kn_nchwc_weights *p, const float *w)
{
    kn_nchwc_conv g = p->g;
    g.sh = g.sw = g.dh = g.dw = g.pt = g.pl = 1; /* the packing geometry has no strides */
    g.ih = g.oh = g.iw = g.ow = 1;
    if (p->wino || g.group != 1 || !kn_nchwc_wino_takes(&g) || !(p->wino = kn_nchwc_wino_pack(&g, w)))
        return 0;
    p->bytes += kn_nchwc_wino_bytes(p->wino);
    return 1;
}

void kn_nchwc_weights_free(kn_nchwc_weights *w)
{
    if (!w)
        return;
    kn_nchwc_wino_free(w->wino);
    kn_big_free(w->w);
    kn_big_free(w->bias);
    free(w);
}

size_t kn_nchwc_weights_bytes(const kn_nchwc_weights *w)
{
    return w ? w->bytes : 0;
}

/* ------------------------------------------------------------ reference */

/* The conv sum of output channel m at (n, oy, ox), straight from the definition. */
static float ref_sum(const kn_nchwc_conv_args *a, int64_t n, int64_t m, int64_t oy, int64_t ox)
{
    const kn_nchwc_conv *g = a->g;
    int64_t cbs = kn_nchwc_padded(g->channels) / B;
    float s = a->w->bias[m];
    for (int64_t c = 0; c < g->channels; c++)
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh, ix = ox * g->sw - g->pl + kx * g->dw;
                if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw)
                    continue;
                float xv = a->x[(((n * cbs + c / B) * g->ih + iy) * g->iw + ix) * B + c % B];
                s += xv * a->w->w[packed_at(g, m, c, ky, kx)];
            }
    return s;
}

void kn_nchwc_conv_reference(const kn_nchwc_conv_args *a)
{
    const kn_nchwc_conv *g = a->g;
    if (g->group > 1) {
        kn_nchwc_dw_reference(a);
        return;
    }
    int64_t mp = kn_nchwc_padded(g->m);
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t m = 0; m < mp; m++)
            for (int64_t oy = 0; oy < g->oh; oy++)
                for (int64_t ox = 0; ox < g->ow; ox++) {
                    size_t at = ((size_t)((n * (mp / B) + m / B) * g->oh + oy) * (size_t)g->ow +
                                 (size_t)ox) * B + (size_t)(m % B);
                    float v = 0.0f;
                    if (m < g->m) {
                        v = ref_sum(a, n, m, oy, ox) + (a->z ? a->z[at] : 0.0f);
                        v = kn_conv_act_one(&a->act, v);
                    }
                    a->y[at] = v;
                }
}

/* --------------------------------------------------------------- driver */

/* Kernel sizes the tile's tap masks cover (larger ones take the reference). */
#define MAX_TAPS_1D 16
/* Tiles one pass sets up for all the groups of output blocks. */
#define PASS_TILES 64

typedef struct conv_job {
    const kn_nchwc_conv_args *a;
    kn_nchwc_tile_fn tiles[TILE_OB][TILE_NP];
    int np;                       /* pixels per tile */
    int64_t oy_in[2], ox_in[2];   /* the output rows / columns whose taps all lie inside */
    int64_t mb, cb;               /* output / input blocks */
    int64_t cb_chunk;             /* input blocks a tile sums before storing */
    int64_t rows, row_blocks;     /* output rows per task, tasks along the rows */
    int64_t groups, chunk_groups; /* tile groups of output blocks, groups per task */
    int64_t chunks;               /* tasks along the groups */
    int64_t images, image_blocks; /* images per task, tasks along the images */
    size_t w_bytes;               /* of the packed weights */
    int groups_outside;           /* loop over the groups outside the images */
    int clamp, silu, inline_act;
    float lo, hi;
} conv_job;

/* Non-clamp activations over the tile's stored outputs, padding lanes back to zero. */
static void tile_act(const conv_job *j, const kn_nchwc_tile *t, int ob, int np)
{
    for (int o = 0; o < ob; o++)
        kn_conv_act_apply(&j->a->act, t->y + o * t->y_ob, (size_t)np * B);
    if ((t->last_lanes & 0xFFFFu) == 0xFFFFu)
        return; /* no padding lanes in this tile */
    float *last = t->y + (ob - 1) * t->y_ob;
    for (int p = 0; p < np; p++)
        for (int l = 0; l < B; l++)
            if (!(t->last_lanes >> l & 1u))
                last[p * B + l] = 0.0f;
}

/* The pixel setup of up to PASS_TILES tiles, computed once for every group of
 * output blocks that runs over them. */
typedef struct tile_pass {
    int64_t p0, tiles;
    int64_t first, run_tiles; /* the pass's first tile in its run, the run's tiles */
    int np_last;
    int64_t pix[PASS_TILES][TILE_NP];
    uint16_t in[PASS_TILES][2 * MAX_TAPS_1D]; /* tap rows inside, then tap columns inside */
    int inside[PASS_TILES];                   /* every tap inside (in[] not set) */
} tile_pass;

/* Which tap rows and columns of the pixels [p0, p0 + np) lie inside the image
 * (bit p of row_in[ky] / col_in[kx]). */
static void tile_masks(const kn_nchwc_conv *g, uint16_t *row_in, uint16_t *col_in, int64_t p0, int np)
{
    int64_t oy0 = p0 / g->ow, ox0 = p0 % g->ow;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        unsigned m = 0;
        for (int64_t p = 0, oy = oy0, ox = ox0; p < np; p++, oy += ++ox == g->ow, ox %= g->ow) {
            int64_t iy = oy * g->sh - g->pt + ky * g->dh;
            m |= (unsigned)(iy >= 0 && iy < g->ih) << p;
        }
        row_in[ky] = (uint16_t)m;
    }
    for (int64_t kx = 0; kx < g->kw; kx++) {
        unsigned m = 0;
        for (int64_t p = 0, ox = ox0; p < np; p++, ox = ox + 1 == g->ow ? 0 : ox + 1) {
            int64_t ix = ox * g->sw - g->pl + kx * g->dw;
            m |= (unsigned)(ix >= 0 && ix < g->iw) << p;
        }
        col_in[kx] = (uint16_t)m;
    }
}

/* The window origins of pixels [p0, p0 + np); returns whether every tap of
 * every one of them lies inside the image. */
static int tile_origins(const conv_job *j, int64_t *pix, int64_t p0, int np)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t oy = p0 / g->ow, ox = p0 % g->ow;
    int inside = 1;
    for (int p = 0; p < np; ox = 0, oy++) { /* the tile's pieces of successive rows */
        int64_t run = g->ow - ox < np - p ? g->ow - ox : np - p;
        int64_t at = ((oy * g->sh - g->pt) * g->iw + ox * g->sw - g->pl) * B;
        inside &= oy >= j->oy_in[0] && oy < j->oy_in[1] && ox >= j->ox_in[0] && ox + run <= j->ox_in[1];
        for (int64_t r = 0; r < run; r++, p++)
            pix[p] = at + r * g->sw * B;
    }
    return inside;
}

/* The tiles of j->np pixels (the last one shorter) over [p0, min(p1, p0 +
 * PASS_TILES * np)). */
static void setup_pass(const conv_job *j, tile_pass *ps, int64_t run0, int64_t p0, int64_t p1)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t n = p1 - p0 < PASS_TILES * j->np ? p1 - p0 : PASS_TILES * j->np;
    ps->first = (p0 - run0) / j->np;
    ps->run_tiles = (p1 - run0 + j->np - 1) / j->np;
    ps->p0 = p0;
    ps->tiles = (n + j->np - 1) / j->np;
    ps->np_last = (int)(n - (ps->tiles - 1) * j->np);
    for (int64_t k = 0; k < ps->tiles; k++) {
        int np = k + 1 < ps->tiles ? j->np : ps->np_last;
        ps->inside[k] = tile_origins(j, ps->pix[k], p0 + k * j->np, np);
        if (!ps->inside[k])
            tile_masks(g, ps->in[k], ps->in[k] + g->kh, p0 + k * j->np, np);
    }
}

/* The pass's tiles of image n for the output blocks [mb0, mb0 + ob); with
 * next, the tiles of the run bring the group of weights at next into L2. */
static void conv_pass(const conv_job *j, const tile_pass *ps, int64_t n, int64_t mb0, int ob,
                      const float *next)
{
    const kn_nchwc_conv_args *a = j->a;
    const kn_nchwc_conv *g = a->g;
    int64_t plane = g->oh * g->ow * B, out = (n * j->mb + mb0) * plane + ps->p0 * B;
    int tail_m = (int)(g->m - (j->mb - 1) * B);
    kn_nchwc_tile t = {.x = a->x + n * j->cb * g->ih * g->iw * B,
                       .w = a->w->w + (size_t)mb0 * (size_t)(j->cb * g->kh * g->kw) * B * B,
                       .bias = a->w->bias + mb0 * B, .cb = j->cb, .kh = g->kh, .kw = g->kw,
                       .x_cb = g->ih * g->iw * B, .x_ky = g->dh * g->iw * B, .x_kx = g->dw * B,
                       .y_ob = plane, .pf_lines = (ob * B + ps->run_tiles - 1) / ps->run_tiles,
                       .last_lanes = mb0 + ob == j->mb ? (1u << tail_m) - 1u : 0xFFFFu,
                       .clamp = j->clamp, .silu = j->silu, .lo = j->lo, .hi = j->hi};
    int64_t taps = g->kh * g->kw;
    const float *x0 = t.x, *w0 = t.w;
    for (int64_t c0 = 0; c0 < j->cb; c0 += j->cb_chunk) {
        t.cb = j->cb - c0 < j->cb_chunk ? j->cb - c0 : j->cb_chunk;
        t.x = x0 + c0 * t.x_cb;
        t.w = w0 + (size_t)(c0 * taps) * B * B * (size_t)ob;
        t.accumulate = c0 > 0;
        t.finish = c0 + t.cb == j->cb;
        for (int64_t k = 0; k < ps->tiles; k++) {
            int np = k + 1 < ps->tiles ? j->np : ps->np_last;
            t.pix = ps->pix[k];
            t.inside = ps->inside[k]; /* then the tile reads no tap masks */
            t.row_in = ps->inside[k] ? NULL : ps->in[k];
            t.col_in = ps->inside[k] ? NULL : ps->in[k] + g->kh;
            t.y = a->y + out + k * j->np * B;
            t.z = a->z ? a->z + out + k * j->np * B : NULL;
            /* a group's weights are ob * 16 lines a tap: each tile of the run takes
             * its share, a chunk the part of it for the chunk's taps */
            t.pf = next ? (const char *)next +
                              ((ps->first + k) * j->cb + c0) * taps * t.pf_lines * 64
                        : NULL;
            j->tiles[ob - 1][np - 1](&t);
            if (t.finish && !j->inline_act)
                tile_act(j, &t, ob, np);
        }
    }
}

/* The packed weights of output-block group gi. */
static const float *group_weights(const conv_job *j, int64_t gi)
{
    const kn_nchwc_conv *g = j->a->g;
    int ob;
    int64_t mb0 = group_start(j->mb, gi, &ob);
    return j->a->w->w + (size_t)mb0 * (size_t)(j->cb * g->kh * g->kw) * B * B;
}

/* Output pixels [p0, p1) of image n (whole rows), output-block groups [g0, g1):
 * each pass of tiles set up once, then swept by every group's weights.  With
 * next (a group index), the run brings that group's weights into L2. */
static void conv_pixels(const conv_job *j, int64_t n, int64_t g0, int64_t g1, int64_t p0, int64_t p1,
                        int64_t next)
{
    tile_pass ps;
    for (int64_t p = p0; p < p1; p += PASS_TILES * j->np) {
        setup_pass(j, &ps, p0, p, p1);
        for (int64_t gi = g0; gi < g1; gi++) {
            int ob;
            int64_t mb0 = group_start(j->mb, gi, &ob);
            conv_pass(j, &ps, n, mb0, ob,
                      next >= 0 ? group_weights(j, next) : NULL);
        }
    }
}

static void conv_tasks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const conv_job *j = ctx;
    const kn_nchwc_conv *g = j->a->g;
    (void)thread_index;
    for (int64_t q = begin; q < end; q++) {
        int64_t rb = q % j->row_blocks, c = q / j->row_blocks % j->chunks, ib = q / j->row_blocks / j->chunks;
        int64_t oy0 = rb * j->rows, oy1 = oy0 + j->rows < g->oh ? oy0 + j->rows : g->oh;
        int64_t g0 = c * j->chunk_groups, g1 = g0 + j->chunk_groups < j->groups ? g0 + j->chunk_groups : j->groups;
        int64_t n0 = ib * j->images, n1 = n0 + j->images < g->batch ? n0 + j->images : g->batch;
        /* big weights: each group's stay in cache across the images, and the first
         * image's run brings the next group's into L2 */
        if (j->groups_outside)
            for (int64_t gi = g0; gi < g1; gi++)
                for (int64_t n = n0; n < n1; n++)
                    conv_pixels(j, n, gi, gi + 1, oy0 * g->ow, oy1 * g->ow,
                                n == n0 && gi + 1 < g1 ? gi + 1 : -1);
        else
            for (int64_t n = n0; n < n1; n++)
                conv_pixels(j, n, g0, g1, oy0 * g->ow, oy1 * g->ow, -1);
    }
    kn_cpu_clear_upper(); /* the tiles leave wide registers dirty */
}

/* ceil(a / b) pieces, at most n. */
static int64_t pieces(int64_t a, int64_t b, int64_t n)
{
    int64_t k = (a + b - 1) / b;
    return k > n ? n : k < 1 ? 1 : k;
}

/* Rows per task (about TASK_INPUT_FLOATS of input; all rows when the weights are
 * big), then, while the tasks are too
 * few for the pool, the output-block groups and the images split too (the groups
 * first when the weights are big, as each task reads only its groups' weights).
 * A task covers several images when the pool does not need them apart. */
static void plan_tasks(conv_job *j, struct kn_threadpool *pool)
{
    const kn_nchwc_conv *g = j->a->g;
    int64_t row_floats = j->cb * g->iw * B * g->sh, threads = kn_threadpool_size(pool);
    j->groups = group_count(j->mb);
    j->groups_outside = j->w_bytes > WEIGHTS_L2_BYTES;
    /* big weights: every row block would sweep them all again from L3 */
    j->rows = j->groups_outside ? g->oh : TASK_INPUT_FLOATS / (row_floats > 0 ? row_floats : 1);
    j->rows = j->rows < 1 ? 1 : j->rows > g->oh ? g->oh : j->rows;
    j->row_blocks = (g->oh + j->rows - 1) / j->rows;
    int64_t want = threads > 1 ? threads * TASKS_PER_THREAD : 1, chunks = 1, iblocks = 1;
    if (j->groups_outside) {
        chunks = pieces(want, j->row_blocks, j->groups);
        iblocks = pieces(want, j->row_blocks * chunks, g->batch);
    } else {
        iblocks = pieces(want, j->row_blocks, g->batch);
        chunks = pieces(want, j->row_blocks * iblocks, j->groups);
    }
    /* still too few tasks (one image, one group): more row blocks; then rows
     * spread evenly over them (56 rows in 4 blocks of 18, 18, 18, 2 left one of
     * two threads idle for a third of the conv) */
    int64_t others = chunks * iblocks;
    if (j->row_blocks * others < want && !j->groups_outside)
        j->row_blocks = (want + others - 1) / others;
    j->row_blocks = j->row_blocks > g->oh ? g->oh : j->row_blocks;
    j->rows = (g->oh + j->row_blocks - 1) / j->row_blocks;
    j->row_blocks = (g->oh + j->rows - 1) / j->rows;
    j->chunk_groups = (j->groups + chunks - 1) / chunks;
    j->chunks = (j->groups + j->chunk_groups - 1) / j->chunk_groups;
    j->images = (g->batch + iblocks - 1) / iblocks;
    j->image_blocks = (g->batch + j->images - 1) / j->images;
}

/* The outputs [r[0], r[1]) along one axis whose window (k taps d apart from
 * o * s - pad) lies inside [0, n). */
static void inside_range(int64_t n, int64_t k, int64_t s, int64_t d, int64_t pad, int64_t outs,
                         int64_t r[2])
{
    int64_t last = n - 1 + pad - (k - 1) * d; /* o * s <= last */
    r[0] = kn_ceil_div(pad, s);
    r[1] = last < 0 ? 0 : last / s + 1;
    r[0] = r[0] > outs ? outs : r[0];
    r[1] = r[1] > outs ? outs : r[1] < r[0] ? r[0] : r[1];
}

/* Pixels per tile: 6 when tiles hold 4 output blocks (24 accumulators), 8 with
 * 3, 12 with fewer, whose tiles would otherwise load a weight vector for every
 * few FMAs.  The first group is the largest. */
static int tile_pixels_for(int64_t mb)
{
    int ob;
    group_start(mb, 0, &ob);
    return ob >= 4 ? 6 : ob == 3 ? 8 : TILE_NP;
}

/* Input blocks per chunk: as many as keep the largest group's weights for them
 * within CHUNK_WEIGHT_BYTES, at least one. */
static int64_t chunk_blocks(const conv_job *j)
{
    const kn_nchwc_conv *g = j->a->g;
    int max_ob;
    group_start(j->mb, 0, &max_ob);
    size_t block_bytes = (size_t)(g->kh * g->kw) * B * B * (size_t)max_ob * sizeof(float);
    int64_t n = (int64_t)(CHUNK_WEIGHT_BYTES / block_bytes);
    return n < 1 ? 1 : n;
}

static int fill_tiles(conv_job *j, kn_isa isa)
{
    const kn_nchwc_conv *g = j->a->g;
    isa = kn_cpu_isa_cap(isa);
    if (isa < KN_ISA_AVX512 || g->kh > MAX_TAPS_1D || g->kw > MAX_TAPS_1D)
        return 0;
    int max_ob; /* the first group's blocks; the others have as many or one fewer */
    group_start(j->mb, 0, &max_ob);
    j->np = tile_pixels_for(j->mb);
    for (int o = 0; o < max_ob; o++)
        for (int p = 0; p < j->np; p++)
            if (!(j->tiles[o][p] = kn_nchwc_tile_avx512(o + 1, p + 1)))
                return 0;
    return 1;
}

void kn_nchwc_conv_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    const kn_nchwc_conv *g = a->g;
    if (g->group > 1) {
        kn_nchwc_dw_run(pool, isa, a);
        return;
    }
    if (g->batch < 1 || g->oh < 1 || g->ow < 1)
        return; /* no output */
    if (a->w->wino && kn_nchwc_wino_run(pool, isa, a))
        return;
    conv_job j = {.a = a, .mb = kn_nchwc_padded(g->m) / B, .cb = kn_nchwc_padded(g->channels) / B,
                  .w_bytes = a->w->bytes};
    if (!fill_tiles(&j, isa)) {
        kn_nchwc_conv_reference(a);
        return;
    }
    inside_range(g->ih, g->kh, g->sh, g->dh, g->pt, g->oh, j.oy_in);
    inside_range(g->iw, g->kw, g->sw, g->dw, g->pl, g->ow, j.ox_in);
    j.inline_act = kn_conv_act_is_clamp(&a->act, &j.lo, &j.hi);
    j.clamp = j.inline_act && a->act.kind != KN_CONV_ACT_NONE;
    /* SiLU (EfficientNet's every conv) in the tiles' registers, not over the
     * stored tile afterwards */
    j.silu = a->act.kind == KN_CONV_ACT_SILU;
    j.inline_act = j.inline_act || j.silu;
    j.cb_chunk = chunk_blocks(&j);
    plan_tasks(&j, pool);
    kn_parallel_for(pool, j.image_blocks * j.chunks * j.row_blocks, 1, conv_tasks, &j);
}
