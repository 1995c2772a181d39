/* conv_nchwc_wino.c - 3x3, stride-1, pad-1, group-1 convolutions on blocked
 * (NCHWc16) tensors by Winograd F(4x4, 3x3), AVX-512: 36 multiplies per 4x4 output
 * tile and channel pair instead of 144.
 *   weights (once, at load, beside the direct packing): U = G g G^T per (output,
 *     input) channel (computed in double), as 36 matrices U[pos] (Cp x Mp)
 *     prepacked as the SGEMM's B;
 *   per block of tiles (a pool task; its size depends on the shape only, so results
 *     do not depend on the thread count): V = B^T d B of every 6x6 input patch, 16
 *     channels a vector, rows of tiles x Cp; M[pos] = V[pos] U[pos] (36 GEMMs by the
 *     SGEMM's 14 x 32 register tile over V's rows as they lie,
 *     kn_sgemm_tile_rows_avx512, so that nothing is packed or transposed per
 *     call); Y = A^T M A per tile and output
 *     block, then bias, the residual, the activation and the padding lanes, stored
 *     as blocked pixels.
 * B^T, G and A^T are the usual F(4x4, 3x3) matrices (interpolation points 0, +-1,
 * +-2, infinity), written out at input_1d, weight_1d and output_1d.  The plain C
 * reference is the direct one, kn_nchwc_conv_reference, which the tests hold this
 * path to.  Which shapes take it is kn_nchwc_wino_worth's measured rule. */
#include "kernels/nchwc_internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bigalloc.h"
#include "core/tlsbuf.h"
#include "exec/threadpool.h"
#include "kernels/sgemm.h"

#define B KN_NCHWC_BLOCK
#define OT 4           /* output tile side */
#define IT (OT + 2)     /* input patch side */
#define POS (IT * IT)   /* transform positions */
/* Floats of V and M for one block of tiles (at least one row tile of MR): 256 KiB,
 * so that they stay near the core between the transforms and the GEMMs.  Inside
 * ResNet-50, blocks of 512 KiB, 1 MiB and 2 MiB made its 64- and 128-channel
 * convs 5..15%, 25..30% and 30..55% slower (U streamed once a block costs less
 * than V and M leaving L2). */
#define BLOCK_FLOATS ((int64_t)1 << 16)

struct kn_nchwc_wino {
    int64_t cp, mp;
    kn_packed_b *u[POS]; /* U[pos]: Cp x Mp, the padding zero */
};

/* ------------------------------------------------------------ choice */

int kn_nchwc_wino_takes(const kn_nchwc_conv *g)
{
    return g->group == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 &&
           g->dh == 1 && g->dw == 1 && g->pt == 1 && g->pl == 1 && g->oh == g->ih &&
           g->ow == g->iw && g->channels >= 1 && g->m >= 1;
}

/* KILN_CONV_WINOGRAD: 0 never, 1 every shape the path takes, unset the rule. */
static int wino_setting(void)
{
    const char *s = getenv("KILN_CONV_WINOGRAD");
    return s && (s[0] == '0' || s[0] == '1') && !s[1] ? s[0] - '0' : -1;
}

int kn_nchwc_wino_worth(int64_t batch, int64_t ih, int64_t iw, int64_t channels, int64_t m)
{
    int set = wino_setting();
    if (set >= 0)
        return set;
    (void)batch; /* the rule holds at every batch measured (1 and 8) */
    if (ih < 1 || iw < 1)
        return 0;
    /* measured inside ResNet-50 on the project's Xeon (docs/PERFORMANCE.md): 64 and
     * 128 channels at 56 and 28 pixels take 32..52% less time than the direct
     * conv; 256 at 14 took 60% more (9 MiB of U a conv streamed from memory, where
     * alone in a loop, U in L3, they gained 20%); 512 at 7 lose alone too */
    return ih >= 14 && iw >= 14 && channels >= 32 && m >= 32 && channels <= 128 && m <= 128;
}

/* ----------------------------------------------------------- weights */

void kn_nchwc_wino_free(kn_nchwc_wino *w)
{
    if (!w)
        return;
    for (int p = 0; p < POS; p++)
        kn_packed_b_free(w->u[p]);
    free(w);
}

