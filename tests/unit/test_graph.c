/* test_graph.c - graph IR finalization: topological sorting of nodes given in any
 * order (a long chain added backwards), cycle detection, undefined and doubly
 * defined tensors, unsupported operators listed by name, and static inference of
 * undeclared value types with symbolic dims, through Conv and the pools too. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "ir/ir.h"
#include "opt/opt.h"

#include <stdio.h>

/* Node op(in..., out) with ints attributes given as name, count, values triples. */
static int add_node_ints(kn_graph *g, const char *op, int n_in, const char *const *ins,
                         const char *out, int n_attrs, const char *const *names,
                         const int64_t *const *vals, const int *counts)
{
    kn_node *n = kn_graph_add_node(g);
    n->op_type = op;
    n->n_in = n_in;
    n->n_out = 1;
    n->in = kn_arena_calloc(&g->model->arena, (size_t)n_in, sizeof(int));
    n->out = kn_arena_calloc(&g->model->arena, 1, sizeof(int));
    for (int k = 0; k < n_in; k++)
        n->in[k] = kn_graph_value(g, ins[k]);
    n->out[0] = kn_graph_value(g, out);
    int i = g->n_nodes - 1;
    kn_error err = {0};
    for (int a = 0; a < n_attrs; a++)
        CHECK_EQ_INT(kn_opt_set_attr_ints(g, i, names[a], vals[a], counts[a], &err), KN_OK);
    return i;
}

static void add_unary(kn_graph *g, const char *op, const char *in, const char *out)
{
    add_node_ints(g, op, 1, &in, out, 0, NULL, NULL, NULL);
}

static void test_long_chain_added_backwards(void)
{
    enum { N = 20000 };
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    char in[32], out[32];
    kn_graph_add_input(g, kn_graph_value(g, "v0"));
    for (int i = N; i >= 1; i--) {
        snprintf(in, sizeof in, "v%d", i - 1);
        snprintf(out, sizeof out, "v%d", i);
        add_unary(g, i % 2 ? "Relu" : "Neg", in, out);
    }
    snprintf(out, sizeof out, "v%d", N);
    kn_graph_add_output(g, kn_graph_value(g, out));
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    bool ordered = true;
    for (int i = 0; i < N; i++) {
        snprintf(out, sizeof out, "v%d", i + 1);
        ordered &= !strcmp(g->values[g->nodes[i].out[0]].name, out);
    }
    CHECK(ordered);
    /* Relu/Neg alternating N times: relu(x) after an even number of Neg pairs */
    int64_t dims[1] = {3};
    kn_tensor x = {0}, y = {0};
    CHECK_EQ_INT(kn_tensor_alloc(&x, KN_F32, 1, dims, &err), KN_OK);
    float *xv = x.data;
    xv[0] = -2, xv[1] = 0.5f, xv[2] = 3;
    const kn_tensor *ins[1] = {&x};
    CHECK_EQ_INT(kn_exec_graph(g, NULL, 1, ins, 1, &y, &err), KN_OK);
    if (y.data) {
        const float *yv = y.data;
        CHECK_NEAR(yv[0], 0, 0);
        CHECK_NEAR(yv[1], 0, 0);
        CHECK_NEAR(yv[2], 0, 0);
    }
    kn_tensor_release(&x);
    kn_tensor_release(&y);
    kn_model_free(m);
}

static void test_cycle(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add_unary(g, "Relu", "b", "a");
    add_unary(g, "Relu", "a", "b");
    kn_graph_add_output(g, kn_graph_value(g, "a"));
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "cycle") != NULL);
    kn_model_free(m);
}

static void test_undefined_and_twice_defined(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add_unary(g, "Relu", "nowhere", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "nowhere") != NULL);
    kn_model_free(m);

    m = kt_model_new(17);
    g = m->graph;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add_unary(g, "Relu", "x", "y");
    add_unary(g, "Neg", "x", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_ERR_MODEL);
    CHECK(strstr(err.msg, "defined twice") != NULL);
    kn_model_free(m);
}

static void test_unsupported_listed(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    kn_graph_add_input(g, kn_graph_value(g, "x"));
    add_unary(g, "FrobnicateA", "x", "y");
    add_unary(g, "FrobnicateB", "y", "z");
    add_unary(g, "FrobnicateA", "z", "w");
    kn_graph_add_output(g, kn_graph_value(g, "w"));
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "FrobnicateA") && strstr(err.msg, "FrobnicateB"));
    kn_model_free(m);
}

