/* serve.h - the kiln inference server: an HTTP/1.1 front end (libmicrohttpd) that
 * speaks the KServe v2 / Open Inference Protocol over a model repository (repo.h).
 * Connections are suspended while their request waits in a model's batcher, so a
 * few HTTP threads serve many concurrent clients. */
#ifndef KN_SERVE_SERVE_H
#define KN_SERVE_SERVE_H

#include "serve/repo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kn_serve_options {
    const char *host;          /* IPv4 address or host name; NULL: 127.0.0.1 */
    int port;                  /* 0: any free port (see kn_server_port) */
    int http_threads;          /* HTTP event threads; 0: 2 */
    size_t max_body_bytes;     /* larger bodies: 413 */
    size_t max_header_bytes;   /* per-connection memory for the request line and headers */
    int64_t max_elements;      /* per input tensor */
    unsigned read_timeout_s;   /* idle connections are closed after this */
    unsigned max_connections;
    size_t cache_bytes;        /* response cache capacity (0: no cache) */
    bool access_log;
    bool log_json;             /* access and server log lines as JSON */
} kn_serve_options;

typedef struct kn_server kn_server;

void kn_serve_default_options(kn_serve_options *o);
int kn_server_start(kn_repo *repo, const kn_serve_options *o, kn_server **out, char *err,
                    size_t errlen);
int kn_server_port(const kn_server *s);
/* Stop accepting connections, answer not-ready, wait up to timeout_s for in-flight
 * requests to finish.  Returns the number still in flight (0: drained). */
int kn_server_drain(kn_server *s, double timeout_s);
void kn_server_stop(kn_server *s);

/* A server log line (to stderr; JSON when the server logs JSON). */
void kn_serve_log(const char *line);
void kn_serve_log_json(bool json);

#endif
