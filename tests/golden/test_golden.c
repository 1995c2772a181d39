/* test_golden.c - golden-model test: for every NAME.onnx in the folders given on the
 * command line, feeds NAME.in.<input>.npy and compares every output with
 * NAME.out.<output>.npy (max abs error <= 1e-4, or relative to the output's largest
 * magnitude when that exceeds 1).  Prints one line per model and
 * "N passed, N failed".  A leading "--opt LEVEL" (none|basic|extended|all) loads
 * the models at that optimization level instead of the default (all). */
#include "kiln.h"
#include "formats/npy.h"
#include "opt/opt.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOL 1e-4

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int load_inputs(const kiln_model *m, const char *base, kn_tensor *ts, kiln_tensor *ins,
                       const char **names)
{
    size_t n = kiln_model_input_count(m);
    for (size_t i = 0; i < n; i++) {
        kiln_value_info info;
        kiln_model_input(m, i, &info);
        char path[4200];
        snprintf(path, sizeof path, "%s.in.%s.npy", base, info.name);
        kn_error err = {0};
        if (kn_npy_read_file(path, &ts[i], &err)) {
            printf("  %s\n", err.msg);
            return -1;
        }
        names[i] = info.name;
        ins[i] = (kiln_tensor){.dtype = (kiln_dtype)ts[i].dtype, .rank = ts[i].rank, .data = ts[i].data,
                               .nbytes = ts[i].nbytes};
        memcpy(ins[i].shape, ts[i].dims, sizeof(int64_t) * (size_t)ts[i].rank);
    }
    return 0;
}

/* Max error of got vs want scaled per the file comment; -1 on shape mismatch. */
static double output_error(const kiln_tensor *got, const kn_tensor *want)
{
    if ((kn_dtype)got->dtype != want->dtype || got->rank != want->rank ||
        memcmp(got->shape, want->dims, sizeof(int64_t) * (size_t)got->rank))
        return -1;
    double max_err = 0, max_mag = 0;
    for (int64_t i = 0; i < want->numel; i++) {
        double g = kn_load_f64(got->data, want->dtype, (size_t)i);
        double w = kn_load_f64(want->data, want->dtype, (size_t)i);
        double e = fabs(g - w);
        if (isnan(e) && !(isnan(g) && isnan(w)))
            return INFINITY;
        if (e > max_err)
            max_err = e;
        if (fabs(w) > max_mag)
            max_mag = fabs(w);
    }
    return max_mag > 1 ? max_err / max_mag : max_err;
}

static bool compare_outputs(const kiln_model *m, const char *base, const kiln_tensor *outs, size_t n)
{
    bool ok = true;
    for (size_t k = 0; k < n; k++) {
        kiln_value_info info;
        kiln_model_output(m, k, &info);
        char path[4200];
        snprintf(path, sizeof path, "%s.out.%s.npy", base, info.name);
        if (!exists(path))
            continue;
        kn_tensor want = {0};
        kn_error err = {0};
        if (kn_npy_read_file(path, &want, &err)) {
            printf("  %s\n", err.msg);
            return false;
        }
        double e = output_error(&outs[k], &want);
        printf("  output %-12s max error %.3g%s\n", info.name, e, e < 0 ? " (shape/dtype mismatch)" : "");
        ok &= e >= 0 && e <= TOL;
        kn_tensor_release(&want);
    }
    return ok;
}

static kiln_load_options load_options;   /* zero: the API's default level */

static bool run_model(const char *dir, const char *file)
{
    char path[4200], base[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(base, sizeof base, "%s/%.*s", dir, (int)(strlen(file) - 5), file);
    kiln_model *m;
    if (kiln_model_load_with(path, &load_options, &m)) {
        printf("  load failed: %s\n", kiln_errmsg());
        return false;
    }
    size_t n = kiln_model_input_count(m);
    kn_tensor *ts = calloc(n + 1, sizeof *ts);
    kiln_tensor *ins = calloc(n + 1, sizeof *ins);
    const char **names = calloc(n + 1, sizeof *names);
    kiln_session *s = NULL;
    kiln_tensor *outs = NULL;
    size_t n_out = 0;
    bool ok = ts && ins && names && load_inputs(m, base, ts, ins, names) == 0 &&
              kiln_session_create(m, &s) == KILN_OK;
    if (ok && kiln_session_run(s, names, ins, n, &outs, &n_out)) {
        printf("  run failed: %s\n", kiln_errmsg());
        ok = false;
    }
    if (ok)
        ok = compare_outputs(m, base, outs, n_out);
    kiln_tensors_free(outs, n_out);
    for (size_t i = 0; ts && i < n; i++)
        kn_tensor_release(&ts[i]);
    free(ts);
    free(ins);
    free(names);
    kiln_session_free(s);
    kiln_model_free(m);
    return ok;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, first = 1;
    if (argc > 2 && !strcmp(argv[1], "--opt")) {
        int level = kn_opt_level_parse(argv[2]);
        if (level < 0) {
            printf("unknown optimization level '%s'\n", argv[2]);
            return 2;
        }
        load_options.opt_level = level;
        load_options.no_optimize = level == KN_OPT_NONE;
        first = 3;
    }
    for (int a = first; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            printf("skipping %s (not found)\n", argv[a]);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len < 6 || strcmp(e->d_name + len - 5, ".onnx"))
                continue;
            printf("%s/%s\n", argv[a], e->d_name);
            bool ok = run_model(argv[a], e->d_name);
            printf("  %s\n", ok ? "ok" : "FAILED");
            ok ? passed++ : failed++;
        }
        closedir(d);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
