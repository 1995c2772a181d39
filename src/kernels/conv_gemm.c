/* conv_gemm.c - whole float32 NCHW 2-D convolutions on top of the plane and
 * column kernels: algorithm choice (depthwise / pointwise / Winograd / direct /
 * im2col; Winograd in conv_winograd.c, the
 * direct path lives in conv_direct.c, the unpacked pointwise one in
 * conv_pointwise.c, tried before the pointwise GEMM), scratch
 * sizing, and the threading (planes for depthwise, pixel tiles for im2col, the
 * GEMM's own split for pointwise and for too few tiles; im2col tiles are written
 * straight in the GEMM's packed-B layout).  Per group the conv is
 * the GEMM Y[co, pixels] = W[co, ci*kh*kw] x cols[ci*kh*kw, pixels] with the
 * bias, the FusedConv residual and a Relu/Clip applied in the GEMM epilogue. */
#include "kernels/conv_kernels.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "exec/threadpool.h"
#include "kernels/sgemm.h"

/* Column tile budget (floats): one thread's tile of im2col stays in its L2. */
#define COL_TILE_FLOATS ((int64_t)1 << 17)
/* ... but a tile keeps at least COL_TILE_MIN_PIXELS pixels while that stays under
 * COL_TILE_MAX_FLOATS: every tile streams all of the weights through the GEMM, and
 * deep 3x3 convs at 14x14 / 7x7 (K = 2304, 4608: weights of 2.4 / 9.4 MB) would
 * otherwise read them for every 32 pixels. */
#define COL_TILE_MIN_PIXELS 128
#define COL_TILE_MAX_FLOATS ((int64_t)1 << 19)
/* Fast paths decline anything whose scratch would exceed this many floats. */
#define SCRATCH_MAX_FLOATS ((int64_t)1 << 28)

static int64_t rows_per_group(const kn_conv2d_args *a)
{
    return a->g.channels * a->g.kh * a->g.kw;
}

kn_conv_algo kn_conv2d_algo(const kn_conv2d_args *a)
{
    const kn_conv2d_geom *g = &a->g;
    if (a->group > 1 && g->channels == 1 && a->m == a->group)
        return KN_CONV_ALGO_DEPTHWISE;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
        g->oh == g->ih && g->ow == g->iw)
        return KN_CONV_ALGO_POINTWISE;
    if (kn_wino_applies(a))
        return KN_CONV_ALGO_WINOGRAD;
    if (kn_conv2d_direct_ok(a))
        return KN_CONV_ALGO_DIRECT;
    return KN_CONV_ALGO_IM2COL;
}

static kn_dw_geom dw_geom_of(const kn_conv2d_geom *g)
{
    kn_dw_geom d = {g->ih, g->iw, g->oh, g->ow, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw,
                    g->pt, g->pl};
    return d;
}

/* Output pixels per im2col tile: a multiple of the GEMM panel (32) near the
 * budget, or all of them. */
static int64_t tile_pixels(const kn_conv2d_args *a)
{
    int64_t P = a->g.oh * a->g.ow, K = rows_per_group(a), t = COL_TILE_FLOATS / K;
    if (t < COL_TILE_MIN_PIXELS)
        t = COL_TILE_MAX_FLOATS / K < COL_TILE_MIN_PIXELS ? COL_TILE_MAX_FLOATS / K
                                                          : COL_TILE_MIN_PIXELS;
    t = t / 32 * 32;
    if (t < 32)
        t = 32;
    return t < P ? t : P;
}

/* Floats of one thread's slice, rounded to whole cache lines. */
static int64_t slice_floats(const kn_conv2d_args *a)
{
    int64_t n = 0;
    kn_conv_algo algo = kn_conv2d_algo(a);
    if (algo == KN_CONV_ALGO_DEPTHWISE) {
        kn_dw_geom d = dw_geom_of(&a->g);
        size_t f = kn_dw_scratch_floats(&d);
        n = f ? (int64_t)f : -1;
    } else if (algo == KN_CONV_ALGO_IM2COL) { /* packed panels: pixels rounded up to 32 */
        int64_t t = tile_pixels(a);
        n = rows_per_group(a) * ((t + KN_SGEMM_PANEL - 1) / KN_SGEMM_PANEL * KN_SGEMM_PANEL);
    } else if (algo == KN_CONV_ALGO_DIRECT) {
        n = (int64_t)kn_conv2d_direct_slice_floats(a);
    } else if (algo == KN_CONV_ALGO_WINOGRAD) {
        n = (int64_t)kn_wino_slice_floats(a);
    }
    return n < 0 ? n : (n + 15) / 16 * 16;
}

