/* validate.c - graph finalization: producer links, operator resolution, outer-scope
 * captures of subgraphs, definedness checks and topological sorting with cycle
 * detection.  After this a graph is ready to execute and is never modified. */
#include "ir/ir.h"
#include "ops/op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool value_defined(const kn_value *v)
{
    return v->is_input || v->init || v->producer >= 0 || v->is_outer;
}

/* Is `name` defined in g or one of its ancestors?  (Ancestors have producers set.) */
static bool defined_in_scope(const kn_graph *g, const char *name)
{
    for (; g; g = g->parent) {
        int id = kn_graph_find(g, name);
        if (id >= 0 && value_defined(&g->values[id]))
            return true;
    }
    return false;
}

static int set_producers(kn_graph *g, kn_error *err)
{
    for (int v = 0; v < g->n_values; v++)
        g->values[v].producer = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0)
                continue;
            kn_value *val = &g->values[v];
            if (val->producer >= 0 || val->is_input || val->init) {
                char lb[128];
                return kn_fail(err, KN_ERR_MODEL, "tensor '%s' is defined twice (again by node '%s')",
                               val->name, kn_node_label(g, n, lb, sizeof lb));
            }
            val->producer = i;
        }
    }
    return KN_OK;
}

static int append_unsupported(char *list, size_t len, const kn_node *n)
{
    char item[200];
    snprintf(item, sizeof item, "%s%s%s (opset %d)", n->domain[0] ? n->domain : "",
             n->domain[0] ? "." : "", n->op_type, n->opset);
    if (strstr(list, item))
        return 0;
    size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%s", used ? ", " : "", item);
    return 1;
}

static int resolve_ops(kn_graph *g, char *unsupported, size_t len, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        int64_t opset = kn_model_opset(g->model, n->domain);
        if (opset < 0) {
            char lb[128];
            return kn_fail(err, KN_ERR_MODEL, "node '%s' (%s) uses domain '%s' that the model does not import",
                           kn_node_label(g, n, lb, sizeof lb), n->op_type, n->domain);
        }
        n->opset = (int)opset;
        n->op = kn_op_find(n->domain, n->op_type, n->opset);
        if (!n->op) {
            append_unsupported(unsupported, len, n);
            continue;
        }
        if (n->op->check) {
            int rc = n->op->check(n, n->opset, err);
            if (rc) {
                char lb[128];
                return kn_error_prefix(err, "node '%s' (%s): ", kn_node_label(g, n, lb, sizeof lb),
                                       n->op_type);
            }
        }
    }
    return KN_OK;
}

static int finalize_rec(kn_graph *g, char *unsupported, size_t len, kn_error *err);

/* For subgraph s of a node in g: mark s's free names as outer captures (they must be
 * defined in g or above) and collect those defined in g itself as the node's
 * implicit inputs. */
static int collect_captures(kn_graph *g, kn_node *n, kn_graph *s, kn_error *err)
{
    for (int v = 0; v < s->n_values; v++) {
        kn_value *sv = &s->values[v];
        if (sv->is_input || sv->init || sv->producer >= 0)
            continue;
        if (!sv->is_outer && !defined_in_scope(g, sv->name))
            continue; /* reported as undefined inside finalize_rec(s) */
        sv->is_outer = true;
        int id = kn_graph_find(g, sv->name);
        if (id < 0 || !(g->values[id].is_input || g->values[id].init || g->values[id].producer >= 0)) {
            /* defined further up: g captures it too, so the node in g's parent that
             * owns g orders itself after the definition */
            if (id < 0 && (id = kn_graph_value(g, sv->name)) < 0)
                return kn_fail(err, KN_ERR_NOMEM, "out of memory");
            g->values[id].is_outer = true;
            continue;
        }
        bool seen = false;
        for (int k = 0; k < n->n_implicit; k++)
            seen |= n->implicit[k] == id;
        if (seen)
            continue;
        int *p = kn_arena_calloc(&g->model->arena, (size_t)n->n_implicit + 1, sizeof *p);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        if (n->n_implicit)
            memcpy(p, n->implicit, sizeof *p * (size_t)n->n_implicit);
        p[n->n_implicit++] = id;
        n->implicit = p;
    }
    return KN_OK;
}

