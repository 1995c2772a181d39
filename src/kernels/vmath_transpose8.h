/* vmath_transpose8.h - one 8 x 8 float block transpose on 256-bit registers, the
 * VM_TRANSPOSE8 of both the AVX2 vocabulary (vmath_avx2.c) and the AVX-512 one
 * (vmath_avx512_vocab.h).  The includer defines VM(name) and VM_TARGET first and
 * includes <immintrin.h>. */
#ifndef KN_VMATH_TRANSPOSE8_H
#define KN_VMATH_TRANSPOSE8_H

/* Pairs of rows interleaved, then 2 x 2 blocks of those, then the 128-bit halves
 * exchanged. */
VM_TARGET static inline void VM(transpose8)(const float *s, size_t lds, float *d, size_t ldd)
{
    __m256 r[8], t[8], u[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(s + (size_t)k * lds);
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(d + (size_t)k * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_storeu_ps(d + (size_t)(k + 4) * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
    }
}
#define VM_TRANSPOSE8(s, lds, d, ldd) VM(transpose8)(s, lds, d, ldd)

#endif