size_t kn_conv2d_scratch_floats(const kn_conv2d_args *a, int threads)
{
    int64_t s = slice_floats(a), slices = threads > 1 ? threads : 1;
    if (s < 0 || rows_per_group(a) > SCRATCH_MAX_FLOATS || s > SCRATCH_MAX_FLOATS)
        return SIZE_MAX;
    if (s && slices > SCRATCH_MAX_FLOATS / s)
        slices = SCRATCH_MAX_FLOATS / s; /* fewer slices: the run goes sequential */
    return (size_t)(s * slices);
}

int kn_conv2d_gemm_always_fits(int64_t rows)
{
    return rows >= 1 && rows <= SCRATCH_MAX_FLOATS / 64;
}

/* True when scratch has a slice for each thread of pool (else run one task at a time). */
static bool slice_per_thread(struct kn_threadpool *pool, int64_t slice, size_t scratch_floats)
{
    return slice == 0 || (int64_t)(scratch_floats / (size_t)slice) >= kn_threadpool_size(pool);
}

/* ------------------------------------------------------------ depthwise */

typedef struct dw_job {
    const kn_conv2d_args *a;
    kn_isa isa;
    float *scratch;
    int64_t slice;
} dw_job;

static void dw_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dw_job *j = ctx;
    const kn_conv2d_args *a = j->a;
    kn_dw_geom d = dw_geom_of(&a->g);
    int64_t in_plane = d.ih * d.iw, out_plane = d.oh * d.ow, taps = d.kh * d.kw;
    float *scratch = j->scratch + thread_index * j->slice;
    for (int64_t q = begin; q < end; q++) {
        int64_t ch = q % a->m;
        kn_dwconv_plane(j->isa, &d, a->x + q * in_plane, a->w + ch * taps,
                        a->bias ? a->bias[ch] : 0.0f, a->z ? a->z + q * out_plane : NULL,
                        &a->act, scratch, a->y + q * out_plane);
    }
    kn_cpu_clear_upper(); /* the plane kernels leave wide registers dirty */
}

/* --------------------------------------------------------------- GEMMs */

/* GEMM epilogue of rows [co0, co0 + rows) of batch item n's output at pixel p0. */
static void gemm_epilogue(const kn_conv2d_args *a, int64_t n, int64_t co0, int64_t p0,
                          kn_gemm_epilogue *ep)
{
    int64_t P = a->g.oh * a->g.ow;
    float lo, hi;
    *ep = (kn_gemm_epilogue){0};
    ep->row_bias = a->bias ? a->bias + co0 : NULL;
    ep->residual = a->z ? a->z + (n * a->m + co0) * P + p0 : NULL;
    ep->ldr = (size_t)P;
    if (kn_conv_act_is_clamp(&a->act, &lo, &hi) && a->act.kind != KN_CONV_ACT_NONE) {
        ep->act = KN_GEMM_ACT_CLIP;
        ep->clip_min = lo;
        ep->clip_max = hi;
    }
}

typedef struct act_rows_job {
    const kn_conv2d_args *a;
    float *y;
    int64_t np;
} act_rows_job;

static void act_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const act_rows_job *j = ctx;
    int64_t P = j->a->g.oh * j->a->g.ow;
    (void)thread_index;
    for (int64_t r = begin; r < end; r++)
        kn_conv_act_apply(&j->a->act, j->y + r * P, (size_t)j->np);
}

/* The activations the epilogue cannot do (SiLU, Sigmoid...), over rows x np
 * outputs (stride P); over pool when the GEMM before it was split over it (a
 * conv run as one GEMM would otherwise apply them on one thread). */
static void finish_rows(struct kn_threadpool *pool, const kn_conv2d_args *a, float *y,
                        int64_t rows, int64_t np)
{
    float lo, hi;
    if (kn_conv_act_is_clamp(&a->act, &lo, &hi))
        return;
    act_rows_job j = {a, y, np};
    int64_t grain = np >= 4096 ? 1 : (4096 + np - 1) / np; /* ~4K outputs a chunk at least */
    kn_parallel_for(pool, rows, grain, act_rows, &j);
}

typedef struct gemm_job {
    const kn_conv2d_args *a;
    kn_packed_a *const *pa;
    struct kn_threadpool *pool; /* the GEMM's own pool (NULL inside a parallel job) */
    kn_isa isa;
    float *scratch;
    int64_t slice, tile, tiles;
    atomic_int rc; /* any failing task's code (all are KN_ERR_NOMEM) */
} gemm_job;

