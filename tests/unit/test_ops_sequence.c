/* test_ops_sequence.c - unit tests for the 'sequence' operator family (sequences
 * and optionals): positions out of range, negative positions, dtype mismatches,
 * empty sequences, ConcatFromSequence shape checks, SplitToSequence remainders,
 * SequenceMap with mixed inputs, and the executor refusing lists for plain ops.
 * Each test runs one node through a one-node graph and the reference executor. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>

#include "exec/exec.h"

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
    kn_tensor items[3] = {kt_view(KN_I64, 1, &one, &iota[0]), kt_view(KN_I64, 1, &one, &iota[1]),
                          kt_view(KN_I64, 1, &one, &iota[2])};
    return kt_list(KN_VALUE_SEQUENCE, KN_I64, 3, items);
}

/* ---- tests ---- */

static void test_construct_and_length(void)
{
    kn_tensor a = kt_view(KN_I64, 1, &two, iota), b = kt_view(KN_I64, 0, NULL, &iota[5]);
    kt_node s = {"SequenceConstruct", 11, 2, {&a, &b}, 1, 0, {{0}}};
    kn_tensor seq = kt_expect_ok(&s);
    CHECK_EQ_INT(seq.kind, KN_VALUE_SEQUENCE);
    CHECK_EQ_INT(seq.n_items, 2);
    CHECK_EQ_INT(seq.dtype, KN_I64);
    if (seq.n_items == 2) {
        CHECK(holds_i64(&seq.items[0], iota, 2));
        CHECK(holds_i64(&seq.items[1], &iota[5], 1) && seq.items[1].rank == 0);
    }
    kt_node len = {"SequenceLength", 11, 1, {&seq}, 1, 0, {{0}}};
    kn_tensor l = kt_expect_ok(&len);
    CHECK(holds_i64(&l, &two, 1) && l.rank == 0);
    kn_tensor_release(&l);
    kn_tensor_release(&seq);

    float f = 1;
    kn_tensor c = kt_view(KN_F32, 0, NULL, &f);
    kt_node mix = {"SequenceConstruct", 11, 2, {&a, &c}, 1, 0, {{0}}};
    kt_expect_fail(&mix, KN_ERR_ARG);

    kt_node empty = {"SequenceEmpty", 11, 0, {NULL}, 1, 1, {kt_attr_int("dtype", KN_I32)}};
    kn_tensor e = kt_expect_ok(&empty);
    CHECK(e.kind == KN_VALUE_SEQUENCE && e.n_items == 0 && e.dtype == KN_I32);
    kt_node elen = {"SequenceLength", 11, 1, {&e}, 1, 0, {{0}}};
    int64_t zero = 0;
    kn_tensor el = kt_expect_ok(&elen);
    CHECK(holds_i64(&el, &zero, 1));
    kn_tensor_release(&el);
    kn_tensor_release(&e);

    kt_node bad_dt = {"SequenceEmpty", 11, 0, {NULL}, 1, 1, {kt_attr_int("dtype", 999)}};
    kt_expect_fail(&bad_dt, KN_ERR_MODEL);
}

