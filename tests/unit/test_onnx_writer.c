/* test_onnx_writer.c - unit tests for the ONNX writer (src/formats/onnx_writer.c)
 * and its protobuf encoder (pbwrite.c): a hand-built model with every attribute
 * type, subgraphs with outer captures, initializers of every dtype kiln holds,
 * symbolic / unknown dims and sequence / optional types, written and read back
 * and compared field by field; external data files; failures (bad paths,
 * unwritable tensors) that leave nothing behind; writing is a fixed point after
 * one read (write(read(w)) == w) for every shared and conformance model; shared
 * models compute bit-identical outputs after a round trip. */
#include "test.h"

#include "exec/exec.h"
#include "formats/npy.h"
#include "formats/onnx.h"
#include "formats/pbwrite.h"
#include "formats/protobuf.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- building a model by hand ---- */

static const char *adup(kn_model *m, const char *s)
{
    return kn_arena_strdup(&m->arena, s);
}

static int val(kn_graph *g, const char *name)
{
    int id = kn_graph_value(g, name);
    CHECK(id >= 0);
    return id;
}

static kn_node *add_node(kn_graph *g, const char *op, const char *name, int n_in, const char *const *ins,
                         int n_out, const char *const *outs, int n_attr)
{
    kn_arena *ar = &g->model->arena;
    kn_node *n = kn_graph_add_node(g);
    n->op_type = adup(g->model, op);
    n->name = adup(g->model, name);
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = kn_arena_calloc(ar, (size_t)n_in + 1, sizeof(int));
    n->out = kn_arena_calloc(ar, (size_t)n_out + 1, sizeof(int));
    for (int k = 0; k < n_in; k++)
        n->in[k] = ins[k][0] ? val(g, ins[k]) : -1;
    for (int k = 0; k < n_out; k++)
        n->out[k] = outs[k][0] ? val(g, outs[k]) : -1;
    n->n_attr = n_attr;
    n->attrs = kn_arena_calloc(ar, (size_t)n_attr + 1, sizeof(kn_attr));
    return n;
}

