/* edit.c - graph editing helpers shared by the optimizer passes (see opt.h): use
 * counts and pinned values, rewiring consumers, deleting and appending nodes, new
 * values and initializers, attribute setters, evaluating one node on constant
 * inputs, and re-finalizing an edited graph (compaction of deleted nodes and unused
 * values, then kn_graph_finalize). */
#include "opt/opt.h"

#include "core/bigalloc.h"

#include "exec/exec.h"
#include "ops/op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* op_type of a deleted node; compared by address, so no real op can match it. */
static const char deleted_op[] = "<deleted>";

/* ---- uses ---- */

int *kn_opt_use_counts(const kn_graph *g, kn_error *err)
{
    int *counts = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *counts);
    if (!counts) {
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                counts[n->in[k]]++;
        for (int k = 0; k < n->n_implicit; k++)
            counts[n->implicit[k]]++;
    }
    for (int k = 0; k < g->n_outputs; k++)
        counts[g->outputs[k]]++;
    return counts;
}

bool kn_opt_value_is_pinned(const kn_graph *g, int v)
{
    if (v < 0)
        return false;
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == v)
            return true;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_implicit; k++)
            if (n->implicit[k] == v)
                return true;
    }
    return false;
}

bool kn_opt_replace_uses(kn_graph *g, int from, int to)
{
    if (from < 0 || kn_opt_value_is_pinned(g, from))
        return false;
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == from)
                n->in[k] = to;
    }
    return true;
}

int kn_opt_single_consumer(const kn_graph *g, int v)
{
    if (v < 0 || kn_opt_value_is_pinned(g, v))
        return -1;
    int found = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != v)
                continue;
            if (found >= 0 && found != i)
                return -1;
            found = i;
        }
    }
    return found;
}

/* ---- deleting ---- */

void kn_opt_delete_node(kn_graph *g, int i)
{
    kn_node *n = &g->nodes[i];
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (v >= 0 && g->values[v].producer == i)
            g->values[v].producer = -1;
    }
    n->op_type = deleted_op;
    n->op = NULL;
    n->n_in = n->n_out = n->n_implicit = 0;
}

bool kn_opt_node_deleted(const kn_node *n)
{
    return n->op_type == deleted_op;
}

/* ---- new values and initializers ---- */

/* Is name taken in g or a graph enclosing it? */
static bool name_taken(const kn_graph *g, const char *name)
{
    for (; g; g = g->parent)
        if (kn_graph_find(g, name) >= 0)
            return true;
    return false;
}

int kn_opt_new_value(kn_graph *g, const char *hint, kn_error *err)
{
    char name[256];
    snprintf(name, sizeof name, "%s", hint && hint[0] ? hint : "opt");
    for (int k = 1; name_taken(g, name); k++)
        snprintf(name, sizeof name, "%.200s_%d", hint && hint[0] ? hint : "opt", k);
    int v = kn_graph_value(g, name);
    if (v < 0)
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
    return v;
}

/* A copy of t in the arena: record, and data 64-byte aligned like kernels prefer. */
static kn_tensor *arena_tensor_copy(kn_arena *a, const kn_tensor *t, kn_error *err)
{
    if (t->kind != KN_VALUE_TENSOR || t->dtype == KN_STRING) {
        kn_fail(err, KN_ERR_UNSUPPORTED, "only numeric tensors can become initializers");
        return NULL;
    }
    kn_tensor *c = kn_arena_alloc(a, sizeof *c);
    if (!c) {
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (kn_tensor_set_shape(c, t->dtype, t->rank, t->dims, err))
        return NULL;
    if (c->nbytes) {
        char *p = kn_arena_alloc(a, c->nbytes + 64);
        if (!p) {
            kn_fail(err, KN_ERR_NOMEM, "out of memory for a %zu-byte constant", c->nbytes);
            return NULL;
        }
        p += (64 - ((uintptr_t)p & 63)) & 63;
        memcpy(p, t->data, c->nbytes);
        c->data = p;
    }
    c->owns_data = false;
    return c;
}

int kn_opt_set_initializer(kn_graph *g, int v, const kn_tensor *t, kn_error *err)
{
    kn_tensor *c = arena_tensor_copy(&g->model->arena, t, err);
    if (!c)
        return err->code;
    kn_value *val = &g->values[v];
    val->init = c;
    val->producer = -1;
    kn_type_from_tensor(&val->type, c);
    val->has_type = true;
    val->type_inferred = false;
    return KN_OK;
}

int kn_opt_new_initializer(kn_graph *g, const char *hint, const kn_tensor *t, kn_error *err)
{
    int v = kn_opt_new_value(g, hint, err);
    if (v < 0)
        return -1;
    if (kn_opt_set_initializer(g, v, t, err))
        return -1;
    return v;
}

const kn_tensor *kn_opt_const(const kn_graph *g, int v)
{
    if (v < 0 || v >= g->n_values)
        return NULL;
    const kn_value *val = &g->values[v];
    return val->is_input ? NULL : val->init;
}

/* ---- appending nodes ---- */

static bool node_name_taken(const kn_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].name && !strcmp(g->nodes[i].name, name))
            return true;
    return false;
}

