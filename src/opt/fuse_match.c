/* fuse_match.c - pattern-matching helpers of the fusion passes (see fuse_match.h). */
#include "opt/fuse_match.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool default_domain(const kn_node *n)
{
    return !n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx");
}

/* Inputs the matchers read of a node of type op (in[0], in[1]): 2 for the binary
 * operators, 0 for Constant, else 1. */
static int inputs_read(const char *op)
{
    static const char *const binary[] = {"Add", "Sub", "Mul", "Div", "Pow", "MatMul",
                                         "Gemm", "Reshape", "Conv", "LayerNormalization"};
    for (size_t k = 0; k < sizeof binary / sizeof binary[0]; k++)
        if (!strcmp(op, binary[k]))
            return 2;
    return strcmp(op, "Constant") ? 1 : 0;
}

/* A live default-domain node of type op with an output and the inputs matchers read,
 * so that malformed graphs never make them read past a node's arrays. */
static bool is_op(const kn_node *n, const char *op)
{
    return !kn_opt_node_deleted(n) && default_domain(n) && !strcmp(n->op_type, op) &&
           n->n_out >= 1 && n->n_in >= inputs_read(op);
}

int fm_producer(const kn_graph *g, int v, const char *op)
{
    if (v < 0 || v >= g->n_values)
        return -1;
    int p = g->values[v].producer;
    return p >= 0 && p < g->n_nodes && is_op(&g->nodes[p], op) ? p : -1;
}

int fm_consumer(const kn_graph *g, int v, const char *op)
{
    int c = kn_opt_single_consumer(g, v);
    return c >= 0 && is_op(&g->nodes[c], op) ? c : -1;
}

int fm_consumers(const kn_graph *g, int v, int *out, int max)
{
    int n = 0;
    for (int i = 0; v >= 0 && i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        bool reads = false;
        for (int k = 0; k < nd->n_in; k++)
            reads |= nd->in[k] == v;
        for (int k = 0; k < nd->n_implicit; k++)
            reads |= nd->implicit[k] == v;
        if (reads && n < max)
            out[n] = i;
        n += reads;
    }
    return n;
}

int fm_uses(const kn_graph *g, int v)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            n += nd->in[k] == v;
        for (int k = 0; k < nd->n_implicit; k++)
            n += nd->implicit[k] == v;
    }
    for (int k = 0; k < g->n_outputs; k++)
        n += g->outputs[k] == v;
    return n;
}

const kn_tensor *fm_const(const kn_graph *g, int v)
{
    for (int hops = 0; hops < 8 && v >= 0 && v < g->n_values; hops++) {
        const kn_tensor *t = kn_opt_const(g, v);
        if (t)
            return t;
        int p = g->values[v].producer;
        if (p < 0)
            return NULL;
        const kn_node *n = &g->nodes[p];
        if (is_op(n, "Constant"))
            return kn_attr_tensor(n, "value");
        if (!is_op(n, "Identity") || n->n_in < 1)
            return NULL;
        v = n->in[0];
    }
    return NULL;
}

bool fm_scalar(const kn_graph *g, int v, double *out)
{
    const kn_tensor *t = fm_const(g, v);
    if (!t || t->kind != KN_VALUE_TENSOR || t->numel != 1 || !t->data ||
        !(kn_dtype_is_float(t->dtype) || kn_dtype_is_int(t->dtype)))
        return false;
    *out = kn_load_f64(t->data, t->dtype, 0);
    return true;
}

bool fm_scalar_near(const kn_graph *g, int v, double want, double rel_tol)
{
    double x;
    return fm_scalar(g, v, &x) && fabs(x - want) <= rel_tol * fabs(want);
}

bool fm_vector_f32(const kn_graph *g, int v, int64_t n)
{
    const kn_tensor *t = fm_const(g, v);
    return t && t->kind == KN_VALUE_TENSOR && t->dtype == KN_F32 && t->rank == 1 &&
           (n < 0 || t->dims[0] == n);
}

int fm_other_input(const kn_node *n, int v)
{
    if (n->n_in != 2)
        return -1;
    if (n->in[0] == v)
        return n->in[1];
    return n->in[1] == v ? n->in[0] : -1;
}

static const kn_type *tensor_type(const kn_graph *g, int v)
{
    if (v < 0 || v >= g->n_values)
        return NULL;
    const kn_value *val = &g->values[v];
    if (val->init) {
        static _Thread_local kn_type t;
        kn_type_from_tensor(&t, val->init);
        return &t;
    }
    if (!val->has_type || val->type.kind != KN_TYPE_TENSOR)
        return NULL;
    return &val->type;
}

