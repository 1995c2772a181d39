/* vmath.h - vectorized float32 array kernels: transcendental functions (exp, tanh,
 * erf, sigmoid, GELU in erf and tanh form), cheap activations, elementwise binary
 * arithmetic, square root, row reductions, one-row softmax / log-softmax and layer normalization.
 *
 * One algorithm (vmath_impl.h) is instantiated per instruction-set level: generic C,
 * AVX2+FMA and AVX-512 (vmath_{generic,avx2,avx512}.c); kn_vmath() picks the level
 * from kn_cpu_isa() (KILN_ISA caps it).  Accuracy: within a few ulp of the exact
 * result over the whole float range, +-inf, NaN and denormals included
 * (tests/unit/test_vmath.c measures it against libm in double).
 *
 * All array arguments may alias exactly (y == x) but must not partially overlap.
 * The kernels are single-threaded: operators split large arrays themselves. */
#ifndef KN_VMATH_H
#define KN_VMATH_H

#include <stddef.h>

#include "core/cpu.h"

typedef enum kn_vm_binop {
    KN_VM_ADD = 0,
    KN_VM_SUB = 1,
    KN_VM_MUL = 2,
    KN_VM_DIV = 3,
    KN_VM_MAX = 4, /* NaN-propagating */
    KN_VM_MIN = 5, /* NaN-propagating */
} kn_vm_binop;

typedef void (*kn_vm_map_fn)(const float *x, float *y, size_t n);
/* In place over rows of n floats, ld apart (a GEMM tile): one call per tile. */
typedef void (*kn_vm_rows_fn)(float *y, size_t ld, size_t rows, size_t n);

typedef struct kn_vmath_ops {
    kn_isa isa;
    /* y[i] = f(x[i]) */
    kn_vm_map_fn exp, tanh, erf, sigmoid, relu, hardswish;
    kn_vm_map_fn silu; /* x sigmoid(x), bit-identical to sigmoid then a product */
    kn_vm_map_fn sqrt; /* correctly rounded (the hardware instruction) */
    kn_vm_map_fn gelu_erf;  /* 0.5 x (1 + erf(x / sqrt 2)) */
    kn_vm_map_fn gelu_tanh; /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    kn_vm_rows_fn gelu_erf_rows, gelu_tanh_rows; /* the same, bit for bit, over rows */
    void (*clip)(const float *x, float *y, size_t n, float lo, float hi); /* min(max(x,lo),hi) */
    void (*leaky_relu)(const float *x, float *y, size_t n, float alpha);
    void (*hardsigmoid)(const float *x, float *y, size_t n, float alpha, float beta);
    /* y = x * a + b */
    void (*affine)(const float *x, float *y, size_t n, float a, float b);
    /* y[i] = a[i] op b[i];  y[i] = a[i] op s;  y[i] = s op b[i] */
    void (*binary_vv)(kn_vm_binop op, const float *a, const float *b, float *y, size_t n);
    void (*binary_vs)(kn_vm_binop op, const float *a, float s, float *y, size_t n);
    void (*binary_sv)(kn_vm_binop op, float s, const float *b, float *y, size_t n);
    /* reductions (float accumulation in several partial sums); n == 0 gives 0 / -inf */
    float (*sum)(const float *x, size_t n);
    float (*max)(const float *x, size_t n); /* NaN if any element is NaN */
    float (*sumsq_dev)(const float *x, size_t n, float mean); /* sum (x - mean)^2 */
    /* one row: y = softmax(x), y = log_softmax(x) */
    void (*softmax)(const float *x, float *y, size_t n);
    void (*log_softmax)(const float *x, float *y, size_t n);
    /* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols (8 x 8 register
     * blocks on AVX2 / AVX-512) */
    void (*transpose)(const float *src, size_t lds, float *dst, size_t ldd, size_t rows,
                      size_t cols);
    /* y = (x - mean) / sqrt(var + eps) * gamma + beta (gamma, beta may be NULL);
     * *mean_out / *rstd_out receive the statistics when not NULL. */
    void (*layer_norm)(const float *x, float *y, size_t n, const float *gamma,
                       const float *beta, float eps, float *mean_out, float *rstd_out);
} kn_vmath_ops;

/* The kernels for kn_cpu_isa() (cached). */
const kn_vmath_ops *kn_vmath(void);
/* The kernels of one level, or NULL when the CPU or the build lacks it. */
const kn_vmath_ops *kn_vmath_isa(kn_isa isa);

/* ---- internal: one table per level (NULL when the compiler cannot build it) ---- */
const kn_vmath_ops *kn_vmath_ops_generic(void);
const kn_vmath_ops *kn_vmath_ops_avx2(void);
const kn_vmath_ops *kn_vmath_ops_avx512(void);

#endif
