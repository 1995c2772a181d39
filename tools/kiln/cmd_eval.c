/* cmd_eval.c - `kiln eval`: top-1 / top-5 accuracy of a classifier over a labelled
 * data set given as .npy or IDX files.  Integer (uint8) images are scaled to [0,1];
 * --normalize MEAN,STD then applies (x - mean) / std. */
#include "cli.h"

#include "formats/npy.h"
#include "idx.h"
#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_opts {
    const char *model, *data, *labels;
    bool normalize;
    double mean, std;
    int64_t batch, limit;
} eval_opts;

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: kiln eval MODEL --data X --labels Y [--normalize MEAN,STD] [--batch N] [--limit N]\n"
               "  X, Y: .npy files or IDX files (gzipped or not, the MNIST format)\n"
               "  uint8 images are scaled to [0,1] before --normalize is applied\n");
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int load_array(const char *path, kn_tensor *t)
{
    kn_error err = {0};
    int rc = has_suffix(path, ".npy") ? kn_npy_read_file(path, t, &err) : idx_read_file(path, t, &err);
    return rc ? cli_error("eval: %s", err.msg) : 0;
}

static int parse_eval_args(int argc, char **argv, eval_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eval_usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            o->data = argv[++i];
        } else if (!strcmp(a, "--labels") && i + 1 < argc) {
            o->labels = argv[++i];
        } else if (!strcmp(a, "--normalize") && i + 1 < argc) {
            char *end;
            o->mean = strtod(argv[++i], &end);
            if (*end != ',' || (o->std = strtod(end + 1, &end), *end) || o->std == 0)
                return cli_error("eval: --normalize expects MEAN,STD with STD != 0");
            o->normalize = true;
        } else if (!strcmp(a, "--batch") && i + 1 < argc) {
            if (!cli_parse_i64(argv[++i], &o->batch) || o->batch < 1)
                return cli_error("eval: --batch expects a positive number");
        } else if (!strcmp(a, "--limit") && i + 1 < argc) {
            if (!cli_parse_i64(argv[++i], &o->limit))
                return cli_error("eval: --limit expects a number");
        } else if (a[0] == '-') {
            eval_usage(stderr);
            return cli_error("eval: unknown or incomplete option '%s'", a);
        } else if (!o->model) {
            o->model = a;
        } else {
            return cli_error("eval: unexpected argument '%s'", a);
        }
    }
    if (!o->model || !o->data || !o->labels) {
        eval_usage(stderr);
        return cli_error("eval: MODEL, --data and --labels are required");
    }
    return 0;
}

/* Float copy of one batch of samples, scaled and normalized. */
static void prepare_batch(const kn_tensor *x, int64_t start, int64_t count, int64_t per_sample,
                          const eval_opts *o, float *dst)
{
    bool scale = !kn_dtype_is_float(x->dtype);
    for (int64_t i = 0; i < count * per_sample; i++) {
        double v = kn_load_f64(x->data, x->dtype, (size_t)(start * per_sample + i));
        if (scale)
            v /= 255.0;
        if (o->normalize)
            v = (v - o->mean) / o->std;
        dst[i] = (float)v;
    }
}

/* Rank of the true label among the logits of one sample (0 = top-1). */
static int label_rank(const float *logits, int64_t classes, int64_t label)
{
    int rank = 0;
    for (int64_t c = 0; c < classes; c++)
        if (logits[c] > logits[label] || (logits[c] == logits[label] && c < label))
            rank++;
    return rank;
}

typedef struct eval_counts {
    int64_t n, top1, top5;
} eval_counts;

