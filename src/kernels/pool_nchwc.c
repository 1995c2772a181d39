/* pool_nchwc.c - max / average pools and the global average on blocked NCHWc16
 * tensors, with the semantics of the float32 NCHW MaxPool / AveragePool of
 * ops/pool.c: a window's cells outside the image are skipped; max starts at
 * -inf (a window with no cell inside gives -inf), and a NaN in the window
 * gives NaN (payloads aside); average sums each window column over its rows, then the columns left
 * to right, in float (the order of pool.c's float rows, so dilation-1 results
 * are its bits), and divides by the cells inside, or with count_include_pad by
 * the cells inside the padded image (kh * kw clipped to [-pt, ih + pb) x
 * [-pl, iw + pr)); no cell to count gives 0 (pool.c's dilated windows go
 * through its double walker: those agree to float rounding).  The global
 * average sums each channel in float, as pool.c's GlobalAveragePool does
 * through vmath's sum, but in its own order (four partial sums, pixel i in sum
 * i % 4, then (s0 + s1) + (s2 + s3)), then divides by hw: the two agree to
 * float rounding, the reference here and the vector code bit for bit.
 * Plain C references and AVX-512 versions (one vector = the 16 channels of a
 * pixel); work splits over (image, block). */
#include "kernels/nchwc.h"

#include <math.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/nchwc_taps.h"

/* Inlined into the AVX-512 code: called from there as baseline functions, their
 * SSE conversions would pay the dirty-upper-state penalty on every pixel. */
#define POOL_INLINE __attribute__((always_inline)) inline

/* The window of one output pixel: tap ranges inside the image, the divisor. */
typedef struct pool_win {
    int64_t iy, ix, kylo, kyhi, kxlo, kxhi;
    float count;
} pool_win;

static POOL_INLINE void pool_window(const kn_nchwc_pool *p, int64_t oy, int64_t ox, pool_win *w)
{
    w->iy = oy * p->sh - p->pt;
    w->ix = ox * p->sw - p->pl;
    kn_nchwc_taps(w->iy, p->kh, p->dh, p->ih, &w->kylo, &w->kyhi);
    kn_nchwc_taps(w->ix, p->kw, p->dw, p->iw, &w->kxlo, &w->kxhi);
    int64_t n = (w->kyhi - w->kylo) * (w->kxhi - w->kxlo);
    if (p->count_include_pad) {
        int64_t ylo, yhi, xlo, xhi;
        kn_nchwc_taps(w->iy + p->pt, p->kh, p->dh, p->ih + p->pt + p->pb, &ylo, &yhi);
        kn_nchwc_taps(w->ix + p->pl, p->kw, p->dw, p->iw + p->pl + p->pr, &xlo, &xhi);
        n = (yhi - ylo) * (xhi - xlo);
    }
    w->count = (float)n;
}

static int64_t pool_blocks(int64_t channels)
{
    return kn_nchwc_padded(channels) / KN_NCHWC_BLOCK;
}

/* Real channels of block b (16 but in the last block). */
static int pool_real(int64_t channels, int64_t b)
{
    int64_t r = channels - b * KN_NCHWC_BLOCK;
    return r < KN_NCHWC_BLOCK ? (int)r : KN_NCHWC_BLOCK;
}

/* ----------------------------------------------------------- reference */

/* One lane of one window (x: the block's plane, 16 floats a pixel). */
static float pool_ref_value(const kn_nchwc_pool *p, const pool_win *w, const float *x, int lane)
{
    float m = -INFINITY, sum = 0.0f;
    for (int64_t kx = w->kxlo; kx < w->kxhi; kx++) {
        float col = 0.0f;
        for (int64_t ky = w->kylo; ky < w->kyhi; ky++) {
            int64_t pix = (w->iy + ky * p->dh) * p->iw + w->ix + kx * p->dw;
            float v = x[pix * KN_NCHWC_BLOCK + lane];
            if (v > m || (isnan(v) && !isnan(m)))
                m = v;
            col = ky == w->kylo ? v : col + v;
        }
        sum += col;
    }
    if (p->is_max)
        return m;
    return w->count > 0 ? sum / w->count : 0.0f;
}

