/* nchwc_test.h - what the blocked-conv kernel tests (test_conv_nchwc.c,
 * test_conv_nchwc_stem.c) share: a row of their shape tables, its kernel
 * geometry, random inputs, and the comparison of a blocked output with the
 * expected one (bit for bit, or within a tolerance that grows with the length of
 * the sums and the magnitude).  Header-only. */
#ifndef KT_NCHWC_TEST_H
#define KT_NCHWC_TEST_H

#include <math.h>
#include <stdlib.h>

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
