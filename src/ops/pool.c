/* pool.c - pooling operators: MaxPool (with optional Indices), AveragePool, LpPool,
 * GlobalAveragePool, GlobalMaxPool, GlobalLpPool, MaxUnpool, MaxRoiPool, RoiAlign.
 *
 * Inputs are [N, C, d1..dk].  Windowed pools share one geometry (kernel, strides,
 * dilations, pads / auto_pad read through spatial.h, plus ceil_mode) and one
 * window walker; values are read into double (exact for every dtype the pools
 * accept) and rounded on store.  float32 2-D MaxPool (without Indices) and
 * AveragePool with dilation 1, and float32 GlobalAverage/GlobalMaxPool, take direct
 * float loops (vmath row reductions for the global ones) split over the session's
 * threads by planes, as does 8-bit 2-D MaxPool (QDQ models); the double walker stays
 * their reference.  com.microsoft NhwcMaxPool: the 8-bit MaxPool on channels-last
 * tensors (vectors of channels per tap). */
#include "ops/op_util.h"
#include "ops/spatial.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* window reads per chunk of planes handed to a thread */
#define POOL_GRAIN 32768

static int check_pool_input(kn_op_ctx *c, const kn_tensor *x)
{
    if (x->rank < 3 || x->rank - 2 > KN_MAX_SPATIAL)
        return kn_fail(c->err, KN_ERR_ARG, "%s input must have rank >= 3, got %d",
                       c->node->op_type, x->rank);
    return KN_OK;
}

/* Output size of one axis for explicit pads (spec rule: with ceil_mode, a last
 * window that would start in the end padding is dropped). */
static int64_t pool_out_len(int64_t in, int64_t pb, int64_t pe, int64_t ext, int64_t s, bool ceil_mode)
{
    int64_t span = in + pb + pe - ext;
    if (!ceil_mode)
        return span / s + 1;
    int64_t out = (span + s - 1) / s + 1;
    if ((out - 1) * s >= in + pb)
        out--;
    return out;
}

/* kernel_shape, strides, dilations, pads/auto_pad, ceil_mode -> geometry.
 * Attributes an older opset lacks (dilations, ceil_mode) are simply absent. */
int kn_pool_geometry(kn_op_ctx *c, const kn_tensor *x, kn_spatial_geom *g)
{
    int rc;
    if ((rc = check_pool_input(c, x)))
        return rc;
    memset(g, 0, sizeof *g);
    int n = g->nsp = x->rank - 2;
    const int64_t *ks;
    if (kn_attr_ints(c->node, "kernel_shape", &ks) != n)
        return kn_fail(c->err, KN_ERR_ARG, "%s needs kernel_shape with %d values",
                       c->node->op_type, n);
    int64_t pads[2 * KN_MAX_SPATIAL];
    if ((rc = kn_spatial_ints(c, "kernel_shape", n, 1, 1, g->k)) ||
        (rc = kn_spatial_ints(c, "strides", n, 1, 1, g->stride)) ||
        (rc = kn_spatial_ints(c, "dilations", n, 1, 1, g->dil)) ||
        (rc = kn_spatial_ints(c, "pads", 2 * n, 0, 0, pads)))
        return rc;
    bool ceil_mode = kn_attr_int(c->node, "ceil_mode", 0) != 0;
    kn_auto_pad ap;
    if ((rc = kn_read_auto_pad(c, &ap)))
        return rc;
    bool same = ap == KN_PAD_SAME_UPPER || ap == KN_PAD_SAME_LOWER, valid = ap == KN_PAD_VALID;
    g->in_size = g->out_size = g->k_size = 1;
    for (int i = 0; i < n; i++) {
        int64_t in = x->dims[i + 2], ext = (g->k[i] - 1) * g->dil[i] + 1, s = g->stride[i];
        g->in[i] = in;
        if (same) {
            bool upper = ap == KN_PAD_SAME_UPPER;
            g->out[i] = kn_same_pads(in, s, ext, upper, &g->pad_b[i], &g->pad_e[i]);
        } else {
            if (!valid) {
                g->pad_b[i] = pads[i];
                g->pad_e[i] = pads[i + n];
            }
            if (in + g->pad_b[i] + g->pad_e[i] < ext)
                return kn_fail(c->err, KN_ERR_ARG,
                               "%s kernel extent %lld exceeds padded input size on axis %d",
                               c->node->op_type, (long long)ext, i + 2);
            /* with VALID, ceil_mode gives the same size as floor (spec formula) */
            g->out[i] = pool_out_len(in, g->pad_b[i], g->pad_e[i], ext, s, ceil_mode && !valid);
        }
        if ((rc = kn_spatial_count_axis(c, g, i)))
            return rc;
    }
    return KN_OK;
}

/* A pool's input type when it is a tensor with spatial dims, out[0] then set to
 * (N, C, spatial dims unknown); NULL otherwise. */
static const kn_type *pool_infer_input(kn_infer_ctx *ic)
{
    const kn_type *xt = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!xt || xt->kind != KN_TYPE_TENSOR || xt->rank < 3 || ic->n_out < 1)
        return NULL;
    kn_infer_spatial_out(&ic->out[0], xt->dtype, xt->rank, xt->dims[0], xt->dims[1]);
    return xt;
}

/* Static output types of MaxPool / AveragePool (pool_geometry on the input's
 * type when its spatial dims are known) and of the global pools (N, C, 1...). */
