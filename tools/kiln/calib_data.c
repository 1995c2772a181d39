/* calib_data.c - the calibration data sources of calib_data.h and the --calib
 * options.  Two kinds of source:
 *   arrays - a .npy file, a folder of .npy files (sorted by name) or an IDX file:
 *            the first dim counts samples; for a float32 input integer data is
 *            scaled to [0,1] and a single --mean/--std then applies as
 *            (x - mean) / std; an integer or bool input (token ids) gets the
 *            values as they are;
 *   images - a folder of JPEG/PNG files (sorted by name), decoded and preprocessed
 *            by the server's code (serve/image_io.h, serve/preprocess.h): --resize,
 *            --crop, scale to [0,1], --mean/--std per channel, NCHW or NHWC as the
 *            model input says.
 * Batches never span two .npy files; with a model of fixed batch B every batch has
 * exactly B samples and a shorter remainder is dropped (counted in `dropped`). */
#include "calib_data.h"

#include "kiln.h"

#include "cli.h"
#include "core/file.h"
#include "formats/npy.h"
#include "idx.h"
#include "serve/image_io.h"
#include "serve/preprocess.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DEFAULT_BATCH 32

/* ---- options ---- */

const char cli_calib_help[] =
    "  --calib PATH             calibration data: a .npy batch, a folder of .npy batches,\n"
    "                           an IDX file (gzipped or not) or a folder of JPEG/PNG images;\n"
    "                           integer inputs (token ids) take .npy/IDX values as they are;\n"
    "                           a model with several inputs: a folder of <input name>.npy\n"
    "  --calib-method M         minmax (default), percentile or entropy (KL, TensorRT-style)\n"
    "  --percentile P           the percentile method's P (default 99.99)\n"
    "  --calib-limit N          use at most N samples\n"
    "  --calib-batch B          samples per run (default: the model's fixed batch, else a\n"
    "                           .npy file's own batch, else 32)\n"
    "  --resize N               images: scale the short side to N (default: straight to the crop)\n"
    "  --crop N                 images: center crop N x N (default: the model's input size)\n"
    "  --mean a[,b,c] --std a[,b,c]\n"
    "                           (x - mean) / std after scaling pixels / integers to [0,1]\n";

void cli_calib_opts_init(cli_calib_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = KN_CALIB_MINMAX;
    o->percentile = 99.99;
}

/* "a" or "a,b,c" into v[]; returns the count (1 or 3), 0 on junk. */
static int parse_floats3(const char *s, float *v)
{
    int n = 0;
    while (n < 3) {
        char *end;
        double x = strtod(s, &end);
        if (end == s || !isfinite(x))
            return 0;
        v[n++] = (float)x;
        if (*end == '\0')
            return n == 2 ? 0 : n;
        if (*end != ',')
            return 0;
        s = end + 1;
    }
    return 0;
}

static int parse_int_opt(const char *v, int64_t lo, int64_t *out, const char *opt, const char *cmd)
{
    if (!cli_parse_i64(v, out) || *out < lo || *out > (int64_t)1 << 30)
        return cli_error("%s: %s expects a number >= %lld", cmd, opt, (long long)lo), -1;
    return 1;
}

