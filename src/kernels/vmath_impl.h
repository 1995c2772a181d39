/* vmath_impl.h - the vmath algorithms written once over a small vector vocabulary;
 * included by vmath_generic.c, vmath_avx2.c and vmath_avx512.c, each of which first
 * defines the vocabulary for its instruction set:
 *
 *   VM(name)            the level-specific name of a function
 *   VM_TARGET           function attribute (target ISA), may be empty
 *   VT, MT, W           vector type, comparison-mask type, lanes
 *   V_LOAD(p) V_STORE(p,v) V_SET1(f)        unaligned load/store, broadcast
 *   V_ADD V_SUB V_MUL V_DIV V_FMA(a,b,c)=a*b+c  V_SQRT (correctly rounded)
 *   V_MIN(a,b) V_MAX(a,b)   return b when either is NaN (x86 minps/maxps rule)
 *   V_ABS(a) V_COPYSIGN(mag,sgn)
 *   V_LT(a,b) V_GE(a,b)     ordered compares (false for NaN);  V_ISNAN(a)
 *   V_SEL(m,a,b)            b where m is set, else a
 *   V_ROUND(a)              round to nearest integer (|a| < 2^22)
 *   V_SCALE2(p,n)           p * 2^n for integral n in [-152, 128], one final rounding
 *                           into the denormal range (two exact power-of-two steps)
 *   V_SQR_LO(a,hi)          a*a - hi exactly, where hi = a*a rounded
 *   V_HSUM(v) V_HMAX(v)     horizontal sum / max to a float
 *   VM_TRANSPOSE8(s,lds,d,ldd)  optional: one 8 x 8 float block transpose
 *
 * Approximations (coefficients fitted by Chebyshev interpolation, see the comments):
 *   exp:  x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial, scale by 2^n.
 *   tanh: |x| < 0.55: x + x^3 g(x^2) (degree 6);  else 1 - 2 / (exp(2|x|) + 1).
 *   erf:  |x| < 0.875: x h(x^2) (degree 7);  else 1 - exp(-x^2) Q(|x|), where
 *         Q = exp(x^2) erfc(x) is a degree-11 polynomial in x on [0.5, 2.5) and
 *         1/x times a degree-11 polynomial in 1/x beyond; x^2 is carried as hi + lo so
 *         that exp(-x^2) keeps full relative accuracy far into the tail.
 *   GELU (erf): x Phi(x) with 1 + erf(z) = erfc(-z) taken from the tail formula for
 *         negative x, so there is no cancellation: accurate down to denormal outputs.
 *   GELU (tanh), sigmoid: through exp(-|t|) without cancellation; the tanh-form
 *         argument is rounded in float, so its error grows with |x| for x < -3. */

#include <math.h>
#include <string.h>

/* ---- elementwise loop skeletons: whole vectors, then one zero-padded partial ---- */

/* y[i] = EXPR, where EXPR uses the loaded vector v */
#define VM_MAP1(x, y, n, EXPR)                                                          \
    do {                                                                                \
        size_t i_ = 0;                                                                  \
        for (; i_ + W <= (n); i_ += W) {                                                \
            VT v = V_LOAD((x) + i_);                                                    \
            V_STORE((y) + i_, (EXPR));                                                  \
        }                                                                               \
        if (i_ < (n)) {                                                                 \
            float bx_[W] = {0};                                                         \
            size_t r_ = (n) - i_;                                                       \
            memcpy(bx_, (x) + i_, r_ * sizeof(float));                                  \
            VT v = V_LOAD(bx_);                                                         \
            V_STORE(bx_, (EXPR));                                                       \
            memcpy((y) + i_, bx_, r_ * sizeof(float));                                  \
        }                                                                               \
    } while (0)

/* y[i] = EXPR, where EXPR uses va (from a) and vb (from b) */
#define VM_MAP2(a, b, y, n, EXPR)                                                       \
    do {                                                                                \
        size_t i_ = 0;                                                                  \
        for (; i_ + W <= (n); i_ += W) {                                                \
            VT va = V_LOAD((a) + i_), vb = V_LOAD((b) + i_);                            \
            V_STORE((y) + i_, (EXPR));                                                  \
        }                                                                               \
        if (i_ < (n)) {                                                                 \
            float ba_[W] = {0}, bb_[W] = {0};                                           \
            size_t r_ = (n) - i_;                                                       \
            memcpy(ba_, (a) + i_, r_ * sizeof(float));                                  \
            memcpy(bb_, (b) + i_, r_ * sizeof(float));                                  \
            VT va = V_LOAD(ba_), vb = V_LOAD(bb_);                                      \
            V_STORE(ba_, (EXPR));                                                       \
            memcpy((y) + i_, ba_, r_ * sizeof(float));                                  \
        }                                                                               \
    } while (0)

