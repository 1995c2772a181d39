/* cmd_run.c - `kiln run`: run a model on .npy inputs (or random ones), write every
 * output as OUTDIR/<sanitized output name>.npy and print a short summary. */
#include "cli.h"

#include "kiln.h"
#include "formats/npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ARGS 256

typedef struct run_opts {
    const char *model;
    const char *in_names[MAX_ARGS];
    const char *in_files[MAX_ARGS];
    int n_in;
    const char *dim_names[MAX_ARGS];
    int64_t dim_values[MAX_ARGS];
    int n_dims;
    const char *outdir;
    const char *save_inputs;
    bool random;
    uint64_t seed;
} run_opts;

static void run_usage(FILE *f)
{
    fprintf(f, "usage: kiln run MODEL [-i NAME=FILE.npy]... [-o OUTDIR] [--random] [--seed N]\n"
               "                [--dim NAME=VALUE]...\n"
               "  -i NAME=FILE   feed input NAME from a .npy file\n"
               "  --random       fill inputs not given with random values (shapes from the model;\n"
               "                 symbolic dimensions from --dim, default 1)\n"
               "  -o OUTDIR      write each output as OUTDIR/<output>.npy\n"
               "  --save-inputs DIR  also write the inputs used as DIR/<input>.npy\n");
}

static int parse_pair(const char *arg, const char **name, const char **value)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return -1;
    size_t len = (size_t)(eq - arg);
    char *n = malloc(len + 1);
    if (!n)
        return -1;
    memcpy(n, arg, len);
    n[len] = '\0';
    *name = n;
    *value = eq + 1;
    return 0;
}

static int parse_run_args(int argc, char **argv, run_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            run_usage(stdout);
            exit(0);
        } else if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && i + 1 < argc) {
            if (o->n_in == MAX_ARGS || parse_pair(argv[++i], &name, &val))
                return cli_error("run: -i expects NAME=FILE.npy, got '%s'", argv[i]);
            o->in_names[o->n_in] = name;
            o->in_files[o->n_in++] = val;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            o->outdir = argv[++i];
        } else if (!strcmp(a, "--save-inputs") && i + 1 < argc) {
            o->save_inputs = argv[++i];
        } else if (!strcmp(a, "--random")) {
            o->random = true;
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            int64_t v;
            if (!cli_parse_i64(argv[++i], &v))
                return cli_error("run: --seed expects a number");
            o->seed = (uint64_t)v;
        } else if (!strcmp(a, "--dim") && i + 1 < argc) {
            int64_t v;
            if (o->n_dims == MAX_ARGS || parse_pair(argv[++i], &name, &val) || !cli_parse_i64(val, &v))
                return cli_error("run: --dim expects NAME=VALUE, got '%s'", argv[i]);
            o->dim_names[o->n_dims] = name;
            o->dim_values[o->n_dims++] = v;
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

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random tensor for an input: floats in [-1, 1), ints in [0, 10), bools 0/1. */
static int random_input(const kiln_value_info *info, const run_opts *o, uint64_t *rng, kn_tensor *t)
{
    if (info->rank < 0)
        return cli_error("run: input '%s' has no declared shape; give it with -i", info->name);
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < info->rank; d++) {
        dims[d] = info->shape[d] >= 0 ? info->shape[d] : 1;
        for (int k = 0; info->dim_names[d] && k < o->n_dims; k++)
            if (!strcmp(o->dim_names[k], info->dim_names[d]))
                dims[d] = o->dim_values[k];
    }
    kn_error err = {0};
    kn_dtype dt = (kn_dtype)info->dtype;
    if (kn_tensor_alloc(t, dt, info->rank, dims, &err))
        return cli_error("run: input '%s': %s", info->name, err.msg);
    for (int64_t i = 0; i < t->numel; i++) {
        uint64_t r = rng_next(rng);
        if (kn_dtype_is_float(dt))
            kn_store_f64(t->data, dt, (size_t)i, (double)(r >> 11) / 4503599627370496.0 - 1.0);
        else
            kn_store_i64(t->data, dt, (size_t)i, dt == KN_BOOL ? (int64_t)(r & 1) : (int64_t)(r % 10));
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

/* Collect inputs in model order: from -i files, else random when asked. */
static int gather_inputs(const kiln_model *m, const run_opts *o, kn_tensor *tensors,
                         kiln_tensor *ins, const char **names)
{
    size_t n = kiln_model_input_count(m);
    uint64_t rng = o->seed * 2654435761u + 88172645463325252ull;
    for (int k = 0; k < o->n_in; k++) {
        bool known = false;
        for (size_t i = 0; i < n; i++) {
            kiln_value_info info;
            kiln_model_input(m, i, &info);
            known |= !strcmp(info.name, o->in_names[k]);
        }
        if (!known)
            return cli_error("run: model has no input named '%s'", o->in_names[k]);
    }
    for (size_t i = 0; i < n; i++) {
        kiln_value_info info;
        kiln_model_input(m, i, &info);
        names[i] = info.name;
        const char *file = NULL;
        for (int k = 0; k < o->n_in; k++)
            if (!strcmp(o->in_names[k], info.name))
                file = o->in_files[k];
        kn_error err = {0};
        if (file) {
            if (kn_npy_read_file(file, &tensors[i], &err))
                return cli_error("run: input '%s': %s", info.name, err.msg);
        } else if (o->random) {
            if (random_input(&info, o, &rng, &tensors[i]))
                return 1;
        } else {
            return cli_error("run: input '%s' not given (use -i %s=FILE.npy or --random)", info.name,
                             info.name);
        }
        ins[i].dtype = (kiln_dtype)tensors[i].dtype;
        ins[i].rank = tensors[i].rank;
        memcpy(ins[i].shape, tensors[i].dims, sizeof(int64_t) * (size_t)tensors[i].rank);
        ins[i].data = tensors[i].data;
        ins[i].nbytes = tensors[i].nbytes;
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
    if (kiln_model_load(o.model, &m))
        return cli_error("%s", kiln_errmsg());
    double t_load = cli_now() - t0;
    size_t n = kiln_model_input_count(m);
    kn_tensor *tensors = calloc(n + 1, sizeof *tensors);
    kiln_tensor *ins = calloc(n + 1, sizeof *ins);
    const char **names = calloc(n + 1, sizeof *names);
    kiln_session *s = NULL;
    kiln_tensor *outs = NULL;
    size_t n_out = 0;
    int rc = (!tensors || !ins || !names) ? cli_error("out of memory") : gather_inputs(m, &o, tensors, ins, names);
    double t_run = 0;
    if (!rc && kiln_session_create(m, &s))
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
    for (int k = 0; k < o.n_in; k++)
        free((void *)o.in_names[k]);
    for (int k = 0; k < o.n_dims; k++)
        free((void *)o.dim_names[k]);
    kiln_session_free(s);
    kiln_model_free(m);
    return rc;
}
