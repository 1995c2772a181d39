/* test_opt_edit.c - the optimizer's graph-editing helpers (src/opt/edit.c): use
 * counts, pinned values (graph outputs, subgraph captures), rewiring, deleting and
 * appending nodes, new values/initializers, attribute setters, evaluating a node on
 * constants, and re-finalizing (compaction, unused values dropped, finalize twice). */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "ir/ir.h"
#include "opt/opt.h"

#include <stdlib.h>

static int add1(kn_graph *g, const char *op, const char *a, const char *b, const char *out)
{
    char ins[64];
    snprintf(ins, sizeof ins, "%s%s%s", a, b ? "," : "", b ? b : "");
    return kt_graph_node(g, op, ins, out);
}

static void set_const(kn_graph *g, const char *name, int rank, const int64_t *dims, const float *v)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, v);
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
}

static float run1(kn_graph *g, float x, int out_index)
{
    int64_t d[1] = {1};
    kn_tensor in = {0}, outs[4] = {{0}};
    kn_error err;
    kn_tensor_alloc(&in, KN_F32, 1, d, &err);
    ((float *)in.data)[0] = x;
    const kn_tensor *ins[1] = {&in};
    float r = -999;
    int rc = kn_exec_graph(g, NULL, 1, ins, g->n_outputs, outs, &err);
    if (rc)
        fprintf(stderr, "run: %s\n", err.msg);
    else
        r = ((const float *)outs[out_index].data)[0];
    for (int k = 0; !rc && k < g->n_outputs; k++)
        kn_tensor_release(&outs[k]);
    kn_tensor_release(&in);
    return r;
}

/* x -> Neg -> a -> Relu -> b (output); a -> Abs -> c; c unused; plus an unused
 * initializer w. */
static kn_model *chain_model(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add1(g, "Neg", "x", NULL, "a");
    add1(g, "Relu", "a", NULL, "b");
    add1(g, "Abs", "a", NULL, "c");
    float w = 2;
    int64_t d[1] = {1};
    set_const(g, "w", 1, d, &w);
    kn_graph_add_output(g, kn_graph_value(g, "b"));
    return m;
}

static void test_use_counts_and_consumers(void)
{
    kn_model *m = chain_model();
    kn_graph *g = m->graph;
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    int *uses = kn_opt_use_counts(g, &err);
    CHECK(uses != NULL);
    if (uses) {
        CHECK_EQ_INT(uses[kn_graph_find(g, "a")], 2);
        CHECK_EQ_INT(uses[kn_graph_find(g, "b")], 1);
        CHECK_EQ_INT(uses[kn_graph_find(g, "c")], 0);
        CHECK_EQ_INT(uses[kn_graph_find(g, "x")], 1);
    }
    free(uses);
    CHECK(kn_opt_value_is_pinned(g, kn_graph_find(g, "b")));
    CHECK(!kn_opt_value_is_pinned(g, kn_graph_find(g, "a")));
    CHECK_EQ_INT(kn_opt_single_consumer(g, kn_graph_find(g, "a")), -1);
    int neg = g->values[kn_graph_find(g, "a")].producer;
    CHECK_EQ_INT(kn_opt_single_consumer(g, kn_graph_find(g, "x")), neg);
    CHECK_EQ_INT(kn_opt_single_consumer(g, kn_graph_find(g, "b")), -1); /* pinned */
    CHECK_EQ_INT(kn_opt_single_consumer(g, kn_graph_find(g, "c")), -1); /* unused */
    CHECK(kn_opt_const(g, kn_graph_find(g, "w")) != NULL);
    CHECK(kn_opt_const(g, kn_graph_find(g, "x")) == NULL);
    kn_model_free(m);
}

static void test_delete_and_refinalize_drops_values(void)
{
    kn_model *m = chain_model();
    kn_graph *g = m->graph;
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    CHECK_NEAR(run1(g, 3, 0), 0, 0);
    int abs_node = g->values[kn_graph_find(g, "c")].producer;
    kn_opt_delete_node(g, abs_node);
    CHECK(kn_opt_node_deleted(&g->nodes[abs_node]));
    CHECK_EQ_INT(g->values[kn_graph_find(g, "c")].producer, -1);
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    CHECK_EQ_INT(g->n_nodes, 2);
    CHECK_EQ_INT(kn_graph_find(g, "c"), -1);
    CHECK_EQ_INT(kn_graph_find(g, "w"), -1); /* unused initializer dropped */
    CHECK(kn_graph_find(g, "x") >= 0 && kn_graph_find(g, "b") >= 0);
    CHECK_EQ_INT(g->n_values, 3);
    CHECK_NEAR(run1(g, 3, 0), 0, 0);
    CHECK_NEAR(run1(g, -3, 0), 3, 0);
    /* nothing changed: refinalizing again is harmless */
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    CHECK_NEAR(run1(g, -4, 0), 4, 0);
    kn_model_free(m);
}

