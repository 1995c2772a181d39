/* test_ops_dropout.c - unit tests for Dropout's training-mode edges: ratio 0 in
 * training mode passes the input through with an all-true mask, a ratio outside
 * [0, 1) in training mode is an error, a non-zero ratio in training mode is
 * reported unsupported, and inference mode ignores any ratio. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>

static float xs[4] = {1, -2, 3, -4};
static int64_t four = 4;

/* Dropout (opset 13) of xs with ratio and training flag; out[0] y, out[1] mask. */
static int with(float ratio, uint8_t training, kn_tensor *out)
{
    static float rv;
    static uint8_t tv;
    rv = ratio;
    tv = training;
    kn_tensor x = kt_view(KN_F32, 1, &four, xs), r = kt_view(KN_F32, 0, NULL, &rv);
    kn_tensor t = kt_view(KN_BOOL, 0, NULL, &tv);
    kt_node drop = {"Dropout", 13, 3, {&x, &r, &t}, 2};
    kn_error err = {0};
    return kt_run_node(&drop, out, &err);
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
