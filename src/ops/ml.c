/* ml.c - operator family 'ml': the ai.onnx.ml domain (classic machine learning).
 *   ArrayFeatureExtractor, Binarizer, LabelEncoder (numeric keys and values only:
 *   kiln holds no string tensors), Normalizer, Scaler, LinearRegressor,
 *   LinearClassifier (integer labels), TreeEnsemble (ai.onnx.ml opset 5),
 *   TreeEnsembleRegressor and TreeEnsembleClassifier (3+ classes, integer labels).
 * The tree operators are all evaluated by one engine (te_model): interior nodes with
 * a comparison mode, feature and split value, and leaves holding a list of
 * (target, weight) votes, aggregated per target and then post-transformed.
 * String labels, maps and ZipMap are not supported (KN_ERR_UNSUPPORTED). */
#include "ops/op_util.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ML_DOMAIN "ai.onnx.ml"
#define ML_PI 3.14159265358979323846
#define ML_SQRT2 1.41421356237309504880

/* ================================================================ helpers */

/* Post transforms, numbered as TreeEnsemble's post_transform attribute. */
enum { PT_NONE = 0, PT_SOFTMAX = 1, PT_LOGISTIC = 2, PT_SOFTMAX_ZERO = 3, PT_PROBIT = 4 };

static int post_transform_of(kn_op_ctx *c, int *pt)
{
    static const char *const names[] = {"NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"};
    const char *s = kn_attr_string(c->node, "post_transform", "NONE");
    for (int i = 0; i < 5; i++) {
        if (!strcmp(s, names[i])) {
            *pt = i;
            return KN_OK;
        }
    }
    return kn_fail(c->err, KN_ERR_ARG, "%s: unknown post_transform '%s'", c->node->op_type, s);
}

/* Inverse error function: the closed-form approximation with a = 0.147 (the one
 * ONNX ML runtimes use for PROBIT). */
static double erf_inv_approx(double x)
{
    double sgn = x < 0 ? -1.0 : 1.0;
    double w = (1.0 - x) * (1.0 + x);
    if (w <= 0)
        return w == 0 ? sgn * INFINITY : NAN;
    double l = log(w);
    double a = 2.0 / (ML_PI * 0.147) + 0.5 * l;
    return sgn * sqrt(-a + sqrt(a * a - l / 0.147));
}

static void softmax_row(double *v, int64_t n, bool keep_zero)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    for (int64_t i = 0; i < n; i++) {
        if (keep_zero && fabs(v[i]) <= 1e-7)
            v[i] *= exp(-mx);
        else
            v[i] = exp(v[i] - mx);
        sum += v[i];
    }
    for (int64_t i = 0; i < n; i++)
        v[i] = sum == 0 ? (keep_zero ? 0.5 : v[i]) : v[i] / sum;
}

static void apply_post_transform(double *v, int64_t n, int pt)
{
    switch (pt) {
    case PT_SOFTMAX: softmax_row(v, n, false); break;
    case PT_SOFTMAX_ZERO: softmax_row(v, n, true); break;
    case PT_LOGISTIC:
        for (int64_t i = 0; i < n; i++)
            v[i] = 1.0 / (1.0 + exp(-v[i]));
        break;
    case PT_PROBIT:
        for (int64_t i = 0; i < n; i++)
            v[i] = ML_SQRT2 * erf_inv_approx(2.0 * v[i] - 1.0);
        break;
    default: break;
    }
}

/* Index of the largest of v[0..n) (the first on ties). */
static int64_t argmax_row(const double *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Numeric input dtypes of most ai.onnx.ml operators. */
static bool ml_numeric(kn_dtype dt)
{
    return dt == KN_F32 || dt == KN_F64 || dt == KN_I64 || dt == KN_I32 || dt == KN_F16 ||
           dt == KN_BF16 || dt == KN_I16 || dt == KN_I8 || dt == KN_U8 || dt == KN_U16 ||
           dt == KN_U32 || dt == KN_U64;
}

/* Views X of rank 1 ([C], one row) or 2 ([N, C]) as rows x cols. */
static int ml_rows(kn_op_ctx *c, const kn_tensor *x, int64_t *rows, int64_t *cols)
{
    *rows = *cols = 0;
    if (x->rank == 1) {
        *rows = 1;
        *cols = x->dims[0];
    } else if (x->rank == 2) {
        *rows = x->dims[0];
        *cols = x->dims[1];
    } else {
        return kn_fail(c->err, KN_ERR_ARG, "%s input must be [N, C] or [C], got rank %d",
                       c->node->op_type, x->rank);
    }
    return KN_OK;
}

/* ================================================================ ArrayFeatureExtractor */

static int run_array_feature_extractor(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *idx = c->in[1];
    if (!kn_dtype_is_int(idx->dtype))
        return kn_fail(c->err, KN_ERR_ARG, "ArrayFeatureExtractor indices must be int64");
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "ArrayFeatureExtractor input must have rank >= 1");
    int64_t last = x->dims[x->rank - 1], k = idx->numel;
    int64_t dims[KN_MAX_RANK];
    int rank = x->rank;
    if (rank == 1) {
        rank = 2;
        dims[0] = 1;
    } else {
        memcpy(dims, x->dims, sizeof(int64_t) * (size_t)(rank - 1));
    }
    dims[rank - 1] = k;
    for (int64_t j = 0; j < k; j++) {
        int64_t i = kn_load_i64(idx->data, idx->dtype, (size_t)j);
        if (i < 0 || i >= last)
            return kn_fail(c->err, KN_ERR_ARG, "ArrayFeatureExtractor index %lld is out of range [0, %lld)",
                           (long long)i, (long long)last);
    }
    kn_tensor *o = kn_op_output(c, 0, x->dtype, rank, dims);
    if (!o)
        return c->err->code;
    size_t es = kn_dtype_size(x->dtype);
    int64_t rows = last ? x->numel / last : 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < k; j++) {
            int64_t i = kn_load_i64(idx->data, idx->dtype, (size_t)j);
            memcpy((char *)o->data + (size_t)(r * k + j) * es, (const char *)x->data + (size_t)(r * last + i) * es, es);
        }
    return KN_OK;
}

/* ================================================================ Binarizer */

