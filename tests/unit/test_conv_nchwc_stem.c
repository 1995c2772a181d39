/* test_conv_nchwc_stem.c - the stem conv (kernels/conv_nchwc_stem.c: NCHW input,
 * blocked output): the reference against a naive NCHW conv on the unpacked
 * weights (which checks the packing), the AVX-512 path against the reference
 * (no pool and a 2-thread pool, the two bit-identical), on awkward shapes:
 * channels 1..17, output channels off the block, kernels 1, 3, 5, 7, strides 1
 * and 2, asymmetric pads (some wider than the kernel), dilation 2, batch 2,
 * every row-tile tail, residual, every kind of activation; padding channels
 * must come out zero, and pack declines group > 1. */
#include "test.h"
#include "nchwc_test.h"

#include <stdlib.h>

#include "exec/threadpool.h"
#include "kernels/nchwc.h"

typedef kt_conv_shape shape;

static const shape k_shapes[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 0, 1},
    {1, 3, 8, 13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_CLIP, 0, 1},
    {1, 3, 64, 29, 31, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_RELU, 0, 1},
    {2, 3, 32, 17, 19, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, KN_CONV_ACT_CLIP, 1, 1},
    {1, 4, 16, 7, 13, 3, 3, 1, 1, 1, 1, 1, 2, 0, 1, KN_CONV_ACT_SILU, 1, 0},
    {1, 1, 24, 13, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 1, 1},
    {2, 4, 24, 13, 13, 3, 3, 1, 2, 2, 2, 2, 1, 3, 2, KN_CONV_ACT_RELU, 1, 1},
    {1, 3, 40, 5, 7, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_SIGMOID, 0, 1},
    {1, 15, 17, 13, 13, 5, 5, 2, 1, 1, 1, 2, 2, 2, 2, KN_CONV_ACT_LEAKY_RELU, 0, 1},
    {1, 17, 72, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_HARD_SIGMOID, 1, 1},
    {1, 3, 80, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_TANH, 1, 1},
    {1, 3, 16, 3, 3, 3, 3, 1, 1, 1, 1, 4, 0, 0, 4, KN_CONV_ACT_CLIP, 0, 1}, /* pads past the kernel */
    {2, 1, 48, 9, 5, 1, 3, 1, 2, 1, 1, 0, 1, 0, 2, KN_CONV_ACT_RELU, 0, 0},
    {1, 3, 64, 11, 40, 7, 7, 2, 2, 1, 1, 3, 2, 4, 3, KN_CONV_ACT_NONE, 1, 1},
    /* wide rows, column stride 1 */
    {1, 3, 16, 9, 40, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_RELU, 1, 1},
    {1, 2, 24, 6, 33, 7, 7, 2, 1, 1, 1, 3, 2, 3, 4, KN_CONV_ACT_CLIP, 0, 1},
    {1, 3, 48, 5, 29, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_NONE, 1, 1},
    {1, 3, 40, 5, 29, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_SILU, 0, 1},
    {1, 5, 56, 4, 30, 3, 3, 1, 1, 1, 2, 1, 2, 0, 2, KN_CONV_ACT_CLIP, 1, 1},
    /* the full tiles of the stems' column stride 2 (kernel widths 3 and 7, 1..4 blocks) */
    {1, 3, 16, 9, 60, 7, 7, 1, 2, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_RELU, 1, 1},
    {1, 2, 24, 6, 61, 7, 7, 2, 2, 1, 1, 3, 2, 3, 4, KN_CONV_ACT_CLIP, 0, 1},
    {1, 3, 48, 5, 40, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_NONE, 1, 1},
    {1, 3, 40, 5, 40, 7, 7, 1, 2, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_SILU, 0, 1},
    {1, 3, 32, 5, 60, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_CLIP, 1, 1},
    {1, 3, 16, 4, 61, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, KN_CONV_ACT_RELU, 0, 1},
    {2, 3, 64, 6, 30, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 1, 1},
    {1, 4, 80, 5, 50, 7, 7, 2, 2, 1, 1, 3, 3, 2, 2, KN_CONV_ACT_TANH, 1, 1},
};

static uint32_t g_seed = 0x13579bdu;

/* n values in [-1, 1]. */
static float *random_floats(int64_t n)
{
    return kt_random_floats(&g_seed, n);
}

/* A blocked [batch][Mp/16][hw][16] residual: random channels, zero padding. */
static float *random_blocked(int64_t batch, int64_t m, int64_t hw)
{
    int64_t mp = kn_nchwc_padded(m);
    float *z = random_floats(batch * mp * hw);
    for (int64_t i = 0; i < batch * mp * hw; i++)
        if (i / (hw * 16) % (mp / 16) * 16 + i % 16 >= m)
            z[i] = 0.0f;
    return z;
}

/* acc[oy][ox] += wv * x[oy * sh - pt + ky * dh][ox * sw - pl + kx * dw] for the
 * output pixels whose tap (ky, kx) lands inside the image plane xc. */
static void add_tap(const kn_nchwc_conv *g, const float *xc, float wv, int64_t ky, int64_t kx,
                    float *acc)
{
    for (int64_t oy = 0; oy < g->oh; oy++) {
        int64_t iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->ih)
            continue;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            int64_t ix = ox * g->sw - g->pl + kx * g->dw;
            if (ix >= 0 && ix < g->iw)
                acc[oy * g->ow + ox] += wv * xc[iy * g->iw + ix];
        }
    }
}

