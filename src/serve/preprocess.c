/* preprocess.c - resize (separable, antialiased bilinear), center crop, channel
 * conversion and normalisation of a decoded image into a float tensor.
 *
 * The resize follows the usual "triangle filter stretched by the shrink factor"
 * scheme: an output sample at resized position o sits at source position
 * (o + 0.5) * in/out - 0.5 and averages the source samples within `support`
 * = max(in/out, 1) of it, weighted 1 - distance/support.  When enlarging that is
 * plain bilinear interpolation; when shrinking every source pixel contributes, so
 * no aliasing.  Only the output pixels inside the crop window are computed: the
 * horizontal pass runs on the source rows the window needs, the vertical pass on
 * the window's rows.  Like Pillow, each pass rounds its result to an 8-bit value,
 * so the output equals torchvision's usual training pipeline on PIL images
 * (Resize(short) + CenterCrop + ToTensor + Normalize; sizes and crop offset as
 * torchvision computes them) up to a rare 1/255 where Pillow's fixed-point
 * weights round the other way. */
#include "serve/preprocess.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Largest crop side and resized side accepted. */
#define PP_MAX_SIDE 16384
#define PP_MAX_RESIZED ((int64_t)1 << 20)

/* Weights of one axis: output i (0 .. n-1 inside the crop window) reads source
 * samples start[i] .. start[i] + count[i] - 1 with weights w[i * taps ...]. */
typedef struct pp_axis {
    int n, taps;
    int *start, *count;
    float *w;
} pp_axis;

static void axis_free(pp_axis *a)
{
    free(a->start);
    free(a->count);
    free(a->w);
    memset(a, 0, sizeof *a);
}

