/* quant_dynamic.c - operator family 'quant_dynamic': dynamic INT8 matrix products,
 * the form `kiln quantize --mode dynamic` (and ONNX Runtime's quantize_dynamic)
 * writes, after src/opt/fuse_dynamic_quant.c fused it:
 *
 *   com.microsoft DynamicQuantizeMatMul(A float [..., K], B int8/uint8 [K, N],
 *       b_scale [N] or scalar, b_zero_point (optional, like b_scale), bias [N]
 *       (optional)) -> Y float [..., N]:
 *     A is quantized per tensor to uint8 exactly as DynamicQuantizeLinear does
 *     (kernels/dynquant.h), then Y = float(sum_k (Aq - a_zero)(B - b_zero)) *
 *     (a_scale * b_scale[n]) + bias[n] - the unfused graph's arithmetic, in its order.
 *
 * Fast path: B (minus its zero point) packed once at prepare for the integer GEMM
 * (kernels/qgemm.h: VNNI / AVX-512BW / AVX2), A quantized by the vectorized, threaded
 * kernel into session scratch, and the dequantization (scales, bias) done in the
 * GEMM's output stage, which evaluates the same float expression: the fast path
 * equals the reference bit for bit, on every kernel variant and thread count.
 * Without a state (B not constant, unit tests) a plain
 * reference loop runs.  The same packing serves the int32 fast paths of
 * MatMulInteger (constant B) and ConvInteger (2-D, group 1: im2col + GEMM), declared
 * in quant_dynamic.h and called from matmul.c / conv.c. */
#include "ops/quant_dynamic.h"

#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/dynquant.h"
#include "kernels/qgemm.h"
#include "ops/op_util.h"
#include "ops/quant_gemm.h"

/* A constant B [K, N] minus its zero point, packed. */
typedef struct qdyn_state {
    kn_qpacked_b *pb;
    int64_t k, n;
} qdyn_state;

void kn_qdyn_state_release(void *state)
{
    qdyn_state *s = state;
    if (s)
        kn_qpacked_b_free(s->pb);
    free(s);
}

/* ---------------------------------------------------------------- prepare */

static bool present(const kn_prepare_ctx *pc, int i)
{
    return i < pc->n_in && pc->node->in[i] >= 0;
}

/* Pack constant input ib minus constant zero point input iz (absent, or 1 / N values
 * of B's dtype); no state when anything does not fit.  conv: B is a ConvInteger
 * weight [N, K...] used transposed, else a MatMul B [K, N].  drop: the kernel never
 * reads B's data once it has the state. */
static int pack_const_b(kn_prepare_ctx *pc, int ib, int iz, bool conv, bool drop, void **state)
{
    const kn_tensor *b = ib < pc->n_in ? pc->in_const[ib] : NULL, *zp = NULL;
    if (!b || (conv ? b->rank < 3 : b->rank != 2) || (b->dtype != KN_U8 && b->dtype != KN_I8) || b->numel < 1)
        return KN_OK;
    int64_t n = conv ? b->dims[0] : b->dims[1], k = b->numel / n;
    if (present(pc, iz)) {
        zp = pc->in_const[iz];
        if (!zp || zp->dtype != b->dtype || zp->rank > 1 || (zp->numel != 1 && zp->numel != n))
            return KN_OK;
    }
    int8_t *b8 = kn_qweight_to_int8(b, zp, conv ? k : 1);
    if (!b8)
        return KN_OK;
    kn_qpacked_b *pb = kn_qgemm_pack_b(kn_qgemm_best(), (size_t)k, (size_t)n, b8, (size_t)(conv ? k : n), conv);
    free(b8);
    qdyn_state *s = pb ? calloc(1, sizeof *s) : NULL;
    if (!s) {
        kn_qpacked_b_free(pb);
        return kn_fail(pc->err, KN_ERR_NOMEM, "out of memory packing a quantized weight");
    }
    s->pb = pb;
    s->k = k;
    s->n = n;
    *state = s;
    if (drop)
        pc->drop_inputs |= 1u << ib;
    return KN_OK;
}

static int prepare_dqmm(kn_prepare_ctx *pc, void **state)
{
    return pack_const_b(pc, 1, 3, false, true, state);
}

