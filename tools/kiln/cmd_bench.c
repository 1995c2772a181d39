/* cmd_bench.c - `kiln bench`: load time, first-run latency, latency percentiles,
 * throughput, peak RSS, weight and arena bytes for one model, optionally with a
 * per-node / per-operator-type time profile.  Inputs are random (or -i files). */
#include "cli.h"
#include "inputs.h"

#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct bench_opts {
    const char *model;
    cli_inputs in;
    int threads, opt_level;
    int64_t iters, warmup;
    bool json, profile;
} bench_opts;

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: kiln bench MODEL [--batch N] [--threads N] [--iters N] [--warmup N]\n"
               "                  [--opt LEVEL] [--dim NAME=VALUE]... [-i NAME=FILE.npy]... [--json]\n"
               "                  [--profile]\n"
               "  --batch N      size of a symbolic first dimension (default 1)\n"
               "  --threads N    intra-op threads (default: physical cores)\n"
               "  --iters N      timed runs (default 20); --warmup N untimed runs first (default 3)\n"
               "  --opt LEVEL    none, basic, extended, all (default all)\n"
               "  --json         one JSON object on stdout\n"
               "  --profile      time per node and per operator type, top first\n");
}

static int parse_bench_args(int argc, char **argv, bench_opts *o)
{
    o->opt_level = KILN_OPT_ALL;
    o->iters = 20;
    o->warmup = 3;
    o->in.random = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used = cli_inputs_option(&o->in, argc, argv, &i, "bench");
        if (!used)
            used = cli_session_option(argc, argv, &i, &o->threads, &o->opt_level, "bench");
        if (used < 0)
            return 1;
        if (used)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bench_usage(stdout);
            exit(0);
        } else if ((!strcmp(a, "--iters") || !strcmp(a, "--warmup")) && i + 1 < argc) {
            int64_t *dst = a[2] == 'i' ? &o->iters : &o->warmup;
            if (!cli_parse_i64(argv[++i], dst) || *dst > 1000000 || (dst == &o->iters && *dst < 1))
                return cli_error("bench: %s expects a number (iters >= 1)", a);
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--profile")) {
            o->profile = true;
        } else if (a[0] == '-') {
            bench_usage(stderr);
            return cli_error("bench: unknown or incomplete option '%s'", a);
        } else if (!o->model) {
            o->model = a;
        } else {
            return cli_error("bench: unexpected argument '%s'", a);
        }
    }
    if (!o->model) {
        bench_usage(stderr);
        return cli_error("bench: no model given");
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, int64_t n, double p)
{
    int64_t k = (int64_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    return sorted[(k > n ? n : k) - 1];
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

typedef struct bench_result {
    double load_ms, first_ms, p50, p90, p99, mean, min, throughput, rss_mib;
    size_t weight_bytes, arena_bytes, nodes;
    int64_t batch;
} bench_result;

static int run_once(kiln_session *s, const char **names, const kiln_tensor *ins, size_t n, double *ms)
{
    kiln_tensor *outs = NULL;
    size_t n_out = 0;
    double t0 = cli_now();
    if (kiln_session_run(s, names, ins, n, &outs, &n_out))
        return cli_error("bench: %s", kiln_errmsg());
    *ms = (cli_now() - t0) * 1e3;
    kiln_tensors_free(outs, n_out);
    return 0;
}

static int time_runs(kiln_session *s, const bench_opts *o, const char **names, const kiln_tensor *ins,
                     size_t n, bench_result *r)
{
    double ms, *lat = malloc(sizeof *lat * (size_t)o->iters), total = 0;
    if (!lat)
        return cli_error("out of memory");
    int rc = run_once(s, names, ins, n, &r->first_ms);
    for (int64_t i = 0; !rc && i < o->warmup; i++)
        rc = run_once(s, names, ins, n, &ms);
    if (!rc && o->profile && kiln_session_set_profiling(s, 1))
        rc = cli_error("bench: %s", kiln_errmsg());
    for (int64_t i = 0; !rc && i < o->iters; i++) {
        rc = run_once(s, names, ins, n, &lat[i]);
        total += lat[i];
    }
    if (!rc) {
        qsort(lat, (size_t)o->iters, sizeof *lat, cmp_double);
        r->min = lat[0];
        r->p50 = percentile(lat, o->iters, 50);
        r->p90 = percentile(lat, o->iters, 90);
        r->p99 = percentile(lat, o->iters, 99);
        r->mean = total / (double)o->iters;
        r->throughput = (double)r->batch * 1e3 / r->mean;
    }
    free(lat);
    return rc;
}

typedef struct op_total {
    const char *op;
    double seconds;
    uint64_t nodes;
} op_total;

static int cmp_op_total(const void *a, const void *b)
{
    return cmp_double(&((const op_total *)b)->seconds, &((const op_total *)a)->seconds);
}

static int cmp_node_time(const void *a, const void *b)
{
    return cmp_double(&((const kiln_node_time *)b)->seconds, &((const kiln_node_time *)a)->seconds);
}

static void print_profile(kiln_session *s, int64_t iters)
{
    const kiln_node_time *times;
    size_t n = kiln_session_node_times(s, &times);
    kiln_node_time *sorted = malloc(sizeof *sorted * (n ? n : 1));
    op_total *ops = calloc(n ? n : 1, sizeof *ops);
    size_t n_ops = 0;
    double all = 0;
    if (!sorted || !ops) {
        free(sorted);
        free(ops);
        return;
    }
    memcpy(sorted, times, sizeof *sorted * n);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < n_ops && strcmp(ops[k].op, times[i].op_type))
            k++;
        if (k == n_ops)
            ops[n_ops++].op = times[i].op_type;
        ops[k].seconds += times[i].seconds;
        ops[k].nodes++;
        all += times[i].seconds;
    }
    qsort(ops, n_ops, sizeof *ops, cmp_op_total);
    qsort(sorted, n, sizeof *sorted, cmp_node_time);
    printf("\nprofile (per run, %lld runs)\n  %-24s %6s %10s %6s\n", (long long)iters, "op type", "nodes", "ms",
           "%");
    for (size_t k = 0; k < n_ops; k++)
        printf("  %-24s %6llu %10.3f %5.1f%%\n", ops[k].op, (unsigned long long)ops[k].nodes,
               ops[k].seconds * 1e3 / (double)iters, all > 0 ? 100 * ops[k].seconds / all : 0);
    printf("\n  %-40s %-16s %10s %6s\n", "node (top 25)", "op", "ms", "%");
    for (size_t i = 0; i < n && i < 25; i++)
        printf("  %-40.40s %-16.16s %10.3f %5.1f%%\n", sorted[i].node, sorted[i].op_type,
               sorted[i].seconds * 1e3 / (double)iters, all > 0 ? 100 * sorted[i].seconds / all : 0);
    free(sorted);
    free(ops);
}