int kn_pool_infer(kn_infer_ctx *ic)
{
    const kn_type *xt = pool_infer_input(ic);
    kn_tensor x;
    if (!xt || !kn_infer_spatial_probe(xt, &x))
        return KN_OK;
    kn_error err;
    kn_op_ctx c = kn_infer_op_ctx(ic, &err);
    kn_spatial_geom g;
    if (kn_pool_geometry(&c, &x, &g) == KN_OK)
        for (int i = 0; i < g.nsp; i++)
            ic->out[0].dims[i + 2].value = g.out[i];
    return KN_OK;
}

int kn_global_pool_infer(kn_infer_ctx *ic)
{
    const kn_type *xt = pool_infer_input(ic);
    for (int i = 2; xt && i < xt->rank; i++)
        ic->out[0].dims[i].value = 1;
    return KN_OK;
}

static bool odometer_next(int n, const int64_t *dims, int64_t *idx)
{
    for (int d = n - 1; d >= 0; d--) {
        if (++idx[d] < dims[d])
            return true;
        idx[d] = 0;
    }
    return false;
}

/* Whole input as doubles (malloc'ed). */
static double *load_all(const kn_tensor *t)
{
    double *buf = malloc(sizeof(double) * (size_t)(t->numel ? t->numel : 1));
    if (!buf)
        return NULL;
    if (t->dtype == KN_F32) {
        const float *f = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            buf[i] = f[i];
    } else {
        for (int64_t i = 0; i < t->numel; i++)
            buf[i] = kn_load_f64(t->data, t->dtype, (size_t)i);
    }
    return buf;
}

static void store_all(kn_tensor *y, const double *v)
{
    if (y->dtype == KN_F32) {
        float *f = y->data;
        for (int64_t i = 0; i < y->numel; i++)
            f[i] = (float)v[i];
        return;
    }
    for (int64_t i = 0; i < y->numel; i++)
        kn_store_f64(y->data, y->dtype, (size_t)i, v[i]);
}

/* ------------------------------------------------------ windowed pooling */

typedef enum { POOL_MAX, POOL_AVG, POOL_LP } pool_kind;

typedef struct pool_params {
    pool_kind kind;
    bool count_include_pad;
    double p;              /* LpPool exponent */
    bool col_major;        /* MaxPool storage_order 1 */
} pool_params;

/* Result of one window at output position opos of one plane. */
static double pool_window(const double *plane, const kn_spatial_geom *g, const pool_params *pp,
                          const int64_t *opos, int64_t *arg)
{
    int n = g->nsp;
    int64_t kpos[KN_MAX_SPATIAL] = {0}, start[KN_MAX_SPATIAL];
    for (int d = 0; d < n; d++)
        start[d] = opos[d] * g->stride[d] - g->pad_b[d];
    double acc = pp->kind == POOL_MAX ? -INFINITY : 0.0;
    int64_t count = 0, padded_count = 0, best = -1;
    do {
        int64_t off = 0, coff = 0, cstride = 1;
        bool inside = true, in_pads = true;
        for (int d = 0; d < n; d++) {
            int64_t ix = start[d] + kpos[d] * g->dil[d];
            if (ix < 0 || ix >= g->in[d])
                inside = false;
            if (ix < -g->pad_b[d] || ix >= g->in[d] + g->pad_e[d])
                in_pads = false;
            off = off * g->in[d] + ix;
        }
        if (in_pads)
            padded_count++;
        if (!inside)
            continue;
        for (int d = 0; d < n; d++) { /* column-major offset for storage_order 1 */
            coff += (start[d] + kpos[d] * g->dil[d]) * cstride;
            cstride *= g->in[d];
        }
        double v = plane[off];
        count++;
        if (pp->kind == POOL_MAX) {
            if (v > acc || best < 0 || (isnan(v) && !isnan(acc))) {
                acc = v;
                best = pp->col_major ? coff : off;
            }
        } else if (pp->kind == POOL_AVG) {
            acc += v;
        } else {
            acc += pow(fabs(v), pp->p);
        }
    } while (odometer_next(n, g->k, kpos));
    if (arg)
        *arg = best < 0 ? 0 : best;
    if (pp->kind == POOL_AVG) {
        int64_t div = pp->count_include_pad ? padded_count : count;
        return div ? acc / (double)div : 0.0;
    }
    if (pp->kind == POOL_LP)
        return pow(acc, 1.0 / pp->p);
    return acc;
}

/* Runs the window over every plane; y and idx (may be NULL) are N*C*out_size. */
static void pool_planes(const double *x, int64_t planes, const kn_spatial_geom *g, const pool_params *pp,
                        double *y, int64_t *idx)
{
    for (int64_t pl = 0; pl < planes; pl++) {
        const double *plane = x + pl * g->in_size;
        int64_t opos[KN_MAX_SPATIAL] = {0}, o = 0;
        if (g->out_size == 0)
            continue;
        do {
            int64_t arg;
            double v = pool_window(plane, g, pp, opos, idx ? &arg : NULL);
            y[pl * g->out_size + o] = v;
            if (idx)
                idx[pl * g->out_size + o] = pl * g->in_size + arg;
            o++;
        } while (odometer_next(g->nsp, g->out, opos));
    }
}

/* ---- float32 2-D planes ---- */

typedef struct pool2d_job {
    const kn_vmath_ops *vm;
    const kn_spatial_geom *g;
    const pool_params *pp;
    const float *x;
    float *y;
} pool2d_job;

/* [lo, hi) of kernel taps k with 0 <= start + k < limit (clamped to [0, k_len]) */
static void tap_range(int64_t start, int64_t k_len, int64_t limit, int64_t *lo, int64_t *hi)
{
    *lo = start < 0 ? -start : 0;
    *hi = limit - start < k_len ? limit - start : k_len;
    if (*lo > k_len) *lo = k_len;
    if (*hi < *lo) *hi = *lo;
}

