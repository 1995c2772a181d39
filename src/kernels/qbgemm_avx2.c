/* qbgemm_avx2.c - AVX2 micro-kernel of the block-quantized-weight GEMM (qbgemm.h)
 * for CPUs without VNNI: 4 rows x 32 columns, the 32 columns in two halves of 16
 * (8 ymm int32 sums).  Each step multiplies a row's 4 uint8 activations with 4 int8
 * weights per column by vpmaddubsw (pairs into int16) and vpmaddwd by ones (pairs of
 * pairs into int32).  vpmaddubsw saturates when a pair of products passes 32767, so
 * this variant is only used for weights with |w| <= 64 (every 4-bit code minus its
 * zero point is): 2 x 255 x 64 < 32767, and the sums are then exact. */
#include "kernels/qbgemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KN_AVX2 __attribute__((target("avx2,fma")))

enum { MR = 4, NR = KN_QB_NR };

KN_AVX2 static inline __m256i dot4(__m256i a, __m256i b, __m256i ones)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones);
}

/* Columns [16h, 16h+16) of one block: int32 sums of 4 rows, folded into facc. */
KN_AVX2 static void half_block(size_t gpb, const uint32_t *a, const int8_t *b, const float *scales, float *facc,
                               int h)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c[MR][2];
    for (int i = 0; i < MR; i++)
        c[i][0] = c[i][1] = _mm256_setzero_si256();
    b += 64 * h;
    for (size_t g = 0; g < gpb; g++, a += MR, b += NR * 4) {
        __m256i b0 = _mm256_load_si256((const __m256i *)b);
        __m256i b1 = _mm256_load_si256((const __m256i *)(b + 32));
        for (int i = 0; i < MR; i++) {
            __m256i av = _mm256_set1_epi32((int)a[i]);
            c[i][0] = _mm256_add_epi32(c[i][0], dot4(av, b0, ones));
            c[i][1] = _mm256_add_epi32(c[i][1], dot4(av, b1, ones));
        }
    }
    __m256 s0 = _mm256_loadu_ps(scales + 16 * h), s1 = _mm256_loadu_ps(scales + 16 * h + 8);
    for (int i = 0; i < MR; i++) {
        float *f = facc + i * NR + 16 * h;
        _mm256_storeu_ps(f, _mm256_fmadd_ps(_mm256_cvtepi32_ps(c[i][0]), s0, _mm256_loadu_ps(f)));
        _mm256_storeu_ps(f + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(c[i][1]), s1, _mm256_loadu_ps(f + 8)));
    }
}

KN_AVX2 static void ukr_avx2(size_t nblk, size_t gpb, const uint32_t *a, const int8_t *b, const float *scales,
                             float *facc)
{
    for (size_t blk = 0; blk < nblk; blk++)
        for (int h = 0; h < 2; h++)
            half_block(gpb, a + blk * gpb * MR, b + blk * gpb * NR * 4, scales + blk * NR, facc, h);
}

const kn_qb_kernel *kn_qb_kernel_avx2(void)
{
    static const kn_qb_kernel k = {MR, ukr_avx2, NULL, NULL, 64};
    return &k;
}

#else
const kn_qb_kernel *kn_qb_kernel_avx2(void) { return NULL; }
#endif
