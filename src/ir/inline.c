/* inline.c - inlining of model-local functions (FunctionProto).
 *
 * Every node whose (domain, op_type) names a model-local function is replaced by
 * a copy of the function body: formal inputs/outputs become the call's actual
 * values (a missing optional input becomes -1), every other body value gets a
 * unique name "<call>#<k>/<name>", attributes with ref_attr_name take the call's
 * attribute of that name (or the function's default, else they are dropped), and
 * subgraphs inside the body are deep-copied with their captured names renamed the
 * same way.  Calls inside bodies and inside subgraphs are inlined too; recursive
 * functions are rejected and expansion is capped in depth and total size. */
#include "ir/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_INLINED_NODES (1 << 20)

typedef struct inliner {
    kn_model *m;
    kn_error *err;
    int counter;       /* makes call prefixes unique */
    long inlined;      /* body nodes emitted so far */
    int *fhash;        /* (domain, name) -> function index, open addressing */
    int fhash_cap;
} inliner;

/* How names of one expanded function body map into the caller's graph. */
typedef struct call_ctx {
    const kn_node *call;
    const kn_function *fn;
    const kn_graph *body;
    const int *map;        /* body value id -> caller value id (-1: omitted) */
    const kn_graph *target;
} call_ctx;

typedef struct node_list {
    kn_node *v;
    int n, cap;
} node_list;

static int oom(inliner *in)
{
    return kn_fail(in->err, KN_ERR_NOMEM, "out of memory");
}

static uint64_t hash_call(const char *domain, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = domain; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* Index the functions by (domain, name); the first of duplicates wins. */
static int build_index(inliner *in)
{
    const kn_model *m = in->m;
    int cap = 16;
    while (cap < 2 * m->n_functions)
        cap *= 2;
    in->fhash = malloc(sizeof *in->fhash * (size_t)cap);
    if (!in->fhash)
        return oom(in);
    in->fhash_cap = cap;
    for (int i = 0; i < cap; i++)
        in->fhash[i] = -1;
    for (int f = 0; f < m->n_functions; f++) {
        const kn_function *fn = &m->functions[f];
        if (!fn->body)
            continue;
        uint64_t k = hash_call(fn->domain, fn->name) & (uint64_t)(cap - 1);
        bool dup = false;
        while (in->fhash[k] >= 0 && !dup) {
            const kn_function *o = &m->functions[in->fhash[k]];
            dup = !strcmp(o->name, fn->name) && !strcmp(o->domain, fn->domain);
            k = (k + 1) & (uint64_t)(cap - 1);
        }
        if (!dup)
            in->fhash[k] = f;
    }
    return KN_OK;
}

/* Index of the model-local function node n calls, or -1. */
static int find_function_index(const inliner *in, const kn_node *n)
{
    if (!in->fhash)
        return -1;
    uint64_t k = hash_call(n->domain, n->op_type) & (uint64_t)(in->fhash_cap - 1);
    while (in->fhash[k] >= 0) {
        const kn_function *fn = &in->m->functions[in->fhash[k]];
        if (!strcmp(fn->name, n->op_type) && !strcmp(fn->domain, n->domain))
            return in->fhash[k];
        k = (k + 1) & (uint64_t)(in->fhash_cap - 1);
    }
    return -1;
}

static const kn_function *find_function(const inliner *in, const kn_node *n)
{
    int f = find_function_index(in, n);
    return f >= 0 ? &in->m->functions[f] : NULL;
}

static int push_node(inliner *in, node_list *l, const kn_node *n)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 32;
        kn_node *p = realloc(l->v, sizeof *p * (size_t)cap);
        if (!p)
            return oom(in);
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = *n;
    return KN_OK;
}

/* ---- recursion check over the function call graph ---- */

static int check_recursion(inliner *in, int f, int *colour, int depth);