/* The expected blocked output, computed plane by plane on the NCHW input and
 * the ONNX weights [m][channels][kh][kw] (a tap at a time over the whole output
 * plane): act(sum + bias + z) in the real channels, zeros in the padding ones. */
static float *naive_blocked(const kn_nchwc_conv_args *a, const float *w, const float *bias)
{
    const kn_nchwc_conv *g = a->g;
    int64_t mb = kn_nchwc_padded(g->m) / 16, hw = g->oh * g->ow;
    float *e = calloc((size_t)(g->batch * mb * hw * 16), sizeof *e);
    float *acc = malloc((size_t)hw * sizeof *acc);
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t m = 0; m < g->m; m++) {
            memset(acc, 0, (size_t)hw * sizeof *acc);
            for (int64_t c = 0; c < g->channels; c++)
                for (int64_t t = 0; t < g->kh * g->kw; t++)
                    add_tap(g, a->x + (n * g->channels + c) * g->ih * g->iw,
                            w[(m * g->channels + c) * g->kh * g->kw + t], t / g->kw, t % g->kw, acc);
            for (int64_t i = 0; i < hw; i++) {
                size_t at = (size_t)(((n * mb + m / 16) * hw + i) * 16 + m % 16);
                float v = acc[i] + (bias ? bias[m] : 0.0f) + (a->z ? a->z[at] : 0.0f);
                e[at] = kn_conv_act_one(&a->act, v);
            }
        }
    free(acc);
    return e;
}

/* One shape: the reference against the naive conv, the fast path alone and on
 * a 2-thread pool (of its own) against it, the generic ISA equal to it. */
static void run_shape(const shape *s)
{
    kn_error err = {0};
    kn_threadpool *pool2 = kn_threadpool_create(2, &err);
    CHECK(pool2 != NULL);
    kn_nchwc_conv g = kt_conv_geom(s);
    int64_t ohw = g.oh * g.ow, ysize = g.batch * kn_nchwc_padded(g.m) * ohw;
    float *x = random_floats(g.batch * g.channels * g.ih * g.iw);
    float *w = random_floats(g.m * g.channels * g.kh * g.kw);
    float *bias = s->with_bias ? random_floats(g.m) : NULL;
    float *z = s->with_z ? random_blocked(g.batch, g.m, ohw) : NULL;
    float *ref = malloc((size_t)ysize * sizeof *ref), *y1 = malloc((size_t)ysize * sizeof *y1);
    float *y2 = malloc((size_t)ysize * sizeof *y2);
    kn_nchwc_weights *pw = kn_nchwc_stem_pack(&g, w, bias);
    CHECK(pw != NULL);
    kn_nchwc_conv_args a = {&g, pw, x, z, {s->act, 0.1f, 0.9f}, ref};
    if (s->act == KN_CONV_ACT_CLIP) /* a lower bound above zero: padding must stay zero */
        a.act.alpha = 0.25f, a.act.beta = 1.5f;
    for (int64_t i = 0; i < ysize; i++)
        ref[i] = y1[i] = y2[i] = 12345.0f;
    float *expected = naive_blocked(&a, w, bias);
    kn_nchwc_stem_reference(&a);
    kt_expect_blocked(&g, ref, expected, 0);
    a.y = y1;
    kn_nchwc_stem_run(NULL, kn_cpu_isa_supported(), &a);
    kt_expect_blocked(&g, y1, ref, 0);
    a.y = y2;
    kn_nchwc_stem_run(pool2, kn_cpu_isa_supported(), &a);
    kt_expect_blocked(&g, y2, y1, 1);
    kn_nchwc_stem_run(NULL, KN_ISA_GENERIC, &a);
    kt_expect_blocked(&g, y2, ref, 1);
    kn_nchwc_weights_free(pw);
    kn_threadpool_free(pool2);
    free(x), free(w), free(bias), free(z), free(ref), free(y1), free(y2), free(expected);
}

static void test_shapes(void)
{
    size_t count = sizeof k_shapes / sizeof k_shapes[0];
    for (size_t i = 0; i < count; i++) {
        int failures = kt_failures;
        run_shape(&k_shapes[i]);
        if (failures < kt_failures)
            fprintf(stderr, "  (k_shapes[%zu])\n", i);
    }
}

/* Rows of every length up to several tiles (6, 8 or 12 pixels by the output
 * blocks of the tile), with and without pads, strides 1 and 2. */
static void test_row_tails(void)
{
    for (int64_t iw = 1; iw <= 27; iw += 2) {
        const shape rows[] = {
            {1, 3, 64, 3, iw, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 1, 1},
            {1, 3, 40, 4, iw + 1, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, KN_CONV_ACT_NONE, 0, 1},
            {1, 2, 20, 2, iw, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_CLIP, 1, 1},
        };
        for (int k = 0; k < 3; k++)
            run_shape(&rows[k]);
    }
}

/* pack declines group > 1 and degenerate sizes. */
static void test_declines(void)
{
    kn_nchwc_conv g = {1, 4, 4, 4, 5, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1};
    float w[4 * 9] = {0};
    CHECK(kn_nchwc_stem_pack(&g, w, NULL) == NULL);
    g.group = 1, g.kh = 0;
    CHECK(kn_nchwc_stem_pack(&g, w, NULL) == NULL);
}

TEST_MAIN(TEST_CASE(test_shapes), TEST_CASE(test_row_tails), TEST_CASE(test_declines))
