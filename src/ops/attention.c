/* attention.c - operator family 'attention': the standard-domain Attention
 * (opsets 23, 24) and RotaryEmbedding (opset 23) operators.
 *
 * Attention: Q/K/V as 3-D [batch, seq, heads*head_size] or 4-D
 * [batch, heads, seq, head_size]; grouped-query heads (each KV head serves
 * q_num_heads / kv_num_heads consecutive query heads); past_key/past_value are
 * concatenated before the new keys/values and returned as present_key/value;
 * the bias added to the scores combines attn_mask (bool or float, broadcast,
 * padded with "masked" past its last dim), is_causal (bottom-right aligned: the
 * offset is the past length, or nonpad_kv_seqlen - q_len without a past) and
 * nonpad_kv_seqlen (keys at or past it are masked).  Softcap is applied before
 * the bias.  A row whose keys are all masked yields zero probabilities.  The
 * optional qk output holds the scores (modes 0/1), scores + bias (2) or the
 * softmax (3).  Everything is computed in double precision.
 *
 * LinearAttention (opset 27): recurrent linear attention over packed 3-D inputs
 * [batch, seq, heads*dim] with a per-KV-head state [d_k, d_v] (past_state /
 * present_state [batch, kv_heads, d_k, d_v]); update rules linear, gated, delta and
 * gated_delta (see lin_step); grouped query heads read their KV head's state.
 *
 * FlexAttention (ai.onnx.preview 1): rank-4 scaled dot-product attention whose
 * scores [batch, q_heads, q_seq, kv_seq] (float32, or float64 for float64 inputs)
 * may be rewritten by the 'score_mod' subgraph before the softmax and the
 * probabilities by 'prob_mod' after it; both run through c->run_subgraph. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_attn_float(kn_dtype t)
{
    return t == KN_F32 || t == KN_F16 || t == KN_BF16 || t == KN_F64;
}

/* ---------------------------------------------------------------- Attention */

/* A Q/K/V tensor seen as [batch, heads, seq, dim] through strides. */
typedef struct head_view {
    const kn_tensor *t;
    int64_t batch, heads, seq, dim;
    int64_t sb, sh, ss;
} head_view;

static int make_view(kn_op_ctx *c, const kn_tensor *t, int64_t heads, const char *name,
                     head_view *v)
{
    v->t = t;
    v->batch = t->dims[0];
    if (t->rank == 4) {
        v->heads = t->dims[1];
        v->seq = t->dims[2];
        v->dim = t->dims[3];
        if (heads > 0 && heads != v->heads)
            return kn_fail(c->err, KN_ERR_ARG, "%s has %lld heads, attribute says %lld", name,
                           (long long)v->heads, (long long)heads);
        v->sb = v->heads * v->seq * v->dim;
        v->sh = v->seq * v->dim;
        v->ss = v->dim;
        return KN_OK;
    }
    if (heads <= 0 || t->dims[2] % heads)
        return kn_fail(c->err, KN_ERR_ARG, "3-D %s needs a num_heads attribute dividing %lld",
                       name, (long long)t->dims[2]);
    v->heads = heads;
    v->seq = t->dims[1];
    v->dim = t->dims[2] / heads;
    v->sb = v->seq * t->dims[2];
    v->sh = v->dim;
    v->ss = t->dims[2];
    return KN_OK;
}

typedef struct attn_cfg {
    head_view q, k, v;
    int64_t batch, hq, hkv, sq, past, total, dk, dv;
    double scale, softcap;
    bool causal;
    int qk_mode;
    const kn_tensor *mask, *past_k, *past_v, *nonpad;
    int64_t mdims[4];           /* mask right-aligned to 4-D */
} attn_cfg;

static int check_past(kn_op_ctx *c, attn_cfg *a)
{
    a->past = 0;
    if (!a->past_k && !a->past_v)
        return KN_OK;
    if (!a->past_k || !a->past_v)
        return kn_fail(c->err, KN_ERR_ARG, "past_key and past_value must be given together");
    const kn_tensor *pk = a->past_k, *pv = a->past_v;
    if (pk->rank != 4 || pv->rank != 4 || pk->dims[0] != a->batch || pk->dims[1] != a->hkv ||
        pk->dims[3] != a->dk || pv->dims[0] != a->batch || pv->dims[1] != a->hkv ||
        pv->dims[3] != a->dv || pv->dims[2] != pk->dims[2])
        return kn_fail(c->err, KN_ERR_ARG, "past_key/past_value shapes do not match K/V");
    if (pk->dtype != a->q.t->dtype || pv->dtype != a->q.t->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "past_key/past_value dtype differs from Q");
    a->past = pk->dims[2];
    return KN_OK;
}

