/* exec.c - reference graph executor (see exec.h). */
#include "exec/exec.h"
#include "exec/memplan.h"
#include "core/bigalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kn_frame {
    const kn_graph *g;
    const kn_frame *parent;
    const kn_exec_env *env;
    kn_tensor *vals;   /* one record per value id */
    bool *present;     /* vals[v] holds a value */
    int *uses;         /* remaining reads before vals[v] can be freed */
    bool borrowed;     /* the arrays belong to a kn_exec_cache */
    kn_exec_cache *cache;  /* main graph with a session: plan or record */
    kn_mem_plan *plan;     /* replaying this plan, or NULL */
};

/* Find a value visible from frame f by name (for outer-scope captures). */
static const kn_tensor *frame_lookup(const kn_frame *f, const char *name)
{
    for (; f; f = f->parent) {
        int id = kn_graph_find(f->g, name);
        if (id >= 0 && f->present[id])
            return &f->vals[id];
    }
    return NULL;
}

static void frame_free(kn_frame *f)
{
    if (f->vals)
        for (int v = 0; v < f->g->n_values; v++)
            if (f->present[v])
                kn_tensor_release(&f->vals[v]);
    if (f->borrowed)
        return;
    free(f->vals);
    free(f->present);
    free(f->uses);
}

/* Use the session cache's arrays for its own graph, else allocate. */
static int frame_arrays(kn_frame *f, const kn_graph *g, kn_exec_cache *cache, kn_error *err)
{
    size_t n = (size_t)(g->n_values ? g->n_values : 1);
    if (cache && cache->g == g && cache->n_values == g->n_values) {
        f->vals = cache->vals;
        f->present = cache->present;
        f->uses = cache->uses;
        f->borrowed = true;
        f->cache = cache;
        memset(f->vals, 0, sizeof *f->vals * n);
        memset(f->present, 0, sizeof *f->present * n);
        memset(f->uses, 0, sizeof *f->uses * n);
        return KN_OK;
    }
    f->vals = calloc(n, sizeof *f->vals);
    f->present = calloc(n, sizeof *f->present);
    f->uses = calloc(n, sizeof *f->uses);
    if (!f->vals || !f->present || !f->uses)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    return KN_OK;
}

static int frame_init(kn_frame *f, const kn_graph *g, const kn_frame *parent,
                      const kn_exec_env *env, kn_error *err)
{
    memset(f, 0, sizeof *f);
    f->g = g;
    f->parent = parent;
    f->env = env;
    if (frame_arrays(f, g, parent ? NULL : env ? env->cache : NULL, err))
        return err->code;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0)
                f->uses[nd->in[k]]++;
        for (int k = 0; k < nd->n_implicit; k++)
            f->uses[nd->implicit[k]]++;
    }
    for (int k = 0; k < g->n_outputs; k++)
        f->uses[g->outputs[k]] += 1 << 20; /* outputs are never freed early */
    return KN_OK;
}