static void test_insert(void)
{
    kn_tensor seq = three_items();
    kn_tensor v = kt_view(KN_I64, 1, &one, &iota[9]);
    int64_t neg = -1, far = 4, end = 3, negfar = -4;
    kn_tensor p_neg = kt_view(KN_I64, 0, NULL, &neg), p_far = kt_view(KN_I64, 0, NULL, &far);
    kn_tensor p_end = kt_view(KN_I64, 0, NULL, &end), p_negfar = kt_view(KN_I64, 0, NULL, &negfar);

    kt_node dflt = {"SequenceInsert", 11, 2, {&seq, &v}, 1, 0, {{0}}};
    kn_tensor o = kt_expect_ok(&dflt);
    CHECK_EQ_INT(o.n_items, 4);
    if (o.n_items == 4)
        CHECK(holds_i64(&o.items[3], &iota[9], 1));
    kn_tensor_release(&o);

    /* -1 inserts before the last item */
    kt_node at_neg = {"SequenceInsert", 11, 3, {&seq, &v, &p_neg}, 1, 0, {{0}}};
    o = kt_expect_ok(&at_neg);
    CHECK_EQ_INT(o.n_items, 4);
    if (o.n_items == 4) {
        CHECK(holds_i64(&o.items[2], &iota[9], 1));
        CHECK(holds_i64(&o.items[3], &iota[2], 1));
    }
    kn_tensor_release(&o);

    kt_node at_end = {"SequenceInsert", 11, 3, {&seq, &v, &p_end}, 1, 0, {{0}}};
    o = kt_expect_ok(&at_end);
    CHECK(o.n_items == 4 && holds_i64(&o.items[3], &iota[9], 1));
    kn_tensor_release(&o);

    kt_node past = {"SequenceInsert", 11, 3, {&seq, &v, &p_far}, 1, 0, {{0}}};
    kt_expect_fail(&past, KN_ERR_ARG);
    kt_node before = {"SequenceInsert", 11, 3, {&seq, &v, &p_negfar}, 1, 0, {{0}}};
    kt_expect_fail(&before, KN_ERR_ARG);

    float f = 2;
    kn_tensor wrong = kt_view(KN_F32, 1, &one, &f);
    kt_node mismatch = {"SequenceInsert", 11, 2, {&seq, &wrong}, 1, 0, {{0}}};
    kt_expect_fail(&mismatch, KN_ERR_ARG);

    float pf = 0;
    kn_tensor p_float = kt_view(KN_F32, 0, NULL, &pf);
    kt_node fpos = {"SequenceInsert", 11, 3, {&seq, &v, &p_float}, 1, 0, {{0}}};
    kt_expect_fail(&fpos, KN_ERR_ARG);

    /* a tensor where the sequence should be */
    kt_node not_seq = {"SequenceInsert", 11, 2, {&v, &v}, 1, 0, {{0}}};
    kt_expect_fail(&not_seq, KN_ERR_ARG);
    kn_tensor_release(&seq);
}

static void test_erase_and_at(void)
{
    kn_tensor seq = three_items();
    int64_t neg = -3, far = 3, first = 0;
    kn_tensor p_neg = kt_view(KN_I64, 0, NULL, &neg), p_far = kt_view(KN_I64, 0, NULL, &far);
    kn_tensor p0 = kt_view(KN_I64, 0, NULL, &first);

    kt_node dflt = {"SequenceErase", 11, 1, {&seq}, 1, 0, {{0}}};
    kn_tensor o = kt_expect_ok(&dflt);
    CHECK(o.n_items == 2 && holds_i64(&o.items[1], &iota[1], 1));
    kn_tensor_release(&o);

    kt_node e0 = {"SequenceErase", 11, 2, {&seq, &p_neg}, 1, 0, {{0}}};
    o = kt_expect_ok(&e0);
    CHECK(o.n_items == 2 && holds_i64(&o.items[0], &iota[1], 1));
    kn_tensor_release(&o);

    kt_node efar = {"SequenceErase", 11, 2, {&seq, &p_far}, 1, 0, {{0}}};
    kt_expect_fail(&efar, KN_ERR_ARG);

    kn_tensor empty;
    kn_value_init_list(&empty, KN_VALUE_SEQUENCE, KN_I64);
    kt_node eempty = {"SequenceErase", 11, 1, {&empty}, 1, 0, {{0}}};
    kt_expect_fail(&eempty, KN_ERR_ARG);

    kt_node at = {"SequenceAt", 11, 2, {&seq, &p_neg}, 1, 0, {{0}}};
    o = kt_expect_ok(&at);
    CHECK(holds_i64(&o, &iota[0], 1));
    kn_tensor_release(&o);

    kt_node at_far = {"SequenceAt", 11, 2, {&seq, &p_far}, 1, 0, {{0}}};
    kt_expect_fail(&at_far, KN_ERR_ARG);
    kt_node at_empty = {"SequenceAt", 11, 2, {&empty, &p0}, 1, 0, {{0}}};
    kt_expect_fail(&at_empty, KN_ERR_ARG);
    int64_t two_pos[2] = {0, 1};
    kn_tensor p_vec = kt_view(KN_I64, 1, &two, two_pos);
    kt_node at_vec = {"SequenceAt", 11, 2, {&seq, &p_vec}, 1, 0, {{0}}};
    kt_expect_fail(&at_vec, KN_ERR_ARG);
    kn_tensor_release(&seq);
}