static int check_mask(kn_op_ctx *c, attn_cfg *a)
{
    const kn_tensor *m = a->mask;
    if (!m)
        return KN_OK;
    if (m->dtype != KN_BOOL && m->dtype != a->q.t->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "attn_mask must be bool or %s, got %s",
                       kn_dtype_name(a->q.t->dtype), kn_dtype_name(m->dtype));
    if (m->rank < 1 || m->rank > 4)
        return kn_fail(c->err, KN_ERR_ARG, "attn_mask must have rank 1 to 4");
    int64_t target[4] = {a->batch, a->hq, a->sq, a->total};
    for (int i = 0; i < 4; i++) {
        int mi = i - (4 - m->rank);
        a->mdims[i] = mi >= 0 ? m->dims[mi] : 1;
    }
    for (int i = 0; i < 3; i++)
        if (a->mdims[i] != 1 && a->mdims[i] != target[i])
            return kn_fail(c->err, KN_ERR_ARG, "attn_mask dim %d (%lld) does not broadcast to %lld",
                           i, (long long)a->mdims[i], (long long)target[i]);
    if (a->mdims[3] > a->total)
        return kn_fail(c->err, KN_ERR_ARG, "attn_mask is longer (%lld) than the keys (%lld)",
                       (long long)a->mdims[3], (long long)a->total);
    return KN_OK;
}

static int attn_configure(kn_op_ctx *c, attn_cfg *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    if (!is_attn_float(q->dtype))
        return kn_unsupported_dtype(c, q->dtype);
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "Q, K and V must have the same dtype");
    if ((q->rank != 3 && q->rank != 4) || k->rank != q->rank || v->rank != q->rank)
        return kn_fail(c->err, KN_ERR_ARG, "Q, K and V must all be 3-D or all 4-D");
    int64_t hq = kn_attr_int(c->node, "q_num_heads", 0), hkv = kn_attr_int(c->node, "kv_num_heads", 0);
    if (make_view(c, q, hq, "Q", &a->q) || make_view(c, k, hkv, "K", &a->k) ||
        make_view(c, v, hkv, "V", &a->v))
        return c->err->code;
    a->batch = a->q.batch;
    a->hq = a->q.heads;
    a->hkv = a->k.heads;
    a->sq = a->q.seq;
    a->dk = a->q.dim;
    a->dv = a->v.dim;
    if (a->k.batch != a->batch || a->v.batch != a->batch)
        return kn_fail(c->err, KN_ERR_ARG, "Q, K and V batch sizes differ");
    if (a->k.dim != a->dk || a->v.heads != a->hkv || a->v.seq != a->k.seq)
        return kn_fail(c->err, KN_ERR_ARG, "K/V shapes do not match Q");
    if (a->hkv < 1 || a->hq % a->hkv)
        return kn_fail(c->err, KN_ERR_ARG, "q heads (%lld) must be a multiple of kv heads (%lld)",
                       (long long)a->hq, (long long)a->hkv);
    a->mask = kn_op_in(c, 3);
    a->past_k = kn_op_in(c, 4);
    a->past_v = kn_op_in(c, 5);
    a->nonpad = c->opset >= 24 ? kn_op_in(c, 6) : NULL;
    if (check_past(c, a))
        return c->err->code;
    a->total = a->past + a->k.seq;
    if (check_mask(c, a))
        return c->err->code;
    if (a->nonpad && (!kn_dtype_is_int(a->nonpad->dtype) || a->nonpad->numel != a->batch))
        return kn_fail(c->err, KN_ERR_ARG, "nonpad_kv_seqlen must be an int tensor of %lld values",
                       (long long)a->batch);
    const kn_attr *sc = kn_attr_find(c->node, "scale");
    a->scale = sc ? (double)sc->f : 1.0 / sqrt((double)(a->dk > 0 ? a->dk : 1));
    a->softcap = kn_attr_float(c->node, "softcap", 0.0f);
    a->causal = kn_attr_int(c->node, "is_causal", 0) != 0;
    a->qk_mode = (int)kn_attr_int(c->node, "qk_matmul_output_mode", 0);
    if (a->qk_mode < 0 || a->qk_mode > 3)
        return kn_fail(c->err, KN_ERR_ARG, "qk_matmul_output_mode %d is not 0..3", a->qk_mode);
    return KN_OK;
}

/* Present key/value [batch, hkv, total, dim] in doubles: past rows, then new rows. */
static void build_present(const attn_cfg *a, const kn_tensor *past, const head_view *cur,
                          int64_t dim, double *out)
{
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t h = 0; h < a->hkv; h++)
            for (int64_t s = 0; s < a->total; s++) {
                double *row = out + ((b * a->hkv + h) * a->total + s) * dim;
                for (int64_t d = 0; d < dim; d++) {
                    if (s < a->past) {
                        int64_t off = ((b * a->hkv + h) * a->past + s) * dim + d;
                        row[d] = kn_load_f64(past->data, past->dtype, (size_t)off);
                    } else {
                        int64_t off = b * cur->sb + h * cur->sh + (s - a->past) * cur->ss + d;
                        row[d] = kn_load_f64(cur->t->data, cur->t->dtype, (size_t)off);
                    }
                }
            }
}

/* Additive bias for query (b, h, i) and key j: 0 or -inf from the masks, or the float mask. */
static double attn_bias(const attn_cfg *a, int64_t b, int64_t h, int64_t i, int64_t j,
                        int64_t causal_off, int64_t nonpad)
{
    if (a->causal && j > i + causal_off)
        return -INFINITY;
    if (a->nonpad && j >= nonpad)
        return -INFINITY;
    if (!a->mask)
        return 0.0;
    const int64_t *md = a->mdims;
    if (j >= md[3])
        return -INFINITY;
    int64_t off = (((md[0] == 1 ? 0 : b) * md[1] + (md[1] == 1 ? 0 : h)) * md[2] +
                   (md[2] == 1 ? 0 : i)) * md[3] + j;
    if (a->mask->dtype == KN_BOOL)
        return ((const uint8_t *)a->mask->data)[off] ? 0.0 : -INFINITY;
    return kn_load_f64(a->mask->data, a->mask->dtype, (size_t)off);
}