/* An arena tensor of dtype dt and shape dims whose bytes are a pattern. */
static kn_tensor *make_tensor(kn_model *m, kn_dtype dt, int rank, const int64_t *dims, unsigned seed)
{
    kn_tensor *t = kn_arena_calloc(&m->arena, 1, sizeof *t);
    kn_error err;
    CHECK(kn_tensor_set_shape(t, dt, rank, dims, &err) == KN_OK);
    t->data = kn_arena_calloc(&m->arena, t->nbytes + 1, 1);
    uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        p[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
    if (dt == KN_BOOL)
        for (size_t i = 0; i < t->nbytes; i++)
            p[i] &= 1;
    return t;
}

static void set_type(kn_graph *g, int id, kn_type_kind kind, kn_dtype dt, int rank, const int64_t *vals,
                     const char *const *params)
{
    kn_value *v = &g->values[id];
    v->has_type = true;
    v->type.kind = kind;
    v->type.dtype = dt;
    v->type.rank = rank;
    for (int i = 0; i < rank; i++) {
        v->type.dims[i].value = vals[i];
        v->type.dims[i].param = params && params[i] ? adup(g->model, params[i]) : NULL;
    }
}

/* A subgraph: out = Add(x, outer) where `outer` comes from the enclosing graph. */
static kn_graph *make_body(kn_model *m, kn_graph *parent, const char *name)
{
    kn_graph *b = kn_graph_new(m, parent);
    b->name = adup(m, name);
    const char *ins[] = {"bx", "outer"}, *outs[] = {"by"};
    add_node(b, "Add", "body_add", 2, ins, 1, outs, 0);
    int x = val(b, "bx"), y = val(b, "by");
    b->values[val(b, "outer")].is_outer = true;
    kn_graph_add_input(b, x);
    kn_graph_add_output(b, y);
    int64_t d[1] = {-1};
    const char *p[1] = {"n"};
    set_type(b, x, KN_TYPE_TENSOR, KN_F32, 1, d, p);
    set_type(b, y, KN_TYPE_TENSOR, KN_F32, 1, d, NULL);
    return b;
}

static const kn_dtype all_dtypes[] = {KN_F32, KN_U8,  KN_I8,  KN_U16, KN_I16, KN_I32, KN_I64,
                                      KN_BOOL, KN_F16, KN_F64, KN_U32, KN_U64, KN_BF16};
#define N_DTYPES ((int)(sizeof all_dtypes / sizeof all_dtypes[0]))

static void fill_attrs(kn_model *m, kn_graph *g, kn_attr *a)
{
    kn_arena *ar = &m->arena;
    static const int64_t d23[2] = {2, 3}, d5[1] = {5}, d0[2] = {0, 4};
    int k = 0;
    a[k++] = (kn_attr){.name = "f", .type = KN_ATTR_FLOAT, .f = -1.5e-7f};
    a[k++] = (kn_attr){.name = "i", .type = KN_ATTR_INT, .i = -9007199254740993LL};
    char *sb = kn_arena_alloc(ar, 5); /* a string with a NUL inside */
    memcpy(sb, "ab\0c", 5);
    a[k++] = (kn_attr){.name = "s", .type = KN_ATTR_STRING, .s = sb, .s_len = 4};
    a[k++] = (kn_attr){.name = "t", .type = KN_ATTR_TENSOR, .t = make_tensor(m, KN_F32, 2, d23, 3)};
    a[k++] = (kn_attr){.name = "g", .type = KN_ATTR_GRAPH, .g = make_body(m, g, "then")};
    float *fl = kn_arena_calloc(ar, 3, sizeof *fl);
    fl[0] = 0.25f, fl[1] = -0.0f, fl[2] = 3e38f;
    a[k++] = (kn_attr){.name = "fs", .type = KN_ATTR_FLOATS, .n = 3, .floats = fl};
    int64_t *in = kn_arena_calloc(ar, 4, sizeof *in);
    in[0] = 0, in[1] = -1, in[2] = INT64_MAX, in[3] = INT64_MIN;
    a[k++] = (kn_attr){.name = "is", .type = KN_ATTR_INTS, .n = 4, .ints = in};
    const char **ss = kn_arena_calloc(ar, 2, sizeof *ss);
    ss[0] = "", ss[1] = "hello";
    a[k++] = (kn_attr){.name = "ss", .type = KN_ATTR_STRINGS, .n = 2, .strings = ss};
    kn_tensor **ts = kn_arena_calloc(ar, 2, sizeof *ts);
    ts[0] = make_tensor(m, KN_I64, 1, d5, 4);
    ts[1] = make_tensor(m, KN_F16, 2, d0, 5); /* zero elements */
    a[k++] = (kn_attr){.name = "ts", .type = KN_ATTR_TENSORS, .n = 2, .tensors = ts};
    kn_graph **gs = kn_arena_calloc(ar, 2, sizeof *gs);
    gs[0] = make_body(m, g, "b0");
    gs[1] = make_body(m, g, "b1");
    a[k++] = (kn_attr){.name = "gs", .type = KN_ATTR_GRAPHS, .n = 2, .graphs = gs};
    kn_tensor *sp = make_tensor(m, KN_F32, 2, d23, 6);
    float *spv = sp->data;
    for (int e = 0; e < 6; e++)
        spv[e] = e % 2 ? 0.0f : (float)e - 2.0f; /* zeros, a -0.0-free pattern with a 0 value */
    a[k++] = (kn_attr){.name = "sp", .type = KN_ATTR_SPARSE_TENSOR, .t = sp};
    /* TypeProto { tensor_type { elem_type: 1 } } as raw bytes, with a zero byte */
    static const char tp[] = {0x0a, 0x02, 0x08, 0x01};
    char *tpb = kn_arena_alloc(ar, sizeof tp + 1);
    memcpy(tpb, tp, sizeof tp);
    tpb[sizeof tp] = 0;
    a[k++] = (kn_attr){.name = "tp", .type = KN_ATTR_TYPE_PROTO, .s = tpb, .s_len = sizeof tp};
    a[k++] = (kn_attr){.name = "r", .type = KN_ATTR_INT, .ref_attr_name = "caller_attr"};
    a[k++] = (kn_attr){.name = "empty_ints", .type = KN_ATTR_INTS, .n = 0, .ints = in};
}
#define N_RICH_ATTRS 14

/* Initializers of every dtype, typed inputs/outputs, value_info, two domains,
 * metadata, an omitted optional input and a function. */
static kn_model *rich_model(void)
{
    kn_model *m = kn_model_new();
    m->ir_version = 9;
    m->producer_name = "test";
    m->model_version = 42;
    m->doc = "doc";
    m->domain = "org.test";
    m->n_opsets = 2;
    m->opsets = kn_arena_calloc(&m->arena, 2, sizeof *m->opsets);
    m->opsets[0] = (kn_opset_import){"", 17};
    m->opsets[1] = (kn_opset_import){"com.test", 3};
    m->n_metadata = 2;
    m->metadata = kn_arena_calloc(&m->arena, 2, sizeof *m->metadata);
    m->metadata[0] = (kn_metadata){"author", "me"};
    m->metadata[1] = (kn_metadata){"empty", ""};
    kn_graph *g = m->graph = kn_graph_new(m, NULL);
    g->name = "main";
    const char *ins[] = {"x", "", "w_f32"}, *outs[] = {"y", "", "z"};
    kn_node *n = add_node(g, "Custom", "n0", 3, ins, 3, outs, N_RICH_ATTRS);
    n->domain = "com.test";
    fill_attrs(m, g, n->attrs);
    const char *ins2[] = {"y"}, *outs2[] = {"out"};
    add_node(g, "Relu", "", 1, ins2, 1, outs2, 0);
    const char *ins3[] = {"z"}, *outs3[] = {"seq"};
    add_node(g, "SequenceConstruct", "n2", 1, ins3, 1, outs3, 0);
    /* a node in a domain the model does not import: the writer must import it */
    const char *outs4[] = {"opt"};
    kn_node *n3 = add_node(g, "Thing", "n3", 1, ins3, 1, outs4, 0);
    n3->domain = "com.other";
    n3->opset = 5;
    for (int d = 0; d < N_DTYPES; d++) {
        char name[32];
        snprintf(name, sizeof name, "w_%s", kn_dtype_name(all_dtypes[d]));
        int64_t dims[3] = {2, 1 + d % 3, 3};
        int id = val(g, name);
        g->values[id].init = make_tensor(m, all_dtypes[d], 1 + d % 3, dims, (unsigned)d);
        kn_type_from_tensor(&g->values[id].type, g->values[id].init);
        g->values[id].has_type = true;
    }
    int sc = val(g, "scalar");
    g->values[sc].init = make_tensor(m, KN_I32, 0, NULL, 9);
    int x = val(g, "x"), def = val(g, "with_default");
    kn_graph_add_input(g, x);
    kn_graph_add_input(g, def);
    g->values[def].is_input = g->values[x].is_input = true;
    g->values[def].init = make_tensor(m, KN_F32, 0, NULL, 11);
    int64_t xd[4] = {-1, 3, -1, 7};
    const char *xp[4] = {"batch", NULL, NULL, NULL};
    set_type(g, x, KN_TYPE_TENSOR, KN_F32, 4, xd, xp);
    set_type(g, def, KN_TYPE_TENSOR, KN_F32, 0, NULL, NULL);
    kn_graph_add_output(g, val(g, "out"));
    kn_graph_add_output(g, val(g, "seq"));
    kn_graph_add_output(g, val(g, "opt"));
    set_type(g, val(g, "out"), KN_TYPE_TENSOR, KN_F32, -1, NULL, NULL);
    int64_t sd[1] = {-1};
    set_type(g, val(g, "seq"), KN_TYPE_SEQUENCE, KN_F64, 1, sd, NULL);
    set_type(g, val(g, "opt"), KN_TYPE_OPTIONAL, KN_UNDEFINED, -1, NULL, NULL);
    int64_t zd[2] = {5, 0};
    set_type(g, val(g, "y"), KN_TYPE_TENSOR, KN_BF16, 2, zd, NULL);   /* value_info */
    set_type(g, val(g, "z"), KN_TYPE_SPARSE, KN_I8, 2, zd, NULL);     /* value_info */
    g->values[val(g, "z")].type_inferred = false;
    /* a function */
    m->n_functions = 1;
    kn_function *fn = m->functions = kn_arena_calloc(&m->arena, 1, sizeof *fn);
    fn->name = "Fn";
    fn->domain = "com.test";
    fn->n_inputs = 1, fn->n_outputs = 1, fn->n_attrs = 1;
    static const char *fin[] = {"a"}, *fout[] = {"b"}, *fattr[] = {"alpha"};
    fn->inputs = fin, fn->outputs = fout, fn->attrs = fattr;
    fn->n_opsets = 1;
    fn->opsets = kn_arena_calloc(&m->arena, 1, sizeof *fn->opsets);
    fn->opsets[0] = (kn_opset_import){"", 17};
    fn->body = kn_graph_new(m, NULL);
    const char *fa[] = {"a"}, *fb[] = {"b"};
    kn_node *fnode = add_node(fn->body, "LeakyRelu", "", 1, fa, 1, fb, 1);
    fnode->attrs[0] = (kn_attr){.name = "alpha", .type = KN_ATTR_FLOAT, .ref_attr_name = "alpha"};
    fn->n_attr_defaults = 1;
    fn->attr_defaults = kn_arena_calloc(&m->arena, 1, sizeof(kn_attr));
    fn->attr_defaults[0] = (kn_attr){.name = "beta", .type = KN_ATTR_FLOAT, .f = 0.5f};
    return m;
}

/* ---- field-by-field comparison ---- */

static bool str_eq(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

static void check_tensor(const kn_tensor *a, const kn_tensor *b)
{
    CHECK(a && b);
    if (!a || !b)
        return;
    CHECK_EQ_INT(a->dtype, b->dtype);
    CHECK_EQ_INT(a->rank, b->rank);
    CHECK(!memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank));
    CHECK_EQ_INT(a->nbytes, b->nbytes);
    CHECK(a->nbytes == b->nbytes && (!a->nbytes || !memcmp(a->data, b->data, a->nbytes)));
}

static void check_type(const kn_value *a, const kn_value *b)
{
    CHECK_EQ_INT(a->has_type, b->has_type);
    if (!a->has_type || !b->has_type)
        return;
    CHECK_EQ_INT(a->type.kind, b->type.kind);
    CHECK_EQ_INT(a->type.dtype, b->type.dtype);
    CHECK_EQ_INT(a->type.rank, b->type.rank);
    for (int i = 0; i < a->type.rank && i < b->type.rank; i++) {
        CHECK_EQ_INT(a->type.dims[i].value, b->type.dims[i].value);
        CHECK(str_eq(a->type.dims[i].param, b->type.dims[i].param));
    }
}

static void check_graph(const kn_graph *a, const kn_graph *b);

static void check_attr(const kn_attr *a, const kn_attr *b)
{
    CHECK(str_eq(a->name, b->name));
    CHECK_EQ_INT(a->type, b->type);
    CHECK(str_eq(a->ref_attr_name, b->ref_attr_name));
    if (a->ref_attr_name || a->type != b->type)
        return;
    switch (a->type) {
    case KN_ATTR_FLOAT: CHECK(!memcmp(&a->f, &b->f, 4)); break;
    case KN_ATTR_INT: CHECK_EQ_INT(a->i, b->i); break;
    case KN_ATTR_STRING:
    case KN_ATTR_TYPE_PROTO:
        CHECK_EQ_INT(a->s_len, b->s_len);
        CHECK(a->s_len == b->s_len && !memcmp(a->s, b->s, a->s_len));
        break;
    case KN_ATTR_TENSOR: case KN_ATTR_SPARSE_TENSOR: check_tensor(a->t, b->t); break;
    case KN_ATTR_GRAPH: check_graph(a->g, b->g); break;
    default: break;
    }
    bool list = a->type == KN_ATTR_FLOATS || a->type == KN_ATTR_INTS || a->type == KN_ATTR_STRINGS ||
                a->type == KN_ATTR_TENSORS || a->type == KN_ATTR_GRAPHS;
    if (list)
        CHECK_EQ_INT(a->n, b->n);
    for (int k = 0; list && k < a->n && k < b->n; k++) {
        switch (a->type) {
        case KN_ATTR_FLOATS: CHECK(!memcmp(&a->floats[k], &b->floats[k], 4)); break;
        case KN_ATTR_INTS: CHECK_EQ_INT(a->ints[k], b->ints[k]); break;
        case KN_ATTR_STRINGS: CHECK(str_eq(a->strings[k], b->strings[k])); break;
        case KN_ATTR_TENSORS: check_tensor(a->tensors[k], b->tensors[k]); break;
        case KN_ATTR_GRAPHS: check_graph(a->graphs[k], b->graphs[k]); break;
        default: break;
        }
    }
}

static const char *vname(const kn_graph *g, int id)
{
    return id >= 0 ? g->values[id].name : "";
}

static void check_node(const kn_graph *ga, const kn_node *a, const kn_graph *gb, const kn_node *b)
{
    CHECK(str_eq(a->name, b->name));
    CHECK(str_eq(a->op_type, b->op_type));
    CHECK(str_eq(a->domain, b->domain));
    CHECK_EQ_INT(a->n_in, b->n_in);
    CHECK_EQ_INT(a->n_out, b->n_out);
    for (int k = 0; k < a->n_in && k < b->n_in; k++)
        CHECK(str_eq(vname(ga, a->in[k]), vname(gb, b->in[k])));
    for (int k = 0; k < a->n_out && k < b->n_out; k++)
        CHECK(str_eq(vname(ga, a->out[k]), vname(gb, b->out[k])));
    CHECK_EQ_INT(a->n_attr, b->n_attr);
    for (int k = 0; k < a->n_attr && k < b->n_attr; k++)
        check_attr(&a->attrs[k], &b->attrs[k]);
}

/* Values of a that are defined in a (initializers, inputs, typed node outputs)
 * must be found in b with the same data and type. */
static void check_values(const kn_graph *a, const kn_graph *b)
{
    for (int v = 0; v < a->n_values; v++) {
        const kn_value *va = &a->values[v];
        if (va->is_outer)
            continue;
        int id = kn_graph_find(b, va->name);
        CHECK(id >= 0);
        if (id < 0) {
            fprintf(stderr, "  value '%s' missing after the round trip\n", va->name);
            continue;
        }
        const kn_value *vb = &b->values[id];
        CHECK_EQ_INT(va->init != NULL, vb->init != NULL);
        if (va->init && vb->init)
            check_tensor(va->init, vb->init);
        /* map types are not written (the IR lacks their key type) */
        if (va->has_type && va->type.kind != KN_TYPE_UNKNOWN && va->type.kind != KN_TYPE_MAP)
            check_type(va, vb);
    }
}

static void check_graph(const kn_graph *a, const kn_graph *b)
{
    CHECK(a && b);
    if (!a || !b)
        return;
    CHECK(str_eq(a->name, b->name));
    CHECK_EQ_INT(a->n_nodes, b->n_nodes);
    for (int i = 0; i < a->n_nodes && i < b->n_nodes; i++)
        check_node(a, &a->nodes[i], b, &b->nodes[i]);
    CHECK_EQ_INT(a->n_inputs, b->n_inputs);
    CHECK_EQ_INT(a->n_outputs, b->n_outputs);
    for (int k = 0; k < a->n_inputs && k < b->n_inputs; k++)
        CHECK(str_eq(vname(a, a->inputs[k]), vname(b, b->inputs[k])));
    for (int k = 0; k < a->n_outputs && k < b->n_outputs; k++)
        CHECK(str_eq(vname(a, a->outputs[k]), vname(b, b->outputs[k])));
    check_values(a, b);
}

static void check_model(const kn_model *a, const kn_model *b)
{
    CHECK(str_eq(b->producer_name, "kiln"));
    CHECK(str_eq(a->domain, b->domain));
    CHECK(str_eq(a->doc, b->doc));
    CHECK_EQ_INT(a->model_version, b->model_version);
    for (int i = 0; i < a->n_opsets; i++)
        CHECK_EQ_INT(kn_model_opset(b, a->opsets[i].domain), a->opsets[i].version);
    CHECK_EQ_INT(a->n_metadata, b->n_metadata);
    for (int i = 0; i < a->n_metadata && i < b->n_metadata; i++) {
        CHECK(str_eq(a->metadata[i].key, b->metadata[i].key));
        CHECK(str_eq(a->metadata[i].value, b->metadata[i].value));
    }
    CHECK_EQ_INT(a->n_functions, b->n_functions);
    for (int f = 0; f < a->n_functions && f < b->n_functions; f++) {
        const kn_function *fa = &a->functions[f], *fb = &b->functions[f];
        CHECK(str_eq(fa->name, fb->name) && str_eq(fa->domain, fb->domain));
        CHECK(fa->n_inputs == fb->n_inputs && fa->n_outputs == fb->n_outputs && fa->n_attrs == fb->n_attrs);
        CHECK(fb->n_attrs == 1 && str_eq(fa->attrs[0], fb->attrs[0]));
        CHECK_EQ_INT(fa->n_attr_defaults, fb->n_attr_defaults);
        if (fa->n_attr_defaults == fb->n_attr_defaults && fa->n_attr_defaults)
            check_attr(&fa->attr_defaults[0], &fb->attr_defaults[0]);
        CHECK_EQ_INT(fa->body->n_nodes, fb->body->n_nodes);
        for (int i = 0; i < fa->body->n_nodes && i < fb->body->n_nodes; i++)
            check_node(fa->body, &fa->body->nodes[i], fb->body, &fb->body->nodes[i]);
    }
    check_graph(a->graph, b->graph);
}

/* Write m to memory and parse it back (no inlining, no finalize). */
static kn_model *round_trip(const kn_model *m, void **buf, size_t *len)
{
    kn_error err = {0};
    int rc = kn_onnx_write_buffer(m, buf, len, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  write: %s\n", err.msg);
        return NULL;
    }
    kn_model *b = NULL;
    rc = kn_onnx_parse_buffer(*buf, *len, NULL, false, &b, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "  read back: %s\n", err.msg);
    return b;
}

static void test_rich_model(void)
{
    kn_model *m = rich_model();
    void *buf = NULL;
    size_t len = 0;
    kn_model *b = round_trip(m, &buf, &len);
    if (b) {
        check_model(m, b);
        CHECK_EQ_INT(b->ir_version, 9);
        CHECK_EQ_INT(kn_model_opset(b, "com.other"), 5); /* imported because a node uses it */
        /* the sparse attribute came back dense with the same values */
        const kn_attr *sp = kn_attr_find(&b->graph->nodes[0], "sp");
        CHECK(sp && sp->type == KN_ATTR_SPARSE_TENSOR && sp->t && sp->t->numel == 6);
        /* a written, re-read model writes the same bytes again */
        void *buf2 = NULL;
        size_t len2 = 0;
        kn_model *c = round_trip(b, &buf2, &len2);
        CHECK(len2 == len && buf2 && !memcmp(buf, buf2, len));
        kn_model_free(c);
        free(buf2);
    }
    kn_model_free(b);
    free(buf);
    kn_model_free(m);
}

/* The declared/inferred split of value_info: inferred types only on request. */
static void test_inferred_types(void)
{
    kn_model *m = rich_model();
    kn_graph *g = m->graph;
    int y = kn_graph_find(g, "y");
    g->values[y].type_inferred = true;
    /* a graph output declared float without a shape, the shape inferred */
    kn_value *out = &g->values[kn_graph_find(g, "out")];
    out->type_inferred = true;
    out->type.rank = 1;
    out->type.dims[0] = (kn_dim){.value = 4};
    void *buf = NULL;
    size_t len = 0;
    kn_model *b = round_trip(m, &buf, &len);
    if (b) {
        CHECK(!b->graph->values[kn_graph_find(b->graph, "y")].has_type);
        const kn_value *bo = &b->graph->values[kn_graph_find(b->graph, "out")];
        CHECK(bo->has_type && bo->type.dtype == KN_F32 && bo->type.rank == -1);
    }
    kn_model_free(b);
    free(buf);
    char dir[] = "/tmp/kiln_writer_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    kn_onnx_write_options o;
    kn_onnx_write_options_init(&o);
    o.inferred_types = true;
    kn_error err = {0};
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_OK);
    kn_model *c = NULL;
    CHECK_EQ_INT(kn_onnx_parse_file(path, &c, &err), KN_OK);
    if (c) {
        const kn_value *v = &c->graph->values[kn_graph_find(c->graph, "y")];
        CHECK(v->has_type && v->type.dtype == KN_BF16 && v->type.rank == 2);
        v = &c->graph->values[kn_graph_find(c->graph, "out")];
        CHECK(v->has_type && v->type.rank == 1 && v->type.dims[0].value == 4);
    }
    kn_model_free(c);
    unlink(path);
    rmdir(dir);
    kn_model_free(m);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static long long fsize(const char *p)
{
    struct stat st;
    return stat(p, &st) ? -1 : (long long)st.st_size;
}

static void test_external_data(void)
{
    kn_model *m = rich_model();
    char dir[] = "/tmp/kiln_writer_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], data[256];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    snprintf(data, sizeof data, "%s/model.onnx.data", dir);
    kn_onnx_write_options o;
    kn_onnx_write_options_init(&o);
    o.external = KN_ONNX_EXTERNAL_ALWAYS;
    o.external_min_bytes = 0; /* every non-empty initializer goes out */
    kn_error err = {0};
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_OK);
    CHECK(fsize(data) > 0);
    CHECK_EQ_INT(count_files(dir), 2); /* no temporary files left */
    kn_model *b = NULL;
    CHECK_EQ_INT(kn_onnx_parse_file(path, &b, &err), KN_OK);
    if (b)
        check_model(m, b);
    kn_model_free(b);
    /* without the data file the model cannot be read */
    CHECK(unlink(data) == 0);
    b = NULL;
    CHECK(kn_onnx_parse_file(path, &b, &err) != KN_OK);
    kn_model_free(b);
    /* a named data file; below the size floor nothing goes out */
    o.external_name = "weights.bin";
    o.external_min_bytes = 1 << 20;
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_OK);
    snprintf(data, sizeof data, "%s/weights.bin", dir);
    CHECK_EQ_INT(fsize(data), 0);
    unlink(data);
    /* AUTO goes external only past the threshold on the initializer total */
    kn_onnx_write_options_init(&o);
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_OK);
    snprintf(data, sizeof data, "%s/model.onnx.data", dir);
    CHECK_EQ_INT(fsize(data), -1);
    o.auto_bytes = 100;
    o.external_min_bytes = 16;
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_OK);
    CHECK(fsize(data) > 100);
    b = NULL;
    CHECK_EQ_INT(kn_onnx_parse_file(path, &b, &err), KN_OK);
    if (b)
        check_model(m, b);
    kn_model_free(b);
    unlink(data);
    o.external = KN_ONNX_EXTERNAL_ALWAYS;
    /* data file names that would leave the directory, or replace the model */
    o.external_name = "../escape.bin";
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_ERR_ARG);
    CHECK(strstr(err.msg, "plain file name") != NULL);
    o.external_name = "model.onnx";
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_ERR_ARG);
    char long_name[400];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    o.external_name = long_name;
    CHECK_EQ_INT(kn_onnx_write_file(m, path, &o, &err), KN_ERR_ARG);
    CHECK(strstr(err.msg, "too long") != NULL);
    CHECK_EQ_INT(count_files(dir), 1);
    unlink(path);
    rmdir(dir);
    kn_model_free(m);
}

