/* cmd_calibrate.c - `kiln calibrate MODEL --calib DATA -o ranges.txt`: activation
 * ranges of a model over calibration data, written as "name lo hi" lines (what
 * `kiln quantize --ranges` reads); and cli_calibrate (calib_data.h), the
 * calibration loop with its progress display that `kiln quantize` shares. */
#include "calib_data.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- progress on stderr: a bar on a terminal, else a line per 10% ---- */

typedef struct progress {
    bool tty, quiet;
    int last_step;      /* lines: the last 10% step printed */
    double t0;
} progress;

static void progress_show(progress *p, double frac, int64_t samples)
{
    if (p->quiet)
        return;
    int pct = (int)(frac * 100.0 + 1e-9);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30.0 + 1e-9);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\rcalibrating [%s] %3d%%  %lld samples  %.1f s", bar, pct, (long long)samples,
                cli_now() - p->t0);
        fflush(stderr);
    } else if (pct / 10 > p->last_step) {
        p->last_step = pct / 10;
        fprintf(stderr, "calibrating: %d%% (%lld samples, %.1f s)\n", p->last_step * 10, (long long)samples,
                cli_now() - p->t0);
    }
}

static void progress_end(const progress *p)
{
    if (p->tty && !p->quiet)
        fputc('\n', stderr);
}

/* ---- the calibration loop ---- */

/* The one input without an initializer: its shape (unknown dims < 0). */
static int model_input(const kn_model *m, int *rank, int64_t *dims)
{
    const kn_graph *g = m->graph;
    const kn_value *in = NULL;
    int n = 0;
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init && n++ == 0)
            in = &g->values[g->inputs[i]];
    if (n != 1)
        return cli_error("calibrate: the model has %d inputs; calibration feeds models with exactly one", n);
    if (!in->has_type || in->type.kind != KN_TYPE_TENSOR || in->type.dtype != KN_F32 || in->type.rank < 1)
        return cli_error("calibrate: the model input '%s' must be a float32 tensor with a batch dimension",
                         in->name);
    *rank = in->type.rank;
    for (int k = 0; k < *rank; k++)
        dims[k] = in->type.dims[k].value;
    return 0;
}

static int run_batches(kn_observer *obs, calib_data *data, kn_calib *cal, bool quiet, kn_error *err)
{
    progress p = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .t0 = cli_now()};
    int rc = KN_OK;
    for (;;) {
        kn_tensor batch;
        bool done;
        if ((rc = calib_data_next(data, &batch, &done, err)) || done)
            break;
        const kn_tensor *ins[1] = {&batch};
        rc = kn_observer_run(obs, 1, ins, kn_calib_observe, cal, err);
        kn_tensor_release(&batch);
        if (rc)
            break;
        progress_show(&p, calib_data_progress(data), calib_data_samples(data));
    }
    if (!rc) /* the end (also when a remainder the model cannot take was left out) */
        progress_show(&p, 1.0, calib_data_samples(data));
    progress_end(&p);
    return rc;
}

int cli_calibrate(const char *model_path, const cli_calib_opts *o, kn_act_ranges *out)
{
    out->v = NULL;
    out->n = 0;
    kn_error err = {0};
    kn_observer *obs = NULL;
    calib_data *data = NULL;
    kn_calib *cal = NULL;
    kn_calib_opts co = {.method = o->method, .percentile = o->percentile};
    int rank = 0, rc = 0;
    int64_t dims[KN_MAX_RANK];
    if (kn_calib_create(&co, &cal, &err) || kn_observer_open(model_path, NULL, 0, o->threads, &obs, &err))
        rc = 1;
    else if ((rc = model_input(kn_observer_model(obs), &rank, dims)))
        goto done;
    else if (calib_data_open(o, rank, dims, &data, &err) || run_batches(obs, data, cal, o->quiet, &err))
        rc = 1;
    if (rc) {
        cli_error("calibrate: %s", err.msg);
        goto done;
    }
    if (calib_data_dropped(data))
        fprintf(stderr, "kiln: calibrate: %lld samples left out: the model takes batches of exactly %lld\n",
                (long long)calib_data_dropped(data), (long long)dims[0]);
    if (calib_data_samples(data) == 0)
        rc = cli_error("calibrate: %s gave no samples", o->calib);
    else if (kn_calib_ranges(cal, out, &err))
        rc = cli_error("calibrate: %s", err.msg);
done:
    calib_data_close(data);
    kn_calib_free(cal);
    kn_observer_close(obs);
    return rc;
}

