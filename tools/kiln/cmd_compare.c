/* cmd_compare.c - `kiln compare MODEL_A MODEL_B`: runs two models (typically a
 * float model and its quantized or optimized version) on the same inputs and
 * reports, per output, top-1 agreement, accuracy of each with --labels, max/mean
 * absolute error and cosine similarity, then the shared layers that differ most
 * (src/quant/compare_run.c does the work).  Inputs: --data, read by the calibration
 * data sources (calib_data.h: .npy file or folder, IDX, JPEG/PNG folder; integers
 * and pixels scaled to [0,1], then --mean/--std or --normalize as in `kiln eval`),
 * or deterministic random inputs. */
#include "calib_data.h"
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
    bool json;
    int threads;
    cli_inputs rand;     /* --seed / --dim for random inputs */
    cli_calib_opts src;  /* --data and its preprocessing (--resize --crop --mean --std) */
} compare_opts;

static void compare_usage(FILE *f)
{
    fprintf(f, "usage: kiln compare MODEL_A MODEL_B [--data X] [--labels Y] [--limit N] [--layers K]\n"
               "                    [--sensitive N] [--batch N] [--threads N] [--json]\n"
               "                    [--mean a[,b,c] --std a[,b,c] | --normalize MEAN,STD] [--resize N] [--crop N]\n"
               "                    [--seed N] [--dim NAME=VALUE]...\n"
               "  X: samples for a single-input model: a .npy file or folder, an IDX file or a folder\n"
               "     of JPEG/PNG images (integers and pixels scaled to [0,1], then (x - mean) / std);\n"
               "     without --data, random inputs (--limit samples, default 8)\n"
               "  Y: labels as .npy, IDX or a text file of integers: accuracy of both models\n"
               "  --layers K     show the K shared layers that differ most (default 10, 0: outputs only)\n"
               "  --sensitive N  name the N quantized nodes of MODEL_A (float) that add the most error\n"
               "                 in MODEL_B: what `kiln quantize --auto-exclude N` keeps in float\n"
               "  layers are ranked by 1 - cosine similarity, then by relative error |a-b|/|a|;\n"
               "  values B quantizes with the range of the activation after them (marked *) come last\n");
}

/* --normalize MEAN,STD (as kiln eval): one --mean and one --std. */
static int parse_normalize(const char *s, compare_opts *o)
{
    char *end;
    double mean = strtod(s, &end), std = 0;
    if (*end != ',' || (std = strtod(end + 1, &end), *end) || std == 0)
        return cli_error("compare: --normalize expects MEAN,STD with STD != 0");
    o->src.mean[0] = (float)mean;
    o->src.std[0] = (float)std;
    o->src.n_mean = o->src.n_std = 1;
    return 0;
}

/* The preprocessing options of the data sources (calib_data.h). */
static bool is_source_option(const char *a)
{
    return !strcmp(a, "--resize") || !strcmp(a, "--crop") || !strcmp(a, "--mean") || !strcmp(a, "--std");
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
        if (is_source_option(a)) {
            if (cli_calib_option(&o->src, argc, argv, &i, "compare") != 1)
                return 1;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "--dim")) {
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
    int64_t *labels;
    int64_t n_labels;
    int64_t samples;       /* compared so far */
} batch_src;

static int open_data(batch_src *s, calib_data **d)
{
    cli_calib_opts co = s->o->src;
    co.calib = s->o->data;
    co.limit = s->o->limit;
    co.batch = s->o->batch;
    co.quiet = true;
    return calib_data_open_model_input(&co, s->m, "compare", d);
}

/* Compare one batch of --data; the labels are those of its samples. */
static int compare_data_batch(kn_compare *c, batch_src *s, const kn_tensor *t)
{
    int64_t rows = t->rank ? t->dims[0] : 1;
    if (s->labels && s->samples + rows > s->n_labels)
        return cli_error("compare: %lld labels for at least %lld samples", (long long)s->n_labels,
                         (long long)(s->samples + rows));
    const kn_tensor *ins[1] = {t};
    kn_error err = {0};
    if (kn_compare_batch(c, 1, ins, s->labels ? s->labels + s->samples : NULL, rows, &err))
        return cli_error("compare: %s", err.msg);
    s->samples += rows;
    return 0;
}

static int run_data(kn_compare *c, batch_src *s)
{
    calib_data *d = NULL;
    if (open_data(s, &d))
        return 1;
    int rc = 0;
    for (bool done = false; !rc;) {
        kn_tensor t = {0};
        kn_error err = {0};
        if (calib_data_next(d, &t, &done, &err)) {
            rc = cli_error("compare: %s", err.msg);
            break;
        }
        if (done)
            break;
        rc = compare_data_batch(c, s, &t);
        kn_tensor_release(&t);
    }
    calib_data_close(d);
    if (!rc && s->labels && s->n_labels != s->samples)
        fprintf(stderr, "kiln: compare: note: %lld labels for %lld samples (the first ones used)\n",
                (long long)s->n_labels, (long long)s->samples);
    return rc;
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

static int load_labels(batch_src *s)
{
    return s->o->labels ? read_labels(s->o->labels, &s->labels, &s->n_labels) : 0;
}

/* Random inputs: --batch, else the model's fixed first dim, else 1. */
static int64_t random_batch(const compare_opts *o, const kiln_model *m)
{
    kiln_value_info in;
    if (o->batch)
        return o->batch;
    if (kiln_model_input_count(m) && !kiln_model_input(m, 0, &in) && in.rank >= 1 && in.shape[0] >= 1)
        return in.shape[0];
    return 1;
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
    cli_calib_opts_init(&o.src);
    if (parse_compare_args(argc, argv, &o)) {
        cli_inputs_free(&o.rand);
        return 1;
    }
    kn_compare *c = NULL;
    batch_src src = {.o = &o};
    int rc = open_compare(&o, &c);
    if (!rc) {
        src.m = kn_compare_model(c, 0);
        rc = load_labels(&src);
    }
    if (!rc && o.data) {
        rc = run_data(c, &src);
    } else if (!rc) {
        o.batch = random_batch(&o, src.m);
        int64_t limit = o.limit ? o.limit : 8;
        rc = run_random(c, &src, limit);
        src.samples = ((limit + o.batch - 1) / o.batch) * o.batch;
    }
    if (!rc)
        rc = report(c, &o, src.samples);
    kn_compare_close(c);
    free(src.labels);
    cli_inputs_free(&o.rand);
    return rc;
}
