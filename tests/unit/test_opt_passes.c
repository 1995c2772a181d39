/* test_opt_passes.c - the basic optimizer passes (src/opt/): for each pass a small
 * graph is built, run, optimized at level basic and run again; the test checks that
 * the rewrite happened (operator counts, pass report) and that the outputs did not
 * change.  Negative cases check what must be left alone (random ops, pinned or
 * captured values, non-identity slices, casts that change the type, large folds). */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "opt/opt.h"

#include <stdlib.h>

/* ---- helpers ---- */

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}

static int rewrites_of(const kn_opt_report *r, const char *pass)
{
    for (int i = 0; i < r->n_passes; i++)
        if (!strcmp(r->passes[i].name, pass))
            return r->passes[i].rewrites;
    return 0;
}

static void f32_const(kn_graph *g, const char *name, int rank, const int64_t *dims, const float *v)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, v);
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
}

static void i64_const(kn_graph *g, const char *name, int n, const int64_t *v)
{
    kn_tensor t = kt_tensor_i64(KN_I64, n, v);
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
}

/* A float input x of the given static shape, filled with a fixed pattern. */
static kn_tensor input_for(kn_graph *g, const char *name, int rank, const int64_t *dims)
{
    kt_graph_type(g, name, KN_F32, rank, dims);
    kn_graph_add_input(g, kn_graph_find(g, name));
    kn_tensor t = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t.numel; i++)
        ((float *)t.data)[i] = (float)((i * 37 % 23) - 11) / 7.0f;
    return t;
}

static void outputs(kn_graph *g, const char *names)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ","))
        kn_graph_add_output(g, kn_graph_value(g, s));
}

#define MAX_OUT 4

