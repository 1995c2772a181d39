/* quant_gemm.c - fast paths of QLinearMatMul and QLinearConv on the integer GEMM
 * (kernels/qgemm.h).  This is the second file of the 'quant' family: quant.c keeps
 * the operators' validation and their plain reference loops (the path for every
 * case not handled here), this file the prepare hooks that pack constant weights
 * and the GEMM-based kernels, which would double quant.c's length.
 *
 *   QLinearMatMul: A (any rank, per-tensor scale/zero point) x 2-D constant B ->
 *     one GEMM of rows(A) x K x N, requantized in the GEMM's output stage.
 *   QLinearConv (2-D, group 1): per image, the input is transposed to [H, W, C];
 *     blocks of output pixels are laid out pixel-major by im2col (runs of C bytes,
 *     the input zero point as padding), multiplied by W^T (reordered to [N, kh, kw,
 *     C] and packed once: K = kh*kw*C, N = output channels) into int32, then the
 *     bias is added and the result requantized while transposing to NCHW.
 *   QLinearConv (2-D depthwise: group == channels == filters): a direct loop over
 *     int32 taps prepared once (no GEMM: its N would be 1).
 *   com.microsoft QLinearConv with channels_last (2-D, group 1): [N, H, W, C] in and
 *     out, so no transposes: pointwise convolutions are one GEMM over the whole
 *     batch reading x in place, others im2col blocks; the bias and requantization
 *     happen in the GEMM's output stage, which writes y's rows directly.  Depthwise
 *     channels-last: per output pixel, the taps' channel vectors summed in registers
 *     (AVX2 / AVX-512), one requantized row per pixel.
 * int8 activations are shifted to uint8 (x + 128, zero point + 128: the products
 * are unchanged).  The depthwise taps (AVX2, and AVX-512 for channels-last) and
 * the row requantization (AVX2) have vector versions next to their plain C ones (chosen by kn_cpu_isa, so KILN_ISA caps them).  Results equal quant.c's reference bit for bit: both use
 * kn_requant_value's formula. */
#include "ops/quant_gemm.h"

#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/qgemm.h"
#include "ops/op_util.h"

/* A packed weight: the GEMM's B (K x N) as it was packed from the constant, or for
 * a depthwise convolution (no GEMM) the n filters of k taps minus their zero points. */
typedef struct qgemm_state {
    kn_qpacked_b *pb;       /* NULL for depthwise */
    int32_t *taps;          /* depthwise: n x k */
    int64_t k, n;
} qgemm_state;

/* out[i] = requantized acc[i] + bias[i*step] with multiplier mul[i*step] for i in
 * [0, n) (uint8 or int8 out; bias may be NULL); step 0 broadcasts one channel's. */
typedef void (*requant_row_fn)(const int32_t *acc, int64_t n, const int32_t *bias, const float *mul, int64_t step,
                               int32_t y_zero, bool is_u8, void *out);
static requant_row_fn requant_row_pick(bool bias_ok);
static bool bias_fits(const kn_tensor *bias, int64_t taps);

void kn_qgemm_state_release(void *state)
{
    qgemm_state *s = state;
    if (!s)
        return;
    kn_qpacked_b_free(s->pb);
    free(s->taps);
    free(s);
}

/* ---------------------------------------------------------------- prepare */

static bool input_present(const kn_prepare_ctx *pc, int i)
{
    return i < pc->n_in && pc->node->in[i] >= 0;
}

/* out[i] = w[e0 + i] - z for a run of n elements of one zero point; false when a
 * value leaves int8. */
static bool shift_run(const kn_tensor *w, int64_t e0, int64_t n, int64_t z, int8_t *out)
{
    int bad = 0;
    if (w->dtype == KN_I8 && z == 0) {
        memcpy(out, (const int8_t *)w->data + e0, (size_t)n);
        return true;
    }
    if (w->dtype == KN_I8) {
        const int8_t *src = (const int8_t *)w->data + e0;
        for (int64_t i = 0; i < n; i++) {
            int32_t v = (int32_t)src[i] - (int32_t)z;
            bad |= v < -128 || v > 127;
            out[i] = (int8_t)v;
        }
    } else {
        const uint8_t *src = (const uint8_t *)w->data + e0;
        for (int64_t i = 0; i < n; i++) {
            int32_t v = (int32_t)src[i] - (int32_t)z;
            bad |= v < -128 || v > 127;
            out[i] = (int8_t)v;
        }
    }
    return !bad;
}

static bool all_zero(const kn_tensor *t)
{
    const uint8_t *b = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        if (b[i])
            return false;
    return true;
}

/* (declared in quant_gemm.h) */
int8_t *kn_qweight_to_int8(const kn_tensor *w, const kn_tensor *zp, int64_t zp_inner)
{
    int8_t *out = malloc((size_t)(w->numel > 0 ? w->numel : 1));
    if (!out)
        return NULL;
    if (w->dtype != KN_I8 && w->dtype != KN_U8) {
        free(out);
        return NULL;
    }
    if (zp && all_zero(zp))
        zp = NULL; /* symmetric weights (the common case): a plain copy */
    bool per_group = zp && zp->numel > 1;
    int64_t run = per_group ? (zp_inner > 0 ? zp_inner : 1) : (w->numel > 0 ? w->numel : 1);
    for (int64_t e0 = 0; e0 < w->numel; e0 += run) {
        int64_t n = w->numel - e0 < run ? w->numel - e0 : run;
        int64_t z = zp ? kn_load_i64(zp->data, zp->dtype, (size_t)(per_group ? (e0 / run) % zp->numel : 0)) : 0;
        if (!shift_run(w, e0, n, z, out + e0)) {
            free(out);
            return NULL;
        }
    }
    return out;
}

/* Shared by both hooks: weight input 3 constant and 8-bit, zero point input 5
 * constant (or absent) of the weight's dtype with 1 or zp_count elements. */
