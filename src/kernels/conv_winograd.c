/* conv_winograd.c - float32 NCHW 3x3 stride-1 group-1 convolutions by Winograd
 * F(2x2, 3x3): 2x2 output tiles from overlapping 4x4 input tiles, 16 multiplies
 * per tile and input channel instead of 36.
 *   weights (once, at load): U = G g G^T per (output, input) channel, stored as
 *     16 matrices U[xi] (m x C), each prepacked as the SGEMM's A operand;
 *   per block of T tiles: V[xi] (C x T) = B^T d B of every input tile,
 *     M[xi] (m x T) = U[xi] * V[xi] (16 GEMMs), Y = A^T M A per tile, with
 *     bias, the FusedConv residual and the activation applied as Y is stored.
 * Tiles read zeros outside the image (pads), partial tiles at the right and
 * bottom store only their valid outputs.  The tiles are numbered over the batch,
 * image after image (small images share a block); blocks are the parallel tasks
 * and their size depends on the shape only, so results do not depend on the
 * thread count.  The transforms run as kernels over runs of tiles along a tile
 * row: plain C here, AVX2 / AVX-512 in conv_winograd_avx*.c.  On by default
 * only where it was measured to win (wino_wins); KILN_CONV_WINOGRAD=0 turns it
 * off, =1 on for every shape it takes.  Declarations in conv_kernels.h. */
#include "kernels/conv_kernels.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/threadpool.h"
#include "kernels/sgemm.h"

/* Floats of V + M one block of tiles aims at (a thread's share of L2)... */
#define WINO_BLOCK_FLOATS ((int64_t)1 << 18)
/* ... but a block keeps at least this many tiles (each block streams all the
 * weights through the 16 GEMMs) and at most this many. */
#define WINO_MIN_TILES 64
#define WINO_MAX_TILES 512

/* ------------------------------------------------------------ transforms */

void kn_wino_weight_tile(const float g[9], float u[KN_WINO_POS])
{
    float t[4][3]; /* G g */
    for (int c = 0; c < 3; c++) {
        float g0 = g[c], g1 = g[3 + c], g2 = g[6 + c];
        t[0][c] = g0;
        t[1][c] = 0.5f * (g0 + g1 + g2);
        t[2][c] = 0.5f * (g0 - g1 + g2);
        t[3][c] = g2;
    }
    for (int r = 0; r < 4; r++) { /* (G g) G^T */
        float g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
        u[r * 4 + 0] = g0;
        u[r * 4 + 1] = 0.5f * (g0 + g1 + g2);
        u[r * 4 + 2] = 0.5f * (g0 - g1 + g2);
        u[r * 4 + 3] = g2;
    }
}

/* v = B^T d B of one 4x4 tile (row-major). */
static void input_tile(const float d[16], float v[16])
{
    float t[16];
    for (int c = 0; c < 4; c++) {
        float d0 = d[c], d1 = d[4 + c], d2 = d[8 + c], d3 = d[12 + c];
        t[c] = d0 - d2;
        t[4 + c] = d1 + d2;
        t[8 + c] = d2 - d1;
        t[12 + c] = d1 - d3;
    }
    for (int r = 0; r < 4; r++) {
        const float *s = t + 4 * r;
        v[4 * r + 0] = s[0] - s[2];
        v[4 * r + 1] = s[1] + s[2];
        v[4 * r + 2] = s[2] - s[1];
        v[4 * r + 3] = s[1] - s[3];
    }
}

/* y (2x2, row-major) = A^T m A of one 4x4 tile. */
static void output_tile(const float m[16], float y[4])
{
    float t[8];
    for (int c = 0; c < 4; c++) {
        t[c] = m[c] + m[4 + c] + m[8 + c];
        t[4 + c] = m[4 + c] - m[8 + c] - m[12 + c];
    }
    for (int r = 0; r < 2; r++) {
        const float *s = t + 4 * r;
        y[2 * r] = s[0] + s[1] + s[2];
        y[2 * r + 1] = s[1] - s[2] - s[3];
    }
}

/* The 4x4 input patch at (iy0, ix0) of an ih x iw plane, zeros outside it. */
static void load_patch(const float *plane, int64_t ih, int64_t iw, int64_t iy0, int64_t ix0,
                       float d[16])
{
    if (iy0 >= 0 && ix0 >= 0 && iy0 + 4 <= ih && ix0 + 4 <= iw) {
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                d[4 * r + c] = plane[(iy0 + r) * iw + ix0 + c];
        return;
    }
    for (int r = 0; r < 4; r++) {
        int64_t iy = iy0 + r;
        for (int c = 0; c < 4; c++) {
            int64_t ix = ix0 + c;
            d[4 * r + c] = iy >= 0 && iy < ih && ix >= 0 && ix < iw ? plane[iy * iw + ix] : 0.0f;
        }
    }
}

