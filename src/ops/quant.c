/* quant.c - operator family 'quant': linear quantization.
 *
 *   QuantizeLinear, DequantizeLinear   per-tensor, per-axis and blocked scales
 *   DynamicQuantizeLinear              float32 -> uint8 with computed scale/zero point
 *   QLinearMatMul, QLinearConv         integer matmul / convolution on quantized data
 *   com.microsoft QLinearConv          the same with channels_last (x, y as [N, d.., C])
 *
 * Rounding is half to even (rint in the default rounding mode); stores into
 * integer types saturate.  float8 / int4 / int2 / float4 types are reported as
 * unsupported. */
#include "ops/op_util.h"
#include "kernels/dynquant.h"
#include "ops/quant_gemm.h"
#include "ops/spatial.h"

#include "core/cpu.h"
#include "exec/threadpool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

/* Range of a quantized integer type; false if kiln does not quantize to it. */
static bool quant_range(kn_dtype t, int64_t *lo, int64_t *hi)
{
    switch (t) {
    case KN_U8: *lo = 0; *hi = 255; return true;
    case KN_I8: *lo = -128; *hi = 127; return true;
    case KN_U16: *lo = 0; *hi = 65535; return true;
    case KN_I16: *lo = -32768; *hi = 32767; return true;
    case KN_I32: *lo = INT32_MIN; *hi = INT32_MAX; return true;
    default: return false;
    }
}

static int64_t clamp_i64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Round half to even and saturate into [lo, hi]; NaN becomes 0. */
static int64_t round_saturate(double v, int64_t lo, int64_t hi)
{
    if (isnan(v))
        return 0;
    double r = rint(v);
    if (r <= (double)lo)
        return lo;
    if (r >= (double)hi)
        return hi;
    return (int64_t)r;
}

static int unsupported_type(kn_op_ctx *c, const char *what, kn_dtype t)
{
    return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s does not support %s dtype %s",
                   c->node->op_type, what, kn_dtype_name(t));
}

/* How scale / zero point map onto the elements of x, viewed as [outer, len, inner]
 * around the quantization axis. */
typedef struct qlayout {
    int mode;                   /* 0 per-tensor, 1 per-axis, 2 blocked */
    int64_t outer, len, inner;
    int64_t block, nblocks;
} qlayout;

static int64_t qparam_index(const qlayout *l, int64_t o, int64_t a, int64_t i)
{
    if (l->mode == 0)
        return 0;
    if (l->mode == 1)
        return a;
    return (o * l->nblocks + a / l->block) * l->inner + i;
}

/* Work out the layout of scale (and zero point, which must match it) over x. */
static int qlayout_init(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *scale,
                        const kn_tensor *zp, qlayout *l)
{
    memset(l, 0, sizeof *l);
    int64_t block = c->opset >= 21 ? kn_attr_int(c->node, "block_size", 0) : 0;
    if (block < 0)
        return kn_fail(c->err, KN_ERR_ARG, "block_size must be >= 0, got %lld", (long long)block);
    if (zp && !kn_same_shape(zp, scale) && !(zp->numel == 1 && scale->numel == 1))
        return kn_fail(c->err, KN_ERR_ARG, "zero point and scale have different shapes");
    bool scalar = scale->rank == 0 || (scale->rank == 1 && scale->numel == 1 && block == 0);
    if (scalar && block == 0) {
        if (scale->numel != 1)
            return kn_fail(c->err, KN_ERR_ARG, "scale must have one element");
        l->mode = 0;
        l->outer = 1;
        l->len = x->numel;
        l->inner = 1;
        return KN_OK;
    }
    if (x->rank == 0)
        return kn_fail(c->err, KN_ERR_ARG, "per-axis scale needs an input of rank >= 1");
    int axis;
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 1), x->rank, &axis, c->err))
        return c->err->code;
    l->outer = 1;
    l->inner = 1;
    for (int d = 0; d < axis; d++)
        l->outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
        l->inner *= x->dims[d];
    l->len = x->dims[axis];
    if (block == 0) {
        if (scale->rank != 1 || scale->dims[0] != l->len)
            return kn_fail(c->err, KN_ERR_ARG, "per-axis scale must be 1-D of size %lld",
                           (long long)l->len);
        l->mode = 1;
        return KN_OK;
    }
    l->mode = 2;
    l->block = block;
    l->nblocks = (l->len + block - 1) / block;
    if (scale->rank != x->rank)
        return kn_fail(c->err, KN_ERR_ARG, "blocked scale must have the rank of the input");
    for (int d = 0; d < x->rank; d++) {
        int64_t want = d == axis ? l->nblocks : x->dims[d];
        if (scale->dims[d] != want)
            return kn_fail(c->err, KN_ERR_ARG, "blocked scale dim %d is %lld, expected %lld", d,
                           (long long)scale->dims[d], (long long)want);
    }
    return KN_OK;
}