/* Softmax in place; a row with no finite maximum becomes all zeros. */
static void softmax_row(double *x, int64_t n)
{
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        if (x[j] > mx)
            mx = x[j];
    if (mx == -INFINITY) {
        for (int64_t j = 0; j < n; j++)
            x[j] = 0.0;
        return;
    }
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        x[j] = exp(x[j] - mx);
        sum += x[j];
    }
    for (int64_t j = 0; j < n; j++)
        x[j] /= sum;
}

typedef struct attn_bufs {
    double *pk, *pv;        /* present key / value */
    double *probs;          /* one row of scores / probabilities */
    double *qrow;           /* the current query row */
} attn_bufs;

typedef struct attn_outs {
    kn_tensor *y, *qk;
} attn_outs;

static void attn_row(const attn_cfg *a, attn_bufs *w, attn_outs *o, int64_t b, int64_t h,
                     int64_t i, int64_t causal_off, int64_t nonpad)
{
    int64_t kvh = h / (a->hq / a->hkv), T = a->total;
    const kn_tensor *q = a->q.t;
    int64_t qoff = b * a->q.sb + h * a->q.sh + i * a->q.ss;
    const double *kb = w->pk + (b * a->hkv + kvh) * T * a->dk;
    const double *vb = w->pv + (b * a->hkv + kvh) * T * a->dv;
    int64_t qk_off = ((b * a->hq + h) * a->sq + i) * T;
    for (int64_t d = 0; d < a->dk; d++)
        w->qrow[d] = kn_load_f64(q->data, q->dtype, (size_t)(qoff + d));
    for (int64_t j = 0; j < T; j++) {
        double s = 0;
        for (int64_t d = 0; d < a->dk; d++)
            s += w->qrow[d] * kb[j * a->dk + d];
        s *= a->scale;
        if (a->softcap > 0)
            s = a->softcap * tanh(s / a->softcap);
        if (o->qk && a->qk_mode <= 1)
            kn_store_f64(o->qk->data, o->qk->dtype, (size_t)(qk_off + j), s);
        s += attn_bias(a, b, h, i, j, causal_off, nonpad);
        if (o->qk && a->qk_mode == 2)
            kn_store_f64(o->qk->data, o->qk->dtype, (size_t)(qk_off + j), s);
        w->probs[j] = s;
    }
    softmax_row(w->probs, T);
    if (o->qk && a->qk_mode == 3)
        for (int64_t j = 0; j < T; j++)
            kn_store_f64(o->qk->data, o->qk->dtype, (size_t)(qk_off + j), w->probs[j]);
    bool three_d = q->rank == 3;
    for (int64_t d = 0; d < a->dv; d++) {
        double s = 0;
        for (int64_t j = 0; j < T; j++)
            if (w->probs[j] != 0.0)
                s += w->probs[j] * vb[j * a->dv + d];
        int64_t yoff = three_d ? ((b * a->sq + i) * a->hq + h) * a->dv + d
                               : ((b * a->hq + h) * a->sq + i) * a->dv + d;
        kn_store_f64(o->y->data, o->y->dtype, (size_t)yoff, s);
    }
}

static int attn_outputs(kn_op_ctx *c, const attn_cfg *a, attn_outs *o, kn_tensor **pk,
                        kn_tensor **pv)
{
    kn_dtype dt = a->q.t->dtype;
    int64_t y3[3] = {a->batch, a->sq, a->hq * a->dv};
    int64_t y4[4] = {a->batch, a->hq, a->sq, a->dv};
    o->y = a->q.t->rank == 3 ? kn_op_output(c, 0, dt, 3, y3) : kn_op_output(c, 0, dt, 4, y4);
    if (!o->y)
        return c->err->code;
    int64_t kd[4] = {a->batch, a->hkv, a->total, a->dk}, vd[4] = {a->batch, a->hkv, a->total, a->dv};
    int64_t qd[4] = {a->batch, a->hq, a->sq, a->total};
    *pk = *pv = NULL;
    o->qk = NULL;
    if (c->n_out > 1 && !(*pk = kn_op_output(c, 1, dt, 4, kd)))
        return c->err->code;
    if (c->n_out > 2 && !(*pv = kn_op_output(c, 2, dt, 4, vd)))
        return c->err->code;
    if (c->n_out > 3 && !(o->qk = kn_op_output(c, 3, dt, 4, qd)))
        return c->err->code;
    return KN_OK;
}

static void store_doubles(kn_tensor *t, const double *v)
{
    if (!t)
        return;
    for (int64_t i = 0; i < t->numel; i++)
        kn_store_f64(t->data, t->dtype, (size_t)i, v[i]);
}

static int64_t causal_offset(const attn_cfg *a, int64_t nonpad)
{
    if (a->past_k || !a->nonpad)
        return a->past;
    return nonpad - a->sq;
}

