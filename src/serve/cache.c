/* cache.c - LRU response cache (see cache.h): hash table with chaining plus a
 * doubly-linked recency list, one mutex. */
#include "serve/cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_SLOTS 4096

typedef struct centry {
    struct centry *chain;       /* hash bucket */
    struct centry *prev, *next; /* recency: head = most recent */
    kn_cache_key key;
    char *body;
    size_t len, json_len;
} centry;

struct kn_cache {
    pthread_mutex_t mu;
    centry *slots[N_SLOTS];
    centry *head, *tail;
    size_t bytes, max_bytes;
};

/* Two FNV-1a style 64-bit streams with different bases and primes. */
typedef struct hasher {
    uint64_t a, b;
} hasher;

static void hash_bytes(hasher *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t a = h->a, b = h->b;
    for (size_t i = 0; i < n; i++) {
        a = (a ^ p[i]) * 0x100000001b3ull;
        b = (b ^ p[i]) * 0x00000100000001b3ull * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    }
    h->a = a;
    h->b = b;
}

kn_cache_key kn_cache_key_of(const kn_version *v, const kn_infer_req *req)
{
    hasher h = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    hash_bytes(&h, v->model_name, strlen(v->model_name) + 1);
    hash_bytes(&h, &v->version, sizeof v->version);
    for (size_t i = 0; i < req->n_in; i++) {
        const kiln_tensor *t = &req->in[i];
        hash_bytes(&h, req->names[i], strlen(req->names[i]) + 1);
        hash_bytes(&h, &t->dtype, sizeof t->dtype);
        hash_bytes(&h, &t->rank, sizeof t->rank);
        hash_bytes(&h, t->shape, sizeof t->shape[0] * (size_t)t->rank);
        hash_bytes(&h, t->data, t->nbytes);
    }
    hash_bytes(&h, &req->n_out, sizeof req->n_out);
    hash_bytes(&h, req->out_idx, sizeof req->out_idx[0] * (size_t)req->n_out);
    hash_bytes(&h, req->out_binary, sizeof req->out_binary[0] * (size_t)req->n_out);
    return (kn_cache_key){h.a, h.b};
}

kn_cache *kn_cache_create(size_t max_bytes)
{
    kn_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

void kn_cache_destroy(kn_cache *c)
{
    if (!c)
        return;
    for (centry *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e->body);
        free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static size_t entry_cost(const centry *e)
{
    return e->len + sizeof *e;
}

static void list_unlink(kn_cache *c, centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(kn_cache *c, centry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static centry **find_slot(kn_cache *c, kn_cache_key key)
{
    centry **pp = &c->slots[key.a % N_SLOTS];
    while (*pp && ((*pp)->key.a != key.a || (*pp)->key.b != key.b))
        pp = &(*pp)->chain;
    return pp;
}

static void evict_one(kn_cache *c)
{
    centry *e = c->tail;
    centry **pp = find_slot(c, e->key);
    *pp = e->chain;
    list_unlink(c, e);
    c->bytes -= entry_cost(e);
    free(e->body);
    free(e);
}

bool kn_cache_get(kn_cache *c, kn_cache_key key, char **body, size_t *len, size_t *json_len)
{
    pthread_mutex_lock(&c->mu);
    centry *e = *find_slot(c, key);
    bool hit = false;
    if (e) {
        *body = malloc(e->len ? e->len : 1);
        if (*body) {
            memcpy(*body, e->body, e->len);
            *len = e->len;
            *json_len = e->json_len;
            list_unlink(c, e);
            list_push_front(c, e);
            hit = true;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void kn_cache_put(kn_cache *c, kn_cache_key key, const char *body, size_t len, size_t json_len)
{
    if (len + sizeof(centry) > c->max_bytes)
        return;
    centry *e = calloc(1, sizeof *e);
    char *copy = malloc(len ? len : 1);
    if (!e || !copy) {
        free(e);
        free(copy);
        return;
    }
    memcpy(copy, body, len);
    e->key = key;
    e->body = copy;
    e->len = len;
    e->json_len = json_len;
    pthread_mutex_lock(&c->mu);
    centry **pp = find_slot(c, key);
    if (*pp) { /* raced with another miss of the same key */
        pthread_mutex_unlock(&c->mu);
        free(copy);
        free(e);
        return;
    }
    while (c->tail && c->bytes + entry_cost(e) > c->max_bytes)
        evict_one(c);
    pp = find_slot(c, key);
    e->chain = *pp;
    *pp = e;
    list_push_front(c, e);
    c->bytes += entry_cost(e);
    pthread_mutex_unlock(&c->mu);
}
