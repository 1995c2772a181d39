/* quant_embed.c - int8 embedding tables (quant.h), shared by the dynamic, static and
 * int4 modes.  A Gather (axis 0) whose data is a constant float32 [V, D] table of at
 * least KN_Q_EMBED_MIN_ELEMS values becomes
 *   Gather(table int8 [V, D], ids)  -> rows int8 -> Cast(float) -\
 *   Gather(scale float [V, 1], ids) -> row scales -----------------> Mul -> y
 * with a symmetric scale per row (amax / 127).  Only the rows a run looks up are
 * converted, so the float table exists neither in the file nor in memory at run
 * time (a DequantizeLinear before the Gather would be folded back into the float
 * table at load).  The original output value is kept, so consumers are untouched.
 * A table something else also reads (after the mode's own pass) stays float. */
#include "quant/quant_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Node i is a Gather along axis 0 of a large constant float [V, D] table. */
static const kn_tensor *embedding_table(const kn_graph *g, const kn_node *n)
{
    if (!kn_q_is_op(n, "Gather") || n->n_in != 2 || n->n_out != 1 || n->out[0] < 0 || n->in[1] < 0)
        return NULL;
    int64_t axis = kn_attr_int(n, "axis", 0);
    const kn_tensor *t = kn_q_const_f32(g, n->in[0], 2);
    if (!t || (axis != 0 && axis != -2) || t->numel < KN_Q_EMBED_MIN_ELEMS)
        return NULL;
    kn_dtype it = kn_opt_dtype(g, n->in[1]);
    return it == KN_I64 || it == KN_I32 || it == KN_UNDEFINED ? t : NULL;
}

/* ids[0..2) = int8 table [V, D], scales [V, 1]: cached, or made now. */
static int table_inits(kn_graph *g, int src, const kn_tensor *t, kn_q_wcache *wc, int *ids, kn_error *err)
{
    const int *hit = kn_q_wcache_find(wc, src, 0, 1.0f);
    if (hit) {
        memcpy(ids, hit, 2 * sizeof *ids);
        return KN_OK;
    }
    kn_tensor q = {0}, s = {0};
    char h[256];
    int rc = kn_q_weight_int8(t, 0, &q, &s, err);
    snprintf(h, sizeof h, "%.180s_int8", g->values[src].name);
    ids[0] = rc ? -1 : kn_opt_new_initializer(g, h, &q, err);
    int64_t sd[2] = {t->dims[0], 1};
    snprintf(h, sizeof h, "%.180s_row_scale", g->values[src].name);
    ids[1] = ids[0] < 0 ? -1 : kn_q_init(g, h, KN_F32, 2, sd, s.data, err);
    kn_tensor_release(&q);
    kn_tensor_release(&s);
    return ids[1] < 0 ? err->code : kn_q_wcache_add(wc, src, 0, 1.0f, ids, 2, err);
}

/* Replace Gather node i by the int8 form. */
static int rewrite(kn_graph *g, int i, const kn_tensor *t, kn_q_wcache *wc, kn_error *err)
{
    char name[200], h[256];
    snprintf(name, sizeof name, "%s", g->nodes[i].name && g->nodes[i].name[0] ? g->nodes[i].name : "Gather");
    int src = g->nodes[i].in[0], idx = g->nodes[i].in[1], y = g->nodes[i].out[0], tab[2];
    if (table_inits(g, src, t, wc, tab, err))
        return err->code;
    const char *sfx[3] = {"rows_int8", "row_scales", "rows_float"};
    int v[3];
    for (int k = 0; k < 3; k++) {
        snprintf(h, sizeof h, "%s_%s", name, sfx[k]);
        if ((v[k] = kn_q_value(g, h, err)) < 0)
            return err->code;
    }
    kn_opt_delete_node(g, i);
    int gq[2] = {tab[0], idx}, gs[2] = {tab[1], idx}, mul[2] = {v[2], v[1]};
    snprintf(h, sizeof h, "%s_int8", name);
    if (kn_q_node(g, "Gather", h, 2, gq, 1, &v[0], err) < 0)
        return err->code;
    snprintf(h, sizeof h, "%s_scale", name);
    if (kn_q_node(g, "Gather", h, 2, gs, 1, &v[1], err) < 0)
        return err->code;
    snprintf(h, sizeof h, "%s_cast", name);
    if (kn_q_cast(g, h, v[0], KN_F32, v[2], err) < 0)
        return err->code;
    snprintf(h, sizeof h, "%s_dequantize", name);
    return kn_q_node(g, "Mul", h, 2, mul, 1, &y, err) < 0 ? err->code : KN_OK;
}

/* The table node i reads when it is a Gather to rewrite, else NULL. */
static const kn_tensor *rewritable(const kn_graph *g, const kn_quant_opts *o, int i)
{
    const kn_node *n = &g->nodes[i];
    return kn_opt_node_deleted(n) || kn_q_excluded(o, n) ? NULL : embedding_table(g, n);
}

/* shared[v]: value v has readers other than Gathers to rewrite (a tied output
 * projection...), so its float table stays and an int8 copy would only add bytes. */
static bool *shared_tables(const kn_graph *g, const kn_quant_opts *o, kn_error *err)
{
    int *uses = kn_opt_use_counts(g, err);
    bool *shared = uses ? calloc((size_t)g->n_values + 1, sizeof *shared) : NULL;
    if (uses && !shared)
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
    for (int i = 0; shared && i < g->n_nodes; i++)
        if (rewritable(g, o, i))
            uses[g->nodes[i].in[0]]--;
    for (int v = 0; shared && v < g->n_values; v++)
        shared[v] = uses[v] > 0;
    free(uses);
    return shared;
}

int kn_quant_embeddings(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    int n0 = g->n_nodes, rc = KN_OK;   /* appended nodes are not visited */
    bool *shared = shared_tables(g, o, err);
    if (!shared)
        return err->code;
    kn_q_wcache wc = {0};
    for (int i = 0; i < n0 && !rc; i++) {
        const kn_tensor *t = rewritable(g, o, i);
        if (!t || shared[g->nodes[i].in[0]])
            continue;
        rc = rewrite(g, i, t, &wc, err);
        rep->nodes_quantized += !rc;
    }
    kn_q_wcache_free(&wc);
    free(shared);
    return rc;
}