size_t kn_nchwc_wino_bytes(const kn_nchwc_wino *w)
{
    if (!w)
        return 0;
    size_t n = 0;
    for (int p = 0; p < POS; p++)
        n += w->u[p]->npanels * w->u[p]->K * KN_SGEMM_PANEL * sizeof(float);
    return n;
}

/* G x for the three taps x0..x2 (one column or row of a 3x3 plane), in double. */
static void weight_1d(const double x[3], double u[IT])
{
    u[0] = x[0] / 4.0;
    u[1] = -(x[0] + x[1] + x[2]) / 6.0;
    u[2] = -(x[0] - x[1] + x[2]) / 6.0;
    u[3] = x[0] / 24.0 + x[1] / 12.0 + x[2] / 6.0;
    u[4] = x[0] / 24.0 - x[1] / 12.0 + x[2] / 6.0;
    u[5] = x[2];
}

/* U = G g G^T of one 3x3 plane g, row-major 6 x 6. */
static void weight_tile(const float g[9], float u[POS])
{
    double t[3][IT]; /* t[c] = G (column c of g) */
    for (int c = 0; c < 3; c++) {
        double x[3] = {g[c], g[3 + c], g[6 + c]};
        weight_1d(x, t[c]);
    }
    for (int r = 0; r < IT; r++) {
        double x[3] = {t[0][r], t[1][r], t[2][r]}, row[IT];
        weight_1d(x, row);
        for (int c = 0; c < IT; c++)
            u[r * IT + c] = (float)row[c];
    }
}

/* U[pos] (Cp x Mp, row c, column m) of w [m][channels][3][3] into t (POS of them,
 * zeroed by the caller). */
static void transform_weights(const kn_nchwc_conv *g, const float *w, int64_t cp, int64_t mp,
                              float *t)
{
    size_t plane = (size_t)cp * (size_t)mp;
    for (int64_t m = 0; m < g->m; m++)
        for (int64_t c = 0; c < g->channels; c++) {
            float u[POS];
            weight_tile(w + (m * g->channels + c) * 9, u);
            for (int p = 0; p < POS; p++)
                t[(size_t)p * plane + (size_t)(c * mp + m)] = u[p];
        }
}

kn_nchwc_wino *kn_nchwc_wino_pack(const kn_nchwc_conv *g, const float *w)
{
    /* the run needs this file's AVX-512 code (built when the SGEMM's is) and a CPU
     * that has it: otherwise the weights would only take memory */
    if (!kn_sgemm_kernel_avx512() || kn_cpu_isa_supported() < KN_ISA_AVX512 ||
        !kn_nchwc_wino_takes(g))
        return NULL;
    int64_t cp = kn_nchwc_padded(g->channels), mp = kn_nchwc_padded(g->m);
    size_t plane = (size_t)cp * (size_t)mp;
    float *t = calloc(plane * POS, sizeof *t);
    kn_nchwc_wino *ww = calloc(1, sizeof *ww);
    int ok = t && ww;
    if (ok) {
        ww->cp = cp, ww->mp = mp;
        transform_weights(g, w, cp, mp, t);
        for (int p = 0; p < POS && ok; p++)
            ok = (ww->u[p] = kn_sgemm_pack_b((size_t)cp, (size_t)mp, t + p * plane,
                                             (size_t)mp, 0)) != NULL;
    }
    free(t);
    if (!ok) {
        kn_nchwc_wino_free(ww);
        return NULL;
    }
    return ww;
}

/* ------------------------------------------------------------- driver */

typedef struct wino_job {
    const kn_nchwc_conv_args *a;
    const kn_nchwc_wino *ww;
    int64_t cbs, mbs, cp, mp; /* input / output blocks and padded channels */
    int64_t th, tw, tiles;    /* tile rows and columns of an image, tiles of the batch */
    int64_t tb, blocks;       /* tiles per block (a multiple of MR), blocks */
    size_t v_pos, m_pos;      /* floats of one position's V and M */
    int clamp;                /* the activation is a clamp done in registers */
    float lo, hi;
    uint32_t last_lanes;      /* lanes kept in the last output block */
    atomic_int nomem;
} wino_job;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_INLINE inline __attribute__((always_inline))
enum { MR = 14 };

