/* bigalloc.h - allocations for big, long-lived, streamed-through buffers (packed
 * weights, memory-plan arenas, scratch): 64-byte aligned, and from 2 MiB up aligned to
 * 2 MiB and advised as transparent huge pages, so that filling them costs a few faults
 * instead of one per 4 KiB page and kernels streaming through them miss the TLB far
 * less.  Release with kn_big_free.  Also: giving pages back that nothing will read. */
#ifndef KN_BIGALLOC_H
#define KN_BIGALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NULL on out of memory (bytes == 0 gives a valid minimal buffer). */
void *kn_big_alloc(size_t bytes);
void kn_big_free(void *p);

/* The whole pages inside [p, p + n) as [*lo, *hi); false when there are none. */
bool kn_inner_pages(const void *p, size_t n, uintptr_t *lo, uintptr_t *hi);
/* Give the whole pages inside [p, p + n) back to the system (MADV_DONTNEED): file
 * pages are read again if touched, anonymous ones come back as zeros. */
void kn_release_pages(void *p, size_t n);

#endif