int cli_calib_option(cli_calib_opts *o, int argc, char **argv, int *i, const char *cmd)
{
    const char *a = argv[*i];
    static const char *const with_value[] = {"--calib", "--calib-method", "--percentile", "--calib-limit",
                                             "--calib-batch", "--resize", "--crop", "--mean", "--std"};
    size_t k = 0;
    while (k < sizeof with_value / sizeof *with_value && strcmp(a, with_value[k]))
        k++;
    if (k == sizeof with_value / sizeof *with_value)
        return 0;
    if (*i + 1 >= argc)
        return cli_error("%s: %s needs a value", cmd, a), -1;
    const char *v = argv[++*i];
    int64_t n;
    int m;
    switch (k) {
    case 0: o->calib = v; return 1;
    case 1:
        if ((m = kn_calib_method_parse(v)) < 0)
            return cli_error("%s: --calib-method expects minmax, percentile or entropy, not '%s'", cmd, v), -1;
        o->method = (kn_calib_method)m;
        return 1;
    case 2: {
        char *end;
        o->percentile = strtod(v, &end);
        if (*end || !(o->percentile > 0 && o->percentile <= 100))
            return cli_error("%s: --percentile expects a number in (0, 100]", cmd), -1;
        return 1;
    }
    case 3: return parse_int_opt(v, 1, &o->limit, a, cmd);
    case 4: return parse_int_opt(v, 1, &o->batch, a, cmd);
    case 5: return (m = parse_int_opt(v, 1, &n, a, cmd)) > 0 ? (o->resize = (int)n, 1) : m;
    case 6: return (m = parse_int_opt(v, 1, &n, a, cmd)) > 0 ? (o->crop = (int)n, 1) : m;
    default: {
        bool mean = k == 7;
        int cnt = parse_floats3(v, mean ? o->mean : o->std);
        if (!cnt)
            return cli_error("%s: %s expects one or three comma-separated numbers", cmd, a), -1;
        for (int c = 0; !mean && c < cnt; c++)
            if (o->std[c] == 0)
                return cli_error("%s: --std must not be 0", cmd), -1;
        *(mean ? &o->n_mean : &o->n_std) = cnt;
        return 1;
    }
    }
}

/* ---- the source ---- */

typedef enum src_kind { SRC_ARRAYS, SRC_IMAGES } src_kind;

struct calib_data {
    cli_calib_opts o;
    src_kind kind;
    kn_dtype dtype;                 /* the model input's */
    int rank;
    int64_t dims[KN_MAX_RANK];      /* < 0: not fixed */
    int64_t fixed_batch;            /* the model's batch dim when fixed, else 0 */
    char **files;                   /* .npy or image files of a folder (or the one .npy file) */
    size_t n_files, next_file;
    bool idx;                       /* arrays: one IDX file, read at open */
    kn_tensor arr;                  /* arrays: the current file's data ... */
    int64_t arr_pos;                /* ... and its next sample */
    int64_t sample_dims[KN_MAX_RANK], sample_numel; /* arrays: of the current file */
    int channels, height, width;    /* images */
    bool nhwc;
    int64_t given, dropped;
};

static bool has_suffix_ci(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static bool is_image_name(const char *s)
{
    return has_suffix_ci(s, ".jpg") || has_suffix_ci(s, ".jpeg") || has_suffix_ci(s, ".png");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_file(calib_data *d, const char *dir, const char *name, kn_error *err)
{
    char **grown = realloc(d->files, (d->n_files + 1) * sizeof *grown);
    if (!grown)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory listing %s", dir);
    d->files = grown;
    size_t len = strlen(dir) + strlen(name) + 2;
    if (!(d->files[d->n_files] = malloc(len)))
        return kn_fail(err, KN_ERR_NOMEM, "out of memory listing %s", dir);
    snprintf(d->files[d->n_files++], len, "%s%s%s", dir, *dir ? "/" : "", name);
    return KN_OK;
}

/* The .npy or image files of a folder (not both kinds), sorted by name. */
static int list_folder(calib_data *d, const char *dir, kn_error *err)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return kn_fail(err, KN_ERR_IO, "%s: cannot open the folder", dir);
    int rc = KN_OK, n_npy = 0, n_img = 0;
    for (struct dirent *e; !rc && (e = readdir(dp));) {
        bool npy = has_suffix_ci(e->d_name, ".npy"), img = is_image_name(e->d_name);
        if (e->d_name[0] == '.' || (!npy && !img))
            continue;
        n_npy += npy;
        n_img += img;
        rc = add_file(d, dir, e->d_name, err);
    }
    closedir(dp);
    if (rc)
        return rc;
    if (n_npy && n_img)
        return kn_fail(err, KN_ERR_ARG, "%s: the folder holds both .npy files and images; use one kind", dir);
    if (!d->n_files)
        return kn_fail(err, KN_ERR_ARG, "%s: no .npy, JPEG or PNG files in the folder", dir);
    qsort(d->files, d->n_files, sizeof *d->files, cmp_str);
    d->kind = n_img ? SRC_IMAGES : SRC_ARRAYS;
    return KN_OK;
}

static int open_path(calib_data *d, const char *path, kn_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return kn_fail(err, KN_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode))
        return list_folder(d, path, err);
    if (is_image_name(path)) {
        d->kind = SRC_IMAGES;
        return add_file(d, "", path, err);
    }
    d->kind = SRC_ARRAYS;
    if (has_suffix_ci(path, ".npy"))
        return add_file(d, "", path, err);
    d->idx = true; /* anything else must be IDX: its reader checks the magic */
    int rc = idx_read_file(path, &d->arr, err);
    return rc ? kn_error_prefix(err, "not a .npy, IDX, JPEG or PNG file: ") : KN_OK;
}

