/* conv_nchwc_avx512.c - AVX-512 register tiles of the group-1 NCHWc conv
 * (driver in conv_nchwc.c): OB (1..4) output blocks x NP pixels (up to 12 with
 * 1-2 blocks, 8 with 3, 6 with 4) of one output run in OB * NP zmm accumulators.
 * For every input block, tap and input channel, OB weight vectors are loaded
 * and each pixel's input value broadcast into OB FMAs; a pixel whose tap falls
 * outside the image reads a zero vector, a tap outside for every pixel is
 * skipped; a tile whose taps all lie inside skips the masks altogether.  A tile
 * covers one chunk of the input blocks, starting from the partial sums stored by
 * the chunk before; after the last chunk the epilogue: bias, residual, clamp
 * (Relu / Clip) or SiLU (vmath's, from vmath_vec.h, in registers), the padding
 * lanes of the last output block zeroed.  Optionally the tile prefetches a share
 * of the next weights into L2 as it goes.  OB and NP are compile-time constants of
 * always-inline instances; per-function target attributes keep the rest of the
 * build baseline x86-64. */
#include "kernels/nchwc_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define VM(name) nchwc_vm_##name
#include "kernels/vmath_avx512_vocab.h"
#include "kernels/vmath_vec.h"

#define KN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define KN_INLINE __attribute__((always_inline)) inline
#define B KN_NCHWC_BLOCK

/* Read by the taps that fall outside the image. */
static const float k_zeros[B] __attribute__((aligned(64)));

/* acc += the 16 input channels of one tap: pixel p's 16 values at xp[p], the
 * weights [16 in][OB][16 out] at w. */
KN_AVX512 static KN_INLINE void tap16(__m512 acc[4][12], const float *const xp[12], const float *w,
                                      const int OB, const int NP)
{
#pragma GCC unroll 2
    for (int ic = 0; ic < B; ic++) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int o = 0; o < OB; o++)
            wv[o] = _mm512_load_ps(w + (ic * OB + o) * B);
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++) {
            __m512 b = _mm512_set1_ps(xp[p][ic]);
#pragma GCC unroll 4
            for (int o = 0; o < OB; o++)
                acc[o][p] = _mm512_fmadd_ps(wv[o], b, acc[o][p]);
        }
    }
}

/* Prefetch of the next weights into L2: n lines at *pf, *pf moved past them. */
KN_AVX512 static KN_INLINE void prefetch_lines(const char **pf, int64_t n)
{
    if (!*pf)
        return;
    for (int64_t l = 0; l < n; l++)
        _mm_prefetch(*pf + l * 64, _MM_HINT_T1);
    *pf += n * 64;
}

/* The taps of input block xc (weights from w on), pixels whose tap is outside
 * the image reading zeros; returns w past this block's taps. */
KN_AVX512 static KN_INLINE const float *block_taps(const kn_nchwc_tile *t, __m512 acc[4][12],
                                                   const float *xc, const float *w, const char **pf,
                                                   const int OB, const int NP)
{
    const unsigned all = (1u << NP) - 1u;
    for (int64_t ky = 0; ky < t->kh; ky++) {
        unsigned rows = t->row_in[ky] & all;
        for (int64_t kx = 0; kx < t->kw; kx++, w += B * B * OB) {
            unsigned in = rows & t->col_in[kx];
            prefetch_lines(pf, t->pf_lines);
            if (!in)
                continue;
            const float *xt = xc + ky * t->x_ky + kx * t->x_kx;
            const float *xp[12];
#pragma GCC unroll 12
            for (int p = 0; p < NP; p++)
                xp[p] = in >> p & 1u ? xt + t->pix[p] : k_zeros;
            tap16(acc, xp, w, OB, NP);
        }
    }
    return w;
}

/* The taps of every input block of a tile whose taps all lie inside the image:
 * each pixel's pointer is set once and a tap is an offset from it (the general
 * path above recomputes six pointers from the masks at every tap, a tenth of a
 * 1x1 block's work). */
KN_AVX512 static KN_INLINE void inside_taps(const kn_nchwc_tile *t, __m512 acc[4][12],
                                            const int OB, const int NP)
{
    const float *x0[12], *w = t->w;
    const char *pf = t->pf;
#pragma GCC unroll 12
    for (int p = 0; p < NP; p++)
        x0[p] = t->x + t->pix[p];
    for (int64_t cb = 0; cb < t->cb; cb++) {
        /* the pixels of the block after next: the blocks are planes apart, which the
         * hardware prefetchers do not follow, and a block's loads come too late for
         * the out-of-order window (one block of a 1x1 is ~600 instructions) */
        if (cb + 2 < t->cb)
#pragma GCC unroll 12
            for (int p = 0; p < NP; p++)
                _mm_prefetch((const char *)(x0[p] + (cb + 2) * t->x_cb), _MM_HINT_T0);
        for (int64_t ky = 0; ky < t->kh; ky++)
            for (int64_t kx = 0; kx < t->kw; kx++, w += B * B * OB) {
                int64_t off = cb * t->x_cb + ky * t->x_ky + kx * t->x_kx;
                const float *xp[12];
                prefetch_lines(&pf, t->pf_lines);
#pragma GCC unroll 12
                for (int p = 0; p < NP; p++)
                    xp[p] = x0[p] + off;
                tap16(acc, xp, w, OB, NP);
            }
    }
}

