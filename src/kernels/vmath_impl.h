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

/* ---- exp ---- */

#define VM_LOG2E 1.44269504088896341f
#define VM_LN2_HI 0.693145751953125f        /* 16 significant bits: n * hi is exact */
#define VM_LN2_LO 1.42860682030941723212e-6f

/* exp(x) = p * 2^n with p in [0.7, 1.42] (*n integral in [-150, 128]); the caller
 * may fold further factors into p before scaling, so that a result in the denormal
 * range is rounded once, at the end.  NaN propagates (the clamps return x). */
VM_TARGET static inline VT VM(exp_parts_v)(VT x, VT *n_out)
{
    x = V_MIN(V_SET1(88.8f), V_MAX(V_SET1(-104.0f), x));
    VT n = V_ROUND(V_MUL(x, V_SET1(VM_LOG2E)));
    VT r = V_FMA(n, V_SET1(-VM_LN2_HI), x);
    r = V_FMA(n, V_SET1(-VM_LN2_LO), r);
    VT p = V_SET1(1.0f / 5040.0f);
    p = V_FMA(p, r, V_SET1(1.0f / 720.0f));
    p = V_FMA(p, r, V_SET1(1.0f / 120.0f));
    p = V_FMA(p, r, V_SET1(1.0f / 24.0f));
    p = V_FMA(p, r, V_SET1(1.0f / 6.0f));
    p = V_FMA(p, r, V_SET1(0.5f));
    p = V_FMA(p, r, V_SET1(1.0f));
    *n_out = n;
    return V_FMA(p, r, V_SET1(1.0f));
}

/* exp(x) for any x: +inf above ~88.72, 0 below ~-103.97, denormals rounded once */
VM_TARGET static inline VT VM(exp_v)(VT x)
{
    VT n;
    VT p = VM(exp_parts_v)(x, &n);
    return V_SCALE2(p, n);
}

/* ---- tanh ---- */

VM_TARGET static inline VT VM(tanh_v)(VT x)
{
    VT a = V_ABS(x);
    /* tanh(a) = a + a s g(s), s = a^2 < 0.3025; g fitted on [0, 0.3025], rel err 4e-11 */
    VT s = V_MUL(a, a);
    VT g = V_SET1(-9.655763367e-04f);
    g = V_FMA(g, s, V_SET1(3.404762024e-03f));
    g = V_FMA(g, s, V_SET1(-8.826136380e-03f));
    g = V_FMA(g, s, V_SET1(2.186564806e-02f));
    g = V_FMA(g, s, V_SET1(-5.396806280e-02f));
    g = V_FMA(g, s, V_SET1(1.333333297e-01f));
    g = V_FMA(g, s, V_SET1(-3.333333333e-01f));
    VT small = V_FMA(V_MUL(a, s), g, a);
    VT e = VM(exp_v)(V_ADD(a, a));
    VT big = V_SUB(V_SET1(1.0f), V_DIV(V_SET1(2.0f), V_ADD(e, V_SET1(1.0f))));
    /* NaN fails the compare and takes the polynomial, which propagates it */
    return V_COPYSIGN(V_SEL(V_GE(a, V_SET1(0.55f)), small, big), x);
}

/* ---- erf / erfc tail ---- */

/* erf(a)/a = h(a^2) for a < 0.875, rel err 5e-12 */
VM_TARGET static inline VT VM(erf_small_v)(VT a)
{
    VT s = V_MUL(a, a);
    VT h = V_SET1(-1.068998282e-05f);
    h = V_FMA(h, s, V_SET1(1.155924743e-04f));
    h = V_FMA(h, s, V_SET1(-8.517123771e-04f));
    h = V_FMA(h, s, V_SET1(5.222876393e-03f));
    h = V_FMA(h, s, V_SET1(-2.686595819e-02f));
    h = V_FMA(h, s, V_SET1(1.128378965e-01f));
    h = V_FMA(h, s, V_SET1(-3.761263883e-01f));
    h = V_FMA(h, s, V_SET1(1.128379167e+00f));
    return V_MUL(a, h);
}