static bool is_float_scale(kn_dtype t)
{
    return t == KN_F32 || t == KN_F16 || t == KN_BF16 || t == KN_F64;
}

/* ---------------------------------------------------------------- QuantizeLinear */

static int quantize_out_dtype(kn_op_ctx *c, const kn_tensor *zp, kn_dtype *out)
{
    int64_t attr = c->opset >= 21 ? kn_attr_int(c->node, "output_dtype", 0) : 0;
    kn_dtype t = zp ? zp->dtype : attr ? (kn_dtype)attr : KN_U8;
    if (zp && attr && attr != (int64_t)zp->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "output_dtype %lld differs from the zero point dtype %s",
                       (long long)attr, kn_dtype_name(zp->dtype));
    int64_t lo, hi;
    if (!quant_range(t, &lo, &hi))
        return unsupported_type(c, "quantized", t);
    *out = t;
    return KN_OK;
}

/* float32 -> 8-bit with one scale and zero point, the reference's operations in
 * float (divide, round half to even, NaN -> 0, add the zero point, saturate),
 * split over the pool, 16 at a time with AVX-512. */
typedef struct quantize_job {
    const float *x;
    void *y;
    int64_t n;
    float s, z, lo, hi;
    bool u8;
} quantize_job;

static void quantize_f32_generic(const quantize_job *j, int64_t begin, int64_t end)
{
    for (int64_t i = begin; i < end; i++) {
        float q = j->x[i] / j->s;
        float v = (isnan(q) ? 0.0f : nearbyintf(q)) + j->z;
        v = v < j->lo ? j->lo : v > j->hi ? j->hi : v;
        if (j->u8)
            ((uint8_t *)j->y)[i] = (uint8_t)v;
        else
            ((int8_t *)j->y)[i] = (int8_t)v;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_QUANTIZE_AVX512 1
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void quantize_f32_avx512(const quantize_job *j,
                                                                                    int64_t begin, int64_t end)
{
    const __m512 s = _mm512_set1_ps(j->s), z = _mm512_set1_ps(j->z), lo = _mm512_set1_ps(j->lo),
                 hi = _mm512_set1_ps(j->hi);
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        __m512 q = _mm512_div_ps(_mm512_loadu_ps(j->x + i), s);
        __mmask16 ord = _mm512_cmp_ps_mask(q, q, _CMP_ORD_Q);
        __m512 r = _mm512_maskz_mov_ps(ord, _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, z), lo), hi);
        _mm_storeu_si128((__m128i *)((uint8_t *)j->y + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
    }
    quantize_f32_generic(j, i, end);
}
#endif

enum { QUANTIZE_CHUNK = 8192 };

static void quantize_chunks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const quantize_job *j = ctx;
    (void)thread_index;
    begin *= QUANTIZE_CHUNK;
    end = end * QUANTIZE_CHUNK < j->n ? end * QUANTIZE_CHUNK : j->n;
#ifdef HAVE_QUANTIZE_AVX512
    if (kn_cpu_isa() >= KN_ISA_AVX512) {
        quantize_f32_avx512(j, begin, end);
        return;
    }
#endif
    quantize_f32_generic(j, begin, end);
}

/* The per-tensor float32 -> uint8/int8 case; false for the others. */
static bool quantize_f32_fast(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *scale, const kn_tensor *zp,
                              const qlayout *l, kn_tensor *y)
{
    if (x->dtype != KN_F32 || scale->dtype != KN_F32 || l->mode != 0 || (y->dtype != KN_U8 && y->dtype != KN_I8))
        return false;
    bool u8 = y->dtype == KN_U8;
    quantize_job j = {x->data, y->data, x->numel, ((const float *)scale->data)[0],
                      zp ? (float)kn_load_i64(zp->data, zp->dtype, 0) : 0.0f, u8 ? 0.0f : -128.0f,
                      u8 ? 255.0f : 127.0f, u8};
    kn_parallel_for(c->pool, (x->numel + QUANTIZE_CHUNK - 1) / QUANTIZE_CHUNK, 1, quantize_chunks, &j);
    return true;
}

