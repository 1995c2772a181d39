/* vmath_generic.c - the vmath algorithms (vmath_impl.h) in plain C, one float per
 * "vector": the reference level and the fallback for CPUs without AVX2. */
#include <stdint.h>
#include <math.h>
#include <string.h>

#include "kernels/vmath.h"

#define VM(name) vm_gen_##name
#define VM_ISA KN_ISA_GENERIC
#define VM_TARGET
#define VT float
#define MT int
#define W 1

static inline float gen_bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float gen_min(float a, float b) { return a < b ? a : b; }
static inline float gen_max(float a, float b) { return a > b ? a : b; }

/* 1.5 * 2^23: adding and subtracting rounds to an integer (round-to-nearest mode) */
static inline float gen_round(float a)
{
    return (a + 12582912.0f) - 12582912.0f;
}

/* p * 2^n, n integral in [-152, 128], as two exact power-of-two factors */
static inline float gen_scale2(float p, float n)
{
    if (isnan(n)) return n; /* converting NaN to int is undefined */
    int32_t ni = (int32_t)n, n1 = ni >> 1, n2 = ni - n1;
    return p * gen_bits_float((uint32_t)(n1 + 127) << 23) * gen_bits_float((uint32_t)(n2 + 127) << 23);
}

/* a*a - hi exactly: the square of a float is exact in double */
static inline float gen_sqr_lo(float a, float hi)
{
    return (float)((double)a * a - hi);
}

#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_SET1(f) (f)
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_SQRT(a) sqrtf(a)
#define V_MIN(a, b) gen_min(a, b)
#define V_MAX(a, b) gen_max(a, b)
#define V_ABS(a) fabsf(a)
#define V_COPYSIGN(m, s) copysignf(m, s)
#define V_LT(a, b) ((a) < (b))
#define V_GE(a, b) ((a) >= (b))
#define V_ISNAN(a) isnan(a)
#define V_SEL(m, a, b) ((m) ? (b) : (a))
#define V_ROUND(a) gen_round(a)
#define V_SCALE2(p, n) gen_scale2(p, n)
#define V_SQR_LO(a, hi) gen_sqr_lo(a, hi)
#define V_HSUM(v) (v)
#define V_HMAX(v) (v)

#include "kernels/vmath_impl.h"

const kn_vmath_ops *kn_vmath_ops_generic(void)
{
    return &VM(table);
}
