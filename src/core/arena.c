/* arena.c - bump allocator (see arena.h). */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kn_arena_block {
    kn_arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK_MIN (64 * 1024)
#define ARENA_MAX_ALLOC ((size_t)1 << 40)

void kn_arena_init(kn_arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void kn_arena_free(kn_arena *a)
{
    kn_arena_block *b = a->head;
    while (b) {
        kn_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *kn_arena_alloc(kn_arena *a, size_t size)
{
    if (size > ARENA_MAX_ALLOC)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    kn_arena_block *b = a->head;
    if (!b || b->size - b->used < size) {
        size_t bsize = size > ARENA_BLOCK_MIN ? size : ARENA_BLOCK_MIN;
        b = malloc(sizeof *b + bsize);
        if (!b)
            return NULL;
        b->size = bsize;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    a->total += size;
    memset(p, 0, size);
    return p;
}

void *kn_arena_calloc(kn_arena *a, size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz)
        return NULL;
    size_t total = n * sz;
    return kn_arena_alloc(a, total ? total : 1);
}

char *kn_arena_strndup(kn_arena *a, const char *s, size_t len)
{
    char *p = kn_arena_alloc(a, len + 1);
    if (p) {
        if (len)
            memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *kn_arena_strdup(kn_arena *a, const char *s)
{
    return kn_arena_strndup(a, s, strlen(s));
}
