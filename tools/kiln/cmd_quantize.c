/* cmd_quantize.c - `kiln quantize`: load a model (unoptimized), rewrite it into one
 * of the compressed forms of src/quant/quant.h (dynamic / static int8, fp16, int4),
 * print what changed (nodes quantized / kept in float, sizes before and after) and
 * write it as ONNX.  Static mode calibrates the activation ranges on data (--calib
 * and the options of calib_data.h) or reads them from a file (--ranges: lines
 * "name lo hi", as `kiln calibrate` writes). */
#include "kiln.h"
#include "calib_data.h"
#include "cli.h"

#include "formats/onnx.h"
#include "core/file.h"
#include "quant/quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_EXCLUDE 256

typedef struct quant_args {
    const char *in, *out, *ranges;
    kn_quant_opts qo;
    kn_onnx_write_options wo;
    cli_calib_opts calib;
    char *exclude[MAX_EXCLUDE];
    size_t n_exclude;
    int64_t auto_exclude;       /* --auto-exclude N: keep the N most sensitive nodes in float */
} quant_args;

static void quantize_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln quantize MODEL -o OUT.onnx --mode dynamic|static|fp16|int4\n"
            "                     [--per-tensor] [--symmetric] [--block 32|128]\n"
            "                     [--exclude NAME_OR_OPTYPE[,...]] [--external-data]\n"
            "                     static: --calib PATH [calibration options] | --ranges FILE\n"
            "Writes MODEL with compressed weights:\n"
            "  dynamic  int8 weights, activations quantized at run time (MatMul, Gemm, Conv)\n"
            "  static   int8 weights and activations (QDQ) from calibrated ranges\n"
            "  fp16     float16 weights, computed in float32\n"
            "  int4     4-bit block-wise weights for MatMul/Gemm (MatMulNBits)\n"
            "--per-tensor      one weight scale per tensor (default: per output channel)\n"
            "--symmetric       static: int8 activations with zero point 0 (default uint8)\n"
            "--block N         int4 block size, 32 (default) or 128\n"
            "--exclude LIST    node names or operator types kept in float\n"
            "--auto-exclude N  quantize, compare layer by layer with the float model on the\n"
            "                  --calib data (any mode), keep the N nodes that add the most\n"
            "                  error in float, and quantize again\n"
            "--ranges FILE     static: activation ranges, lines 'name lo hi' (kiln calibrate)\n"
            "--threads N       threads for the calibration runs\n"
            "--external-data   initializers of 1 KiB or more go to OUT.onnx.data\n"
            "calibration options (static):\n%s",
            cli_calib_help);
}

static int parse_mode(const char *s, kn_qmode *m)
{
    static const char *const names[] = {"dynamic", "static", "fp16", "int4"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(s, names[k])) {
            *m = (kn_qmode)k;
            return 0;
        }
    return cli_error("quantize: unknown mode '%s' (dynamic, static, fp16 or int4)", s);
}

/* Add the comma-separated names of list to a->exclude. */
static int add_excludes(quant_args *a, const char *list)
{
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len && a->n_exclude == MAX_EXCLUDE)
            return cli_error("quantize: more than %d exclusions", MAX_EXCLUDE);
        if (len && !(a->exclude[a->n_exclude++] = strndup(p, len)))
            return cli_error("quantize: out of memory");
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Options that take a value; 1 consumed, 0 not one of them, -1 bad value. */
static int parse_valued(quant_args *a, const char *s, const char *v)
{
    int64_t n;
    if (!strcmp(s, "--mode"))
        return parse_mode(v, &a->qo.mode) ? -1 : 1;
    if (!strcmp(s, "--block")) {
        if (!cli_parse_i64(v, &n) || (n != 32 && n != 128))
            return cli_error("quantize: --block expects 32 or 128, not '%s'", v), -1;
        a->qo.int4_block = (int)n;
        return 1;
    }
    if (!strcmp(s, "--exclude"))
        return add_excludes(a, v) ? -1 : 1;
    if (!strcmp(s, "--auto-exclude")) {
        if (!cli_parse_i64(v, &n) || n < 1 || n > 64)
            return cli_error("quantize: --auto-exclude expects a count from 1 to 64, not '%s'", v), -1;
        a->auto_exclude = n;
        return 1;
    }
    if (!strcmp(s, "--ranges")) {
        a->ranges = v;
        return 1;
    }
    if (!strcmp(s, "--threads")) {
        int64_t t;
        if (!cli_parse_i64(v, &t) || t < 1 || t > 1024)
            return cli_error("quantize: --threads expects a count from 1 to 1024, not '%s'", v), -1;
        a->calib.threads = (int)t;
        return 1;
    }
    return 0;
}