/* "[?,1,28,28]": the model input's shape, '?' for a dim that is not fixed. */
static const char *model_shape(const calib_data *d, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int k = 0; k < d->rank && at < len; k++)
        at += d->dims[k] >= 0 ? (size_t)snprintf(buf + at, len - at, "%s%lld", k ? "," : "", (long long)d->dims[k])
                              : (size_t)snprintf(buf + at, len - at, "%s?", k ? "," : "");
    if (at < len)
        snprintf(buf + at, len - at, "]");
    return buf;
}

/* ---- arrays ---- */

/* The per-sample shape of the array just loaded from `what`: the model's when all
 * its sample dims are fixed (the data's sample size must match; IDX [N,28,28] feeds
 * [N,1,28,28]), else the data's own (same rank, fixed dims equal). */
static int resolve_sample_shape(calib_data *d, const char *what, kn_error *err)
{
    const kn_tensor *a = &d->arr;
    if (!kn_dtype_is_float(a->dtype) && !kn_dtype_is_int(a->dtype))
        return kn_fail(err, KN_ERR_ARG, "%s: %s data, expected numbers", what, kn_dtype_name(a->dtype));
    if (a->rank < 1 || a->dims[0] < 1 || a->numel < 1)
        return kn_fail(err, KN_ERR_ARG, "%s: holds no samples", what);
    int64_t per = a->numel / a->dims[0], want = 1;
    bool fixed = true;
    for (int k = 1; k < d->rank; k++) {
        fixed = fixed && d->dims[k] >= 0;
        want *= d->dims[k] >= 0 ? d->dims[k] : 1;
    }
    char buf[128], mbuf[128];
    if (fixed && per != want)
        return kn_fail(err, KN_ERR_ARG, "%s: each sample of %s has %lld values, the model input %s wants %lld",
                       what, kn_dims_str(a->rank, a->dims, buf, sizeof buf), (long long)per,
                       model_shape(d, mbuf, sizeof mbuf), (long long)want);
    for (int k = 1; !fixed && k < d->rank; k++)
        if (a->rank != d->rank || (d->dims[k] >= 0 && d->dims[k] != a->dims[k]))
            return kn_fail(err, KN_ERR_ARG, "%s: data of shape %s does not fit the model input %s", what,
                           kn_dims_str(a->rank, a->dims, buf, sizeof buf),
                           model_shape(d, mbuf, sizeof mbuf));
    for (int k = 1; k < d->rank; k++)
        d->sample_dims[k] = fixed ? d->dims[k] : a->dims[k];
    d->sample_numel = per;
    d->arr_pos = 0;
    return KN_OK;
}

/* Make d->arr hold unread samples: load the next .npy file when the current one is
 * used up.  *none when there are no files left. */
static int ensure_array(calib_data *d, bool *none, kn_error *err)
{
    *none = false;
    if (d->arr.data && d->arr_pos < d->arr.dims[0])
        return KN_OK;
    if (d->idx || d->next_file >= d->n_files) {
        *none = true;
        return KN_OK;
    }
    kn_tensor_release(&d->arr);
    const char *path = d->files[d->next_file++];
    int rc = kn_npy_read_file(path, &d->arr, err);
    return rc ? rc : resolve_sample_shape(d, path, err);
}

