/* arena.h - bump allocator for data that lives exactly as long as its owner
 * (a loaded model's IR: names, attributes, node arrays).  Freeing the arena frees
 * everything at once, which keeps error paths in the loader leak-free. */
#ifndef KN_ARENA_H
#define KN_ARENA_H

#include <stddef.h>

typedef struct kn_arena_block kn_arena_block;
typedef struct kn_arena {
    kn_arena_block *head;
    size_t total;      /* bytes handed out */
} kn_arena;

void kn_arena_init(kn_arena *a);
void kn_arena_free(kn_arena *a);
/* Zeroed, 16-byte aligned memory; NULL on failure or absurd sizes. */
void *kn_arena_alloc(kn_arena *a, size_t size);
/* Zeroed array of n elements of size sz, with overflow check. */
void *kn_arena_calloc(kn_arena *a, size_t n, size_t sz);
/* Copy of s[0..len) with a terminating NUL. */
char *kn_arena_strndup(kn_arena *a, const char *s, size_t len);
char *kn_arena_strdup(kn_arena *a, const char *s);

#endif