/* Visit every function called from g (and its subgraphs). */
static int check_calls_in(inliner *in, const kn_graph *g, int *colour, int depth, int gdepth)
{
    if (gdepth > MAX_DEPTH)
        return kn_fail(in->err, KN_ERR_MODEL, "graphs nested more than %d deep", MAX_DEPTH);
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        int k = find_function_index(in, n);
        int rc = k >= 0 ? check_recursion(in, k, colour, depth + 1) : KN_OK;
        for (int a = 0; !rc && a < n->n_attr; a++) {
            const kn_attr *at = &n->attrs[a];
            if (at->type == KN_ATTR_GRAPH && at->g)
                rc = check_calls_in(in, at->g, colour, depth, gdepth + 1);
            for (int j = 0; !rc && at->type == KN_ATTR_GRAPHS && j < at->n; j++)
                if (at->graphs[j])
                    rc = check_calls_in(in, at->graphs[j], colour, depth, gdepth + 1);
        }
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* DFS with colours: 1 = on the stack, 2 = done.  Each function is walked once. */
static int check_recursion(inliner *in, int f, int *colour, int depth)
{
    const kn_model *m = in->m;
    if (colour[f] == 2)
        return KN_OK;
    if (colour[f] == 1)
        return kn_fail(in->err, KN_ERR_MODEL, "function '%s' calls itself (recursion)", m->functions[f].name);
    if (depth > MAX_DEPTH)
        return kn_fail(in->err, KN_ERR_MODEL, "function calls nested more than %d deep", MAX_DEPTH);
    colour[f] = 1;
    int rc = check_calls_in(in, m->functions[f].body, colour, depth, 0);
    colour[f] = 2;
    return rc;
}

/* ---- copying ---- */

static kn_graph *copy_graph(inliner *in, const kn_graph *src, kn_graph *parent, const call_ctx *cx);

/* Name in the caller for a name used inside the body (or a subgraph of it). */
static const char *rename_free(const call_ctx *cx, const char *name)
{
    if (!cx)
        return name;
    int id = kn_graph_find(cx->body, name);
    if (id < 0 || cx->map[id] < 0)
        return name;
    return cx->target->values[cx->map[id]].name;
}

static const kn_attr *find_attr(const kn_attr *attrs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (attrs[i].name && !strcmp(attrs[i].name, name))
            return &attrs[i];
    return NULL;
}

/* Copy one attribute value; subgraphs are deep-copied under `parent`. */
static int copy_attr_value(inliner *in, kn_attr *dst, const kn_attr *src, kn_graph *parent,
                           const call_ctx *cx)
{
    *dst = *src;
    if (src->type == KN_ATTR_GRAPH && src->g) {
        if (!(dst->g = copy_graph(in, src->g, parent, cx)))
            return in->err->code ? in->err->code : oom(in);
    } else if (src->type == KN_ATTR_GRAPHS && src->n > 0) {
        dst->graphs = kn_arena_calloc(&in->m->arena, (size_t)src->n, sizeof *dst->graphs);
        if (!dst->graphs)
            return oom(in);
        for (int k = 0; k < src->n; k++)
            if (src->graphs[k] && !(dst->graphs[k] = copy_graph(in, src->graphs[k], parent, cx)))
                return in->err->code ? in->err->code : oom(in);
    }
    return KN_OK;
}

/* Attributes of a body node: references resolved against the call. */
static int copy_attrs(inliner *in, kn_node *dst, const kn_node *src, kn_graph *parent, const call_ctx *cx)
{
    dst->n_attr = 0;
    dst->attrs = kn_arena_calloc(&in->m->arena, (size_t)src->n_attr, sizeof(kn_attr));
    if (!dst->attrs)
        return oom(in);
    for (int a = 0; a < src->n_attr; a++) {
        const kn_attr *sa = &src->attrs[a];
        kn_attr *da = &dst->attrs[dst->n_attr];
        int rc;
        if (sa->ref_attr_name && cx) {
            const kn_attr *v = find_attr(cx->call->attrs, cx->call->n_attr, sa->ref_attr_name);
            if (!v)
                v = find_attr(cx->fn->attr_defaults, cx->fn->n_attr_defaults, sa->ref_attr_name);
            if (!v)
                continue; /* neither given nor defaulted: the attribute is absent */
            if ((rc = copy_attr_value(in, da, v, parent, NULL)))
                return rc;
            da->name = sa->name;
            da->ref_attr_name = NULL;
        } else if ((rc = copy_attr_value(in, da, sa, parent, cx))) {
            return rc;
        }
        dst->n_attr++;
    }
    return KN_OK;
}

static int *copy_ids(inliner *in, const int *src, int n, const int *map)
{
    int *p = kn_arena_calloc(&in->m->arena, (size_t)n, sizeof *p);
    if (p)
        for (int i = 0; i < n; i++)
            p[i] = src[i] < 0 ? -1 : map[src[i]];
    return p;
}

/* Deep copy of a subgraph of a function body: local names kept, captured names
 * of the body renamed into the caller.  NULL on failure (err set). */
static kn_graph *copy_graph(inliner *in, const kn_graph *src, kn_graph *parent, const call_ctx *cx)
{
    kn_error *err = in->err;
    kn_graph *dst = kn_graph_new(in->m, parent);
    bool *local = calloc((size_t)src->n_values + 1, sizeof *local);
    int *map = calloc((size_t)src->n_values + 1, sizeof *map);
    if (!dst || !local || !map)
        goto nomem;
    dst->name = src->name;
    for (int i = 0; i < src->n_nodes; i++)
        for (int k = 0; k < src->nodes[i].n_out; k++)
            if (src->nodes[i].out[k] >= 0)
                local[src->nodes[i].out[k]] = true;
    for (int v = 0; v < src->n_values; v++) {
        const kn_value *sv = &src->values[v];
        bool loc = local[v] || sv->is_input || sv->init;
        if ((map[v] = kn_graph_value(dst, loc ? sv->name : rename_free(cx, sv->name))) < 0)
            goto nomem;
        kn_value *dv = &dst->values[map[v]];
        dv->type = sv->type;
        dv->has_type = sv->has_type;
        dv->init = sv->init;
    }
    for (int k = 0; k < src->n_inputs; k++)
        if (kn_graph_add_input(dst, map[src->inputs[k]]))
            goto nomem;
    for (int k = 0; k < src->n_outputs; k++)
        if (kn_graph_add_output(dst, map[src->outputs[k]]))
            goto nomem;
    for (int i = 0; i < src->n_nodes; i++) {
        const kn_node *sn = &src->nodes[i];
        kn_node nd = *sn;
        nd.in = copy_ids(in, sn->in, sn->n_in, map);
        nd.out = copy_ids(in, sn->out, sn->n_out, map);
        if (!nd.in || !nd.out)
            goto nomem;
        if (copy_attrs(in, &nd, sn, dst, cx))
            goto fail;
        kn_node *n = kn_graph_add_node(dst);
        if (!n)
            goto nomem;
        *n = nd;
    }
    free(local);
    free(map);
    return dst;
nomem:
    kn_fail(err, KN_ERR_NOMEM, "out of memory");
fail:
    free(local);
    free(map);
    return NULL;
}

/* ---- expansion ---- */

static int inline_graph(inliner *in, kn_graph *g, int depth);
static int emit(inliner *in, kn_graph *g, node_list *out, const kn_node *n, int depth);

static int index_of(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(names[i], name))
            return i;
    return -1;
}

