/* test_ops_text.c - unit tests for the 'text' operator family (TfIdfVectorizer):
 * IDF/TFIDF weighting, duplicate pool n-grams, trigrams with skips, n-gram levels
 * beyond max_gram_length, empty inputs, int64 values beyond 2^53, string pools and
 * malformed attributes (ngram_counts that do not split the pool, negative indexes,
 * weights of the wrong length) returning errors rather than crashing. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>

/* TfIdfVectorizer settings for one test. */
typedef struct tfidf_spec {
    const char *mode;
    int64_t min_n, max_n, skip;
    int n_counts;
    int64_t *counts;
    int n_indexes;
    int64_t *indexes;
    int n_pool;
    int64_t *pool;
    int n_weights;          /* 0: no weights attribute */
    float *weights;
    bool string_pool;       /* add pool_strings instead of pool_int64s */
} tfidf_spec;

/* A TfIdfVectorizer node (opset 9) over x with the settings of s. */
static kt_node tfidf_node(const tfidf_spec *s, const kn_tensor *x)
{
    static const char *words[] = {"a", "b"};
    kt_node n = kt_node_of(NULL, "TfIdfVectorizer", 9, 1);
    kt_add_input(&n, x);
    kt_add_attr(&n, kt_attr_str("mode", s->mode));
    kt_add_attr(&n, kt_attr_int("min_gram_length", s->min_n));
    kt_add_attr(&n, kt_attr_int("max_gram_length", s->max_n));
    kt_add_attr(&n, kt_attr_int("max_skip_count", s->skip));
    kt_add_attr(&n, kt_attr_ints("ngram_counts", s->n_counts, s->counts));
    kt_add_attr(&n, kt_attr_ints("ngram_indexes", s->n_indexes, s->indexes));
    if (s->string_pool)
        kt_add_attr(&n, kt_attr_strs("pool_strings", 2, words));
    else
        kt_add_attr(&n, kt_attr_ints("pool_int64s", s->n_pool, s->pool));
    if (s->n_weights)
        kt_add_attr(&n, kt_attr_floats("weights", s->n_weights, s->weights));
    return n;
}

