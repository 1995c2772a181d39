/* test_ops_sequence.c - unit tests for the 'sequence' operator family (sequences
 * and optionals): positions out of range, negative positions, dtype mismatches,
 * empty sequences, ConcatFromSequence shape checks, SplitToSequence remainders,
 * SequenceMap with mixed inputs, and the executor refusing lists for plain ops.
 * Each test runs one node through a one-node graph and the reference executor. */
#include "test.h"

#include <stdint.h>

#include "exec/exec.h"

#define MAX_IO 8

/* ---- building values and attributes ---- */

static kn_tensor tensor(kn_dtype dt, int rank, const int64_t *dims, void *data)
{
    kn_tensor t = {0};
    kn_error err;
    kn_tensor_set_shape(&t, dt, rank, dims, &err);
    t.data = data;
    return t;
}

/* An owned list record holding copies of items (release with kn_tensor_release). */
static kn_tensor list_of(kn_value_kind kind, kn_dtype dt, int n, const kn_tensor *items)
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

static kn_attr attr_int(const char *name, int64_t v)
{
    kn_attr a = {0};
    a.name = name;
    a.type = KN_ATTR_INT;
    a.i = v;
    return a;
}

/* ---- running one node ---- */

typedef struct node_spec {
    const char *op;
    int opset;
    int n_in;
    const kn_tensor *in[MAX_IO]; /* NULL: omitted optional input */
    int n_out;
    int n_attr;
    kn_attr attrs[MAX_IO];
    bool identity_body;          /* add a 'body' graph: n_in inputs, outputs Identity(input k) */
} node_spec;

/* Body graph whose output k is Identity of input k. */
static kn_graph *identity_body(kn_model *m, kn_graph *parent, int n_in, int n_out)
{
    kn_graph *b = kn_graph_new(m, parent);
    char name[32];
    for (int i = 0; i < n_in; i++) {
        snprintf(name, sizeof name, "b_in%d", i);
        kn_graph_add_input(b, kn_graph_value(b, name));
    }
    for (int k = 0; k < n_out; k++) {
        kn_node *n = kn_graph_add_node(b);
        snprintf(name, sizeof name, "b_out%d", k);
        int out = kn_graph_value(b, name);
        n->name = "body_identity";
        n->op_type = "Identity";
        n->domain = "";
        n->n_in = 1;
        n->in = kn_arena_calloc(&m->arena, 1, sizeof(int));
        n->in[0] = b->inputs[k < n_in ? k : 0];
        n->n_out = 1;
        n->out = kn_arena_calloc(&m->arena, 1, sizeof(int));
        n->out[0] = out;
        kn_graph_add_output(b, out);
    }
    return b;
}

