/* bigalloc.c - huge-page friendly allocations (see bigalloc.h). */
#include "core/bigalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *kn_big_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    if (bytes < HUGE_PAGE)
        return posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64) ? NULL : p;
    size_t size = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    if (posix_memalign(&p, HUGE_PAGE, size))
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE); /* advice only: failure leaves normal pages */
#endif
    return p;
}

void kn_big_free(void *p) { free(p); }

bool kn_inner_pages(const void *p, size_t n, uintptr_t *lo, uintptr_t *hi)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return false;
    *lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    *hi = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    return *hi > *lo;
}

void kn_release_pages(void *p, size_t n)
{
    uintptr_t lo, hi;
    if (kn_inner_pages(p, n, &lo, &hi))
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