/* Q(z) = exp(z^2) erfc(z) for z in [0.5, 10.5]: on [0.5, 2.5) a degree-11 polynomial
 * in z - 1.5 (rel err 5e-9), beyond (1/z) P(1/z - 0.247619048) (degree 11).  The two
 * coefficient sets are blended per lane so one Horner chain serves both. */
#define VM_QC(ca, cb) q = V_FMA(q, u, V_SEL(far, V_SET1(ca), V_SET1(cb)))
VM_TARGET static inline VT VM(erfc_q_v)(VT z)
{
    MT far = V_GE(z, V_SET1(2.5f));
    VT t = V_DIV(V_SET1(1.0f), z);
    VT u = V_SEL(far, V_SUB(z, V_SET1(1.5f)), V_SUB(t, V_SET1(0.247619048f)));
    VT q = V_SEL(far, V_SET1(-9.051851239e-06f), V_SET1(-2.678618338e+00f));
    VM_QC(3.012266042e-05f, -4.741041036e-01f);
    VM_QC(-7.021189854e-05f, 1.515995536e+00f);
    VM_QC(2.147382943e-04f, -7.528410290e-01f);
    VM_QC(-6.632265219e-04f, -8.426346432e-02f);
    VM_QC(1.890681027e-03f, 4.127712132e-01f);
    VM_QC(-5.145650249e-03f, -2.786467762e-01f);
    VM_QC(1.337626278e-02f, -2.480487325e-02f);
    VM_QC(-3.293093178e-02f, 2.197649154e-01f);
    VM_QC(7.615113280e-02f, -1.693550565e-01f);
    VM_QC(-1.636229174e-01f, -1.186442154e-01f);
    VM_QC(3.215854152e-01f, 5.482812738e-01f);
    return V_MUL(q, V_SEL(far, V_SET1(1.0f), t));
}
#undef VM_QC

/* factor * erfc(z) for z >= 0.5, given z^2 = sq_hi + sq_lo exactly (z <= 10.5 for
 * Q): exp(-hi - lo) = exp(-hi) (1 - lo) to far below an ulp, and the power of two
 * applied last so a denormal result is rounded once. */
VM_TARGET static inline VT VM(erfc_tail_v)(VT z, VT sq_hi, VT sq_lo, VT factor)
{
    VT n;
    VT p = VM(exp_parts_v)(V_SUB(V_SET1(0.0f), sq_hi), &n);
    p = V_FMA(V_SUB(V_SET1(0.0f), p), sq_lo, p);
    p = V_MUL(V_MUL(p, factor), VM(erfc_q_v)(V_MIN(V_SET1(10.5f), z)));
    return V_SCALE2(p, n);
}

VM_TARGET static inline VT VM(erf_v)(VT x)
{
    VT a = V_ABS(x);
    VT small = VM(erf_small_v)(a);
    VT ac = V_MIN(V_SET1(4.0f), a); /* erf(4) rounds to 1 */
    VT hi = V_MUL(ac, ac);
    VT big = V_SUB(V_SET1(1.0f), VM(erfc_tail_v)(ac, hi, V_SQR_LO(ac, hi), V_SET1(1.0f)));
    return V_COPYSIGN(V_SEL(V_GE(a, V_SET1(0.875f)), small, big), x);
}

/* ---- sigmoid and the GELUs ---- */

/* 1 / (1 + exp(-t)) through e = exp(-|t|): t >= 0: 1/(1+e), else e/(1+e) */
VM_TARGET static inline VT VM(sigmoid_v)(VT t)
{
    VT e = VM(exp_v)(V_SUB(V_SET1(0.0f), V_ABS(t)));
    VT s = V_DIV(V_SET1(1.0f), V_ADD(V_SET1(1.0f), e));
    return V_SEL(V_GE(t, V_SET1(0.0f)), V_MUL(e, s), s);
}

