/* cse.c - common-subexpression elimination: two nodes with the same operator,
 * domain, inputs and attributes compute the same outputs, so the later one's readers
 * read the earlier one's outputs and the later node goes.  First, small constants
 * with equal contents are shared (readers of a repeated one read the first), which
 * makes the nodes reading repeated axes/shape/scalar constants duplicates too.  Random operators, nodes
 * with subgraphs and nodes whose duplicate outputs are pinned (graph outputs,
 * subgraph captures) are left alone.  Nodes are visited in topological order with a
 * hash table of the ones kept, so chains of duplicates collapse in one sweep. */
#include "opt/opt.h"

#include <stdlib.h>
#include <string.h>

static bool cse_candidate(const kn_node *n)
{
    static const char *const random_ops[] = {
        "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike",
        "Bernoulli", "Multinomial", "Dropout",
    };
    for (size_t k = 0; k < sizeof random_ops / sizeof random_ops[0]; k++)
        if (!strcmp(n->op_type, random_ops[k]))
            return false;
    for (int a = 0; a < n->n_attr; a++) {
        kn_attr_type t = n->attrs[a].type;
        if (t == KN_ATTR_GRAPH || t == KN_ATTR_GRAPHS || n->attrs[a].ref_attr_name)
            return false;
    }
    return n->n_out > 0;
}

static bool tensors_equal(const kn_tensor *a, const kn_tensor *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->kind != KN_VALUE_TENSOR || b->kind != KN_VALUE_TENSOR || a->dtype == KN_STRING ||
        a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes)
        return false;
    return !memcmp(a->dims, b->dims, sizeof *a->dims * (size_t)a->rank) &&
           (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

static bool attr_equal(const kn_attr *a, const kn_attr *b)
{
    if (a->type != b->type || strcmp(a->name, b->name))
        return false;
    switch (a->type) {
    case KN_ATTR_FLOAT: return !memcmp(&a->f, &b->f, sizeof a->f);
    case KN_ATTR_INT: return a->i == b->i;
    case KN_ATTR_STRING: return a->s_len == b->s_len && !memcmp(a->s, b->s, a->s_len);
    case KN_ATTR_TENSOR: return tensors_equal(a->t, b->t);
    case KN_ATTR_FLOATS: return a->n == b->n && !memcmp(a->floats, b->floats, sizeof *a->floats * (size_t)a->n);
    case KN_ATTR_INTS: return a->n == b->n && !memcmp(a->ints, b->ints, sizeof *a->ints * (size_t)a->n);
    case KN_ATTR_STRINGS:
        if (a->n != b->n)
            return false;
        for (int i = 0; i < a->n; i++)
            if (strcmp(a->strings[i], b->strings[i]))
                return false;
        return true;
    default: return false;
    }
}

static bool nodes_equal(const kn_node *a, const kn_node *b)
{
    if (strcmp(a->op_type, b->op_type) || strcmp(a->domain, b->domain) || a->n_in != b->n_in ||
        a->n_out != b->n_out || a->n_attr != b->n_attr || a->opset != b->opset)
        return false;
    if (a->n_in && memcmp(a->in, b->in, sizeof *a->in * (size_t)a->n_in))
        return false;
    for (int k = 0; k < a->n_out; k++)
        if ((a->out[k] < 0) != (b->out[k] < 0))
            return false;
    for (int i = 0; i < a->n_attr; i++) {
        bool found = false;
        for (int j = 0; j < b->n_attr && !found; j++)
            found = attr_equal(&a->attrs[i], &b->attrs[j]);
        if (!found)
            return false;
    }
    return true;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 1099511628211ull;
}

static uint64_t node_hash(const kn_node *n)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = n->op_type; *s; s++)
        h = mix(h, (unsigned char)*s);
    for (const char *s = n->domain; *s; s++)
        h = mix(h, (unsigned char)*s);
    h = mix(h, (uint64_t)n->n_attr);
    for (int k = 0; k < n->n_in; k++)
        h = mix(h, (uint64_t)(int64_t)n->in[k]);
    return h;
}

static bool outputs_pinned(const kn_graph *g, const kn_node *n)
{
    for (int k = 0; k < n->n_out; k++)
        if (kn_opt_value_is_pinned(g, n->out[k]))
            return true;
    return false;
}