static void test_replace_uses_and_add_node(void)
{
    kn_model *m = chain_model();
    kn_graph *g = m->graph;
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    /* a := x * w  (w = 2) replaces a := -x */
    int a = kn_graph_find(g, "a"), x = kn_graph_find(g, "x"), w = kn_graph_find(g, "w");
    int a2 = kn_opt_new_value(g, "a", &err);
    CHECK(a2 >= 0 && strcmp(g->values[a2].name, "a") != 0);
    int ins[2] = {x, w};
    int mul = kn_opt_add_node(g, "Mul", "", 17, "mul", 2, ins, 1, &a2, &err);
    CHECK(mul >= 0);
    CHECK_EQ_INT(g->values[a2].producer, mul);
    CHECK(kn_opt_replace_uses(g, a, a2));
    CHECK(!kn_opt_replace_uses(g, kn_graph_find(g, "b"), a2)); /* pinned: refused */
    kn_opt_delete_node(g, g->values[a].producer);
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    CHECK_NEAR(run1(g, 3, 0), 6, 0);
    CHECK_NEAR(run1(g, -3, 0), 0, 0);
    kn_model_free(m);
}

static void test_new_domain_is_imported(void)
{
    kn_model *m = chain_model();
    kn_graph *g = m->graph;
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    int x = kn_graph_find(g, "x");
    int y = kn_opt_new_value(g, "y", &err);
    int n = kn_opt_add_node(g, "Foo", "com.example", 3, "", 1, &x, 1, &y, &err);
    CHECK(n >= 0);
    CHECK_EQ_INT(kn_model_opset(m, "com.example"), 3);
    CHECK_EQ_INT(g->nodes[n].opset, 3);
    CHECK(!strcmp(g->nodes[n].name, "Foo"));
    int n2 = kn_opt_add_node(g, "Foo", "com.example", 5, "", 1, &x, 1, &y, &err);
    CHECK(n2 >= 0 && strcmp(g->nodes[n2].name, "Foo") != 0); /* unique name */
    CHECK_EQ_INT(g->nodes[n2].opset, 3);
    kn_model_free(m);
}

static void test_attrs(void)
{
    kn_model *m = chain_model();
    kn_graph *g = m->graph;
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    int i = 0;
    int64_t ints[3] = {1, 2, 3};
    float fl[2] = {0.5f, 1.5f};
    CHECK_EQ_INT(kn_opt_set_attr_int(g, i, "k", 4, &err), KN_OK);
    CHECK_EQ_INT(kn_opt_set_attr_int(g, i, "k", 7, &err), KN_OK); /* replaces */
    CHECK_EQ_INT(kn_opt_set_attr_float(g, i, "alpha", 0.25f, &err), KN_OK);
    CHECK_EQ_INT(kn_opt_set_attr_ints(g, i, "perm", ints, 3, &err), KN_OK);
    CHECK_EQ_INT(kn_opt_set_attr_floats(g, i, "scales", fl, 2, &err), KN_OK);
    CHECK_EQ_INT(kn_opt_set_attr_string(g, i, "mode", "linear", &err), KN_OK);
    const kn_node *n = &g->nodes[i];
    CHECK_EQ_INT(n->n_attr, 5);
    CHECK_EQ_INT(kn_attr_int(n, "k", 0), 7);
    CHECK_NEAR(kn_attr_float(n, "alpha", 0), 0.25, 0);
    const int64_t *pv;
    CHECK_EQ_INT(kn_attr_ints(n, "perm", &pv), 3);
    CHECK_EQ_INT(pv[2], 3);
    const float *fv;
    CHECK_EQ_INT(kn_attr_floats(n, "scales", &fv), 2);
    CHECK_NEAR(fv[1], 1.5, 0);
    CHECK(!strcmp(kn_attr_string(n, "mode", ""), "linear"));
    CHECK_EQ_INT(kn_opt_copy_attrs(g, 1, 0, &err), KN_OK);
    CHECK_EQ_INT(g->nodes[1].n_attr, 5);
    CHECK_EQ_INT(kn_attr_int(&g->nodes[1], "k", 0), 7);
    /* the copy is independent */
    CHECK_EQ_INT(kn_opt_set_attr_int(g, 1, "k", 9, &err), KN_OK);
    CHECK_EQ_INT(kn_attr_int(&g->nodes[0], "k", 0), 7);
    kn_model_free(m);
}