/* ----------------------------------------------------------- weights */

void kn_wino_free(kn_wino_weights *ww)
{
    for (int xi = 0; ww && xi < KN_WINO_POS; xi++)
        kn_packed_a_free(ww->u[xi]);
    free(ww);
}

/* u (16 matrices m x C, each C floats a row) = the weight tiles of w. */
static void transform_weights(const float *w, int64_t m, int64_t channels, float *u)
{
    int64_t mc = m * channels;
    for (int64_t o = 0; o < m; o++)
        for (int64_t c = 0; c < channels; c++) {
            float t[KN_WINO_POS];
            kn_wino_weight_tile(w + (o * channels + c) * 9, t);
            for (int xi = 0; xi < KN_WINO_POS; xi++)
                u[xi * mc + o * channels + c] = t[xi];
        }
}

kn_wino_weights *kn_wino_pack(kn_isa isa, const float *w, int64_t m, int64_t channels)
{
    if (m < 1 || channels < 1 || (size_t)m > SIZE_MAX / 16 / sizeof(float) / (size_t)channels)
        return NULL;
    kn_wino_weights *ww = calloc(1, sizeof *ww);
    float *u = malloc(sizeof(float) * KN_WINO_POS * (size_t)(m * channels));
    bool ok = ww && u;
    if (ok) {
        ww->m = m;
        ww->channels = channels;
        transform_weights(w, m, channels, u);
    }
    for (int xi = 0; ok && xi < KN_WINO_POS; xi++)
        ok = (ww->u[xi] = kn_sgemm_pack_a_isa(isa, 0, (size_t)m, (size_t)channels,
                                              u + xi * m * channels, (size_t)channels)) != NULL;
    free(u);
    if (!ok) {
        kn_wino_free(ww);
        return NULL;
    }
    return ww;
}

/* The run kernels for isa. */
typedef struct wino_kernels {
    kn_wino_in_fn in;
    kn_wino_out_fn out;
} wino_kernels;

static wino_kernels kernels_for(kn_isa isa)
{
    wino_kernels k = {kn_wino_input_generic, kn_wino_output_generic};
    isa = kn_cpu_isa_cap(isa);
    if (isa >= KN_ISA_AVX512 && kn_wino_input_avx512() && kn_wino_output_avx512()) {
        k.in = kn_wino_input_avx512();
        k.out = kn_wino_output_avx512();
    } else if (isa >= KN_ISA_AVX2 && kn_wino_input_avx2() && kn_wino_output_avx2()) {
        k.in = kn_wino_input_avx2();
        k.out = kn_wino_output_avx2();
    }
    return k;
}

/* ------------------------------------------------------------- choice */

/* KILN_CONV_WINOGRAD: "0" off, "1" on for every shape it takes, else (unset)
 * the shapes where it was measured to win. */
enum { WINO_OFF, WINO_FORCED, WINO_AUTO };

static int wino_mode(void)
{
    static atomic_int cached = -1; /* -1: not read yet */
    int v = atomic_load(&cached);
    if (v < 0) {
        const char *e = getenv("KILN_CONV_WINOGRAD");
        v = e && !strcmp(e, "0") ? WINO_OFF : e && !strcmp(e, "1") ? WINO_FORCED : WINO_AUTO;
        atomic_store(&cached, v);
    }
    return v;
}

/* Tiles in the batch from which the Winograd path is on by default. */
#define WINO_AUTO_MIN_TILES 16

static int64_t tiles_per_image(const kn_conv2d_geom *g)
{
    return ((g->oh + 1) / 2) * ((g->ow + 1) / 2);
}

/* The shapes where Winograd beat im2col + GEMM in bench/conv_bench, 1 thread,
 * with the AVX-512 and with the AVX2 transforms (and GEMMs): 16..512 channels,
 * from 14x14 outputs (49 tiles) up at batch 1 and 7x7 from batch 2 (32 tiles),
 * 1.2x to 2x; 7x7 at batch 1 (16 tiles) 0-10% faster there, with the 16 MB of
 * 512-channel weights in L3, and no faster measurably inside ResNet-50, whose
 * weights do not stay in L3: kn_wino_worth_weights builds no Winograd weights for
 * 7x7 images unless the batch is known to be >= 2 (ResNet-50 batch 1: latency
 * within the noise, 17 MiB less RSS, load ~370 -> ~270 ms); at 4x4 and 1x1 outputs
 * (4 and 1 tiles) the 16/9 larger weights streamed per block cost more than the
 * multiplies saved.  The plain C transforms lose to im2col at 56x56 and 28x28. */
