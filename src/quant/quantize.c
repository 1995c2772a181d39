/* quantize.c - kn_quantize_model (quant.h): checks the options, dispatches to the
 * per-mode transform (quant_dynamic.c, quant_static.c, quant_fp16.c, quant_int4.c;
 * quant_embed.c for embedding tables after the int8 and int4 modes),
 * re-finalizes the graph and accounts initializer bytes; plus the helpers the modes
 * share (quant_internal.h): node selection and exclusion, symmetric int8 weight
 * quantization, and shorthands for building nodes and initializers. */
#include "quant/quant_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kn_quant_opts_init(kn_quant_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = KN_QMODE_DYNAMIC;
    o->per_channel = true;
    o->int4_block = 32;
}

/* ---- node selection ---- */

bool kn_q_is_op(const kn_node *n, const char *op)
{
    return (!n->domain[0] || !strcmp(n->domain, "ai.onnx")) && !strcmp(n->op_type, op);
}

bool kn_q_excluded(const kn_quant_opts *o, const kn_node *n)
{
    for (size_t k = 0; k < o->n_exclude; k++) {
        const char *e = o->exclude[k];
        if (e && ((n->name && !strcmp(n->name, e)) || !strcmp(n->op_type, e)))
            return true;
    }
    return false;
}

const kn_tensor *kn_q_const_f32(const kn_graph *g, int v, int rank)
{
    const kn_tensor *t = kn_opt_const(g, v);
    if (!t || t->kind != KN_VALUE_TENSOR || t->dtype != KN_F32 || t->rank != rank)
        return NULL;
    return t->numel > 0 && t->data ? t : NULL;
}

bool kn_q_float_activation(const kn_graph *g, int v)
{
    kn_dtype dt = kn_opt_dtype(g, v);
    return v >= 0 && !kn_opt_const(g, v) && (dt == KN_F32 || dt == KN_UNDEFINED);
}

/* beta * C as a new initializer. */
static int scaled_bias(kn_graph *g, const kn_tensor *C, float beta, kn_error *err)
{
    kn_tensor cb = {0};
    int v = kn_tensor_copy(&cb, C, err) ? -1 : 0;
    for (int64_t i = 0; !v && i < cb.numel; i++)
        ((float *)cb.data)[i] *= beta;
    if (!v)
        v = kn_opt_new_initializer(g, "gemm_bias_scaled", &cb, err);
    kn_tensor_release(&cb);
    return v;
}

bool kn_q_plan_gemm(kn_graph *g, const kn_node *n, const kn_tensor *B, kn_q_matrix *d, int *rc, kn_error *err)
{
    float beta = kn_attr_float(n, "beta", 1.0f);
    int c = n->n_in > 2 && beta != 0 ? n->in[2] : -1;
    const kn_tensor *C = kn_opt_const(g, c);
    if (kn_attr_int(n, "transA", 0) || (c >= 0 && beta != 1 && (!C || C->dtype != KN_F32)))
        return false;
    d->alpha = kn_attr_float(n, "alpha", 1.0f);
    d->bias = c >= 0 && beta != 1 ? scaled_bias(g, C, beta, err) : c;
    if (c >= 0 && d->bias < 0)
        *rc = err->code;
    else if (kn_attr_int(n, "transB", 0))
        *rc = kn_q_transpose2d(B, &d->w, err);
    else
        kn_tensor_view(&d->w, B);
    return !*rc;
}

int kn_q_opset(const kn_graph *g)
{
    int64_t v = kn_model_opset(g->model, "");
    return v < 0 ? 0 : (int)v;
}

/* ---- weights ---- */

/* Scale of a slice whose largest magnitude is amax. */
static float int8_scale(float amax)
{
    return amax > 0 && isfinite(amax) ? amax / 127.0f : 1.0f;
}