int fm_rank(const kn_graph *g, int v)
{
    const kn_type *t = tensor_type(g, v);
    return t ? t->rank : -1;
}

bool fm_is_f32(const kn_graph *g, int v)
{
    const kn_type *t = tensor_type(g, v);
    return t && t->dtype == KN_F32;
}

int64_t fm_last_dim(const kn_graph *g, int v)
{
    const kn_type *t = tensor_type(g, v);
    return t && t->rank > 0 ? t->dims[t->rank - 1].value : -1;
}

static bool same_dim(const kn_dim *a, const kn_dim *b)
{
    if (a->value >= 0 || b->value >= 0)
        return a->value == b->value;
    return a->param && b->param && !strcmp(a->param, b->param);
}

bool fm_same_shape(const kn_graph *g, int a, int b)
{
    const kn_type *ta = tensor_type(g, a);
    if (!ta || ta->rank < 0)
        return false;
    kn_type ca = *ta;
    const kn_type *tb = tensor_type(g, b);
    if (!tb || tb->rank != ca.rank)
        return false;
    for (int d = 0; d < ca.rank; d++)
        if (!same_dim(&ca.dims[d], &tb->dims[d]))
            return false;
    return true;
}

bool fm_maybe_same_shape(const kn_graph *g, int a, int b)
{
    if (fm_rank(g, a) < 0 || fm_rank(g, b) < 0)
        return true;
    const kn_type *ta = tensor_type(g, a);
    kn_type ca = *ta;
    const kn_type *tb = tensor_type(g, b);
    for (int d = 0; d < ca.rank; d++) {
        const kn_dim *x = &ca.dims[d], *y = &tb->dims[d];
        bool unknown = (x->value < 0 && !x->param) || (y->value < 0 && !y->param);
        if (!unknown && !same_dim(x, y))
            return false;
    }
    return ca.rank == tb->rank;
}

bool fm_reduces_last_axis(const kn_graph *g, int i)
{
    const kn_node *n = &g->nodes[i];
    if (kn_attr_int(n, "keepdims", 1) != 1 || kn_attr_int(n, "noop_with_empty_axes", 0))
        return false;
    int64_t axes[2];
    int na;
    const int64_t *av = NULL;
    if ((na = kn_attr_ints(n, "axes", &av)) >= 0) {
        if (na != 1)
            return false;
        axes[0] = av[0];
    } else {
        const kn_tensor *t = n->n_in > 1 ? fm_const(g, n->in[1]) : NULL;
        if (!t || t->numel != 1 || !kn_dtype_is_int(t->dtype))
            return false;
        axes[0] = (int64_t)kn_load_f64(t->data, t->dtype, 0);
    }
    int rank = fm_rank(g, n->in[0]);
    return axes[0] == -1 || (rank > 0 && axes[0] == rank - 1);
}

/* Clip bounds: attributes before opset 11, constant inputs after (absent = open). */
static bool clip_bounds(const kn_graph *g, const kn_node *n, float *lo, float *hi)
{
    if (n->opset < 11) {
        *lo = kn_attr_float(n, "min", -FLT_MAX);
        *hi = kn_attr_float(n, "max", FLT_MAX);
        return true;
    }
    double v;
    *lo = -FLT_MAX, *hi = FLT_MAX;
    if (n->n_in > 1 && n->in[1] >= 0) {
        if (!fm_scalar(g, n->in[1], &v))
            return false;
        *lo = (float)v;
    }
    if (n->n_in > 2 && n->in[2] >= 0) {
        if (!fm_scalar(g, n->in[2], &v))
            return false;
        *hi = (float)v;
    }
    return true;
}

bool fm_match_activation(const kn_graph *g, int i, bool allow_clip, fm_activation *act)
{
    const kn_node *n = &g->nodes[i];
    memset(act, 0, sizeof *act);
    static const char *const plain[] = {"Relu", "Sigmoid", "Tanh"};
    for (int k = 0; k < 3; k++)
        if (is_op(n, plain[k])) {
            act->name = plain[k];
            return true;
        }
    if (is_op(n, "LeakyRelu")) {
        act->name = "LeakyRelu";
        act->n_params = 1;
        act->params[0] = kn_attr_float(n, "alpha", 0.01f);
        return true;
    }
    if (is_op(n, "HardSigmoid")) {
        act->name = "HardSigmoid";
        act->n_params = 2;
        act->params[0] = kn_attr_float(n, "alpha", 0.2f);
        act->params[1] = kn_attr_float(n, "beta", 0.5f);
        return true;
    }
    if (allow_clip && is_op(n, "Clip") && clip_bounds(g, n, &act->params[0], &act->params[1])) {
        act->name = "Clip";
        act->n_params = 2;
        return true;
    }
    return false;
}

