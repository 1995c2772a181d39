/* matmul.c - matrix products: MatMul (numpy semantics: 1-D promotion and batch
 * broadcasting), Gemm, MatMulInteger, Einsum, and ONNX Runtime's com.microsoft
 * FusedGemm (Gemm + activation) and FusedMatMul (MatMul + transA/transB/alpha),
 * and kiln's own MatMulBiasGelu (MatMul + bias + GELU, the GELU in the GEMM).
 *
 * Float32 MatMul/Gemm/Fused* run on the packed, threaded SGEMM (kernels/sgemm.h):
 * a constant B is packed once at load (prepare hook), Gemm's C and alpha and
 * FusedGemm's Relu go into the GEMM epilogue.  The plain kernels stay as the
 * reference and for other dtypes: float32 matrix-vector products (1-D B) use a
 * blocked i-k-j kernel over contiguous rows; float16 and bfloat16 compute in
 * float32 and round on store; float64 computes in double; integer products are
 * exact with two's-complement wraparound (computed modulo 2^64 and truncated to
 * the output width). */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/sgemm.h"
#include "ops/quant_dynamic.h"

/* ------------------------------------------------------------------------ */
/* Buffers converted to a compute type                                       */
/* ------------------------------------------------------------------------ */

static void *xcalloc(kn_op_ctx *c, int64_t n, size_t elem)
{
    if (n < 0 || (uint64_t)n > SIZE_MAX / elem / 2) {
        kn_fail(c->err, KN_ERR_NOMEM, "%s: buffer of %lld elements is too large",
                c->node->op_type, (long long)n);
        return NULL;
    }
    void *p = calloc(n ? (size_t)n : 1, elem);
    if (!p)
        kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
    return p;
}

/* Tensor contents as float32 (a private copy; caller frees). */
static float *to_f32(kn_op_ctx *c, const kn_tensor *t)
{
    float *p = xcalloc(c, t->numel, sizeof(float));
    if (!p)
        return NULL;
    if (t->dtype == KN_F32) {
        if (t->numel)
            memcpy(p, t->data, (size_t)t->numel * sizeof(float));
        return p;
    }
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = (float)kn_load_f64(t->data, t->dtype, (size_t)i);
    return p;
}

static double *to_f64(kn_op_ctx *c, const kn_tensor *t)
{
    double *p = xcalloc(c, t->numel, sizeof(double));
    if (!p)
        return NULL;
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = kn_load_f64(t->data, t->dtype, (size_t)i);
    return p;
}

/* Integer contents as uint64 (two's complement of the int64 value). */
static uint64_t *to_u64(kn_op_ctx *c, const kn_tensor *t)
{
    uint64_t *p = xcalloc(c, t->numel, sizeof(uint64_t));
    if (!p)
        return NULL;
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = (uint64_t)kn_load_i64(t->data, t->dtype, (size_t)i);
    return p;
}

static void store_f32_buf(kn_tensor *y, const float *v)
{
    if (y->dtype == KN_F32) {
        if (y->numel)
            memcpy(y->data, v, (size_t)y->numel * sizeof(float));
        return;
    }
    uint16_t *h = y->data;
    for (int64_t i = 0; i < y->numel; i++) {
        if (y->dtype == KN_F16)
            h[i] = kn_f32_to_f16(v[i]);
        else if (y->dtype == KN_BF16)
            h[i] = kn_f32_to_bf16(v[i]);
        else
            kn_store_f64(y->data, y->dtype, (size_t)i, v[i]);
    }
}

static void store_u64_buf(kn_tensor *y, const uint64_t *v)
{
    for (int64_t i = 0; i < y->numel; i++)
        kn_store_i64(y->data, y->dtype, (size_t)i, (int64_t)v[i]);
}

/* ------------------------------------------------------------------------ */
/* Matrix kernels: y[M,N] = a[M,K] * b[K,N], all row-major and contiguous    */
/* ------------------------------------------------------------------------ */

#define MM_BLOCK_N 512
#define MM_BLOCK_K 128

/* yr[0..n) += av * br[0..n): the innermost loop, over contiguous rows. */
static void axpy_f32(float *restrict yr, const float *restrict br, float av, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        yr[j] += av * br[j];
}

/* A 4-row by 8-column block of y kept in locals while k runs over [k0,k1):
 * each step broadcasts one element of each of 4 rows of a over 8 contiguous
 * elements of a row of b (i-k-j order within the block). */
static void block4x8_f32(const float *restrict a, const float *restrict b, float *restrict y,
                         int64_t K, int64_t N, int64_t k0, int64_t k1)
{
    float acc[4][8];
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 8; j++)
            acc[r][j] = y[r * N + j];
    for (int64_t k = k0; k < k1; k++) {
        const float *br = b + k * N;
        for (int r = 0; r < 4; r++) {
            const float av = a[r * K + k];
            for (int j = 0; j < 8; j++)
                acc[r][j] += av * br[j];
        }
    }
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 8; j++)
            y[r * N + j] = acc[r][j];
}

/* y += a*b over columns [j0,j1) and inner indices [k0,k1). */
static void mm_f32_tile(const float *a, const float *b, float *y, int64_t M, int64_t K,
                        int64_t N, int64_t k0, int64_t k1, int64_t j0, int64_t j1)
{
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) {
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8)
            block4x8_f32(a + i * K, b + j, y + i * N + j, K, N, k0, k1);
        for (int r = 0; r < 4 && j < j1; r++)
            for (int64_t k = k0; k < k1; k++)
                axpy_f32(y + (i + r) * N + j, b + k * N + j, a[(i + r) * K + k], j1 - j);
    }
    for (; i < M; i++) {
        float *yr = y + i * N + j0;
        const float *ar = a + i * K;
        for (int64_t k = k0; k < k1; k++)
            axpy_f32(yr, b + k * N + j0, ar[k], j1 - j0);
    }
}

/* Matrix-vector product (N == 1): one dot product per row. */
static void mv_f32(const float *a, const float *b, float *y, int64_t M, int64_t K)
{
    for (int64_t i = 0; i < M; i++) {
        const float *ar = a + i * K;
        float s = 0.0f;
        for (int64_t k = 0; k < K; k++)
            s += ar[k] * b[k];
        y[i] = s;
    }
}

/* y = a*b (float32), blocked so that a K-by-N panel of b stays in cache. */
static void mm_f32(const float *a, const float *b, float *y, int64_t M, int64_t K, int64_t N)
{
    if (N == 1) {
        mv_f32(a, b, y, M, K);
        return;
    }
    for (int64_t i = 0; i < M * N; i++)
        y[i] = 0.0f;
    for (int64_t j0 = 0; j0 < N; j0 += MM_BLOCK_N) {
        int64_t j1 = j0 + MM_BLOCK_N < N ? j0 + MM_BLOCK_N : N;
        for (int64_t k0 = 0; k0 < K; k0 += MM_BLOCK_K) {
            int64_t k1 = k0 + MM_BLOCK_K < K ? k0 + MM_BLOCK_K : K;
            mm_f32_tile(a, b, y, M, K, N, k0, k1, j0, j1);
        }
    }
}

static void mm_f64(const double *a, const double *b, double *y, int64_t M, int64_t K, int64_t N)
{
    for (int64_t i = 0; i < M; i++) {
        double *yr = y + i * N;
        for (int64_t j = 0; j < N; j++)
            yr[j] = 0.0;
        for (int64_t k = 0; k < K; k++) {
            const double av = a[i * K + k];
            const double *br = b + k * N;
            for (int64_t j = 0; j < N; j++)
                yr[j] += av * br[j];
        }
    }
}