static int run_quantize(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *scale = c->in[1], *zp = kn_op_in(c, 2);
    if (!(is_float_scale(x->dtype) || x->dtype == KN_I32))
        return unsupported_type(c, "input", x->dtype);
    if (!is_float_scale(scale->dtype))
        return unsupported_type(c, "scale", scale->dtype);
    kn_dtype qt = KN_U8;
    if (quantize_out_dtype(c, zp, &qt))
        return c->err->code;
    qlayout l;
    if (qlayout_init(c, x, scale, zp, &l))
        return c->err->code;
    kn_tensor *y = kn_op_output(c, 0, qt, x->rank, x->dims);
    if (!y)
        return c->err->code;
    if (quantize_f32_fast(c, x, scale, zp, &l, y))
        return KN_OK;
    int64_t lo, hi;
    quant_range(qt, &lo, &hi);
    /* float inputs divide in float32 (f16/bf16 quotients rounded back), others in double */
    bool in_float = x->dtype != KN_F64 && x->dtype != KN_I32 && scale->dtype != KN_F64;
    int64_t k = 0;
    for (int64_t o = 0; o < l.outer; o++)
        for (int64_t a = 0; a < l.len; a++)
            for (int64_t i = 0; i < l.inner; i++, k++) {
                int64_t p = qparam_index(&l, o, a, i);
                double s = kn_load_f64(scale->data, scale->dtype, (size_t)p);
                double xv = kn_load_f64(x->data, x->dtype, (size_t)k);
                double q;
                if (in_float)
                    q = kn_round_to_dtype(x->dtype, (float)xv / (float)s);
                else
                    q = xv / s;
                int64_t z = zp ? kn_load_i64(zp->data, zp->dtype, (size_t)p) : 0;
                int64_t r = round_saturate(q, INT64_MIN / 4, INT64_MAX / 4);
                kn_store_i64(y->data, qt, (size_t)k, clamp_i64(r + z, lo, hi));
            }
    return KN_OK;
}

/* ---------------------------------------------------------------- DequantizeLinear */

/* 8-bit -> float32 with one scale and zero point: the reference's value for each
 * of the 256 inputs, looked up. */
typedef struct dequantize_job {
    const uint8_t *x;
    float *y;
    float table[256];           /* by the byte's unsigned value */
} dequantize_job;

static void dequantize_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const dequantize_job *j = ctx;
    (void)thread_index;
    for (int64_t i = begin; i < end; i++)
        j->y[i] = j->table[j->x[i]];
}

static bool dequantize_8bit_fast(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *scale, const kn_tensor *zp,
                                 const qlayout *l, kn_tensor *y)
{
    if ((x->dtype != KN_U8 && x->dtype != KN_I8) || scale->dtype != KN_F32 || y->dtype != KN_F32 || l->mode != 0)
        return false;
    dequantize_job job, *j = &job;
    int64_t z = zp ? kn_load_i64(zp->data, zp->dtype, 0) : 0;
    float s = ((const float *)scale->data)[0];
    for (int b = 0; b < 256; b++) {
        int64_t v = x->dtype == KN_U8 ? b : (int8_t)(uint8_t)b;
        j->table[b] = (float)(v - z) * s;
    }
    j->x = x->data;
    j->y = y->data;
    kn_parallel_for(c->pool, x->numel, 65536, dequantize_range, j);
    return true;
}

static int run_dequantize(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *scale = c->in[1], *zp = kn_op_in(c, 2);
    int64_t lo, hi;
    if (!quant_range(x->dtype, &lo, &hi))
        return unsupported_type(c, "input", x->dtype);
    if (!is_float_scale(scale->dtype))
        return unsupported_type(c, "scale", scale->dtype);
    if (zp && zp->dtype != x->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "zero point dtype %s differs from input dtype %s",
                       kn_dtype_name(zp->dtype), kn_dtype_name(x->dtype));
    kn_dtype ot = scale->dtype;
    int64_t attr = c->opset >= 23 ? kn_attr_int(c->node, "output_dtype", 0) : 0;
    if (attr) {
        if (!is_float_scale((kn_dtype)attr))
            return unsupported_type(c, "output", (kn_dtype)attr);
        ot = (kn_dtype)attr;
    }
    qlayout l;
    if (qlayout_init(c, x, scale, zp, &l))
        return c->err->code;
    kn_tensor *y = kn_op_output(c, 0, ot, x->rank, x->dims);
    if (!y)
        return c->err->code;
    if (dequantize_8bit_fast(c, x, scale, zp, &l, y))
        return KN_OK;
    int64_t k = 0;
    for (int64_t o = 0; o < l.outer; o++)
        for (int64_t a = 0; a < l.len; a++)
            for (int64_t i = 0; i < l.inner; i++, k++) {
                int64_t p = qparam_index(&l, o, a, i);
                int64_t xv = kn_load_i64(x->data, x->dtype, (size_t)k);
                int64_t z = zp ? kn_load_i64(zp->data, zp->dtype, (size_t)p) : 0;
                double s = kn_load_f64(scale->data, scale->dtype, (size_t)p);
                double v;
                if (ot == KN_F64 || scale->dtype == KN_F64)
                    v = (double)(xv - z) * s;
                else
                    v = (float)(xv - z) * (float)s;
                kn_store_f64(y->data, ot, (size_t)k, v);
            }
    return KN_OK;
}

