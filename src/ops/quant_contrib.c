/* quant_contrib.c - operator family 'quant_contrib': ONNX Runtime's com.microsoft
 * quantized operators that the QDQ fusion (src/opt/fuse_qdq.c) writes, so that the
 * optimized model runs in kiln and loads in ONNX Runtime alike:
 *
 *   QLinearAdd(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp)
 *       C = sat(rne((A - A_zp) * (A_scale / C_scale) + (B - B_zp) * (B_scale / C_scale)) + C_zp),
 *       numpy broadcasting, per-tensor parameters, uint8 or int8 throughout;
 *   QLinearGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp), channels_last 0/1
 *       Y = sat(rne(sum(X - x_zp) * x_scale / (y_scale * pixels)) + y_zp);
 *   QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp), transA, transB, alpha
 *       acc = sum (A - a_zp)(B - b_zp[n]) + C (int32, scale a_scale * b_scale), then
 *       requantized with alpha * a_scale * b_scale[n] / y_scale (kn_requant_value),
 *       or dequantized to float when y_scale is omitted.
 *
 * Each has a plain reference; the fast paths (QLinearAdd on equal shapes with
 * AVX-512, QGemm on a constant B packed at load for the integer GEMM) give the same
 * bytes: they evaluate the same float expressions in the same order. */
#include "ops/op_util.h"
#include "ops/quant_gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/qgemm.h"

/* ---------------------------------------------------------------- parameters */

static bool is_q8(kn_dtype t)
{
    return t == KN_U8 || t == KN_I8;
}

static void q8_range(kn_dtype t, int32_t *lo, int32_t *hi)
{
    *lo = t == KN_U8 ? 0 : -128;
    *hi = t == KN_U8 ? 255 : 127;
}

/* Per-tensor scale (input is, float32) and zero point (input iz, optional, of type qt). */
static int scalar_qparam(kn_op_ctx *c, int is, int iz, kn_dtype qt, float *scale, int32_t *zp)
{
    const kn_tensor *s = kn_op_in(c, is), *z = kn_op_in(c, iz);
    if (!s)
        return kn_fail(c->err, KN_ERR_MODEL, "%s: scale input %d is missing", c->node->op_type, is);
    if (s->dtype != KN_F32 || s->numel != 1)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s: scale input %d must be one float32", c->node->op_type, is);
    if (z && (z->dtype != qt || z->numel != 1))
        return kn_fail(c->err, KN_ERR_ARG, "%s: zero point input %d must be one %s", c->node->op_type, iz,
                       kn_dtype_name(qt));
    *scale = ((const float *)s->data)[0];
    *zp = z ? (int32_t)kn_load_i64(z->data, z->dtype, 0) : 0;
    return KN_OK;
}

static int32_t saturate(float q, int32_t lo, int32_t hi)
{
    if (!(q >= (float)lo))
        return lo;
    return q > (float)hi ? hi : (int32_t)q;
}

static void store_q8(void *data, kn_dtype t, int64_t i, int32_t v)
{
    if (t == KN_U8)
        ((uint8_t *)data)[i] = (uint8_t)v;
    else
        ((int8_t *)data)[i] = (int8_t)v;
}

static int32_t load_q8(const void *data, kn_dtype t, int64_t i)
{
    return t == KN_U8 ? ((const uint8_t *)data)[i] : ((const int8_t *)data)[i];
}

/* ---------------------------------------------------------------- QLinearAdd */

typedef struct qadd_job {
    const void *a, *b;
    void *y;
    kn_dtype t;
    int64_t numel;
    int32_t za, zb, zy, lo, hi;
    float ma, mb;               /* a_scale / y_scale, b_scale / y_scale */
} qadd_job;

/* The one formula: both operands scaled in float, added, rounded half to even. */
static inline int32_t qadd_value(const qadd_job *j, int32_t a, int32_t b)
{
    float u = (float)(a - j->za) * j->ma;
    float v = (float)(b - j->zb) * j->mb;
    return saturate(nearbyintf(u + v) + (float)j->zy, j->lo, j->hi);
}