static void test_concat_from_sequence(void)
{
    int64_t d23[2] = {2, 3}, d21[2] = {2, 1}, d33[2] = {3, 3}, d20[2] = {2, 0};
    kn_tensor items[3] = {kt_view(KN_I64, 2, d23, iota), kt_view(KN_I64, 2, d21, &iota[10]),
                          kt_view(KN_I64, 2, d20, NULL)};
    kn_tensor seq = kt_list(KN_VALUE_SEQUENCE, KN_I64, 3, items);
    kt_node s = {"ConcatFromSequence", 11, 1, {&seq}, 1, 1, {kt_attr_int("axis", -1)}};
    kn_tensor o = kt_expect_ok(&s);
    int64_t d24[2] = {2, 4}, want[8] = {0, 1, 2, 10, 3, 4, 5, 11};
    CHECK(kt_same_dims(&o, 2, d24) && holds_i64(&o, want, 8));
    kn_tensor_release(&o);

    kt_node axis0 = {"ConcatFromSequence", 11, 1, {&seq}, 1, 1, {kt_attr_int("axis", 0)}};
    kt_expect_fail(&axis0, KN_ERR_ARG);
    kt_node axis2 = {"ConcatFromSequence", 11, 1, {&seq}, 1, 1, {kt_attr_int("axis", 2)}};
    kt_expect_fail(&axis2, KN_ERR_ARG);
    kt_node noaxis = {"ConcatFromSequence", 11, 1, {&seq}, 1, 0, {{0}}};
    kt_expect_fail(&noaxis, KN_ERR_MODEL);
    kn_tensor_release(&seq);

    /* new_axis stacks; axis may then be rank (here 2, also as -1) */
    kn_tensor same[2] = {kt_view(KN_I64, 2, d23, iota), kt_view(KN_I64, 2, d23, &iota[10])};
    kn_tensor seq2 = kt_list(KN_VALUE_SEQUENCE, KN_I64, 2, same);
    kt_node stack = {"ConcatFromSequence", 11, 1, {&seq2}, 1, 2,
                       {kt_attr_int("axis", -1), kt_attr_int("new_axis", 1)}};
    o = kt_expect_ok(&stack);
    int64_t d232[3] = {2, 3, 2}, want2[12] = {0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15};
    CHECK(kt_same_dims(&o, 3, d232) && holds_i64(&o, want2, 12));
    kn_tensor_release(&o);
    kt_node stack3 = {"ConcatFromSequence", 11, 1, {&seq2}, 1, 2,
                        {kt_attr_int("axis", 3), kt_attr_int("new_axis", 1)}};
    kt_expect_fail(&stack3, KN_ERR_ARG);
    kn_tensor_release(&seq2);

    kn_tensor diff[2] = {kt_view(KN_I64, 2, d23, iota), kt_view(KN_I64, 2, d33, iota)};
    kn_tensor seq3 = kt_list(KN_VALUE_SEQUENCE, KN_I64, 2, diff);
    kt_node bad = {"ConcatFromSequence", 11, 1, {&seq3}, 1, 2,
                     {kt_attr_int("axis", 0), kt_attr_int("new_axis", 1)}};
    kt_expect_fail(&bad, KN_ERR_ARG);
    kn_tensor_release(&seq3);

    kn_tensor empty;
    kn_value_init_list(&empty, KN_VALUE_SEQUENCE, KN_I64);
    kt_node e = {"ConcatFromSequence", 11, 1, {&empty}, 1, 1, {kt_attr_int("axis", 0)}};
    kt_expect_fail(&e, KN_ERR_ARG);

    kn_tensor scalars[2] = {kt_view(KN_I64, 0, NULL, iota), kt_view(KN_I64, 0, NULL, &iota[1])};
    kn_tensor seq4 = kt_list(KN_VALUE_SEQUENCE, KN_I64, 2, scalars);
    kt_node sc = {"ConcatFromSequence", 11, 1, {&seq4}, 1, 1, {kt_attr_int("axis", 0)}};
    kt_expect_fail(&sc, KN_ERR_ARG);
    kn_tensor_release(&seq4);
}