/* Map every value of the body to a value of g. */
static int map_body_values(inliner *in, kn_graph *g, const kn_node *call, const kn_function *fn,
                           const char *prefix, int *map)
{
    const kn_graph *body = fn->body;
    for (int v = 0; v < body->n_values; v++) {
        const char *name = body->values[v].name;
        int k = index_of(fn->inputs, fn->n_inputs, name);
        if (k >= 0) {
            map[v] = k < call->n_in ? call->in[k] : -1;
            continue;
        }
        k = index_of(fn->outputs, fn->n_outputs, name);
        if (k >= 0 && k < call->n_out && call->out[k] >= 0) {
            map[v] = call->out[k];
            continue;
        }
        size_t len = strlen(prefix) + strlen(name) + 1;
        char *full = malloc(len);
        if (!full)
            return oom(in);
        snprintf(full, len, "%s%s", prefix, name);
        map[v] = kn_graph_value(g, full);
        free(full);
        if (map[v] < 0)
            return oom(in);
    }
    return KN_OK;
}

/* A formal output that is also a formal input (the body passes it straight
 * through) becomes an Identity from the actual input to the actual output. */
static int passthrough_output(inliner *in, node_list *out, const kn_node *call, const kn_function *fn,
                              int k)
{
    int i = index_of(fn->inputs, fn->n_inputs, fn->outputs[k]);
    if (i < 0 || call->out[k] < 0)
        return KN_OK;
    kn_node nd;
    memset(&nd, 0, sizeof nd);
    nd.name = "";
    nd.op_type = "Identity";
    nd.domain = "";
    nd.n_in = nd.n_out = 1;
    nd.in = kn_arena_calloc(&in->m->arena, 1, sizeof(int));
    nd.out = kn_arena_calloc(&in->m->arena, 1, sizeof(int));
    nd.attrs = kn_arena_calloc(&in->m->arena, 1, sizeof(kn_attr));
    if (!nd.in || !nd.out || !nd.attrs)
        return oom(in);
    nd.in[0] = i < call->n_in ? call->in[i] : -1;
    nd.out[0] = call->out[k];
    if (nd.in[0] < 0)
        return kn_fail(in->err, KN_ERR_MODEL, "function output '%s' passes through a missing input",
                       fn->outputs[k]);
    return push_node(in, out, &nd);
}

