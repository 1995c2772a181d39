/* fused.c - operator family 'fused': ONNX Runtime contrib operators of the
 * "com.microsoft" domain that kiln's optimizer emits (src/opt/fuse_*.c), with
 * ORT's semantics so that an optimized file runs the same in ORT:
 *
 *   Gelu(X)            = 0.5 x (1 + erf(x / sqrt 2))
 *   BiasGelu(A, B)     = Gelu(A + B), B 1-D over A's last axis
 *   FastGelu(X, bias?) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x = X (+ bias)
 *   QuickGelu(X)       = x * sigmoid(alpha x), alpha = 1.702 unless given
 *   SkipLayerNormalization(input, skip, gamma, beta?, bias?) -> output, mean?,
 *       inv_std_var?, input_skip_bias_sum?: s = input + skip (+ bias), layer
 *       normalization of s over the last axis (epsilon, default 1e-12), * gamma (+ beta);
 *       skip is input's shape or broadcasts over its leading dims.
 *   Attention(input, weights, bias?, mask_index?) -> output, present?: BERT-style
 *       self-attention with packed QKV weights [D_in, Dq + Dk + Dv]
 *       (qkv_hidden_sizes, else three equal parts), num_heads heads; scores =
 *       scale * Q K^T + mask, scale = 1/sqrt(head_size) unless given; masked keys add
 *       mask_filter_value (-10000 unless given): mask_index is [B] (key ends), [2B]
 *       (ends then starts), [B, T] (0 = masked) or [B, S, T]; unidirectional adds
 *       mask_filter_value above the diagonal.  past / attention bias are refused.
 *   MultiHeadAttention(query, key, value) -> output: the same per-head core on
 *       separate Q, K, V [B, S, hidden] (fuse_attention emits it when the QKV
 *       projection is quantized); bias, masks, past and present are refused.
 *
 * float32 only (KN_ERR_UNSUPPORTED otherwise).  The GELUs and SkipLayerNormalization
 * run the vectorized vmath kernels (kernels/vmath.h) row by row, rows split across
 * c->pool; their references are the formulas in double in tests/unit/test_ops_fused.c.
 * Attention with constant weights (prepare hook: weights packed
 * once) projects through the threaded packed SGEMM and computes each head's
 * Q K^T and P V with packed SGEMMs, heads in parallel; without a prepared state it
 * takes the plain-loop reference path.  MultiHeadAttention always takes the
 * packed per-head path (its reference is the unfused graph: test_opt_attnq.c). */
#include "kernels/sgemm.h"
#include "kernels/vmath.h"
#include "exec/threadpool.h"
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int require_f32(kn_op_ctx *c, const kn_tensor *t)
{
    return t->dtype == KN_F32 ? KN_OK : kn_unsupported_dtype(c, t->dtype);
}

/* A 1-D (or any shape with that many elements) parameter over the last axis. */
static int check_last_axis_param(kn_op_ctx *c, const kn_tensor *p, int64_t n, const char *what)
{
    if (!p)
        return KN_OK;
    int rc = require_f32(c, p);
    if (rc)
        return rc;
    if (p->rank != 1 || p->dims[0] != n)
        return kn_fail(c->err, KN_ERR_ARG, "%s: %s must be 1-D of %lld elements (last axis)",
                       c->node->op_type, what, (long long)n);
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* Gelu family                                                               */
/* ------------------------------------------------------------------------ */

typedef enum gelu_kind { GELU_ERF, GELU_TANH, GELU_QUICK } gelu_kind;

typedef struct gelu_job {
    const kn_vmath_ops *vm;
    gelu_kind kind;
    float alpha;          /* QuickGelu */
    const float *x, *bias;
    float *y;
    int64_t cols;         /* row length: the last axis (bias length), or a chunk without bias */
    int64_t total;        /* elements in all (the last row may be short) */
} gelu_job;

static void gelu_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    (void)thread_index;
    const gelu_job *j = ctx;
    const kn_vmath_ops *vm = j->vm;
    size_t n = (size_t)j->cols;
    kn_cpu_clear_upper(); /* this thread ran wide vector code */
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * j->cols;
        float *y = j->y + r * j->cols;
        n = (size_t)(j->total - r * j->cols < j->cols ? j->total - r * j->cols : j->cols);
        if (j->bias) {
            vm->binary_vv(KN_VM_ADD, x, j->bias, y, n);
            x = y;
        }
        if (j->kind == GELU_ERF) {
            vm->gelu_erf(x, y, n);
        } else if (j->kind == GELU_TANH) {
            vm->gelu_tanh(x, y, n);
        } else { /* x * sigmoid(alpha x); x is the input here (no bias) */
            if (j->alpha == 1.0f) { /* SiLU: one pass */
                vm->silu(x, y, n);
                continue;
            }
            vm->affine(x, y, n, j->alpha, 0.0f);
            vm->sigmoid(y, y, n);
            vm->binary_vv(KN_VM_MUL, x, y, y, n);
        }
    }
}