static int run_binarizer(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!ml_numeric(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    double thr = kn_attr_float(c->node, "threshold", 0.0f);
    kn_tensor *o = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    if (!o)
        return c->err->code;
    for (int64_t i = 0; i < x->numel; i++) {
        double v = kn_load_f64(x->data, x->dtype, (size_t)i);
        kn_store_f64(o->data, o->dtype, (size_t)i, v > thr ? 1.0 : 0.0);
    }
    return KN_OK;
}

/* ================================================================ LabelEncoder */

/* A list of numeric keys or values from an INTS / FLOATS / TENSOR attribute. */
typedef struct le_list {
    int64_t n;
    kn_dtype dtype;          /* element dtype: I64 for ints, F32 for floats, tensor's */
    const int64_t *ints;     /* one of ints / floats / t */
    const float *floats;
    const kn_tensor *t;
} le_list;

static bool le_is_int(kn_dtype dt)
{
    return kn_dtype_is_int(dt);
}

static int64_t le_i64(const le_list *l, int64_t i)
{
    if (l->ints)
        return l->ints[i];
    if (l->floats)
        return (int64_t)l->floats[i];
    return kn_load_i64(l->t->data, l->t->dtype, (size_t)i);
}

static double le_f64(const le_list *l, int64_t i)
{
    if (l->ints)
        return (double)l->ints[i];
    if (l->floats)
        return l->floats[i];
    return kn_load_f64(l->t->data, l->t->dtype, (size_t)i);
}

/* Finds which of <prefix>int64s / <prefix>floats / <prefix>strings / <prefix>tensor is
 * set.  Returns KN_OK with l->n = -1 when none is. */
static int le_find(kn_op_ctx *c, const char *prefix, le_list *l)
{
    char name[32];
    memset(l, 0, sizeof *l);
    l->n = -1;
    int found = 0;
    snprintf(name, sizeof name, "%sstrings", prefix);
    if (kn_attr_find(c->node, name))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "LabelEncoder with string %s is not supported (kiln has no string tensors)",
                       prefix);
    snprintf(name, sizeof name, "%sint64s", prefix);
    const int64_t *iv;
    int n = kn_attr_ints(c->node, name, &iv);
    if (n >= 0) {
        l->n = n;
        l->ints = iv;
        l->dtype = KN_I64;
        found++;
    }
    snprintf(name, sizeof name, "%sfloats", prefix);
    const float *fv;
    n = kn_attr_floats(c->node, name, &fv);
    if (n >= 0) {
        l->n = n;
        l->floats = fv;
        l->dtype = KN_F32;
        found++;
    }
    snprintf(name, sizeof name, "%stensor", prefix);
    const kn_tensor *t = kn_attr_tensor(c->node, name);
    if (t) {
        if (!kn_dtype_supported(t->dtype))
            return kn_fail(c->err, KN_ERR_UNSUPPORTED, "LabelEncoder %s of dtype %s is not supported", name,
                           kn_dtype_name(t->dtype));
        l->n = t->numel;
        l->t = t;
        l->dtype = t->dtype;
        found++;
    }
    if (found > 1)
        return kn_fail(c->err, KN_ERR_MODEL, "LabelEncoder: more than one %s* attribute is set", prefix);
    return KN_OK;
}

/* One key with its position: integer keys compare as ki, float keys as kf. */
typedef struct le_entry {
    int64_t ki;
    double kf;
    int64_t pos;
} le_entry;

/* Key lookup table: keys sorted by (key, position), NaN keys apart. */
typedef struct le_table {
    bool int_keys;
    le_entry *e;
    int64_t n;          /* non-NaN keys */
    int64_t nan_idx;    /* position of the last NaN key, or -1 */
} le_table;

