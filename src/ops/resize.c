/* resize.c - resampling operators: Resize (opsets 10-19), Upsample (7, 9),
 * GridSample (16, 20) and AffineGrid (20).
 *
 * Resize is separable: for every resized axis we precompute, per output index,
 * a small list of (input index, weight) taps - one tap for nearest, two for
 * linear, four for cubic, more with antialias - and apply the axes one after the
 * other.  Nearest mode copies elements (exact for every dtype); linear and cubic
 * accumulate in double.  Coordinates map from output to input space with the
 * coordinate_transformation_mode formulas of the ONNX spec; tap neighbourhoods
 * follow the spec's convention that the fractional ratio lies in (0, 1], and
 * taps outside the input are clamped to the edge (or dropped and the weights
 * renormalized with exclude_outside). */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ parameters */

typedef enum { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC } interp_mode;

typedef enum {
    CTM_HALF_PIXEL,
    CTM_HALF_PIXEL_SYMMETRIC,
    CTM_PYTORCH_HALF_PIXEL,
    CTM_ALIGN_CORNERS,
    CTM_ASYMMETRIC,
    CTM_TF_HALF_PIXEL_FOR_NN,
    CTM_TF_CROP_AND_RESIZE,
} coord_mode;

typedef enum {
    NEAREST_ROUND_PREFER_FLOOR,
    NEAREST_ROUND_PREFER_CEIL,
    NEAREST_FLOOR,
    NEAREST_CEIL,
    NEAREST_SIMPLE, /* Upsample / Resize-10: floor, or ceil when downsampling */
} nearest_mode;

typedef struct resize_params {
    interp_mode mode;
    coord_mode ctm;
    nearest_mode nearest;
    double cubic_a;
    bool exclude_outside, antialias;
    double extrapolation;
} resize_params;

static int parse_mode(kn_op_ctx *c, const char *s, interp_mode *m)
{
    if (!strcmp(s, "nearest"))
        *m = MODE_NEAREST;
    else if (!strcmp(s, "linear") || !strcmp(s, "bilinear"))
        *m = MODE_LINEAR;
    else if (!strcmp(s, "cubic") || !strcmp(s, "bicubic"))
        *m = MODE_CUBIC;
    else
        return kn_fail(c->err, KN_ERR_ARG, "%s mode '%s' is not valid", c->node->op_type, s);
    return KN_OK;
}

static int parse_ctm(kn_op_ctx *c, const char *s, coord_mode *m)
{
    static const struct { const char *name; coord_mode mode; } names[] = {
        {"half_pixel", CTM_HALF_PIXEL},
        {"half_pixel_symmetric", CTM_HALF_PIXEL_SYMMETRIC},
        {"pytorch_half_pixel", CTM_PYTORCH_HALF_PIXEL},
        {"align_corners", CTM_ALIGN_CORNERS},
        {"asymmetric", CTM_ASYMMETRIC},
        {"tf_half_pixel_for_nn", CTM_TF_HALF_PIXEL_FOR_NN},
        {"tf_crop_and_resize", CTM_TF_CROP_AND_RESIZE},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strcmp(s, names[i].name)) {
            *m = names[i].mode;
            return KN_OK;
        }
    }
    return kn_fail(c->err, KN_ERR_ARG, "Resize coordinate_transformation_mode '%s' is not valid", s);
}

static int parse_nearest(kn_op_ctx *c, const char *s, nearest_mode *m)
{
    if (!strcmp(s, "round_prefer_floor"))
        *m = NEAREST_ROUND_PREFER_FLOOR;
    else if (!strcmp(s, "round_prefer_ceil"))
        *m = NEAREST_ROUND_PREFER_CEIL;
    else if (!strcmp(s, "floor"))
        *m = NEAREST_FLOOR;
    else if (!strcmp(s, "ceil"))
        *m = NEAREST_CEIL;
    else
        return kn_fail(c->err, KN_ERR_ARG, "Resize nearest_mode '%s' is not valid", s);
    return KN_OK;
}

/* ---------------------------------------------------------- tap building */

/* Per-axis resampling taps: output index j reads idx[j*ntaps + t] with weight
 * w[j*ntaps + t]; ext[j] set means the output is the extrapolation value. */
typedef struct resize_axis {
    int64_t in_len, out_len, ntaps;
    int64_t *idx;
    double *w;
    unsigned char *ext;
} resize_axis;

static void free_axis(resize_axis *a)
{
    free(a->idx);
    free(a->w);
    free(a->ext);
    memset(a, 0, sizeof *a);
}

/* Output coordinate x -> input coordinate.  out_f is scale * in_len (the
 * un-rounded output length), out_i the integer one.  Sets *outside for
 * tf_crop_and_resize positions outside the input. */
