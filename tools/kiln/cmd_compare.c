/* cmd_compare.c - `kiln compare MODEL_A MODEL_B`: runs two models (typically a
 * float model and its quantized or optimized version) on the same inputs and
 * reports, per output, top-1 agreement, accuracy of each with --labels, max/mean
 * absolute error and cosine similarity, then the shared layers that differ most
 * (src/quant/compare_run.c does the work).  Inputs: --data (.npy or IDX, one sample
 * per row of a single-input model; uint8 scaled to [0,1], then --normalize as in
 * `kiln eval`) or deterministic random inputs. */
#include "cli.h"

#include "formats/npy.h"
#include "idx.h"
#include "inputs.h"
#include "kiln.h"
#include "quant/quant.h"
#include "serve/sbuf.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct compare_opts {
    const char *a, *b, *data, *labels;
    int64_t limit, layers, batch, sensitive;
    bool json, normalize;
    double mean, std;
    int threads;
    cli_inputs rand;     /* --seed / --dim for random inputs */
} compare_opts;

static void compare_usage(FILE *f)
{
    fprintf(f, "usage: kiln compare MODEL_A MODEL_B [--data X] [--labels Y] [--limit N] [--layers K]\n"
               "                    [--sensitive N] [--batch N] [--normalize MEAN,STD] [--threads N] [--seed N]\n"
               "                    [--dim NAME=VALUE]... [--json]\n"
               "  X: .npy or IDX samples for a single-input model (uint8 scaled to [0,1]);\n"
               "     without --data, random inputs (--limit samples, default 8)\n"
               "  Y: labels as .npy, IDX or a text file of integers: accuracy of both models\n"
               "  --layers K     show the K shared layers that differ most (default 10, 0: outputs only)\n"
               "  --sensitive N  name the N quantized nodes of MODEL_A (float) that add the most error\n"
               "                 in MODEL_B: what `kiln quantize --auto-exclude N` keeps in float\n"
               "  layers are ranked by 1 - cosine similarity, then by relative error |a-b|/|a|;\n"
               "  values B quantizes with the range of the activation after them (marked *) come last\n");
}

static int parse_normalize(const char *s, compare_opts *o)
{
    char *end;
    o->mean = strtod(s, &end);
    if (*end != ',' || (o->std = strtod(end + 1, &end), *end) || o->std == 0)
        return cli_error("compare: --normalize expects MEAN,STD with STD != 0");
    o->normalize = true;
    return 0;
}

/* One option at argv[*i]: 0 consumed, 1 error, 2 not an option of ours. */
static int parse_one(int argc, char **argv, int *i, compare_opts *o)
{
    const char *a = argv[*i];
    bool val = *i + 1 < argc;
    if (!strcmp(a, "--data") && val)
        o->data = argv[++*i];
    else if (!strcmp(a, "--labels") && val)
        o->labels = argv[++*i];
    else if (!strcmp(a, "--json"))
        o->json = true;
    else if (!strcmp(a, "--normalize") && val)
        return parse_normalize(argv[++*i], o);
    else if (!strcmp(a, "--limit") && val) {
        if (!cli_parse_i64(argv[++*i], &o->limit) || o->limit < 1)
            return cli_error("compare: --limit expects a positive number");
    } else if (!strcmp(a, "--layers") && val) {
        if (!cli_parse_i64(argv[++*i], &o->layers))
            return cli_error("compare: --layers expects a number");
    } else if (!strcmp(a, "--sensitive") && val) {
        if (!cli_parse_i64(argv[++*i], &o->sensitive) || o->sensitive < 1)
            return cli_error("compare: --sensitive expects a positive number");
    } else if (!strcmp(a, "--batch") && val) {
        if (!cli_parse_i64(argv[++*i], &o->batch) || o->batch < 1)
            return cli_error("compare: --batch expects a positive number");
    } else if (!strcmp(a, "--threads") && val) {
        int64_t t;
        if (!cli_parse_i64(argv[++*i], &t) || t < 1 || t > 1024)
            return cli_error("compare: --threads expects a number from 1 to 1024");
        o->threads = (int)t;
    } else {
        return 2;
    }
    return 0;
}

