/* metrics.c - statistics registry, histograms and their Prometheus / JSON renderings. */
#include "serve/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double latency_bounds[] = {
    10e-6, 20e-6, 30e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0};
#define N_LAT (sizeof latency_bounds / sizeof latency_bounds[0])
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_BATCH (sizeof batch_bounds / sizeof batch_bounds[0])
#define N_BUCKETS_MAX 32

typedef struct kn_hist {
    uint64_t bucket[N_BUCKETS_MAX]; /* non-cumulative; [n] is +Inf */
    uint64_t count;
    double sum;
} kn_hist;

static const char *outcome_names[KN_OUTCOME_COUNT] = {"success", "client_error", "rejected",
                                                      "timeout", "server_error"};

struct kn_model_stats {
    kn_model_stats *next;
    char model[128];
    int64_t version;
    pthread_mutex_t mu;
    uint64_t requests[KN_OUTCOME_COUNT];
    double outcome_s[KN_OUTCOME_COUNT];
    uint64_t inferences, executions;
    uint64_t cache_hits, cache_misses;
    double cache_hit_s, cache_miss_s, queue_s, compute_s, exec_compute_s;
    int64_t last_inference_ms;
    kn_hist total, queue, compute, overhead, batch;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static kn_model_stats *registry;
static atomic_long inflight;
static atomic_ulong http_by_class[6]; /* 1xx..5xx by first digit */

kn_outcome kn_outcome_of_status(int s)
{
    if (s >= 200 && s < 400)
        return KN_OUTCOME_SUCCESS;
    if (s == 503)
        return KN_OUTCOME_REJECTED;
    if (s == 504)
        return KN_OUTCOME_TIMEOUT;
    if (s >= 400 && s < 500)
        return KN_OUTCOME_CLIENT_ERROR;
    return KN_OUTCOME_SERVER_ERROR;
}

kn_model_stats *kn_stats_get(const char *model, int64_t version)
{
    pthread_mutex_lock(&registry_mu);
    kn_model_stats *st = registry;
    while (st && (st->version != version || strcmp(st->model, model)))
        st = st->next;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (st) {
            snprintf(st->model, sizeof st->model, "%s", model);
            st->version = version;
            pthread_mutex_init(&st->mu, NULL);
            kn_model_stats **tail = &registry; /* keep creation order */
            while (*tail)
                tail = &(*tail)->next;
            *tail = st;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    return st;
}

static void hist_add(kn_hist *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += v;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kn_stats_record_request(kn_model_stats *st, const kn_request_record *r)
{
    if (!st)
        return;
    kn_outcome o = kn_outcome_of_status(r->http_status);
    pthread_mutex_lock(&st->mu);
    st->requests[o]++;
    st->outcome_s[o] += r->total_s;
    hist_add(&st->total, latency_bounds, N_LAT, r->total_s);
    if (r->queue_s >= 0) {
        hist_add(&st->queue, latency_bounds, N_LAT, r->queue_s);
        st->queue_s += r->queue_s;
    }
    if (r->compute_s >= 0) {
        hist_add(&st->compute, latency_bounds, N_LAT, r->compute_s);
        st->compute_s += r->compute_s;
        double over = r->total_s - r->compute_s;
        hist_add(&st->overhead, latency_bounds, N_LAT, over > 0 ? over : 0);
    }
    if (o == KN_OUTCOME_SUCCESS) {
        st->inferences += (uint64_t)(r->rows > 0 ? r->rows : 0);
        st->last_inference_ms = wall_ms();
    }
    if (r->cache == 1) {
        st->cache_hits++;
        st->cache_hit_s += r->total_s;
    } else if (r->cache == 2) {
        st->cache_misses++;
        st->cache_miss_s += r->total_s;
    }
    pthread_mutex_unlock(&st->mu);
}

void kn_stats_record_batch(kn_model_stats *st, int rows, double compute_s)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->executions++;
    st->exec_compute_s += compute_s;
    hist_add(&st->batch, batch_bounds, N_BATCH, rows);
    pthread_mutex_unlock(&st->mu);
}

void kn_metrics_inflight_add(int delta)
{
    atomic_fetch_add(&inflight, delta);
}

void kn_metrics_http_status(int s)
{
    int c = s / 100;
    if (c >= 1 && c <= 5)
        atomic_fetch_add(&http_by_class[c], 1);
}

static void prom_hist(kn_sbuf *o, const char *name, const kn_model_stats *st, const kn_hist *h,
                      const double *bounds, size_t n)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= n; i++) {
        cum += h->bucket[i];
        if (i < n)
            kn_sbuf_printf(o, "%s_bucket{model=\"%s\",version=\"%lld\",le=\"%g\"} %llu\n", name,
                           st->model, (long long)st->version, bounds[i], (unsigned long long)cum);
        else
            kn_sbuf_printf(o, "%s_bucket{model=\"%s\",version=\"%lld\",le=\"+Inf\"} %llu\n", name,
                           st->model, (long long)st->version, (unsigned long long)cum);
    }
    kn_sbuf_printf(o, "%s_sum{model=\"%s\",version=\"%lld\"} %.9g\n", name, st->model,
                   (long long)st->version, h->sum);
    kn_sbuf_printf(o, "%s_count{model=\"%s\",version=\"%lld\"} %llu\n", name, st->model,
                   (long long)st->version, (unsigned long long)h->count);
}

