/* test_conv_kernels.c - the fast float32 convolution kernels against plain
 * references on awkward shapes: the depthwise plane kernel (every ISA the CPU
 * has, strides, dilations, pads, residual, every activation), im2col tiles, whole
 * convs through kn_conv2d_run (depthwise, pointwise, im2col, groups, batch > 1,
 * prepacked and per-call weights, pools of 1 and 3 threads giving identical
 * results), and the Conv / FusedConv operators run with their prepare hook and a
 * thread pool, plus FusedConv's attribute and input checks. */
#include "test.h"
#include "op_harness.h"

#include <stdlib.h>

#include "exec/exec.h"
#include "exec/threadpool.h"
#include "kernels/conv_kernels.h"
#include "kernels/sgemm.h"

static unsigned g_seed = 12345;

static float frand(void)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (float)((g_seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static float *rand_floats(int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; p && i < n; i++)
        p[i] = frand();
    return p;
}

/* Largest |a - b| relative to max(1, |b|). */
static double max_rel_err(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs(b[i]) > 1 ? fabs(b[i]) : 1);
        if (!(d <= worst)) /* NaN counts as worst */
            worst = d != d ? INFINITY : d;
    }
    return worst;
}

static const kn_conv_act k_acts[] = {
    {KN_CONV_ACT_NONE, 0, 0},          {KN_CONV_ACT_RELU, 0, 0},
    {KN_CONV_ACT_LEAKY_RELU, 0.1f, 0}, {KN_CONV_ACT_SIGMOID, 0, 0},
    {KN_CONV_ACT_TANH, 0, 0},          {KN_CONV_ACT_CLIP, -0.5f, 0.75f},
    {KN_CONV_ACT_HARD_SIGMOID, 0.2f, 0.5f}, {KN_CONV_ACT_SILU, 0, 0},
};

/* ---- activations ---- */

static void test_act_values(void)
{
    kn_conv_act relu = {KN_CONV_ACT_RELU, 0, 0}, clip = {KN_CONV_ACT_CLIP, 0, 6};
    kn_conv_act leaky = {KN_CONV_ACT_LEAKY_RELU, 0.5f, 0}, hs = {KN_CONV_ACT_HARD_SIGMOID, 0.2f, 0.5f};
    CHECK_NEAR(kn_conv_act_one(&relu, -2), 0, 0);
    CHECK_NEAR(kn_conv_act_one(&clip, 7), 6, 0);
    CHECK_NEAR(kn_conv_act_one(&leaky, -2), -1, 0);
    CHECK_NEAR(kn_conv_act_one(&hs, 10), 1, 0);
    CHECK_NEAR(kn_conv_act_one(&hs, 0), 0.5, 1e-7);
    kn_conv_act silu = {KN_CONV_ACT_SILU, 0, 0};
    CHECK_NEAR(kn_conv_act_one(&silu, 2), 2 / (1 + exp(-2.0)), 1e-6);
    CHECK_NEAR(kn_conv_act_one(&silu, -30), -30 / (1 + exp(30.0)), 1e-15);
    float sv[19];
    for (int i = 0; i < 19; i++)
        sv[i] = (float)(i - 9) * 1.5f;
    kn_conv_act_apply(&silu, sv, 19); /* the vmath span against the scalar value */
    for (int i = 0; i < 19; i++)
        CHECK_NEAR(sv[i], kn_conv_act_one(&silu, (float)(i - 9) * 1.5f), 1e-6);
    CHECK(isnan(kn_conv_act_one(&relu, NAN)));
    CHECK(isnan(kn_conv_act_one(&clip, NAN)));
    float v[3] = {-1, NAN, 3};
    kn_conv_act_apply(&relu, v, 3);
    CHECK(v[0] == 0 && isnan(v[1]) && v[2] == 3);
}

/* ---- depthwise plane ---- */

static void check_dw_case(const kn_dw_geom *g, const kn_conv_act *act, bool with_z)
{
    int64_t n_in = g->ih * g->iw, n_out = g->oh * g->ow;
    float *x = rand_floats(n_in), *w = rand_floats(g->kh * g->kw);
    float *z = with_z ? rand_floats(n_out) : NULL, *want = rand_floats(n_out);
    float *got = rand_floats(n_out);
    size_t sf = kn_dw_scratch_floats(g);
    CHECK(sf > 0);
    float *scratch = malloc(sizeof(float) * (sf ? sf : 1));
    kn_dwconv_plane_ref(g, x, w, 0.25f, z, act, want);
    for (int isa = 0; isa <= (int)kn_cpu_isa(); isa++) {
        for (int64_t i = 0; i < n_out; i++)
            got[i] = NAN;
        kn_dwconv_plane((kn_isa)isa, g, x, w, 0.25f, z, act, scratch, got);
        double e = max_rel_err(got, want, n_out);
        if (!(e < 1e-5))
            fprintf(stderr, "dw %s: in %lldx%lld k %lldx%lld s %lld,%lld d %lld,%lld p %lld,%lld act %d: err %g\n",
                    kn_isa_name((kn_isa)isa), (long long)g->ih, (long long)g->iw, (long long)g->kh,
                    (long long)g->kw, (long long)g->sh, (long long)g->sw, (long long)g->dh,
                    (long long)g->dw, (long long)g->pt, (long long)g->pl, (int)act->kind, e);
        CHECK(e < 1e-5);
    }
    free(x);
    free(w);
    free(z);
    free(want);
    free(got);
    free(scratch);
}

/* Output size of one axis, or 0 when the window does not fit. */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe)
{
    int64_t span = in + pb + pe - ((k - 1) * d + 1);
    return span < 0 ? 0 : span / s + 1;
}