static int parse_compare_args(int argc, char **argv, compare_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            compare_usage(stdout);
            exit(0);
        }
        int r = parse_one(argc, argv, &i, o);
        if (r == 1)
            return 1;
        if (r == 0)
            continue;
        if (!strcmp(a, "--seed") || !strcmp(a, "--dim")) {
            if (cli_inputs_option(&o->rand, argc, argv, &i, "compare") != 1)
                return cli_error("compare: bad or incomplete option '%s'", a);
        } else if (a[0] == '-') {
            compare_usage(stderr);
            return cli_error("compare: unknown or incomplete option '%s'", a);
        } else if (!o->a) {
            o->a = a;
        } else if (!o->b) {
            o->b = a;
        } else {
            return cli_error("compare: unexpected argument '%s'", a);
        }
    }
    if (!o->a || !o->b) {
        compare_usage(stderr);
        return cli_error("compare: two models are required");
    }
    if (o->labels && !o->data)
        return cli_error("compare: --labels needs --data");
    return 0;
}

/* ---- data and labels ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int read_array(const char *path, kn_tensor *t)
{
    kn_error err = {0};
    int rc = ends_with(path, ".npy") ? kn_npy_read_file(path, t, &err) : idx_read_file(path, t, &err);
    return rc ? cli_error("compare: %s", err.msg) : 0;
}

/* A text file of integers separated by white space or commas. */
static int read_text_labels(const char *path, int64_t **out, int64_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_error("compare: cannot open %s", path);
    int64_t cap = 1024, len = 0;
    int64_t *v = malloc(sizeof *v * (size_t)cap);
    long long x;
    int rc = v ? 0 : cli_error("compare: out of memory");
    while (!rc && fscanf(f, " %lld ,", &x) == 1) {
        if (len == cap) {
            int64_t *g = realloc(v, sizeof *v * (size_t)(cap *= 2));
            if (!g) {
                rc = cli_error("compare: out of memory");
                break;
            }
            v = g;
        }
        v[len++] = x;
    }
    if (!rc && !feof(f))
        rc = cli_error("compare: %s: expected integers (labels) only", path);
    fclose(f);
    if (rc) {
        free(v);
        return 1;
    }
    *out = v;
    *n = len;
    return 0;
}

/* Binary files (.npy, IDX) start with a byte no text file of integers starts with. */
static bool looks_binary(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    int c = fgetc(f);
    fclose(f);
    return c != EOF && !isspace(c) && !isdigit(c) && c != '-' && c != '+';
}

static int read_labels(const char *path, int64_t **out, int64_t *n)
{
    if (!looks_binary(path))
        return read_text_labels(path, out, n);
    kn_tensor t = {0};
    if (read_array(path, &t))
        return 1;
    int rc = 0;
    if (!kn_dtype_is_int(t.dtype))
        rc = cli_error("compare: labels in %s are %s, not integers", path, kn_dtype_name(t.dtype));
    else if (!(*out = malloc(sizeof **out * (size_t)(t.numel ? t.numel : 1))))
        rc = cli_error("compare: out of memory");
    for (int64_t i = 0; !rc && i < t.numel; i++)
        (*out)[i] = kn_load_i64(t.data, t.dtype, (size_t)i);
    *n = t.numel;
    kn_tensor_release(&t);
    return rc;
}

/* ---- batches ---- */

typedef struct batch_src {
    const compare_opts *o;
    const kiln_model *m;
    kn_tensor data;        /* --data, all samples */
    int64_t per_sample, n_samples;
    int64_t *labels;
    int64_t n_labels;
} batch_src;

static int check_data(batch_src *s)
{
    if (kiln_model_input_count(s->m) != 1)
        return cli_error("compare: --data feeds single-input models; this one has %zu inputs",
                         kiln_model_input_count(s->m));
    kiln_value_info in;
    kiln_model_input(s->m, 0, &in);
    int64_t want = 1;
    for (int d = 1; d < in.rank; d++) {
        if (in.shape[d] < 0)
            return cli_error("compare: model input dimension %d is not fixed", d);
        want *= in.shape[d];
    }
    const kn_tensor *x = &s->data;
    int64_t rows = x->rank ? x->dims[0] : 0;
    if (in.rank < 1 || rows < 1 || x->numel / rows != want)
        return cli_error("compare: each sample of --data has %lld values, the model wants %lld",
                         (long long)(rows ? x->numel / rows : 0), (long long)want);
    if (in.shape[0] >= 1 && s->o->batch != in.shape[0])
        return cli_error("compare: the model has a fixed batch of %lld (use --batch)", (long long)in.shape[0]);
    s->per_sample = want;
    s->n_samples = s->o->limit && s->o->limit < rows ? s->o->limit : rows;
    if (s->labels && s->n_labels < s->n_samples)
        return cli_error("compare: %lld labels for %lld samples", (long long)s->n_labels,
                         (long long)s->n_samples);
    return 0;
}

