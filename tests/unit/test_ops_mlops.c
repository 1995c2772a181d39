/* test_ops_mlops.c - unit tests for the detection (NonMaxSuppression), Col2Im,
 * random, training and ai.onnx.ml operators: cases the conformance data does not
 * cover (empty inputs, bad attributes and indices that must fail cleanly, exact
 * integer Col2Im, legacy tree ensembles) and statistical properties of the random
 * generators (ranges, means, variances, determinism under a seed). */
#include "test.h"
#include "op_harness.h"

#include "ir/ir.h"

#include <stdlib.h>

#define TRAIN "ai.onnx.preview.training"

static void test_adam_two_tensors(void)
{
    int64_t d1[1] = {2}, d2[2] = {1, 1};
    kn_tensor r = kt_tensor_f64(KN_F32, 0, NULL, (double[]){0.1}), t = kt_tensor_f64(KN_I64, 0, NULL, (double[]){3});
    kn_tensor x1 = kt_tensor_f64(KN_F64, 1, d1, (double[]){1, -2}), x2 = kt_tensor_f64(KN_F64, 2, d2, (double[]){0.5});
    kn_tensor g1 = kt_tensor_f64(KN_F64, 1, d1, (double[]){0.2, 0.4}), g2 = kt_tensor_f64(KN_F64, 2, d2, (double[]){-1});
    kn_tensor v1 = kt_tensor_f64(KN_F64, 1, d1, (double[]){0.1, 0}), v2 = kt_tensor_f64(KN_F64, 2, d2, (double[]){0});
    kn_tensor h1 = kt_tensor_f64(KN_F64, 1, d1, (double[]){0.3, 0.1}), h2 = kt_tensor_f64(KN_F64, 2, d2, (double[]){1});
    kt_node n = kt_node_of(TRAIN, "Adam", 1, 6);
    const kn_tensor *in[10] = {&r, &t, &x1, &x2, &g1, &g2, &v1, &v2, &h1, &h2};
    memcpy(n.in, in, sizeof in);
    n.n_in = 10;
    kt_add_attr(&n, kt_attr_float("alpha", 0.5f));
    kt_add_attr(&n, kt_attr_float("beta", 0.75f));
    kt_add_attr(&n, kt_attr_float("norm_coefficient", 0.25f));
    kn_tensor y[6] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&n, y, &err), KN_OK);
    /* element 0 of X_1, computed by hand from the pseudo code */
    double greg = 0.25 * 1 + 0.2, vn = 0.5 * 0.1 + 0.5 * greg, hn = 0.75 * 0.3 + 0.25 * greg * greg;
    double ra = 0.1 * sqrt(1 - pow(0.75, 3)) / (1 - pow(0.5, 3));
    CHECK_NEAR(kt_at(&y[0], 0), 1 - ra * vn / (sqrt(hn) + 1e-6), 1e-6);
    CHECK_NEAR(kt_at(&y[2], 0), vn, 1e-12);
    CHECK_NEAR(kt_at(&y[4], 0), hn, 1e-12);
    CHECK_EQ_INT(y[1].rank, 2);
    CHECK_EQ_INT(y[5].dtype, KN_F64);
    kt_release_all(y, 6);

    /* a state tensor of the wrong shape fails cleanly */
    in[9] = &h1;
    memcpy(n.in, in, sizeof in);
    CHECK_EQ_INT(kt_run_node(&n, y, &err), KN_ERR_ARG);
    /* wrong input count */
    n.n_in = 9;
    CHECK(kt_run_node(&n, y, &err) != KN_OK);
    kn_tensor *all[] = {&r, &t, &x1, &x2, &g1, &g2, &v1, &v2, &h1, &h2};
    for (int i = 0; i < 10; i++)
        kn_tensor_release(all[i]);
}

static void test_momentum_modes(void)
{
    int64_t d[1] = {3};
    kn_tensor r = kt_tensor_f64(KN_F32, 0, NULL, (double[]){0.5}), t0 = kt_tensor_f64(KN_I64, 0, NULL, (double[]){0});
    kn_tensor x = kt_tensor_f64(KN_F32, 1, d, (double[]){1, 2, 3}), g = kt_tensor_f64(KN_F32, 1, d, (double[]){1, 1, 1});
    kn_tensor v = kt_tensor_f64(KN_F32, 1, d, (double[]){2, 0, -2});
    kt_node n = kt_node_of(TRAIN, "Momentum", 1, 2);
    const kn_tensor *in[5] = {&r, &t0, &x, &g, &v};
    memcpy(n.in, in, sizeof in);
    n.n_in = 5;
    kt_add_attr(&n, kt_attr_float("alpha", 0.5f));
    kt_add_attr(&n, kt_attr_float("beta", 0.1f));
    kt_add_attr(&n, kt_attr_float("norm_coefficient", 0.0f));
    kt_add_attr(&n, kt_attr_str("mode", "nesterov"));
    kn_tensor y[2] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&n, y, &err), KN_OK);
    /* T = 0: beta_adjusted = 1; V_new = 0.5 * V + G; X_new = X - R * (G + 0.5 * V_new) */
    CHECK_NEAR(kt_at(&y[1], 0), 2.0, 1e-6);
    CHECK_NEAR(kt_at(&y[0], 0), 1 - 0.5 * (1 + 1.0), 1e-6);
    CHECK_NEAR(kt_at(&y[0], 2), 3 - 0.5 * (1 + 0.0), 1e-6);
    kt_release_all(y, 2);
    n.attrs[3].s = "heavy-ball";
    CHECK_EQ_INT(kt_run_node(&n, y, &err), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&r);
    kn_tensor_release(&t0);
    kn_tensor_release(&x);
    kn_tensor_release(&g);
    kn_tensor_release(&v);
}

