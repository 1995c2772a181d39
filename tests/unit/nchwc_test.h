/* nchwc_test.h - what the blocked-conv kernel tests (test_conv_nchwc.c,
 * test_conv_nchwc_stem.c) share: a row of their shape tables, its kernel
 * geometry, random inputs, and the comparison of a blocked output with the
 * expected one (bit for bit, or within a tolerance that grows with the length of
 * the sums and the magnitude).  Header-only. */
#ifndef KT_NCHWC_TEST_H
#define KT_NCHWC_TEST_H

#include <math.h>
#include <stdlib.h>

#include "exec/threadpool.h"
#include "kernels/nchwc.h"
#include "test.h"

/* One conv: batch, in / out channels, image, kernel, strides, dilations, pads
 * (top, left, bottom, right), the activation, and whether it has a residual and a
 * bias. */
typedef struct kt_conv_shape {
    int64_t batch, c, m, ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    kn_conv_act_kind act;
    int with_z, with_bias;
} kt_conv_shape;

/* Outputs along one axis: input size i, kernel k, stride s, dilation d, pads p0, p1. */
static inline int64_t kt_conv_out_size(int64_t i, int64_t k, int64_t s, int64_t d, int64_t p0,
                                       int64_t p1)
{
    return (i + p0 + p1 - (k - 1) * d - 1) / s + 1;
}

/* The group-1 kernel geometry of s. */
static inline kn_nchwc_conv kt_conv_geom(const kt_conv_shape *s)
{
    return (kn_nchwc_conv){.batch = s->batch, .channels = s->c, .m = s->m, .group = 1,
                           .ih = s->ih, .iw = s->iw,
                           .oh = kt_conv_out_size(s->ih, s->kh, s->sh, s->dh, s->pt, s->pb),
                           .ow = kt_conv_out_size(s->iw, s->kw, s->sw, s->dw, s->pl, s->pr),
                           .kh = s->kh, .kw = s->kw, .sh = s->sh, .sw = s->sw, .dh = s->dh,
                           .dw = s->dw, .pt = s->pt, .pl = s->pl};
}

/* n values in [-1, 1] (owned by the caller) from the generator *seed. */
static inline float *kt_random_floats(uint32_t *seed, int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(kt_xorshift32(seed) % 2001) / 1000.0f - 1.0f;
    return p;
}

/* NCHW [batch][c][hw] -> a new blocked [batch][Cp/16][hw][16], padding channels
 * zero (the definition the kernels must meet; never a zero-size allocation). */
static inline float *kt_to_blocked(const float *x, int64_t batch, int64_t c, int64_t hw)
{
    int64_t cp = kn_nchwc_padded(c);
    float *y = calloc((size_t)(batch * cp * hw + 1), sizeof *y);
    for (int64_t n = 0; n < batch; n++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < hw; i++)
                y[((n * (cp / 16) + ch / 16) * hw + i) * 16 + ch % 16] = x[(n * c + ch) * hw + i];
    return y;
}

/* run(shape, a 2-thread pool) for each of n shapes, naming the shapes that fail. */
static inline void kt_run_conv_shapes(const kt_conv_shape *shapes, size_t n,
                                      void (*run)(const kt_conv_shape *, kn_threadpool *))
{
    kn_error err = {0};
    kn_threadpool *pool2 = kn_threadpool_create(2, &err);
    CHECK(pool2 != NULL);
    for (size_t i = 0; i < n; i++) {
        int before = kt_failures;
        run(&shapes[i], pool2);
        if (kt_failures != before)
            fprintf(stderr, "  in shape %zu\n", i);
    }
    kn_threadpool_free(pool2);
}

/* The call of a conv test: act with Clip bounds of 0.25..1.5 (a lower bound above
 * zero, so that padding channels must be zeroed after it), else 0.1 / 0.9. */
static inline kn_nchwc_conv_args kt_conv_args(const kn_nchwc_conv *g, const kn_nchwc_weights *w,
                                              const float *xb, const float *zb,
                                              kn_conv_act_kind act, float *y)
{
    kn_nchwc_conv_args a = {g, w, xb, zb, {act, 0.1f, 0.9f}, y};
    if (act == KN_CONV_ACT_CLIP)
        a.act.alpha = 0.25f, a.act.beta = 1.5f;
    return a;
}

/* How far an output of g near ref may be from it (float sums reordered). */
static inline double kt_conv_tol(const kn_nchwc_conv *g, double ref)
{
    return 4e-6 * (double)(g->channels * g->kh * g->kw) + 1e-5 * fabs(ref);
}

/* got against want over the whole blocked output (padding included): bit for bit
 * when exact, else within kt_conv_tol; reports the first few mismatches only. */
static inline void kt_expect_blocked(const kn_nchwc_conv *g, const float *got, const float *want,
                                     int exact)
{
    size_t total = (size_t)(g->batch * kn_nchwc_padded(g->m) * g->oh * g->ow);
    int reported = 0;
    for (size_t i = 0; i < total && reported < 5; i++) {
        double tol = exact ? 0.0 : kt_conv_tol(g, want[i]);
        reported += !(exact ? got[i] == want[i] : fabs(got[i] - want[i]) <= tol);
        CHECK_NEAR(got[i], want[i], tol);
    }
}

#endif
