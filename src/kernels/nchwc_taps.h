/* nchwc_taps.h - the window-range helper the blocked depthwise conv
 * (conv_nchwc_dw.c) and pools (pool_nchwc.c) share: which taps of a window
 * fall inside the image.  Always inlined: the AVX-512 code calls it per edge
 * pixel, and a call into baseline code there costs more than the work. */
#ifndef KN_NCHWC_TAPS_H
#define KN_NCHWC_TAPS_H

#include <stdint.h>

#include "kernels/conv_kernels.h"

/* [lo, hi) of the taps t < k with 0 <= start + t * d < limit (d >= 1). */
static inline __attribute__((always_inline)) void kn_nchwc_taps(int64_t start, int64_t k,
                                                                int64_t d, int64_t limit,
                                                                int64_t *lo, int64_t *hi)
{
    if (start >= 0 && start + (k - 1) * d < limit) { /* the common case */
        *lo = 0;
        *hi = k;
        return;
    }
    if (d == 1) { /* no divisions */
        *lo = start < 0 ? -start : 0;
        *hi = limit - start;
    } else {
        *lo = start < 0 ? kn_ceil_div(-start, d) : 0;
        *hi = limit > start ? kn_ceil_div(limit - start, d) : 0;
    }
    *lo = *lo < k ? *lo : k;
    *hi = *hi < k ? *hi : k;
    if (*hi < *lo)
        *hi = *lo;
}

#endif