static void test_write_failures(void)
{
    kn_model *m = rich_model();
    kn_error err = {0};
    CHECK_EQ_INT(kn_onnx_write_file(m, "/nonexistent/dir/m.onnx", NULL, &err), KN_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/dir/m.onnx") != NULL);
    char dir[] = "/tmp/kiln_writer_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    CHECK_EQ_INT(kn_onnx_write_file(m, path, NULL, &err), KN_OK);
    long long good = fsize(path);
    CHECK(good > 0);
    /* an initializer the writer cannot encode: the old file stays as it was */
    kn_graph *g = m->graph;
    kn_tensor *t = g->values[kn_graph_find(g, "scalar")].init;
    kn_dtype saved = t->dtype;
    t->dtype = KN_STRING;
    CHECK_EQ_INT(kn_onnx_write_file(m, path, NULL, &err), KN_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "scalar") != NULL);
    CHECK_EQ_INT(fsize(path), good);
    CHECK_EQ_INT(count_files(dir), 1);
    void *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(kn_onnx_write_buffer(m, &buf, &len, &err), KN_ERR_UNSUPPORTED);
    t->dtype = saved;
    t->kind = KN_VALUE_SEQUENCE;
    CHECK_EQ_INT(kn_onnx_write_buffer(m, &buf, &len, &err), KN_ERR_UNSUPPORTED);
    t->kind = KN_VALUE_TENSOR;
    /* the path is a directory */
    CHECK_EQ_INT(kn_onnx_write_file(m, dir, NULL, &err), KN_ERR_IO);
    CHECK(strstr(err.msg, "directory") != NULL);
    kn_onnx_write_options o;
    kn_onnx_write_options_init(&o);
    o.external = KN_ONNX_EXTERNAL_ALWAYS;
    CHECK_EQ_INT(kn_onnx_write_file(m, dir, &o, &err), KN_ERR_IO);
    CHECK_EQ_INT(count_files(dir), 1);
    unlink(path);
    rmdir(dir);
    kn_model_free(m);
    kn_model empty = {0};
    CHECK_EQ_INT(kn_onnx_write_buffer(&empty, &buf, &len, &err), KN_ERR_ARG);
}