static int run_attention(kn_op_ctx *c)
{
    attn_cfg a;
    if (attn_configure(c, &a))
        return c->err->code;
    attn_outs o;
    kn_tensor *pk_out = NULL, *pv_out = NULL;
    if (attn_outputs(c, &a, &o, &pk_out, &pv_out))
        return c->err->code;
    attn_bufs w = {0};
    int64_t nk, nv;
    if (!kn_mul_ok(a.batch, a.hkv, &nk) || !kn_mul_ok(nk, a.total, &nk) ||
        !kn_mul_ok(nk, a.dv, &nv) || !kn_mul_ok(nk, a.dk, &nk) ||
        nk > (int64_t)(KN_MAX_TENSOR_BYTES / 8) || nv > (int64_t)(KN_MAX_TENSOR_BYTES / 8))
        return kn_fail(c->err, KN_ERR_NOMEM, "Attention key/value cache too large");
    w.pk = calloc((size_t)(nk > 0 ? nk : 1), sizeof(double));
    w.pv = calloc((size_t)(nv > 0 ? nv : 1), sizeof(double));
    w.probs = calloc((size_t)(a.total > 0 ? a.total : 1), sizeof(double));
    w.qrow = calloc((size_t)(a.dk > 0 ? a.dk : 1), sizeof(double));
    if (!w.pk || !w.pv || !w.probs || !w.qrow) {
        free(w.pk);
        free(w.pv);
        free(w.probs);
        free(w.qrow);
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory in Attention");
    }
    build_present(&a, a.past_k, &a.k, a.dk, w.pk);
    build_present(&a, a.past_v, &a.v, a.dv, w.pv);
    store_doubles(pk_out, w.pk);
    store_doubles(pv_out, w.pv);
    for (int64_t b = 0; b < a.batch; b++) {
        int64_t np = a.nonpad ? kn_load_i64(a.nonpad->data, a.nonpad->dtype, (size_t)b) : a.total;
        int64_t off = causal_offset(&a, np);
        for (int64_t h = 0; h < a.hq; h++)
            for (int64_t i = 0; i < a.sq; i++)
                attn_row(&a, &w, &o, b, h, i, off, np);
    }
    free(w.pk);
    free(w.pv);
    free(w.probs);
    free(w.qrow);
    return KN_OK;
}

/* ---------------------------------------------------------------- RotaryEmbedding */

typedef struct rope_cfg {
    int64_t batch, heads, seq, dim, rot, half;
    int64_t sb, sh, ss;          /* strides of X seen as [batch, heads, seq, dim] */
    bool interleaved;
} rope_cfg;

static int rope_configure(kn_op_ctx *c, rope_cfg *r)
{
    const kn_tensor *x = c->in[0];
    memset(r, 0, sizeof *r);
    r->batch = x->dims[0];
    if (x->rank == 4) {
        r->heads = x->dims[1];
        r->seq = x->dims[2];
        r->dim = x->dims[3];
        r->sb = r->heads * r->seq * r->dim;
        r->sh = r->seq * r->dim;
        r->ss = r->dim;
    } else if (x->rank == 3) {
        r->heads = kn_attr_int(c->node, "num_heads", 0);
        if (r->heads <= 0 || x->dims[2] % r->heads)
            return kn_fail(c->err, KN_ERR_ARG, "3-D input needs num_heads dividing %lld",
                           (long long)x->dims[2]);
        r->seq = x->dims[1];
        r->dim = x->dims[2] / r->heads;
        r->sb = r->seq * x->dims[2];
        r->sh = r->dim;
        r->ss = x->dims[2];
    } else {
        return kn_fail(c->err, KN_ERR_ARG, "RotaryEmbedding input must be 3-D or 4-D");
    }
    r->rot = kn_attr_int(c->node, "rotary_embedding_dim", 0);
    if (r->rot == 0)
        r->rot = r->dim;
    if (r->rot < 0 || r->rot > r->dim || r->rot % 2)
        return kn_fail(c->err, KN_ERR_ARG, "rotary_embedding_dim %lld is invalid for head size %lld",
                       (long long)r->rot, (long long)r->dim);
    r->half = r->rot / 2;
    r->interleaved = kn_attr_int(c->node, "interleaved", 0) != 0;
    return KN_OK;
}

static int rope_check_caches(kn_op_ctx *c, const rope_cfg *r, const kn_tensor *pos)
{
    const kn_tensor *x = c->in[0], *cs = c->in[1], *sn = c->in[2];
    if (cs->dtype != x->dtype || sn->dtype != x->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "cos/sin caches must have the input's dtype");
    if (cs->rank != sn->rank)
        return kn_fail(c->err, KN_ERR_ARG, "cos and sin caches differ in rank");
    for (int i = 0; i < cs->rank; i++)
        if (cs->dims[i] != sn->dims[i])
            return kn_fail(c->err, KN_ERR_ARG, "cos and sin caches differ in shape");
    if (pos) {
        if (!kn_dtype_is_int(pos->dtype) || pos->rank != 2 || pos->dims[0] != r->batch ||
            pos->dims[1] != r->seq)
            return kn_fail(c->err, KN_ERR_ARG, "position_ids must be int [%lld, %lld]",
                           (long long)r->batch, (long long)r->seq);
        if (cs->rank != 2 || cs->dims[1] != r->half)
            return kn_fail(c->err, KN_ERR_ARG, "cos_cache must be [max_position, %lld]",
                           (long long)r->half);
        for (int64_t i = 0; i < pos->numel; i++) {
            int64_t p = kn_load_i64(pos->data, pos->dtype, (size_t)i);
            if (p < 0 || p >= cs->dims[0])
                return kn_fail(c->err, KN_ERR_RUNTIME, "position id %lld is outside [0, %lld)",
                               (long long)p, (long long)cs->dims[0]);
        }
    } else if (cs->rank != 3 || cs->dims[0] != r->batch || cs->dims[1] != r->seq ||
               cs->dims[2] != r->half) {
        return kn_fail(c->err, KN_ERR_ARG, "cos_cache must be [%lld, %lld, %lld]",
                       (long long)r->batch, (long long)r->seq, (long long)r->half);
    }
    return KN_OK;
}

