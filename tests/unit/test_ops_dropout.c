/* test_ops_dropout.c - unit tests for Dropout's training-mode edges: ratio 0 in
 * training mode passes the input through with an all-true mask, a ratio outside
 * [0, 1) in training mode is an error, a non-zero ratio in training mode is
 * reported unsupported, and inference mode ignores any ratio. */
#include "test.h"

#include <stdint.h>

#include "exec/exec.h"

static kn_tensor tensor(kn_dtype dt, int rank, const int64_t *dims, void *data)
{
    kn_tensor t = {0};
    kn_error err;
    kn_tensor_set_shape(&t, dt, rank, dims, &err);
    t.data = data;
    return t;
}

/* Dropout (opset 13) of x with ratio r and training flag t; out[0] y, out[1] mask. */
static int run_dropout(const kn_tensor *x, const kn_tensor *r, const kn_tensor *t, kn_tensor *out,
                       kn_error *err)
{
    kn_model *m = kn_model_new();
    m->n_opsets = 1;
    m->opsets = kn_arena_calloc(&m->arena, 1, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = 13;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    const kn_tensor *vals[3] = {x, r, t};
    const char *names[3] = {"x", "r", "t"};
    const kn_tensor *graph_in[3];
    int n_in = 0;
    kn_node *n = kn_graph_add_node(g);
    n->name = "drop";
    n->op_type = "Dropout";
    n->domain = "";
    n->n_in = 3;
    n->in = kn_arena_calloc(&m->arena, 3, sizeof(int));
    for (int i = 0; i < 3; i++) {
        n->in[i] = -1;
        if (!vals[i])
            continue;
        int id = kn_graph_value(g, names[i]);
        n = &g->nodes[0];
        n->in[i] = id;
        kn_graph_add_input(g, id);
        graph_in[n_in++] = vals[i];
    }
    int y = kn_graph_value(g, "y"), mask = kn_graph_value(g, "mask");
    n = &g->nodes[0];
    n->n_out = 2;
    n->out = kn_arena_calloc(&m->arena, 2, sizeof(int));
    n->out[0] = y;
    n->out[1] = mask;
    kn_graph_add_output(g, y);
    kn_graph_add_output(g, mask);
    int rc = kn_model_finalize(m, err);
    if (!rc)
        rc = kn_exec_graph(g, NULL, n_in, graph_in, 2, out, err);
    kn_model_free(m);
    return rc;
}

static float xs[4] = {1, -2, 3, -4};
static int64_t four = 4;

static int with(float ratio, uint8_t training, kn_tensor *out)
{
    static float rv;
    static uint8_t tv;
    rv = ratio;
    tv = training;
    kn_tensor x = tensor(KN_F32, 1, &four, xs), r = tensor(KN_F32, 0, NULL, &rv), t = tensor(KN_BOOL, 0, NULL, &tv);
    kn_error err = {0};
    return run_dropout(&x, &r, &t, out, &err);
}

static void test_training_zero_ratio(void)
{
    kn_tensor out[2];
    int rc = with(0.0f, 1, out);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        return;
    CHECK(out[0].numel == 4 && memcmp(out[0].data, xs, sizeof xs) == 0);
    CHECK_EQ_INT(out[1].dtype, KN_BOOL);
    for (int i = 0; i < 4 && out[1].numel == 4; i++)
        CHECK_EQ_INT(((uint8_t *)out[1].data)[i], 1);
    kn_tensor_release(&out[0]);
    kn_tensor_release(&out[1]);
}

static void test_training_ratio_edges(void)
{
    kn_tensor out[2];
    CHECK_EQ_INT(with(1.0f, 1, out), KN_ERR_ARG);
    CHECK_EQ_INT(with(-0.5f, 1, out), KN_ERR_ARG);
    CHECK_EQ_INT(with(0.5f, 1, out), KN_ERR_UNSUPPORTED);
    /* inference: any ratio, identity */
    int rc = with(1.5f, 0, out);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc == KN_OK) {
        CHECK(memcmp(out[0].data, xs, sizeof xs) == 0);
        kn_tensor_release(&out[0]);
        kn_tensor_release(&out[1]);
    }
}

TEST_MAIN(TEST_CASE(test_training_zero_ratio), TEST_CASE(test_training_ratio_edges))
