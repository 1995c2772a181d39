/* nchwc_internal.h - what the NCHWc conv files (conv_nchwc*.c) share beyond
 * nchwc.h: the layout of the packed weights. */
#ifndef KN_NCHWC_INTERNAL_H
#define KN_NCHWC_INTERNAL_H

#include "kernels/nchwc.h"

/* Packed weights of one conv geometry (see kn_nchwc_pack for the order of w). */
struct kn_nchwc_weights {
    kn_nchwc_conv g; /* the geometry packed for (channels, m, group, kh, kw matter) */
    float *w;        /* 64-byte aligned, zeros in the padding */
    float *bias;     /* Mp floats, zero padded (zeros when the conv has no bias) */
    size_t bytes;    /* of w and bias together */
};

#endif