static int run_gelu_kind(kn_op_ctx *c, gelu_kind kind, const kn_tensor *bias)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int rc = require_f32(c, x);
    int64_t cols = x->rank ? x->dims[x->rank - 1] : 1;
    if (!rc)
        rc = check_last_axis_param(c, bias, cols, "bias");
    if (rc)
        return rc;
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, x->rank, x->dims); /* all mapped */
    if (!y)
        return c->err->code;
    if (x->numel == 0)
        return KN_OK;
    if (!bias) /* elementwise: rows of a fixed length, whatever the shape (7x7 planes...) */
        cols = x->numel < 4096 ? x->numel : 4096;
    gelu_job j = {kn_vmath(), kind, kn_attr_float(c->node, "alpha", 1.702f), x->data,
                  bias ? bias->data : NULL, y->data, cols, x->numel};
    int64_t rows = (x->numel + cols - 1) / cols;
    int64_t grain = cols >= 4096 ? 1 : 4096 / cols;
    kn_parallel_for(c->pool, rows, grain, gelu_rows, &j);
    return KN_OK;
}

static int run_gelu(kn_op_ctx *c)
{
    return run_gelu_kind(c, GELU_ERF, NULL);
}

static int run_bias_gelu(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 1);
    return run_gelu_kind(c, GELU_ERF, c->in[1]);
}

static int run_fast_gelu(kn_op_ctx *c)
{
    return run_gelu_kind(c, GELU_TANH, kn_op_in(c, 1));
}

static int run_quick_gelu(kn_op_ctx *c)
{
    return run_gelu_kind(c, GELU_QUICK, NULL);
}

/* ------------------------------------------------------------------------ */
/* SkipLayerNormalization                                                    */
/* ------------------------------------------------------------------------ */

typedef struct sln_job {
    const kn_vmath_ops *vm;
    const float *x, *skip, *gamma, *beta, *bias;
    int64_t hidden, skip_rows;
    float eps;
    float *y, *sum, *mean, *inv_std; /* sum/mean/inv_std may be NULL */
    float *scratch;                  /* per-thread row when sum is NULL */
} sln_job;

static void sln_rows(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const sln_job *j = ctx;
    const kn_vmath_ops *vm = j->vm;
    int64_t h = j->hidden;
    kn_cpu_clear_upper(); /* this thread ran wide vector code */
    for (int64_t r = begin; r < end; r++) {
        const float *sk = j->skip + (r % j->skip_rows) * h;
        float *s = j->sum ? j->sum + r * h : j->scratch + (int64_t)thread_index * h;
        vm->binary_vv(KN_VM_ADD, j->x + r * h, sk, s, (size_t)h);
        if (j->bias)
            vm->binary_vv(KN_VM_ADD, s, j->bias, s, (size_t)h);
        vm->layer_norm(s, j->y + r * h, (size_t)h, j->gamma, j->beta, j->eps,
                       j->mean ? j->mean + r : NULL, j->inv_std ? j->inv_std + r : NULL);
    }
}

/* skip must be input's shape, or input's trailing dims after leading 1s (broadcast
 * over input's leading dims): row r of input reads row r % skip_rows of skip. */
static int sln_skip_rows(kn_op_ctx *c, const kn_tensor *x, const kn_tensor *skip, int64_t hidden,
                         int64_t *skip_rows)
{
    int lead = 0; /* skip's leading 1s broadcast; the rest must be x's trailing dims */
    while (lead < skip->rank - 1 && skip->dims[lead] == 1)
        lead++;
    bool ok = skip->rank >= 1 && skip->rank - lead <= x->rank && skip->numel > 0;
    for (int i = 1; ok && i <= skip->rank - lead; i++)
        ok = skip->dims[skip->rank - i] == x->dims[x->rank - i];
    if (!ok || x->numel % skip->numel) {
        char a[128], b[128];
        return kn_fail(c->err, KN_ERR_ARG, "SkipLayerNormalization: skip %s does not match input %s",
                       kn_dims_str(skip->rank, skip->dims, a, sizeof a),
                       kn_dims_str(x->rank, x->dims, b, sizeof b));
    }
    *skip_rows = skip->numel / hidden;
    return KN_OK;
}

/* Optional statistic output i of shape input[..., 1], or NULL when the node lacks it. */
static int sln_stat_output(kn_op_ctx *c, int i, const kn_tensor *x, float **out)
{
    *out = NULL;
    if (i >= c->node->n_out || c->node->out[i] < 0)
        return KN_OK;
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[x->rank - 1] = 1;
    kn_tensor *t = kn_op_output(c, i, KN_F32, x->rank, dims);
    if (!t)
        return c->err->code;
    *out = t->data;
    return KN_OK;
}

