/* state.c - operator family 'state': operators that carry recurrent or cache state
 * between inference steps.
 *
 * CausalConvWithState (opset 27): causal depthwise 1-D convolution.  Input
 *   [batch, channels, length], weight [channels, 1, k], optional bias [channels] and
 *   past_state [batch, channels, k-1] (zeros when omitted).  Each channel's sequence is
 *   past_state followed by the input; output[t] = bias + sum_j w[j] * seq[t + j],
 *   optionally followed by SiLU ('silu' or 'swish'); present_state is the last k-1
 *   positions of the sequence.  Accumulation is in double, the convolution result is
 *   rounded to the input dtype (as the operator's function body does) before SiLU.
 * TensorScatter (opset 24): writes 'update' into a copy of 'past_cache' along the
 *   sequence axis (attribute 'axis', default -2) at write_indices[batch] (zero when
 *   omitted), linearly (the write must fit) or circularly (modulo the axis length).
 *   Works on any dtype by copying element bytes. */
#include "ops/op_util.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- CausalConvWithState */

typedef struct cconv_cfg {
    int64_t batch, chans, len, k;
    bool silu;
    const kn_tensor *x, *w, *bias, *past;
} cconv_cfg;

static bool is_float_dtype(kn_dtype t)
{
    return t == KN_F32 || t == KN_F16 || t == KN_BF16 || t == KN_F64;
}

static int cconv_activation(kn_op_ctx *c, bool *silu)
{
    const char *act = kn_attr_string(c->node, "activation", "none");
    if (!strcmp(act, "none")) {
        *silu = false;
        return KN_OK;
    }
    if (!strcmp(act, "silu") || !strcmp(act, "swish")) {
        *silu = true;
        return KN_OK;
    }
    return kn_fail(c->err, KN_ERR_ARG, "CausalConvWithState activation '%s' is not silu/swish/none",
                   act);
}

static int cconv_configure(kn_op_ctx *c, cconv_cfg *g)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    memset(g, 0, sizeof *g);
    g->x = c->in[0];
    g->w = c->in[1];
    g->bias = kn_op_in(c, 2);
    g->past = kn_op_in(c, 3);
    kn_dtype dt = g->x->dtype;
    if (!is_float_dtype(dt))
        return kn_unsupported_dtype(c, dt);
    if (g->w->dtype != dt || (g->bias && g->bias->dtype != dt) || (g->past && g->past->dtype != dt))
        return kn_fail(c->err, KN_ERR_ARG, "CausalConvWithState inputs must all be %s",
                       kn_dtype_name(dt));
    if (g->x->rank != 3 || g->w->rank != 3)
        return kn_fail(c->err, KN_ERR_ARG, "input and weight must be 3-D");
    g->batch = g->x->dims[0];
    g->chans = g->x->dims[1];
    g->len = g->x->dims[2];
    g->k = g->w->dims[2];
    if (g->w->dims[0] != g->chans || g->w->dims[1] != 1 || g->k < 1)
        return kn_fail(c->err, KN_ERR_ARG, "weight must be [%lld, 1, k] with k >= 1",
                       (long long)g->chans);
    if (g->bias && (g->bias->rank != 1 || g->bias->dims[0] != g->chans))
        return kn_fail(c->err, KN_ERR_ARG, "bias must be [%lld]", (long long)g->chans);
    if (g->past && (g->past->rank != 3 || g->past->dims[0] != g->batch ||
                    g->past->dims[1] != g->chans || g->past->dims[2] != g->k - 1))
        return kn_fail(c->err, KN_ERR_ARG, "past_state must be [%lld, %lld, %lld]",
                       (long long)g->batch, (long long)g->chans, (long long)(g->k - 1));
    return cconv_activation(c, &g->silu);
}

/* Element p of the padded sequence (past_state then input) of row (n, ch). */
static double cconv_seq(const cconv_cfg *g, int64_t n, int64_t ch, int64_t p)
{
    int64_t pad = g->k - 1;
    if (p < pad) {
        if (!g->past)
            return 0.0;
        return kn_load_f64(g->past->data, g->past->dtype, (size_t)((n * g->chans + ch) * pad + p));
    }
    return kn_load_f64(g->x->data, g->x->dtype, (size_t)((n * g->chans + ch) * g->len + p - pad));
}

/* v rounded to dtype t (through float for the 16-bit formats). */
static double round_to(kn_dtype t, double v)
{
    switch (t) {
    case KN_F32: return (float)v;
    case KN_F16: return kn_f16_to_f32(kn_f32_to_f16((float)v));
    case KN_BF16: return kn_bf16_to_f32(kn_f32_to_bf16((float)v));
    default: return v;
    }
}

static int run_causal_conv_with_state(kn_op_ctx *c)
{
    cconv_cfg g;
    if (cconv_configure(c, &g))
        return c->err->code;
    kn_dtype dt = g.x->dtype;
    int64_t sdims[3] = {g.batch, g.chans, g.k - 1};
    kn_tensor *y = kn_op_output(c, 0, dt, 3, g.x->dims);
    if (!y)
        return c->err->code;
    kn_tensor *st = c->n_out > 1 ? kn_op_output(c, 1, dt, 3, sdims) : NULL;
    if (c->n_out > 1 && !st)
        return c->err->code;
    for (int64_t n = 0; n < g.batch; n++)
        for (int64_t ch = 0; ch < g.chans; ch++) {
            double b = g.bias ? kn_load_f64(g.bias->data, dt, (size_t)ch) : 0.0;
            for (int64_t t = 0; t < g.len; t++) {
                double s = b;
                for (int64_t j = 0; j < g.k; j++)
                    s += kn_load_f64(g.w->data, dt, (size_t)(ch * g.k + j)) * cconv_seq(&g, n, ch, t + j);
                if (g.silu) {
                    s = round_to(dt, s);
                    s = s / (1.0 + exp(-s));
                }
                kn_store_f64(y->data, dt, (size_t)((n * g.chans + ch) * g.len + t), s);
            }
            for (int64_t j = 0; st && j < g.k - 1; j++)
                kn_store_f64(st->data, dt, (size_t)((n * g.chans + ch) * (g.k - 1) + j),
                             cconv_seq(&g, n, ch, g.len + j));
        }
    return KN_OK;
}