/* ---------------------------------------------------------------- DynamicQuantizeLinear */

static int run_dynamic_quantize(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (x->dtype != KN_F32)
        return unsupported_type(c, "input", x->dtype);
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_U8, x->rank, x->dims);
    if (!y)
        return c->err->code;
    float scale;
    uint8_t zp;
    kn_dynq_tensor(c->pool, x->data, (size_t)x->numel, y->data, &scale, &zp);
    if (c->n_out > 1) {
        kn_tensor *s = kn_op_output(c, 1, KN_F32, 0, NULL);
        if (!s)
            return c->err->code;
        *(float *)s->data = scale;
    }
    if (c->n_out > 2) {
        kn_tensor *z = kn_op_output(c, 2, KN_U8, 0, NULL);
        if (!z)
            return c->err->code;
        *(uint8_t *)z->data = zp;
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- type inference */

/* Q and DQ keep x's shape; Q gives the zero point's type (else output_dtype, else
 * uint8), DQ the scale's (float32 when unknown). */
static int infer_quantize(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    ic->out[0] = *ic->in[0];
    ic->out[0].kind = KN_TYPE_TENSOR;
    int64_t odt = kn_attr_int(ic->node, "output_dtype", 0);
    if (ic->n_in > 2 && ic->in[2] && ic->in[2]->dtype != KN_UNDEFINED)
        ic->out[0].dtype = ic->in[2]->dtype;
    else
        ic->out[0].dtype = odt == KN_I8 ? KN_I8 : odt == 0 || odt == KN_U8 ? KN_U8 : KN_UNDEFINED;
    return KN_OK;
}

static int infer_dequantize(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    ic->out[0] = *ic->in[0];
    ic->out[0].kind = KN_TYPE_TENSOR;
    ic->out[0].dtype = ic->n_in > 1 && ic->in[1] && is_float_scale(ic->in[1]->dtype) ? ic->in[1]->dtype : KN_F32;
    return KN_OK;
}

/* ---------------------------------------------------------------- shared by QLinear* */

/* A quantized scale/zero-point pair: per-tensor (n == 1) or a vector of n values. */
typedef struct qparam {
    const kn_tensor *scale, *zp;
    int64_t n;
} qparam;

static int qparam_get(kn_op_ctx *c, int is, int iz, kn_dtype qt, const char *name, qparam *p)
{
    p->scale = kn_op_in(c, is);
    p->zp = kn_op_in(c, iz);
    if (!p->scale)
        return kn_fail(c->err, KN_ERR_MODEL, "%s scale is missing", name);
    if (!is_float_scale(p->scale->dtype))
        return unsupported_type(c, "scale", p->scale->dtype);
    if (p->scale->rank > 1 || p->scale->numel < 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s scale must be a scalar or 1-D", name);
    p->n = p->scale->numel;
    if (p->zp) {
        if (p->zp->dtype != qt)
            return kn_fail(c->err, KN_ERR_ARG, "%s zero point dtype %s differs from %s", name,
                           kn_dtype_name(p->zp->dtype), kn_dtype_name(qt));
        if (p->zp->numel != p->n && p->zp->numel != 1)
            return kn_fail(c->err, KN_ERR_ARG, "%s zero point and scale sizes differ", name);
    }
    return KN_OK;
}

static int64_t qparam_zp(const qparam *p, int64_t i)
{
    if (!p->zp)
        return 0;
    return kn_load_i64(p->zp->data, p->zp->dtype, (size_t)(p->zp->numel == 1 ? 0 : i));
}

static float qparam_scale(const qparam *p, int64_t i)
{
    return (float)kn_load_f64(p->scale->data, p->scale->dtype, (size_t)(p->n == 1 ? 0 : i));
}

static bool is_q8(kn_dtype t)
{
    return t == KN_U8 || t == KN_I8;
}

/* ---------------------------------------------------------------- QLinearMatMul */

typedef struct mm_shape {
    int rank;
    int64_t dims[KN_MAX_RANK];
    int64_t batch, m, k, n;
    int64_t sa[KN_MAX_RANK], sb[KN_MAX_RANK]; /* batch strides in matrices */
} mm_shape;

static int matmul_shape(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, mm_shape *s)
{
    if (a->rank < 2 || b->rank < 2)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "QLinearMatMul needs inputs of rank >= 2");
    s->m = a->dims[a->rank - 2];
    s->k = a->dims[a->rank - 1];
    s->n = b->dims[b->rank - 1];
    if (b->dims[b->rank - 2] != s->k)
        return kn_fail(c->err, KN_ERR_ARG, "inner dims differ: %lld vs %lld", (long long)s->k,
                       (long long)b->dims[b->rank - 2]);
    int rb;
    int64_t bd[KN_MAX_RANK];
    if (kn_broadcast_shape(a->rank - 2, a->dims, b->rank - 2, b->dims, &rb, bd, c->err))
        return c->err->code;
    s->rank = rb + 2;
    memcpy(s->dims, bd, sizeof(int64_t) * (size_t)rb);
    s->dims[rb] = s->m;
    s->dims[rb + 1] = s->n;
    kn_broadcast_strides(rb, bd, a->rank - 2, a->dims, s->sa);
    kn_broadcast_strides(rb, bd, b->rank - 2, b->dims, s->sb);
    s->batch = 1;
    for (int i = 0; i < rb; i++)
        s->batch *= bd[i];
    return KN_OK;
}

static int run_qlinear_matmul(kn_op_ctx *c)
{
    for (int i = 0; i < 8; i++)
        if (i != 2 && i != 5 && i != 7)
            KN_REQUIRE_INPUT(c, i);
    const kn_tensor *a = c->in[0], *b = c->in[3];
    kn_dtype yt = kn_op_in(c, 7) ? c->in[7]->dtype : a->dtype;
    if (!is_q8(a->dtype) || !is_q8(b->dtype) || !is_q8(yt))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "QLinearMatMul supports only int8/uint8");
    qparam pa, pb, py;
    if (qparam_get(c, 1, 2, a->dtype, "a", &pa) || qparam_get(c, 4, 5, b->dtype, "b", &pb) ||
        qparam_get(c, 6, 7, yt, "y", &py))
        return c->err->code;
    mm_shape s;
    if (matmul_shape(c, a, b, &s))
        return c->err->code;
    if ((pa.n != 1 && pa.n != s.m) || (pb.n != 1 && pb.n != s.n) || (py.n != 1 && py.n != s.m))
        return kn_fail(c->err, KN_ERR_ARG, "QLinearMatMul scale sizes do not fit the matrices");
    kn_tensor *y = kn_op_output(c, 0, yt, s.rank, s.dims);
    if (!y)
        return c->err->code;
    if (c->state) {
        bool done = false;
        int rc = kn_qmatmul_fast(c, y, &done);
        if (rc || done)
            return rc;
    }
    int64_t lo, hi;
    quant_range(yt, &lo, &hi);
    kn_dtype st = pa.scale->dtype;
    int rb = s.rank - 2;
    int64_t strides[2][KN_MAX_RANK];
    memcpy(strides[0], s.sa, sizeof strides[0]);
    memcpy(strides[1], s.sb, sizeof strides[1]);
    int32_t *aa = malloc((size_t)(a->numel > 0 ? a->numel : 1) * sizeof(int32_t));
    int32_t *ba = malloc((size_t)(b->numel > 0 ? b->numel : 1) * sizeof(int32_t));
    float *mul = malloc((size_t)(s.m * s.n > 0 ? s.m * s.n : 1) * sizeof(float));
    if (!aa || !ba || !mul) {
        free(aa);
        free(ba);
        free(mul);
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory in QLinearMatMul");
    }
    /* subtract zero points once: a's per row, b's per column */
    for (int64_t e = 0; e < a->numel; e++)
        aa[e] = (int32_t)(kn_load_i64(a->data, a->dtype, (size_t)e) - qparam_zp(&pa, (e / s.k) % s.m));
    for (int64_t e = 0; e < b->numel; e++)
        ba[e] = (int32_t)(kn_load_i64(b->data, b->dtype, (size_t)e) - qparam_zp(&pb, e % s.n));
    for (int64_t i = 0; i < s.m; i++)
        for (int64_t j = 0; j < s.n; j++)
            mul[i * s.n + j] = kn_requant_mul(st, qparam_scale(&pa, i), qparam_scale(&pb, j),
                                              qparam_scale(&py, i));
    kn_iter it;
    kn_iter_init(&it, rb, s.dims, 2, strides);
    for (int64_t bi = 0; bi < s.batch; bi++) {
        const int32_t *am = aa + it.off[0] * s.m * s.k, *bm = ba + it.off[1] * s.k * s.n;
        for (int64_t i = 0; i < s.m; i++)
            for (int64_t j = 0; j < s.n; j++) {
                int64_t acc = 0;
                for (int64_t k = 0; k < s.k; k++)
                    acc += (int64_t)am[i * s.k + k] * bm[k * s.n + j];
                int64_t r = kn_requant_value(acc, mul[i * s.n + j], (int32_t)qparam_zp(&py, i), lo, hi);
                kn_store_i64(y->data, yt, (size_t)((bi * s.m + i) * s.n + j), r);
            }
        kn_iter_next(&it);
    }
    free(aa);
    free(ba);
    free(mul);
    return KN_OK;
}