static int finalize_subgraphs(kn_graph *g, char *unsupported, size_t len, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        for (int a = 0; a < n->n_attr; a++) {
            kn_attr *at = &n->attrs[a];
            int ng = at->type == KN_ATTR_GRAPH ? 1 : at->type == KN_ATTR_GRAPHS ? at->n : 0;
            for (int k = 0; k < ng; k++) {
                kn_graph *s = at->type == KN_ATTR_GRAPH ? at->g : at->graphs[k];
                if (!s)
                    continue;
                s->parent = g;
                int rc = finalize_rec(s, unsupported, len, err);
                if (rc)
                    return rc;
                rc = collect_captures(g, n, s, err);
                if (rc)
                    return rc;
            }
        }
    }
    return KN_OK;
}

static int check_defined(kn_graph *g, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0)
                continue;
            kn_value *val = &g->values[v];
            if (value_defined(val))
                continue;
            if (g->parent && defined_in_scope(g->parent, val->name)) {
                val->is_outer = true;
                continue;
            }
            char lb[128];
            return kn_fail(err, KN_ERR_MODEL, "node '%s' (%s) reads tensor '%s' that nothing defines",
                           kn_node_label(g, n, lb, sizeof lb), n->op_type, val->name);
        }
    }
    for (int k = 0; k < g->n_outputs; k++) {
        kn_value *val = &g->values[g->outputs[k]];
        if (value_defined(val))
            continue;
        if (g->parent && defined_in_scope(g->parent, val->name)) {
            val->is_outer = true;
            continue;
        }
        return kn_fail(err, KN_ERR_MODEL, "graph output '%s' is not produced by any node", val->name);
    }
    return KN_OK;
}

/* Edges producer -> consumer as compressed rows: the consumers of node p are
 * adj[off[p] .. off[p+1]), one entry per input edge (a node reading one value
 * twice appears twice, matching its in-degree). */
typedef struct node_edges {
    int *off, *adj;
} node_edges;

static int node_input_at(const kn_node *nd, int k)
{
    return k < nd->n_in ? nd->in[k] : nd->implicit[k - nd->n_in];
}

static int build_edges(const kn_graph *g, node_edges *e, int *indeg)
{
    int n = g->n_nodes;
    e->off = calloc((size_t)n + 1, sizeof *e->off);
    if (!e->off)
        return -1;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in + nd->n_implicit; k++) {
            int v = node_input_at(nd, k);
            int p = v >= 0 ? g->values[v].producer : -1;
            if (p < 0)
                continue;
            e->off[p + 1]++;
            indeg[i]++;
            total++;
        }
    }
    for (int i = 0; i < n; i++)
        e->off[i + 1] += e->off[i];
    e->adj = malloc(sizeof *e->adj * (total ? total : 1));
    int *fill = calloc((size_t)n + 1, sizeof *fill);
    if (!e->adj || !fill) {
        free(fill);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in + nd->n_implicit; k++) {
            int v = node_input_at(nd, k);
            int p = v >= 0 ? g->values[v].producer : -1;
            if (p >= 0)
                e->adj[e->off[p] + fill[p]++] = i;
        }
    }
    free(fill);
    return 0;
}