/* ---- the encoder ---- */

static void test_pbwrite(void)
{
    kn_pbw w = {0};
    static const uint64_t vals[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, (uint64_t)INT64_MAX, UINT64_MAX};
    for (int i = 0; i < 9; i++)
        kn_pbw_int(&w, 1, (int64_t)vals[i]);
    kn_pbw_mark outer = kn_pbw_begin(&w, 2);
    kn_pbw_mark empty = kn_pbw_begin(&w, 3);
    kn_pbw_end(&w, empty);
    uint8_t big[300];
    for (int i = 0; i < 300; i++)
        big[i] = (uint8_t)i;
    kn_pbw_bytes(&w, 4, big, sizeof big); /* 2-byte length inside a nested message */
    kn_pbw_end(&w, outer);
    kn_pbw_float(&w, 5, -2.5f);
    CHECK(kn_pbw_ok(&w));
    kn_pb c;
    kn_pb_init(&c, w.p, w.n);
    kn_pb_field f;
    kn_error err;
    for (int i = 0; i < 9; i++) {
        CHECK(kn_pb_next(&c, &f, "t", &err) == KN_OK && f.num == 1 && f.u == vals[i]);
    }
    CHECK(kn_pb_next(&c, &f, "t", &err) == KN_OK && f.num == 2 && f.wire == KN_PB_LEN);
    kn_pb in;
    kn_pb_init(&in, f.data, f.len);
    kn_pb_field g;
    CHECK(kn_pb_next(&in, &g, "t", &err) == KN_OK && g.num == 3 && g.len == 0);
    CHECK(kn_pb_next(&in, &g, "t", &err) == KN_OK && g.num == 4 && g.len == 300 &&
          !memcmp(g.data, big, 300));
    CHECK(!kn_pb_more(&in));
    CHECK(kn_pb_next(&c, &f, "t", &err) == KN_OK && f.num == 5 && f.wire == KN_PB_I32);
    float fv;
    uint32_t u = (uint32_t)f.u;
    memcpy(&fv, &u, 4);
    CHECK(fv == -2.5f);
    CHECK(!kn_pb_more(&c));
    kn_pbw_free(&w);
    /* the size limit makes every later write a no-op and is reported */
    w.limit = 64;
    kn_pbw_bytes(&w, 1, big, 100);
    CHECK(!kn_pbw_ok(&w) && w.too_big);
    size_t n_failed = w.n;
    kn_pbw_int(&w, 1, 5);
    kn_pbw_end(&w, kn_pbw_begin(&w, 2));
    CHECK(w.n == n_failed && w.n <= 64);
    kn_pbw_free(&w);
}