/* ---------------------------------------------------------------- QLinearConv */

/* Channels and groups of a QLinearConv, with its spatial geometry. */
typedef struct qconv_geom {
    kn_spatial_geom sp;
    int64_t n, c, m, group, cpg, mpg;         /* batch, in ch, out ch, groups, per group */
} qconv_geom;

/* Kernel from the weight (kernel_shape, when given, must match it), strides,
 * dilations, pads / auto_pad -> output spatial dims. */
static int qconv_spatial(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, kn_spatial_geom *g)
{
    g->nsp = x->rank - 2;
    for (int i = 0; i < g->nsp; i++) {
        g->in[i] = x->dims[i + 2];
        g->k[i] = w->dims[i + 2];
    }
    const int64_t *ks;
    int nk = kn_attr_ints(c->node, "kernel_shape", &ks);
    if (nk >= 0) {
        if (nk != g->nsp)
            return kn_fail(c->err, KN_ERR_ARG, "kernel_shape has the wrong length");
        for (int i = 0; i < nk; i++)
            if (ks[i] != g->k[i])
                return kn_fail(c->err, KN_ERR_ARG, "kernel_shape differs from the weight shape");
    }
    int n = g->nsp, rc;
    int64_t pads[2 * KN_MAX_SPATIAL];
    kn_auto_pad ap;
    if ((rc = kn_spatial_ints(c, "strides", n, 1, 1, g->stride)) ||
        (rc = kn_spatial_ints(c, "dilations", n, 1, 1, g->dil)) ||
        (rc = kn_spatial_ints(c, "pads", 2 * n, 0, 0, pads)) || (rc = kn_read_auto_pad(c, &ap)))
        return rc;
    g->in_size = g->k_size = g->out_size = 1;
    for (int i = 0; i < n; i++) {
        int64_t ext = (g->k[i] - 1) * g->dil[i] + 1;
        if (ap == KN_PAD_SAME_UPPER || ap == KN_PAD_SAME_LOWER) {
            kn_same_pads(g->in[i], g->stride[i], ext, ap == KN_PAD_SAME_UPPER, &g->pad_b[i],
                         &g->pad_e[i]);
        } else if (ap == KN_PAD_NOTSET) {
            g->pad_b[i] = pads[i];
            g->pad_e[i] = pads[i + n];
        }
        int64_t span = g->in[i] + g->pad_b[i] + g->pad_e[i] - ext;
        if (span < 0)
            return kn_fail(c->err, KN_ERR_ARG, "kernel larger than padded input");
        g->out[i] = span / g->stride[i] + 1;
        if ((rc = kn_spatial_count_axis(c, g, i)))
            return rc;
    }
    return KN_OK;
}