/* ---------------------------------------------------------------- TensorScatter */

typedef struct tscatter_cfg {
    int axis;
    bool circular;
    int64_t outer, max_seq, seq, inner;   /* cache seen as [outer, max_seq, inner] */
    int64_t per_batch;                    /* outer rows per batch entry */
} tscatter_cfg;

static int tscatter_configure(kn_op_ctx *c, tscatter_cfg *s)
{
    const kn_tensor *past = c->in[0], *upd = c->in[1], *wi = kn_op_in(c, 2);
    const char *mode = kn_attr_string(c->node, "mode", "linear");
    if (!strcmp(mode, "linear"))
        s->circular = false;
    else if (!strcmp(mode, "circular"))
        s->circular = true;
    else
        return kn_fail(c->err, KN_ERR_ARG, "TensorScatter mode '%s' is not linear/circular", mode);
    if (!kn_dtype_supported(past->dtype))
        return kn_unsupported_dtype(c, past->dtype);
    if (upd->dtype != past->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "update dtype %s differs from past_cache %s",
                       kn_dtype_name(upd->dtype), kn_dtype_name(past->dtype));
    if (past->rank < 2 || upd->rank != past->rank)
        return kn_fail(c->err, KN_ERR_ARG, "past_cache must have rank >= 2 and update the same rank");
    if (kn_norm_axis(kn_attr_int(c->node, "axis", -2), past->rank, &s->axis, c->err))
        return c->err->code;
    if (s->axis == 0)
        return kn_fail(c->err, KN_ERR_ARG, "TensorScatter axis cannot be the batch axis");
    s->outer = s->inner = 1;
    for (int i = 0; i < past->rank; i++) {
        if (i != s->axis && upd->dims[i] != past->dims[i])
            return kn_fail(c->err, KN_ERR_ARG, "update dim %d (%lld) differs from past_cache (%lld)",
                           i, (long long)upd->dims[i], (long long)past->dims[i]);
        if (i < s->axis)
            s->outer *= past->dims[i];   /* bounded by numel: no overflow */
        else if (i > s->axis)
            s->inner *= past->dims[i];
    }
    s->max_seq = past->dims[s->axis];
    s->seq = upd->dims[s->axis];
    s->per_batch = past->dims[0] > 0 ? s->outer / past->dims[0] : 0;
    if (s->seq > s->max_seq)
        return kn_fail(c->err, KN_ERR_ARG, "update sequence length %lld exceeds the cache's %lld",
                       (long long)s->seq, (long long)s->max_seq);
    if (wi && (!kn_dtype_is_int(wi->dtype) || wi->rank != 1 || wi->dims[0] != past->dims[0]))
        return kn_fail(c->err, KN_ERR_ARG, "write_indices must be an int tensor of shape [%lld]",
                       (long long)past->dims[0]);
    return KN_OK;
}

/* Destination position along the axis of update row j for batch entry b. */
static int tscatter_index(kn_op_ctx *c, const tscatter_cfg *s, int64_t start, int64_t j,
                          int64_t *pos)
{
    if (s->circular) {
        if (s->max_seq == 0)
            return kn_fail(c->err, KN_ERR_ARG, "circular TensorScatter into an empty axis");
        int64_t p = start % s->max_seq;
        if (p < 0)
            p += s->max_seq;
        *pos = (p + j) % s->max_seq;
        return KN_OK;
    }
    if (start < 0 || start > s->max_seq - s->seq)
        return kn_fail(c->err, KN_ERR_RUNTIME,
                       "write index %lld with %lld updates does not fit a sequence axis of %lld",
                       (long long)start, (long long)s->seq, (long long)s->max_seq);
    *pos = start + j;
    return KN_OK;
}

static int run_tensor_scatter(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    tscatter_cfg s;
    if (tscatter_configure(c, &s))
        return c->err->code;
    const kn_tensor *past = c->in[0], *upd = c->in[1], *wi = kn_op_in(c, 2);
    kn_tensor *y = kn_op_output(c, 0, past->dtype, past->rank, past->dims);
    if (!y)
        return c->err->code;
    if (y->nbytes)
        memcpy(y->data, past->data, y->nbytes);
    size_t es = kn_dtype_size(past->dtype), row = (size_t)s.inner * es;
    for (int64_t o = 0; o < s.outer; o++) {
        int64_t b = o / s.per_batch;
        int64_t start = wi ? kn_load_i64(wi->data, wi->dtype, (size_t)b) : 0;
        for (int64_t j = 0; j < s.seq; j++) {
            int64_t pos = 0;
            if (tscatter_index(c, &s, start, j, &pos))
                return c->err->code;
            memcpy((char *)y->data + (size_t)((o * s.max_seq + pos) * s.inner) * es,
                   (const char *)upd->data + (size_t)((o * s.seq + j) * s.inner) * es, row);
        }
    }
    return KN_OK;
}

const kn_op_def kn_ops_state[] = {
    {"", "CausalConvWithState", 1, run_causal_conv_with_state, NULL, NULL},
    {"", "TensorScatter", 1, run_tensor_scatter, NULL, kn_infer_same_as_input0},
    {0},
};
