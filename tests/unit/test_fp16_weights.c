/* test_fp16_weights.c - float16 weights read through Cast(to=FLOAT) (what `kiln
 * quantize --mode fp16` writes): the bulk half -> float conversions against the
 * scalar ones on every bit pattern and on tails; the optimizer folds the Cast of a
 * float16 weight of any size (past the folding cap) into a float32 initializer with
 * the same result, and the float16 source is no longer read. */
#include "test.h"
#include "op_harness.h"

#include "exec/exec.h"
#include "opt/opt.h"

#include <stdlib.h>

static void test_bulk_conversions(void)
{
    uint16_t *h = malloc(sizeof(uint16_t) * 65536);
    float *f = malloc(sizeof(float) * 65536), *g = malloc(sizeof(float) * 65536);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    for (size_t start = 0; start < 3; start++) { /* misaligned starts, odd tails */
        size_t n = 65536 - start * 5;
        kn_f16_to_f32_n(h + start, f, n);
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = kn_f16_to_f32(h[start + i]);
            bad += isnan(want) ? !isnan(f[i]) : memcmp(&want, &f[i], 4) != 0;
        }
        CHECK_EQ_INT(bad, 0);
        kn_bf16_to_f32_n(h + start, g, n);
        bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = kn_bf16_to_f32(h[start + i]);
            bad += memcmp(&want, &g[i], 4) != 0;
        }
        CHECK_EQ_INT(bad, 0);
    }
    free(h);
    free(f);
    free(g);
}

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}

/* x [1, K] x Cast(w16 [K, N]) with K * N past the 8M-element folding cap. */
static void check_fold(int64_t K, int64_t N)
{
    kn_model *m = kt_model_new(17);
    kn_graph *g = m->graph;
    int64_t wd[2] = {K, N}, xd[2] = {1, K};
    kn_tensor w = kt_tensor(KN_F16, 2, wd, NULL), x = kt_tensor(KN_F32, 2, xd, NULL);
    for (int64_t i = 0; i < w.numel; i++)
        ((uint16_t *)w.data)[i] = kn_f32_to_f16((float)((i * 37 % 101) - 50) / 64.0f);
    for (int64_t i = 0; i < x.numel; i++)
        ((float *)x.data)[i] = (float)((i % 13) - 6) / 8.0f;
    kt_graph_const(g, "w16", &w);
    kt_graph_type(g, "x", KN_F32, 2, xd);
    kn_graph_add_input(g, kn_graph_find(g, "x"));
    int c = kt_graph_node(g, "Cast", "w16", "w");
    kn_error err;
    kn_opt_set_attr_int(g, c, "to", KN_F32, &err);
    kt_graph_node(g, "MatMul", "x,w", "y");
    kn_graph_add_output(g, kn_graph_value(g, "y"));
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    const kn_tensor *ins[1] = {&x};
    kn_tensor before = {0}, after = {0};
    CHECK_EQ_INT(kn_exec_graph(g, NULL, 1, ins, 1, &before, &err), KN_OK);
    kn_opt_report rep;
    CHECK_EQ_INT(kn_optimize(m, KN_OPT_BASIC, &rep, &err), KN_OK);
    CHECK_EQ_INT(count_op(g, "Cast"), 0);
    const kn_tensor *folded = kn_opt_const(g, kn_graph_find(g, "w"));
    CHECK(folded && folded->dtype == KN_F32 && folded->numel == K * N);
    for (int i = 0; i < g->n_nodes; i++) /* nothing reads the float16 weight */
        for (int k = 0; k < g->nodes[i].n_in; k++)
            CHECK(g->nodes[i].in[k] != kn_graph_find(g, "w16"));
    CHECK_EQ_INT(kn_exec_graph(g, NULL, 1, ins, 1, &after, &err), KN_OK);
    CHECK(before.numel == N && after.numel == N && !memcmp(before.data, after.data, sizeof(float) * (size_t)N));
    kn_tensor_release(&before);
    kn_tensor_release(&after);
    kn_tensor_release(&w);
    kn_tensor_release(&x);
    kn_model_free(m);
}

static void test_cast_of_half_weight_folds(void)
{
    check_fold(7, 5);
    check_fold(4096, 2049); /* 8.4M elements: 33 MB of float32, past the cap */
}

TEST_MAIN(TEST_CASE(test_bulk_conversions), TEST_CASE(test_cast_of_half_weight_folds))