typedef struct hist_family {
    const char *name, *help;
    size_t offset; /* of the kn_hist in kn_model_stats */
    const double *bounds;
    size_t n;
} hist_family;

static const hist_family families[] = {
    {"kiln_request_duration_seconds", "Server latency: request received to response sent",
     offsetof(kn_model_stats, total), latency_bounds, N_LAT},
    {"kiln_queue_duration_seconds", "Time a request waited in the model queue",
     offsetof(kn_model_stats, queue), latency_bounds, N_LAT},
    {"kiln_compute_duration_seconds", "Model execution time of the run a request was part of",
     offsetof(kn_model_stats, compute), latency_bounds, N_LAT},
    {"kiln_overhead_duration_seconds", "Server overhead per request: total - compute (HTTP, JSON, queue)",
     offsetof(kn_model_stats, overhead), latency_bounds, N_LAT},
    {"kiln_batch_size", "Rows per model execution", offsetof(kn_model_stats, batch), batch_bounds,
     N_BATCH},
};

static void prom_counter_head(kn_sbuf *o, const char *name, const char *type, const char *help)
{
    kn_sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_model_counters(kn_sbuf *o)
{
    prom_counter_head(o, "kiln_requests_total", "counter", "Inference requests by outcome");
    for (kn_model_stats *st = registry; st; st = st->next) {
        pthread_mutex_lock(&st->mu);
        for (int k = 0; k < KN_OUTCOME_COUNT; k++)
            kn_sbuf_printf(o, "kiln_requests_total{model=\"%s\",version=\"%lld\",outcome=\"%s\"} %llu\n",
                           st->model, (long long)st->version, outcome_names[k],
                           (unsigned long long)st->requests[k]);
        pthread_mutex_unlock(&st->mu);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"kiln_inferences_total", "Inferences (batch rows) computed successfully",
         offsetof(kn_model_stats, inferences)},
        {"kiln_executions_total", "Model executions (batches run)", offsetof(kn_model_stats, executions)},
        {"kiln_cache_hits_total", "Response cache hits", offsetof(kn_model_stats, cache_hits)},
        {"kiln_cache_misses_total", "Response cache misses", offsetof(kn_model_stats, cache_misses)},
    };
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        prom_counter_head(o, counters[c].name, "counter", counters[c].help);
        for (kn_model_stats *st = registry; st; st = st->next) {
            pthread_mutex_lock(&st->mu);
            uint64_t v = *(const uint64_t *)((const char *)st + counters[c].off);
            pthread_mutex_unlock(&st->mu);
            kn_sbuf_printf(o, "%s{model=\"%s\",version=\"%lld\"} %llu\n", counters[c].name, st->model,
                           (long long)st->version, (unsigned long long)v);
        }
    }
}