/* Run the node; outs[0..n_out) receive owned values on success (release them). */
static int run_node(const node_spec *s, kn_tensor *outs, kn_error *err)
{
    kn_model *m = kn_model_new();
    m->n_opsets = 1;
    m->opsets = kn_arena_calloc(&m->arena, 1, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = s->opset;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    int in_ids[MAX_IO], out_ids[MAX_IO], n_graph_in = 0;
    const kn_tensor *graph_in[MAX_IO];
    char name[32];
    for (int i = 0; i < s->n_in; i++) {
        in_ids[i] = -1;
        if (!s->in[i])
            continue;
        snprintf(name, sizeof name, "in%d", i);
        in_ids[i] = kn_graph_value(g, name);
        kn_graph_add_input(g, in_ids[i]);
        graph_in[n_graph_in++] = s->in[i];
    }
    for (int i = 0; i < s->n_out; i++) {
        snprintf(name, sizeof name, "out%d", i);
        out_ids[i] = kn_graph_value(g, name);
        kn_graph_add_output(g, out_ids[i]);
    }
    kn_node *n = kn_graph_add_node(g);
    n->name = "node";
    n->op_type = s->op;
    n->domain = "";
    n->n_in = s->n_in;
    n->in = kn_arena_calloc(&m->arena, (size_t)(s->n_in ? s->n_in : 1), sizeof(int));
    memcpy(n->in, in_ids, sizeof(int) * (size_t)s->n_in);
    n->n_out = s->n_out;
    n->out = kn_arena_calloc(&m->arena, (size_t)s->n_out, sizeof(int));
    memcpy(n->out, out_ids, sizeof(int) * (size_t)s->n_out);
    int n_attr = s->n_attr + (s->identity_body ? 1 : 0);
    n->n_attr = n_attr;
    n->attrs = kn_arena_calloc(&m->arena, (size_t)(n_attr ? n_attr : 1), sizeof(kn_attr));
    memcpy(n->attrs, s->attrs, sizeof(kn_attr) * (size_t)s->n_attr);
    if (s->identity_body) {
        kn_attr *a = &n->attrs[s->n_attr];
        a->name = "body";
        a->type = KN_ATTR_GRAPH;
        a->g = identity_body(m, g, s->n_in, s->n_out);
    }
    int rc = kn_model_finalize(m, err);
    if (!rc)
        rc = kn_exec_graph(g, NULL, n_graph_in, graph_in, s->n_out, outs, err);
    kn_model_free(m);
    return rc;
}

/* Run a node expected to fail with the given code. */
static void expect_fail(const node_spec *s, int code)
{
    kn_tensor outs[MAX_IO];
    kn_error err = {0};
    int rc = run_node(s, outs, &err);
    CHECK_EQ_INT(rc, code);
    if (rc == KN_OK)
        for (int i = 0; i < s->n_out; i++)
            kn_tensor_release(&outs[i]);
}

/* Run a node expected to succeed; returns output 0 (owned; release it). */
static kn_tensor expect_ok(const node_spec *s)
{
    kn_tensor outs[MAX_IO];
    kn_error err = {0};
    int rc = run_node(s, outs, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  %s: %s\n", s->op, err.msg);
        kn_tensor none;
        kn_value_init_list(&none, KN_VALUE_SEQUENCE, KN_UNDEFINED);
        return none;
    }
    for (int i = 1; i < s->n_out; i++)
        kn_tensor_release(&outs[i]);
    return outs[0];
}

static bool same_dims(const kn_tensor *t, int rank, const int64_t *dims)
{
    if (t->kind != KN_VALUE_TENSOR || t->rank != rank)
        return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i])
            return false;
    return true;
}

/* Item t holds int64 values want[0..n). */
static bool holds_i64(const kn_tensor *t, const int64_t *want, int64_t n)
{
    return t->kind == KN_VALUE_TENSOR && t->dtype == KN_I64 && t->numel == n &&
           (n == 0 || memcmp(t->data, want, sizeof(int64_t) * (size_t)n) == 0);
}

