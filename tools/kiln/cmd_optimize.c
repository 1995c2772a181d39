/* cmd_optimize.c - `kiln optimize`: load a model (no kernel preparation), run the
 * graph optimizer at a level, print what it did (nodes before/after, rewrites per
 * pass, sizes before/after) and write the result as an ONNX file, optionally with
 * the initializers in an external data file. */
#include "cli.h"

#include "formats/onnx.h"
#include "opt/opt.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct opt_args {
    const char *in, *out;
    int level;
    kn_onnx_write_options wo;
} opt_args;

static void optimize_usage(FILE *f)
{
    fprintf(f, "usage: kiln optimize MODEL -o OUT.onnx [--level none|basic|extended|all]\n"
               "                     [--external-data] [--inferred-types]\n"
               "Optimizes MODEL's graph (default level: all) and writes it as ONNX that\n"
               "ONNX Runtime loads too (kiln-only fusions are left to load time).\n"
               "--external-data   initializers of 1 KiB or more go to OUT.onnx.data\n"
               "                  (also done by itself past 1.5 GiB of initializers)\n"
               "--inferred-types  also record the types kiln inferred as value_info\n");
}

/* 0: parsed; 1: error (message printed); -1: --help was asked for. */
static int parse_args(int argc, char **argv, opt_args *a)
{
    kn_onnx_write_options_init(&a->wo);
    a->level = KN_OPT_ALL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            optimize_usage(stdout);
            return -1;
        } else if ((!strcmp(s, "-o") || !strcmp(s, "--output")) && i + 1 < argc) {
            a->out = argv[++i];
        } else if (!strcmp(s, "--level") && i + 1 < argc) {
            if ((a->level = kn_opt_level_parse(argv[++i])) < 0)
                return cli_error("optimize: unknown level '%s' (none, basic, extended or all)", argv[i]);
        } else if (!strcmp(s, "--external-data")) {
            a->wo.external = KN_ONNX_EXTERNAL_ALWAYS;
        } else if (!strcmp(s, "--inferred-types")) {
            a->wo.inferred_types = true;
        } else if (s[0] == '-' || a->in) {
            optimize_usage(stderr);
            return cli_error("optimize: unexpected argument '%s'", s);
        } else {
            a->in = s;
        }
    }
    if (!a->in || !a->out) {
        optimize_usage(stderr);
        return cli_error("optimize: a MODEL and -o OUT.onnx are required");
    }
    return 0;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static long long param_bytes(const kn_graph *g)
{
    long long sum = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init)
            sum += (long long)g->values[v].init->nbytes;
    return sum;
}

static void print_report(const kn_opt_report *rep, const char *level)
{
    printf("level %s: %d nodes before, %d after\n", level, rep->nodes_before, rep->nodes_after);
    for (int i = 0; i < rep->n_passes; i++)
        printf("  %-32s %6d rewrites\n", rep->passes[i].name, rep->passes[i].rewrites);
    if (!rep->n_passes)
        printf("  (no pass ran)\n");
}

/* Size of the written model plus its data file, if one was written. */
static long long written_size(const char *out, const kn_onnx_write_options *wo, long long params)
{
    long long size = file_size(out);
    char data[4200];
    snprintf(data, sizeof data, "%s.data", out);
    bool external = wo->external == KN_ONNX_EXTERNAL_ALWAYS ||
                    (unsigned long long)params > KN_ONNX_AUTO_EXTERNAL_BYTES;
    long long ds = external ? file_size(data) : -1;
    return ds > 0 ? size + ds : size;
}

int cmd_optimize(int argc, char **argv)
{
    static const char *const level_names[] = {"none", "basic", "extended", "all"};
    opt_args a = {0};
    int prc = parse_args(argc, argv, &a);
    if (prc)
        return prc < 0 ? 0 : prc;
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_onnx_load_file(a.in, &m, &err))
        return cli_error("%s", err.msg);
    long long params_before = param_bytes(m->graph);
    kn_opt_report rep;
    double t0 = cli_now();
    int rc = kn_optimize_portable(m, (kn_opt_level)a.level, &rep, &err);
    double t1 = cli_now();
    if (rc) {
        kn_model_free(m);
        return cli_error("optimize: %s", err.msg);
    }
    print_report(&rep, level_names[a.level]);
    long long params_after = param_bytes(m->graph);
    rc = kn_onnx_write_file(m, a.out, &a.wo, &err);
    double t2 = cli_now();
    kn_model_free(m);
    if (rc)
        return cli_error("optimize: %s", err.msg);
    printf("initializers: %lld bytes before, %lld after\n", params_before, params_after);
    printf("file size: %lld bytes before, %lld after\n", file_size(a.in), written_size(a.out, &a.wo, params_after));
    printf("optimized in %.1f ms, written in %.1f ms: %s\n", (t1 - t0) * 1e3, (t2 - t1) * 1e3, a.out);
    return 0;
}