static double map_coord(const resize_params *rp, double x, double scale, int64_t in_len,
                        int64_t out_i, double roi_s, double roi_e, bool *outside)
{
    double in = (double)in_len, out_f = scale * in, r;
    *outside = false;
    switch (rp->ctm) {
    case CTM_HALF_PIXEL:
        return (x + 0.5) / scale - 0.5;
    case CTM_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out_i / out_f, center = in / 2;
        return center * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case CTM_PYTORCH_HALF_PIXEL:
        return out_f == 1.0 ? -0.5 : (x + 0.5) / scale - 0.5;
    case CTM_ALIGN_CORNERS:
        return out_f == 1.0 ? 0.0 : x * (in - 1) / (out_f - 1);
    case CTM_ASYMMETRIC:
        return x / scale;
    case CTM_TF_HALF_PIXEL_FOR_NN:
        return (x + 0.5) / scale;
    case CTM_TF_CROP_AND_RESIZE:
        if (out_f == 1.0)
            r = (roi_e - roi_s) * (in - 1) / 2;
        else
            r = x * (roi_e - roi_s) * (in - 1) / (out_f - 1);
        r += roi_s * (in - 1);
        *outside = !(r >= 0 && r <= in - 1);
        return r;
    }
    return x;
}

/* Index of the nearest input for coordinate x. */
static int64_t nearest_index(const resize_params *rp, double x, double scale)
{
    double f = floor(x);
    if (x == f)
        return (int64_t)f;
    double frac = x - f;
    switch (rp->nearest) {
    case NEAREST_ROUND_PREFER_FLOOR:
        return (int64_t)(frac <= 0.5 ? f : f + 1);
    case NEAREST_ROUND_PREFER_CEIL:
        return (int64_t)(frac < 0.5 ? f : f + 1);
    case NEAREST_FLOOR:
        return (int64_t)f;
    case NEAREST_CEIL:
        return (int64_t)f + 1;
    case NEAREST_SIMPLE:
        return (int64_t)(scale < 1 ? f + 1 : f);
    }
    return (int64_t)f;
}

/* Keys cubic convolution kernel with parameter a. */
static double cubic_kernel(double t, double a)
{
    t = fabs(t);
    if (t <= 1)
        return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2)
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0.0;
}

/* First tap offset (relative to the integer part) and tap count of the filter. */
static void filter_support(const resize_params *rp, double scale, int64_t *start, int64_t *count)
{
    double s = rp->antialias && scale < 1 ? scale : 1.0;
    double radius = rp->mode == MODE_CUBIC ? 2.0 : 1.0;
    double lo = floor(-radius / s);
    *start = (lo < -1e9 ? (int64_t)-1e9 : (int64_t)lo) + 1; /* build_axis caps the count */
    *count = 2 - 2 * *start;
}

/* Taps for linear / cubic (optionally antialiased) at coordinate x. */
static void filter_taps(const resize_params *rp, double x, double scale, int64_t in_len,
                        int64_t start, int64_t count, int64_t *idx, double *w)
{
    double s = rp->antialias && scale < 1 ? scale : 1.0;
    double base = ceil(x) - 1; /* the ratio x - base lies in (0, 1] */
    double ratio = x - base, sum = 0;
    for (int64_t t = 0; t < count; t++) {
        double d = ((double)(start + t) - ratio) * s;
        double v = rp->mode == MODE_CUBIC ? cubic_kernel(d, rp->cubic_a) : fmax(0.0, 1 - fabs(d));
        int64_t i = (int64_t)base + start + t;
        if (rp->exclude_outside && (i < 0 || i >= in_len))
            v = 0;
        idx[t] = i < 0 ? 0 : i >= in_len ? in_len - 1 : i;
        w[t] = v;
        sum += v;
    }
    if ((rp->antialias || rp->exclude_outside) && sum != 0)
        for (int64_t t = 0; t < count; t++)
            w[t] /= sum;
}

static int build_axis(kn_op_ctx *c, const resize_params *rp, int64_t in_len, int64_t out_len,
                      double scale, double roi_s, double roi_e, resize_axis *a)
{
    memset(a, 0, sizeof *a);
    a->in_len = in_len;
    a->out_len = out_len;
    int64_t start = 0, count = 1;
    if (rp->mode != MODE_NEAREST)
        filter_support(rp, scale, &start, &count);
    if (count < 1 || count > 4 * in_len + 8)
        count = count < 1 ? 1 : 4 * in_len + 8;
    a->ntaps = count;
    int64_t n;
    if (!kn_mul_ok(out_len, count, &n) || n > ((int64_t)1 << 32))
        return kn_fail(c->err, KN_ERR_ARG, "Resize filter is too large");
    a->idx = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    a->w = malloc(sizeof(double) * (size_t)(n ? n : 1));
    a->ext = calloc((size_t)(out_len ? out_len : 1), 1);
    if (!a->idx || !a->w || !a->ext)
        return kn_op_nomem(c);
    for (int64_t j = 0; j < out_len; j++) {
        bool outside;
        double x = map_coord(rp, (double)j, scale, in_len, out_len, roi_s, roi_e, &outside);
        int64_t *ij = a->idx + j * count;
        double *wj = a->w + j * count;
        if (outside || !isfinite(x)) {
            a->ext[j] = 1;
            for (int64_t t = 0; t < count; t++) {
                ij[t] = 0;
                wj[t] = 0;
            }
            continue;
        }
        if (rp->mode == MODE_NEAREST) {
            int64_t i = nearest_index(rp, x, scale);
            ij[0] = i < 0 ? 0 : i >= in_len ? in_len - 1 : i;
            wj[0] = 1;
        } else {
            filter_taps(rp, x, scale, in_len, start, count, ij, wj);
        }
    }
    return KN_OK;
}