static int sln_check_inputs(kn_op_ctx *c, const kn_tensor *x, int64_t *hidden)
{
    for (int i = 0; i < 5; i++) {
        const kn_tensor *t = kn_op_in(c, i);
        int rc = t ? require_f32(c, t) : KN_OK;
        if (rc)
            return rc;
    }
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "SkipLayerNormalization: input rank %d < 2", x->rank);
    *hidden = x->dims[x->rank - 1];
    if (*hidden <= 0)
        return kn_fail(c->err, KN_ERR_ARG, "SkipLayerNormalization: hidden size is 0");
    int rc = check_last_axis_param(c, c->in[2], *hidden, "gamma");
    if (!rc)
        rc = check_last_axis_param(c, kn_op_in(c, 3), *hidden, "beta");
    if (!rc)
        rc = check_last_axis_param(c, kn_op_in(c, 4), *hidden, "bias");
    return rc;
}

static int run_skip_layernorm(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    KN_REQUIRE_INPUT(c, 2);
    const kn_tensor *x = c->in[0], *skip = c->in[1];
    if (skip->numel > x->numel) { /* the sum commutes: the larger operand is the input */
        const kn_tensor *t = x;
        x = skip;
        skip = t;
    }
    int64_t hidden = 0, skip_rows = 0;
    int rc = sln_check_inputs(c, x, &hidden);
    if (!rc)
        rc = sln_skip_rows(c, x, skip, hidden, &skip_rows);
    if (rc)
        return rc;
    sln_job j = {kn_vmath(), x->data, skip->data, c->in[2]->data, NULL, NULL, hidden, skip_rows,
                 kn_attr_float(c->node, "epsilon", 1e-12f), NULL, NULL, NULL, NULL, NULL};
    j.beta = kn_op_in(c, 3) ? kn_op_in(c, 3)->data : NULL;
    j.bias = kn_op_in(c, 4) ? kn_op_in(c, 4)->data : NULL;
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, x->rank, x->dims); /* every row */
    if (!y)
        return c->err->code;
    j.y = y->data;
    if ((rc = sln_stat_output(c, 1, x, &j.mean)) || (rc = sln_stat_output(c, 2, x, &j.inv_std)))
        return rc;
    if (c->node->n_out > 3 && c->node->out[3] >= 0) {
        kn_tensor *s = kn_op_output(c, 3, KN_F32, x->rank, x->dims);
        if (!s)
            return c->err->code;
        j.sum = s->data;
    } else {
        int nt = kn_threadpool_size(c->pool);
        j.scratch = kn_op_scratch(c, sizeof(float) * (size_t)hidden * (size_t)nt);
        if (!j.scratch)
            return c->err->code;
    }
    int64_t rows = x->numel / hidden;
    kn_parallel_for(c->pool, rows, hidden >= 1024 ? 1 : 1024 / hidden, sln_rows, &j);
    return KN_OK;
}

static int infer_skip_layernorm(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0])
        return KN_OK;
    for (int i = 0; i < ic->n_out; i++) {
        ic->out[i] = *ic->in[0];
        if ((i == 1 || i == 2) && ic->out[i].rank > 0) {
            ic->out[i].dims[ic->out[i].rank - 1].value = 1;
            ic->out[i].dims[ic->out[i].rank - 1].param = NULL;
            ic->out[i].dtype = KN_F32;
        }
    }
    return KN_OK;
}

/* ------------------------------------------------------------------------ */
/* Attention                                                                 */
/* ------------------------------------------------------------------------ */

/* Sizes of one Attention call. */
typedef struct attn_shape {
    int64_t batch, seq, d_in;
    int64_t dq, dk, dv, dqkv;  /* hidden sizes of Q, K, V and their sum */
    int64_t heads, hq, hv;     /* number of heads, head sizes of Q/K and V */
} attn_shape;

/* Hidden sizes from the attributes and the weight's width. */
static int attn_hidden_sizes(const kn_node *node, int64_t width, attn_shape *s, kn_error *err)
{
    const int64_t *q = NULL;
    int n = kn_attr_ints(node, "qkv_hidden_sizes", &q);
    s->heads = kn_attr_int(node, "num_heads", 0);
    if (s->heads <= 0)
        return kn_fail(err, KN_ERR_ARG, "Attention: num_heads must be positive");
    if (n >= 0 && n != 3)
        return kn_fail(err, KN_ERR_ARG, "Attention: qkv_hidden_sizes must have 3 values");
    if (n == 3) {
        s->dq = q[0], s->dk = q[1], s->dv = q[2];
    } else {
        if (width % 3)
            return kn_fail(err, KN_ERR_ARG, "Attention: weights width %lld is not 3 * hidden",
                           (long long)width);
        s->dq = s->dk = s->dv = width / 3;
    }
    if (s->dq <= 0 || s->dv <= 0 || s->dq != s->dk || s->dq + s->dk + s->dv != width)
        return kn_fail(err, KN_ERR_ARG, "Attention: hidden sizes do not fit weights width %lld",
                       (long long)width);
    if (s->dq % s->heads || s->dv % s->heads)
        return kn_fail(err, KN_ERR_ARG, "Attention: hidden sizes not divisible by num_heads %lld",
                       (long long)s->heads);
    s->dqkv = width;
    s->hq = s->dq / s->heads;
    s->hv = s->dv / s->heads;
    return KN_OK;
}