static void mm_u64(const uint64_t *a, const uint64_t *b, uint64_t *y, int64_t M, int64_t K,
                   int64_t N)
{
    for (int64_t i = 0; i < M; i++) {
        uint64_t *yr = y + i * N;
        for (int64_t j = 0; j < N; j++)
            yr[j] = 0;
        for (int64_t k = 0; k < K; k++) {
            const uint64_t av = a[i * K + k];
            const uint64_t *br = b + k * N;
            for (int64_t j = 0; j < N; j++)
                yr[j] += av * br[j];
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Batched, broadcast matrix product plan (numpy matmul semantics)           */
/* ------------------------------------------------------------------------ */

typedef struct mm_plan {
    int64_t M, K, N;
    int batch_rank;
    int64_t batch_dims[KN_MAX_RANK];
    int64_t batch;                      /* product of batch_dims */
    int64_t strides[2][KN_MAX_RANK];    /* per batch dim, in matrices; 0 = broadcast */
    int out_rank;
    int64_t out_dims[KN_MAX_RANK];
} mm_plan;

static int mm_plan_make(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, mm_plan *p)
{
    char sa[128], sb[128];
    if (a->rank < 1 || b->rank < 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s inputs must have rank >= 1, got %s and %s",
                       c->node->op_type, kn_dims_str(a->rank, a->dims, sa, sizeof sa),
                       kn_dims_str(b->rank, b->dims, sb, sizeof sb));
    memset(p, 0, sizeof *p);
    int ra = a->rank >= 2 ? a->rank - 2 : 0, rb = b->rank >= 2 ? b->rank - 2 : 0;
    p->M = a->rank >= 2 ? a->dims[a->rank - 2] : 1;
    p->K = a->dims[a->rank - 1];
    int64_t kb = b->rank >= 2 ? b->dims[b->rank - 2] : b->dims[0];
    p->N = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    if (kb != p->K)
        return kn_fail(c->err, KN_ERR_ARG, "%s: inner dimensions differ: %s x %s",
                       c->node->op_type, kn_dims_str(a->rank, a->dims, sa, sizeof sa),
                       kn_dims_str(b->rank, b->dims, sb, sizeof sb));
    int rc = kn_broadcast_shape(ra, a->dims, rb, b->dims, &p->batch_rank, p->batch_dims, c->err);
    if (rc)
        return rc;
    kn_broadcast_strides(p->batch_rank, p->batch_dims, ra, a->dims, p->strides[0]);
    kn_broadcast_strides(p->batch_rank, p->batch_dims, rb, b->dims, p->strides[1]);
    p->out_rank = p->batch_rank;
    memcpy(p->out_dims, p->batch_dims, sizeof(int64_t) * (size_t)p->batch_rank);
    if (a->rank >= 2)
        p->out_dims[p->out_rank++] = p->M;
    if (b->rank >= 2)
        p->out_dims[p->out_rank++] = p->N;
    return kn_shape_numel(p->batch_rank, p->batch_dims, &p->batch, c->err);
}

typedef void (*mm_batch_fn)(const void *a, const void *b, void *y, int64_t ia, int64_t ib,
                            int64_t iy, const mm_plan *p);

static void mm_batch_f32(const void *a, const void *b, void *y, int64_t ia, int64_t ib,
                         int64_t iy, const mm_plan *p)
{
    mm_f32((const float *)a + ia * p->M * p->K, (const float *)b + ib * p->K * p->N,
           (float *)y + iy * p->M * p->N, p->M, p->K, p->N);
}

static void mm_batch_f64(const void *a, const void *b, void *y, int64_t ia, int64_t ib,
                         int64_t iy, const mm_plan *p)
{
    mm_f64((const double *)a + ia * p->M * p->K, (const double *)b + ib * p->K * p->N,
           (double *)y + iy * p->M * p->N, p->M, p->K, p->N);
}

static void mm_batch_u64(const void *a, const void *b, void *y, int64_t ia, int64_t ib,
                         int64_t iy, const mm_plan *p)
{
    mm_u64((const uint64_t *)a + ia * p->M * p->K, (const uint64_t *)b + ib * p->K * p->N,
           (uint64_t *)y + iy * p->M * p->N, p->M, p->K, p->N);
}

/* Run fn over every output matrix of the plan. */
static void mm_run_batches(const mm_plan *p, mm_batch_fn fn, const void *a, const void *b,
                           void *y)
{
    if (p->M == 0 || p->N == 0)
        return;
    kn_iter it;
    kn_iter_init(&it, p->batch_rank, p->batch_dims, 2, (int64_t(*)[KN_MAX_RANK])p->strides);
    for (int64_t bi = 0; bi < p->batch; bi++) {
        fn(a, b, y, it.off[0], it.off[1], bi, p);
        kn_iter_next(&it);
    }
}

/* ------------------------------------------------------------------------ */
/* float32 through the packed SGEMM (kernels/sgemm.h): MatMul, Gemm and the   */
/* com.microsoft FusedMatMul / FusedGemm.  A constant B (initializer) is      */
/* packed once by the prepare hook, every batch matrix of it; otherwise B is  */
/* packed per call into the op's scratch.  Work goes to the session's pool.   */
/* ------------------------------------------------------------------------ */

/* Prepared state: the packed matrices of a constant B (count of them, each K x N
 * as used, i.e. after transB). */
typedef struct mm_packed {
    int64_t K, N, count;
    int trans_b;
    kn_packed_b **pb;
} mm_packed;

static void mm_packed_free(void *state)
{
    mm_packed *s = state;
    if (!s)
        return;
    for (int64_t i = 0; s->pb && i < s->count; i++)
        kn_packed_b_free(s->pb[i]);
    free(s->pb);
    free(s);
}

/* transB of the node: Gemm, FusedGemm and FusedMatMul have it, MatMul not. */
static int node_trans_b(const kn_node *n)
{
    if (strcmp(n->op_type, "MatMul") == 0)
        return 0;
    return kn_attr_int(n, "transB", 0) != 0;
}

static int prepare_packed_b(kn_prepare_ctx *pc, void **state)
{
    const kn_tensor *b = pc->n_in > 1 ? pc->in_const[1] : NULL;
    *state = NULL;
    if (!b || b->dtype != KN_F32 || b->rank < 2 || !b->data)
        return KN_OK;
    if (kn_attr_int(pc->node, "transBatchB", 0) != 0)
        return KN_OK;
    int tb = node_trans_b(pc->node);
    int64_t rows = b->dims[b->rank - 2], cols = b->dims[b->rank - 1];
    if (rows == 0 || cols == 0)
        return KN_OK;
    mm_packed *s = calloc(1, sizeof *s);
    if (!s)
        return kn_fail(pc->err, KN_ERR_NOMEM, "%s: out of memory packing B", pc->node->op_type);
    s->K = tb ? cols : rows;
    s->N = tb ? rows : cols;
    s->trans_b = tb;
    s->count = b->numel / (rows * cols);
    s->pb = calloc((size_t)s->count, sizeof *s->pb);
    for (int64_t i = 0; s->pb && i < s->count; i++) {
        s->pb[i] = kn_sgemm_pack_b((size_t)s->K, (size_t)s->N,
                                   (const float *)b->data + i * rows * cols, (size_t)cols, tb);
        if (!s->pb[i])
            break;
    }
    if (!s->pb || !s->pb[s->count - 1]) {
        mm_packed_free(s);
        return kn_fail(pc->err, KN_ERR_NOMEM, "%s: out of memory packing B", pc->node->op_type);
    }
    *state = s;
    pc->drop_inputs |= 1u << 1; /* the float path reads only the packed copy (mm_state_for) */
    return KN_OK;
}

/* An activation applied after the product (FusedGemm); Relu goes into the GEMM
 * epilogue, the others run over the output afterwards. */
typedef enum mm_act_kind {
    MM_ACT_NONE, MM_ACT_RELU, MM_ACT_LEAKY_RELU, MM_ACT_SIGMOID, MM_ACT_TANH,
    MM_ACT_HARD_SIGMOID, MM_ACT_ELU, MM_ACT_SOFTPLUS, MM_ACT_SOFTSIGN, MM_ACT_SELU,
    MM_ACT_THRESHOLDED_RELU,
} mm_act_kind;

typedef struct mm_act {
    mm_act_kind kind;
    float alpha, beta, gamma;
} mm_act;

/* ONNX Runtime's FusedGemm attributes: activation, activation_alpha/beta/gamma
 * (leaky_relu_alpha is the older spelling of LeakyRelu's alpha). */
static int mm_act_parse(const kn_node *n, mm_act *a, kn_error *err)
{
    static const struct {
        const char *name;
        mm_act_kind kind;
        float alpha, beta, gamma; /* defaults of the standard ops */
    } acts[] = {
        {"Relu", MM_ACT_RELU, 0, 0, 0},
        {"LeakyRelu", MM_ACT_LEAKY_RELU, 0.01f, 0, 0},
        {"Sigmoid", MM_ACT_SIGMOID, 0, 0, 0},
        {"Tanh", MM_ACT_TANH, 0, 0, 0},
        {"HardSigmoid", MM_ACT_HARD_SIGMOID, 0.2f, 0.5f, 0},
        {"Elu", MM_ACT_ELU, 1.0f, 0, 0},
        {"Softplus", MM_ACT_SOFTPLUS, 0, 0, 0},
        {"Softsign", MM_ACT_SOFTSIGN, 0, 0, 0},
        {"Selu", MM_ACT_SELU, 1.67326319217681884765625f, 0, 1.05070102214813232421875f},
        {"ThresholdedRelu", MM_ACT_THRESHOLDED_RELU, 1.0f, 0, 0},
    };
    const char *name = kn_attr_string(n, "activation", NULL);
    memset(a, 0, sizeof *a);
    if (!name || !name[0])
        return KN_OK;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(name, acts[i].name) != 0)
            continue;
        a->kind = acts[i].kind;
        float alpha = kn_attr_float(n, "leaky_relu_alpha", acts[i].alpha);
        a->alpha = kn_attr_float(n, "activation_alpha", alpha);
        a->beta = kn_attr_float(n, "activation_beta", acts[i].beta);
        a->gamma = kn_attr_float(n, "activation_gamma", acts[i].gamma);
        return KN_OK;
    }
    return kn_fail(err, KN_ERR_UNSUPPORTED, "%s: activation '%s' is not supported", n->op_type,
                   name);
}

static float mm_act_apply(const mm_act *a, float x)
{
    switch (a->kind) {
    case MM_ACT_LEAKY_RELU: return x < 0 ? a->alpha * x : x;
    case MM_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case MM_ACT_TANH: return tanhf(x);
    case MM_ACT_HARD_SIGMOID: return fmaxf(0.0f, fminf(1.0f, a->alpha * x + a->beta));
    case MM_ACT_ELU: return x < 0 ? a->alpha * expm1f(x) : x;
    case MM_ACT_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x));
    case MM_ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    case MM_ACT_SELU: return a->gamma * (x <= 0 ? a->alpha * expm1f(x) : x);
    case MM_ACT_THRESHOLDED_RELU: return x > a->alpha ? x : 0.0f;
    default: return x;
    }
}

