/* test_conv_nchwc.c - the group-1 NCHWc conv (kernels/conv_nchwc*.c): the
 * reference against a naive NCHW conv on the unpacked weights (which checks the
 * packing), the AVX-512 driver against the reference (no pool and a 2-thread
 * pool, the two bit-identical), on awkward shapes: channel counts off the block,
 * spatial sizes 1..13, strides, asymmetric pads, dilation, batch 2, residual,
 * every kind of activation, deep inputs; padding
 * channels must come out zero. */
#include "test.h"
#include "nchwc_test.h"

#include <stdlib.h>

#include "core/cpu.h"
#include "exec/threadpool.h"
#include "kernels/nchwc_internal.h"

typedef kt_conv_shape shape;

static const shape k_shapes[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 0, 1},
    {1, 3, 15, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 0, 1},
    {1, 15, 17, 13, 13, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, KN_CONV_ACT_CLIP, 1, 1},
    {1, 16, 16, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 1, 0},
    {1, 17, 24, 13, 7, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, KN_CONV_ACT_SIGMOID, 1, 1},
    {2, 24, 40, 13, 13, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_LEAKY_RELU, 0, 1},
    {1, 40, 17, 7, 5, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, KN_CONV_ACT_CLIP, 0, 1},
    {1, 16, 64, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 1, 1},
    {2, 40, 80, 13, 13, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_HARD_SIGMOID, 1, 1},
    {1, 17, 33, 1, 1, 3, 3, 1, 1, 1, 1, 3, 3, 1, 2, KN_CONV_ACT_SILU, 0, 1},
    {1, 24, 72, 5, 13, 1, 3, 1, 2, 1, 1, 0, 2, 0, 1, KN_CONV_ACT_TANH, 0, 1},
    {2, 15, 48, 13, 2, 3, 1, 2, 1, 1, 1, 1, 0, 2, 0, KN_CONV_ACT_RELU, 1, 0},
    {1, 32, 80, 7, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_NONE, 1, 1},
    {1, 3, 16, 13, 13, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_RELU, 0, 1},
    /* deep inputs */
    {1, 150, 20, 5, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_SIGMOID, 1, 1},
    {2, 140, 70, 7, 7, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_CLIP, 1, 1},
    {1, 48, 40, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 1, 1},
    /* 1x1 from 19 input blocks: chunks of 8, 8 and 3, the epilogue after the last */
    {1, 300, 70, 5, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_SILU, 1, 1},
    {2, 260, 64, 6, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_SIGMOID, 1, 0},
    /* weights over 1 MiB: the groups go outside the images */
    {3, 128, 280, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_CLIP, 1, 1},
};

static uint32_t g_seed = 0x2468aceu;

static float *rnd_buf(int64_t n)
{
    return kt_random_floats(&g_seed, n);
}

static size_t blocked_at(int64_t n, int64_t c, int64_t cp, int64_t hw, int64_t i)
{
    return (size_t)(((n * (cp / 16) + c / 16) * hw + i) * 16 + c % 16);
}

/* The naive NCHW conv sum of (n, m, oy, ox) on the ONNX weights. */
static float naive(const kn_nchwc_conv *g, const float *x, const float *w, const float *bias,
                   int64_t n, int64_t m, int64_t oy, int64_t ox)
{
    float s = bias ? bias[m] : 0.0f;
    for (int64_t c = 0; c < g->channels; c++)
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh, ix = ox * g->sw - g->pl + kx * g->dw;
                if (iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw)
                    s += x[((n * g->channels + c) * g->ih + iy) * g->iw + ix] *
                         w[((m * g->channels + c) * g->kh + ky) * g->kw + kx];
            }
    return s;
}

/* y (blocked) against the naive conv + z + act, padding channels zero. */
static void check_vs_naive(const kn_nchwc_conv *g, const kn_nchwc_conv_args *a, const float *x,
                           const float *w, const float *bias, const float *z_nchw)
{
    int64_t mp = kn_nchwc_padded(g->m), hw = g->oh * g->ow;
    int bad = 0;
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t m = 0; m < mp; m++)
            for (int64_t i = 0; i < hw && bad < 5; i++) {
                float got = a->y[blocked_at(n, m, mp, hw, i)];
                if (m >= g->m) {
                    bad += got != 0.0f;
                    CHECK(got == 0.0f);
                    continue;
                }
                float v = naive(g, x, w, bias, n, m, i / g->ow, i % g->ow);
                v = kn_conv_act_one(&a->act, v + (z_nchw ? z_nchw[(n * g->m + m) * hw + i] : 0.0f));
                bad += !(fabs(got - v) <= kt_conv_tol(g, v));
                CHECK_NEAR(got, v, kt_conv_tol(g, v));
            }
}