static void qadd_range_generic(const qadd_job *j, int64_t begin, int64_t end)
{
    for (int64_t i = begin; i < end; i++)
        store_q8(j->y, j->t, i, qadd_value(j, load_q8(j->a, j->t, i), load_q8(j->b, j->t, i)));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_QADD_AVX512 1

/* 16 bytes as int32 (sign- or zero-extended). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512i load16(const void *p, bool u8)
{
    __m128i x = _mm_loadu_si128((const __m128i *)p);
    return u8 ? _mm512_cvtepu8_epi32(x) : _mm512_cvtepi8_epi32(x);
}

/* qadd_range_generic, 16 at a time: convert, multiply, add, round to nearest even
 * (the MXCSR default, as nearbyintf), add the zero point, clamp, narrow. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void qadd_range_avx512(const qadd_job *j,
                                                                                  int64_t begin, int64_t end)
{
    bool u8 = j->t == KN_U8;
    const __m512i za = _mm512_set1_epi32(j->za), zb = _mm512_set1_epi32(j->zb);
    const __m512 ma = _mm512_set1_ps(j->ma), mb = _mm512_set1_ps(j->mb), zy = _mm512_set1_ps((float)j->zy);
    const __m512 lo = _mm512_set1_ps((float)j->lo), hi = _mm512_set1_ps((float)j->hi);
    const uint8_t *a = j->a, *b = j->b;
    uint8_t *y = j->y;
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(load16(a + i, u8), za)), ma);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(load16(b + i, u8), zb)), mb);
        __m512 q = _mm512_roundscale_ps(_mm512_add_ps(u, v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zy), lo), hi);
        _mm_storeu_si128((__m128i *)(y + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(q)));
    }
    qadd_range_generic(j, i, end);
}
#endif

enum { QADD_CHUNK = 4096 }; /* elements per parallel task */

static void qadd_chunks(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const qadd_job *j = ctx;
    (void)thread_index;
    begin *= QADD_CHUNK;
    end = end * QADD_CHUNK < j->numel ? end * QADD_CHUNK : j->numel;
#ifdef HAVE_QADD_AVX512
    if (kn_cpu_isa() >= KN_ISA_AVX512) {
        qadd_range_avx512(j, begin, end);
        return;
    }
#endif
    qadd_range_generic(j, begin, end);
}

/* Broadcasting reference (and the path for shapes that differ). */
static void qadd_broadcast(const qadd_job *j, const kn_tensor *a, const kn_tensor *b, const kn_tensor *y)
{
    int64_t strides[2][KN_MAX_RANK];
    kn_broadcast_strides(y->rank, y->dims, a->rank, a->dims, strides[0]);
    kn_broadcast_strides(y->rank, y->dims, b->rank, b->dims, strides[1]);
    kn_iter it;
    kn_iter_init(&it, y->rank, y->dims, 2, strides);
    for (int64_t i = 0; i < y->numel; i++) {
        store_q8(j->y, j->t, i, qadd_value(j, load_q8(j->a, j->t, it.off[0]), load_q8(j->b, j->t, it.off[1])));
        kn_iter_next(&it);
    }
}

static int run_qlinear_add(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 3);
    const kn_tensor *a = c->in[0], *b = c->in[3];
    if (!is_q8(a->dtype) || b->dtype != a->dtype)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "QLinearAdd needs A and B both uint8 or both int8");
    qadd_job j = {.a = a->data, .b = b->data, .t = a->dtype};
    float sa, sb, sy;
    if (scalar_qparam(c, 1, 2, a->dtype, &sa, &j.za) || scalar_qparam(c, 4, 5, a->dtype, &sb, &j.zb) ||
        scalar_qparam(c, 6, 7, a->dtype, &sy, &j.zy))
        return c->err->code;
    int rank;
    int64_t dims[KN_MAX_RANK];
    if (kn_broadcast_shape(a->rank, a->dims, b->rank, b->dims, &rank, dims, c->err))
        return c->err->code;
    kn_tensor *y = kn_op_output_uninit(c, 0, a->dtype, rank, dims);
    if (!y)
        return c->err->code;
    j.y = y->data;
    j.ma = sa / sy;
    j.mb = sb / sy;
    q8_range(a->dtype, &j.lo, &j.hi);
    j.numel = y->numel;
    if (kn_same_shape(a, b) && fabsf(j.ma) < 65536.0f && fabsf(j.mb) < 65536.0f) {
        kn_parallel_for(c->pool, (y->numel + QADD_CHUNK - 1) / QADD_CHUNK, 1, qadd_chunks, &j);
        return KN_OK;
    }
    qadd_broadcast(&j, a, b, y);
    return KN_OK;
}

/* ---------------------------------------------------------------- QLinearGlobalAveragePool */

typedef struct qgap_job {
    const void *x;
    void *y;
    kn_dtype t;
    int64_t ch, pixels;
    bool channels_last;
    int32_t zx, zy, lo, hi;
    double mul;                 /* x_scale / (y_scale * pixels) */
} qgap_job;