/* One float32 product family call: Y[b] = ep(alpha * op(A[b]) * op(B[b])). */
typedef struct mm_job {
    const mm_plan *p;
    const float *a, *b;
    float *y;
    int ta, tb;
    const mm_packed *packed;   /* B prepacked, or NULL: pack into scratch */
    float *pbuf;               /* per-thread packing slots of pb_floats each */
    size_t pb_floats;
    kn_gemm_epilogue ep;
    bool by_batch;             /* one batch per thread */
    _Atomic int rc;
} mm_job;

/* Offsets (in matrices) of A and B for output batch bi. */
static void mm_batch_offsets(const mm_plan *p, int64_t bi, int64_t *ia, int64_t *ib)
{
    *ia = *ib = 0;
    for (int d = p->batch_rank - 1; d >= 0; d--) {
        int64_t idx = bi % p->batch_dims[d];
        bi /= p->batch_dims[d];
        *ia += idx * p->strides[0][d];
        *ib += idx * p->strides[1][d];
    }
}

/* The product of output batch bi on pool (NULL: this thread), packing B into slot. */
static int mm_run_one(mm_job *j, int64_t bi, struct kn_threadpool *pool, float *slot)
{
    const mm_plan *p = j->p;
    size_t M = (size_t)p->M, N = (size_t)p->N, K = (size_t)p->K;
    int64_t ia, ib;
    mm_batch_offsets(p, bi, &ia, &ib);
    kn_packed_b local;
    const kn_packed_b *pb;
    if (j->packed) {
        pb = j->packed->pb[ib];
    } else {
        kn_sgemm_pack_b_into(&local, slot, K, N, j->b + ib * p->K * p->N, j->tb ? K : N, j->tb);
        pb = &local;
    }
    return kn_sgemm_run_pool_isa(pool, kn_cpu_isa(), j->ta, M, N, K, j->a + ia * p->M * p->K,
                                 j->ta ? M : K, pb, j->y + bi * p->M * p->N, N, &j->ep);
}

static void mm_batch_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    mm_job *j = ctx;
    float *slot = j->pbuf ? j->pbuf + (size_t)thread_index * j->pb_floats : NULL;
    for (int64_t bi = begin; bi < end; bi++) {
        int rc = mm_run_one(j, bi, NULL, slot);
        if (rc)
            j->rc = rc;
    }
}

/* Floats rounded up to whole 64-byte lines, so that scratch slices stay aligned. */
static size_t lines_of(size_t floats)
{
    return (floats + 15) / 16 * 16;
}

/* Scratch for a job: its B packing slots (one, or one per thread when batches go
 * one per thread), then `extra` floats for the caller (*extra_out). */
static int mm_job_scratch(kn_op_ctx *c, mm_job *j, size_t extra, float **extra_out)
{
    const mm_plan *p = j->p;
    int threads = kn_threadpool_size(c->pool);
    j->by_batch = threads > 1 && p->batch >= 2 * threads;
    size_t slots = j->packed ? 0 : j->by_batch ? (size_t)threads : 1;
    j->pb_floats = j->packed ? 0 : lines_of(kn_sgemm_packed_b_floats((size_t)p->K, (size_t)p->N));
    if (slots && p->K && p->N && !j->pb_floats)
        return kn_fail(c->err, KN_ERR_NOMEM, "%s: B is too large", c->node->op_type);
    size_t floats = slots * j->pb_floats + lines_of(extra);
    j->pbuf = NULL;
    if (floats == 0) /* B prepacked and nothing else wanted */
        return KN_OK;
    float *s = kn_op_scratch(c, floats * sizeof(float));
    if (!s)
        return c->err->code ? c->err->code : KN_ERR_NOMEM;
    j->pbuf = slots ? s : NULL;
    if (extra_out)
        *extra_out = s + slots * j->pb_floats;
    return KN_OK;
}

/* Run every batch: many batches go one per thread, few go one after the other
 * with each product split over the pool. */
static int mm_job_run(kn_op_ctx *c, mm_job *j)
{
    const mm_plan *p = j->p;
    j->rc = KN_OK;
    if (j->by_batch)
        kn_parallel_for(c->pool, p->batch, 1, mm_batch_range, j);
    for (int64_t bi = 0; !j->by_batch && bi < p->batch && !j->rc; bi++)
        j->rc = mm_run_one(j, bi, c->pool, j->pbuf);
    if (j->rc)
        return kn_fail(c->err, j->rc, "%s: sgemm failed (%s)", c->node->op_type,
                       kn_status_name(j->rc));
    return KN_OK;
}

typedef struct mm_act_job {
    const mm_act *act;
    float *y;
} mm_act_job;

static void mm_act_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const mm_act_job *j = ctx;
    (void)thread_index;
    for (int64_t i = begin; i < end; i++)
        j->y[i] = mm_act_apply(j->act, j->y[i]);
}

/* The activations that the GEMM epilogue does not do, over the whole output. */
static void mm_act_output(kn_op_ctx *c, const mm_act *act, float *y, int64_t n)
{
    if (!act || act->kind <= MM_ACT_RELU)
        return;
    mm_act_job j = {act, y};
    kn_parallel_for(c->pool, n, 16384, mm_act_range, &j);
}

/* The prepared packing when it fits this call's B (it always should). */
static const mm_packed *mm_state_for(const kn_op_ctx *c, const mm_plan *p, int tb)
{
    const mm_packed *s = c->state;
    if (!s || s->K != p->K || s->N != p->N || s->trans_b != tb)
        return NULL;
    const kn_tensor *b = c->in[1];
    int64_t count = b->numel / (p->K * p->N > 0 ? p->K * p->N : 1);
    return count == s->count ? s : NULL;
}

/* Plan of op(A) x op(B) where op swaps the last two dims (1-D operands unchanged). */
static int mm_plan_trans(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, int ta, int tb,
                         mm_plan *p)
{
    kn_tensor va = *a, vb = *b;
    if (ta && a->rank >= 2) {
        va.dims[a->rank - 2] = a->dims[a->rank - 1];
        va.dims[a->rank - 1] = a->dims[a->rank - 2];
    }
    if (tb && b->rank >= 2) {
        vb.dims[b->rank - 2] = b->dims[b->rank - 1];
        vb.dims[b->rank - 1] = b->dims[b->rank - 2];
    }
    return mm_plan_make(c, &va, &vb, p);
}

/* float32 MatMul / FusedMatMul through the SGEMM; B of rank >= 2 (rank-1 B is a
 * matrix-vector product: the caller keeps the reference path). */
static int matmul_f32_sgemm(kn_op_ctx *c, int ta, int tb, float alpha, const mm_act *act,
                            const float *bias, kn_gemm_act gelu)
{
    const kn_tensor *a = c->in[0], *b = c->in[1];
    mm_plan p;
    int rc = mm_plan_trans(c, a, b, ta && a->rank >= 2, tb, &p);
    if (rc)
        return rc;
    /* the SGEMM writes every element of y (K = 0 included): no clearing */
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, p.out_rank, p.out_dims);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    mm_job j;
    memset(&j, 0, sizeof j);
    j.a = a->data, j.b = b->data, j.y = y->data;
    j.ta = ta && a->rank >= 2, j.tb = tb;
    j.packed = mm_state_for(c, &p, tb);
    j.ep.has_alpha = alpha != 1.0f;
    j.ep.alpha = alpha;
    if (act && act->kind == MM_ACT_RELU)
        j.ep.act = KN_GEMM_ACT_RELU;
    j.ep.bias = bias; /* MatMulBiasGelu: [N] over every row, then its GELU per tile */
    if (gelu != KN_GEMM_ACT_NONE)
        j.ep.act = gelu;
    /* B shared by every batch and A not transposed: one product of all A's rows */
    bool b_shared = true;
    for (int d = 0; d < p.batch_rank; d++)
        b_shared = b_shared && p.strides[1][d] == 0;
    mm_plan flat = p;
    if (b_shared && !j.ta) {
        flat.M = p.M * p.batch;
        flat.batch = 1;
        flat.batch_rank = 0;
    }
    j.p = &flat;
    if ((rc = mm_job_scratch(c, &j, 0, NULL)) || (rc = mm_job_run(c, &j)))
        return rc;
    mm_act_output(c, act, j.y, y->numel);
    return KN_OK;
}


