/* server.c - the HTTP front end: libmicrohttpd daemon, request limits, routing of
 * the KServe v2 endpoints, suspended connections while jobs run, access log,
 * drain.  Bodies are parsed in protocol.c / predict.c, models live in repo.c. */
#include "serve/serve.h"

#include "serve/cache.h"
#include "serve/metrics.h"
#include "serve/predict.h"
#include "serve/protocol.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct kn_server {
    struct MHD_Daemon *daemon;
    kn_repo *repo;
    kn_serve_options opt;
    kn_cache *cache;
    atomic_int inflight;
    atomic_bool draining;
    int port;
};

typedef enum { REQ_RECEIVING, REQ_QUEUED, REQ_COMPUTED, REQ_ANSWERED } req_state;
typedef enum { KIND_OTHER, KIND_INFER, KIND_PREDICT } req_kind;

typedef struct kn_req {
    kn_server *server;
    struct MHD_Connection *conn;
    double t_start;
    char method[16];
    char url[256];
    kn_sbuf body;
    bool too_large;
    req_state state;
    req_kind kind;
    int status;
    size_t resp_bytes;
    kn_version *ver;       /* reference held until completion */
    kn_infer_req ir;
    kn_job job;
    int top_k;
    int cache;             /* 0 unused, 1 hit, 2 miss */
    kn_cache_key key;
    char error[512];
} kn_req;

static atomic_bool log_as_json;

void kn_serve_log_json(bool json)
{
    atomic_store(&log_as_json, json);
}

static void utc_stamp(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void kn_serve_log(const char *line)
{
    char ts[40];
    utc_stamp(ts, sizeof ts);
    if (atomic_load(&log_as_json)) {
        kn_sbuf b = {0};
        kn_sbuf_printf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":", ts);
        kn_sbuf_json_str(&b, line);
        kn_sbuf_puts(&b, "}\n");
        if (b.data)
            fputs(b.data, stderr);
        kn_sbuf_free(&b);
    } else {
        fprintf(stderr, "%s kiln serve: %s\n", ts, line);
    }
}

void kn_serve_default_options(kn_serve_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8000;
    o->http_threads = 2;
    o->max_body_bytes = 64u << 20;
    o->max_header_bytes = 32u << 10;
    o->max_elements = 16 << 20;
    o->read_timeout_s = 30;
    o->max_connections = 1024;
    o->cache_bytes = 64u << 20;
    o->access_log = true;
}

/* ---- responses ---- */