/* Sum of one channel of image n. */
static int64_t qgap_sum(const qgap_job *j, int64_t n, int64_t ch)
{
    int64_t s = 0;
    if (j->channels_last) {
        for (int64_t p = 0; p < j->pixels; p++)
            s += load_q8(j->x, j->t, (n * j->pixels + p) * j->ch + ch);
        return s;
    }
    int64_t base = (n * j->ch + ch) * j->pixels;
    if (j->t == KN_U8) {
        const uint8_t *x = (const uint8_t *)j->x + base;
        for (int64_t p = 0; p < j->pixels; p++)
            s += x[p];
    } else {
        const int8_t *x = (const int8_t *)j->x + base;
        for (int64_t p = 0; p < j->pixels; p++)
            s += x[p];
    }
    return s;
}

/* Outputs [begin, end) of the batch x channels ones (both layouts store them in
 * that order: the output's spatial dims are all 1). */
static void qgap_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const qgap_job *j = ctx;
    (void)thread_index;
    for (int64_t o = begin; o < end; o++) {
        int64_t n = o / j->ch, ch = o % j->ch;
        double v = (double)(qgap_sum(j, n, ch) - (int64_t)j->zx * j->pixels) * j->mul;
        double q = nearbyint(v) + j->zy;
        store_q8(j->y, j->t, o, !(q >= j->lo) ? j->lo : q > j->hi ? j->hi : (int32_t)q);
    }
}

