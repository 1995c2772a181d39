/* nchwc_internal.h - what the NCHWc conv files (conv_nchwc*.c) share beyond
 * nchwc.h: the layout of the packed weights, and the register tile of the
 * group-1 conv that the driver (conv_nchwc.c) hands to the AVX-512 file. */
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

/* One register tile of the group-1 conv: ob output blocks x np output pixels of
 * one output row, summed over every input block and the nky x nkx taps inside
 * the image.  Strides are in floats. */
typedef struct kn_nchwc_tile {
    const float *x;    /* input block 0 at the first pixel's first tap */
    const float *w;    /* first output block, input block 0, first tap */
    const float *bias; /* the first output block's 16 */
    const float *z;    /* residual at y's position, or NULL */
    float *y;          /* first output block, first pixel */
    int64_t cb, nky, nkx;
    int64_t x_cb, x_ky, x_kx, x_px; /* input: block, tap row, tap column, pixel */
    int64_t w_cb, w_ky, w_ob;       /* weights: block, tap row, output block */
    int64_t y_ob;                   /* y and z: output block */
    uint32_t last_lanes; /* lanes kept in the tile's last output block (others zeroed) */
    int clamp;           /* clamp to [lo, hi] before the store */
    float lo, hi;
} kn_nchwc_tile;
typedef void (*kn_nchwc_tile_fn)(const kn_nchwc_tile *t);
/* The AVX-512 tile of ob (1..4) blocks x np (1..6) pixels; NULL when not built. */
kn_nchwc_tile_fn kn_nchwc_tile_avx512(int ob, int np);

#endif
