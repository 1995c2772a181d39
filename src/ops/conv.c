/* conv.c - convolution operators: Conv, FusedConv (com.microsoft), ConvTranspose,
 * ConvInteger, DeformConv, CausalConvWithState.
 *
 * All of them work on N-D inputs laid out [N, C, d1..dk] with weights
 * [M, C/group, k1..kk] (ConvTranspose: [C, M/group, k1..kk]).
 *
 * Float 1-D and 2-D Conv / FusedConv / ConvTranspose take the fast kernels of
 * kernels/conv_kernels.h (depthwise plane kernel, pointwise GEMM, im2col tiles +
 * packed-A GEMM, GEMM + col2im), threaded over the session pool; their prepare
 * hook packs constant float32 weights once per model.  FusedConv adds its optional
 * input Z and applies its activation (Relu, LeakyRelu, Sigmoid, Tanh, Clip,
 * HardSigmoid) on the output.
 *
 * Everything else (3-D and up, float64, ConvInteger, DeformConv, convs too large
 * for the fast paths' scratch) uses the reference method below: per batch item
 * and group, unfold the input into a column matrix (im2col: one row per (input
 * channel, kernel offset), one column per output position) and multiply the
 * weights by it with a plain GEMM whose inner loop runs along contiguous rows.
 * ConvTranspose does the reverse: GEMM with the transposed weights, then fold the
 * columns back (col2im).  DeformConv builds its columns by bilinear sampling at
 * offset positions.  CausalConvWithState (opset 27) is a stateful causal
 * depthwise 1-D conv done with direct loops.  The reference Conv loops
 * (conv_reference_*) are what the fast paths are tested against.
 *
 * float32/float16/bfloat16 compute in float; float64 and ConvInteger compute in
 * double (exact for the integer sums ConvInteger can produce in int32). */
#include "ops/op_util.h"
#include "ops/spatial.h"

#include "exec/threadpool.h"
#include "kernels/conv_kernels.h"
#include "kernels/sgemm.h"
#include "ops/quant_dynamic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- geometry */

/* Kernel size of axis i (spatial) from the weight; kernel_shape, when given,
 * must agree with it. */
static int kernel_from_weight(kn_op_ctx *c, const kn_tensor *w, kn_spatial_geom *g, int i)
{
    if (kn_attr_find(c->node, "kernel_shape") && g->k[i] != w->dims[i + 2])
        return kn_fail(c->err, KN_ERR_ARG, "kernel_shape does not match the weight shape");
    g->k[i] = w->dims[i + 2];
    if (g->k[i] < 1 || g->k[i] > KN_SPATIAL_ATTR_MAX)
        return kn_fail(c->err, KN_ERR_ARG, "%s weight has kernel size %lld on axis %d",
                       c->node->op_type, (long long)g->k[i], i + 2);
    return KN_OK;
}

/* Reads kernel_shape (default: the weight's spatial dims), strides, dilations,
 * pads and auto_pad, and computes the output spatial dims of a forward conv. */
int kn_conv_geometry(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, kn_spatial_geom *g)
{
    memset(g, 0, sizeof *g);
    g->nsp = x->rank - 2;
    if (g->nsp < 1 || g->nsp > KN_MAX_SPATIAL)
        return kn_fail(c->err, KN_ERR_ARG, "%s input must have rank >= 3, got %d",
                       c->node->op_type, x->rank);
    if (w->rank != x->rank)
        return kn_fail(c->err, KN_ERR_ARG, "%s weight rank %d does not match input rank %d",
                       c->node->op_type, w->rank, x->rank);
    int n = g->nsp, rc;
    if ((rc = kn_spatial_ints(c, "kernel_shape", n, 1, 1, g->k)))
        return rc;
    for (int i = 0; i < n; i++)
        if ((rc = kernel_from_weight(c, w, g, i)))
            return rc;
    if ((rc = kn_spatial_ints(c, "strides", n, 1, 1, g->stride)) ||
        (rc = kn_spatial_ints(c, "dilations", n, 1, 1, g->dil)))
        return rc;
    int64_t pads[2 * KN_MAX_SPATIAL];
    if ((rc = kn_spatial_ints(c, "pads", 2 * n, 0, 0, pads)))
        return rc;
    kn_auto_pad ap;
    if ((rc = kn_read_auto_pad(c, &ap)))
        return rc;
    g->in_size = g->out_size = g->k_size = 1;
    for (int i = 0; i < n; i++) {
        int64_t in = x->dims[i + 2], ext = (g->k[i] - 1) * g->dil[i] + 1;
        g->in[i] = in;
        if (ap == KN_PAD_SAME_UPPER || ap == KN_PAD_SAME_LOWER) {
            kn_same_pads(in, g->stride[i], ext, ap == KN_PAD_SAME_UPPER, &g->pad_b[i],
                         &g->pad_e[i]);
        } else if (ap == KN_PAD_NOTSET) {
            g->pad_b[i] = pads[i];
            g->pad_e[i] = pads[i + n];
        }
        int64_t span = in + g->pad_b[i] + g->pad_e[i] - ext;
        if (span < 0)
            return kn_fail(c->err, KN_ERR_ARG,
                           "%s kernel extent %lld exceeds padded input size %lld on axis %d",
                           c->node->op_type, (long long)ext,
                           (long long)(in + g->pad_b[i] + g->pad_e[i]), i + 2);
        g->out[i] = span / g->stride[i] + 1;
        if ((rc = kn_spatial_count_axis(c, g, i)))
            return rc;
    }
    return KN_OK;
}

/* Static output type of Conv / FusedConv: the input's dtype and batch, the weight's
 * output channels, and the spatial sizes conv_geometry gives when the input's and
 * the kernel's are known (else unknown; bad attributes are left for run time to
 * report).  Lets prepare hooks downstream see their image size (Winograd). */
int kn_conv_infer(kn_infer_ctx *ic)
{
    if (ic->n_in < 2 || !ic->in[0] || !ic->in[1] || ic->n_out < 1)
        return KN_OK;
    const kn_type *xt = ic->in[0], *wt = ic->in[1];
    if (xt->kind != KN_TYPE_TENSOR || xt->rank < 3 || wt->rank != xt->rank)
        return KN_OK;
    kn_infer_spatial_out(&ic->out[0], xt->dtype, xt->rank, xt->dims[0], wt->dims[0]);
    kn_tensor x, w;
    if (!kn_infer_spatial_probe(xt, &x) || !kn_infer_spatial_probe(wt, &w))
        return KN_OK;
    kn_error err;
    kn_op_ctx c = kn_infer_op_ctx(ic, &err);
    kn_spatial_geom g;
    if (kn_conv_geometry(&c, &x, &w, &g) == KN_OK)
        for (int i = 0; i < g.nsp; i++)
            ic->out[0].dims[i + 2].value = g.out[i];
    return KN_OK;
}

/* Decode a flat kernel index into per-dim kernel offsets. */
static void unflatten(int n, const int64_t *dims, int64_t flat, int64_t *idx)
{
    for (int d = n - 1; d >= 0; d--) {
        idx[d] = flat % dims[d];
        flat /= dims[d];
    }
}

/* ------------------------------------------------------ im2col, GEMM, col2im */

/* Output positions per register-blocked strip of the GEMM. */
#define GEMM_STRIP 16
/* Column buffers are built in chunks of whole rows (all but the last spatial
 * axis) of about this many elements, so big images do not need a huge buffer. */
