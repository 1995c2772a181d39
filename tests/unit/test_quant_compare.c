/* test_quant_compare.c - the error figures of kiln compare (src/quant/compare.c) on
 * vectors with known answers: identical, opposite, orthogonal, zero, NaN/Inf,
 * streaming equals one shot, the worst-first order, and argmax ties. */
#include "test.h"

#include "quant/quant.h"

static kn_err_stats stats_of(const float *a, const float *b, size_t n)
{
    kn_err_stats s = {0};
    kn_err_stats_add(&s, a, b, n);
    return s;
}

static void test_identical(void)
{
    float a[5] = {0.1f, -3.0f, 7.25f, 1e-6f, 123456.f};
    kn_err_stats s = stats_of(a, a, 5);
    CHECK(kn_err_stats_cosine(&s) == 1.0);
    CHECK(kn_err_stats_rel(&s) == 0.0);
    CHECK(s.max_abs == 0.0);
    CHECK(kn_err_stats_mean_abs(&s) == 0.0);
    CHECK_EQ_INT(s.count, 5);
    float z[3] = {0, 0, 0};
    s = stats_of(z, z, 3);
    CHECK(kn_err_stats_cosine(&s) == 1.0); /* both zero: identical */
}

static void test_opposite_orthogonal_scaled(void)
{
    float a[4] = {1, -2, 3, 0.5f}, neg[4] = {-1, 2, -3, -0.5f}, twice[4] = {2, -4, 6, 1};
    kn_err_stats s = stats_of(a, neg, 4);
    CHECK_NEAR(kn_err_stats_cosine(&s), -1.0, 1e-12);
    CHECK_NEAR(kn_err_stats_rel(&s), 2.0, 1e-12);
    CHECK_NEAR(s.max_abs, 6.0, 0);
    CHECK_NEAR(kn_err_stats_mean_abs(&s), (2 + 4 + 6 + 1) / 4.0, 1e-12);
    s = stats_of(a, twice, 4);
    CHECK_NEAR(kn_err_stats_cosine(&s), 1.0, 1e-12);
    CHECK_NEAR(kn_err_stats_rel(&s), 1.0, 1e-12);
    float x[2] = {1, 0}, y[2] = {0, 1}, z[2] = {0, 0};
    s = stats_of(x, y, 2);
    CHECK_NEAR(kn_err_stats_cosine(&s), 0.0, 1e-12);
    s = stats_of(x, z, 2);
    CHECK(kn_err_stats_cosine(&s) == 0.0); /* one side zero */
    s = stats_of(z, x, 2);
    CHECK(isinf(kn_err_stats_rel(&s)));
}

static void test_nonfinite(void)
{
    float a[5] = {NAN, INFINITY, -INFINITY, 1.0f, 2.0f};
    float b[5] = {NAN, INFINITY, INFINITY, NAN, 2.0f};
    kn_err_stats s = stats_of(a, b, 5);
    CHECK_EQ_INT(s.matched_nonfinite, 2); /* NaN/NaN, +Inf/+Inf */
    CHECK_EQ_INT(s.nonfinite, 2);         /* -Inf/+Inf, 1/NaN */
    CHECK_EQ_INT(s.count, 1);
    CHECK(kn_err_stats_cosine(&s) == 1.0);
    CHECK(!isnan(s.max_abs) && s.max_abs == 0.0);
    kn_err_stats empty = stats_of(a, b, 1);
    CHECK(isnan(kn_err_stats_cosine(&empty))); /* nothing finite compared */
    /* a NaN disagreement ranks worse than any finite error */
    float c[2] = {1, 2}, d[2] = {-1, -2};
    kn_err_stats bad = stats_of(c, d, 2);
    CHECK(kn_err_stats_cmp_worse(&s, &bad) < 0);
    CHECK(kn_err_stats_cmp_worse(&bad, &s) > 0);
}

static void test_streaming_equals_one_shot(void)
{
    float a[7], b[7];
    for (int i = 0; i < 7; i++) {
        a[i] = (float)(i * i) - 10.f;
        b[i] = a[i] + (float)(i % 3) * 0.25f;
    }
    kn_err_stats whole = stats_of(a, b, 7), parts = {0}, tail = stats_of(a + 3, b + 3, 4);
    kn_err_stats_add(&parts, a, b, 3);
    kn_err_stats_merge(&parts, &tail);
    CHECK_NEAR(kn_err_stats_cosine(&parts), kn_err_stats_cosine(&whole), 1e-12);
    CHECK_NEAR(kn_err_stats_rel(&parts), kn_err_stats_rel(&whole), 1e-12);
    CHECK_NEAR(parts.max_abs, 0.5, 0);
    CHECK_EQ_INT(parts.count, 7);
}

static void test_worse_order(void)
{
    float a[3] = {1, 2, 3}, small[3] = {1, 2, 3.1f}, big[3] = {3, 2, 1};
    kn_err_stats s_same = stats_of(a, a, 3), s_small = stats_of(a, small, 3), s_big = stats_of(a, big, 3);
    CHECK(kn_err_stats_cmp_worse(&s_big, &s_small) < 0);
    CHECK(kn_err_stats_cmp_worse(&s_small, &s_same) < 0);
    CHECK(kn_err_stats_cmp_worse(&s_same, &s_big) > 0);
    CHECK(kn_err_stats_cmp_worse(&s_same, &s_same) == 0);
    /* same direction, different scale: cosine ties at 1, the relative error decides */
    float twice[3] = {2, 4, 6}, more[3] = {1.5f, 3, 4.5f};
    kn_err_stats s2 = stats_of(a, twice, 3), s15 = stats_of(a, more, 3);
    CHECK(kn_err_stats_cmp_worse(&s2, &s15) < 0);
}

static void test_argmax(void)
{
    float v[5] = {1, 3, 3, -2, 0};
    CHECK_EQ_INT(kn_argmax_f32(v, 5), 1); /* tie: the first */
    float w[4] = {NAN, -1, NAN, -0.5f};
    CHECK_EQ_INT(kn_argmax_f32(w, 4), 3);
    float all_nan[2] = {NAN, NAN};
    CHECK_EQ_INT(kn_argmax_f32(all_nan, 2), -1);
    CHECK_EQ_INT(kn_argmax_f32(v, 0), -1);
    float inf[3] = {INFINITY, 5, INFINITY};
    CHECK_EQ_INT(kn_argmax_f32(inf, 3), 0);
}

TEST_MAIN(TEST_CASE(test_identical), TEST_CASE(test_opposite_orthogonal_scaled), TEST_CASE(test_nonfinite),
          TEST_CASE(test_streaming_equals_one_shot), TEST_CASE(test_worse_order), TEST_CASE(test_argmax))