/* ---- kiln calibrate ---- */

static void calibrate_usage(FILE *f)
{
    fprintf(f, "usage: kiln calibrate MODEL --calib PATH [options] [-o RANGES.txt] [--threads N] [--quiet]\n"
               "  writes one 'name lo hi' line per float value of the model (stdout without -o),\n"
               "  the format 'kiln quantize --ranges' reads\n%s",
               cli_calib_help);
}

/* "name lo hi" lines after a '#' comment saying where they came from.  A name the
 * line format cannot carry (whitespace, a leading '#') is left out, with a note. */
static int write_ranges(const char *path, const kn_act_ranges *r, const char *model, const cli_calib_opts *o)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f)
        return cli_error("calibrate: cannot write %s", path);
    fprintf(f, "# kiln calibrate %s --calib %s --calib-method %s", model, o->calib, kn_calib_method_name(o->method));
    if (o->method == KN_CALIB_PERCENTILE)
        fprintf(f, " --percentile %g", o->percentile);
    fputc('\n', f);
    size_t skipped = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *name = r->v[i].name;
        if (!*name || name[0] == '#' || strpbrk(name, " \t\r\n")) {
            skipped++;
            continue;
        }
        fprintf(f, "%s %.9g %.9g\n", name, (double)r->v[i].lo, (double)r->v[i].hi);
    }
    bool bad = ferror(f) != 0;
    if (path)
        bad = fclose(f) != 0 || bad;
    else
        bad = fflush(f) != 0 || bad;
    if (skipped)
        fprintf(stderr, "kiln: calibrate: %zu values left out: their names hold whitespace or start with '#'\n",
                skipped);
    return bad ? cli_error("calibrate: error writing %s", path ? path : "stdout") : 0;
}

static int parse_calibrate_args(int argc, char **argv, cli_calib_opts *o, const char **model,
                                const char **out)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int got = cli_calib_option(o, argc, argv, &i, "calibrate");
        if (got < 0)
            return 1;
        if (got)
            continue;
        int64_t n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            calibrate_usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            *out = argv[++i];
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (!cli_parse_i64(argv[++i], &n) || n > 1024)
                return cli_error("calibrate: --threads expects a number");
            o->threads = (int)n;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = true;
        } else if (a[0] == '-') {
            calibrate_usage(stderr);
            return cli_error("calibrate: unknown or incomplete option '%s'", a);
        } else if (!*model) {
            *model = a;
        } else {
            return cli_error("calibrate: unexpected argument '%s'", a);
        }
    }
    if (!*model || !o->calib) {
        calibrate_usage(stderr);
        return cli_error("calibrate: MODEL and --calib are required");
    }
    return 0;
}

int cmd_calibrate(int argc, char **argv)
{
    cli_calib_opts o;
    cli_calib_opts_init(&o);
    const char *model = NULL, *out = NULL;
    if (parse_calibrate_args(argc, argv, &o, &model, &out))
        return 1;
    double t0 = cli_now();
    kn_act_ranges r;
    if (cli_calibrate(model, &o, &r))
        return 1;
    int rc = write_ranges(out, &r, model, &o);
    if (!rc && !o.quiet)
        fprintf(stderr, "calibrated %zu values (%s) in %.1f s%s%s\n", r.n, kn_calib_method_name(o.method),
                cli_now() - t0, out ? " -> " : "", out ? out : "");
    kn_act_ranges_free(&r);
    return rc;
}