static void test_dw_plane_shapes(void)
{
    static const int64_t sizes[] = {1, 2, 7, 16, 17, 33, 40, 70};
    static const int64_t ks[][2] = {{3, 3}, {5, 5}, {1, 1}, {2, 3}, {7, 1}};
    int n = 0;
    for (size_t si = 0; si < KT_COUNT(sizes); si++)
        for (size_t ki = 0; ki < KT_COUNT(ks); ki++)
            for (int64_t s = 1; s <= 3; s++)
                for (int64_t d = 1; d <= 2; d++)
                    for (int64_t p = 0; p <= 2; p++, n++) {
                        int64_t ih = sizes[si], iw = sizes[(si + ki + (size_t)s) % KT_COUNT(sizes)];
                        int64_t pe = (p + s) % 3; /* end pads differ from begin pads */
                        kn_dw_geom g = {ih, iw, 0, 0, ks[ki][0], ks[ki][1], s, s == 3 ? 2 : s, d,
                                        d, p, pe};
                        g.oh = out_size(ih, g.kh, g.sh, g.dh, p, pe);
                        g.ow = out_size(iw, g.kw, g.sw, g.dw, pe, p);
                        if (g.oh < 1 || g.ow < 1)
                            continue;
                        check_dw_case(&g, &k_acts[n % KT_COUNT(k_acts)], n % 2 == 0);
                    }
}

static void test_dw_plane_too_big(void)
{
    kn_dw_geom g = {4, 4, 2, 2, 9, 9, 1, 1, 1, 1, 4, 4}; /* 81 taps: reference only */
    CHECK(kn_dw_scratch_floats(&g) == 0);
    kn_dw_geom h = {4, 4, 2, 2, 3, 3, (int64_t)1 << 40, 1, 1, 1, 0, 0};
    CHECK(kn_dw_scratch_floats(&h) == 0);
}

/* ---- pointwise tile and direct row kernels against their plain C versions ---- */

static void check_pw_tile(kn_pw_tile_fn fn, int mr, int m, int n, int64_t K, bool extras)
{
    int64_t ldx = n + 3, ldy = n + 5;
    float *a = rand_floats(K * mr), *x = rand_floats(K * ldx), *z = rand_floats(m * ldy);
    float *bias = rand_floats(mr), *want = rand_floats(m * ldy), *got = malloc(sizeof(float) * (size_t)(m * ldy));
    memcpy(got, want, sizeof(float) * (size_t)(m * ldy)); /* untouched parts must stay equal */
    kn_pw_tile t = {a, x, ldx, K, want, extras ? z : NULL, extras ? bias : NULL, ldy, mr, m, n,
                    extras, -0.5f, 0.75f};
    kn_pw_tile_generic(&t);
    t.y = got;
    fn(&t);
    CHECK(max_rel_err(got, want, m * ldy) < 1e-5);
    free(a), free(x), free(z), free(bias), free(want), free(got);
}

static void test_pw_tile_kernels(void)
{
    kn_pw_tile_fn fn = kn_pw_tile_avx512();
    int mr = kn_pw_tile_rows_avx512();
    if (!fn || kn_cpu_isa_supported() < KN_ISA_AVX512)
        return;
    static const int64_t ks[] = {1, 2, 7, 16, 33};
    for (int m = 1; m <= mr; m += (m < 3 || m >= mr - 1) ? 1 : 5)
        for (int n = 1; n <= KN_PW_TILE_COLS; n += n < 17 ? (n < 2 ? 1 : 7) : 5)
            for (size_t ki = 0; ki < KT_COUNT(ks); ki++)
                check_pw_tile(fn, mr, m, n, ks[ki], (m + n + (int)ki) % 2 == 0);
}

static void check_direct_rows(kn_direct_row_fn fn, int64_t rows, int64_t ow, int nco, bool extras)
{
    int64_t stride = ow + 11, plane = rows * ow + 2, ntaps = 13;
    int64_t toff[13];
    for (int t = 0; t < ntaps; t++)
        toff[t] = (t * 5) % 9 + (t / 4) * stride;
    float *src = rand_floats(rows * stride + 4 * stride + 16), *w = rand_floats(KN_DIRECT_CO * ntaps);
    float *bias = rand_floats(KN_DIRECT_CO), *z = rand_floats(KN_DIRECT_CO * plane);
    float *want = rand_floats(KN_DIRECT_CO * plane), *got = malloc(sizeof(float) * (size_t)(KN_DIRECT_CO * plane));
    memcpy(got, want, sizeof(float) * (size_t)(KN_DIRECT_CO * plane));
    kn_direct_rows r = {src, stride, rows, ow, plane, toff, w, bias, (int)ntaps, nco, extras,
                        -0.5f, 0.5f, extras ? z : NULL, want};
    kn_direct_rows_generic(&r);
    r.y = got;
    fn(&r);
    CHECK(max_rel_err(got, want, KN_DIRECT_CO * plane) < 1e-5);
    free(src), free(w), free(bias), free(z), free(want), free(got);
}

static void test_direct_row_kernels(void)
{
    kn_direct_row_fn fn = kn_direct_row_avx512();
    if (!fn || kn_cpu_isa_supported() < KN_ISA_AVX512)
        return;
    static const int64_t ows[] = {1, 5, 16, 17, 31, 32, 33, 48, 67};
    for (size_t i = 0; i < KT_COUNT(ows); i++)
        for (int nco = 1; nco <= KN_DIRECT_CO; nco++)
            check_direct_rows(fn, 1 + (int64_t)(i % 3), ows[i], nco, (i + (size_t)nco) % 2 == 0);
}

/* ---- whole convs ---- */

/* Direct conv with double accumulation; z and act applied like FusedConv. */
static void conv_naive(const kn_conv2d_args *a, float *y)
{
    const kn_conv2d_geom *g = &a->g;
    int64_t mg = a->m / a->group, cg = g->channels, C = cg * a->group;
    for (int64_t n = 0; n < a->batch; n++)
        for (int64_t co = 0; co < a->m; co++) {
            int64_t gi = co / mg;
            for (int64_t oy = 0; oy < g->oh; oy++)
                for (int64_t ox = 0; ox < g->ow; ox++) {
                    double acc = a->bias ? a->bias[co] : 0;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < g->kh; ky++)
                            for (int64_t kx = 0; kx < g->kw; kx++) {
                                int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                                int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                                if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw)
                                    continue;
                                acc += (double)a->w[((co * cg + ci) * g->kh + ky) * g->kw + kx] *
                                       a->x[((n * C + gi * cg + ci) * g->ih + iy) * g->iw + ix];
                            }
                    int64_t o = ((n * a->m + co) * g->oh + oy) * g->ow + ox;
                    float v = (float)acc + (a->z ? a->z[o] : 0.0f);
                    y[o] = kn_conv_act_one(&a->act, v);
                }
        }
}

