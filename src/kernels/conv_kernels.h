/* conv_kernels.h - hot loops of the float32 convolutions (NCHW): the fused
 * activations of Conv/FusedConv applied to a span of outputs, the depthwise 2-D
 * plane kernel (generic / AVX2 / AVX-512, chosen at run time), the direct conv
 * over few input channels (CNN stems), the unpacked pointwise tile, and the
 * blocked im2col / col2im that feed the packed-A GEMM (kernels/sgemm.h), plus
 * the whole-conv drivers choosing among them.  The operator side (attributes,
 * shapes, prepacked weights) lives in ops/conv.c. */
#ifndef KN_CONV_KERNELS_H
#define KN_CONV_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"

/* ceil(a / b) for b > 0 and any sign of a. */
static inline int64_t kn_ceil_div(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

static inline int64_t kn_clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---------------------------------------------------------- activations */

/* The activations FusedConv accepts (ONNX Runtime contrib-op semantics, plus the
 * kiln-only SiLU that the level-all pass fuse_conv_silu writes). */
typedef enum kn_conv_act_kind {
    KN_CONV_ACT_NONE = 0,
    KN_CONV_ACT_RELU,         /* max(x, 0) */
    KN_CONV_ACT_LEAKY_RELU,   /* x >= 0 ? x : alpha * x */
    KN_CONV_ACT_SIGMOID,      /* 1 / (1 + exp(-x)) */
    KN_CONV_ACT_TANH,
    KN_CONV_ACT_CLIP,         /* min(max(x, alpha), beta) */
    KN_CONV_ACT_HARD_SIGMOID, /* max(0, min(1, alpha * x + beta)) */
    KN_CONV_ACT_SILU,         /* x / (1 + exp(-x)), kiln only */
} kn_conv_act_kind;

typedef struct kn_conv_act {
    kn_conv_act_kind kind;
    float alpha, beta;
} kn_conv_act;

/* x[i] = act(x[i]) for i < n (NaN stays NaN for Relu and Clip); Sigmoid, Tanh and
 * SiLU through vmath, so a fused SiLU gives the bits QuickGelu would. */
void kn_conv_act_apply(const kn_conv_act *act, float *x, size_t n);
/* act(v) for one value. */
float kn_conv_act_one(const kn_conv_act *act, float v);
/* True for the activations the GEMM epilogue and the vector kernels apply
 * themselves (none, Relu, Clip); the others run over the outputs afterwards. */
int kn_conv_act_is_clamp(const kn_conv_act *act, float *lo, float *hi);

/* ------------------------------------------------------ depthwise plane */

/* One channel plane of a 2-D depthwise conv: input ih x iw, kernel kh x kw,
 * strides, dilations, begin pads (end pads follow from the output size). */
typedef struct kn_dw_geom {
    int64_t ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
} kn_dw_geom;

/* Floats of scratch kn_dwconv_plane needs for one plane (the zero-padded input
 * with its columns split by stride phase), or 0 when the sizes overflow or
 * exceed what the fast path accepts (use the reference then). */
size_t kn_dw_scratch_floats(const kn_dw_geom *g);

/* y (oh x ow) = act(bias + z + sum_taps w[ky, kx] * x[oy*sh - pt + ky*dh, ...])
 * for one plane; z (oh x ow, may be NULL) is the FusedConv residual.  scratch
 * holds kn_dw_scratch_floats(g) floats.  isa is capped by what the CPU has. */
void kn_dwconv_plane(kn_isa isa, const kn_dw_geom *g, const float *x, const float *w, float bias,
                     const float *z, const kn_conv_act *act, float *scratch, float *y);

/* Plain direct loops, no scratch: the reference the fast path is tested against. */
void kn_dwconv_plane_ref(const kn_dw_geom *g, const float *x, const float *w, float bias,
                         const float *z, const kn_conv_act *act, float *y);

/* Row kernels of the per-ISA files, over `rows` output rows: row r has
 * y[r*ow + ox] = bias + sum_t tw[t] * (src + r * src_stride + toff[t])[ox] for
 * ox < ow, then + z[r*ow + ox] (z may be NULL) and a clamp to [lo, hi] when clamp. */
typedef struct kn_dw_rows {
    const float *src;
    int64_t src_stride, rows, ow;
    const int64_t *toff;
    const float *tw;
    int ntaps, clamp;
    float bias, lo, hi;
    const float *z;
    float *y;
    /* for the row-blocked kernels: padded row stride, kernel, stride and dilation
     * along y (toff[ky * kw + kx] = ky * dh * rs + toff[kx]) */
    int64_t rs;
    int kh, kw, sh, dh;
} kn_dw_rows;
typedef void (*kn_dw_row_fn)(const kn_dw_rows *r);
/* Row-blocked plane kernel: several output rows at once, each input vector loaded
 * once for all the rows it feeds.  Returns 0 (and does nothing) for geometries it
 * does not cover (it takes 3x3 and 5x5, stride 1 or 2 along y, dilation 1 along y). */
typedef int (*kn_dw_block_fn)(const kn_dw_rows *r);
kn_dw_block_fn kn_dw_block_avx512(void); /* NULL when not built */
/* Plane kernel reading the input in place (no padded copy: the padding is masked
 * out of the loads, stride 2 along x takes the even lanes of two loads): y = bias
 * + taps (+ z) (clamped to [lo, hi] when clamp).  Returns 0 (and does nothing)
 * unless the kernel is 3x3 or 5x5, strides both 1 or both 2, dilation 1. */
typedef int (*kn_dw_inplace_fn)(const kn_dw_geom *g, const float *x, const float *w, float bias,
                                const float *z, int clamp, float lo, float hi, float *y);
kn_dw_inplace_fn kn_dw_inplace_avx512(void); /* NULL when not built */
kn_dw_row_fn kn_dw_row_avx2(void);   /* NULL when not built */
kn_dw_row_fn kn_dw_row_avx512(void); /* NULL when not built */
/* Deinterleave of the stride-2 padded copy: even[j] = src[2j], odd[j] = src[2j+1]
 * for the j < pairs that whole vectors cover; returns how many pairs it did. */
typedef int64_t (*kn_dw_split2_fn)(const float *src, int64_t pairs, float *even, float *odd);
kn_dw_split2_fn kn_dw_split2_avx2(void);   /* NULL when not built */
kn_dw_split2_fn kn_dw_split2_avx512(void); /* NULL when not built */
/* A padded stride-1 row: dst[c] = src[c - lo] for lo <= c < hi, 0 elsewhere, c < n
 * (src is read only at [0, hi - lo)). */
typedef void (*kn_dw_shift_fn)(const float *src, int64_t lo, int64_t hi, int64_t n, float *dst);
kn_dw_shift_fn kn_dw_shift_avx512(void); /* NULL when not built */

/* The padded, phase-split copy of a plane that kn_dwconv_plane builds, row by
 * row, for other direct kernels: floats per padded row (0 when the geometry is
 * out of the fast path's bounds), the offset of tap (ky, kx) from an output
 * row's first padded row, and the padded rows [r0, r0 + n) (padded row r holds
 * input row r - pt, zeros outside) written n rows of that stride into dst. */
int64_t kn_dw_padded_row_floats(const kn_dw_geom *g);
int64_t kn_dw_tap_offset(const kn_dw_geom *g, int64_t ky, int64_t kx);
void kn_dw_fill_rows(kn_isa isa, const kn_dw_geom *g, const float *x, int64_t r0, int64_t n,
                     float *dst);

/* ------------------------------------------------------- direct conv */

/* Output channels one direct row-kernel call computes. */
#define KN_DIRECT_CO 8

/* Rows of a direct conv over few input channels: for co < KN_DIRECT_CO, output
 * row r < rows, ox < ow:
 *   y[co*plane + r*ow + ox] = bias[co] + sum_t w[co*ntaps + t] * (src + r*src_stride + toff[t])[ox]
 * then + z (same indexing as y, may be NULL) and a clamp to [lo, hi] when clamp.
 * Channels co >= nco are computed (their weights must be readable) but not stored. */
typedef struct kn_direct_rows {
    const float *src;
    int64_t src_stride, rows, ow, plane;
    const int64_t *toff;
    const float *w, *bias; /* KN_DIRECT_CO * ntaps and KN_DIRECT_CO floats */
    int ntaps, nco, clamp;
    float lo, hi;
    const float *z;
    float *y;
} kn_direct_rows;
typedef void (*kn_direct_row_fn)(const kn_direct_rows *r);
void kn_direct_rows_generic(const kn_direct_rows *r);
kn_direct_row_fn kn_direct_row_avx512(void); /* NULL when not built */

/* ---------------------------------------------------- pointwise tiles */

/* One tile of an unpacked pointwise conv: for i < m output channels, j < n pixels
 *   y[i*ldy + j] = act(bias[i] + sum_k a[k*mr + i] * x[k*ldx + j] + z[i*ldy + j])
 * with a one micro-panel (mr rows, k-major) of the GEMM's packed weights, x the
 * input read where it lies (rows ldx apart), bias / z optional and act a clamp
 * to [lo, hi] when clamp.  m <= mr, n <= KN_PW_TILE_COLS. */
#define KN_PW_TILE_COLS 32
typedef struct kn_pw_tile {
    const float *a, *x;
    int64_t ldx, K;
    float *y;
    const float *z, *bias;
    int64_t ldy;
    int mr, m, n, clamp;
    float lo, hi;
} kn_pw_tile;
typedef void (*kn_pw_tile_fn)(const kn_pw_tile *t);
void kn_pw_tile_generic(const kn_pw_tile *t);
kn_pw_tile_fn kn_pw_tile_avx512(void); /* NULL when not built */
int kn_pw_tile_rows_avx512(void);      /* the mr it takes (0 when not built) */

/* ----------------------------------------------------- im2col / col2im */

/* 2-D geometry of a conv with the input of one group: channels x ih x iw. */
typedef struct kn_conv2d_geom {
    int64_t channels, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
} kn_conv2d_geom;

/* Columns for output pixels [p0, p0 + np) (flattened oy * ow + ox): col is
 * (channels * kh * kw) rows of np floats, row r = (ci, ky, kx); zero where the
 * window falls in the padding. */
void kn_im2col_tile(const kn_conv2d_geom *g, const float *x, int64_t p0, int64_t np, float *col);
/* The same at kernel level isa (capped by the CPU): the plain version above is its
 * reference. */
void kn_im2col_tile_isa(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                        int64_t np, float *col);

/* The same columns straight in the GEMM's packed-B layout (kernels/sgemm.h), at
 * kernel level isa (capped by the CPU): ceil(np / KN_SGEMM_PANEL) panels, panel q
 * (pixels p0 + q * KN_SGEMM_PANEL on) at col + q * K * KN_SGEMM_PANEL, row r of it
 * KN_SGEMM_PANEL floats at + r * KN_SGEMM_PANEL, the columns past np zero
 * (K = channels * kh * kw).  kn_im2col_tile then packed is its reference. */
void kn_im2col_tile_packed(kn_isa isa, const kn_conv2d_geom *g, const float *x, int64_t p0,
                           int64_t np, float *col);

/* Transposed conv scatter for one output channel plane and input rows [iy0,
 * iy0 + nrows): y (oh x ow) += col[(ky, kx)][input pixel of the band] over the
 * kh * kw column rows of nrows * iw floats. */
void kn_col2im_rows(const kn_conv2d_geom *g, const float *col, int64_t iy0, int64_t nrows,
                    float *y);

/* ------------------------------------------------ whole 2-D convolutions */

struct kn_threadpool;
typedef struct kn_packed_a kn_packed_a;
typedef struct kn_wino_weights kn_wino_weights;

/* One float32 NCHW 2-D conv (1-D convs pass ih = kh = 1).  g describes one group:
 * g.channels = input channels / group.  w is [m, g.channels, kh, kw]; bias [m] or
 * NULL; z (FusedConv residual, shaped like y) or NULL; pa[group] the weights of
 * each group prepacked as (m / group) x (g.channels * kh * kw) matrices, or NULL
 * to pack them per call. */
typedef struct kn_conv2d_args {
    kn_conv2d_geom g;
    int64_t batch, group, m;
    const float *x, *w, *bias, *z;
    kn_packed_a *const *pa;
    kn_conv_act act;
    float *y;
    const kn_wino_weights *wino; /* Winograd weights of a 3x3 group-1 conv, or NULL */
} kn_conv2d_args;

typedef enum kn_conv_algo {
    KN_CONV_ALGO_DEPTHWISE, /* group == channels == m: direct plane kernel */
    KN_CONV_ALGO_POINTWISE, /* 1x1, stride 1, no pads: GEMM on the input itself */
    KN_CONV_ALGO_IM2COL,    /* anything else: im2col tiles + GEMM per group */
    KN_CONV_ALGO_DIRECT,    /* group 1, few input channels x taps, weights given: direct */
    KN_CONV_ALGO_WINOGRAD,  /* 3x3 stride 1 group 1 with a->wino: F(2x2, 3x3) + 16 GEMMs */
} kn_conv_algo;

kn_conv_algo kn_conv2d_algo(const kn_conv2d_args *a);
/* Scratch floats kn_conv2d_run wants with `threads` threads (fewer slices when
 * that much would be too large), 0 when it needs none; SIZE_MAX when the conv is
 * too large for the fast paths (use the reference). */
size_t kn_conv2d_scratch_floats(const kn_conv2d_args *a, int threads);
/* True when a GEMM conv with `rows` = channels / group * kh * kw never needs the
 * reference, whatever the image size: prepacked weights then replace the weights. */
int kn_conv2d_gemm_always_fits(int64_t rows);
/* Runs the conv over pool (NULL: inline) at kernel level isa with scratch_floats
 * floats of 64-byte aligned scratch (as sized above; with less than a slice per
 * thread the work runs one task at a time).  Returns KN_OK or KN_ERR_NOMEM
 * (weight packing). */
int kn_conv2d_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                  float *scratch, size_t scratch_floats);