static void print_result(const bench_opts *o, const bench_result *r, int threads)
{
    if (o->json) {
        printf("{\"model\": \"%s\", \"batch\": %lld, \"threads\": %d, \"iters\": %lld, \"nodes\": %zu, "
               "\"load_ms\": %.3f, \"first_run_ms\": %.3f, \"min_ms\": %.3f, \"p50_ms\": %.3f, "
               "\"p90_ms\": %.3f, \"p99_ms\": %.3f, \"mean_ms\": %.3f, \"throughput_per_s\": %.3f, "
               "\"peak_rss_mib\": %.1f, \"weight_bytes\": %zu, \"arena_bytes\": %zu}\n",
               o->model, (long long)r->batch, threads, (long long)o->iters, r->nodes, r->load_ms, r->first_ms,
               r->min, r->p50, r->p90, r->p99, r->mean, r->throughput, r->rss_mib, r->weight_bytes,
               r->arena_bytes);
        return;
    }
    printf("%s  (batch %lld, %d thread%s, %zu nodes after optimization)\n", o->model, (long long)r->batch,
           threads, threads == 1 ? "" : "s", r->nodes);
    printf("  load         %9.2f ms\n  first run    %9.2f ms\n", r->load_ms, r->first_ms);
    printf("  latency      p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  min %.2f ms  mean %.2f ms  (%lld runs)\n",
           r->p50, r->p90, r->p99, r->min, r->mean, (long long)o->iters);
    printf("  throughput   %9.1f samples/s\n", r->throughput);
    printf("  peak RSS     %9.1f MiB\n  weights      %9.1f MiB\n  arena        %9.1f MiB\n", r->rss_mib,
           (double)r->weight_bytes / 1048576.0, (double)r->arena_bytes / 1048576.0);
}

static int bench_model(kiln_model *m, bench_opts *o, bench_result *r)
{
    size_t n = kiln_model_input_count(m);
    kn_tensor *tensors = calloc(n + 1, sizeof *tensors);
    kiln_tensor *ins = calloc(n + 1, sizeof *ins);
    const char **names = calloc(n + 1, sizeof *names);
    kiln_session *s = NULL;
    kiln_session_options so = {.threads = o->threads};
    int rc = (!tensors || !ins || !names) ? cli_error("out of memory")
                                          : cli_inputs_gather(m, &o->in, tensors, ins, names, "bench");
    if (!rc && kiln_session_create_with(m, &so, &s))
        rc = cli_error("bench: %s", kiln_errmsg());
    r->batch = n && ins[0].rank > 0 ? ins[0].shape[0] : 1;
    if (!rc)
        rc = time_runs(s, o, names, ins, n, r);
    if (!rc) {
        r->arena_bytes = kiln_session_arena_bytes(s);
        r->rss_mib = peak_rss_mib();
        print_result(o, r, kiln_session_threads(s));
        if (o->profile && !o->json)
            print_profile(s, o->iters);
    }
    kiln_session_free(s);
    for (size_t i = 0; i < n && tensors; i++)
        kn_tensor_release(&tensors[i]);
    free(tensors);
    free(ins);
    free(names);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {0};
    bench_result r = {0};
    if (parse_bench_args(argc, argv, &o)) {
        cli_inputs_free(&o.in);
        return 1;
    }
    double t0 = cli_now();
    kiln_model *m = NULL;
    kiln_load_options lo = {.opt_level = o.opt_level, .no_optimize = o.opt_level == KILN_OPT_NONE};
    int rc = 0;
    if (kiln_model_load_with(o.model, &lo, &m))
        rc = cli_error("%s", kiln_errmsg());
    r.load_ms = (cli_now() - t0) * 1e3;
    if (!rc) {
        r.weight_bytes = kiln_model_weight_bytes(m);
        r.nodes = kiln_model_node_count(m);
        rc = bench_model(m, &o, &r);
    }
    kiln_model_free(m);
    cli_inputs_free(&o.in);
    return rc;
}
