/* vmath_vec.h - the vmath approximations on one vector (exp, tanh, erf, sigmoid,
 * SiLU, the GELUs), written over the vector vocabulary vmath_impl.h describes
 * (VM, VM_TARGET, VT, V_*).  vmath_impl.h includes it for the array entry points;
 * a kernel that wants an activation applied in registers (the blocked conv's
 * tiles) defines the vocabulary, e.g. through vmath_avx512_vocab.h, and includes
 * it too.  Everything here is static inline. */

#include <math.h>

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

/* x sigmoid(x) (SiLU / Swish) in one pass: the same two roundings as sigmoid then a
 * product, without the second sweep over memory */
VM_TARGET static inline VT VM(silu_v)(VT x)
{
    return V_MUL(x, VM(sigmoid_v)(x));
}