/* Widest input row the float path handles (its per-thread row buffer). */
#define POOL_ROW_MAX 4096

/* hbuf[i] = max(buf[i .. i + k)) for every full window start i in [0, W - k], with
 * the vector kernels (NaN-propagating, as the scalar taps); false when W < k. */
static bool window_max_row(const pool2d_job *j, const float *buf, int64_t W, float *hbuf)
{
    int64_t k = j->g->k[1], n = W - k + 1;
    if (n < 1)
        return false;
    memcpy(hbuf, buf, sizeof(float) * (size_t)n);
    for (int64_t kw = 1; kw < k; kw++)
        j->vm->binary_vv(KN_VM_MAX, hbuf, buf + kw, hbuf, (size_t)n);
    return true;
}

/* Output ow of a row from buf (kernel rows hlo..hhi already combined): the taps of
 * its window that fall inside the input, max or (count_include_pad aware) mean. */
static float edge_output(const pool2d_job *j, const float *buf, int64_t W, int64_t rows,
                         int64_t padded_rows, int64_t ow)
{
    const kn_spatial_geom *g = j->g;
    int64_t w0 = ow * g->stride[1] - g->pad_b[1], wlo, whi;
    tap_range(w0, g->k[1], W, &wlo, &whi);
    if (rows == 0)
        whi = wlo; /* no input row under the window */
    if (j->pp->kind == POOL_MAX) {
        float m = -INFINITY;
        for (int64_t kw = wlo; kw < whi; kw++) {
            float v = buf[w0 + kw];
            if (v > m || (isnan(v) && !isnan(m)))
                m = v;
        }
        return m;
    }
    float sum = 0.0f;
    for (int64_t kw = wlo; kw < whi; kw++)
        sum += buf[w0 + kw];
    int64_t count = rows * (whi - wlo);
    if (j->pp->count_include_pad) {
        int64_t qlo, qhi;
        tap_range(w0 + g->pad_b[1], g->k[1], W + g->pad_b[1] + g->pad_e[1], &qlo, &qhi);
        count = padded_rows * (qhi - qlo);
    }
    return count ? sum / (float)count : 0.0f;
}

/* One output row: kernel rows hlo..hhi combined column-wise (max or sum) into buf
 * with the vector kernels, then the outputs: for max, those whose window lies
 * wholly inside the row read their vector maxima from hbuf in one strided sweep,
 * the edges (and every average) go through edge_output. */
static void pool2d_row(const pool2d_job *j, const float *plane, int64_t h0, int64_t hlo,
                       int64_t hhi, float *buf, float *hbuf, float *y)
{
    const kn_spatial_geom *g = j->g;
    int64_t W = g->in[1], s = g->stride[1], pb = g->pad_b[1], out = g->out[1];
    bool max = j->pp->kind == POOL_MAX;
    if (hhi > hlo) {
        memcpy(buf, plane + (h0 + hlo) * W, sizeof(float) * (size_t)W);
        for (int64_t kh = hlo + 1; kh < hhi; kh++)
            j->vm->binary_vv(max ? KN_VM_MAX : KN_VM_ADD, buf, plane + (h0 + kh) * W, buf,
                             (size_t)W);
    }
    int64_t plo = 0, phi = 0; /* rows inside the padded extent (count_include_pad) */
    tap_range(h0 + g->pad_b[0], g->k[0], g->in[0] + g->pad_b[0] + g->pad_e[0], &plo, &phi);
    bool full = max && hhi > hlo && window_max_row(j, buf, W, hbuf);
    /* outputs [lo, hi) have windows inside [0, W): ow s - pb >= 0, ow s - pb + k <= W */
    int64_t lo = out, hi = out;
    if (full) {
        lo = (pb + s - 1) / s;
        hi = (W - g->k[1] + pb) / s + 1;
        lo = lo < out ? lo : out;
        hi = hi < lo ? lo : hi < out ? hi : out;
    }
    for (int64_t ow = 0; ow < lo; ow++)
        y[ow] = edge_output(j, buf, W, hhi - hlo, phi - plo, ow);
    const float *h = hbuf + lo * s - pb;
    for (int64_t ow = lo; ow < hi; ow++, h += s)
        y[ow] = *h;
    for (int64_t ow = hi; ow < out; ow++)
        y[ow] = edge_output(j, buf, W, hhi - hlo, phi - plo, ow);
}

static void pool2d_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const pool2d_job *j = ctx;
    const kn_spatial_geom *g = j->g;
    float buf[POOL_ROW_MAX], hbuf[POOL_ROW_MAX];
    (void)thread_index;
    for (int64_t pl = begin; pl < end; pl++) {
        const float *plane = j->x + pl * g->in_size;
        float *y = j->y + pl * g->out_size;
        for (int64_t oh = 0; oh < g->out[0]; oh++, y += g->out[1]) {
            int64_t h0 = oh * g->stride[0] - g->pad_b[0], hlo, hhi;
            tap_range(h0, g->k[0], g->in[0], &hlo, &hhi);
            pool2d_row(j, plane, h0, hlo, hhi, buf, hbuf, y);
        }
    }
}

/* float32, two spatial axes, dilation 1, Max or Average: true when done */
static bool pool2d_f32(kn_op_ctx *c, const kn_tensor *x, const kn_spatial_geom *g,
                       const pool_params *pp, kn_tensor *y)
{
    if (x->dtype != KN_F32 || g->nsp != 2 || g->dil[0] != 1 || g->dil[1] != 1 ||
        pp->kind == POOL_LP || g->in[1] > POOL_ROW_MAX)
        return false;
    pool2d_job j = {kn_vmath(), g, pp, x->data, y->data};
    int64_t per_plane = g->out_size * g->k_size + 1;
    kn_parallel_for(c->pool, x->dims[0] * x->dims[1], POOL_GRAIN / per_plane + 1, pool2d_planes,
                    &j);
    return true;
}

