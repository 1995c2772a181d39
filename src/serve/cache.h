/* cache.h - the response cache: an LRU bounded in bytes, shared by all models,
 * keyed by a 128-bit hash of (model, version, input names/dtypes/shapes/bytes,
 * requested outputs; not the request id).  Stores response bodies without the id,
 * which the server adds per request. */
#ifndef KN_SERVE_CACHE_H
#define KN_SERVE_CACHE_H

#include "serve/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kn_cache kn_cache;
typedef struct kn_cache_key {
    uint64_t a, b;
} kn_cache_key;

kn_cache *kn_cache_create(size_t max_bytes);
void kn_cache_destroy(kn_cache *c);

kn_cache_key kn_cache_key_of(const kn_version *v, const kn_infer_req *req);

/* On a hit, *body is a malloc'd copy of the stored response (caller frees). */
bool kn_cache_get(kn_cache *c, kn_cache_key key, char **body, size_t *len, size_t *json_len);
/* Store a copy; entries larger than the whole cache are skipped. */
void kn_cache_put(kn_cache *c, kn_cache_key key, const char *body, size_t len, size_t json_len);

#endif