int fm_replace(kn_graph *g, const int *del, int n_del, const char *op, const char *domain,
               int opset_if_missing, int n_in, const int *ins, int n_out, const int *outs,
               kn_error *err)
{
    const char *hint = n_del > 0 ? g->nodes[del[n_del - 1]].name : op;
    char name[200];
    snprintf(name, sizeof name, "%s", hint ? hint : op);
    for (int k = 0; k < n_del; k++)
        kn_opt_delete_node(g, del[k]);
    return kn_opt_add_node(g, op, domain, opset_if_missing, name, n_in, ins, n_out, outs, err);
}

/* Node n is a live `op` node of `domain` (NULL: the default domain, as is_op). */
static bool is_op_in(const kn_node *n, const char *domain, const char *op)
{
    if (!domain)
        return is_op(n, op);
    return !kn_opt_node_deleted(n) && n->domain && !strcmp(n->domain, domain) &&
           !strcmp(n->op_type, op);
}

int fm_each_node_in(kn_graph *g, const char *domain, const char *op, fm_fuse_fn fuse,
                    int *rewrites, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        if (!is_op_in(&g->nodes[i], domain, op))
            continue;
        bool done = false;
        int rc = fuse(g, i, &done, err);
        if (rc)
            return rc;
        *rewrites += done;
    }
    return KN_OK;
}

int fm_each_node(kn_graph *g, const char *op, fm_fuse_fn fuse, int *rewrites, kn_error *err)
{
    return fm_each_node_in(g, NULL, op, fuse, rewrites, err);
}

/* ---- deleting a matched region with its dead feeders ---- */

/* Mark dead every producer whose outputs lose their last reader (ONNX operators,
 * control flow included, have no side effects). */
static void mark_dead_feeders(const kn_graph *g, bool *dead, int *cnt, int *work, int n_work)
{
    while (n_work > 0) {
        const kn_node *n = &g->nodes[work[--n_work]];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0)
                continue;
            cnt[v]--;
            int p = g->values[v].producer;
            if (p < 0 || dead[p])
                continue;
            bool unused = true;
            for (int o = 0; o < g->nodes[p].n_out; o++)
                unused &= g->nodes[p].out[o] < 0 || cnt[g->nodes[p].out[o]] == 0;
            if (unused) {
                dead[p] = true;
                work[n_work++] = p;
            }
        }
    }
}

static bool kept(int v, const int *keep, int n_keep)
{
    for (int k = 0; k < n_keep; k++)
        if (keep[k] == v)
            return true;
    return false;
}

/* No live node or graph output reads a dead node's output outside keep. */
static bool dead_outputs_unread(const kn_graph *g, const bool *dead, const int *keep, int n_keep)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        for (int k = 0; !dead[i] && k < n->n_in + n->n_implicit; k++) {
            int v = k < n->n_in ? n->in[k] : n->implicit[k - n->n_in];
            int p = v >= 0 ? g->values[v].producer : -1;
            if (p >= 0 && dead[p] && !kept(v, keep, n_keep))
                return false;
        }
    }
    for (int k = 0; k < g->n_outputs; k++) {
        int p = g->values[g->outputs[k]].producer;
        if (p >= 0 && dead[p] && !kept(g->outputs[k], keep, n_keep))
            return false;
    }
    return true;
}

bool fm_delete_with_dead(kn_graph *g, const int *del, int n_del, const int *reads, int n_reads,
                         const int *keep, int n_keep, kn_error *err)
{
    bool *dead = calloc((size_t)g->n_nodes + 1, sizeof *dead);
    int *work = malloc(sizeof(int) * ((size_t)g->n_nodes + 1));
    int *cnt = kn_opt_use_counts(g, err);
    bool ok = dead && work && cnt;
    if (!ok && !err->code)
        kn_fail(err, KN_ERR_NOMEM, "out of memory");
    int n_work = 0;
    for (int k = 0; ok && k < n_reads; k++)
        if (reads[k] >= 0)
            cnt[reads[k]]++;
    for (int k = 0; ok && k < n_del; k++)
        if (!dead[del[k]]) {
            dead[del[k]] = true;
            work[n_work++] = del[k];
        }
    if (ok) {
        mark_dead_feeders(g, dead, cnt, work, n_work);
        ok = dead_outputs_unread(g, dead, keep, n_keep);
    }
    for (int i = 0; ok && i < g->n_nodes; i++)
        if (dead[i])
            kn_opt_delete_node(g, i);
    free(dead);
    free(work);
    free(cnt);
    return ok;
}