typedef struct conv_case {
    int64_t batch, C, M, group, ih, iw, kh, kw, s, d, pt, pl, pe;
} conv_case;

static kn_packed_a **pack_for(const kn_conv2d_args *a, kn_isa isa)
{
    int64_t mg = a->m / a->group, K = a->g.channels * a->g.kh * a->g.kw;
    kn_packed_a **pa = calloc((size_t)a->group, sizeof *pa);
    for (int64_t gi = 0; gi < a->group; gi++)
        pa[gi] = kn_sgemm_pack_a_isa(isa, 0, (size_t)mg, (size_t)K, a->w + gi * mg * K, (size_t)K);
    return pa;
}

static void free_packs(kn_packed_a **pa, int64_t group)
{
    for (int64_t gi = 0; gi < group; gi++)
        kn_packed_a_free(pa[gi]);
    free(pa);
}

/* Runs a with isa over pool with scratch for `slices` threads; returns the result
 * in a fresh buffer. */
static float *run_conv2d(kn_threadpool *pool, int slices, kn_isa isa, const kn_conv2d_args *a,
                         int64_t n_out)
{
    size_t sf = kn_conv2d_scratch_floats(a, slices);
    CHECK(sf != SIZE_MAX);
    float *scratch = NULL, *y = rand_floats(n_out);
    if (sf && sf != SIZE_MAX)
        scratch = aligned_alloc(64, (sf * sizeof(float) + 63) / 64 * 64);
    kn_conv2d_args b = *a;
    b.y = y;
    CHECK_EQ_INT(sf == SIZE_MAX ? -1 : kn_conv2d_run(pool, isa, &b, scratch, sf), KN_OK);
    free(scratch);
    return y;
}

static void check_conv_case(const conv_case *t, const kn_conv_act *act, bool with_z,
                            bool with_bias, kn_threadpool *pool3)
{
    int64_t cg = t->C / t->group;
    kn_conv2d_geom g = {cg, t->ih, t->iw, 0, 0, t->kh, t->kw, t->s, t->s, t->d, t->d, t->pt, t->pl};
    g.oh = out_size(t->ih, t->kh, t->s, t->d, t->pt, t->pe);
    g.ow = out_size(t->iw, t->kw, t->s, t->d, t->pl, t->pe);
    if (g.oh < 1 || g.ow < 1)
        return;
    int64_t n_out = t->batch * t->M * g.oh * g.ow;
    kn_conv2d_args a = {g, t->batch, t->group, t->M, NULL, NULL, NULL, NULL, NULL, *act, NULL,
                        NULL};
    float *x = rand_floats(t->batch * t->C * t->ih * t->iw), *w = rand_floats(t->M * cg * t->kh * t->kw);
    float *b = with_bias ? rand_floats(t->M) : NULL, *z = with_z ? rand_floats(n_out) : NULL;
    float *want = rand_floats(n_out);
    a.x = x, a.w = w, a.bias = b, a.z = z;
    conv_naive(&a, want);
    for (int isa = 0; isa <= (int)kn_cpu_isa(); isa++) {
        kn_packed_a **pa = pack_for(&a, (kn_isa)isa);
        float *y1 = run_conv2d(NULL, 1, (kn_isa)isa, &a, n_out);
        float *y3s = run_conv2d(pool3, 1, (kn_isa)isa, &a, n_out); /* one slice: sequential */
        a.pa = pa;
        float *y3 = run_conv2d(pool3, 3, (kn_isa)isa, &a, n_out);
        if (kn_conv2d_algo(&a) == KN_CONV_ALGO_DIRECT) { /* weights released: im2col */
            kn_conv2d_args packed_only = a;
            packed_only.w = NULL;
            CHECK_EQ_INT(kn_conv2d_algo(&packed_only), KN_CONV_ALGO_IM2COL);
            float *yp = run_conv2d(pool3, 3, (kn_isa)isa, &packed_only, n_out);
            CHECK(max_rel_err(yp, want, n_out) < 1e-4);
            free(yp);
        }
        a.pa = NULL;
        double e = max_rel_err(y1, want, n_out);
        if (!(e < 1e-4))
            fprintf(stderr, "conv %s algo %d: N%lld C%lld M%lld g%lld %lldx%lld k%lldx%lld s%lld d%lld p%lld,%lld,%lld act %d: err %g\n",
                    kn_isa_name((kn_isa)isa), (int)kn_conv2d_algo(&a), (long long)t->batch,
                    (long long)t->C, (long long)t->M, (long long)t->group, (long long)t->ih,
                    (long long)t->iw, (long long)t->kh, (long long)t->kw, (long long)t->s,
                    (long long)t->d, (long long)t->pt, (long long)t->pl, (long long)t->pe,
                    (int)act->kind, e);
        CHECK(e < 1e-4);
        /* thread count and prepacking change nothing, bit for bit */
        CHECK(memcmp(y1, y3, sizeof(float) * (size_t)n_out) == 0);
        CHECK(memcmp(y1, y3s, sizeof(float) * (size_t)n_out) == 0);
        free(y1);
        free(y3);
        free(y3s);
        free_packs(pa, t->group);
    }
    free(x);
    free(w);
    free(b);
    free(z);
    free(want);
}