static bool wino_wins(const kn_conv2d_args *a)
{
    return kernels_for(kn_cpu_isa()).in != kn_wino_input_generic &&
           a->batch * tiles_per_image(&a->g) >= WINO_AUTO_MIN_TILES;
}

int kn_wino_weights_ok(int64_t group, int64_t channels, int64_t m, int64_t kh, int64_t kw)
{
    return wino_mode() != WINO_OFF && group == 1 && kh == 3 && kw == 3 &&
           channels >= KN_WINO_MIN_CHANNELS && m >= KN_WINO_MIN_CHANNELS &&
           channels <= (1 << 16) && m <= (1 << 16);
}

int kn_wino_worth_weights(int64_t batch, int64_t ih, int64_t iw)
{
    kn_conv2d_geom g = {.oh = ih, .ow = iw};
    int mode = wino_mode();
    if (mode != WINO_AUTO || ih < 0 || iw < 0)
        return mode == WINO_FORCED || mode == WINO_AUTO;
    int64_t tiles = tiles_per_image(&g);
    return batch > 1 ? batch * tiles >= WINO_AUTO_MIN_TILES : tiles > WINO_AUTO_MIN_TILES;
}

int kn_wino_applies(const kn_conv2d_args *a)
{
    const kn_conv2d_geom *g = &a->g;
    const kn_wino_weights *ww = a->wino;
    int mode = wino_mode();
    bool only_path = !a->pa || !a->pa[0]; /* prepare kept no im2col weights beside these */
    return ww && mode != WINO_OFF && (mode == WINO_FORCED || only_path || wino_wins(a)) && ww->m == a->m &&
           ww->channels == g->channels &&
           kn_wino_weights_ok(a->group, g->channels, a->m, g->kh, g->kw) && g->sh == 1 &&
           g->sw == 1 && g->dh == 1 && g->dw == 1 && g->oh >= 1 && g->ow >= 1;
}

/* ------------------------------------------------------------ blocking */

/* Tiles per block (the tiles of the batch numbered image after image, so that
 * small images share blocks): near the budget, within [WINO_MIN_TILES,
 * WINO_MAX_TILES], a multiple of the GEMM panel, or all of them. */
static int64_t block_tiles(const kn_conv2d_args *a)
{
    int64_t t = WINO_BLOCK_FLOATS / (KN_WINO_POS * (a->g.channels + a->m));
    t = t < WINO_MIN_TILES ? WINO_MIN_TILES : t > WINO_MAX_TILES ? WINO_MAX_TILES : t;
    t = t / KN_SGEMM_PANEL * KN_SGEMM_PANEL;
    int64_t all = a->batch * tiles_per_image(&a->g);
    return t < all ? t : all;
}

/* Floats from one position's matrix to the next in V (C x T) and M (m x T):
 * padded by a cache line so that the 16 streams do not share cache sets. */
static int64_t pos_stride(int64_t rows, int64_t T)
{
    return (rows * T + 15) / 16 * 16 + 16;
}

size_t kn_wino_slice_floats(const kn_conv2d_args *a)
{
    int64_t T = block_tiles(a);
    return (size_t)(KN_WINO_POS * (pos_stride(a->g.channels, T) + pos_stride(a->m, T)));
}

/* ------------------------------------------------------------------ run */

/* ------------------------------------------------- row-run kernels */

void kn_wino_input_generic(const kn_wino_in_run *r)
{
    for (int64_t k = 0; k < r->n; k++) {
        float d[16], v[16];
        int64_t ix = r->ix0 + 2 * k;
        for (int y = 0; y < 4; y++)
            for (int c = 0; c < 4; c++)
                d[4 * y + c] = r->rows[y] && ix + c < r->iw ? r->rows[y][ix + c] : 0.0f;
        input_tile(d, v);
        for (int xi = 0; xi < KN_WINO_POS; xi++)
            r->v[xi * r->vs + k] = v[xi];
    }
}

void kn_wino_output_generic(const kn_wino_out_run *r)
{
    for (int64_t k = 0; k < r->n; k++) {
        float mm[16], v[4];
        for (int xi = 0; xi < KN_WINO_POS; xi++)
            mm[xi] = r->m[xi * r->ms + k];
        output_tile(mm, v);
        for (int y = 0; y < 2 && r->y[y]; y++)
            for (int c = 0; c < 2 && 2 * k + c < r->cols; c++) {
                int64_t col = 2 * k + c;
                float s = v[2 * y + c] + r->bias + (r->z[y] ? r->z[y][col] : 0.0f);
                r->y[y][col] = s < r->lo ? r->lo : s > r->hi ? r->hi : s; /* NaN stays */
            }
    }
}