static const kn_tensor *const_weight(const kn_prepare_ctx *pc, const kn_tensor **zp, int rank)
{
    const kn_tensor *w = pc->n_in > 3 ? pc->in_const[3] : NULL;
    if (!w || w->rank != rank || (w->dtype != KN_U8 && w->dtype != KN_I8))
        return NULL;
    *zp = NULL;
    if (input_present(pc, 5)) {
        *zp = pc->in_const[5];
        if (!*zp || (*zp)->dtype != w->dtype || (*zp)->rank > 1)
            return NULL;
    }
    return w;
}

/* Takes ownership of pb and taps (one of them set). */
static int make_state(kn_qpacked_b *pb, int32_t *taps, int64_t k, int64_t n, void **state, kn_error *err)
{
    qgemm_state *s = calloc(1, sizeof *s);
    if (!s) {
        kn_qpacked_b_free(pb);
        free(taps);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory packing a quantized weight");
    }
    s->pb = pb;
    s->taps = taps;
    s->k = k;
    s->n = n;
    *state = s;
    return KN_OK;
}

int kn_qmatmul_prepare(kn_prepare_ctx *pc, void **state)
{
    const kn_tensor *zp, *b = const_weight(pc, &zp, 2);
    if (!b)
        return KN_OK;
    int64_t k = b->dims[0], n = b->dims[1];
    if (k < 1 || n < 1 || (zp && zp->numel != 1 && zp->numel != n))
        return KN_OK;
    int8_t *b8 = kn_qweight_to_int8(b, zp, 1);
    if (!b8)
        return KN_OK;
    kn_qpacked_b *pb = kn_qgemm_pack_b(kn_qgemm_best(), (size_t)k, (size_t)n, b8, (size_t)n, 0);
    free(b8);
    return pb ? make_state(pb, NULL, k, n, state, pc->err) : KN_OK;
}

/* Depthwise weight [C, 1, kh, kw] (group == C) as int32 taps. */
static int depthwise_prepare(kn_prepare_ctx *pc, const kn_tensor *w, const kn_tensor *zp, void **state)
{
    int64_t n = w->dims[0], k = w->dims[2] * w->dims[3];
    int8_t *w8 = kn_qweight_to_int8(w, zp, k);
    int32_t *taps = malloc(sizeof(int32_t) * (size_t)w->numel);
    if (!w8 || !taps) {
        free(w8);
        free(taps);
        return KN_OK;
    }
    for (int64_t e = 0; e < w->numel; e++)
        taps[e] = w8[e];
    free(w8);
    return make_state(NULL, taps, k, n, state, pc->err);
}

int kn_qconv_prepare(kn_prepare_ctx *pc, void **state)
{
    const kn_tensor *zp, *w = const_weight(pc, &zp, 4);
    if (!w)
        return KN_OK;
    int64_t n = w->dims[0], k = n > 0 ? w->numel / n : 0, group = kn_attr_int(pc->node, "group", 1);
    if (k < 1 || (zp && zp->numel != 1 && zp->numel != n))
        return KN_OK;
    if (group > 1 && group == n && w->dims[1] == 1)
        return depthwise_prepare(pc, w, zp, state);
    if (group != 1)
        return KN_OK;
    int64_t ch = w->dims[1], taps = w->dims[2] * w->dims[3];
    int8_t *w8 = kn_qweight_to_int8(w, zp, k), *hwc = taps > 1 ? malloc((size_t)w->numel) : NULL;
    if (!w8 || (taps > 1 && !hwc)) {
        free(w8);
        free(hwc);
        return KN_OK;
    }
    if (taps == 1) { /* 1x1: [N, C] already is B^T */
        kn_qpacked_b *pb = kn_qgemm_pack_b(kn_qgemm_best(), (size_t)k, (size_t)n, w8, (size_t)k, 1);
        free(w8);
        return pb ? make_state(pb, NULL, k, n, state, pc->err) : KN_OK;
    }
    /* [N, C, kh, kw] -> [N, kh, kw, C] (the im2col order), which is B^T: packed with trans_b */
    for (int64_t m = 0; m < n; m++)
        for (int64_t ci = 0; ci < ch; ci++)
            for (int64_t t = 0; t < taps; t++)
                hwc[(m * taps + t) * ch + ci] = w8[(m * ch + ci) * taps + t];
    kn_qpacked_b *pb = kn_qgemm_pack_b(kn_qgemm_best(), (size_t)k, (size_t)n, hwc, (size_t)k, 1);
    free(w8);
    free(hwc);
    return pb ? make_state(pb, NULL, k, n, state, pc->err) : KN_OK;
}

/* ---------------------------------------------------------------- shared run-time parts */

static bool per_tensor(const kn_op_ctx *c, int is, int iz)
{
    const kn_tensor *z = kn_op_in(c, iz);
    return c->in[is]->numel == 1 && (!z || z->numel == 1);
}

static int32_t zero_point(const kn_op_ctx *c, int iz)
{
    const kn_tensor *z = kn_op_in(c, iz);
    return z ? (int32_t)kn_load_i64(z->data, z->dtype, 0) : 0;
}

static float scale_at(const kn_tensor *s, int64_t i)
{
    return (float)kn_load_f64(s->data, s->dtype, (size_t)(s->numel == 1 ? 0 : i));
}

/* mul[j] = a_scale * w_scale[j] / y_scale for the n output columns; false when one
 * is not finite (the reference handles such scales). */
static bool requant_muls(const kn_op_ctx *c, int64_t n, float *mul)
{
    const kn_tensor *sa = c->in[1], *sw = c->in[4], *sy = c->in[6];
    float a = scale_at(sa, 0), y = scale_at(sy, 0);
    for (int64_t j = 0; j < n; j++) {
        mul[j] = kn_requant_mul(sa->dtype, a, scale_at(sw, j), y);
        if (!isfinite(mul[j]))
            return false;
    }
    return true;
}

/* The run-time weight input still matches what prepare packed, scales are per
 * tensor for input and output, the weight scale per tensor or per column. */
static const qgemm_state *usable_state(const kn_op_ctx *c, bool depthwise, int64_t k, int64_t n)
{
    const qgemm_state *s = c->state;
    if (!s || (s->taps != NULL) != depthwise || s->k != k || s->n != n || !per_tensor(c, 1, 2) || !per_tensor(c, 6, 7))
        return NULL;
    if (c->in[4]->numel != 1 && c->in[4]->numel != n)
        return NULL;
    return s;
}