#include "kernels/vmath_vec.h"

/* ---- array entry points: transcendental ---- */

#define VM_DEFINE_MAP(name, FN)                                                        \
    VM_TARGET static void VM(name)(const float *x, float *y, size_t n)                 \
    {                                                                                  \
        VM_MAP1(x, y, n, FN(v));                                                       \
    }

VM_DEFINE_MAP(exp, VM(exp_v))
VM_DEFINE_MAP(tanh, VM(tanh_v))
VM_DEFINE_MAP(erf, VM(erf_v))
VM_DEFINE_MAP(sigmoid, VM(sigmoid_v))

VM_DEFINE_MAP(silu, VM(silu_v))
VM_DEFINE_MAP(gelu_erf, VM(gelu_erf_v))
VM_DEFINE_MAP(gelu_tanh, VM(gelu_tanh_v))

/* In place over rows (ld apart): the GEMM's per-tile activations, one call and one
 * set-up of the constants per tile rather than per 32-float row */
#define VM_DEFINE_MAP_ROWS(name, FN)                                                   \
    VM_TARGET static void VM(name##_rows)(float *y, size_t ld, size_t rows, size_t n)  \
    {                                                                                  \
        for (size_t row_ = 0; row_ < rows; row_++)                                     \
            VM_MAP1(y + row_ * ld, y + row_ * ld, n, FN(v));                           \
    }

VM_DEFINE_MAP_ROWS(gelu_erf, VM(gelu_erf_v))
VM_DEFINE_MAP_ROWS(gelu_tanh, VM(gelu_tanh_v))

/* ---- cheap activations (NaN propagates: the clamp constant is the first operand) ---- */

VM_TARGET static inline VT VM(clamp01_v)(VT v)
{
    return V_MIN(V_SET1(1.0f), V_MAX(V_SET1(0.0f), v));
}

VM_TARGET static inline VT VM(relu_v)(VT v)
{
    return V_MAX(V_SET1(0.0f), v);
}

VM_TARGET static inline VT VM(hardswish_v)(VT v)
{
    VT g = VM(clamp01_v)(V_ADD(V_DIV(v, V_SET1(6.0f)), V_SET1(0.5f)));
    return V_MUL(v, g);
}

VM_TARGET static inline VT VM(sqrt_v)(VT v)
{
    return V_SQRT(v);
}

VM_DEFINE_MAP(relu, VM(relu_v))
VM_DEFINE_MAP(sqrt, VM(sqrt_v))
VM_DEFINE_MAP(hardswish, VM(hardswish_v))

VM_TARGET static void VM(clip)(const float *x, float *y, size_t n, float lo, float hi)
{
    /* min > max gives max everywhere, as min(max(x, lo), hi) */
    VT vlo = V_SET1(lo), vhi = V_SET1(hi);
    VM_MAP1(x, y, n, V_MIN(vhi, V_MAX(vlo, v)));
}

VM_TARGET static void VM(leaky_relu)(const float *x, float *y, size_t n, float alpha)
{
    VT va = V_SET1(alpha);
    VM_MAP1(x, y, n, V_SEL(V_LT(v, V_SET1(0.0f)), v, V_MUL(v, va)));
}

VM_TARGET static void VM(hardsigmoid)(const float *x, float *y, size_t n, float alpha,
                                      float beta)
{
    VT va = V_SET1(alpha), vb = V_SET1(beta);
    VM_MAP1(x, y, n, VM(clamp01_v)(V_FMA(va, v, vb)));
}

VM_TARGET static void VM(affine)(const float *x, float *y, size_t n, float a, float b)
{
    VT va = V_SET1(a), vb = V_SET1(b);
    VM_MAP1(x, y, n, V_FMA(v, va, vb));
}

/* ---- binary arithmetic ---- */

VM_TARGET static inline VT VM(max_nan_v)(VT a, VT b)
{
    return V_SEL(V_ISNAN(a), V_MAX(a, b), a);
}

VM_TARGET static inline VT VM(min_nan_v)(VT a, VT b)
{
    return V_SEL(V_ISNAN(a), V_MIN(a, b), a);
}

/* One switch per call, the loop inside each case; LOOP(EXPR) runs the loop with the
 * operation applied to the vectors named X and Y. */
#define VM_BINARY_CASES(LOOP, X, Y)                                                    \
    switch (op) {                                                                      \
    case KN_VM_ADD: LOOP(V_ADD(X, Y)); break;                                          \
    case KN_VM_SUB: LOOP(V_SUB(X, Y)); break;                                          \
    case KN_VM_MUL: LOOP(V_MUL(X, Y)); break;                                          \
    case KN_VM_DIV: LOOP(V_DIV(X, Y)); break;                                          \
    case KN_VM_MAX: LOOP(VM(max_nan_v)(X, Y)); break;                                  \
    case KN_VM_MIN: LOOP(VM(min_nan_v)(X, Y)); break;                                  \
    }

VM_TARGET static void VM(binary_vv)(kn_vm_binop op, const float *a, const float *b, float *y,
                                    size_t n)
{
#define VM_LOOP_VV(E) VM_MAP2(a, b, y, n, E)
    VM_BINARY_CASES(VM_LOOP_VV, va, vb)
#undef VM_LOOP_VV
}

VM_TARGET static void VM(binary_vs)(kn_vm_binop op, const float *a, float s, float *y, size_t n)
{
    const VT vs = V_SET1(s);
#define VM_LOOP_VS(E) VM_MAP1(a, y, n, E)
    VM_BINARY_CASES(VM_LOOP_VS, v, vs)
#undef VM_LOOP_VS
}

VM_TARGET static void VM(binary_sv)(kn_vm_binop op, float s, const float *b, float *y, size_t n)
{
    const VT vs = V_SET1(s);
#define VM_LOOP_SV(E) VM_MAP1(b, y, n, E)
    VM_BINARY_CASES(VM_LOOP_SV, vs, v)
#undef VM_LOOP_SV
}

/* ---- reductions: four partial vectors, then the scalar tail ---- */

VM_TARGET static float VM(sum)(const float *x, size_t n)
{
    VT s0 = V_SET1(0.0f), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        s0 = V_ADD(s0, V_LOAD(x + i));
        s1 = V_ADD(s1, V_LOAD(x + i + W));
        s2 = V_ADD(s2, V_LOAD(x + i + 2 * W));
        s3 = V_ADD(s3, V_LOAD(x + i + 3 * W));
    }
    for (; i + W <= n; i += W) s0 = V_ADD(s0, V_LOAD(x + i));
    float s = V_HSUM(V_ADD(V_ADD(s0, s1), V_ADD(s2, s3)));
    for (; i < n; i++) s += x[i];
    return s;
}