/* The direct path (conv_direct.c): whether it takes a (group 1, not pointwise
 * is the caller's test, a->w given, few input channels x taps, bands that fit),
 * the floats of one thread's slice of scratch, and the run (one slice per pool
 * thread, else one task at a time). */
int kn_conv2d_direct_ok(const kn_conv2d_args *a);
size_t kn_conv2d_direct_slice_floats(const kn_conv2d_args *a);
void kn_conv2d_direct_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                          float *scratch, size_t scratch_floats);
/* True when a conv with these weights (group, input channels / group, kernel)
 * may take the direct path, which reads the weights as they are. */
int kn_conv2d_direct_weights(int64_t group, int64_t channels, int64_t kh, int64_t kw);

/* The unpacked pointwise path (conv_pointwise.c): the pointwise conv a with the
 * weights of each group packed in pa, the input read in place, tasks of pixel
 * blocks (and, when those are few, of output channel chunks) over pool.
 * Returns 0 when it does not apply (no kernel for isa, pa packed for another
 * micro-panel height): the caller runs the GEMM then. */
int kn_conv2d_pointwise_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                            kn_packed_a *const *pa);

/* The Winograd F(2x2, 3x3) path (conv_winograd.c).  Per 4x4 input tile d (2x2
 * outputs), V = B^T d B; per weight plane g, U = G g G^T; M[xi] = sum over input
 * channels of U[xi] * V[xi] for the 16 positions xi (16 GEMMs over a block of
 * tiles, U prepacked); Y = A^T M A, then bias, residual and activation.
 * KN_WINO_POS is the number of tile positions. */
