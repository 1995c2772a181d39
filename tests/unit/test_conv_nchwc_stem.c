/* test_conv_nchwc_stem.c - the stem conv (kernels/conv_nchwc_stem.c: NCHW input,
 * blocked output): the reference against a naive NCHW conv on the unpacked
 * weights (which checks the packing), the AVX-512 path against the reference
 * (no pool and a 2-thread pool, the two bit-identical), on awkward shapes:
 * channels 1..17, output channels off the block, kernels 1, 3, 5, 7, strides 1
 * and 2, asymmetric pads (some wider than the kernel), dilation 2, batch 2,
 * every row-tile tail, residual, every kind of activation; padding channels
 * must come out zero, and pack declines group > 1. */
#include "test.h"

#include <stdlib.h>

#include "exec/threadpool.h"
#include "kernels/nchwc.h"

typedef struct shape {
    int64_t batch, c, m, ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    kn_conv_act_kind act;
    int with_z, with_bias;
} shape;

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
    /* wide rows: the unrolled full tiles of kernel widths 3 and 7, 1..4 blocks */
    {1, 3, 16, 9, 40, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_RELU, 1, 1},
    {1, 2, 24, 6, 33, 7, 7, 2, 1, 1, 1, 3, 2, 3, 4, KN_CONV_ACT_CLIP, 0, 1},
    {1, 3, 48, 5, 29, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_NONE, 1, 1},
    {1, 3, 40, 5, 29, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, KN_CONV_ACT_SILU, 0, 1},
    {1, 5, 56, 4, 30, 3, 3, 1, 1, 1, 2, 1, 2, 0, 2, KN_CONV_ACT_CLIP, 1, 1},
};

static uint32_t g_seed = 0x13579bdu;

static float rnd(void)
{
    return (float)(kt_xorshift32(&g_seed) % 2001) / 1000.0f - 1.0f;
}

static float *rnd_buf(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = rnd();
    return p;
}

static size_t blocked_at(int64_t n, int64_t c, int64_t cp, int64_t hw, int64_t i)
{
    return (size_t)(((n * (cp / 16) + c / 16) * hw + i) * 16 + c % 16);
}

/* NCHW [batch][c][hw] -> blocked, padding channels zero. */
static float *to_blocked(const float *x, int64_t batch, int64_t c, int64_t hw)
{
    int64_t cp = kn_nchwc_padded(c);
    float *y = calloc((size_t)(batch * cp * hw), sizeof *y);
    for (int64_t n = 0; n < batch; n++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < hw; i++)
                y[blocked_at(n, ch, cp, hw, i)] = x[(n * c + ch) * hw + i];
    return y;
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

static kn_nchwc_conv geom_of(const shape *s)
{
    kn_nchwc_conv g = {s->batch, s->c, s->m, 1, s->ih, s->iw, 0, 0,
                       s->kh, s->kw, s->sh, s->sw, s->dh, s->dw, s->pt, s->pl};
    g.oh = (s->ih + s->pt + s->pb - (s->kh - 1) * s->dh - 1) / s->sh + 1;
    g.ow = (s->iw + s->pl + s->pr - (s->kw - 1) * s->dw - 1) / s->sw + 1;
    return g;
}

static double tol_of(const kn_nchwc_conv *g, double ref)
{
    return 4e-6 * (double)(g->channels * g->kh * g->kw) + 1e-5 * fabs(ref);
}

/* y (blocked) against the naive conv + z + act, padding channels zero. */
static void check_vs_naive(const kn_nchwc_conv *g, const kn_nchwc_conv_args *a, const float *w,
                           const float *bias, const float *z_nchw)
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
                float v = naive(g, a->x, w, bias, n, m, i / g->ow, i % g->ow);
                v = kn_conv_act_one(&a->act, v + (z_nchw ? z_nchw[(n * g->m + m) * hw + i] : 0.0f));
                bad += !(fabs(got - v) <= tol_of(g, v));
                CHECK_NEAR(got, v, tol_of(g, v));
            }
}