static size_t round64(size_t bytes)
{
    return (bytes + 63) & ~(size_t)63;
}

/* ---------------------------------------------------------------- QLinearMatMul */

/* dst = src + 128 (int8 -> uint8 with the products unchanged). */
static void shift_int8(uint8_t *dst, const int8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint8_t)src[i] ^ 0x80u;
}

int kn_qmatmul_fast(kn_op_ctx *c, kn_tensor *y, bool *done)
{
    *done = false;
    const kn_tensor *a = c->in[0], *b = c->in[3];
    if (b->rank != 2)
        return KN_OK;
    int64_t k = b->dims[0], n = b->dims[1];
    const qgemm_state *s = usable_state(c, false, k, n);
    if (!s || a->dims[a->rank - 1] != k)
        return KN_OK;
    size_t rows = (size_t)(a->numel / k), mul_bytes = round64(sizeof(float) * (size_t)n);
    bool shift = a->dtype == KN_I8;
    char *scratch = kn_op_scratch(c, mul_bytes + (shift ? (size_t)a->numel : 0));
    if (!scratch)
        return c->err->code;
    float *mul = (float *)scratch;
    if (!requant_muls(c, n, mul))
        return KN_OK;
    const uint8_t *A = a->data;
    int32_t a_zero = zero_point(c, 2);
    if (shift) {
        uint8_t *sh = (uint8_t *)scratch + mul_bytes;
        shift_int8(sh, a->data, (size_t)a->numel);
        A = sh;
        a_zero += 128;
    }
    kn_qgemm_output o = {.kind = y->dtype == KN_U8 ? KN_QOUT_UINT8 : KN_QOUT_INT8, .out = y->data,
                         .ldc = (size_t)n, .a_scale = 1.0f, .b_scale = mul, .b_scale_per_col = 1,
                         .y_scale = 1.0f, .y_zero = zero_point(c, 7)};
    int rc = kn_qgemm_run(c->pool, rows, (size_t)n, (size_t)k, A, (size_t)k, (uint8_t)a_zero, s->pb, &o);
    if (rc)
        return kn_fail(c->err, rc, "QLinearMatMul: integer GEMM failed");
    *done = true;
    return KN_OK;
}

/* ---------------------------------------------------------------- QLinearConv */

enum { PIXEL_BLOCK = 1024 }; /* output pixels per im2col block */

typedef struct qconv_job {
    const kn_spatial_geom *sp;
    int64_t ch;               /* input channels */
    const uint8_t *x;         /* this image, [ch, H, W] */
    uint8_t *hwc;             /* the image as [H, W, ch], int8 shifted */
    uint8_t flip, pad;        /* value xor (int8 shift) and padding value, both in uint8 terms */
    int64_t p0;               /* first pixel of the block */
    uint8_t *cols;            /* im2col block: [pixels, ldk] */
    size_t ldk;               /* its row stride: K, or K rounded up to 4 (zero tail) */
    const int32_t *acc;       /* GEMM result: [pixels, N] */
    int64_t pixels, n;
    const int32_t *bias;      /* n or NULL */
    const float *mul;
    int32_t y_zero;
    requant_row_fn requant;
    uint8_t *tiles;           /* per thread: REQUANT_TILE x n bytes at tile_stride */
    size_t tile_stride;
    void *y;                  /* this image's output [n, out pixels] */
    kn_dtype yt;
} qconv_job;

/* Taps t in [*lo, *hi) whose input coordinate first + t * dil lies in [0, size). */
static void valid_taps(int64_t first, int64_t dil, int64_t size, int64_t taps, int64_t *lo, int64_t *hi)
{
    *lo = first >= 0 ? 0 : (-first + dil - 1) / dil;
    *hi = size - 1 - first < 0 ? 0 : (size - 1 - first) / dil + 1;
    if (*hi > taps)
        *hi = taps;
    if (*lo > *hi)
        *lo = *hi;
}

/* One im2col row: the K = kh*kw*ch input values under output pixel p, read from
 * the image transposed to [H, W, ch] (values already shifted for int8). */
static void im2col_row(const qconv_job *j, int64_t p, uint8_t *row)
{
    const kn_spatial_geom *g = j->sp;
    const int64_t kh = g->k[0], kw = g->k[1], w = g->in[1], dil_y = g->dil[0], dil_x = g->dil[1];
    const size_t ch = (size_t)j->ch;
    int64_t oy = p / g->out[1], ox = p % g->out[1];
    int64_t y0 = oy * g->stride[0] - g->pad_b[0], x0 = ox * g->stride[1] - g->pad_b[1];
    int64_t ky_lo, ky_hi, kx_lo, kx_hi;
    valid_taps(y0, dil_y, g->in[0], kh, &ky_lo, &ky_hi);
    valid_taps(x0, dil_x, w, kw, &kx_lo, &kx_hi);
    for (int64_t ky = 0; ky < kh; ky++) {
        bool row_in = ky >= ky_lo && ky < ky_hi;
        const uint8_t *line = j->hwc + (size_t)((y0 + ky * dil_y) * w) * ch;
        if (row_in && dil_x == 1 && kx_lo == 0 && kx_hi == kw) { /* the kernel row in one run */
            memcpy(row, line + (size_t)x0 * ch, (size_t)kw * ch);
            row += (size_t)kw * ch;
            continue;
        }
        for (int64_t kx = 0; kx < kw; kx++, row += ch) {
            if (row_in && kx >= kx_lo && kx < kx_hi)
                memcpy(row, line + (size_t)(x0 + kx * dil_x) * ch, ch);
            else
                memset(row, j->pad, ch);
        }
    }
}

/* hwc[pixel, ci] = x[ci, pixel] ^ flip for pixels [begin, end) of the image. */
static void to_hwc_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const qconv_job *j = ctx;
    (void)thread_index;
    const size_t ch = (size_t)j->ch, plane = (size_t)j->sp->in_size;
    const uint8_t flip = j->flip;
    for (size_t ci = 0; ci < ch; ci++) {
        const uint8_t *src = j->x + ci * plane;
        for (int64_t q = begin; q < end; q++)
            j->hwc[(size_t)q * ch + ci] = src[q] ^ flip;
    }
}

