/* vmath_avx512_vocab.h - the vector vocabulary of vmath_impl.h / vmath_vec.h on
 * 16-lane AVX-512 vectors (opmask compares and blends, vscalefps for exp's power
 * of two), for vmath_avx512.c and for kernels that apply vmath's activations in
 * registers.  The includer defines VM(name) (its own prefix) first and includes
 * <immintrin.h>. */
#ifndef KN_VMATH_AVX512_VOCAB_H
#define KN_VMATH_AVX512_VOCAB_H

#define VM_ISA KN_ISA_AVX512
#define VM_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define VT __m512
#define MT __mmask16
#define W 16

/* bit select without AVX512DQ: sign bit from sgn, the rest from mag */
VM_TARGET static inline __m512 avx512_copysign(__m512 mag, __m512 sgn)
{
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i r = _mm512_ternarylogic_epi32(sign, _mm512_castps_si512(sgn),
                                          _mm512_castps_si512(mag), 0xCA);
    return _mm512_castsi512_ps(r);
}

#include "kernels/vmath_transpose8.h"

#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(f) _mm512_set1_ps(f)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_DIV(a, b) _mm512_div_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_SQRT(a) _mm512_sqrt_ps(a)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_ABS(a) _mm512_abs_ps(a)
#define V_COPYSIGN(m, s) avx512_copysign(m, s)
#define V_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_GE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#define V_ISNAN(a) _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q)
#define V_SEL(m, a, b) _mm512_mask_blend_ps(m, a, b)
#define V_ROUND(a) _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* vscalefps: p * 2^floor(n), rounded once (denormal results included) */
#define V_SCALE2(p, n) _mm512_scalef_ps(p, n)
#define V_SQR_LO(a, hi) _mm512_fmsub_ps(a, a, hi)
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HMAX(v) _mm512_reduce_max_ps(v)

#endif