static int run_rotary_embedding(kn_op_ctx *c)
{
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *x = c->in[0], *cs = c->in[1], *sn = c->in[2], *pos = kn_op_in(c, 3);
    if (!is_attn_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    rope_cfg r;
    if (rope_configure(c, &r) || rope_check_caches(c, &r, pos))
        return c->err->code;
    kn_tensor *y = kn_op_output(c, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return c->err->code;
    kn_dtype dt = x->dtype;
    for (int64_t b = 0; b < r.batch; b++)
        for (int64_t s = 0; s < r.seq; s++) {
            int64_t row = pos ? kn_load_i64(pos->data, pos->dtype, (size_t)(b * r.seq + s))
                              : b * r.seq + s;
            int64_t coff = row * r.half;
            for (int64_t h = 0; h < r.heads; h++) {
                int64_t base = b * r.sb + h * r.sh + s * r.ss;
                for (int64_t k = 0; k < r.half; k++) {
                    int64_t i1 = r.interleaved ? 2 * k : k, i2 = r.interleaved ? 2 * k + 1 : k + r.half;
                    double co = kn_load_f64(cs->data, dt, (size_t)(coff + k));
                    double si = kn_load_f64(sn->data, dt, (size_t)(coff + k));
                    double x1 = kn_load_f64(x->data, dt, (size_t)(base + i1));
                    double x2 = kn_load_f64(x->data, dt, (size_t)(base + i2));
                    kn_store_f64(y->data, dt, (size_t)(base + i1), co * x1 - si * x2);
                    kn_store_f64(y->data, dt, (size_t)(base + i2), si * x1 + co * x2);
                }
                for (int64_t d = r.rot; d < r.dim; d++)
                    kn_store_f64(y->data, dt, (size_t)(base + d),
                                 kn_load_f64(x->data, dt, (size_t)(base + d)));
            }
        }
    return KN_OK;
}

/* ---------------------------------------------------------------- LinearAttention */

enum { LIN_LINEAR, LIN_GATED, LIN_DELTA, LIN_GATED_DELTA };

typedef struct lin_cfg {
    const kn_tensor *q, *k, *v, *past, *decay, *beta;
    int64_t batch, seq, hq, hkv, dk, dv;
    int rule;
    bool decay_per_head, beta_shared;  /* decay [B,T,Hkv] / beta [B,T,1] forms */
    double scale;
} lin_cfg;

static int lin_rule(kn_op_ctx *c, int *rule)
{
    static const char *const names[] = {"linear", "gated", "delta", "gated_delta"};
    const char *r = kn_attr_string(c->node, "update_rule", "gated_delta");
    for (int i = 0; i < 4; i++)
        if (!strcmp(r, names[i])) {
            *rule = i;
            return KN_OK;
        }
    return kn_fail(c->err, KN_ERR_ARG, "LinearAttention update_rule '%s' is not one of "
                   "linear, gated, delta, gated_delta", r);
}

/* A [B, T, n] tensor of Q's dtype whose last dim is n1 or n2 (any when n1 < 0). */
static int lin_check_3d(kn_op_ctx *c, const lin_cfg *a, const kn_tensor *t, const char *name,
                        int64_t n1, int64_t n2)
{
    if (t->dtype != a->q->dtype || t->rank != 3 || t->dims[0] != a->batch || t->dims[1] != a->seq ||
        (n1 >= 0 && t->dims[2] != n1 && t->dims[2] != n2)) {
        if (n1 < 0)
            return kn_fail(c->err, KN_ERR_ARG, "%s must be %s [%lld, %lld, width]", name,
                           kn_dtype_name(a->q->dtype), (long long)a->batch, (long long)a->seq);
        return kn_fail(c->err, KN_ERR_ARG, "%s must be %s [%lld, %lld, %lld] or [%lld, %lld, %lld]",
                       name, kn_dtype_name(a->q->dtype), (long long)a->batch, (long long)a->seq,
                       (long long)n1, (long long)a->batch, (long long)a->seq, (long long)n2);
    }
    return KN_OK;
}

static int lin_heads(kn_op_ctx *c, lin_cfg *a)
{
    a->hq = kn_attr_int(c->node, "q_num_heads", 0);
    a->hkv = kn_attr_int(c->node, "kv_num_heads", 0);
    if (a->hq <= 0 || a->hkv <= 0 || a->hq % a->hkv)
        return kn_fail(c->err, KN_ERR_ARG, "q_num_heads (%lld) must be a positive multiple of "
                       "kv_num_heads (%lld)", (long long)a->hq, (long long)a->hkv);
    if (a->q->dims[2] % a->hq || a->k->dims[2] % a->hkv || a->v->dims[2] % a->hkv)
        return kn_fail(c->err, KN_ERR_ARG, "query/key/value widths do not divide into heads");
    a->dk = a->q->dims[2] / a->hq;
    a->dv = a->v->dims[2] / a->hkv;
    if (a->k->dims[2] != a->hkv * a->dk)
        return kn_fail(c->err, KN_ERR_ARG, "key width %lld is not kv_num_heads * %lld",
                       (long long)a->k->dims[2], (long long)a->dk);
    return KN_OK;
}

static int lin_configure(kn_op_ctx *c, lin_cfg *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    a->q = c->in[0];
    a->k = c->in[1];
    a->v = c->in[2];
    if (!is_attn_float(a->q->dtype))
        return kn_unsupported_dtype(c, a->q->dtype);
    if (a->q->rank != 3)
        return kn_fail(c->err, KN_ERR_ARG, "query must be 3-D [batch, seq, heads*dim]");
    a->batch = a->q->dims[0];
    a->seq = a->q->dims[1];
    if (lin_check_3d(c, a, a->k, "key", -1, -1) || lin_check_3d(c, a, a->v, "value", -1, -1) ||
        lin_heads(c, a) || lin_rule(c, &a->rule))
        return c->err->code;
    a->past = kn_op_in(c, 3);
    if (a->past && (!is_attn_float(a->past->dtype) || a->past->rank != 4 ||
                    a->past->dims[0] != a->batch || a->past->dims[1] != a->hkv ||
                    a->past->dims[2] != a->dk || a->past->dims[3] != a->dv))
        return kn_fail(c->err, KN_ERR_ARG, "past_state must be float [%lld, %lld, %lld, %lld]",
                       (long long)a->batch, (long long)a->hkv, (long long)a->dk, (long long)a->dv);
    if (a->rule == LIN_GATED || a->rule == LIN_GATED_DELTA) {
        a->decay = kn_op_in(c, 4);
        if (!a->decay)
            return kn_fail(c->err, KN_ERR_ARG, "update_rule needs the decay input");
        if (lin_check_3d(c, a, a->decay, "decay", a->hkv * a->dk, a->hkv))
            return c->err->code;
        a->decay_per_head = a->decay->dims[2] != a->hkv * a->dk;
    }
    if (a->rule == LIN_DELTA || a->rule == LIN_GATED_DELTA) {
        a->beta = kn_op_in(c, 5);
        if (!a->beta)
            return kn_fail(c->err, KN_ERR_ARG, "update_rule needs the beta input");
        if (lin_check_3d(c, a, a->beta, "beta", a->hkv, 1))
            return c->err->code;
        a->beta_shared = a->beta->dims[2] != a->hkv;
    }
    const kn_attr *sc = kn_attr_find(c->node, "scale");
    a->scale = sc && sc->f != 0.0f ? (double)sc->f : 1.0 / sqrt((double)(a->dk > 0 ? a->dk : 1));
    return KN_OK;
}

/* Element (b, t, i) of a packed [B, T, width] tensor. */
static double lin_at(const lin_cfg *a, const kn_tensor *x, int64_t b, int64_t t, int64_t i)
{
    return kn_load_f64(x->data, x->dtype, (size_t)((b * a->seq + t) * x->dims[2] + i));
}

/* One recurrence step for batch b, KV head h, time t on state S [dk, dv];
 * kr and vr are scratch rows of dk and dv doubles. */
static void lin_step(const lin_cfg *a, double *S, double *kr, double *vr, int64_t b, int64_t h,
                     int64_t t)
{
    int64_t dk = a->dk, dv = a->dv;
    if (a->decay)
        for (int64_t i = 0; i < dk; i++) {
            double g = exp(lin_at(a, a->decay, b, t, a->decay_per_head ? h : h * dk + i));
            for (int64_t j = 0; j < dv; j++)
                S[i * dv + j] *= g;
        }
    for (int64_t i = 0; i < dk; i++)
        kr[i] = lin_at(a, a->k, b, t, h * dk + i);
    for (int64_t j = 0; j < dv; j++)
        vr[j] = lin_at(a, a->v, b, t, h * dv + j);
    if (a->beta) {
        double beta = lin_at(a, a->beta, b, t, a->beta_shared ? 0 : h);
        for (int64_t j = 0; j < dv; j++) {
            double r = 0;
            for (int64_t i = 0; i < dk; i++)
                r += S[i * dv + j] * kr[i];
            vr[j] = beta * (vr[j] - r);
        }
    }
    for (int64_t i = 0; i < dk; i++)
        for (int64_t j = 0; j < dv; j++)
            S[i * dv + j] += kr[i] * vr[j];
}

/* Outputs of the query heads served by KV head h at time t. */
static void lin_read(const lin_cfg *a, const double *S, kn_tensor *y, int64_t b, int64_t h,
                     int64_t t)
{
    int64_t group = a->hq / a->hkv;
    for (int64_t qh = h * group; qh < (h + 1) * group; qh++)
        for (int64_t j = 0; j < a->dv; j++) {
            double s = 0;
            for (int64_t i = 0; i < a->dk; i++)
                s += lin_at(a, a->q, b, t, qh * a->dk + i) * S[i * a->dv + j];
            kn_store_f64(y->data, y->dtype, (size_t)((b * a->seq + t) * a->hq * a->dv + qh * a->dv + j),
                         a->scale * s);
        }
}

static int run_linear_attention(kn_op_ctx *c)
{
    lin_cfg a;
    if (lin_configure(c, &a))
        return c->err->code;
    int64_t ydims[3] = {a.batch, a.seq, a.hq * a.dv}, sdims[4] = {a.batch, a.hkv, a.dk, a.dv};
    kn_tensor *y = kn_op_output(c, 0, a.q->dtype, 3, ydims);
    if (!y)
        return c->err->code;
    kn_tensor *st = c->n_out > 1 ? kn_op_output(c, 1, a.q->dtype, 4, sdims) : NULL;
    if (c->n_out > 1 && !st)
        return c->err->code;
    int64_t n;
    if (!kn_mul_ok(a.dk, a.dv, &n) || n > (int64_t)(KN_MAX_TENSOR_BYTES / 8))
        return kn_fail(c->err, KN_ERR_NOMEM, "LinearAttention state too large");
    double *S = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    double *kr = malloc((size_t)(a.dk > 0 ? a.dk : 1) * sizeof(double));
    double *vr = malloc((size_t)(a.dv > 0 ? a.dv : 1) * sizeof(double));
    if (!S || !kr || !vr) {
        free(S);
        free(kr);
        free(vr);
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory in LinearAttention");
    }
    for (int64_t b = 0; b < a.batch; b++)
        for (int64_t h = 0; h < a.hkv; h++) {
            int64_t base = (b * a.hkv + h) * n;
            for (int64_t i = 0; i < n; i++)
                S[i] = a.past ? kn_load_f64(a.past->data, a.past->dtype, (size_t)(base + i)) : 0.0;
            for (int64_t t = 0; t < a.seq; t++) {
                lin_step(&a, S, kr, vr, b, h, t);
                lin_read(&a, S, y, b, h, t);
            }
            for (int64_t i = 0; st && i < n; i++)
                kn_store_f64(st->data, st->dtype, (size_t)(base + i), S[i]);
        }
    free(S);
    free(kr);
    free(vr);
    return KN_OK;
}

/* ---------------------------------------------------------------- FlexAttention */

typedef struct flex_cfg {
    const kn_tensor *q, *k, *v;
    int64_t batch, hq, hkv, lq, lk, e, ev;
    double scale;
    kn_dtype sdt;               /* dtype of the scores / probabilities */
    const kn_graph *score_mod, *prob_mod;
} flex_cfg;

static int flex_configure(kn_op_ctx *c, flex_cfg *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    a->q = c->in[0];
    a->k = c->in[1];
    a->v = c->in[2];
    if (!is_attn_float(a->q->dtype))
        return kn_unsupported_dtype(c, a->q->dtype);
    if (a->k->dtype != a->q->dtype || a->v->dtype != a->q->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "Q, K and V must have the same dtype");
    if (a->q->rank != 4 || a->k->rank != 4 || a->v->rank != 4)
        return kn_fail(c->err, KN_ERR_ARG, "Q, K and V must be 4-D");
    a->batch = a->q->dims[0];
    a->hq = a->q->dims[1];
    a->lq = a->q->dims[2];
    a->e = a->q->dims[3];
    a->hkv = a->k->dims[1];
    a->lk = a->k->dims[2];
    a->ev = a->v->dims[3];
    if (a->k->dims[0] != a->batch || a->v->dims[0] != a->batch || a->k->dims[3] != a->e ||
        a->v->dims[1] != a->hkv || a->v->dims[2] != a->lk)
        return kn_fail(c->err, KN_ERR_ARG, "K/V shapes do not match Q");
    if (a->hkv < 1 || a->hq % a->hkv)
        return kn_fail(c->err, KN_ERR_ARG, "q heads (%lld) must be a multiple of kv heads (%lld)",
                       (long long)a->hq, (long long)a->hkv);
    const kn_attr *sc = kn_attr_find(c->node, "scale");
    a->scale = sc ? (double)sc->f : 1.0 / sqrt((double)(a->e > 0 ? a->e : 1));
    a->sdt = a->q->dtype == KN_F64 ? KN_F64 : KN_F32;
    a->score_mod = kn_attr_graph(c->node, "score_mod");
    a->prob_mod = kn_attr_graph(c->node, "prob_mod");
    if ((a->score_mod || a->prob_mod) && !c->run_subgraph)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "FlexAttention subgraphs need an executor");
    const kn_graph *mods[2] = {a->score_mod, a->prob_mod};
    for (int i = 0; i < 2; i++)
        if (mods[i] && (mods[i]->n_inputs != 1 || mods[i]->n_outputs != 1))
            return kn_fail(c->err, KN_ERR_MODEL, "FlexAttention %s must have one input and one output",
                           i ? "prob_mod" : "score_mod");
    return KN_OK;
}

/* Replace *t by the result of running body on it; the result must keep t's shape
 * and be a float tensor (its values are read through kn_load_f64). */
static int flex_modify(kn_op_ctx *c, const kn_graph *body, const char *name, kn_tensor *t)
{
    kn_tensor res;
    memset(&res, 0, sizeof res);
    const kn_tensor *in[1] = {t};
    int rc = c->run_subgraph(c, body, 1, in, 1, &res);
    if (rc) {
        kn_tensor_release(&res);
        return rc;
    }
    bool ok = res.kind == KN_VALUE_TENSOR && kn_dtype_is_float(res.dtype) && res.rank == t->rank &&
              !memcmp(res.dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    if (!ok) {
        char got[160], want[160];
        kn_tensor_describe(&res, got, sizeof got);
        kn_tensor_describe(t, want, sizeof want);
        kn_tensor_release(&res);
        return kn_fail(c->err, KN_ERR_RUNTIME, "FlexAttention %s returned %s, expected the shape of %s",
                       name, got, want);
    }
    for (int64_t i = 0; i < t->numel; i++)
        kn_store_f64(t->data, t->dtype, (size_t)i, kn_load_f64(res.data, res.dtype, (size_t)i));
    kn_tensor_release(&res);
    return KN_OK;
}

static void flex_scores(const flex_cfg *a, kn_tensor *s)
{
    const kn_tensor *q = a->q, *k = a->k;
    int64_t group = a->hq / a->hkv;
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t h = 0; h < a->hq; h++)
            for (int64_t i = 0; i < a->lq; i++)
                for (int64_t j = 0; j < a->lk; j++) {
                    int64_t qo = ((b * a->hq + h) * a->lq + i) * a->e;
                    int64_t ko = ((b * a->hkv + h / group) * a->lk + j) * a->e;
                    double d = 0;
                    for (int64_t x = 0; x < a->e; x++)
                        d += kn_load_f64(q->data, q->dtype, (size_t)(qo + x)) *
                             kn_load_f64(k->data, k->dtype, (size_t)(ko + x));
                    kn_store_f64(s->data, s->dtype, (size_t)(((b * a->hq + h) * a->lq + i) * a->lk + j),
                                 d * a->scale);
                }
}

/* Softmax over the last axis in place (as the Softmax operator: a row of -inf gives NaN). */
static void flex_softmax(const flex_cfg *a, kn_tensor *s)
{
    int64_t rows = a->batch * a->hq * a->lq, n = a->lk;
    for (int64_t r = 0; r < rows; r++) {
        size_t o = (size_t)(r * n);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++) {
            double x = kn_load_f64(s->data, s->dtype, o + (size_t)j);
            if (x > mx || isnan(x))
                mx = x;
        }
        for (int64_t j = 0; j < n; j++)
            sum += exp(kn_load_f64(s->data, s->dtype, o + (size_t)j) - mx);
        for (int64_t j = 0; j < n; j++)
            kn_store_f64(s->data, s->dtype, o + (size_t)j,
                         exp(kn_load_f64(s->data, s->dtype, o + (size_t)j) - mx) / sum);
    }
}

