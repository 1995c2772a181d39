/* vmath.c - run-time choice of the vmath kernel level (core/cpu.h; KILN_ISA caps it). */
#include "kernels/vmath.h"

const kn_vmath_ops *kn_vmath_isa(kn_isa isa)
{
    if (isa > kn_cpu_isa_supported()) return NULL;
    switch (isa) {
    case KN_ISA_AVX512: return kn_vmath_ops_avx512();
    case KN_ISA_AVX2: return kn_vmath_ops_avx2();
    case KN_ISA_GENERIC: return kn_vmath_ops_generic();
    default: return NULL;
    }
}

const kn_vmath_ops *kn_vmath(void)
{
    /* kn_cpu_isa() is itself cached; the lookup is a switch */
    for (int isa = (int)kn_cpu_isa(); isa > KN_ISA_GENERIC; isa--) {
        const kn_vmath_ops *ops = kn_vmath_isa((kn_isa)isa);
        if (ops) return ops;
    }
    return kn_vmath_ops_generic();
}
