/* memplan.c - liveness-based arena plans for intermediate tensors (see memplan.h). */
#include "exec/memplan.h"

#include "core/bigalloc.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64

static void plan_free(kn_mem_plan *p)
{
    if (!p)
        return;
    free(p->sig);
    free(p->offset);
    free(p->size);
    free(p->alias);
    free(p->view_offset);
    free(p);
}

static void compute_last_use(kn_exec_cache *c, const kn_graph *g)
{
    for (int v = 0; v < g->n_values; v++)
        c->last_use[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in + nd->n_implicit; k++) {
            int v = k < nd->n_in ? nd->in[k] : nd->implicit[k - nd->n_in];
            if (v >= 0)
                c->last_use[v] = i;
        }
    }
    for (int k = 0; k < g->n_outputs; k++)
        c->is_output[g->outputs[k]] = true;
}

int kn_exec_cache_init(kn_exec_cache *c, const kn_graph *g, kn_error *err)
{
    memset(c, 0, sizeof *c);
    size_t n = (size_t)(g->n_values ? g->n_values : 1);
    c->g = g;
    c->n_values = g->n_values;
    c->vals = calloc(n, sizeof *c->vals);
    c->present = calloc(n, sizeof *c->present);
    c->uses = calloc(n, sizeof *c->uses);
    c->last_use = calloc(n, sizeof *c->last_use);
    c->is_output = calloc(n, sizeof *c->is_output);
    c->rec_bytes = calloc(n, sizeof *c->rec_bytes);
    c->rec_alias = calloc(n, sizeof *c->rec_alias);
    if (!c->vals || !c->present || !c->uses || !c->last_use || !c->is_output || !c->rec_bytes ||
        !c->rec_alias) {
        kn_exec_cache_free(c);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    }
    compute_last_use(c, g);
    return KN_OK;
}

void kn_exec_cache_free(kn_exec_cache *c)
{
    if (!c)
        return;
    free(c->vals);
    free(c->present);
    free(c->uses);
    free(c->last_use);
    free(c->is_output);
    free(c->rec_bytes);
    free(c->rec_alias);
    for (int i = 0; i < c->n_plans; i++)
        plan_free(c->plans[i]);
    kn_big_free(c->arena);
    memset(c, 0, sizeof *c);
}

void kn_plan_record_start(kn_exec_cache *c)
{
    for (int v = 0; v < c->n_values; v++) {
        c->rec_bytes[v] = 0;
        c->rec_alias[v] = -1;
    }
}

void *kn_plan_address(const kn_mem_plan *p, int v)
{
    if (p->offset[v] != KN_PLAN_NONE)
        return (char *)p->arena + p->offset[v];
    if (p->alias[v] >= 0)
        return (char *)p->arena + p->view_offset[v];
    return NULL;
}

int kn_plan_signature(int n_in, const kn_tensor *const *inputs, int64_t *sig, int max)
{
    int n = 0;
    for (int i = 0; i < n_in; i++) {
        const kn_tensor *t = inputs[i];
        int need = t ? 2 + t->rank : 1;
        if (n + need > max)
            return -1;
        if (!t) {
            sig[n++] = -1;
            continue;
        }
        sig[n++] = t->dtype;
        sig[n++] = t->rank;
        for (int d = 0; d < t->rank; d++)
            sig[n++] = t->dims[d];
    }
    return n;
}

kn_mem_plan *kn_plan_find(kn_exec_cache *c, const int64_t *sig, int n_sig)
{
    for (int i = 0; i < c->n_plans; i++) {
        kn_mem_plan *p = c->plans[i];
        if (p->n_sig == n_sig && !memcmp(p->sig, sig, sizeof *sig * (size_t)n_sig)) {
            p->last_used = ++c->clock;
            return p;
        }
    }
    return NULL;
}

/* A value to place: bytes and live interval [def, last] in node steps. */
typedef struct placed {
    int v, def, last;
    size_t bytes, offset;
} placed;

static int by_size_desc(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->v - y->v;
}

