/* prepare.c - the compile step: once per loaded model, give every node whose
 * operator has a prepare hook the chance to precompute (prepacked weights, kernel
 * choice) from its constant inputs.  Results live in node->state, owned by the
 * model.  Subgraphs (If/Loop/Scan bodies) are prepared too.  Identical nodes (same
 * operator, constant inputs, attributes and input types) share one state.  Memory
 * that running no longer needs goes back to the system: initializers every reader
 * declared replaced by its state (drop_inputs), and the file pages of the model
 * mapping (read-only and file-backed, so a later read simply faults them back in). */
#include "exec/exec.h"

#include "core/bigalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Bookkeeping of the main graph's preparation: per value, readers and readers that
 * declared it replaced; the nodes prepared so far, whose states later identical nodes
 * share (same operator, same constant inputs, same attributes and input types: the
 * 12 layers of a model that reuses one layer's weights pack them once). */
typedef struct prep_state {
    int *dropped, *readers;
    int n_done, cap_done;
    struct prepared {
        const kn_node *node;
        uint32_t drop_inputs;
    } *done;
} prep_state;

static int prepare_graph(kn_model *m, kn_graph *g, prep_state *ps, kn_error *err);
static void release_if_unread(kn_graph *g, int v, const int *dropped, const int *readers);
static void count_readers(const kn_graph *g, int *readers);

static bool same_type(const kn_type *a, const kn_type *b)
{
    if (!a || !b)
        return a == b;
    if (a->kind != b->kind || a->dtype != b->dtype || a->rank != b->rank)
        return false;
    for (int d = 0; d < a->rank; d++) {
        const kn_dim *x = &a->dims[d], *y = &b->dims[d];
        if (x->value != y->value || !x->param != !y->param || (x->param && strcmp(x->param, y->param)))
            return false;
    }
    return true;
}

static bool same_attr(const kn_attr *a, const kn_attr *b)
{
    if (a->type != b->type || strcmp(a->name, b->name) || a->n != b->n)
        return false;
    switch (a->type) {
    case KN_ATTR_FLOAT: return a->f == b->f;
    case KN_ATTR_INT: return a->i == b->i;
    case KN_ATTR_STRING: return a->s_len == b->s_len && !memcmp(a->s, b->s, a->s_len);
    case KN_ATTR_INTS: return !a->n || !memcmp(a->ints, b->ints, sizeof *a->ints * (size_t)a->n);
    case KN_ATTR_FLOATS: return !a->n || !memcmp(a->floats, b->floats, sizeof *a->floats * (size_t)a->n);
    default: return false; /* tensors, graphs, strings lists: not worth comparing */
    }
}

/* Would b's prepare build exactly a's state? */
static bool same_preparation(const kn_graph *g, const kn_node *a, const kn_node *b)
{
    if (a->op != b->op || a->opset != b->opset || a->n_in != b->n_in || a->n_attr != b->n_attr)
        return false;
    for (int k = 0; k < a->n_in; k++) {
        int x = a->in[k], y = b->in[k];
        bool cx = x >= 0 && g->values[x].init && !g->values[x].is_input;
        bool cy = y >= 0 && g->values[y].init && !g->values[y].is_input;
        if (cx != cy || (cx && x != y) || (x < 0) != (y < 0))
            return false;
        if (!cx && x >= 0 && !same_type(g->values[x].has_type ? &g->values[x].type : NULL,
                                        g->values[y].has_type ? &g->values[y].type : NULL))
            return false;
    }
    for (int i = 0; i < a->n_attr; i++)
        if (!same_attr(&a->attrs[i], &b->attrs[i]))
            return false;
    return true;
}

/* Record nd's preparation for sharing; on out of memory just do not share it. */
static void remember(prep_state *ps, const kn_node *nd, uint32_t drop)
{
    if (ps->n_done == ps->cap_done) {
        int cap = ps->cap_done ? 2 * ps->cap_done : 64;
        struct prepared *p = realloc(ps->done, sizeof *p * (size_t)cap);
        if (!p)
            return;
        ps->done = p;
        ps->cap_done = cap;
    }
    ps->done[ps->n_done].node = nd;
    ps->done[ps->n_done++].drop_inputs = drop;
}

/* Count nd's declared drops and release what no reader needs any more. */
static void apply_drops(kn_graph *g, const kn_node *nd, uint32_t drop, prep_state *ps)
{
    for (int k = 0; k < nd->n_in && k < 32; k++) {
        int v = nd->in[k];
        if (!(drop >> k & 1u) || v < 0 || !g->values[v].init || g->values[v].is_input)
            continue;
        ps->dropped[v]++;
        release_if_unread(g, v, ps->dropped, ps->readers); /* at once: keeps the load's peak low */
    }
}

static bool share_state(kn_graph *g, kn_node *nd, prep_state *ps)
{
    for (int i = 0; ps && i < ps->n_done; i++) {
        if (same_preparation(g, ps->done[i].node, nd)) {
            nd->state = ps->done[i].node->state;
            apply_drops(g, nd, ps->done[i].drop_inputs, ps);
            return true;
        }
    }
    return false;
}

static int prepare_node(kn_model *m, kn_graph *g, kn_node *nd, prep_state *ps, kn_error *err)
{
    char lb[160];
    if (share_state(g, nd, ps))
        return KN_OK;
    const kn_tensor *consts[512];
    const kn_type *types[512];
    if (nd->n_in > 512)
        return KN_OK;
    for (int k = 0; k < nd->n_in; k++) {
        int v = nd->in[k];
        const kn_value *val = v >= 0 ? &g->values[v] : NULL;
        consts[k] = val && val->init && !val->is_input ? val->init : NULL;
        types[k] = val && val->has_type ? &val->type : NULL;
    }
    kn_prepare_ctx pc = {.graph = g, .node = nd, .opset = nd->opset, .n_in = nd->n_in,
                         .in_const = consts, .in_type = types, .err = err};
    void *state = NULL;
    if (nd->op->prepare(&pc, &state))
        return kn_error_prefix(err, "preparing node '%s' (%s): ", kn_node_label(g, nd, lb, sizeof lb),
                               nd->op_type);
    if (!state)
        return KN_OK;
    if (kn_model_own_state(m, state, nd->op->release, err))
        return err->code;
    nd->state = state;
    if (ps) {
        remember(ps, nd, pc.drop_inputs);
        apply_drops(g, nd, pc.drop_inputs, ps);
    }
    return KN_OK;
}

static int prepare_subgraphs(kn_model *m, kn_node *nd, kn_error *err)
{
    for (int a = 0; a < nd->n_attr; a++) {
        kn_attr *at = &nd->attrs[a];
        if (at->type == KN_ATTR_GRAPH && at->g && prepare_graph(m, at->g, NULL, err))
            return err->code;
        for (int k = 0; at->type == KN_ATTR_GRAPHS && k < at->n; k++)
            if (at->graphs[k] && prepare_graph(m, at->graphs[k], NULL, err))
                return err->code;
    }
    return KN_OK;
}

static int prepare_graph(kn_model *m, kn_graph *g, prep_state *ps, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *nd = &g->nodes[i];
        if (nd->op && nd->op->prepare && !nd->state && prepare_node(m, g, nd, ps, err))
            return err->code;
        if (prepare_subgraphs(m, nd, err))
            return err->code;
    }
    return KN_OK;
}


