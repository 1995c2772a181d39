/* cmd_run.c - `kiln run`: run a model on .npy inputs (or random ones), write every
 * output as OUTDIR/<sanitized output name>.npy and print a short summary. */
#include "cli.h"
#include "inputs.h"

#include "kiln.h"
#include "formats/npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct run_opts {
    const char *model;
    cli_inputs in;
    const char *outdir;
    const char *save_inputs;
    int threads;
    int opt_level;
} run_opts;

static void run_usage(FILE *f)
{
    fprintf(f, "usage: kiln run MODEL [-i NAME=FILE.npy]... [-o OUTDIR] [--random] [--seed N]\n"
               "                [--dim NAME=VALUE]... [--batch N] [--threads N] [--opt LEVEL]\n"
               "  -i NAME=FILE   feed input NAME from a .npy file\n"
               "  --random       fill inputs not given with random values (shapes from the model;\n"
               "                 symbolic dimensions from --dim, a symbolic first one from --batch,\n"
               "                 else 1)\n"
               "  -o OUTDIR      write each output as OUTDIR/<output>.npy\n"
               "  --save-inputs DIR  also write the inputs used as DIR/<input>.npy\n"
               "  --threads N    intra-op threads (default: physical cores)\n"
               "  --opt LEVEL    graph optimization: none, basic, extended, all (default all)\n");
}

/* --threads N and --opt LEVEL, shared by run and bench. */
int cli_session_option(int argc, char **argv, int *i, int *threads, int *opt_level, const char *cmd)
{
    int64_t v;
    if (!strcmp(argv[*i], "--threads") && *i + 1 < argc) {
        if (!cli_parse_i64(argv[++*i], &v) || v < 1 || v > 1024)
            return -cli_error("%s: --threads expects a number from 1 to 1024", cmd);
        *threads = (int)v;
        return 1;
    }
    if (!strcmp(argv[*i], "--opt") && *i + 1 < argc) {
        static const char *const levels[] = {"none", "basic", "extended", "all"};
        for (int k = 0; k < 4; k++) {
            if (!strcmp(argv[*i + 1], levels[k])) {
                *opt_level = k;
                ++*i;
                return 1;
            }
        }
        return -cli_error("%s: --opt expects none, basic, extended or all, got '%s'", cmd, argv[*i + 1]);
    }
    return 0;
}

static int parse_run_args(int argc, char **argv, run_opts *o)
{
    o->opt_level = KILN_OPT_ALL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used = cli_inputs_option(&o->in, argc, argv, &i, "run");
        if (!used)
            used = cli_session_option(argc, argv, &i, &o->threads, &o->opt_level, "run");
        if (used < 0)
            return 1;
        if (used)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            run_usage(stdout);
            exit(0);
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            o->outdir = argv[++i];
        } else if (!strcmp(a, "--save-inputs") && i + 1 < argc) {
            o->save_inputs = argv[++i];
        } else if (a[0] == '-') {
            run_usage(stderr);
            return cli_error("run: unknown or incomplete option '%s'", a);
        } else if (!o->model) {
            o->model = a;
        } else {
            return cli_error("run: unexpected argument '%s'", a);
        }
    }
    if (!o->model) {
        run_usage(stderr);
        return cli_error("run: no model given");
    }
    return 0;
}

static void sanitize(const char *name, char *out, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; name[i] && j + 1 < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || (c == '.' && i > 0);
        out[j++] = ok ? c : '_';
    }
    if (j == 0)
        out[j++] = '_';
    out[j] = '\0';
}