/* True when the axis maps every output index to the same input index. */
static bool axis_is_identity(const resize_axis *a)
{
    if (a->in_len != a->out_len)
        return false;
    for (int64_t j = 0; j < a->out_len; j++) {
        if (a->ext[j])
            return false;
        for (int64_t t = 0; t < a->ntaps; t++) {
            double w = a->w[j * a->ntaps + t];
            if (w != 0 && (w != 1 || a->idx[j * a->ntaps + t] != j))
                return false;
        }
    }
    return true;
}

/* ------------------------------------------------------- separable passes */

/* One nearest pass over raw elements of size es: dst[o, j, k] = src[o, idx[j], k]. */
static void pass_nearest(const char *src, char *dst, size_t es, int64_t outer, int64_t inner,
                         const resize_axis *a, const char *ext_elem)
{
    size_t row = es * (size_t)inner;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < a->out_len; j++) {
            char *d = dst + ((size_t)(o * a->out_len + j)) * row;
            if (a->ext[j]) {
                for (int64_t k = 0; k < inner; k++)
                    memcpy(d + (size_t)k * es, ext_elem, es);
            } else {
                memcpy(d, src + ((size_t)(o * a->in_len + a->idx[j * a->ntaps])) * row, row);
            }
        }
    }
}

/* One weighted pass over doubles: dst[o, j, k] = sum_t w * src[o, idx, k]. */
static void pass_filter(const double *src, double *dst, int64_t outer, int64_t inner,
                        const resize_axis *a, double ext_value)
{
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < a->out_len; j++) {
            double *d = dst + (o * a->out_len + j) * inner;
            if (a->ext[j]) {
                for (int64_t k = 0; k < inner; k++)
                    d[k] = ext_value;
                continue;
            }
            for (int64_t k = 0; k < inner; k++)
                d[k] = 0;
            for (int64_t t = 0; t < a->ntaps; t++) {
                double w = a->w[j * a->ntaps + t];
                if (w == 0)
                    continue;
                const double *s = src + (o * a->in_len + a->idx[j * a->ntaps + t]) * inner;
                for (int64_t k = 0; k < inner; k++)
                    d[k] += w * s[k];
            }
        }
    }
}

/* Apply the per-axis taps to x, writing y (allocated by the caller with the
 * output shape).  axes[d] is NULL for axes that are not resized. */
static int apply_resize(kn_op_ctx *c, const resize_params *rp, const kn_tensor *x,
                        resize_axis *const *axes, kn_tensor *y)
{
    int r = x->rank;
    bool nearest = rp->mode == MODE_NEAREST;
    size_t es = nearest ? kn_dtype_size(x->dtype) : sizeof(double);
    int64_t cur[KN_MAX_RANK], cur_n = x->numel;
    memcpy(cur, x->dims, sizeof(int64_t) * (size_t)r);
    /* working buffers: the current data and the next pass's output */
    char *buf = malloc(es * (size_t)(cur_n ? cur_n : 1));
    if (!buf)
        return kn_op_nomem(c);
    if (nearest) {
        memcpy(buf, x->data, es * (size_t)cur_n);
    } else {
        for (int64_t i = 0; i < cur_n; i++)
            ((double *)buf)[i] = kn_load_f64(x->data, x->dtype, (size_t)i);
    }
    char ext_elem[8] = {0};
    if (nearest)
        kn_store_f64(ext_elem, x->dtype, 0, rp->extrapolation);
    /* the axes to resample, shrinking ones first to keep intermediates small */
    int order[KN_MAX_RANK], n_order = 0;
    for (int sweep = 0; sweep < 2; sweep++)
        for (int d = 0; d < r; d++)
            if (axes[d] && !axis_is_identity(axes[d]) &&
                (axes[d]->out_len > axes[d]->in_len) == (sweep == 1))
                order[n_order++] = d;
    for (int k = 0; k < n_order; k++) {
        int d = order[k];
        int64_t outer = 1, inner = 1, next_n;
        for (int i = 0; i < d; i++)
            outer *= cur[i];
        for (int i = d + 1; i < r; i++)
            inner *= cur[i];
        if (!kn_mul_ok(outer * inner, axes[d]->out_len, &next_n) ||
            next_n > (int64_t)(KN_MAX_TENSOR_BYTES / es)) {
            free(buf);
            return kn_fail(c->err, KN_ERR_ARG, "Resize output is too large");
        }
        char *next = malloc(es * (size_t)(next_n ? next_n : 1));
        if (!next) {
            free(buf);
            return kn_op_nomem(c);
        }
        if (nearest)
            pass_nearest(buf, next, es, outer, inner, axes[d], ext_elem);
        else
            pass_filter((const double *)buf, (double *)next, outer, inner, axes[d],
                        rp->extrapolation);
        free(buf);
        buf = next;
        cur[d] = axes[d]->out_len;
        cur_n = next_n;
    }
    if (nearest) {
        memcpy(y->data, buf, es * (size_t)y->numel);
    } else {
        for (int64_t i = 0; i < y->numel; i++)
            kn_store_f64(y->data, y->dtype, (size_t)i, ((double *)buf)[i]);
    }
    free(buf);
    return KN_OK;
}