/* 8-bit MaxPool (QDQ models after fuse_qdq): any dilation, two spatial axes, the
 * int8 values compared signed.  An all-padding window gives the type's minimum. */
typedef struct pool2d_q8_job {
    const kn_spatial_geom *g;
    const uint8_t *x;
    uint8_t *y;
    uint8_t flip;               /* 0x80 for int8: compare as unsigned after the flip */
} pool2d_q8_job;

static uint8_t max_window_q8(const pool2d_q8_job *j, const uint8_t *plane, int64_t oh, int64_t ow)
{
    const kn_spatial_geom *g = j->g;
    uint8_t m = 0;
    for (int64_t kh = 0; kh < g->k[0]; kh++) {
        int64_t ih = oh * g->stride[0] - g->pad_b[0] + kh * g->dil[0];
        if (ih < 0 || ih >= g->in[0])
            continue;
        const uint8_t *row = plane + ih * g->in[1];
        for (int64_t kw = 0; kw < g->k[1]; kw++) {
            int64_t iw = ow * g->stride[1] - g->pad_b[1] + kw * g->dil[1];
            uint8_t v = iw >= 0 && iw < g->in[1] ? (uint8_t)(row[iw] ^ j->flip) : 0;
            m = v > m ? v : m;
        }
    }
    return (uint8_t)(m ^ j->flip);
}

static void pool2d_q8_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const pool2d_q8_job *j = ctx;
    const kn_spatial_geom *g = j->g;
    (void)thread_index;
    for (int64_t pl = begin; pl < end; pl++) {
        const uint8_t *plane = j->x + pl * g->in_size;
        uint8_t *y = j->y + pl * g->out_size;
        for (int64_t oh = 0; oh < g->out[0]; oh++)
            for (int64_t ow = 0; ow < g->out[1]; ow++)
                *y++ = max_window_q8(j, plane, oh, ow);
    }
}

static bool pool2d_q8(kn_op_ctx *c, const kn_tensor *x, const kn_spatial_geom *g, const pool_params *pp,
                      kn_tensor *y)
{
    if ((x->dtype != KN_U8 && x->dtype != KN_I8) || g->nsp != 2 || pp->kind != POOL_MAX)
        return false;
    pool2d_q8_job j = {g, x->data, y->data, x->dtype == KN_I8 ? 0x80 : 0};
    int64_t per_plane = g->out_size * g->k_size + 1;
    kn_parallel_for(c->pool, x->dims[0] * x->dims[1], POOL_GRAIN / per_plane + 1, pool2d_q8_planes, &j);
    return true;
}

static int run_pool(kn_op_ctx *c, pool_params *pp)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    bool ints_ok = pp->kind == POOL_MAX && (x->dtype == KN_I8 || x->dtype == KN_U8);
    if (!kn_dtype_is_float(x->dtype) && !ints_ok)
        return kn_unsupported_dtype(c, x->dtype);
    kn_spatial_geom g;
    int rc = kn_pool_geometry(c, x, &g);
    if (rc)
        return rc;
    int64_t dims[KN_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < g.nsp; i++)
        dims[i + 2] = g.out[i];
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, dims);
    if (!y)
        return c->err->code;
    kn_tensor *yi = NULL;
    if (pp->kind == POOL_MAX && c->n_out > 1) {
        yi = kn_op_output(c, 1, KN_I64, x->rank, dims);
        if (!yi)
            return c->err->code;
    }
    if (y->numel == 0)
        return KN_OK;
    if (!yi && (pool2d_f32(c, x, &g, pp, y) || pool2d_q8(c, x, &g, pp, y)))
        return KN_OK;
    double *xd = load_all(x), *yd = malloc(sizeof(double) * (size_t)y->numel);
    if (!xd || !yd) {
        free(xd);
        free(yd);
        return kn_op_nomem(c);
    }
    pool_planes(xd, x->dims[0] * x->dims[1], &g, pp, yd, yi ? (int64_t *)yi->data : NULL);
    store_all(y, yd);
    free(xd);
    free(yd);
    return KN_OK;
}

/* ---------------------------------------------------------- com.microsoft NhwcMaxPool */

/* MaxPool on [N, d1.., C] 8-bit tensors (QDQ models kept channels-last by
 * opt/fuse_qdq_layout.c): 2-D windows, each output pixel the running maximum of its
 * taps' channel vectors.  int8 is compared as uint8 after flipping the sign bit. */
typedef struct nhwc_pool_job {
    const kn_spatial_geom *g;
    const uint8_t *x;
    uint8_t *y;
    int64_t ch;
    uint8_t flip;
} nhwc_pool_job;