static void im2col_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const qconv_job *j = ctx;
    (void)thread_index;
    size_t K = (size_t)(j->ch * j->sp->k_size);
    for (int64_t i = begin; i < end; i++) {
        im2col_row(j, j->p0 + i, j->cols + (size_t)i * j->ldk);
        memset(j->cols + (size_t)i * j->ldk + K, 0, j->ldk - K);
    }
}

enum { REQUANT_TILE = 64 }; /* pixels per tile of the transposing requantization */

/* Pixel tiles [begin, end) of the block: requantize each pixel's row of acc (all
 * channels, contiguous) into this thread's tile, then write the tile transposed
 * into NCHW. */
static void requant_tiles(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const qconv_job *j = ctx;
    uint8_t *tile = j->tiles + (size_t)thread_index * j->tile_stride;
    size_t n = (size_t)j->n, out_size = (size_t)j->sp->out_size;
    for (int64_t t = begin; t < end; t++) {
        int64_t i0 = t * REQUANT_TILE, rows = j->pixels - i0 < REQUANT_TILE ? j->pixels - i0 : REQUANT_TILE;
        for (int64_t r = 0; r < rows; r++)
            j->requant(j->acc + (size_t)(i0 + r) * n, j->n, j->bias, j->mul, 1, j->y_zero, j->yt == KN_U8,
                       tile + (size_t)r * n);
        uint8_t *y = (uint8_t *)j->y + (size_t)(j->p0 + i0);
        for (size_t m = 0; m < n; m++)
            for (int64_t r = 0; r < rows; r++)
                y[m * out_size + (size_t)r] = tile[(size_t)r * n + m];
    }
}

/* One image: blocks of pixels through im2col, the GEMM and the requantization. */
static int qconv_image(kn_op_ctx *c, const qgemm_state *s, qconv_job *j)
{
    size_t K = (size_t)s->k;
    int32_t a_zero = j->pad;
    kn_qgemm_output o = {.kind = KN_QOUT_INT32, .out = (void *)j->acc, .ldc = (size_t)j->n};
    kn_parallel_for(c->pool, j->sp->in_size, 256, to_hwc_range, j);
    for (j->p0 = 0; j->p0 < j->sp->out_size; j->p0 += PIXEL_BLOCK) {
        j->pixels = j->sp->out_size - j->p0 < PIXEL_BLOCK ? j->sp->out_size - j->p0 : PIXEL_BLOCK;
        kn_parallel_for(c->pool, j->pixels, 16, im2col_range, j);
        int rc = kn_qgemm_run(c->pool, (size_t)j->pixels, (size_t)j->n, K, j->cols, K, (uint8_t)a_zero,
                              s->pb, &o);
        if (rc)
            return kn_fail(c->err, rc, "QLinearConv: integer GEMM failed");
        kn_parallel_for(c->pool, (j->pixels + REQUANT_TILE - 1) / REQUANT_TILE, 1, requant_tiles, j);
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- depthwise QLinearConv */

/* Depthwise (group == channels, one filter each): a direct loop, the GEMM's N would
 * be 1.  Every tap inside the input adds (x - x_zero) * w; taps over the padding add
 * nothing, as in the reference. */
/* acc[i] += (src[i] (xor flip) - x_zero) * t for i in [0, n). */
typedef void (*dw_tap_fn)(int32_t *restrict acc, const uint8_t *restrict src, int64_t n, uint8_t flip,
                          int32_t x_zero, int32_t t);

typedef struct dw_job {
    const kn_spatial_geom *sp;
    const qgemm_state *s;
    int64_t ch;
    const uint8_t *x;
    void *y;
    uint8_t flip;             /* 0x80 for int8 input */
    int32_t x_zero;           /* in uint8 terms */
    const int32_t *bias;
    const float *mul;
    int32_t y_zero;
    kn_dtype yt;
    int32_t *acc;             /* per thread: acc_stride int32 */
    size_t acc_stride;
    dw_tap_fn tap;            /* stride-1 tap loop */
    requant_row_fn requant;
} dw_job;

/* One tap over a run of output columns at stride 1 (the common case): plain C. */
static void dw_tap_generic(int32_t *restrict acc, const uint8_t *restrict src, int64_t n, uint8_t flip,
                           int32_t x_zero, int32_t t)
{
    for (int64_t ox = 0; ox < n; ox++)
        acc[ox] += ((int32_t)(src[ox] ^ flip) - x_zero) * t;
}

static void requant_row_generic(const int32_t *acc, int64_t n, const int32_t *bias, const float *mul, int64_t step,
                                int32_t y_zero, bool is_u8, void *out)
{
    int64_t lo = is_u8 ? 0 : -128, hi = is_u8 ? 255 : 127;
    for (int64_t i = 0; i < n; i++) {
        int64_t bv = bias ? bias[i * step] : 0;
        int64_t v = kn_requant_value((int64_t)acc[i] + bv, mul[i * step], y_zero, lo, hi);
        if (is_u8)
            ((uint8_t *)out)[i] = (uint8_t)v;
        else
            ((int8_t *)out)[i] = (int8_t)v;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* The same, 8 columns at a time with AVX2 (identical integer results). */
__attribute__((target("avx2"))) static void dw_tap_avx2(int32_t *restrict acc, const uint8_t *restrict src,
                                                        int64_t n, uint8_t flip, int32_t x_zero, int32_t t)
{
    __m256i vf = _mm256_set1_epi32(flip), vz = _mm256_set1_epi32(x_zero), vt = _mm256_set1_epi32(t);
    int64_t ox = 0;
    for (; ox + 8 <= n; ox += 8) {
        __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + ox)));
        x = _mm256_sub_epi32(_mm256_xor_si256(x, vf), vz);
        __m256i a = _mm256_loadu_si256((const __m256i *)(acc + ox));
        _mm256_storeu_si256((__m256i *)(acc + ox), _mm256_add_epi32(a, _mm256_mullo_epi32(x, vt)));
    }
    dw_tap_generic(acc + ox, src + ox, n - ox, flip, x_zero, t);
}

/* requant_row_generic with AVX2, 8 values at a time: the same float operations
 * (convert, multiply, round half to even, add the zero point, clamp with NaN -> lo);
 * the bias is added in int32 (callers make sure it cannot overflow). */
__attribute__((target("avx2"))) static void requant_row_avx2(const int32_t *acc, int64_t n, const int32_t *bias,
                                                             const float *mul, int64_t step, int32_t y_zero,
                                                             bool is_u8, void *out)
{
    float lo = is_u8 ? 0.0f : -128.0f, hi = is_u8 ? 255.0f : 127.0f;
    __m256i vb = _mm256_set1_epi32(bias ? bias[0] : 0);
    __m256 vm = _mm256_set1_ps(mul[0]), vz = _mm256_set1_ps((float)y_zero);
    __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (step) {
            vb = bias ? _mm256_loadu_si256((const __m256i *)(bias + i)) : vb;
            vm = _mm256_loadu_ps(mul + i);
        }
        __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(acc + i)), vb);
        __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), vm),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, vz), vlo), vhi); /* max: NaN -> lo */
        __m256i v = _mm256_cvttps_epi32(q);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        __m128i bytes = is_u8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
        _mm_storel_epi64((__m128i *)((uint8_t *)out + i), bytes);
    }
    requant_row_generic(acc + i, n - i, bias && step ? bias + i : bias, step ? mul + i : mul, step, y_zero, is_u8,
                        (uint8_t *)out + i);
}
#define HAVE_QUANT_AVX2 1
#endif

