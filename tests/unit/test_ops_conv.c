/* test_ops_conv.c - unit tests for the conv, pool and resize operator families:
 * hand-checked small cases (groups, dilations, padding rules, ceil_mode, Indices
 * storage order, zero points), dtypes (float16, float64, int8, exact int64 in
 * nearest Resize), empty tensors, and bad inputs that must fail cleanly. */
#include "test.h"
#include "op_harness.h"

#include <stdlib.h>

#include "ir/ir.h"

/* ---- Conv ---- */

static void test_conv_1d_pads_dilation_bias(void)
{
    /* x = 1..5, w = [1, 0, -1] dilated by 2, pads 2/2, bias 10 */
    float xv[5] = {1, 2, 3, 4, 5}, wv[3] = {1, 0, -1}, bv[1] = {10};
    int64_t dx[3] = {1, 1, 5}, dw[3] = {1, 1, 3}, db[1] = {1};
    kn_tensor x = kt_tensor(KN_F32, 3, dx, xv), w = kt_tensor(KN_F32, 3, dw, wv), b = kt_tensor(KN_F32, 1, db, bv);
    kn_tensor y = {0};
    kn_error err;
    int64_t dil[1] = {2}, pads[2] = {2, 2};
    kn_attr at[] = {kt_attr_ints("dilations", 1, dil), kt_attr_ints("pads", 2, pads)};
    const kn_tensor *ins[3] = {&x, &w, &b};
    CHECK_EQ_INT(kt_run_op("Conv", 13, 3, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    /* taps at i-2, i, i+2 (weights 1, 0, -1): y[i] = x[i-2] - x[i+2] + 10 */
    float want[5] = {10 - 3, 10 - 4, 10 + 1 - 5, 10 + 2, 10 + 3};
    CHECK_EQ_INT(y.rank, 3);
    kt_check_f32(&y, want, 5, 1e-6);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&b);
}

static void test_conv_depthwise_same_lower_f16(void)
{
    /* 2 channels, group 2, 2x2 kernel of ones, stride 1, SAME_LOWER (pad at the start) */
    int64_t dx[4] = {1, 2, 2, 2}, dw[4] = {2, 1, 2, 2};
    uint16_t xv[8], wv[8];
    for (int i = 0; i < 8; i++) {
        xv[i] = kn_f32_to_f16((float)(i + 1));
        wv[i] = kn_f32_to_f16(i < 4 ? 1.0f : 2.0f);
    }
    kn_tensor x = kt_tensor(KN_F16, 4, dx, xv), w = kt_tensor(KN_F16, 4, dw, wv), y = {0};
    kn_error err;
    kn_attr at[] = {kt_attr_int("group", 2), kt_attr_str("auto_pad", "SAME_LOWER")};
    const kn_tensor *ins[2] = {&x, &w};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F16);
    CHECK_EQ_INT(y.numel, 8);
    if (y.numel == 8) {
        /* channel 0 = [[1,2],[3,4]]: sums of the window ending at each position */
        const float want[8] = {1, 3, 4, 10, 2 * 5, 2 * 11, 2 * 12, 2 * 26};
        for (int i = 0; i < 8; i++)
            CHECK_NEAR(kn_f16_to_f32(((uint16_t *)y.data)[i]), want[i], 1e-3);
    }
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
}

static void test_conv_f64_strided_3d(void)
{
    /* 3-D, 1x1x1 kernel with weight 2, stride 2: picks every other voxel */
    int64_t dx[5] = {1, 1, 3, 3, 3}, dw[5] = {1, 1, 1, 1, 1};
    double xv[27], wv[1] = {2};
    for (int i = 0; i < 27; i++)
        xv[i] = i;
    kn_tensor x = kt_tensor(KN_F64, 5, dx, xv), w = kt_tensor(KN_F64, 5, dw, wv), y = {0};
    kn_error err;
    int64_t st[3] = {2, 2, 2};
    kn_attr at[] = {kt_attr_ints("strides", 3, st)};
    const kn_tensor *ins[2] = {&x, &w};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 8);
    if (y.numel == 8) {
        const double *d = y.data;
        CHECK_NEAR(d[0], 0, 0);
        CHECK_NEAR(d[1], 4, 0);
        CHECK_NEAR(d[7], 2 * 26, 0);
    }
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
}

static void test_conv_empty_batch(void)
{
    int64_t dx[4] = {0, 1, 3, 3}, dw[4] = {4, 1, 2, 2};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, NULL), w = kt_tensor(KN_F32, 4, dw, NULL), y = {0};
    kn_error err;
    const kn_tensor *ins[2] = {&x, &w};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 4);
    CHECK_EQ_INT(y.dims[0], 0);
    CHECK_EQ_INT(y.dims[1], 4);
    CHECK_EQ_INT(y.dims[2], 2);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
}