static int bind_inputs(kn_frame *f, int n_in, const kn_tensor *const *inputs, kn_error *err)
{
    const kn_graph *g = f->g;
    for (int v = 0; v < g->n_values; v++) {
        const kn_value *val = &g->values[v];
        if (val->init) {
            kn_tensor_view(&f->vals[v], val->init);
            f->present[v] = true;
        } else if (val->is_outer) {
            const kn_tensor *t = frame_lookup(f->parent, val->name);
            if (t) {
                kn_tensor_view(&f->vals[v], t);
                f->present[v] = true;
            }
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        const kn_tensor *t = i < n_in ? inputs[i] : NULL;
        if (t) {
            kn_tensor_view(&f->vals[v], t);
            f->present[v] = true;
        } else if (!f->present[v] && f->parent == NULL) {
            return kn_fail(err, KN_ERR_ARG, "input '%s' was not provided", g->values[v].name);
        }
    }
    return KN_OK;
}

static int subgraph_entry(kn_op_ctx *c, const kn_graph *body, int n_in,
                          const kn_tensor *const *inputs, int n_out, kn_tensor *outputs)
{
    return kn_exec_graph(body, (const kn_frame *)c->exec_frame, n_in, inputs, n_out, outputs, c->err);
}

#define MAX_NODE_IO 512

/* Heap storage for t (shape already set), zero-filled or not. */
static int heap_storage(kn_tensor *t, bool zero, kn_error *err)
{
    t->data = zero ? calloc(1, t->nbytes ? t->nbytes : 1) : malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory allocating %zu bytes", t->nbytes);
    t->owns_data = true;
    return KN_OK;
}

/* kn_op_ctx.alloc_output for planned frames: arena memory when the plan has room
 * for this value, else the heap (recording the size on a recording run). */
static int planned_alloc(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims, bool zero)
{
    kn_frame *f = c->exec_frame;
    kn_tensor *t = c->out[i];
    int v = c->node->out[i];
    if (t->owns_data)
        kn_tensor_release(t);
    memset(t, 0, sizeof *t);
    if (kn_tensor_set_shape(t, dt, rank, dims, c->err))
        return c->err->code;
    kn_mem_plan *p = f->plan;
    if (v >= 0 && p && p->offset[v] != KN_PLAN_NONE && t->nbytes <= p->size[v]) {
        t->data = (char *)p->arena + p->offset[v];
        if (zero)
            memset(t->data, 0, t->nbytes);
        return KN_OK;
    }
    if (v >= 0 && !p && t->nbytes > f->cache->rec_bytes[v])
        f->cache->rec_bytes[v] = t->nbytes;
    return heap_storage(t, zero, c->err);
}

/* kn_op_ctx.view_output: output i becomes a view of input src when src's bytes are
 * provably there for as long as the output is: an initializer or graph input of this
 * run, or (replaying a plan) a value sitting in the slot the plan shares with the
 * output.  A recording run notes planned inputs as view candidates and copies. */
static bool planned_view(kn_op_ctx *c, int i, int src, int rank, const int64_t *dims)
{
    kn_frame *f = c->exec_frame;
    int y = c->node->out[i], x = c->node->in[src];
    if (y < 0 || x < 0)
        return false;
    const kn_tensor *xt = c->in[src];
    const kn_value *xv = &f->g->values[x];
    bool ok = (xv->init || xv->is_input) && xv->producer < 0 && xt->data;
    if (!ok && f->plan)
        ok = f->plan->alias[y] == x && xt->data && xt->data == kn_plan_address(f->plan, x);
    if (!ok) {
        if (!f->plan)
            f->cache->rec_alias[y] = x;
        return false;
    }
    kn_tensor *t = c->out[i];
    if (t->owns_data)
        kn_tensor_release(t);
    memset(t, 0, sizeof *t);
    if (kn_tensor_set_shape(t, xt->dtype, rank, dims, c->err))
        return false;
    t->data = xt->data;
    return true;
}

/* Kernels with sequence/optional values or subgraphs get heap outputs. */
static bool node_plannable(const kn_node *nd)
{
    if (nd->op->any_value)
        return false;
    for (int a = 0; a < nd->n_attr; a++)
        if (nd->attrs[a].type == KN_ATTR_GRAPH || nd->attrs[a].type == KN_ATTR_GRAPHS)
            return false;
    return true;
}

static void release_dead_inputs(kn_frame *f, const kn_node *nd)
{
    for (int k = 0; k < nd->n_in + nd->n_implicit; k++) {
        int v = k < nd->n_in ? nd->in[k] : nd->implicit[k - nd->n_in];
        if (v < 0)
            continue;
        if (--f->uses[v] == 0 && f->present[v]) {
            kn_tensor_release(&f->vals[v]);
            f->present[v] = false;
        }
    }
}

static int run_node(kn_frame *f, int idx, kn_error *err)
{
    const kn_graph *g = f->g;
    const kn_node *nd = &g->nodes[idx];
    char lb[160];
    if (nd->n_in > MAX_NODE_IO || nd->n_out > MAX_NODE_IO)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "node '%s' has too many inputs/outputs",
                       kn_node_label(g, nd, lb, sizeof lb));
    const kn_tensor *in[MAX_NODE_IO];
    kn_tensor *out[MAX_NODE_IO];
    kn_tensor scratch[8];
    int n_scratch = 0;
    for (int k = 0; k < nd->n_in; k++) {
        int v = nd->in[k];
        in[k] = NULL;
        if (v < 0)
            continue;
        if (!f->present[v])
            return kn_fail(err, KN_ERR_RUNTIME, "node '%s' (%s): input '%s' has no value",
                           kn_node_label(g, nd, lb, sizeof lb), nd->op_type, g->values[v].name);
        in[k] = &f->vals[v];
        if (in[k]->kind != KN_VALUE_TENSOR && !nd->op->any_value)
            return kn_fail(err, KN_ERR_UNSUPPORTED, "node '%s' (%s): input '%s' is a %s, which %s does not take",
                           kn_node_label(g, nd, lb, sizeof lb), nd->op_type, g->values[v].name,
                           in[k]->kind == KN_VALUE_SEQUENCE ? "sequence" : "optional", nd->op_type);
    }
    for (int k = 0; k < nd->n_out; k++) {
        int v = nd->out[k];
        kn_tensor *t;
        if (v >= 0) {
            t = &f->vals[v];
            if (f->present[v])
                kn_tensor_release(t);
        } else {
            if (n_scratch == 8)
                return kn_fail(err, KN_ERR_UNSUPPORTED, "too many unused outputs");
            t = &scratch[n_scratch++];
        }
        memset(t, 0, sizeof *t);
        t->dtype = KN_UNDEFINED;
        out[k] = t;
    }
    kn_op_ctx c = {
        .graph = g, .node = nd, .opset = nd->opset, .n_in = nd->n_in, .in = in,
        .n_out = nd->n_out, .out = out, .err = err, .run_subgraph = subgraph_entry,
        .exec_frame = f, .state = nd->state, .pool = f->env ? f->env->pool : NULL,
        .alloc_output = f->cache && node_plannable(nd) ? planned_alloc : NULL,
        .view_output = f->cache && node_plannable(nd) ? planned_view : NULL,
    };
    int rc = nd->op->run(&c);
    for (int k = 0; k < nd->n_out && !rc; k++) {
        if (out[k]->dtype == KN_UNDEFINED && nd->out[k] >= 0)
            rc = kn_fail(err, KN_ERR_RUNTIME, "kernel did not produce output %d", k);
    }
    for (int k = 0; k < nd->n_out; k++) {
        int v = nd->out[k];
        if (v >= 0)
            f->present[v] = !rc && out[k]->dtype != KN_UNDEFINED;
        if (rc || v < 0)
            kn_tensor_release(out[k]);
    }
    if (rc)
        return kn_error_prefix(err, "node '%s' (%s): ", kn_node_label(g, nd, lb, sizeof lb), nd->op_type);
    release_dead_inputs(f, nd);
    return KN_OK;
}