/* The row requantization for this CPU within the KILN_ISA cap (vectors only when
 * bias_ok: acc + bias fits int32). */
static requant_row_fn requant_row_pick(bool bias_ok)
{
#ifdef HAVE_QUANT_AVX2
    if (bias_ok && kn_cpu_isa() >= KN_ISA_AVX2)
        return requant_row_avx2;
#endif
    return requant_row_generic;
}

/* The tap loop and row requantization for this CPU within the KILN_ISA cap. */
static void dw_pick_kernels(dw_job *j, bool bias_ok)
{
    j->tap = dw_tap_generic;
    j->requant = requant_row_pick(bias_ok);
#ifdef HAVE_QUANT_AVX2
    if (kn_cpu_isa() >= KN_ISA_AVX2)
        j->tap = dw_tap_avx2;
#endif
}

/* acc[0, OW) = the integer sums of output row oy of one channel. */
static void dw_row(const dw_job *j, const uint8_t *plane, const int32_t *taps, int64_t oy, int32_t *acc)
{
    const kn_spatial_geom *g = j->sp;
    int64_t ow = g->out[1];
    memset(acc, 0, sizeof(int32_t) * (size_t)ow);
    for (int64_t ky = 0; ky < g->k[0]; ky++) {
        int64_t iy = oy * g->stride[0] - g->pad_b[0] + ky * g->dil[0];
        if (iy < 0 || iy >= g->in[0])
            continue;
        const uint8_t *line = plane + iy * g->in[1];
        for (int64_t kx = 0; kx < g->k[1]; kx++) {
            int64_t off = kx * g->dil[1] - g->pad_b[1], lo, hi;
            int32_t t = taps[ky * g->k[1] + kx];
            valid_taps(off, g->stride[1], g->in[1], ow, &lo, &hi);
            if (g->stride[1] == 1 && lo < hi)
                j->tap(acc + lo, line + lo + off, hi - lo, j->flip, j->x_zero, t);
            else
                for (int64_t ox = lo; ox < hi; ox++)
                    acc[ox] += ((int32_t)(line[ox * g->stride[1] + off] ^ j->flip) - j->x_zero) * t;
        }
    }
}

/* Planes [begin, end) of batch x channels. */
static void dw_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dw_job *j = ctx;
    const kn_spatial_geom *g = j->sp;
    int32_t *acc = j->acc + (size_t)thread_index * j->acc_stride;
    for (int64_t p = begin; p < end; p++) {
        int64_t ch = p % j->ch;
        int32_t bv = j->bias ? j->bias[ch] : 0;
        const uint8_t *plane = j->x + (size_t)(p * g->in_size);
        const int32_t *taps = j->s->taps + ch * j->s->k;
        for (int64_t oy = 0; oy < g->out[0]; oy++) {
            dw_row(j, plane, taps, oy, acc);
            size_t at = (size_t)(p * g->out_size + oy * g->out[1]);
            j->requant(acc, g->out[1], &bv, &j->mul[ch], 0, j->y_zero, j->yt == KN_U8, (uint8_t *)j->y + at);
        }
    }
}

/* Taps per filter past which int32 sums could overflow (255 * 128 per tap). */
#define DW_MAX_TAPS 65536

/* Every acc + bias[m] stays inside int32 (|acc| <= taps * 255 * 128): the vector
 * requantization adds in int32. */
static bool bias_fits(const kn_tensor *bias, int64_t taps)
{
    int64_t room = INT32_MAX - taps * 255 * 128;
    for (int64_t m = 0; bias && m < bias->numel; m++) {
        int64_t b = ((const int32_t *)bias->data)[m];
        if (b > room || -b > room)
            return false;
    }
    return true;
}

static int qconv_depthwise(kn_op_ctx *c, const kn_spatial_geom *sp, kn_tensor *y, bool *done)
{
    const kn_tensor *x = c->in[0], *bias = kn_op_in(c, 8);
    int64_t ch = x->dims[1];
    const qgemm_state *s = usable_state(c, true, sp->k_size, ch);
    if (!s || s->k > DW_MAX_TAPS)
        return KN_OK;
    size_t mul_bytes = round64(sizeof(float) * (size_t)ch);
    size_t acc_stride = round64(sizeof(int32_t) * (size_t)sp->out[1]) / sizeof(int32_t);
    size_t threads = (size_t)kn_threadpool_size(c->pool);
    char *scratch = kn_op_scratch(c, mul_bytes + threads * acc_stride * sizeof(int32_t));
    if (!scratch)
        return c->err->code;
    float *mul = (float *)scratch;
    if (!requant_muls(c, ch, mul))
        return KN_OK;
    uint8_t flip = x->dtype == KN_I8 ? 0x80 : 0;
    dw_job j = {.sp = sp, .s = s, .ch = ch, .x = x->data, .y = y->data, .flip = flip,
                .x_zero = (uint8_t)zero_point(c, 2) ^ flip, .bias = bias ? bias->data : NULL,
                .mul = mul, .y_zero = zero_point(c, 7), .yt = y->dtype,
                .acc = (int32_t *)(scratch + mul_bytes), .acc_stride = acc_stride};
    dw_pick_kernels(&j, bias_fits(bias, s->k));
    kn_parallel_for(c->pool, x->dims[0] * ch, 1, dw_planes, &j);
    *done = true;
    return KN_OK;
}

