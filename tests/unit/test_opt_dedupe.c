/* test_opt_dedupe.c - the dedupe_initializers pass: equal weights (same dtype, shape
 * and bytes) under different names become one value, unequal ones (a single byte
 * apart, or another shape) stay apart, graph outputs stay, and outputs do not change. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "opt/opt.h"

#include <stdlib.h>

#define N 20000 /* floats per weight: above the pass's size floor (64 KiB) */

static void weight(kn_graph *g, const char *name, int64_t rows, float bump)
{
    int64_t dims[2] = {rows, N / rows};
    static float v[N];
    for (int i = 0; i < N; i++)
        v[i] = (float)(i % 13) * 0.25f;
    v[N - 1] += bump;
    kn_tensor t = kt_tensor(KN_F32, 2, dims, v);
    kt_graph_const(g, name, &t);
    kn_tensor_release(&t);
}

static int distinct_weight_inputs(const kn_graph *g)
{
    int seen[8], n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int v = g->nodes[i].in[1];
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup |= seen[k] == v;
        if (!dup && n < 8)
            seen[n++] = v;
    }
    return n;
}

static void test_equal_weights_merge(void)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t d[2] = {2, N / 2};
    kt_graph_type(g, "x", KN_F32, 2, d);
    kn_graph_add_input(g, kn_graph_find(g, "x"));
    weight(g, "w1", 2, 0.0f);
    weight(g, "w2", 2, 0.0f);   /* equal to w1 */
    weight(g, "w3", 2, 0.5f);   /* one value differs */
    weight(g, "w4", 4, 0.0f);   /* same bytes, other shape: not broadcastable, unused by Add */
    kt_graph_node(g, "Add", "x,w1", "a1");
    kt_graph_node(g, "Add", "x,w2", "a2");
    kt_graph_node(g, "Add", "x,w3", "a3");
    kn_graph_add_output(g, kn_graph_value(g, "a1"));
    kn_graph_add_output(g, kn_graph_value(g, "a2"));
    kn_graph_add_output(g, kn_graph_value(g, "a3"));
    kn_error err;
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    kn_tensor x = kt_tensor(KN_F32, 2, d, NULL);
    for (int64_t i = 0; i < x.numel; i++)
        ((float *)x.data)[i] = (float)i;
    const kn_tensor *ins[1] = {&x};
    kn_tensor before[3] = {{0}}, after[3] = {{0}};
    CHECK_EQ_INT(kn_exec_graph(g, NULL, 1, ins, 3, before, &err), KN_OK);
    CHECK_EQ_INT(distinct_weight_inputs(g), 3);
    kn_opt_report rep;
    CHECK_EQ_INT(kn_optimize(m, KN_OPT_BASIC, &rep, &err), KN_OK);
    CHECK_EQ_INT(distinct_weight_inputs(g), 2);
    CHECK_EQ_INT(kn_exec_graph(g, NULL, 1, ins, 3, after, &err), KN_OK);
    for (int k = 0; k < 3; k++) {
        CHECK(before[k].nbytes == after[k].nbytes && !memcmp(before[k].data, after[k].data, before[k].nbytes));
        kn_tensor_release(&before[k]);
        kn_tensor_release(&after[k]);
    }
    kn_tensor_release(&x);
    kn_model_free(m);
}

TEST_MAIN(TEST_CASE(test_equal_weights_merge))