static void test_split_to_sequence(void)
{
    int64_t d25[2] = {2, 5};
    kn_tensor x = kt_view(KN_I64, 2, d25, iota);
    /* scalar split with a shorter last chunk */
    kn_tensor two_s = kt_view(KN_I64, 0, NULL, &two);
    kt_node s = {"SplitToSequence", 11, 2, {&x, &two_s}, 1, 1, {kt_attr_int("axis", -1)}};
    kn_tensor o = kt_expect_ok(&s);
    CHECK_EQ_INT(o.n_items, 3);
    if (o.n_items == 3) {
        int64_t d22[2] = {2, 2}, d21[2] = {2, 1}, w0[4] = {0, 1, 5, 6}, w2[2] = {4, 9};
        CHECK(kt_same_dims(&o.items[0], 2, d22) && holds_i64(&o.items[0], w0, 4));
        CHECK(kt_same_dims(&o.items[2], 2, d21) && holds_i64(&o.items[2], w2, 2));
    }
    kn_tensor_release(&o);

    /* no split, keepdims = 0: one squeezed item per row */
    kt_node sq = {"SplitToSequence", 11, 1, {&x}, 1, 1, {kt_attr_int("keepdims", 0)}};
    o = kt_expect_ok(&sq);
    int64_t d5 = 5;
    CHECK(o.n_items == 2 && kt_same_dims(&o.items[1], 1, &d5) && holds_i64(&o.items[1], &iota[5], 5));
    kn_tensor_release(&o);

    /* 1-D split, int32 */
    int32_t parts[2] = {1, 4};
    kn_tensor sp = kt_view(KN_I32, 1, &two, parts);
    kt_node l = {"SplitToSequence", 11, 2, {&x, &sp}, 1, 1, {kt_attr_int("axis", 1)}};
    o = kt_expect_ok(&l);
    int64_t d24[2] = {2, 4}, w1[8] = {1, 2, 3, 4, 6, 7, 8, 9};
    CHECK(o.n_items == 2 && kt_same_dims(&o.items[1], 2, d24) && holds_i64(&o.items[1], w1, 8));
    kn_tensor_release(&o);

    int32_t bad_parts[2] = {2, 4}, neg_parts[2] = {-1, 6};
    kn_tensor bsp = kt_view(KN_I32, 1, &two, bad_parts), nsp = kt_view(KN_I32, 1, &two, neg_parts);
    kt_node bad = {"SplitToSequence", 11, 2, {&x, &bsp}, 1, 1, {kt_attr_int("axis", 1)}};
    kt_expect_fail(&bad, KN_ERR_ARG);
    kt_node negs = {"SplitToSequence", 11, 2, {&x, &nsp}, 1, 1, {kt_attr_int("axis", 1)}};
    kt_expect_fail(&negs, KN_ERR_ARG);
    int64_t zero = 0;
    kn_tensor zs = kt_view(KN_I64, 0, NULL, &zero);
    kt_node z = {"SplitToSequence", 11, 2, {&x, &zs}, 1, 0, {{0}}};
    kt_expect_fail(&z, KN_ERR_ARG);
    kt_node ax = {"SplitToSequence", 11, 1, {&x}, 1, 1, {kt_attr_int("axis", 2)}};
    kt_expect_fail(&ax, KN_ERR_ARG);
    kn_tensor sc = kt_view(KN_I64, 0, NULL, iota);
    kt_node scalar = {"SplitToSequence", 11, 1, {&sc}, 1, 0, {{0}}};
    kt_expect_fail(&scalar, KN_ERR_ARG);

    /* an empty axis gives an empty sequence of the input's dtype */
    int64_t d03[2] = {0, 3};
    kn_tensor e = kt_view(KN_I64, 2, d03, NULL);
    kt_node es = {"SplitToSequence", 11, 1, {&e}, 1, 0, {{0}}};
    o = kt_expect_ok(&es);
    CHECK(o.kind == KN_VALUE_SEQUENCE && o.n_items == 0 && o.dtype == KN_I64);
    kn_tensor_release(&o);
}

static void test_sequence_map(void)
{
    kn_tensor a = three_items(), b = three_items();
    kn_tensor t = kt_view(KN_I64, 1, &three, &iota[20]);
    kt_node s = {"SequenceMap", 17, 3, {&a, &t, &b}, 3, 1, {kt_attr_body("body", "Identity", 3, 3)}};
    kn_tensor outs[KT_MAX_IO];
    kn_error err = {0};
    int rc = kt_run_node(&s, outs, &err);
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
    kt_node bad = {"SequenceMap", 17, 2, {&a, &short_seq}, 1, 1, {kt_attr_body("body", "Identity", 2, 1)}};
    kt_expect_fail(&bad, KN_ERR_ARG);

    /* an empty input sequence gives empty output sequences */
    kt_node empty = {"SequenceMap", 17, 1, {&short_seq}, 1, 1, {kt_attr_body("body", "Identity", 1, 1)}};
    kn_tensor o = kt_expect_ok(&empty);
    CHECK(o.kind == KN_VALUE_SEQUENCE && o.n_items == 0);
    kn_tensor_release(&o);

    /* input 0 must be a sequence */
    kt_node not_seq = {"SequenceMap", 17, 2, {&t, &a}, 1, 1, {kt_attr_body("body", "Identity", 2, 1)}};
    kt_expect_fail(&not_seq, KN_ERR_ARG);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
}

