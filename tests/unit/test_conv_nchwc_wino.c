/* test_conv_nchwc_wino.c - the Winograd F(4x4, 3x3) path of the blocked conv
 * (kernels/conv_nchwc_wino.c) against the plain C direct reference on awkward
 * shapes: channel counts off the block, odd image sizes (partial tiles at the
 * right and bottom), 1x1 and 2x2 images, batches, several blocks of tiles,
 * residual, every kind of activation; padding channels must come out zero, and
 * a 2-thread pool must give the bits of one thread.  Also which geometries and
 * sizes take the path, and KILN_CONV_WINOGRAD. */
#include "test.h"
#include "nchwc_test.h"

#include <stdlib.h>

#include "core/cpu.h"
#include "exec/threadpool.h"
#include "kernels/nchwc_internal.h"

typedef kt_conv_shape shape;

#define S3(b, c, m, h, w, act, z, bias) {b, c, m, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, act, z, bias}

static const shape k_shapes[] = {
    S3(1, 1, 1, 1, 1, KN_CONV_ACT_NONE, 0, 1),
    S3(1, 3, 15, 2, 2, KN_CONV_ACT_RELU, 1, 1),
    S3(1, 15, 17, 5, 3, KN_CONV_ACT_CLIP, 1, 0),
    S3(2, 16, 16, 7, 7, KN_CONV_ACT_NONE, 0, 1),
    S3(1, 17, 33, 13, 9, KN_CONV_ACT_SIGMOID, 1, 1),
    S3(3, 40, 24, 6, 11, KN_CONV_ACT_LEAKY_RELU, 0, 1),
    S3(1, 32, 48, 16, 16, KN_CONV_ACT_SILU, 1, 1),
    S3(1, 64, 64, 29, 31, KN_CONV_ACT_RELU, 1, 1),     /* several blocks of tiles */
    S3(2, 64, 80, 40, 40, KN_CONV_ACT_CLIP, 0, 1),     /* many blocks, two images */
    S3(1, 256, 100, 15, 15, KN_CONV_ACT_TANH, 1, 1),   /* the smallest blocks */
    S3(1, 130, 200, 9, 14, KN_CONV_ACT_HARD_SIGMOID, 1, 0),
};

static uint32_t g_seed = 0x13579bdu;

static void run_shape(const shape *s, kn_threadpool *pool2)
{
    kn_nchwc_conv g = kt_conv_geom(s);
    int64_t ohw = g.oh * g.ow, ysize = g.batch * kn_nchwc_padded(g.m) * ohw;
    float *x = kt_random_floats(&g_seed, g.batch * g.channels * g.ih * g.iw);
    float *w = kt_random_floats(&g_seed, g.m * g.channels * 9);
    float *bias = s->with_bias ? kt_random_floats(&g_seed, g.m) : NULL;
    float *z = s->with_z ? kt_random_floats(&g_seed, g.batch * g.m * ohw) : NULL;
    float *xb = kt_to_blocked(x, g.batch, g.channels, g.ih * g.iw);
    float *zb = z ? kt_to_blocked(z, g.batch, g.m, ohw) : NULL;
    float *ref = malloc((size_t)ysize * sizeof *ref), *y1 = malloc((size_t)ysize * sizeof *y1);
    float *y2 = malloc((size_t)ysize * sizeof *y2);
    kn_nchwc_weights *pw = kn_nchwc_pack(&g, w, bias);
    CHECK(pw != NULL);
    size_t direct_bytes = kn_nchwc_weights_bytes(pw);
    CHECK(kn_nchwc_wino_takes(&g));
    CHECK(kn_nchwc_add_winograd(pw, w) == 1);
    CHECK(kn_nchwc_weights_bytes(pw) > direct_bytes);
    CHECK(kn_nchwc_add_winograd(pw, w) == 0); /* once */
    kn_nchwc_conv_args a = kt_conv_args(&g, pw, xb, zb, s->act, ref);
    for (int64_t i = 0; i < ysize; i++)
        ref[i] = y1[i] = y2[i] = 12345.0f;
    kn_nchwc_conv_reference(&a);
    a.y = y1;
    CHECK(kn_nchwc_wino_run(NULL, KN_ISA_AVX512, &a) == 1);
    kt_expect_blocked(&g, y1, ref, 0);
    a.y = y2;
    kn_nchwc_conv_run(pool2, KN_ISA_AVX512, &a); /* the driver sends it to Winograd */
    kt_expect_blocked(&g, y2, y1, 1);
    a.y = y2;
    kn_nchwc_conv_run(NULL, KN_ISA_GENERIC, &a); /* below AVX-512: the direct path */
    kt_expect_blocked(&g, y2, ref, 1);
    kn_nchwc_weights_free(pw);
    free(x), free(w), free(bias), free(z), free(xb), free(zb), free(ref), free(y1), free(y2);
}

static void test_shapes(void)
{
    if (kn_cpu_isa_supported() < KN_ISA_AVX512) {
        fprintf(stderr, "  no AVX-512: the Winograd path does not exist here\n");
        return;
    }
    kt_run_conv_shapes(k_shapes, sizeof k_shapes / sizeof k_shapes[0], run_shape);
}

/* Geometries the path cannot take get no Winograd weights and no run. */
static void test_geometries(void)
{
    static const shape other[] = {
        {1, 16, 16, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_NONE, 0, 1}, /* stride 2 */
        {1, 16, 16, 8, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, KN_CONV_ACT_NONE, 0, 1}, /* dilation 2 */
        {1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 0, 1}, /* no pads */
        {1, 16, 16, 8, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_NONE, 0, 1}, /* 1x1 */
        {1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 2, 1, 0, 1, KN_CONV_ACT_NONE, 0, 1}, /* uneven pads */
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        kn_nchwc_conv g = kt_conv_geom(&other[i]);
        CHECK(!kn_nchwc_wino_takes(&g));
    }
    kn_nchwc_conv g = kt_conv_geom(&other[3]);
    float w[256] = {0};
    kn_nchwc_weights *pw = kn_nchwc_pack(&g, w, NULL);
    CHECK(pw != NULL);
    CHECK(kn_nchwc_add_winograd(pw, w) == 0); /* 1x1 weights */
    kn_nchwc_weights_free(pw);
}

/* The default rule takes ResNet's 56 and 28 pixel stages and leaves out small
 * images and wide channels; KILN_CONV_WINOGRAD forces it either way. */
static void test_worth(void)
{
    unsetenv("KILN_CONV_WINOGRAD");
    CHECK(kn_nchwc_wino_worth(1, 56, 56, 64, 64));
    CHECK(kn_nchwc_wino_worth(8, 28, 28, 128, 128));
    CHECK(!kn_nchwc_wino_worth(1, 14, 14, 256, 256));
    CHECK(!kn_nchwc_wino_worth(1, 56, 56, 16, 16));
    CHECK(!kn_nchwc_wino_worth(1, 7, 7, 512, 512));
    CHECK(!kn_nchwc_wino_worth(1, 7, 7, 64, 64));
    CHECK(!kn_nchwc_wino_worth(1, -1, -1, 64, 64));
    setenv("KILN_CONV_WINOGRAD", "0", 1);
    CHECK(!kn_nchwc_wino_worth(1, 56, 56, 64, 64));
    setenv("KILN_CONV_WINOGRAD", "1", 1);
    CHECK(kn_nchwc_wino_worth(1, 7, 7, 512, 512));
    unsetenv("KILN_CONV_WINOGRAD");
}

TEST_MAIN(TEST_CASE(test_shapes), TEST_CASE(test_geometries), TEST_CASE(test_worth))
