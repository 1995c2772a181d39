/* test_vmath.c - the vmath kernels of every level the CPU has (generic, AVX2,
 * AVX-512) against double-precision references: maximum ulp error of exp, tanh, erf,
 * sigmoid and both GELUs over a strided sweep of all float bit patterns, a dense
 * sweep of [-20, 20] and edge values (+-0, +-inf, NaN, denormals, overflow and
 * underflow thresholds); activations, binary ops, reductions, softmax and layer norm
 * on awkward lengths (0, 1, primes, vector tails), in place, with guard elements
 * checked for stray writes.  Prints the measured ulp errors.
 *
 * Then the operators' float32 fast paths (unary, binary, softmax, reduce, norm,
 * pool, transpose) on awkward shapes, run with a 3-thread pool and with none: the
 * two must agree bit for bit, and match the same operator on float64 inputs, which
 * takes the reference path. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"
#include "op_harness.h"
#include "ops/op_util.h"
#include "test.h"

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* error of y in units of the last place of the correctly rounded reference; 0 when
 * both are the same NaN class or the same infinity; 1e9 for a class mismatch */
static double ulp_error(float y, double ref)
{
    if (isnan(ref)) return isnan(y) ? 0 : 1e9;
    if (isnan(y)) return 1e9;
    float rf = (float)ref;
    if (isinf(rf)) return y == rf ? 0 : (isinf(y) ? 1e9 : fabs(ref - y) / ldexp(1.0, 104));
    if (isinf(y)) return 1e9;
    double a = fabs(rf);
    double ulp = a < FLT_MIN ? ldexp(1.0, -149) : ldexp(1.0, ilogb(a) - 23);
    return fabs((double)y - ref) / ulp;
}

/* ---- references (double) ---- */