/* Opset the model imports for domain, importing it at `version` when missing. */
static int domain_opset(kn_model *m, const char *domain, int version, kn_error *err)
{
    int64_t have = kn_model_opset(m, domain);
    if (have >= 0)
        return (int)have;
    kn_opset_import *p = kn_arena_calloc(&m->arena, (size_t)m->n_opsets + 1, sizeof *p);
    const char *d = kn_arena_strdup(&m->arena, domain);
    if (!p || !d)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory"), -1;
    if (m->n_opsets)
        memcpy(p, m->opsets, sizeof *p * (size_t)m->n_opsets);
    p[m->n_opsets].domain = d;
    p[m->n_opsets].version = version;
    m->opsets = p;
    m->n_opsets++;
    return version;
}

static int *arena_ids(kn_arena *a, int n, const int *ids)
{
    int *p = kn_arena_calloc(a, (size_t)(n ? n : 1), sizeof *p);
    if (p && n)
        memcpy(p, ids, sizeof *p * (size_t)n);
    return p;
}

int kn_opt_add_node(kn_graph *g, const char *op_type, const char *domain, int opset_if_missing,
                    const char *hint, int n_in, const int *ins, int n_out, const int *outs,
                    kn_error *err)
{
    kn_arena *a = &g->model->arena;
    if (!domain)
        domain = "";
    int opset = domain_opset(g->model, domain, opset_if_missing, err);
    if (opset < 0)
        return -1;
    char name[256];
    snprintf(name, sizeof name, "%s", hint && hint[0] ? hint : op_type);
    for (int k = 1; node_name_taken(g, name); k++)
        snprintf(name, sizeof name, "%.200s_%d", hint && hint[0] ? hint : op_type, k);
    const char *nm = kn_arena_strdup(a, name), *op = kn_arena_strdup(a, op_type);
    const char *dm = kn_arena_strdup(a, domain);
    int *in = arena_ids(a, n_in, ins), *out = arena_ids(a, n_out, outs);
    kn_node *n = nm && op && dm && in && out ? kn_graph_add_node(g) : NULL;
    if (!n)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory"), -1;
    n->name = nm;
    n->op_type = op;
    n->domain = dm;
    n->n_in = n_in;
    n->in = in;
    n->n_out = n_out;
    n->out = out;
    n->opset = opset;
    n->op = kn_op_find(dm, op, opset);
    int idx = g->n_nodes - 1;
    for (int k = 0; k < n_out; k++)
        if (out[k] >= 0)
            g->values[out[k]].producer = idx;
    return idx;
}

/* ---- attributes ---- */

/* Slot for attribute `name` on node i: the existing one or a new one; the node gets
 * a fresh attribute array so that arrays shared with other nodes stay untouched. */
