/* test_ops_control.c - unit tests for the batched Scan of opset 8: running sums
 * per batch entry, sequence_lens shorter than the sequence axis (outputs padded with
 * zeros, states stopping early), reverse directions, zero-length sequences, empty
 * batches, and bad sequence_lens / mismatched batch sizes returning errors. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>

static int *ids(kn_model *m, int n, const int *v)
{
    int *p = kn_arena_calloc(&m->arena, (size_t)n, sizeof(int));
    memcpy(p, v, sizeof(int) * (size_t)n);
    return p;
}

static void add_node(kn_model *m, kn_graph *g, const char *op, int n_in, const int *in, int out)
{
    kn_node *n = kn_graph_add_node(g);
    n->name = op;
    n->op_type = op;
    n->domain = "";
    n->n_in = n_in;
    n->in = ids(m, n_in, in);
    n->n_out = 1;
    n->out = ids(m, 1, &out);
}

/* Body (state, x) -> (state + x, state + x): a running sum and its history. */
static kn_graph *sum_body(kn_model *m, kn_graph *parent)
{
    kn_graph *b = kn_graph_new(m, parent);
    int s = kn_graph_value(b, "s"), x = kn_graph_value(b, "x");
    int sum = kn_graph_value(b, "sum"), copy = kn_graph_value(b, "sum_copy");
    kn_graph_add_input(b, s);
    kn_graph_add_input(b, x);
    int in[2] = {s, x};
    add_node(m, b, "Add", 2, in, sum);
    add_node(m, b, "Identity", 1, &sum, copy);
    kn_graph_add_output(b, sum);
    kn_graph_add_output(b, copy);
    return b;
}

/* Scan (opset 8) over (sequence_lens or NULL, state, x) with the sum body.
 * out[0] final state, out[1] scan output (owned on success). */
static int run_scan8(const kn_tensor *lens, const kn_tensor *state, const kn_tensor *x,
                     int64_t direction, kn_tensor *out, kn_error *err)
{
    kt_node n = {"Scan", 8, 3, {lens, state, x}, 2};
    kt_add_attr(&n, kt_attr_int("num_scan_inputs", 1));
    kt_add_attr(&n, kt_attr_ints("directions", 1, &direction));
    n.body_attr = "body";
    n.build_body = sum_body;
    return kt_run_node(&n, out, err);
}

/* x [2 batch, 3 steps, 2]; state [2, 2]. */
static float xs[12] = {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60};
static float st[4] = {0, 0, 100, 100};
static int64_t xdims[3] = {2, 3, 2}, sdims[2] = {2, 2};