/* One tile of pixels of one (batch item, group): im2col, GEMM, activation. */
static int run_tile(const gemm_job *j, int64_t n, int64_t gi, int64_t t, float *col)
{
    const kn_conv2d_args *a = j->a;
    const kn_conv2d_geom *g = &a->g;
    int64_t P = g->oh * g->ow, mg = a->m / a->group, K = rows_per_group(a);
    int64_t p0 = t * j->tile, np = P - p0 < j->tile ? P - p0 : j->tile;
    const float *xg = a->x + (n * a->group + gi) * g->channels * g->ih * g->iw;
    float *yg = a->y + (n * a->m + gi * mg) * P + p0;
    kn_gemm_epilogue ep;
    gemm_epilogue(a, n, gi * mg, p0, &ep);
    int rc;
    if (col) { /* the columns written as the GEMM's packed B: no second copy */
        kn_im2col_tile_packed(j->isa, g, xg, p0, np, col);
        int64_t panels = (np + KN_SGEMM_PANEL - 1) / KN_SGEMM_PANEL;
        kn_packed_b pb = {(size_t)K, (size_t)np, (size_t)panels, col};
        rc = kn_sgemm_run_pa_pb(j->pool, (size_t)mg, (size_t)np, (size_t)K, j->pa[gi], &pb, yg,
                                (size_t)P, &ep);
    } else {
        rc = kn_sgemm_run_pa(j->pool, (size_t)mg, (size_t)np, (size_t)K, j->pa[gi], xg + p0,
                             (size_t)P, yg, (size_t)P, &ep);
    }
    if (!rc)
        finish_rows(j->pool, a, yg, mg, np);
    return rc;
}

static void gemm_tiles(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    gemm_job *j = ctx;
    float *col = j->slice ? j->scratch + thread_index * j->slice : NULL;
    for (int64_t q = begin; q < end; q++) {
        int64_t t = q % j->tiles, ng = q / j->tiles;
        int rc = run_tile(j, ng / j->a->group, ng % j->a->group, t, col);
        if (rc)
            atomic_store(&j->rc, rc);
    }
}

/* Weights of every group packed for isa (NULL entries on failure). */
static kn_packed_a **pack_groups(const kn_conv2d_args *a, kn_isa isa)
{
    int64_t mg = a->m / a->group, K = rows_per_group(a);
    kn_packed_a **pa = calloc((size_t)a->group, sizeof *pa);
    for (int64_t gi = 0; pa && gi < a->group; gi++) {
        pa[gi] = kn_sgemm_pack_a_isa(isa, 0, (size_t)mg, (size_t)K, a->w + gi * mg * K,
                                     (size_t)K);
        if (!pa[gi]) {
            for (int64_t k = 0; k < gi; k++)
                kn_packed_a_free(pa[k]);
            free(pa);
            return NULL;
        }
    }
    return pa;
}

static void free_groups(kn_packed_a **pa, int64_t group)
{
    for (int64_t gi = 0; pa && gi < group; gi++)
        kn_packed_a_free(pa[gi]);
    free(pa);
}

static int run_gemms(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                     float *scratch, size_t scratch_floats)
{
    kn_packed_a **own = NULL;
    gemm_job j = {.a = a, .pa = a->pa, .isa = isa, .scratch = scratch};
    atomic_init(&j.rc, KN_OK);
    if (!j.pa && !(j.pa = own = pack_groups(a, isa)))
        return KN_ERR_NOMEM;
    bool cols = kn_conv2d_algo(a) == KN_CONV_ALGO_IM2COL;
    if (!cols && kn_conv2d_pointwise_run(pool, isa, a, j.pa)) {
        free_groups(own, a->group);
        return KN_OK;
    }
    int threads = kn_threadpool_size(pool);
    int64_t P = a->g.oh * a->g.ow;
    j.tile = cols ? tile_pixels(a) : P;
    j.tiles = (P + j.tile - 1) / j.tile;
    j.slice = cols ? slice_floats(a) : 0;
    int64_t tasks = a->batch * a->group * j.tiles;
    if (threads > 1 && tasks >= 2 * threads && slice_per_thread(pool, j.slice, scratch_floats)) {
        kn_parallel_for(pool, tasks, 1, gemm_tiles, &j); /* GEMMs inline in each task */
    } else {
        j.pool = pool; /* few tasks: one after another, each GEMM split over the pool */
        gemm_tiles(&j, 0, tasks, 0);
    }
    free_groups(own, a->group);
    return atomic_load(&j.rc);
}

int kn_conv2d_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                  float *scratch, size_t scratch_floats)
{
    if (kn_conv2d_algo(a) == KN_CONV_ALGO_DEPTHWISE) {
        dw_job j = {a, isa, scratch, slice_floats(a)};
        if (slice_per_thread(pool, j.slice, scratch_floats))
            kn_parallel_for(pool, a->batch * a->m, 1, dw_planes, &j);
        else
            dw_planes(&j, 0, a->batch * a->m, 0);
        return KN_OK;
    }
    if (kn_conv2d_algo(a) == KN_CONV_ALGO_DIRECT) {
        kn_conv2d_direct_run(pool, isa, a, scratch, scratch_floats);
        return KN_OK;
    }
    if (kn_conv2d_algo(a) == KN_CONV_ALGO_WINOGRAD)
        return kn_wino_run(pool, isa, a, scratch, scratch_floats);
    return run_gemms(pool, isa, a, scratch, scratch_floats);
}