VM_TARGET static float VM(sumsq_dev)(const float *x, size_t n, float mean)
{
    VT m = V_SET1(mean), s0 = V_SET1(0.0f), s1 = s0;
    size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        VT d0 = V_SUB(V_LOAD(x + i), m), d1 = V_SUB(V_LOAD(x + i + W), m);
        s0 = V_FMA(d0, d0, s0);
        s1 = V_FMA(d1, d1, s1);
    }
    for (; i + W <= n; i += W) {
        VT d = V_SUB(V_LOAD(x + i), m);
        s0 = V_FMA(d, d, s0);
    }
    float s = V_HSUM(V_ADD(s0, s1));
    for (; i < n; i++) s += (x[i] - mean) * (x[i] - mean);
    return s;
}

/* max; a NaN anywhere gives NaN (tracked apart: maxps would drop it) */
VM_TARGET static float VM(max)(const float *x, size_t n)
{
    VT m0 = V_SET1(-INFINITY), m1 = m0, bad = V_SET1(0.0f);
    size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        VT a = V_LOAD(x + i), b = V_LOAD(x + i + W);
        m0 = V_MAX(a, m0);
        m1 = V_MAX(b, m1);
        bad = V_SEL(V_ISNAN(V_ADD(a, b)), bad, V_SET1(1.0f));
    }
    for (; i + W <= n; i += W) {
        VT a = V_LOAD(x + i);
        m0 = V_MAX(a, m0);
        bad = V_SEL(V_ISNAN(a), bad, V_SET1(1.0f));
    }
    float m = V_HMAX(V_MAX(m0, m1));
    int nan = V_HMAX(bad) > 0.0f;
    for (; i < n; i++) {
        nan |= isnan(x[i]);
        m = x[i] > m ? x[i] : m;
    }
    return nan ? NAN : m;
}

/* ---- one-row softmax, log-softmax, layer norm ---- */