/* ---------------------------------------------------------------- NonMaxSuppression */

static int nms(const kn_tensor *boxes, const kn_tensor *scores, int64_t max_out, double iou, double score,
               int64_t center, kn_tensor *y, kn_error *err)
{
    kn_tensor m = kt_tensor_f64(KN_I64, 1, (int64_t[]){1}, (double[]){(double)max_out});
    kn_tensor i = kt_tensor_f64(KN_F32, 1, (int64_t[]){1}, (double[]){iou});
    kn_tensor s = kt_tensor_f64(KN_F32, 1, (int64_t[]){1}, (double[]){score});
    kt_node n = kt_node_of(NULL, "NonMaxSuppression", 11, 1);
    const kn_tensor *in[5] = {boxes, scores, &m, &i, score >= 0 ? &s : NULL};
    memcpy(n.in, in, sizeof in);
    n.n_in = 5;
    kt_add_attr(&n, kt_attr_int("center_point_box", center));
    int rc = kt_run_node(&n, y, err);
    kn_tensor_release(&m);
    kn_tensor_release(&i);
    kn_tensor_release(&s);
    return rc;
}

static void test_nms_edges(void)
{
    kn_error err;
    kn_tensor y = {0};
    /* no boxes at all: an empty [0, 3] result */
    kn_tensor b0 = kt_tensor_f64(KN_F32, 3, (int64_t[]){1, 0, 4}, NULL), s0 = kt_tensor_f64(KN_F32, 3, (int64_t[]){1, 2, 0}, NULL);
    CHECK_EQ_INT(nms(&b0, &s0, 5, 0.5, -1, 0, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 2);
    CHECK_EQ_INT(y.dims[0], 0);
    CHECK_EQ_INT(y.dims[1], 3);
    kn_tensor_release(&y);

    /* three boxes: two overlap heavily; equal scores keep the lower index first */
    double bv[12] = {0, 0, 1, 1, 0, 0.1, 1, 1.1, 5, 5, 6, 6};
    kn_tensor b = kt_tensor_f64(KN_F32, 3, (int64_t[]){1, 3, 4}, bv);
    kn_tensor s = kt_tensor_f64(KN_F32, 3, (int64_t[]){1, 1, 3}, (double[]){0.9, 0.9, 0.3});
    CHECK_EQ_INT(nms(&b, &s, 10, 0.5, -1, 0, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dims[0], 2);
    CHECK_EQ_INT(((int64_t *)y.data)[2], 0);
    CHECK_EQ_INT(((int64_t *)y.data)[5], 2);
    kn_tensor_release(&y);
    /* the score threshold is strict; max_output 0 selects nothing */
    CHECK_EQ_INT(nms(&b, &s, 10, 0.5, 0.3, 0, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dims[0], 1);
    kn_tensor_release(&y);
    CHECK_EQ_INT(nms(&b, &s, 0, 0.5, -1, 0, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dims[0], 0);
    kn_tensor_release(&y);
    /* bad center_point_box, mismatched scores */
    CHECK_EQ_INT(nms(&b, &s, 10, 0.5, -1, 2, &y, &err), KN_ERR_ARG);
    CHECK_EQ_INT(nms(&b, &s0, 10, 0.5, -1, 0, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&b0);
    kn_tensor_release(&s0);
    kn_tensor_release(&b);
    kn_tensor_release(&s);
}

/* ---------------------------------------------------------------- Col2Im */

static int col2im(const kn_tensor *x, int64_t *image, int64_t *block, int n, int64_t *strides,
                  int64_t *dil, int64_t *pads, kn_tensor *y, kn_error *err)
{
    kn_tensor im = kt_tensor_f64(KN_I64, 1, (int64_t[]){n}, NULL), bl = kt_tensor_f64(KN_I64, 1, (int64_t[]){n}, NULL);
    for (int i = 0; i < n; i++) {
        ((int64_t *)im.data)[i] = image[i];
        ((int64_t *)bl.data)[i] = block[i];
    }
    kt_node t = kt_node_of(NULL, "Col2Im", 18, 1);
    const kn_tensor *in[3] = {x, &im, &bl};
    memcpy(t.in, in, sizeof in);
    t.n_in = 3;
    if (strides)
        kt_add_attr(&t, kt_attr_ints("strides", n, strides));
    if (dil)
        kt_add_attr(&t, kt_attr_ints("dilations", n, dil));
    if (pads)
        kt_add_attr(&t, kt_attr_ints("pads", 2 * n, pads));
    int rc = kt_run_node(&t, y, err);
    kn_tensor_release(&im);
    kn_tensor_release(&bl);
    return rc;
}

static void test_col2im_int_strided(void)
{
    /* image [1, 5], block [1, 2], stride 2 and dilation 2 along x, pad 1 on both sides:
     * 3 blocks at x = 2l - 1 + 2k; a = column row k = 0, b = row k = 1 */
    kn_tensor x = kt_tensor_f64(KN_I32, 3, (int64_t[]){1, 2, 3}, (double[]){1, 2, 3, 10, 20, 30});
    int64_t image[2] = {1, 5}, block[2] = {1, 2}, strides[2] = {1, 2}, dil[2] = {1, 2}, pads[4] = {0, 1, 0, 1};
    kn_tensor y = {0};
    kn_error err;
    CHECK_EQ_INT(col2im(&x, image, block, 2, strides, dil, pads, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I32);
    CHECK_EQ_INT(y.rank, 4);
    CHECK_EQ_INT(y.dims[3], 5);
    int32_t want[5] = {0, 12, 0, 23, 0};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(((int32_t *)y.data)[i], want[i]);
    kn_tensor_release(&y);
    /* a block count that does not match L, and a non-positive stride, fail cleanly */
    int64_t bad_strides[2] = {1, 1}, zero[2] = {0, 1};
    CHECK_EQ_INT(col2im(&x, image, block, 2, bad_strides, dil, pads, &y, &err), KN_ERR_ARG);
    CHECK_EQ_INT(col2im(&x, image, block, 2, zero, dil, pads, &y, &err), KN_ERR_ARG);
    /* an empty batch gives an empty output */
    kn_tensor x0 = kt_tensor_f64(KN_F32, 3, (int64_t[]){0, 2, 3}, NULL);
    CHECK_EQ_INT(col2im(&x0, image, block, 2, strides, dil, pads, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    CHECK_EQ_INT(y.dims[1], 1);
    kn_tensor_release(&y);
    kn_tensor_release(&x0);
    /* block larger than the padded image */
    int64_t big[2] = {1, 9};
    CHECK_EQ_INT(col2im(&x, image, big, 2, NULL, NULL, NULL, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
}

/* ---------------------------------------------------------------- random */

static void moments(const kn_tensor *t, double *mean, double *var)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = kt_at(t, i);
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)t->numel;
    *var = s2 / (double)t->numel - *mean * *mean;
}

static void test_random_normal_uniform(void)
{
    kn_error err;
    int64_t shape[2] = {200, 250};
    kt_node n = kt_node_of(NULL, "RandomNormal", 22, 1);
    kt_add_attr(&n, kt_attr_ints("shape", 2, shape));
    kt_add_attr(&n, kt_attr_float("mean", 3.0f));
    kt_add_attr(&n, kt_attr_float("scale", 2.0f));
    kt_add_attr(&n, kt_attr_float("seed", 7.0f));
    kn_tensor a = {0}, b = {0};
    CHECK_EQ_INT(kt_run_node(&n, &a, &err), KN_OK);
    CHECK_EQ_INT(kt_run_node(&n, &b, &err), KN_OK);
    CHECK_EQ_INT(a.dtype, KN_F32);
    CHECK_EQ_INT(a.numel, 50000);
    CHECK(a.nbytes == b.nbytes && memcmp(a.data, b.data, a.nbytes) == 0); /* same seed, same output */
    double mean, var;
    moments(&a, &mean, &var);
    CHECK_NEAR(mean, 3.0, 0.05);
    CHECK_NEAR(var, 4.0, 0.15);
    kn_tensor_release(&b);
    n.attrs[3].f = 8.0f; /* another seed, other numbers */
    CHECK_EQ_INT(kt_run_node(&n, &b, &err), KN_OK);
    CHECK(memcmp(a.data, b.data, a.nbytes) != 0);
    kn_tensor_release(&a);
    kn_tensor_release(&b);

    /* RandomUniformLike: shape of the input, dtype attribute, values in [low, high) */
    kn_tensor x = kt_tensor_f64(KN_F32, 1, (int64_t[]){20000}, NULL);
    kt_node u = kt_node_of(NULL, "RandomUniformLike", 22, 1);
    u.in[0] = &x;
    u.n_in = 1;
    kt_add_attr(&u, kt_attr_int("dtype", KN_F64));
    kt_add_attr(&u, kt_attr_float("low", -2.0f));
    kt_add_attr(&u, kt_attr_float("high", 4.0f));
    CHECK_EQ_INT(kt_run_node(&u, &a, &err), KN_OK);
    CHECK_EQ_INT(a.dtype, KN_F64);
    CHECK_EQ_INT(a.numel, 20000);
    double lo = 1e9, hi = -1e9;
    for (int64_t i = 0; i < a.numel; i++) {
        lo = fmin(lo, kt_at(&a, i));
        hi = fmax(hi, kt_at(&a, i));
    }
    CHECK(lo >= -2.0 && hi < 4.0);
    moments(&a, &mean, &var);
    CHECK_NEAR(mean, 1.0, 0.05);
    CHECK_NEAR(var, 3.0, 0.1); /* (high - low)^2 / 12 */
    kn_tensor_release(&a);
    /* integer output dtype is not supported for uniform draws */
    u.attrs[0].i = KN_I32;
    CHECK_EQ_INT(kt_run_node(&u, &a, &err), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
}

static void test_bernoulli_props(void)
{
    kn_error err;
    int64_t d[1] = {30000};
    kn_tensor p = kt_tensor_f64(KN_F64, 1, d, NULL);
    for (int64_t i = 0; i < p.numel; i++)
        ((double *)p.data)[i] = i % 3 == 0 ? 0.0 : i % 3 == 1 ? 1.0 : 0.25;
    kt_node n = kt_node_of(NULL, "Bernoulli", 22, 1);
    n.in[0] = &p;
    n.n_in = 1;
    kt_add_attr(&n, kt_attr_float("seed", 1.0f));
    kt_add_attr(&n, kt_attr_int("dtype", KN_BOOL));
    kn_tensor a = {0}, b = {0};
    CHECK_EQ_INT(kt_run_node(&n, &a, &err), KN_OK);
    CHECK_EQ_INT(kt_run_node(&n, &b, &err), KN_OK);
    CHECK_EQ_INT(a.dtype, KN_BOOL);
    CHECK(memcmp(a.data, b.data, a.nbytes) == 0);
    int64_t ones = 0, bad = 0;
    for (int64_t i = 0; i < a.numel; i++) {
        uint8_t v = ((uint8_t *)a.data)[i];
        bad += v > 1 || (i % 3 == 0 && v) || (i % 3 == 1 && !v);
        ones += i % 3 == 2 && v;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_NEAR((double)ones / 10000.0, 0.25, 0.02);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    /* probabilities outside [0, 1] are rejected */
    ((double *)p.data)[5] = 1.5;
    CHECK_EQ_INT(kt_run_node(&n, &a, &err), KN_ERR_ARG);
    kn_tensor_release(&p);
}

static void test_multinomial_freq(void)
{
    kn_error err;
    /* log-probabilities of [0.1, 0.2, 0.7] in row 0; row 1 always class 2 */
    kn_tensor x = kt_tensor_f64(KN_F32, 2, (int64_t[]){2, 3},
                     (double[]){log(0.1), log(0.2), log(0.7), -INFINITY, -INFINITY, 0});
    kt_node n = kt_node_of(NULL, "Multinomial", 7, 1);
    n.in[0] = &x;
    n.n_in = 1;
    kt_add_attr(&n, kt_attr_int("sample_size", 20000));
    kt_add_attr(&n, kt_attr_int("dtype", KN_I64));
    kt_add_attr(&n, kt_attr_float("seed", 3.0f));
    kn_tensor y = {0};
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I64);
    CHECK_EQ_INT(y.dims[1], 20000);
    int64_t cnt[3] = {0, 0, 0}, row1_bad = 0;
    for (int64_t s = 0; s < 20000; s++) {
        int64_t v = ((int64_t *)y.data)[s];
        if (v >= 0 && v < 3)
            cnt[v]++;
        row1_bad += ((int64_t *)y.data)[20000 + s] != 2;
    }
    CHECK_EQ_INT(cnt[0] + cnt[1] + cnt[2], 20000);
    CHECK_NEAR(cnt[0] / 20000.0, 0.1, 0.015);
    CHECK_NEAR(cnt[1] / 20000.0, 0.2, 0.015);
    CHECK_EQ_INT(row1_bad, 0);
    kn_tensor_release(&y);
    /* a row with no probability mass is an error, not a hang or garbage */
    ((float *)x.data)[5] = -INFINITY;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
}

/* ---------------------------------------------------------------- ai.onnx.ml */

#define ML "ai.onnx.ml"

static void test_label_encoder_numeric(void)
{
    kn_error err;
    kn_tensor x = kt_tensor_f64(KN_I64, 2, (int64_t[]){2, 2}, (double[]){5, 7, 9, 5});
    int64_t keys[3] = {5, 9, 5};
    float vals[3] = {1.5f, 2.5f, 3.5f};
    kt_node n = kt_node_of(ML, "LabelEncoder", 2, 1);
    n.in[0] = &x;
    n.n_in = 1;
    kt_add_attr(&n, kt_attr_ints("keys_int64s", 3, keys));
    kt_add_attr(&n, kt_attr_floats("values_floats", 3, vals));
    kt_add_attr(&n, kt_attr_float("default_float", -4.0f));
    kn_tensor y = {0};
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F32);
    CHECK_EQ_INT(y.rank, 2);
    CHECK_NEAR(kt_at(&y, 0), 3.5, 0); /* repeated key: the last one wins */
    CHECK_NEAR(kt_at(&y, 1), -4.0, 0);
    CHECK_NEAR(kt_at(&y, 2), 2.5, 0);
    kn_tensor_release(&y);

    /* float keys from a tensor, NaN matches NaN, int16 values with default tensor */
    kn_tensor kt = kt_tensor_f64(KN_F32, 1, (int64_t[]){3}, (double[]){0.5, NAN, -1});
    kn_tensor vt = kt_tensor_f64(KN_I16, 1, (int64_t[]){3}, (double[]){10, 20, 30});
    kn_tensor dt = kt_tensor_f64(KN_I16, 1, (int64_t[]){1}, (double[]){42});
    kn_tensor xf = kt_tensor_f64(KN_F32, 1, (int64_t[]){4}, (double[]){NAN, -1, 0.5, 3});
    kt_node t = kt_node_of(ML, "LabelEncoder", 4, 1);
    t.in[0] = &xf;
    t.n_in = 1;
    kt_add_attr(&t, kt_attr_tensor("keys_tensor", &kt));
    kt_add_attr(&t, kt_attr_tensor("values_tensor", &vt));
    kt_add_attr(&t, kt_attr_tensor("default_tensor", &dt));
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I16);
    int16_t want[4] = {20, 30, 10, 42};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(((int16_t *)y.data)[i], want[i]);
    kn_tensor_release(&y);
    /* input dtype must match the keys */
    t.in[0] = &x;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_ERR_ARG);
    /* string keys: unsupported */
    const char *sk[1] = {"a"};
    kt_node s = kt_node_of(ML, "LabelEncoder", 2, 1);
    s.in[0] = &x;
    s.n_in = 1;
    kt_add_attr(&s, kt_attr_strs("keys_strings", 1, sk));
    kt_add_attr(&s, kt_attr_ints("values_int64s", 1, keys));
    CHECK_EQ_INT(kt_run_node(&s, &y, &err), KN_ERR_UNSUPPORTED);
    kn_tensor *all[] = {&x, &kt, &vt, &dt, &xf};
    for (int i = 0; i < 5; i++)
        kn_tensor_release(all[i]);
}

static void test_array_feature_extractor(void)
{
    kn_error err;
    kn_tensor x = kt_tensor_f64(KN_I32, 1, (int64_t[]){4}, (double[]){10, 11, 12, 13});
    kn_tensor idx = kt_tensor_f64(KN_I64, 1, (int64_t[]){3}, (double[]){3, 0, 3});
    kt_node n = kt_node_of(ML, "ArrayFeatureExtractor", 1, 1);
    n.in[0] = &x;
    n.in[1] = &idx;
    n.n_in = 2;
    kn_tensor y = {0};
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 2); /* a 1-D input gives [1, k] */
    CHECK_EQ_INT(y.dims[0], 1);
    CHECK_EQ_INT(y.dims[1], 3);
    CHECK_EQ_INT(((int32_t *)y.data)[0], 13);
    CHECK_EQ_INT(((int32_t *)y.data)[1], 10);
    kn_tensor_release(&y);
    ((int64_t *)idx.data)[1] = 4;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    ((int64_t *)idx.data)[1] = -1;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&idx);
}

/* One tree: node 0 tests x[1] <= 0.5 -> leaf 0 (weight 1, target 0), else node 1:
 * x[0] in {2, 3} -> leaf 1 (weight 2, target 1) else leaf 2 (weight 4, target 1). */
static void tree5(kt_node *n, kn_tensor *splits, kn_tensor *modes, kn_tensor *weights, kn_tensor *members)
{
    static int64_t feat[2] = {1, 0}, tru[2] = {0, 1}, fal[2] = {1, 2}, tleaf[2] = {1, 1}, fleaf[2] = {0, 1};
    static int64_t targets[3] = {0, 1, 1}, roots[1] = {0};
    *splits = kt_tensor_f64(KN_F32, 1, (int64_t[]){2}, (double[]){0.5, 0});
    *modes = kt_tensor_f64(KN_U8, 1, (int64_t[]){2}, (double[]){0, 6});
    *weights = kt_tensor_f64(KN_F32, 1, (int64_t[]){3}, (double[]){1, 2, 4});
    *members = kt_tensor_f64(KN_F32, 1, (int64_t[]){3}, (double[]){2, 3, NAN});
    kt_add_attr(n, kt_attr_ints("nodes_featureids", 2, feat));
    kt_add_attr(n, kt_attr_ints("nodes_truenodeids", 2, tru));
    kt_add_attr(n, kt_attr_ints("nodes_falsenodeids", 2, fal));
    kt_add_attr(n, kt_attr_ints("nodes_trueleafs", 2, tleaf));
    kt_add_attr(n, kt_attr_ints("nodes_falseleafs", 2, fleaf));
    kt_add_attr(n, kt_attr_ints("leaf_targetids", 3, targets));
    kt_add_attr(n, kt_attr_ints("tree_roots", 1, roots));
    kt_add_attr(n, kt_attr_tensor("nodes_splits", splits));
    kt_add_attr(n, kt_attr_tensor("nodes_modes", modes));
    kt_add_attr(n, kt_attr_tensor("leaf_weights", weights));
    kt_add_attr(n, kt_attr_tensor("membership_values", members));
    kt_add_attr(n, kt_attr_int("n_targets", 2));
}

static void test_tree_ensemble_v5(void)
{
    kn_error err;
    kn_tensor sp, md, w, mem, y = {0};
    kn_tensor x = kt_tensor_f64(KN_F32, 2, (int64_t[]){3, 2}, (double[]){9, 0, 3, 1, 1, 1});
    kt_node n = kt_node_of(ML, "TreeEnsemble", 5, 1);
    n.in[0] = &x;
    n.n_in = 1;
    tree5(&n, &sp, &md, &w, &mem);
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dims[0], 3);
    CHECK_EQ_INT(y.dims[1], 2);
    double want[6] = {1, 0, 0, 2, 0, 4};
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(kt_at(&y, i), want[i], 0);
    kn_tensor_release(&y);
    /* too few features for the feature ids used */
    kn_tensor x1 = kt_tensor_f64(KN_F32, 2, (int64_t[]){1, 1}, (double[]){0});
    n.in[0] = &x1;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    n.in[0] = &x;
    /* a cycle: node 1's false branch points back to node 0 */
    int64_t fal_cycle[2] = {1, 0}, fleaf_cycle[2] = {0, 0};
    n.attrs[2].ints = fal_cycle;
    n.attrs[4].ints = fleaf_cycle;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    /* a leaf index out of range */
    int64_t fal_bad[2] = {1, 7}, fleaf_ok[2] = {0, 1};
    n.attrs[2].ints = fal_bad;
    n.attrs[4].ints = fleaf_ok;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    kn_tensor *all[] = {&sp, &md, &w, &mem, &x, &x1};
    for (int i = 0; i < 6; i++)
        kn_tensor_release(all[i]);
}

static void test_tree_ensemble_regressor_legacy(void)
{
    kn_error err;
    /* two trees; tree 7 has node ids out of order; AVERAGE plus base value */
    int64_t treeids[5] = {7, 7, 7, 3, 3}, nodeids[5] = {2, 0, 1, 0, 1}, feat[5] = {0, 0, 0, 1, 0};
    int64_t tru[5] = {0, 1, 0, 1, 0}, fal[5] = {0, 2, 0, 1, 0};
    const char *modes[5] = {"LEAF", "BRANCH_LT", "LEAF", "BRANCH_GTE", "LEAF"};
    float values[5] = {0, 10, 0, -1, 0};
    int64_t ttree[3] = {7, 7, 3}, tnode_[3] = {1, 2, 1}, tid[3] = {0, 0, 0};
    float tw[3] = {2, 6, 10}, base[1] = {0.5f};
    kt_node n = kt_node_of(ML, "TreeEnsembleRegressor", 3, 1);
    kn_tensor x = kt_tensor_f64(KN_F64, 2, (int64_t[]){2, 2}, (double[]){5, 0, 20, 0});
    n.in[0] = &x;
    n.n_in = 1;
    kt_add_attr(&n, kt_attr_ints("nodes_treeids", 5, treeids));
    kt_add_attr(&n, kt_attr_ints("nodes_nodeids", 5, nodeids));
    kt_add_attr(&n, kt_attr_ints("nodes_featureids", 5, feat));
    kt_add_attr(&n, kt_attr_ints("nodes_truenodeids", 5, tru));
    kt_add_attr(&n, kt_attr_ints("nodes_falsenodeids", 5, fal));
    kt_add_attr(&n, kt_attr_strs("nodes_modes", 5, modes));
    kt_add_attr(&n, kt_attr_floats("nodes_values", 5, values));
    kt_add_attr(&n, kt_attr_ints("target_treeids", 3, ttree));
    kt_add_attr(&n, kt_attr_ints("target_nodeids", 3, tnode_));
    kt_add_attr(&n, kt_attr_ints("target_ids", 3, tid));
    kt_add_attr(&n, kt_attr_floats("target_weights", 3, tw));
    kt_add_attr(&n, kt_attr_floats("base_values", 1, base));
    kt_add_attr(&n, kt_attr_str("aggregate_function", "AVERAGE"));
    kt_add_attr(&n, kt_attr_int("n_targets", 1));
    kn_tensor y = {0};
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F32);
    /* row 0: tree 7 -> x0 = 5 < 10 -> node 1 (2); tree 3 -> 10; (2 + 10) / 2 + 0.5 */
    CHECK_NEAR(kt_at(&y, 0), 6.5, 1e-6);
    /* row 1: tree 7 -> node 2 (6) -> (6 + 10) / 2 + 0.5 */
    CHECK_NEAR(kt_at(&y, 1), 8.5, 1e-6);
    kn_tensor_release(&y);
    /* a weight on an interior node is rejected */
    tnode_[0] = 0;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    tnode_[0] = 1;
    /* a child id that does not exist */
    tru[1] = 9;
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
}

static void test_ml_small_ops(void)
{
    kn_error err;
    kn_tensor y = {0};
    kn_tensor x = kt_tensor_f64(KN_I32, 2, (int64_t[]){2, 2}, (double[]){3, -4, 0, 0});
    /* Normalizer L2 (zero row stays as is) */
    kt_node n = kt_node_of(ML, "Normalizer", 1, 1);
    n.in[0] = &x;
    n.n_in = 1;
    kt_add_attr(&n, kt_attr_str("norm", "L2"));
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F32);
    CHECK_NEAR(kt_at(&y, 0), 0.6, 1e-6);
    CHECK_NEAR(kt_at(&y, 1), -0.8, 1e-6);
    CHECK_NEAR(kt_at(&y, 3), 0.0, 0);
    kn_tensor_release(&y);
    n.attrs[0].s = "L3";
    CHECK_EQ_INT(kt_run_node(&n, &y, &err), KN_ERR_ARG);
    /* Scaler with per-feature offset and one scale */
    float off[2] = {1, 2}, sc[1] = {2};
    kt_node s = kt_node_of(ML, "Scaler", 1, 1);
    s.in[0] = &x;
    s.n_in = 1;
    kt_add_attr(&s, kt_attr_floats("offset", 2, off));
    kt_add_attr(&s, kt_attr_floats("scale", 1, sc));
    CHECK_EQ_INT(kt_run_node(&s, &y, &err), KN_OK);
    CHECK_NEAR(kt_at(&y, 0), 4.0, 0);
    CHECK_NEAR(kt_at(&y, 1), -12.0, 0);
    kn_tensor_release(&y);
    /* Binarizer keeps the dtype */
    kt_node b = kt_node_of(ML, "Binarizer", 1, 1);
    b.in[0] = &x;
    b.n_in = 1;
    kt_add_attr(&b, kt_attr_float("threshold", 0.0f));
    CHECK_EQ_INT(kt_run_node(&b, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I32);
    CHECK_EQ_INT(((int32_t *)y.data)[0], 1);
    CHECK_EQ_INT(((int32_t *)y.data)[1], 0);
    kn_tensor_release(&y);
    /* LinearRegressor with two targets and a LOGISTIC post transform */
    float coef[4] = {1, 0, 0, 1}, icpt[2] = {0, 1};
    kt_node l = kt_node_of(ML, "LinearRegressor", 1, 1);
    l.in[0] = &x;
    l.n_in = 1;
    kt_add_attr(&l, kt_attr_floats("coefficients", 4, coef));
    kt_add_attr(&l, kt_attr_floats("intercepts", 2, icpt));
    kt_add_attr(&l, kt_attr_int("targets", 2));
    kt_add_attr(&l, kt_attr_str("post_transform", "LOGISTIC"));
    CHECK_EQ_INT(kt_run_node(&l, &y, &err), KN_OK);
    CHECK_NEAR(kt_at(&y, 0), 1 / (1 + exp(-3.0)), 1e-6);
    CHECK_NEAR(kt_at(&y, 1), 1 / (1 + exp(3.0)), 1e-6);
    kn_tensor_release(&y);
    l.attrs[0].n = 3; /* wrong coefficient count */
    CHECK_EQ_INT(kt_run_node(&l, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
}

static void test_classifiers(void)
{
    kn_error err;
    kn_tensor y[2] = {{0}};
    kn_tensor x = kt_tensor_f64(KN_F32, 2, (int64_t[]){2, 2}, (double[]){1, 0, 0, 2});
    /* LinearClassifier, three classes, SOFTMAX */
    float coef[6] = {1, 0, 0, 1, -1, -1};
    int64_t labels[3] = {10, 20, 30};
    kt_node l = kt_node_of(ML, "LinearClassifier", 1, 2);
    l.in[0] = &x;
    l.n_in = 1;
    kt_add_attr(&l, kt_attr_floats("coefficients", 6, coef));
    kt_add_attr(&l, kt_attr_ints("classlabels_ints", 3, labels));
    kt_add_attr(&l, kt_attr_str("post_transform", "SOFTMAX"));
    CHECK_EQ_INT(kt_run_node(&l, y, &err), KN_OK);
    CHECK_EQ_INT(((int64_t *)y[0].data)[0], 10);
    CHECK_EQ_INT(((int64_t *)y[0].data)[1], 20);
    double e1 = exp(1.0), e0 = 1.0, em = exp(-1.0);
    CHECK_NEAR(kt_at(&y[1], 0), e1 / (e1 + e0 + em), 1e-6);
    kt_release_all(y, 2);
    /* binary with one coefficient row: scores [-s, s] */
    float coef1[2] = {1, -1};
    int64_t lab2[2] = {0, 1};
    kt_node b = kt_node_of(ML, "LinearClassifier", 1, 2);
    b.in[0] = &x;
    b.n_in = 1;
    kt_add_attr(&b, kt_attr_floats("coefficients", 2, coef1));
    kt_add_attr(&b, kt_attr_ints("classlabels_ints", 2, lab2));
    CHECK_EQ_INT(kt_run_node(&b, y, &err), KN_OK);
    CHECK_EQ_INT(((int64_t *)y[0].data)[0], 1);
    CHECK_EQ_INT(((int64_t *)y[0].data)[1], 0);
    CHECK_NEAR(kt_at(&y[1], 0), -1.0, 0);
    CHECK_NEAR(kt_at(&y[1], 3), -2.0, 0);
    kt_release_all(y, 2);
    /* string labels are unsupported */
    const char *sl[2] = {"a", "b"};
    b.attrs[1] = (kn_attr){0};
    b.attrs[1].name = "classlabels_strings";
    b.attrs[1].type = KN_ATTR_STRINGS;
    b.attrs[1].n = 2;
    b.attrs[1].strings = sl;
    CHECK_EQ_INT(kt_run_node(&b, y, &err), KN_ERR_UNSUPPORTED);

    /* TreeEnsembleClassifier: one stump over x[0] <= 0.5, three classes, base values */
    int64_t treeids[3] = {0, 0, 0}, nodeids[3] = {0, 1, 2}, feat[3] = {0, 0, 0};
    int64_t tru[3] = {1, 0, 0}, fal[3] = {2, 0, 0};
    const char *modes[3] = {"BRANCH_LEQ", "LEAF", "LEAF"};
    float values[3] = {0.5f, 0, 0};
    int64_t ctree[3] = {0, 0, 0}, cnode[3] = {1, 2, 2}, cid[3] = {2, 0, 1};
    float cw[3] = {1.0f, 0.25f, 0.5f}, base[3] = {0, 0, 0.125f};
    kt_node t = kt_node_of(ML, "TreeEnsembleClassifier", 3, 2);
    t.in[0] = &x;
    t.n_in = 1;
    kt_add_attr(&t, kt_attr_ints("nodes_treeids", 3, treeids));
    kt_add_attr(&t, kt_attr_ints("nodes_nodeids", 3, nodeids));
    kt_add_attr(&t, kt_attr_ints("nodes_featureids", 3, feat));
    kt_add_attr(&t, kt_attr_ints("nodes_truenodeids", 3, tru));
    kt_add_attr(&t, kt_attr_ints("nodes_falsenodeids", 3, fal));
    kt_add_attr(&t, kt_attr_strs("nodes_modes", 3, modes));
    kt_add_attr(&t, kt_attr_floats("nodes_values", 3, values));
    kt_add_attr(&t, kt_attr_ints("class_treeids", 3, ctree));
    kt_add_attr(&t, kt_attr_ints("class_nodeids", 3, cnode));
    kt_add_attr(&t, kt_attr_ints("class_ids", 3, cid));
    kt_add_attr(&t, kt_attr_floats("class_weights", 3, cw));
    kt_add_attr(&t, kt_attr_floats("base_values", 3, base));
    kt_add_attr(&t, kt_attr_ints("classlabels_int64s", 3, labels));
    CHECK_EQ_INT(kt_run_node(&t, y, &err), KN_OK);
    /* row 0: x0 = 1 > 0.5 -> leaf 2: [0.25, 0.5, 0.125] -> label 20 */
    CHECK_EQ_INT(((int64_t *)y[0].data)[0], 20);
    CHECK_NEAR(kt_at(&y[1], 0), 0.25, 0);
    CHECK_NEAR(kt_at(&y[1], 2), 0.125, 0);
    /* row 1: x0 = 0 -> leaf 1: [0, 0, 1.125] -> label 30 */
    CHECK_EQ_INT(((int64_t *)y[0].data)[1], 30);
    CHECK_NEAR(kt_at(&y[1], 5), 1.125, 0);
    kt_release_all(y, 2);
    /* class id out of range */
    cid[0] = 3;
    CHECK_EQ_INT(kt_run_node(&t, y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
}

TEST_MAIN(TEST_CASE(test_adam_two_tensors), TEST_CASE(test_momentum_modes), TEST_CASE(test_nms_edges),
          TEST_CASE(test_col2im_int_strided), TEST_CASE(test_random_normal_uniform),
          TEST_CASE(test_bernoulli_props), TEST_CASE(test_multinomial_freq),
          TEST_CASE(test_label_encoder_numeric), TEST_CASE(test_array_feature_extractor),
          TEST_CASE(test_tree_ensemble_v5), TEST_CASE(test_tree_ensemble_regressor_legacy),
          TEST_CASE(test_ml_small_ops), TEST_CASE(test_classifiers))
