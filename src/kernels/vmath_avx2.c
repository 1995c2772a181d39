/* vmath_avx2.c - the vmath algorithms (vmath_impl.h) on 8-lane AVX2 + FMA vectors,
 * compiled with per-function target attributes (the build stays baseline x86-64). */
#include "kernels/vmath.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define VM(name) vm_avx2_##name
#define VM_ISA KN_ISA_AVX2
#define VM_TARGET __attribute__((target("avx2,fma")))
#define VT __m256
#define MT __m256
#define W 8

VM_TARGET static inline __m256 avx2_scale2(__m256 p, __m256 n)
{
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

VM_TARGET static inline __m256 avx2_copysign(__m256 mag, __m256 sgn)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign, mag), _mm256_and_ps(sign, sgn));
}

VM_TARGET static inline float avx2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VM_TARGET static inline float avx2_hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#include "kernels/vmath_transpose8.h"

#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(f) _mm256_set1_ps(f)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_DIV(a, b) _mm256_div_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_SQRT(a) _mm256_sqrt_ps(a)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_ABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define V_COPYSIGN(m, s) avx2_copysign(m, s)
#define V_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V_GE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define V_ISNAN(a) _mm256_cmp_ps(a, a, _CMP_UNORD_Q)
#define V_SEL(m, a, b) _mm256_blendv_ps(a, b, m)
#define V_ROUND(a) _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_SCALE2(p, n) avx2_scale2(p, n)
#define V_SQR_LO(a, hi) _mm256_fmsub_ps(a, a, hi)
#define V_HSUM(v) avx2_hsum(v)
#define V_HMAX(v) avx2_hmax(v)

#include "kernels/vmath_impl.h"

const kn_vmath_ops *kn_vmath_ops_avx2(void)
{
    return &VM(table);
}
#else
const kn_vmath_ops *kn_vmath_ops_avx2(void)
{
    return 0;
}
#endif