static int run_qlinear_global_average_pool(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    bool last = kn_attr_int(c->node, "channels_last", 0) != 0;
    if (!is_q8(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank < 3)
        return kn_fail(c->err, KN_ERR_ARG, "QLinearGlobalAveragePool needs an input of rank >= 3");
    qgap_job j = {.x = x->data, .t = x->dtype, .channels_last = last};
    float sx, sy;
    if (scalar_qparam(c, 1, 2, x->dtype, &sx, &j.zx) || scalar_qparam(c, 3, 4, x->dtype, &sy, &j.zy))
        return c->err->code;
    int64_t dims[KN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        dims[d] = 1;
    dims[0] = x->dims[0];
    j.ch = last ? x->dims[x->rank - 1] : x->dims[1];
    dims[last ? x->rank - 1 : 1] = j.ch;
    j.pixels = last ? kn_dims_prod(x->dims, 1, x->rank - 1) : kn_dims_prod(x->dims, 2, x->rank);
    kn_tensor *y = kn_op_output_uninit(c, 0, x->dtype, x->rank, dims);
    if (!y)
        return c->err->code;
    j.y = y->data;
    j.mul = j.pixels > 0 ? (double)sx / ((double)sy * (double)j.pixels) : 0.0;
    q8_range(x->dtype, &j.lo, &j.hi);
    kn_parallel_for(c->pool, y->numel, 16, qgap_range, &j);
    return KN_OK;
}

/* ---------------------------------------------------------------- QGemm */

/* Shapes, parameters and the bias of one QGemm. */
typedef struct qgemm_args {
    int64_t m, k, n;
    bool trans_a, trans_b;
    float alpha, sa, sy;
    int32_t za, zy;
    const kn_tensor *a, *b, *sb, *zb, *bias;
    int64_t bias_strides[2];    /* bias element stride along m and n (0: broadcast) */
    kn_dtype yt;                /* uint8/int8, or float32 when y_scale is omitted */
    bool quantized;
} qgemm_args;

static int qgemm_bias(kn_op_ctx *c, qgemm_args *q)
{
    const kn_tensor *bias = q->bias;
    if (!bias)
        return KN_OK;
    int64_t mn[2] = {q->m, q->n}, st[2];
    int rank;
    int64_t dims[KN_MAX_RANK];
    if (bias->dtype != KN_I32 || bias->rank > 2 || kn_broadcast_shape(2, mn, bias->rank, bias->dims, &rank, dims, c->err) ||
        dims[0] != q->m || dims[1] != q->n)
        return kn_fail(c->err, KN_ERR_ARG, "QGemm: C must be int32 broadcastable to [%lld, %lld]",
                       (long long)q->m, (long long)q->n);
    kn_broadcast_strides(2, mn, bias->rank, bias->dims, st);
    q->bias_strides[0] = st[0];
    q->bias_strides[1] = st[1];
    return KN_OK;
}

static int qgemm_args_read(kn_op_ctx *c, qgemm_args *q)
{
    for (int i = 0; i < 5; i++)
        if (i != 2)
            KN_REQUIRE_INPUT(c, i);
    memset(q, 0, sizeof *q);
    q->a = c->in[0];
    q->b = c->in[3];
    q->sb = c->in[4];
    q->zb = kn_op_in(c, 5);
    q->bias = kn_op_in(c, 6);
    q->trans_a = kn_attr_int(c->node, "transA", 0) != 0;
    q->trans_b = kn_attr_int(c->node, "transB", 0) != 0;
    q->alpha = kn_attr_float(c->node, "alpha", 1.0f);
    if (!is_q8(q->a->dtype) || !is_q8(q->b->dtype) || q->a->rank != 2 || q->b->rank != 2)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "QGemm needs 2-D uint8/int8 A and B");
    q->m = q->a->dims[q->trans_a ? 1 : 0];
    q->k = q->a->dims[q->trans_a ? 0 : 1];
    q->n = q->b->dims[q->trans_b ? 0 : 1];
    if (q->b->dims[q->trans_b ? 1 : 0] != q->k)
        return kn_fail(c->err, KN_ERR_ARG, "QGemm: inner dims differ (%lld vs %lld)", (long long)q->k,
                       (long long)q->b->dims[q->trans_b ? 1 : 0]);
    if (q->sb->dtype != KN_F32 || q->sb->rank > 1 || (q->sb->numel != 1 && q->sb->numel != q->n) ||
        (q->zb && (q->zb->dtype != q->b->dtype || q->zb->rank > 1 || (q->zb->numel != 1 && q->zb->numel != q->n))))
        return kn_fail(c->err, KN_ERR_ARG, "QGemm: b_scale / b_zero_point must be float32 / B's type, 1 or N values");
    if (scalar_qparam(c, 1, 2, q->a->dtype, &q->sa, &q->za))
        return c->err->code;
    q->quantized = kn_op_in(c, 7) != NULL;
    q->yt = !q->quantized ? KN_F32 : kn_op_in(c, 8) ? c->in[8]->dtype : q->a->dtype;
    if (q->quantized && (!is_q8(q->yt) || scalar_qparam(c, 7, 8, q->yt, &q->sy, &q->zy)))
        return c->err->code ? c->err->code : kn_unsupported_dtype(c, q->yt);
    return qgemm_bias(c, q);
}

static float col_scale(const qgemm_args *q, int64_t j)
{
    return ((const float *)q->sb->data)[q->sb->numel == 1 ? 0 : j];
}

/* Store acc (already including the bias) of output (i, j). */
static void qgemm_store(const qgemm_args *q, void *y, int64_t i, int64_t j, int64_t acc)
{
    if (!q->quantized) {
        ((float *)y)[i * q->n + j] = (float)acc * (q->alpha * q->sa * col_scale(q, j));
        return;
    }
    int32_t lo, hi;
    q8_range(q->yt, &lo, &hi);
    float mul = kn_requant_mul(KN_F32, q->alpha * q->sa, col_scale(q, j), q->sy);
    store_q8(y, q->yt, i * q->n + j, (int32_t)kn_requant_value(acc, mul, q->zy, lo, hi));
}

static int64_t qgemm_bias_at(const qgemm_args *q, int64_t i, int64_t j)
{
    if (!q->bias)
        return 0;
    return ((const int32_t *)q->bias->data)[i * q->bias_strides[0] + j * q->bias_strides[1]];
}

static void qgemm_reference(const qgemm_args *q, void *y)
{
    const kn_tensor *a = q->a, *b = q->b;
    for (int64_t i = 0; i < q->m; i++)
        for (int64_t j = 0; j < q->n; j++) {
            int64_t zb = q->zb ? kn_load_i64(q->zb->data, q->zb->dtype, (size_t)(q->zb->numel == 1 ? 0 : j)) : 0;
            int64_t acc = qgemm_bias_at(q, i, j);
            for (int64_t k = 0; k < q->k; k++) {
                int64_t av = load_q8(a->data, a->dtype, q->trans_a ? k * q->m + i : i * q->k + k);
                int64_t bv = load_q8(b->data, b->dtype, q->trans_b ? j * q->k + k : k * q->n + j);
                acc += (av - q->za) * (bv - zb);
            }
            qgemm_store(q, y, i, j, acc);
        }
}

/* Packed B - zero point (int8) for the integer GEMM. */
typedef struct qgemm_packed {
    kn_qpacked_b *pb;
    int64_t k, n;
    bool trans_b;
} qgemm_packed;

static void qgemm_packed_release(void *state)
{
    qgemm_packed *s = state;
    if (s) {
        kn_qpacked_b_free(s->pb);
        free(s);
    }
}

static int qgemm_prepare(kn_prepare_ctx *pc, void **state)
{
    const kn_tensor *b = pc->n_in > 3 ? pc->in_const[3] : NULL;
    const kn_tensor *zb = pc->n_in > 5 && pc->node->in[5] >= 0 ? pc->in_const[5] : NULL;
    bool trans_b = kn_attr_int(pc->node, "transB", 0) != 0;
    if (!b || b->rank != 2 || !is_q8(b->dtype) || (pc->n_in > 5 && pc->node->in[5] >= 0 && !zb))
        return KN_OK;
    int64_t k = b->dims[trans_b ? 1 : 0], n = b->dims[trans_b ? 0 : 1];
    if (k < 1 || n < 1 || (zb && (zb->dtype != b->dtype || (zb->numel != 1 && zb->numel != n))))
        return KN_OK;
    int8_t *b8 = kn_qweight_to_int8(b, zb, trans_b ? k : 1);
    qgemm_packed *s = b8 ? calloc(1, sizeof *s) : NULL;
    if (s)
        s->pb = kn_qgemm_pack_b(kn_qgemm_best(), (size_t)k, (size_t)n, b8, (size_t)(trans_b ? k : n), trans_b);
    free(b8);
    if (!s || !s->pb) {
        free(s);
        return KN_OK;
    }
    s->k = k;
    s->n = n;
    s->trans_b = trans_b;
    *state = s;
    return KN_OK;
}

/* A on the integer GEMM (int32 out), then bias and requantization per element. */
static int qgemm_fast(kn_op_ctx *c, const qgemm_args *q, void *y, bool *done)
{
    const qgemm_packed *s = c->state;
    *done = false;
    if (!s || s->k != q->k || s->n != q->n || s->trans_b != q->trans_b || q->trans_a)
        return KN_OK;
    size_t acc_bytes = (sizeof(int32_t) * (size_t)(q->m * q->n) + 63) & ~(size_t)63;
    bool shift = q->a->dtype == KN_I8;
    char *scratch = kn_op_scratch(c, acc_bytes + (shift ? (size_t)q->a->numel : 0));
    if (!scratch)
        return c->err->code;
    const uint8_t *A = q->a->data;
    int32_t za = q->za;
    if (shift) {
        uint8_t *sh = (uint8_t *)scratch + acc_bytes;
        for (int64_t e = 0; e < q->a->numel; e++)
            sh[e] = (uint8_t)((const int8_t *)q->a->data)[e] ^ 0x80u;
        A = sh;
        za += 128;
    }
    int32_t *acc = (int32_t *)scratch;
    kn_qgemm_output o = {.kind = KN_QOUT_INT32, .out = acc, .ldc = (size_t)q->n};
    int rc = kn_qgemm_run(c->pool, (size_t)q->m, (size_t)q->n, (size_t)q->k, A, (size_t)q->k, (uint8_t)za, s->pb, &o);
    if (rc)
        return kn_fail(c->err, rc, "QGemm: integer GEMM failed");
    for (int64_t i = 0; i < q->m; i++)
        for (int64_t j = 0; j < q->n; j++)
            qgemm_store(q, y, i, j, (int64_t)acc[i * q->n + j] + qgemm_bias_at(q, i, j));
    *done = true;
    return KN_OK;
}

static int run_qgemm(kn_op_ctx *c)
{
    qgemm_args q;
    if (qgemm_args_read(c, &q))
        return c->err->code;
    int64_t dims[2] = {q.m, q.n};
    kn_tensor *y = kn_op_output_uninit(c, 0, q.yt, 2, dims);
    if (!y)
        return c->err->code;
    bool done = false;
    int rc = qgemm_fast(c, &q, y->data, &done);
    if (rc || done)
        return rc;
    qgemm_reference(&q, y->data);
    return KN_OK;
}

const kn_op_def kn_ops_quant_contrib[] = {
    {"com.microsoft", "QLinearAdd", 1, run_qlinear_add, NULL, NULL},
    {"com.microsoft", "QLinearGlobalAveragePool", 1, run_qlinear_global_average_pool, NULL, NULL},
    {"com.microsoft", "QGemm", 1, run_qgemm, NULL, NULL, .prepare = qgemm_prepare,
     .release = qgemm_packed_release},
    {0},
};