static int8_t int8_code(float w, float s)
{
    float r = rintf(w / s);
    return (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
}

int kn_q_weight_int8(const kn_tensor *w, int axis, kn_tensor *q, kn_tensor *scale, kn_error *err)
{
    if (w->dtype != KN_F32 || (axis >= 0 && axis >= w->rank))
        return kn_fail(err, KN_ERR_ARG, "cannot quantize a %s weight along axis %d",
                       kn_dtype_name(w->dtype), axis);
    int64_t channels = axis < 0 ? 1 : w->dims[axis], inner = 1;
    for (int d = axis + 1; axis >= 0 && d < w->rank; d++)
        inner *= w->dims[d];
    int64_t sdims[1] = {channels};
    if (kn_tensor_alloc(q, KN_I8, w->rank, w->dims, err) ||
        kn_tensor_alloc(scale, KN_F32, axis < 0 ? 0 : 1, sdims, err))
        return err->code;
    const float *x = w->data;
    float *s = scale->data;
    int8_t *y = q->data;
    float *amax = calloc((size_t)channels, sizeof *amax);
    if (!amax)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < w->numel; i++) {
        int64_t c = axis < 0 ? 0 : (i / inner) % channels;
        amax[c] = fmaxf(amax[c], fabsf(x[i]));
    }
    for (int64_t c = 0; c < channels; c++)
        s[c] = int8_scale(amax[c]);
    for (int64_t i = 0; i < w->numel; i++)
        y[i] = int8_code(x[i], s[axis < 0 ? 0 : (i / inner) % channels]);
    free(amax);
    return KN_OK;
}

int kn_q_transpose2d(const kn_tensor *w, kn_tensor *out, kn_error *err)
{
    int64_t rows = w->dims[0], cols = w->dims[1], dims[2] = {cols, rows};
    if (kn_tensor_alloc(out, KN_F32, 2, dims, err))
        return err->code;
    const float *x = w->data;
    float *y = out->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            y[c * rows + r] = x[r * cols + c];
    return KN_OK;
}

const int *kn_q_wcache_find(const kn_q_wcache *c, int src, int variant, float alpha)
{
    for (int k = 0; k < c->n; k++)
        if (c->e[k].src == src && c->e[k].variant == variant && c->e[k].alpha == alpha)
            return c->e[k].ids;
    return NULL;
}

int kn_q_wcache_add(kn_q_wcache *c, int src, int variant, float alpha, const int *ids, int n_ids, kn_error *err)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        kn_q_wcache_entry *p = realloc(c->e, sizeof *p * (size_t)cap);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        c->e = p;
        c->cap = cap;
    }
    kn_q_wcache_entry *e = &c->e[c->n++];
    memset(e, 0, sizeof *e);
    e->src = src;
    e->variant = variant;
    e->alpha = alpha;
    memcpy(e->ids, ids, sizeof *ids * (size_t)(n_ids < 4 ? n_ids : 4));
    return KN_OK;
}

void kn_q_wcache_free(kn_q_wcache *c)
{
    free(c->e);
    memset(c, 0, sizeof *c);
}

/* ---- building ---- */

int kn_q_init(kn_graph *g, const char *hint, kn_dtype dt, int rank, const int64_t *dims,
              const void *data, kn_error *err)
{
    kn_tensor t = {0};
    if (kn_tensor_set_shape(&t, dt, rank, dims, err))
        return -1;
    t.data = (void *)data;
    return kn_opt_new_initializer(g, hint, &t, err);
}

int kn_q_scalar(kn_graph *g, const char *hint, kn_dtype dt, double v, kn_error *err)
{
    uint64_t buf = 0;
    kn_store_f64(&buf, dt, 0, v);
    return kn_q_init(g, hint, dt, 0, NULL, &buf, err);
}

int kn_q_value(kn_graph *g, const char *hint, kn_error *err)
{
    return kn_opt_new_value(g, hint, err);
}