/* ---- real models ---- */

static const char *shared_dir(void)
{
    const char *env = getenv("KILN_SHARED_DIR");
    return env && env[0] ? env : KILN_SHARED_DIR;
}

/* Parse a model file, write it, read that back, write again: the second write must
 * reproduce the first byte for byte.  Returns false when the file cannot be parsed
 * (not the writer's business). */
static bool check_fixed_point(const char *path)
{
    kn_error err = {0};
    kn_model *a = NULL;
    if (kn_onnx_parse_file(path, &a, &err))
        return false;
    void *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    int rc = kn_onnx_write_buffer(a, &b1, &l1, &err);
    CHECK_EQ_INT(rc, KN_OK);
    kn_model *b = NULL;
    if (!rc) {
        rc = kn_onnx_parse_buffer(b1, l1, NULL, true, &b, &err);
        CHECK_EQ_INT(rc, KN_OK);
    }
    if (!rc) {
        check_graph(a->graph, b->graph);
        CHECK_EQ_INT(kn_onnx_write_buffer(b, &b2, &l2, &err), KN_OK);
        kn_model *c = NULL;
        CHECK_EQ_INT(kn_onnx_parse_buffer(b2, l2, NULL, true, &c, &err), KN_OK);
        void *b3 = NULL;
        size_t l3 = 0;
        if (c)
            CHECK_EQ_INT(kn_onnx_write_buffer(c, &b3, &l3, &err), KN_OK);
        bool same = l3 == l2 && b3 && !memcmp(b2, b3, l2);
        CHECK(same);
        if (!same)
            fprintf(stderr, "  %s: writing is not a fixed point (%zu vs %zu bytes)\n", path, l2, l3);
        kn_model_free(c);
        free(b3);
    }
    if (rc)
        fprintf(stderr, "  %s: %s\n", path, err.msg);
    kn_model_free(b);
    free(b1);
    free(b2);
    kn_model_free(a);
    return true;
}

