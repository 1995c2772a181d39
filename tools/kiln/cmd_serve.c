/* cmd_serve.c - `kiln serve`: parse options, build the model repository (a
 * directory, one model file, or the bundled example), start the HTTP server, then
 * wait for signals: SIGHUP rescans the repository, SIGTERM/SIGINT drain and exit 0;
 * between signals the repository is polled for changes. */
#include "cli.h"

#include "serve/repo.h"
#include "serve/serve.h"

#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const fmnist_labels[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

typedef struct serve_args {
    const char *repository, *model, *name, *port_file;
    double poll_s, drain_s;
    int threads;
    int64_t request_timeout_ms;
    int max_queue;
    kn_serve_options http;
} serve_args;

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln serve [--repository DIR | --model FILE [--name NAME]] [options]\n\n"
            "Serves models over HTTP with the KServe v2 / Triton inference protocol.\n"
            "Without --repository or --model it serves the bundled example model.\n\n"
            "  --host H               listen address (default 127.0.0.1)\n"
            "  --port P               port (default 8000; 0: any free port)\n"
            "  --port-file FILE       write the bound port to FILE once listening\n"
            "  --threads N            intra-op threads per model instance (default: physical cores)\n"
            "  --http-threads N       HTTP event threads (default 2)\n"
            "  --poll SEC             rescan the repository every SEC seconds (default 5; 0: off)\n"
            "  --request-timeout-ms MS  drop requests queued longer than this (default 30000)\n"
            "  --max-queue N          default per-model queue bound (default 256)\n"
            "  --max-body BYTES       request body cap (default 64 MiB)\n"
            "  --max-header BYTES     request line + headers cap (default 32 KiB)\n"
            "  --max-elements N       per-tensor element cap (default 16777216)\n"
            "  --read-timeout SEC     close idle or stalled connections (default 30)\n"
            "  --max-connections N    (default 1024)\n"
            "  --cache-bytes BYTES    response cache capacity (default 64 MiB; 0: off)\n"
            "  --log-format text|json access and server log format (default text)\n"
            "  --no-access-log        no access log lines on stdout\n"
            "  --drain-timeout SEC    on SIGTERM wait this long for in-flight requests (default 30)\n");
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    if (!s || !*s)
        return false;
    double v = strtod(s, &end);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Parse one option at argv[*i]; returns 0, or 1 after printing an error. */
static int parse_option(int argc, char **argv, int *i, serve_args *a)
{
    const char *opt = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    double v = 0;
    static const struct {
        const char *name;
        double lo, hi;
    } nums[] = {{"--port", 0, 65535},       {"--threads", 0, 256},     {"--http-threads", 1, 64},
                {"--poll", 0, 86400},       {"--request-timeout-ms", 0, 3.6e6},
                {"--max-queue", 1, 1e6},    {"--max-body", 1, 1e12},   {"--max-header", 1024, 1 << 24},
                {"--max-elements", 1, 1e12}, {"--read-timeout", 1, 86400},
                {"--max-connections", 1, 1e6}, {"--cache-bytes", 0, 1e12}, {"--drain-timeout", 0, 3600}};
    if (!strcmp(opt, "--repository") || !strcmp(opt, "--model") || !strcmp(opt, "--name") ||
        !strcmp(opt, "--host") || !strcmp(opt, "--port-file") || !strcmp(opt, "--log-format")) {
        if (!val)
            return cli_error("serve: %s needs a value", opt);
        if (!strcmp(opt, "--repository")) a->repository = val;
        else if (!strcmp(opt, "--model")) a->model = val;
        else if (!strcmp(opt, "--name")) a->name = val;
        else if (!strcmp(opt, "--host")) a->http.host = val;
        else if (!strcmp(opt, "--port-file")) a->port_file = val;
        else if (!strcmp(val, "json") || !strcmp(val, "text")) a->http.log_json = !strcmp(val, "json");
        else return cli_error("serve: --log-format must be text or json");
        (*i)++;
        return 0;
    }
    if (!strcmp(opt, "--no-access-log")) {
        a->http.access_log = false;
        return 0;
    }
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        if (strcmp(opt, nums[k].name))
            continue;
        if (!parse_num(val, nums[k].lo, nums[k].hi, &v))
            return cli_error("serve: %s needs a number in [%g, %g]", opt, nums[k].lo, nums[k].hi);
        (*i)++;
        if (k == 0) a->http.port = (int)v;
        else if (k == 1) a->threads = (int)v;
        else if (k == 2) a->http.http_threads = (int)v;
        else if (k == 3) a->poll_s = v;
        else if (k == 4) a->request_timeout_ms = (int64_t)v;
        else if (k == 5) a->max_queue = (int)v;
        else if (k == 6) a->http.max_body_bytes = (size_t)v;
        else if (k == 7) a->http.max_header_bytes = (size_t)v;
        else if (k == 8) a->http.max_elements = (int64_t)v;
        else if (k == 9) a->http.read_timeout_s = (unsigned)v;
        else if (k == 10) a->http.max_connections = (unsigned)v;
        else if (k == 11) a->http.cache_bytes = (size_t)v;
        else a->drain_s = v;
        return 0;
    }
    return cli_error("serve: unknown option '%s' (see kiln serve --help)", opt);
}