static void summarize(const char *name, const kiln_tensor *t)
{
    char dims[256];
    int64_t d64[KILN_MAX_RANK];
    memcpy(d64, t->shape, sizeof d64);
    kn_dims_str(t->rank, d64, dims, sizeof dims);
    int64_t n = (int64_t)(t->nbytes / (kiln_dtype_size(t->dtype) ? kiln_dtype_size(t->dtype) : 1));
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = kn_load_f64(t->data, (kn_dtype)t->dtype, (size_t)i);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        sum += v;
    }
    printf("  %s: %s%s", name, kiln_dtype_name(t->dtype), dims);
    if (n)
        printf("  min %.6g  max %.6g  mean %.6g", mn, mx, sum / (double)n);
    printf("\n    [");
    for (int64_t i = 0; i < n && i < 8; i++)
        printf("%s%.6g", i ? ", " : "", kn_load_f64(t->data, (kn_dtype)t->dtype, (size_t)i));
    printf("%s]\n", n > 8 ? ", ..." : "");
}

/* Write tensors as DIR/<sanitized name>.npy; names from the model's inputs or outputs. */
static int write_tensors(const kiln_model *m, bool inputs, const kiln_tensor *outs, size_t n, const char *dir)
{
    if (mkdir(dir, 0777) && errno != EEXIST)
        return cli_error("run: cannot create %s: %s", dir, strerror(errno));
    for (size_t k = 0; k < n; k++) {
        kiln_value_info info;
        if (inputs)
            kiln_model_input(m, k, &info);
        else
            kiln_model_output(m, k, &info);
        char fname[512], path[4200];
        sanitize(info.name, fname, sizeof fname);
        snprintf(path, sizeof path, "%s/%s.npy", dir, fname);
        kn_tensor t = {0};
        kn_error err = {0};
        if (kn_tensor_set_shape(&t, (kn_dtype)outs[k].dtype, outs[k].rank, outs[k].shape, &err))
            return cli_error("run: %s", err.msg);
        t.data = outs[k].data;
        if (kn_npy_write_file(path, &t, &err))
            return cli_error("run: %s", err.msg);
        printf("  wrote %s\n", path);
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_opts o = {0};
    if (parse_run_args(argc, argv, &o))
        return 1;
    double t0 = cli_now();
    kiln_model *m;
    kiln_load_options lo = {.opt_level = o.opt_level, .no_optimize = o.opt_level == KILN_OPT_NONE};
    if (kiln_model_load_with(o.model, &lo, &m)) {
        cli_inputs_free(&o.in);
        return cli_error("%s", kiln_errmsg());
    }
    double t_load = cli_now() - t0;
    size_t n = kiln_model_input_count(m);
    kn_tensor *tensors = calloc(n + 1, sizeof *tensors);
    kiln_tensor *ins = calloc(n + 1, sizeof *ins);
    const char **names = calloc(n + 1, sizeof *names);
    kiln_session *s = NULL;
    kiln_tensor *outs = NULL;
    size_t n_out = 0;
    int rc = (!tensors || !ins || !names) ? cli_error("out of memory") : cli_inputs_gather(m, &o.in, tensors, ins, names, "run");
    double t_run = 0;
    kiln_session_options so = {.threads = o.threads};
    if (!rc && kiln_session_create_with(m, &so, &s))
        rc = cli_error("%s", kiln_errmsg());
    if (!rc) {
        t0 = cli_now();
        if (kiln_session_run(s, names, ins, n, &outs, &n_out))
            rc = cli_error("%s", kiln_errmsg());
        t_run = cli_now() - t0;
    }
    if (!rc) {
        printf("%s: loaded in %.1f ms, ran in %.1f ms\n", o.model, t_load * 1e3, t_run * 1e3);
        for (size_t k = 0; k < n_out; k++) {
            kiln_value_info info;
            kiln_model_output(m, k, &info);
            summarize(info.name, &outs[k]);
        }
        if (o.outdir)
            rc = write_tensors(m, false, outs, n_out, o.outdir);
        if (!rc && o.save_inputs)
            rc = write_tensors(m, true, ins, n, o.save_inputs);
    }
    kiln_tensors_free(outs, n_out);
    for (size_t i = 0; i < n && tensors; i++)
        kn_tensor_release(&tensors[i]);
    free(tensors);
    free(ins);
    free(names);
    cli_inputs_free(&o.in);
    kiln_session_free(s);
    kiln_model_free(m);
    return rc;
}