/* ------------------------------------------------------------------------ */
/* MatMul                                                                    */
/* ------------------------------------------------------------------------ */

static bool matmul_dtype_ok(kn_dtype t)
{
    return kn_dtype_is_float(t) || kn_dtype_is_int(t);
}

/* Compute y = a @ b for any supported dtype pair already converted per plan. */
static int matmul_compute(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, kn_tensor *y,
                          const mm_plan *p)
{
    int rc = KN_OK;
    if (y->numel == 0)
        return KN_OK;
    if (a->dtype == KN_F32) {
        mm_run_batches(p, mm_batch_f32, a->data, b->data, y->data);
    } else if (a->dtype == KN_F16 || a->dtype == KN_BF16) {
        float *fa = to_f32(c, a), *fb = fa ? to_f32(c, b) : NULL;
        float *fy = fb ? xcalloc(c, y->numel, sizeof(float)) : NULL;
        if (fy) {
            mm_run_batches(p, mm_batch_f32, fa, fb, fy);
            store_f32_buf(y, fy);
        } else {
            rc = c->err->code ? c->err->code : KN_ERR_NOMEM;
        }
        free(fa), free(fb), free(fy);
    } else if (a->dtype == KN_F64) {
        mm_run_batches(p, mm_batch_f64, a->data, b->data, y->data);
    } else {
        uint64_t *ua = to_u64(c, a), *ub = ua ? to_u64(c, b) : NULL;
        uint64_t *uy = ub ? xcalloc(c, y->numel, sizeof(uint64_t)) : NULL;
        if (uy) {
            mm_run_batches(p, mm_batch_u64, ua, ub, uy);
            store_u64_buf(y, uy);
        } else {
            rc = c->err->code ? c->err->code : KN_ERR_NOMEM;
        }
        free(ua), free(ub), free(uy);
    }
    return rc;
}

static int run_matmul(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *a = c->in[0], *b = c->in[1];
    int rc = kn_check_same_dtype(c, a, b);
    if (rc)
        return rc;
    if (!matmul_dtype_ok(a->dtype))
        return kn_unsupported_dtype(c, a->dtype);
    if (a->dtype == KN_F32 && b->rank >= 2)
        return matmul_f32_sgemm(c, 0, 0, 1.0f, NULL, NULL, KN_GEMM_ACT_NONE);
    mm_plan p;
    if ((rc = mm_plan_make(c, a, b, &p)))
        return rc;
    kn_tensor *y = kn_op_output(c, 0, a->dtype, p.out_rank, p.out_dims);
    if (!y)
        return c->err->code;
    return matmul_compute(c, a, b, y, &p);
}

/* ------------------------------------------------------------------------ */
/* MatMulInteger                                                             */
/* ------------------------------------------------------------------------ */

/* Strides (over x's shape) of a zero-point tensor: scalar, per-row of A (1-D of
 * length M), per-column of B (1-D of length N), or broadcastable N-D. */
static int zp_strides(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *zp, bool is_a,
                      int64_t *strides)
{
    int r = x->rank;
    for (int i = 0; i < r; i++)
        strides[i] = 0;
    if (zp->numel == 1)
        return KN_OK;
    if (zp->rank == 1 && r >= 2) {
        int axis = is_a ? r - 2 : r - 1;
        if (zp->dims[0] == x->dims[axis]) {
            strides[axis] = 1;
            return KN_OK;
        }
    } else if (zp->rank <= r) {
        bool ok = true;
        for (int i = 0; i < zp->rank; i++) {
            int64_t d = zp->dims[i], xd = x->dims[r - zp->rank + i];
            if (d != xd && d != 1)
                ok = false;
        }
        if (ok) {
            kn_broadcast_strides(r, x->dims, zp->rank, zp->dims, strides);
            return KN_OK;
        }
    }
    char sx[128], sz[128];
    return kn_fail(c->err, KN_ERR_ARG, "MatMulInteger: zero point of shape %s does not fit input %s",
                   kn_dims_str(zp->rank, zp->dims, sz, sizeof sz),
                   kn_dims_str(r, x->dims, sx, sizeof sx));
}

/* x - zero_point as uint64 (two's complement), zero point optional. */
static uint64_t *sub_zero_point(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *zp, bool is_a)
{
    uint64_t *v = to_u64(c, x);
    if (!v || !zp)
        return v;
    if (zp->dtype != KN_U8 && zp->dtype != KN_I8) {
        kn_unsupported_dtype(c, zp->dtype);
        free(v);
        return NULL;
    }
    int64_t strides[1][KN_MAX_RANK];
    if (zp_strides(c, x, zp, is_a, strides[0])) {
        free(v);
        return NULL;
    }
    kn_iter it;
    kn_iter_init(&it, x->rank, x->dims, 1, strides);
    for (int64_t i = 0; i < x->numel; i++) {
        v[i] -= (uint64_t)kn_load_i64(zp->data, zp->dtype, (size_t)it.off[0]);
        kn_iter_next(&it);
    }
    return v;
}

static int run_matmul_integer(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *a = c->in[0], *b = c->in[1];
    if (a->dtype != KN_U8 && a->dtype != KN_I8)
        return kn_unsupported_dtype(c, a->dtype);
    if (b->dtype != KN_U8 && b->dtype != KN_I8)
        return kn_unsupported_dtype(c, b->dtype);
    mm_plan p;
    int rc = mm_plan_make(c, a, b, &p);
    if (rc)
        return rc;
    kn_tensor *y = kn_op_output(c, 0, KN_I32, p.out_rank, p.out_dims);
    if (!y)
        return c->err->code;
    bool done;
    rc = kn_matmul_integer_fast(c, y, &done);
    if (rc || done)
        return rc;
    uint64_t *ua = sub_zero_point(c, a, kn_op_in(c, 2), true);
    uint64_t *ub = ua ? sub_zero_point(c, b, kn_op_in(c, 3), false) : NULL;
    uint64_t *uy = ub ? xcalloc(c, y->numel, sizeof(uint64_t)) : NULL;
    if (uy) {
        mm_run_batches(&p, mm_batch_u64, ua, ub, uy);
        store_u64_buf(y, uy);
    } else {
        rc = c->err->code ? c->err->code : KN_ERR_NOMEM;
    }
    free(ua), free(ub), free(uy);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Gemm: Y = alpha * A' * B' + beta * C                                       */
/* ------------------------------------------------------------------------ */

typedef struct gemm_shape {
    int64_t M, K, N;
    bool ta, tb;
    double alpha, beta;
    int64_t c_strides[2];   /* strides of C viewed as [M,N] (0 = broadcast) */
} gemm_shape;

static int gemm_check_c(kn_op_ctx *c, const kn_tensor *ct, gemm_shape *g)
{
    g->c_strides[0] = g->c_strides[1] = 0;
    if (!ct)
        return KN_OK;
    int64_t out[2] = {g->M, g->N};
    bool ok = ct->rank <= 2;
    for (int i = 0; ok && i < ct->rank; i++) {
        int64_t d = ct->dims[i], od = out[2 - ct->rank + i];
        ok = d == od || d == 1;
    }
    if (!ok) {
        char s[128];
        return kn_fail(c->err, KN_ERR_ARG, "Gemm: C of shape %s cannot broadcast to [%lld,%lld]",
                       kn_dims_str(ct->rank, ct->dims, s, sizeof s), (long long)g->M,
                       (long long)g->N);
    }
    kn_broadcast_strides(2, out, ct->rank, ct->dims, g->c_strides);
    return KN_OK;
}

static int gemm_shape_make(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, gemm_shape *g)
{
    if (a->rank != 2 || b->rank != 2)
        return kn_fail(c->err, KN_ERR_ARG, "Gemm inputs A and B must be 2-D (ranks %d and %d)",
                       a->rank, b->rank);
    g->ta = kn_attr_int(c->node, "transA", 0) != 0;
    g->tb = kn_attr_int(c->node, "transB", 0) != 0;
    g->alpha = kn_attr_float(c->node, "alpha", 1.0f);
    g->beta = kn_attr_float(c->node, "beta", 1.0f);
    g->M = g->ta ? a->dims[1] : a->dims[0];
    g->K = g->ta ? a->dims[0] : a->dims[1];
    int64_t kb = g->tb ? b->dims[1] : b->dims[0];
    g->N = g->tb ? b->dims[0] : b->dims[1];
    if (kb != g->K)
        return kn_fail(c->err, KN_ERR_ARG, "Gemm: inner dimensions differ (%lld vs %lld)",
                       (long long)g->K, (long long)kb);
    return gemm_check_c(c, kn_op_in(c, 2), g);
}

/* Gemm's beta * C as an epilogue: a row vector becomes the column bias, a column
 * vector the row bias (scaled into tmp when beta != 1); a scalar or full C is
 * written into Y first, which the GEMM then accumulates onto. */
static void gemm_c_epilogue(const gemm_shape *g, const kn_tensor *ct, float *y, float *tmp,
                            kn_gemm_epilogue *ep)
{
    const float *cv = ct->data;
    float beta = (float)g->beta;
    bool row = g->c_strides[0] == 0 && g->c_strides[1] == 1;
    bool col = g->c_strides[0] == 1 && g->c_strides[1] == 0 && g->N > 1;
    if (row || col) {
        int64_t n = row ? g->N : g->M;
        const float *v = cv;
        if (beta != 1.0f) {
            for (int64_t i = 0; i < n; i++)
                tmp[i] = beta * cv[i];
            v = tmp;
        }
        if (row)
            ep->bias = v;
        else
            ep->row_bias = v;
        return;
    }
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++)
            y[i * g->N + j] = beta * cv[i * g->c_strides[0] + j * g->c_strides[1]];
    ep->residual = y;
    ep->ldr = (size_t)g->N;
}