static int64_t iota[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                           16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static int64_t one = 1, two = 2, three = 3;

/* A sequence [ [0], [1], [2] ] of int64 1-D tensors. */
static kn_tensor three_items(void)
{
    kn_tensor items[3] = {tensor(KN_I64, 1, &one, &iota[0]), tensor(KN_I64, 1, &one, &iota[1]),
                          tensor(KN_I64, 1, &one, &iota[2])};
    return list_of(KN_VALUE_SEQUENCE, KN_I64, 3, items);
}

/* ---- tests ---- */

static void test_construct_and_length(void)
{
    kn_tensor a = tensor(KN_I64, 1, &two, iota), b = tensor(KN_I64, 0, NULL, &iota[5]);
    node_spec s = {"SequenceConstruct", 11, 2, {&a, &b}, 1, 0, {{0}}, false};
    kn_tensor seq = expect_ok(&s);
    CHECK_EQ_INT(seq.kind, KN_VALUE_SEQUENCE);
    CHECK_EQ_INT(seq.n_items, 2);
    CHECK_EQ_INT(seq.dtype, KN_I64);
    if (seq.n_items == 2) {
        CHECK(holds_i64(&seq.items[0], iota, 2));
        CHECK(holds_i64(&seq.items[1], &iota[5], 1) && seq.items[1].rank == 0);
    }
    node_spec len = {"SequenceLength", 11, 1, {&seq}, 1, 0, {{0}}, false};
    kn_tensor l = expect_ok(&len);
    CHECK(holds_i64(&l, &two, 1) && l.rank == 0);
    kn_tensor_release(&l);
    kn_tensor_release(&seq);

    float f = 1;
    kn_tensor c = tensor(KN_F32, 0, NULL, &f);
    node_spec mix = {"SequenceConstruct", 11, 2, {&a, &c}, 1, 0, {{0}}, false};
    expect_fail(&mix, KN_ERR_ARG);

    node_spec empty = {"SequenceEmpty", 11, 0, {NULL}, 1, 1, {attr_int("dtype", KN_I32)}, false};
    kn_tensor e = expect_ok(&empty);
    CHECK(e.kind == KN_VALUE_SEQUENCE && e.n_items == 0 && e.dtype == KN_I32);
    node_spec elen = {"SequenceLength", 11, 1, {&e}, 1, 0, {{0}}, false};
    int64_t zero = 0;
    kn_tensor el = expect_ok(&elen);
    CHECK(holds_i64(&el, &zero, 1));
    kn_tensor_release(&el);
    kn_tensor_release(&e);

    node_spec bad_dt = {"SequenceEmpty", 11, 0, {NULL}, 1, 1, {attr_int("dtype", 999)}, false};
    expect_fail(&bad_dt, KN_ERR_MODEL);
}

static void test_insert(void)
{
    kn_tensor seq = three_items();
    kn_tensor v = tensor(KN_I64, 1, &one, &iota[9]);
    int64_t neg = -1, far = 4, end = 3, negfar = -4;
    kn_tensor p_neg = tensor(KN_I64, 0, NULL, &neg), p_far = tensor(KN_I64, 0, NULL, &far);
    kn_tensor p_end = tensor(KN_I64, 0, NULL, &end), p_negfar = tensor(KN_I64, 0, NULL, &negfar);

    node_spec dflt = {"SequenceInsert", 11, 2, {&seq, &v}, 1, 0, {{0}}, false};
    kn_tensor o = expect_ok(&dflt);
    CHECK_EQ_INT(o.n_items, 4);
    if (o.n_items == 4)
        CHECK(holds_i64(&o.items[3], &iota[9], 1));
    kn_tensor_release(&o);

    /* -1 inserts before the last item */
    node_spec at_neg = {"SequenceInsert", 11, 3, {&seq, &v, &p_neg}, 1, 0, {{0}}, false};
    o = expect_ok(&at_neg);
    CHECK_EQ_INT(o.n_items, 4);
    if (o.n_items == 4) {
        CHECK(holds_i64(&o.items[2], &iota[9], 1));
        CHECK(holds_i64(&o.items[3], &iota[2], 1));
    }
    kn_tensor_release(&o);

    node_spec at_end = {"SequenceInsert", 11, 3, {&seq, &v, &p_end}, 1, 0, {{0}}, false};
    o = expect_ok(&at_end);
    CHECK(o.n_items == 4 && holds_i64(&o.items[3], &iota[9], 1));
    kn_tensor_release(&o);

    node_spec past = {"SequenceInsert", 11, 3, {&seq, &v, &p_far}, 1, 0, {{0}}, false};
    expect_fail(&past, KN_ERR_ARG);
    node_spec before = {"SequenceInsert", 11, 3, {&seq, &v, &p_negfar}, 1, 0, {{0}}, false};
    expect_fail(&before, KN_ERR_ARG);

    float f = 2;
    kn_tensor wrong = tensor(KN_F32, 1, &one, &f);
    node_spec mismatch = {"SequenceInsert", 11, 2, {&seq, &wrong}, 1, 0, {{0}}, false};
    expect_fail(&mismatch, KN_ERR_ARG);

    float pf = 0;
    kn_tensor p_float = tensor(KN_F32, 0, NULL, &pf);
    node_spec fpos = {"SequenceInsert", 11, 3, {&seq, &v, &p_float}, 1, 0, {{0}}, false};
    expect_fail(&fpos, KN_ERR_ARG);

    /* a tensor where the sequence should be */
    node_spec not_seq = {"SequenceInsert", 11, 2, {&v, &v}, 1, 0, {{0}}, false};
    expect_fail(&not_seq, KN_ERR_ARG);
    kn_tensor_release(&seq);
}

static void test_erase_and_at(void)
{
    kn_tensor seq = three_items();
    int64_t neg = -3, far = 3, first = 0;
    kn_tensor p_neg = tensor(KN_I64, 0, NULL, &neg), p_far = tensor(KN_I64, 0, NULL, &far);
    kn_tensor p0 = tensor(KN_I64, 0, NULL, &first);

    node_spec dflt = {"SequenceErase", 11, 1, {&seq}, 1, 0, {{0}}, false};
    kn_tensor o = expect_ok(&dflt);
    CHECK(o.n_items == 2 && holds_i64(&o.items[1], &iota[1], 1));
    kn_tensor_release(&o);

    node_spec e0 = {"SequenceErase", 11, 2, {&seq, &p_neg}, 1, 0, {{0}}, false};
    o = expect_ok(&e0);
    CHECK(o.n_items == 2 && holds_i64(&o.items[0], &iota[1], 1));
    kn_tensor_release(&o);

    node_spec efar = {"SequenceErase", 11, 2, {&seq, &p_far}, 1, 0, {{0}}, false};
    expect_fail(&efar, KN_ERR_ARG);

    kn_tensor empty;
    kn_value_init_list(&empty, KN_VALUE_SEQUENCE, KN_I64);
    node_spec eempty = {"SequenceErase", 11, 1, {&empty}, 1, 0, {{0}}, false};
    expect_fail(&eempty, KN_ERR_ARG);

    node_spec at = {"SequenceAt", 11, 2, {&seq, &p_neg}, 1, 0, {{0}}, false};
    o = expect_ok(&at);
    CHECK(holds_i64(&o, &iota[0], 1));
    kn_tensor_release(&o);

    node_spec at_far = {"SequenceAt", 11, 2, {&seq, &p_far}, 1, 0, {{0}}, false};
    expect_fail(&at_far, KN_ERR_ARG);
    node_spec at_empty = {"SequenceAt", 11, 2, {&empty, &p0}, 1, 0, {{0}}, false};
    expect_fail(&at_empty, KN_ERR_ARG);
    int64_t two_pos[2] = {0, 1};
    kn_tensor p_vec = tensor(KN_I64, 1, &two, two_pos);
    node_spec at_vec = {"SequenceAt", 11, 2, {&seq, &p_vec}, 1, 0, {{0}}, false};
    expect_fail(&at_vec, KN_ERR_ARG);
    kn_tensor_release(&seq);
}

static void test_concat_from_sequence(void)
{
    int64_t d23[2] = {2, 3}, d21[2] = {2, 1}, d33[2] = {3, 3}, d20[2] = {2, 0};
    kn_tensor items[3] = {tensor(KN_I64, 2, d23, iota), tensor(KN_I64, 2, d21, &iota[10]),
                          tensor(KN_I64, 2, d20, NULL)};
    kn_tensor seq = list_of(KN_VALUE_SEQUENCE, KN_I64, 3, items);
    node_spec s = {"ConcatFromSequence", 11, 1, {&seq}, 1, 1, {attr_int("axis", -1)}, false};
    kn_tensor o = expect_ok(&s);
    int64_t d24[2] = {2, 4}, want[8] = {0, 1, 2, 10, 3, 4, 5, 11};
    CHECK(same_dims(&o, 2, d24) && holds_i64(&o, want, 8));
    kn_tensor_release(&o);

    node_spec axis0 = {"ConcatFromSequence", 11, 1, {&seq}, 1, 1, {attr_int("axis", 0)}, false};
    expect_fail(&axis0, KN_ERR_ARG);
    node_spec axis2 = {"ConcatFromSequence", 11, 1, {&seq}, 1, 1, {attr_int("axis", 2)}, false};
    expect_fail(&axis2, KN_ERR_ARG);
    node_spec noaxis = {"ConcatFromSequence", 11, 1, {&seq}, 1, 0, {{0}}, false};
    expect_fail(&noaxis, KN_ERR_MODEL);
    kn_tensor_release(&seq);

    /* new_axis stacks; axis may then be rank (here 2, also as -1) */
    kn_tensor same[2] = {tensor(KN_I64, 2, d23, iota), tensor(KN_I64, 2, d23, &iota[10])};
    kn_tensor seq2 = list_of(KN_VALUE_SEQUENCE, KN_I64, 2, same);
    node_spec stack = {"ConcatFromSequence", 11, 1, {&seq2}, 1, 2,
                       {attr_int("axis", -1), attr_int("new_axis", 1)}, false};
    o = expect_ok(&stack);
    int64_t d232[3] = {2, 3, 2}, want2[12] = {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15};
    CHECK(same_dims(&o, 3, d232) && holds_i64(&o, want2, 12));
    kn_tensor_release(&o);
    node_spec stack3 = {"ConcatFromSequence", 11, 1, {&seq2}, 1, 2,
                        {attr_int("axis", 3), attr_int("new_axis", 1)}, false};
    expect_fail(&stack3, KN_ERR_ARG);
    kn_tensor_release(&seq2);

    kn_tensor diff[2] = {tensor(KN_I64, 2, d23, iota), tensor(KN_I64, 2, d33, iota)};
    kn_tensor seq3 = list_of(KN_VALUE_SEQUENCE, KN_I64, 2, diff);
    node_spec bad = {"ConcatFromSequence", 11, 1, {&seq3}, 1, 2,
                     {attr_int("axis", 0), attr_int("new_axis", 1)}, false};
    expect_fail(&bad, KN_ERR_ARG);
    kn_tensor_release(&seq3);

    kn_tensor empty;
    kn_value_init_list(&empty, KN_VALUE_SEQUENCE, KN_I64);
    node_spec e = {"ConcatFromSequence", 11, 1, {&empty}, 1, 1, {attr_int("axis", 0)}, false};
    expect_fail(&e, KN_ERR_ARG);

    kn_tensor scalars[2] = {tensor(KN_I64, 0, NULL, iota), tensor(KN_I64, 0, NULL, &iota[1])};
    kn_tensor seq4 = list_of(KN_VALUE_SEQUENCE, KN_I64, 2, scalars);
    node_spec sc = {"ConcatFromSequence", 11, 1, {&seq4}, 1, 1, {attr_int("axis", 0)}, false};
    expect_fail(&sc, KN_ERR_ARG);
    kn_tensor_release(&seq4);
}

static void test_split_to_sequence(void)
{
    int64_t d25[2] = {2, 5};
    kn_tensor x = tensor(KN_I64, 2, d25, iota);
    /* scalar split with a shorter last chunk */
    kn_tensor two_s = tensor(KN_I64, 0, NULL, &two);
    node_spec s = {"SplitToSequence", 11, 2, {&x, &two_s}, 1, 1, {attr_int("axis", -1)}, false};
    kn_tensor o = expect_ok(&s);
    CHECK_EQ_INT(o.n_items, 3);
    if (o.n_items == 3) {
        int64_t d22[2] = {2, 2}, d21[2] = {2, 1}, w0[4] = {0, 1, 5, 6}, w2[2] = {4, 9};
        CHECK(same_dims(&o.items[0], 2, d22) && holds_i64(&o.items[0], w0, 4));
        CHECK(same_dims(&o.items[2], 2, d21) && holds_i64(&o.items[2], w2, 2));
    }
    kn_tensor_release(&o);

    /* no split, keepdims = 0: one squeezed item per row */
    node_spec sq = {"SplitToSequence", 11, 1, {&x}, 1, 1, {attr_int("keepdims", 0)}, false};
    o = expect_ok(&sq);
    int64_t d5 = 5;
    CHECK(o.n_items == 2 && same_dims(&o.items[1], 1, &d5) && holds_i64(&o.items[1], &iota[5], 5));
    kn_tensor_release(&o);

    /* 1-D split, int32 */
    int32_t parts[2] = {1, 4};
    kn_tensor sp = tensor(KN_I32, 1, &two, parts);
    node_spec l = {"SplitToSequence", 11, 2, {&x, &sp}, 1, 1, {attr_int("axis", 1)}, false};
    o = expect_ok(&l);
    int64_t d24[2] = {2, 4}, w1[8] = {1, 2, 3, 4, 6, 7, 8, 9};
    CHECK(o.n_items == 2 && same_dims(&o.items[1], 2, d24) && holds_i64(&o.items[1], w1, 8));
    kn_tensor_release(&o);

    int32_t bad_parts[2] = {2, 4}, neg_parts[2] = {-1, 6};
    kn_tensor bsp = tensor(KN_I32, 1, &two, bad_parts), nsp = tensor(KN_I32, 1, &two, neg_parts);
    node_spec bad = {"SplitToSequence", 11, 2, {&x, &bsp}, 1, 1, {attr_int("axis", 1)}, false};
    expect_fail(&bad, KN_ERR_ARG);
    node_spec negs = {"SplitToSequence", 11, 2, {&x, &nsp}, 1, 1, {attr_int("axis", 1)}, false};
    expect_fail(&negs, KN_ERR_ARG);
    int64_t zero = 0;
    kn_tensor zs = tensor(KN_I64, 0, NULL, &zero);
    node_spec z = {"SplitToSequence", 11, 2, {&x, &zs}, 1, 0, {{0}}, false};
    expect_fail(&z, KN_ERR_ARG);
    node_spec ax = {"SplitToSequence", 11, 1, {&x}, 1, 1, {attr_int("axis", 2)}, false};
    expect_fail(&ax, KN_ERR_ARG);
    kn_tensor sc = tensor(KN_I64, 0, NULL, iota);
    node_spec scalar = {"SplitToSequence", 11, 1, {&sc}, 1, 0, {{0}}, false};
    expect_fail(&scalar, KN_ERR_ARG);

    /* an empty axis gives an empty sequence of the input's dtype */
    int64_t d03[2] = {0, 3};
    kn_tensor e = tensor(KN_I64, 2, d03, NULL);
    node_spec es = {"SplitToSequence", 11, 1, {&e}, 1, 0, {{0}}, false};
    o = expect_ok(&es);
    CHECK(o.kind == KN_VALUE_SEQUENCE && o.n_items == 0 && o.dtype == KN_I64);
    kn_tensor_release(&o);
}

static void test_sequence_map(void)
{
    kn_tensor a = three_items(), b = three_items();
    kn_tensor t = tensor(KN_I64, 1, &three, &iota[20]);
    node_spec s = {"SequenceMap", 17, 3, {&a, &t, &b}, 3, 0, {{0}}, true};
    kn_tensor outs[MAX_IO];
    kn_error err = {0};
    int rc = run_node(&s, outs, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (!rc) {
        CHECK(outs[0].kind == KN_VALUE_SEQUENCE && outs[0].n_items == 3);
        CHECK(outs[1].kind == KN_VALUE_SEQUENCE && outs[1].n_items == 3);
        if (outs[0].n_items == 3 && outs[1].n_items == 3) {
            CHECK(holds_i64(&outs[0].items[2], &iota[2], 1));
            CHECK(holds_i64(&outs[1].items[1], &iota[20], 3));
        }
        for (int i = 0; i < 3; i++)
            kn_tensor_release(&outs[i]);
    } else {
        fprintf(stderr, "  SequenceMap: %s\n", err.msg);
    }

    /* sequences of different lengths */
    kn_tensor short_seq;
    kn_value_init_list(&short_seq, KN_VALUE_SEQUENCE, KN_I64);
    node_spec bad = {"SequenceMap", 17, 2, {&a, &short_seq}, 1, 0, {{0}}, true};
    expect_fail(&bad, KN_ERR_ARG);

    /* an empty input sequence gives empty output sequences */
    node_spec empty = {"SequenceMap", 17, 1, {&short_seq}, 1, 0, {{0}}, true};
    kn_tensor o = expect_ok(&empty);
    CHECK(o.kind == KN_VALUE_SEQUENCE && o.n_items == 0);
    kn_tensor_release(&o);

    /* input 0 must be a sequence */
    node_spec not_seq = {"SequenceMap", 17, 2, {&t, &a}, 1, 0, {{0}}, true};
    expect_fail(&not_seq, KN_ERR_ARG);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
}

static void test_optional(void)
{
    kn_tensor t = tensor(KN_I64, 1, &three, iota);
    node_spec wrap = {"Optional", 15, 1, {&t}, 1, 0, {{0}}, false};
    kn_tensor opt = expect_ok(&wrap);
    CHECK(opt.kind == KN_VALUE_OPTIONAL && opt.n_items == 1 && opt.dtype == KN_I64);

    node_spec none = {"Optional", 15, 0, {NULL}, 1, 0, {{0}}, false};
    kn_tensor empty = expect_ok(&none);
    CHECK(empty.kind == KN_VALUE_OPTIONAL && empty.n_items == 0);

    uint8_t yes = 1, no = 0;
    node_spec h1 = {"OptionalHasElement", 18, 1, {&opt}, 1, 0, {{0}}, false};
    kn_tensor r = expect_ok(&h1);
    CHECK(r.dtype == KN_BOOL && r.rank == 0 && memcmp(r.data, &yes, 1) == 0);
    kn_tensor_release(&r);
    node_spec h2 = {"OptionalHasElement", 18, 1, {&empty}, 1, 0, {{0}}, false};
    r = expect_ok(&h2);
    CHECK(r.dtype == KN_BOOL && memcmp(r.data, &no, 1) == 0);
    kn_tensor_release(&r);
    node_spec h3 = {"OptionalHasElement", 18, 1, {NULL}, 1, 0, {{0}}, false};
    r = expect_ok(&h3);
    CHECK(r.dtype == KN_BOOL && memcmp(r.data, &no, 1) == 0);
    kn_tensor_release(&r);
    node_spec h4 = {"OptionalHasElement", 18, 1, {&t}, 1, 0, {{0}}, false};
    r = expect_ok(&h4);
    CHECK(r.dtype == KN_BOOL && memcmp(r.data, &yes, 1) == 0);
    kn_tensor_release(&r);

    node_spec g1 = {"OptionalGetElement", 18, 1, {&opt}, 1, 0, {{0}}, false};
    r = expect_ok(&g1);
    CHECK(holds_i64(&r, iota, 3));
    kn_tensor_release(&r);
    node_spec g2 = {"OptionalGetElement", 18, 1, {&t}, 1, 0, {{0}}, false};
    r = expect_ok(&g2);
    CHECK(holds_i64(&r, iota, 3));
    kn_tensor_release(&r);
    node_spec g3 = {"OptionalGetElement", 18, 1, {&empty}, 1, 0, {{0}}, false};
    expect_fail(&g3, KN_ERR_RUNTIME);

    /* an optional holding a sequence */
    kn_tensor seq = three_items();
    node_spec wrap_seq = {"Optional", 15, 1, {&seq}, 1, 0, {{0}}, false};
    kn_tensor os = expect_ok(&wrap_seq);
    CHECK(os.kind == KN_VALUE_OPTIONAL && os.n_items == 1 && os.items[0].kind == KN_VALUE_SEQUENCE);
    node_spec g4 = {"OptionalGetElement", 18, 1, {&os}, 1, 0, {{0}}, false};
    r = expect_ok(&g4);
    CHECK(r.kind == KN_VALUE_SEQUENCE && r.n_items == 3);
    kn_tensor_release(&r);
    node_spec nested = {"Optional", 15, 1, {&os}, 1, 0, {{0}}, false};
    expect_fail(&nested, KN_ERR_ARG);

    kn_tensor_release(&os);
    kn_tensor_release(&seq);
    kn_tensor_release(&opt);
    kn_tensor_release(&empty);
}

static void test_identity_and_guard(void)
{
    kn_tensor seq = three_items();
    node_spec id = {"Identity", 16, 1, {&seq}, 1, 0, {{0}}, false};
    kn_tensor o = expect_ok(&id);
    CHECK(o.kind == KN_VALUE_SEQUENCE && o.n_items == 3 && o.items != seq.items);
    if (o.n_items == 3)
        CHECK(holds_i64(&o.items[2], &iota[2], 1) && o.items[2].data != seq.items[2].data);
    kn_tensor_release(&o);

    /* an operator that does not take sequences refuses them */
    node_spec relu = {"Relu", 14, 1, {&seq}, 1, 0, {{0}}, false};
    expect_fail(&relu, KN_ERR_UNSUPPORTED);
    kn_tensor_release(&seq);
}

/* Static inference: x (int64[2]) -> SequenceConstruct -> SequenceAt / SequenceLength. */
static void add_node(kn_model *m, kn_graph *g, const char *op, int n_in, const int *in, int out)
{
    kn_node *n = kn_graph_add_node(g);
    n->name = op;
    n->op_type = op;
    n->domain = "";
    n->n_in = n_in;
    n->in = kn_arena_calloc(&m->arena, (size_t)n_in, sizeof(int));
    memcpy(n->in, in, sizeof(int) * (size_t)n_in);
    n->n_out = 1;
    n->out = kn_arena_calloc(&m->arena, 1, sizeof(int));
    n->out[0] = out;
}

static void test_infer(void)
{
    kn_model *m = kn_model_new();
    m->n_opsets = 1;
    m->opsets = kn_arena_calloc(&m->arena, 1, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = 18;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    int x = kn_graph_value(g, "x"), pos = kn_graph_value(g, "pos");
    int seq = kn_graph_value(g, "seq"), at = kn_graph_value(g, "at"), len = kn_graph_value(g, "len");
    int opt = kn_graph_value(g, "opt"), has = kn_graph_value(g, "has");
    g->values[x].has_type = true;
    g->values[x].type.kind = KN_TYPE_TENSOR;
    g->values[x].type.dtype = KN_I64;
    g->values[x].type.rank = 1;
    g->values[x].type.dims[0].value = 2;
    kn_graph_add_input(g, x);
    kn_graph_add_input(g, pos);
    add_node(m, g, "SequenceConstruct", 1, &x, seq);
    int at_in[2] = {seq, pos};
    add_node(m, g, "SequenceAt", 2, at_in, at);
    add_node(m, g, "SequenceLength", 1, &seq, len);
    add_node(m, g, "Optional", 1, &x, opt);
    add_node(m, g, "OptionalHasElement", 1, &opt, has);
    kn_graph_add_output(g, at);
    kn_graph_add_output(g, len);
    kn_graph_add_output(g, has);
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    const kn_value *v = g->values;
    CHECK(v[seq].has_type && v[seq].type.kind == KN_TYPE_SEQUENCE && v[seq].type.dtype == KN_I64);
    CHECK(v[at].has_type && v[at].type.kind == KN_TYPE_TENSOR && v[at].type.dtype == KN_I64);
    CHECK(v[len].has_type && v[len].type.dtype == KN_I64 && v[len].type.rank == 0);
    CHECK(v[opt].has_type && v[opt].type.kind == KN_TYPE_OPTIONAL && v[opt].type.dtype == KN_I64);
    CHECK(v[has].has_type && v[has].type.dtype == KN_BOOL && v[has].type.rank == 0);
    kn_model_free(m);
}

TEST_MAIN(TEST_CASE(test_construct_and_length), TEST_CASE(test_insert), TEST_CASE(test_erase_and_at),
          TEST_CASE(test_concat_from_sequence), TEST_CASE(test_split_to_sequence),
          TEST_CASE(test_sequence_map), TEST_CASE(test_optional), TEST_CASE(test_identity_and_guard),
          TEST_CASE(test_infer))
