/* qbgemm_avx512.c - AVX-512 pieces of the block-quantized-weight GEMM (qbgemm.h):
 * the 12 x 32 micro-kernel (24 zmm int32 block sums, folded into the float tile
 * with the block's scales when the block ends) in two instruction choices, VNNI
 * (vpdpbusd) and AVX-512BW without VNNI (vpmaddubsw + vpmaddwd by ones, exact for
 * |w| <= 64, which every 4-bit code minus its zero point is), each with a 4-row
 * sibling for few rows (decoders: M <= 8 would waste most of a 12-row tile), and the
 * vectorized row quantization (same bytes as the portable one). */
#include "kernels/qbgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

#define KN_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))
#define KN_BW __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

enum { MR = 12, MR_SMALL = 4, NR = KN_QB_NR };

/* One block of ROWS x 32 (kept out of line: inlined into the block loop, the
 * compiler holds the float tile in registers across blocks and spills the int32
 * sums); the fold goes through memory for the same reason. */
#define QB_BLOCK(NAME, ATTR, STEP, ROWS)                                                                  \
    ATTR __attribute__((noinline)) static void NAME(size_t gpb, const uint32_t *a, const int8_t *b,      \
                                                    const float *scales, float *facc)                    \
    {                                                                                                     \
        __m512i c[ROWS][2];                                                                               \
        _Pragma("GCC unroll 12") for (int i = 0; i < ROWS; i++) {                                         \
            c[i][0] = _mm512_setzero_si512();                                                             \
            c[i][1] = _mm512_setzero_si512();                                                             \
        }                                                                                                 \
        for (size_t g = 0; g < gpb; g++, a += ROWS, b += NR * 4) {                                        \
            __m512i b0 = _mm512_load_si512((const void *)b);                                              \
            __m512i b1 = _mm512_load_si512((const void *)(b + 64));                                       \
            _Pragma("GCC unroll 12") for (int i = 0; i < ROWS; i++) {                                     \
                __m512i av = _mm512_set1_epi32((int)a[i]);                                                \
                c[i][0] = STEP(c[i][0], av, b0);                                                          \
                c[i][1] = STEP(c[i][1], av, b1);                                                          \
            }                                                                                             \
        }                                                                                                 \
        _Alignas(64) int32_t t[ROWS * NR];                                                                \
        _Pragma("GCC unroll 12") for (int i = 0; i < ROWS; i++) {                                         \
            _mm512_store_si512(t + i * NR, c[i][0]);                                                      \
            _mm512_store_si512(t + i * NR + 16, c[i][1]);                                                 \
        }                                                                                                 \
        fold(ROWS, t, scales, facc);                                                                      \
    }

/* facc[i][j] += scales[j] * t[i][j] over rows x 32. */
KN_BW static inline void fold(int rows, const int32_t *t, const float *scales, float *facc)
{
    __m512 s0 = _mm512_loadu_ps(scales), s1 = _mm512_loadu_ps(scales + 16);
    for (int i = 0; i < rows; i++) {
        float *f = facc + i * NR;
        __m512 x0 = _mm512_cvtepi32_ps(_mm512_load_si512(t + i * NR));
        __m512 x1 = _mm512_cvtepi32_ps(_mm512_load_si512(t + i * NR + 16));
        _mm512_storeu_ps(f, _mm512_fmadd_ps(x0, s0, _mm512_loadu_ps(f)));
        _mm512_storeu_ps(f + 16, _mm512_fmadd_ps(x1, s1, _mm512_loadu_ps(f + 16)));
    }
}

KN_VNNI static inline __m512i step_dpbusd(__m512i c, __m512i a, __m512i b) { return _mm512_dpbusd_epi32(c, a, b); }

/* uint8 x int8 quads without VNNI: pairs into int16 (exact while |w| <= 64), pairs of
 * pairs into int32, add. */
KN_BW static inline __m512i step_maddubs(__m512i c, __m512i a, __m512i b)
{
    return _mm512_add_epi32(c, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)));
}

KN_BW void kn_qb_fold_avx512(int rows, const int32_t *t, const float *scales, float *facc)
{
    fold(rows, t, scales, facc);
}