/* ------------------------------------------------------------- shapes */

typedef struct resize_request {
    int naxes;
    int axes[KN_MAX_RANK];
    bool have_sizes;
    double scales[KN_MAX_RANK];  /* per data axis (1 where not resized) */
    int64_t sizes[KN_MAX_RANK];  /* per data axis */
    double roi_s[KN_MAX_RANK], roi_e[KN_MAX_RANK];
} resize_request;

static int read_axes_attr(kn_op_ctx *c, int rank, resize_request *rq)
{
    const int64_t *av;
    int n = kn_attr_ints(c->node, "axes", &av);
    if (n < 0) {
        rq->naxes = rank;
        for (int i = 0; i < rank; i++)
            rq->axes[i] = i;
        return KN_OK;
    }
    if (n > rank)
        return kn_fail(c->err, KN_ERR_ARG, "Resize has %d axes for rank %d", n, rank);
    bool seen[KN_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        int rc = kn_norm_axis(av[i], rank, &rq->axes[i], c->err);
        if (rc)
            return rc;
        if (seen[rq->axes[i]])
            return kn_fail(c->err, KN_ERR_ARG, "Resize axes repeat axis %lld", (long long)av[i]);
        seen[rq->axes[i]] = true;
    }
    rq->naxes = n;
    return KN_OK;
}

static int read_floats(kn_op_ctx *c, const kn_tensor *t, double *out, int max, const char *what)
{
    if (!kn_dtype_is_float(t->dtype))
        return kn_fail(c->err, KN_ERR_ARG, "Resize %s must be a float tensor", what), -1;
    if (t->numel > max)
        return kn_fail(c->err, KN_ERR_ARG, "Resize %s has %lld values, at most %d expected", what,
                       (long long)t->numel, max), -1;
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = kn_load_f64(t->data, t->dtype, (size_t)i);
    return (int)t->numel;
}

static int read_roi(kn_op_ctx *c, const kn_tensor *roi, int rank, resize_request *rq)
{
    for (int i = 0; i < rank; i++) {
        rq->roi_s[i] = 0;
        rq->roi_e[i] = 1;
    }
    if (!roi || roi->numel == 0)
        return KN_OK;
    double v[2 * KN_MAX_RANK];
    int n = read_floats(c, roi, v, 2 * KN_MAX_RANK, "roi");
    if (n < 0)
        return c->err->code;
    if (n != 2 * rq->naxes)
        return kn_fail(c->err, KN_ERR_ARG, "Resize roi has %d values, expected %d", n,
                       2 * rq->naxes);
    for (int i = 0; i < rq->naxes; i++) {
        rq->roi_s[rq->axes[i]] = v[i];
        rq->roi_e[rq->axes[i]] = v[i + rq->naxes];
    }
    return KN_OK;
}