/* A tile's origin in the batch: image n, first output row / column. */
static void tile_origin(const wino_job *j, int64_t t, int64_t *n, int64_t *oy, int64_t *ox)
{
    int64_t per_image = j->th * j->tw, r = t % per_image;
    *n = t / per_image;
    *oy = OT * (r / j->tw);
    *ox = OT * (r % j->tw);
}

/* The 6x6 patch of input block cb whose top left pixel is (iy0, ix0), zeros
 * outside the image. */
KN_AVX512 static KN_INLINE void load_patch(const wino_job *j, int64_t n, int64_t cb, int64_t iy0,
                                           int64_t ix0, __m512 d[POS])
{
    const kn_nchwc_conv *g = j->a->g;
    const float *plane = j->a->x + (size_t)((n * j->cbs + cb) * g->ih) * (size_t)g->iw * B;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + IT <= g->ih && ix0 + IT <= g->iw) {
        const float *p = plane + (size_t)(iy0 * g->iw + ix0) * B;
        for (int r = 0; r < IT; r++, p += (size_t)g->iw * B)
            for (int c = 0; c < IT; c++)
                d[IT * r + c] = _mm512_loadu_ps(p + c * B);
        return;
    }
    for (int r = 0; r < IT; r++)
        for (int c = 0; c < IT; c++) {
            int64_t iy = iy0 + r, ix = ix0 + c;
            int in = iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw;
            d[IT * r + c] = in ? _mm512_loadu_ps(plane + (size_t)(iy * g->iw + ix) * B)
                               : _mm512_setzero_ps();
        }
}

/* B^T x of six vectors x[0], x[s], .. x[5s] into y[0], y[s], .. (F(4x4, 3x3)'s
 * input matrix: rows 4 0 -5 0 1 0 / 0 -4 -4 1 1 0 / 0 4 -4 -1 1 0 / 0 -2 -1 2 1 0 /
 * 0 2 -1 -2 1 0 / 0 4 0 -5 0 1). */
KN_AVX512 static KN_INLINE void input_1d(const __m512 *x, int s, __m512 *y)
{
    __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
    __m512 t1 = _mm512_fnmadd_ps(four, x[2 * s], x[4 * s]); /* x4 - 4 x2 */
    __m512 t2 = _mm512_fnmadd_ps(four, x[1 * s], x[3 * s]); /* x3 - 4 x1 */
    __m512 t3 = _mm512_sub_ps(x[4 * s], x[2 * s]);
    __m512 t4 = _mm512_sub_ps(x[3 * s], x[1 * s]);
    t4 = _mm512_add_ps(t4, t4);
    y[0] = _mm512_fmadd_ps(four, x[0], _mm512_fnmadd_ps(five, x[2 * s], x[4 * s]));
    y[1 * s] = _mm512_add_ps(t1, t2);
    y[2 * s] = _mm512_sub_ps(t1, t2);
    y[3 * s] = _mm512_add_ps(t3, t4);
    y[4 * s] = _mm512_sub_ps(t3, t4);
    y[5 * s] = _mm512_fmadd_ps(four, x[1 * s], _mm512_fnmadd_ps(five, x[3 * s], x[5 * s]));
}

/* v = B^T d B, 16 channels a lane: the columns, then the rows. */
KN_AVX512 static KN_INLINE void input_transform(const __m512 d[POS], __m512 v[POS])
{
    __m512 t[POS];
    for (int c = 0; c < IT; c++)
        input_1d(d + c, IT, t + c);
    for (int r = 0; r < IT; r++)
        input_1d(t + IT * r, 1, v + IT * r);
}

/* V of tiles t0 .. t0+count-1 of the block (rows r0.. of its V), input block cb:
 * each tile's 16 position vectors into V[pos][row][cb * 16 ..] (rows of Cp). */