void kn_metrics_render_prometheus(kn_sbuf *o)
{
    pthread_mutex_lock(&registry_mu);
    prom_counter_head(o, "kiln_inflight_requests", "gauge", "HTTP requests being handled");
    kn_sbuf_printf(o, "kiln_inflight_requests %ld\n", (long)atomic_load(&inflight));
    prom_counter_head(o, "kiln_http_responses_total", "counter", "HTTP responses by status class");
    for (int c = 1; c <= 5; c++)
        kn_sbuf_printf(o, "kiln_http_responses_total{code=\"%dxx\"} %lu\n", c,
                       (unsigned long)atomic_load(&http_by_class[c]));
    prom_model_counters(o);
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        prom_counter_head(o, families[f].name, "histogram", families[f].help);
        for (kn_model_stats *st = registry; st; st = st->next) {
            pthread_mutex_lock(&st->mu);
            kn_hist h = *(const kn_hist *)((const char *)st + families[f].offset);
            pthread_mutex_unlock(&st->mu);
            prom_hist(o, families[f].name, st, &h, families[f].bounds, families[f].n);
        }
    }
    pthread_mutex_unlock(&registry_mu);
}

static void json_duration(kn_sbuf *o, const char *key, uint64_t count, double s, bool comma)
{
    kn_sbuf_printf(o, "\"%s\":{\"count\":%llu,\"ns\":%llu}%s", key, (unsigned long long)count,
                   (unsigned long long)(s * 1e9), comma ? "," : "");
}

static void json_one_model(kn_sbuf *o, kn_model_stats *st)
{
    pthread_mutex_lock(&st->mu);
    kn_sbuf_puts(o, "{\"name\":");
    kn_sbuf_json_str(o, st->model);
    kn_sbuf_printf(o, ",\"version\":\"%lld\",\"last_inference\":%lld,\"inference_count\":%llu,"
                      "\"execution_count\":%llu,\"inference_stats\":{",
                   (long long)st->version, (long long)st->last_inference_ms,
                   (unsigned long long)st->inferences, (unsigned long long)st->executions);
    uint64_t fails = 0;
    double fail_s = 0;
    for (int k = 1; k < KN_OUTCOME_COUNT; k++) {
        fails += st->requests[k];
        fail_s += st->outcome_s[k];
    }
    json_duration(o, "success", st->requests[KN_OUTCOME_SUCCESS], st->outcome_s[KN_OUTCOME_SUCCESS], true);
    json_duration(o, "fail", fails, fail_s, true);
    json_duration(o, "queue", st->queue.count, st->queue_s, true);
    json_duration(o, "compute_infer", st->compute.count, st->compute_s, true);
    json_duration(o, "cache_hit", st->cache_hits, st->cache_hit_s, true);
    json_duration(o, "cache_miss", st->cache_misses, st->cache_miss_s, false);
    kn_sbuf_puts(o, "},\"batch_stats\":[");
    bool first = true;
    for (size_t i = 0; i < N_BATCH; i++) {
        if (!st->batch.bucket[i])
            continue;
        kn_sbuf_printf(o, "%s{\"batch_size_le\":%g,\"count\":%llu}", first ? "" : ",", batch_bounds[i],
                       (unsigned long long)st->batch.bucket[i]);
        first = false;
    }
    kn_sbuf_puts(o, "]}");
    pthread_mutex_unlock(&st->mu);
}

void kn_metrics_render_stats_json(kn_sbuf *o, const char *model, int64_t version)
{
    pthread_mutex_lock(&registry_mu);
    kn_sbuf_puts(o, "{\"model_stats\":[");
    bool first = true;
    for (kn_model_stats *st = registry; st; st = st->next) {
        if ((model && strcmp(model, st->model)) || (version > 0 && version != st->version))
            continue;
        if (!first)
            kn_sbuf_puts(o, ",");
        first = false;
        json_one_model(o, st);
    }
    kn_sbuf_puts(o, "]}");
    pthread_mutex_unlock(&registry_mu);
}

void kn_metrics_shutdown(void)
{
    pthread_mutex_lock(&registry_mu);
    while (registry) {
        kn_model_stats *next = registry->next;
        pthread_mutex_destroy(&registry->mu);
        free(registry);
        registry = next;
    }
    pthread_mutex_unlock(&registry_mu);
}
