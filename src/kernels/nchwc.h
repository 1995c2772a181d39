/* nchwc.h - float32 kernels on the blocked channel layout "NCHWc" (c =
 * KN_NCHWC_BLOCK = 16, one AVX-512 vector of channels): a blocked tensor of
 * logical shape [N, Cp, H, W], Cp = C rounded up to a multiple of 16, is stored
 * [N][Cp/16][H][W][16].  The padding channels (C..Cp-1) of every blocked tensor
 * hold zeros: the reorder writes them, and every kernel below writes zeros there.
 * The level-all pass src/opt/layout_nchwc.c moves CNN bodies onto this layout
 * (operators in src/ops/nchwc.c); the point is that a convolution then needs no
 * packing of its activations: 16 output channels are one vector, so a tile of
 * output pixels x output-channel blocks is register-blocked straight from the
 * input as it lies.
 *   conv_nchwc.c / conv_nchwc_avx512.c   group-1 conv: weight packing, driver,
 *                                         reference and AVX-512 tiles
 *   conv_nchwc_wino.c                     3x3 stride-1 convs by Winograd F(4x4, 3x3)
 *   conv_nchwc_dw.c                       depthwise conv (group == C == M)
 *   conv_nchwc_stem.c                     NCHW input with few channels -> blocked
 *   pool_nchwc.c                          max / average pools, global average
 *   nchwc_reorder.c                       NCHW <-> NCHWc
 *   nchwc_binary.c                        Add / Mul, per pixel or per channel */
#ifndef KN_NCHWC_H
#define KN_NCHWC_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "kernels/conv_kernels.h"

struct kn_threadpool;

#define KN_NCHWC_BLOCK 16
/* The operators on blocked tensors (src/ops/nchwc.c). */
#define KN_NCHWC_DOMAIN "kiln.nchwc"

/* c rounded up to a multiple of the block. */
static inline int64_t kn_nchwc_padded(int64_t c)
{
    return (c + KN_NCHWC_BLOCK - 1) / KN_NCHWC_BLOCK * KN_NCHWC_BLOCK;
}

/* ------------------------------------------------------------- reorders */

/* x NCHW [n][c][hw] -> y blocked [n][Cp/16][hw][16], padding channels zeroed. */
void kn_nchwc_from_nchw(struct kn_threadpool *pool, const float *x, int64_t n, int64_t c,
                        int64_t hw, float *y);
/* x blocked [n][Cp/16][hw][16] -> y NCHW [n][c][hw] (the padding dropped). */
void kn_nchwc_to_nchw(struct kn_threadpool *pool, const float *x, int64_t n, int64_t c,
                      int64_t hw, float *y);

/* ---------------------------------------------------------- convolution */

/* A 2-D convolution on blocked tensors.  channels / m are the real input /
 * output channel counts (the blocked tensors carry kn_nchwc_padded of them);
 * group is 1, or channels == m == group (depthwise).  pt / pl are the top / left
 * pads; the bottom / right ones follow from oh / ow. */
typedef struct kn_nchwc_conv {
    int64_t batch, channels, m, group;
    int64_t ih, iw, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl;
} kn_nchwc_conv;

/* Weights (and bias) packed once for one geometry's channels / m / group / kernel
 * size.  Group 1: the output blocks in groups of at most 4, as even as can be
 * (9 blocks: 3 + 3 + 3), each group [Cp/16][kh][kw][16 in][gb][16 out] (one
 * stream for the tile holding the group's gb blocks), zeros in the padding;
 * depthwise: [Cp/16][kh][kw][16].
 * Opaque outside conv_nchwc*.c. */
typedef struct kn_nchwc_weights kn_nchwc_weights;

/* w: ONNX layout [m][channels / group][kh][kw]; bias [m] or NULL.  Returns NULL
 * when out of memory (the geometry is the caller's to have checked). */
kn_nchwc_weights *kn_nchwc_pack(const kn_nchwc_conv *g, const float *w, const float *bias);
/* Also packs group-1 3x3 weights p for the Winograd F(4x4, 3x3) path (w as given to
 * kn_nchwc_pack), which kn_nchwc_conv_run then takes for every stride-1, pad-1
 * geometry; the direct packing stays for the others (and the reference).  Returns
 * 0 when that cannot be (not 3x3 group 1, no AVX-512, out of memory: p unchanged). */