/* MatMulInteger keeps B: a per-row A zero point takes the reference path. */
int kn_matmul_integer_prepare(kn_prepare_ctx *pc, void **state)
{
    return pack_const_b(pc, 1, 3, false, false, state);
}

int kn_conv_integer_prepare(kn_prepare_ctx *pc, void **state)
{
    if (kn_attr_int(pc->node, "group", 1) != 1)
        return KN_OK;
    return pack_const_b(pc, 1, 3, true, false, state);
}

static const qdyn_state *state_for(const kn_op_ctx *c, int64_t k, int64_t n)
{
    const qdyn_state *s = c->state;
    return s && s->k == k && s->n == n ? s : NULL;
}

/* ---------------------------------------------------------------- DynamicQuantizeMatMul */

typedef struct dqmm_args {
    const kn_tensor *a, *b, *scale, *zp, *bias;
    int64_t m, k, n;
} dqmm_args;

static bool is_vec(const kn_tensor *t, int64_t n)
{
    return t->rank <= 1 && (t->numel == 1 || t->numel == n);
}

static int dqmm_validate(kn_op_ctx *c, dqmm_args *g)
{
    g->a = c->in[0];
    g->b = c->in[1];
    g->scale = c->in[2];
    g->zp = kn_op_in(c, 3);
    g->bias = kn_op_in(c, 4);
    if (g->a->dtype != KN_F32 || g->scale->dtype != KN_F32)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "DynamicQuantizeMatMul: A and b_scale must be float32");
    if (g->b->dtype != KN_I8 && g->b->dtype != KN_U8)
        return kn_fail(c->err, KN_ERR_ARG, "DynamicQuantizeMatMul: B must be int8 or uint8");
    if (g->b->rank != 2 || g->a->rank < 1)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "DynamicQuantizeMatMul: B must be 2-D and A at least 1-D");
    g->k = g->b->dims[0];
    g->n = g->b->dims[1];
    if (g->a->dims[g->a->rank - 1] != g->k)
        return kn_fail(c->err, KN_ERR_ARG, "DynamicQuantizeMatMul: A's last dim %lld differs from B's rows %lld",
                       (long long)g->a->dims[g->a->rank - 1], (long long)g->k);
    g->m = kn_dims_prod(g->a->dims, 0, g->a->rank - 1);
    if (!is_vec(g->scale, g->n) || (g->zp && (g->zp->dtype != g->b->dtype || !is_vec(g->zp, g->n))))
        return kn_fail(c->err, KN_ERR_ARG, "DynamicQuantizeMatMul: b_scale / b_zero_point must have 1 or N values of B's type");
    if (g->bias && (g->bias->dtype != KN_F32 || g->bias->rank != 1 || g->bias->numel != g->n))
        return kn_fail(c->err, KN_ERR_ARG, "DynamicQuantizeMatMul: bias must be float32 [N]");
    return KN_OK;
}

/* The reference: int64 sums of (Aq - a_zero)(B - b_zero), the float formula of the
 * unfused graph: float(acc) * (a_scale * b_scale[j]) + bias[j]. */
static void dqmm_ref(const dqmm_args *g, const uint8_t *aq, float a_scale, uint8_t a_zero, float *y)
{
    const float *bs = g->scale->data, *bias = g->bias ? g->bias->data : NULL;
    for (int64_t i = 0; i < g->m; i++) {
        for (int64_t j = 0; j < g->n; j++) {
            int64_t bz = g->zp ? kn_load_i64(g->zp->data, g->zp->dtype, (size_t)(g->zp->numel == 1 ? 0 : j)) : 0;
            int64_t acc = 0;
            for (int64_t k = 0; k < g->k; k++)
                acc += ((int64_t)aq[i * g->k + k] - a_zero) *
                       (kn_load_i64(g->b->data, g->b->dtype, (size_t)(k * g->n + j)) - bz);
            float s = a_scale * bs[g->scale->numel == 1 ? 0 : j];
            float v = (float)(int32_t)acc * s;
            if (bias)
                v += bias[j];
            y[i * g->n + j] = v;
        }
    }
}