/* Samples [start, start + count) of --data as a float tensor shaped like the input. */
static int data_batch(const batch_src *s, int64_t start, int64_t count, kn_tensor *t)
{
    kiln_value_info in;
    kiln_model_input(s->m, 0, &in);
    int64_t dims[KILN_MAX_RANK];
    dims[0] = count;
    for (int d = 1; d < in.rank; d++)
        dims[d] = in.shape[d];
    kn_error err = {0};
    if (kn_tensor_alloc(t, KN_F32, in.rank, dims, &err))
        return cli_error("compare: %s", err.msg);
    bool scale = !kn_dtype_is_float(s->data.dtype);
    float *dst = t->data;
    for (int64_t i = 0; i < count * s->per_sample; i++) {
        double v = kn_load_f64(s->data.data, s->data.dtype, (size_t)(start * s->per_sample + i));
        v = scale ? v / 255.0 : v;
        dst[i] = (float)(s->o->normalize ? (v - s->o->mean) / s->o->std : v);
    }
    return 0;
}

static int run_data(kn_compare *c, batch_src *s)
{
    int64_t n = s->n_samples;
    for (int64_t start = 0; start < n; start += s->o->batch) {
        int64_t count = n - start < s->o->batch ? n - start : s->o->batch;
        kn_tensor t = {0};
        if (data_batch(s, start, count, &t))
            return 1;
        const kn_tensor *ins[1] = {&t};
        kn_error err = {0};
        int rc = kn_compare_batch(c, 1, ins, s->labels ? s->labels + start : NULL, count, &err);
        kn_tensor_release(&t);
        if (rc)
            return cli_error("compare: %s", err.msg);
    }
    return 0;
}

static int run_random(kn_compare *c, batch_src *s, int64_t limit)
{
    size_t n_in = kiln_model_input_count(s->m);
    kn_tensor *tensors = calloc(n_in + 1, sizeof *tensors);
    kiln_tensor *api = calloc(n_in + 1, sizeof *api);
    const char **names = calloc(n_in + 1, sizeof *names);
    const kn_tensor **ins = calloc(n_in + 1, sizeof *ins);
    int rc = tensors && api && names && ins ? 0 : cli_error("compare: out of memory");
    cli_inputs in = s->o->rand;
    in.random = true;
    in.batch = s->o->batch;
    for (int64_t done = 0, k = 0; !rc && done < limit; done += s->o->batch, k++) {
        in.seed = s->o->rand.seed + (uint64_t)k;
        rc = cli_inputs_gather(s->m, &in, tensors, api, names, "compare");
        for (size_t i = 0; i < n_in; i++)
            ins[i] = &tensors[i];
        kn_error err = {0};
        if (!rc && kn_compare_batch(c, (int)n_in, ins, NULL, 0, &err))
            rc = cli_error("compare: %s", err.msg);
        for (size_t i = 0; i < n_in; i++)
            kn_tensor_release(&tensors[i]);
    }
    free(tensors);
    free(api);
    free(names);
    free(ins);
    return rc;
}

/* ---- report ---- */

static double pct(int64_t a, int64_t b)
{
    return b ? 100.0 * (double)a / (double)b : NAN;
}

static void print_errors(const kn_err_stats *e)
{
    printf("max abs %.6g  mean abs %.6g  cosine %.6f  rel %.6g", e->max_abs, kn_err_stats_mean_abs(e),
           kn_err_stats_cosine(e), kn_err_stats_rel(e));
    if (e->nonfinite)
        printf("  NaN/Inf mismatches %lld", (long long)e->nonfinite);
}

static void print_output(const kn_compare_stat *s)
{
    printf("  %s\n    ", s->name);
    if (s->classifier) {
        printf("top-1 agreement %.2f%% (%lld/%lld)", pct(s->agree, s->rows), (long long)s->agree,
               (long long)s->rows);
        if (s->labelled)
            printf("  accuracy A %.2f%%  B %.2f%%  (B - A %+.2f points)", pct(s->correct_a, s->labelled),
                   pct(s->correct_b, s->labelled), pct(s->correct_b, s->labelled) - pct(s->correct_a, s->labelled));
        printf("\n    ");
    }
    if (s->err.count || s->err.nonfinite)
        print_errors(&s->err);
    else
        printf("not compared (not float32, or shapes differ %lld times)", (long long)s->shape_mismatch);
    printf("\n");
}

