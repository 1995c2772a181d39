/* bigalloc.h - allocations for big, long-lived, streamed-through buffers (packed
 * weights, memory-plan arenas, scratch): 64-byte aligned, and from 2 MiB up aligned to
 * 2 MiB and advised as transparent huge pages, so that filling them costs a few faults
 * instead of one per 4 KiB page and kernels streaming through them miss the TLB far
 * less.  Release with kn_big_free. */
#ifndef KN_BIGALLOC_H
#define KN_BIGALLOC_H

#include <stddef.h>

/* NULL on out of memory (bytes == 0 gives a valid minimal buffer). */
void *kn_big_alloc(size_t bytes);
void kn_big_free(void *p);

#endif