static int run_node_timed(kn_frame *f, int idx, kn_error *err)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = run_node(f, idx, err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    f->env->node_seconds[idx] += (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    f->env->node_calls[idx]++;
    return rc;
}

static int collect_outputs(kn_frame *f, int n_out, kn_tensor *outputs, kn_error *err)
{
    const kn_graph *g = f->g;
    for (int k = 0; k < n_out && k < g->n_outputs; k++) {
        int v = g->outputs[k];
        memset(&outputs[k], 0, sizeof outputs[k]);
        if (!f->present[v]) {
            for (int j = 0; j < k; j++)
                kn_tensor_release(&outputs[j]);
            return kn_fail(err, KN_ERR_RUNTIME, "graph output '%s' has no value", g->values[v].name);
        }
        kn_tensor *src = &f->vals[v];
        bool last_use = true;
        for (int j = k + 1; j < g->n_outputs; j++)
            last_use &= g->outputs[j] != v;
        if (src->owns_data && last_use) {
            outputs[k] = *src;          /* move */
            src->owns_data = false;
        } else if (kn_tensor_copy(&outputs[k], src, err)) {
            for (int j = 0; j < k; j++)
                kn_tensor_release(&outputs[j]);
            return err->code;
        }
    }
    return KN_OK;
}

void *kn_op_scratch(kn_op_ctx *c, size_t bytes)
{
    const kn_frame *f = c->exec_frame;
    kn_scratch *s = f && f->env ? f->env->scratch : NULL;
    if (!s) {
        kn_fail(c->err, KN_ERR_RUNTIME, "no scratch memory in this context");
        return NULL;
    }
    if (bytes > s->cap) {
        size_t cap = bytes < 4096 ? 4096 : bytes;
        cap = (cap + 63) & ~(size_t)63;
        void *p = cap < bytes ? NULL : kn_big_alloc(cap);
        if (!p) {
            kn_fail(c->err, KN_ERR_NOMEM, "out of memory for %zu bytes of scratch", bytes);
            return NULL;
        }
        kn_big_free(s->data);
        s->data = p;
        s->cap = cap;
    }
    return s->data;
}

void kn_scratch_free(kn_scratch *s)
{
    kn_big_free(s->data);
    s->data = NULL;
    s->cap = 0;
}

static int exec_frame(const kn_graph *g, const kn_frame *parent, const kn_exec_env *env, int n_in,
                      const kn_tensor *const *inputs, int n_out, kn_tensor *outputs, kn_error *err)
{
    kn_frame f;
    int64_t sig[256];
    int n_sig = -1;
    int rc = frame_init(&f, g, parent, env, err);
    if (!rc && f.cache) {
        n_sig = kn_plan_signature(n_in, inputs, sig, 256);
        f.plan = n_sig >= 0 ? kn_plan_find(f.cache, sig, n_sig) : NULL;
        if (!f.plan)
            kn_plan_record_start(f.cache);
        if (n_sig < 0)
            f.cache = NULL; /* too many dims to key a plan: plain heap */
    }
    if (!rc)
        rc = bind_inputs(&f, n_in, inputs, err);
    for (int i = 0; !rc && i < g->n_nodes; i++)
        rc = parent || !env || !env->node_seconds ? run_node(&f, i, err) : run_node_timed(&f, i, err);
    if (!rc)
        rc = collect_outputs(&f, n_out, outputs, err);
    if (!rc && f.cache && !f.plan)
        kn_plan_build(f.cache, sig, n_sig);
    frame_free(&f);
    return rc;
}

int kn_exec_graph(const kn_graph *g, const kn_frame *parent, int n_in,
                  const kn_tensor *const *inputs, int n_out, kn_tensor *outputs, kn_error *err)
{
    if (parent)
        return exec_frame(g, parent, parent->env, n_in, inputs, n_out, outputs, err);
    return kn_exec_graph_env(g, NULL, n_in, inputs, n_out, outputs, err);
}

int kn_exec_graph_env(const kn_graph *g, const kn_exec_env *env, int n_in,
                      const kn_tensor *const *inputs, int n_out, kn_tensor *outputs, kn_error *err)
{
    kn_scratch local = {0};
    kn_exec_env own = {.pool = env ? env->pool : NULL, .scratch = &local,
                       .cache = env ? env->cache : NULL,
                       .node_seconds = env ? env->node_seconds : NULL,
                       .node_calls = env ? env->node_calls : NULL};
    if (env && env->scratch)
        own.scratch = env->scratch;
    int rc = exec_frame(g, NULL, &own, n_in, inputs, n_out, outputs, err);
    kn_scratch_free(&local);
    return rc;
}

static int bind_symbol(const char *name, int64_t value, kn_symbol_binding *syms, int *n_syms,
                       int max_syms, int64_t *bound)
{
    for (int i = 0; i < *n_syms; i++) {
        if (!strcmp(syms[i].name, name)) {
            *bound = syms[i].value;
            return syms[i].value == value;
        }
    }
    if (*n_syms < max_syms) {
        syms[*n_syms].name = name;
        syms[*n_syms].value = value;
        (*n_syms)++;
    }
    return 1;
}

int kn_check_input(const kn_value *decl, const kn_tensor *t, kn_symbol_binding *syms, int *n_syms,
                   int max_syms, kn_error *err)
{
    char want[256], got[256];
    if (!decl->has_type || decl->type.kind != KN_TYPE_TENSOR)
        return KN_OK;
    const kn_type *ty = &decl->type;
    if (ty->dtype != KN_UNDEFINED && ty->dtype != t->dtype)
        return kn_fail(err, KN_ERR_ARG, "input '%s' expects dtype %s, got %s", decl->name,
                       kn_dtype_name(ty->dtype), kn_dtype_name(t->dtype));
    if (ty->rank >= 0 && ty->rank != t->rank)
        return kn_fail(err, KN_ERR_ARG, "input '%s' expects shape %s, got %s (rank %d instead of %d)",
                       decl->name, kn_type_str(ty, want, sizeof want),
                       kn_tensor_describe(t, got, sizeof got), t->rank, ty->rank);
    for (int i = 0; ty->rank >= 0 && i < ty->rank; i++) {
        const kn_dim *d = &ty->dims[i];
        int64_t bound = -1;
        if (d->value >= 0 && d->value != t->dims[i])
            return kn_fail(err, KN_ERR_ARG, "input '%s' expects shape %s, got %s (axis %d)",
                           decl->name, kn_type_str(ty, want, sizeof want),
                           kn_tensor_describe(t, got, sizeof got), i);
        if (d->param && !bind_symbol(d->param, t->dims[i], syms, n_syms, max_syms, &bound))
            return kn_fail(err, KN_ERR_ARG,
                           "input '%s' axis %d is dimension '%s' = %lld, but another input set it to %lld",
                           decl->name, i, d->param, (long long)t->dims[i], (long long)bound);
    }
    return KN_OK;
}