static void max_into_generic(uint8_t *m, const uint8_t *v, int64_t n, uint8_t flip)
{
    for (int64_t c = 0; c < n; c++) {
        uint8_t x = (uint8_t)(v[c] ^ flip);
        m[c] = x > m[c] ? x : m[c];
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_NHWC_POOL_AVX512 1
__attribute__((target("avx512f,avx512bw"))) static void max_into_avx512(uint8_t *m, const uint8_t *v, int64_t n,
                                                                        uint8_t flip)
{
    __m512i f = _mm512_set1_epi8((char)flip);
    int64_t c = 0;
    for (; c + 64 <= n; c += 64) {
        __m512i x = _mm512_xor_si512(_mm512_loadu_si512(v + c), f);
        _mm512_storeu_si512(m + c, _mm512_max_epu8(_mm512_loadu_si512(m + c), x));
    }
    max_into_generic(m + c, v + c, n - c, flip);
}
#endif

static void nhwc_pool_pixels(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const nhwc_pool_job *j = ctx;
    const kn_spatial_geom *g = j->g;
    void (*max_into)(uint8_t *, const uint8_t *, int64_t, uint8_t) = max_into_generic;
#ifdef HAVE_NHWC_POOL_AVX512
    if (kn_cpu_isa() >= KN_ISA_AVX512)
        max_into = max_into_avx512;
#endif
    (void)thread_index;
    for (int64_t o = begin; o < end; o++) {
        int64_t b = o / g->out_size, oh = o % g->out_size / g->out[1], ow = o % g->out[1];
        uint8_t *y = j->y + o * j->ch;
        memset(y, 0, (size_t)j->ch);
        for (int64_t kh = 0; kh < g->k[0]; kh++) {
            int64_t ih = oh * g->stride[0] - g->pad_b[0] + kh * g->dil[0];
            for (int64_t kw = 0; kw < g->k[1] && ih >= 0 && ih < g->in[0]; kw++) {
                int64_t iw = ow * g->stride[1] - g->pad_b[1] + kw * g->dil[1];
                if (iw >= 0 && iw < g->in[1])
                    max_into(y, j->x + ((b * g->in[0] + ih) * g->in[1] + iw) * j->ch, j->ch, j->flip);
            }
        }
        for (int64_t c = 0; j->flip && c < j->ch; c++)
            y[c] ^= j->flip;
    }
}

static int run_nhwc_max_pool(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (x->dtype != KN_U8 && x->dtype != KN_I8)
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 4)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "NhwcMaxPool supports 2-D pooling (rank 4 input) only");
    kn_tensor xv = *x; /* channels-first dims for the shared geometry */
    xv.dims[1] = x->dims[3];
    xv.dims[2] = x->dims[1];
    xv.dims[3] = x->dims[2];
    kn_spatial_geom g;
    int rc = kn_pool_geometry(c, &xv, &g);
    if (rc)
        return rc;
    int64_t dims[4] = {x->dims[0], g.out[0], g.out[1], x->dims[3]};
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, 4, dims);
    if (!y)
        return c->err->code;
    nhwc_pool_job j = {&g, x->data, y->data, x->dims[3], x->dtype == KN_I8 ? 0x80 : 0};
    int64_t per_pixel = g.k_size * x->dims[3] + 1;
    kn_parallel_for(c->pool, x->dims[0] * g.out_size, POOL_GRAIN / per_pixel + 1, nhwc_pool_pixels, &j);
    return KN_OK;
}

static int run_max_pool(kn_op_ctx *c)
{
    int64_t so = kn_attr_int(c->node, "storage_order", 0);
    if (so != 0 && so != 1)
        return kn_fail(c->err, KN_ERR_ARG, "MaxPool storage_order must be 0 or 1");
    pool_params pp = {POOL_MAX, false, 0, so == 1};
    return run_pool(c, &pp);
}

static int run_average_pool(kn_op_ctx *c)
{
    pool_params pp = {POOL_AVG, kn_attr_int(c->node, "count_include_pad", 0) != 0, 0, false};
    return run_pool(c, &pp);
}

/* LpPool's p: a float attribute in opset 1, an int later. */
static double lp_exponent(const kn_node *n)
{
    const kn_attr *a = kn_attr_find(n, "p");
    if (!a)
        return 2.0;
    return a->type == KN_ATTR_FLOAT ? (double)a->f : (double)a->i;
}

static int run_lp_pool(kn_op_ctx *c)
{
    double p = lp_exponent(c->node);
    if (!(p > 0))
        return kn_fail(c->err, KN_ERR_ARG, "LpPool p must be positive");
    pool_params pp = {POOL_LP, false, p, false};
    return run_pool(c, &pp);
}

/* ---------------------------------------------------------- global pools */

typedef struct global_job {
    const kn_vmath_ops *vm;
    bool max;
    const float *x;
    float *y;
    int64_t inner;
} global_job;

static void global_planes(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const global_job *j = ctx;
    size_t n = (size_t)j->inner;
    (void)thread_index;
    for (int64_t pl = begin; pl < end; pl++) {
        const float *v = j->x + pl * j->inner;
        j->y[pl] = j->max ? j->vm->max(v, n) : j->vm->sum(v, n) / (float)n;
    }
}

static int run_global(kn_op_ctx *c, pool_kind kind, double p)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int rc = check_pool_input(c, x);
    if (rc)
        return rc;
    int64_t dims[KN_MAX_RANK], inner = 1;
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 2; i < x->rank; i++) {
        dims[i] = 1;
        inner *= x->dims[i];
    }
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    if (x->dtype == KN_F32 && kind != POOL_LP && inner > 0) {
        global_job j = {kn_vmath(), kind == POOL_MAX, x->data, y->data, inner};
        kn_parallel_for(c->pool, y->numel, POOL_GRAIN / inner + 1, global_planes, &j);
        return KN_OK;
    }
    double *xd = load_all(x), *yd = malloc(sizeof(double) * (size_t)y->numel);
    if (!xd || !yd) {
        free(xd);
        free(yd);
        return kn_op_nomem(c);
    }
    for (int64_t pl = 0; pl < y->numel; pl++) {
        const double *v = xd + pl * inner;
        double acc = kind == POOL_MAX ? -INFINITY : 0.0;
        for (int64_t i = 0; i < inner; i++) {
            if (kind == POOL_MAX)
                acc = (v[i] > acc || isnan(v[i])) ? v[i] : acc;
            else if (kind == POOL_AVG)
                acc += v[i];
            else
                acc += pow(fabs(v[i]), p);
        }
        if (kind == POOL_AVG)
            acc = inner ? acc / (double)inner : NAN;
        else if (kind == POOL_LP)
            acc = pow(acc, 1.0 / p);
        yd[pl] = acc;
    }
    store_all(y, yd);
    free(xd);
    free(yd);
    return KN_OK;
}