/* Readers of each main-graph value (node inputs, subgraph captures, graph outputs). */
static void count_readers(const kn_graph *g, int *readers)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0)
                readers[nd->in[k]]++;
        for (int k = 0; k < nd->n_implicit; k++)
            readers[nd->implicit[k]] += 1 << 20;
    }
    for (int k = 0; k < g->n_outputs; k++)
        readers[g->outputs[k]] += 1 << 20;
}

/* Every reader of initializer v has declared it replaced: give its memory back. */
static void release_if_unread(kn_graph *g, int v, const int *dropped, const int *readers)
{
    kn_value *val = &g->values[v];
    if (!dropped[v] || dropped[v] != readers[v] || val->is_input || !val->init || !val->init->data)
        return;
    kn_release_pages(val->init->data, val->init->nbytes);
    val->init->data = NULL; /* nothing may read it any more */
}

/* Initializers no node reads any more (the optimizer folded or fused them into new
 * ones) hold memory for nothing. */
static void release_orphans(kn_graph *g, const int *readers)
{
    for (int v = 0; v < g->n_values; v++) {
        kn_value *val = &g->values[v];
        if (readers[v] || val->is_input || !val->init || !val->init->data)
            continue;
        kn_release_pages(val->init->data, val->init->nbytes);
        val->init->data = NULL;
    }
}

void kn_model_release_file_pages(kn_model *m)
{
    for (int i = 0; i < m->n_maps; i++)
        madvise(m->maps[i].base, m->maps[i].size, MADV_DONTNEED);
}

int kn_model_prepare(kn_model *m, kn_error *err)
{
    if (!m->graph)
        return KN_OK;
    kn_graph *g = m->graph;
    size_t n = (size_t)(g->n_values ? g->n_values : 1);
    prep_state ps = {.dropped = calloc(n, sizeof(int)), .readers = calloc(n, sizeof(int))};
    int rc = (!ps.dropped || !ps.readers) ? kn_fail(err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    if (!rc) {
        count_readers(g, ps.readers);
        release_orphans(g, ps.readers);
        rc = prepare_graph(m, g, &ps, err);
    }
    free(ps.dropped);
    free(ps.readers);
    free(ps.done);
    if (!rc)
        kn_model_release_file_pages(m);
    return rc;
}
