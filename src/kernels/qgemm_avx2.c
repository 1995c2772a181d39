/* qgemm_avx2.c - AVX2 integer GEMM micro-kernel: 4 rows x 32 columns from int16
 * pairs with vpmaddwd (exact for uint8 x int8), 16 ymm accumulators' worth of work
 * split in two 16-column halves so the accumulators stay in registers. */
#include "kernels/qgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX2 __attribute__((target("avx2,fma")))

enum { MR = 4, NR = KN_QGEMM_NR };

/* Columns [c0, c0+16) of the tile: 4 rows x 2 ymm accumulators. */
KN_AVX2 static void half_tile(size_t kgroups, const uint32_t *a, const int16_t *b, int32_t *acc, int c0)
{
    __m256i c[MR][2];
    _Pragma("GCC unroll 4") for (int i = 0; i < MR; i++)
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            c[i][h] = _mm256_loadu_si256((const __m256i *)(acc + i * NR + c0 + 8 * h));
    for (size_t g = 0; g < kgroups; g++) {
        const int16_t *bg = b + g * NR * 2 + (size_t)c0 * 2;
        __m256i b0 = _mm256_load_si256((const __m256i *)bg);
        __m256i b1 = _mm256_load_si256((const __m256i *)(bg + 16));
        _Pragma("GCC unroll 4") for (int i = 0; i < MR; i++) {
            __m256i av = _mm256_set1_epi32((int)a[g * MR + (size_t)i]);
            c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(av, b0));
            c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(av, b1));
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < MR; i++)
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
            _mm256_storeu_si256((__m256i *)(acc + i * NR + c0 + 8 * h), c[i][h]);
}

KN_AVX2 static void ukr_pairs(size_t kgroups, const void *a, const void *b, int32_t *acc)
{
    half_tile(kgroups, a, b, acc, 0);
    half_tile(kgroups, a, b, acc, 16);
}

const kn_qgemm_kernel *kn_qgemm_kernel_avx2(void)
{
    static const kn_qgemm_kernel k = {MR, 2, ukr_pairs};
    return &k;
}

#else
const kn_qgemm_kernel *kn_qgemm_kernel_avx2(void) { return NULL; }
#endif