#define KN_WINO_POS 16
struct kn_wino_weights {
    int64_t m, channels;
    kn_packed_a *u[KN_WINO_POS]; /* u[xi]: m x channels */
};
/* The transformed, packed weights of w [m, channels, 3, 3] for isa; NULL on
 * allocation failure. */
kn_wino_weights *kn_wino_pack(kn_isa isa, const float *w, int64_t m, int64_t channels);
void kn_wino_free(kn_wino_weights *ww);
/* U = G g G^T of one 3x3 plane g into u[16] (row-major 4x4). */
void kn_wino_weight_tile(const float g[9], float u[KN_WINO_POS]);
/* Whether the prepared weights may take this conv's shape at all (3x3, group 1,
 * channels and m from KN_WINO_MIN_CHANNELS up; never with KILN_CONV_WINOGRAD=0,
 * so that A/B runs without it also save its weights' memory); and whether the path is on for
 * it: stride 1, dilation 1, a->wino built for these sizes, and the shapes where
 * it was measured to win, or any shape when a->pa holds no im2col weights (prepare
 * frees them once the Winograd ones exist) (KILN_CONV_WINOGRAD=0: never, =1: every
 * shape it takes). */
#define KN_WINO_MIN_CHANNELS 16
int kn_wino_weights_ok(int64_t group, int64_t channels, int64_t m, int64_t kh, int64_t kw);
int kn_wino_applies(const kn_conv2d_args *a);
/* Whether weights are worth building for batch x ih x iw inputs (-1: not known
 * at load): false when the default choice would not take that size (the output
 * taken as ih x iw, as with pads of 1) or the path is off. */
