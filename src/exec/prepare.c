/* prepare.c - the compile step: once per loaded model, give every node whose
 * operator has a prepare hook the chance to precompute (prepacked weights, kernel
 * choice) from its constant inputs.  Results live in node->state, owned by the
 * model.  Subgraphs (If/Loop/Scan bodies) are prepared too.  Afterwards, memory
 * that running no longer needs goes back to the system: initializers every reader
 * declared replaced by its state (drop_inputs), and the file pages of the model
 * mapping (read-only and file-backed, so a later read simply faults them back in). */
#include "exec/exec.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int prepare_graph(kn_model *m, kn_graph *g, int *dropped, const int *readers, kn_error *err);
static void release_if_unread(kn_graph *g, int v, const int *dropped, const int *readers);
static void count_readers(const kn_graph *g, int *readers);

static int prepare_node(kn_model *m, kn_graph *g, kn_node *nd, int *dropped, const int *readers,
                        kn_error *err)
{
    char lb[160];
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
    for (int k = 0; k < nd->n_in && k < 32 && dropped; k++) {
        if ((pc.drop_inputs >> k & 1u) && consts[k]) {
            dropped[nd->in[k]]++;
            release_if_unread(g, nd->in[k], dropped, readers); /* at once: keeps the load's peak low */
        }
    }
    return KN_OK;
}

static int prepare_subgraphs(kn_model *m, kn_node *nd, kn_error *err)
{
    for (int a = 0; a < nd->n_attr; a++) {
        kn_attr *at = &nd->attrs[a];
        if (at->type == KN_ATTR_GRAPH && at->g && prepare_graph(m, at->g, NULL, NULL, err))
            return err->code;
        for (int k = 0; at->type == KN_ATTR_GRAPHS && k < at->n; k++)
            if (at->graphs[k] && prepare_graph(m, at->graphs[k], NULL, NULL, err))
                return err->code;
    }
    return KN_OK;
}

static int prepare_graph(kn_model *m, kn_graph *g, int *dropped, const int *readers, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *nd = &g->nodes[i];
        if (nd->op && nd->op->prepare && !nd->state && prepare_node(m, g, nd, dropped, readers, err))
            return err->code;
        if (prepare_subgraphs(m, nd, err))
            return err->code;
    }
    return KN_OK;
}

/* Give back the whole pages inside [p, p + n). */
static void release_pages(void *p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (page > 0 && hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
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
    release_pages(val->init->data, val->init->nbytes);
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
        release_pages(val->init->data, val->init->nbytes);
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
    int *dropped = calloc(n, sizeof *dropped), *readers = calloc(n, sizeof *readers);
    int rc = (!dropped || !readers) ? kn_fail(err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    if (!rc) {
        count_readers(g, readers);
        release_orphans(g, readers);
        rc = prepare_graph(m, g, dropped, readers, err);
    }
    free(dropped);
    free(readers);
    if (!rc)
        kn_model_release_file_pages(m);
    return rc;
}
