/* test_calib.c - calibration statistics (src/quant/calib.c): minmax, percentile and
 * entropy ranges on known distributions, the sign structure, widening to 0, batch
 * splitting, non-finite values and bad options. */
#include "test.h"

#include "quant/quant.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state;

static double uniform01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}

static double gaussian(void)
{
    double u = uniform01(), v = uniform01();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static float *uniform_data(size_t n, double lo, double hi)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * uniform01());
    return x;
}

/* Standard gaussian with n_out outliers of magnitude `out` (alternating sign). */
static float *gaussian_data(size_t n, size_t n_out, double out)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)gaussian();
    for (size_t k = 0; k < n_out; k++)
        x[(k * 7919 + 13) % n] = (float)(k & 1 ? -out : out);
    return x;
}

/* The range of one value fed as one batch with the given method. */
static kn_act_range range_for(kn_calib_method m, double pct, const float *x, size_t n)
{
    kn_calib_opts o;
    kn_calib_opts_init(&o);
    o.method = m;
    if (pct > 0)
        o.percentile = pct;
    kn_calib *c = NULL;
    kn_error err = {0};
    kn_act_range r = {.lo = NAN, .hi = NAN};
    kn_act_ranges rs = {0};
    CHECK_EQ_INT(kn_calib_create(&o, &c, &err), KN_OK);
    CHECK_EQ_INT(kn_calib_add(c, "x", x, n, &err), KN_OK);
    CHECK_EQ_INT(kn_calib_ranges(c, &rs, &err), KN_OK);
    CHECK_EQ_INT(rs.n, 1);
    if (rs.n == 1) {
        r.lo = rs.v[0].lo;
        r.hi = rs.v[0].hi;
    }
    kn_act_ranges_free(&rs);
    kn_calib_free(c);
    return r;
}