static int qconv_geometry(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *w, qconv_geom *q)
{
    memset(q, 0, sizeof *q);
    if (x->rank < 3 || x->rank != w->rank)
        return kn_fail(c->err, KN_ERR_ARG, "QLinearConv needs x and w of equal rank >= 3");
    q->n = x->dims[0];
    q->c = x->dims[1];
    q->m = w->dims[0];
    q->group = kn_attr_int(c->node, "group", 1);
    if (q->group < 1 || q->c % q->group || q->m % q->group)
        return kn_fail(c->err, KN_ERR_ARG, "group %lld does not divide the channels",
                       (long long)q->group);
    q->cpg = q->c / q->group;
    q->mpg = q->m / q->group;
    if (w->dims[1] != q->cpg)
        return kn_fail(c->err, KN_ERR_ARG, "weight has %lld input channels, expected %lld",
                       (long long)w->dims[1], (long long)q->cpg);
    return qconv_spatial(c, x, w, &q->sp);
}

/* Integer accumulation for one output position of one output channel over
 * zero-point-adjusted data: x is this batch entry's group, w this channel's filter. */
static int64_t qconv_point(const qconv_geom *q, const int32_t *x, const int32_t *w,
                           const int64_t *opos)
{
    const kn_spatial_geom *g = &q->sp;
    int64_t acc = 0, kpos[KN_MAX_SPATIAL] = {0};
    for (int64_t kk = 0; kk < g->k_size; kk++) {
        int64_t xoff = 0;
        bool inside = true;
        for (int d = 0; d < g->nsp && inside; d++) {
            int64_t p = opos[d] * g->stride[d] - g->pad_b[d] + kpos[d] * g->dil[d];
            inside = p >= 0 && p < g->in[d];
            xoff = xoff * g->in[d] + p;
        }
        if (inside)
            for (int64_t ci = 0; ci < q->cpg; ci++)
                acc += (int64_t)x[ci * g->in_size + xoff] * w[ci * g->k_size + kk];
        for (int d = g->nsp - 1; d >= 0; d--) {
            if (++kpos[d] < g->k[d])
                break;
            kpos[d] = 0;
        }
    }
    return acc;
}