static enum MHD_Result reply(kn_req *r, int status, const char *ctype, char *body, size_t len,
                             size_t json_len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (json_len) {
        char n[32];
        snprintf(n, sizeof n, "%zu", json_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", n);
    }
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (atomic_load(&r->server->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    r->resp_bytes = len;
    r->state = REQ_ANSWERED;
    return ok;
}

static enum MHD_Result reply_sbuf(kn_req *r, int status, kn_sbuf *b, const char *ctype)
{
    if (b->oom) {
        kn_sbuf_free(b);
        kn_sbuf_puts(b, "{\"error\":\"out of memory building the response\"}");
        status = 500;
        ctype = "application/json";
    }
    size_t len;
    char *body = kn_sbuf_take(b, &len);
    return reply(r, status, ctype, body, len, 0);
}

static enum MHD_Result reply_error(kn_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result reply_error(kn_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    kn_sbuf b = {0};
    kn_sbuf_puts(&b, "{\"error\":");
    kn_sbuf_json_str(&b, r->error);
    kn_sbuf_puts(&b, "}");
    return reply_sbuf(r, status, &b, "application/json");
}

static enum MHD_Result reply_json(kn_req *r, int status, const char *text)
{
    kn_sbuf b = {0};
    kn_sbuf_puts(&b, text);
    return reply_sbuf(r, status, &b, "application/json");
}

/* ---- access log ---- */

static void client_address(struct MHD_Connection *c, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, len, "-");
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, buf, (socklen_t)len);
}

static void access_log(const kn_req *r, double total_s)
{
    char ts[40], addr[64];
    utc_stamp(ts, sizeof ts);
    client_address(r->conn, addr, sizeof addr);
    kn_sbuf b = {0};
    bool ran = r->job.http_status != 0;
    if (atomic_load(&log_as_json)) {
        kn_sbuf_printf(&b, "{\"ts\":\"%s\",\"remote\":\"%s\",\"method\":", ts, addr);
        kn_sbuf_json_str(&b, r->method);
        kn_sbuf_puts(&b, ",\"path\":");
        kn_sbuf_json_str(&b, r->url);
        kn_sbuf_printf(&b, ",\"status\":%d,\"bytes\":%zu,\"duration_ms\":%.3f", r->status,
                       r->resp_bytes, total_s * 1e3);
        if (r->ver) {
            kn_sbuf_puts(&b, ",\"model\":");
            kn_sbuf_json_str(&b, r->ver->model_name);
            kn_sbuf_printf(&b, ",\"version\":\"%lld\"", (long long)r->ver->version);
        }
        if (ran)
            kn_sbuf_printf(&b, ",\"queue_ms\":%.3f,\"compute_ms\":%.3f,\"batch\":%d",
                           r->job.queue_s * 1e3, r->job.compute_s * 1e3, r->job.batch_rows);
        if (r->cache)
            kn_sbuf_printf(&b, ",\"cache\":\"%s\"", r->cache == 1 ? "hit" : "miss");
        if (r->error[0]) {
            kn_sbuf_puts(&b, ",\"error\":");
            kn_sbuf_json_str(&b, r->error);
        }
        kn_sbuf_puts(&b, "}\n");
    } else {
        kn_sbuf_printf(&b, "%s %s \"%s %s\" %d %zu %.3fms", ts, addr, r->method, r->url, r->status,
                       r->resp_bytes, total_s * 1e3);
        if (ran)
            kn_sbuf_printf(&b, " queue=%.3fms compute=%.3fms batch=%d", r->job.queue_s * 1e3,
                           r->job.compute_s * 1e3, r->job.batch_rows);
        if (r->cache)
            kn_sbuf_printf(&b, " cache=%s", r->cache == 1 ? "hit" : "miss");
        kn_sbuf_puts(&b, "\n");
    }
    if (b.data)
        fwrite(b.data, 1, b.len, stdout);
    kn_sbuf_free(&b);
}

/* ---- request lifecycle ---- */

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    kn_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double total = kn_now() - r->t_start;
    if (r->status == 0)
        r->status = 499; /* client went away before an answer */
    kn_metrics_http_status(r->status);
    if (r->ver && (r->kind == KIND_INFER || r->kind == KIND_PREDICT)) {
        bool ran = r->job.http_status != 0;
        kn_request_record rec = {
            .http_status = r->status,
            .total_s = total,
            .queue_s = ran ? r->job.queue_s : -1,
            .compute_s = ran && r->job.http_status != 504 ? r->job.compute_s : -1,
            .rows = r->ir.rows,
            .cache = r->cache,
        };
        kn_stats_record_request(r->ver->stats, &rec);
    }
    if (r->server->opt.access_log)
        access_log(r, total);
    kn_job_free_outputs(&r->job);
    kn_infer_req_free(&r->ir);
    kn_version_release(r->ver);
    kn_sbuf_free(&r->body);
    atomic_fetch_sub(&r->server->inflight, 1);
    kn_metrics_inflight_add(-1);
    free(r);
}

/* Worker thread: the job finished; wake the connection. */
static void job_done(kn_job *job)
{
    kn_req *r = job->user;
    r->state = REQ_COMPUTED;
    MHD_resume_connection(r->conn);
}

static enum MHD_Result answer_job(kn_req *r);

/* Run the job at once if an instance is idle, else queue it and suspend the
 * connection until a worker has run it. */
static enum MHD_Result submit(kn_req *r)
{
    kn_version *v = r->ver;
    r->job.names = r->ir.names;
    r->job.inputs = r->ir.in;
    r->job.n_inputs = r->ir.n_in;
    r->job.rows = r->ir.rows;
    r->job.user = r;
    r->job.done = job_done;
    int64_t timeout = r->ir.timeout_us ? r->ir.timeout_us : v->cfg.timeout_us;
    r->job.deadline = timeout > 0 ? kn_now() + (double)timeout * 1e-6 : 0;
    if (kn_batcher_run_inline(v->batcher, &r->job) == 0) /* idle: no thread hand-offs */
        return answer_job(r);
    r->state = REQ_QUEUED;
    MHD_suspend_connection(r->conn);
    if (kn_batcher_submit(v->batcher, &r->job)) {
        r->job.http_status = 503;
        snprintf(r->job.error, sizeof r->job.error,
                 "model '%s' queue is full (%d requests); retry later", v->model_name,
                 v->cfg.max_queue_size);
        r->job.queue_s = r->job.compute_s = 0;
        r->state = REQ_COMPUTED;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* Answer an infer request with body b (no id yet); b is consumed. */
static enum MHD_Result reply_infer(kn_req *r, kn_sbuf *b, size_t json_len)
{
    if (r->ir.id[0]) {
        kn_sbuf with_id = {0};
        kn_response_with_id(b->data, b->len, json_len, r->ir.id, &with_id, &json_len);
        kn_sbuf_free(b);
        *b = with_id;
    }
    if (b->oom)
        return reply_sbuf(r, 500, b, "application/json");
    size_t len;
    char *body = kn_sbuf_take(b, &len);
    return reply(r, 200, json_len ? "application/octet-stream" : "application/json", body, len,
                 json_len);
}

/* The job is back: answer it. */
static enum MHD_Result answer_job(kn_req *r)
{
    kn_job *j = &r->job;
    if (j->http_status != 200)
        return reply_error(r, j->http_status, "%s", j->error);
    kn_sbuf b = {0};
    if (r->kind == KIND_PREDICT) {
        kn_predict_response(r->ver, j->outputs, j->n_outputs, r->top_k, &b);
        return reply_sbuf(r, 200, &b, "application/json");
    }
    size_t json_len;
    kn_infer_response(r->ver, &r->ir, j->outputs, j->n_outputs, &b, &json_len);
    if (b.oom)
        return reply_sbuf(r, 500, &b, "application/json");
    if (r->cache == 2)
        kn_cache_put(r->server->cache, r->key, b.data, b.len, json_len);
    return reply_infer(r, &b, json_len);
}

/* ---- endpoints ---- */

static bool parse_version(const char *s, int64_t *v)
{
    char *end;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || x < 1)
        return false;
    *v = x;
    return true;
}

/* Take a reference on the model version; on failure answer the request. */
static bool acquire(kn_req *r, const char *model, int64_t version)
{
    char err[600];
    int st = kn_repo_acquire(r->server->repo, model, version, &r->ver, err, sizeof err);
    if (st != 200)
        reply_error(r, st, "%s", err);
    return st == 200;
}

static bool cache_lookup(kn_req *r)
{
    kn_server *s = r->server;
    if (!s->cache || !r->ver->cfg.cache)
        return false;
    r->key = kn_cache_key_of(r->ver, &r->ir);
    char *body;
    size_t len, json_len;
    if (!kn_cache_get(s->cache, r->key, &body, &len, &json_len)) {
        r->cache = 2;
        return false;
    }
    r->cache = 1;
    kn_sbuf b = {.data = body, .len = len, .cap = len};
    reply_infer(r, &b, json_len);
    return true;
}

static enum MHD_Result handle_infer(kn_req *r, const char *model, int64_t version)
{
    r->kind = KIND_INFER;
    if (!acquire(r, model, version))
        return MHD_YES;
    size_t json_len = r->body.len;
    const char *hl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 "Inference-Header-Content-Length");
    if (hl) {
        char *end;
        unsigned long long n = strtoull(hl, &end, 10);
        if (!*hl || *end || hl[0] == '-' || n > r->body.len)
            return reply_error(r, 400, "Inference-Header-Content-Length '%.40s' is not a length "
                               "within the body (%zu bytes)", hl, r->body.len);
        json_len = (size_t)n;
    }
    char err[600];
    int st = kn_infer_parse(r->ver, r->body.data ? r->body.data : "", r->body.len, json_len,
                            r->server->opt.max_elements, &r->ir, err, sizeof err);
    if (st != 200)
        return reply_error(r, st, "%s", err);
    if (cache_lookup(r))
        return MHD_YES;
    return submit(r);
}

static int query_int(struct MHD_Connection *c, const char *key, int dflt, int lo, int hi)
{
    const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!s)
        return dflt;
    int v = atoi(s);
    return v < lo ? lo : v > hi ? hi : v;
}