static int expand_call(inliner *in, kn_graph *g, node_list *out, const kn_node *call,
                       const kn_function *fn, int depth)
{
    if (depth >= MAX_DEPTH)
        return kn_fail(in->err, KN_ERR_MODEL, "function calls nested more than %d deep", MAX_DEPTH);
    const kn_graph *body = fn->body;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%.200s#%d/", call->name[0] ? call->name : call->op_type,
             in->counter++);
    int *map = calloc((size_t)body->n_values + 1, sizeof *map);
    if (!map)
        return oom(in);
    int rc = map_body_values(in, g, call, fn, prefix, map);
    call_ctx cx = {call, fn, body, map, g};
    for (int i = 0; !rc && i < body->n_nodes; i++) {
        if (++in->inlined > MAX_INLINED_NODES) {
            rc = kn_fail(in->err, KN_ERR_MODEL, "inlining functions yields more than %d nodes",
                         MAX_INLINED_NODES);
            break;
        }
        const kn_node *bn = &body->nodes[i];
        kn_node nd = *bn;
        nd.in = copy_ids(in, bn->in, bn->n_in, map);
        nd.out = copy_ids(in, bn->out, bn->n_out, map);
        if (!nd.in || !nd.out) {
            rc = oom(in);
            break;
        }
        if (bn->name[0]) {
            size_t len = strlen(prefix) + strlen(bn->name) + 1;
            char *nm = kn_arena_alloc(&in->m->arena, len);
            if (!nm) {
                rc = oom(in);
                break;
            }
            snprintf(nm, len, "%s%s", prefix, bn->name);
            nd.name = nm;
        }
        if (!(rc = copy_attrs(in, &nd, bn, g, &cx)))
            rc = emit(in, g, out, &nd, depth + 1);
    }
    for (int k = 0; !rc && k < fn->n_outputs && k < call->n_out; k++)
        rc = passthrough_output(in, out, call, fn, k);
    free(map);
    return rc;
}

