/* op_harness.c - the shared harness of the operator unit tests: tensor and
 * attribute makers, the one-node graph runner and the output expectations
 * declared in op_harness.h. */
#include "op_harness.h"

#include <stdio.h>
#include <string.h>

#include "exec/exec.h"
#include "test.h"

/* ---- tensors ---- */

kn_tensor kt_view(kn_dtype dt, int rank, const int64_t *dims, void *data)
{
    kn_tensor t = {0};
    kn_error err;
    kn_tensor_set_shape(&t, dt, rank, dims, &err);
    t.data = data;
    return t;
}

kn_tensor kt_tensor(kn_dtype dt, int rank, const int64_t *dims, const void *data)
{
    kn_tensor t = {0};
    kn_error err;
    kn_tensor_alloc(&t, dt, rank, dims, &err);
    if (data && t.nbytes)
        memcpy(t.data, data, t.nbytes);
    return t;
}

kn_tensor kt_tensor_f64(kn_dtype dt, int rank, const int64_t *dims, const double *vals)
{
    kn_tensor t = kt_tensor(dt, rank, dims, NULL);
    for (int64_t i = 0; vals && i < t.numel; i++)
        kn_store_f64(t.data, dt, (size_t)i, vals[i]);
    return t;
}

kn_tensor kt_tensor_i64(kn_dtype dt, int n, const int64_t *vals)
{
    int64_t dims[1] = {n};
    kn_tensor t = kt_tensor(dt, 1, dims, NULL);
    for (int i = 0; i < n; i++)
        kn_store_i64(t.data, dt, (size_t)i, vals[i]);
    return t;
}

kn_tensor kt_list(kn_value_kind kind, kn_dtype dt, int n, const kn_tensor *items)
{
    kn_tensor l;
    kn_error err;
    kn_value_init_list(&l, kind, dt);
    for (int i = 0; i < n; i++) {
        kn_tensor c = {0};
        kn_tensor_copy(&c, &items[i], &err);
        kn_value_append(&l, &c, &err);
    }
    return l;
}

double kt_at(const kn_tensor *t, int64_t i)
{
    return kn_load_f64(t->data, t->dtype, (size_t)i);
}

int64_t kt_at_i64(const kn_tensor *t, int64_t i)
{
    return kn_load_i64(t->data, t->dtype, (size_t)i);
}

void kt_release_all(kn_tensor *ts, int n)
{
    for (int i = 0; i < n; i++)
        kn_tensor_release(&ts[i]);
}

/* ---- attributes ---- */

static kn_attr attr_of(const char *name, kn_attr_type type)
{
    kn_attr a;
    memset(&a, 0, sizeof a);
    a.name = name;
    a.type = type;
    return a;
}

kn_attr kt_attr_int(const char *name, int64_t v)
{
    kn_attr a = attr_of(name, KN_ATTR_INT);
    a.i = v;
    return a;
}

kn_attr kt_attr_float(const char *name, float v)
{
    kn_attr a = attr_of(name, KN_ATTR_FLOAT);
    a.f = v;
    return a;
}

kn_attr kt_attr_str(const char *name, const char *v)
{
    kn_attr a = attr_of(name, KN_ATTR_STRING);
    a.s = v;
    a.s_len = strlen(v);
    return a;
}

kn_attr kt_attr_ints(const char *name, int n, const int64_t *v)
{
    kn_attr a = attr_of(name, KN_ATTR_INTS);
    a.n = n;
    a.ints = (int64_t *)v;
    return a;
}

kn_attr kt_attr_floats(const char *name, int n, const float *v)
{
    kn_attr a = attr_of(name, KN_ATTR_FLOATS);
    a.n = n;
    a.floats = (float *)v;
    return a;
}

kn_attr kt_attr_strs(const char *name, int n, const char **v)
{
    kn_attr a = attr_of(name, KN_ATTR_STRINGS);
    a.n = n;
    a.strings = v;
    return a;
}

kn_attr kt_attr_tensor(const char *name, kn_tensor *v)
{
    kn_attr a = attr_of(name, KN_ATTR_TENSOR);
    a.t = v;
    return a;
}

/* Until the node runs, a body attribute holds its recipe: s = the op, i = the
 * body's input count, n = its output count, g = NULL. */