static enum MHD_Result handle_predict(kn_req *r, const char *model, int64_t version)
{
    r->kind = KIND_PREDICT;
    char name[KN_CFG_NAME_MAX];
    if (!model) {
        int n = kn_repo_default_model(r->server->repo, name, sizeof name);
        if (n != 1)
            return reply_error(r, n ? 400 : 503, n ? "several models are loaded: use "
                               "/v2/models/<model>/predict" : "no model is loaded");
        model = name;
    }
    if (!acquire(r, model, version))
        return MHD_YES;
    if (!kn_predict_available())
        return reply_error(r, 501, "this server was built without image support");
    if (!r->ver->cfg.pre.present)
        return reply_error(r, 400, "model '%s' has no preprocess block in its config: /predict "
                           "is for image classifiers", model);
    r->top_k = query_int(r->conn, "top_k", r->ver->cfg.top_k, 1, 1000);
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE);
    char err[600];
    int st = kn_predict_prepare(r->ver, ctype, r->body.data, r->body.len, &r->ir, err, sizeof err);
    if (st != 200)
        return reply_error(r, st, "%s", err);
    return submit(r);
}

static enum MHD_Result handle_model_metadata(kn_req *r, const char *model, int64_t version)
{
    if (!acquire(r, model, version))
        return MHD_YES;
    int64_t versions[KN_MAX_VERSIONS];
    int n = kn_repo_versions(r->server->repo, model, versions, KN_MAX_VERSIONS);
    kn_sbuf b = {0};
    kn_model_metadata(r->ver, versions, n, &b);
    return reply_sbuf(r, 200, &b, "application/json");
}