static const conv_case k_cases[] = {
    /* batch C  M  grp ih  iw  kh kw s d pt pl pe */
    {1, 3, 5, 1, 7, 9, 3, 3, 1, 1, 1, 1, 1},      /* odd channels, pads */
    {2, 4, 6, 1, 5, 5, 1, 1, 1, 1, 0, 0, 0},      /* pointwise, batch 2 */
    {1, 17, 33, 1, 13, 11, 1, 1, 1, 1, 0, 0, 0},  /* pointwise, primes */
    {1, 8, 12, 1, 9, 9, 1, 1, 2, 1, 0, 0, 0},     /* strided 1x1 */
    {1, 3, 4, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1},      /* 1x1 image, 3x3 kernel */
    {1, 5, 7, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},      /* 1x1 image pointwise */
    {2, 6, 9, 3, 8, 7, 3, 3, 2, 1, 1, 0, 1},      /* groups, stride 2 */
    {1, 4, 4, 2, 10, 10, 3, 2, 1, 2, 2, 1, 0},    /* groups, dilation */
    {3, 7, 7, 7, 12, 9, 3, 3, 1, 1, 1, 1, 1},     /* depthwise 3x3, batch 3 */
    {1, 5, 5, 5, 19, 23, 5, 5, 2, 1, 2, 2, 2},    /* depthwise 5x5 stride 2 */
    {1, 6, 6, 6, 11, 11, 3, 3, 2, 2, 2, 1, 3},    /* depthwise, dilation 2 */
    {1, 4, 8, 4, 9, 9, 3, 3, 1, 1, 1, 1, 1},      /* channel multiplier 2 */
    {1, 2, 3, 1, 70, 67, 3, 3, 1, 1, 1, 1, 1},    /* many pixel tiles */
    {2, 64, 40, 1, 15, 17, 3, 3, 1, 1, 1, 1, 1},  /* K over the tile budget */
    {1, 3, 16, 1, 31, 29, 7, 7, 2, 1, 3, 3, 3},   /* stem-like 7x7 stride 2 */
    {1, 9, 5, 1, 6, 13, 1, 5, 1, 3, 0, 6, 6},     /* thin kernel, wide dilation */
    {2, 64, 8, 1, 30, 30, 3, 3, 1, 1, 1, 1, 1},   /* 10 tiles over 3 threads, ragged last */
    {2, 3, 7, 1, 37, 41, 3, 3, 2, 1, 1, 1, 1},    /* direct: stem-like stride 2, M % 4 != 0 */
    {1, 1, 6, 1, 20, 70, 5, 5, 3, 1, 2, 2, 0},    /* direct: stride 3, rows over 64 wide */
    {1, 2, 5, 1, 1, 50, 1, 7, 1, 2, 0, 3, 3},     /* direct: one row, dilation 2 */
    {3, 7, 9, 1, 33, 17, 3, 3, 1, 1, 1, 1, 1},    /* direct: 63 taps, batch 3 */
    {2, 130, 20, 1, 13, 14, 3, 3, 1, 1, 1, 1, 1}, /* K 1170: 128-pixel tiles, ragged last */
    {1, 80, 20, 1, 60, 61, 1, 1, 1, 1, 0, 0, 0},  /* pointwise deep and large: GEMM */
    {1, 70, 31, 1, 23, 29, 1, 1, 1, 1, 0, 0, 0},  /* pointwise unpacked: 2 pixel blocks, 3 panels */
    {3, 33, 29, 1, 5, 9, 1, 1, 1, 1, 0, 0, 0},    /* pointwise unpacked: tiny plane, batch 3 */
    {2, 130, 17, 1, 6, 7, 1, 1, 1, 1, 0, 0, 0},   /* pointwise deep: GEMM */
    {1, 8, 8, 8, 37, 45, 5, 5, 1, 1, 2, 2, 2},    /* depthwise 5x5 stride 1, row tails */
    {2, 5, 5, 5, 38, 70, 3, 3, 2, 1, 0, 1, 1},    /* depthwise 3x3 stride 2, 35 wide */
    {1, 24, 10, 1, 29, 31, 3, 3, 2, 1, 1, 1, 1},  /* im2col stride 2: 15 wide, 225 px */
    {2, 40, 12, 1, 13, 9, 3, 3, 2, 1, 0, 1, 2},   /* stride 2, ow 5, uneven pads, batch 2 */
    {1, 33, 17, 1, 45, 75, 3, 3, 2, 1, 1, 1, 1},  /* stride 2, 38 wide, K 297: ragged tiles */
    {2, 16, 6, 2, 21, 23, 3, 3, 2, 2, 2, 2, 0},   /* stride 2, dilation 2, groups */
    {1, 20, 7, 1, 26, 53, 3, 3, 3, 1, 1, 1, 1},   /* im2col stride 3 */
    {1, 64, 20, 1, 28, 28, 1, 1, 2, 1, 0, 0, 0},  /* 1x1 stride 2 downsample */
    {3, 36, 11, 1, 15, 15, 1, 1, 2, 1, 0, 0, 0},  /* 1x1 stride 2, odd plane, batch 3 */
};

static void test_conv2d_against_naive(void)
{
    kn_error err;
    kn_threadpool *pool3 = kn_threadpool_create(3, &err);
    CHECK(pool3 != NULL);
    for (size_t i = 0; i < KT_COUNT(k_cases); i++)
        check_conv_case(&k_cases[i], &k_acts[i % KT_COUNT(k_acts)], i % 3 == 1, i % 4 != 3, pool3);
    /* every activation on one im2col case and one depthwise case */
    for (size_t k = 0; k < KT_COUNT(k_acts); k++) {
        check_conv_case(&k_cases[0], &k_acts[k], true, true, pool3);
        check_conv_case(&k_cases[9], &k_acts[k], k % 2 == 0, true, pool3);
    }
    kn_threadpool_free(pool3);
}

/* ---- transposed convs ---- */