static void test_eval_node(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[1] = {3};
    float a[3] = {1, 2, 3}, b[3] = {10, 20, 30};
    set_const(g, "a", 1, d, a);
    set_const(g, "b", 1, d, b);
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add1(g, "Add", "a", "b", "s");
    add1(g, "Add", "s", "x", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    int s = kn_graph_find(g, "s");
    int add_ab = g->values[s].producer;
    kn_tensor out[1];
    CHECK_EQ_INT(kn_opt_eval_node(g, add_ab, out, &err), KN_OK);
    CHECK_EQ_INT(out[0].numel, 3);
    if (out[0].numel == 3)
        CHECK_NEAR(((float *)out[0].data)[2], 33, 0);
    /* fold it by hand: the value keeps its name */
    CHECK_EQ_INT(kn_opt_set_initializer(g, s, &out[0], &err), KN_OK);
    kn_tensor_release(&out[0]);
    kn_opt_delete_node(g, add_ab);
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    CHECK_EQ_INT(g->n_nodes, 1);
    /* the non-constant node cannot be evaluated */
    CHECK_EQ_INT(kn_opt_eval_node(g, 0, out, &err), KN_ERR_ARG);
    kn_tensor x = {0}, y = {0};
    kn_tensor_alloc(&x, KN_F32, 1, d, &err);
    const kn_tensor *ins[1] = {&x};
    CHECK_EQ_INT(kn_exec_graph(g, NULL, 1, ins, 1, &y, &err), KN_OK);
    if (y.numel == 3)
        CHECK_NEAR(((float *)y.data)[1], 22, 0);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
    kn_model_free(m);
}

/* Dropping an unused large initializer gives its pages back, but never pages a kept
 * initializer shares with it. */
static void test_dropped_constant_pages(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[1] = {8192};
    float *w = malloc(sizeof *w * 8192);
    for (int i = 0; i < 8192; i++)
        w[i] = (float)i;
    set_const(g, "w", 1, d, w);
    set_const(g, "big_unused", 1, d, w);
    int alias = kn_graph_value(g, "alias");
    g->values[alias].init = g->values[kn_graph_find(g, "w")].init;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add1(g, "Add", "x", "alias", "y");
    kn_graph_add_output(g, kn_graph_find(g, "y"));
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    /* w itself is unused (its data is read through "alias") */
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    CHECK_EQ_INT(kn_graph_find(g, "w"), -1);
    CHECK_EQ_INT(kn_graph_find(g, "big_unused"), -1);
    const kn_tensor *a = kn_opt_const(g, kn_graph_find(g, "alias"));
    bool intact = a && a->numel == 8192;
    for (int i = 0; intact && i < 8192; i++)
        intact = ((const float *)a->data)[i] == (float)i;
    CHECK(intact);
    free(w);
    kn_model_free(m);
}

/* If(cond) with both branches returning Relu(c) of the outer value c = Neg(x). */
static kn_graph *branch(kn_model *m, kn_graph *parent, const char *out)
{
    kn_graph *b = kn_graph_new(m, parent);
    add1(b, "Relu", "c", NULL, out);
    kn_graph_add_output(b, kn_graph_find(b, out));
    return b;
}

static void test_subgraph_capture_is_pinned(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add1(g, "Neg", "x", NULL, "c");
    add1(g, "Abs", "x", NULL, "dead");
    int64_t one = 1;
    kn_tensor cond = {0};
    kn_error err;
    kn_tensor_alloc(&cond, KN_BOOL, 0, &one, &err);
    ((unsigned char *)cond.data)[0] = 1;
    CHECK_EQ_INT(kn_opt_set_initializer(g, kn_graph_value(g, "cond"), &cond, &err), KN_OK);
    kn_tensor_release(&cond);
    int ifn = add1(g, "If", "cond", NULL, "y");
    kn_attr *at = kn_arena_calloc(&m->arena, 2, sizeof *at);
    at[0].name = "then_branch";
    at[0].type = KN_ATTR_GRAPH;
    at[0].g = branch(m, g, "t");
    at[1].name = "else_branch";
    at[1].type = KN_ATTR_GRAPH;
    at[1].g = branch(m, g, "e");
    g->nodes[ifn].attrs = at;
    g->nodes[ifn].n_attr = 2;
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    int c = kn_graph_find(g, "c");
    CHECK(kn_opt_value_is_pinned(g, c));
    CHECK(!kn_opt_replace_uses(g, c, kn_graph_find(g, "x")));
    int *uses = kn_opt_use_counts(g, &err);
    CHECK(uses && uses[c] == 1);
    free(uses);
    CHECK_EQ_INT(kn_opt_eval_node(g, g->values[kn_graph_find(g, "y")].producer, NULL, &err),
                 KN_ERR_UNSUPPORTED);
    /* delete the dead Abs: values renumber, the If's capture is recomputed */
    kn_opt_delete_node(g, g->values[kn_graph_find(g, "dead")].producer);
    CHECK_EQ_INT(kn_opt_refinalize(g, &err), KN_OK);
    c = kn_graph_find(g, "c");
    CHECK(kn_opt_value_is_pinned(g, c));
    CHECK_NEAR(run1(g, -5, 0), 5, 0);
    CHECK_NEAR(run1(g, 5, 0), 0, 0);
    kn_model_free(m);
}

TEST_MAIN(TEST_CASE(test_use_counts_and_consumers), TEST_CASE(test_delete_and_refinalize_drops_values),
          TEST_CASE(test_replace_uses_and_add_node), TEST_CASE(test_new_domain_is_imported),
          TEST_CASE(test_attrs), TEST_CASE(test_eval_node), TEST_CASE(test_dropped_constant_pages), TEST_CASE(test_subgraph_capture_is_pinned))