static int run_batches(kiln_session *s, const kiln_value_info *in, const kn_tensor *x,
                       const kn_tensor *y, int64_t n, int64_t per_sample, const eval_opts *o,
                       eval_counts *cnt)
{
    float *buf = malloc(sizeof(float) * (size_t)(o->batch * per_sample));
    if (!buf)
        return cli_error("eval: out of memory");
    int rc = 0;
    for (int64_t start = 0; start < n && !rc; start += o->batch) {
        int64_t count = n - start < o->batch ? n - start : o->batch;
        prepare_batch(x, start, count, per_sample, o, buf);
        kiln_tensor t = {.dtype = KILN_FLOAT32, .rank = in->rank, .data = buf};
        t.shape[0] = count;
        for (int d = 1; d < in->rank; d++)
            t.shape[d] = in->shape[d];
        kiln_tensor *outs;
        size_t n_out;
        if (kiln_session_run(s, &in->name, &t, 1, &outs, &n_out)) {
            rc = cli_error("eval: %s", kiln_errmsg());
            break;
        }
        if (outs[0].dtype != KILN_FLOAT32 || outs[0].rank != 2 || outs[0].shape[0] != count) {
            rc = cli_error("eval: expected float32 logits [batch, classes] from the first output");
        } else {
            int64_t classes = outs[0].shape[1];
            for (int64_t i = 0; i < count; i++) {
                int64_t label = kn_load_i64(y->data, y->dtype, (size_t)(start + i));
                if (label < 0 || label >= classes) {
                    rc = cli_error("eval: label %lld of sample %lld is outside [0,%lld)", (long long)label,
                                   (long long)(start + i), (long long)classes);
                    break;
                }
                int r = label_rank((const float *)outs[0].data + i * classes, classes, label);
                cnt->top1 += r == 0;
                cnt->top5 += r < 5;
                cnt->n++;
            }
        }
        kiln_tensors_free(outs, n_out);
    }
    free(buf);
    return rc;
}

static int check_shapes(const kiln_value_info *in, const kn_tensor *x, const kn_tensor *y,
                        int64_t *per_sample)
{
    if (in->rank < 1)
        return cli_error("eval: the model input has no declared shape");
    int64_t want = 1;
    for (int d = 1; d < in->rank; d++) {
        if (in->shape[d] < 0)
            return cli_error("eval: model input dimension %d is not fixed", d);
        want *= in->shape[d];
    }
    int64_t have = x->rank ? x->numel / (x->dims[0] ? x->dims[0] : 1) : 0;
    if (x->rank < 1 || have != want)
        return cli_error("eval: each sample has %lld values, the model wants %lld", (long long)have,
                         (long long)want);
    if (y->rank < 1 || y->dims[0] != x->dims[0] || !kn_dtype_is_int(y->dtype))
        return cli_error("eval: labels must be integers, one per sample (%lld samples, %lld labels)",
                         (long long)x->dims[0], (long long)(y->rank ? y->dims[0] : 0));
    *per_sample = want;
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    eval_opts o = {.batch = 0};
    if (parse_eval_args(argc, argv, &o))
        return 1;
    kn_tensor x = {0}, y = {0};
    kiln_model *m = NULL;
    kiln_session *s = NULL;
    int rc = load_array(o.data, &x) || load_array(o.labels, &y);
    if (!rc && kiln_model_load(o.model, &m))
        rc = cli_error("%s", kiln_errmsg());
    kiln_value_info in;
    int64_t per_sample = 0;
    if (!rc && kiln_model_input_count(m) != 1)
        rc = cli_error("eval: the model must have exactly one input");
    if (!rc) {
        kiln_model_input(m, 0, &in);
        rc = check_shapes(&in, &x, &y, &per_sample);
    }
    if (!rc && o.batch == 0)
        o.batch = in.shape[0] >= 1 ? in.shape[0] : 100;
    if (!rc && in.shape[0] >= 1 && o.batch != in.shape[0])
        rc = cli_error("eval: the model has a fixed batch of %lld", (long long)in.shape[0]);
    if (!rc && kiln_session_create(m, &s))
        rc = cli_error("%s", kiln_errmsg());
    eval_counts cnt = {0};
    int64_t n = x.rank ? x.dims[0] : 0;
    if (o.limit > 0 && o.limit < n)
        n = o.limit;
    double t0 = cli_now();
    if (!rc)
        rc = run_batches(s, &in, &x, &y, n, per_sample, &o, &cnt);
    if (!rc && cnt.n) {
        double dt = cli_now() - t0;
        printf("%s: %lld samples in %.2f s (%.0f samples/s)\n", o.model, (long long)cnt.n, dt,
               (double)cnt.n / dt);
        printf("top-1 accuracy: %.2f%% (%lld/%lld)\n", 100.0 * (double)cnt.top1 / (double)cnt.n,
               (long long)cnt.top1, (long long)cnt.n);
        printf("top-5 accuracy: %.2f%% (%lld/%lld)\n", 100.0 * (double)cnt.top5 / (double)cnt.n,
               (long long)cnt.top5, (long long)cnt.n);
    }
    kiln_session_free(s);
    kiln_model_free(m);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
    return rc;
}