static void convt_naive(const kn_conv2d_args *a, float *y)
{
    const kn_conv2d_geom *g = &a->g;
    int64_t mg = a->m / a->group, cg = g->channels, out_plane = g->oh * g->ow;
    for (int64_t n = 0; n < a->batch; n++)
        for (int64_t co = 0; co < a->m; co++) {
            double *acc = calloc((size_t)out_plane, sizeof(double));
            int64_t gi = co / mg, cm = co % mg;
            for (int64_t ci = gi * cg; ci < (gi + 1) * cg; ci++)
                for (int64_t iy = 0; iy < g->ih; iy++)
                    for (int64_t ix = 0; ix < g->iw; ix++)
                        for (int64_t ky = 0; ky < g->kh; ky++)
                            for (int64_t kx = 0; kx < g->kw; kx++) {
                                int64_t oy = iy * g->sh - g->pt + ky * g->dh;
                                int64_t ox = ix * g->sw - g->pl + kx * g->dw;
                                if (oy < 0 || oy >= g->oh || ox < 0 || ox >= g->ow)
                                    continue;
                                acc[oy * g->ow + ox] +=
                                    (double)a->x[((n * cg * a->group + ci) * g->ih + iy) * g->iw + ix] *
                                    a->w[((ci * mg + cm) * g->kh + ky) * g->kw + kx];
                            }
            for (int64_t p = 0; p < out_plane; p++)
                y[(n * a->m + co) * out_plane + p] = (float)acc[p] + (a->bias ? a->bias[co] : 0.0f);
            free(acc);
        }
}

static void check_convt_case(const conv_case *t, kn_threadpool *pool3)
{
    int64_t cg = t->C / t->group, mg = t->M / t->group;
    kn_conv2d_geom g = {cg, t->ih, t->iw, 0, 0, t->kh, t->kw, t->s, t->s, t->d, t->d, t->pt, t->pl};
    /* output size with end pad pe taken off (and output_padding-like growth when pe < 0) */
    g.oh = (t->ih - 1) * t->s + (t->kh - 1) * t->d + 1 - t->pt - t->pe;
    g.ow = (t->iw - 1) * t->s + (t->kw - 1) * t->d + 1 - t->pl - t->pe;
    if (g.oh < 1 || g.ow < 1)
        return;
    int64_t n_out = t->batch * t->M * g.oh * g.ow;
    kn_conv2d_args a = {g, t->batch, t->group, t->M, NULL, NULL, NULL, NULL, NULL,
                        {KN_CONV_ACT_NONE, 0, 0}, NULL, NULL};
    float *x = rand_floats(t->batch * t->C * t->ih * t->iw), *w = rand_floats(t->C * mg * t->kh * t->kw);
    float *b = rand_floats(t->M), *want = rand_floats(n_out);
    a.x = x, a.w = w, a.bias = b;
    convt_naive(&a, want);
    size_t sf = kn_convt2d_scratch_floats(&a);
    CHECK(sf != SIZE_MAX);
    float *scratch = malloc(sizeof(float) * (sf == SIZE_MAX ? 1 : sf));
    for (int isa = 0; isa <= (int)kn_cpu_isa() && sf != SIZE_MAX; isa++) {
        float *y1 = rand_floats(n_out), *y3 = rand_floats(n_out);
        kn_packed_a **pa = calloc((size_t)t->group, sizeof *pa);
        for (int64_t gi = 0; gi < t->group; gi++)
            pa[gi] = kn_convt2d_pack_group((kn_isa)isa, &a, gi);
        a.y = y1;
        CHECK_EQ_INT(kn_convt2d_run(NULL, (kn_isa)isa, &a, scratch, sf), KN_OK);
        a.y = y3;
        a.pa = pa;
        CHECK_EQ_INT(kn_convt2d_run(pool3, (kn_isa)isa, &a, scratch, sf), KN_OK);
        /* bands of 1 or 2 input rows (sums in another order); below one row it fails */
        float *yb = rand_floats(n_out);
        size_t row = (size_t)(mg * t->kh * t->kw * t->iw), band = row * (isa % 2 ? 1 : 2);
        a.y = yb;
        CHECK_EQ_INT(kn_convt2d_run(pool3, (kn_isa)isa, &a, scratch, band < sf ? band : sf), KN_OK);
        CHECK_EQ_INT(kn_convt2d_run(pool3, (kn_isa)isa, &a, scratch, row - 1), KN_ERR_ARG);
        CHECK(max_rel_err(yb, want, n_out) < 1e-4);
        free(yb);
        a.pa = NULL;
        double e = max_rel_err(y1, want, n_out);
        if (!(e < 1e-4))
            fprintf(stderr, "convT %s: case C%lld M%lld g%lld: err %g\n", kn_isa_name((kn_isa)isa),
                    (long long)t->C, (long long)t->M, (long long)t->group, e);
        CHECK(e < 1e-4);
        CHECK(memcmp(y1, y3, sizeof(float) * (size_t)n_out) == 0);
        free_packs(pa, t->group);
        free(y1);
        free(y3);
    }
    free(scratch);
    free(x);
    free(w);
    free(b);
    free(want);
}

static void test_convt2d_against_naive(void)
{
    kn_error err;
    kn_threadpool *pool3 = kn_threadpool_create(3, &err);
    for (size_t i = 0; i < KT_COUNT(k_cases); i++)
        check_convt_case(&k_cases[i], pool3);
    static const conv_case more[] = {
        {1, 4, 6, 2, 5, 6, 4, 4, 2, 1, 1, 1, 1}, /* upsampling 4x4 stride 2 */
        {2, 3, 5, 1, 4, 3, 3, 3, 3, 2, 0, 0, -2}, /* stride 3, dilation, extra output */
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    };
    for (size_t i = 0; i < KT_COUNT(more); i++)
        check_convt_case(&more[i], pool3);
    kn_threadpool_free(pool3);
}

static void check_im2col_tile(kn_conv2d_geom g, int64_t pe_h, int64_t pe_w, int64_t step);