static int run_global_average_pool(kn_op_ctx *c)
{
    return run_global(c, POOL_AVG, 0);
}

static int run_global_max_pool(kn_op_ctx *c)
{
    return run_global(c, POOL_MAX, 0);
}

static int run_global_lp_pool(kn_op_ctx *c)
{
    double p = lp_exponent(c->node);
    if (!(p > 0))
        return kn_fail(c->err, KN_ERR_ARG, "GlobalLpPool p must be positive");
    return run_global(c, POOL_LP, p);
}

/* ------------------------------------------------------------- MaxUnpool */

/* The default output shape [N, C, (in - 1) * stride + kernel - pads] (the shape
 * the indices refer to) and the requested one (output_shape input, else the same). */
static int unpool_out_dims(kn_op_ctx *c, const kn_tensor *x, int64_t *def, int64_t *dims)
{
    int n = x->rank - 2, rc;
    int64_t k[KN_MAX_SPATIAL], s[KN_MAX_SPATIAL], pads[2 * KN_MAX_SPATIAL];
    const int64_t *ks;
    if (kn_attr_ints(c->node, "kernel_shape", &ks) != n)
        return kn_fail(c->err, KN_ERR_ARG, "MaxUnpool needs kernel_shape with %d values", n);
    if ((rc = kn_spatial_ints(c, "kernel_shape", n, 1, 1, k)) ||
        (rc = kn_spatial_ints(c, "strides", n, 1, 1, s)) ||
        (rc = kn_spatial_ints(c, "pads", 2 * n, 0, 0, pads)))
        return rc;
    def[0] = x->dims[0];
    def[1] = x->dims[1];
    for (int i = 0; i < n; i++) {
        def[i + 2] = (x->dims[i + 2] - 1) * s[i] + k[i] - pads[i] - pads[i + n];
        if (def[i + 2] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "MaxUnpool output size is negative");
    }
    memcpy(dims, def, sizeof(int64_t) * (size_t)x->rank);
    const kn_tensor *os = kn_op_in(c, 2);
    if (!os)
        return KN_OK;
    int64_t v[KN_MAX_RANK];
    int cnt = kn_read_ints(os, v, KN_MAX_RANK, c->err);
    if (cnt < 0)
        return c->err->code;
    if (cnt != x->rank)
        return kn_fail(c->err, KN_ERR_ARG, "MaxUnpool output_shape has %d values, expected %d",
                       cnt, x->rank);
    for (int i = 0; i < cnt; i++) {
        if (v[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "MaxUnpool output_shape is negative");
        dims[i] = v[i];
    }
    return KN_OK;
}

/* Offset in the output of flat index idx of the default shape, or -1 when that
 * position lies outside the output (an output_shape smaller than the default). */
static int64_t unpool_target(int rank, const int64_t *def, const int64_t *dims, int64_t idx)
{
    int64_t coord[KN_MAX_RANK], off = 0;
    for (int d = rank - 1; d >= 0; d--) {
        coord[d] = def[d] ? idx % def[d] : 0;
        idx = def[d] ? idx / def[d] : 0;
    }
    for (int d = 0; d < rank; d++) {
        if (coord[d] >= dims[d])
            return -1;
        off = off * dims[d] + coord[d];
    }
    return off;
}

/* Y (zeros) gets X's values at the positions the indices name.  Indices are
 * flat offsets into the default output shape; with a larger output_shape the
 * default-shaped result sits at the start of every axis. */
static int run_max_unpool(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *ind = c->in[1];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    int rc = check_pool_input(c, x);
    if (rc)
        return rc;
    if (ind->dtype != KN_I64 || ind->rank != x->rank || ind->numel != x->numel)
        return kn_fail(c->err, KN_ERR_ARG, "MaxUnpool indices must be int64 with the shape of X");
    int64_t def[KN_MAX_RANK], dims[KN_MAX_RANK], def_n;
    if ((rc = unpool_out_dims(c, x, def, dims)) || (rc = kn_shape_numel(x->rank, def, &def_n, c->err)))
        return rc;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, dims);
    if (!y)
        return c->err->code;
    size_t es = kn_dtype_size(x->dtype);
    const int64_t *iv = ind->data;
    for (int64_t i = 0; i < x->numel; i++) {
        if (iv[i] < 0 || iv[i] >= def_n)
            return kn_fail(c->err, KN_ERR_RUNTIME, "MaxUnpool index %lld is out of range [0, %lld)",
                           (long long)iv[i], (long long)def_n);
        int64_t t = unpool_target(x->rank, def, dims, iv[i]);
        if (t >= 0)
            memcpy((char *)y->data + (size_t)t * es, (const char *)x->data + (size_t)i * es, es);
    }
    return KN_OK;
}

/* ------------------------------------------------------------ MaxRoiPool */

