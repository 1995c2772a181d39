/* qgemm_avx512.c - AVX-512 integer GEMM micro-kernels, 12 rows x 32 columns (24 zmm
 * accumulators, two B vectors, one broadcast): AVX-512BW on int16 pairs with vpmaddwd
 * and AVX-512 VNNI on int8 quads with vpdpbusd (uint8 x int8, no saturation). */
#include "kernels/qgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX512BW __attribute__((target("avx512f,avx512bw,avx512vl")))
#define KN_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

enum { MR = 12, NR = KN_QGEMM_NR };

/* One macro body, two instruction choices: STEP(acc, a, b) accumulates. */
#define QGEMM_TILE(NAME, ATTR, STEP, ELEM, GROUP)                                          \
    ATTR static void NAME(size_t kgroups, const void *a, const void *b, int32_t *acc)     \
    {                                                                                      \
        const uint32_t *aw = a;                                                            \
        const ELEM *bq = b;                                                                \
        __m512i c[MR][2];                                                                  \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                            \
            c[i][0] = _mm512_setzero_si512();                                              \
            c[i][1] = _mm512_setzero_si512();                                              \
        }                                                                                  \
        for (size_t g = 0; g < kgroups; g++, bq += NR * GROUP) {                           \
            __m512i b0 = _mm512_load_si512((const void *)bq);                              \
            __m512i b1 = _mm512_load_si512((const void *)(bq + 16 * GROUP));               \
            _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                        \
                __m512i av = _mm512_set1_epi32((int)aw[g * MR + (size_t)i]);               \
                c[i][0] = STEP(c[i][0], av, b0);                                           \
                c[i][1] = STEP(c[i][1], av, b1);                                           \
            }                                                                              \
        }                                                                                  \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                            \
            _mm512_storeu_si512(acc + i * NR, c[i][0]);                                    \
            _mm512_storeu_si512(acc + i * NR + 16, c[i][1]);                               \
        }                                                                                  \
    }

KN_AVX512BW static inline __m512i step_madd(__m512i c, __m512i a, __m512i b)
{
    return _mm512_add_epi32(c, _mm512_madd_epi16(a, b));
}

KN_AVX512VNNI static inline __m512i step_dpbusd(__m512i c, __m512i a, __m512i b)
{
    return _mm512_dpbusd_epi32(c, a, b);
}

QGEMM_TILE(ukr_pairs, KN_AVX512BW, step_madd, int16_t, 2)
QGEMM_TILE(ukr_quads, KN_AVX512VNNI, step_dpbusd, int8_t, 4)

const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw(void)
{
    static const kn_qgemm_kernel k = {MR, 2, ukr_pairs};
    return &k;
}

const kn_qgemm_kernel *kn_qgemm_kernel_vnni(void)
{
    static const kn_qgemm_kernel k = {MR, 4, ukr_quads};
    return &k;
}

#else
const kn_qgemm_kernel *kn_qgemm_kernel_avx512bw(void) { return NULL; }
const kn_qgemm_kernel *kn_qgemm_kernel_vnni(void) { return NULL; }
#endif