static void test_optional(void)
{
    kn_tensor t = kt_view(KN_I64, 1, &three, iota);
    kt_node wrap = {"Optional", 15, 1, {&t}, 1, 0, {{0}}};
    kn_tensor opt = kt_expect_ok(&wrap);
    CHECK(opt.kind == KN_VALUE_OPTIONAL && opt.n_items == 1 && opt.dtype == KN_I64);

    kt_node none = {"Optional", 15, 0, {NULL}, 1, 0, {{0}}};
    kn_tensor empty = kt_expect_ok(&none);
    CHECK(empty.kind == KN_VALUE_OPTIONAL && empty.n_items == 0);

    uint8_t yes = 1, no = 0;
    kt_node h1 = {"OptionalHasElement", 18, 1, {&opt}, 1, 0, {{0}}};
    kn_tensor r = kt_expect_ok(&h1);
    CHECK(r.dtype == KN_BOOL && r.rank == 0 && memcmp(r.data, &yes, 1) == 0);
    kn_tensor_release(&r);
    kt_node h2 = {"OptionalHasElement", 18, 1, {&empty}, 1, 0, {{0}}};
    r = kt_expect_ok(&h2);
    CHECK(r.dtype == KN_BOOL && memcmp(r.data, &no, 1) == 0);
    kn_tensor_release(&r);
    kt_node h3 = {"OptionalHasElement", 18, 1, {NULL}, 1, 0, {{0}}};
    r = kt_expect_ok(&h3);
    CHECK(r.dtype == KN_BOOL && memcmp(r.data, &no, 1) == 0);
    kn_tensor_release(&r);
    kt_node h4 = {"OptionalHasElement", 18, 1, {&t}, 1, 0, {{0}}};
    r = kt_expect_ok(&h4);
    CHECK(r.dtype == KN_BOOL && memcmp(r.data, &yes, 1) == 0);
    kn_tensor_release(&r);

    kt_node g1 = {"OptionalGetElement", 18, 1, {&opt}, 1, 0, {{0}}};
    r = kt_expect_ok(&g1);
    CHECK(holds_i64(&r, iota, 3));
    kn_tensor_release(&r);
    kt_node g2 = {"OptionalGetElement", 18, 1, {&t}, 1, 0, {{0}}};
    r = kt_expect_ok(&g2);
    CHECK(holds_i64(&r, iota, 3));
    kn_tensor_release(&r);
    kt_node g3 = {"OptionalGetElement", 18, 1, {&empty}, 1, 0, {{0}}};
    kt_expect_fail(&g3, KN_ERR_RUNTIME);

    /* an optional holding a sequence */
    kn_tensor seq = three_items();
    kt_node wrap_seq = {"Optional", 15, 1, {&seq}, 1, 0, {{0}}};
    kn_tensor os = kt_expect_ok(&wrap_seq);
    CHECK(os.kind == KN_VALUE_OPTIONAL && os.n_items == 1 && os.items[0].kind == KN_VALUE_SEQUENCE);
    kt_node g4 = {"OptionalGetElement", 18, 1, {&os}, 1, 0, {{0}}};
    r = kt_expect_ok(&g4);
    CHECK(r.kind == KN_VALUE_SEQUENCE && r.n_items == 3);
    kn_tensor_release(&r);
    kt_node nested = {"Optional", 15, 1, {&os}, 1, 0, {{0}}};
    kt_expect_fail(&nested, KN_ERR_ARG);

    kn_tensor_release(&os);
    kn_tensor_release(&seq);
    kn_tensor_release(&opt);
    kn_tensor_release(&empty);
}

static void test_identity_and_guard(void)
{
    kn_tensor seq = three_items();
    kt_node id = {"Identity", 16, 1, {&seq}, 1, 0, {{0}}};
    kn_tensor o = kt_expect_ok(&id);
    CHECK(o.kind == KN_VALUE_SEQUENCE && o.n_items == 3 && o.items != seq.items);
    if (o.n_items == 3)
        CHECK(holds_i64(&o.items[2], &iota[2], 1) && o.items[2].data != seq.items[2].data);
    kn_tensor_release(&o);

    /* an operator that does not take sequences refuses them */
    kt_node relu = {"Relu", 14, 1, {&seq}, 1, 0, {{0}}};
    kt_expect_fail(&relu, KN_ERR_UNSUPPORTED);
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
