/* cmd_calibrate.c - `kiln calibrate MODEL --calib DATA -o ranges.txt`: activation
 * ranges of a model over calibration data, written as "name lo hi" lines (what
 * `kiln quantize --ranges` reads); and cli_calibrate (calib_data.h), the
 * calibration loop with its progress display that `kiln quantize` shares. */
#include "calib_data.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* The model's inputs without initializer, in graph order, each with its data. */
typedef struct calib_input {
    const char *name;
    kn_dtype dtype;
    int rank;
    int64_t dims[KN_MAX_RANK];   /* unknown dims < 0 */
    calib_data *data;
} calib_input;

typedef struct calib_inputs {
    calib_input *v;
    int n;
} calib_inputs;

static void inputs_close(calib_inputs *in)
{
    for (int i = 0; i < in->n; i++)
        calib_data_close(in->v[i].data);
    free(in->v);
    in->v = NULL;
    in->n = 0;
}

/* The inputs' names, types and shapes; 1 after printing why they cannot be fed. */
static int model_inputs(const kn_model *m, calib_inputs *out)
{
    const kn_graph *g = m->graph;
    if (!(out->v = calloc((size_t)g->n_inputs + 1, sizeof *out->v)))
        return cli_error("calibrate: out of memory");
    for (int i = 0; i < g->n_inputs; i++) {
        const kn_value *in = &g->values[g->inputs[i]];
        if (in->init)
            continue;
        if (!in->has_type || in->type.kind != KN_TYPE_TENSOR || in->type.rank < 1)
            return cli_error("calibrate: the model input '%s' must be a tensor with a batch dimension", in->name);
        calib_input *c = &out->v[out->n++];
        c->name = in->name;
        c->dtype = in->type.dtype;
        c->rank = in->type.rank;
        for (int k = 0; k < c->rank; k++)
            c->dims[k] = in->type.dims[k].value;
    }
    return out->n ? 0 : cli_error("calibrate: the model has no inputs to feed");
}

/* Open each input's data: o->calib itself for one input, else o->calib/<name>.npy. */
static int open_inputs(calib_inputs *in, const cli_calib_opts *o, kn_error *err)
{
    cli_calib_opts one = *o;
    char path[4096];
    struct stat st;
    if (in->n > 1 && (stat(o->calib, &st) != 0 || !S_ISDIR(st.st_mode)))
        return kn_fail(err, KN_ERR_ARG, "the model has %d inputs: --calib must be a folder holding "
                       "<input name>.npy for each ('%s.npy', ...)", in->n, in->v[0].name);
    for (int i = 0; i < in->n; i++) {
        calib_input *c = &in->v[i];
        if (in->n > 1) {
            if ((size_t)snprintf(path, sizeof path, "%s/%s.npy", o->calib, c->name) >= sizeof path ||
                strchr(c->name, '/'))
                return kn_fail(err, KN_ERR_ARG, "input '%s': no file name for it under %s", c->name, o->calib);
            one.calib = path;
        }
        if (calib_data_open(&one, c->dtype, c->rank, c->dims, &c->data, err))
            return kn_error_prefix(err, "input '%s': ", c->name);
    }
    return KN_OK;
}

/* The next batch of every input into b[]; *done when there is no more.  The inputs
 * must run out together and agree on the batch size. */
static int next_batches(calib_inputs *in, kn_tensor *b, bool *done, kn_error *err)
{
    int rc = KN_OK, n_done = 0;
    for (int i = 0; i < in->n && !rc; i++) {
        bool d;
        rc = calib_data_next(in->v[i].data, &b[i], &d, err);
        n_done += !rc && d;
        if (!rc && !d && i && b[i].dims[0] != b[0].dims[0])
            rc = kn_fail(err, KN_ERR_ARG, "inputs '%s' and '%s' give batches of %lld and %lld samples: the files "
                         "must hold the same number of samples", in->v[0].name, in->v[i].name,
                         (long long)b[0].dims[0], (long long)b[i].dims[0]);
    }
    if (!rc && n_done && n_done != in->n)
        rc = kn_fail(err, KN_ERR_ARG, "the inputs' files hold different numbers of samples");
    *done = n_done == in->n;
    if (rc || *done)
        for (int i = 0; i < in->n; i++)
            kn_tensor_release(&b[i]);
    return rc;
}

static int run_batches(kn_observer *obs, calib_inputs *in, kn_calib *cal, bool quiet, kn_error *err)
{
    progress p = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .t0 = cli_now()};
    calib_data *first = in->v[0].data;
    kn_tensor *b = calloc((size_t)in->n, sizeof *b);
    const kn_tensor **ins = calloc((size_t)in->n, sizeof *ins);
    int rc = b && ins ? KN_OK : kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < in->n && !rc; i++)
        ins[i] = &b[i];
    while (!rc) {
        bool done;
        if ((rc = next_batches(in, b, &done, err)) || done)
            break;
        rc = kn_observer_run(obs, in->n, ins, kn_calib_observe, cal, err);
        for (int i = 0; i < in->n; i++)
            kn_tensor_release(&b[i]);
        if (!rc)
            progress_show(&p, calib_data_progress(first), calib_data_samples(first));
    }
    if (!rc) /* the end (also when a remainder the model cannot take was left out) */
        progress_show(&p, 1.0, calib_data_samples(first));
    progress_end(&p);
    free(b);
    free(ins);
    return rc;
}

int cli_calibrate(const char *model_path, const cli_calib_opts *o, kn_act_ranges *out)
{
    out->v = NULL;
    out->n = 0;
    kn_error err = {0};
    kn_observer *obs = NULL;
    calib_inputs in = {0};
    kn_calib *cal = NULL;
    kn_calib_opts co = {.method = o->method, .percentile = o->percentile};
    int rc = 0;
    if (kn_calib_create(&co, &cal, &err) || kn_observer_open(model_path, NULL, 0, o->threads, &obs, &err))
        rc = 1;
    else if ((rc = model_inputs(kn_observer_model(obs), &in)))
        goto done;
    else if (open_inputs(&in, o, &err) || run_batches(obs, &in, cal, o->quiet, &err))
        rc = 1;
    if (rc) {
        cli_error("calibrate: %s", err.msg);
        goto done;
    }
    calib_data *first = in.v[0].data;
    if (calib_data_dropped(first))
        fprintf(stderr, "kiln: calibrate: %lld samples left out: the model takes batches of exactly %lld\n",
                (long long)calib_data_dropped(first), (long long)in.v[0].dims[0]);
    if (calib_data_samples(first) == 0)
        rc = cli_error("calibrate: %s gave no samples", o->calib);
    else if (kn_calib_ranges(cal, out, &err))
        rc = cli_error("calibrate: %s", err.msg);
done:
    inputs_close(&in);
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