static void test_conv_bad_inputs(void)
{
    kn_error err;
    kn_tensor y = {0};
    int64_t dx[4] = {1, 3, 4, 4}, dw[4] = {2, 2, 3, 3}, dbig[4] = {1, 3, 9, 9}, d2[2] = {3, 4};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, NULL), w = kt_tensor(KN_F32, 4, dw, NULL);
    kn_tensor wbig = kt_tensor(KN_F32, 4, dbig, NULL), x2 = kt_tensor(KN_F32, 2, d2, NULL);
    const kn_tensor *ins[2] = {&x, &w};
    /* channel mismatch (3 vs 2 per group) */
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    /* group that does not divide the channels */
    kn_attr g2[] = {kt_attr_int("group", 2)};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins, 1, g2, 1, &y, &err), KN_ERR_ARG);
    /* kernel larger than the input */
    int64_t dw3[4] = {1, 3, 9, 9};
    kn_tensor w3 = kt_tensor(KN_F32, 4, dw3, NULL);
    const kn_tensor *ins3[2] = {&x, &w3};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins3, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    /* a zero-sized kernel axis */
    int64_t dw0[4] = {1, 3, 0, 3};
    kn_tensor w0 = kt_tensor(KN_F32, 4, dw0, NULL);
    const kn_tensor *ins0[2] = {&x, &w0};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins0, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kt_run_op("ConvTranspose", 11, 2, ins0, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&w0);
    /* rank-2 input */
    const kn_tensor *ins4[2] = {&x2, &wbig};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins4, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    /* zero stride, wrong pads count */
    int64_t st0[2] = {0, 1}, pads3[3] = {1, 1, 1};
    kn_attr bad_st[] = {kt_attr_ints("strides", 2, st0)};
    kn_attr bad_pads[] = {kt_attr_ints("pads", 3, pads3)};
    const kn_tensor *ins5[2] = {&x, &wbig};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins5, 1, bad_st, 1, &y, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins5, 1, bad_pads, 1, &y, &err), KN_ERR_ARG);
    /* integer input is not a Conv dtype */
    kn_tensor xi = kt_tensor(KN_I32, 4, dx, NULL), wi = kt_tensor(KN_I32, 4, dbig, NULL);
    const kn_tensor *ins6[2] = {&xi, &wi};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins6, 0, NULL, 1, &y, &err), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&w3);
    kn_tensor_release(&wbig);
    kn_tensor_release(&x2);
    kn_tensor_release(&xi);
    kn_tensor_release(&wi);
}

static float pseudo(unsigned *st)
{
    *st = *st * 1103515245u + 12345u;
    return (float)((*st >> 9) & 0xff) / 128.0f - 1.0f;
}

/* Big enough that the column buffer is built in several chunks; compared with
 * direct loops. */