/* From scales or sizes to per-axis scales and output sizes. */
static int resolve_shape(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *scales,
                         const kn_tensor *sizes, resize_request *rq)
{
    int r = x->rank;
    for (int i = 0; i < r; i++) {
        rq->scales[i] = 1.0;
        rq->sizes[i] = x->dims[i];
    }
    if (sizes && sizes->numel > 0) {
        int64_t v[KN_MAX_RANK];
        int n = kn_read_ints(sizes, v, KN_MAX_RANK, c->err);
        if (n < 0)
            return c->err->code;
        if (n != rq->naxes)
            return kn_fail(c->err, KN_ERR_ARG, "Resize sizes has %d values, expected %d", n, rq->naxes);
        const char *pol = kn_attr_string(c->node, "keep_aspect_ratio_policy", "stretch");
        bool not_larger = !strcmp(pol, "not_larger"), not_smaller = !strcmp(pol, "not_smaller");
        if (!not_larger && !not_smaller && strcmp(pol, "stretch"))
            return kn_fail(c->err, KN_ERR_ARG, "Resize keep_aspect_ratio_policy '%s' is not valid", pol);
        double keep = not_larger ? INFINITY : 0;
        for (int i = 0; i < n; i++) {
            int a = rq->axes[i];
            if (v[i] < 0)
                return kn_fail(c->err, KN_ERR_ARG, "Resize sizes must not be negative");
            if (x->dims[a] == 0 && v[i] > 0)
                return kn_fail(c->err, KN_ERR_ARG, "Resize cannot enlarge an empty axis");
            rq->sizes[a] = v[i];
            rq->scales[a] = x->dims[a] ? (double)v[i] / (double)x->dims[a] : 1.0;
            keep = not_larger ? fmin(keep, rq->scales[a]) : fmax(keep, rq->scales[a]);
        }
        if (not_larger || not_smaller) {
            for (int i = 0; i < n; i++) {
                int a = rq->axes[i];
                rq->scales[a] = keep;
                double out = keep * (double)x->dims[a] + 0.5;
                if (!(out < 9e15))
                    return kn_fail(c->err, KN_ERR_ARG, "Resize output is too large");
                rq->sizes[a] = (int64_t)out;
            }
        }
        rq->have_sizes = true;
        return KN_OK;
    }
    if (!scales || scales->numel == 0)
        return kn_fail(c->err, KN_ERR_ARG, "Resize needs scales or sizes");
    double v[KN_MAX_RANK];
    int n = read_floats(c, scales, v, KN_MAX_RANK, "scales");
    if (n < 0)
        return c->err->code;
    if (n != rq->naxes)
        return kn_fail(c->err, KN_ERR_ARG, "Resize scales has %d values, expected %d", n, rq->naxes);
    for (int i = 0; i < n; i++) {
        int a = rq->axes[i];
        if (!(v[i] > 0) || !isfinite(v[i]))
            return kn_fail(c->err, KN_ERR_ARG, "Resize scale %g is not positive", v[i]);
        double out = floor(v[i] * (double)x->dims[a]);
        if (out > 9e15)
            return kn_fail(c->err, KN_ERR_ARG, "Resize output is too large");
        rq->scales[a] = v[i];
        rq->sizes[a] = (int64_t)out;
    }
    return KN_OK;
}

/* Build taps for every axis that changes, allocate Y and resample. */
static int resize_run(kn_op_ctx *c, const resize_params *rp, const kn_tensor *x,
                      const resize_request *rq)
{
    int r = x->rank, rc = KN_OK;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, r, rq->sizes);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    resize_axis store[KN_MAX_RANK];
    resize_axis *axes[KN_MAX_RANK] = {NULL};
    memset(store, 0, sizeof store);
    for (int d = 0; d < r && !rc; d++) {
        bool roi_used = rp->ctm == CTM_TF_CROP_AND_RESIZE;
        if (rq->sizes[d] == x->dims[d] && rq->scales[d] == 1.0 && !roi_used)
            continue;
        rc = build_axis(c, rp, x->dims[d], rq->sizes[d], rq->scales[d], rq->roi_s[d],
                        rq->roi_e[d], &store[d]);
        axes[d] = &store[d];
    }
    if (!rc)
        rc = apply_resize(c, rp, x, axes, y);
    for (int d = 0; d < r; d++)
        free_axis(&store[d]);
    return rc;
}

static bool resize_dtype_ok(kn_dtype t, interp_mode m)
{
    if (kn_dtype_size(t) == 0 || !kn_dtype_supported(t))
        return false;
    return m == MODE_NEAREST || t != KN_BOOL;
}

/* ------------------------------------------------------------------ Resize */

static int resize_attrs(kn_op_ctx *c, resize_params *rp)
{
    int rc;
    memset(rp, 0, sizeof *rp);
    if ((rc = parse_mode(c, kn_attr_string(c->node, "mode", "nearest"), &rp->mode)))
        return rc;
    if (c->opset < 11) { /* Resize-10: asymmetric coordinates, simple nearest */
        rp->ctm = CTM_ASYMMETRIC;
        rp->nearest = NEAREST_SIMPLE;
        rp->cubic_a = -0.75;
        return rp->mode == MODE_CUBIC
                   ? kn_fail(c->err, KN_ERR_ARG, "Resize-10 mode must be nearest or linear")
                   : KN_OK;
    }
    if ((rc = parse_ctm(c, kn_attr_string(c->node, "coordinate_transformation_mode", "half_pixel"),
                        &rp->ctm)) ||
        (rc = parse_nearest(c, kn_attr_string(c->node, "nearest_mode", "round_prefer_floor"),
                            &rp->nearest)))
        return rc;
    rp->cubic_a = kn_attr_float(c->node, "cubic_coeff_a", -0.75f);
    rp->exclude_outside = kn_attr_int(c->node, "exclude_outside", 0) != 0;
    rp->antialias = kn_attr_int(c->node, "antialias", 0) != 0 && rp->mode != MODE_NEAREST;
    rp->extrapolation = kn_attr_float(c->node, "extrapolation_value", 0.0f);
    return KN_OK;
}