int kn_nchwc_add_winograd(kn_nchwc_weights *p, const float *w);
/* Whether the Winograd path is worth its weights for this image size and these
 * channels (-1: not known): the measured rule, or KILN_CONV_WINOGRAD = 0 / 1
 * (never / whenever the geometry takes it). */
int kn_nchwc_wino_worth(int64_t batch, int64_t ih, int64_t iw, int64_t channels, int64_t m);
/* Whether a geometry can take the Winograd path: 3x3, stride 1, dilation 1, pads
 * of 1 (the output the size of the input), group 1. */
int kn_nchwc_wino_takes(const kn_nchwc_conv *g);
void kn_nchwc_weights_free(kn_nchwc_weights *w);
size_t kn_nchwc_weights_bytes(const kn_nchwc_weights *w);

typedef struct kn_nchwc_conv_args {
    const kn_nchwc_conv *g;
    const kn_nchwc_weights *w; /* packed for g (same channels, m, group, kh, kw) */
    const float *x;            /* blocked [batch][Cp/16][ih][iw][16] */
    const float *z;            /* blocked residual shaped like y, added before act; or NULL */
    kn_conv_act act;           /* applied last; padding channels stay zero whatever it is */
    float *y;                  /* blocked [batch][Mp/16][oh][ow][16], every element written */
} kn_nchwc_conv_args;

/* y = act(conv(x) + bias + z), over the pool, with the ISA's kernels (capped at
 * what the CPU has; the generic ISA takes the reference).  Results do not depend
 * on the thread count. */
void kn_nchwc_conv_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a);
/* The plain C reference of the same, single-threaded (tests compare against it). */
void kn_nchwc_conv_reference(const kn_nchwc_conv_args *a);

/* Depthwise halves (conv_nchwc_dw.c), called by the two above for group > 1. */
kn_nchwc_weights *kn_nchwc_dw_pack(const kn_nchwc_conv *g, const float *w, const float *bias);
void kn_nchwc_dw_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a);
void kn_nchwc_dw_reference(const kn_nchwc_conv_args *a);

/* Stems (conv_nchwc_stem.c): a group-1 conv over an NCHW input with few channels
 * (a->x is [batch][channels][ih][iw], not blocked) into a blocked output, so the
 * first layer of a CNN writes the layout the body reads without a reorder.
 * Weights packed [Mp/16][channels][kh][kw][16], zeros in the padding. */
kn_nchwc_weights *kn_nchwc_stem_pack(const kn_nchwc_conv *g, const float *w, const float *bias);
void kn_nchwc_stem_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a);
void kn_nchwc_stem_reference(const kn_nchwc_conv_args *a);

/* ------------------------------------------------------------ Add / Mul */

/* y = a + b (mul 0) or a * b (mul 1) over `planes` blocked channel planes of hw
 * pixels (planes = batch * Cp/16): b shaped like a (per_pixel), or one 16-vector
 * per plane (an [N, Cp, 1, 1] gate).  y may be a.  (nchwc_binary.c) */
void kn_nchwc_binary(struct kn_threadpool *pool, kn_isa isa, const float *a, const float *b,
                     float *y, int64_t planes, int64_t hw, int per_pixel, int mul);

/* ---------------------------------------------------------------- pools */

/* Max or average pool over blocked [batch][Cp/16][ih][iw][16] into
 * [batch][Cp/16][oh][ow][16].  Window cells outside the image are skipped (max;
 * average without count_include_pad divides by the cells inside) or count as
 * zeros (average with count_include_pad: divides by kh * kw, clipped to the
 * padded image as ONNX's AveragePool does). */
typedef struct kn_nchwc_pool {
    int64_t batch, channels;
    int64_t ih, iw, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int is_max, count_include_pad;
} kn_nchwc_pool;

void kn_nchwc_pool_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_pool *p,
                       const float *x, float *y);
void kn_nchwc_pool_reference(const kn_nchwc_pool *p, const float *x, float *y);

/* Global average: blocked [batch][Cp/16][hw][16] -> [batch][Cp] (which is both the
 * blocked and the NCHW layout of [batch, Cp, 1, 1]). */
void kn_nchwc_global_avg(struct kn_threadpool *pool, kn_isa isa, const float *x, int64_t batch,
                         int64_t channels, int64_t hw, float *y);

#endif
