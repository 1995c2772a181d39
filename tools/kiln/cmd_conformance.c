/* cmd_conformance.c - `kiln conformance`: runs ONNX backend test cases (a folder
 * with model.onnx and test_data_set_N/{input,output}_K.pb).  Each case runs in a
 * forked child with a time limit, so a crash or hang in one case is reported as a
 * failure of that case and the run goes on.  Prints a per-operator table and the
 * closing line "N passed, N failed, N skipped".  With --roundtrip each model is also
 * written by the ONNX writer and read back, and the re-read model must compute
 * bit-identical outputs. */
#include "cli.h"

#include "exec/exec.h"
#include "formats/onnx.h"
#include "formats/tensorproto.h"
#include "formats/valueproto.h"
#include "opt/opt.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { R_PASS, R_FAIL, R_SKIP };

typedef struct case_result {
    int kind;
    char op[64];
    char msg[900];
} case_result;

typedef struct conf_opts {
    const char *filters[64];
    int n_filters;
    bool list_failures;
    bool verbose;
    bool roundtrip;
    int timeout_s;
    int64_t expect_pass;
    int opt_level;      /* kn_optimize level applied after loading (0: none) */
} conf_opts;

/* ---- one case, run inside the child ---- */

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void op_label(const kn_graph *g, char *op, size_t len)
{
    const char *name = "(multi-node)";
    int real = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].op_type, "Constant")) {
            real++;
            name = g->nodes[i].op_type;
        }
    if (real > 1)
        name = "(multi-node)";
    snprintf(op, len, "%s", name);
}

static bool close_enough(double got, double want, double rtol, double atol)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

static int compare_tensor(const kn_tensor *got, const kn_tensor *want, const char *name,
                          case_result *r)
{
    char a[256], b[256];
    if (got->dtype != want->dtype || got->rank != want->rank ||
        memcmp(got->dims, want->dims, sizeof(int64_t) * (size_t)got->rank)) {
        snprintf(r->msg, sizeof r->msg, "output '%s': got %s, expected %s", name,
                 kn_tensor_describe(got, a, sizeof a), kn_tensor_describe(want, b, sizeof b));
        return R_FAIL;
    }
    bool is_float = kn_dtype_is_float(want->dtype);
    for (int64_t i = 0; i < want->numel; i++) {
        bool ok;
        double g, w;
        if (is_float) {
            g = kn_load_f64(got->data, got->dtype, (size_t)i);
            w = kn_load_f64(want->data, want->dtype, (size_t)i);
            ok = close_enough(g, w, 1e-3, 1e-7);
        } else {
            int64_t gi = kn_load_i64(got->data, got->dtype, (size_t)i);
            int64_t wi = kn_load_i64(want->data, want->dtype, (size_t)i);
            ok = gi == wi;
            g = (double)gi;
            w = (double)wi;
        }
        if (!ok) {
            snprintf(r->msg, sizeof r->msg, "output '%s' element %lld: got %.9g, expected %.9g",
                     name, (long long)i, g, w);
            return R_FAIL;
        }
    }
    return R_PASS;
}

static bool type_is_supported(const kn_value *v)
{
    if (!v->has_type)
        return true;
    switch (v->type.kind) {
    case KN_TYPE_TENSOR:
        return kn_dtype_supported(v->type.dtype);
    case KN_TYPE_SEQUENCE:
    case KN_TYPE_OPTIONAL:
        return v->type.dtype == KN_UNDEFINED || kn_dtype_supported(v->type.dtype);
    case KN_TYPE_UNKNOWN:
        return true;
    default:
        return false;
    }
}

static kn_value_kind value_kind(const kn_value *v)
{
    if (v->has_type && v->type.kind == KN_TYPE_SEQUENCE)
        return KN_VALUE_SEQUENCE;
    if (v->has_type && v->type.kind == KN_TYPE_OPTIONAL)
        return KN_VALUE_OPTIONAL;
    return KN_VALUE_TENSOR;
}

