/* tlsbuf.c - per-thread scratch buffers (see tlsbuf.h): C11 thread-specific storage
 * whose destructor frees a thread's buffers when it exits. */
#include "core/tlsbuf.h"

#include "core/bigalloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct tls_bufs {
    void *p[KN_TLS_SLOTS];
    size_t cap[KN_TLS_SLOTS];
} tls_bufs;

/* The largest buffer any thread has taken per slot: a thread whose buffer is
 * smaller grows to it at its next use, even for a smaller request, so that every
 * pool thread reaches the steady size within a run of the largest request,
 * whichever share of the work it happened to claim (work is claimed dynamically). */
static _Atomic size_t high_water[KN_TLS_SLOTS];

static tss_t key;
static once_flag key_once = ONCE_FLAG_INIT;
static int key_ok;

static void bufs_free(void *v)
{
    tls_bufs *b = v;
    for (int i = 0; b && i < KN_TLS_SLOTS; i++)
        free(b->p[i]);
    free(b);
}

static void key_init(void) { key_ok = tss_create(&key, bufs_free) == thrd_success; }

static tls_bufs *this_thread(void)
{
    call_once(&key_once, key_init);
    if (!key_ok)
        return NULL;
    tls_bufs *b = tss_get(key);
    if (!b && (b = calloc(1, sizeof *b)) && tss_set(key, b) != thrd_success) {
        free(b);
        b = NULL;
    }
    return b;
}

void *kn_thread_buffer(int slot, size_t bytes)
{
    tls_bufs *b = slot >= 0 && slot < KN_TLS_SLOTS ? this_thread() : NULL;
    if (!b || bytes > SIZE_MAX - 64)
        return NULL;
    size_t seen = atomic_load_explicit(&high_water[slot], memory_order_relaxed);
    if (b->cap[slot] < bytes || b->cap[slot] < seen) {
        size_t cap = (bytes + 63) & ~(size_t)63;
        while (cap > seen && !atomic_compare_exchange_weak(&high_water[slot], &seen, cap))
            ;
        if (seen > cap)
            cap = seen;
        void *p = kn_big_alloc(cap); /* huge pages for big buffers; free() releases */
        if (!p)
            return NULL;
        free(b->p[slot]);
        b->p[slot] = p;
        b->cap[slot] = cap;
    }
    return b->p[slot];
}

void kn_thread_buffers_sync(void)
{
    tls_bufs *b = NULL;
    for (int slot = 0; slot < KN_TLS_SLOTS; slot++) {
        size_t seen = atomic_load_explicit(&high_water[slot], memory_order_relaxed);
        if (!seen)
            continue;
        if (!b && !(b = this_thread()))
            return;
        if (b->cap[slot] < seen)
            (void)kn_thread_buffer(slot, seen);
    }
}