static void test_scan8_sum_batched(void)
{
    kn_tensor x = kt_view(KN_F32, 3, xdims, xs), s = kt_view(KN_F32, 2, sdims, st), out[2];
    kn_error err = {0};
    int rc = run_scan8(NULL, &s, &x, 0, out, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    static const float y[] = {9, 12, 190, 220};
    static const float z[] = {1, 2, 4, 6, 9, 12, 110, 120, 140, 160, 190, 220};
    kt_check_f32_shaped(&out[0], 2, sdims, y, 1e-6);
    kt_check_f32_shaped(&out[1], 3, xdims, z, 1e-6);
    kn_tensor_release(&out[0]);
    kn_tensor_release(&out[1]);
}

/* sequence_lens {2, 0}, reverse: entry 0 sums x[1] then x[0]; entry 1 keeps its state. */
static void test_scan8_lens_reverse(void)
{
    int64_t lens_v[2] = {2, 0}, two = 2;
    kn_tensor lens = kt_view(KN_I64, 1, &two, lens_v);
    kn_tensor x = kt_view(KN_F32, 3, xdims, xs), s = kt_view(KN_F32, 2, sdims, st), out[2];
    kn_error err = {0};
    int rc = run_scan8(&lens, &s, &x, 1, out, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    static const float y[] = {4, 6, 100, 100};
    static const float z[] = {3, 4, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0};
    kt_check_f32_shaped(&out[0], 2, sdims, y, 1e-6);
    kt_check_f32_shaped(&out[1], 3, xdims, z, 1e-6);
    kn_tensor_release(&out[0]);
    kn_tensor_release(&out[1]);
}

/* All sequences empty: states pass through, scan output is zeros [batch, seq]. */
static void test_scan8_all_empty(void)
{
    int64_t lens_v[2] = {0, 0}, two = 2;
    kn_tensor lens = kt_view(KN_I64, 1, &two, lens_v);
    kn_tensor x = kt_view(KN_F32, 3, xdims, xs), s = kt_view(KN_F32, 2, sdims, st), out[2];
    kn_error err = {0};
    int rc = run_scan8(&lens, &s, &x, 0, out, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc)
        return;
    kt_check_f32_shaped(&out[0], 2, sdims, st, 1e-6);
    CHECK_EQ_INT(out[1].dims[0], 2);
    CHECK_EQ_INT(out[1].dims[1], 3);
    kn_tensor_release(&out[0]);
    kn_tensor_release(&out[1]);
}

/* Batch 0: outputs [0, 2] and [0, 3]. */
static void test_scan8_empty_batch(void)
{
    int64_t xd[3] = {0, 3, 2}, sd[2] = {0, 2};
    kn_tensor x = kt_view(KN_F32, 3, xd, NULL), s = kt_view(KN_F32, 2, sd, NULL), out[2];
    kn_error err = {0};
    int rc = run_scan8(NULL, &s, &x, 0, out, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(out[0].rank, 2);
    CHECK_EQ_INT(out[0].dims[0], 0);
    CHECK_EQ_INT(out[1].dims[0], 0);
    CHECK_EQ_INT(out[1].numel, 0);
    kn_tensor_release(&out[0]);
    kn_tensor_release(&out[1]);
}

static void expect_scan8_code(const kn_tensor *lens, const kn_tensor *s, const kn_tensor *x,
                              int64_t dir, int code)
{
    kn_tensor out[2];
    kn_error err = {0};
    int rc = run_scan8(lens, s, x, dir, out, &err);
    CHECK_EQ_INT(rc, code);
    if (rc == KN_OK) {
        kn_tensor_release(&out[0]);
        kn_tensor_release(&out[1]);
    }
}

static void test_scan8_errors(void)
{
    kn_tensor x = kt_view(KN_F32, 3, xdims, xs), s = kt_view(KN_F32, 2, sdims, st);
    int64_t two = 2, one = 1;
    int64_t too_long[2] = {4, 1}, negative[2] = {1, -1};
    kn_tensor l1 = kt_view(KN_I64, 1, &two, too_long), l2 = kt_view(KN_I64, 1, &two, negative);
    kn_tensor l3 = kt_view(KN_I64, 1, &one, too_long);
    float fl[2] = {1, 1};
    kn_tensor l4 = kt_view(KN_F32, 1, &two, fl);
    expect_scan8_code(&l1, &s, &x, 0, KN_ERR_ARG);
    expect_scan8_code(&l2, &s, &x, 0, KN_ERR_ARG);
    expect_scan8_code(&l3, &s, &x, 0, KN_ERR_ARG);
    expect_scan8_code(&l4, &s, &x, 0, KN_ERR_ARG);
    /* batch sizes disagree */
    int64_t sd1[2] = {1, 2};
    kn_tensor s1 = kt_view(KN_F32, 2, sd1, st);
    expect_scan8_code(NULL, &s1, &x, 0, KN_ERR_ARG);
    /* scan input without a sequence axis */
    int64_t xd2[1] = {2};
    int64_t sd0[1] = {2};
    kn_tensor x1 = kt_view(KN_F32, 1, xd2, xs), s0 = kt_view(KN_F32, 1, sd0, st);
    expect_scan8_code(NULL, &s0, &x1, 0, KN_ERR_ARG);
    /* a direction that is neither 0 nor 1 */
    expect_scan8_code(NULL, &s, &x, 2, KN_ERR_MODEL);
}

TEST_MAIN(TEST_CASE(test_scan8_sum_batched), TEST_CASE(test_scan8_lens_reverse),
          TEST_CASE(test_scan8_all_empty), TEST_CASE(test_scan8_empty_batch),
          TEST_CASE(test_scan8_errors))
