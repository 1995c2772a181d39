/* metrics.h - per model-version statistics: request outcomes, latency histograms
 * (server total, queue, compute, server overhead = total - compute), batch sizes,
 * cache hits/misses; rendered as Prometheus text (/metrics) and as Triton-style
 * statistics JSON (/v2/models/stats). */
#ifndef KN_SERVE_METRICS_H
#define KN_SERVE_METRICS_H

#include "serve/sbuf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct kn_model_stats kn_model_stats;

typedef enum {
    KN_OUTCOME_SUCCESS,
    KN_OUTCOME_CLIENT_ERROR, /* 4xx */
    KN_OUTCOME_REJECTED,     /* 503: queue full / unavailable */
    KN_OUTCOME_TIMEOUT,      /* 504: deadline passed in the queue */
    KN_OUTCOME_SERVER_ERROR, /* other 5xx */
    KN_OUTCOME_COUNT
} kn_outcome;

kn_outcome kn_outcome_of_status(int http_status);

/* The statistics of (model, version), created on first use; lives until kn_metrics_shutdown. */
kn_model_stats *kn_stats_get(const char *model, int64_t version);

typedef struct kn_request_record {
    int http_status;
    double total_s;     /* server latency: request headers in -> response handed to the socket */
    double queue_s;     /* < 0: the request never reached the queue */
    double compute_s;   /* < 0: no computation (cache hit, early error) */
    int64_t rows;       /* inferences the request carried */
    int cache;          /* 0: cache not used, 1: hit, 2: miss */
} kn_request_record;

void kn_stats_record_request(kn_model_stats *st, const kn_request_record *r);
void kn_stats_record_batch(kn_model_stats *st, int rows, double compute_s);

/* Server-wide counters. */
void kn_metrics_inflight_add(int delta);
void kn_metrics_http_status(int http_status);

void kn_metrics_render_prometheus(kn_sbuf *out);
/* {"model_stats":[...]} for every model, or one model (version <= 0: all versions). */
void kn_metrics_render_stats_json(kn_sbuf *out, const char *model, int64_t version);
/* Free every statistics record (at exit, after the server stopped). */
void kn_metrics_shutdown(void);

#endif