#define VM_SQRT1_2 0.707106781186547524f
#define VM_GELU_NEG_ZERO (-14.5f) /* below: |x Phi(x)| < half the smallest denormal */

/* x Phi(x) = 0.5 x (1 + erf(x/sqrt2)); for |x| >= 0.71: 0.5 x erfc(|x|/sqrt2) with the
 * factor 0.5 x folded in before the final power of two (denormal outputs) */
VM_TARGET static inline VT VM(gelu_erf_v)(VT x)
{
    VT z = V_MUL(V_ABS(x), V_SET1(VM_SQRT1_2));
    VT small = V_ADD(V_SET1(1.0f), V_COPYSIGN(VM(erf_small_v)(z), x));
    small = V_MUL(V_MUL(V_SET1(0.5f), x), small);
    /* the exponent z^2 = x^2 / 2 from x itself, exactly as hi + lo */
    VT xc = V_MIN(V_SET1(15.0f), V_MAX(V_SET1(-15.0f), x));
    VT hi = V_MUL(xc, xc), lo = V_SQR_LO(xc, hi);
    MT pos = V_GE(x, V_SET1(0.0f));
    VT half_x = V_MUL(V_SET1(0.5f), x);
    VT c = VM(erfc_tail_v)(z, V_MUL(hi, V_SET1(0.5f)), V_MUL(lo, V_SET1(0.5f)),
                           V_SEL(pos, half_x, V_SET1(1.0f)));
    /* x >= 0: 0.5 x (2 - erfc(z));  x < 0: c is already 0.5 x erfc(z) */
    VT big = V_SEL(pos, c, V_MUL(half_x, V_SUB(V_SET1(2.0f), c)));
    /* the tail from z = 0.5 on: 1 + erf(-z) cancels below that */
    VT y = V_SEL(V_GE(z, V_SET1(0.5f)), small, big);
    return V_SEL(V_LT(x, V_SET1(VM_GELU_NEG_ZERO)), y, V_SET1(-0.0f));
}

/* 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3);
 * 2u = x c0 + x (c0_lo + c1 x^2) with c0 = 2 sqrt(2/pi) split into float hi + lo */
VM_TARGET static inline VT VM(gelu_tanh_v)(VT x)
{
    VT x2 = V_MUL(x, x);
    VT rest = V_MUL(x, V_FMA(x2, V_SET1(7.135481627e-02f), V_SET1(-4.534068032e-08f)));
    VT u2 = V_FMA(x, V_SET1(1.595769167e+00f), rest);
    VT y = V_MUL(x, VM(sigmoid_v)(u2));
    return V_SEL(V_LT(x, V_SET1(VM_GELU_NEG_ZERO)), y, V_SET1(-0.0f));
}

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

/* x sigmoid(x) (SiLU / Swish) in one pass: the same two roundings as sigmoid then a
 * product, without the second sweep over memory */
VM_TARGET static inline VT VM(silu_v)(VT x)
{
    return V_MUL(x, VM(sigmoid_v)(x));
}
VM_DEFINE_MAP(silu, VM(silu_v))
VM_DEFINE_MAP(gelu_erf, VM(gelu_erf_v))
VM_DEFINE_MAP(gelu_tanh, VM(gelu_tanh_v))

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
    .clip = VM(clip), .leaky_relu = VM(leaky_relu), .hardsigmoid = VM(hardsigmoid),
    .affine = VM(affine),
    .binary_vv = VM(binary_vv), .binary_vs = VM(binary_vs), .binary_sv = VM(binary_sv),
    .sum = VM(sum), .max = VM(max), .sumsq_dev = VM(sumsq_dev),
    .softmax = VM(softmax), .log_softmax = VM(log_softmax), .layer_norm = VM(layer_norm),
    .transpose = VM(transpose),
};