/* Finalize, run, optimize at basic, run again and compare; *rep gets the report. */
static void optimize_and_compare(kn_model *m, const kn_tensor *x, kn_opt_report *rep, double tol)
{
    kn_graph *g = m->graph;
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    const kn_tensor *ins[1] = {x};
    int n_in = x ? 1 : 0, n_out = g->n_outputs;
    kn_tensor before[MAX_OUT] = {{0}}, after[MAX_OUT] = {{0}};
    int rc = kn_exec_graph(g, NULL, n_in, ins, n_out, before, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "before: %s\n", err.msg);
    rc = kn_optimize(m, KN_OPT_BASIC, rep, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "optimize: %s\n", err.msg);
    rc = kn_exec_graph(g, NULL, n_in, ins, n_out, after, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        fprintf(stderr, "after: %s\n", err.msg);
    for (int k = 0; k < n_out && !rc; k++) {
        CHECK_EQ_INT(after[k].dtype, before[k].dtype);
        CHECK(kt_same_dims(&after[k], before[k].rank, before[k].dims));
        if (before[k].dtype == KN_F32)
            kt_check_f32(&after[k], before[k].data, before[k].numel, tol);
        else if (before[k].nbytes == after[k].nbytes)
            CHECK(!memcmp(before[k].data, after[k].data, before[k].nbytes));
    }
    kt_release_all(before, n_out);
    kt_release_all(after, n_out);
}

/* ---- fold_constants ---- */

static void test_fold_constants(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, 3};
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {6, 5, 4, 3, 2, 1};
    kn_tensor x = input_for(g, "x", 2, d);
    f32_const(g, "a", 2, d, a);
    f32_const(g, "b", 2, d, b);
    kt_graph_node(g, "Add", "a,b", "s");
    kt_graph_node(g, "Sqrt", "s", "r");
    int c = kt_graph_node(g, "Constant", "", "k");
    kn_error err;
    kn_opt_set_attr_float(g, c, "value_float", 0.5f, &err);
    kt_graph_node(g, "Mul", "r,k", "rk");
    kt_graph_node(g, "Mul", "x,rk", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(count_op(g, "Mul"), 1);
    CHECK(rewrites_of(&rep, "fold_constants") >= 4);
    CHECK_EQ_INT(rep.nodes_before, 5);
    CHECK_EQ_INT(rep.nodes_after, 1);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* A graph output computed from constants becomes an initializer under its name. */
static void test_fold_constant_output(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[1] = {3};
    float a[3] = {1, -2, 3};
    f32_const(g, "a", 1, d, a);
    kt_graph_node(g, "Abs", "a", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, NULL, &rep, 0);
    CHECK_EQ_INT(g->n_nodes, 0);
    int y = g->outputs[0];
    CHECK(!strcmp(g->values[y].name, "y"));
    CHECK(kn_opt_const(g, y) != NULL);
    kn_model_free(m);
}

/* Shape of a statically shaped input folds, and with it the chain building a
 * Reshape target: y = Reshape(x, [shape(x)[1], shape(x)[0]]). */
static void test_fold_shape_chain(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, 3}, zero = 0, one = 1;
    kn_tensor x = input_for(g, "x", 2, d);
    i64_const(g, "i0", 1, &zero);
    i64_const(g, "i1", 1, &one);
    kt_graph_node(g, "Shape", "x", "sh");
    kt_graph_node(g, "Gather", "sh,i1", "d1");
    kt_graph_node(g, "Shape", "x", "sh2");      /* duplicate: cse or folding */
    kt_graph_node(g, "Gather", "sh2,i0", "d0");
    int cat = kt_graph_node(g, "Concat", "d1,d0", "target");
    kn_error err;
    kn_opt_set_attr_int(g, cat, "axis", 0, &err);
    kt_graph_node(g, "Reshape", "x,target", "y");
    int sz = kt_graph_node(g, "Size", "x", "n");
    (void)sz;
    outputs(g, "y,n");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(count_op(g, "Reshape"), 1);
    const kn_tensor *n = kn_opt_const(g, g->outputs[1]);
    CHECK(n && n->dtype == KN_I64 && *(const int64_t *)n->data == 6);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* Shape of a value with a symbolic dim stays. */
static void test_shape_of_dynamic_input_stays(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {-1, 3};
    kn_tensor x0 = input_for(g, "x", 2, d);
    kn_tensor_release(&x0);
    int64_t real[2] = {2, 3};
    kn_tensor x = kt_tensor(KN_F32, 2, real, NULL);
    kt_graph_node(g, "Shape", "x", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Shape"), 1);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* Gather(Shape(x), [1]) folds when dim 1 is static although dim 0 is not; a
 * gather of the dynamic dim stays. */
static void test_fold_static_dim_of_dynamic_shape(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {-1, 3}, real[2] = {2, 3}, one = 1, zero = 0;
    kn_tensor x0 = input_for(g, "x", 2, d);
    kn_tensor_release(&x0);
    kn_tensor x = kt_tensor(KN_F32, 2, real, NULL);
    i64_const(g, "i1", 1, &one);
    i64_const(g, "i0", 1, &zero);
    kt_graph_node(g, "Shape", "x", "sh");
    kt_graph_node(g, "Gather", "sh,i1", "cols");
    kt_graph_node(g, "Gather", "sh,i0", "rows");
    outputs(g, "cols,rows");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Gather"), 1);
    const kn_tensor *c = kn_opt_const(g, g->outputs[0]);
    CHECK(c && c->numel == 1 && *(const int64_t *)c->data == 3);
    kn_tensor_release(&x);
    kn_model_free(m);
}

static void test_no_fold_random_or_huge(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t shape[3] = {4096, 4096, 2};
    i64_const(g, "shape", 3, shape);
    kt_graph_node(g, "ConstantOfShape", "shape", "big");
    int r = kt_graph_node(g, "RandomUniform", "", "rnd");
    int64_t d[1] = {4};
    kn_error err;
    kn_opt_set_attr_ints(g, r, "shape", d, 1, &err);
    outputs(g, "big,rnd");
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    kn_opt_report rep;
    CHECK_EQ_INT(kn_optimize(m, KN_OPT_BASIC, &rep, &err), KN_OK);
    CHECK_EQ_INT(count_op(g, "ConstantOfShape"), 1);
    CHECK_EQ_INT(count_op(g, "RandomUniform"), 1);
    kn_model_free(m);
}

/* ---- eliminate_identity ---- */

static void test_eliminate_identity_chain(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, 3}, perm[2] = {0, 1}, same[2] = {2, 3}, one = 1;
    kn_tensor x = input_for(g, "x", 2, d);
    i64_const(g, "same", 2, same);
    i64_const(g, "ones", 1, &one);
    int64_t starts[2] = {0, 0}, ends[2] = {INT64_MAX, 3};
    i64_const(g, "starts", 2, starts);
    i64_const(g, "ends", 2, ends);
    kn_error err;
    kt_graph_node(g, "Identity", "x", "a");
    kt_graph_node(g, "Dropout", "a", "b");
    int cast = kt_graph_node(g, "Cast", "b", "c");
    kn_opt_set_attr_int(g, cast, "to", KN_F32, &err);
    kt_graph_node(g, "CastLike", "c,x", "c2");
    int tr = kt_graph_node(g, "Transpose", "c2", "e");
    kn_opt_set_attr_ints(g, tr, "perm", perm, 2, &err);
    kt_graph_node(g, "Reshape", "e,same", "f");
    kt_graph_node(g, "Slice", "f,starts,ends", "h");
    kt_graph_node(g, "Expand", "h,ones", "i");
    kt_graph_node(g, "Relu", "i", "r");
    kt_graph_node(g, "Identity", "r", "y");   /* graph output: Relu writes y */
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(count_op(g, "Relu"), 1);
    CHECK(!strcmp(g->values[g->outputs[0]].name, "y"));
    CHECK(rewrites_of(&rep, "eliminate_identity") >= 9);
    kn_tensor_release(&x);
    kn_model_free(m);
}

static void test_identity_lookalikes_stay(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, 3};
    kn_tensor x = input_for(g, "x", 2, d);
    int64_t starts[1] = {-1}, ends[1] = {INT64_MIN}, axes[1] = {1}, steps[1] = {-1};
    i64_const(g, "starts", 1, starts);
    i64_const(g, "ends", 1, ends);
    i64_const(g, "axes", 1, axes);
    i64_const(g, "steps", 1, steps);
    kn_error err;
    int cast = kt_graph_node(g, "Cast", "x", "c");            /* changes the type */
    kn_opt_set_attr_int(g, cast, "to", KN_F64, &err);
    kt_graph_node(g, "Slice", "x,starts,ends,axes,steps", "rev"); /* reverses */
    kt_graph_node(g, "Dropout", "x", "dy,mask");              /* mask is read */
    outputs(g, "c,rev,dy,mask");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Cast"), 1);
    CHECK_EQ_INT(count_op(g, "Slice"), 1);
    CHECK_EQ_INT(count_op(g, "Dropout"), 1);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* A value a subgraph captures by name is never bypassed. */
static kn_graph *capture_branch(kn_model *m, kn_graph *parent, const char *out)
{
    kn_graph *b = kn_graph_new(m, parent);
    kt_graph_node(b, "Neg", "c", out);
    kn_graph_add_output(b, kn_graph_find(b, out));
    return b;
}

static void test_captured_value_kept(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[1] = {3};
    kn_tensor x = input_for(g, "x", 1, d);
    uint8_t yes = 1;
    kn_tensor cond = kt_tensor(KN_BOOL, 0, NULL, &yes);
    kt_graph_const(g, "cond", &cond);
    kn_tensor_release(&cond);
    kt_graph_node(g, "Identity", "x", "c");
    int ifn = kt_graph_node(g, "If", "cond", "y");
    kn_attr *at = kn_arena_calloc(&m->arena, 2, sizeof *at);
    at[0] = (kn_attr){.name = "then_branch", .type = KN_ATTR_GRAPH, .g = capture_branch(m, g, "t")};
    at[1] = (kn_attr){.name = "else_branch", .type = KN_ATTR_GRAPH, .g = capture_branch(m, g, "e")};
    g->nodes[ifn].attrs = at;
    g->nodes[ifn].n_attr = 2;
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Identity"), 1);
    CHECK_EQ_INT(count_op(g, "If"), 1);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* ---- eliminate_dead ---- */

static void test_eliminate_dead(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[1] = {4};
    float w[4] = {1, 2, 3, 4};
    kn_tensor x = input_for(g, "x", 1, d);
    f32_const(g, "w", 1, d, w);
    f32_const(g, "unused", 1, d, w);
    kt_graph_node(g, "Relu", "x", "y");
    kt_graph_node(g, "Mul", "x,w", "a");
    kt_graph_node(g, "Abs", "a", "b");
    kt_graph_node(g, "Sigmoid", "b", "dead");  /* only dead readers */
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(kn_graph_find(g, "w"), -1);
    CHECK_EQ_INT(kn_graph_find(g, "unused"), -1);
    CHECK(rewrites_of(&rep, "eliminate_dead") >= 3);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* ---- cse ---- */

static void test_cse(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, 3}, p1[2] = {1, 0};
    kn_tensor x = input_for(g, "x", 2, d);
    kn_error err;
    kt_graph_node(g, "Relu", "x", "a1");
    kt_graph_node(g, "Relu", "x", "a2");
    kt_graph_node(g, "Neg", "a1", "n1");
    kt_graph_node(g, "Neg", "a2", "n2");
    kt_graph_node(g, "Add", "n1,n2", "s");
    int l1 = kt_graph_node(g, "LeakyRelu", "s", "l1");
    int l2 = kt_graph_node(g, "LeakyRelu", "s", "l2");   /* other alpha: differs */
    kn_opt_set_attr_float(g, l1, "alpha", 0.1f, &err);
    kn_opt_set_attr_float(g, l2, "alpha", 0.2f, &err);
    int t1 = kt_graph_node(g, "Transpose", "x", "t1");
    int t2 = kt_graph_node(g, "Transpose", "x", "t2");  /* same perm, both outputs */
    kn_opt_set_attr_ints(g, t1, "perm", p1, 2, &err);
    kn_opt_set_attr_ints(g, t2, "perm", p1, 2, &err);
    outputs(g, "l1,l2,t1,t2");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Relu"), 1);
    CHECK_EQ_INT(count_op(g, "Neg"), 1);
    CHECK_EQ_INT(count_op(g, "LeakyRelu"), 2);
    CHECK_EQ_INT(count_op(g, "Transpose"), 2);  /* both are graph outputs */
    CHECK_EQ_INT(rewrites_of(&rep, "cse"), 2);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* Equal constants are shared, so the nodes reading them merge too. */
static void test_cse_shares_constants(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, 3}, ax = 0;
    kn_tensor x = input_for(g, "x", 2, d);
    i64_const(g, "axes_a", 1, &ax);
    i64_const(g, "axes_b", 1, &ax);
    kt_graph_node(g, "Unsqueeze", "x,axes_a", "u1");
    kt_graph_node(g, "Unsqueeze", "x,axes_b", "u2");
    kt_graph_node(g, "Add", "u1,u2", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Unsqueeze"), 1);
    CHECK_EQ_INT(rewrites_of(&rep, "cse"), 2);
    CHECK(kn_graph_find(g, "axes_a") < 0 || kn_graph_find(g, "axes_b") < 0);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* ---- fold_conv_bn ---- */

static kn_tensor pattern(int rank, const int64_t *dims, int seed, float lo)
{
    kn_tensor t = kt_tensor(KN_F32, rank, dims, NULL);
    for (int64_t i = 0; i < t.numel; i++)
        ((float *)t.data)[i] = lo + (float)((i * 7 + seed * 13) % 17) / 16.0f;
    return t;
}

static void const_pattern(kn_graph *g, const char *name, int rank, const int64_t *dims, int seed, float lo)
{
    kn_tensor t = pattern(rank, dims, seed, lo);
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
}

static void test_fold_conv_bn(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[4] = {1, 3, 5, 5}, wd[4] = {4, 3, 3, 3}, c4 = 4;
    kn_tensor x = input_for(g, "x", 4, xd);
    const_pattern(g, "W", 4, wd, 1, -0.5f);
    const_pattern(g, "B", 1, &c4, 2, -0.5f);
    const_pattern(g, "scale", 1, &c4, 3, 0.5f);
    const_pattern(g, "bias", 1, &c4, 4, -0.5f);
    const_pattern(g, "mean", 1, &c4, 5, -0.5f);
    const_pattern(g, "var", 1, &c4, 6, 0.1f);
    kt_graph_node(g, "Conv", "x,W,B", "c");
    int bn = kt_graph_node(g, "BatchNormalization", "c,scale,bias,mean,var", "y");
    kn_error err;
    kn_opt_set_attr_float(g, bn, "epsilon", 1e-3f, &err);
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 1e-5);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(count_op(g, "Conv"), 1);
    CHECK_EQ_INT(rewrites_of(&rep, "fold_conv_bn"), 1);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* Conv without bias, then Mul by [4,1,1], Add of [1,4,1,1], Div by a scalar. */
static void test_fold_conv_mul_add(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[4] = {2, 3, 4, 5}, wd[4] = {4, 3, 1, 2}, md[3] = {4, 1, 1}, ad[4] = {1, 4, 1, 1};
    kn_tensor x = input_for(g, "x", 4, xd);
    const_pattern(g, "W", 4, wd, 1, -0.5f);
    const_pattern(g, "mul", 3, md, 2, 0.5f);
    const_pattern(g, "add", 4, ad, 3, -0.5f);
    float two = 2;
    f32_const(g, "two", 0, NULL, &two);
    kt_graph_node(g, "Conv", "x,W", "c");
    kt_graph_node(g, "Mul", "mul,c", "m");
    kt_graph_node(g, "Add", "m,add", "a");
    kt_graph_node(g, "Div", "a,two", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 1e-5);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(rewrites_of(&rep, "fold_conv_bn"), 3);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* A Mul along a spatial axis, or a Conv output read twice, is not folded. */
static void test_conv_not_folded(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[4] = {1, 2, 3, 3}, wd[4] = {2, 2, 1, 1}, sd[4] = {1, 1, 1, 3};
    kn_tensor x = input_for(g, "x", 4, xd);
    const_pattern(g, "W", 4, wd, 1, -0.5f);
    const_pattern(g, "W2", 4, wd, 2, -0.5f);
    const_pattern(g, "s", 4, sd, 3, 0.5f);
    kt_graph_node(g, "Conv", "x,W", "c");
    kt_graph_node(g, "Mul", "c,s", "y");
    kt_graph_node(g, "Conv", "x,W2", "c2");
    kt_graph_node(g, "Mul", "c2,s", "y2");
    kt_graph_node(g, "Relu", "c2", "z");
    outputs(g, "y,y2,z");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Mul"), 2);
    CHECK_EQ_INT(rewrites_of(&rep, "fold_conv_bn"), 0);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* ---- matmul_add_to_gemm ---- */

static void test_matmul_add_to_gemm(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[2] = {3, 4}, bd[2] = {4, 5}, n = 5;
    kn_tensor x = input_for(g, "x", 2, xd);
    const_pattern(g, "B", 2, bd, 1, -0.5f);
    const_pattern(g, "bias", 1, &n, 2, -0.5f);
    kt_graph_node(g, "MatMul", "x,B", "mm");
    kt_graph_node(g, "Add", "bias,mm", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 1e-5);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(count_op(g, "Gemm"), 1);
    CHECK(!strcmp(g->values[g->outputs[0]].name, "y"));
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* Rank-3 A, or A of unknown rank, stays a MatMul. */
static void test_matmul_rank3_stays(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[3] = {2, 3, 4}, bd[2] = {4, 5}, n = 5;
    kn_tensor x = input_for(g, "x", 3, xd);
    const_pattern(g, "B", 2, bd, 1, -0.5f);
    const_pattern(g, "bias", 1, &n, 2, -0.5f);
    kt_graph_node(g, "MatMul", "x,B", "mm");
    kt_graph_node(g, "Add", "mm,bias", "y");
    outputs(g, "y");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "MatMul"), 1);
    CHECK_EQ_INT(count_op(g, "Gemm"), 0);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* ---- eliminate_transpose ---- */

static void test_eliminate_transpose(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t xd[3] = {2, 3, 4}, p1[3] = {1, 2, 0}, p2[3] = {2, 0, 1}, p3[3] = {0, 2, 1};
    int64_t p4[3] = {1, 0, 2};
    kn_tensor x = input_for(g, "x", 3, xd);
    kn_error err;
    kn_opt_set_attr_ints(g, kt_graph_node(g, "Transpose", "x", "a"), "perm", p1, 3, &err);
    kn_opt_set_attr_ints(g, kt_graph_node(g, "Transpose", "a", "b"), "perm", p2, 3, &err);
    kt_graph_node(g, "Relu", "b", "y");                  /* T(p2)∘T(p1) = identity */
    kn_opt_set_attr_ints(g, kt_graph_node(g, "Transpose", "x", "c"), "perm", p3, 3, &err);
    kn_opt_set_attr_ints(g, kt_graph_node(g, "Transpose", "c", "z"), "perm", p4, 3, &err);
    outputs(g, "y,z");
    kn_opt_report rep;
    optimize_and_compare(m, &x, &rep, 0);
    CHECK_EQ_INT(count_op(g, "Transpose"), 1);
    CHECK_EQ_INT(g->n_nodes, 2);
    CHECK(rewrites_of(&rep, "eliminate_transpose") >= 2);
    kn_tensor_release(&x);
    kn_model_free(m);
}

/* Optimizing twice changes nothing more; level none does nothing. */
static void test_idempotent_and_levels(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[1] = {3};
    kn_tensor x = input_for(g, "x", 1, d);
    kt_graph_node(g, "Identity", "x", "a");
    kt_graph_node(g, "Relu", "a", "y");
    outputs(g, "y");
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    kn_opt_report rep;
    CHECK_EQ_INT(kn_optimize(m, KN_OPT_NONE, &rep, &err), KN_OK);
    CHECK_EQ_INT(g->n_nodes, 2);
    CHECK_EQ_INT(kn_optimize(m, KN_OPT_BASIC, &rep, &err), KN_OK);
    CHECK_EQ_INT(g->n_nodes, 1);
    CHECK_EQ_INT(kn_optimize(m, KN_OPT_BASIC, &rep, &err), KN_OK);
    CHECK_EQ_INT(rep.nodes_before, 1);
    CHECK_EQ_INT(rep.nodes_after, 1);
    int total = 0;
    for (int i = 0; i < rep.n_passes; i++)
        total += rep.passes[i].rewrites;
    CHECK_EQ_INT(total, 0);
    CHECK_EQ_INT(kn_opt_level_parse("basic"), KN_OPT_BASIC);
    CHECK_EQ_INT(kn_opt_level_parse("3"), KN_OPT_ALL);
    CHECK_EQ_INT(kn_opt_level_parse("fast"), -1);
    kn_tensor_release(&x);
    kn_model_free(m);
}

TEST_MAIN(TEST_CASE(test_fold_constants), TEST_CASE(test_fold_constant_output),
          TEST_CASE(test_fold_shape_chain), TEST_CASE(test_shape_of_dynamic_input_stays), TEST_CASE(test_fold_static_dim_of_dynamic_shape),
          TEST_CASE(test_no_fold_random_or_huge), TEST_CASE(test_eliminate_identity_chain),
          TEST_CASE(test_identity_lookalikes_stay), TEST_CASE(test_captured_value_kept),
          TEST_CASE(test_eliminate_dead), TEST_CASE(test_cse), TEST_CASE(test_cse_shares_constants), TEST_CASE(test_fold_conv_bn),
          TEST_CASE(test_fold_conv_mul_add), TEST_CASE(test_conv_not_folded),
          TEST_CASE(test_matmul_add_to_gemm), TEST_CASE(test_matmul_rank3_stays),
          TEST_CASE(test_eliminate_transpose), TEST_CASE(test_idempotent_and_levels))