static int attn_refuse_extras(kn_op_ctx *c)
{
    static const char *const names[] = {"past", "attention_bias", "past_sequence_length"};
    for (int i = 4; i < c->n_in && i < 7; i++)
        if (c->in[i])
            return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Attention: input '%s' is not supported",
                           names[i - 4]);
    if (kn_attr_int(c->node, "do_rotary", 0))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Attention: do_rotary is not supported");
    return KN_OK;
}

static int attn_check_inputs(kn_op_ctx *c, attn_shape *s)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *w = c->in[1], *b = kn_op_in(c, 2);
    int rc = attn_refuse_extras(c);
    if (!rc)
        rc = require_f32(c, x);
    if (!rc)
        rc = require_f32(c, w);
    if (rc)
        return rc;
    if (x->rank != 3 || w->rank != 2 || w->dims[0] != x->dims[2])
        return kn_fail(c->err, KN_ERR_ARG, "Attention: input must be [batch, seq, hidden] and "
                       "weights [hidden, 3 * hidden]");
    s->batch = x->dims[0], s->seq = x->dims[1], s->d_in = x->dims[2];
    if ((rc = attn_hidden_sizes(c->node, w->dims[1], s, c->err)))
        return rc;
    return check_last_axis_param(c, b, s->dqkv, "bias");
}

/* The additive mask of one batch entry: add[i * T + j] for query i, key j. */
typedef struct attn_mask {
    const kn_tensor *m;     /* mask_index or NULL */
    bool causal;
    float filter;
} attn_mask;

static int attn_check_mask(kn_op_ctx *c, const attn_shape *s, const kn_tensor *m)
{
    if (!m)
        return KN_OK;
    if (m->dtype != KN_I32 && m->dtype != KN_I64)
        return kn_fail(c->err, KN_ERR_ARG, "Attention: mask_index must be int32");
    bool ok = (m->rank == 1 && (m->dims[0] == s->batch || m->dims[0] == 2 * s->batch)) ||
              (m->rank == 2 && m->dims[0] == s->batch && m->dims[1] == s->seq) ||
              (m->rank == 3 && m->dims[0] == s->batch && m->dims[1] == s->seq &&
               m->dims[2] == s->seq);
    if (!ok) {
        char d[128];
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Attention: mask_index of shape %s is not supported",
                       kn_dims_str(m->rank, m->dims, d, sizeof d));
    }
    return KN_OK;
}

/* Additive mask value for (batch b, query i, key j). */
static float attn_mask_add(const attn_mask *am, int64_t batch, int64_t seq, int64_t b, int64_t i,
                           int64_t j)
{
    float add = 0.0f;
    const kn_tensor *m = am->m;
    if (m) {
        bool keep;
        if (m->rank == 1) {
            int64_t end = (int64_t)kn_get_f64(m, b), start = 0;
            if (m->dims[0] == 2 * batch)
                start = (int64_t)kn_get_f64(m, batch + b);
            keep = j < end && j >= start;
        } else if (m->rank == 2) {
            keep = kn_get_f64(m, b * seq + j) > 0;
        } else {
            keep = kn_get_f64(m, (b * seq + i) * seq + j) > 0;
        }
        if (!keep)
            add = am->filter;
    }
    if (am->causal && j > i)
        add += am->filter;
    return add;
}

typedef struct attn_job {
    attn_shape s;
    const float *q, *k, *v; /* row (b, t) of Q at q + (b * seq + t) * ldq, same for K, V */
    int64_t ldq, ldk, ldv;
    float *out;            /* [batch, seq, dv] */
    float *present;        /* [2, batch, heads, seq, hq] or NULL */
    attn_mask mask;
    float scale;
    float *scratch;        /* per thread: reference kt [hq * seq] + scores [seq]; fast
                            * path packed K^T, packed V, scores [ATTN_QBLOCK * seq] */
    size_t scratch_per_thread;
    bool fast;             /* per-head products through the packed SGEMM */
    const kn_vmath_ops *vm;
} attn_job;