/* Kahn's algorithm over the producer->consumer edges: linear in nodes + edges. */
static int topo_sort(kn_graph *g, kn_error *err)
{
    int n = g->n_nodes;
    if (n == 0)
        return KN_OK;
    int *indeg = calloc((size_t)n, sizeof *indeg);
    int *order = calloc((size_t)n, sizeof *order);
    kn_node *sorted = kn_arena_calloc(&g->model->arena, (size_t)n, sizeof *sorted);
    node_edges e = {0};
    if (!indeg || !order || !sorted || build_edges(g, &e, indeg)) {
        free(indeg);
        free(order);
        free(e.off);
        free(e.adj);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (!indeg[i])
            order[tail++] = i;
    while (head < tail) {
        int i = order[head++];
        for (int k = e.off[i]; k < e.off[i + 1]; k++)
            if (--indeg[e.adj[k]] == 0)
                order[tail++] = e.adj[k];
    }
    int rc = KN_OK;
    if (tail < n) {
        int bad = 0;
        while (bad < n && !indeg[bad])
            bad++;
        char lb[128];
        rc = kn_fail(err, KN_ERR_MODEL, "graph '%s' has a cycle through node '%s' (%s)", g->name,
                     kn_node_label(g, &g->nodes[bad], lb, sizeof lb), g->nodes[bad].op_type);
    } else {
        for (int i = 0; i < n; i++)
            sorted[i] = g->nodes[order[i]];
        g->nodes = sorted;
        g->cap_nodes = n;
        set_producers(g, err);
    }
    free(indeg);
    free(order);
    free(e.off);
    free(e.adj);
    return rc;
}

#define MAX_INFER_IO 64

/* Static type/shape inference in topological order: values the file declares no
 * type for get the type their producer's infer function derives (symbolic dims
 * carried through).  Best effort: an op without infer, or one whose inference
 * fails, leaves its outputs untyped; run-time shapes are always authoritative. */
static void infer_types(kn_graph *g)
{
    static const kn_type unknown = {.kind = KN_TYPE_UNKNOWN, .rank = -1};
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        if (!n->op || !n->op->infer || n->n_in > MAX_INFER_IO || n->n_out > MAX_INFER_IO)
            continue;
        const kn_type *in[MAX_INFER_IO];
        const kn_tensor *cst[MAX_INFER_IO];
        kn_type out[MAX_INFER_IO];
        for (int k = 0; k < n->n_in; k++) {
            const kn_value *v = n->in[k] >= 0 ? &g->values[n->in[k]] : NULL;
            in[k] = !v ? NULL : v->has_type ? &v->type : &unknown;
            cst[k] = v && !v->is_input ? v->init : NULL;
        }
        for (int k = 0; k < n->n_out; k++)
            out[k] = unknown;
        kn_error err;
        kn_infer_ctx ic = {n, n->opset, n->n_in, in, cst, n->n_out, out, &err};
        if (n->op->infer(&ic) != KN_OK)
            continue;
        for (int k = 0; k < n->n_out; k++) {
            kn_value *v = n->out[k] >= 0 ? &g->values[n->out[k]] : NULL;
            if (!v || out[k].kind == KN_TYPE_UNKNOWN)
                continue;
            /* a declared type without a shape takes the inferred shape */
            bool refine = v->has_type && v->type.kind == out[k].kind && v->type.rank < 0 &&
                          out[k].rank >= 0 && v->type.dtype == out[k].dtype;
            if (v->has_type && !refine)
                continue;
            v->type = out[k];
            v->has_type = true;
            v->type_inferred = true;
        }
    }
}

static int finalize_rec(kn_graph *g, char *unsupported, size_t len, kn_error *err)
{
    int rc = set_producers(g, err);
    if (!rc)
        rc = resolve_ops(g, unsupported, len, err);
    if (!rc)
        rc = finalize_subgraphs(g, unsupported, len, err);
    if (!rc)
        rc = check_defined(g, err);
    if (!rc)
        rc = topo_sort(g, err);
    if (!rc && !unsupported[0])
        infer_types(g);
    return rc;
}

int kn_graph_finalize(kn_graph *g, kn_error *err)
{
    char unsupported[2048] = "";
    int rc = finalize_rec(g, unsupported, sizeof unsupported, err);
    if (rc)
        return rc;
    if (unsupported[0])
        return kn_fail(err, KN_ERR_UNSUPPORTED, "unsupported operators: %s", unsupported);
    return KN_OK;
}

int kn_model_finalize(kn_model *m, kn_error *err)
{
    if (!m->graph)
        return kn_fail(err, KN_ERR_MODEL, "model has no graph");
    if (kn_model_opset(m, "") < 0 && m->n_opsets == 0)
        return kn_fail(err, KN_ERR_MODEL, "model declares no opset_import");
    return kn_graph_finalize(m->graph, err);
}