/* ---------------------------------------------------------------- channels-last QLinearConv */

/* [N, H, W, C] in and out: no transposes.  A pointwise convolution (1x1, stride 1,
 * no padding) is one GEMM over every pixel of the batch, reading x in place; others
 * go through im2col blocks of one image.  The GEMM's output stage adds the bias and
 * requantizes straight into y's rows (ldc = output channels), with the same float
 * operations as kn_requant_value. */
static bool pointwise(const kn_spatial_geom *sp)
{
    return sp->k_size == 1 && sp->stride[0] == 1 && sp->stride[1] == 1 && sp->pad_b[0] == 0 && sp->pad_b[1] == 0 &&
           sp->pad_e[0] == 0 && sp->pad_e[1] == 0;
}

static int qconv_last_blocks(kn_op_ctx *c, const qgemm_state *s, qconv_job *j, const uint8_t *x, int64_t images,
                             kn_qgemm_output *o)
{
    size_t K = (size_t)s->k, in_image = (size_t)(j->ch * j->sp->in_size);
    uint8_t *y = o->out;
    for (int64_t b = 0; b < images; b++) {
        j->hwc = (uint8_t *)(x + (size_t)b * in_image); /* read only */
        for (j->p0 = 0; j->p0 < j->sp->out_size; j->p0 += PIXEL_BLOCK) {
            j->pixels = j->sp->out_size - j->p0 < PIXEL_BLOCK ? j->sp->out_size - j->p0 : PIXEL_BLOCK;
            kn_parallel_for(c->pool, j->pixels, 16, im2col_range, j);
            o->out = y + (size_t)((b * j->sp->out_size + j->p0) * j->n);
            int rc = kn_qgemm_run(c->pool, (size_t)j->pixels, (size_t)j->n, K, j->cols, j->ldk, j->pad, s->pb, o);
            if (rc)
                return kn_fail(c->err, rc, "QLinearConv: integer GEMM failed");
        }
    }
    return KN_OK;
}

static int qconv_last(kn_op_ctx *c, const kn_spatial_geom *sp, kn_tensor *y, bool *done)
{
    const kn_tensor *x = c->in[0], *w = c->in[3], *bias = kn_op_in(c, 8);
    int64_t n = w->dims[0], ch = x->dims[x->rank - 1];
    const qgemm_state *s = usable_state(c, false, ch * sp->k_size, n);
    if (!s || !bias_fits(bias, s->k))
        return KN_OK;
    bool shift = x->dtype == KN_I8, direct = pointwise(sp);
    size_t mul_bytes = round64(sizeof(float) * (size_t)n), shift_bytes = shift ? round64((size_t)x->numel) : 0;
    size_t ldk = ((size_t)s->k + 3) & ~(size_t)3;
    size_t cols_bytes = direct ? 0 : round64((size_t)PIXEL_BLOCK * ldk);
    char *scratch = kn_op_scratch(c, mul_bytes + shift_bytes + cols_bytes);
    if (!scratch)
        return c->err->code;
    float *mul = (float *)scratch;
    if (!requant_muls(c, n, mul))
        return KN_OK;
    const uint8_t *X = x->data;
    uint8_t pad = (uint8_t)zero_point(c, 2) ^ (shift ? 0x80 : 0);
    if (shift) {
        shift_int8((uint8_t *)scratch + mul_bytes, x->data, (size_t)x->numel);
        X = (uint8_t *)scratch + mul_bytes;
    }
    kn_qgemm_output o = {.kind = y->dtype == KN_U8 ? KN_QOUT_UINT8 : KN_QOUT_INT8, .out = y->data,
                         .ldc = (size_t)n, .a_scale = 1.0f, .b_scale = mul, .b_scale_per_col = 1,
                         .y_scale = 1.0f, .y_zero = zero_point(c, 7), .bias_i32 = bias ? bias->data : NULL};
    int rc;
    if (direct) {
        rc = kn_qgemm_run(c->pool, (size_t)(x->numel / ch), (size_t)n, (size_t)ch, X, (size_t)ch, pad, s->pb, &o);
        rc = rc ? kn_fail(c->err, rc, "QLinearConv: integer GEMM failed") : KN_OK;
    } else {
        qconv_job j = {.sp = sp, .ch = ch, .pad = pad, .n = n, .ldk = ldk,
                       .cols = (uint8_t *)scratch + mul_bytes + shift_bytes};
        rc = qconv_last_blocks(c, s, &j, X, x->dims[0], &o);
    }
    *done = rc == KN_OK;
    return rc;
}

/* Channels-last depthwise: per output pixel, the valid taps' input pixels (channel
 * vectors) times the taps' per-channel weights (rearranged to [k, C] per call) are
 * summed per channel in registers, 8 (AVX2) or 16 (AVX-512) channels at a time,
 * and the pixel's channels are requantized as one row. */
#define DWL_MAX_TAPS 121 /* kernels up to 11 x 11 (the pointers live on the stack); larger: the reference */

typedef void (*dwl_pixel_fn)(int32_t *restrict acc, const uint8_t *const *src, const int32_t *const *w, int taps,
                             int64_t ch, uint8_t flip, int32_t x_zero);