/* Query rows per block of the fast path (bounds the scores buffer). */
#define ATTN_QBLOCK 128

/* K of head (b, h) transposed into kt [hq][seq], so score rows vectorize over keys. */
static void attn_load_kt(const attn_job *j, int64_t b, int64_t h, float *kt)
{
    const attn_shape *s = &j->s;
    for (int64_t t = 0; t < s->seq; t++) {
        const float *k = j->k + (b * s->seq + t) * j->ldk + h * s->hq;
        for (int64_t d = 0; d < s->hq; d++)
            kt[d * s->seq + t] = k[d];
    }
}

/* present[0 or 1][b][h][t][:] = K or V of head (b, h). */
static void attn_store_present(const attn_job *j, int64_t b, int64_t h)
{
    const attn_shape *s = &j->s;
    for (int kv = 0; kv < 2; kv++) {
        const float *src = kv ? j->v + h * s->hv : j->k + h * s->hq;
        int64_t hd = kv ? s->hv : s->hq, ld = kv ? j->ldv : j->ldk;
        float *dst = j->present + (((int64_t)kv * s->batch + b) * s->heads + h) * s->seq * hd;
        for (int64_t t = 0; t < s->seq; t++)
            memcpy(dst + t * hd, src + (b * s->seq + t) * ld, sizeof(float) * (size_t)hd);
    }
}

/* Softmax of one row in place.  Terms more than 87 below the maximum become 0
 * (exp would give at most 1.6e-38, denormal territory where both libm's expf and
 * the arithmetic on its results slow down many times, for no visible effect). */
static void softmax_row(float *p, int64_t n)
{
    float mx = p[0];
    for (int64_t k = 1; k < n; k++)
        mx = p[k] > mx ? p[k] : mx;
    float sum = 0.0f;
    for (int64_t k = 0; k < n; k++) {
        float d = p[k] - mx;
        p[k] = d > -87.0f ? expf(d) : 0.0f;
        sum += p[k];
    }
    float inv = 1.0f / sum;
    for (int64_t k = 0; k < n; k++)
        p[k] *= inv;
}

/* Output rows of head (b, h): softmax(scale q kt + mask) V. */
static void attn_head(const attn_job *j, int64_t b, int64_t h, float *kt, float *p)
{
    const attn_shape *s = &j->s;
    int64_t T = s->seq;
    for (int64_t i = 0; i < s->seq; i++) {
        const float *q = j->q + (b * s->seq + i) * j->ldq + h * s->hq;
        for (int64_t t = 0; t < T; t++)
            p[t] = 0.0f;
        for (int64_t d = 0; d < s->hq; d++) {
            float qd = q[d] * j->scale;
            const float *kd = kt + d * T;
            for (int64_t t = 0; t < T; t++)
                p[t] += qd * kd[t];
        }
        if (j->mask.m || j->mask.causal)
            for (int64_t t = 0; t < T; t++)
                p[t] += attn_mask_add(&j->mask, s->batch, s->seq, b, i, t);
        softmax_row(p, T);
        float *o = j->out + (b * s->seq + i) * s->dv + h * s->hv;
        for (int64_t d = 0; d < s->hv; d++)
            o[d] = 0.0f;
        for (int64_t t = 0; t < T; t++) {
            const float *v = j->v + (b * s->seq + t) * j->ldv + h * s->hv;
            float pt = p[t];
            for (int64_t d = 0; d < s->hv; d++)
                o[d] += pt * v[d];
        }
    }
}

/* Per-thread scratch of the fast path in floats: packed K^T, packed V, scores. */
static size_t attn_fast_floats(const attn_shape *s, size_t *kt_n, size_t *v_n)
{
    size_t seq = (size_t)s->seq, rows = seq < ATTN_QBLOCK ? seq : ATTN_QBLOCK;
    *kt_n = (kn_sgemm_packed_b_floats((size_t)s->hq, seq) + 15) & ~(size_t)15;
    *v_n = (kn_sgemm_packed_b_floats(seq, (size_t)s->hv) + 15) & ~(size_t)15;
    return (*kt_n + *v_n + rows * seq + 15) & ~(size_t)15;
}

/* Head (b, h) with packed SGEMMs: scores = scale Q K^T (+ mask), softmax, P V;
 * query rows in blocks of ATTN_QBLOCK. */
