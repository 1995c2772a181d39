/* nchwc_internal.h - what the NCHWc conv files (conv_nchwc*.c) share beyond
 * nchwc.h: the layout of the packed weights, and the register tile of the
 * group-1 conv that the driver (conv_nchwc.c) hands to the AVX-512 file. */
#ifndef KN_NCHWC_INTERNAL_H
#define KN_NCHWC_INTERNAL_H

#include "kernels/nchwc.h"

/* Winograd weights of a 3x3 group-1 conv (conv_nchwc_wino.c), opaque. */
typedef struct kn_nchwc_wino kn_nchwc_wino;

/* Packed weights of one conv geometry (see kn_nchwc_pack for the order of w). */
struct kn_nchwc_weights {
    kn_nchwc_conv g;     /* the geometry packed for (channels, m, group, kh, kw matter) */
    float *w;            /* 64-byte aligned, zeros in the padding */
    float *bias;         /* Mp floats, zero padded (zeros when the conv has no bias) */
    kn_nchwc_wino *wino; /* also packed for Winograd (kn_nchwc_add_winograd), or NULL */
    size_t bytes;        /* of w, bias and wino together */
};

/* The Winograd F(4x4, 3x3) path (conv_nchwc_wino.c): its weights for g (channels, m)
 * from ONNX weights [m][channels][3][3], NULL without AVX-512 or memory; and the
 * run, which returns 0 (nothing written) when a->w has no Winograd weights for
 * g, isa is below AVX-512, the geometry does not take it, or scratch memory ran
 * out (then the caller runs the direct path over the whole output). */
kn_nchwc_wino *kn_nchwc_wino_pack(const kn_nchwc_conv *g, const float *w);
void kn_nchwc_wino_free(kn_nchwc_wino *w);
size_t kn_nchwc_wino_bytes(const kn_nchwc_wino *w);
int kn_nchwc_wino_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a);

/* The most pixels of one tile (with one or two output blocks; 8 with three, 6 with four). */
#define KN_NCHWC_TILE_NP 12

/* One register tile of the group-1 conv: ob output blocks x np consecutive output
 * pixels of one image (a run that may cross rows), summed over cb input blocks
 * (a chunk of them: x and w start at the chunk) and every tap; a tap that falls
 * outside the image for a pixel reads zeros.  A chunk after the first starts from
 * the partial sums stored in y (accumulate); only the last one (finish) adds the
 * bias and residual, applies the activation and zeroes the padding lanes, the
 * others store raw partial sums.  Offsets and strides are in floats. */
typedef struct kn_nchwc_tile {
    const float *x;    /* the image's input, block 0 */
    const float *w;    /* the tile's group of output blocks (see kn_nchwc_pack) */
    const float *bias; /* the first output block's 16 */
    const float *z;    /* residual at y's position, or NULL */
    float *y;          /* first output block, first pixel; pixels 16 floats apart */
    int64_t cb, kh, kw;
    int64_t x_cb, x_ky, x_kx; /* input strides: block, tap row, tap column */
    const int64_t *pix;       /* [np]: each pixel's window origin (may lie outside the image) */
    const uint16_t *row_in;   /* [kh]: bit p: pixel p's tap row inside (NULL if inside) */
    const uint16_t *col_in;   /* [kw]: bit p: pixel p's tap column inside (NULL if inside) */
    int64_t y_ob;             /* y and z: output block stride */
    const char *pf;           /* weights to bring into L2 meanwhile, pf_lines lines a tap; or NULL */
    int64_t pf_lines;
    uint32_t last_lanes; /* lanes kept in the tile's last output block (others zeroed) */
    int clamp;           /* clamp to [lo, hi] before the store */
    int silu;            /* x sigmoid(x) (vmath's) in registers before the store */
    float lo, hi;
    int inside;          /* every tap of every pixel lies inside (no masks to read) */
    int accumulate;      /* start from the partial sums in y, not from zero */
    int finish;          /* the chunk of the last input blocks: the epilogue, then the store */
} kn_nchwc_tile;
typedef void (*kn_nchwc_tile_fn)(const kn_nchwc_tile *t);
/* The AVX-512 tile of ob (1..4) blocks x np pixels (1..12 for ob <= 2, 1..8 for 3,
 * 1..6 for 4); NULL when not built or out of range. */
kn_nchwc_tile_fn kn_nchwc_tile_avx512(int ob, int np);

#endif