static int check_rois(kn_op_ctx *c, const kn_tensor *rois, int cols)
{
    if (rois->rank != 2 || rois->dims[1] != cols || !kn_dtype_is_float(rois->dtype))
        return kn_fail(c->err, KN_ERR_ARG, "%s rois must be a float tensor [num_rois, %d]",
                       c->node->op_type, cols);
    return KN_OK;
}

static int run_max_roi_pool(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *rois = c->in[1];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 4)
        return kn_fail(c->err, KN_ERR_ARG, "MaxRoiPool input must have rank 4");
    int rc = check_rois(c, rois, 5);
    if (rc)
        return rc;
    const int64_t *ps;
    if (kn_attr_ints(c->node, "pooled_shape", &ps) != 2 || ps[0] < 1 || ps[1] < 1)
        return kn_fail(c->err, KN_ERR_ARG, "MaxRoiPool needs pooled_shape with 2 positive values");
    double scale = kn_attr_float(c->node, "spatial_scale", 1.0f);
    int64_t nr = rois->dims[0], ch = x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t dims[4] = {nr, ch, ps[0], ps[1]};
    kn_tensor *y = kn_op_output(c, 0, x->dtype, 4, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    double *xd = load_all(x), *yd = malloc(sizeof(double) * (size_t)y->numel);
    if (!xd || !yd) {
        free(xd);
        free(yd);
        return kn_op_nomem(c);
    }
    for (int64_t r = 0; r < nr && !rc; r++) {
        double b = kn_load_f64(rois->data, rois->dtype, (size_t)(r * 5));
        if (!(b >= 0 && b < (double)x->dims[0])) {
            rc = kn_fail(c->err, KN_ERR_RUNTIME, "MaxRoiPool batch index %g is out of range", b);
            break;
        }
        double co[4];
        for (int j = 0; j < 4; j++)
            co[j] = round(kn_load_f64(rois->data, rois->dtype, (size_t)(r * 5 + 1 + j)) * scale);
        double rw = fmax(co[2] - co[0] + 1, 1), rh = fmax(co[3] - co[1] + 1, 1);
        double bh = rh / (double)ps[0], bw = rw / (double)ps[1];
        for (int64_t cc = 0; cc < ch; cc++) {
            const double *plane = xd + ((int64_t)b * ch + cc) * h * w;
            for (int64_t i = 0; i < ps[0]; i++) {
                for (int64_t j = 0; j < ps[1]; j++) {
                    double hs = fmin(fmax(floor(i * bh) + co[1], 0), (double)h);
                    double he = fmin(fmax(ceil((i + 1) * bh) + co[1], 0), (double)h);
                    double ws = fmin(fmax(floor(j * bw) + co[0], 0), (double)w);
                    double we = fmin(fmax(ceil((j + 1) * bw) + co[0], 0), (double)w);
                    double m = (he <= hs || we <= ws) ? 0 : -INFINITY;
                    for (int64_t yy = (int64_t)hs; yy < (int64_t)he; yy++)
                        for (int64_t xx = (int64_t)ws; xx < (int64_t)we; xx++)
                            m = fmax(m, plane[yy * w + xx]);
                    yd[((r * ch + cc) * ps[0] + i) * ps[1] + j] = m;
                }
            }
        }
    }
    if (!rc)
        store_all(y, yd);
    free(xd);
    free(yd);
    return rc;
}

/* -------------------------------------------------------------- RoiAlign */

typedef struct roi_params {
    int64_t oh, ow, sampling;
    double scale, offset;
    bool is_max, half_pixel;
} roi_params;

/* Bilinear sample for RoiAlign (clamped at the border, zero beyond one pixel out);
 * returns the four weighted corner values in wv[]. */
static void roi_bilinear(const double *plane, int64_t h, int64_t w, double y, double x, double wv[4])
{
    wv[0] = wv[1] = wv[2] = wv[3] = 0;
    if (!(y >= -1.0 && y <= (double)h && x >= -1.0 && x <= (double)w)) /* also NaN */
        return;
    if (y <= 0)
        y = 0;
    if (x <= 0)
        x = 0;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
    if (y0 >= h - 1) {
        y0 = y1 = h - 1;
        y = (double)y0;
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= w - 1) {
        x0 = x1 = w - 1;
        x = (double)x0;
    } else {
        x1 = x0 + 1;
    }
    double ly = y - (double)y0, lx = x - (double)x0, hy = 1 - ly, hx = 1 - lx;
    wv[0] = hy * hx * plane[y0 * w + x0];
    wv[1] = hy * lx * plane[y0 * w + x1];
    wv[2] = ly * hx * plane[y1 * w + x0];
    wv[3] = ly * lx * plane[y1 * w + x1];
}

/* One output bin of one RoI and channel. */
static double roi_bin(const double *plane, int64_t h, int64_t w, const roi_params *rp,
                      const double box[4], int64_t ph, int64_t pw)
{
    if (h <= 0 || w <= 0)
        return 0.0;
    double sx = box[0] * rp->scale - rp->offset, sy = box[1] * rp->scale - rp->offset;
    double ex = box[2] * rp->scale - rp->offset, ey = box[3] * rp->scale - rp->offset;
    double rw = ex - sx, rh = ey - sy;
    if (!rp->half_pixel) {
        rw = fmax(rw, 1.0);
        rh = fmax(rh, 1.0);
    }
    double bh = rh / (double)rp->oh, bw = rw / (double)rp->ow;
    /* adaptive sampling grid: ceil(roi size / bins), bounded against absurd RoIs */
    double fgh = rp->sampling > 0 ? (double)rp->sampling : ceil(rh / (double)rp->oh);
    double fgw = rp->sampling > 0 ? (double)rp->sampling : ceil(rw / (double)rp->ow);
    if (!(fgh >= 0 && fgh <= 4096 && fgw >= 0 && fgw <= 4096))
        fgh = fgw = 0;
    int64_t gh = (int64_t)fgh, gw = (int64_t)fgw;
    double acc = 0;
    bool first = true;
    for (int64_t iy = 0; iy < gh; iy++) {
        double y = sy + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
        for (int64_t ix = 0; ix < gw; ix++) {
            double x = sx + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
            double wv[4];
            roi_bilinear(plane, h, w, y, x, wv);
            if (rp->is_max) {
                double m = fmax(fmax(wv[0], wv[1]), fmax(wv[2], wv[3]));
                acc = first ? m : fmax(acc, m);
                first = false;
            } else {
                acc += wv[0] + wv[1] + wv[2] + wv[3];
            }
        }
    }
    int64_t count = gh * gw > 0 ? gh * gw : 1;
    return rp->is_max ? acc : acc / (double)count;
}