kn_attr kt_attr_body(const char *name, const char *op, int n_in, int n_out)
{
    kn_attr a = attr_of(name, KN_ATTR_GRAPH);
    a.s = op;
    a.s_len = strlen(op);
    a.i = n_in;
    a.n = n_out;
    return a;
}

/* ---- the one-node graph ---- */

static int *id_array(kn_model *m, int n)
{
    return kn_arena_calloc(&m->arena, (size_t)n + 1, sizeof(int));
}

/* The body a kt_attr_body recipe describes, in graph parent. */
static kn_graph *build_body(kn_model *m, kn_graph *parent, const kn_attr *recipe)
{
    kn_graph *b = kn_graph_new(m, parent);
    int n_in = (int)recipe->i;
    char name[32];
    for (int i = 0; i < n_in; i++) {
        snprintf(name, sizeof name, "b_in%d", i);
        kn_graph_add_input(b, kn_graph_value(b, kn_arena_strdup(&m->arena, name)));
    }
    for (int k = 0; k < recipe->n; k++) {
        kn_node *n = kn_graph_add_node(b);
        snprintf(name, sizeof name, "b_out%d", k);
        int out = kn_graph_value(b, kn_arena_strdup(&m->arena, name));
        n->name = "body_node";
        n->op_type = recipe->s;
        n->domain = "";
        n->n_in = 1;
        n->in = id_array(m, 1);
        n->in[0] = b->inputs[k < n_in ? k : 0];
        n->n_out = 1;
        n->out = id_array(m, 1);
        n->out[0] = out;
        kn_graph_add_output(b, out);
    }
    return b;
}

static void import_opsets(kn_model *m, const char *domain, int opset)
{
    m->opsets = kn_arena_calloc(&m->arena, 2, sizeof *m->opsets);
    m->opsets[0].domain = domain;
    m->opsets[0].version = opset;
    m->n_opsets = 1;
    if (domain[0]) {
        m->opsets[1].domain = "";
        m->opsets[1].version = KT_BODY_OPSET;
        m->n_opsets = 2;
    }
}

kn_model *kt_model_new(int opset)
{
    kn_model *m = kn_model_new();
    if (!m)
        return NULL;
    import_opsets(m, "", opset);
    m->graph = kn_graph_new(m, NULL);
    return m;
}

/* Value ids for the comma-separated names in list (-1 for empty items) in the
 * arena; *n gets their count. */
static int *name_list(kn_graph *g, const char *list, int *n)
{
    *n = 0;
    if (!list[0])
        return id_array(g->model, 0);
    int count = 1;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    int *ids = id_array(g->model, count);
    const char *p = list;
    for (int k = 0; k < count; k++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        ids[k] = len ? kn_graph_value(g, name) : -1;
        p += len + (e != NULL);
    }
    *n = count;
    return ids;
}

int kt_graph_node(kn_graph *g, const char *op, const char *ins, const char *outs)
{
    int n_in, n_out;
    int *in = name_list(g, ins, &n_in), *out = name_list(g, outs, &n_out);
    kn_node *nd = kn_graph_add_node(g);
    nd->op_type = op;
    nd->n_in = n_in;
    nd->in = in;
    nd->n_out = n_out;
    nd->out = out;
    return g->n_nodes - 1;
}

void kt_graph_const(kn_graph *g, const char *name, const kn_tensor *t)
{
    kn_tensor *c = kn_arena_alloc(&g->model->arena, sizeof *c);
    void *data = kn_arena_alloc(&g->model->arena, t->nbytes ? t->nbytes : 1);
    int id = kn_graph_value(g, name);  /* may move g->values */
    kn_value *v = &g->values[id];
    *c = *t;
    c->owns_data = false;
    c->data = data;
    if (t->nbytes)
        memcpy(data, t->data, t->nbytes);
    v->init = c;
    kn_type_from_tensor(&v->type, c);
    v->has_type = true;
}

void kt_graph_type(kn_graph *g, const char *name, kn_dtype dt, int rank, const int64_t *dims)
{
    int id = kn_graph_value(g, name);  /* may move g->values */
    kn_value *v = &g->values[id];
    v->has_type = true;
    v->type.kind = KN_TYPE_TENSOR;
    v->type.dtype = dt;
    v->type.rank = rank;
    for (int d = 0; d < rank; d++) {
        v->type.dims[d].value = dims[d];
        v->type.dims[d].param = NULL;
    }
}