static enum MHD_Result handle_model_config(kn_req *r, const char *model, int64_t version)
{
    if (!acquire(r, model, version))
        return MHD_YES;
    kn_sbuf b = {0};
    kn_config_json(&r->ver->cfg, r->ver->model_name, &b);
    return reply_sbuf(r, 200, &b, "application/json");
}

static enum MHD_Result handle_model_ready(kn_req *r, const char *model, int64_t version)
{
    char err[600];
    kn_version *v;
    int st = kn_repo_acquire(r->server->repo, model, version, &v, err, sizeof err);
    if (st != 200)
        return reply_error(r, st == 503 ? 400 : st, "%s", err);
    kn_version_release(v);
    return reply_json(r, 200, "{\"ready\":true}");
}

static enum MHD_Result handle_stats(kn_req *r, const char *model, int64_t version)
{
    kn_sbuf b = {0};
    if (model && !kn_repo_versions(r->server->repo, model, NULL, 0))
        return reply_error(r, 404, "unknown model '%s'", model);
    kn_metrics_render_stats_json(&b, model, version);
    return reply_sbuf(r, 200, &b, "application/json");
}

static enum MHD_Result handle_server_metadata(kn_req *r)
{
    kn_sbuf b = {0};
    kn_sbuf_printf(&b, "{\"name\":\"kiln\",\"version\":\"%s\",\"extensions\":[\"binary_tensor_data\","
                   "\"statistics\",\"model_repository\",\"schedule_policy\"]}",
                   kiln_version());
    return reply_sbuf(r, 200, &b, "application/json");
}