/* Readers of `drop`'s outputs read `keep`'s instead, and `drop` goes. */
static void merge_into(kn_graph *g, int drop, int keep)
{
    const kn_node *a = &g->nodes[drop], *b = &g->nodes[keep];
    for (int k = 0; k < a->n_out; k++)
        if (a->out[k] >= 0)
            kn_opt_replace_uses(g, a->out[k], b->out[k]);
    kn_opt_delete_node(g, drop);
}

/* Node i duplicates the kept node *slot: merge whichever of the two has no pinned
 * outputs into the other (*slot becomes the survivor).  false if both are pinned. */
static bool merge_pair(kn_graph *g, int i, int *slot)
{
    if (!outputs_pinned(g, &g->nodes[i])) {
        merge_into(g, i, *slot);
        return true;
    }
    if (!outputs_pinned(g, &g->nodes[*slot])) {
        merge_into(g, *slot, i);
        *slot = i;
        return true;
    }
    return false;
}

/* Constants up to this size are shared by content (exporters repeat small ones:
 * axes, shapes, scalars), so that the nodes reading them become duplicates too. */
#define SHARE_MAX_BYTES 65536

static uint64_t tensor_hash(const kn_tensor *t)
{
    uint64_t h = mix(1469598103934665603ull, (uint64_t)t->dtype);
    for (int d = 0; d < t->rank; d++)
        h = mix(h, (uint64_t)t->dims[d]);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        h = mix(h, p[i]);
    return h;
}

static bool shareable(const kn_graph *g, int v)
{
    const kn_tensor *t = kn_opt_const(g, v);
    return t && t->kind == KN_VALUE_TENSOR && t->dtype != KN_STRING && t->nbytes <= SHARE_MAX_BYTES &&
           !kn_opt_value_is_pinned(g, v);
}

/* An empty open-addressing table (all -1) of a power-of-two *cap >= 2 n slots. */
static int *new_table(int n, int *cap, kn_error *err)
{
    *cap = 64;
    while (*cap < 2 * n)
        *cap *= 2;
    int *table = malloc(sizeof *table * (size_t)*cap);
    if (!table) {
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int s = 0; s < *cap; s++)
        table[s] = -1;
    return table;
}

/* Readers of a constant equal to an earlier one read the earlier one. */
static int share_constants(kn_graph *g, int *rewrites, kn_error *err)
{
    int cap;
    int *table = new_table(g->n_values, &cap, err);
    if (!table)
        return err->code;
    int *uses = kn_opt_use_counts(g, err);
    if (!uses) {
        free(table);
        return err->code;
    }
    for (int v = 0; v < g->n_values; v++) {
        if (!uses[v] || !shareable(g, v))
            continue;
        const kn_tensor *t = kn_opt_const(g, v);
        uint64_t s = tensor_hash(t) & (uint64_t)(cap - 1);
        for (; table[s] >= 0; s = (s + 1) & (uint64_t)(cap - 1))
            if (tensors_equal(t, kn_opt_const(g, table[s])))
                break;
        if (table[s] < 0)
            table[s] = v;
        else if (kn_opt_replace_uses(g, v, table[s]))
            (*rewrites)++;
    }
    free(uses);
    free(table);
    return KN_OK;
}

static int run_cse(kn_graph *g, int *rewrites, kn_error *err)
{
    int rc = share_constants(g, rewrites, err);
    if (rc)
        return rc;
    int cap;
    int *table = new_table(g->n_nodes, &cap, err);
    if (!table)
        return err->code;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (kn_opt_node_deleted(n) || !cse_candidate(n))
            continue;
        uint64_t s = node_hash(n) & (uint64_t)(cap - 1);
        bool merged = false;
        for (; table[s] >= 0 && !merged; s = (s + 1) & (uint64_t)(cap - 1))
            if (nodes_equal(n, &g->nodes[table[s]]))
                merged = merge_pair(g, i, &table[s]);
        if (merged)
            (*rewrites)++;
        else if (table[s] < 0)
            table[s] = i;
    }
    free(table);
    return KN_OK;
}

const kn_opt_pass kn_pass_cse = {"cse", KN_OPT_BASIC, run_cse};