static void test_conformance_models(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/onnx-backend-tests/node", shared_dir());
    DIR *d = opendir(root);
    if (!d) {
        printf("  (no conformance cases at %s: skipped)\n", root);
        return;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s/model.onnx", root, e->d_name);
        n += check_fixed_point(path);
    }
    closedir(d);
    printf("  %d conformance models written and re-read\n", n);
    CHECK(n > 1000);
}

/* Run g on the NAME.in.<input>.npy files; outs get n_out tensors. */
static int run_on_npy(const kn_graph *g, const char *base, kn_tensor *ins, kn_tensor *outs)
{
    const kn_tensor *inp[16] = {0};
    kn_error err = {0};
    int n_in = g->n_inputs < 16 ? g->n_inputs : 16;
    for (int k = 0; k < n_in; k++) {
        const kn_value *v = &g->values[g->inputs[k]];
        char path[2048];
        snprintf(path, sizeof path, "%s.in.%s.npy", base, v->name);
        if (!v->init && kn_npy_read_file(path, &ins[k], &err) == KN_OK)
            inp[k] = &ins[k];
    }
    int rc = kn_exec_graph(g, NULL, n_in, inp, g->n_outputs, outs, &err);
    if (rc)
        fprintf(stderr, "  %s: %s\n", base, err.msg);
    return rc;
}