static void test_im2col_tile(void)
{
    check_im2col_tile((kn_conv2d_geom){2, 5, 6, 0, 0, 3, 2, 2, 1, 1, 2, 1, 2}, 1, 0, 5);
    check_im2col_tile((kn_conv2d_geom){2, 9, 40, 0, 0, 3, 3, 1, 1, 1, 1, 1, 1}, 1, 1, 37);
    check_im2col_tile((kn_conv2d_geom){1, 4, 23, 0, 0, 2, 5, 1, 1, 1, 2, 0, 4}, 0, 3, 70);
    /* strided: ow < 16, odd widths, pads on every side, dilation, tiles of whole
     * and partial panels, a 1x1 stride-2 downsample, stride 3, one column */
    check_im2col_tile((kn_conv2d_geom){3, 11, 13, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1}, 1, 1, 32);
    check_im2col_tile((kn_conv2d_geom){2, 30, 61, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1}, 1, 1, 64);
    check_im2col_tile((kn_conv2d_geom){2, 17, 40, 0, 0, 1, 1, 2, 2, 1, 1, 0, 0}, 0, 0, 50);
    check_im2col_tile((kn_conv2d_geom){1, 14, 47, 0, 0, 3, 5, 3, 3, 2, 2, 2, 3}, 1, 2, 45);
    check_im2col_tile((kn_conv2d_geom){2, 12, 70, 0, 0, 2, 3, 2, 2, 2, 3, 0, 4}, 2, 5, 96);
    check_im2col_tile((kn_conv2d_geom){1, 9, 35, 0, 0, 3, 3, 2, 2, 1, 1, 0, 2}, 2, 0, 17);
    check_im2col_tile((kn_conv2d_geom){1, 5, 1, 0, 0, 3, 1, 2, 2, 1, 1, 1, 0}, 1, 0, 3);
    check_im2col_tile((kn_conv2d_geom){2, 40, 37, 0, 0, 7, 7, 2, 2, 1, 1, 3, 3}, 3, 3, 128);
    /* strides differing along y and x, 33 channels (two channel blocks of the walk) */
    check_im2col_tile((kn_conv2d_geom){2, 9, 33, 0, 0, 3, 3, 1, 2, 1, 1, 1, 1}, 1, 1, 40);
    check_im2col_tile((kn_conv2d_geom){2, 14, 20, 0, 0, 2, 3, 3, 2, 1, 2, 0, 1}, 2, 1, 32);
    check_im2col_tile((kn_conv2d_geom){1, 10, 30, 0, 0, 3, 3, 2, 1, 2, 1, 2, 1}, 0, 1, 64);
    check_im2col_tile((kn_conv2d_geom){33, 8, 19, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1}, 1, 1, 64);
}

/* col (K rows of np) against the packed panels of the same columns, bit for bit. */
static void check_packed_cols(const float *col, const float *packed, int64_t K, int64_t np)
{
    int64_t pw = KN_SGEMM_PANEL, panels = (np + pw - 1) / pw;
    for (int64_t q = 0; q < panels; q++)
        for (int64_t r = 0; r < K; r++)
            for (int64_t j = 0; j < pw; j++) {
                float want = q * pw + j < np ? col[r * np + q * pw + j] : 0.0f;
                CHECK(memcmp(&packed[(q * K + r) * pw + j], &want, sizeof want) == 0);
            }
}

static void check_im2col_tile(kn_conv2d_geom g, int64_t pe_h, int64_t pe_w, int64_t step)
{
    g.oh = out_size(g.ih, g.kh, g.sh, g.dh, g.pt, pe_h);
    g.ow = out_size(g.iw, g.kw, g.sw, g.dw, g.pl, pe_w);
    int64_t P = g.oh * g.ow, K = g.channels * g.kh * g.kw;
    float *x = rand_floats(g.channels * g.ih * g.iw), *col = rand_floats(K * P);
    for (int64_t p0 = 0; p0 < P; p0 += step) {
        int64_t np = P - p0 < step ? P - p0 : step;
        kn_im2col_tile(&g, x, p0, np, col);
        for (int isa = 0; isa <= (int)kn_cpu_isa(); isa++) { /* the ISA variants agree */
            float *col2 = rand_floats(K * np);
            kn_im2col_tile_isa((kn_isa)isa, &g, x, p0, np, col2);
            CHECK(memcmp(col, col2, sizeof(float) * (size_t)(K * np)) == 0);
            free(col2);
            int64_t panels = (np + KN_SGEMM_PANEL - 1) / KN_SGEMM_PANEL;
            float *packed = rand_floats(K * panels * KN_SGEMM_PANEL);
            kn_im2col_tile_packed((kn_isa)isa, &g, x, p0, np, packed);
            check_packed_cols(col, packed, K, np);
            free(packed);
        }
        for (int64_t r = 0; r < K; r++) {
            int64_t ci = r / (g.kh * g.kw), ky = r / g.kw % g.kh, kx = r % g.kw;
            for (int64_t j = 0; j < np; j++) {
                int64_t p = p0 + j, oy = p / g.ow, ox = p % g.ow;
                int64_t iy = oy * g.sh - g.pt + ky * g.dh, ix = ox * g.sw - g.pl + kx * g.dw;
                float want = (iy >= 0 && iy < g.ih && ix >= 0 && ix < g.iw)
                                 ? x[(ci * g.ih + iy) * g.iw + ix] : 0.0f;
                CHECK(col[r * np + j] == want);
            }
        }
    }
    free(x);
    free(col);
}

/* ---- the operators, with prepare and a pool ---- */

/* A one-node model: x (and z) fed at run time, w (copied) and b initializers (so
 * the prepare hook sees them); returns y run with a pool of `threads`. */