static int run_dqmm(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    dqmm_args g = {0};
    int rc = dqmm_validate(c, &g);
    if (rc)
        return rc;
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, g.a->dims, sizeof(int64_t) * (size_t)g.a->rank);
    dims[g.a->rank - 1] = g.n;
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, g.a->rank, dims);
    if (!y)
        return c->err->code;
    if (!y->numel)
        return KN_OK;
    uint8_t *aq = kn_op_scratch(c, (size_t)g.a->numel + 1);
    if (!aq)
        return c->err->code;
    float a_scale;
    uint8_t a_zero;
    kn_dynq_tensor(c->pool, g.a->data, (size_t)g.a->numel, aq, &a_scale, &a_zero);
    const qdyn_state *s = state_for(c, g.k, g.n);
    if (!s) {
        dqmm_ref(&g, aq, a_scale, a_zero, y->data);
        return KN_OK;
    }
    kn_qgemm_output out = {KN_QOUT_FLOAT, y->data, (size_t)g.n, a_scale, g.scale->data,
                           g.scale->numel != 1, g.bias ? g.bias->data : NULL, 0, 0.0f, 0};
    rc = kn_qgemm_run(c->pool, (size_t)g.m, (size_t)g.n, (size_t)g.k, aq, (size_t)g.k, a_zero, s->pb, &out);
    return rc ? kn_fail(c->err, rc, "DynamicQuantizeMatMul: integer GEMM failed") : KN_OK;
}