/* A resize pass's result as Pillow stores it: rounded to 0..255. */
static float round_to_8bit(float v)
{
    v = floorf(v + 0.5f);
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

static float triangle(float t)
{
    t = fabsf(t);
    return t < 1.0f ? 1.0f - t : 0.0f;
}

/* Weights for the outputs offset .. offset + n - 1 of an in_size -> out_size resize. */
static void axis_fill_one(pp_axis *a, int i, int in_size, double scale, double support, int o)
{
    double center = (o + 0.5) * scale;
    int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
    if (lo < 0)
        lo = 0;
    if (hi > in_size)
        hi = in_size;
    if (hi - lo > a->taps)
        hi = lo + a->taps;
    float *w = a->w + (size_t)i * (size_t)a->taps, sum = 0;
    for (int x = lo; x < hi; x++)
        sum += w[x - lo] = triangle((float)((x - center + 0.5) / support));
    if (sum <= 0) { /* cannot happen for in_size >= 1, kept so weights always sum to 1 */
        lo = (int)fmin(fmax(floor(center), 0), in_size - 1);
        hi = lo + 1;
        w[0] = sum = 1;
    }
    for (int x = lo; x < hi; x++)
        w[x - lo] /= sum;
    a->start[i] = lo;
    a->count[i] = hi - lo;
}

static int axis_build(pp_axis *a, int in_size, int64_t out_size, int offset, int n, kn_error *err)
{
    double scale = (double)in_size / (double)out_size;
    double support = scale > 1 ? scale : 1;
    memset(a, 0, sizeof *a);
    a->n = n;
    a->taps = (int)ceil(support) * 2 + 1;
    a->start = malloc((size_t)n * sizeof(int));
    a->count = malloc((size_t)n * sizeof(int));
    a->w = calloc((size_t)n * (size_t)a->taps, sizeof(float));
    if (!a->start || !a->count || !a->w) {
        axis_free(a);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory for resize weights (%d x %d)", n, in_size);
    }
    for (int i = 0; i < n; i++)
        axis_fill_one(a, i, in_size, scale, support, offset + i);
    return KN_OK;
}

/* Python's round() of d / 2 (halves to even), as torchvision's CenterCrop uses. */
static int half_round_even(int64_t d)
{
    int64_t q = d / 2;
    if (d % 2 && q % 2)
        q++;
    return (int)q;
}

typedef struct pp_plan {
    int64_t rw, rh;        /* the resized image */
    int left, top;         /* crop window inside it */
    int sc, oc;            /* source and output channels */
    float mul[3], add[3];  /* per output channel: x * mul + add */
} pp_plan;

static int plan_sizes(const kn_serve_image *img, const kn_preprocess *pp, pp_plan *pl, kn_error *err)
{
    if (pp->resize_short <= 0) {
        pl->rw = pp->crop_w;
        pl->rh = pp->crop_h;
    } else {
        int64_t s = pp->resize_short;
        int shorter_is_w = img->width <= img->height;
        pl->rw = shorter_is_w ? s : s * img->width / img->height;
        pl->rh = shorter_is_w ? s * img->height / img->width : s;
        if (pl->rw > PP_MAX_RESIZED || pl->rh > PP_MAX_RESIZED)
            return kn_fail(err, KN_ERR_ARG, "preprocess: resizing %dx%d to short side %d is too large",
                           img->width, img->height, pp->resize_short);
        if (pl->rw < pp->crop_w || pl->rh < pp->crop_h)
            return kn_fail(err, KN_ERR_ARG,
                           "preprocess: crop %dx%d is larger than the image resized to %lldx%lld "
                           "(resize_short %d)", pp->crop_w, pp->crop_h, (long long)pl->rw,
                           (long long)pl->rh, pp->resize_short);
    }
    pl->left = half_round_even(pl->rw - pp->crop_w);
    pl->top = half_round_even(pl->rh - pp->crop_h);
    return KN_OK;
}

static int plan_build(const kn_serve_image *img, const kn_preprocess *pp, const float *out, size_t out_floats,
                      pp_plan *pl, kn_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || (img->channels != 1 && img->channels != 3))
        return kn_fail(err, KN_ERR_ARG, "preprocess: empty image or unsupported channel count");
    if (!pp || pp->crop_h <= 0 || pp->crop_w <= 0 || pp->crop_h > PP_MAX_SIDE || pp->crop_w > PP_MAX_SIDE)
        return kn_fail(err, KN_ERR_ARG, "preprocess: crop size must be 1..%d on each side", PP_MAX_SIDE);
    if (pp->channels != 1 && pp->channels != 3)
        return kn_fail(err, KN_ERR_ARG, "preprocess: channels must be 1 or 3, not %d", pp->channels);
    if (pp->resize_short < 0 || pp->resize_short > PP_MAX_SIDE)
        return kn_fail(err, KN_ERR_ARG, "preprocess: resize_short must be 0..%d, not %d", PP_MAX_SIDE,
                       pp->resize_short);
    size_t need = (size_t)pp->channels * (size_t)pp->crop_h * (size_t)pp->crop_w;
    if (!out || out_floats < need)
        return kn_fail(err, KN_ERR_ARG, "preprocess: output holds %zu floats, %zu needed", out ? out_floats : 0,
                       need);
    pl->sc = img->channels;
    pl->oc = pp->channels;
    float scale = pp->scale != 0 ? pp->scale : 1.0f;
    for (int c = 0; c < pl->oc; c++) {
        if (!(pp->std[c] != 0) || !isfinite(pp->std[c]) || !isfinite(pp->mean[c]))
            return kn_fail(err, KN_ERR_ARG, "preprocess: mean/std of channel %d must be finite, std non-zero", c);
        pl->mul[c] = scale / pp->std[c];
        pl->add[c] = -pp->mean[c] / pp->std[c];
    }
    return plan_sizes(img, pp, pl, err);
}

/* Horizontal pass: source rows y0 .. y0 + rows - 1 into rows x crop_w x sc floats.
 * The channels of a pixel are accumulated together (one walk over the taps). */
static void resize_rows(const kn_serve_image *img, const pp_axis *ax, int y0, int rows, float *tmp)
{
    int sc = img->channels;
    for (int r = 0; r < rows; r++) {
        const uint8_t *src = img->pixels + (size_t)(y0 + r) * (size_t)img->width * (size_t)sc;
        float *dst = tmp + (size_t)r * (size_t)ax->n * (size_t)sc;
        for (int i = 0; i < ax->n; i++, dst += sc) {
            const float *w = ax->w + (size_t)i * (size_t)ax->taps;
            const uint8_t *s = src + (size_t)ax->start[i] * (size_t)sc;
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < ax->count[i]; k++, s += sc)
                for (int c = 0; c < sc; c++)
                    acc[c] += w[k] * s[c];
            for (int c = 0; c < sc; c++)
                dst[c] = round_to_8bit(acc[c]);
        }
    }
}