/* Image n, block b: every output pixel. */
static void pool_block_ref(const kn_nchwc_pool *p, const float *x, float *y, int64_t n, int64_t b)
{
    int64_t nb = n * pool_blocks(p->channels) + b;
    const float *xb = x + nb * p->ih * p->iw * KN_NCHWC_BLOCK;
    float *yb = y + nb * p->oh * p->ow * KN_NCHWC_BLOCK;
    int real = pool_real(p->channels, b);
    for (int64_t oy = 0; oy < p->oh; oy++)
        for (int64_t ox = 0; ox < p->ow; ox++) {
            pool_win w;
            pool_window(p, oy, ox, &w);
            float *o = yb + (oy * p->ow + ox) * KN_NCHWC_BLOCK;
            for (int l = 0; l < KN_NCHWC_BLOCK; l++)
                o[l] = l < real ? pool_ref_value(p, &w, xb, l) : 0.0f;
        }
}

void kn_nchwc_pool_reference(const kn_nchwc_pool *p, const float *x, float *y)
{
    for (int64_t n = 0; n < p->batch; n++)
        for (int64_t b = 0; b < pool_blocks(p->channels); b++)
            pool_block_ref(p, x, y, n, b);
}

/* Image n, block b of the global average, plain C. */
static void global_block_ref(const float *x, int64_t channels, int64_t hw, float *y, int64_t n,
                             int64_t b)
{
    int64_t nb = n * pool_blocks(channels) + b;
    const float *xb = x + nb * hw * KN_NCHWC_BLOCK;
    int real = pool_real(channels, b);
    for (int l = 0; l < KN_NCHWC_BLOCK; l++) {
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t i = 0; i < hw; i++)
            s[i % 4] += xb[i * KN_NCHWC_BLOCK + l];
        y[nb * KN_NCHWC_BLOCK + l] = l < real ? ((s[0] + s[1]) + (s[2] + s[3])) / (float)hw : 0.0f;
    }
}

/* -------------------------------------------------------------- AVX-512 */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define POOL_HAVE_AVX512 1
#define POOL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

static __mmask16 pool_lanes(int real)
{
    return (__mmask16)((1u << real) - 1u);
}

/* max(m, v) where m is a number, m where it is NaN: a NaN met first stays
 * (max returns its second operand, v, when v is NaN). */
POOL_AVX512 static POOL_INLINE __m512 pool_max_keep_nan(__m512 m, __m512 v)
{
    return _mm512_mask_max_ps(m, _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q), m, v);
}

/* Max over the window: a maximum per window row (independent chains), then the
 * rows' maxima in order. */
POOL_AVX512 static __m512 pool_max_avx512(const kn_nchwc_pool *p, const pool_win *w, const float *x)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    if (w->kxhi == w->kxlo)
        return m;
    for (int64_t ky = w->kylo; ky < w->kyhi; ky++) {
        /* the first cell inside: w->ix itself may lie left of the image */
        int64_t pix = (w->iy + ky * p->dh) * p->iw + w->ix + w->kxlo * p->dw;
        const float *c = x + pix * KN_NCHWC_BLOCK;
        __m512 r = _mm512_loadu_ps(c);
        for (int64_t kx = 1; kx < w->kxhi - w->kxlo; kx++)
            r = pool_max_keep_nan(r, _mm512_loadu_ps(c + kx * p->dw * KN_NCHWC_BLOCK));
        m = pool_max_keep_nan(m, r);
    }
    return m;
}

/* Average: columns summed over the rows, then left to right, then the divide. */
POOL_AVX512 static __m512 pool_avg_avx512(const kn_nchwc_pool *p, const pool_win *w, const float *x)
{
    __m512 sum = _mm512_setzero_ps();
    int64_t rs = p->dh * p->iw * KN_NCHWC_BLOCK;
    for (int64_t kx = w->kxlo; kx < w->kxhi && w->kyhi > w->kylo; kx++) {
        int64_t pix = (w->iy + w->kylo * p->dh) * p->iw + w->ix + kx * p->dw;
        const float *c = x + pix * KN_NCHWC_BLOCK;
        __m512 col = _mm512_loadu_ps(c);
        for (int64_t ky = w->kylo + 1; ky < w->kyhi; ky++)
            col = _mm512_add_ps(col, _mm512_loadu_ps(c + (ky - w->kylo) * rs));
        sum = _mm512_add_ps(sum, col);
    }
    if (!(w->count > 0))
        return _mm512_setzero_ps();
    return _mm512_div_ps(sum, _mm512_set1_ps(w->count));
}