static enum MHD_Result handle_repository(kn_req *r, char **seg, int n)
{
    kn_server *s = r->server;
    char err[1024];
    if (n == 3 && !strcmp(seg[2], "index")) {
        kn_sbuf b = {0};
        kn_repo_index_json(s->repo, &b);
        return reply_sbuf(r, 200, &b, "application/json");
    }
    if (n == 5 && !strcmp(seg[2], "models") && strcmp(r->method, "POST"))
        return reply_error(r, 405, "use POST for repository control");
    if (n == 5 && !strcmp(seg[2], "models") && (!strcmp(seg[4], "load") || !strcmp(seg[4], "unload"))) {
        bool load = !strcmp(seg[4], "load");
        int st = load ? kn_repo_load(s->repo, seg[3], err, sizeof err)
                      : kn_repo_unload(s->repo, seg[3], err, sizeof err);
        if (st != 200)
            return reply_error(r, st, "%s", err);
        return reply_json(r, 200, "{}");
    }
    return reply_error(r, 404, "no such repository endpoint: %s", r->url);
}

/* /v2/models/<m>[/versions/<v>][/<action>] */
static enum MHD_Result handle_model(kn_req *r, char **seg, int n)
{
    const char *model = seg[2];
    int64_t version = 0;
    int at = 3;
    if (n >= 5 && !strcmp(seg[3], "versions")) {
        if (!parse_version(seg[4], &version))
            return reply_error(r, 400, "version '%.32s' is not a positive integer", seg[4]);
        at = 5;
    }
    const char *action = at < n ? seg[at] : "";
    if (at + 1 < n)
        return reply_error(r, 404, "no such endpoint: %s", r->url);
    bool post = !strcmp(r->method, "POST"), get = !strcmp(r->method, "GET");
    if (!strcmp(action, "infer"))
        return post ? handle_infer(r, model, version) : reply_error(r, 405, "use POST for infer");
    if (!strcmp(action, "predict"))
        return post ? handle_predict(r, model, version) : reply_error(r, 405, "use POST for predict");
    if (!get)
        return reply_error(r, 405, "use GET for %s", r->url);
    if (!*action)
        return handle_model_metadata(r, model, version);
    if (!strcmp(action, "ready"))
        return handle_model_ready(r, model, version);
    if (!strcmp(action, "stats"))
        return handle_stats(r, model, version);
    if (!strcmp(action, "config"))
        return handle_model_config(r, model, version);
    return reply_error(r, 404, "no such endpoint: %s", r->url);
}

static enum MHD_Result handle_health(kn_req *r, const char *what)
{
    if (!strcmp(what, "live"))
        return reply_json(r, 200, "{\"live\":true}");
    if (!strcmp(what, "ready")) {
        bool ready = !atomic_load(&r->server->draining) && kn_repo_ready(r->server->repo);
        return reply_json(r, ready ? 200 : 503, ready ? "{\"ready\":true}" : "{\"ready\":false}");
    }
    return reply_error(r, 404, "no such endpoint: %s", r->url);
}

static enum MHD_Result handle_metrics(kn_req *r)
{
    kn_sbuf b = {0};
    kn_metrics_render_prometheus(&b);
    kn_repo_queue_gauges(r->server->repo, &b);
    return reply_sbuf(r, 200, &b, "text/plain; version=0.0.4");
}

#define MAX_SEGMENTS 8