/* One resized, cropped row of `w` pixels (sc channels) -> output row y. */
static void emit_row(const pp_plan *pl, const kn_preprocess *pp, const float *row, int y, float *out)
{
    int w = pp->crop_w, bgr = pp->bgr && pl->oc == 3;
    size_t plane = (size_t)pp->crop_h * (size_t)w;
    for (int x = 0; x < w; x++) {
        const float *s = row + (size_t)x * (size_t)pl->sc;
        float v[3];
        if (pl->oc == 1)
            v[0] = pl->sc == 1 ? s[0] : 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2];
        else
            for (int c = 0; c < 3; c++)
                v[c] = pl->sc == 1 ? s[0] : s[bgr ? 2 - c : c];
        size_t px = (size_t)y * (size_t)w + (size_t)x;
        for (int c = 0; c < pl->oc; c++) {
            float o = v[c] * pl->mul[c] + pl->add[c];
            if (pp->nhwc)
                out[px * (size_t)pl->oc + (size_t)c] = o;
            else
                out[(size_t)c * plane + px] = o;
        }
    }
}

/* Vertical pass over the horizontally resized rows, then emit. */
static void resize_columns(const pp_plan *pl, const kn_preprocess *pp, const pp_axis *ay, const float *tmp,
                           int y0, float *row, float *out)
{
    size_t stride = (size_t)pp->crop_w * (size_t)pl->sc;
    for (int y = 0; y < ay->n; y++) {
        const float *w = ay->w + (size_t)y * (size_t)ay->taps;
        const float *src = tmp + (size_t)(ay->start[y] - y0) * stride;
        memset(row, 0, stride * sizeof(float));
        for (int k = 0; k < ay->count[y]; k++) /* row-wise: contiguous, vectorizes */
            for (size_t j = 0; j < stride; j++)
                row[j] += w[k] * src[(size_t)k * stride + j];
        for (size_t j = 0; j < stride; j++)
            row[j] = round_to_8bit(row[j]);
        emit_row(pl, pp, row, y, out);
    }
}

static int run_resize(const kn_serve_image *img, const kn_preprocess *pp, const pp_plan *pl, const pp_axis *ax,
                      const pp_axis *ay, float *out, kn_error *err)
{
    int y0 = ay->start[0], y1 = y0;
    for (int y = 0; y < ay->n; y++) {
        if (ay->start[y] < y0)
            y0 = ay->start[y];
        if (ay->start[y] + ay->count[y] > y1)
            y1 = ay->start[y] + ay->count[y];
    }
    size_t stride = (size_t)pp->crop_w * (size_t)pl->sc;
    float *tmp = malloc((size_t)(y1 - y0) * stride * sizeof(float));
    float *row = malloc(stride * sizeof(float));
    if (!tmp || !row) {
        free(tmp);
        free(row);
        return kn_fail(err, KN_ERR_NOMEM, "preprocess: out of memory for %d resized rows", y1 - y0);
    }
    resize_rows(img, ax, y0, y1 - y0, tmp);
    resize_columns(pl, pp, ay, tmp, y0, row, out);
    free(tmp);
    free(row);
    return KN_OK;
}

int kn_preprocess_image(const kn_serve_image *img, const kn_preprocess *pp, float *out, size_t out_floats,
                        kn_error *err)
{
    pp_plan pl = {0};
    int rc = plan_build(img, pp, out, out_floats, &pl, err);
    if (rc)
        return rc;
    pp_axis ax, ay;
    if ((rc = axis_build(&ax, img->width, pl.rw, pl.left, pp->crop_w, err)))
        return rc;
    if ((rc = axis_build(&ay, img->height, pl.rh, pl.top, pp->crop_h, err))) {
        axis_free(&ax);
        return rc;
    }
    rc = run_resize(img, pp, &pl, &ax, &ay, out, err);
    axis_free(&ax);
    axis_free(&ay);
    return rc;
}