/* The bundled example next to the executable (build/kiln -> examples/fmnist). */
static bool find_example(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *rel[] = {"/../examples/fmnist/fmnist_cnn.onnx", "/../../examples/fmnist/fmnist_cnn.onnx",
                         "/examples/fmnist/fmnist_cnn.onnx"};
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(out, len, "%s%s", exe, rel[i]);
            if (!access(out, R_OK))
                return true;
        }
    }
    snprintf(out, len, "examples/fmnist/fmnist_cnn.onnx");
    return !access(out, R_OK);
}

static int build_repo(serve_args *a, kn_repo **repo)
{
    kn_repo_options ro = {.threads = a->threads,
                          .default_timeout_us = a->request_timeout_ms * 1000,
                          .max_queue = a->max_queue,
                          .log = kn_serve_log};
    if (kn_repo_create(a->repository, &ro, repo))
        return cli_error("serve: out of memory");
    char err[1024];
    if (a->repository) {
        if (access(a->repository, R_OK))
            return cli_error("serve: cannot read repository %s", a->repository);
        kn_repo_scan(*repo);
        return 0;
    }
    char path[PATH_MAX];
    kn_model_config cfg;
    kn_config_defaults(&cfg);
    cfg.timeout_us = ro.default_timeout_us;
    cfg.max_queue_size = a->max_queue;
    const char *name = a->name;
    int n_labels = 0;
    if (a->model) {
        snprintf(path, sizeof path, "%s", a->model);
        if (!name) {
            const char *base = strrchr(a->model, '/');
            static char stem[128];
            snprintf(stem, sizeof stem, "%s", base ? base + 1 : a->model);
            char *dot = strrchr(stem, '.');
            if (dot && dot != stem)
                *dot = '\0';
            name = stem;
        }
    } else {
        if (!find_example(path, sizeof path))
            return cli_error("serve: the example model examples/fmnist/fmnist_cnn.onnx was not found; "
                             "use --repository DIR or --model FILE");
        name = name ? name : "fmnist";
        cfg.pre = (kn_cfg_preprocess){.present = true, .resize_short = 28, .crop_h = 28, .crop_w = 28,
                                      .channels = 1, .scale = 1.0f / 255.0f,
                                      .mean = {0.2860f, 0.2860f, 0.2860f},
                                      .std = {0.3530f, 0.3530f, 0.3530f}};
        n_labels = 10;
    }
    if (kn_repo_add_file(*repo, name, path, &cfg, n_labels ? fmnist_labels : NULL, n_labels, err,
                         sizeof err))
        return cli_error("serve: %s: %s", path, err);
    return 0;
}

static void write_port_file(const char *path, int port)
{
    if (!path)
        return;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%d\n", port);
    fclose(f);
    rename(tmp, path); /* readers never see a half-written file */
}

/* Wait for signals; poll the repository in between.  Returns on SIGTERM/SIGINT. */
static void signal_loop(kn_repo *repo, const sigset_t *set, double poll_s)
{
    double next_poll = cli_now() + poll_s;
    for (;;) {
        double wait = poll_s > 0 ? next_poll - cli_now() : 3600;
        if (wait < 0)
            wait = 0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            kn_serve_log(sig == SIGTERM ? "SIGTERM: draining" : "SIGINT: draining");
            return;
        }
        if (sig == SIGHUP)
            kn_serve_log("SIGHUP: rescanning the repository");
        if (sig == SIGHUP || (poll_s > 0 && cli_now() >= next_poll)) {
            kn_repo_scan(repo);
            next_poll = cli_now() + poll_s;
        }
    }
}

int cmd_serve(int argc, char **argv)
{
    serve_args a = {.poll_s = 5, .drain_s = 30, .request_timeout_ms = 30000, .max_queue = 256};
    kn_serve_default_options(&a.http);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            serve_usage(stdout);
            return 0;
        }
        if (parse_option(argc, argv, &i, &a))
            return 2;
    }
    if (a.repository && a.model)
        return cli_error("serve: give --repository or --model, not both");
    /* Signals go to the main thread only (sigtimedwait); every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    kn_serve_log_json(a.http.log_json);
#ifdef __GLIBC__
    /* Buffers are allocated on HTTP threads and freed on workers and back; with one
     * malloc arena per thread the heap fragments and RSS creeps up under load (seen
     * with 64 connections: +4 MiB over 20 s, flat with a single arena). */
    mallopt(M_ARENA_MAX, 1);
#endif
    kn_repo *repo = NULL;
    if (build_repo(&a, &repo)) {
        kn_repo_destroy(repo);
        return 1;
    }
    kn_server *srv;
    char err[512];
    if (kn_server_start(repo, &a.http, &srv, err, sizeof err)) {
        kn_repo_destroy(repo);
        return cli_error("serve: %s", err);
    }
    char line[512];
    snprintf(line, sizeof line, "listening on http://%s:%d (try: curl http://%s:%d/v2/models/stats)",
             a.http.host, kn_server_port(srv), a.http.host, kn_server_port(srv));
    kn_serve_log(line);
    write_port_file(a.port_file, kn_server_port(srv));
    signal_loop(repo, &set, a.repository ? a.poll_s : 0);
    int left = kn_server_drain(srv, a.drain_s);
    if (left) {
        snprintf(line, sizeof line, "%d requests still in flight after %.0f s: exiting anyway", left,
                 a.drain_s);
        kn_serve_log(line);
        fflush(stdout);
        _exit(1);
    }
    kn_server_stop(srv);
    kn_repo_destroy(repo);
    kn_metrics_shutdown();
    kn_serve_log("drained; bye");
    return 0;
}
