/* graph.c - building models and graphs: value table with a name hash, node and
 * input/output lists, model-owned file mappings. */
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>

kn_model *kn_model_new(void)
{
    kn_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    kn_arena_init(&m->arena);
    return m;
}

void kn_model_free(kn_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_owned; i++)
        m->owned[i].release(m->owned[i].state);
    free(m->owned);
    for (int i = 0; i < m->n_maps; i++)
        munmap(m->maps[i].base, m->maps[i].size);
    free(m->maps);
    free(m->owned_buffer);
    kn_arena_free(&m->arena);
    free(m);
}

int kn_model_own_state(kn_model *m, void *state, void (*release)(void *), kn_error *err)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 16;
        kn_owned_state *p = realloc(m->owned, sizeof *p * (size_t)cap);
        if (!p) {
            release(state);
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        }
        m->owned = p;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned].state = state;
    m->owned[m->n_owned].release = release;
    m->n_owned++;
    return KN_OK;
}

int kn_model_add_mapping(kn_model *m, void *base, size_t size, kn_error *err)
{
    if (m->n_maps == m->cap_maps) {
        int cap = m->cap_maps ? m->cap_maps * 2 : 4;
        kn_mapping *p = realloc(m->maps, sizeof *p * (size_t)cap);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        m->maps = p;
        m->cap_maps = cap;
    }
    m->maps[m->n_maps].base = base;
    m->maps[m->n_maps].size = size;
    m->n_maps++;
    return KN_OK;
}

int64_t kn_model_opset(const kn_model *m, const char *domain)
{
    if (!domain || !strcmp(domain, "ai.onnx"))
        domain = "";
    for (int i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain ? m->opsets[i].domain : "";
        if (!strcmp(d, "ai.onnx"))
            d = "";
        if (!strcmp(d, domain))
            return m->opsets[i].version;
    }
    return -1;
}

kn_graph *kn_graph_new(kn_model *m, kn_graph *parent)
{
    kn_graph *g = kn_arena_alloc(&m->arena, sizeof *g);
    if (!g)
        return NULL;
    g->model = m;
    g->parent = parent;
    g->name = "";
    return g;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int hash_rebuild(kn_graph *g, int cap)
{
    int *h = kn_arena_calloc(&g->model->arena, (size_t)cap, sizeof *h);
    if (!h)
        return -1;
    for (int i = 0; i < cap; i++)
        h[i] = -1;
    for (int v = 0; v < g->n_values; v++) {
        uint64_t k = hash_name(g->values[v].name) & (uint64_t)(cap - 1);
        while (h[k] >= 0)
            k = (k + 1) & (uint64_t)(cap - 1);
        h[k] = v;
    }
    g->hash = h;
    g->hash_cap = cap;
    return 0;
}

int kn_graph_find(const kn_graph *g, const char *name)
{
    if (!g->hash_cap)
        return -1;
    uint64_t k = hash_name(name) & (uint64_t)(g->hash_cap - 1);
    while (g->hash[k] >= 0) {
        if (!strcmp(g->values[g->hash[k]].name, name))
            return g->hash[k];
        k = (k + 1) & (uint64_t)(g->hash_cap - 1);
    }
    return -1;
}

int kn_graph_value(kn_graph *g, const char *name)
{
    int id = kn_graph_find(g, name);
    if (id >= 0)
        return id;
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 64;
        kn_value *nv = kn_arena_calloc(&g->model->arena, (size_t)cap, sizeof *nv);
        if (!nv)
            return -1;
        if (g->n_values)
            memcpy(nv, g->values, sizeof *nv * (size_t)g->n_values);
        g->values = nv;
        g->cap_values = cap;
    }
    if ((g->n_values + 1) * 2 > g->hash_cap && hash_rebuild(g, g->hash_cap ? g->hash_cap * 2 : 128))
        return -1;
    kn_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = kn_arena_strdup(&g->model->arena, name);
    if (!v->name)
        return -1;
    v->producer = -1;
    v->type.rank = -1;
    id = g->n_values++;
    uint64_t k = hash_name(name) & (uint64_t)(g->hash_cap - 1);
    while (g->hash[k] >= 0)
        k = (k + 1) & (uint64_t)(g->hash_cap - 1);
    g->hash[k] = id;
    return id;
}

kn_node *kn_graph_add_node(kn_graph *g)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 32;
        kn_node *nn = kn_arena_calloc(&g->model->arena, (size_t)cap, sizeof *nn);
        if (!nn)
            return NULL;
        if (g->n_nodes)
            memcpy(nn, g->nodes, sizeof *nn * (size_t)g->n_nodes);
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    kn_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->name = "";
    n->domain = "";
    n->op_type = "";
    return n;
}

static int append_id(kn_arena *a, int **arr, int *n, int id)
{
    /* lists are short; grow by copying at powers of two */
    if ((*n & (*n - 1)) == 0) {
        int cap = *n ? *n * 2 : 4;
        int *p = kn_arena_calloc(a, (size_t)cap, sizeof *p);
        if (!p)
            return KN_ERR_NOMEM;
        if (*n)
            memcpy(p, *arr, sizeof *p * (size_t)*n);
        *arr = p;
    }
    (*arr)[(*n)++] = id;
    return KN_OK;
}

int kn_graph_add_input(kn_graph *g, int value_id)
{
    g->values[value_id].is_input = true;
    return append_id(&g->model->arena, &g->inputs, &g->n_inputs, value_id);
}

int kn_graph_add_output(kn_graph *g, int value_id)
{
    return append_id(&g->model->arena, &g->outputs, &g->n_outputs, value_id);
}

const char *kn_node_label(const kn_graph *g, const kn_node *n, char *buf, size_t len)
{
    if (n->name && n->name[0])
        snprintf(buf, len, "%s", n->name);
    else
        snprintf(buf, len, "%s#%d", n->op_type, g ? (int)(n - g->nodes) : 0);
    return buf;
}