static void attn_head_fast(const attn_job *j, int64_t b, int64_t h, float *buf)
{
    const attn_shape *s = &j->s;
    size_t seq = (size_t)s->seq, ldq = (size_t)j->ldq, kt_n, v_n;
    attn_fast_floats(s, &kt_n, &v_n);
    const float *qb = j->q + b * s->seq * j->ldq + h * s->hq;
    kn_packed_b kt, v;
    kn_sgemm_pack_b_into(&kt, buf, (size_t)s->hq, seq, j->k + b * s->seq * j->ldk + h * s->hq,
                         (size_t)j->ldk, 1);
    kn_sgemm_pack_b_into(&v, buf + kt_n, seq, (size_t)s->hv, j->v + b * s->seq * j->ldv + h * s->hv,
                         (size_t)j->ldv, 0);
    float *p = buf + kt_n + v_n;
    kn_gemm_epilogue scale = {.has_alpha = 1, .alpha = j->scale};
    for (size_t i0 = 0; i0 < seq; i0 += ATTN_QBLOCK) {
        size_t rows = seq - i0 < ATTN_QBLOCK ? seq - i0 : ATTN_QBLOCK;
        kn_sgemm_run(rows, seq, (size_t)s->hq, qb + i0 * ldq, ldq, &kt, p, seq, &scale);
        kn_cpu_clear_upper(); /* this thread ran wide vector code */
        for (size_t r = 0; r < rows; r++) {
            float *row = p + r * seq;
            if (j->mask.m || j->mask.causal)
                for (size_t t = 0; t < seq; t++)
                    row[t] += attn_mask_add(&j->mask, s->batch, s->seq, b, (int64_t)(i0 + r), (int64_t)t);
            j->vm->softmax(row, row, seq);
        }
        float *o = j->out + (b * s->seq + (int64_t)i0) * s->dv + h * s->hv;
        kn_sgemm_run(rows, (size_t)s->hv, seq, p, seq, &v, o, (size_t)s->dv, NULL);
        kn_cpu_clear_upper(); /* this thread ran wide vector code */
    }
}

static void attn_heads(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const attn_job *j = ctx;
    kn_cpu_clear_upper(); /* this thread ran wide vector code */
    if (j->fast) {
        float *buf = j->scratch + (size_t)thread_index * j->scratch_per_thread;
        for (int64_t bh = begin; bh < end; bh++) {
            attn_head_fast(j, bh / j->s.heads, bh % j->s.heads, buf);
            if (j->present)
                attn_store_present(j, bh / j->s.heads, bh % j->s.heads);
        }
        return;
    }
    float *kt = j->scratch + (size_t)thread_index * j->scratch_per_thread;
    float *p = kt + j->s.hq * j->s.seq;
    for (int64_t bh = begin; bh < end; bh++) {
        int64_t b = bh / j->s.heads, h = bh % j->s.heads;
        attn_load_kt(j, b, h, kt);
        attn_head(j, b, h, kt, p);
        if (j->present)
            attn_store_present(j, b, h);
    }
}

/* Packed weights built by the prepare hook. */
typedef struct attn_state {
    kn_packed_b *w;
} attn_state;

/* qkv = x W + bias: packed SGEMM with prepared weights, else a plain loop. */
static int attn_project(kn_op_ctx *c, const attn_shape *s, float *qkv)
{
    const float *x = c->in[0]->data, *w = c->in[1]->data;
    const float *bias = kn_op_in(c, 2) ? kn_op_in(c, 2)->data : NULL;
    size_t M = (size_t)(s->batch * s->seq), N = (size_t)s->dqkv, K = (size_t)s->d_in;
    const attn_state *st = c->state;
    if (st) { /* the packed copy replaces W (its data may be gone: drop_inputs) */
        kn_gemm_epilogue ep = {.bias = bias};
        int rc = st->w->K == K && st->w->N == N
                     ? kn_sgemm_run_pool(c->pool, M, N, K, x, K, st->w, qkv, N, &ep)
                     : KN_ERR_ARG;
        return rc ? kn_fail(c->err, rc, "Attention: projection failed") : KN_OK;
    }
    kn_gemm_epilogue ep = {.bias = bias};
    kn_sgemm_ref(0, 0, M, N, K, x, K, w, N, qkv, N, &ep);
    return KN_OK;
}

static int attn_outputs(kn_op_ctx *c, const attn_shape *s, attn_job *j)
{
    int64_t od[3] = {s->batch, s->seq, s->dv};
    kn_tensor *y = kn_op_output_uninit(c, 0, KN_F32, 3, od); /* every head writes its columns */
    if (!y)
        return c->err->code;
    j->out = y->data;
    j->present = NULL;
    if (c->node->n_out > 1 && c->node->out[1] >= 0) {
        if (s->hq != s->hv)
            return kn_fail(c->err, KN_ERR_UNSUPPORTED,
                           "Attention: present with different K and V head sizes");
        int64_t pd[5] = {2, s->batch, s->heads, s->seq, s->hq};
        kn_tensor *pr = kn_op_output(c, 1, KN_F32, 5, pd);
        if (!pr)
            return c->err->code;
        j->present = pr->data;
    }
    return KN_OK;
}