/* bias, residual, clamp and the store of the accumulators. */
KN_AVX512 static KN_INLINE void tile_store(const kn_nchwc_tile *t, __m512 acc[4][12], const int OB,
                                           const int NP)
{
    /* locals: the stores through y could otherwise alias *t and force reloads */
    const float *z = t->z, *bias = t->bias;
    float *y = t->y;
    const int64_t stride = t->y_ob;
    const int clamp = t->clamp, silu = t->silu;
    __m512 lo = _mm512_set1_ps(t->lo), hi = _mm512_set1_ps(t->hi);
    __mmask16 last = (__mmask16)t->last_lanes;
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++) {
        __m512 b = _mm512_load_ps(bias + o * B);
        __mmask16 keep = o == OB - 1 ? last : (__mmask16)0xFFFF;
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++) {
            __m512 v = _mm512_add_ps(acc[o][p], b);
            if (z)
                v = _mm512_add_ps(v, _mm512_loadu_ps(z + o * stride + p * B));
            if (clamp) /* max/min return the second operand for NaN: NaN stays NaN */
                v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
            if (silu)
                v = nchwc_vm_silu_v(v);
            _mm512_storeu_ps(y + o * stride + p * B, _mm512_maskz_mov_ps(keep, v));
        }
    }
}

/* The raw partial sums of a chunk that is not the last. */
KN_AVX512 static KN_INLINE void tile_store_partial(const kn_nchwc_tile *t, __m512 acc[4][12],
                                                   const int OB, const int NP)
{
    float *y = t->y;
    const int64_t stride = t->y_ob;
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++)
            _mm512_storeu_ps(y + o * stride + p * B, acc[o][p]);
}

KN_AVX512 static KN_INLINE void tile_body(const kn_nchwc_tile *t, const int OB, const int NP)
{
    __m512 acc[4][12];
    const int accumulate = t->accumulate;
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++)
            acc[o][p] = accumulate ? _mm512_loadu_ps(t->y + o * t->y_ob + p * B)
                                   : _mm512_setzero_ps();
    if (t->inside) {
        inside_taps(t, acc, OB, NP);
    } else {
        const float *w = t->w;
        const char *pf = t->pf;
        for (int64_t cb = 0; cb < t->cb; cb++)
            w = block_taps(t, acc, t->x + cb * t->x_cb, w, &pf, OB, NP);
    }
    if (t->finish)
        tile_store(t, acc, OB, NP);
    else
        tile_store_partial(t, acc, OB, NP);
}

#define TILE(OB, NP)                                                                       \
    KN_AVX512 static void tile_##OB##x##NP(const kn_nchwc_tile *t) { tile_body(t, OB, NP); }
#define TILES_6(OB) TILE(OB, 1) TILE(OB, 2) TILE(OB, 3) TILE(OB, 4) TILE(OB, 5) TILE(OB, 6)
#define TILES_8(OB) TILES_6(OB) TILE(OB, 7) TILE(OB, 8)
#define TILES_12(OB) TILES_8(OB) TILE(OB, 9) TILE(OB, 10) TILE(OB, 11) TILE(OB, 12)
TILES_12(1)
TILES_12(2)
TILES_8(3)
TILES_6(4)
#define FNS_6(OB) tile_##OB##x1, tile_##OB##x2, tile_##OB##x3, tile_##OB##x4, tile_##OB##x5, tile_##OB##x6
#define FNS_8(OB) FNS_6(OB), tile_##OB##x7, tile_##OB##x8
#define FNS_12(OB) FNS_8(OB), tile_##OB##x9, tile_##OB##x10, tile_##OB##x11, tile_##OB##x12

kn_nchwc_tile_fn kn_nchwc_tile_avx512(int ob, int np)
{
    static const kn_nchwc_tile_fn fns[4][KN_NCHWC_TILE_NP] = {{FNS_12(1)}, {FNS_12(2)}, {FNS_8(3)},
                                                              {FNS_6(4)}};
    return ob >= 1 && ob <= 4 && np >= 1 && np <= KN_NCHWC_TILE_NP ? fns[ob - 1][np - 1] : NULL;
}

#else
kn_nchwc_tile_fn kn_nchwc_tile_avx512(int ob, int np)
{
    (void)ob, (void)np;
    return NULL;
}
#endif