/* y = exp(x - m); returns the sum of y (y may be NULL: sum only) */
VM_TARGET static float VM(exp_shift_sum)(const float *x, float *y, size_t n, float m)
{
    VT vm = V_SET1(m), acc = V_SET1(0.0f);
    size_t i = 0;
    for (; i + W <= n; i += W) {
        VT e = VM(exp_v)(V_SUB(V_LOAD(x + i), vm));
        acc = V_ADD(acc, e);
        if (y) V_STORE(y + i, e);
    }
    float s = V_HSUM(acc);
    if (i < n) {
        float bx[W], by[W];
        size_t r = n - i;
        for (size_t k = 0; k < (size_t)W; k++) bx[k] = k < r ? x[i + k] : -INFINITY;
        V_STORE(by, VM(exp_v)(V_SUB(V_LOAD(bx), vm)));
        for (size_t k = 0; k < r; k++) s += by[k];
        if (y) memcpy(y + i, by, r * sizeof(float));
    }
    return s;
}

VM_TARGET static void VM(softmax)(const float *x, float *y, size_t n)
{
    if (!n) return;
    float m = VM(max)(x, n);
    float s = VM(exp_shift_sum)(x, y, n, m);
    VT r = V_SET1(1.0f / s);
    VM_MAP1(y, y, n, V_MUL(v, r));
}

VM_TARGET static void VM(log_softmax)(const float *x, float *y, size_t n)
{
    if (!n) return;
    float m = VM(max)(x, n);
    float s = VM(exp_shift_sum)(x, NULL, n, m);
    VT sub = V_SET1(m + logf(s));
    VM_MAP1(x, y, n, V_SUB(v, sub));
}

VM_TARGET static void VM(layer_norm)(const float *x, float *y, size_t n, const float *gamma,
                                     const float *beta, float eps, float *mean_out,
                                     float *rstd_out)
{
    float mean = n ? VM(sum)(x, n) / (float)n : 0.0f;
    float var = n ? VM(sumsq_dev)(x, n, mean) / (float)n : 0.0f;
    float rstd = 1.0f / sqrtf(var + eps);
    if (mean_out) *mean_out = mean;
    if (rstd_out) *rstd_out = rstd;
    VT vm = V_SET1(mean), vr = V_SET1(rstd);
    if (gamma)
        VM_MAP2(x, gamma, y, n, V_MUL(V_MUL(V_SUB(va, vm), vr), vb));
    else
        VM_MAP1(x, y, n, V_MUL(V_SUB(v, vm), vr));
    if (beta) VM(binary_vv)(KN_VM_ADD, y, beta, y, n); /* y is still in L1 */
}

/* ---- 2-D transpose ---- */

VM_TARGET static void VM(transpose)(const float *src, size_t lds, float *dst, size_t ldd,
                                    size_t rows, size_t cols)
{
    size_t i = 0;
#ifdef VM_TRANSPOSE8
    for (; i + 8 <= rows; i += 8) {
        size_t j = 0;
        for (; j + 8 <= cols; j += 8)
            VM_TRANSPOSE8(src + i * lds + j, lds, dst + j * ldd + i, ldd);
        for (; j < cols; j++)
            for (size_t k = 0; k < 8; k++) dst[j * ldd + i + k] = src[(i + k) * lds + j];
    }
#endif
    for (; i < rows; i++)
        for (size_t j = 0; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
}

/* ---- the table ---- */

static const kn_vmath_ops VM(table) = {
    .isa = VM_ISA,
    .exp = VM(exp), .tanh = VM(tanh), .erf = VM(erf), .sigmoid = VM(sigmoid), .silu = VM(silu),
    .relu = VM(relu), .hardswish = VM(hardswish), .sqrt = VM(sqrt),
    .gelu_erf = VM(gelu_erf), .gelu_tanh = VM(gelu_tanh),
    .gelu_erf_rows = VM(gelu_erf_rows), .gelu_tanh_rows = VM(gelu_tanh_rows),
    .clip = VM(clip), .leaky_relu = VM(leaky_relu), .hardsigmoid = VM(hardsigmoid),
    .affine = VM(affine),
    .binary_vv = VM(binary_vv), .binary_vs = VM(binary_vs), .binary_sv = VM(binary_sv),
    .sum = VM(sum), .max = VM(max), .sumsq_dev = VM(sumsq_dev),
    .softmax = VM(softmax), .log_softmax = VM(log_softmax), .layer_norm = VM(layer_norm),
    .transpose = VM(transpose),
};