#define COL_BUDGET ((int64_t)1 << 22)

/* Kernels generated for float and double: im2col_T, gemm_acc_T, gemm_tn_T, col2im_T.
 * A "row" is one line along the last spatial axis; rows [row0, row0 + nrows) of
 * the output (im2col) or input (col2im) are handled per call.
 *
 * im2col: x is [channels, in spatial]; col is [channels * k_size, nrows * out_last].
 * gemm_acc: y[m][p] += sum_r w[m][r] * col[r][p]  (M x P block; col rows ldc apart,
 *           y rows ldy apart).
 * gemm_tn: col[r][p] = sum_c w[c][r] * x[c][p]    (w: C x R; x rows ldx apart).
 * col2im: y[m][out pos] += col[(m, kernel offset)][in pos] (transposed conv). */
#define DEFINE_CONV_KERNELS(T)                                                              \
    static void im2col_##T(const T *x, int64_t channels, const kn_spatial_geom *g, int64_t row0, \
                           int64_t nrows, T *col)                                           \
    {                                                                                       \
        int n = g->nsp, last = n - 1;                                                       \
        int64_t kpos[KN_MAX_SPATIAL], opos[KN_MAX_SPATIAL], ol = g->out[last], pc = nrows * ol; \
        for (int64_t ch = 0; ch < channels; ch++) {                                         \
            const T *xc = x + ch * g->in_size;                                              \
            for (int64_t kf = 0; kf < g->k_size; kf++) {                                    \
                T *row = col + (ch * g->k_size + kf) * pc;                                  \
                unflatten(n, g->k, kf, kpos);                                               \
                for (int64_t rr = row0; rr < row0 + nrows; rr++, row += ol) {               \
                    int64_t off = 0;                                                        \
                    bool inside = true;                                                     \
                    unflatten(last, g->out, rr, opos);                                      \
                    for (int d = 0; d < last; d++) {                                        \
                        int64_t ix = opos[d] * g->stride[d] - g->pad_b[d] + kpos[d] * g->dil[d]; \
                        if (ix < 0 || ix >= g->in[d])                                       \
                            inside = false;                                                 \
                        off = off * g->in[d] + ix;                                          \
                    }                                                                       \
                    if (!inside) {                                                          \
                        memset(row, 0, sizeof(T) * (size_t)ol);                             \
                        continue;                                                           \
                    }                                                                       \
                    const T *xr = xc + off * g->in[last];                                   \
                    int64_t s = g->stride[last], base = kpos[last] * g->dil[last] - g->pad_b[last]; \
                    for (int64_t o = 0; o < ol; o++) {                                      \
                        int64_t ix = o * s + base;                                          \
                        row[o] = (ix >= 0 && ix < g->in[last]) ? xr[ix] : (T)0;             \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    static void gemm_acc_##T(int64_t M, int64_t R, int64_t P, const T *w, const T *col,     \
                             int64_t ldc, T *y, int64_t ldy)                                \
    {                                                                                       \
        /* strips of GEMM_STRIP output positions accumulate in locals across all of R */    \
        int64_t p0 = 0;                                                                     \
        for (; p0 + GEMM_STRIP <= P; p0 += GEMM_STRIP) {                                    \
            for (int64_t m = 0; m < M; m++) {                                               \
                T acc[GEMM_STRIP];                                                          \
                T *yr = y + m * ldy + p0;                                                   \
                const T *wr = w + m * R, *cp = col + p0;                                    \
                for (int j = 0; j < GEMM_STRIP; j++)                                        \
                    acc[j] = yr[j];                                                         \
                for (int64_t r = 0; r < R; r++, cp += ldc) {                                \
                    T wv = wr[r];                                                           \
                    for (int j = 0; j < GEMM_STRIP; j++)                                    \
                        acc[j] += wv * cp[j];                                               \
                }                                                                           \
                for (int j = 0; j < GEMM_STRIP; j++)                                        \
                    yr[j] = acc[j];                                                         \
            }                                                                               \
        }                                                                                   \
        for (int64_t m = 0; m < M && p0 < P; m++) { /* the ragged tail */                   \
            T *yr = y + m * ldy;                                                            \
            for (int64_t r = 0; r < R; r++) {                                               \
                T wv = w[m * R + r];                                                        \
                const T *cr = col + r * ldc;                                                \
                for (int64_t p = p0; p < P; p++)                                            \
                    yr[p] += wv * cr[p];                                                    \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    static void gemm_tn_##T(int64_t C, int64_t R, int64_t P, const T *w, const T *x,        \
                            int64_t ldx, T *col)                                            \
    {                                                                                       \
        for (int64_t r = 0; r < R; r++) {                                                   \
            T *cr = col + r * P;                                                            \
            memset(cr, 0, sizeof(T) * (size_t)P);                                           \
            for (int64_t ch = 0; ch < C; ch++) {                                            \
                T wv = w[ch * R + r];                                                       \
                if (wv == 0)                                                                \
                    continue;                                                               \
                const T *xr = x + ch * ldx;                                                 \
                for (int64_t p = 0; p < P; p++)                                             \
                    cr[p] += wv * xr[p];                                                    \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    static void col2im_##T(const T *col, int64_t channels, const kn_spatial_geom *g, int64_t row0, \
                           int64_t nrows, T *y)                                             \
    {                                                                                       \
        /* here g->in is the transposed conv's input (the columns), g->out its output */    \
        int n = g->nsp, last = n - 1;                                                       \
        int64_t kpos[KN_MAX_SPATIAL], ipos[KN_MAX_SPATIAL], il = g->in[last], pc = nrows * il;  \
        for (int64_t ch = 0; ch < channels; ch++) {                                         \
            T *yc = y + ch * g->out_size;                                                   \
            for (int64_t kf = 0; kf < g->k_size; kf++) {                                    \
                const T *row = col + (ch * g->k_size + kf) * pc;                            \
                unflatten(n, g->k, kf, kpos);                                               \
                for (int64_t rr = row0; rr < row0 + nrows; rr++, row += il) {               \
                    int64_t off = 0;                                                        \
                    bool inside = true;                                                     \
                    unflatten(last, g->in, rr, ipos);                                       \
                    for (int d = 0; d < last; d++) {                                        \
                        int64_t oy = ipos[d] * g->stride[d] - g->pad_b[d] + kpos[d] * g->dil[d]; \
                        if (oy < 0 || oy >= g->out[d])                                      \
                            inside = false;                                                 \
                        off = off * g->out[d] + oy;                                         \
                    }                                                                       \
                    if (!inside)                                                            \
                        continue;                                                           \
                    T *yr = yc + off * g->out[last];                                        \
                    int64_t s = g->stride[last], base = kpos[last] * g->dil[last] - g->pad_b[last]; \
                    for (int64_t i = 0; i < il; i++) {                                      \
                        int64_t oy = i * s + base;                                          \
                        if (oy >= 0 && oy < g->out[last])                                   \
                            yr[oy] += row[i];                                               \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

/* Rows per column chunk: whole rows of width `width` for `per_row` column rows. */
static int64_t chunk_rows(int64_t per_row, int64_t width, int64_t total_rows)
{
    int64_t cost = per_row * width, rows = cost > 0 ? COL_BUDGET / cost : total_rows;
    if (rows < 1)
        rows = 1;
    return rows < total_rows ? rows : total_rows;
}

DEFINE_CONV_KERNELS(float)
DEFINE_CONV_KERNELS(double)

/* ------------------------------------------------------- dtype conversions */

/* Tensor data as float: the tensor's own buffer for float32 (*owned = NULL),
 * else a converted malloc'ed copy stored in *owned.  NULL on out of memory. */
static const float *as_float(const kn_tensor *t, float **owned)
{
    *owned = NULL;
    if (t->dtype == KN_F32)
        return (const float *)t->data;
    float *buf = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (!buf)
        return NULL;
    for (int64_t i = 0; i < t->numel; i++)
        buf[i] = (float)kn_load_f64(t->data, t->dtype, (size_t)i);
    *owned = buf;
    return buf;
}

/* Tensor data as double (always a copy); zp (may be NULL) is subtracted:
 * either one value or, when per_channel, zp[i / inner] for the outer index. */
static double *as_double(const kn_tensor *t, const kn_tensor *zp, int64_t inner)
{
    double *buf = malloc(sizeof(double) * (size_t)(t->numel ? t->numel : 1));
    if (!buf)
        return NULL;
    for (int64_t i = 0; i < t->numel; i++) {
        double z = 0;
        if (zp && zp->numel == 1)
            z = (double)kn_load_i64(zp->data, zp->dtype, 0);
        else if (zp)
            z = (double)kn_load_i64(zp->data, zp->dtype, (size_t)(i / inner));
        buf[i] = (t->dtype == KN_F64 || t->dtype == KN_F32 || t->dtype == KN_F16 ||
                  t->dtype == KN_BF16)
                     ? kn_load_f64(t->data, t->dtype, (size_t)i) - z
                     : (double)kn_load_i64(t->data, t->dtype, (size_t)i) - z;
    }
    return buf;
}

/* Store a float result buffer into an output of dtype dt (no-op for float32 in place). */
static void store_float(kn_tensor *y, const float *src)
{
    if (y->dtype == KN_F32) {
        if ((const void *)src != y->data && y->numel)
            memcpy(y->data, src, sizeof(float) * (size_t)y->numel);
        return;
    }
    for (int64_t i = 0; i < y->numel; i++)
        kn_store_f64(y->data, y->dtype, (size_t)i, src[i]);
}

/* ------------------------------------------------------------------ Conv */

/* Shape checks shared by Conv/ConvInteger: channels, group, weight dims. */
static int check_conv_shapes(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, int64_t group)
{
    if (group < 1 || x->dims[1] % group || w->dims[0] % group)
        return kn_fail(c->err, KN_ERR_ARG,
                       "%s group %lld does not divide input channels %lld and output channels %lld",
                       c->node->op_type, (long long)group, (long long)x->dims[1],
                       (long long)w->dims[0]);
    if (w->dims[1] * group != x->dims[1])
        return kn_fail(c->err, KN_ERR_ARG,
                       "%s weight has %lld input channels per group, input has %lld channels in %lld groups",
                       c->node->op_type, (long long)w->dims[1], (long long)x->dims[1],
                       (long long)group);
    return KN_OK;
}

/* Output dims [N, M, out...] into dims. */
static void conv_out_dims(const kn_tensor *x, int64_t m, const kn_spatial_geom *g, int64_t *dims)
{
    dims[0] = x->dims[0];
    dims[1] = m;
    for (int i = 0; i < g->nsp; i++)
        dims[i + 2] = g->out[i];
}

/* True when im2col would be the identity (1x1 kernel, stride 1, no padding). */
static bool conv_is_pointwise(const kn_spatial_geom *g)
{
    for (int i = 0; i < g->nsp; i++)
        if (g->k[i] != 1 || g->stride[i] != 1 || g->pad_b[i] || g->pad_e[i])
            return false;
    return true;
}

/* Column buffer size r * width elements, checked. */
static int col_elems(kn_op_ctx *c, int64_t r, int64_t width, int64_t *n)
{
    if (!kn_mul_ok(r, width, n) || *n > (int64_t)(KN_MAX_TENSOR_BYTES / sizeof(double)))
        return kn_fail(c->err, KN_ERR_ARG, "%s column buffer is too large", c->node->op_type);
    if (*n == 0)
        *n = 1;
    return KN_OK;
}

#define DEFINE_CONV_FORWARD(T)                                                              \
    /* y[N, M, out] = conv(x[N, C, in], w[M, C/group, k]) + b[M]: the plain loops every \
     * fast path (kernels/conv_kernels.h) is tested against */                         \
    static int conv_reference_##T(kn_op_ctx *c, const T *x, const T *w, const T *b,           \
                                int64_t batch, int64_t chans, int64_t m, int64_t group,     \
                                const kn_spatial_geom *g, T *y)                                 \
    {                                                                                       \
        int64_t cg = chans / group, mg = m / group, r = cg * g->k_size, P = g->out_size;    \
        int64_t ol = g->out[g->nsp - 1], rows = ol ? P / ol : 0, crows = chunk_rows(r, ol, rows); \
        int64_t ncol;                                                                       \
        if (col_elems(c, r, ol * crows, &ncol))                                             \
            return c->err->code;                                                            \
        bool pointwise = conv_is_pointwise(g);                                              \
        T *col = pointwise ? NULL : malloc(sizeof(T) * (size_t)ncol);                       \
        if (!pointwise && !col)                                                             \
            return kn_op_nomem(c);                                                                \
        for (int64_t n = 0; n < batch; n++) {                                               \
            for (int64_t gi = 0; gi < group; gi++) {                                        \
                const T *xg = x + (n * chans + gi * cg) * g->in_size;                       \
                const T *wg = w + gi * mg * r;                                              \
                T *yg = y + (n * m + gi * mg) * P;                                          \
                for (int64_t j = 0; j < mg; j++) {                                          \
                    T bias = b ? b[gi * mg + j] : (T)0;                                     \
                    for (int64_t p = 0; p < P; p++)                                         \
                        yg[j * P + p] = bias;                                               \
                }                                                                           \
                if (pointwise) {                                                            \
                    gemm_acc_##T(mg, r, P, wg, xg, P, yg, P);                               \
                    continue;                                                               \
                }                                                                           \
                for (int64_t r0 = 0; r0 < rows; r0 += crows) {                             \
                    int64_t nr = rows - r0 < crows ? rows - r0 : crows;                     \
                    im2col_##T(xg, cg, g, r0, nr, col);                                     \
                    gemm_acc_##T(mg, r, nr * ol, wg, col, nr * ol, yg + r0 * ol, P);        \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        free(col);                                                                          \
        return KN_OK;                                                                       \
    }

DEFINE_CONV_FORWARD(float)
DEFINE_CONV_FORWARD(double)

static int check_bias(kn_op_ctx *c, const kn_tensor *b, int64_t m)
{
    if (b && (b->rank != 1 || b->dims[0] != m))
        return kn_fail(c->err, KN_ERR_ARG, "%s bias must have shape [%lld]", c->node->op_type,
                       (long long)m);
    return KN_OK;
}

/* ------------------------------------------------ Conv, FusedConv: fast path */

/* What prepare builds for a Conv/FusedConv with constant float32 weights: the
 * weights of each group packed as GEMM A operands (not for depthwise convs). */
typedef struct conv_state {
    int64_t dims[KN_MAX_RANK];
    int rank;
    int64_t group;
    kn_packed_a **pa;
    kn_wino_weights *wino; /* 3x3 stride-1 group-1 convs: the Winograd weights, or NULL */
} conv_state;

static void release_conv_state(void *state)
{
    conv_state *s = state;
    for (int64_t gi = 0; s && s->pa && gi < s->group; gi++)
        kn_packed_a_free(s->pa[gi]);
    if (s) {
        free(s->pa);
        kn_wino_free(s->wino);
    }
    free(s);
}

/* True when the node's strides and dilations are all 1 (absent counts as 1). */
static bool unit_strides_dilations(const kn_node *node)
{
    static const char *const names[] = {"strides", "dilations"};
    for (int k = 0; k < 2; k++) {
        const int64_t *v;
        int n = kn_attr_ints(node, names[k], &v);
        for (int i = 0; i < n; i++)
            if (v[i] != 1)
                return false;
    }
    return true;
}

/* The input's static batch and spatial size (-1 where not known at load). */
static void static_input_size(const kn_prepare_ctx *pc, int64_t *batch, int64_t *ih, int64_t *iw)
{
    const kn_type *t = pc->in_type ? pc->in_type[0] : NULL;
    bool known = t && t->rank == 4;
    *batch = known ? t->dims[0].value : -1;
    *ih = known ? t->dims[2].value : -1;
    *iw = known ? t->dims[3].value : -1;
}

/* The Winograd weights of a 3x3 stride-1 group-1 Conv (s->wino stays NULL for
 * other convs, and for inputs too small for the path to be chosen).  Returns
 * KN_OK or KN_ERR_NOMEM. */
static int prepare_winograd(kn_prepare_ctx *pc, const kn_tensor *w, conv_state *s)
{
    int64_t batch, ih, iw;
    static_input_size(pc, &batch, &ih, &iw);
    if (w->rank != 4 || !unit_strides_dilations(pc->node) ||
        !kn_wino_weights_ok(s->group, w->dims[1], w->dims[0], w->dims[2], w->dims[3]) ||
        !kn_wino_worth_weights(batch, ih, iw))
        return KN_OK;
    s->wino = kn_wino_pack(kn_cpu_isa(), w->data, w->dims[0], w->dims[1]);
    if (!s->wino)
        return kn_fail(pc->err, KN_ERR_NOMEM, "out of memory preparing %s Winograd weights",
                       pc->node->op_type);
    return KN_OK;
}

/* Packs each group's weights: Conv's [m, C/group, k...] rows as (m/group) x K
 * matrices; ConvTranspose's [C, m/group, k...] transposed to (m/group * k) x
 * (C/group).  Leaves *state NULL when the weights are not constant float32 2-D
 * / 1-D, or for depthwise convs (they read the weights as they are). */
static int prepare_weights(kn_prepare_ctx *pc, void **state, bool transposed)
{
    const kn_tensor *w = pc->n_in > 1 ? pc->in_const[1] : NULL;
    int64_t group = kn_attr_int(pc->node, "group", 1);
    if (!w || !w->data || w->dtype != KN_F32 || (w->rank != 3 && w->rank != 4) || group < 1 ||
        w->dims[0] % group || w->numel == 0)
        return KN_OK; /* the kernel takes its general path (and reports bad shapes) */
    if (!transposed && w->dims[1] == 1 && w->dims[0] == group && group > 1)
        return KN_OK;
    conv_state *s = calloc(1, sizeof *s);
    if (!s || !(s->pa = calloc((size_t)group, sizeof *s->pa))) {
        free(s);
        return kn_fail(pc->err, KN_ERR_NOMEM, "out of memory preparing %s weights", pc->node->op_type);
    }
    s->rank = w->rank;
    s->group = group;
    memcpy(s->dims, w->dims, sizeof(int64_t) * (size_t)w->rank);
    if (!transposed && prepare_winograd(pc, w, s)) {
        release_conv_state(s);
        return pc->err->code;
    }
    /* per group: rows x cols of the weight as stored (none beside Winograd weights:
     * every run of such a conv takes Winograd, see kn_wino_applies) */
    size_t rows = (size_t)(w->dims[0] / group), cols = (size_t)(w->numel / w->dims[0]);
    for (int64_t gi = 0; gi < group && !s->wino; gi++) {
        const float *wg = (const float *)w->data + (size_t)gi * rows * cols;
        s->pa[gi] = transposed ? kn_sgemm_pack_a_isa(kn_cpu_isa(), 1, cols, rows, wg, cols)
                               : kn_sgemm_pack_a(rows, cols, wg, cols);
        if (!s->pa[gi]) {
            release_conv_state(s);
            return kn_fail(pc->err, KN_ERR_NOMEM, "out of memory packing %s weights",
                           pc->node->op_type);
        }
    }
    *state = s;
    /* Conv reads only the packed weights from now on (ConvTranspose may still need
     * the reference for images too large for its column buffer; the direct path
     * reads the weights as they are) */
    int64_t kh = w->rank == 4 ? w->dims[2] : 1, kw = w->dims[w->rank - 1];
    if (!transposed && kn_conv2d_gemm_always_fits((int64_t)cols) &&
        !kn_conv2d_direct_weights(group, w->dims[1], kh, kw))
        pc->drop_inputs |= 1u << 1;
    return KN_OK;
}

static int prepare_conv(kn_prepare_ctx *pc, void **state)
{
    return prepare_weights(pc, state, false);
}

static int prepare_conv_transpose(kn_prepare_ctx *pc, void **state)
{
    return prepare_weights(pc, state, true);
}

/* c->state when it was built for this weight and group, else NULL. */
static const conv_state *state_for(const kn_op_ctx *c, const kn_tensor *w, int64_t group)
{
    const conv_state *s = c->state;
    if (!s || w->dtype != KN_F32 || s->rank != w->rank || s->group != group ||
        memcmp(s->dims, w->dims, sizeof(int64_t) * (size_t)w->rank))
        return NULL;
    return s;
}

/* The prepacked weights when c->state was built for this weight and group. */
static kn_packed_a *const *state_weights(const kn_op_ctx *c, const kn_tensor *w, int64_t group)
{
    const conv_state *s = state_for(c, w, group);
    return s ? s->pa : NULL;
}

/* The 2-D kernel geometry of a 1-D or 2-D conv, per group of cg channels. */
static kn_conv2d_geom conv2d_geom_of(const kn_spatial_geom *g, int64_t cg)
{
    kn_conv2d_geom d = {cg, 1, g->in[0], 1, g->out[0], 1, g->k[0], 1, g->stride[0],
                        1, g->dil[0], 0, g->pad_b[0]};
    if (g->nsp == 2)
        d = (kn_conv2d_geom){cg, g->in[0], g->in[1], g->out[0], g->out[1], g->k[0], g->k[1],
                             g->stride[0], g->stride[1], g->dil[0], g->dil[1], g->pad_b[0],
                             g->pad_b[1]};
    return d;
}

/* The FusedConv residual and activation on the reference path's output. */
static void finish_reference(float *y, int64_t n, const float *z, const kn_conv_act *act)
{
    for (int64_t i = 0; z && i < n; i++)
        y[i] += z[i];
    kn_conv_act_apply(act, y, (size_t)n);
}

/* Float conv: the fast kernels for 1-D/2-D, else the reference loops.  x is
 * [batch, chans, in...]; z (like y) and act are FusedConv's, NULL / none for Conv. */
static int conv_float(kn_op_ctx *c, const float *x, const float *w, const float *b,
                      const float *z, const kn_conv_act *act, const kn_tensor *xt,
                      const kn_tensor *wt, int64_t group, const kn_spatial_geom *g, float *y)
{
    int64_t batch = xt->dims[0], chans = xt->dims[1], m = wt->dims[0];
    const conv_state *s = state_for(c, wt, group);
    if (g->nsp <= 2) {
        kn_conv2d_args a = {conv2d_geom_of(g, chans / group), batch, group, m, x, w, b, z,
                            s ? s->pa : NULL, *act, y, s ? s->wino : NULL};
        size_t need = kn_conv2d_scratch_floats(&a, kn_threadpool_size(c->pool));
        if (need != SIZE_MAX) {
            float *scratch = need ? kn_op_scratch(c, need * sizeof(float)) : NULL;
            if (need && !scratch)
                return c->err->code;
            if (kn_conv2d_run(c->pool, kn_cpu_isa(), &a, scratch, need))
                return kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory packing weights",
                               c->node->op_type);
            return KN_OK;
        }
    }
    if (!w) /* prepare released the weights; cannot happen for the shapes it packs */
        return kn_fail(c->err, KN_ERR_RUNTIME, "%s: weights released but the fast path declined",
                       c->node->op_type);
    int rc = conv_reference_float(c, x, w, b, batch, chans, m, group, g, y);
    if (!rc)
        finish_reference(y, batch * m * g->out_size, z, act);
    return rc;
}

/* FusedConv's activation attributes (ONNX Runtime contrib op): "activation" with
 * its "activation_params" (LeakyRelu: alpha; Clip: min, max; HardSigmoid: alpha,
 * beta); kiln adds "SiLU". */
int kn_conv_read_activation(kn_op_ctx *c, kn_conv_act *act)
{
    static const struct { const char *name; kn_conv_act_kind kind; int params; } acts[] = {
        {"Relu", KN_CONV_ACT_RELU, 0},       {"Sigmoid", KN_CONV_ACT_SIGMOID, 0},
        {"Tanh", KN_CONV_ACT_TANH, 0},       {"LeakyRelu", KN_CONV_ACT_LEAKY_RELU, 1},
        {"Clip", KN_CONV_ACT_CLIP, 2},       {"HardSigmoid", KN_CONV_ACT_HARD_SIGMOID, 2},
        {"SiLU", KN_CONV_ACT_SILU, 0}, /* kiln only: see src/opt/fuse_conv_silu.c */
    };
    *act = (kn_conv_act){KN_CONV_ACT_NONE, 0.0f, 0.0f};
    const char *name = kn_attr_string(c->node, "activation", "");
    if (!*name || !strcmp(name, "Identity"))
        return KN_OK;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(name, acts[i].name))
            continue;
        const float *p;
        int n = kn_attr_floats(c->node, "activation_params", &p);
        if (acts[i].params && n != acts[i].params)
            return kn_fail(c->err, KN_ERR_ARG, "FusedConv activation %s needs %d activation_params, got %d",
                           name, acts[i].params, n < 0 ? 0 : n);
        act->kind = acts[i].kind;
        act->alpha = acts[i].params > 0 ? p[0] : 0.0f;
        act->beta = acts[i].params > 1 ? p[1] : 0.0f;
        return KN_OK;
    }
    return kn_fail(c->err, KN_ERR_UNSUPPORTED, "FusedConv activation '%s' is not supported", name);
}

static int check_residual(kn_op_ctx *c, const kn_tensor *z, const kn_tensor *y)
{
    if (z && (z->dtype != y->dtype || !kn_same_shape(z, y)))
        return kn_fail(c->err, KN_ERR_ARG, "FusedConv input Z must have the output's type and shape");
    return KN_OK;
}

/* Conv and FusedConv (fused: its activation and optional residual input 3). */
static int run_conv_impl(kn_op_ctx *c, bool fused)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *w = c->in[1], *b = kn_op_in(c, 2);
    const kn_tensor *z = fused ? kn_op_in(c, 3) : NULL;
    kn_conv_act act = {KN_CONV_ACT_NONE, 0.0f, 0.0f};
    if (!kn_dtype_is_float(x->dtype) || (fused && x->dtype != KN_F32))
        return kn_unsupported_dtype(c, x->dtype);
    int rc;
    if ((rc = kn_check_same_dtype(c, x, w)) || (b && (rc = kn_check_same_dtype(c, x, b))) ||
        (fused && (rc = kn_conv_read_activation(c, &act))))
        return rc;
    kn_spatial_geom g;
    int64_t group = kn_attr_int(c->node, "group", 1);
    if ((rc = kn_conv_geometry(c, x, w, &g)) || (rc = check_conv_shapes(c, x, w, group)) ||
        (rc = check_bias(c, b, w->dims[0])))
        return rc;
    int64_t dims[KN_MAX_RANK];
    conv_out_dims(x, w->dims[0], &g, dims);
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, dims); /* every path writes all */
    if (!y)
        return c->err->code;
    if ((rc = check_residual(c, z, y)) || y->numel == 0)
        return rc;
    if (x->dtype == KN_F64)
        return conv_reference_double(c, x->data, w->data, b ? b->data : NULL, x->dims[0],
                                     x->dims[1], w->dims[0], group, &g, y->data);
    float *ox, *ow, *ob = NULL, *oy = NULL;
    const float *fx = as_float(x, &ox), *fw = as_float(w, &ow), *fb = b ? as_float(b, &ob) : NULL;
    float *fy = x->dtype == KN_F32 ? y->data : (oy = malloc(sizeof(float) * (size_t)y->numel));
    if (!fx || (!fw && w->dtype != KN_F32) || (b && !fb) || !fy) /* NULL float32 w: released */
        rc = kn_op_nomem(c);
    else
        rc = conv_float(c, fx, fw, fb, z ? z->data : NULL, &act, x, w, group, &g, fy);
    if (!rc)
        store_float(y, fy);
    free(ox);
    free(ow);
    free(ob);
    free(oy);
    return rc;
}

static int run_conv(kn_op_ctx *c)
{
    return run_conv_impl(c, false);
}

static int run_fused_conv(kn_op_ctx *c)
{
    return run_conv_impl(c, true);
}

/* ----------------------------------------------------------- ConvInteger */

static bool is_int8ish(kn_dtype t)
{
    return t == KN_U8 || t == KN_I8;
}

static int run_conv_integer(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *w = c->in[1];
    const kn_tensor *xz = kn_op_in(c, 2), *wz = kn_op_in(c, 3);
    if (!is_int8ish(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (!is_int8ish(w->dtype))
        return kn_unsupported_dtype(c, w->dtype);
    if (xz && (xz->dtype != x->dtype || xz->numel != 1))
        return kn_fail(c->err, KN_ERR_ARG, "ConvInteger x_zero_point must be a %s scalar",
                       kn_dtype_name(x->dtype));
    int rc;
    kn_spatial_geom g;
    int64_t group = kn_attr_int(c->node, "group", 1);
    if ((rc = kn_conv_geometry(c, x, w, &g)) || (rc = check_conv_shapes(c, x, w, group)))
        return rc;
    int64_t m = w->dims[0];
    if (wz && (wz->dtype != w->dtype || (wz->numel != 1 && wz->numel != m)))
        return kn_fail(c->err, KN_ERR_ARG,
                       "ConvInteger w_zero_point must be a %s scalar or have %lld values",
                       kn_dtype_name(w->dtype), (long long)m);
    int64_t dims[KN_MAX_RANK];
    conv_out_dims(x, m, &g, dims);
    kn_tensor *y = kn_op_output(c, 0, KN_I32, x->rank, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    bool done;
    if ((rc = kn_conv_integer_fast(c, &g, group, y, &done)) || done)
        return rc;
    int64_t per_m = m ? w->numel / m : 1;
    double *dx = as_double(x, xz, 1), *dw = as_double(w, wz, per_m ? per_m : 1);
    double *dy = malloc(sizeof(double) * (size_t)y->numel);
    if (!dx || !dw || !dy)
        rc = kn_op_nomem(c);
    else
        rc = conv_reference_double(c, dx, dw, NULL, x->dims[0], x->dims[1], m, group, &g, dy);
    if (!rc) {
        int32_t *out = y->data;
        for (int64_t i = 0; i < y->numel; i++) /* wraps like int32 accumulation would */
            out[i] = (int32_t)(uint32_t)(int64_t)dy[i];
    }
    free(dx);
    free(dw);
    free(dy);
    return rc;
}

/* --------------------------------------------------------- ConvTranspose */

/* Geometry of a transposed conv: g->in is the input spatial shape, g->out the
 * output's; pads per output_shape / auto_pad rules. */
static int convt_geometry(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, kn_spatial_geom *g)
{
    memset(g, 0, sizeof *g);
    g->nsp = x->rank - 2;
    if (g->nsp < 1 || g->nsp > KN_MAX_SPATIAL)
        return kn_fail(c->err, KN_ERR_ARG, "ConvTranspose input must have rank >= 3, got %d",
                       x->rank);
    if (w->rank != x->rank)
        return kn_fail(c->err, KN_ERR_ARG, "ConvTranspose weight rank %d does not match input rank %d",
                       w->rank, x->rank);
    int n = g->nsp, rc;
    int64_t pads[2 * KN_MAX_SPATIAL], opad[KN_MAX_SPATIAL], oshape[KN_MAX_SPATIAL];
    if ((rc = kn_spatial_ints(c, "kernel_shape", n, 1, 1, g->k)) ||
        (rc = kn_spatial_ints(c, "strides", n, 1, 1, g->stride)) ||
        (rc = kn_spatial_ints(c, "dilations", n, 1, 1, g->dil)) ||
        (rc = kn_spatial_ints(c, "pads", 2 * n, 0, 0, pads)) ||
        (rc = kn_spatial_ints(c, "output_padding", n, 0, 0, opad)))
        return rc;
    const int64_t *os;
    int nos = kn_attr_ints(c->node, "output_shape", &os);
    if (nos >= 0 && nos != n && nos != n + 2)
        return kn_fail(c->err, KN_ERR_ARG, "ConvTranspose output_shape has %d values, expected %d",
                       nos, n);
    kn_auto_pad ap;
    if ((rc = kn_read_auto_pad(c, &ap)))
        return rc;
    g->in_size = g->out_size = g->k_size = 1;
    for (int i = 0; i < n; i++) {
        if ((rc = kernel_from_weight(c, w, g, i)))
            return rc;
        int64_t in = x->dims[i + 2], ext = (g->k[i] - 1) * g->dil[i] + 1;
        int64_t full; /* unpadded output size */
        if (!kn_mul_ok(g->stride[i], in > 0 ? in - 1 : 0, &full) || full > ((int64_t)1 << 50))
            return kn_fail(c->err, KN_ERR_ARG, "ConvTranspose output size overflows");
        full += opad[i] + ext;
        g->in[i] = in;
        bool have_shape = nos >= 0 || ap == KN_PAD_SAME_UPPER || ap == KN_PAD_SAME_LOWER;
        if (have_shape) {
            oshape[i] = nos >= 0 ? os[i + (nos - n)] : in * g->stride[i];
            kn_split_pads(full - oshape[i], ap == KN_PAD_SAME_UPPER, &g->pad_b[i], &g->pad_e[i]);
            g->out[i] = oshape[i];
        } else {
            if (ap == KN_PAD_NOTSET) {
                g->pad_b[i] = pads[i];
                g->pad_e[i] = pads[i + n];
            }
            g->out[i] = full - g->pad_b[i] - g->pad_e[i];
        }
        if (g->out[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "ConvTranspose output size is negative on axis %d",
                           i + 2);
        if ((rc = kn_spatial_count_axis(c, g, i)))
            return rc;
    }
    return KN_OK;
}

#define DEFINE_CONVT_FORWARD(T)                                                             \
    /* y[N, M, out] = convT(x[N, C, in], w[C, M/group, k]) + b[M] */                        \
    static int convt_forward_##T(kn_op_ctx *c, const T *x, const T *w, const T *b,          \
                                 int64_t batch, int64_t chans, int64_t m, int64_t group,    \
                                 const kn_spatial_geom *g, T *y)                                \
    {                                                                                       \
        int64_t cg = chans / group, mg = m / group, r = mg * g->k_size, Q = g->in_size;     \
        int64_t il = g->in[g->nsp - 1], rows = il ? Q / il : 0, crows = chunk_rows(r, il, rows); \
        int64_t ncol;                                                                       \
        if (col_elems(c, r, il * crows, &ncol))                                             \
            return c->err->code;                                                            \
        T *col = malloc(sizeof(T) * (size_t)ncol);                                          \
        if (!col)                                                                           \
            return kn_op_nomem(c);                                                                \
        for (int64_t n = 0; n < batch; n++) {                                               \
            for (int64_t gi = 0; gi < group; gi++) {                                        \
                const T *xg = x + (n * chans + gi * cg) * Q;                                \
                T *yg = y + (n * m + gi * mg) * g->out_size;                                \
                for (int64_t j = 0; j < mg; j++) {                                          \
                    T bias = b ? b[gi * mg + j] : (T)0;                                     \
                    for (int64_t p = 0; p < g->out_size; p++)                               \
                        yg[j * g->out_size + p] = bias;                                     \
                }                                                                           \
                for (int64_t r0 = 0; r0 < rows; r0 += crows) {                              \
                    int64_t nr = rows - r0 < crows ? rows - r0 : crows;                     \
                    gemm_tn_##T(cg, r, nr * il, w + gi * cg * r, xg + r0 * il, Q, col);     \
                    col2im_##T(col, mg, g, r0, nr, yg);                                     \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        free(col);                                                                          \
        return KN_OK;                                                                       \
    }

DEFINE_CONVT_FORWARD(float)
DEFINE_CONVT_FORWARD(double)

/* Float transposed conv: the GEMM + col2im kernel for 1-D/2-D, else the reference. */
static int convt_float(kn_op_ctx *c, const float *x, const float *w, const float *b,
                       const kn_tensor *xt, const kn_tensor *wt, int64_t m, int64_t group,
                       const kn_spatial_geom *g, float *y)
{
    int64_t batch = xt->dims[0], chans = xt->dims[1];
    if (g->nsp <= 2) {
        kn_conv2d_args a = {conv2d_geom_of(g, chans / group), batch, group, m, x, w, b, NULL,
                            state_weights(c, wt, group), {KN_CONV_ACT_NONE, 0.0f, 0.0f}, y,
                            NULL};
        size_t need = kn_convt2d_scratch_floats(&a);
        if (need != SIZE_MAX) {
            float *scratch = kn_op_scratch(c, need * sizeof(float));
            if (!scratch)
                return c->err->code;
            if (kn_convt2d_run(c->pool, kn_cpu_isa(), &a, scratch, need))
                return kn_fail(c->err, KN_ERR_NOMEM, "ConvTranspose: out of memory packing weights");
            return KN_OK;
        }
    }
    return convt_forward_float(c, x, w, b, batch, chans, m, group, g, y);
}

static int run_conv_transpose(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *w = c->in[1], *b = kn_op_in(c, 2);
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int rc;
    if ((rc = kn_check_same_dtype(c, x, w)) || (b && (rc = kn_check_same_dtype(c, x, b))))
        return rc;
    kn_spatial_geom g;
    if ((rc = convt_geometry(c, x, w, &g)))
        return rc;
    int64_t group = kn_attr_int(c->node, "group", 1);
    if (group < 1 || x->dims[1] % group || x->dims[1] != w->dims[0])
        return kn_fail(c->err, KN_ERR_ARG,
                       "ConvTranspose: input channels %lld, weight dim 0 %lld and group %lld disagree",
                       (long long)x->dims[1], (long long)w->dims[0], (long long)group);
    int64_t m;
    if (!kn_mul_ok(w->dims[1], group, &m))
        return kn_fail(c->err, KN_ERR_ARG, "ConvTranspose channel count overflows");
    if ((rc = check_bias(c, b, m)))
        return rc;
    int64_t dims[KN_MAX_RANK];
    conv_out_dims(x, m, &g, dims);
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, dims); /* bias first, then sums */
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    if (x->dtype == KN_F64)
        return convt_forward_double(c, x->data, w->data, b ? b->data : NULL, x->dims[0],
                                    x->dims[1], m, group, &g, y->data);
    float *ox, *ow, *ob = NULL, *oy = NULL;
    const float *fx = as_float(x, &ox), *fw = as_float(w, &ow), *fb = b ? as_float(b, &ob) : NULL;
    float *fy = x->dtype == KN_F32 ? y->data : (oy = malloc(sizeof(float) * (size_t)y->numel));
    if (!fx || !fw || (b && !fb) || !fy)
        rc = kn_op_nomem(c);
    else
        rc = convt_float(c, fx, fw, fb, x, w, m, group, &g, fy);
    if (!rc)
        store_float(y, fy);
    free(ox);
    free(ow);
    free(ob);
    free(oy);
    return rc;
}

/* ------------------------------------------------------------ DeformConv */

/* Bilinear sample of plane (h x w) at (py, px), zero outside. */
static float bilinear_zero(const float *plane, int64_t h, int64_t w, double py, double px)
{
    if (!(py > -1.0 && py < (double)h && px > -1.0 && px < (double)w))
        return 0.0f;
    double fy = floor(py), fx = floor(px);
    int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
    double ly = py - fy, lx = px - fx;
    double v = 0;
    for (int dy = 0; dy < 2; dy++) {
        for (int dx = 0; dx < 2; dx++) {
            int64_t yy = y0 + dy, xx = x0 + dx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                continue;
            double wt = (dy ? ly : 1 - ly) * (dx ? lx : 1 - lx);
            v += wt * plane[yy * w + xx];
        }
    }
    return (float)v;
}

/* Deformable im2col for batch item n, channels [c0, c0+cg) of one group. */
static void deform_im2col(const float *x, const float *offset, const float *mask, int64_t chans,
                          int64_t c0, int64_t cg, int64_t off_groups, const kn_spatial_geom *g,
                          float *col)
{
    int64_t h = g->in[0], w = g->in[1], oh = g->out[0], ow = g->out[1], K = g->k_size;
    int64_t cpog = chans / off_groups, P = g->out_size;
    for (int64_t ci = 0; ci < cg; ci++) {
        int64_t ch = c0 + ci, og = ch / cpog;
        const float *plane = x + ch * h * w;
        for (int64_t kf = 0; kf < K; kf++) {
            int64_t ki = kf / g->k[1], kj = kf % g->k[1];
            const float *offy = offset + (og * 2 * K + 2 * kf) * P, *offx = offy + P;
            const float *mk = mask ? mask + (og * K + kf) * P : NULL;
            float *row = col + (ci * K + kf) * P;
            for (int64_t i = 0; i < oh; i++) {
                for (int64_t j = 0; j < ow; j++) {
                    int64_t p = i * ow + j;
                    double py = (double)(i * g->stride[0] - g->pad_b[0] + ki * g->dil[0]) + offy[p];
                    double px = (double)(j * g->stride[1] - g->pad_b[1] + kj * g->dil[1]) + offx[p];
                    float v = bilinear_zero(plane, h, w, py, px);
                    row[p] = mk ? v * mk[p] : v;
                }
            }
        }
    }
}

static int check_deform_inputs(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *off,
                               const kn_tensor *mask, int64_t og, const kn_spatial_geom *g)
{
    int64_t n = x->dims[0];
    if (g->nsp != 2)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "DeformConv supports 2-D inputs only");
    if (og < 1 || x->dims[1] % og)
        return kn_fail(c->err, KN_ERR_ARG, "DeformConv offset_group %lld does not divide channels",
                       (long long)og);
    if (off->rank != 4 || off->dims[0] != n || off->dims[1] != og * 2 * g->k_size ||
        off->dims[2] != g->out[0] || off->dims[3] != g->out[1])
        return kn_fail(c->err, KN_ERR_ARG, "DeformConv offset has the wrong shape");
    if (mask && (mask->rank != 4 || mask->dims[0] != n || mask->dims[1] != og * g->k_size ||
                 mask->dims[2] != g->out[0] || mask->dims[3] != g->out[1]))
        return kn_fail(c->err, KN_ERR_ARG, "DeformConv mask has the wrong shape");
    return KN_OK;
}

static int deform_forward(kn_op_ctx *c, const float *x, const float *w, const float *b,
                          const float *off, const float *mask, const kn_tensor *xt, int64_t m,
                          int64_t group, int64_t og, const kn_spatial_geom *g, float *y)
{
    int64_t batch = xt->dims[0], chans = xt->dims[1], cg = chans / group, mg = m / group;
    int64_t r = cg * g->k_size, ncol, K = g->k_size, P = g->out_size;
    if (col_elems(c, r, P, &ncol))
        return c->err->code;
    float *col = malloc(sizeof(float) * (size_t)ncol);
    if (!col)
        return kn_op_nomem(c);
    for (int64_t n = 0; n < batch; n++) {
        const float *xn = x + n * chans * g->in_size;
        const float *offn = off + n * og * 2 * K * P;
        const float *mn = mask ? mask + n * og * K * P : NULL;
        for (int64_t gi = 0; gi < group; gi++) {
            float *yg = y + (n * m + gi * mg) * P;
            deform_im2col(xn, offn, mn, chans, gi * cg, cg, og, g, col);
            for (int64_t j = 0; j < mg; j++)
                for (int64_t p = 0; p < P; p++)
                    yg[j * P + p] = b ? b[gi * mg + j] : 0.0f;
            gemm_acc_float(mg, r, P, w + gi * mg * r, col, P, yg, P);
        }
    }
    free(col);
    return KN_OK;
}

static int run_deform_conv(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    const kn_tensor *x = c->in[0], *w = c->in[1], *off = c->in[2];
    const kn_tensor *b = kn_op_in(c, 3), *mask = kn_op_in(c, 4);
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int rc;
    if ((rc = kn_check_same_dtype(c, x, w)) || (rc = kn_check_same_dtype(c, x, off)) ||
        (b && (rc = kn_check_same_dtype(c, x, b))) ||
        (mask && (rc = kn_check_same_dtype(c, x, mask))))
        return rc;
    kn_spatial_geom g;
    int64_t group = kn_attr_int(c->node, "group", 1), og = kn_attr_int(c->node, "offset_group", 1);
    if ((rc = kn_conv_geometry(c, x, w, &g)) || (rc = check_conv_shapes(c, x, w, group)) ||
        (rc = check_bias(c, b, w->dims[0])) ||
        (rc = check_deform_inputs(c, x, off, mask, og, &g)))
        return rc;
    int64_t dims[KN_MAX_RANK];
    conv_out_dims(x, w->dims[0], &g, dims);
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    float *ox, *ow, *ob = NULL, *ooff, *om = NULL, *oy = NULL;
    const float *fx = as_float(x, &ox), *fw = as_float(w, &ow), *foff = as_float(off, &ooff);
    const float *fb = b ? as_float(b, &ob) : NULL, *fm = mask ? as_float(mask, &om) : NULL;
    float *fy = x->dtype == KN_F32 ? y->data : (oy = malloc(sizeof(float) * (size_t)y->numel));
    if (!fx || !fw || !foff || (b && !fb) || (mask && !fm) || !fy)
        rc = kn_op_nomem(c);
    else
        rc = deform_forward(c, fx, fw, fb, foff, fm, x, w->dims[0], group, og, &g, fy);
    if (!rc)
        store_float(y, fy);
    free(ox);
    free(ow);
    free(ob);
    free(ooff);
    free(om);
    free(oy);
    return rc;
}

/* ---------------------------------------------------- CausalConvWithState */

/* Opset 27: per (batch, channel) row, seq = concat(past_state or zeros [k-1], x);
 * y[t] = act(bias + sum_j w[j] * seq[t + j]); present_state = last k-1 of seq. */
static int causal_conv_check(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w,
                             const kn_tensor *b, const kn_tensor *past)
{
    int64_t ch = x->rank == 3 ? x->dims[1] : -1;
    if (x->rank != 3 || w->rank != 3 || w->dims[0] != ch || w->dims[1] != 1 || w->dims[2] < 1)
        return kn_fail(c->err, KN_ERR_ARG,
                       "CausalConvWithState needs input [B, C, L] and weight [C, 1, k] with k >= 1");
    if (b && (b->rank != 1 || b->dims[0] != ch))
        return kn_fail(c->err, KN_ERR_ARG, "CausalConvWithState bias must have shape [C]");
    if (past && (past->rank != 3 || past->dims[0] != x->dims[0] || past->dims[1] != ch ||
                 past->dims[2] != w->dims[2] - 1))
        return kn_fail(c->err, KN_ERR_ARG, "CausalConvWithState past_state must be [B, C, k-1]");
    return KN_OK;
}

static void causal_conv_row(const float *xr, const float *pr, const float *wr, float bias,
                            int64_t len, int64_t k, bool silu, float *seq, float *yr, float *sr)
{
    for (int64_t j = 0; j < k - 1; j++)
        seq[j] = pr ? pr[j] : 0.0f;
    memcpy(seq + k - 1, xr, sizeof(float) * (size_t)len);
    for (int64_t t = 0; t < len; t++) {
        float acc = bias;
        for (int64_t j = 0; j < k; j++)
            acc += wr[j] * seq[t + j];
        yr[t] = silu ? acc / (1.0f + expf(-acc)) : acc;
    }
    memcpy(sr, seq + len, sizeof(float) * (size_t)(k - 1));
}

static int run_causal_conv(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *w = c->in[1], *b = kn_op_in(c, 2), *past = kn_op_in(c, 3);
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int rc;
    if ((rc = kn_check_same_dtype(c, x, w)) || (b && (rc = kn_check_same_dtype(c, x, b))) ||
        (past && (rc = kn_check_same_dtype(c, x, past))) ||
        (rc = causal_conv_check(c, x, w, b, past)))
        return rc;
    const char *act = kn_attr_string(c->node, "activation", "none");
    bool silu = !strcmp(act, "silu") || !strcmp(act, "swish");
    if (!silu && strcmp(act, "none"))
        return kn_fail(c->err, KN_ERR_ARG, "CausalConvWithState activation '%s' is not valid", act);
    int64_t nb = x->dims[0], ch = x->dims[1], len = x->dims[2], k = w->dims[2];
    int64_t sdims[3] = {nb, ch, k - 1};
    kn_tensor *y = kn_op_output(c, 0, x->dtype, 3, x->dims);
    kn_tensor *st = y && c->n_out > 1 ? kn_op_output(c, 1, x->dtype, 3, sdims) : NULL;
    if (!y || (c->n_out > 1 && !st))
        return c->err->code;
    float *ox, *ow, *ob = NULL, *op = NULL;
    const float *fx = as_float(x, &ox), *fw = as_float(w, &ow);
    const float *fb = b ? as_float(b, &ob) : NULL, *fp = past ? as_float(past, &op) : NULL;
    float *fy = malloc(sizeof(float) * (size_t)(y->numel + 1));
    float *fs = malloc(sizeof(float) * (size_t)(nb * ch * (k - 1) + 1));
    float *seq = malloc(sizeof(float) * (size_t)(len + k));
    if (!fx || !fw || (b && !fb) || (past && !fp) || !fy || !fs || !seq) {
        rc = kn_op_nomem(c);
    } else {
        for (int64_t r = 0; r < nb * ch; r++) {
            int64_t cc = r % ch;
            causal_conv_row(fx + r * len, fp ? fp + r * (k - 1) : NULL, fw + cc * k,
                            fb ? fb[cc] : 0.0f, len, k, silu, seq, fy + r * len, fs + r * (k - 1));
        }
        store_float(y, fy);
        if (st)
            store_float(st, fs);
    }
    free(ox);
    free(ow);
    free(ob);
    free(op);
    free(fy);
    free(fs);
    free(seq);
    return rc;
}

const kn_op_def kn_ops_conv[] = {
    {"", "Conv", 1, run_conv, NULL, kn_conv_infer, .prepare = prepare_conv, .release = release_conv_state},
    {"com.microsoft", "FusedConv", 1, run_fused_conv, NULL, kn_conv_infer, .prepare = prepare_conv,
     .release = release_conv_state},
    {"", "ConvTranspose", 1, run_conv_transpose, NULL, NULL, .prepare = prepare_conv_transpose,
     .release = release_conv_state},
    {"", "ConvInteger", 1, run_conv_integer, NULL, NULL, false, kn_conv_integer_prepare, kn_qdyn_state_release},
    {"", "DeformConv", 1, run_deform_conv, NULL, NULL},
    {"", "CausalConvWithState", 1, run_causal_conv, NULL, NULL},
    {0},
};