/* ------------------------------------------------------------ drivers */

/* A run of tiles along one tile row: batch item img, tile row ty, columns
 * [tx0, tx0 + n), the first at index i of the block. */
typedef struct tile_run {
    int64_t img, ty, tx0, n, i;
} tile_run;
typedef void (*run_fn)(void *ctx, tile_run t);

/* The tiles [t0, t0 + nt) of the batch (tw tiles a row, tpi an image) split at
 * tile-row ends: fn for each run. */
static void for_runs(int64_t tw, int64_t tpi, int64_t t0, int64_t nt, run_fn fn, void *ctx)
{
    for (int64_t i = 0; i < nt;) {
        int64_t img = (t0 + i) / tpi, t = t0 + i - img * tpi, ty = t / tw, tx = t - ty * tw;
        int64_t n = tw - tx < nt - i ? tw - tx : nt - i;
        fn(ctx, (tile_run){img, ty, tx, n, i});
        i += n;
    }
}

typedef struct in_ctx {
    const kn_conv2d_args *a;
    int64_t ci;     /* the input channel */
    float *v;       /* V at this channel's row */
    int64_t vs;
    kn_wino_in_fn fn;
} in_ctx;

static void input_run(void *ctx, tile_run t)
{
    const in_ctx *c = ctx;
    const kn_conv2d_geom *g = &c->a->g;
    const float *x = c->a->x + (t.img * g->channels + c->ci) * g->ih * g->iw;
    int64_t iy0 = 2 * t.ty - g->pt, tx0 = t.tx0, n = t.n, i = t.i;
    kn_wino_in_run r = {.iw = g->iw, .vs = c->vs};
    for (int y = 0; y < 4; y++)
        r.rows[y] = iy0 + y >= 0 && iy0 + y < g->ih ? x + (iy0 + y) * g->iw : NULL;
    for (; n > 0 && 2 * tx0 - g->pl < 0; tx0++, n--, i++) { /* tiles over the left pad */
        float d[16], v[16];
        load_patch(x, g->ih, g->iw, iy0, 2 * tx0 - g->pl, d);
        input_tile(d, v);
        for (int xi = 0; xi < KN_WINO_POS; xi++)
            c->v[xi * c->vs + i] = v[xi];
    }
    r.ix0 = 2 * tx0 - g->pl;
    r.n = n;
    r.v = c->v + i;
    if (n > 0)
        c->fn(&r);
}

/* Input channels [c0, c1) of V[xi][c][i] for tiles [t0, t0 + nt) of the batch. */
static void transform_inputs(const kn_conv2d_args *a, kn_wino_in_fn fn, int64_t t0, int64_t nt,
                             int64_t T, float *V, int64_t c0, int64_t c1)
{
    const kn_conv2d_geom *g = &a->g;
    in_ctx c = {.a = a, .vs = pos_stride(g->channels, T), .fn = fn};
    for (c.ci = c0; c.ci < c1; c.ci++) {
        c.v = V + c.ci * T;
        for_runs((g->ow + 1) / 2, tiles_per_image(g), t0, nt, input_run, &c);
    }
}

typedef struct out_ctx {
    const kn_conv2d_args *a;
    const float *m; /* M at this output channel's row */
    int64_t co;     /* the output channel */
    int64_t ms;
    float bias, lo, hi;
    bool other_act; /* an activation the clamp does not cover */
    kn_wino_out_fn fn;
} out_ctx;

static void output_run(void *ctx, tile_run t)
{
    const out_ctx *c = ctx;
    const kn_conv2d_args *a = c->a;
    int64_t oh = a->g.oh, ow = a->g.ow, oy = 2 * t.ty, ox0 = 2 * t.tx0;
    int64_t plane = (t.img * a->m + c->co) * oh * ow;
    kn_wino_out_run r = {.m = c->m + t.i, .ms = c->ms, .n = t.n,
                         .cols = ow - ox0 < 2 * t.n ? ow - ox0 : 2 * t.n, .bias = c->bias,
                         .lo = c->lo, .hi = c->hi};
    for (int y = 0; y < 2 && oy + y < oh; y++) {
        r.y[y] = a->y + plane + (oy + y) * ow + ox0;
        r.z[y] = a->z ? a->z + plane + (oy + y) * ow + ox0 : NULL;
    }
    c->fn(&r);
    for (int y = 0; c->other_act && y < 2 && r.y[y]; y++)
        kn_conv_act_apply(&c->a->act, r.y[y], (size_t)r.cols);
}