static kn_attr *attr_slot(kn_graph *g, int i, const char *name, kn_error *err)
{
    kn_node *n = &g->nodes[i];
    kn_arena *a = &g->model->arena;
    int at = n->n_attr;
    for (int k = 0; k < n->n_attr; k++)
        if (!strcmp(n->attrs[k].name, name))
            at = k;
    int count = n->n_attr + (at == n->n_attr);
    kn_attr *arr = kn_arena_calloc(a, (size_t)count, sizeof *arr);
    const char *nm = kn_arena_strdup(a, name);
    if (!arr || !nm) {
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (n->n_attr)
        memcpy(arr, n->attrs, sizeof *arr * (size_t)n->n_attr);
    n->attrs = arr;
    n->n_attr = count;
    memset(&arr[at], 0, sizeof arr[at]);
    arr[at].name = nm;
    return &arr[at];
}

int kn_opt_set_attr_int(kn_graph *g, int i, const char *name, int64_t v, kn_error *err)
{
    kn_attr *a = attr_slot(g, i, name, err);
    if (!a)
        return err->code;
    a->type = KN_ATTR_INT;
    a->i = v;
    return KN_OK;
}

int kn_opt_set_attr_float(kn_graph *g, int i, const char *name, float v, kn_error *err)
{
    kn_attr *a = attr_slot(g, i, name, err);
    if (!a)
        return err->code;
    a->type = KN_ATTR_FLOAT;
    a->f = v;
    return KN_OK;
}

/* Arena copy of n elements of size sz (a valid pointer even when n == 0). */
static void *arena_dup(kn_arena *a, const void *src, int n, size_t sz)
{
    void *p = kn_arena_calloc(a, (size_t)(n > 0 ? n : 1), sz);
    if (p && n > 0)
        memcpy(p, src, sz * (size_t)n);
    return p;
}

int kn_opt_set_attr_ints(kn_graph *g, int i, const char *name, const int64_t *v, int n, kn_error *err)
{
    int64_t *copy = arena_dup(&g->model->arena, v, n, sizeof *v);
    kn_attr *a = copy ? attr_slot(g, i, name, err) : NULL;
    if (!a)
        return copy ? err->code : kn_fail(err, KN_ERR_NOMEM, "out of memory");
    a->type = KN_ATTR_INTS;
    a->ints = copy;
    a->n = n;
    return KN_OK;
}

int kn_opt_set_attr_floats(kn_graph *g, int i, const char *name, const float *v, int n, kn_error *err)
{
    float *copy = arena_dup(&g->model->arena, v, n, sizeof *v);
    kn_attr *a = copy ? attr_slot(g, i, name, err) : NULL;
    if (!a)
        return copy ? err->code : kn_fail(err, KN_ERR_NOMEM, "out of memory");
    a->type = KN_ATTR_FLOATS;
    a->floats = copy;
    a->n = n;
    return KN_OK;
}

int kn_opt_set_attr_string(kn_graph *g, int i, const char *name, const char *v, kn_error *err)
{
    char *copy = kn_arena_strdup(&g->model->arena, v);
    kn_attr *a = copy ? attr_slot(g, i, name, err) : NULL;
    if (!a)
        return copy ? err->code : kn_fail(err, KN_ERR_NOMEM, "out of memory");
    a->type = KN_ATTR_STRING;
    a->s = copy;
    a->s_len = strlen(copy);
    return KN_OK;
}

int kn_opt_copy_attrs(kn_graph *g, int to, int from, kn_error *err)
{
    /* payloads (lists, tensors, subgraphs) are immutable arena data: the new
     * attribute records share them */
    int n = g->nodes[from].n_attr;
    for (int k = 0; k < n; k++) {
        const kn_attr src = g->nodes[from].attrs[k];
        kn_attr *a = attr_slot(g, to, src.name, err);
        if (!a)
            return err->code;
        const char *nm = a->name;
        *a = src;
        a->name = nm;
    }
    return KN_OK;
}

/* ---- evaluating one node ---- */

static bool has_subgraph(const kn_node *n)
{
    for (int a = 0; a < n->n_attr; a++)
        if (n->attrs[a].type == KN_ATTR_GRAPH || n->attrs[a].type == KN_ATTR_GRAPHS)
            return true;
    return false;
}

/* A throw-away model holding one copy of node n whose inputs are initializers viewing
 * the constant inputs of n in g; graph outputs are n's present outputs. */
static kn_model *one_node_model(const kn_graph *g, const kn_node *n, int *out_slot, kn_error *err)
{
    kn_model *m = kn_model_new();
    if (!m) {
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->opsets = g->model->opsets;   /* read only, outlived by g's model */
    m->n_opsets = g->model->n_opsets;
    kn_graph *t = m->graph = kn_graph_new(m, NULL);
    kn_node *c = t ? kn_graph_add_node(t) : NULL;
    int *in = kn_arena_calloc(&m->arena, (size_t)n->n_in + 1, sizeof *in);
    int *out = kn_arena_calloc(&m->arena, (size_t)n->n_out + 1, sizeof *out);
    if (!c || !in || !out)
        goto nomem;
    *c = *n;
    c->in = in;
    c->out = out;
    c->n_implicit = 0;
    c->implicit = NULL;
    c->state = NULL;
    char name[32];
    for (int k = 0; k < n->n_in; k++) {
        in[k] = -1;
        if (n->in[k] < 0)
            continue;
        snprintf(name, sizeof name, "in%d", k);
        if ((in[k] = kn_graph_value(t, name)) < 0)
            goto nomem;
        t->values[in[k]].init = g->values[n->in[k]].init;
    }
    for (int k = 0; k < n->n_out; k++) {
        out[k] = out_slot[k] = -1;
        if (n->out[k] < 0)
            continue;
        snprintf(name, sizeof name, "out%d", k);
        if ((out[k] = kn_graph_value(t, name)) < 0 || kn_graph_add_output(t, out[k]))
            goto nomem;
        out_slot[k] = t->n_outputs - 1;
    }
    if (kn_graph_finalize(t, err)) {
        m->opsets = NULL;
        kn_model_free(m);
        return NULL;
    }
    return m;
nomem:
    m->opsets = NULL;
    kn_model_free(m);
    kn_fail(err, KN_ERR_NOMEM, "out of memory");
    return NULL;
}

#define MAX_EVAL_OUT 64

int kn_opt_eval_node(kn_graph *g, int i, kn_tensor *outputs, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    if (has_subgraph(n))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "cannot evaluate %s at load time: it has a subgraph",
                       n->op_type);
    if (n->n_out > MAX_EVAL_OUT)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "too many outputs to evaluate %s", n->op_type);
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !kn_opt_const(g, n->in[k]))
            return kn_fail(err, KN_ERR_ARG, "input %d of %s is not a constant", k, n->op_type);
    for (int k = 0; k < n->n_out; k++)
        memset(&outputs[k], 0, sizeof outputs[k]);
    int slot[MAX_EVAL_OUT];
    kn_model *m = one_node_model(g, n, slot, err);
    if (!m)
        return err->code;
    kn_tensor res[MAX_EVAL_OUT];
    int rc = kn_exec_graph_env(m->graph, NULL, 0, NULL, m->graph->n_outputs, res, err);
    if (!rc)
        for (int k = 0; k < n->n_out; k++)
            if (slot[k] >= 0)
                outputs[k] = res[slot[k]];
    m->opsets = NULL;
    kn_model_free(m);
    return rc;
}