static int emit(inliner *in, kn_graph *g, node_list *out, const kn_node *n, int depth)
{
    const kn_function *fn = find_function(in, n);
    if (fn) {
        int rc = expand_call(in, g, out, n, fn, depth);
        if (rc) {
            char lb[128];
            return kn_error_prefix(in->err, "inlining function '%s' at node '%s': ", fn->name,
                                   kn_node_label(NULL, n, lb, sizeof lb));
        }
        return KN_OK;
    }
    for (int a = 0; a < n->n_attr; a++) {
        const kn_attr *at = &n->attrs[a];
        int rc = KN_OK;
        if (at->type == KN_ATTR_GRAPH && at->g)
            rc = inline_graph(in, at->g, depth + 1);
        for (int k = 0; !rc && at->type == KN_ATTR_GRAPHS && k < at->n; k++)
            if (at->graphs[k])
                rc = inline_graph(in, at->graphs[k], depth + 1);
        if (rc)
            return rc;
    }
    return push_node(in, out, n);
}

static bool graph_has_calls(const inliner *in, const kn_graph *g, int depth)
{
    if (depth > MAX_DEPTH)
        return false;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (find_function_index(in, n) >= 0)
            return true;
        for (int a = 0; a < n->n_attr; a++) {
            const kn_attr *at = &n->attrs[a];
            if (at->type == KN_ATTR_GRAPH && at->g && graph_has_calls(in, at->g, depth + 1))
                return true;
            for (int k = 0; at->type == KN_ATTR_GRAPHS && k < at->n; k++)
                if (at->graphs[k] && graph_has_calls(in, at->graphs[k], depth + 1))
                    return true;
        }
    }
    return false;
}

static int inline_graph(inliner *in, kn_graph *g, int depth)
{
    if (depth > 2 * MAX_DEPTH)
        return kn_fail(in->err, KN_ERR_MODEL, "graphs nested too deeply");
    if (!graph_has_calls(in, g, 0))
        return KN_OK;
    node_list out = {NULL, 0, 0};
    int n = g->n_nodes, rc = KN_OK;
    kn_node *orig = g->nodes;
    for (int i = 0; !rc && i < n; i++)
        rc = emit(in, g, &out, &orig[i], depth);
    if (!rc) {
        kn_node *nodes = kn_arena_calloc(&in->m->arena, (size_t)out.n, sizeof *nodes);
        if (!nodes) {
            rc = oom(in);
        } else {
            if (out.n)
                memcpy(nodes, out.v, sizeof *nodes * (size_t)out.n);
            g->nodes = nodes;
            g->n_nodes = g->cap_nodes = out.n;
        }
    }
    free(out.v);
    return rc;
}

/* Add the domains that functions import but the model does not. */
static int merge_opsets(inliner *in)
{
    kn_model *m = in->m;
    for (int f = 0; f < m->n_functions; f++) {
        const kn_function *fn = &m->functions[f];
        for (int k = 0; k < fn->n_opsets; k++) {
            const char *d = fn->opsets[k].domain ? fn->opsets[k].domain : "";
            if (kn_model_opset(m, d) >= 0)
                continue;
            kn_opset_import *p = kn_arena_calloc(&m->arena, (size_t)m->n_opsets + 1, sizeof *p);
            if (!p)
                return oom(in);
            if (m->n_opsets)
                memcpy(p, m->opsets, sizeof *p * (size_t)m->n_opsets);
            p[m->n_opsets].domain = d;
            p[m->n_opsets].version = fn->opsets[k].version;
            m->opsets = p;
            m->n_opsets++;
        }
    }
    return KN_OK;
}

int kn_inline_functions(kn_model *m, kn_error *err)
{
    kn_error local;
    inliner in = {m, err ? err : &local, 0, 0, NULL, 0};
    if (m->n_functions == 0 || !m->graph)
        return KN_OK;
    kn_error_clear(in.err);
    int rc = build_index(&in);
    if (rc)
        return rc;
    int *colour = calloc((size_t)m->n_functions, sizeof *colour);
    if (!colour) {
        free(in.fhash);
        return oom(&in);
    }
    for (int f = 0; !rc && f < m->n_functions; f++)
        if (m->functions[f].body)
            rc = check_recursion(&in, f, colour, 0);
    free(colour);
    if (!rc)
        rc = merge_opsets(&in);
    if (!rc)
        rc = inline_graph(&in, m->graph, 0);
    free(in.fhash);
    return rc;
}