static int by_offset(const void *a, const void *b)
{
    const placed *x = *(placed *const *)a, *y = *(placed *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Lowest offset for item it among the already placed items [0, it) whose
 * intervals overlap it; overlap is a scratch array of pointers. */
static size_t lowest_fit(placed *items, int it, placed **overlap)
{
    int n = 0;
    for (int j = 0; j < it; j++)
        if (!(items[j].last < items[it].def || items[it].last < items[j].def))
            overlap[n++] = &items[j];
    qsort(overlap, (size_t)n, sizeof *overlap, by_offset);
    size_t off = 0;
    for (int j = 0; j < n; j++) {
        if (overlap[j]->offset >= off + items[it].bytes)
            break;
        size_t end = overlap[j]->offset + overlap[j]->bytes;
        if (end > off)
            off = end;
    }
    return off;
}

static bool slot_candidate(const kn_exec_cache *c, int v)
{
    return c->rec_bytes[v] && !c->is_output[v] && c->g->values[v].producer >= 0;
}

/* Resolve view candidates in node order: root[v] is the value whose slot v shares
 * (v itself when it has its own), and last[root] grows to cover every view's readers.
 * A view joins only a slot candidate and never a graph output. */
static void resolve_views(const kn_exec_cache *c, int *root, int *last)
{
    const kn_graph *g = c->g;
    for (int v = 0; v < c->n_values; v++) {
        root[v] = v;
        int def = g->values[v].producer;
        last[v] = c->last_use[v] > def ? c->last_use[v] : def;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_out; k++) {
            int y = nd->out[k];
            int x = y >= 0 ? c->rec_alias[y] : -1;
            if (x < 0 || c->is_output[y] || !slot_candidate(c, root[x]))
                continue;
            root[y] = root[x];
            if (last[y] > last[root[y]])
                last[root[y]] = last[y];
        }
    }
}

static int collect_items(const kn_exec_cache *c, const int *root, const int *last, placed *items)
{
    int n = 0;
    for (int v = 0; v < c->n_values; v++) {
        if (root[v] != v || !slot_candidate(c, v))
            continue;
        placed *p = &items[n++];
        p->v = v;
        p->def = c->g->values[v].producer;
        p->last = last[v];
        p->bytes = (c->rec_bytes[v] + ALIGN - 1) & ~(size_t)(ALIGN - 1);
        p->offset = 0;
    }
    return n;
}

static void record_views(const kn_exec_cache *c, const int *root, kn_mem_plan *p)
{
    for (int v = 0; v < c->n_values; v++) {
        if (root[v] == v || p->offset[root[v]] == KN_PLAN_NONE)
            continue;
        p->alias[v] = c->rec_alias[v];
        p->view_offset[v] = p->offset[root[v]];
    }
}

static kn_mem_plan *plan_alloc(const kn_exec_cache *c, const int64_t *sig, int n_sig)
{
    kn_mem_plan *p = calloc(1, sizeof *p);
    size_t nv = (size_t)(c->n_values ? c->n_values : 1);
    if (!p)
        return NULL;
    p->sig = malloc(sizeof *sig * (size_t)(n_sig ? n_sig : 1));
    p->offset = malloc(sizeof *p->offset * nv);
    p->size = calloc(nv, sizeof *p->size);
    p->alias = malloc(sizeof *p->alias * nv);
    p->view_offset = calloc(nv, sizeof *p->view_offset);
    if (!p->sig || !p->offset || !p->size || !p->alias || !p->view_offset) {
        plan_free(p);
        return NULL;
    }
    memcpy(p->sig, sig, sizeof *sig * (size_t)n_sig);
    p->n_sig = n_sig;
    for (size_t v = 0; v < nv; v++) {
        p->offset[v] = KN_PLAN_NONE;
        p->alias[v] = -1;
    }
    return p;
}

static int place_all(kn_mem_plan *p, placed *items, int n)
{
    placed **overlap = malloc(sizeof *overlap * (size_t)(n ? n : 1));
    if (!overlap)
        return -1;
    qsort(items, (size_t)n, sizeof *items, by_size_desc);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        items[i].offset = lowest_fit(items, i, overlap);
        p->offset[items[i].v] = items[i].offset;
        p->size[items[i].v] = items[i].bytes;
        if (items[i].offset + items[i].bytes > total)
            total = items[i].offset + items[i].bytes;
    }
    free(overlap);
    p->arena_bytes = total;
    return 0;
}

static void cache_insert(kn_exec_cache *c, kn_mem_plan *p)
{
    p->last_used = ++c->clock;
    if (c->n_plans == KN_MAX_PLANS) {
        int lru = 0;
        for (int i = 1; i < c->n_plans; i++)
            if (c->plans[i]->last_used < c->plans[lru]->last_used)
                lru = i;
        plan_free(c->plans[lru]);
        c->plans[lru] = c->plans[--c->n_plans];
    }
    c->plans[c->n_plans++] = p;
    for (int i = 0; i < c->n_plans; i++)
        c->plans[i]->arena = c->arena;
}

/* Grow the shared arena to hold `bytes` (the old contents are dead between runs). */
static int reserve_arena(kn_exec_cache *c, size_t bytes)
{
    if (c->arena && bytes <= c->peak_arena)
        return 0;
    void *a = kn_big_alloc(bytes ? bytes : ALIGN);
    if (!a)
        return -1;
    kn_big_free(c->arena);
    c->arena = a;
    c->peak_arena = bytes;
    return 0;
}

kn_mem_plan *kn_plan_build(kn_exec_cache *c, const int64_t *sig, int n_sig)
{
    size_t nv = (size_t)(c->n_values ? c->n_values : 1);
    placed *items = malloc(sizeof *items * nv);
    int *root = malloc(sizeof *root * nv), *last = malloc(sizeof *last * nv);
    kn_mem_plan *p = items && root && last ? plan_alloc(c, sig, n_sig) : NULL;
    int n = 0;
    if (p) {
        resolve_views(c, root, last);
        n = collect_items(c, root, last, items);
    }
    if (!p || place_all(p, items, n) || reserve_arena(c, p->arena_bytes)) {
        plan_free(p);
        p = NULL;
    } else {
        record_views(c, root, p);
        cache_insert(c, p);
    }
    free(items);
    free(root);
    free(last);
    return p;
}