static int run_resize(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    resize_params rp;
    resize_request rq;
    memset(&rq, 0, sizeof rq);
    int rc = resize_attrs(c, &rp);
    if (rc)
        return rc;
    if (!resize_dtype_ok(x->dtype, rp.mode))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "Resize input must have rank >= 1");
    const kn_tensor *roi = NULL, *scales, *sizes = NULL;
    if (c->opset < 11) {
        scales = kn_op_in(c, 1);
    } else {
        roi = kn_op_in(c, 1);
        scales = kn_op_in(c, 2);
        sizes = kn_op_in(c, 3);
    }
    if (c->opset >= 18) {
        if ((rc = read_axes_attr(c, x->rank, &rq)))
            return rc;
    } else { /* no axes attribute before opset 18: all axes */
        rq.naxes = x->rank;
        for (int i = 0; i < x->rank; i++)
            rq.axes[i] = i;
    }
    if ((rc = read_roi(c, rp.ctm == CTM_TF_CROP_AND_RESIZE ? roi : NULL, x->rank, &rq)) ||
        (rc = resolve_shape(c, x, scales, sizes, &rq)))
        return rc;
    return resize_run(c, &rp, x, &rq);
}

/* ---------------------------------------------------------------- Upsample */

static int run_upsample(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    resize_params rp;
    memset(&rp, 0, sizeof rp);
    int rc = parse_mode(c, kn_attr_string(c->node, "mode", "nearest"), &rp.mode);
    if (rc)
        return rc;
    if (rp.mode == MODE_CUBIC)
        return kn_fail(c->err, KN_ERR_ARG, "Upsample mode must be nearest or linear");
    rp.ctm = CTM_ASYMMETRIC;
    rp.nearest = NEAREST_SIMPLE;
    if (!resize_dtype_ok(x->dtype, rp.mode))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "Upsample input must have rank >= 1");
    resize_request rq;
    memset(&rq, 0, sizeof rq);
    rq.naxes = x->rank;
    for (int i = 0; i < x->rank; i++) {
        rq.axes[i] = i;
        rq.roi_s[i] = 0;
        rq.roi_e[i] = 1;
    }
    const kn_tensor *scales = kn_op_in(c, 1);
    kn_tensor attr_scales = {0};
    const float *fs;
    if (!scales) { /* Upsample-7: scales attribute */
        int n = kn_attr_floats(c->node, "scales", &fs);
        if (n < 0)
            return kn_fail(c->err, KN_ERR_ARG, "Upsample needs scales");
        int64_t d = n;
        if ((rc = kn_tensor_set_shape(&attr_scales, KN_F32, 1, &d, c->err)))
            return rc;
        attr_scales.data = (void *)fs;
        scales = &attr_scales;
    }
    if ((rc = resolve_shape(c, x, scales, NULL, &rq)))
        return rc;
    return resize_run(c, &rp, x, &rq);
}

/* -------------------------------------------------------------- GridSample */