static void test_inference_keeps_symbols(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int x = kn_graph_value(g, "x");
    kn_graph_add_input(g, x);
    kn_value *xv = &g->values[x];
    xv->has_type = true;
    xv->type.kind = KN_TYPE_TENSOR;
    xv->type.dtype = KN_F32;
    xv->type.rank = 2;
    xv->type.dims[0] = (kn_dim){-1, "batch"};
    xv->type.dims[1] = (kn_dim){3, NULL};
    add_unary(g, "Relu", "x", "y");
    add_unary(g, "Sigmoid", "y", "z");
    kn_graph_add_output(g, kn_graph_value(g, "z"));
    kn_error err = {0};
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    const kn_value *z = &g->values[kn_graph_find(g, "z")];
    CHECK(z->has_type && z->type_inferred);
    char buf[128];
    CHECK(!strcmp(kn_type_str(&z->type, buf, sizeof buf), "float32[batch,3]"));
    kn_model_free(m);
}

static const char *type_of(const kn_graph *g, const char *name, char *buf, size_t len)
{
    const kn_value *v = &g->values[kn_graph_find(g, name)];
    return v->has_type ? kn_type_str(&v->type, buf, len) : "(none)";
}

/* x[batch,3,9,11] -> Conv 3x3 stride 2 pad 1 (4 maps) -> MaxPool 2x2 stride 2 ->
 * GlobalAveragePool: every output type follows, the batch symbol carried. */
static void test_inference_through_conv_and_pools(void)
{
    kn_model *m = kt_model_new(13);
    kn_graph *g = m->graph;
    int x = kn_graph_value(g, "x");
    kn_graph_add_input(g, x);
    kn_value *xv = &g->values[x];
    xv->has_type = true;
    xv->type = (kn_type){.kind = KN_TYPE_TENSOR, .dtype = KN_F32, .rank = 4};
    xv->type.dims[0] = (kn_dim){-1, "batch"};
    xv->type.dims[1] = (kn_dim){3, NULL};
    xv->type.dims[2] = (kn_dim){9, NULL};
    xv->type.dims[3] = (kn_dim){11, NULL};
    kn_error err = {0};
    int64_t wd[4] = {4, 3, 3, 3};
    kn_tensor w = {0};
    CHECK_EQ_INT(kn_tensor_alloc(&w, KN_F32, 4, wd, &err), KN_OK);
    CHECK_EQ_INT(kn_opt_set_initializer(g, kn_graph_value(g, "w"), &w, &err), KN_OK);
    kn_tensor_release(&w);
    static const int64_t two[2] = {2, 2}, ones[4] = {1, 1, 1, 1};
    const char *cin[2] = {"x", "w"}, *cnames[2] = {"strides", "pads"};
    const int64_t *cvals[2] = {two, ones};
    int ccounts[2] = {2, 4};
    add_node_ints(g, "Conv", 2, cin, "c", 2, cnames, cvals, ccounts);
    const char *pin[1] = {"c"}, *pnames[2] = {"kernel_shape", "strides"};
    const int64_t *pvals[2] = {two, two};
    int pcounts[2] = {2, 2};
    add_node_ints(g, "MaxPool", 1, pin, "p", 2, pnames, pvals, pcounts);
    const char *gin[1] = {"p"};
    add_node_ints(g, "GlobalAveragePool", 1, gin, "y", 0, NULL, NULL, NULL);
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    char buf[128];
    CHECK(!strcmp(type_of(g, "c", buf, sizeof buf), "float32[batch,4,5,6]"));
    CHECK(!strcmp(type_of(g, "p", buf, sizeof buf), "float32[batch,4,2,3]"));
    CHECK(!strcmp(type_of(g, "y", buf, sizeof buf), "float32[batch,4,1,1]"));
    kn_model_free(m);
}

TEST_MAIN(TEST_CASE(test_long_chain_added_backwards), TEST_CASE(test_cycle),
          TEST_CASE(test_undefined_and_twice_defined), TEST_CASE(test_unsupported_listed),
          TEST_CASE(test_inference_keeps_symbols), TEST_CASE(test_inference_through_conv_and_pools))