/* t - zero point as int32 (zp per-tensor, or per leading-dim slice when per_row). */
static int32_t *zp_adjusted(const kn_tensor *t, const qparam *p, bool per_row)
{
    int32_t *out = malloc((size_t)(t->numel > 0 ? t->numel : 1) * sizeof(int32_t));
    if (!out)
        return NULL;
    int64_t rows = t->rank > 0 ? t->dims[0] : 1, inner = rows ? t->numel / rows : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t z = qparam_zp(p, per_row ? r : 0);
        for (int64_t i = 0; i < inner; i++)
            out[r * inner + i] = (int32_t)(kn_load_i64(t->data, t->dtype, (size_t)(r * inner + i)) - z);
    }
    return out;
}

/* Validated inputs of one QLinearConv. */
typedef struct qconv_args {
    const kn_tensor *x, *w, *bias;   /* x channels-first (a view of the dims when channels_last) */
    kn_dtype yt;
    qparam px, pw, py;
    qconv_geom g;
} qconv_args;

static int qconv_args_read(kn_op_ctx *c, const kn_tensor *x, qconv_args *q)
{
    for (int i = 0; i < 8; i++)
        if (i != 2 && i != 5 && i != 7)
            KN_REQUIRE_INPUT(c, i);
    q->x = x;
    q->w = c->in[3];
    q->bias = kn_op_in(c, 8);
    q->yt = kn_op_in(c, 7) ? c->in[7]->dtype : x->dtype;
    if (!is_q8(x->dtype) || !is_q8(q->w->dtype) || !is_q8(q->yt))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "QLinearConv supports only int8/uint8");
    if (qparam_get(c, 1, 2, x->dtype, "x", &q->px) || qparam_get(c, 4, 5, q->w->dtype, "w", &q->pw) ||
        qparam_get(c, 6, 7, q->yt, "y", &q->py))
        return c->err->code;
    if (qconv_geometry(c, x, q->w, &q->g))
        return c->err->code;
    if (q->px.n != 1 || q->py.n != 1 || (q->pw.n != 1 && q->pw.n != q->g.m))
        return kn_fail(c->err, KN_ERR_ARG, "QLinearConv: x/y scales must be per-tensor and w "
                       "scale per-tensor or per output channel");
    if (q->bias && (q->bias->dtype != KN_I32 || q->bias->numel != q->g.m))
        return kn_fail(c->err, KN_ERR_ARG, "QLinearConv bias must be int32 of size %lld",
                       (long long)q->g.m);
    return KN_OK;
}

/* The plain integer loops: y_data in channels-first order. */
static int qconv_reference(kn_op_ctx *c, const qconv_args *q, void *y_data)
{
    const qconv_geom *g = &q->g;
    int64_t lo = 0, hi = 0;
    quant_range(q->yt, &lo, &hi);
    int64_t zy = qparam_zp(&q->py, 0);
    int32_t *xa = zp_adjusted(q->x, &q->px, false), *wa = zp_adjusted(q->w, &q->pw, q->pw.n > 1);
    if (!xa || !wa) {
        free(xa);
        free(wa);
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory in QLinearConv");
    }
    int64_t yk = 0;
    for (int64_t b = 0; b < g->n; b++)
        for (int64_t m = 0; m < g->m; m++) {
            int64_t grp = m / g->mpg;
            const int32_t *xg = xa + (b * g->c + grp * g->cpg) * g->sp.in_size;
            const int32_t *wm = wa + m * g->cpg * g->sp.k_size;
            int64_t bv = q->bias ? ((const int32_t *)q->bias->data)[m] : 0;
            float mul = kn_requant_mul(q->px.scale->dtype, qparam_scale(&q->px, 0),
                                       qparam_scale(&q->pw, m), qparam_scale(&q->py, 0));
            int64_t opos[KN_MAX_SPATIAL] = {0};
            for (int64_t o = 0; o < g->sp.out_size; o++, yk++) {
                int64_t acc = qconv_point(g, xg, wm, opos) + bv;
                kn_store_i64(y_data, q->yt, (size_t)yk, kn_requant_value(acc, mul, (int32_t)zy, lo, hi));
                for (int d = g->sp.nsp - 1; d >= 0; d--) {
                    if (++opos[d] < g->sp.out[d])
                        break;
                    opos[d] = 0;
                }
            }
        }
    free(xa);
    free(wa);
    return KN_OK;
}