/* Adds a graph input "inK" for each given input; feeds[] gets the tensors. */
static int wire_inputs(kn_model *m, kn_graph *g, kn_node *nd, const kt_node *n, const kn_tensor **feeds)
{
    int n_feeds = 0;
    char name[32];
    nd->n_in = n->n_in;
    nd->in = id_array(m, n->n_in);
    for (int i = 0; i < n->n_in; i++) {
        nd->in[i] = -1;
        if (!n->in[i])
            continue;
        snprintf(name, sizeof name, "in%d", i);
        nd->in[i] = kn_graph_value(g, kn_arena_strdup(&m->arena, name));
        kn_graph_add_input(g, nd->in[i]);
        feeds[n_feeds++] = n->in[i];
    }
    return n_feeds;
}

static void wire_outputs(kn_model *m, kn_graph *g, kn_node *nd, int n_out)
{
    char name[32];
    nd->n_out = n_out;
    nd->out = id_array(m, n_out);
    for (int i = 0; i < n_out; i++) {
        snprintf(name, sizeof name, "out%d", i);
        nd->out[i] = kn_graph_value(g, kn_arena_strdup(&m->arena, name));
        kn_graph_add_output(g, nd->out[i]);
    }
}

static void copy_attrs(kn_model *m, kn_graph *g, kn_node *nd, const kt_node *n)
{
    nd->n_attr = n->n_attr;
    nd->attrs = kn_arena_calloc(&m->arena, (size_t)n->n_attr + 1, sizeof(kn_attr));
    memcpy(nd->attrs, n->attrs, sizeof(kn_attr) * (size_t)n->n_attr);
    if (n->build_body) {
        kn_attr *a = &nd->attrs[nd->n_attr++];
        a->name = n->body_attr;
        a->type = KN_ATTR_GRAPH;
        a->g = n->build_body(m, g);
    }
    for (int i = 0; i < n->n_attr; i++) {
        kn_attr *a = &nd->attrs[i];
        if (a->type == KN_ATTR_GRAPH && !a->g && a->s) {
            a->g = build_body(m, g, a);
            a->s = NULL;
            a->s_len = 0;
            a->i = 0;
            a->n = 0;
        }
    }
}

int kt_run_node(const kt_node *n, kn_tensor *outs, kn_error *err)
{
    const char *domain = n->domain ? n->domain : "";
    kn_error_clear(err);
    kn_model *m = kn_model_new();
    if (!m)
        return KN_ERR_NOMEM;
    import_opsets(m, domain, n->opset);
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    kn_node *nd = kn_graph_add_node(g);
    nd->name = "node";
    nd->op_type = n->op;
    nd->domain = domain;
    const kn_tensor *feeds[KT_MAX_IO];
    int n_feeds = wire_inputs(m, g, nd, n, feeds);
    wire_outputs(m, g, nd, n->n_out);
    copy_attrs(m, g, nd, n);
    int rc = kn_model_finalize(m, err);
    if (rc == KN_OK)
        rc = kn_exec_graph(g, NULL, n_feeds, feeds, n->n_out, outs, err);
    kn_model_free(m);
    return rc;
}

int kt_run_op(const char *op, int opset, int n_in, const kn_tensor *const *ins, int n_attr,
              const kn_attr *attrs, int n_out, kn_tensor *outs, kn_error *err)
{
    kt_node n = kt_node_of(NULL, op, opset, n_out);
    for (int i = 0; i < n_in; i++)
        kt_add_input(&n, ins[i]);
    for (int i = 0; i < n_attr; i++)
        kt_add_attr(&n, attrs[i]);
    return kt_run_node(&n, outs, err);
}

int kt_rerun_node(const kt_node *n, kn_tensor *outs)
{
    kn_error err = {0};
    kt_release_all(outs, n->n_out);
    int rc = kt_run_node(n, outs, &err);
    if (rc)
        fprintf(stderr, "  (%s: %s)\n", n->op, err.msg);
    return rc;
}

int kt_run_op_replace(const char *op, int opset, int n_in, const kn_tensor *const *ins, int n_attr,
                      const kn_attr *attrs, int n_out, kn_tensor *outs)
{
    kt_node n = kt_node_of(NULL, op, opset, n_out);
    for (int i = 0; i < n_in; i++)
        kt_add_input(&n, ins[i]);
    for (int i = 0; i < n_attr; i++)
        kt_add_attr(&n, attrs[i]);
    return kt_rerun_node(&n, outs);
}