typedef struct dwl_job {
    const kn_spatial_geom *sp;
    const uint8_t *x;
    uint8_t *y;
    int64_t ch;
    uint8_t flip;
    int32_t x_zero;           /* in uint8 terms */
    const int32_t *taps;      /* [k, ch] */
    const int32_t *bias;
    const float *mul;
    int32_t y_zero;
    bool u8;
    int32_t *acc;             /* per thread: acc_stride int32 */
    size_t acc_stride;
    dwl_pixel_fn pixel;
    requant_row_fn requant;
    ptrdiff_t off[DWL_MAX_TAPS];      /* tap t's input pixel relative to the window's corner */
    const int32_t *wrow[DWL_MAX_TAPS]; /* tap t's weight row */
} dwl_job;

/* acc[i] for channels [from, ch). */
static void dwl_channels(int32_t *restrict acc, const uint8_t *const *src, const int32_t *const *w, int taps,
                         int64_t from, int64_t ch, uint8_t flip, int32_t x_zero)
{
    for (int64_t i = from; i < ch; i++) {
        int32_t sum = 0;
        for (int t = 0; t < taps; t++)
            sum += ((int32_t)(src[t][i] ^ flip) - x_zero) * w[t][i];
        acc[i] = sum;
    }
}

static void dwl_pixel_generic(int32_t *restrict acc, const uint8_t *const *src, const int32_t *const *w, int taps,
                              int64_t ch, uint8_t flip, int32_t x_zero)
{
    dwl_channels(acc, src, w, taps, 0, ch, flip, x_zero);
}

#ifdef HAVE_QUANT_AVX2
__attribute__((target("avx2"))) static void dwl_pixel_avx2(int32_t *restrict acc, const uint8_t *const *src,
                                                           const int32_t *const *w, int taps, int64_t ch,
                                                           uint8_t flip, int32_t x_zero)
{
    __m256i vf = _mm256_set1_epi32(flip), vz = _mm256_set1_epi32(x_zero);
    int64_t i = 0;
    for (; i + 8 <= ch; i += 8) {
        __m256i sum = _mm256_setzero_si256();
        for (int t = 0; t < taps; t++) {
            __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src[t] + i)));
            x = _mm256_sub_epi32(_mm256_xor_si256(x, vf), vz);
            sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(x, _mm256_loadu_si256((const __m256i *)(w[t] + i))));
        }
        _mm256_storeu_si256((__m256i *)(acc + i), sum);
    }
    dwl_channels(acc, src, w, taps, i, ch, flip, x_zero);
}

/* 16 channels at a time, the last group masked. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void dwl_pixel_avx512(
    int32_t *restrict acc, const uint8_t *const *src, const int32_t *const *w, int taps, int64_t ch, uint8_t flip,
    int32_t x_zero)
{
    __m512i vf = _mm512_set1_epi32(flip), vz = _mm512_set1_epi32(x_zero);
    for (int64_t i = 0; i < ch; i += 16) {
        __mmask16 mk = ch - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ch - i)) - 1u);
        __m512i sum = _mm512_setzero_si512();
        for (int t = 0; t < taps; t++) {
            __m512i x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, src[t] + i));
            x = _mm512_sub_epi32(_mm512_xor_si512(x, vf), vz);
            sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(x, _mm512_maskz_loadu_epi32(mk, w[t] + i)));
        }
        _mm512_mask_storeu_epi32(acc + i, mk, sum);
    }
}
#endif

/* The pixel kernel for this CPU within the KILN_ISA cap. */
static dwl_pixel_fn dwl_pixel_pick(void)
{
#ifdef HAVE_QUANT_AVX2
    if (kn_cpu_isa() >= KN_ISA_AVX512)
        return dwl_pixel_avx512;
    if (kn_cpu_isa() >= KN_ISA_AVX2)
        return dwl_pixel_avx2;
#endif
    return dwl_pixel_generic;
}

/* Tap offsets and weight rows, for windows that lie inside the image. */
static void dwl_prepare_taps(dwl_job *j)
{
    const kn_spatial_geom *g = j->sp;
    for (int64_t ky = 0, t = 0; ky < g->k[0]; ky++)
        for (int64_t kx = 0; kx < g->k[1]; kx++, t++) {
            j->off[t] = (ptrdiff_t)((ky * g->dil[0] * g->in[1] + kx * g->dil[1]) * j->ch);
            j->wrow[t] = j->taps + (size_t)t * (size_t)j->ch;
        }
}

/* The taps of output pixel (b, oy, ox) that land inside the image: their input
 * pixels and weight rows; returns how many. */
static int dwl_valid_taps(const dwl_job *j, int64_t b, int64_t oy, int64_t ox, const uint8_t **src,
                          const int32_t **w)
{
    const kn_spatial_geom *g = j->sp;
    int64_t iy0 = oy * g->stride[0] - g->pad_b[0], ix0 = ox * g->stride[1] - g->pad_b[1];
    int64_t taps = g->k[0] * g->k[1];
    if (iy0 >= 0 && ix0 >= 0 && iy0 + (g->k[0] - 1) * g->dil[0] < g->in[0] &&
        ix0 + (g->k[1] - 1) * g->dil[1] < g->in[1]) { /* inside: every tap */
        const uint8_t *corner = j->x + (size_t)((b * g->in[0] + iy0) * g->in[1] + ix0) * (size_t)j->ch;
        for (int64_t t = 0; t < taps; t++) {
            src[t] = corner + j->off[t];
            w[t] = j->wrow[t];
        }
        return (int)taps;
    }
    int n = 0;
    for (int64_t ky = 0; ky < g->k[0]; ky++) {
        int64_t iy = iy0 + ky * g->dil[0];
        for (int64_t kx = 0; kx < g->k[1] && iy >= 0 && iy < g->in[0]; kx++) {
            int64_t ix = ix0 + kx * g->dil[1];
            if (ix < 0 || ix >= g->in[1])
                continue;
            src[n] = j->x + (size_t)((b * g->in[0] + iy) * g->in[1] + ix) * (size_t)j->ch;
            w[n++] = j->wrow[ky * g->k[1] + kx];
        }
    }
    return n;
}