POOL_AVX512 static void pool_block_avx512(const kn_nchwc_pool *p, const float *x, float *y,
                                          int64_t n, int64_t b)
{
    int64_t nb = n * pool_blocks(p->channels) + b;
    const float *xb = x + nb * p->ih * p->iw * KN_NCHWC_BLOCK;
    float *yb = y + nb * p->oh * p->ow * KN_NCHWC_BLOCK;
    __mmask16 lanes = pool_lanes(pool_real(p->channels, b));
    for (int64_t oy = 0; oy < p->oh; oy++)
        for (int64_t ox = 0; ox < p->ow; ox++) {
            pool_win w;
            pool_window(p, oy, ox, &w);
            __m512 v = p->is_max ? pool_max_avx512(p, &w, xb) : pool_avg_avx512(p, &w, xb);
            _mm512_storeu_ps(yb + (oy * p->ow + ox) * KN_NCHWC_BLOCK, _mm512_maskz_mov_ps(lanes, v));
        }
}

POOL_AVX512 static void global_block_avx512(const float *x, int64_t channels, int64_t hw, float *y,
                                            int64_t n, int64_t b)
{
    int64_t nb = n * pool_blocks(channels) + b, i = 0;
    const float *xb = x + nb * hw * KN_NCHWC_BLOCK;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 4 <= hw; i += 4) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xb + i * KN_NCHWC_BLOCK));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xb + (i + 1) * KN_NCHWC_BLOCK));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(xb + (i + 2) * KN_NCHWC_BLOCK));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(xb + (i + 3) * KN_NCHWC_BLOCK));
    }
    if (i < hw)
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xb + i++ * KN_NCHWC_BLOCK));
    if (i < hw)
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xb + i++ * KN_NCHWC_BLOCK));
    if (i < hw)
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(xb + i * KN_NCHWC_BLOCK));
    __m512 s = _mm512_div_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)),
                             _mm512_set1_ps((float)hw));
    _mm512_storeu_ps(y + nb * KN_NCHWC_BLOCK,
                     _mm512_maskz_mov_ps(pool_lanes(pool_real(channels, b)), s));
}
#endif

/* ---------------------------------------------------------------- drivers */

typedef struct pool_task {
    const kn_nchwc_pool *p;
    const float *x;
    float *y;
    int wide;
} pool_task;

static void pool_blocks_run(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const pool_task *t = ctx;
    int64_t cb = pool_blocks(t->p->channels);
    (void)thread_index;
    for (int64_t i = begin; i < end; i++) {
#ifdef POOL_HAVE_AVX512
        if (t->wide) {
            pool_block_avx512(t->p, t->x, t->y, i / cb, i % cb);
            continue;
        }
#endif
        pool_block_ref(t->p, t->x, t->y, i / cb, i % cb);
    }
    if (t->wide)
        kn_cpu_clear_upper();
}

void kn_nchwc_pool_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_pool *p,
                       const float *x, float *y)
{
    pool_task t = {p, x, y, kn_cpu_isa_cap(isa) >= KN_ISA_AVX512};
    int64_t work = p->oh * p->ow * p->kh * p->kw + 1;
    kn_parallel_for(pool, p->batch * pool_blocks(p->channels), 16384 / work + 1, pool_blocks_run,
                    &t);
}

typedef struct global_task {
    const float *x;
    float *y;
    int64_t channels, hw;
    int wide;
} global_task;

static void global_blocks_run(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const global_task *t = ctx;
    int64_t cb = pool_blocks(t->channels);
    (void)thread_index;
    for (int64_t i = begin; i < end; i++) {
#ifdef POOL_HAVE_AVX512
        if (t->wide) {
            global_block_avx512(t->x, t->channels, t->hw, t->y, i / cb, i % cb);
            continue;
        }
#endif
        global_block_ref(t->x, t->channels, t->hw, t->y, i / cb, i % cb);
    }
    if (t->wide)
        kn_cpu_clear_upper();
}

void kn_nchwc_global_avg(struct kn_threadpool *pool, kn_isa isa, const float *x, int64_t batch,
                         int64_t channels, int64_t hw, float *y)
{
    global_task t = {x, y, channels, hw, kn_cpu_isa_cap(isa) >= KN_ISA_AVX512};
    kn_parallel_for(pool, batch * pool_blocks(channels), 16384 / (hw + 1) + 1, global_blocks_run,
                    &t);
}