static int le_cmp_pos(const le_entry *a, const le_entry *b)
{
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int le_cmp_int(const void *pa, const void *pb)
{
    const le_entry *a = pa, *b = pb;
    return a->ki != b->ki ? (a->ki < b->ki ? -1 : 1) : le_cmp_pos(a, b);
}

static int le_cmp_float(const void *pa, const void *pb)
{
    const le_entry *a = pa, *b = pb;
    return a->kf != b->kf ? (a->kf < b->kf ? -1 : 1) : le_cmp_pos(a, b);
}

/* Compares entry e's key with the probe (int or double). */
static int le_key_cmp(const le_table *t, const le_entry *e, int64_t pi, double pf)
{
    if (t->int_keys)
        return e->ki < pi ? -1 : e->ki > pi;
    return e->kf < pf ? -1 : e->kf > pf;
}

/* Position of the last key equal to the probe, or -1. */
static int64_t le_lookup(const le_table *t, int64_t pi, double pf)
{
    if (!t->int_keys && isnan(pf))
        return t->nan_idx;
    int64_t lo = 0, hi = t->n; /* first entry whose key is greater than the probe */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (le_key_cmp(t, &t->e[mid], pi, pf) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || le_key_cmp(t, &t->e[lo - 1], pi, pf) != 0)
        return -1;
    return t->e[lo - 1].pos;
}

static int le_build(kn_op_ctx *c, const le_list *keys, le_table *t)
{
    t->int_keys = le_is_int(keys->dtype);
    t->nan_idx = -1;
    t->n = 0;
    t->e = malloc((size_t)(keys->n > 0 ? keys->n : 1) * sizeof *t->e);
    if (!t->e)
        return kn_fail(c->err, KN_ERR_NOMEM, "LabelEncoder: out of memory");
    for (int64_t i = 0; i < keys->n; i++) {
        le_entry e = {t->int_keys ? le_i64(keys, i) : 0, t->int_keys ? 0.0 : le_f64(keys, i), i};
        if (!t->int_keys && isnan(e.kf))
            t->nan_idx = i;
        else
            t->e[t->n++] = e;
    }
    qsort(t->e, (size_t)t->n, sizeof *t->e, t->int_keys ? le_cmp_int : le_cmp_float);
    return KN_OK;
}

/* The default output value (int and double forms) for values of dtype vdt. */
static void le_default(kn_op_ctx *c, const le_list *vals, int64_t *di, double *df)
{
    const kn_tensor *dt = kn_attr_tensor(c->node, "default_tensor");
    bool int_vals = le_is_int(vals->dtype);
    if (vals->t && dt && dt->numel > 0 && kn_dtype_supported(dt->dtype)) {
        *di = kn_load_i64(dt->data, dt->dtype, 0);
        *df = kn_load_f64(dt->data, dt->dtype, 0);
    } else if (vals->t) {
        *di = -1;
        *df = int_vals ? -1.0 : -0.0;
    } else if (int_vals) {
        *di = kn_attr_int(c->node, "default_int64", -1);
        *df = (double)*di;
    } else {
        *df = kn_attr_float(c->node, "default_float", -0.0f);
        *di = (int64_t)*df;
    }
}

static int run_label_encoder(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (c->opset < 2)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "LabelEncoder-1 maps strings, which kiln does not support");
    le_list keys, vals;
    int rc = le_find(c, "keys_", &keys);
    if (rc || (rc = le_find(c, "values_", &vals)))
        return rc;
    if (keys.n < 0 || vals.n < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "LabelEncoder needs one keys_* and one values_* attribute");
    if (keys.n != vals.n)
        return kn_fail(c->err, KN_ERR_ARG, "LabelEncoder has %lld keys but %lld values", (long long)keys.n,
                       (long long)vals.n);
    if (!kn_dtype_supported(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->dtype != keys.dtype)
        return kn_fail(c->err, KN_ERR_ARG, "LabelEncoder input dtype %s does not match key dtype %s",
                       kn_dtype_name(x->dtype), kn_dtype_name(keys.dtype));
    int64_t di;
    double df;
    le_default(c, &vals, &di, &df);
    le_table tab;
    if ((rc = le_build(c, &keys, &tab)))
        return rc;
    kn_tensor *o = kn_op_output(c, 0, vals.dtype, x->rank, x->dims);
    bool int_vals = le_is_int(vals.dtype);
    for (int64_t i = 0; o && i < x->numel; i++) {
        int64_t pi = tab.int_keys ? kn_load_i64(x->data, x->dtype, (size_t)i) : 0;
        double pf = tab.int_keys ? 0.0 : kn_load_f64(x->data, x->dtype, (size_t)i);
        int64_t k = le_lookup(&tab, pi, pf);
        if (int_vals)
            kn_store_i64(o->data, o->dtype, (size_t)i, k < 0 ? di : le_i64(&vals, k));
        else
            kn_store_f64(o->data, o->dtype, (size_t)i, k < 0 ? df : le_f64(&vals, k));
    }
    free(tab.e);
    return o ? KN_OK : c->err->code;
}

/* ================================================================ Normalizer, Scaler */

static int run_normalizer(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!ml_numeric(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    const char *norm = kn_attr_string(c->node, "norm", "MAX");
    int kind = !strcmp(norm, "MAX") ? 0 : !strcmp(norm, "L1") ? 1 : !strcmp(norm, "L2") ? 2 : -1;
    if (kind < 0)
        return kn_fail(c->err, KN_ERR_ARG, "Normalizer: unknown norm '%s'", norm);
    int64_t rows, cols;
    int rc = ml_rows(c, x, &rows, &cols);
    if (rc)
        return rc;
    kn_tensor *o = kn_op_output(c, 0, KN_F32, x->rank, x->dims);
    if (!o)
        return c->err->code;
    float *y = o->data;
    for (int64_t r = 0; r < rows; r++) {
        double d = kind == 0 ? -INFINITY : 0.0;
        for (int64_t j = 0; j < cols; j++) {
            double v = kn_load_f64(x->data, x->dtype, (size_t)(r * cols + j));
            d = kind == 0 ? (v > d ? v : d) : kind == 1 ? d + fabs(v) : d + v * v;
        }
        if (kind == 2)
            d = sqrt(d);
        for (int64_t j = 0; j < cols; j++) {
            double v = kn_load_f64(x->data, x->dtype, (size_t)(r * cols + j));
            y[r * cols + j] = (float)(d != 0 && cols > 0 ? v / d : v);
        }
    }
    return KN_OK;
}

/* Reads a float list attribute of length 1 or `cols` (absent: n = 0). */
static int ml_per_feature(kn_op_ctx *c, const char *name, int64_t cols, const float **v, int *n)
{
    *n = kn_attr_floats(c->node, name, v);
    if (*n < 0)
        *n = 0;
    if (*n > 1 && *n != cols)
        return kn_fail(c->err, KN_ERR_ARG, "%s attribute '%s' has %d values for %lld features",
                       c->node->op_type, name, *n, (long long)cols);
    return KN_OK;
}

static int run_scaler(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!ml_numeric(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int64_t cols = x->rank >= 1 ? x->dims[x->rank - 1] : 1;
    const float *off, *scale;
    int noff, nscale;
    int rc = ml_per_feature(c, "offset", cols, &off, &noff);
    if (rc || (rc = ml_per_feature(c, "scale", cols, &scale, &nscale)))
        return rc;
    kn_tensor *o = kn_op_output(c, 0, KN_F32, x->rank, x->dims);
    if (!o)
        return c->err->code;
    float *y = o->data;
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t j = cols > 0 ? i % cols : 0;
        double v = kn_load_f64(x->data, x->dtype, (size_t)i);
        double a = noff == 0 ? 0.0 : off[noff == 1 ? 0 : j];
        double s = nscale == 0 ? 1.0 : scale[nscale == 1 ? 0 : j];
        y[i] = (float)((v - a) * s);
    }
    return KN_OK;
}

/* ================================================================ LinearRegressor */

static int run_linear_regressor(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!ml_numeric(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int64_t rows, cols;
    int pt, rc = ml_rows(c, x, &rows, &cols);
    if (rc || (rc = post_transform_of(c, &pt)))
        return rc;
    int64_t targets = kn_attr_int(c->node, "targets", 1);
    const float *coef, *icpt;
    int ncoef = kn_attr_floats(c->node, "coefficients", &coef);
    int nicpt = kn_attr_floats(c->node, "intercepts", &icpt);
    if (targets < 1 || targets > (1 << 24))
        return kn_fail(c->err, KN_ERR_ARG, "LinearRegressor targets must be positive");
    if (ncoef < 0 || ncoef != targets * cols)
        return kn_fail(c->err, KN_ERR_ARG, "LinearRegressor needs %lld coefficients, got %d",
                       (long long)(targets * cols), ncoef < 0 ? 0 : ncoef);
    if (nicpt > 0 && nicpt != targets)
        return kn_fail(c->err, KN_ERR_ARG, "LinearRegressor needs %lld intercepts, got %d", (long long)targets, nicpt);
    int64_t dims[2] = {rows, targets};
    kn_tensor *o = kn_op_output(c, 0, KN_F32, 2, dims);
    double *row = o ? malloc((size_t)targets * sizeof(double)) : NULL;
    if (!row)
        return o ? kn_fail(c->err, KN_ERR_NOMEM, "LinearRegressor: out of memory") : c->err->code;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t t = 0; t < targets; t++) {
            double s = nicpt > 0 ? icpt[t] : 0.0;
            for (int64_t j = 0; j < cols; j++)
                s += coef[t * cols + j] * kn_load_f64(x->data, x->dtype, (size_t)(r * cols + j));
            row[t] = s;
        }
        apply_post_transform(row, targets, pt);
        for (int64_t t = 0; t < targets; t++)
            ((float *)o->data)[r * targets + t] = (float)row[t];
    }
    free(row);
    return KN_OK;
}

/* ================================================================ LinearClassifier */

static int class_labels(kn_op_ctx *c, const int64_t **labels, int64_t *n);

/* Scores of row r: coefficient rows (nrow of them) times x plus intercepts; with a
 * single row and two labels the scores are [-s, s]. */
static void linear_scores(const kn_tensor *x, int64_t r, int64_t cols, const float *coef, int64_t nrow,
                          int64_t nlab, const float *icpt, int nicpt, double *row)
{
    for (int64_t k = 0; k < nrow; k++) {
        double s = nicpt > 0 ? icpt[k] : 0.0;
        for (int64_t j = 0; j < cols; j++)
            s += coef[k * cols + j] * kn_load_f64(x->data, x->dtype, (size_t)(r * cols + j));
        row[k] = s;
    }
    if (nrow == 1 && nlab == 2) {
        row[1] = row[0];
        row[0] = -row[1];
    }
}

static int run_linear_classifier(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!ml_numeric(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    const int64_t *labels;
    int64_t rows, cols, nlab;
    int pt, rc = ml_rows(c, x, &rows, &cols);
    if (rc || (rc = post_transform_of(c, &pt)) || (rc = class_labels(c, &labels, &nlab)))
        return rc;
    const float *coef, *icpt;
    int ncoef = kn_attr_floats(c->node, "coefficients", &coef);
    int nicpt = kn_attr_floats(c->node, "intercepts", &icpt);
    int64_t nrow = cols > 0 && ncoef > 0 ? ncoef / cols : 0;
    if (nrow < 1 || nrow * cols != ncoef)
        return kn_fail(c->err, KN_ERR_ARG, "LinearClassifier: %d coefficients do not fit %lld features",
                       ncoef < 0 ? 0 : ncoef, (long long)cols);
    if (nrow != nlab && !(nrow == 1 && nlab == 2))
        return kn_fail(c->err, KN_ERR_ARG, "LinearClassifier: %lld coefficient rows for %lld class labels",
                       (long long)nrow, (long long)nlab);
    if (nicpt > 0 && nicpt != nrow)
        return kn_fail(c->err, KN_ERR_ARG, "LinearClassifier needs %lld intercepts, got %d", (long long)nrow, nicpt);
    int64_t dims[2] = {rows, nlab};
    kn_tensor *y = kn_op_output(c, 0, KN_I64, 1, dims);
    kn_tensor *z = y ? kn_op_output(c, 1, KN_F32, 2, dims) : NULL;
    double *row = z ? malloc((size_t)nlab * sizeof(double)) : NULL;
    if (!row)
        return z ? kn_fail(c->err, KN_ERR_NOMEM, "LinearClassifier: out of memory") : c->err->code;
    for (int64_t r = 0; r < rows; r++) {
        linear_scores(x, r, cols, coef, nrow, nlab, icpt, nicpt, row);
        apply_post_transform(row, nlab, pt);
        ((int64_t *)y->data)[r] = labels[argmax_row(row, nlab)];
        for (int64_t k = 0; k < nlab; k++)
            ((float *)z->data)[r * nlab + k] = (float)row[k];
    }
    free(row);
    return KN_OK;
}

/* ================================================================ tree ensembles */

enum { TE_LEQ, TE_LT, TE_GTE, TE_GT, TE_EQ, TE_NEQ, TE_MEMBER };
enum { AGG_AVERAGE = 0, AGG_SUM = 1, AGG_MIN = 2, AGG_MAX = 3 };

/* A child or root reference: >= 0 an interior node, < 0 leaf -(ref + 1). */
typedef struct te_model {
    int64_t n_nodes, n_leaves, n_trees, n_targets, n_votes;
    int64_t *feat, *tru, *fal, *roots;
    uint8_t *mode, *miss;
    double *split;
    int64_t *set_start, *set_len; /* member sets in members[] (BRANCH_MEMBER nodes) */
    double *members;
    int64_t *leaf_start;          /* votes of leaf l: [leaf_start[l], leaf_start[l + 1]) */
    int64_t *vote_target;
    double *vote_weight;
    double *base;                 /* n_targets base values or NULL */
    int agg, pt;
    int64_t max_feature;          /* largest feature id used */
} te_model;

static void te_free(te_model *m)
{
    free(m->feat); free(m->tru); free(m->fal); free(m->roots);
    free(m->mode); free(m->miss); free(m->split);
    free(m->set_start); free(m->set_len); free(m->members);
    free(m->leaf_start); free(m->vote_target); free(m->vote_weight); free(m->base);
    memset(m, 0, sizeof *m);
}

/* Allocates the arrays for n_nodes, n_leaves, n_trees, n_votes (set beforehand). */
static int te_alloc(te_model *m, kn_error *err)
{
    size_t nn = (size_t)(m->n_nodes > 0 ? m->n_nodes : 1), nl = (size_t)m->n_leaves + 1;
    size_t nt = (size_t)(m->n_trees > 0 ? m->n_trees : 1), nv = (size_t)(m->n_votes > 0 ? m->n_votes : 1);
    m->feat = calloc(nn, sizeof(int64_t));
    m->tru = calloc(nn, sizeof(int64_t));
    m->fal = calloc(nn, sizeof(int64_t));
    m->mode = calloc(nn, 1);
    m->miss = calloc(nn, 1);
    m->split = calloc(nn, sizeof(double));
    m->set_start = calloc(nn, sizeof(int64_t));
    m->set_len = calloc(nn, sizeof(int64_t));
    m->roots = calloc(nt, sizeof(int64_t));
    m->leaf_start = calloc(nl, sizeof(int64_t));
    m->vote_target = calloc(nv, sizeof(int64_t));
    m->vote_weight = calloc(nv, sizeof(double));
    if (!m->feat || !m->tru || !m->fal || !m->mode || !m->miss || !m->split || !m->set_start ||
        !m->set_len || !m->roots || !m->leaf_start || !m->vote_target || !m->vote_weight)
        return kn_fail(err, KN_ERR_NOMEM, "tree ensemble: out of memory");
    return KN_OK;
}

static bool te_member(const te_model *m, int64_t node, double v)
{
    for (int64_t k = 0; k < m->set_len[node]; k++)
        if (m->members[m->set_start[node] + k] == v)
            return true;
    return false;
}

static bool te_branch_true(const te_model *m, int64_t node, double v)
{
    if (isnan(v) && m->miss[node])
        return true;
    double s = m->split[node];
    switch (m->mode[node]) {
    case TE_LEQ: return v <= s;
    case TE_LT: return v < s;
    case TE_GTE: return v >= s;
    case TE_GT: return v > s;
    case TE_EQ: return v == s;
    case TE_NEQ: return v != s;
    default: return te_member(m, node, v);
    }
}

/* Walks one tree for the features x; returns the leaf, or -1 on a cycle. */
static int64_t te_walk(const te_model *m, int64_t root, const double *x)
{
    int64_t cur = root;
    for (int64_t steps = 0; cur >= 0; steps++) {
        if (steps > m->n_nodes)
            return -1;
        cur = te_branch_true(m, cur, x[m->feat[cur]]) ? m->tru[cur] : m->fal[cur];
    }
    return -(cur + 1);
}

/* Scores of one row into acc[n_targets] (aggregated, base values, post transform). */
static int te_eval_row(const te_model *m, const double *x, double *acc, bool *hit, kn_error *err)
{
    for (int64_t t = 0; t < m->n_targets; t++) {
        acc[t] = 0;
        hit[t] = false;
    }
    for (int64_t tr = 0; tr < m->n_trees; tr++) {
        int64_t leaf = te_walk(m, m->roots[tr], x);
        if (leaf < 0)
            return kn_fail(err, KN_ERR_ARG, "tree ensemble: tree %lld contains a cycle", (long long)tr);
        for (int64_t v = m->leaf_start[leaf]; v < m->leaf_start[leaf + 1]; v++) {
            int64_t t = m->vote_target[v];
            double w = m->vote_weight[v];
            if (m->agg == AGG_MIN)
                acc[t] = hit[t] && acc[t] < w ? acc[t] : w;
            else if (m->agg == AGG_MAX)
                acc[t] = hit[t] && acc[t] > w ? acc[t] : w;
            else
                acc[t] += w;
            hit[t] = true;
        }
    }
    for (int64_t t = 0; t < m->n_targets; t++) {
        if (m->agg == AGG_AVERAGE && m->n_trees > 0)
            acc[t] /= (double)m->n_trees;
        if (m->base)
            acc[t] += m->base[t];
    }
    apply_post_transform(acc, m->n_targets, m->pt);
    return KN_OK;
}

/* Runs the model over X [N, F] (or [F]): scores [N, n_targets] of dtype out_dt into
 * output score_out; with labels (n_targets of them), output 0 receives the int64
 * label of each row's best score. */
static int te_run(kn_op_ctx *c, const te_model *m, kn_dtype out_dt, int score_out, const int64_t *labels)
{
    const kn_tensor *x = c->in[0];
    int64_t rows, cols;
    int rc = ml_rows(c, x, &rows, &cols);
    if (rc)
        return rc;
    if (m->max_feature >= cols)
        return kn_fail(c->err, KN_ERR_ARG, "%s uses feature %lld but the input has %lld features",
                       c->node->op_type, (long long)m->max_feature, (long long)cols);
    int64_t dims[2] = {rows, m->n_targets};
    kn_tensor *o = kn_op_output(c, score_out, out_dt, 2, dims);
    kn_tensor *lab = labels && o ? kn_op_output(c, 0, KN_I64, 1, dims) : NULL;
    if (!o || (labels && !lab))
        return c->err->code;
    size_t nt = (size_t)m->n_targets, nc = (size_t)(cols > 0 ? cols : 1);
    double *xr = malloc(nc * sizeof(double)), *acc = malloc(nt * sizeof(double));
    bool *hit = malloc(nt);
    if (!xr || !acc || !hit)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    for (int64_t r = 0; !rc && r < rows; r++) {
        for (int64_t j = 0; j < cols; j++)
            xr[j] = kn_load_f64(x->data, x->dtype, (size_t)(r * cols + j));
        rc = te_eval_row(m, xr, acc, hit, c->err);
        for (int64_t t = 0; !rc && t < m->n_targets; t++)
            kn_store_f64(o->data, out_dt, (size_t)(r * m->n_targets + t), acc[t]);
        if (!rc && lab)
            ((int64_t *)lab->data)[r] = labels[argmax_row(acc, m->n_targets)];
    }
    free(xr);
    free(acc);
    free(hit);
    return rc;
}

/* Checks a child reference and records feature use. */
static int te_check_ref(const te_model *m, int64_t ref, kn_error *err)
{
    if (ref >= 0 ? ref >= m->n_nodes : -(ref + 1) >= m->n_leaves)
        return kn_fail(err, KN_ERR_ARG, "tree ensemble: %s index %lld is out of range",
                       ref >= 0 ? "node" : "leaf", (long long)(ref >= 0 ? ref : -(ref + 1)));
    return KN_OK;
}

static int te_check(te_model *m, kn_error *err)
{
    m->max_feature = -1;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (m->feat[i] < 0)
            return kn_fail(err, KN_ERR_ARG, "tree ensemble: negative feature id at node %lld", (long long)i);
        if (m->mode[i] > TE_MEMBER)
            return kn_fail(err, KN_ERR_ARG, "tree ensemble: invalid mode %d at node %lld", m->mode[i], (long long)i);
        if (m->feat[i] > m->max_feature)
            m->max_feature = m->feat[i];
        int rc = te_check_ref(m, m->tru[i], err);
        if (rc || (rc = te_check_ref(m, m->fal[i], err)))
            return rc;
    }
    for (int64_t t = 0; t < m->n_trees; t++) {
        int rc = te_check_ref(m, m->roots[t], err);
        if (rc)
            return rc;
    }
    for (int64_t v = 0; v < m->n_votes; v++)
        if (m->vote_target[v] < 0 || m->vote_target[v] >= m->n_targets)
            return kn_fail(err, KN_ERR_ARG, "tree ensemble: target id %lld is out of range [0, %lld)",
                           (long long)m->vote_target[v], (long long)m->n_targets);
    return KN_OK;
}

/* ---- TreeEnsemble (opset 5) ---- */

/* Required INTS attribute of length n (n < 0: any length, stored into *n). */
static int te_ints(kn_op_ctx *c, const char *name, int64_t *n, const int64_t **v, bool required)
{
    int k = kn_attr_ints(c->node, name, v);
    if (k < 0) {
        *v = NULL;
        if (required)
            return kn_fail(c->err, KN_ERR_MODEL, "TreeEnsemble requires attribute '%s'", name);
        return KN_OK;
    }
    if (*n >= 0 && k != *n)
        return kn_fail(c->err, KN_ERR_ARG, "TreeEnsemble attribute '%s' has %d values, expected %lld", name, k,
                       (long long)*n);
    *n = k;
    return KN_OK;
}

static const kn_tensor *te_tensor(kn_op_ctx *c, const char *name, int64_t n, kn_error *err)
{
    const kn_tensor *t = kn_attr_tensor(c->node, name);
    if (!t) {
        kn_fail(err, KN_ERR_MODEL, "TreeEnsemble requires tensor attribute '%s'", name);
        return NULL;
    }
    if (!kn_dtype_supported(t->dtype) || t->dtype == KN_BOOL) {
        kn_fail(err, KN_ERR_UNSUPPORTED, "TreeEnsemble attribute '%s' has unsupported dtype %s", name,
                kn_dtype_name(t->dtype));
        return NULL;
    }
    if (n >= 0 && t->numel != n) {
        kn_fail(err, KN_ERR_ARG, "TreeEnsemble attribute '%s' has %lld values, expected %lld", name,
                (long long)t->numel, (long long)n);
        return NULL;
    }
    return t;
}

/* Splits membership_values (NaN-separated) over the BRANCH_MEMBER nodes in order. */
static int te5_members(kn_op_ctx *c, te_model *m)
{
    bool any = false;
    for (int64_t i = 0; i < m->n_nodes; i++)
        any = any || m->mode[i] == TE_MEMBER;
    if (!any)
        return KN_OK;
    const kn_tensor *mv = te_tensor(c, "membership_values", -1, c->err);
    if (!mv)
        return c->err->code;
    m->members = malloc((size_t)(mv->numel > 0 ? mv->numel : 1) * sizeof(double));
    if (!m->members)
        return kn_fail(c->err, KN_ERR_NOMEM, "TreeEnsemble: out of memory");
    for (int64_t k = 0; k < mv->numel; k++)
        m->members[k] = kn_load_f64(mv->data, mv->dtype, (size_t)k);
    int64_t pos = 0;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (m->mode[i] != TE_MEMBER)
            continue;
        if (pos >= mv->numel)
            return kn_fail(c->err, KN_ERR_ARG, "TreeEnsemble: membership_values has no set for node %lld",
                           (long long)i);
        m->set_start[i] = pos;
        while (pos < mv->numel && !isnan(m->members[pos]))
            pos++;
        m->set_len[i] = pos - m->set_start[i];
        pos++; /* skip the NaN separator */
    }
    return KN_OK;
}