int kn_wino_worth_weights(int64_t batch, int64_t ih, int64_t iw);
/* Row-run kernels of the transforms (plain C, AVX2, AVX-512), over n
 * tiles along one tile row.  Input: tile k reads rows[r][ix0 + 2k + c] (r, c <
 * 4; zero where rows[r] is NULL or the column is >= iw; ix0 >= 0) and writes
 * v[xi * vs + k].  Output: tile k reads m[xi * ms + k], and stores its 2x2
 * outputs at columns 2k, 2k + 1 (those < cols) of y[0] and, unless NULL, y[1],
 * each + bias + z[r][col] (z[r] NULL: no residual) and clamped to [lo, hi]. */
typedef struct kn_wino_in_run {
    const float *rows[4];
    int64_t iw, ix0, n;
    float *v;
    int64_t vs;
} kn_wino_in_run;
typedef struct kn_wino_out_run {
    const float *m;
    int64_t ms, n, cols;
    float *y[2];
    const float *z[2];
    float bias, lo, hi;
} kn_wino_out_run;
typedef void (*kn_wino_in_fn)(const kn_wino_in_run *r);
typedef void (*kn_wino_out_fn)(const kn_wino_out_run *r);
void kn_wino_input_generic(const kn_wino_in_run *r);
void kn_wino_output_generic(const kn_wino_out_run *r);
kn_wino_in_fn kn_wino_input_avx2(void);     /* NULL when not built */
kn_wino_out_fn kn_wino_output_avx2(void);   /* NULL when not built */
kn_wino_in_fn kn_wino_input_avx512(void);   /* NULL when not built */
kn_wino_out_fn kn_wino_output_avx512(void); /* NULL when not built */
/* Floats of one thread's slice of scratch (V and M of one block of tiles), and
 * the run (one slice per pool thread, else one block at a time with the GEMMs
 * split over pool).  Returns KN_OK or KN_ERR_NOMEM (GEMM packing buffers). */
size_t kn_wino_slice_floats(const kn_conv2d_args *a);
int kn_wino_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a, float *scratch,
                size_t scratch_floats);

/* Transposed 2-D conv with the same record: g.channels = input channels / group,
 * g.ih x g.iw the input, g.oh x g.ow the output, pt / pl the begin pads; w is
 * [group * g.channels, m / group, kh, kw]; z and act unused; pa[group] from
 * kn_convt2d_pack_group or NULL.  The columns of a band of input rows go through
 * scratch: kn_convt2d_scratch_floats wants room for a bounded band (SIZE_MAX: not
 * even one row fits, use the reference); kn_convt2d_run takes bands of as many
 * rows as scratch_floats holds.  Returns KN_OK, KN_ERR_ARG (scratch below one
 * row) or KN_ERR_NOMEM. */
size_t kn_convt2d_scratch_floats(const kn_conv2d_args *a);
kn_packed_a *kn_convt2d_pack_group(kn_isa isa, const kn_conv2d_args *a, int64_t gi);
int kn_convt2d_run(struct kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a,
                   float *scratch, size_t scratch_floats);

#endif