typedef enum { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_padding;

typedef struct gs_params {
    interp_mode mode;
    gs_padding padding;
    bool align_corners;
    int nsp;
    int64_t dims[KN_MAX_RANK];  /* input spatial dims */
    double lo[KN_MAX_RANK], hi[KN_MAX_RANK]; /* reflection borders */
} gs_params;

/* Reflect x into [lo, hi] (the borders of the sampled area). */
static double gs_reflect(double x, double lo, double hi)
{
    double range = hi - lo;
    if (range <= 0)
        return lo;
    if (x < lo) {
        double dx = lo - x, n = floor(dx / range), r = dx - n * range;
        return fmod(n, 2) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, n = floor(dx / range), r = dx - n * range;
        return fmod(n, 2) == 0 ? hi - r : lo + r;
    }
    return x;
}

/* Input index for integer position i on axis d under the padding mode; -1 for zero. */
static int64_t gs_index(const gs_params *gp, int d, double i)
{
    int64_t len = gp->dims[d];
    if (isnan(i))
        return gp->padding == GS_ZEROS ? -1 : 0;
    if (gp->padding == GS_ZEROS)
        return (i >= 0 && i < (double)len) ? (int64_t)i : -1;
    if (gp->padding == GS_REFLECTION)
        i = trunc(gs_reflect(i, gp->lo[d], gp->hi[d]));
    if (i < 0)
        return 0;
    if (i > (double)(len - 1))
        return len - 1;
    return (int64_t)i;
}

/* Value of the plane at the N-D continuous input coordinate x[0..nsp). */
static double gs_sample(const gs_params *gp, const double *plane, const double *x)
{
    int n = gp->nsp;
    int taps = gp->mode == MODE_NEAREST ? 1 : gp->mode == MODE_LINEAR ? 2 : 4;
    double w[KN_MAX_RANK][4];
    int64_t idx[KN_MAX_RANK][4];
    for (int d = 0; d < n; d++) {
        double f = floor(x[d]), t = x[d] - f;
        if (gp->mode == MODE_NEAREST) {
            idx[d][0] = gs_index(gp, d, x[d]);
            w[d][0] = 1;
        } else if (gp->mode == MODE_LINEAR) {
            idx[d][0] = gs_index(gp, d, f);
            idx[d][1] = gs_index(gp, d, f + 1);
            w[d][0] = 1 - t;
            w[d][1] = t;
        } else {
            for (int k = 0; k < 4; k++) {
                idx[d][k] = gs_index(gp, d, f - 1 + k);
                w[d][k] = cubic_kernel(t - (k - 1), -0.75);
            }
        }
    }
    int64_t tp[KN_MAX_RANK] = {0};
    double acc = 0;
    for (;;) {
        double wt = 1;
        int64_t off = 0;
        bool zero = false;
        for (int d = 0; d < n; d++) {
            int64_t i = idx[d][tp[d]];
            if (i < 0)
                zero = true;
            wt *= w[d][tp[d]];
            off = off * gp->dims[d] + i;
        }
        if (!zero && wt != 0)
            acc += wt * plane[off];
        int d = n - 1;
        while (d >= 0 && ++tp[d] == taps)
            tp[d--] = 0;
        if (d < 0)
            break;
    }
    return acc;
}

/* Grid value g on axis d -> input coordinate, with rounding and border handling. */
static double gs_coord(const gs_params *gp, int d, double g)
{
    double len = (double)gp->dims[d];
    double x = gp->align_corners ? (g + 1) / 2 * (len - 1) : ((g + 1) * len - 1) / 2;
    if (gp->mode == MODE_NEAREST)
        x = nearbyint(x); /* half to even, as the conformance data (all ranks) */
    if (x < gp->lo[d] || x > gp->hi[d]) {
        if (gp->padding == GS_BORDER)
            x = x < 0 ? 0 : x > len - 1 ? len - 1 : x;
        else if (gp->padding == GS_REFLECTION)
            x = gs_reflect(x, gp->lo[d], gp->hi[d]);
    }
    return x;
}

static int gs_attrs(kn_op_ctx *c, gs_params *gp)
{
    const char *mode = kn_attr_string(c->node, "mode", c->opset >= 20 ? "linear" : "bilinear");
    const char *pad = kn_attr_string(c->node, "padding_mode", "zeros");
    int rc = parse_mode(c, mode, &gp->mode);
    if (rc)
        return rc;
    if (!strcmp(pad, "zeros"))
        gp->padding = GS_ZEROS;
    else if (!strcmp(pad, "border"))
        gp->padding = GS_BORDER;
    else if (!strcmp(pad, "reflection"))
        gp->padding = GS_REFLECTION;
    else
        return kn_fail(c->err, KN_ERR_ARG, "GridSample padding_mode '%s' is not valid", pad);
    gp->align_corners = kn_attr_int(c->node, "align_corners", 0) != 0;
    return KN_OK;
}

static int run_grid_sample(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *grid = c->in[1];
    /* X: float types up to opset 19, any tensor type from 20 (computed in double) */
    bool x_ok = kn_dtype_is_float(x->dtype) ||
                (c->opset >= 20 && kn_dtype_supported(x->dtype) && kn_dtype_size(x->dtype) > 0);
    if (!x_ok)
        return kn_unsupported_dtype(c, x->dtype);
    if (!kn_dtype_is_float(grid->dtype))
        return kn_unsupported_dtype(c, grid->dtype);
    gs_params gp;
    memset(&gp, 0, sizeof gp);
    int rc = gs_attrs(c, &gp);
    if (rc)
        return rc;
    int n = gp.nsp = x->rank - 2;
    if (n < 1 || grid->rank != x->rank || grid->dims[0] != x->dims[0] ||
        grid->dims[x->rank - 1] != n)
        return kn_fail(c->err, KN_ERR_ARG,
                       "GridSample needs X [N, C, d1..dr] and grid [N, D1..Dr, r] with r >= 1");
    int64_t dims[KN_MAX_RANK], plane = 1, outp = 1;
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int d = 0; d < n; d++) {
        gp.dims[d] = x->dims[d + 2];
        plane *= gp.dims[d];
        dims[d + 2] = grid->dims[d + 1];
        outp *= dims[d + 2];
        gp.lo[d] = gp.align_corners ? 0 : -0.5;
        gp.hi[d] = gp.align_corners ? (double)gp.dims[d] - 1 : (double)gp.dims[d] - 0.5;
    }
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    if (plane == 0)
        return kn_fail(c->err, KN_ERR_ARG, "GridSample input has an empty spatial axis");
    double *xd = malloc(sizeof(double) * (size_t)x->numel);
    if (!xd)
        return kn_op_nomem(c);
    for (int64_t i = 0; i < x->numel; i++)
        xd[i] = kn_load_f64(x->data, x->dtype, (size_t)i);
    int64_t nb = x->dims[0], ch = x->dims[1];
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t p = 0; p < outp; p++) {
            double coord[KN_MAX_RANK];
            for (int d = 0; d < n; d++) { /* grid's last axis lists x (innermost) first */
                double g = kn_load_f64(grid->data, grid->dtype, (size_t)((b * outp + p) * n + (n - 1 - d)));
                coord[d] = gs_coord(&gp, d, g);
            }
            for (int64_t cc = 0; cc < ch; cc++) {
                double v = gs_sample(&gp, xd + (b * ch + cc) * plane, coord);
                kn_store_f64(y->data, y->dtype, (size_t)((b * ch + cc) * outp + p), v);
            }
        }
    }
    free(xd);
    return KN_OK;
}