/* Every element of y equal to ref (bit for bit when exact, else within
 * tolerance; padding channels are zero in ref, so must be in y). */
static void check_same(const kn_nchwc_conv *g, const float *y, const float *ref, int exact)
{
    size_t n = (size_t)(g->batch * kn_nchwc_padded(g->m) * g->oh * g->ow);
    int bad = 0;
    for (size_t i = 0; i < n && bad < 5; i++) {
        int ok = exact ? y[i] == ref[i] : fabs(y[i] - ref[i]) <= tol_of(g, ref[i]);
        bad += !ok;
        if (exact)
            CHECK(y[i] == ref[i]);
        else
            CHECK_NEAR(y[i], ref[i], tol_of(g, ref[i]));
    }
}

static void run_shape(const shape *s, kn_threadpool *pool2)
{
    kn_nchwc_conv g = geom_of(s);
    int64_t ohw = g.oh * g.ow, ysize = g.batch * kn_nchwc_padded(g.m) * ohw;
    float *x = rnd_buf(g.batch * g.channels * g.ih * g.iw), *w = rnd_buf(g.m * g.channels * g.kh * g.kw);
    float *bias = s->with_bias ? rnd_buf(g.m) : NULL, *z = s->with_z ? rnd_buf(g.batch * g.m * ohw) : NULL;
    float *zb = z ? to_blocked(z, g.batch, g.m, ohw) : NULL;
    float *ref = malloc((size_t)ysize * sizeof *ref), *y1 = malloc((size_t)ysize * sizeof *y1);
    float *y2 = malloc((size_t)ysize * sizeof *y2);
    kn_nchwc_weights *pw = kn_nchwc_stem_pack(&g, w, bias);
    CHECK(pw != NULL);
    kn_nchwc_conv_args a = {&g, pw, x, zb, {s->act, 0.1f, 0.9f}, ref};
    if (s->act == KN_CONV_ACT_CLIP) /* a lower bound above zero: padding must stay zero */
        a.act.alpha = 0.25f, a.act.beta = 1.5f;
    for (int64_t i = 0; i < ysize; i++)
        ref[i] = y1[i] = y2[i] = 12345.0f;
    kn_nchwc_stem_reference(&a);
    check_vs_naive(&g, &a, w, bias, z);
    a.y = y1;
    kn_nchwc_stem_run(NULL, kn_cpu_isa_supported(), &a);
    check_same(&g, y1, ref, 0);
    a.y = y2;
    kn_nchwc_stem_run(pool2, kn_cpu_isa_supported(), &a);
    check_same(&g, y2, y1, 1);
    kn_nchwc_stem_run(NULL, KN_ISA_GENERIC, &a);
    check_same(&g, y2, ref, 1);
    kn_nchwc_weights_free(pw);
    free(x), free(w), free(bias), free(z), free(zb), free(ref), free(y1), free(y2);
}

static void test_shapes(void)
{
    kn_error err = {0};
    kn_threadpool *pool2 = kn_threadpool_create(2, &err);
    CHECK(pool2 != NULL);
    for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++) {
        int before = kt_failures;
        run_shape(&k_shapes[i], pool2);
        if (kt_failures != before)
            fprintf(stderr, "  in shape %zu\n", i);
    }
    kn_threadpool_free(pool2);
}

/* Rows of every length up to several tiles (6, 8 or 12 pixels by the output
 * blocks of the tile), with and without pads, strides 1 and 2. */
static void test_row_tails(void)
{
    for (int64_t iw = 1; iw <= 27; iw += 2) {
        shape s = {1, 3, 64, 3, iw, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_CONV_ACT_RELU, 1, 1};
        run_shape(&s, NULL);
        shape t = {1, 3, 40, 4, iw + 1, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, KN_CONV_ACT_NONE, 0, 1};
        run_shape(&t, NULL);
        shape u = {1, 2, 20, 2, iw, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, KN_CONV_ACT_CLIP, 1, 1};
        run_shape(&u, NULL);
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