static int roi_align_params(kn_op_ctx *c, roi_params *rp)
{
    const char *mode = kn_attr_string(c->node, "mode", "avg");
    const char *ctm = kn_attr_string(c->node, "coordinate_transformation_mode",
                                     c->opset >= 16 ? "half_pixel" : "output_half_pixel");
    rp->oh = kn_attr_int(c->node, "output_height", 1);
    rp->ow = kn_attr_int(c->node, "output_width", 1);
    rp->sampling = kn_attr_int(c->node, "sampling_ratio", 0);
    rp->scale = kn_attr_float(c->node, "spatial_scale", 1.0f);
    if (strcmp(mode, "avg") && strcmp(mode, "max"))
        return kn_fail(c->err, KN_ERR_ARG, "RoiAlign mode '%s' is not valid", mode);
    if (strcmp(ctm, "half_pixel") && strcmp(ctm, "output_half_pixel"))
        return kn_fail(c->err, KN_ERR_ARG, "RoiAlign coordinate_transformation_mode '%s' is not valid",
                       ctm);
    if (rp->oh < 1 || rp->ow < 1 || rp->oh > (1 << 20) || rp->ow > (1 << 20) || rp->sampling < 0 ||
        rp->sampling > 4096)
        return kn_fail(c->err, KN_ERR_ARG, "RoiAlign output size or sampling_ratio is invalid");
    rp->is_max = !strcmp(mode, "max");
    rp->half_pixel = !strcmp(ctm, "half_pixel");
    rp->offset = rp->half_pixel ? 0.5 : 0.0;
    return KN_OK;
}

static int run_roi_align(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    const kn_tensor *x = c->in[0], *rois = c->in[1], *bi = c->in[2];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 4)
        return kn_fail(c->err, KN_ERR_ARG, "RoiAlign input must have rank 4");
    roi_params rp = {0};
    int rc;
    if ((rc = check_rois(c, rois, 4)) || (rc = roi_align_params(c, &rp)))
        return rc;
    int64_t nr = rois->dims[0], ch = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (!kn_dtype_is_int(bi->dtype) || bi->rank != 1 || bi->dims[0] != nr)
        return kn_fail(c->err, KN_ERR_ARG, "RoiAlign batch_indices must be an int tensor [%lld]",
                       (long long)nr);
    int64_t dims[4] = {nr, ch, rp.oh, rp.ow};
    kn_tensor *y = kn_op_output(c, 0, x->dtype, 4, dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    double *xd = load_all(x), *yd = malloc(sizeof(double) * (size_t)y->numel);
    if (!xd || !yd) {
        free(xd);
        free(yd);
        return kn_op_nomem(c);
    }
    for (int64_t r = 0; r < nr && !rc; r++) {
        int64_t b = kn_load_i64(bi->data, bi->dtype, (size_t)r);
        if (b < 0 || b >= x->dims[0]) {
            rc = kn_fail(c->err, KN_ERR_RUNTIME, "RoiAlign batch index %lld is out of range",
                         (long long)b);
            break;
        }
        double box[4];
        for (int j = 0; j < 4; j++)
            box[j] = kn_load_f64(rois->data, rois->dtype, (size_t)(r * 4 + j));
        for (int64_t cc = 0; cc < ch; cc++) {
            const double *plane = xd + (b * ch + cc) * h * w;
            for (int64_t i = 0; i < rp.oh; i++)
                for (int64_t j = 0; j < rp.ow; j++)
                    yd[((r * ch + cc) * rp.oh + i) * rp.ow + j] = roi_bin(plane, h, w, &rp, box, i, j);
        }
    }
    if (!rc)
        store_all(y, yd);
    free(xd);
    free(yd);
    return rc;
}

const kn_op_def kn_ops_pool[] = {
    {"", "MaxPool", 1, run_max_pool, NULL, kn_pool_infer},
    {"", "AveragePool", 1, run_average_pool, NULL, kn_pool_infer},
    {"", "LpPool", 1, run_lp_pool, NULL, NULL},
    {"", "GlobalAveragePool", 1, run_global_average_pool, NULL, kn_global_pool_infer},
    {"", "GlobalMaxPool", 1, run_global_max_pool, NULL, kn_global_pool_infer},
    {"", "GlobalLpPool", 1, run_global_lp_pool, NULL, NULL},
    {"", "MaxUnpool", 1, run_max_unpool, NULL, NULL},
    {"", "MaxRoiPool", 1, run_max_roi_pool, NULL, NULL},
    {"", "RoiAlign", 1, run_roi_align, NULL, NULL},
    {"com.microsoft", "NhwcMaxPool", 1, run_nhwc_max_pool, NULL, NULL},
    {0},
};