static int run_model(const char *domain, const char *op, kn_tensor *x, kn_tensor *w, kn_tensor *b,
                     kn_tensor *z, const kn_attr *attrs, int n_attr, int threads, kn_tensor *y)
{
    kn_error err = {0};
    kn_model *m = kn_model_new();
    kn_opset_import *imp = kn_arena_calloc(&m->arena, 2, sizeof *imp);
    imp[0] = (kn_opset_import){"", 17};
    imp[1] = (kn_opset_import){"com.microsoft", 1};
    m->opsets = imp;
    m->n_opsets = 2;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    kn_node *nd = kn_graph_add_node(g);
    nd->name = "node";
    nd->op_type = op;
    nd->domain = domain;
    static const char *names[4] = {"x", "w", "b", "z"};
    /* the prepare step may give the weight's pages back: hand it a copy */
    kn_tensor wcopy = kt_tensor(w->dtype, w->rank, w->dims, w->data);
    void *wdata = wcopy.data;
    kn_tensor *ins[4] = {x, &wcopy, b, z};
    const kn_tensor *feeds[2];
    int n_feeds = 0;
    nd->n_in = z ? 4 : 3;
    nd->in = kn_arena_calloc(&m->arena, 4, sizeof(int));
    for (int i = 0; i < nd->n_in; i++) {
        nd->in[i] = -1;
        if (!ins[i])
            continue;
        nd->in[i] = kn_graph_value(g, names[i]);
        kn_value *v = &g->values[nd->in[i]];
        if (i == 1 || i == 2) {
            v->init = ins[i];
        } else {
            kn_graph_add_input(g, nd->in[i]);
            feeds[n_feeds++] = ins[i];
        }
    }
    nd->n_out = 1;
    nd->out = kn_arena_calloc(&m->arena, 1, sizeof(int));
    nd->out[0] = kn_graph_value(g, "y");
    kn_graph_add_output(g, nd->out[0]);
    nd->n_attr = n_attr;
    nd->attrs = kn_arena_calloc(&m->arena, (size_t)n_attr + 1, sizeof(kn_attr));
    memcpy(nd->attrs, attrs, sizeof(kn_attr) * (size_t)n_attr);
    kn_threadpool *pool = kn_threadpool_create(threads, &err);
    int rc = pool ? kn_model_finalize(m, &err) : KN_ERR_NOMEM;
    if (!rc)
        rc = kn_model_prepare(m, &err);
    CHECK(rc || nd->state != NULL || kn_attr_int(nd, "group", 1) > 1);
    kn_exec_env env = {pool, NULL};
    if (!rc)
        rc = kn_exec_graph_env(g, &env, n_feeds, feeds, 1, y, &err);
    if (rc)
        fprintf(stderr, "  (%s: %s)\n", op, err.msg);
    CHECK(!nd->state || strcmp(op, "Conv") || wcopy.data == NULL); /* Conv dropped it */
    kn_threadpool_free(pool);
    kn_model_free(m);
    wcopy.data = wdata; /* the prepare step may have cleared it */
    kn_tensor_release(&wcopy);
    return rc;
}

static void test_ops_prepared_pooled(void)
{
    int64_t dx[4] = {2, 6, 9, 8}, dw[4] = {4, 3, 3, 3}, db[1] = {4}, dy[4] = {2, 4, 5, 4};
    float *xv = rand_floats(2 * 6 * 9 * 8), *wv = rand_floats(4 * 3 * 3 * 3), *bv = rand_floats(4);
    float *zv = rand_floats(2 * 4 * 5 * 4);
    kn_tensor x = kt_view(KN_F32, 4, dx, xv), w = kt_view(KN_F32, 4, dw, wv);
    kn_tensor b = kt_view(KN_F32, 1, db, bv), z = kt_view(KN_F32, 4, dy, zv);
    int64_t strides[2] = {2, 2}, pads[4] = {1, 1, 1, 0};
    float clip[2] = {-0.3f, 0.4f};
    kn_attr at[] = {kt_attr_int("group", 2), kt_attr_ints("strides", 2, strides),
                    kt_attr_ints("pads", 4, pads), kt_attr_str("activation", "Clip"),
                    kt_attr_floats("activation_params", 2, clip)};
    /* Conv through the harness (no prepare, no pool) is the reference */
    kn_tensor ref = {0}, got = {0}, fused = {0};
    const kn_tensor *ins[3] = {&x, &w, &b};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Conv", 17, 3, ins, 3, at, 1, &ref, &err), KN_OK);
    for (int threads = 1; threads <= 3; threads += 2) {
        CHECK_EQ_INT(run_model("", "Conv", &x, &w, &b, NULL, at, 3, threads, &got), KN_OK);
        kt_check_f32_shaped(&got, 4, dy, ref.data, 1e-4);
        kn_tensor_release(&got);
        CHECK_EQ_INT(run_model("com.microsoft", "FusedConv", &x, &w, &b, &z, at, 5, threads, &fused),
                     KN_OK);
        float *want = malloc(sizeof(float) * (size_t)ref.numel);
        for (int64_t i = 0; i < ref.numel; i++) {
            float v = ((float *)ref.data)[i] + zv[i];
            want[i] = v < clip[0] ? clip[0] : v > clip[1] ? clip[1] : v;
        }
        kt_check_f32_shaped(&fused, 4, dy, want, 1e-4);
        free(want);
        kn_tensor_release(&fused);
    }
    kn_tensor_release(&ref);
    free(xv);
    free(wv);
    free(bv);
    free(zv);
}

static void test_conv_transpose_prepared_pooled(void)
{
    int64_t dx[4] = {2, 6, 5, 4}, dw[4] = {6, 2, 3, 3}, db[1] = {4};
    float *xv = rand_floats(2 * 6 * 5 * 4), *wv = rand_floats(6 * 2 * 3 * 3), *bv = rand_floats(4);
    kn_tensor x = kt_view(KN_F32, 4, dx, xv), w = kt_view(KN_F32, 4, dw, wv), b = kt_view(KN_F32, 1, db, bv);
    int64_t strides[2] = {2, 2}, pads[4] = {1, 0, 0, 1}, opad[2] = {1, 0};
    kn_attr at[] = {kt_attr_int("group", 2), kt_attr_ints("strides", 2, strides),
                    kt_attr_ints("pads", 4, pads), kt_attr_ints("output_padding", 2, opad)};
    kn_tensor ref = {0}, got = {0};
    const kn_tensor *ins[3] = {&x, &w, &b};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("ConvTranspose", 17, 3, ins, KT_COUNT(at), at, 1, &ref, &err), KN_OK);
    /* (5-1)*2 + 3 - 1 + 1 = 11 rows, (4-1)*2 + 3 - 1 = 8 columns */
    int64_t dy[4] = {2, 4, 11, 8};
    for (int threads = 1; threads <= 3; threads += 2) {
        CHECK_EQ_INT(run_model("", "ConvTranspose", &x, &w, &b, NULL, at, KT_COUNT(at), threads, &got),
                     KN_OK);
        kt_check_f32_shaped(&got, 4, dy, ref.data, 1e-5);
        kn_tensor_release(&got);
    }
    kn_tensor_release(&ref);
    free(xv);
    free(wv);
    free(bv);
}