static int te5_build(kn_op_ctx *c, te_model *m)
{
    int64_t n = -1, nl = -1, ntr = -1;
    const int64_t *feat, *tru, *fal, *tleaf, *fleaf, *miss, *roots, *ltarget;
    int rc = te_ints(c, "nodes_featureids", &n, &feat, true);
    if (rc || (rc = te_ints(c, "nodes_truenodeids", &n, &tru, true)) ||
        (rc = te_ints(c, "nodes_falsenodeids", &n, &fal, true)) ||
        (rc = te_ints(c, "nodes_trueleafs", &n, &tleaf, true)) ||
        (rc = te_ints(c, "nodes_falseleafs", &n, &fleaf, true)) ||
        (rc = te_ints(c, "nodes_missing_value_tracks_true", &n, &miss, false)) ||
        (rc = te_ints(c, "leaf_targetids", &nl, &ltarget, true)) ||
        (rc = te_ints(c, "tree_roots", &ntr, &roots, true)))
        return rc;
    const kn_tensor *splits = te_tensor(c, "nodes_splits", n, c->err);
    const kn_tensor *modes = splits ? te_tensor(c, "nodes_modes", n, c->err) : NULL;
    const kn_tensor *weights = modes ? te_tensor(c, "leaf_weights", nl, c->err) : NULL;
    if (!weights)
        return c->err->code;
    m->n_nodes = n;
    m->n_leaves = nl;
    m->n_votes = nl;
    m->n_trees = ntr;
    m->n_targets = kn_attr_int(c->node, "n_targets", -1);
    m->agg = (int)kn_attr_int(c->node, "aggregate_function", AGG_SUM);
    m->pt = (int)kn_attr_int(c->node, "post_transform", PT_NONE);
    if (m->n_targets < 1 || m->n_targets > (1 << 24))
        return kn_fail(c->err, KN_ERR_ARG, "TreeEnsemble n_targets must be a positive count");
    if (m->agg < AGG_AVERAGE || m->agg > AGG_MAX || m->pt < PT_NONE || m->pt > PT_PROBIT)
        return kn_fail(c->err, KN_ERR_ARG, "TreeEnsemble aggregate_function or post_transform out of range");
    if ((rc = te_alloc(m, c->err)))
        return rc;
    for (int64_t i = 0; i < n; i++) {
        int64_t md = kn_load_i64(modes->data, modes->dtype, (size_t)i);
        if (tru[i] < 0 || fal[i] < 0 || tru[i] >= (tleaf[i] ? nl : n) || fal[i] >= (fleaf[i] ? nl : n))
            return kn_fail(c->err, KN_ERR_ARG, "TreeEnsemble: child index out of range at node %lld", (long long)i);
        m->feat[i] = feat[i];
        m->tru[i] = tleaf[i] ? -(tru[i] + 1) : tru[i];
        m->fal[i] = fleaf[i] ? -(fal[i] + 1) : fal[i];
        m->mode[i] = (uint8_t)(md < 0 || md > TE_MEMBER ? 255 : md);
        m->miss[i] = miss && miss[i];
        m->split[i] = kn_load_f64(splits->data, splits->dtype, (size_t)i);
    }
    for (int64_t l = 0; l < nl; l++) {
        m->leaf_start[l] = l;
        m->vote_target[l] = ltarget[l];
        m->vote_weight[l] = kn_load_f64(weights->data, weights->dtype, (size_t)l);
    }
    m->leaf_start[nl] = nl;
    for (int64_t t = 0; t < ntr; t++) {
        int64_t r = roots[t];
        if (r < 0 || r >= n)
            return kn_fail(c->err, KN_ERR_ARG, "TreeEnsemble: tree root %lld is out of range", (long long)r);
        /* a tree that is a single leaf: both branches of its root lead to the same leaf */
        m->roots[t] = (tleaf[r] && fleaf[r] && tru[r] == fal[r]) ? -(tru[r] + 1) : r;
    }
    if ((rc = te5_members(c, m)))
        return rc;
    return te_check(m, c->err);
}

