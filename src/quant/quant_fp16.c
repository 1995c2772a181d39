/* quant_fp16.c - half-precision weights (quant.h): every float32 initializer of at
 * least KN_FP16_MIN_ELEMS elements becomes a float16 initializer read through
 * Cast(to=FLOAT), the Cast writing the original value name so consumers are
 * untouched.  Kept in float32: initializers that are graph inputs or outputs or
 * captured by subgraphs, ones read by an excluded node, and ones read where a runtime
 * wants float32 data at load (Resize's roi/scales, Upsample's scales).  Graph inputs
 * and outputs keep their types; computation stays float32. */
#include "quant/quant_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KN_FP16_MIN_ELEMS 16

/* Input k of n holds shape-like data that must stay float32. */
static bool shape_like_input(const kn_node *n, int k)
{
    return (kn_q_is_op(n, "Resize") && k >= 1) || (kn_q_is_op(n, "Upsample") && k == 1);
}

/* keep[v]: initializer v is read by an excluded node or at a shape-like input. */
static bool *values_to_keep(const kn_graph *g, const kn_quant_opts *o, kn_error *err)
{
    bool *keep = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *keep);
    if (!keep) {
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        bool excluded = kn_q_excluded(o, n);
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && (excluded || shape_like_input(n, k)))
                keep[n->in[k]] = true;
    }
    return keep;
}

static bool convertible(const kn_graph *g, int v, const bool *keep)
{
    const kn_tensor *t = kn_opt_const(g, v);
    return t && !keep[v] && t->kind == KN_VALUE_TENSOR && t->dtype == KN_F32 &&
           t->numel >= KN_FP16_MIN_ELEMS && t->data && !kn_opt_value_is_pinned(g, v);
}

/* Initializer v becomes float16 data + Cast writing v. */
static int convert(kn_graph *g, int v, kn_error *err)
{
    const kn_tensor *t = g->values[v].init;
    kn_tensor h = {0};
    if (kn_tensor_alloc(&h, KN_F16, t->rank, t->dims, err))
        return err->code;
    const float *x = t->data;
    uint16_t *y = h.data;
    for (int64_t i = 0; i < t->numel; i++)
        y[i] = kn_f32_to_f16(x[i]);
    char hint[256];
    snprintf(hint, sizeof hint, "%.200s_fp16", g->values[v].name);
    int hv = kn_opt_new_initializer(g, hint, &h, err);
    kn_tensor_release(&h);
    if (hv < 0)
        return err->code;
    g->values[v].init = NULL;
    snprintf(hint, sizeof hint, "%.200s_cast", g->values[v].name);
    return kn_q_cast(g, hint, hv, KN_F32, v, err) < 0 ? err->code : KN_OK;
}

/* Count the nodes reading a converted initializer (quantized) or only float ones. */
static void count_nodes(const kn_graph *g, int n0, const bool *converted, const bool *keep,
                        kn_quant_report *rep)
{
    for (int i = 0; i < n0; i++) {
        const kn_node *n = &g->nodes[i];
        bool conv = false, float_init = false;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            conv |= v >= 0 && converted[v];
            float_init |= v >= 0 && keep[v] && kn_opt_dtype(g, v) == KN_F32;
        }
        rep->nodes_quantized += conv;
        rep->nodes_kept_float += !conv && float_init;
    }
}

int kn_quant_fp16(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    bool *keep = values_to_keep(g, o, err);
    if (!keep)
        return err->code;
    int nv = g->n_values, n0 = g->n_nodes, rc = KN_OK;
    bool *converted = calloc((size_t)(nv ? nv : 1), sizeof *converted);
    if (!converted)
        rc = kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int v = 0; v < nv && !rc; v++) {
        if (convertible(g, v, keep)) {
            converted[v] = true;
            rc = convert(g, v, err);
        } else if (kn_opt_const(g, v)) {
            keep[v] = true;
        }
    }
    if (!rc)
        count_nodes(g, n0, converted, keep, rep);
    free(converted);
    free(keep);
    return rc;
}