static void test_conv_chunked_matches_direct(void)
{
    enum { C = 16, M = 4, H = 150, W = 300, K = 3 };
    int64_t dx[4] = {1, C, H, W}, dw[4] = {M, C, K, K}, pads[4] = {1, 0, 1, 0};
    unsigned st = 7;
    kn_tensor x = kt_tensor(KN_F32, 4, dx, NULL), w = kt_tensor(KN_F32, 4, dw, NULL), y = {0};
    float *xv = x.data, *wv = w.data;
    for (int64_t i = 0; i < x.numel; i++)
        xv[i] = pseudo(&st);
    for (int64_t i = 0; i < w.numel; i++)
        wv[i] = pseudo(&st);
    kn_error err;
    kn_attr at[] = {kt_attr_ints("pads", 4, pads)};
    const kn_tensor *ins[2] = {&x, &w};
    CHECK_EQ_INT(kt_run_op("Conv", 11, 2, ins, 1, at, 1, &y, &err), KN_OK);
    int oh = H, ow = W - 2, bad = 0;
    CHECK_EQ_INT(y.numel, (int64_t)M * oh * ow);
    for (int m = 0; m < M && y.numel == (int64_t)M * oh * ow; m++) {
        for (int i = 0; i < oh; i += 7) {
            for (int j = 0; j < ow; j += 5) {
                double acc = 0;
                for (int c = 0; c < C; c++)
                    for (int a = 0; a < K; a++)
                        for (int b = 0; b < K; b++) {
                            int ii = i - 1 + a, jj = j + b;
                            if (ii >= 0 && ii < H)
                                acc += xv[(c * H + ii) * W + jj] * wv[((m * C + c) * K + a) * K + b];
                        }
                if (fabs(acc - ((float *)y.data)[(m * oh + i) * ow + j]) > 1e-3)
                    bad++;
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
}

static void test_conv_transpose_chunked_matches_direct(void)
{
    enum { C = 8, M = 64, H = 200, W = 50, K = 3, S = 2 };
    int64_t dx[4] = {1, C, H, W}, dw[4] = {C, M, K, K}, strides[2] = {S, S};
    unsigned st = 11;
    kn_tensor x = kt_tensor(KN_F32, 4, dx, NULL), w = kt_tensor(KN_F32, 4, dw, NULL), y = {0};
    float *xv = x.data, *wv = w.data;
    for (int64_t i = 0; i < x.numel; i++)
        xv[i] = pseudo(&st);
    for (int64_t i = 0; i < w.numel; i++)
        wv[i] = pseudo(&st);
    kn_error err;
    kn_attr at[] = {kt_attr_ints("strides", 2, strides)};
    const kn_tensor *ins[2] = {&x, &w};
    CHECK_EQ_INT(kt_run_op("ConvTranspose", 11, 2, ins, 1, at, 1, &y, &err), KN_OK);
    int oh = (H - 1) * S + K, ow = (W - 1) * S + K;
    CHECK_EQ_INT(y.numel, (int64_t)M * oh * ow);
    if (y.numel == (int64_t)M * oh * ow) {
        double *ref = calloc((size_t)M * oh * ow, sizeof(double));
        for (int c = 0; c < C; c++)
            for (int m = 0; m < M; m++)
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++)
                        for (int a = 0; a < K; a++)
                            for (int b = 0; b < K; b++)
                                ref[(m * oh + i * S + a) * ow + j * S + b] +=
                                    xv[(c * H + i) * W + j] * wv[((c * M + m) * K + a) * K + b];
        int bad = 0;
        for (int64_t i = 0; i < y.numel; i++)
            if (fabs(ref[i] - ((float *)y.data)[i]) > 1e-3)
                bad++;
        CHECK_EQ_INT(bad, 0);
        free(ref);
    }
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
}

static void test_conv_transpose_1d_output_shape(void)
{
    /* x = [1, 2], w = [1, 1, 1], stride 2: full output [1,1,3,2,2] (len 5);
     * output_shape 4 trims total padding 1 at the start (NOTSET rule) */
    float xv[2] = {1, 2}, wv[3] = {1, 1, 1};
    int64_t dx[3] = {1, 1, 2}, dw[3] = {1, 1, 3};
    kn_tensor x = kt_tensor(KN_F32, 3, dx, xv), w = kt_tensor(KN_F32, 3, dw, wv), y = {0};
    kn_error err;
    int64_t st[1] = {2}, os[1] = {4};
    kn_attr at[] = {kt_attr_ints("strides", 1, st)};
    const kn_tensor *ins[2] = {&x, &w};
    CHECK_EQ_INT(kt_run_op("ConvTranspose", 11, 2, ins, 1, at, 1, &y, &err), KN_OK);
    const float full[5] = {1, 1, 3, 2, 2};
    kt_check_f32(&y, full, 5, 0);
    kn_tensor_release(&y);
    kn_attr at2[] = {kt_attr_ints("strides", 1, st), kt_attr_ints("output_shape", 1, os)};
    CHECK_EQ_INT(kt_run_op("ConvTranspose", 11, 2, ins, 2, at2, 1, &y, &err), KN_OK);
    const float trimmed[4] = {1, 3, 2, 2};
    kt_check_f32(&y, trimmed, 4, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
}

static void test_conv_integer_per_channel_zero_point(void)
{
    /* uint8 x with zero point 3; int8 w with per-output-channel zero points */
    uint8_t xv[4] = {3, 4, 5, 6}, xz = 3;
    int8_t wv[4] = {1, 1, 2, 2}, wz[2] = {0, 1};
    int64_t dx[3] = {1, 1, 4}, dw[3] = {2, 1, 2}, d1[1] = {2};
    kn_tensor x = kt_tensor(KN_U8, 3, dx, xv), w = kt_tensor(KN_I8, 3, dw, wv);
    kn_tensor tz = kt_tensor(KN_U8, 0, NULL, &xz), twz = kt_tensor(KN_I8, 1, d1, wz), y = {0};
    kn_error err;
    const kn_tensor *ins[4] = {&x, &w, &tz, &twz};
    CHECK_EQ_INT(kt_run_op("ConvInteger", 10, 4, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I32);
    CHECK_EQ_INT(y.numel, 6);
    if (y.numel == 6) {
        /* x - 3 = [0,1,2,3]; channel 0 weights [1,1]; channel 1 weights [1,1] after zp */
        const int32_t want[6] = {1, 3, 5, 1, 3, 5};
        for (int i = 0; i < 6; i++)
            CHECK_EQ_INT(((int32_t *)y.data)[i], want[i]);
    }
    kn_tensor_release(&y);
    /* a w_zero_point with the wrong length is refused */
    int64_t d3[1] = {3};
    int8_t wz3[3] = {0, 0, 0};
    kn_tensor bad = kt_tensor(KN_I8, 1, d3, wz3);
    const kn_tensor *ins2[4] = {&x, &w, &tz, &bad};
    CHECK_EQ_INT(kt_run_op("ConvInteger", 10, 4, ins2, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&tz);
    kn_tensor_release(&twz);
    kn_tensor_release(&bad);
}

static void test_deform_conv_zero_offset_is_conv(void)
{
    int64_t dx[4] = {1, 1, 3, 3}, dw[4] = {1, 1, 2, 2}, doff[4] = {1, 8, 2, 2};
    float xv[9], wv[4] = {1, 2, 3, 4};
    for (int i = 0; i < 9; i++)
        xv[i] = (float)i;
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), w = kt_tensor(KN_F32, 4, dw, wv);
    kn_tensor off = kt_tensor(KN_F32, 4, doff, NULL), y1 = {0}, y2 = {0};
    kn_error err;
    const kn_tensor *ins[3] = {&x, &w, &off};
    CHECK_EQ_INT(kt_run_op("DeformConv", 19, 3, ins, 0, NULL, 1, &y1, &err), KN_OK);
    CHECK_EQ_INT(kt_run_op("Conv", 19, 2, ins, 0, NULL, 1, &y2, &err), KN_OK);
    if (y1.numel == 4 && y2.numel == 4)
        kt_check_f32(&y1, y2.data, 4, 1e-6);
    else
        CHECK(false);
    kn_tensor_release(&y1);
    kn_tensor_release(&y2);
    /* offset with the wrong channel count */
    int64_t dbad[4] = {1, 4, 2, 2};
    kn_tensor bad = kt_tensor(KN_F32, 4, dbad, NULL);
    const kn_tensor *ins2[3] = {&x, &w, &bad};
    CHECK_EQ_INT(kt_run_op("DeformConv", 19, 3, ins2, 0, NULL, 1, &y1, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&off);
    kn_tensor_release(&bad);
}

static void test_causal_conv_state(void)
{
    /* k = 3, past [5, 6], x [1, 2]: seq = 5 6 1 2, w = [1, 10, 100] */
    float xv[2] = {1, 2}, wv[3] = {1, 10, 100}, pv[2] = {5, 6};
    int64_t dx[3] = {1, 1, 2}, dw[3] = {1, 1, 3}, dp[3] = {1, 1, 2};
    kn_tensor x = kt_tensor(KN_F32, 3, dx, xv), w = kt_tensor(KN_F32, 3, dw, wv);
    kn_tensor past = kt_tensor(KN_F32, 3, dp, pv), y[2] = {{0}};
    kn_error err;
    const kn_tensor *ins[4] = {&x, &w, NULL, &past};
    CHECK_EQ_INT(kt_run_op("CausalConvWithState", 27, 4, ins, 0, NULL, 2, y, &err), KN_OK);
    const float want[2] = {5 + 60 + 100, 6 + 10 + 200}, state[2] = {1, 2};
    kt_check_f32(&y[0], want, 2, 1e-5);
    kt_check_f32(&y[1], state, 2, 0);
    kn_tensor_release(&y[0]);
    kn_tensor_release(&y[1]);
    /* a past_state of the wrong length is refused */
    const kn_tensor *bad[4] = {&x, &w, NULL, &x};
    int64_t dw4[3] = {1, 1, 4};
    kn_tensor w4 = kt_tensor(KN_F32, 3, dw4, NULL);
    bad[1] = &w4;
    CHECK_EQ_INT(kt_run_op("CausalConvWithState", 27, 4, bad, 0, NULL, 2, y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&w4);
    kn_tensor_release(&past);
}

/* ---- pooling ---- */

static void test_maxpool_indices_storage_order(void)
{
    /* 1x1x2x3, kernel 2x2, stride 1: windows over columns 0-1 and 1-2 */
    float xv[6] = {1, 9, 2, 8, 3, 7};
    int64_t dx[4] = {1, 1, 2, 3}, k[2] = {2, 2};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), y[2] = {{0}};
    kn_error err;
    const kn_tensor *ins[1] = {&x};
    kn_attr at[] = {kt_attr_ints("kernel_shape", 2, k)};
    CHECK_EQ_INT(kt_run_op("MaxPool", 12, 1, ins, 1, at, 2, y, &err), KN_OK);
    const float want[2] = {9, 9};
    kt_check_f32(&y[0], want, 2, 0);
    CHECK_EQ_INT(y[1].dtype, KN_I64);
    if (y[1].numel == 2) {
        CHECK_EQ_INT(((int64_t *)y[1].data)[0], 1);   /* row 0, col 1 */
        CHECK_EQ_INT(((int64_t *)y[1].data)[1], 1);
    }
    kn_tensor_release(&y[0]);
    kn_tensor_release(&y[1]);
    kn_attr at2[] = {kt_attr_ints("kernel_shape", 2, k), kt_attr_int("storage_order", 1)};
    CHECK_EQ_INT(kt_run_op("MaxPool", 12, 1, ins, 2, at2, 2, y, &err), KN_OK);
    if (y[1].numel == 2) /* column-major: col 1 * 2 rows + row 0 */
        CHECK_EQ_INT(((int64_t *)y[1].data)[0], 2);
    kn_tensor_release(&y[0]);
    kn_tensor_release(&y[1]);
    kn_tensor_release(&x);
}

/* float32 2-D MaxPool: the fast row path (one output) equals the reference window
 * walker (taken when Indices are asked for) on awkward geometries, NaN and -inf
 * included: full windows from the vector row maxima, borders tap by tap. */
static void test_maxpool_fast_equals_reference(void)
{
    static const int64_t cases[][8] = {
        /* H, W, k, stride, pad top, left, bottom, right */
        {7, 9, 3, 2, 1, 1, 1, 1}, {13, 17, 3, 2, 1, 1, 1, 1}, {5, 4, 2, 1, 0, 0, 0, 0},
        {6, 11, 5, 3, 2, 1, 0, 2}, {3, 2, 3, 1, 1, 1, 1, 1}, {9, 10, 2, 2, 0, 0, 1, 1},
        {8, 12, 5, 1, 2, 2, 2, 2}, {5, 113, 3, 2, 1, 1, 1, 1}, {4, 40, 4, 3, 1, 3, 2, 0},
    };
    kn_error err;
    for (int c = 0; c < KT_COUNT(cases); c++) {
        int64_t dx[4] = {2, 3, cases[c][0], cases[c][1]}, n = 2 * 3 * cases[c][0] * cases[c][1];
        float *xv = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            xv[i] = (float)((i * 7919 + c * 31) % 2003) / 100.0f - 10.0f;
        xv[n / 3] = NAN;
        xv[n / 2] = -INFINITY;
        int64_t k[2] = {cases[c][2], cases[c][2]}, st[2] = {cases[c][3], cases[c][3]};
        int64_t pads[4] = {cases[c][4], cases[c][5], cases[c][6], cases[c][7]};
        kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), fast = {0}, ref[2] = {{0}};
        const kn_tensor *ins[1] = {&x};
        kn_attr at[] = {kt_attr_ints("kernel_shape", 2, k), kt_attr_ints("strides", 2, st),
                        kt_attr_ints("pads", 4, pads)};
        CHECK_EQ_INT(kt_run_op("MaxPool", 12, 1, ins, KT_COUNT(at), at, 1, &fast, &err), KN_OK);
        CHECK_EQ_INT(kt_run_op("MaxPool", 12, 1, ins, KT_COUNT(at), at, 2, ref, &err), KN_OK);
        CHECK_EQ_INT(fast.numel, ref[0].numel);
        for (int64_t i = 0; i < fast.numel && fast.numel == ref[0].numel; i++) {
            float a = ((float *)fast.data)[i], b = ((float *)ref[0].data)[i];
            if (!(a == b || (isnan(a) && isnan(b)))) {
                fprintf(stderr, "maxpool case %d: y[%lld] = %g, reference %g\n", c, (long long)i, a, b);
                CHECK(0);
                break;
            }
        }
        kn_tensor_release(&fast);
        kn_tensor_release(&ref[0]);
        kn_tensor_release(&ref[1]);
        kn_tensor_release(&x);
        free(xv);
    }
}

static void test_maxpool_int8_ceil(void)
{
    int8_t xv[5] = {-5, -3, -9, 4, -128};
    int64_t dx[3] = {1, 1, 5}, k[1] = {2}, s[1] = {2};
    kn_tensor x = kt_tensor(KN_I8, 3, dx, xv), y = {0};
    kn_error err;
    const kn_tensor *ins[1] = {&x};
    kn_attr at[] = {kt_attr_ints("kernel_shape", 1, k), kt_attr_ints("strides", 1, s), kt_attr_int("ceil_mode", 1)};
    CHECK_EQ_INT(kt_run_op("MaxPool", 12, 1, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I8);
    CHECK_EQ_INT(y.numel, 3);
    if (y.numel == 3) {
        CHECK_EQ_INT(((int8_t *)y.data)[0], -3);
        CHECK_EQ_INT(((int8_t *)y.data)[1], 4);
        CHECK_EQ_INT(((int8_t *)y.data)[2], -128);
    }
    kn_tensor_release(&y);
    kn_tensor_release(&x);
}

static void test_averagepool_count_include_pad(void)
{
    float xv[3] = {3, 6, 9};
    int64_t dx[3] = {1, 1, 3}, k[1] = {3}, pads[2] = {1, 1};
    kn_tensor x = kt_tensor(KN_F32, 3, dx, xv), y = {0};
    kn_error err;
    const kn_tensor *ins[1] = {&x};
    kn_attr at[] = {kt_attr_ints("kernel_shape", 1, k), kt_attr_ints("pads", 2, pads)};
    CHECK_EQ_INT(kt_run_op("AveragePool", 11, 1, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    const float excl[3] = {4.5f, 6, 7.5f};
    kt_check_f32(&y, excl, 3, 1e-6);
    kn_tensor_release(&y);
    kn_attr at2[] = {kt_attr_ints("kernel_shape", 1, k), kt_attr_ints("pads", 2, pads),
                     kt_attr_int("count_include_pad", 1)};
    CHECK_EQ_INT(kt_run_op("AveragePool", 11, 1, ins, KT_COUNT(at2), at2, 1, &y, &err), KN_OK);
    const float incl[3] = {3, 6, 5};
    kt_check_f32(&y, incl, 3, 1e-6);
    kn_tensor_release(&y);
    /* missing kernel_shape */
    CHECK_EQ_INT(kt_run_op("AveragePool", 11, 1, ins, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
}

static void test_global_pools_and_lp(void)
{
    float xv[4] = {1, -2, 3, -4};
    int64_t dx[4] = {1, 1, 2, 2};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), y = {0};
    kn_error err;
    const kn_tensor *ins[1] = {&x};
    CHECK_EQ_INT(kt_run_op("GlobalAveragePool", 11, 1, ins, 0, NULL, 1, &y, &err), KN_OK);
    const float avg[1] = {-0.5f};
    kt_check_f32(&y, avg, 1, 1e-6);
    CHECK_EQ_INT(y.rank, 4);
    kn_tensor_release(&y);
    CHECK_EQ_INT(kt_run_op("GlobalMaxPool", 11, 1, ins, 0, NULL, 1, &y, &err), KN_OK);
    const float mx[1] = {3};
    kt_check_f32(&y, mx, 1, 0);
    kn_tensor_release(&y);
    CHECK_EQ_INT(kt_run_op("GlobalLpPool", 11, 1, ins, 0, NULL, 1, &y, &err), KN_OK);
    const float lp[1] = {sqrtf(30)};
    kt_check_f32(&y, lp, 1, 1e-5);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
}

static void test_maxunpool_bad_index(void)
{
    float xv[2] = {1, 2};
    int64_t iv[2] = {0, 99}, dx[4] = {1, 1, 1, 2}, k[2] = {2, 2}, s[2] = {2, 2};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), ind = kt_tensor(KN_I64, 4, dx, iv), y = {0};
    kn_error err;
    const kn_tensor *ins[2] = {&x, &ind};
    kn_attr at[] = {kt_attr_ints("kernel_shape", 2, k), kt_attr_ints("strides", 2, s)};
    CHECK_EQ_INT(kt_run_op("MaxUnpool", 11, 2, ins, KT_COUNT(at), at, 1, &y, &err), KN_ERR_RUNTIME);
    iv[1] = 7;
    memcpy(ind.data, iv, sizeof iv);
    CHECK_EQ_INT(kt_run_op("MaxUnpool", 11, 2, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 8);
    if (y.numel == 8) {
        CHECK_NEAR(((float *)y.data)[0], 1, 0);
        CHECK_NEAR(((float *)y.data)[7], 2, 0);
        CHECK_NEAR(((float *)y.data)[3], 0, 0);
    }
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&ind);
}

static void test_roialign_bad_batch_index(void)
{
    int64_t dx[4] = {1, 1, 4, 4}, dr[2] = {1, 4}, db[1] = {1};
    float rois[4] = {0, 0, 3, 3};
    int64_t bi[1] = {1};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, NULL), r = kt_tensor(KN_F32, 2, dr, rois);
    kn_tensor b = kt_tensor(KN_I64, 1, db, bi), y = {0};
    kn_error err;
    const kn_tensor *ins[3] = {&x, &r, &b};
    CHECK_EQ_INT(kt_run_op("RoiAlign", 16, 3, ins, 0, NULL, 1, &y, &err), KN_ERR_RUNTIME);
    bi[0] = 0;
    memcpy(b.data, bi, sizeof bi);
    CHECK_EQ_INT(kt_run_op("RoiAlign", 16, 3, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 1);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&r);
    kn_tensor_release(&b);
}

static void test_max_roi_pool(void)
{
    int64_t dx[4] = {1, 1, 3, 3}, dr[2] = {1, 5}, ps[2] = {1, 1};
    float xv[9] = {1, 2, 3, 4, 50, 6, 7, 8, 9}, rois[5] = {0, 0, 0, 1, 1};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), r = kt_tensor(KN_F32, 2, dr, rois), y = {0};
    kn_error err;
    const kn_tensor *ins[2] = {&x, &r};
    kn_attr at[] = {kt_attr_ints("pooled_shape", 2, ps)};
    CHECK_EQ_INT(kt_run_op("MaxRoiPool", 1, 2, ins, 1, at, 1, &y, &err), KN_OK);
    const float want[1] = {50};
    kt_check_f32(&y, want, 1, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&r);
}

/* ---- resize ---- */

static void test_resize_nearest_int64_exact(void)
{
    int64_t big = ((int64_t)1 << 62) + 1;
    int64_t xv[2] = {big, -big}, dx[2] = {1, 2};
    float sc[2] = {1, 2};
    int64_t ds[1] = {2};
    kn_tensor x = kt_tensor(KN_I64, 2, dx, xv), s = kt_tensor(KN_F32, 1, ds, sc), y = {0};
    kn_error err;
    const kn_tensor *ins[3] = {&x, NULL, &s};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ins, 0, NULL, 1, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 4);
    if (y.numel == 4) {
        const int64_t *d = y.data;
        CHECK(d[0] == big && d[1] == big && d[2] == -big && d[3] == -big);
    }
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&s);
}

static void test_resize_linear_axes_sizes(void)
{
    /* opset 18 axes [-1]: resize only the last axis of [2, 2] to 3, align_corners */
    float xv[4] = {0, 10, 20, 40};
    int64_t dx[2] = {2, 2}, szv[1] = {3}, dsz[1] = {1}, axes[1] = {-1};
    kn_tensor x = kt_tensor(KN_F32, 2, dx, xv), sz = kt_tensor(KN_I64, 1, dsz, szv), y = {0};
    kn_error err;
    const kn_tensor *ins[4] = {&x, NULL, NULL, &sz};
    kn_attr at[] = {kt_attr_str("mode", "linear"), kt_attr_str("coordinate_transformation_mode", "align_corners"),
                    kt_attr_ints("axes", 1, axes)};
    CHECK_EQ_INT(kt_run_op("Resize", 18, 4, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    const float want[6] = {0, 5, 10, 20, 30, 40};
    kt_check_f32(&y, want, 6, 1e-6);
    CHECK_EQ_INT(y.dims[0], 2);
    CHECK_EQ_INT(y.dims[1], 3);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&sz);
}

static void test_resize_crop_extrapolation(void)
{
    float xv[3] = {0, 10, 20}, roi[2] = {0, 1.5f};
    int64_t dx[1] = {3}, dr[1] = {2}, szv[1] = {4}, dsz[1] = {1};
    kn_tensor x = kt_tensor(KN_F32, 1, dx, xv), r = kt_tensor(KN_F32, 1, dr, roi);
    kn_tensor sz = kt_tensor(KN_I64, 1, dsz, szv), y = {0};
    kn_error err;
    const kn_tensor *ins[4] = {&x, &r, NULL, &sz};
    kn_attr at[] = {kt_attr_str("mode", "linear"),
                    kt_attr_str("coordinate_transformation_mode", "tf_crop_and_resize"),
                    kt_attr_float("extrapolation_value", 7)};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 4, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    const float want[4] = {0, 10, 20, 7};
    kt_check_f32(&y, want, 4, 1e-5);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&r);
    kn_tensor_release(&sz);
}

static void test_resize_nearest_float_scale(void)
{
    /* scale 1.7 is 1.70000005 in float: output 17 maps to 17 / 1.7f, which is 10 in
     * float arithmetic (ONNX Runtime, PyTorch) but 9.99999997 exactly; kiln once took
     * pixel 9 there (found with PyTorch's interpolate(scale_factor=1.7, 'nearest')) */
    float xv[11], sc[1] = {1.7f};
    for (int i = 0; i < 11; i++)
        xv[i] = (float)i;
    int64_t dx[1] = {11}, ds[1] = {1};
    kn_tensor x = kt_tensor(KN_F32, 1, dx, xv), s = kt_tensor(KN_F32, 1, ds, sc), y = {0};
    kn_error err;
    const kn_tensor *ins[3] = {&x, NULL, &s};
    kn_attr at[] = {kt_attr_str("mode", "nearest"), kt_attr_str("coordinate_transformation_mode", "asymmetric"),
                    kt_attr_str("nearest_mode", "floor")};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    const float want[18] = {0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 7, 8, 8, 9, 10};
    CHECK_EQ_INT(y.numel, 18);
    kt_check_f32(&y, want, 18, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&s);
}

static void test_resize_align_corners_fractional_length(void)
{
    /* align_corners divides by the integer output length - 1, as ONNX Runtime and
     * PyTorch do: [1,2,3,4] at scale 0.6 gives 2 outputs at 0 and 3 -> [1, 4] (the ONNX
     * reference's 4 * 0.6 - 1 gives 3.142857); at scale 2.5, 4 -> 10 outputs at j/3 */
    float xv[4] = {1, 2, 3, 4}, down[1] = {0.6f};
    int64_t dx[1] = {4}, ds[1] = {1};
    kn_tensor x = kt_tensor(KN_F32, 1, dx, xv), s = kt_tensor(KN_F32, 1, ds, down), y = {0};
    kn_error err;
    const kn_tensor *ins[3] = {&x, NULL, &s};
    kn_attr at[] = {kt_attr_str("mode", "linear"), kt_attr_str("coordinate_transformation_mode", "align_corners")};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    const float want_down[2] = {1, 4};
    kt_check_f32(&y, want_down, 2, 1e-6);
    kn_tensor_release(&y);
    ((float *)s.data)[0] = 2.5f;
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    float want_up[10];
    for (int j = 0; j < 10; j++)
        want_up[j] = 1 + (float)j / 3;
    CHECK_EQ_INT(y.numel, 10);
    kt_check_f32(&y, want_up, 10, 1e-6);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&s);
}

static void test_resize_errors(void)
{
    float xv[4] = {0};
    int64_t dx[2] = {2, 2}, d2[1] = {2}, d3[1] = {3};
    float neg[2] = {1, -2}, three[3] = {1, 1, 1};
    kn_tensor x = kt_tensor(KN_F32, 2, dx, xv), sn = kt_tensor(KN_F32, 1, d2, neg);
    kn_tensor s3 = kt_tensor(KN_F32, 1, d3, three), y = {0};
    kn_error err;
    const kn_tensor *none[3] = {&x, NULL, NULL};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, none, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    const kn_tensor *bad[3] = {&x, NULL, &sn};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, bad, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    const kn_tensor *wrong[3] = {&x, NULL, &s3};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, wrong, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_attr m[] = {kt_attr_str("mode", "lanczos")};
    const kn_tensor *ok[3] = {&x, NULL, &sn};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ok, 1, m, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&sn);
    kn_tensor_release(&s3);
}

static void test_upsample7_attr_scales(void)
{
    float xv[2] = {1, 2}, sc[2] = {1, 2};
    int64_t dx[2] = {1, 2};
    kn_tensor x = kt_tensor(KN_F32, 2, dx, xv), y = {0};
    kn_error err;
    const kn_tensor *ins[1] = {&x};
    kn_attr at[] = {kt_attr_floats("scales", 2, sc), kt_attr_str("mode", "linear")};
    CHECK_EQ_INT(kt_run_op("Upsample", 7, 1, ins, KT_COUNT(at), at, 1, &y, &err), KN_OK);
    const float want[4] = {1, 1.5f, 2, 2}; /* asymmetric, clamped at the edge */
    kt_check_f32(&y, want, 4, 1e-6);
    kn_tensor_release(&y);
    kn_tensor_release(&x);
}

static void test_gridsample_border_and_affine_grid(void)
{
    /* identity theta produces a grid that samples X back exactly */
    float th[6] = {1, 0, 0, 0, 1, 0}, xv[6] = {1, 2, 3, 4, 5, 6};
    int64_t dth[3] = {1, 2, 3}, szv[4] = {1, 1, 2, 3}, dsz[1] = {4}, dx[4] = {1, 1, 2, 3};
    kn_tensor theta = kt_tensor(KN_F32, 3, dth, th), sz = kt_tensor(KN_I64, 1, dsz, szv);
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv), grid = {0}, y = {0};
    kn_error err;
    const kn_tensor *ins[2] = {&theta, &sz};
    CHECK_EQ_INT(kt_run_op("AffineGrid", 20, 2, ins, 0, NULL, 1, &grid, &err), KN_OK);
    CHECK_EQ_INT(grid.rank, 4);
    CHECK_EQ_INT(grid.dims[3], 2);
    const kn_tensor *gins[2] = {&x, &grid};
    CHECK_EQ_INT(kt_run_op("GridSample", 20, 2, gins, 0, NULL, 1, &y, &err), KN_OK);
    kt_check_f32(&y, xv, 6, 1e-5);
    kn_tensor_release(&y);
    /* far outside with border padding clamps to the corner value */
    float far[2] = {5, 5};
    int64_t dg[4] = {1, 1, 1, 2};
    kn_tensor g2 = kt_tensor(KN_F32, 4, dg, far);
    const kn_tensor *gins2[2] = {&x, &g2};
    kn_attr at[] = {kt_attr_str("padding_mode", "border")};
    CHECK_EQ_INT(kt_run_op("GridSample", 16, 2, gins2, 1, at, 1, &y, &err), KN_OK);
    const float corner[1] = {6};
    kt_check_f32(&y, corner, 1, 1e-6);
    kn_tensor_release(&y);
    /* grid with the wrong last dim */
    int64_t dg3[4] = {1, 1, 1, 3};
    kn_tensor g3 = kt_tensor(KN_F32, 4, dg3, NULL);
    const kn_tensor *gins3[2] = {&x, &g3};
    CHECK_EQ_INT(kt_run_op("GridSample", 16, 2, gins3, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&theta);
    kn_tensor_release(&sz);
    kn_tensor_release(&x);
    kn_tensor_release(&grid);
    kn_tensor_release(&g2);
    kn_tensor_release(&g3);
}

/* NaN / huge coordinates and scales: clean errors or finite work, never UB */
static void test_nan_and_huge_values(void)
{
    kn_error err;
    kn_tensor y = {0};
    float xv[6] = {1, 2, 3, 4, 5, 6};
    int64_t dx[4] = {1, 1, 2, 3}, dg[4] = {1, 1, 2, 2}, d4[1] = {4};
    kn_tensor x = kt_tensor(KN_F32, 4, dx, xv);
    float gv[4] = {NAN, NAN, INFINITY, -INFINITY};
    kn_tensor grid = kt_tensor(KN_F32, 4, dg, gv);
    const char *pads[3] = {"zeros", "border", "reflection"};
    const char *modes[3] = {"nearest", "linear", "cubic"};
    for (int p = 0; p < 3; p++) {
        for (int m = 0; m < 3; m++) {
            kn_attr at[] = {kt_attr_str("padding_mode", pads[p]), kt_attr_str("mode", modes[m])};
            const kn_tensor *ins[2] = {&x, &grid};
            CHECK_EQ_INT(kt_run_op("GridSample", 20, 2, ins, 2, at, 1, &y, &err), KN_OK);
            kn_tensor_release(&y);
        }
    }
    float huge[4] = {1, 1, 1e30f, 1}, nan_s[4] = {1, 1, NAN, 1};
    kn_tensor sh = kt_tensor(KN_F32, 1, d4, huge), sn = kt_tensor(KN_F32, 1, d4, nan_s);
    const kn_tensor *ri[3] = {&x, NULL, &sh};
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ri, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    ri[2] = &sn;
    CHECK_EQ_INT(kt_run_op("Resize", 13, 3, ri, 0, NULL, 1, &y, &err), KN_ERR_ARG);
    float rois[4] = {NAN, 0, 1e30f, INFINITY};
    int64_t dr[2] = {1, 4}, db[1] = {1}, bi[1] = {0};
    kn_tensor r = kt_tensor(KN_F32, 2, dr, rois), b = kt_tensor(KN_I64, 1, db, bi);
    const kn_tensor *rin[3] = {&x, &r, &b};
    kn_attr mx[] = {kt_attr_str("mode", "max")};
    CHECK_EQ_INT(kt_run_op("RoiAlign", 16, 3, rin, 0, NULL, 1, &y, &err), KN_OK);
    kn_tensor_release(&y);
    CHECK_EQ_INT(kt_run_op("RoiAlign", 16, 3, rin, 1, mx, 1, &y, &err), KN_OK);
    kn_tensor_release(&y);
    int64_t big[2] = {(int64_t)1 << 40, 1};
    kn_attr kbig[] = {kt_attr_ints("kernel_shape", 2, big)};
    const kn_tensor *pin[1] = {&x};
    CHECK_EQ_INT(kt_run_op("MaxPool", 12, 1, pin, 1, kbig, 1, &y, &err), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&grid);
    kn_tensor_release(&sh);
    kn_tensor_release(&sn);
    kn_tensor_release(&r);
    kn_tensor_release(&b);
}

TEST_MAIN(TEST_CASE(test_nan_and_huge_values), TEST_CASE(test_conv_1d_pads_dilation_bias), TEST_CASE(test_conv_depthwise_same_lower_f16),
          TEST_CASE(test_conv_f64_strided_3d), TEST_CASE(test_conv_empty_batch),
          TEST_CASE(test_conv_bad_inputs),
          TEST_CASE(test_conv_chunked_matches_direct),
          TEST_CASE(test_conv_transpose_chunked_matches_direct), TEST_CASE(test_conv_transpose_1d_output_shape),
          TEST_CASE(test_conv_integer_per_channel_zero_point),
          TEST_CASE(test_deform_conv_zero_offset_is_conv), TEST_CASE(test_causal_conv_state),
          TEST_CASE(test_maxpool_indices_storage_order), TEST_CASE(test_maxpool_fast_equals_reference),
          TEST_CASE(test_maxpool_int8_ceil),
          TEST_CASE(test_averagepool_count_include_pad), TEST_CASE(test_global_pools_and_lp),
          TEST_CASE(test_maxunpool_bad_index), TEST_CASE(test_roialign_bad_batch_index),
          TEST_CASE(test_max_roi_pool), TEST_CASE(test_resize_nearest_int64_exact),
          TEST_CASE(test_resize_linear_axes_sizes), TEST_CASE(test_resize_errors),
          TEST_CASE(test_resize_crop_extrapolation), TEST_CASE(test_resize_nearest_float_scale),
          TEST_CASE(test_resize_align_corners_fractional_length),
          TEST_CASE(test_upsample7_attr_scales), TEST_CASE(test_gridsample_border_and_affine_grid))