int kn_q_node(kn_graph *g, const char *op, const char *hint, int n_in, const int *ins, int n_out,
              const int *outs, kn_error *err)
{
    return kn_opt_add_node(g, op, "", 13, hint, n_in, ins, n_out, outs, err);
}

int kn_q_cast(kn_graph *g, const char *hint, int x, kn_dtype to, int y, kn_error *err)
{
    int i = kn_q_node(g, "Cast", hint, 1, &x, 1, &y, err);
    if (i < 0 || kn_opt_set_attr_int(g, i, "to", (int64_t)to, err))
        return -1;
    return i;
}

size_t kn_q_initializer_bytes(const kn_graph *g)
{
    size_t sum = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init && !g->values[v].is_input)
            sum += g->values[v].init->nbytes;
    return sum;
}

/* ---- the driver ---- */

static int check_opts(const kn_quant_opts *o, kn_error *err)
{
    if (o->mode < KN_QMODE_DYNAMIC || o->mode > KN_QMODE_INT4)
        return kn_fail(err, KN_ERR_ARG, "unknown quantization mode %d", (int)o->mode);
    if (o->mode == KN_QMODE_INT4 && o->int4_block != 32 && o->int4_block != 128)
        return kn_fail(err, KN_ERR_ARG, "int4 block size must be 32 or 128, not %d", o->int4_block);
    if (o->mode == KN_QMODE_STATIC && !o->ranges)
        return kn_fail(err, KN_ERR_ARG, "static quantization needs activation ranges (calibration)");
    if (o->n_exclude && !o->exclude)
        return kn_fail(err, KN_ERR_ARG, "exclusion list is missing");
    return KN_OK;
}

/* The only operators finalize could not resolve are the MatMulNBits this build may
 * not run yet: the graph is still complete and sorted, so it can be written. */
static bool only_int4_unresolved(const kn_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (!n->op && (strcmp(n->domain, "com.microsoft") || strcmp(n->op_type, "MatMulNBits")))
            return false;
    }
    return true;
}

/* Identity(constant) -> its readers read the constant (exporters write shared
 * weights so); lets the modes see those weights as constants. */
static int fold_constant_identities(kn_graph *g, kn_error *err)
{
    int folded = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        if (kn_q_is_op(n, "Identity") && n->n_in == 1 && n->n_out == 1 && n->out[0] >= 0 &&
            kn_opt_const(g, n->in[0]) && kn_opt_replace_uses(g, n->out[0], n->in[0])) {
            kn_opt_delete_node(g, i);
            folded++;
        }
    }
    return folded ? kn_opt_refinalize(g, err) : KN_OK;
}

int kn_quantize_model(kn_model *m, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    kn_quant_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!m || !m->graph || !o)
        return kn_fail(err, KN_ERR_ARG, "quantize: no model or options");
    if (check_opts(o, err))
        return err->code;
    kn_graph *g = m->graph;
    rep->weight_bytes_before = kn_q_initializer_bytes(g);
    static int (*const modes[])(kn_graph *, const kn_quant_opts *, kn_quant_report *, kn_error *) = {
        [KN_QMODE_DYNAMIC] = kn_quant_dynamic,
        [KN_QMODE_STATIC] = kn_quant_static,
        [KN_QMODE_FP16] = kn_quant_fp16,
        [KN_QMODE_INT4] = kn_quant_int4,
    };
    if (fold_constant_identities(g, err) || modes[o->mode](g, o, rep, err) ||
        (o->mode != KN_QMODE_FP16 && kn_quant_embeddings(g, o, rep, err)))
        return err->code;
    int rc = kn_opt_refinalize(g, err);
    if (rc == KN_ERR_UNSUPPORTED && o->mode == KN_QMODE_INT4 && only_int4_unresolved(g))
        rc = KN_OK;
    if (rc)
        return rc;
    rep->weight_bytes_after = kn_q_initializer_bytes(g);
    return KN_OK;
}