/* Run and compare with the expected float output (rank/dims/values). */
static void expect_y(const tfidf_spec *s, const kn_tensor *x, int rank, const int64_t *dims,
                     const float *want)
{
    kt_node n = tfidf_node(s, x);
    kn_tensor y;
    kn_error err = {0};
    int rc = kt_run_node(&n, &y, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    kt_check_f32_shaped(&y, rank, dims, want, 1e-6);
    kn_tensor_release(&y);
}

static void expect_code(const tfidf_spec *s, const kn_tensor *x, int code)
{
    kt_node n = tfidf_node(s, x);
    kt_expect_fail(&n, code);
}

/* Pool of the ONNX examples: unigrams 2 3 5 4, bigrams (5,6) (7,8) (6,7). */
static int64_t pool7[] = {2, 3, 5, 4, 5, 6, 7, 8, 6, 7};
static int64_t counts2[] = {0, 4};
static int64_t idx7[] = {0, 1, 2, 3, 4, 5, 6};
static int32_t seq12[] = {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8};

static tfidf_spec base_spec(const char *mode, int64_t min_n, int64_t max_n, int64_t skip)
{
    tfidf_spec s = {mode, min_n, max_n, skip, 2, counts2, 7, idx7, 10, pool7, 0, NULL, false};
    return s;
}

static void test_tf_uni_and_bigrams_int64(void)
{
    int64_t x64[12];
    for (int i = 0; i < 12; i++)
        x64[i] = seq12[i];
    int64_t d = 12, od = 7;
    kn_tensor x = kt_view(KN_I64, 1, &d, x64);
    tfidf_spec s = base_spec("TF", 1, 2, 5);
    static const float want[] = {0, 3, 1, 0, 1, 3, 1};
    expect_y(&s, &x, 1, &od, want);
}

static void test_idf_and_tfidf_weights(void)
{
    int64_t d = 12, od = 7;
    kn_tensor x = kt_view(KN_I32, 1, &d, seq12);
    float w[7] = {0.5f, 2, 3, 4, 5, 0.25f, 7};
    tfidf_spec s = base_spec("IDF", 1, 2, 5);
    s.n_weights = 7;
    s.weights = w;
    /* counts 0 3 1 0 1 3 1: IDF gives the weight where the count is non-zero */
    static const float want_idf[] = {0, 2, 3, 0, 5, 0.25f, 7};
    expect_y(&s, &x, 1, &od, want_idf);
    s.mode = "TFIDF";
    static const float want_tfidf[] = {0, 6, 3, 0, 5, 0.75f, 7};
    expect_y(&s, &x, 1, &od, want_tfidf);
    s.n_weights = 0;
    s.mode = "IDF";
    static const float want_idf1[] = {0, 1, 1, 0, 1, 1, 1};
    expect_y(&s, &x, 1, &od, want_idf1);
}

/* Two pool n-grams mapped to one coordinate add up; an unused coordinate stays 0. */
static void test_shared_and_sparse_indexes(void)
{
    int64_t pool[] = {3, 7, 3};
    int64_t counts[] = {0};
    int64_t idx[] = {4, 4, 0};
    int64_t d = 12, od = 5;
    kn_tensor x = kt_view(KN_I32, 1, &d, seq12);
    tfidf_spec s = {"TF", 1, 1, 0, 1, counts, 3, idx, 3, pool, 0, NULL, false};
    /* 3 occurs 3 times (pool entries 0 and 2), 7 twice */
    static const float want[] = {3, 0, 0, 0, 5};
    expect_y(&s, &x, 1, &od, want);
}

/* Trigrams with skips; levels below min_gram_length are ignored. */
static void test_trigram_skip(void)
{
    int64_t pool[] = {9, 1, 2, 3, 1, 3, 5};  /* unigram 9, trigrams (1,2,3) (1,3,5) */
    int64_t counts[] = {0, 1, 1};            /* no bigrams */
    int64_t idx[] = {0, 1, 2};
    int32_t xs[] = {1, 2, 3, 4, 5, 9};
    int64_t d = 6, od = 3;
    kn_tensor x = kt_view(KN_I32, 1, &d, xs);
    tfidf_spec s = {"TF", 3, 3, 1, 3, counts, 3, idx, 7, pool, 0, NULL, false};
    /* (1,2,3) with skip 0; (1,3,5) with skip 1; 9 is a unigram and not counted */
    static const float want[] = {0, 1, 1};
    expect_y(&s, &x, 1, &od, want);
    s.skip = 0;
    static const float want0[] = {0, 1, 0};
    expect_y(&s, &x, 1, &od, want0);
    /* max_gram_length beyond the pool's levels is fine */
    s.min_n = 1;
    s.max_n = 9;
    static const float want_all[] = {1, 1, 0};
    expect_y(&s, &x, 1, &od, want_all);
}

/* A huge skip count must not overflow or loop forever. */
static void test_huge_skip(void)
{
    int64_t d = 12, od = 7;
    kn_tensor x = kt_view(KN_I32, 1, &d, seq12);
    tfidf_spec s = base_spec("TF", 2, 2, INT64_MAX);
    static const float want[] = {0, 0, 0, 0, 1, 3, 1};
    expect_y(&s, &x, 1, &od, want);
}

/* int64 values that differ only beyond 2^53 must not match. */
static void test_int64_exact(void)
{
    int64_t big = ((int64_t)1 << 53) + 1;
    int64_t pool[] = {big};
    int64_t counts[] = {0};
    int64_t idx[] = {0};
    int64_t xs[] = {big - 1, big, big + 1, big};
    int64_t d = 4, od = 1;
    kn_tensor x = kt_view(KN_I64, 1, &d, xs);
    tfidf_spec s = {"TF", 1, 1, 0, 1, counts, 1, idx, 1, pool, 0, NULL, false};
    static const float want[] = {2};
    expect_y(&s, &x, 1, &od, want);
}

static void test_batch_and_empty(void)
{
    /* [2, 0]: output [2, 7] of zeros */
    int64_t d2[2] = {2, 0}, od2[2] = {2, 7};
    kn_tensor x = kt_view(KN_I32, 2, d2, NULL);
    tfidf_spec s = base_spec("TF", 1, 2, 1);
    static const float zeros[14] = {0};
    expect_y(&s, &x, 2, od2, zeros);
    /* [0, 3]: output [0, 7] */
    int64_t d0[2] = {0, 3}, od0[2] = {0, 7};
    x = kt_view(KN_I32, 2, d0, NULL);
    expect_y(&s, &x, 2, od0, zeros);
    /* rows never share n-grams across their boundary: [[5], [6]] has no (5,6) */
    int32_t xs[] = {5, 6};
    int64_t d1[2] = {2, 1};
    x = kt_view(KN_I32, 2, d1, xs);
    static const float want[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_y(&s, &x, 2, od2, want);
}

static void test_bad_inputs(void)
{
    int64_t d = 12;
    kn_tensor x = kt_view(KN_I32, 1, &d, seq12);
    tfidf_spec s = base_spec("TF", 1, 2, 0);
    s.string_pool = true;
    expect_code(&s, &x, KN_ERR_UNSUPPORTED);
    float fx[2] = {1, 2};
    int64_t d2 = 2;
    kn_tensor xf = kt_view(KN_F32, 1, &d2, fx);
    s = base_spec("TF", 1, 2, 0);
    expect_code(&s, &xf, KN_ERR_UNSUPPORTED);
    int64_t d3[3] = {1, 2, 6};
    kn_tensor x3 = kt_view(KN_I32, 3, d3, seq12);
    expect_code(&s, &x3, KN_ERR_ARG);
    kn_tensor xs = kt_view(KN_I32, 0, NULL, seq12);
    expect_code(&s, &xs, KN_ERR_ARG);
}

static void test_bad_attributes(void)
{
    int64_t d = 12;
    kn_tensor x = kt_view(KN_I32, 1, &d, seq12);
    tfidf_spec s = base_spec("BM25", 1, 2, 0);
    expect_code(&s, &x, KN_ERR_MODEL);
    /* bigram level of 5 items is not whole bigrams */
    int64_t counts_odd[] = {0, 5};
    s = base_spec("TF", 1, 2, 0);
    s.counts = counts_odd;
    expect_code(&s, &x, KN_ERR_MODEL);
    /* a level start past the pool's end */
    int64_t counts_far[] = {0, 40};
    s.counts = counts_far;
    expect_code(&s, &x, KN_ERR_MODEL);
    /* too few indexes, a negative index */
    s = base_spec("TF", 1, 2, 0);
    s.n_indexes = 6;
    expect_code(&s, &x, KN_ERR_MODEL);
    int64_t idx_neg[] = {0, 1, 2, -3, 4, 5, 6};
    s.n_indexes = 7;
    s.indexes = idx_neg;
    expect_code(&s, &x, KN_ERR_MODEL);
    /* weights of the wrong length */
    float w[3] = {1, 2, 3};
    s = base_spec("TFIDF", 1, 2, 0);
    s.n_weights = 3;
    s.weights = w;
    expect_code(&s, &x, KN_ERR_MODEL);
    /* gram lengths and skip out of range */
    s = base_spec("TF", 0, 2, 0);
    expect_code(&s, &x, KN_ERR_MODEL);
    s = base_spec("TF", 2, 1, 0);
    expect_code(&s, &x, KN_ERR_MODEL);
    s = base_spec("TF", 1, 2, -1);
    expect_code(&s, &x, KN_ERR_MODEL);
    /* an output coordinate too large to allocate fails cleanly */
    int64_t idx_huge[] = {0, 1, 2, 3, 4, 5, ((int64_t)1 << 40) - 1};
    s = base_spec("TF", 1, 2, 0);
    s.indexes = idx_huge;
    kt_node huge = tfidf_node(&s, &x);
    kt_expect_any_fail(&huge);
}

TEST_MAIN(TEST_CASE(test_tf_uni_and_bigrams_int64), TEST_CASE(test_idf_and_tfidf_weights),
          TEST_CASE(test_shared_and_sparse_indexes), TEST_CASE(test_trigram_skip),
          TEST_CASE(test_huge_skip), TEST_CASE(test_int64_exact), TEST_CASE(test_batch_and_empty),
          TEST_CASE(test_bad_inputs), TEST_CASE(test_bad_attributes))