/* ---- re-finalizing ---- */

static void compact_nodes(kn_graph *g)
{
    int w = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (!kn_opt_node_deleted(&g->nodes[i]))
            g->nodes[w++] = g->nodes[i];
    g->n_nodes = w;
}

/* Values any node, graph input or graph output refers to. */
static void mark_referenced(const kn_graph *g, bool *keep)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                keep[n->in[k]] = true;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0)
                keep[n->out[k]] = true;
        for (int k = 0; k < n->n_implicit; k++)
            keep[n->implicit[k]] = true;
    }
    for (int k = 0; k < g->n_inputs; k++)
        keep[g->inputs[k]] = true;
    for (int k = 0; k < g->n_outputs; k++)
        keep[g->outputs[k]] = true;
    for (int v = 0; v < g->n_values; v++)
        keep[v] |= g->values[v].is_input || g->values[v].is_outer;
}

static void remap_ids(int *ids, int n, const int *map)
{
    for (int k = 0; k < n; k++)
        if (ids[k] >= 0)
            ids[k] = map[ids[k]];
}

/* Does any kept initializer's data touch [lo, hi)?  (Two values may share data.) */
static bool kept_data_overlaps(const kn_graph *g, const bool *keep, uintptr_t lo, uintptr_t hi)
{
    for (int v = 0; v < g->n_values; v++) {
        const kn_tensor *t = g->values[v].init;
        if (!keep[v] || !t || !t->data)
            continue;
        uintptr_t a = (uintptr_t)t->data, b = a + t->nbytes;
        if (a < hi && b > lo)
            return true;
    }
    return false;
}

/* Dropped initializers (folded or fused into new ones) give their memory back: the
 * whole pages inside their data, unless a kept value shares them.  Mapped file pages
 * would be re-read if touched; arena pages become zero pages nobody reads. */
static void give_back_dropped(const kn_graph *g, const bool *keep)
{
    for (int v = 0; v < g->n_values; v++) {
        const kn_tensor *t = g->values[v].init;
        uintptr_t lo, hi;
        if (keep[v] || !t || !t->data || !kn_inner_pages(t->data, t->nbytes, &lo, &hi))
            continue;
        if (!kept_data_overlaps(g, keep, lo, hi))
            kn_release_pages((void *)lo, hi - lo);
    }
}

/* Rebuild the value table (and its name hash) with only the kept values, renumbering
 * every reference.  Node implicit lists are cleared: finalize recomputes them. */