static int split_path(char *path, char **seg)
{
    int n = 0;
    char *save = NULL; /* strtok_r: requests are routed on several threads at once */
    for (char *tok = strtok_r(path, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (n == MAX_SEGMENTS)
            return -1;
        seg[n++] = tok;
    }
    return n;
}

static enum MHD_Result route(kn_req *r, const char *url)
{
    char path[256];
    if (strlen(url) >= sizeof path)
        return reply_error(r, 414, "URL too long");
    snprintf(path, sizeof path, "%s", url);
    char *seg[MAX_SEGMENTS];
    int n = split_path(path, seg);
    bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (n == 1 && !strcmp(seg[0], "metrics"))
        return get ? handle_metrics(r) : reply_error(r, 405, "use GET for /metrics");
    if (n == 1 && !strcmp(seg[0], "predict"))
        return !strcmp(r->method, "POST") ? handle_predict(r, NULL, 0)
                                          : reply_error(r, 405, "use POST for /predict");
    if (n < 1 || strcmp(seg[0], "v2"))
        return reply_error(r, 404, "no such endpoint: %s", r->url);
    if (n == 1)
        return get ? handle_server_metadata(r) : reply_error(r, 405, "use GET for /v2");
    if (n == 3 && !strcmp(seg[1], "health"))
        return get ? handle_health(r, seg[2]) : reply_error(r, 405, "use GET for health");
    if (n >= 2 && !strcmp(seg[1], "repository"))
        return handle_repository(r, seg, n);
    if (n == 3 && !strcmp(seg[1], "models") && !strcmp(seg[2], "stats"))
        return get ? handle_stats(r, NULL, 0) : reply_error(r, 405, "use GET for stats");
    if (n >= 3 && !strcmp(seg[1], "models"))
        return handle_model(r, seg, n);
    return reply_error(r, 404, "no such endpoint: %s", r->url);
}

static kn_req *new_request(kn_server *s, struct MHD_Connection *conn, const char *url,
                           const char *method)
{
    kn_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->server = s;
    r->conn = conn;
    r->t_start = kn_now();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->url, sizeof r->url, "%s", url);
    atomic_fetch_add(&s->inflight, 1);
    kn_metrics_inflight_add(1);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    kn_server *s = cls;
    kn_req *r = *con_cls;
    if (!r) {
        r = new_request(s, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (len > s->opt.max_body_bytes)
            return reply_error(r, 413, "request body of %s bytes exceeds the limit of %zu", cl,
                               s->opt.max_body_bytes);
        if (len)
            kn_sbuf_reserve(&r->body, (size_t)len); /* one allocation for the whole body */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (r->state == REQ_RECEIVING && !r->too_large) {
            if (r->body.len + *upload_data_size > s->opt.max_body_bytes) {
                r->too_large = true;
                kn_sbuf_free(&r->body);
            } else {
                kn_sbuf_put(&r->body, upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_COMPUTED)
        return answer_job(r);
    if (r->state != REQ_RECEIVING)
        return MHD_YES;
    if (r->too_large)
        return reply_error(r, 413, "request body exceeds the limit of %zu bytes", s->opt.max_body_bytes);
    if (r->body.oom)
        return reply_error(r, 413, "request body too large for the server's memory");
    return route(r, url);
}

/* ---- daemon ---- */

static int resolve_host(const char *host, int port, struct sockaddr_in *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) || !res) {
        snprintf(err, errlen, "cannot resolve host '%s' to an IPv4 address", host);
        return -1;
    }
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int kn_server_start(kn_repo *repo, const kn_serve_options *o, kn_server **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (o->port < 0 || o->port > 65535) {
        snprintf(err, errlen, "port %d out of range", o->port);
        return -1;
    }
    kn_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->repo = repo;
    s->opt = *o;
    kn_serve_log_json(o->log_json);
    struct sockaddr_in sa;
    if (resolve_host(o->host ? o->host : "127.0.0.1", o->port, &sa, err, errlen)) {
        free(s);
        return -1;
    }
    if (o->cache_bytes)
        s->cache = kn_cache_create(o->cache_bytes);
    unsigned threads = o->http_threads > 0 ? (unsigned)o->http_threads : 2;
    s->daemon = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
        (uint16_t)o->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, o->read_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->max_header_bytes, MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use or not available)",
                 o->host ? o->host : "127.0.0.1", o->port);
        kn_cache_destroy(s->cache);
        free(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
}

int kn_server_port(const kn_server *s)
{
    return s->port;
}

int kn_server_drain(kn_server *s, double timeout_s)
{
    atomic_store(&s->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    double until = kn_now() + timeout_s;
    while (atomic_load(&s->inflight) > 0 && kn_now() < until) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->inflight);
}

void kn_server_stop(kn_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    kn_cache_destroy(s->cache);
    free(s);
}