static double ref_exp(double x) { return exp(x); }
static double ref_sqrt(double x) { return sqrt(x); }
static double ref_tanh(double x) { return tanh(x); }
static double ref_erf(double x) { return erf(x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_silu(double x) { return x * (1.0 / (1.0 + exp(-x))); }
static double ref_gelu_erf(double x)
{
    if (isinf(x)) return x > 0 ? x : -0.0;
    return 0.5 * x * erfc(-x * 0.70710678118654752440);
}
static double ref_gelu_tanh(double x)
{
    if (isinf(x)) return x > 0 ? x : -0.0;
    double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
}

typedef struct mfn {
    const char *name;
    double (*ref)(double);
    size_t off;     /* offset of the kernel in kn_vmath_ops */
    double max_ulp; /* allowed */
    double lo;      /* inputs below lo are reported apart, not checked (gelu_tanh tail) */
} mfn;

#define OFF(f) offsetof(kn_vmath_ops, f)
static const mfn FUNCS[] = {
    {"exp", ref_exp, OFF(exp), 1.5, -INFINITY},
    {"sqrt", ref_sqrt, OFF(sqrt), 0.5, -INFINITY},
    {"tanh", ref_tanh, OFF(tanh), 2.0, -INFINITY},
    {"erf", ref_erf, OFF(erf), 3.0, -INFINITY},
    {"sigmoid", ref_sigmoid, OFF(sigmoid), 3.0, -INFINITY},
    /* sigmoid's error plus the product's rounding; below -87 sigmoid(x) is denormal
     * (few significant bits) and x times it is reported apart */
    {"silu", ref_silu, OFF(silu), 4.0, -87.0},
    {"gelu_erf", ref_gelu_erf, OFF(gelu_erf), 5.0, -INFINITY},
    /* the float argument 2u of the tanh form carries ~1 ulp of rounding, amplified by
     * |2u| for negative x (8-13 ulp near -3, ~200 in the far tail): checked above -3 */
    {"gelu_tanh", ref_gelu_tanh, OFF(gelu_tanh), 18.0, -3.0},
};
enum { NFUNCS = sizeof FUNCS / sizeof FUNCS[0] };

static kn_vm_map_fn get_fn(const kn_vmath_ops *ops, const mfn *f)
{
    kn_vm_map_fn fn;
    memcpy(&fn, (const char *)ops + f->off, sizeof fn);
    return fn;
}

static float *sweep_inputs(size_t *count)
{
    static const float edges[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, FLT_MIN,
                                  -FLT_MIN, 1e-45f, -1e-45f, 1e-40f, -1e-40f, FLT_MAX,
                                  -FLT_MAX, 88.72f, 88.7228f, 88.73f, -87.33f, -103.9f,
                                  -103.98f, -104.0f, -110.0f, 0.55f, 0.875f, 2.5f, 3.9f,
                                  4.0f, -14.5f, -14.3f, -13.0f, 1e-20f, -1e-20f, 9.0f};
    size_t nedge = sizeof edges / sizeof edges[0];
    const size_t nbits = 1u << 20, ndense = 1u << 21;
    size_t n = nedge + nbits + ndense;
    float *x = malloc(n * sizeof *x);
    size_t k = 0;
    for (size_t i = 0; i < nedge; i++) x[k++] = edges[i];
    for (size_t i = 0; i < nbits; i++) x[k++] = bits_to_float((uint32_t)(i * 4099u + 7u));
    for (size_t i = 0; i < ndense; i++) x[k++] = -20.0f + 40.0f * (float)i / (float)ndense;
    *count = n;
    return x;
}

static void check_math_level(const kn_vmath_ops *ops, const float *x, size_t n,
                             double *const refs[NFUNCS], float *y)
{
    for (int f = 0; f < NFUNCS; f++) {
        get_fn(ops, &FUNCS[f])(x, y, n);
        double worst = 0, tail = 0;
        float at = 0;
        for (size_t i = 0; i < n; i++) {
            double e = ulp_error(y[i], refs[f][i]);
            if (x[i] < FUNCS[f].lo) {
                if (e > tail && e < 1e9) tail = e;
                if (e >= 1e9) worst = e, at = x[i];
                continue;
            }
            if (e > worst) worst = e, at = x[i];
        }
        printf("  %-7s %-9s max %.2f ulp (at %.9g)", kn_isa_name(ops->isa), FUNCS[f].name,
               worst, (double)at);
        if (FUNCS[f].lo > -INFINITY) printf(", below %g: %.0f ulp", FUNCS[f].lo, tail);
        printf("\n");
        CHECK(worst <= FUNCS[f].max_ulp);
    }
}

static void test_math_ulp(void)
{
    size_t n;
    float *x = sweep_inputs(&n);
    float *y = malloc(n * sizeof *y);
    double *refs[NFUNCS];
    for (int f = 0; f < NFUNCS; f++) {
        refs[f] = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) refs[f][i] = FUNCS[f].ref(x[i]);
    }
    for (int isa = 0; isa < KN_ISA_COUNT; isa++) {
        const kn_vmath_ops *ops = kn_vmath_isa((kn_isa)isa);
        if (ops) check_math_level(ops, x, n, refs, y);
    }
    for (int f = 0; f < NFUNCS; f++) free(refs[f]);
    free(x);
    free(y);
}

/* ---- awkward lengths, in place, guard elements ---- */

static const size_t LENS[] = {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 257};
enum { NLENS = sizeof LENS / sizeof LENS[0], GUARD = 16 };
static const float SENT = 1234.5f;

static uint32_t g_rng = 99u;
static float rndf(float scale)
{
    kt_lcg32(&g_rng);
    return ((float)(g_rng >> 8) / (float)(1u << 24) * 2.0f - 1.0f) * scale;
}

/* buffer of n random values followed by GUARD sentinels */
static float *rnd_buf(size_t n, float scale)
{
    float *p = malloc((n + GUARD) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rndf(scale);
    for (size_t i = n; i < n + GUARD; i++) p[i] = SENT;
    return p;
}

static int guard_ok(const float *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (p[i] != SENT) return 0;
    return 1;
}

static int close_to(float y, double ref, double rel)
{
    return fabs(y - ref) <= rel * (fabs(ref) + 1e-6);
}

static float ref_binop(kn_vm_binop op, float a, float b)
{
    switch (op) {
    case KN_VM_ADD: return a + b;
    case KN_VM_SUB: return a - b;
    case KN_VM_MUL: return a * b;
    case KN_VM_DIV: return a / b;
    case KN_VM_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case KN_VM_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    }
    return 0;
}

static int same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void check_binary_len(const kn_vmath_ops *ops, size_t n)
{
    float *a = rnd_buf(n, 4), *b = rnd_buf(n, 4), *y = rnd_buf(n, 1);
    if (n > 2) a[n / 2] = NAN, b[1] = NAN;
    float s = 1.75f;
    for (int op = KN_VM_ADD; op <= KN_VM_MIN; op++) {
        int ok = 1;
        ops->binary_vv((kn_vm_binop)op, a, b, y, n);
        for (size_t i = 0; i < n; i++) ok &= same_float(y[i], ref_binop((kn_vm_binop)op, a[i], b[i]));
        ops->binary_vs((kn_vm_binop)op, a, s, y, n);
        for (size_t i = 0; i < n; i++) ok &= same_float(y[i], ref_binop((kn_vm_binop)op, a[i], s));
        ops->binary_sv((kn_vm_binop)op, s, b, y, n);
        for (size_t i = 0; i < n; i++) ok &= same_float(y[i], ref_binop((kn_vm_binop)op, s, b[i]));
        CHECK(ok && guard_ok(y, n));
    }
    /* in place */
    memcpy(y, a, n * sizeof *y);
    ops->binary_vv(KN_VM_MUL, y, b, y, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= same_float(y[i], a[i] * b[i]);
    CHECK(ok && guard_ok(y, n));
    free(a), free(b), free(y);
}

static float clamp01f(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static void check_activations_len(const kn_vmath_ops *ops, size_t n)
{
    float *x = rnd_buf(n, 8), *y = rnd_buf(n, 1);
    int ok = 1;
    ops->relu(x, y, n);
    for (size_t i = 0; i < n; i++) ok &= y[i] == (x[i] < 0 ? 0 : x[i]);
    ops->clip(x, y, n, -1.5f, 2.0f);
    for (size_t i = 0; i < n; i++) ok &= y[i] == (x[i] < -1.5f ? -1.5f : x[i] > 2 ? 2 : x[i]);
    ops->leaky_relu(x, y, n, 0.1f);
    for (size_t i = 0; i < n; i++) ok &= y[i] == (x[i] < 0 ? 0.1f * x[i] : x[i]);
    ops->hardswish(x, y, n);
    for (size_t i = 0; i < n; i++) ok &= y[i] == x[i] * clamp01f(x[i] / 6.0f + 0.5f);
    ops->hardsigmoid(x, y, n, 0.2f, 0.5f);
    for (size_t i = 0; i < n; i++) ok &= fabs(y[i] - clamp01f(0.2f * x[i] + 0.5f)) <= 1e-6;
    ops->affine(x, y, n, 0.5f, -3.0f);
    for (size_t i = 0; i < n; i++) ok &= close_to(y[i], 0.5 * x[i] - 3.0, 1e-6);
    CHECK(ok && guard_ok(y, n));
    /* in place, NaN passes through the activations */
    if (n) x[0] = NAN;
    ops->relu(x, x, n);
    CHECK(n == 0 || isnan(x[0]));
    ops->clip(x, x, n, -1, 1);
    CHECK(n == 0 || isnan(x[0]));
    CHECK(guard_ok(x, n));
    free(x), free(y);
}

static void check_reductions_len(const kn_vmath_ops *ops, size_t n)
{
    float *x = rnd_buf(n, 3);
    double s = 0, m = -INFINITY, mean, sq = 0;
    for (size_t i = 0; i < n; i++) s += x[i], m = x[i] > m ? x[i] : m;
    mean = n ? s / (double)n : 0;
    for (size_t i = 0; i < n; i++) sq += (x[i] - (float)mean) * (x[i] - (float)mean);
    CHECK(fabs(ops->sum(x, n) - s) <= 1e-5 * (double)(n + 1));
    CHECK(ops->max(x, n) == (float)m);
    CHECK(fabs(ops->sumsq_dev(x, n, (float)mean) - sq) <= 1e-5 * (sq + 1));
    if (n) {
        x[n - 1] = NAN;
        CHECK(isnan(ops->max(x, n)));
        x[n - 1] = 0;
        x[0] = NAN;
        CHECK(isnan(ops->max(x, n)));
    }
    free(x);
}

static void check_rows_len(const kn_vmath_ops *ops, size_t n)
{
    float *x = rnd_buf(n, 10), *y = rnd_buf(n, 1), *g = rnd_buf(n, 2), *b = rnd_buf(n, 2);
    double m = -INFINITY, s = 0;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    for (size_t i = 0; i < n; i++) s += exp(x[i] - m);
    int ok = 1;
    ops->softmax(x, y, n);
    for (size_t i = 0; i < n; i++) ok &= close_to(y[i], exp(x[i] - m) / s, 1e-5);
    ops->log_softmax(x, y, n);
    for (size_t i = 0; i < n; i++) ok &= fabs(y[i] - (x[i] - m - log(s))) <= 1e-5 * (1 + fabs(m));
    CHECK(ok && guard_ok(y, n));
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean = n ? mean / (double)n : 0;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var = n ? var / (double)n : 0;
    double r = 1 / sqrt(var + 1e-5);
    float mo, ro;
    ops->layer_norm(x, y, n, g, b, 1e-5f, &mo, &ro);
    for (size_t i = 0; i < n; i++) ok &= fabs(y[i] - ((x[i] - mean) * r * g[i] + b[i])) <= 1e-4;
    CHECK(ok && guard_ok(y, n));
    CHECK(n == 0 || fabs(ro - r) <= 1e-5 * r);
    ops->layer_norm(x, x, n, NULL, NULL, 1e-5f, NULL, NULL); /* in place, no affine */
    for (size_t i = 0; i < n; i++) ok &= fabs(x[i] - (y[i] - b[i]) / g[i]) <= 1e-3 * (1 + 1 / fabs(g[i]));
    CHECK(ok && guard_ok(x, n));
    free(x), free(y), free(g), free(b);
}

/* transcendental kernels on tails and in place agree with the same level's bulk */
static void check_maps_len(const kn_vmath_ops *ops, size_t n)
{
    float *x = rnd_buf(n, 12), *y = rnd_buf(n, 1), *big = malloc((n + 64) * sizeof *big);
    for (int f = 0; f < NFUNCS; f++) {
        kn_vm_map_fn fn = get_fn(ops, &FUNCS[f]);
        fn(x, y, n);
        int ok = guard_ok(y, n);
        for (size_t i = 0; i < n; i++) ok &= ulp_error(y[i], FUNCS[f].ref(x[i])) <= FUNCS[f].max_ulp ||
                                            x[i] < FUNCS[f].lo;
        memcpy(big, x, n * sizeof *x);
        fn(big, big, n);
        for (size_t i = 0; i < n; i++) ok &= same_float(big[i], y[i]);
        CHECK(ok);
    }
    free(x), free(y), free(big);
}

static void check_transpose_len(const kn_vmath_ops *ops, size_t rows)
{
    size_t cols = LENS[(rows * 7 + 3) % NLENS], lds = cols + 3, ldd = rows + 5;
    float *src = rnd_buf(rows * lds, 1), *dst = rnd_buf(cols * ldd, 1);
    float *keep = malloc((cols * ldd + 1) * sizeof *keep);
    memcpy(keep, dst, cols * ldd * sizeof *keep);
    ops->transpose(src, lds, dst, ldd, rows, cols);
    int ok = guard_ok(dst, cols * ldd);
    for (size_t j = 0; j < cols; j++)
        for (size_t i = 0; i < ldd; i++)
            ok &= dst[j * ldd + i] == (i < rows ? src[i * lds + j] : keep[j * ldd + i]);
    CHECK(ok);
    free(src), free(dst), free(keep);
}

/* The row entry points equal the array ones row by row, bit for bit, and leave the
 * gaps between rows alone. */
static void test_rows(void)
{
    enum { ROWS = 5, LD = 41 };
    for (int isa = 0; isa < KN_ISA_COUNT; isa++) {
        const kn_vmath_ops *ops = kn_vmath_isa((kn_isa)isa);
        if (!ops) continue;
        const struct {
            kn_vm_rows_fn rows;
            kn_vm_map_fn map;
        } fns[] = {{ops->gelu_erf_rows, ops->gelu_erf}, {ops->gelu_tanh_rows, ops->gelu_tanh}};
        for (size_t f = 0; f < 2; f++)
            for (size_t n = 0; n <= 37; n += 37 / 4 + 1) {
                float y[ROWS * LD], want[ROWS * LD];
                for (size_t i = 0; i < ROWS * LD; i++)
                    y[i] = want[i] = (float)((int)(i * 37 % 101) - 50) * 0.11f;
                fns[f].rows(y, LD, ROWS, n);
                for (size_t r = 0; r < ROWS; r++)
                    fns[f].map(want + r * LD, want + r * LD, n);
                CHECK(memcmp(y, want, sizeof y) == 0);
            }
    }
}

static void test_lengths(void)
{
    for (int isa = 0; isa < KN_ISA_COUNT; isa++) {
        const kn_vmath_ops *ops = kn_vmath_isa((kn_isa)isa);
        if (!ops) continue;
        for (int i = 0; i < NLENS; i++) {
            check_binary_len(ops, LENS[i]);
            check_activations_len(ops, LENS[i]);
            check_reductions_len(ops, LENS[i]);
            check_rows_len(ops, LENS[i]);
            check_maps_len(ops, LENS[i]);
            check_transpose_len(ops, LENS[i]);
        }
    }
}

/* ---- operators: float32 fast path (threaded and not) vs the float64 reference ---- */

enum { OP_MAX_IN = 5 };

typedef struct op_case {
    const char *op;
    int opset;
    int n_in;
    int rank[OP_MAX_IN];
    int64_t dims[OP_MAX_IN][6];
    const int64_t *ints;  /* input n_in - 1 is this int64 1-D list when set */
    int n_ints;
    int n_attr;
    kn_attr attrs[6];
    bool positive;        /* inputs 1.. strictly positive (Div, BatchNorm variance) */
    float fill1;          /* when non-zero, every element of input 1 */
} op_case;

/* One node run directly through its kernel with the given pool. */
static int run_kernel(const op_case *oc, const kn_tensor *const *in, kn_threadpool *pool,
                      kn_tensor *out, kn_error *err)
{
    const kn_op_def *def = kn_op_find("", oc->op, oc->opset);
    if (!def) return KN_ERR_UNSUPPORTED;
    int ids[OP_MAX_IN + 1] = {0, 1, 2, 3, 4, 5}, out_id = 9;
    kn_node node = {.name = "t", .op_type = oc->op, .domain = "", .n_in = oc->n_in, .n_out = 1,
                    .in = ids, .out = &out_id, .n_attr = oc->n_attr,
                    .attrs = (kn_attr *)oc->attrs, .op = def, .opset = oc->opset};
    kn_tensor *outs[1] = {out};
    kn_op_ctx c = {.node = &node, .opset = oc->opset, .n_in = oc->n_in, .in = in, .n_out = 1,
                   .out = outs, .err = err, .pool = pool};
    kn_error_clear(err);
    return def->run(&c);
}

static bool bits_equal(const kn_tensor *a, const kn_tensor *b)
{
    return a->numel == b->numel && a->nbytes == b->nbytes &&
           (a->nbytes == 0 || !memcmp(a->data, b->data, a->nbytes));
}

static void check_op_case(const op_case *oc, kn_threadpool *pool)
{
    kn_tensor f32[OP_MAX_IN], f64[OP_MAX_IN];
    const kn_tensor *p32[OP_MAX_IN], *p64[OP_MAX_IN];
    int n_float = oc->ints ? oc->n_in - 1 : oc->n_in;
    for (int i = 0; i < n_float; i++) {
        int64_t n = kn_dims_prod(oc->dims[i], 0, oc->rank[i]);
        double *v = malloc(sizeof(double) * (size_t)(n + 1));
        for (int64_t k = 0; k < n; k++) {
            float r = rndf(3.0f);
            if (oc->positive && i > 0) r = 0.5f + fabsf(r);
            if (oc->fill1 != 0 && i == 1) r = oc->fill1;
            v[k] = r;
        }
        f32[i] = kt_tensor_f64(KN_F32, oc->rank[i], oc->dims[i], v);
        f64[i] = kt_tensor_f64(KN_F64, oc->rank[i], oc->dims[i], v);
        free(v);
    }
    if (oc->ints) {
        f32[n_float] = kt_tensor_i64(KN_I64, oc->n_ints, oc->ints);
        f64[n_float] = kt_tensor_i64(KN_I64, oc->n_ints, oc->ints);
    }
    for (int i = 0; i < oc->n_in; i++) p32[i] = &f32[i], p64[i] = &f64[i];
    kn_tensor y1 = {0}, y2 = {0}, yr = {0};
    kn_error err = {0};
    int rc1 = run_kernel(oc, p32, NULL, &y1, &err);
    int rc2 = run_kernel(oc, p32, pool, &y2, &err);
    int rcr = run_kernel(oc, p64, NULL, &yr, &err);
    CHECK_EQ_INT(rc1, KN_OK);
    CHECK_EQ_INT(rc2, KN_OK);
    CHECK_EQ_INT(rcr, KN_OK);
    if (rc1 || rc2 || rcr) {
        fprintf(stderr, "  %s: %s\n", oc->op, err.msg);
    } else {
        CHECK(bits_equal(&y1, &y2));
        CHECK(y1.numel == yr.numel && y1.dtype == KN_F32);
        double worst = 0;
        for (int64_t k = 0; k < y1.numel && k < yr.numel; k++) {
            double a = ((const float *)y1.data)[k], r = ((const double *)yr.data)[k];
            double e = fabs(a - r) / (fabs(r) + 1e-2); /* inputs are O(1) */
            if (e > worst) worst = e;
        }
        if (!(worst <= 2e-5)) fprintf(stderr, "  %s: rel err %g\n", oc->op, worst);
        CHECK(worst <= 2e-5);
    }
    kt_release_all(f32, oc->n_in);
    kt_release_all(f64, oc->n_in);
    kn_tensor_release(&y1), kn_tensor_release(&y2), kn_tensor_release(&yr);
}

#define SHAPE1(...) 1, {__VA_ARGS__}
static const int64_t AX_LAST[] = {-1}, AX_12[] = {1, 2}, AX_0[] = {0}, AX_2[] = {2};
static const int64_t PERM_0213[] = {0, 2, 1, 3}, PERM_0231[] = {0, 2, 3, 1},
                     PERM_0312[] = {0, 3, 1, 2}, PERM_3210[] = {3, 2, 1, 0}, PERM_10[] = {1, 0},
                     PERM_021[] = {0, 2, 1};
static const int64_t K33[] = {3, 3}, K22[] = {2, 2}, K54[] = {5, 4}, S22[] = {2, 2},
                     S13[] = {1, 3}, P1111[] = {1, 1, 1, 1}, P2102[] = {2, 1, 0, 2};

static void add_unary_cases(op_case *cs, int *n)
{
    static const char *ops[] = {"Exp", "Tanh", "Erf", "Sigmoid", "Relu", "LeakyRelu",
                                "HardSigmoid", "HardSwish", "Gelu", "Clip", "Sqrt"};
    static const int64_t shapes[][2] = {{1, 1}, {1, 7}, {3, 33}, {5, 4099}};
    for (int o = 0; o < KT_COUNT(ops); o++)
        for (int s = 0; s < 4; s++) {
            op_case c = {ops[o], 20, 1, {2}, {{shapes[s][0], shapes[s][1]}}};
            if (!strcmp(ops[o], "Clip")) {
                c.opset = 6;
                c.n_attr = 2;
                c.attrs[0] = kt_attr_float("min", -0.75f);
                c.attrs[1] = kt_attr_float("max", 1.5f);
            }
            cs[(*n)++] = c;
        }
    op_case gt = {"Gelu", 20, 1, {2}, {{5, 4099}}, .n_attr = 1};
    gt.attrs[0] = kt_attr_str("approximate", "tanh");
    cs[(*n)++] = gt;
}

static void add_binary_cases(op_case *cs, int *n)
{
    static const char *ops[] = {"Add", "Sub", "Mul", "Div"};
    /* same, scalar, bias over last, per-channel, outer product, scalar first, long rows */
    static const op_case shapes[] = {
        {0, 0, 2, {2, 2}, {{3, 37}, {3, 37}}},
        {0, 0, 2, {1, 0}, {{50000}, {0}}},
        {0, 0, 2, {3, 1}, {{2, 65, 31}, {31}}},
        {0, 0, 2, {4, 3}, {{2, 5, 7, 9}, {5, 1, 1}}},
        {0, 0, 2, {2, 2}, {{17, 1}, {1, 23}}},
        {0, 0, 2, {1, 1}, {{1}, {40000}}},
        {0, 0, 2, {2, 2}, {{1, 70001}, {1, 70001}}},
        {0, 0, 2, {2, 2}, {{3, 5}, {3, 1}}},
    };
    for (int o = 0; o < 4; o++)
        for (int s = 0; s < KT_COUNT(shapes); s++) {
            op_case c = shapes[s];
            c.op = ops[o];
            c.opset = 14;
            c.positive = o == 3;
            cs[(*n)++] = c;
        }
}

static void add_pow_cases(op_case *cs, int *n)
{
    /* Pow(x, 2) takes Mul; other exponents the reference (compared all the same) */
    cs[(*n)++] = (op_case){"Pow", 15, 2, {3, 0}, {{2, 7, 3001}, {0}}, .fill1 = 2.0f};
    cs[(*n)++] = (op_case){"Pow", 15, 2, {1, 2}, {{5}, {1, 1}}, .fill1 = 2.0f};
    cs[(*n)++] = (op_case){"Pow", 15, 2, {1, 0}, {{5}, {0}}, .fill1 = 3.0f};
}

static void add_row_cases(op_case *cs, int *n)
{
    static const op_case shapes[] = {
        {0, 0, 1, {2}, {{7, 13}}}, {0, 0, 1, {2}, {{3, 5000}}}, {0, 0, 1, {3}, {{2, 5, 300}}},
        {0, 0, 1, {3}, {{4, 3, 1}}}, {0, 0, 1, {1}, {{1}}},
    };
    static const int64_t axes[] = {-1, -1, 1, 1, 0};
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < KT_COUNT(shapes); s++) {
            op_case c = shapes[s];
            c.op = k ? "LogSoftmax" : "Softmax";
            c.opset = 13;
            c.n_attr = 1;
            c.attrs[0] = kt_attr_int("axis", axes[s]);
            cs[(*n)++] = c;
        }
    op_case legacy = {"Softmax", 11, 1, {3}, {{2, 3, 40}}, .n_attr = 1};
    legacy.attrs[0] = kt_attr_int("axis", 1);
    cs[(*n)++] = legacy;
    static const char *reds[] = {"ReduceMean", "ReduceMax", "ReduceSumSquare", "ReduceL2"};
    for (int r = 0; r < 4; r++) {
        op_case a = {reds[r], 13, 1, {3}, {{3, 4, 5}}, .n_attr = 1};
        a.attrs[0] = kt_attr_ints("axes", 2, AX_12);
        op_case b = {reds[r], 13, 1, {2}, {{6, 2000}}, .n_attr = 2};
        b.attrs[0] = kt_attr_ints("axes", 1, AX_LAST);
        b.attrs[1] = kt_attr_int("keepdims", 0);
        op_case d = {reds[r], 13, 1, {3}, {{2, 3, 1}}, .n_attr = 1};
        d.attrs[0] = kt_attr_ints("axes", 1, AX_2);
        op_case e = {reds[r], 13, 1, {3}, {{3, 4, 5}}, .n_attr = 1};
        e.attrs[0] = kt_attr_ints("axes", 1, AX_0);
        cs[(*n)++] = a, cs[(*n)++] = b, cs[(*n)++] = d, cs[(*n)++] = e;
    }
    cs[(*n)++] = (op_case){"ReduceSum", 13, 2, {2, 1}, {{5, 3000}, {1}}, AX_LAST, 1};
    cs[(*n)++] = (op_case){"LayerNormalization", 17, 3, {3, 1, 1}, {{3, 5, 37}, {37}, {37}}};
    cs[(*n)++] = (op_case){"LayerNormalization", 17, 2, {2, 1}, {{9, 3000}, {3000}}};
    op_case ln = {"LayerNormalization", 17, 3, {3, 2, 2}, {{3, 5, 37}, {5, 37}, {5, 37}},
                  .n_attr = 1};
    ln.attrs[0] = kt_attr_int("axis", 1);
    cs[(*n)++] = ln;
    cs[(*n)++] = (op_case){"LayerNormalization", 17, 2, {3, 1}, {{3, 5, 37}, {1}}};
    cs[(*n)++] = (op_case){"BatchNormalization", 15, 5, {4, 1, 1, 1, 1},
                           {{2, 3, 5, 7}, {3}, {3}, {3}, {3}}, .positive = true};
    cs[(*n)++] = (op_case){"BatchNormalization", 15, 5, {2, 1, 1, 1, 1},
                           {{4, 6}, {6}, {6}, {6}, {6}}, .positive = true};
}

static void add_pool_cases(op_case *cs, int *n)
{
    for (int k = 0; k < 2; k++) {
        const char *op = k ? "AveragePool" : "MaxPool";
        op_case a = {op, 19, 1, {4}, {{2, 3, 11, 13}}, .n_attr = 3};
        a.attrs[0] = kt_attr_ints("kernel_shape", 2, K33);
        a.attrs[1] = kt_attr_ints("strides", 2, S22);
        a.attrs[2] = kt_attr_ints("pads", 4, P1111);
        op_case b = {op, 19, 1, {4}, {{1, 4, 9, 8}}, .n_attr = 3};
        b.attrs[0] = kt_attr_ints("kernel_shape", 2, K22);
        b.attrs[1] = kt_attr_ints("strides", 2, S22);
        b.attrs[2] = kt_attr_int("ceil_mode", 1);
        op_case c = {op, 19, 1, {4}, {{2, 2, 10, 9}}, .n_attr = 4};
        c.attrs[0] = kt_attr_ints("kernel_shape", 2, K54);
        c.attrs[1] = kt_attr_ints("strides", 2, S13);
        c.attrs[2] = kt_attr_ints("pads", 4, P2102);
        c.attrs[3] = kt_attr_int("count_include_pad", 1);
        op_case d = {op, 19, 1, {4}, {{2, 64, 30, 30}}, .n_attr = 2};
        d.attrs[0] = kt_attr_ints("kernel_shape", 2, K33);
        d.attrs[1] = kt_attr_ints("strides", 2, S22);
        cs[(*n)++] = a, cs[(*n)++] = b, cs[(*n)++] = c, cs[(*n)++] = d;
    }
    cs[(*n)++] = (op_case){"GlobalAveragePool", 1, 1, {4}, {{2, 3, 7, 9}}};
    cs[(*n)++] = (op_case){"GlobalMaxPool", 1, 1, {4}, {{2, 300, 7, 9}}};
}

static void add_transpose_cases(op_case *cs, int *n)
{
    static const struct { int rank; int64_t dims[4]; const int64_t *perm; } t[] = {
        {4, {2, 3, 4, 5}, PERM_0213}, {4, {2, 3, 4, 5}, PERM_0231}, {4, {2, 3, 4, 5}, PERM_0312},
        {4, {2, 3, 4, 5}, PERM_3210}, {4, {1, 128, 12, 64}, PERM_0231}, {2, {67, 130}, PERM_10},
        {3, {1, 37, 19}, PERM_021},   {2, {300, 257}, PERM_10},
    };
    for (int k = 0; k < KT_COUNT(t); k++) {
        op_case c = {"Transpose", 13, 1, {t[k].rank}, {{0}}, .n_attr = 1};
        memcpy(c.dims[0], t[k].dims, sizeof t[k].dims);
        c.attrs[0] = kt_attr_ints("perm", t[k].rank, t[k].perm);
        cs[(*n)++] = c;
    }
}

static void test_op_fast_paths(void)
{
    kn_error err = {0};
    kn_threadpool *pool = kn_threadpool_create(3, &err);
    CHECK(pool != NULL);
    static op_case cs[256];
    int n = 0;
    add_unary_cases(cs, &n);
    add_binary_cases(cs, &n);
    add_pow_cases(cs, &n);
    add_row_cases(cs, &n);
    add_pool_cases(cs, &n);
    add_transpose_cases(cs, &n);
    for (int i = 0; i < n; i++) check_op_case(&cs[i], pool);
    kn_threadpool_free(pool);
}

static void test_dispatch(void)
{
    const kn_vmath_ops *ops = kn_vmath();
    CHECK(ops != NULL);
    CHECK(ops->isa <= kn_cpu_isa());
    CHECK(kn_vmath_isa(KN_ISA_GENERIC) != NULL);
    CHECK(kn_vmath_isa(KN_ISA_COUNT) == NULL);
}

TEST_MAIN(TEST_CASE(test_dispatch), TEST_CASE(test_math_ulp), TEST_CASE(test_rows),
          TEST_CASE(test_lengths),
          TEST_CASE(test_op_fast_paths))