QB_BLOCK(block_12, KN_VNNI, step_dpbusd, MR)
QB_BLOCK(block_4, KN_VNNI, step_dpbusd, MR_SMALL)
QB_BLOCK(block_bw_12, KN_BW, step_maddubs, MR)
QB_BLOCK(block_bw_4, KN_BW, step_maddubs, MR_SMALL)

/* The micro-kernel over nblk blocks from one block function of ROWS rows. */
#define QB_UKR(NAME, BLOCK, ROWS)                                                                          \
    static void NAME(size_t nblk, size_t gpb, const uint32_t *a, const int8_t *b, const float *scales,   \
                     float *facc)                                                                          \
    {                                                                                                      \
        for (size_t blk = 0; blk < nblk; blk++)                                                            \
            BLOCK(gpb, a + blk * gpb * ROWS, b + blk * gpb * NR * 4, scales + blk * NR, facc);             \
    }

QB_UKR(ukr_12, block_12, MR)
QB_UKR(ukr_4, block_4, MR_SMALL)
QB_UKR(ukr_bw_12, block_bw_12, MR)
QB_UKR(ukr_bw_4, block_bw_4, MR_SMALL)

static __mmask16 tail_mask(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* min(row, 0), max(row, 0) and whether a NaN is present. */
KN_BW static int row_range(const float *a, size_t K, float *lo, float *hi)
{
    __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (size_t k = 0; k < K; k += 16) {
        __mmask16 mk = tail_mask(K - k);
        __m512 x = _mm512_maskz_loadu_ps(mk, a + k);
        nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        vlo = _mm512_min_ps(x, vlo); /* a NaN x keeps the old bound, as the C loop */
        vhi = _mm512_max_ps(x, vhi);
    }
    *lo = _mm512_reduce_min_ps(vlo);
    *hi = _mm512_reduce_max_ps(vhi);
    return nan != 0;
}

KN_BW void kn_qb_quantize_row_avx512(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za)
{
    float lo, hi, inv;
    int bad = row_range(a, K, &lo, &hi);
    kn_qb_row_params(lo, hi, sa, za, &inv);
    if (bad)
        *sa = __builtin_nanf("");
    __m512 vinv = _mm512_set1_ps(inv), lim = _mm512_set1_ps(512.0f);
    __m512i vz = _mm512_set1_epi32(*za), v0 = _mm512_setzero_si512(), v255 = _mm512_set1_epi32(255);
    for (size_t k = 0; k < K; k += 16) {
        __mmask16 mk = tail_mask(K - k);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, a + k), vinv);
        x = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim); /* NaN -> -512 */
        __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(x), vz); /* round half to even */
        v = _mm512_min_epi32(_mm512_max_epi32(v, v0), v255);
        _mm_mask_storeu_epi8(q + k, mk, _mm512_cvtepi32_epi8(v));
    }
    memset(q + K, 0, Kp - K);
}

const kn_qb_kernel *kn_qb_kernel_vnni(void)
{
    static const kn_qb_kernel small = {MR_SMALL, ukr_4, kn_qb_quantize_row_avx512, NULL, 128};
    static const kn_qb_kernel k = {MR, ukr_12, kn_qb_quantize_row_avx512, &small, 128};
    return &k;
}

const kn_qb_kernel *kn_qb_kernel_avx512bw(void)
{
    static const kn_qb_kernel small = {MR_SMALL, ukr_bw_4, kn_qb_quantize_row_avx512, NULL, 64};
    static const kn_qb_kernel k = {MR, ukr_bw_12, kn_qb_quantize_row_avx512, &small, 64};
    return &k;
}

#else
void kn_qb_fold_avx512(int rows, const int32_t *t, const float *scales, float *facc)
{
    (void)rows, (void)t, (void)scales, (void)facc;
}
void kn_qb_quantize_row_avx512(const float *a, size_t K, size_t Kp, uint8_t *q, float *sa, int32_t *za)
{
    kn_qb_quantize_row(a, K, Kp, q, sa, za);
}
const kn_qb_kernel *kn_qb_kernel_vnni(void) { return NULL; }
const kn_qb_kernel *kn_qb_kernel_avx512bw(void) { return NULL; }
#endif