/* float32 Gemm / FusedGemm through the SGEMM. */
static int gemm_f32_sgemm(kn_op_ctx *c, const gemm_shape *g, kn_tensor *y, const mm_act *act)
{
    const kn_tensor *a = c->in[0], *b = c->in[1], *ct = kn_op_in(c, 2);
    mm_plan p;
    memset(&p, 0, sizeof p);
    p.M = g->M, p.K = g->K, p.N = g->N, p.batch = 1;
    mm_job j;
    memset(&j, 0, sizeof j);
    j.p = &p;
    j.a = a->data, j.b = b->data, j.y = y->data;
    j.ta = g->ta, j.tb = g->tb;
    j.packed = mm_state_for(c, &p, g->tb);
    j.ep.has_alpha = g->alpha != 1.0;
    j.ep.alpha = (float)g->alpha;
    if (act && act->kind == MM_ACT_RELU)
        j.ep.act = KN_GEMM_ACT_RELU;
    bool use_c = ct && ct->numel > 0 && g->beta != 0.0;
    size_t extra = use_c ? (size_t)(g->M > g->N ? g->M : g->N) : 0;
    float *tmp = NULL;
    int rc = mm_job_scratch(c, &j, extra, &tmp);
    if (rc)
        return rc;
    if (use_c)
        gemm_c_epilogue(g, ct, j.y, tmp, &j.ep);
    if ((rc = mm_job_run(c, &j)))
        return rc;
    mm_act_output(c, act, j.y, y->numel);
    return KN_OK;
}

/* Transposed copy of an r-by-n float matrix. */
static float *transpose_f32(kn_op_ctx *c, const float *x, int64_t r, int64_t n)
{
    float *t = xcalloc(c, r * n, sizeof(float));
    if (!t)
        return NULL;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < n; j++)
            t[j * r + i] = x[i * n + j];
    return t;
}

/* float32 product of A' and B' into y[M,N] (no alpha/beta). */
static int gemm_product_f32(kn_op_ctx *c, const float *a, const float *b, float *y,
                            const gemm_shape *g)
{
    float *at = NULL, *bt = NULL;
    if (g->ta && !(at = transpose_f32(c, a, g->K, g->M)))
        return c->err->code;
    if (g->tb && !(bt = transpose_f32(c, b, g->N, g->K))) {
        free(at);
        return c->err->code;
    }
    mm_f32(at ? at : a, bt ? bt : b, y, g->M, g->K, g->N);
    free(at), free(bt);
    return KN_OK;
}

static int gemm_f32(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, kn_tensor *y,
                    const gemm_shape *g)
{
    const kn_tensor *ct = kn_op_in(c, 2);
    /* float32 operands are used in place (their data may be NULL when empty) */
    bool native = a->dtype == KN_F32;
    float *buf = native ? y->data : xcalloc(c, y->numel, sizeof(float));
    float *fa = native ? a->data : buf ? to_f32(c, a) : NULL;
    float *fb = native ? b->data : fa ? to_f32(c, b) : NULL;
    int rc = native || fb ? gemm_product_f32(c, fa, fb, buf, g) : KN_ERR_NOMEM;
    if (!rc) {
        const float alpha = (float)g->alpha, beta = (float)g->beta;
        for (int64_t i = 0; i < g->M; i++) {
            for (int64_t j = 0; j < g->N; j++) {
                float v = alpha * buf[i * g->N + j];
                if (ct)
                    v += beta * (float)kn_load_f64(ct->data, ct->dtype,
                                                   (size_t)(i * g->c_strides[0] + j * g->c_strides[1]));
                buf[i * g->N + j] = v;
            }
        }
        if (y->dtype != KN_F32)
            store_f32_buf(y, buf);
    }
    if (!native)
        free(buf), free(fa), free(fb);
    return rc;
}

/* Element (i,k) of A' / (k,j) of B'. */
static size_t gemm_a_index(const gemm_shape *g, int64_t i, int64_t k)
{
    return (size_t)(g->ta ? k * g->M + i : i * g->K + k);
}

static size_t gemm_b_index(const gemm_shape *g, int64_t k, int64_t j)
{
    return (size_t)(g->tb ? j * g->K + k : k * g->N + j);
}

static int gemm_f64(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, kn_tensor *y,
                    const gemm_shape *g)
{
    const kn_tensor *ct = kn_op_in(c, 2);
    double *da = to_f64(c, a), *db = da ? to_f64(c, b) : NULL;
    if (!db) {
        free(da);
        return c->err->code;
    }
    for (int64_t i = 0; i < g->M; i++) {
        for (int64_t j = 0; j < g->N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < g->K; k++)
                s += da[gemm_a_index(g, i, k)] * db[gemm_b_index(g, k, j)];
            s *= g->alpha;
            if (ct)
                s += g->beta * kn_load_f64(ct->data, ct->dtype,
                                           (size_t)(i * g->c_strides[0] + j * g->c_strides[1]));
            kn_store_f64(y->data, y->dtype, (size_t)(i * g->N + j), s);
        }
    }
    free(da), free(db);
    return KN_OK;
}

/* Integer Gemm: exact (wrapping) when alpha and beta are 0 or 1, else via double. */
static int gemm_int(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b, kn_tensor *y,
                    const gemm_shape *g)
{
    const kn_tensor *ct = kn_op_in(c, 2);
    bool exact = (g->alpha == 1.0 || g->alpha == 0.0) && (g->beta == 1.0 || g->beta == 0.0);
    uint64_t *ua = to_u64(c, a), *ub = ua ? to_u64(c, b) : NULL;
    if (!ub) {
        free(ua);
        return c->err->code;
    }
    for (int64_t i = 0; i < g->M; i++) {
        for (int64_t j = 0; j < g->N; j++) {
            uint64_t s = 0;
            for (int64_t k = 0; k < g->K; k++)
                s += ua[gemm_a_index(g, i, k)] * ub[gemm_b_index(g, k, j)];
            size_t ci = (size_t)(i * g->c_strides[0] + j * g->c_strides[1]);
            size_t yi = (size_t)(i * g->N + j);
            if (exact) {
                uint64_t v = g->alpha == 1.0 ? s : 0;
                if (ct && g->beta == 1.0)
                    v += (uint64_t)kn_load_i64(ct->data, ct->dtype, ci);
                kn_store_i64(y->data, y->dtype, yi, (int64_t)v);
            } else {
                double v = g->alpha * (double)(int64_t)s;
                if (ct)
                    v += g->beta * kn_load_f64(ct->data, ct->dtype, ci);
                kn_store_f64(y->data, y->dtype, yi, v);
            }
        }
    }
    free(ua), free(ub);
    return KN_OK;
}

/* Inputs, shape and output of Gemm / FusedGemm (fused: float32 only). */
static int gemm_begin(kn_op_ctx *c, bool fused, gemm_shape *g, kn_tensor **y)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *a = c->in[0], *b = c->in[1], *ct = kn_op_in(c, 2);
    int rc = kn_check_same_dtype(c, a, b);
    if (rc || (ct && (rc = kn_check_same_dtype(c, a, ct))))
        return rc;
    if (!matmul_dtype_ok(a->dtype) || (fused && a->dtype != KN_F32))
        return kn_unsupported_dtype(c, a->dtype);
    if ((rc = gemm_shape_make(c, a, b, g)))
        return rc;
    int64_t dims[2] = {g->M, g->N};
    *y = kn_op_output(c, 0, a->dtype, 2, dims);
    return *y ? KN_OK : c->err->code;
}