static void flex_output(const flex_cfg *a, const kn_tensor *p, kn_tensor *y)
{
    const kn_tensor *v = a->v;
    int64_t group = a->hq / a->hkv;
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t h = 0; h < a->hq; h++)
            for (int64_t i = 0; i < a->lq; i++)
                for (int64_t d = 0; d < a->ev; d++) {
                    double s = 0;
                    int64_t po = ((b * a->hq + h) * a->lq + i) * a->lk;
                    int64_t vo = (b * a->hkv + h / group) * a->lk * a->ev + d;
                    for (int64_t j = 0; j < a->lk; j++)
                        s += kn_load_f64(p->data, p->dtype, (size_t)(po + j)) *
                             kn_load_f64(v->data, v->dtype, (size_t)(vo + j * a->ev));
                    kn_store_f64(y->data, y->dtype, (size_t)(((b * a->hq + h) * a->lq + i) * a->ev + d), s);
                }
}

static int run_flex_attention(kn_op_ctx *c)
{
    flex_cfg a;
    if (flex_configure(c, &a))
        return c->err->code;
    int64_t ydims[4] = {a.batch, a.hq, a.lq, a.ev}, sdims[4] = {a.batch, a.hq, a.lq, a.lk};
    kn_tensor *y = kn_op_output(c, 0, a.q->dtype, 4, ydims);
    if (!y)
        return c->err->code;
    kn_tensor s;
    memset(&s, 0, sizeof s);
    if (kn_tensor_alloc(&s, a.sdt, 4, sdims, c->err))
        return c->err->code;
    flex_scores(&a, &s);
    int rc = a.score_mod ? flex_modify(c, a.score_mod, "score_mod", &s) : KN_OK;
    if (!rc) {
        flex_softmax(&a, &s);
        rc = a.prob_mod ? flex_modify(c, a.prob_mod, "prob_mod", &s) : KN_OK;
    }
    if (!rc)
        flex_output(&a, &s, y);
    kn_tensor_release(&s);
    return rc;
}

const kn_op_def kn_ops_attention[] = {
    {"", "Attention", 1, run_attention, NULL, NULL},
    {"", "RotaryEmbedding", 1, run_rotary_embedding, NULL, NULL},
    {"", "LinearAttention", 1, run_linear_attention, NULL, NULL},
    {"ai.onnx.preview", "FlexAttention", 1, run_flex_attention, NULL, NULL},
    {0},
};
