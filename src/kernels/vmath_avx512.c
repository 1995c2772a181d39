/* vmath_avx512.c - the vmath algorithms (vmath_impl.h) on 16-lane AVX-512 vectors
 * with opmask compares and blends, and vscalefps for exp's power of two; compiled
 * with per-function target attributes (the build stays baseline x86-64). */
#include "kernels/vmath.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define VM(name) vm_avx512_##name
#include "kernels/vmath_avx512_vocab.h"

#include "kernels/vmath_impl.h"

const kn_vmath_ops *kn_vmath_ops_avx512(void)
{
    return &VM(table);
}
#else
const kn_vmath_ops *kn_vmath_ops_avx512(void)
{
    return 0;
}
#endif