/* Compare values that may be sequences/optionals, item by item. */
static int compare_value(const kn_tensor *got, const kn_tensor *want, const char *name, case_result *r)
{
    if (want->kind == KN_VALUE_TENSOR && got->kind == KN_VALUE_TENSOR)
        return compare_tensor(got, want, name, r);
    if (got->kind != want->kind || got->n_items != want->n_items) {
        snprintf(r->msg, sizeof r->msg, "output '%s': got a %s of %d items, expected a %s of %d items",
                 name, got->kind == KN_VALUE_TENSOR ? "tensor" : got->kind == KN_VALUE_SEQUENCE ? "sequence" : "optional",
                 got->n_items, want->kind == KN_VALUE_TENSOR ? "tensor" : want->kind == KN_VALUE_SEQUENCE ? "sequence" : "optional",
                 want->n_items);
        return R_FAIL;
    }
    for (int i = 0; i < want->n_items; i++) {
        int kind = compare_value(&got->items[i], &want->items[i], name, r);
        if (kind != R_PASS)
            return kind;
    }
    return R_PASS;
}

static int classify(int code)
{
    return code == KN_ERR_UNSUPPORTED ? R_SKIP : R_FAIL;
}

/* Record err in r (prefixed with "reading PATH: " when path is given); returns
 * the case outcome the error means: skipped for unsupported, failed otherwise. */
static int record_error(case_result *r, const kn_error *err, const char *path)
{
    if (path)
        snprintf(r->msg, sizeof r->msg, "reading %s: %s", path, err->msg);
    else
        snprintf(r->msg, sizeof r->msg, "%s", err->msg);
    return classify(err->code);
}