static void print_text(const compare_opts *o, const kn_compare_report *r, int64_t samples)
{
    printf("A: %s\nB: %s\n", o->a, o->b);
    printf("%lld samples in %lld batches (%s%s)\n", (long long)samples, (long long)r->batches,
           o->data ? "data " : "random inputs", o->data ? o->data : "");
    printf("outputs:\n");
    for (size_t i = 0; i < r->n_outputs; i++)
        print_output(&r->outputs[i]);
    if (o->layers <= 0)
        return;
    size_t k = (size_t)o->layers < r->n_layers ? (size_t)o->layers : r->n_layers;
    printf("layers: %zu worst of %zu shared (by 1 - cosine, then relative error; * last)\n", k, r->n_layers);
    printf("  %-28s %-30s %10s %10s %10s %10s\n", "value", "op A -> op B", "cosine", "rel", "max abs",
           "mean abs");
    bool folded = false;
    for (size_t i = 0; i < k; i++) {
        const kn_compare_stat *s = &r->layers[i];
        char ops[96];
        snprintf(ops, sizeof ops, "%s -> %s", s->op_a, s->op_b);
        printf("  %-28s %-30s %10.6f %10.4g %10.4g %10.4g%s%s\n", s->name, ops, kn_err_stats_cosine(&s->err),
               kn_err_stats_rel(&s->err), s->err.max_abs, kn_err_stats_mean_abs(&s->err),
               s->range_folded ? " *" : "", s->err.nonfinite ? "  NaN/Inf!" : "");
        folded |= s->range_folded;
    }
    if (folded)
        printf("  * B quantizes this value with the range of the activation after it (Conv -> Relu):\n"
               "    its values are already clipped, so the difference is mostly the activation's, not an error\n");
}

static void json_errors(kn_sbuf *b, const kn_err_stats *e)
{
    kn_sbuf_puts(b, "\"max_abs\": ");
    kn_sbuf_json_double(b, e->max_abs, 9);
    kn_sbuf_puts(b, ", \"mean_abs\": ");
    kn_sbuf_json_double(b, kn_err_stats_mean_abs(e), 9);
    kn_sbuf_puts(b, ", \"cosine\": ");
    kn_sbuf_json_double(b, kn_err_stats_cosine(e), 9);
    kn_sbuf_puts(b, ", \"rel\": ");
    kn_sbuf_json_double(b, kn_err_stats_rel(e), 9);
    kn_sbuf_printf(b, ", \"compared\": %lld, \"nonfinite_mismatch\": %lld", (long long)e->count,
                   (long long)e->nonfinite);
}

static void json_stat(kn_sbuf *b, const kn_compare_stat *s, bool layer)
{
    kn_sbuf_puts(b, "{\"name\": ");
    kn_sbuf_json_str(b, s->name);
    if (layer) {
        kn_sbuf_puts(b, ", \"node_a\": ");
        kn_sbuf_json_str(b, s->node_a);
        kn_sbuf_puts(b, ", \"op_a\": ");
        kn_sbuf_json_str(b, s->op_a);
        kn_sbuf_puts(b, ", \"op_b\": ");
        kn_sbuf_json_str(b, s->op_b);
        kn_sbuf_printf(b, ", \"range_folded\": %s", s->range_folded ? "true" : "false");
    }
    kn_sbuf_puts(b, ", ");
    json_errors(b, &s->err);
    if (s->classifier) {
        kn_sbuf_printf(b, ", \"rows\": %lld, \"agree\": %lld, \"agreement\": ", (long long)s->rows,
                       (long long)s->agree);
        kn_sbuf_json_double(b, pct(s->agree, s->rows), 6);
    }
    if (s->labelled) {
        kn_sbuf_puts(b, ", \"accuracy_a\": ");
        kn_sbuf_json_double(b, pct(s->correct_a, s->labelled), 6);
        kn_sbuf_puts(b, ", \"accuracy_b\": ");
        kn_sbuf_json_double(b, pct(s->correct_b, s->labelled), 6);
    }
    kn_sbuf_puts(b, "}");
}