static int run_gemm(kn_op_ctx *c)
{
    gemm_shape g;
    kn_tensor *y;
    int rc = gemm_begin(c, false, &g, &y);
    if (rc || y->numel == 0)
        return rc;
    const kn_tensor *a = c->in[0], *b = c->in[1];
    if (a->dtype == KN_F32)
        return gemm_f32_sgemm(c, &g, y, NULL);
    if (a->dtype == KN_F16 || a->dtype == KN_BF16)
        return gemm_f32(c, a, b, y, &g);
    if (a->dtype == KN_F64)
        return gemm_f64(c, a, b, y, &g);
    return gemm_int(c, a, b, y, &g);
}

/* ------------------------------------------------------------------------ */
/* com.microsoft FusedGemm and FusedMatMul (ONNX Runtime contrib ops): float32 */
/* ------------------------------------------------------------------------ */

/* FusedGemm: act(alpha * A' * B' + beta * C), act from "activation". */
static int run_fused_gemm(kn_op_ctx *c)
{
    mm_act act;
    gemm_shape g;
    kn_tensor *y;
    int rc = mm_act_parse(c->node, &act, c->err);
    if (rc || (rc = gemm_begin(c, true, &g, &y)))
        return rc;
    return y->numel ? gemm_f32_sgemm(c, &g, y, &act) : KN_OK;
}

static int check_fused_gemm(const kn_node *node, int opset, kn_error *err)
{
    mm_act act;
    (void)opset;
    return mm_act_parse(node, &act, err);
}

/* FusedMatMul: alpha * op(A) x op(B) with numpy batching; op transposes the last
 * two dims (transA/transB).  transBatchA/B (batch-dim transposes) are refused. */
static int run_fused_matmul(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    int rc = kn_check_same_dtype(c, c->in[0], c->in[1]);
    if (rc)
        return rc;
    if (c->in[0]->dtype != KN_F32)
        return kn_unsupported_dtype(c, c->in[0]->dtype);
    int ta = kn_attr_int(c->node, "transA", 0) != 0, tb = kn_attr_int(c->node, "transB", 0) != 0;
    return matmul_f32_sgemm(c, ta, tb, kn_attr_float(c->node, "alpha", 1.0f), NULL, NULL,
                            KN_GEMM_ACT_NONE);
}

static int check_fused_matmul(const kn_node *node, int opset, kn_error *err)
{
    (void)opset;
    if (kn_attr_int(node, "transBatchA", 0) != 0 || kn_attr_int(node, "transBatchB", 0) != 0)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "FusedMatMul: transBatchA/transBatchB are not supported");
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* kiln MatMulBiasGelu                                                       */
/* ------------------------------------------------------------------------ */

/* MatMulBiasGelu(A, B, bias; approximate "none" | "tanh") = Gelu(A x B + bias),
 * domain kiln: B a matrix [K, N], bias [N], A of any rank >= 2 (numpy batching).
 * fuse_matmul_gelu makes it of a transformer's MatMul + BiasGelu / FastGelu; the
 * GELU then runs over each GEMM tile while it is in cache instead of sweeping the
 * [tokens, 4 hidden] activation twice more (bias, then GELU). */
static int gelu_kind_parse(const kn_node *n, kn_gemm_act *act, kn_error *err)
{
    const char *a = kn_attr_string(n, "approximate", "none");
    if (!strcmp(a, "none"))
        *act = KN_GEMM_ACT_GELU;
    else if (!strcmp(a, "tanh"))
        *act = KN_GEMM_ACT_GELU_TANH;
    else
        return kn_fail(err, KN_ERR_ARG,
                       "MatMulBiasGelu: approximate must be \"none\" or \"tanh\", not \"%s\"", a);
    return KN_OK;
}

static int run_matmul_bias_gelu(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    const kn_tensor *a = c->in[0], *b = c->in[1], *bias = c->in[2];
    kn_gemm_act act;
    int rc = gelu_kind_parse(c->node, &act, c->err);
    if (!rc)
        rc = kn_check_same_dtype(c, a, b);
    if (!rc)
        rc = kn_check_same_dtype(c, a, bias);
    if (rc)
        return rc;
    if (a->dtype != KN_F32)
        return kn_unsupported_dtype(c, a->dtype);
    if (a->rank < 2 || b->rank != 2 || bias->rank != 1 || bias->dims[0] != b->dims[1])
        return kn_fail(c->err, KN_ERR_ARG,
                       "MatMulBiasGelu: want A of rank >= 2, B [K, N] and bias [N]; got ranks "
                       "%d, %d and bias of %lld",
                       a->rank, b->rank, (long long)bias->numel);
    return matmul_f32_sgemm(c, 0, 0, 1.0f, NULL, bias->data, act);
}

static int check_matmul_bias_gelu(const kn_node *node, int opset, kn_error *err)
{
    kn_gemm_act act;
    (void)opset;
    if (node->n_in != 3)
        return kn_fail(err, KN_ERR_ARG, "MatMulBiasGelu: takes A, B and bias (got %d inputs)",
                       node->n_in);
    return gelu_kind_parse(node, &act, err);
}

/* ------------------------------------------------------------------------ */
/* Einsum                                                                    */
/* ------------------------------------------------------------------------ */

/* Labels: 'A'-'Z' -> 0..25, 'a'-'z' -> 26..51 (so id order is ASCII order),
 * ellipsis dimensions -> EIN_ELL + position within the broadcast ellipsis. */
#define EIN_LETTERS 52
#define EIN_ELL EIN_LETTERS
#define EIN_LABELS (EIN_LETTERS + KN_MAX_RANK)
#define EIN_MAX_OPS 16
#define EIN_MAX_TERM 64

/* One term as written: letter ids, -1 marking where "..." stands. */
typedef struct ein_term {
    int n;
    int tok[EIN_MAX_TERM];
    bool has_ell;
} ein_term;

typedef struct ein_spec {
    int n_ops;
    ein_term in[EIN_MAX_OPS];
    ein_term out;
    bool explicit_out;
    int ell_rank;                       /* rank of the broadcast ellipsis */
    int64_t size[EIN_LABELS];           /* -1 = label unused */
    int64_t stride[EIN_MAX_OPS][EIN_LABELS]; /* per operand, summed for repeated labels */
    int n_outl, n_sum;
    int outl[EIN_LABELS], suml[EIN_LABELS];
} ein_spec;

static int ein_letter(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return 26 + (ch - 'a');
    return -1;
}

/* Parse one term from s[0..len) (spaces already removed); failures use `code`. */
static int ein_parse_term(kn_error *err, int code, const char *s, size_t len, ein_term *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < len;) {
        if (t->n >= EIN_MAX_TERM)
            return kn_fail(err, code, "Einsum: term has too many subscripts");
        if (s[i] == '.') {
            if (i + 3 > len || s[i + 1] != '.' || s[i + 2] != '.' || t->has_ell)
                return kn_fail(err, code, "Einsum: malformed ellipsis in equation");
            t->has_ell = true;
            t->tok[t->n++] = -1;
            i += 3;
            continue;
        }
        int l = ein_letter(s[i]);
        if (l < 0)
            return kn_fail(err, code, "Einsum: invalid character '%c' in equation", s[i]);
        t->tok[t->n++] = l;
        i++;
    }
    return KN_OK;
}