kt_node kt_node_of(const char *domain, const char *op, int opset, int n_out)
{
    kt_node n;
    memset(&n, 0, sizeof n);
    n.domain = domain;
    n.op = op;
    n.opset = opset;
    n.n_out = n_out;
    return n;
}

void kt_add_input(kt_node *n, const kn_tensor *t)
{
    if (n->n_in < KT_MAX_IO)
        n->in[n->n_in++] = t;
}

void kt_add_attr(kt_node *n, kn_attr a)
{
    if (n->n_attr < KT_MAX_ATTR)
        n->attrs[n->n_attr++] = a;
}

/* ---- expectations ---- */

/* Runs n and releases whatever it produced; returns the status. */
static int run_discarding_outputs(const kt_node *n)
{
    kn_tensor outs[KT_MAX_IO];
    kn_error err = {0};
    int rc = kt_run_node(n, outs, &err);
    if (rc == KN_OK)
        kt_release_all(outs, n->n_out);
    return rc;
}

void kt_expect_fail(const kt_node *n, int code)
{
    CHECK_EQ_INT(run_discarding_outputs(n), code);
}

void kt_expect_any_fail(const kt_node *n)
{
    CHECK(run_discarding_outputs(n) != KN_OK);
}

/* Runs n, which must succeed (one check); prints the message when it fails. */
static int run_expecting_ok(const kt_node *n, kn_tensor *outs)
{
    kn_error err = {0};
    int rc = kt_run_node(n, outs, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "  %s: %s\n", n->op, err.msg);
    return rc;
}

kn_tensor kt_expect_ok(const kt_node *n)
{
    kn_tensor outs[KT_MAX_IO];
    if (run_expecting_ok(n, outs)) {
        kn_tensor none;
        kn_value_init_list(&none, KN_VALUE_SEQUENCE, KN_UNDEFINED);
        return none;
    }
    kt_release_all(outs + 1, n->n_out - 1);
    return outs[0];
}

static void print_i64_mismatch(const kn_tensor *got, const int64_t *want)
{
    for (int64_t i = 0; i < got->numel; i++)
        fprintf(stderr, "  [%lld] got %lld want %lld\n", (long long)i,
                (long long)((const int64_t *)got->data)[i], (long long)want[i]);
}

void kt_expect_out(const kt_node *n, kn_dtype dt, int rank, const int64_t *dims, const void *want)
{
    kn_tensor outs[KT_MAX_IO];
    if (run_expecting_ok(n, outs))
        return;
    CHECK_EQ_INT(outs[0].dtype, dt);
    CHECK(kt_same_dims(&outs[0], rank, dims));
    if (outs[0].dtype == dt && kt_same_dims(&outs[0], rank, dims) && outs[0].nbytes) {
        bool eq = memcmp(outs[0].data, want, outs[0].nbytes) == 0;
        CHECK(eq);
        if (!eq && dt == KN_I64)
            print_i64_mismatch(&outs[0], want);
    }
    kt_release_all(outs, n->n_out);
}

bool kt_same_dims(const kn_tensor *t, int rank, const int64_t *dims)
{
    if (t->kind != KN_VALUE_TENSOR || t->rank != rank)
        return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            return false;
    return true;
}

void kt_check_dims(const kn_tensor *t, int rank, const int64_t *dims)
{
    CHECK_EQ_INT(t->rank, rank);
    for (int i = 0; i < rank && i < t->rank; i++)
        CHECK_EQ_INT(t->dims[i], dims[i]);
}

void kt_check_f32(const kn_tensor *t, const float *want, int64_t n, double tol)
{
    CHECK_EQ_INT(t->numel, n);
    if (t->numel != n || t->dtype != KN_F32)
        return;
    const float *got = t->data;
    for (int64_t i = 0; i < n; i++)
        CHECK_NEAR(got[i], want[i], tol);
}

void kt_check_f32_shaped(const kn_tensor *t, int rank, const int64_t *dims, const float *want,
                         double tol)
{
    CHECK_EQ_INT(t->dtype, KN_F32);
    kt_check_dims(t, rank, dims);
    int64_t numel = 1;
    for (int i = 0; i < rank && i < t->rank; i++)
        numel *= dims[i];
    CHECK_EQ_INT(t->numel, numel);
    for (int64_t i = 0; i < numel && i < t->numel; i++)
        CHECK_NEAR(((const float *)t->data)[i], want[i], tol);
}