static int run_attention(kn_op_ctx *c)
{
    attn_job j;
    memset(&j, 0, sizeof j);
    int rc = attn_check_inputs(c, &j.s);
    if (!rc)
        rc = attn_check_mask(c, &j.s, kn_op_in(c, 3));
    if (!rc)
        rc = attn_outputs(c, &j.s, &j);
    if (rc)
        return rc;
    const attn_shape *s = &j.s;
    if (s->batch * s->seq == 0)
        return KN_OK;
    float scale = kn_attr_float(c->node, "scale", 0.0f);
    j.scale = scale != 0.0f ? scale : 1.0f / sqrtf((float)s->hq);
    j.mask = (attn_mask){kn_op_in(c, 3), kn_attr_int(c->node, "unidirectional", 0) != 0,
                         kn_attr_float(c->node, "mask_filter_value", -10000.0f)};
    size_t nt = (size_t)kn_threadpool_size(c->pool);
    size_t qkv_n = ((size_t)(s->batch * s->seq * s->dqkv) + 15) & ~(size_t)15;
    size_t kt_n, v_n;
    j.fast = c->state != NULL; /* prepared: the fast path; else the plain reference */
    j.vm = kn_vmath();
    j.scratch_per_thread = j.fast ? attn_fast_floats(s, &kt_n, &v_n)
                                  : ((size_t)(s->hq * s->seq + s->seq) + 15) & ~(size_t)15;
    float *buf = kn_op_scratch(c, sizeof(float) * (qkv_n + nt * j.scratch_per_thread));
    if (!buf)
        return c->err->code;
    j.scratch = buf + qkv_n;
    j.q = buf, j.k = buf + s->dq, j.v = buf + s->dq + s->dk;
    j.ldq = j.ldk = j.ldv = s->dqkv;
    if ((rc = attn_project(c, s, buf)))
        return rc;
    kn_parallel_for(c->pool, s->batch * s->heads, 1, attn_heads, &j);
    return KN_OK;
}

static void attn_release(void *state)
{
    attn_state *st = state;
    if (st)
        kn_packed_b_free(st->w);
    free(st);
}

static int attn_prepare(kn_prepare_ctx *pc, void **state)
{
    const kn_tensor *w = pc->n_in > 1 ? pc->in_const[1] : NULL;
    if (!w || w->dtype != KN_F32 || w->rank != 2 || w->numel == 0)
        return KN_OK;
    attn_state *st = calloc(1, sizeof *st);
    if (!st)
        return kn_fail(pc->err, KN_ERR_NOMEM, "Attention: out of memory");
    st->w = kn_sgemm_pack_b((size_t)w->dims[0], (size_t)w->dims[1], w->data, (size_t)w->dims[1], 0);
    if (!st->w) {
        free(st);
        return kn_fail(pc->err, KN_ERR_NOMEM, "Attention: out of memory packing weights");
    }
    *state = st;
    pc->drop_inputs |= 1u << 1;
    return KN_OK;
}

static int check_attention(const kn_node *node, int opset, kn_error *err)
{
    (void)opset;
    if (kn_attr_int(node, "num_heads", 0) <= 0)
        return kn_fail(err, KN_ERR_MODEL, "Attention: attribute 'num_heads' must be given and positive");
    return KN_OK;
}

static int infer_attention(kn_infer_ctx *ic)
{
    if (ic->n_in < 2 || !ic->in[0] || !ic->in[1] || ic->n_out < 1)
        return KN_OK;
    const kn_type *x = ic->in[0], *w = ic->in[1];
    kn_type *y = &ic->out[0];
    *y = *x;
    if (x->rank != 3)
        return KN_OK;
    y->dims[2] = (kn_dim){-1, NULL};
    attn_shape s;
    kn_error e = {0};
    if (w->rank == 2 && w->dims[1].value > 0 &&
        attn_hidden_sizes(ic->node, w->dims[1].value, &s, &e) == KN_OK)
        y->dims[2].value = s.dv;
    return KN_OK;
}

/* ---- MultiHeadAttention (com.microsoft): query, key, value [B, S, hidden] ---- */

static int mha_refuse_extras(kn_op_ctx *c)
{
    static const char *const names[] = {"bias", "key_padding_mask", "attention_bias", "past_key",
                                        "past_value"};
    for (int i = 3; i < c->n_in && i < 8; i++)
        if (c->in[i])
            return kn_fail(c->err, KN_ERR_UNSUPPORTED, "MultiHeadAttention: input '%s' is not supported",
                           names[i - 3]);
    for (int i = 1; i < c->node->n_out; i++)
        if (c->node->out[i] >= 0)
            return kn_fail(c->err, KN_ERR_UNSUPPORTED, "MultiHeadAttention: present outputs are not supported");
    return KN_OK;
}