/* Samples in the next batch, at most `available`. */
static int64_t batch_size(const calib_data *d, int64_t available)
{
    int64_t b = d->o.batch ? d->o.batch : d->fixed_batch;
    if (!b)
        b = d->kind == SRC_ARRAYS && !d->idx ? available : DEFAULT_BATCH; /* a .npy file is one batch */
    return b < available ? b : available;
}

static int64_t limit_left(const calib_data *d)
{
    return d->o.limit ? d->o.limit - d->given : INT64_MAX;
}

static float mean_of(const calib_data *d, int c)
{
    return d->o.n_mean ? d->o.mean[d->o.n_mean == 3 ? c : 0] : 0.0f;
}

static float std_of(const calib_data *d, int c)
{
    return d->o.n_std ? d->o.std[d->o.n_std == 3 ? c : 0] : 1.0f;
}

/* Samples [first, first + count) of the array into dst, of the input's dtype: a
 * float32 input gets integers scaled to [0,1] and --mean/--std; other inputs get
 * the values as they are. */
static void convert_samples(const calib_data *d, int64_t first, int64_t count, void *dst)
{
    size_t base = (size_t)(first * d->sample_numel), n = (size_t)(count * d->sample_numel);
    if (d->dtype != KN_F32) {
        size_t es = kn_dtype_size(d->dtype);
        if (d->arr.dtype == d->dtype)
            memcpy(dst, (const char *)d->arr.data + base * es, n * es);
        for (size_t i = 0; d->arr.dtype != d->dtype && i < n; i++)
            kn_store_f64(dst, d->dtype, i, kn_load_f64(d->arr.data, d->arr.dtype, base + i));
        return;
    }
    bool scale = kn_dtype_is_int(d->arr.dtype);
    float mean = mean_of(d, 0), inv_std = 1.0f / std_of(d, 0), *out = dst;
    for (size_t i = 0; i < n; i++) {
        double v = kn_load_f64(d->arr.data, d->arr.dtype, base + i);
        out[i] = ((float)(scale ? v / 255.0 : v) - mean) * inv_std;
    }
}

static int next_array_batch(calib_data *d, kn_tensor *batch, bool *done, kn_error *err)
{
    for (;;) {
        bool none;
        int rc = ensure_array(d, &none, err);
        if (rc || none) {
            *done = !rc;
            return rc;
        }
        int64_t avail = d->arr.dims[0] - d->arr_pos, left = limit_left(d);
        int64_t count = batch_size(d, avail < left ? avail : left);
        if (d->fixed_batch && count < d->fixed_batch) { /* a remainder the model cannot take */
            d->dropped += avail < left ? avail : left;
            d->arr_pos = d->arr.dims[0];
            if (left <= avail)
                return *done = true, KN_OK;
            continue;
        }
        int64_t dims[KN_MAX_RANK];
        memcpy(dims, d->sample_dims, sizeof dims);
        dims[0] = count;
        if ((rc = kn_tensor_alloc(batch, d->dtype, d->rank, dims, err)))
            return rc;
        convert_samples(d, d->arr_pos, count, batch->data);
        d->arr_pos += count;
        d->given += count;
        return KN_OK;
    }
}

/* ---- images ---- */

/* Channels, layout and size of a 4-D image input: [N,C,H,W] when dim 1 is 1 or 3,
 * else [N,H,W,C] when dim 3 is; H x W from the model, or --crop. */