static int drop_values(kn_graph *g, const bool *keep, kn_error *err)
{
    give_back_dropped(g, keep);
    int n_old = g->n_values;
    kn_value *old = g->values;
    int *map = malloc(sizeof *map * (size_t)(n_old ? n_old : 1));
    if (!map)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    g->values = NULL;
    g->n_values = g->cap_values = 0;
    g->hash = NULL;
    g->hash_cap = 0;
    for (int v = 0; v < n_old; v++) {
        map[v] = -1;
        if (!keep[v])
            continue;
        int id = kn_graph_value(g, old[v].name);
        if (id < 0) {
            free(map);
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        }
        g->values[id] = old[v];
        map[v] = id;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        remap_ids(n->in, n->n_in, map);
        remap_ids(n->out, n->n_out, map);
        n->n_implicit = 0;
        n->implicit = NULL;
    }
    remap_ids(g->inputs, g->n_inputs, map);
    remap_ids(g->outputs, g->n_outputs, map);
    free(map);
    return KN_OK;
}

/* Forget inferred types (except on graph outputs) so that inference sees the edited
 * graph afresh: folding may make shapes known that were not before. */
static void reset_inferred_types(kn_graph *g)
{
    bool *out = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *out);
    for (int k = 0; out && k < g->n_outputs; k++)
        out[g->outputs[k]] = true;
    for (int v = 0; v < g->n_values; v++) {
        kn_value *val = &g->values[v];
        if (!val->type_inferred || (out && out[v]) || !out)
            continue;
        memset(&val->type, 0, sizeof val->type);
        val->type.rank = -1;
        val->has_type = false;
        val->type_inferred = false;
    }
    free(out);
}

int kn_opt_refinalize(kn_graph *g, kn_error *err)
{
    compact_nodes(g);
    bool *keep = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *keep);
    if (!keep)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    mark_referenced(g, keep);
    int dropped = 0;
    for (int v = 0; v < g->n_values; v++)
        dropped += !keep[v];
    int rc = dropped ? drop_values(g, keep, err) : KN_OK;
    free(keep);
    if (rc)
        return rc;
    reset_inferred_types(g);
    return kn_graph_finalize(g, err);
}

/* ---- shared pass utilities ---- */

bool kn_opt_static_shape(const kn_graph *g, int v, int *rank, int64_t *dims)
{
    if (v < 0)
        return false;
    const kn_value *val = &g->values[v];
    if (val->init && !val->is_input) {
        *rank = val->init->rank;
        memcpy(dims, val->init->dims, sizeof *dims * (size_t)val->init->rank);
        return val->init->kind == KN_VALUE_TENSOR;
    }
    if (!val->has_type || val->type.kind != KN_TYPE_TENSOR || val->type.rank < 0)
        return false;
    for (int d = 0; d < val->type.rank; d++) {
        if (val->type.dims[d].value < 0)
            return false;
        dims[d] = val->type.dims[d].value;
    }
    *rank = val->type.rank;
    return true;
}

kn_dtype kn_opt_dtype(const kn_graph *g, int v)
{
    if (v < 0)
        return KN_UNDEFINED;
    const kn_value *val = &g->values[v];
    if (val->init && !val->is_input)
        return val->init->kind == KN_VALUE_TENSOR ? val->init->dtype : KN_UNDEFINED;
    if (!val->has_type || val->type.kind != KN_TYPE_TENSOR)
        return KN_UNDEFINED;
    return val->type.dtype;
}

/* Number of inputs of live nodes that read v. */
static int readers(const kn_graph *g, int v)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            n += g->nodes[i].in[k] == v;
    return n;
}

bool kn_opt_bypass(kn_graph *g, int i, int in_v, int out_v)
{
    if (in_v < 0 || out_v < 0)
        return false;
    if (kn_opt_replace_uses(g, out_v, in_v)) {
        kn_opt_delete_node(g, i);
        return true;
    }
    /* out_v is a graph output or captured: let in_v's producer write out_v instead,
     * when in_v is an ordinary intermediate that node i alone reads */
    kn_value *iv = &g->values[in_v];
    int p = iv->producer;
    if (p < 0 || p == i || iv->init || iv->is_input || kn_opt_value_is_pinned(g, in_v) ||
        readers(g, in_v) != 1 || kn_opt_node_deleted(&g->nodes[p]))
        return false;
    kn_opt_delete_node(g, i);
    kn_node *pn = &g->nodes[p];
    for (int k = 0; k < pn->n_out; k++)
        if (pn->out[k] == in_v)
            pn->out[k] = out_v;
    g->values[out_v].producer = p;
    iv->producer = -1;
    return true;
}