/* Q, K, V all float32 [batch, seq, hidden] with equal batch and seq, K and Q of one width. */
static int mha_check_inputs(kn_op_ctx *c, attn_shape *s)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *q = c->in[0], *k = kn_op_in(c, 1), *v = kn_op_in(c, 2);
    if (!k || !v)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "MultiHeadAttention: packed QKV or KV is not supported");
    int rc = mha_refuse_extras(c);
    for (int i = 0; i < 3 && !rc; i++)
        rc = require_f32(c, c->in[i]);
    if (rc)
        return rc;
    if (q->rank != 3 || k->rank != 3 || v->rank != 3 || k->dims[0] != q->dims[0] ||
        v->dims[0] != q->dims[0] || k->dims[1] != q->dims[1] || v->dims[1] != q->dims[1] ||
        k->dims[2] != q->dims[2])
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "MultiHeadAttention: query, key and value must be "
                       "[batch, seq, hidden] with one batch and sequence length");
    s->batch = q->dims[0], s->seq = q->dims[1], s->d_in = q->dims[2];
    s->dq = s->dk = q->dims[2], s->dv = v->dims[2], s->dqkv = s->dq + s->dk + s->dv;
    s->heads = kn_attr_int(c->node, "num_heads", 0);
    if (s->heads <= 0 || s->dq % s->heads || s->dv % s->heads)
        return kn_fail(c->err, KN_ERR_ARG, "MultiHeadAttention: num_heads %lld must be positive and "
                       "divide the hidden sizes", (long long)s->heads);
    s->hq = s->dq / s->heads, s->hv = s->dv / s->heads;
    return KN_OK;
}

static int run_mha(kn_op_ctx *c)
{
    attn_job j;
    memset(&j, 0, sizeof j);
    int rc = mha_check_inputs(c, &j.s);
    const attn_shape *s = &j.s;
    int64_t od[3] = {s->batch, s->seq, s->dv};
    kn_tensor *y = rc ? NULL : kn_op_output(c, 0, KN_F32, 3, od);
    if (!y)
        return c->err->code;
    if (y->numel == 0)
        return KN_OK;
    float scale = kn_attr_float(c->node, "scale", 0.0f);
    j.scale = scale != 0.0f ? scale : 1.0f / sqrtf((float)s->hq);
    j.mask = (attn_mask){NULL, kn_attr_int(c->node, "unidirectional", 0) != 0,
                         kn_attr_float(c->node, "mask_filter_value", -10000.0f)};
    j.q = c->in[0]->data, j.k = c->in[1]->data, j.v = c->in[2]->data;
    j.ldq = j.ldk = s->dq, j.ldv = s->dv;
    j.out = y->data;
    j.fast = true;
    j.vm = kn_vmath();
    size_t kt_n, v_n, nt = (size_t)kn_threadpool_size(c->pool);
    j.scratch_per_thread = attn_fast_floats(s, &kt_n, &v_n);
    j.scratch = kn_op_scratch(c, sizeof(float) * nt * j.scratch_per_thread);
    if (!j.scratch)
        return c->err->code;
    kn_parallel_for(c->pool, s->batch * s->heads, 1, attn_heads, &j);
    return KN_OK;
}

static int check_mha(const kn_node *node, int opset, kn_error *err)
{
    (void)opset;
    if (kn_attr_int(node, "num_heads", 0) <= 0)
        return kn_fail(err, KN_ERR_MODEL,
                       "MultiHeadAttention: attribute 'num_heads' must be given and positive");
    return KN_OK;
}

/* Output [batch, seq, hidden of V]. */
static int infer_mha(kn_infer_ctx *ic)
{
    if (ic->n_in < 3 || !ic->in[0] || !ic->in[2] || ic->n_out < 1)
        return KN_OK;
    ic->out[0] = *ic->in[0];
    if (ic->in[0]->rank == 3 && ic->in[2]->rank == 3)
        ic->out[0].dims[2] = ic->in[2]->dims[2];
    return KN_OK;
}

const kn_op_def kn_ops_fused[] = {
    {"com.microsoft", "Gelu", 1, run_gelu, NULL, kn_infer_same_as_input0},
    {"com.microsoft", "BiasGelu", 1, run_bias_gelu, NULL, kn_infer_same_as_input0},
    {"com.microsoft", "FastGelu", 1, run_fast_gelu, NULL, kn_infer_same_as_input0},
    {"com.microsoft", "QuickGelu", 1, run_quick_gelu, NULL, kn_infer_same_as_input0},
    {"com.microsoft", "SkipLayerNormalization", 1, run_skip_layernorm, NULL, infer_skip_layernorm},
    {"com.microsoft", "Attention", 1, run_attention, check_attention, infer_attention, false,
     attn_prepare, attn_release},
    {"com.microsoft", "MultiHeadAttention", 1, run_mha, check_mha, infer_mha},
    {0},
};