static int run_tree_ensemble(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    kn_dtype dt = c->in[0]->dtype;
    if (dt != KN_F32 && dt != KN_F64 && dt != KN_F16)
        return kn_unsupported_dtype(c, dt);
    te_model m = {0};
    int rc = te5_build(c, &m);
    if (!rc)
        rc = te_run(c, &m, dt, 0, NULL);
    te_free(&m);
    return rc;
}

/* ---- TreeEnsembleRegressor (opsets 1 and 3) ---- */

/* (tree id, node id) -> position in the nodes_* arrays, sorted for lookup. */
typedef struct te_key {
    int64_t tree, node, pos;
} te_key;

static int te_key_cmp(const void *pa, const void *pb)
{
    const te_key *a = pa, *b = pb;
    if (a->tree != b->tree)
        return a->tree < b->tree ? -1 : 1;
    if (a->node != b->node)
        return a->node < b->node ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static int64_t te_key_find(const te_key *keys, int64_t n, int64_t tree, int64_t node)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const te_key *k = &keys[mid];
        if (k->tree < tree || (k->tree == tree && k->node < node))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && keys[lo].tree == tree && keys[lo].node == node ? keys[lo].pos : -1;
}

static int legacy_mode(const char *s)
{
    static const char *const names[] = {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT",
                                        "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER", "LEAF"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

/* Legacy attribute arrays of a regressor. */
typedef struct te_legacy {
    int64_t n;                    /* node count */
    const int64_t *treeids, *nodeids, *feat, *tru, *fal, *miss;
    const char *const *modes;
    const float *values;
    const kn_tensor *values_t;
    int64_t nv;                   /* vote count */
    const int64_t *vtree, *vnode, *vid;
    const float *vw;
    const kn_tensor *vw_t;
} te_legacy;

/* Reads the nodes_* attributes and the votes <vp>treeids, <vp>nodeids, <vp>ids and
 * <vp>weights (vp: "target_" for the regressor, "class_" for the classifier). */
static int legacy_read(kn_op_ctx *c, const char *vp, te_legacy *L)
{
    char nt[32], nn[32], ni[32], nw[40], nwt[48];
    snprintf(nt, sizeof nt, "%streeids", vp);
    snprintf(nn, sizeof nn, "%snodeids", vp);
    snprintf(ni, sizeof ni, "%sids", vp);
    snprintf(nw, sizeof nw, "%sweights", vp);
    snprintf(nwt, sizeof nwt, "%sweights_as_tensor", vp);
    memset(L, 0, sizeof *L);
    int n = kn_attr_ints(c->node, "nodes_treeids", &L->treeids);
    L->n = n;
    const float *f = NULL;
    bool ok = n >= 0 && kn_attr_ints(c->node, "nodes_nodeids", &L->nodeids) == n &&
              kn_attr_ints(c->node, "nodes_featureids", &L->feat) == n &&
              kn_attr_ints(c->node, "nodes_truenodeids", &L->tru) == n &&
              kn_attr_ints(c->node, "nodes_falsenodeids", &L->fal) == n &&
              kn_attr_strings(c->node, "nodes_modes", &L->modes) == n;
    int k = kn_attr_ints(c->node, "nodes_missing_value_tracks_true", &L->miss);
    if (k < 0)
        L->miss = NULL;
    ok = ok && (k < 0 || k == n);
    if (kn_attr_floats(c->node, "nodes_values", &f) == n)
        L->values = f;
    else if ((L->values_t = kn_attr_tensor(c->node, "nodes_values_as_tensor")) != NULL)
        ok = ok && L->values_t->numel == n && kn_dtype_is_float(L->values_t->dtype);
    else
        ok = false;
    if (!ok)
        return kn_fail(c->err, KN_ERR_ARG, "%s: nodes_* attributes are missing or of different lengths",
                       c->node->op_type);
    int nv = kn_attr_ints(c->node, nt, &L->vtree);
    L->nv = nv < 0 ? 0 : nv;
    ok = nv < 0 || (kn_attr_ints(c->node, nn, &L->vnode) == nv && kn_attr_ints(c->node, ni, &L->vid) == nv);
    if (ok && nv > 0) {
        if (kn_attr_floats(c->node, nw, &L->vw) != nv) {
            L->vw = NULL;
            L->vw_t = kn_attr_tensor(c->node, nwt);
            ok = L->vw_t && L->vw_t->numel == nv && kn_dtype_is_float(L->vw_t->dtype);
        }
    }
    if (!ok)
        return kn_fail(c->err, KN_ERR_ARG, "%s: %s* attributes are missing or of different lengths",
                       c->node->op_type, vp);
    return KN_OK;
}

/* Numbers interior nodes and leaves: idx[p] = node index (>= 0) or -(leaf + 1). */
static int legacy_number(kn_op_ctx *c, const te_legacy *L, te_model *m, int64_t *idx)
{
    m->n_nodes = m->n_leaves = 0;
    for (int64_t p = 0; p < L->n; p++) {
        int md = legacy_mode(L->modes[p]);
        if (md < 0 || md == TE_MEMBER)
            return kn_fail(c->err, KN_ERR_ARG, "%s: unknown node mode '%s'", c->node->op_type, L->modes[p]);
        idx[p] = md == 7 ? -(m->n_leaves++ + 1) : m->n_nodes++;
    }
    return KN_OK;
}

/* Resolves the child node id `child` of tree `tree` to a reference. */
static int legacy_child(kn_op_ctx *c, const te_key *keys, int64_t n, const int64_t *idx, int64_t tree,
                        int64_t child, int64_t *ref)
{
    int64_t p = te_key_find(keys, n, tree, child);
    if (p < 0)
        return kn_fail(c->err, KN_ERR_ARG, "%s: tree %lld has no node %lld", c->node->op_type, (long long)tree,
                       (long long)child);
    *ref = idx[p];
    return KN_OK;
}

static int legacy_fill_nodes(kn_op_ctx *c, const te_legacy *L, te_model *m, const te_key *keys,
                             const int64_t *idx, bool *is_child)
{
    for (int64_t p = 0; p < L->n; p++) {
        if (idx[p] < 0)
            continue;
        int64_t i = idx[p], tp, fp;
        int rc = legacy_child(c, keys, L->n, idx, L->treeids[p], L->tru[p], &m->tru[i]);
        if (rc || (rc = legacy_child(c, keys, L->n, idx, L->treeids[p], L->fal[p], &m->fal[i])))
            return rc;
        tp = te_key_find(keys, L->n, L->treeids[p], L->tru[p]);
        fp = te_key_find(keys, L->n, L->treeids[p], L->fal[p]);
        if (tp == p || fp == p)
            return kn_fail(c->err, KN_ERR_ARG, "%s: node %lld is its own child", c->node->op_type,
                           (long long)L->nodeids[p]);
        is_child[tp] = is_child[fp] = true;
        m->feat[i] = L->feat[p];
        m->mode[i] = (uint8_t)legacy_mode(L->modes[p]);
        m->miss[i] = L->miss && L->miss[p];
        m->split[i] = L->values ? L->values[p] : kn_load_f64(L->values_t->data, L->values_t->dtype, (size_t)p);
    }
    return KN_OK;
}

/* Trees in order of tree id; a tree's root is its first node (in attribute order)
 * that is nobody's child.  keys are sorted by (tree, node). */
static int legacy_roots(kn_op_ctx *c, const te_legacy *L, te_model *m, const te_key *keys,
                        const int64_t *idx, const bool *is_child)
{
    m->n_trees = 0;
    for (int64_t k = 0; k < L->n;) {
        int64_t tree = keys[k].tree, best = -1;
        for (; k < L->n && keys[k].tree == tree; k++)
            if (!is_child[keys[k].pos] && (best < 0 || keys[k].pos < best))
                best = keys[k].pos;
        if (best < 0)
            return kn_fail(c->err, KN_ERR_ARG, "%s: tree %lld has no root", c->node->op_type, (long long)tree);
        m->roots[m->n_trees++] = idx[best];
    }
    return KN_OK;
}

/* Groups the votes by leaf (counting sort). */
static int legacy_votes(kn_op_ctx *c, const te_legacy *L, te_model *m, const te_key *keys, const int64_t *idx)
{
    int64_t *leaf_of = malloc((size_t)(L->nv > 0 ? L->nv : 1) * sizeof(int64_t));
    if (!leaf_of)
        return kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    int rc = KN_OK;
    for (int64_t v = 0; v < L->nv && !rc; v++) {
        int64_t p = te_key_find(keys, L->n, L->vtree[v], L->vnode[v]);
        if (p < 0 || idx[p] >= 0)
            rc = kn_fail(c->err, KN_ERR_ARG, "%s: weight %lld refers to tree %lld node %lld, which is not a leaf",
                         c->node->op_type, (long long)v, (long long)L->vtree[v], (long long)L->vnode[v]);
        else
            leaf_of[v] = -(idx[p] + 1);
    }
    for (int64_t v = 0; v < L->nv && !rc; v++)
        m->leaf_start[leaf_of[v] + 1]++;
    for (int64_t l = 0; l < m->n_leaves && !rc; l++)
        m->leaf_start[l + 1] += m->leaf_start[l];
    int64_t *fill = rc ? NULL : calloc((size_t)m->n_leaves + 1, sizeof(int64_t));
    if (!rc && !fill)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    for (int64_t v = 0; v < L->nv && !rc; v++) {
        int64_t l = leaf_of[v], slot = m->leaf_start[l] + fill[l]++;
        m->vote_target[slot] = L->vid[v];
        m->vote_weight[slot] = L->vw ? L->vw[v] : kn_load_f64(L->vw_t->data, L->vw_t->dtype, (size_t)v);
    }
    free(fill);
    free(leaf_of);
    return rc;
}

static int legacy_base(kn_op_ctx *c, te_model *m)
{
    const float *bv;
    int nb = kn_attr_floats(c->node, "base_values", &bv);
    const kn_tensor *bt = nb < 0 ? kn_attr_tensor(c->node, "base_values_as_tensor") : NULL;
    int64_t cnt = nb >= 0 ? nb : bt ? bt->numel : 0;
    if (cnt == 0)
        return KN_OK;
    if (cnt != m->n_targets || (bt && !kn_dtype_is_float(bt->dtype)))
        return kn_fail(c->err, KN_ERR_ARG, "%s: base_values has %lld values for %lld targets",
                       c->node->op_type, (long long)cnt, (long long)m->n_targets);
    m->base = malloc((size_t)cnt * sizeof(double));
    if (!m->base)
        return kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    for (int64_t t = 0; t < cnt; t++)
        m->base[t] = nb >= 0 ? bv[t] : kn_load_f64(bt->data, bt->dtype, (size_t)t);
    return KN_OK;
}

static int legacy_aggregate(kn_op_ctx *c, te_model *m)
{
    const char *agg = kn_attr_string(c->node, "aggregate_function", "SUM");
    m->agg = !strcmp(agg, "AVERAGE") ? AGG_AVERAGE : !strcmp(agg, "SUM") ? AGG_SUM
           : !strcmp(agg, "MIN") ? AGG_MIN : !strcmp(agg, "MAX") ? AGG_MAX : -1;
    if (m->agg < 0)
        return kn_fail(c->err, KN_ERR_ARG, "%s: unknown aggregate_function '%s'", c->node->op_type, agg);
    return post_transform_of(c, &m->pt);
}

/* Builds the model of a TreeEnsembleRegressor, or of a TreeEnsembleClassifier with
 * n_classes classes (n_classes > 0). */
static int legacy_build(kn_op_ctx *c, te_model *m, int64_t n_classes)
{
    te_legacy L;
    int rc = legacy_read(c, n_classes > 0 ? "class_" : "target_", &L);
    if (rc || (rc = legacy_aggregate(c, m)))
        return rc;
    m->n_targets = n_classes > 0 ? n_classes : kn_attr_int(c->node, "n_targets", 1);
    if (m->n_targets < 1 || m->n_targets > (1 << 24))
        return kn_fail(c->err, KN_ERR_ARG, "%s n_targets must be a positive count", c->node->op_type);
    size_t nn = (size_t)(L.n > 0 ? L.n : 1);
    te_key *keys = malloc(nn * sizeof *keys);
    int64_t *idx = malloc(nn * sizeof *idx);
    bool *is_child = calloc(nn, sizeof *is_child);
    if (!keys || !idx || !is_child)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    for (int64_t p = 0; !rc && p < L.n; p++)
        keys[p] = (te_key){L.treeids[p], L.nodeids[p], p};
    if (!rc) {
        qsort(keys, (size_t)L.n, sizeof *keys, te_key_cmp);
        for (int64_t p = 1; !rc && p < L.n; p++)
            if (keys[p].tree == keys[p - 1].tree && keys[p].node == keys[p - 1].node)
                rc = kn_fail(c->err, KN_ERR_ARG, "%s: node id %lld appears twice in tree %lld",
                             c->node->op_type, (long long)keys[p].node, (long long)keys[p].tree);
    }
    if (!rc)
        rc = legacy_number(c, &L, m, idx);
    if (!rc) {
        m->n_votes = L.nv;
        m->n_trees = L.n; /* upper bound for the allocation */
        rc = te_alloc(m, c->err);
    }
    if (!rc)
        rc = legacy_fill_nodes(c, &L, m, keys, idx, is_child);
    if (!rc)
        rc = legacy_roots(c, &L, m, keys, idx, is_child);
    if (!rc)
        rc = legacy_votes(c, &L, m, keys, idx);
    if (!rc)
        rc = legacy_base(c, m);
    free(keys);
    free(idx);
    free(is_child);
    return rc ? rc : te_check(m, c->err);
}

static int run_tree_ensemble_regressor(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    if (!ml_numeric(c->in[0]->dtype))
        return kn_unsupported_dtype(c, c->in[0]->dtype);
    te_model m = {0};
    int rc = legacy_build(c, &m, 0);
    if (!rc)
        rc = te_run(c, &m, KN_F32, 0, NULL);
    te_free(&m);
    return rc;
}

/* Integer class labels of a classifier (string labels are not supported). */
static int class_labels(kn_op_ctx *c, const int64_t **labels, int64_t *n)
{
    if (kn_attr_find(c->node, "classlabels_strings"))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s with string class labels is not supported",
                       c->node->op_type);
    int k = kn_attr_ints(c->node, "classlabels_int64s", labels);
    if (k < 0)
        k = kn_attr_ints(c->node, "classlabels_ints", labels);
    if (k < 1)
        return kn_fail(c->err, KN_ERR_MODEL, "%s needs integer class labels", c->node->op_type);
    *n = k;
    return KN_OK;
}

/* TreeEnsembleClassifier with 3 or more classes: scores are summed votes plus
 * base values, post-transformed; the label is the best class.  The binary
 * encodings (one or two classes, scores derived from one column) are runtime
 * specific and not supported. */
static int run_tree_ensemble_classifier(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    if (!ml_numeric(c->in[0]->dtype))
        return kn_unsupported_dtype(c, c->in[0]->dtype);
    const int64_t *labels;
    int64_t n;
    int rc = class_labels(c, &labels, &n);
    if (rc)
        return rc;
    if (n < 3)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "binary TreeEnsembleClassifier is not supported");
    te_model m = {0};
    rc = legacy_build(c, &m, n);
    if (!rc)
        rc = te_run(c, &m, KN_F32, 1, labels);
    te_free(&m);
    return rc;
}

const kn_op_def kn_ops_ml[] = {
    {ML_DOMAIN, "ArrayFeatureExtractor", 1, run_array_feature_extractor, NULL, NULL},
    {ML_DOMAIN, "Binarizer", 1, run_binarizer, NULL, kn_infer_same_as_input0},
    {ML_DOMAIN, "LabelEncoder", 1, run_label_encoder, NULL, NULL},
    {ML_DOMAIN, "Normalizer", 1, run_normalizer, NULL, NULL},
    {ML_DOMAIN, "Scaler", 1, run_scaler, NULL, NULL},
    {ML_DOMAIN, "LinearRegressor", 1, run_linear_regressor, NULL, NULL},
    {ML_DOMAIN, "LinearClassifier", 1, run_linear_classifier, NULL, NULL},
    {ML_DOMAIN, "TreeEnsemble", 5, run_tree_ensemble, NULL, NULL},
    {ML_DOMAIN, "TreeEnsembleRegressor", 1, run_tree_ensemble_regressor, NULL, NULL},
    {ML_DOMAIN, "TreeEnsembleClassifier", 1, run_tree_ensemble_classifier, NULL, NULL},
    {0},
};