/* Split the equation (spaces removed) into input terms and the optional output. */
static int ein_parse(kn_error *err, int code, const char *eq, ein_spec *sp)
{
    size_t n = strlen(eq);
    char *buf = malloc(n + 1);
    if (!buf)
        return kn_fail(err, KN_ERR_NOMEM, "Einsum: out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (eq[i] != ' ' && eq[i] != '\t')
            buf[m++] = eq[i];
    buf[m] = 0;
    const char *arrow = strstr(buf, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - buf) : m;
    int rc = KN_OK;
    sp->n_ops = 0;
    for (size_t start = 0; !rc;) {
        size_t end = start;
        while (end < lhs_len && buf[end] != ',')
            end++;
        if (sp->n_ops >= EIN_MAX_OPS)
            rc = kn_fail(err, KN_ERR_UNSUPPORTED, "Einsum: more than %d operands", EIN_MAX_OPS);
        else
            rc = ein_parse_term(err, code, buf + start, end - start, &sp->in[sp->n_ops++]);
        if (end >= lhs_len)
            break;
        start = end + 1;
    }
    sp->explicit_out = arrow != NULL;
    if (!rc && arrow)
        rc = ein_parse_term(err, code, arrow + 2, strlen(arrow + 2), &sp->out);
    free(buf);
    return rc;
}

/* Bind one operand's dimensions to labels: sizes (with size-1 broadcasting) and strides. */
static int ein_bind_operand(kn_op_ctx *c, ein_spec *sp, int op, const kn_tensor *x)
{
    const ein_term *t = &sp->in[op];
    int letters = t->n - (t->has_ell ? 1 : 0);
    int ell = x->rank - letters;
    if (ell < 0 || (!t->has_ell && ell != 0))
        return kn_fail(c->err, KN_ERR_ARG, "Einsum: operand %d has rank %d but its term has %d subscripts",
                       op, x->rank, letters);
    int64_t xs[KN_MAX_RANK];
    kn_strides(x->rank, x->dims, xs);
    int axis = 0;
    for (int i = 0; i < t->n; i++) {
        int count = t->tok[i] < 0 ? ell : 1;
        for (int e = 0; e < count; e++, axis++) {
            int l = t->tok[i] < 0 ? EIN_ELL + (sp->ell_rank - ell) + e : t->tok[i];
            int64_t d = x->dims[axis];
            if (sp->size[l] < 0 || sp->size[l] == 1)
                sp->size[l] = d; /* first sight, or broadcast of a size-1 dim */
            else if (d != sp->size[l] && d != 1)
                return kn_fail(c->err, KN_ERR_ARG,
                               "Einsum: operand %d dimension %d has size %lld, expected %lld", op,
                               axis, (long long)d, (long long)sp->size[l]);
            if (d != 1)
                sp->stride[op][l] += xs[axis];
        }
    }
    return KN_OK;
}

/* Label sizes and per-operand strides.  Size-1 dims broadcast: they add no
 * stride, so their operand is read at index 0 whatever the label's size. */
static int ein_bind(kn_op_ctx *c, ein_spec *sp)
{
    for (int l = 0; l < EIN_LABELS; l++)
        sp->size[l] = -1;
    memset(sp->stride, 0, sizeof sp->stride);
    sp->ell_rank = 0;
    for (int op = 0; op < sp->n_ops; op++) {
        const ein_term *t = &sp->in[op];
        int e = c->in[op]->rank - (t->n - (t->has_ell ? 1 : 0));
        if (t->has_ell && e > sp->ell_rank)
            sp->ell_rank = e;
    }
    for (int op = 0; op < sp->n_ops; op++) {
        int rc = ein_bind_operand(c, sp, op, c->in[op]);
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* Output labels (explicit or implicit) and the summed labels. */
static int ein_labels(kn_op_ctx *c, ein_spec *sp)
{
    bool in_out[EIN_LABELS] = {0};
    sp->n_outl = 0;
    if (sp->explicit_out) {
        for (int i = 0; i < sp->out.n; i++) {
            int cnt = sp->out.tok[i] < 0 ? sp->ell_rank : 1;
            for (int e = 0; e < cnt; e++) {
                int l = sp->out.tok[i] < 0 ? EIN_ELL + e : sp->out.tok[i];
                if (sp->size[l] < 0)
                    return kn_fail(c->err, KN_ERR_ARG, "Einsum: output subscript not in any input");
                if (in_out[l])
                    return kn_fail(c->err, KN_ERR_ARG, "Einsum: output subscript repeated");
                in_out[l] = true;
                sp->outl[sp->n_outl++] = l;
            }
        }
    } else {
        int count[EIN_LETTERS] = {0};
        for (int op = 0; op < sp->n_ops; op++)
            for (int i = 0; i < sp->in[op].n; i++)
                if (sp->in[op].tok[i] >= 0)
                    count[sp->in[op].tok[i]]++;
        for (int e = 0; e < sp->ell_rank; e++) {
            in_out[EIN_ELL + e] = true;
            sp->outl[sp->n_outl++] = EIN_ELL + e;
        }
        for (int l = 0; l < EIN_LETTERS; l++)
            if (count[l] == 1) {
                in_out[l] = true;
                sp->outl[sp->n_outl++] = l;
            }
    }
    if (sp->n_outl > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Einsum: output rank %d too large", sp->n_outl);
    sp->n_sum = 0;
    for (int l = 0; l < EIN_LABELS; l++)
        if (sp->size[l] >= 0 && !in_out[l])
            sp->suml[sp->n_sum++] = l;
    return KN_OK;
}

/* Odometer over a list of labels carrying one offset per operand. */
typedef struct ein_odo {
    int n, n_ops;
    const int *labels;
    int64_t idx[EIN_LABELS];
    int64_t off[EIN_MAX_OPS];
} ein_odo;

static void ein_odo_init(ein_odo *o, int n, const int *labels, int n_ops, const int64_t *base)
{
    o->n = n;
    o->n_ops = n_ops;
    o->labels = labels;
    memset(o->idx, 0, sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    for (int k = 0; k < n_ops; k++)
        o->off[k] = base ? base[k] : 0;
}

static void ein_odo_next(ein_odo *o, const ein_spec *sp)
{
    for (int i = o->n - 1; i >= 0; i--) {
        int l = o->labels[i];
        o->idx[i]++;
        for (int k = 0; k < o->n_ops; k++)
            o->off[k] += sp->stride[k][l];
        if (o->idx[i] < sp->size[l])
            return;
        for (int k = 0; k < o->n_ops; k++)
            o->off[k] -= sp->stride[k][l] * sp->size[l];
        o->idx[i] = 0;
    }
}

static int64_t ein_count(const ein_spec *sp, int n, const int *labels)
{
    int64_t total = 1;
    for (int i = 0; i < n; i++)
        if (!kn_mul_ok(total, sp->size[labels[i]], &total))
            return -1;
    return total;
}

/* The last summed label runs as a tight strided loop (len steps of step[k]);
 * the other summed labels go through the odometer (rest_count positions). */
typedef struct ein_inner {
    int n_rest;
    int64_t rest_count, len;
    int64_t step[EIN_MAX_OPS];
} ein_inner;

static void ein_inner_setup(const ein_spec *sp, int64_t n_sum, ein_inner *in)
{
    memset(in, 0, sizeof *in);
    if (sp->n_sum == 0) {
        in->len = 1;
        in->rest_count = 1;
        return;
    }
    int l = sp->suml[sp->n_sum - 1];
    in->n_rest = sp->n_sum - 1;
    in->len = sp->size[l];
    in->rest_count = in->len ? n_sum / in->len : 0;
    for (int k = 0; k < sp->n_ops; k++)
        in->step[k] = sp->stride[k][l];
}

/* Sum over the innermost label of the product of all operands at offsets off. */
static double ein_dot_f64(const ein_spec *sp, const ein_inner *in, double *const *ops,
                          const int64_t *off)
{
    double acc = 0.0;
    if (sp->n_ops == 2) {
        const double *a = ops[0] + off[0], *b = ops[1] + off[1];
        for (int64_t t = 0; t < in->len; t++)
            acc += a[t * in->step[0]] * b[t * in->step[1]];
        return acc;
    }
    for (int64_t t = 0; t < in->len; t++) {
        double p = 1.0;
        for (int k = 0; k < sp->n_ops; k++)
            p *= ops[k][off[k] + t * in->step[k]];
        acc += p;
    }
    return acc;
}

static uint64_t ein_dot_u64(const ein_spec *sp, const ein_inner *in, uint64_t *const *ops,
                            const int64_t *off)
{
    uint64_t acc = 0;
    for (int64_t t = 0; t < in->len; t++) {
        uint64_t p = 1;
        for (int k = 0; k < sp->n_ops; k++)
            p *= ops[k][off[k] + t * in->step[k]];
        acc += p;
    }
    return acc;
}

static void ein_compute_f64(const ein_spec *sp, double *const *ops, double *y, int64_t n_out,
                            int64_t n_sum)
{
    ein_odo outer, inner;
    ein_inner in;
    ein_inner_setup(sp, n_sum, &in);
    ein_odo_init(&outer, sp->n_outl, sp->outl, sp->n_ops, NULL);
    for (int64_t o = 0; o < n_out; o++) {
        double acc = 0.0;
        ein_odo_init(&inner, in.n_rest, sp->suml, sp->n_ops, outer.off);
        for (int64_t r = 0; r < in.rest_count; r++) {
            acc += ein_dot_f64(sp, &in, ops, inner.off);
            ein_odo_next(&inner, sp);
        }
        y[o] = acc;
        ein_odo_next(&outer, sp);
    }
}

static void ein_compute_u64(const ein_spec *sp, uint64_t *const *ops, uint64_t *y,
                            int64_t n_out, int64_t n_sum)
{
    ein_odo outer, inner;
    ein_inner in;
    ein_inner_setup(sp, n_sum, &in);
    ein_odo_init(&outer, sp->n_outl, sp->outl, sp->n_ops, NULL);
    for (int64_t o = 0; o < n_out; o++) {
        uint64_t acc = 0;
        ein_odo_init(&inner, in.n_rest, sp->suml, sp->n_ops, outer.off);
        for (int64_t r = 0; r < in.rest_count; r++) {
            acc += ein_dot_u64(sp, &in, ops, inner.off);
            ein_odo_next(&inner, sp);
        }
        y[o] = acc;
        ein_odo_next(&outer, sp);
    }
}

static int ein_execute(kn_op_ctx *c, const ein_spec *sp, kn_tensor *y, int64_t n_sum)
{
    kn_dtype dt = c->in[0]->dtype;
    bool is_float = kn_dtype_is_float(dt);
    void *ops[EIN_MAX_OPS] = {0};
    void *buf = xcalloc(c, y->numel, is_float ? sizeof(double) : sizeof(uint64_t));
    int rc = buf ? KN_OK : c->err->code;
    for (int k = 0; !rc && k < sp->n_ops; k++) {
        ops[k] = is_float ? (void *)to_f64(c, c->in[k]) : (void *)to_u64(c, c->in[k]);
        if (!ops[k])
            rc = c->err->code;
    }
    if (!rc && is_float) {
        ein_compute_f64(sp, (double *const *)ops, buf, y->numel, n_sum);
        for (int64_t i = 0; i < y->numel; i++)
            kn_store_f64(y->data, dt, (size_t)i, ((double *)buf)[i]);
    } else if (!rc) {
        ein_compute_u64(sp, (uint64_t *const *)ops, buf, y->numel, n_sum);
        store_u64_buf(y, buf);
    }
    for (int k = 0; k < sp->n_ops; k++)
        free(ops[k]);
    free(buf);
    return rc;
}

static int run_einsum(kn_op_ctx *c)
{
    const char *eq = kn_attr_string(c->node, "equation", NULL);
    if (!eq)
        return kn_fail(c->err, KN_ERR_MODEL, "Einsum: missing 'equation' attribute");
    if (c->n_in < 1)
        return kn_fail(c->err, KN_ERR_MODEL, "Einsum needs at least one input");
    for (int i = 0; i < c->n_in; i++) {
        KN_REQUIRE_INPUT(c, i);
        int rc = kn_check_same_dtype(c, c->in[0], c->in[i]);
        if (rc)
            return rc;
    }
    if (!matmul_dtype_ok(c->in[0]->dtype))
        return kn_unsupported_dtype(c, c->in[0]->dtype);
    ein_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return kn_fail(c->err, KN_ERR_NOMEM, "Einsum: out of memory");
    int rc = ein_parse(c->err, KN_ERR_ARG, eq, sp);
    if (!rc && sp->n_ops != c->n_in)
        rc = kn_fail(c->err, KN_ERR_ARG, "Einsum: equation '%s' has %d operands but node has %d inputs",
                     eq, sp->n_ops, c->n_in);
    if (!rc)
        rc = ein_bind(c, sp);
    if (!rc)
        rc = ein_labels(c, sp);
    int64_t n_sum = rc ? 0 : ein_count(sp, sp->n_sum, sp->suml);
    if (!rc && n_sum < 0)
        rc = kn_fail(c->err, KN_ERR_ARG, "Einsum: contraction size overflows");
    if (!rc) {
        int64_t dims[KN_MAX_RANK];
        for (int i = 0; i < sp->n_outl; i++)
            dims[i] = sp->size[sp->outl[i]];
        kn_tensor *y = kn_op_output(c, 0, c->in[0]->dtype, sp->n_outl, dims);
        rc = y ? ein_execute(c, sp, y, n_sum) : c->err->code;
    }
    free(sp);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Static type inference                                                     */
/* ------------------------------------------------------------------------ */

static bool dim_is_one(kn_dim d)
{
    return d.value == 1 && !d.param;
}

/* numpy matmul output type; dt is the output dtype. */
static int infer_matmul_as(kn_infer_ctx *ic, kn_dtype dt)
{
    if (ic->n_in < 2 || !ic->in[0] || !ic->in[1] || ic->n_out < 1)
        return KN_OK;
    const kn_type *a = ic->in[0], *b = ic->in[1];
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = dt;
    o->rank = -1;
    if (a->rank < 1 || b->rank < 1)
        return KN_OK;
    int ra = a->rank >= 2 ? a->rank - 2 : 0, rb = b->rank >= 2 ? b->rank - 2 : 0;
    int r = ra > rb ? ra : rb;
    if (r + 2 > KN_MAX_RANK)
        return KN_OK;
    for (int i = 0; i < r; i++) {
        kn_dim one = {1, NULL};
        kn_dim da = i - (r - ra) >= 0 ? a->dims[i - (r - ra)] : one;
        kn_dim db = i - (r - rb) >= 0 ? b->dims[i - (r - rb)] : one;
        o->dims[i] = dim_is_one(da) ? db : dim_is_one(db) ? da : (da.value >= 0 || da.param) ? da : db;
    }
    int n = r;
    if (a->rank >= 2)
        o->dims[n++] = a->dims[a->rank - 2];
    if (b->rank >= 2)
        o->dims[n++] = b->dims[b->rank - 1];
    o->rank = n;
    return KN_OK;
}

static int infer_matmul(kn_infer_ctx *ic)
{
    return infer_matmul_as(ic, ic->n_in > 0 && ic->in[0] ? ic->in[0]->dtype : KN_UNDEFINED);
}

static int infer_matmul_integer(kn_infer_ctx *ic)
{
    return infer_matmul_as(ic, KN_I32);
}

static int infer_gemm(kn_infer_ctx *ic)
{
    if (ic->n_in < 2 || !ic->in[0] || !ic->in[1] || ic->n_out < 1)
        return KN_OK;
    const kn_type *a = ic->in[0], *b = ic->in[1];
    kn_type *o = &ic->out[0];
    o->kind = KN_TYPE_TENSOR;
    o->dtype = a->dtype;
    o->rank = -1;
    if (a->rank != 2 || b->rank != 2)
        return KN_OK;
    bool ta = kn_attr_int(ic->node, "transA", 0) != 0, tb = kn_attr_int(ic->node, "transB", 0) != 0;
    o->rank = 2;
    o->dims[0] = a->dims[ta ? 1 : 0];
    o->dims[1] = b->dims[tb ? 0 : 1];
    return KN_OK;
}

/* FusedMatMul: MatMul's inference on the transposed operand types. */
static int infer_fused_matmul(kn_infer_ctx *ic)
{
    if (ic->n_in < 2 || !ic->in[0] || !ic->in[1])
        return infer_matmul(ic);
    kn_type t[2] = {*ic->in[0], *ic->in[1]};
    const char *attr[2] = {"transA", "transB"};
    for (int i = 0; i < 2; i++) {
        if (t[i].rank >= 2 && kn_attr_int(ic->node, attr[i], 0) != 0) {
            kn_dim d = t[i].dims[t[i].rank - 1];
            t[i].dims[t[i].rank - 1] = t[i].dims[t[i].rank - 2];
            t[i].dims[t[i].rank - 2] = d;
        }
    }
    const kn_type *in[2] = {&t[0], &t[1]};
    kn_infer_ctx sub = *ic;
    sub.n_in = 2;
    sub.in = in;
    return infer_matmul_as(&sub, t[0].dtype);
}

/* Load-time check: the equation is present and well formed. */
static int check_einsum(const kn_node *node, int opset, kn_error *err)
{
    const char *eq = kn_attr_string(node, "equation", NULL);
    if (!eq)
        return kn_fail(err, KN_ERR_MODEL, "Einsum: missing 'equation' attribute");
    ein_spec *sp = calloc(1, sizeof *sp);
    if (!sp)
        return kn_fail(err, KN_ERR_NOMEM, "Einsum: out of memory");
    int rc = ein_parse(err, KN_ERR_MODEL, eq, sp);
    if (!rc && sp->n_ops != node->n_in)
        rc = kn_fail(err, KN_ERR_MODEL, "Einsum: equation '%s' has %d operands but node has %d inputs",
                     eq, sp->n_ops, node->n_in);
    free(sp);
    return rc;
}

const kn_op_def kn_ops_matmul[] = {
    {"", "MatMul", 1, run_matmul, NULL, infer_matmul, false, prepare_packed_b, mm_packed_free},
    {"", "MatMulInteger", 1, run_matmul_integer, NULL, infer_matmul_integer, false, kn_matmul_integer_prepare,
     kn_qdyn_state_release},
    {"", "Gemm", 1, run_gemm, NULL, infer_gemm, false, prepare_packed_b, mm_packed_free},
    {"com.microsoft", "FusedGemm", 1, run_fused_gemm, check_fused_gemm, infer_gemm, false,
     prepare_packed_b, mm_packed_free},
    {"com.microsoft", "FusedMatMul", 1, run_fused_matmul, check_fused_matmul,
     infer_fused_matmul, false, prepare_packed_b, mm_packed_free},
    {KN_KILN_DOMAIN, "MatMulBiasGelu", 1, run_matmul_bias_gelu, check_matmul_bias_gelu,
     infer_matmul, false, prepare_packed_b, mm_packed_free},
    {"", "Einsum", 1, run_einsum, check_einsum, NULL},
    {0},
};