/* 1-D Conv / ConvTranspose in float32 (fast kernels) against float64 (reference). */
static void check_1d_against_f64(const char *op, int64_t C, int64_t M, int64_t group, int64_t w_rows,
                                 int64_t w_cols)
{
    int64_t dx[3] = {2, C, 13}, dw[3] = {w_rows, w_cols, 4};
    double xv[2 * 16 * 13], wv[16 * 16 * 4];
    for (int i = 0; i < 2 * C * 13; i++)
        xv[i] = frand();
    for (int i = 0; i < w_rows * w_cols * 4; i++)
        wv[i] = frand();
    int64_t strides[1] = {2}, dil[1] = {2}, pads[2] = {3, 1};
    kn_attr at[] = {kt_attr_int("group", group), kt_attr_ints("strides", 1, strides),
                    kt_attr_ints("dilations", 1, dil), kt_attr_ints("pads", 2, pads)};
    kn_tensor y32 = {0}, y64 = {0};
    kn_error err;
    for (int f = 0; f < 2; f++) {
        kn_dtype dt = f ? KN_F64 : KN_F32;
        kn_tensor x = kt_tensor_f64(dt, 3, dx, xv), w = kt_tensor_f64(dt, 3, dw, wv);
        const kn_tensor *ins[2] = {&x, &w};
        CHECK_EQ_INT(kt_run_op(op, 17, 2, ins, KT_COUNT(at), at, 1, f ? &y64 : &y32, &err), KN_OK);
        kn_tensor_release(&x);
        kn_tensor_release(&w);
    }
    CHECK_EQ_INT(y32.numel, y64.numel);
    CHECK(y32.numel > 0 && y32.dims[1] == M);
    for (int64_t i = 0; i < y32.numel && y32.numel == y64.numel; i++)
        CHECK_NEAR(kt_at(&y32, i), kt_at(&y64, i), 1e-4);
    kn_tensor_release(&y32);
    kn_tensor_release(&y64);
}

static void test_1d_against_f64(void)
{
    check_1d_against_f64("Conv", 6, 4, 2, 4, 3);          /* grouped */
    check_1d_against_f64("Conv", 5, 5, 5, 5, 1);          /* depthwise */
    check_1d_against_f64("ConvTranspose", 6, 4, 2, 6, 2); /* grouped transposed */
}

static kt_node fused_node(const kn_tensor *x, const kn_tensor *w, const kn_tensor *z)
{
    kt_node n = kt_node_of("com.microsoft", "FusedConv", 1, 1);
    kt_add_input(&n, x);
    kt_add_input(&n, w);
    kt_add_input(&n, NULL);
    if (z)
        kt_add_input(&n, z);
    return n;
}

static void test_fused_conv_checks(void)
{
    int64_t dx[4] = {1, 2, 4, 4}, dw[4] = {3, 2, 3, 3}, dz[4] = {1, 3, 2, 2}, dbad[4] = {1, 3, 2, 3};
    float *xv = rand_floats(32), *wv = rand_floats(54), *zv = rand_floats(12);
    kn_tensor x = kt_view(KN_F32, 4, dx, xv), w = kt_view(KN_F32, 4, dw, wv);
    kn_tensor z = kt_view(KN_F32, 4, dz, zv), zbad = kt_view(KN_F32, 4, dbad, zv);
    float one[1] = {0.5f};
    kt_node n = fused_node(&x, &w, &zbad);
    kt_expect_fail(&n, KN_ERR_ARG); /* Z of the wrong shape */
    n = fused_node(&x, &w, &z);
    kt_add_attr(&n, kt_attr_str("activation", "Clip"));
    kt_add_attr(&n, kt_attr_floats("activation_params", 1, one));
    kt_expect_fail(&n, KN_ERR_ARG); /* Clip needs two params */
    n = fused_node(&x, &w, &z);
    kt_add_attr(&n, kt_attr_str("activation", "Gelu"));
    kt_expect_fail(&n, KN_ERR_UNSUPPORTED);
    /* LeakyRelu with a residual equals Conv + Z then LeakyRelu */
    n = fused_node(&x, &w, &z);
    kt_add_attr(&n, kt_attr_str("activation", "LeakyRelu"));
    kt_add_attr(&n, kt_attr_floats("activation_params", 1, one));
    kn_tensor y = kt_expect_ok(&n), ref = {0};
    const kn_tensor *ins[2] = {&x, &w};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("Conv", 17, 2, ins, 0, NULL, 1, &ref, &err), KN_OK);
    float want[12];
    for (int i = 0; i < 12 && ref.numel == 12; i++) {
        float v = ((float *)ref.data)[i] + zv[i];
        want[i] = v < 0 ? 0.5f * v : v;
    }
    kt_check_f32_shaped(&y, 4, dz, want, 1e-5);
    kn_tensor_release(&y);
    kn_tensor_release(&ref);
    free(xv);
    free(wv);
    free(zv);
}

int main(void)
{
    static const kt_case cases[] = {
        TEST_CASE(test_act_values),
        TEST_CASE(test_dw_plane_shapes),
        TEST_CASE(test_dw_plane_too_big),
        TEST_CASE(test_im2col_tile),
        TEST_CASE(test_pw_tile_kernels),
        TEST_CASE(test_direct_row_kernels),
        TEST_CASE(test_conv2d_against_naive),
        TEST_CASE(test_convt2d_against_naive),
        TEST_CASE(test_ops_prepared_pooled),
        TEST_CASE(test_conv_transpose_prepared_pooled),
        TEST_CASE(test_1d_against_f64),
        TEST_CASE(test_fused_conv_checks),
    };
    return kt_run(cases, KT_COUNT(cases));
}