KN_AVX512 static void input_tiles(const wino_job *j, float *v, int64_t r0, int64_t t0,
                                  int64_t count, int64_t cb)
{
    for (int64_t i = 0; i < count; i++) {
        __m512 d[POS], s[POS];
        int64_t n, oy, ox;
        tile_origin(j, t0 + i, &n, &oy, &ox);
        load_patch(j, n, cb, oy - 1, ox - 1, d);
        input_transform(d, s);
        float *dst = v + (size_t)((r0 + i) * j->cp + cb * B);
        for (int q = 0; q < POS; q++)
            _mm512_storeu_ps(dst + (size_t)q * j->v_pos, s[q]);
    }
}

/* M[pos] (rows x Mp) = V[pos] (rows x Cp, rows a multiple of MR) U[pos]: panel by
 * panel of U, each swept over the row tiles while it sits in L1. */
static void position_gemm(const wino_job *j, const float *v, const kn_packed_b *u, float *m,
                          int64_t rows)
{
    size_t k = (size_t)j->cp, ld = (size_t)j->mp;
    for (size_t q = 0; q < u->npanels; q++) {
        const float *b = u->data + q * k * KN_SGEMM_PANEL;
        size_t col = q * KN_SGEMM_PANEL;
        int wide = col + KN_SGEMM_PANEL <= ld;
        for (int64_t r = 0; r < rows; r += MR)
            kn_sgemm_tile_rows_avx512(k, v + (size_t)r * k, k, b, m + (size_t)r * ld + col, ld,
                                      wide ? 32 : 16);
    }
}

/* One output pixel's 16 channels: bias (in x already), residual, clamp, padding
 * lanes, store; other activations run over the stored pixels afterwards. */
KN_AVX512 static KN_INLINE void store_pixel(const wino_job *j, __m512 x, size_t at, __mmask16 keep)
{
    const kn_nchwc_conv_args *a = j->a;
    if (a->z)
        x = _mm512_add_ps(x, _mm512_loadu_ps(a->z + at));
    if (j->clamp) /* max / min return the second operand on NaN: x keeps a NaN */
        x = _mm512_min_ps(_mm512_set1_ps(j->hi), _mm512_max_ps(_mm512_set1_ps(j->lo), x));
    _mm512_storeu_ps(a->y + at, _mm512_maskz_mov_ps(keep, x));
}

/* A^T x of six vectors x[0], x[s], .. x[5s] into y[0], y[s], .. y[3s] (rows
 * 1 1 1 1 1 0 / 0 1 -1 2 -2 0 / 0 1 1 4 4 0 / 0 1 -1 8 -8 1). */
KN_AVX512 static KN_INLINE void output_1d(const __m512 *x, int s, __m512 *y)
{
    __m512 a = _mm512_add_ps(x[1 * s], x[2 * s]), b = _mm512_sub_ps(x[1 * s], x[2 * s]);
    __m512 c = _mm512_add_ps(x[3 * s], x[4 * s]), d = _mm512_sub_ps(x[3 * s], x[4 * s]);
    y[0] = _mm512_add_ps(_mm512_add_ps(x[0], a), c);
    y[1 * s] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
    y[2 * s] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
    y[3 * s] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), x[5 * s]);
}

/* Y = A^T m A of tile t (row i of the block's M), output block ob, stored. */
KN_AVX512 static void output_tile(const wino_job *j, const float *mbuf, int64_t i, int64_t t,
                                  int64_t ob)
{
    const kn_nchwc_conv *g = j->a->g;
    __m512 m[POS], s[OT * IT], y[OT * OT];
    for (int q = 0; q < POS; q++)
        m[q] = _mm512_loadu_ps(mbuf + (size_t)q * j->m_pos + (size_t)(i * j->mp + ob * B));
    for (int c = 0; c < IT; c++)
        output_1d(m + c, IT, s + c);
    for (int r = 0; r < OT; r++)
        output_1d(s + IT * r, 1, y + OT * r);
    __m512 bias = _mm512_loadu_ps(j->a->w->bias + ob * B);
    int64_t n, oy, ox;
    tile_origin(j, t, &n, &oy, &ox);
    __mmask16 keep = (__mmask16)(ob == j->mbs - 1 ? j->last_lanes : 0xFFFFu);
    size_t plane = (size_t)((n * j->mbs + ob) * g->oh) * (size_t)g->ow;
    for (int r = 0; r < OT && oy + r < g->oh; r++)
        for (int c = 0; c < OT && ox + c < g->ow; c++) {
            size_t at = (plane + (size_t)((oy + r) * g->ow + ox + c)) * B;
            store_pixel(j, _mm512_add_ps(y[OT * r + c], bias), at, keep);
            if (!j->clamp) {
                kn_conv_act_apply(&j->a->act, j->a->y + at, B);
                _mm512_storeu_ps(j->a->y + at, _mm512_maskz_loadu_ps(keep, j->a->y + at));
            }
        }
}