/* Options without a value; true if s was one. */
static bool parse_flag(quant_args *a, const char *s)
{
    if (!strcmp(s, "--per-tensor"))
        a->qo.per_channel = false;
    else if (!strcmp(s, "--symmetric"))
        a->qo.symmetric_activations = true;
    else if (!strcmp(s, "--external-data"))
        a->wo.external = KN_ONNX_EXTERNAL_ALWAYS;
    else
        return false;
    return true;
}

static int check_args(quant_args *a, bool have_mode)
{
    if (!a->in || !a->out || !have_mode) {
        quantize_usage(stderr);
        return cli_error("quantize: a MODEL, -o OUT.onnx and --mode are required");
    }
    const char *c = a->calib.calib;
    if (a->qo.mode == KN_QMODE_STATIC && !a->ranges && !c)
        return cli_error("quantize: static mode needs --calib PATH or --ranges FILE");
    if (a->auto_exclude && !c)
        return cli_error("quantize: --auto-exclude needs data to compare on: --calib PATH");
    if (a->qo.mode != KN_QMODE_STATIC && (a->ranges || (c && !a->auto_exclude)))
        return cli_error("quantize: --calib and --ranges are for --mode static (or --auto-exclude)");
    if (a->ranges && c)
        return cli_error("quantize: give --calib or --ranges, not both");
    return 0;
}

/* 0: parsed; 1: error (message printed); -1: --help was asked for. */
static int parse_args(int argc, char **argv, quant_args *a)
{
    kn_quant_opts_init(&a->qo);
    kn_onnx_write_options_init(&a->wo);
    cli_calib_opts_init(&a->calib);
    bool have_mode = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int r = cli_calib_option(&a->calib, argc, argv, &i, "quantize");
        if (r < 0)
            return 1;
        if (r > 0)
            continue;
        r = i + 1 < argc ? parse_valued(a, s, argv[i + 1]) : 0;
        if (r < 0)
            return 1;
        if (r > 0) {
            have_mode |= !strcmp(s, "--mode");
            i++;
        } else if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            quantize_usage(stdout);
            return -1;
        } else if ((!strcmp(s, "-o") || !strcmp(s, "--output")) && i + 1 < argc) {
            a->out = argv[++i];
        } else if (parse_flag(a, s)) {
            continue;
        } else if (s[0] == '-' || a->in) {
            quantize_usage(stderr);
            return cli_error("quantize: unexpected argument '%s'", s);
        } else {
            a->in = s;
        }
    }
    a->qo.exclude = (const char *const *)a->exclude;
    a->qo.n_exclude = a->n_exclude;
    return check_args(a, have_mode);
}

/* ---- ranges file ---- */

/* "name lo hi" lines (kn_act_ranges_parse: blank lines and '#' comments skipped). */
static int read_ranges(const char *path, kn_act_ranges *r)
{
    kn_error err = {0};
    uint8_t *text = NULL;
    size_t len = 0;
    if (kn_read_file(path, &text, &len, &err))
        return cli_error("quantize: cannot open the ranges file %s", err.msg);
    int rc = kn_act_ranges_parse((const char *)text, len, path, r, &err);
    free(text);
    return rc ? cli_error("quantize: %s", err.msg) : 0;
}

/* ---- running ---- */

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void print_report(const quant_args *a, const kn_quant_report *rep)
{
    static const char *const names[] = {"dynamic", "static", "fp16", "int4"};
    printf("mode %s: %d nodes quantized, %d kept in float\n", names[a->qo.mode], rep->nodes_quantized,
           rep->nodes_kept_float);
    double ratio = rep->weight_bytes_after ? (double)rep->weight_bytes_before / (double)rep->weight_bytes_after : 0;
    printf("initializers: %zu bytes before, %zu after (%.2fx smaller)\n", rep->weight_bytes_before,
           rep->weight_bytes_after, ratio);
}

static void print_file_sizes(const quant_args *a)
{
    char data[4200];
    snprintf(data, sizeof data, "%s.data", a->out);
    long long before = file_size(a->in), after = file_size(a->out), ext = file_size(data);
    if (a->wo.external == KN_ONNX_EXTERNAL_ALWAYS && ext > 0)
        after += ext;
    printf("file size: %lld bytes before, %lld after (%.2fx smaller): %s\n", before, after,
           after > 0 ? (double)before / (double)after : 0.0, a->out);
}