static int image_geometry(calib_data *d, kn_error *err)
{
    char buf[128];
    const char *shape = model_shape(d, buf, sizeof buf);
    if (d->rank != 4)
        return kn_fail(err, KN_ERR_ARG, "images need a 4-D model input, this one is %s", shape);
    d->nhwc = !(d->dims[1] == 1 || d->dims[1] == 3) && (d->dims[3] == 1 || d->dims[3] == 3);
    if (!d->nhwc && d->dims[1] != 1 && d->dims[1] != 3)
        return kn_fail(err, KN_ERR_ARG, "the model input %s has no channel dim of 1 or 3 for images", shape);
    d->channels = (int)d->dims[d->nhwc ? 3 : 1];
    int64_t mh = d->dims[d->nhwc ? 1 : 2], mw = d->dims[d->nhwc ? 2 : 3];
    if (d->o.crop && ((mh >= 0 && mh != d->o.crop) || (mw >= 0 && mw != d->o.crop)))
        return kn_fail(err, KN_ERR_ARG, "--crop %d does not fit the model input %s", d->o.crop, shape);
    if (!d->o.crop && (mh < 1 || mw < 1 || mh > KN_SERVE_IMAGE_MAX_SIDE || mw > KN_SERVE_IMAGE_MAX_SIDE))
        return kn_fail(err, KN_ERR_ARG, "the model input %s has no fixed size: give --crop", shape);
    d->height = d->o.crop ? d->o.crop : (int)mh;
    d->width = d->o.crop ? d->o.crop : (int)mw;
    if ((d->o.n_mean == 3 || d->o.n_std == 3) && d->channels != 3)
        return kn_fail(err, KN_ERR_ARG, "three --mean/--std values for a %d-channel input", d->channels);
    return KN_OK;
}

static int load_image(const calib_data *d, const char *path, float *dst, kn_error *err)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    kn_serve_image img = {0};
    int rc = kn_read_file(path, &bytes, &len, err);
    if (!rc && (rc = kn_serve_image_decode(bytes, len, &img, err)))
        kn_error_prefix(err, "%s: ", path);
    free(bytes);
    if (rc)
        return rc;
    kn_preprocess pp = {.resize_short = d->o.resize, .crop_h = d->height, .crop_w = d->width,
                        .channels = d->channels, .scale = 1.0f / 255.0f, .nhwc = d->nhwc};
    for (int c = 0; c < 3; c++) {
        pp.mean[c] = mean_of(d, c);
        pp.std[c] = std_of(d, c);
    }
    size_t n = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    if ((rc = kn_preprocess_image(&img, &pp, dst, n, err)))
        kn_error_prefix(err, "%s (%dx%d): ", path, img.width, img.height);
    kn_serve_image_free(&img);
    return rc;
}

static int next_image_batch(calib_data *d, kn_tensor *batch, bool *done, kn_error *err)
{
    int64_t avail = (int64_t)(d->n_files - d->next_file), left = limit_left(d);
    int64_t count = batch_size(d, avail < left ? avail : left);
    if (count < 1 || (d->fixed_batch && count < d->fixed_batch)) {
        d->dropped += count > 0 ? count : 0;
        return *done = true, KN_OK;
    }
    int64_t dims[4] = {count, d->channels, d->height, d->width};
    if (d->nhwc) {
        dims[1] = d->height, dims[2] = d->width, dims[3] = d->channels;
    }
    int rc = kn_tensor_alloc(batch, KN_F32, 4, dims, err);
    size_t per = (size_t)d->channels * (size_t)d->height * (size_t)d->width;
    for (int64_t i = 0; !rc && i < count; i++)
        rc = load_image(d, d->files[d->next_file++], (float *)batch->data + (size_t)i * per, err);
    if (rc)
        kn_tensor_release(batch);
    else
        d->given += count;
    return rc;
}

/* ---- the iterator ---- */

/* What the options and the data kind allow for an input of d->dtype. */
static int check_kind(const calib_data *d, kn_error *err)
{
    const cli_calib_opts *o = &d->o;
    if (d->kind == SRC_ARRAYS && (o->n_mean == 3 || o->n_std == 3))
        return kn_fail(err, KN_ERR_ARG, "three --mean/--std values are for images; .npy and IDX data take one");
    if (d->dtype == KN_F32)
        return KN_OK;
    if (d->kind == SRC_IMAGES)
        return kn_fail(err, KN_ERR_ARG, "images feed float32 inputs, this one is %s", kn_dtype_name(d->dtype));
    if (o->n_mean || o->n_std)
        return kn_fail(err, KN_ERR_ARG, "--mean/--std apply to float32 inputs, this one is %s",
                       kn_dtype_name(d->dtype));
    return KN_OK;
}