/* Block b of tiles: transforms in, a GEMM per position, transforms out. */
KN_AVX512 static void run_block(wino_job *j, int64_t b)
{
    int64_t t0 = b * j->tb, nt = j->tiles - t0 < j->tb ? j->tiles - t0 : j->tb;
    int64_t rows = (nt + MR - 1) / MR * MR;
    float *buf = kn_thread_buffer(KN_TLS_CONV, (size_t)POS * (j->v_pos + j->m_pos) * sizeof(float));
    if (!buf) {
        atomic_store(&j->nomem, 1);
        return;
    }
    float *v = buf, *mbuf = v + (size_t)POS * j->v_pos;
    for (int64_t cb = 0; cb < j->cbs; cb++)
        input_tiles(j, v, 0, t0, nt, cb);
    for (int q = 0; q < POS && rows > nt; q++) /* the last row tile's rows past the block */
        memset(v + (size_t)q * j->v_pos + (size_t)(nt * j->cp), 0,
               (size_t)((rows - nt) * j->cp) * sizeof(float));
    for (int q = 0; q < POS; q++)
        position_gemm(j, v + (size_t)q * j->v_pos, j->ww->u[q], mbuf + (size_t)q * j->m_pos, rows);
    for (int64_t i = 0; i < nt; i++)
        for (int64_t ob = 0; ob < j->mbs; ob++)
            output_tile(j, mbuf, i, t0 + i, ob);
}

static void block_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    (void)thread_index;
    for (int64_t b = begin; b < end; b++)
        run_block(ctx, b);
    kn_cpu_clear_upper();
}

/* Tiles per block: as many as keep V and M within BLOCK_FLOATS, in whole
 * micro-panels, then evened out over the blocks that takes. */
static void plan_blocks(wino_job *j)
{
    int64_t most = BLOCK_FLOATS / (POS * (j->cp + j->mp)) / MR * MR;
    if (most < MR)
        most = MR;
    j->blocks = (j->tiles + most - 1) / most;
    if (j->blocks > 1) /* an even count shares out over two threads (+5..9% at 2) */
        j->blocks += j->blocks % 2;
    int64_t even = (j->tiles + j->blocks - 1) / j->blocks;
    j->tb = (even + MR - 1) / MR * MR;
    j->blocks = (j->tiles + j->tb - 1) / j->tb;
    j->v_pos = (size_t)(j->tb * j->cp);
    j->m_pos = (size_t)(j->tb * j->mp);
}

int kn_nchwc_wino_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    const kn_nchwc_conv *g = a->g;
    const kn_nchwc_wino *ww = a->w->wino;
    if (!ww || kn_cpu_isa_cap(isa) < KN_ISA_AVX512 || !kn_nchwc_wino_takes(g) ||
        ww->cp != kn_nchwc_padded(g->channels) || ww->mp != kn_nchwc_padded(g->m))
        return 0;
    wino_job j = {.a = a, .ww = ww, .cp = ww->cp, .mp = ww->mp};
    j.cbs = j.cp / B, j.mbs = j.mp / B;
    j.th = (g->oh + OT - 1) / OT, j.tw = (g->ow + OT - 1) / OT;
    j.tiles = g->batch * j.th * j.tw;
    int rem = (int)(g->m % B);
    j.last_lanes = rem ? (1u << rem) - 1u : 0xFFFFu;
    j.clamp = kn_conv_act_is_clamp(&a->act, &j.lo, &j.hi);
    atomic_init(&j.nomem, 0);
    plan_blocks(&j);
    kn_parallel_for(pool, j.blocks, 1, block_range, &j);
    return !atomic_load(&j.nomem);
}

#else

int kn_nchwc_wino_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    (void)pool, (void)isa, (void)a;
    return 0;
}

#endif