static int print_json(const compare_opts *o, const kn_compare_report *r, int64_t samples, char **sensitive,
                      size_t n_sensitive)
{
    kn_sbuf b = {0};
    kn_sbuf_puts(&b, "{\"model_a\": ");
    kn_sbuf_json_str(&b, o->a);
    kn_sbuf_puts(&b, ", \"model_b\": ");
    kn_sbuf_json_str(&b, o->b);
    kn_sbuf_printf(&b, ", \"samples\": %lld, \"batches\": %lld, \"outputs\": [", (long long)samples,
                   (long long)r->batches);
    for (size_t i = 0; i < r->n_outputs; i++) {
        kn_sbuf_puts(&b, i ? ", " : "");
        json_stat(&b, &r->outputs[i], false);
    }
    size_t k = o->layers > 0 && (size_t)o->layers < r->n_layers ? (size_t)o->layers : r->n_layers;
    kn_sbuf_printf(&b, "], \"layers_shared\": %zu, \"layers\": [", o->layers > 0 ? r->n_layers : 0);
    for (size_t i = 0; o->layers > 0 && i < k; i++) {
        kn_sbuf_puts(&b, i ? ", " : "");
        json_stat(&b, &r->layers[i], true);
    }
    kn_sbuf_puts(&b, "]");
    if (o->sensitive) {
        kn_sbuf_puts(&b, ", \"sensitive\": [");
        for (size_t i = 0; i < n_sensitive; i++) {
            kn_sbuf_puts(&b, i ? ", " : "");
            kn_sbuf_json_str(&b, sensitive[i]);
        }
        kn_sbuf_puts(&b, "]");
    }
    kn_sbuf_puts(&b, "}\n");
    int rc = b.oom ? cli_error("compare: out of memory") : (fputs(b.data, stdout), 0);
    kn_sbuf_free(&b);
    return rc;
}

/* The nodes --auto-exclude would keep in float, most sensitive first. */
static void print_sensitive(char **names, size_t n)
{
    printf("most sensitive quantized nodes (by the error each adds):");
    for (size_t i = 0; i < n; i++)
        printf("%s %s", i ? "," : "", names[i]);
    printf("%s\n", n ? "" : " none");
}

/* ---- command ---- */

static int open_compare(const compare_opts *o, kn_compare **c)
{
    kn_compare_opts co = {.layers = o->layers > 0 || o->sensitive > 0, .threads = o->threads};
    kn_error err = {0};
    return kn_compare_open(o->a, o->b, &co, c, &err) ? cli_error("compare: %s", err.msg) : 0;
}

static int load_inputs(batch_src *s)
{
    const compare_opts *o = s->o;
    if (!o->data)
        return 0;
    if (read_array(o->data, &s->data) || (o->labels && read_labels(o->labels, &s->labels, &s->n_labels)))
        return 1;
    return check_data(s);
}

/* The batch size: --batch, else the model's fixed first dim, else 100 for data, 1 for random. */
static int64_t default_batch(const compare_opts *o, const kiln_model *m)
{
    kiln_value_info in;
    if (kiln_model_input_count(m) && !kiln_model_input(m, 0, &in) && in.rank >= 1 && in.shape[0] >= 1)
        return in.shape[0];
    return o->data ? 100 : 1;
}

static int report(kn_compare *c, const compare_opts *o, int64_t samples)
{
    char **names = NULL;
    size_t n = 0;
    kn_error err = {0};
    if (o->sensitive && kn_compare_sensitive_nodes(c, (size_t)o->sensitive, &names, &n, &err))
        return cli_error("compare: %s", err.msg);
    const kn_compare_report *r = kn_compare_report_get(c);
    int rc = 0;
    if (o->json) {
        rc = print_json(o, r, samples, names, n);
    } else {
        print_text(o, r, samples);
        if (o->sensitive)
            print_sensitive(names, n);
    }
    kn_names_free(names, n);
    return rc;
}

int cmd_compare(int argc, char **argv)
{
    compare_opts o = {.layers = 10};
    if (parse_compare_args(argc, argv, &o)) {
        cli_inputs_free(&o.rand);
        return 1;
    }
    kn_compare *c = NULL;
    batch_src src = {.o = &o};
    int rc = open_compare(&o, &c);
    if (!rc) {
        src.m = kn_compare_model(c, 0);
        o.batch = o.batch ? o.batch : default_batch(&o, src.m);
        rc = load_inputs(&src);
    }
    int64_t limit = o.limit ? o.limit : 8; /* random inputs */
    if (!rc)
        rc = o.data ? run_data(c, &src) : run_random(c, &src, limit);
    if (!rc) {
        int64_t samples = o.data ? src.n_samples : ((limit + o.batch - 1) / o.batch) * o.batch;
        rc = report(c, &o, samples);
    }
    kn_compare_close(c);
    kn_tensor_release(&src.data);
    free(src.labels);
    cli_inputs_free(&o.rand);
    return rc;
}