static int run_qlinear_conv(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    qconv_args q;
    if (qconv_args_read(c, c->in[0], &q))
        return c->err->code;
    int64_t odims[KN_MAX_RANK] = {q.g.n, q.g.m};
    for (int i = 0; i < q.g.sp.nsp; i++)
        odims[i + 2] = q.g.sp.out[i];
    kn_tensor *y = kn_op_output(c, 0, q.yt, q.x->rank, odims);
    if (!y)
        return c->err->code;
    if (c->state) {
        bool done = false;
        int rc = kn_qconv_fast(c, &q.g.sp, q.g.group, false, y, &done);
        if (rc || done)
            return rc;
    }
    return qconv_reference(c, &q, y->data);
}

/* ---------------------------------------------------------------- channels-last QLinearConv */

/* dst = src with the channel axis moved: [N, C, S] <-> [N, S, C] (S the product of
 * the spatial dims), one byte per element. */
static void move_channels(const uint8_t *src, uint8_t *dst, int64_t n, int64_t ch, int64_t sp, bool to_last)
{
    for (int64_t b = 0; b < n; b++)
        for (int64_t ci = 0; ci < ch; ci++)
            for (int64_t p = 0; p < sp; p++) {
                size_t first = (size_t)((b * ch + ci) * sp + p), last = (size_t)((b * sp + p) * ch + ci);
                if (to_last)
                    dst[last] = src[first];
                else
                    dst[first] = src[last];
            }
}

/* The reference on channels-last tensors: x moved to channels-first, the plain
 * loops, the result moved back. */
static int qconv_reference_last(kn_op_ctx *c, qconv_args *q, const kn_tensor *x, kn_tensor *y)
{
    const qconv_geom *g = &q->g;
    uint8_t *xf = malloc((size_t)(x->numel > 0 ? x->numel : 1)), *yf = malloc((size_t)(y->numel > 0 ? y->numel : 1));
    int rc = KN_OK;
    if (!xf || !yf) {
        rc = kn_fail(c->err, KN_ERR_NOMEM, "out of memory in QLinearConv");
    } else {
        move_channels(x->data, xf, g->n, g->c, g->sp.in_size, false);
        kn_tensor xv = *q->x;
        xv.data = xf;
        xv.owns_data = false;
        q->x = &xv;
        rc = qconv_reference(c, q, yf);
        if (!rc)
            move_channels(yf, y->data, g->n, g->m, g->sp.out_size, true);
    }
    free(xf);
    free(yf);
    return rc;
}

/* com.microsoft QLinearConv: the ONNX operator, with channels_last = 1 meaning x
 * and y are [N, d1.., C] (w stays [M, C/group, k1..]). */
static int run_qlinear_conv_ms(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!kn_attr_int(c->node, "channels_last", 0))
        return run_qlinear_conv(c);
    if (x->rank < 3)
        return kn_fail(c->err, KN_ERR_ARG, "QLinearConv needs x of rank >= 3");
    kn_tensor xv = *x; /* the channels-first dims, for the geometry */
    xv.dims[1] = x->dims[x->rank - 1];
    for (int d = 2; d < x->rank; d++)
        xv.dims[d] = x->dims[d - 1];
    qconv_args q;
    if (qconv_args_read(c, &xv, &q))
        return c->err->code;
    int64_t odims[KN_MAX_RANK] = {q.g.n};
    for (int i = 0; i < q.g.sp.nsp; i++)
        odims[i + 1] = q.g.sp.out[i];
    odims[x->rank - 1] = q.g.m;
    kn_tensor *y = kn_op_output(c, 0, q.yt, x->rank, odims);
    if (!y)
        return c->err->code;
    if (c->state) {
        bool done = false;
        int rc = kn_qconv_fast(c, &q.g.sp, q.g.group, true, y, &done);
        if (rc || done)
            return rc;
    }
    return qconv_reference_last(c, &q, x, y);
}

const kn_op_def kn_ops_quant[] = {
    {"", "QuantizeLinear", 1, run_quantize, NULL, infer_quantize},
    {"", "DequantizeLinear", 1, run_dequantize, NULL, infer_dequantize},
    {"", "DynamicQuantizeLinear", 1, run_dynamic_quantize, NULL, NULL},
    {"", "QLinearMatMul", 1, run_qlinear_matmul, NULL, NULL, .prepare = kn_qmatmul_prepare,
     .release = kn_qgemm_state_release},
    {"", "QLinearConv", 1, run_qlinear_conv, NULL, NULL, .prepare = kn_qconv_prepare,
     .release = kn_qgemm_state_release},
    /* ONNX Runtime's contrib versions (int16/uint16 QDQ models): same semantics */
    {"com.microsoft", "QLinearConv", 1, run_qlinear_conv_ms, NULL, NULL, .prepare = kn_qconv_prepare,
     .release = kn_qgemm_state_release},
    {"com.microsoft", "QuantizeLinear", 1, run_quantize, NULL, NULL},
    {"com.microsoft", "DequantizeLinear", 1, run_dequantize, NULL, NULL},
    {0},
};