static void run_shape(const shape *s, kn_threadpool *pool2)
{
    kn_nchwc_conv g = kt_conv_geom(s);
    int64_t ohw = g.oh * g.ow, ysize = g.batch * kn_nchwc_padded(g.m) * ohw;
    float *x = rnd_buf(g.batch * g.channels * g.ih * g.iw), *w = rnd_buf(g.m * g.channels * g.kh * g.kw);
    float *bias = s->with_bias ? rnd_buf(g.m) : NULL, *z = s->with_z ? rnd_buf(g.batch * g.m * ohw) : NULL;
    float *xb = kt_to_blocked(x, g.batch, g.channels, g.ih * g.iw), *zb = z ? kt_to_blocked(z, g.batch, g.m, ohw) : NULL;
    float *ref = malloc((size_t)ysize * sizeof *ref), *y1 = malloc((size_t)ysize * sizeof *y1);
    float *y2 = malloc((size_t)ysize * sizeof *y2);
    kn_nchwc_weights *pw = kn_nchwc_pack(&g, w, bias);
    CHECK(pw != NULL);
    CHECK(kn_nchwc_weights_bytes(pw) >= (size_t)(kn_nchwc_padded(g.m) * kn_nchwc_padded(g.channels) *
                                                 g.kh * g.kw) * sizeof(float));
    kn_nchwc_conv_args a = kt_conv_args(&g, pw, xb, zb, s->act, ref);
    for (int64_t i = 0; i < ysize; i++)
        ref[i] = y1[i] = y2[i] = 12345.0f;
    kn_nchwc_conv_reference(&a);
    check_vs_naive(&g, &a, x, w, bias, z);
    a.y = y1;
    kn_nchwc_conv_run(NULL, kn_cpu_isa_supported(), &a);
    kt_expect_blocked(&g, y1, ref, 0);
    a.y = y2;
    kn_nchwc_conv_run(pool2, kn_cpu_isa_supported(), &a);
    kt_expect_blocked(&g, y2, y1, 1);
    a.y = y2;
    kn_nchwc_conv_run(NULL, KN_ISA_GENERIC, &a);
    kt_expect_blocked(&g, y2, ref, 1);
    kn_nchwc_weights_free(pw);
    free(x), free(w), free(bias), free(z), free(xb), free(zb), free(ref), free(y1), free(y2);
}

static void test_shapes(void)
{
    kt_run_conv_shapes(k_shapes, sizeof k_shapes / sizeof k_shapes[0], run_shape);
}

/* Wide rows: several tiles (6, 8 or 12 pixels by the output blocks) and every
 * tail length, with and without pads. */
static void test_row_tails(void)
{
    for (int64_t iw = 6; iw <= 13; iw++) {
        shape s = {1, 16, 64, 3, iw, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 1, 1};
        run_shape(&s, NULL);
        shape t = {1, 32, 48, 2, iw, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 0, 1};
        run_shape(&t, NULL);
        shape u = {1, 24, 20, 3, iw, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_CLIP, 1, 1};
        run_shape(&u, NULL);
    }
}

/* An empty output (batch 0) writes nothing and reads nothing. */
static void test_empty(void)
{
    kn_nchwc_conv g = {0, 16, 16, 1, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 0, 0};
    float w[256] = {0}, y = 7.0f;
    kn_nchwc_weights *pw = kn_nchwc_pack(&g, w, NULL);
    CHECK(pw != NULL);
    kn_nchwc_conv_args a = {&g, pw, NULL, NULL, {KN_CONV_ACT_NONE, 0, 0}, &y};
    kn_nchwc_conv_run(NULL, kn_cpu_isa_supported(), &a);
    kn_nchwc_conv_reference(&a);
    CHECK(y == 7.0f);
    kn_nchwc_weights_free(pw);
}

/* Every tile the driver may ask for exists (a missing one would quietly send
 * the conv to the reference), and none beyond the register budget. */
static void test_tile_table(void)
{
    if (kn_cpu_isa_supported() < KN_ISA_AVX512 || !kn_nchwc_tile_avx512(1, 1))
        return;
    static const int max_np[4] = {12, 12, 8, 6};
    for (int ob = 1; ob <= 4; ob++)
        for (int np = 1; np <= KN_NCHWC_TILE_NP + 1; np++)
            CHECK((kn_nchwc_tile_avx512(ob, np) != NULL) == (np <= max_np[ob - 1]));
    CHECK(kn_nchwc_tile_avx512(0, 1) == NULL);
    CHECK(kn_nchwc_tile_avx512(5, 1) == NULL);
}

TEST_MAIN(TEST_CASE(test_shapes), TEST_CASE(test_row_tails), TEST_CASE(test_tile_table),
          TEST_CASE(test_empty))