static int infer_dqmm(kn_infer_ctx *ic)
{
    if (ic->n_in < 2 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    const kn_type *a = ic->in[0], *b = ic->in[1];
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = KN_F32;
    o->rank = a->rank;
    for (int i = 0; i < a->rank; i++)
        o->dims[i] = a->dims[i];
    if (a->rank >= 1) {
        kn_dim unknown = {-1, NULL};
        o->dims[a->rank - 1] = b && b->rank == 2 ? b->dims[1] : unknown;
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- MatMulInteger */

int kn_matmul_integer_fast(kn_op_ctx *c, kn_tensor *y, bool *done)
{
    *done = false;
    const kn_tensor *a = c->in[0], *b = c->in[1], *az = kn_op_in(c, 2);
    if (b->rank != 2 || a->rank < 1 || (az && az->numel != 1) || !y->numel)
        return KN_OK;
    const qdyn_state *s = state_for(c, b->dims[0], b->dims[1]);
    if (!s || a->dims[a->rank - 1] != s->k)
        return KN_OK;
    int32_t zero = az ? (int32_t)kn_load_i64(az->data, az->dtype, 0) : 0;
    const uint8_t *a8 = a->data;
    if (a->dtype == KN_I8) { /* shift to uint8: the products are unchanged */
        uint8_t *t = kn_op_scratch(c, (size_t)a->numel);
        if (!t)
            return c->err->code;
        const int8_t *src = a->data;
        for (int64_t i = 0; i < a->numel; i++)
            t[i] = (uint8_t)(src[i] + 128);
        a8 = t;
        zero += 128;
    }
    size_t m = (size_t)(a->numel / s->k);
    kn_qgemm_output out = {KN_QOUT_INT32, y->data, (size_t)s->n, 1.0f, NULL, 0, NULL, 0, 0.0f, 0};
    int rc = kn_qgemm_run(c->pool, m, (size_t)s->n, (size_t)s->k, a8, (size_t)s->k, (uint8_t)zero, s->pb, &out);
    if (rc)
        return kn_fail(c->err, rc, "MatMulInteger: integer GEMM failed");
    *done = true;
    return KN_OK;
}

/* ---------------------------------------------------------------- ConvInteger */

enum { CONV_ROWS = 256 }; /* output pixels per im2col block */

typedef struct convi_job {
    const uint8_t *x;       /* one image [C, H, W] */
    int64_t c;
    const kn_spatial_geom *g;
    uint8_t pad;            /* the input zero point (as uint8) */
    uint8_t flip;           /* 0x80 for int8 input (shifted to uint8), else 0 */
} convi_job;

/* kw input bytes of one kernel row starting at column ix (all inside). */
static void copy_run(uint8_t *dst, const uint8_t *src, int64_t n, int64_t dil, uint8_t flip)
{
    if (dil == 1 && !flip) {
        memcpy(dst, src, (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = (uint8_t)(src[i * dil] ^ flip);
}

/* im2col row of output pixel p: K = C*kh*kw bytes in the weight's order. */
static void convi_row(const convi_job *j, int64_t p, uint8_t *row)
{
    const kn_spatial_geom *g = j->g;
    int64_t oy = p / g->out[1], ox = p % g->out[1];
    int64_t iy0 = oy * g->stride[0] - g->pad_b[0], ix0 = ox * g->stride[1] - g->pad_b[1];
    bool x_inside = ix0 >= 0 && ix0 + (g->k[1] - 1) * g->dil[1] < g->in[1];
    for (int64_t ch = 0; ch < j->c; ch++) {
        const uint8_t *plane = j->x + ch * g->in[0] * g->in[1];
        for (int64_t ky = 0; ky < g->k[0]; ky++, row += g->k[1]) {
            int64_t iy = iy0 + ky * g->dil[0];
            bool y_inside = iy >= 0 && iy < g->in[0];
            if (y_inside && x_inside) {
                copy_run(row, plane + iy * g->in[1] + ix0, g->k[1], g->dil[1], j->flip);
                continue;
            }
            for (int64_t kx = 0; kx < g->k[1]; kx++) {
                int64_t ix = ix0 + kx * g->dil[1];
                bool in = y_inside && ix >= 0 && ix < g->in[1];
                row[kx] = in ? (uint8_t)(plane[iy * g->in[1] + ix] ^ j->flip) : j->pad;
            }
        }
    }
}

typedef struct convi_block {
    const convi_job *j;
    uint8_t *a;
    size_t k;
    int64_t p0;
} convi_block;

static void convi_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const convi_block *b = ctx;
    (void)thread_index;
    for (int64_t i = begin; i < end; i++)
        convi_row(b->j, b->p0 + i, b->a + (size_t)i * b->k);
}

int kn_conv_integer_fast(kn_op_ctx *c, const kn_spatial_geom *g, int64_t group, kn_tensor *y, bool *done)
{
    *done = false;
    const kn_tensor *x = c->in[0], *w = c->in[1], *xz = kn_op_in(c, 2);
    const qdyn_state *s = state_for(c, w->dims[0] ? w->numel / w->dims[0] : 0, w->dims[0]);
    if (!s || group != 1 || g->nsp != 2 || x->dims[1] * g->k_size != s->k)
        return KN_OK;
    convi_job j = {NULL, x->dims[1], g, 0, x->dtype == KN_I8 ? 0x80 : 0};
    j.pad = (uint8_t)((xz ? kn_load_i64(xz->data, xz->dtype, 0) : 0) + (j.flip ? 128 : 0));
    size_t rows = (size_t)(g->out_size < CONV_ROWS ? g->out_size : CONV_ROWS), k = (size_t)s->k, m = (size_t)s->n;
    uint8_t *a = kn_op_scratch(c, rows * k + sizeof(int32_t) * rows * m + 64);
    if (!a)
        return c->err->code;
    int32_t *acc = (int32_t *)(a + (rows * k + 63) / 64 * 64);
    kn_qgemm_output out = {KN_QOUT_INT32, acc, m, 1.0f, NULL, 0, NULL, 0, 0.0f, 0};
    for (int64_t n = 0; n < x->dims[0]; n++) {
        j.x = (const uint8_t *)x->data + n * x->dims[1] * g->in_size;
        int32_t *yn = (int32_t *)y->data + n * (int64_t)m * g->out_size;
        for (int64_t p0 = 0; p0 < g->out_size; p0 += (int64_t)rows) {
            size_t r = (size_t)(g->out_size - p0 < (int64_t)rows ? g->out_size - p0 : (int64_t)rows);
            convi_block blk = {&j, a, k, p0};
            kn_parallel_for(c->pool, (int64_t)r, 16, convi_rows, &blk);
            int rc = kn_qgemm_run(c->pool, r, m, k, a, k, j.pad, s->pb, &out);
            if (rc)
                return kn_fail(c->err, rc, "ConvInteger: integer GEMM failed");
            for (size_t i = 0; i < r; i++)
                for (size_t f = 0; f < m; f++)
                    yn[(int64_t)f * g->out_size + p0 + (int64_t)i] = acc[i * m + f];
        }
    }
    *done = true;
    return KN_OK;
}

const kn_op_def kn_ops_quant_dynamic[] = {
    {"com.microsoft", "DynamicQuantizeMatMul", 1, run_dqmm, NULL, infer_dqmm, false, prepare_dqmm,
     kn_qdyn_state_release},
    {0},
};