/* Quantize a->in with a->qo into path; *rep and the times filled. */
static int quantize_to(quant_args *a, const char *path, kn_quant_report *rep, double *t_quant,
                       double *t_write)
{
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_onnx_load_file(a->in, &m, &err))
        return cli_error("%s", err.msg);
    double t0 = cli_now();
    int rc = kn_quantize_model(m, &a->qo, rep, &err);
    double t1 = cli_now();
    if (!rc)
        rc = kn_onnx_write_file(m, path, &a->wo, &err);
    kn_model_free(m);
    *t_quant = t1 - t0;
    *t_write = cli_now() - t1;
    return rc ? cli_error("quantize: %s", err.msg) : 0;
}

/* Compare the float model with the quantized one at probe on the --calib data and
 * return the a->auto_exclude nodes adding the most error. */
static int sensitive_nodes(quant_args *a, const char *probe, char ***names, size_t *n_names)
{
    kn_error err = {0};
    kn_compare *c = NULL;
    kn_compare_opts co = {.layers = true};
    if (kn_compare_open(a->in, probe, &co, &c, &err))
        return cli_error("quantize: --auto-exclude: %s", err.msg);
    const struct kiln_model *fm = kn_compare_model(c, 0);
    calib_data *d = NULL;
    int rc = calib_data_open_model_input(&a->calib, fm, "quantize: --auto-exclude", &d);
    for (bool done = false; !rc && !done;) {
        kn_tensor batch = {0};
        const kn_tensor *ins[1] = {&batch};
        if (calib_data_next(d, &batch, &done, &err) || (!done && kn_compare_batch(c, 1, ins, NULL, 0, &err)))
            rc = cli_error("quantize: --auto-exclude: %s", err.msg);
        kn_tensor_release(&batch);
    }
    if (!rc && kn_compare_sensitive_nodes(c, (size_t)a->auto_exclude, names, n_names, &err))
        rc = cli_error("quantize: --auto-exclude: %s", err.msg);
    calib_data_close(d);
    kn_compare_close(c);
    return rc;
}

/* --auto-exclude: quantize to a probe file next to the output, find the sensitive
 * nodes, add them to the exclusions. */
static int auto_exclude(quant_args *a)
{
    char probe[4096];
    if (snprintf(probe, sizeof probe, "%s.probe.onnx", a->out) >= (int)sizeof probe)
        return cli_error("quantize: output path too long");
    kn_quant_report rep;
    double tq, tw;
    int rc = quantize_to(a, probe, &rep, &tq, &tw);
    char **names = NULL;
    size_t n = 0;
    if (!rc)
        rc = sensitive_nodes(a, probe, &names, &n);
    remove(probe);
    if (!rc)
        printf("auto-exclude: keeping %zu node%s in float:", n, n == 1 ? "" : "s");
    for (size_t k = 0; !rc && k < n; k++) {
        printf(" %s", names[k]);
        rc = add_excludes(a, names[k]);
    }
    if (!rc)
        printf("\n");
    kn_names_free(names, n);
    a->qo.exclude = (const char *const *)a->exclude;
    a->qo.n_exclude = a->n_exclude;
    return rc;
}

static int run_quantize(quant_args *a, kn_act_ranges *ranges)
{
    if (a->ranges && read_ranges(a->ranges, ranges))
        return 1;
    if (a->qo.mode == KN_QMODE_STATIC && a->calib.calib && cli_calibrate(a->in, &a->calib, ranges))
        return 1;
    a->qo.ranges = a->qo.mode == KN_QMODE_STATIC ? ranges : NULL;
    if (a->auto_exclude && auto_exclude(a))
        return 1;
    kn_quant_report rep;
    double tq, tw;
    if (quantize_to(a, a->out, &rep, &tq, &tw))
        return 1;
    print_report(a, &rep);
    print_file_sizes(a);
    printf("quantized in %.1f ms, written in %.1f ms\n", tq * 1e3, tw * 1e3);
    return 0;
}

int cmd_quantize(int argc, char **argv)
{
    quant_args a = {0};
    kn_act_ranges ranges = {0};
    int rc = parse_args(argc, argv, &a);
    if (!rc)
        rc = run_quantize(&a, &ranges);
    kn_act_ranges_free(&ranges);
    for (size_t k = 0; k < a.n_exclude; k++)
        free(a.exclude[k]);
    return rc < 0 ? 0 : rc;
}