static int check_io_types(const kn_graph *g, case_result *r)
{
    for (int i = 0; i < g->n_inputs; i++) {
        const kn_value *v = &g->values[g->inputs[i]];
        if (!type_is_supported(v)) {
            snprintf(r->msg, sizeof r->msg, "input '%s' has a type kiln does not support", v->name);
            return R_SKIP;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const kn_value *v = &g->values[g->outputs[i]];
        if (!type_is_supported(v)) {
            snprintf(r->msg, sizeof r->msg, "output '%s' has a type kiln does not support", v->name);
            return R_SKIP;
        }
    }
    return R_PASS;
}

/* --roundtrip: the re-read model must compute bit-identical values. */
static int compare_identical(const kn_tensor *got, const kn_tensor *want, const char *name,
                             case_result *r)
{
    bool same = got->kind == want->kind && got->n_items == want->n_items && got->dtype == want->dtype &&
                got->rank == want->rank && got->nbytes == want->nbytes &&
                !memcmp(got->dims, want->dims, sizeof(int64_t) * (size_t)got->rank) &&
                (!got->nbytes || !memcmp(got->data, want->data, got->nbytes));
    for (int i = 0; same && i < want->n_items; i++)
        if (compare_identical(&got->items[i], &want->items[i], name, r) != R_PASS)
            return R_FAIL;
    if (!same)
        snprintf(r->msg, sizeof r->msg, "output '%s' differs after writing and reading the model back", name);
    return same ? R_PASS : R_FAIL;
}

/* Run the re-read model rt on the same inputs and compare with outs. */
static int run_roundtrip(const kn_model *rt, int n_in, const kn_tensor **inp, int n_out,
                         const kn_tensor *outs, case_result *r)
{
    const kn_graph *g = rt->graph;
    if (g->n_inputs != n_in || g->n_outputs != n_out) {
        snprintf(r->msg, sizeof r->msg, "re-read model has %d inputs and %d outputs, expected %d and %d",
                 g->n_inputs, g->n_outputs, n_in, n_out);
        return R_FAIL;
    }
    kn_tensor *outs2 = calloc((size_t)n_out + 1, sizeof *outs2);
    kn_error err = {0};
    int kind = R_PASS;
    if (!outs2 || kn_exec_graph(g, NULL, n_in, inp, n_out, outs2, &err)) {
        snprintf(r->msg, sizeof r->msg, "re-read model: %s", outs2 ? err.msg : "out of memory");
        kind = R_FAIL;
    }
    for (int k = 0; k < n_out && kind == R_PASS; k++)
        kind = compare_identical(&outs2[k], &outs[k], g->values[g->outputs[k]].name, r);
    for (int k = 0; outs2 && k < n_out; k++)
        kn_tensor_release(&outs2[k]);
    free(outs2);
    return kind;
}

static int run_data_set(const kn_model *m, const kn_model *rt, const char *ds, case_result *r)
{
    const kn_graph *g = m->graph;
    int n_in = g->n_inputs, n_out = g->n_outputs;
    kn_tensor *ins = calloc((size_t)n_in + 1, sizeof *ins);
    const kn_tensor **inp = calloc((size_t)n_in + 1, sizeof *inp);
    kn_tensor *outs = calloc((size_t)n_out + 1, sizeof *outs);
    kn_error err = {0};
    int kind = R_PASS;
    char path[4200];
    for (int k = 0, slot = 0; k < n_in && kind == R_PASS; k++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", ds, k);
        if (!file_exists(path))
            break;
        while (slot < n_in && g->values[g->inputs[slot]].init)
            slot++;
        if (slot >= n_in)
            break;
        if (kn_valueproto_read_file(path, value_kind(&g->values[g->inputs[slot]]), &ins[slot], &err)) {
            kind = record_error(r, &err, path);
            break;
        }
        inp[slot] = &ins[slot];
        slot++;
    }
    if (kind == R_PASS && kn_exec_graph(g, NULL, n_in, inp, n_out, outs, &err)) {
        kind = record_error(r, &err, NULL);
    }
    if (kind == R_PASS && rt)
        kind = run_roundtrip(rt, n_in, inp, n_out, outs, r);
    for (int k = 0; k < n_out && kind == R_PASS; k++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", ds, k);
        kn_tensor want = {0};
        if (kn_valueproto_read_file(path, value_kind(&g->values[g->outputs[k]]), &want, &err)) {
            kind = record_error(r, &err, path);
            break;
        }
        kind = compare_value(&outs[k], &want, g->values[g->outputs[k]].name, r);
        kn_tensor_release(&want);
    }
    for (int k = 0; k < n_in; k++)
        kn_tensor_release(&ins[k]);
    for (int k = 0; k < n_out; k++)
        kn_tensor_release(&outs[k]);
    free(ins);
    free(inp);
    free(outs);
    return kind;
}

/* Write m with the ONNX writer into memory and read it back into *out. */
static int reload_model(const kn_model *m, const char *dir, kn_model **out, case_result *r)
{
    void *buf = NULL;
    size_t len = 0;
    kn_error err = {0};
    int rc = kn_onnx_write_buffer(m, &buf, &len, &err);
    if (!rc) {
        rc = kn_onnx_load_buffer(buf, len, dir, out, &err);
        free(buf);
        if (rc)
            kn_error_prefix(&err, "reading the written model back: ");
    } else {
        kn_error_prefix(&err, "writing the model: ");
    }
    if (rc)
        snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    return rc ? R_FAIL : R_PASS;
}

static void run_case(const char *dir, int opt_level, bool roundtrip, case_result *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    kn_error err = {0};
    kn_model *m = NULL;
    if (kn_onnx_parse_file(path, &m, &err)) {
        r->kind = record_error(r, &err, NULL);
        return;
    }
    op_label(m->graph, r->op, sizeof r->op);
    if (kn_model_finalize(m, &err)) {
        r->kind = record_error(r, &err, NULL);
        kn_model_free(m);
        return;
    }
    if (opt_level && kn_optimize(m, (kn_opt_level)opt_level, NULL, &err)) {
        r->kind = record_error(r, &err, NULL);
        kn_model_free(m);
        return;
    }
    r->kind = check_io_types(m->graph, r);
    kn_model *rt = NULL;
    if (r->kind == R_PASS && roundtrip)
        r->kind = reload_model(m, dir, &rt, r);
    int n_sets = 0;
    for (int s = 0; r->kind == R_PASS; s++) {
        snprintf(path, sizeof path, "%s/test_data_set_%d", dir, s);
        if (!is_dir(path))
            break;
        r->kind = run_data_set(m, rt, path, r);
        n_sets++;
    }
    kn_model_free(rt);
    if (r->kind == R_PASS && n_sets == 0) {
        r->kind = R_SKIP;
        snprintf(r->msg, sizeof r->msg, "no test_data_set folders");
    }
    kn_model_free(m);
}

/* ---- the parent: fork per case, collect results ---- */

static void run_case_isolated(const char *dir, const conf_opts *o, case_result *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "?");
    int fds[2];
    if (pipe(fds)) {
        r->kind = R_FAIL;
        snprintf(r->msg, sizeof r->msg, "pipe failed");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm((unsigned)o->timeout_s);
        case_result cr;
        memset(&cr, 0, sizeof cr);
        snprintf(cr.op, sizeof cr.op, "?");
        run_case(dir, o->opt_level, o->roundtrip, &cr);
        ssize_t w = write(fds[1], &cr, sizeof cr);
        _exit(w == (ssize_t)sizeof cr ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = 0;
    if (pid > 0) {
        char *p = (char *)r;
        ssize_t n;
        while (got < (ssize_t)sizeof *r && (n = read(fds[0], p + got, sizeof *r - (size_t)got)) > 0)
            got += n;
    }
    close(fds[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    if (got == (ssize_t)sizeof *r)
        return;
    r->kind = R_FAIL;
    if (pid < 0)
        snprintf(r->msg, sizeof r->msg, "fork failed");
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        snprintf(r->msg, sizeof r->msg, "timed out after %d s", o->timeout_s);
    else if (WIFSIGNALED(status))
        snprintf(r->msg, sizeof r->msg, "crashed with signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(r->msg, sizeof r->msg, "child exited with status %d", WEXITSTATUS(status));
}

typedef struct op_stats {
    char op[64];
    int pass, fail, skip;
} op_stats;

typedef struct conf_state {
    op_stats *ops;
    int n_ops, cap_ops;
    int pass, fail, skip;
    char **failures;
    int n_failures, cap_failures;
} conf_state;

static op_stats *stats_for(conf_state *st, const char *op)
{
    for (int i = 0; i < st->n_ops; i++)
        if (!strcmp(st->ops[i].op, op))
            return &st->ops[i];
    if (st->n_ops == st->cap_ops) {
        st->cap_ops = st->cap_ops ? st->cap_ops * 2 : 64;
        st->ops = realloc(st->ops, sizeof *st->ops * (size_t)st->cap_ops);
        if (!st->ops) {
            fprintf(stderr, "kiln: out of memory\n");
            exit(1);
        }
    }
    op_stats *s = &st->ops[st->n_ops++];
    memset(s, 0, sizeof *s);
    snprintf(s->op, sizeof s->op, "%s", op);
    return s;
}

static void record(conf_state *st, const char *name, const case_result *r, const conf_opts *o)
{
    op_stats *s = stats_for(st, r->op);
    const char *tag = r->kind == R_PASS ? "PASS" : r->kind == R_SKIP ? "SKIP" : "FAIL";
    if (r->kind == R_PASS) {
        s->pass++;
        st->pass++;
    } else if (r->kind == R_SKIP) {
        s->skip++;
        st->skip++;
    } else {
        s->fail++;
        st->fail++;
    }
    if (o->verbose)
        printf("%s %s%s%s\n", tag, name, r->msg[0] ? ": " : "", r->msg);
    if (r->kind == R_FAIL) {
        if (st->n_failures == st->cap_failures) {
            st->cap_failures = st->cap_failures ? st->cap_failures * 2 : 64;
            st->failures = realloc(st->failures, sizeof(char *) * (size_t)st->cap_failures);
            if (!st->failures) {
                fprintf(stderr, "kiln: out of memory\n");
                exit(1);
            }
        }
        size_t len = strlen(name) + strlen(r->msg) + 8;
        char *line = malloc(len);
        if (line) {
            snprintf(line, len, "%s: %s", name, r->msg);
            st->failures[st->n_failures++] = line;
        }
    }
}

static bool matches(const char *name, const conf_opts *o)
{
    if (!o->n_filters)
        return true;
    for (int i = 0; i < o->n_filters; i++)
        if (strstr(name, o->filters[i]))
            return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_ops(const void *a, const void *b)
{
    return strcmp(((const op_stats *)a)->op, ((const op_stats *)b)->op);
}

/* Cases under root: root itself if it holds model.onnx, else its subfolders that do. */
static void run_root(const char *root, const conf_opts *o, conf_state *st)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", root);
    case_result r;
    if (file_exists(path)) {
        const char *base = strrchr(root, '/') ? strrchr(root, '/') + 1 : root;
        if (matches(base, o)) {
            run_case_isolated(root, o, &r);
            record(st, base, &r, o);
        }
        return;
    }
    DIR *d = opendir(root);
    if (!d) {
        cli_error("cannot open %s", root);
        st->fail++;
        return;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !matches(e->d_name, o))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, sizeof *names * (size_t)cap);
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/model.onnx", root, names[i]);
        if (file_exists(path)) {
            snprintf(path, sizeof path, "%s/%s", root, names[i]);
            run_case_isolated(path, o, &r);
            record(st, names[i], &r, o);
        }
        free(names[i]);
    }
    free(names);
}

static void print_report(conf_state *st, const conf_opts *o)
{
    if (st->n_ops)
        qsort(st->ops, (size_t)st->n_ops, sizeof *st->ops, cmp_ops);
    printf("%-28s %7s %7s %7s\n", "operator", "passed", "failed", "skipped");
    for (int i = 0; i < st->n_ops; i++)
        printf("%-28s %7d %7d %7d\n", st->ops[i].op, st->ops[i].pass, st->ops[i].fail, st->ops[i].skip);
    if (o->list_failures && st->n_failures) {
        printf("\nfailures:\n");
        for (int i = 0; i < st->n_failures; i++)
            printf("  %s\n", st->failures[i]);
    }
    for (int i = 0; i < st->n_failures; i++)
        free(st->failures[i]);
    free(st->failures);
    free(st->ops);
    printf("%d passed, %d failed, %d skipped\n", st->pass, st->fail, st->skip);
}

static void conf_usage(FILE *f)
{
    fprintf(f, "usage: kiln conformance DIR... [--filter SUBSTR]... [--list-failures] [--verbose]\n"
               "                        [--timeout SEC] [--expect-pass N] [--opt LEVEL] [--roundtrip]\n"
               "Runs ONNX backend test cases found in DIR (a case folder or a folder of cases).\n"
               "--expect-pass N exits non-zero when fewer than N cases pass.\n"
               "--opt LEVEL optimizes each model first (none|basic|extended|all; default none).\n"
               "--roundtrip also writes each model with kiln's ONNX writer, reads it back and\n"
               "            requires bit-identical outputs from the re-read model.\n");
}

int cmd_conformance(int argc, char **argv)
{
    conf_opts o = {.timeout_s = 60, .expect_pass = -1};
    const char *roots[256];
    int n_roots = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            conf_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--filter") && i + 1 < argc && o.n_filters < 64) {
            o.filters[o.n_filters++] = argv[++i];
        } else if (!strcmp(a, "--list-failures")) {
            o.list_failures = true;
        } else if (!strcmp(a, "--roundtrip")) {
            o.roundtrip = true;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            o.verbose = true;
        } else if (!strcmp(a, "--timeout") && i + 1 < argc && cli_parse_i64(argv[i + 1], &v) && v > 0) {
            o.timeout_s = (int)v;
            i++;
        } else if (!strcmp(a, "--expect-pass") && i + 1 < argc && cli_parse_i64(argv[i + 1], &v)) {
            o.expect_pass = v;
            i++;
        } else if (!strcmp(a, "--opt") && i + 1 < argc && kn_opt_level_parse(argv[i + 1]) >= 0) {
            o.opt_level = kn_opt_level_parse(argv[++i]);
        } else if (a[0] == '-') {
            conf_usage(stderr);
            return cli_error("conformance: unknown or incomplete option '%s'", a);
        } else if (n_roots < 256) {
            roots[n_roots++] = a;
        }
    }
    if (!n_roots) {
        conf_usage(stderr);
        return 2;
    }
    conf_state st = {0};
    for (int i = 0; i < n_roots; i++)
        run_root(roots[i], &o, &st);
    int passed = st.pass, failed = st.fail;
    print_report(&st, &o);
    if (o.expect_pass >= 0 && passed < o.expect_pass) {
        fprintf(stderr, "kiln: conformance: %d passed, fewer than the expected %lld\n", passed,
                (long long)o.expect_pass);
        return 1;
    }
    return o.expect_pass >= 0 ? 0 : (failed ? 1 : 0);
}