int calib_data_open(const cli_calib_opts *o, kn_dtype dtype, int rank, const int64_t *dims, calib_data **out,
                    kn_error *err)
{
    *out = NULL;
    if (!o->calib)
        return kn_fail(err, KN_ERR_ARG, "no calibration data (--calib PATH)");
    if (rank < 1 || rank > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_ARG, "the model input has no batch dimension (rank %d)", rank);
    if (dtype != KN_F32 && dtype != KN_BOOL && !kn_dtype_is_int(dtype))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "calibration feeds float32, integer or bool inputs, not %s",
                       kn_dtype_name(dtype));
    calib_data *d = calloc(1, sizeof *d);
    if (!d)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    d->o = *o;
    d->dtype = dtype;
    d->rank = rank;
    memcpy(d->dims, dims, (size_t)rank * sizeof *dims);
    d->fixed_batch = dims[0] > 0 ? dims[0] : 0;
    int rc = KN_OK;
    if (d->fixed_batch && o->batch && o->batch != d->fixed_batch)
        rc = kn_fail(err, KN_ERR_ARG, "--calib-batch %lld: the model has a fixed batch of %lld",
                     (long long)o->batch, (long long)d->fixed_batch);
    if (!rc)
        rc = open_path(d, o->calib, err);
    if (!rc && d->kind == SRC_IMAGES)
        rc = image_geometry(d, err);
    if (!rc)
        rc = check_kind(d, err);
    if (!rc && d->idx)
        rc = resolve_sample_shape(d, o->calib, err);
    bool none;
    if (!rc && d->kind == SRC_ARRAYS && !d->idx) /* read the first .npy file now: errors come early */
        rc = ensure_array(d, &none, err);
    if (rc) {
        calib_data_close(d);
        return rc;
    }
    *out = d;
    return KN_OK;
}

int calib_data_next(calib_data *d, kn_tensor *batch, bool *done, kn_error *err)
{
    memset(batch, 0, sizeof *batch);
    *done = false;
    if (limit_left(d) <= 0)
        return *done = true, KN_OK;
    return d->kind == SRC_IMAGES ? next_image_batch(d, batch, done, err) : next_array_batch(d, batch, done, err);
}

double calib_data_progress(const calib_data *d)
{
    double by_limit = d->o.limit ? (double)d->given / (double)d->o.limit : 0.0, by_data;
    if (d->idx)
        by_data = (double)d->arr_pos / (double)d->arr.dims[0];
    else if (d->kind == SRC_IMAGES)
        by_data = (double)d->next_file / (double)d->n_files;
    else /* .npy files: whole files done, plus the part of the current one */
        by_data = ((double)d->next_file - (d->arr.data ? 1.0 - (double)d->arr_pos / (double)d->arr.dims[0] : 0.0)) /
                  (double)d->n_files;
    double p = by_limit > by_data ? by_limit : by_data;
    return p < 1.0 ? p : 1.0;
}

int64_t calib_data_samples(const calib_data *d)
{
    return d->given;
}

int64_t calib_data_dropped(const calib_data *d)
{
    return d->dropped;
}

void calib_data_close(calib_data *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_files; i++)
        free(d->files[i]);
    free(d->files);
    kn_tensor_release(&d->arr);
    free(d);
}

int calib_data_open_model_input(const cli_calib_opts *o, const kiln_model *m, const char *what,
                                calib_data **out)
{
    if (kiln_model_input_count(m) != 1)
        return cli_error("%s: --data / --calib feed single-input models; this one has %zu inputs", what,
                         kiln_model_input_count(m));
    kiln_value_info in;
    kiln_model_input(m, 0, &in);
    if (in.rank < 1)
        return cli_error("%s: the model input has no declared shape", what);
    kn_error err = {0};
    if (calib_data_open(o, (kn_dtype)in.dtype, in.rank, in.shape, out, &err))
        return cli_error("%s: %s", what, err.msg);
    return 0;
}