static void test_minmax(void)
{
    rng_state = 1;
    float *x = uniform_data(10000, -1.0, 3.0);
    float lo = x[0], hi = x[0];
    for (int i = 0; i < 10000; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    kn_act_range r = range_for(KN_CALIB_MINMAX, 0, x, 10000);
    CHECK(r.lo == lo && r.hi == hi);
    CHECK(lo < -0.99f && hi > 2.99f);
    free(x);
    /* all positive: widened down to 0; all negative: widened up to 0 */
    float pos[3] = {1, 2, 1.5f}, neg[3] = {-4, -2, -3};
    r = range_for(KN_CALIB_MINMAX, 0, pos, 3);
    CHECK(r.lo == 0 && r.hi == 2);
    r = range_for(KN_CALIB_MINMAX, 0, neg, 3);
    CHECK(r.lo == -4 && r.hi == 0);
    /* a constant zero tensor gives [0, 0] with every method */
    float zeros[4] = {0};
    for (int m = 0; m < 3; m++) {
        r = range_for((kn_calib_method)m, 0, zeros, 4);
        CHECK(r.lo == 0 && r.hi == 0);
    }
}

static void test_relu_keeps_lo_zero(void)
{
    rng_state = 2;
    size_t n = 200000;
    float *x = gaussian_data(n, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0 ? x[i] : 0;
    for (int m = 0; m < 3; m++) {
        kn_act_range r = range_for((kn_calib_method)m, 0, x, n);
        CHECK(r.lo == 0);
        CHECK(r.hi > 2.5f && r.hi < 6.0f);
    }
    free(x);
}

static void test_percentile_ignores_outliers(void)
{
    rng_state = 3;
    size_t n = 1000000;
    float *x = gaussian_data(n, 10, 1000.0);
    kn_act_range mm = range_for(KN_CALIB_MINMAX, 0, x, n);
    CHECK(mm.lo == -1000 && mm.hi == 1000);
    /* 99.99% of |x|: 100 values above, the 10 outliers among them; a gaussian's
     * 99.99th percentile of |x| is 3.89.  The bins are 1024/4096 wide. */
    kn_act_range p = range_for(KN_CALIB_PERCENTILE, 99.99, x, n);
    CHECK(p.hi > 3.3f && p.hi < 4.5f);
    CHECK(p.lo < -3.3f && p.lo > -4.5f);
    CHECK_NEAR(p.lo, -p.hi, 0.3);
    /* 99% of |x|: 2.576 */
    p = range_for(KN_CALIB_PERCENTILE, 99.0, x, n);
    CHECK(p.hi > 2.3f && p.hi < 2.85f);
    /* 100: the whole range */
    p = range_for(KN_CALIB_PERCENTILE, 100.0, x, n);
    CHECK(p.hi == 1000 && p.lo == -1000);
    free(x);
}

static void test_percentile_uniform(void)
{
    rng_state = 4;
    size_t n = 400000;
    float *x = uniform_data(n, 0.0, 8.0);
    kn_act_range p = range_for(KN_CALIB_PERCENTILE, 90.0, x, n);
    CHECK(p.lo == 0);
    CHECK_NEAR(p.hi, 7.2, 0.05);
    free(x);
}

static void test_entropy(void)
{
    rng_state = 5;
    size_t n = 1000000;
    /* a uniform keeps (nearly) its full range */
    float *u = uniform_data(n, -2.0, 2.0);
    kn_act_range r = range_for(KN_CALIB_ENTROPY, 0, u, n);
    CHECK(r.hi > 1.9f && r.lo < -1.9f);
    free(u);
    /* a heavy tail is clipped: gaussian plus 50 outliers at 200 */
    float *g = gaussian_data(n, 50, 200.0);
    r = range_for(KN_CALIB_ENTROPY, 0, g, n);
    CHECK(r.hi < 20.0f && r.hi > 2.0f);
    CHECK(r.lo > -20.0f && r.lo < -2.0f);
    free(g);
    /* a Laplace distribution (exponential tail) is clipped well inside its max */
    float *l = malloc(n * sizeof *l);
    double amax = 0;
    for (size_t i = 0; i < n; i++) {
        double e = -log(uniform01() + 1e-300);
        l[i] = (float)(uniform01() < 0.5 ? -e : e);
        amax = fmax(amax, e);
    }
    r = range_for(KN_CALIB_ENTROPY, 0, l, n);
    CHECK(r.hi < 0.8 * amax && r.hi > 3.0f);
    free(l);
}

/* Each sign is its own distribution: a spike on the negative side (normalized
 * background pixels) does not make the positive side clip, nor the other way round. */
static void test_sides_are_independent(void)
{
    rng_state = 7;
    size_t n = 400000;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = i % 2 ? -0.8f : (float)(2.0 * uniform01());
    kn_act_range e = range_for(KN_CALIB_ENTROPY, 0, x, n);
    CHECK_NEAR(e.lo, -0.8, 0.01);
    CHECK(e.hi > 1.9f);
    kn_act_range p = range_for(KN_CALIB_PERCENTILE, 99.0, x, n);
    CHECK_NEAR(p.lo, -0.8, 0.001);
    CHECK_NEAR(p.hi, 1.98, 0.01);
    free(x);
}

/* Feeding the values in pieces (small magnitudes first, so the histogram has to
 * grow several times) gives exactly the ranges of one batch. */
static void test_pieces_match_whole(void)
{
    rng_state = 6;
    size_t n = 300000;
    float *x = gaussian_data(n, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] *= (float)(1.0 + (double)i / 1000.0); /* magnitudes grow along the data */
    size_t pieces[] = {1, 7, 1000, 4096, 50000, 0};
    for (int m = 0; m < 3; m++) {
        kn_act_range whole = range_for((kn_calib_method)m, 99.9, x, n);
        for (int k = 0; pieces[k]; k++) {
            kn_calib_opts o;
            kn_calib_opts_init(&o);
            o.method = (kn_calib_method)m;
            o.percentile = 99.9;
            kn_calib *c = NULL;
            kn_error err = {0};
            CHECK_EQ_INT(kn_calib_create(&o, &c, &err), KN_OK);
            int rc = 0;
            for (size_t at = 0; at < n; at += pieces[k]) {
                size_t len = n - at < pieces[k] ? n - at : pieces[k];
                rc |= kn_calib_add(c, "other", x, 3, &err); /* interleaved with another value */
                rc |= kn_calib_add(c, "x", x + at, len, &err);
            }
            CHECK_EQ_INT(rc, KN_OK);
            kn_act_ranges rs = {0};
            CHECK_EQ_INT(kn_calib_ranges(c, &rs, &err), KN_OK);
            const kn_act_range *r = kn_act_ranges_find(&rs, "x");
            CHECK(r && r->lo == whole.lo && r->hi == whole.hi);
            kn_act_ranges_free(&rs);
            kn_calib_free(c);
        }
    }
    free(x);
}

static void test_order_nonfinite_and_tensors(void)
{
    kn_calib_opts o;
    kn_calib_opts_init(&o);
    o.method = KN_CALIB_PERCENTILE;
    o.percentile = 100;
    kn_calib *c = NULL;
    kn_error err = {0};
    CHECK_EQ_INT(kn_calib_create(&o, &c, &err), KN_OK);
    float a[4] = {NAN, 1, INFINITY, -2}, nan_only[2] = {NAN, -INFINITY};
    CHECK_EQ_INT(kn_calib_add(c, "b", a, 4, &err), KN_OK);
    CHECK_EQ_INT(kn_calib_add(c, "nan", nan_only, 2, &err), KN_OK);
    CHECK_EQ_INT(kn_calib_add(c, "a", a + 1, 1, &err), KN_OK);
    /* observe: float32 tensors are counted, others skipped */
    kn_tensor t = {0}, ti = {0};
    int64_t dims[1] = {2};
    CHECK_EQ_INT(kn_tensor_alloc(&t, KN_F32, 1, dims, &err), KN_OK);
    ((float *)t.data)[0] = 5;
    CHECK_EQ_INT(kn_tensor_alloc(&ti, KN_I64, 1, dims, &err), KN_OK);
    CHECK_EQ_INT(kn_calib_observe(c, "t", &t, &err), KN_OK);
    CHECK_EQ_INT(kn_calib_observe(c, "ints", &ti, &err), KN_OK);
    kn_act_ranges rs = {0};
    CHECK_EQ_INT(kn_calib_ranges(c, &rs, &err), KN_OK);
    CHECK_EQ_INT(rs.n, 3); /* "nan" saw no finite value, "ints" is not float */
    if (rs.n == 3) {
        CHECK(!strcmp(rs.v[0].name, "b") && rs.v[0].lo == -2 && rs.v[0].hi == 1);
        CHECK(!strcmp(rs.v[1].name, "a") && rs.v[1].lo == 0 && rs.v[1].hi == 1);
        CHECK(!strcmp(rs.v[2].name, "t") && rs.v[2].lo == 0 && rs.v[2].hi == 5);
    }
    CHECK(kn_act_ranges_find(&rs, "nan") == NULL);
    kn_act_ranges_free(&rs);
    kn_tensor_release(&t);
    kn_tensor_release(&ti);
    kn_calib_free(c);
}

static void test_options(void)
{
    CHECK_EQ_INT(kn_calib_method_parse("minmax"), KN_CALIB_MINMAX);
    CHECK_EQ_INT(kn_calib_method_parse("percentile"), KN_CALIB_PERCENTILE);
    CHECK_EQ_INT(kn_calib_method_parse("entropy"), KN_CALIB_ENTROPY);
    CHECK_EQ_INT(kn_calib_method_parse("kl"), -1);
    CHECK_EQ_INT(kn_calib_method_parse(NULL), -1);
    CHECK(!strcmp(kn_calib_method_name(KN_CALIB_ENTROPY), "entropy"));
    kn_calib_opts o;
    kn_calib_opts_init(&o);
    CHECK(o.method == KN_CALIB_MINMAX && o.percentile == 99.99);
    o.method = KN_CALIB_PERCENTILE;
    kn_calib *c = NULL;
    kn_error err = {0};
    double bad[] = {0, -1, 100.5, NAN};
    for (int i = 0; i < 4; i++) {
        o.percentile = bad[i];
        CHECK_EQ_INT(kn_calib_create(&o, &c, &err), KN_ERR_ARG);
        CHECK(c == NULL && strstr(err.msg, "percentile"));
    }
    o.method = (kn_calib_method)7;
    CHECK_EQ_INT(kn_calib_create(&o, &c, &err), KN_ERR_ARG);
    /* an empty collector gives no ranges */
    kn_calib_opts_init(&o);
    CHECK_EQ_INT(kn_calib_create(&o, &c, &err), KN_OK);
    kn_act_ranges rs = {0};
    CHECK_EQ_INT(kn_calib_ranges(c, &rs, &err), KN_OK);
    CHECK_EQ_INT(rs.n, 0);
    CHECK_EQ_INT(kn_calib_add(c, NULL, NULL, 0, &err), KN_ERR_ARG);
    kn_calib_free(c);
}

int main(void)
{
    static const kt_case cases[] = {
        TEST_CASE(test_minmax),
        TEST_CASE(test_relu_keeps_lo_zero),
        TEST_CASE(test_percentile_ignores_outliers),
        TEST_CASE(test_percentile_uniform),
        TEST_CASE(test_entropy),
        TEST_CASE(test_sides_are_independent),
        TEST_CASE(test_pieces_match_whole),
        TEST_CASE(test_order_nonfinite_and_tensors),
        TEST_CASE(test_options),
    };
    return kt_run(cases, (int)(sizeof cases / sizeof cases[0]));
}