/* -------------------------------------------------------------- AffineGrid */

/* Normalized coordinate of index i along an axis of length len. */
static double affine_base(int64_t i, int64_t len, bool align_corners)
{
    if (align_corners)
        return len > 1 ? -1.0 + 2.0 * (double)i / (double)(len - 1) : -1.0;
    return (2.0 * (double)i + 1.0) / (double)len - 1.0;
}

static int run_affine_grid(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *theta = c->in[0], *size = c->in[1];
    if (!kn_dtype_is_float(theta->dtype))
        return kn_unsupported_dtype(c, theta->dtype);
    int64_t sz[5];
    int ns = kn_read_ints(size, sz, 5, c->err);
    if (ns < 0)
        return c->err->code;
    if (ns != 4 && ns != 5)
        return kn_fail(c->err, KN_ERR_ARG, "AffineGrid size must have 4 or 5 values");
    int nsp = ns - 2;
    if (theta->rank != 3 || theta->dims[0] != sz[0] || theta->dims[1] != nsp ||
        theta->dims[2] != nsp + 1)
        return kn_fail(c->err, KN_ERR_ARG, "AffineGrid theta must have shape [N, %d, %d]", nsp,
                       nsp + 1);
    for (int i = 0; i < ns; i++)
        if (sz[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "AffineGrid size must not be negative");
    bool ac = kn_attr_int(c->node, "align_corners", 0) != 0;
    int64_t dims[5] = {sz[0]};
    for (int i = 0; i < nsp; i++)
        dims[i + 1] = sz[i + 2];
    dims[nsp + 1] = nsp;
    kn_tensor *y = kn_op_output(c, 0, theta->dtype, nsp + 2, dims);
    if (!y)
        return c->err->code;
    int64_t d = nsp == 3 ? sz[2] : 1, h = sz[nsp == 3 ? 3 : 2], w = sz[nsp == 3 ? 4 : 3];
    size_t o = 0;
    for (int64_t b = 0; b < sz[0]; b++) {
        double th[12];
        for (int i = 0; i < nsp * (nsp + 1); i++)
            th[i] = kn_load_f64(theta->data, theta->dtype, (size_t)(b * nsp * (nsp + 1) + i));
        for (int64_t k = 0; k < d; k++) {
            for (int64_t i = 0; i < h; i++) {
                for (int64_t j = 0; j < w; j++) {
                    double base[4] = {affine_base(j, w, ac), affine_base(i, h, ac), 0, 1};
                    if (nsp == 3)
                        base[2] = affine_base(k, d, ac);
                    else
                        base[2] = 1;
                    for (int r = 0; r < nsp; r++) {
                        double v = 0;
                        for (int q = 0; q <= nsp; q++)
                            v += th[r * (nsp + 1) + q] * base[q];
                        kn_store_f64(y->data, y->dtype, o++, v);
                    }
                }
            }
        }
    }
    return KN_OK;
}

const kn_op_def kn_ops_resize[] = {
    {"", "Resize", 1, run_resize, NULL, NULL},
    {"", "Upsample", 1, run_upsample, NULL, NULL},
    {"", "GridSample", 1, run_grid_sample, NULL, NULL},
    {"", "AffineGrid", 1, run_affine_grid, NULL, NULL},
    {0},
};