static void check_same_outputs(const kn_model *a, const kn_model *b, const char *base)
{
    kn_tensor ia[16] = {{0}}, ib[16] = {{0}}, oa[16] = {{0}}, ob[16] = {{0}};
    CHECK(a->graph->n_outputs <= 16 && a->graph->n_outputs == b->graph->n_outputs);
    if (a->graph->n_outputs > 16)
        return;
    CHECK_EQ_INT(run_on_npy(a->graph, base, ia, oa), KN_OK);
    CHECK_EQ_INT(run_on_npy(b->graph, base, ib, ob), KN_OK);
    for (int k = 0; k < a->graph->n_outputs; k++) {
        CHECK(oa[k].nbytes == ob[k].nbytes && oa[k].nbytes > 0 && !memcmp(oa[k].data, ob[k].data, oa[k].nbytes));
        kn_tensor_release(&oa[k]);
        kn_tensor_release(&ob[k]);
    }
    for (int k = 0; k < 16; k++) {
        kn_tensor_release(&ia[k]);
        kn_tensor_release(&ib[k]);
    }
}

/* Every shared model: inline and with external data, re-read models compute
 * bit-identical outputs on the recorded inputs. */
static void test_shared_models(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/models", shared_dir());
    DIR *d = opendir(root);
    if (!d) {
        printf("  (no shared models at %s: skipped)\n", root);
        return;
    }
    char tmp[] = "/tmp/kiln_writer_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".onnx"))
            continue;
        char path[2048], base[2048], out[2048];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        snprintf(base, sizeof base, "%s/%.*s", root, (int)(len - 5), e->d_name);
        snprintf(out, sizeof out, "%s/%s", tmp, e->d_name);
        check_fixed_point(path);
        kn_error err = {0};
        kn_model *a = NULL, *b = NULL;
        CHECK_EQ_INT(kn_onnx_load_file(path, &a, &err), KN_OK);
        kn_onnx_write_options o;
        kn_onnx_write_options_init(&o);
        o.external = n % 2 ? KN_ONNX_EXTERNAL_ALWAYS : KN_ONNX_EXTERNAL_NEVER;
        CHECK_EQ_INT(kn_onnx_write_file(a, out, &o, &err), KN_OK);
        CHECK_EQ_INT(kn_onnx_load_file(out, &b, &err), KN_OK);
        if (a && b)
            check_same_outputs(a, b, base);
        kn_model_free(a);
        kn_model_free(b);
        unlink(out);
        strcat(out, ".data");
        unlink(out);
        n++;
    }
    closedir(d);
    rmdir(tmp);
    printf("  %d shared models round-tripped\n", n);
    CHECK(n > 0);
}

int main(void)
{
    static const kt_case cases[] = {
        TEST_CASE(test_pbwrite),
        TEST_CASE(test_rich_model),
        TEST_CASE(test_inferred_types),
        TEST_CASE(test_external_data),
        TEST_CASE(test_write_failures),
        TEST_CASE(test_conformance_models),
        TEST_CASE(test_shared_models),
    };
    return kt_run(cases, (int)(sizeof cases / sizeof cases[0]));
}