static void dwl_pixels(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dwl_job *j = ctx;
    const kn_spatial_geom *g = j->sp;
    int32_t *acc = j->acc + (size_t)thread_index * j->acc_stride;
    const uint8_t *src[DWL_MAX_TAPS];
    const int32_t *w[DWL_MAX_TAPS];
    int64_t b = begin / g->out_size, oy = begin % g->out_size / g->out[1], ox = begin % g->out[1];
    for (int64_t o = begin; o < end; o++) {
        int n = dwl_valid_taps(j, b, oy, ox, src, w);
        j->pixel(acc, src, w, n, j->ch, j->flip, j->x_zero);
        j->requant(acc, j->ch, j->bias, j->mul, 1, j->y_zero, j->u8, j->y + (size_t)o * (size_t)j->ch);
        if (++ox == g->out[1]) {
            ox = 0;
            if (++oy == g->out[0])
                oy = 0, b++;
        }
    }
    kn_cpu_clear_upper();
}

static int qconv_last_depthwise(kn_op_ctx *c, const kn_spatial_geom *sp, kn_tensor *y, bool *done)
{
    const kn_tensor *x = c->in[0], *bias = kn_op_in(c, 8);
    int64_t ch = x->dims[x->rank - 1];
    const qgemm_state *s = usable_state(c, true, sp->k_size, ch);
    if (!s || s->k > DWL_MAX_TAPS)
        return KN_OK;
    size_t threads = (size_t)kn_threadpool_size(c->pool), mul_bytes = round64(sizeof(float) * (size_t)ch);
    size_t taps_bytes = round64(sizeof(int32_t) * (size_t)(ch * s->k)), acc_stride = round64(sizeof(int32_t) * (size_t)ch) / 4;
    char *scratch = kn_op_scratch(c, mul_bytes + taps_bytes + threads * acc_stride * sizeof(int32_t));
    if (!scratch)
        return c->err->code;
    float *mul = (float *)scratch;
    if (!requant_muls(c, ch, mul))
        return KN_OK;
    int32_t *taps = (int32_t *)(scratch + mul_bytes);
    for (int64_t m = 0; m < ch; m++)
        for (int64_t t = 0; t < s->k; t++)
            taps[t * ch + m] = s->taps[m * s->k + t];
    uint8_t flip = x->dtype == KN_I8 ? 0x80 : 0;
    dwl_job j = {.sp = sp, .x = x->data, .y = y->data, .ch = ch, .flip = flip,
                 .x_zero = (uint8_t)zero_point(c, 2) ^ flip, .taps = taps, .bias = bias ? bias->data : NULL,
                 .mul = mul, .y_zero = zero_point(c, 7), .u8 = y->dtype == KN_U8,
                 .acc = (int32_t *)(scratch + mul_bytes + taps_bytes), .acc_stride = acc_stride,
                 .pixel = dwl_pixel_pick(), .requant = requant_row_pick(bias_fits(bias, s->k))};
    dwl_prepare_taps(&j);
    kn_parallel_for(c->pool, x->dims[0] * sp->out_size, 16, dwl_pixels, &j);
    *done = true;
    return KN_OK;
}

int kn_qconv_fast(kn_op_ctx *c, const kn_spatial_geom *sp, int64_t group, bool channels_last, kn_tensor *y,
                  bool *done)
{
    *done = false;
    const kn_tensor *x = c->in[0], *w = c->in[3], *bias = kn_op_in(c, 8);
    if (sp->nsp != 2 || sp->out_size < 1)
        return KN_OK;
    if (channels_last) {
        if (group == 1)
            return qconv_last(c, sp, y, done);
        bool depthwise = group == x->dims[x->rank - 1] && group == w->dims[0] && w->dims[1] == 1;
        return depthwise ? qconv_last_depthwise(c, sp, y, done) : KN_OK;
    }
    if (group > 1)
        return group == x->dims[1] && group == w->dims[0] ? qconv_depthwise(c, sp, y, done) : KN_OK;
    int64_t n = w->dims[0], ch = x->dims[1];
    const qgemm_state *s = usable_state(c, false, ch * sp->k_size, n);
    if (!s)
        return KN_OK;
    size_t mul_bytes = round64(sizeof(float) * (size_t)n);
    size_t cols_bytes = round64((size_t)PIXEL_BLOCK * (size_t)s->k);
    size_t acc_bytes = round64(sizeof(int32_t) * (size_t)PIXEL_BLOCK * (size_t)n);
    size_t hwc_bytes = round64((size_t)(ch * sp->in_size));
    size_t tile_stride = round64((size_t)REQUANT_TILE * (size_t)n);
    size_t threads = (size_t)kn_threadpool_size(c->pool);
    char *scratch = kn_op_scratch(c, mul_bytes + cols_bytes + acc_bytes + hwc_bytes + threads * tile_stride);
    if (!scratch)
        return c->err->code;
    float *mul = (float *)scratch;
    if (!requant_muls(c, n, mul))
        return KN_OK;
    uint8_t flip = x->dtype == KN_I8 ? 0x80 : 0;
    qconv_job j = {.sp = sp, .ch = ch, .flip = flip, .pad = (uint8_t)zero_point(c, 2) ^ flip,
                   .cols = (uint8_t *)scratch + mul_bytes, .ldk = (size_t)s->k,
                   .acc = (const int32_t *)(scratch + mul_bytes + cols_bytes), .n = n,
                   .hwc = (uint8_t *)scratch + mul_bytes + cols_bytes + acc_bytes,
                   .bias = bias ? bias->data : NULL, .mul = mul, .y_zero = zero_point(c, 7),
                   .yt = y->dtype, .requant = requant_row_pick(bias_fits(bias, s->k)),
                   .tiles = (uint8_t *)scratch + mul_bytes + cols_bytes + acc_bytes + hwc_bytes,
                   .tile_stride = tile_stride};
    size_t in_image = (size_t)(ch * sp->in_size), out_image = (size_t)(n * sp->out_size);
    for (int64_t b = 0; b < x->dims[0]; b++) {
        j.x = (const uint8_t *)x->data + (size_t)b * in_image;
        j.y = (char *)y->data + (size_t)b * out_image;
        int rc = qconv_image(c, s, &j);
        if (rc)
            return rc;
    }
    *done = true;
    return KN_OK;
}