/* Output channels [c0, c1) of Y of tiles [t0, t0 + nt) of the batch from
 * M[xi][co][i]. */
static void transform_outputs(const kn_conv2d_args *a, kn_wino_out_fn fn, int64_t t0, int64_t nt,
                              int64_t T, const float *M, int64_t c0, int64_t c1)
{
    out_ctx c = {.a = a, .ms = pos_stride(a->m, T), .fn = fn};
    c.other_act = !kn_conv_act_is_clamp(&a->act, &c.lo, &c.hi);
    for (c.co = c0; c.co < c1; c.co++) {
        c.m = M + c.co * T;
        c.bias = a->bias ? a->bias[c.co] : 0.0f;
        for_runs((a->g.ow + 1) / 2, tiles_per_image(&a->g), t0, nt, output_run, &c);
    }
}

typedef struct wino_job {
    const kn_conv2d_args *a;
    struct kn_threadpool *pool; /* the GEMMs' pool (NULL inside a parallel job) */
    float *scratch;
    int64_t slice, T, tiles; /* tiles of the whole batch */
    wino_kernels k;
    atomic_int rc;
} wino_job;

/* One block's tiles and scratch, for the transforms split by channel. */
typedef struct block_span {
    const wino_job *j;
    int64_t t0, nt;
    float *V, *M;
} block_span;

static void inputs_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const block_span *s = ctx;
    (void)thread_index;
    transform_inputs(s->j->a, s->j->k.in, s->t0, s->nt, s->j->T, s->V, begin, end);
    kn_cpu_clear_upper();
}

static void outputs_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const block_span *s = ctx;
    (void)thread_index;
    transform_outputs(s->j->a, s->j->k.out, s->t0, s->nt, s->j->T, s->M, begin, end);
    kn_cpu_clear_upper();
}

/* One block: tiles [b * T, ...) of the batch, through scratch V and M (the
 * transforms split by channel and the GEMMs by tiles over j->pool, if any). */
static int run_block(const wino_job *j, int64_t b, float *V)
{
    const kn_conv2d_args *a = j->a;
    int64_t C = a->g.channels, m = a->m, T = j->T, t0 = b * T;
    int64_t nt = j->tiles - t0 < T ? j->tiles - t0 : T;
    int64_t vs = pos_stride(C, T), ms = pos_stride(m, T);
    float *M = V + KN_WINO_POS * vs;
    block_span span = {j, t0, nt, V, M};
    kn_parallel_for(j->pool, C, 8, inputs_range, &span);
    for (int xi = 0; xi < KN_WINO_POS; xi++) {
        int rc = kn_sgemm_run_pa(j->pool, (size_t)m, (size_t)nt, (size_t)C, a->wino->u[xi],
                                 V + xi * vs, (size_t)T, M + xi * ms, (size_t)T, NULL);
        if (rc)
            return rc;
    }
    kn_parallel_for(j->pool, m, 8, outputs_range, &span);
    return KN_OK;
}

static void run_blocks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    wino_job *j = ctx;
    float *V = j->scratch + thread_index * j->slice;
    for (int64_t q = begin; q < end; q++) {
        int rc = run_block(j, q, V);
        if (rc)
            atomic_store(&j->rc, rc);
    }
    kn_cpu_clear_upper(); /* the AVX-512 transforms leave wide registers dirty */
}

int kn_wino_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a, float *scratch,
                size_t scratch_floats)
{
    wino_job j = {.a = a, .scratch = scratch, .k = kernels_for(isa)};
    atomic_init(&j.rc, KN_OK);
    j.T = block_tiles(a);
    j.slice = (int64_t)kn_wino_slice_floats(a);
    j.tiles = a->batch * tiles_per_image(&a->g);
    int64_t tasks = (j.tiles + j.T - 1) / j.T;
    int threads = kn_threadpool_size(pool);
    if (threads > 1 && tasks >= 2 * threads &&
        (int64_t)(scratch_floats / (size_t)j.slice) >= threads) {
        kn_parallel_for(pool, tasks, 1, run_blocks, &j); /* GEMMs inline in each task */
    } else {
        j.pool = pool; /* few blocks: one after another, each GEMM split over the pool */
        run_blocks(&j, 0, tasks, 0);
    }
    return atomic_load(&j.rc);
}
