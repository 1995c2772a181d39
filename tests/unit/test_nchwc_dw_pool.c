/* test_nchwc_dw_pool.c - the blocked-layout (NCHWc16) depthwise conv, pools and
 * reorders of kernels/nchwc.h: reorders against plain index definitions and a
 * round trip; the depthwise reference against an NCHW depthwise written here,
 * the AVX-512 driver against the reference; the pools against kiln's own NCHW
 * MaxPool / AveragePool / GlobalAveragePool operators; each fast path with a
 * 2-thread pool against none, and the padding channels zero, on awkward shapes
 * (channels 1..40, sizes 1..13, strides, asymmetric pads, dilation, batch 2). */
#include "test.h"
#include "nchwc_test.h"

#include <stdlib.h>

#include "exec/threadpool.h"
#include "kernels/nchwc_internal.h"
#include "op_harness.h"

static uint32_t g_seed = 0x2468aceu;

static float rnd(void)
{
    return (float)(kt_xorshift32(&g_seed) % 20001) / 10000.0f - 1.0f;
}

static float *fvec(int64_t n)
{
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = rnd();
    return v;
}

static kn_threadpool *pool2(void)
{
    kn_error err;
    return kn_threadpool_create(2, &err);
}

/* Plain blocked <-> NCHW by index (the definitions the kernels must meet):
 * kt_to_blocked, and its inverse at one element. */
static float blocked_at(const float *y, int64_t c, int64_t hw, int64_t i, int64_t ch, int64_t p)
{
    int64_t cp = kn_nchwc_padded(c);
    return y[((i * cp + ch / 16 * 16) * hw + p * 16) + ch % 16];
}

/* Every padding channel of a blocked [n][Cp][hw] tensor holds +0. */
static int padding_zero(const float *y, int64_t n, int64_t c, int64_t hw)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = c; ch < kn_nchwc_padded(c); ch++)
            for (int64_t p = 0; p < hw; p++)
                if (blocked_at(y, kn_nchwc_padded(c), hw, i, ch, p) != 0.0f)
                    return 0;
    return 1;
}

static int same_bits(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* |a - b| <= tol * (1 + |b|) everywhere (NaN matches NaN, inf the same inf). */
static int close_all(const float *a, const float *b, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]) || isinf(a[i]) || isinf(b[i])) {
            if (!(isnan(a[i]) && isnan(b[i])) && a[i] != b[i])
                return fprintf(stderr, "  at %lld: %g vs %g\n", (long long)i, a[i], b[i]), 0;
            continue;
        }
        if (fabs((double)a[i] - b[i]) > tol * (1.0 + fabs((double)b[i])))
            return fprintf(stderr, "  at %lld: %.9g vs %.9g\n", (long long)i, a[i], b[i]), 0;
    }
    return 1;
}

/* ------------------------------------------------------------- reorders */

static void check_reorder(kn_threadpool *pool, int64_t n, int64_t c, int64_t hw)
{
    int64_t cp = kn_nchwc_padded(c);
    float *x = fvec(n * c * hw), *want = kt_to_blocked(x, n, c, hw);
    float *y = malloc(sizeof(float) * (size_t)(n * cp * hw + 1));
    float *back = malloc(sizeof(float) * (size_t)(n * c * hw + 1));
    memset(y, 0x7f, sizeof(float) * (size_t)(n * cp * hw)); /* garbage in the padding */
    kn_nchwc_from_nchw(pool, x, n, c, hw, y);
    CHECK(same_bits(y, want, n * cp * hw));
    kn_nchwc_to_nchw(pool, y, n, c, hw, back);
    CHECK(same_bits(back, x, n * c * hw));
    free(x), free(want), free(y), free(back);
}

static void test_reorder(void)
{
    static const int64_t cs[] = {1, 3, 15, 16, 17, 24, 40};
    static const int64_t hws[] = {1, 2, 5, 7, 13, 16, 49, 100, 513, 1100};
    kn_threadpool *p2 = pool2();
    for (int64_t n = 1; n <= 2; n++)
        for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
            for (size_t k = 0; k < sizeof hws / sizeof *hws; k++) {
                check_reorder(NULL, n, cs[i], hws[k]);
                check_reorder(p2, n, cs[i], hws[k]);
            }
    kn_threadpool_free(p2);
}

/* ------------------------------------------------------------ depthwise */

typedef struct dw_case {
    int64_t batch, c, ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
} dw_case;

static kn_nchwc_conv dw_geom(const dw_case *t)
{
    kn_nchwc_conv g = {t->batch, t->c, t->c, t->c, t->ih, t->iw, 0, 0,
                       t->kh, t->kw, t->sh, t->sw, t->dh, t->dw, t->pt, t->pl};
    g.oh = (t->ih + t->pt + t->pb - (t->kh - 1) * t->dh - 1) / t->sh + 1;
    g.ow = (t->iw + t->pl + t->pr - (t->kw - 1) * t->dw - 1) / t->sw + 1;
    return g;
}

/* NCHW depthwise in double: y[n][c][oy][ox] = act(bias + taps + z). */
static void dw_nchw(const kn_nchwc_conv *g, const float *x, const float *w, const float *bias,
                    const float *z, const kn_conv_act *act, float *y)
{
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t c = 0; c < g->channels; c++)
            for (int64_t oy = 0; oy < g->oh; oy++)
                for (int64_t ox = 0; ox < g->ow; ox++) {
                    double acc = bias[c];
                    for (int64_t ky = 0; ky < g->kh; ky++)
                        for (int64_t kx = 0; kx < g->kw; kx++) {
                            int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                            int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                            if (iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw)
                                acc += (double)w[(c * g->kh + ky) * g->kw + kx] *
                                       x[((n * g->channels + c) * g->ih + iy) * g->iw + ix];
                        }
                    int64_t o = ((n * g->channels + c) * g->oh + oy) * g->ow + ox;
                    y[o] = kn_conv_act_one(act, (float)acc + (z ? z[o] : 0.0f));
                }
}

static void free_weights(kn_nchwc_weights *w)
{
    free(w->w);
    free(w->bias);
    free(w);
}

/* Blocked outputs of the reference, the AVX-512 driver (no pool, 2 threads) and
 * the generic driver, checked against the NCHW depthwise and each other. */
static void check_dw(const dw_case *t, const kn_conv_act *act, int with_z, kn_threadpool *p2)
{
    int before = kt_failures;
    kn_nchwc_conv g = dw_geom(t);
    int64_t cp = kn_nchwc_padded(t->c), ohw = g.oh * g.ow, ny = t->batch * cp * ohw;
    float *x = fvec(t->batch * t->c * t->ih * t->iw), *w = fvec(t->c * t->kh * t->kw);
    float *bias = fvec(t->c), *z = fvec(t->batch * t->c * ohw);
    float *want = malloc(sizeof(float) * (size_t)(t->batch * t->c * ohw));
    dw_nchw(&g, x, w, bias, with_z ? z : NULL, act, want);
    float *xb = kt_to_blocked(x, t->batch, t->c, t->ih * t->iw), *zb = kt_to_blocked(z, t->batch, t->c, ohw);
    float *wantb = kt_to_blocked(want, t->batch, t->c, ohw);
    kn_nchwc_weights *pw = kn_nchwc_dw_pack(&g, w, bias);
    float *y[4];
    for (int i = 0; i < 4; i++) {
        y[i] = malloc(sizeof(float) * (size_t)ny);
        memset(y[i], 0xff, sizeof(float) * (size_t)ny); /* NaN garbage */
    }
    kn_nchwc_conv_args a = {&g, pw, xb, with_z ? zb : NULL, *act, y[0]};
    kn_nchwc_dw_reference(&a);
    a.y = y[1];
    kn_nchwc_dw_run(NULL, KN_ISA_AVX512, &a);
    a.y = y[2];
    kn_nchwc_dw_run(p2, KN_ISA_AVX512, &a);
    a.y = y[3];
    kn_nchwc_dw_run(p2, KN_ISA_GENERIC, &a);
    CHECK(close_all(y[0], wantb, ny, 1e-6));
    CHECK(close_all(y[1], y[0], ny, 1e-5));
    CHECK(same_bits(y[2], y[1], ny));
    CHECK(same_bits(y[3], y[0], ny));
    for (int i = 0; i < 4; i++)
        CHECK(padding_zero(y[i], t->batch, t->c, ohw));
    if (kt_failures > before)
        fprintf(stderr, "  dw case c %lld %lldx%lld k %lldx%lld s %lld,%lld d %lld,%lld act %d z %d\n",
                (long long)t->c, (long long)t->ih, (long long)t->iw, (long long)t->kh,
                (long long)t->kw, (long long)t->sh, (long long)t->sw, (long long)t->dh,
                (long long)t->dw, (int)act->kind, with_z);
    for (int i = 0; i < 4; i++)
        free(y[i]);
    free_weights(pw);
    free(x), free(w), free(bias), free(z), free(want), free(xb), free(zb), free(wantb);
}

static void test_dw_pack(void)
{
    kn_nchwc_conv g = {1, 17, 17, 17, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1};
    float w[17 * 9], bias[17];
    for (int i = 0; i < 17 * 9; i++)
        w[i] = (float)i;
    for (int i = 0; i < 17; i++)
        bias[i] = (float)-i;
    kn_nchwc_weights *p = kn_nchwc_dw_pack(&g, w, bias);
    CHECK(p && ((uintptr_t)p->w % 64) == 0 && ((uintptr_t)p->bias % 64) == 0);
    if (!p)
        return;
    CHECK(p->w[9 * 16 + 0] == w[16 * 9]);     /* channel 16, tap 0: block 1 lane 0 */
    CHECK(p->w[5 * 16 + 3] == w[3 * 9 + 5]);  /* channel 3, tap 5 */
    CHECK(p->w[9 * 16 + 4 * 16 + 1] == 0.0f); /* padding channel 17 */
    CHECK(p->bias[16] == -16.0f && p->bias[17] == 0.0f && p->bias[31] == 0.0f);
    free_weights(p);
    g.m = 16; /* not depthwise */
    CHECK(kn_nchwc_dw_pack(&g, w, bias) == NULL);
}

static void test_dw_shapes(void)
{
    static const dw_case cases[] = {
        {1, 1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   {2, 3, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 15, 13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, {1, 16, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 17, 13, 13, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2}, {1, 24, 13, 13, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2},
        {1, 40, 13, 7, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},  {1, 17, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 24, 13, 13, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1}, {1, 17, 13, 13, 3, 5, 1, 2, 1, 1, 0, 2, 1, 1},
        {2, 16, 12, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 15, 5, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 3, 7, 13, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3},   {1, 16, 13, 13, 3, 3, 2, 2, 2, 2, 1, 0, 2, 3},
        {1, 17, 5, 1, 3, 1, 1, 1, 1, 1, 1, 0, 1, 0},   {1, 16, 28, 28, 5, 5, 2, 2, 1, 1, 1, 2, 2, 1},
        {1, 17, 5, 40, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  {2, 40, 3, 37, 3, 5, 1, 1, 1, 1, 1, 2, 1, 2},
        {1, 17, 60, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, /* rows split over several tasks */
        {1, 16, 9, 11, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1},  /* stride 3: the per-pixel path */
    };
    static const kn_conv_act acts[] = {{KN_CONV_ACT_NONE, 0, 0},
                                       {KN_CONV_ACT_RELU, 0, 0},
                                       {KN_CONV_ACT_CLIP, 0.25f, 6.0f},
                                       {KN_CONV_ACT_SIGMOID, 0, 0}};
    kn_threadpool *p2 = pool2();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int a = 0; a < 4; a++)
            check_dw(&cases[i], &acts[a], (int)(i + (size_t)a) % 2, p2);
    kn_threadpool_free(p2);
}

/* ---------------------------------------------------------------- pools */

typedef struct pool_case {
    int64_t batch, c, ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int ceil_mode;
} pool_case;

/* The ONNX output length (with ceil_mode a window starting in the end padding
 * is dropped), written out here from the spec. */
static int64_t out_len(int64_t in, int64_t pb, int64_t pe, int64_t ext, int64_t s, int ceil_mode)
{
    int64_t span = in + pb + pe - ext;
    if (!ceil_mode)
        return span / s + 1;
    int64_t out = (span + s - 1) / s + 1;
    return (out - 1) * s >= in + pb ? out - 1 : out;
}

static kn_nchwc_pool pool_geom(const pool_case *t, int is_max, int cip)
{
    kn_nchwc_pool p = {t->batch, t->c, t->ih, t->iw, 0, 0, t->kh, t->kw, t->sh, t->sw,
                       t->dh, t->dw, t->pt, t->pl, t->pb, t->pr, is_max, cip};
    p.oh = out_len(t->ih, t->pt, t->pb, (t->kh - 1) * t->dh + 1, t->sh, t->ceil_mode);
    p.ow = out_len(t->iw, t->pl, t->pr, (t->kw - 1) * t->dw + 1, t->sw, t->ceil_mode);
    return p;
}

/* kiln's NCHW operator on x; NULL when it fails or its shape differs from p's. */
static float *pool_op(const pool_case *t, const kn_nchwc_pool *p, const float *x)
{
    int64_t xd[4] = {t->batch, t->c, t->ih, t->iw}, ks[2] = {t->kh, t->kw};
    int64_t st[2] = {t->sh, t->sw}, dl[2] = {t->dh, t->dw}, pads[4] = {t->pt, t->pl, t->pb, t->pr};
    kn_tensor tx = kt_view(KN_F32, 4, xd, (void *)x), y = {0};
    const kn_tensor *ins[1] = {&tx};
    kn_attr at[6] = {kt_attr_ints("kernel_shape", 2, ks), kt_attr_ints("strides", 2, st),
                     kt_attr_ints("dilations", 2, dl),    kt_attr_ints("pads", 4, pads),
                     kt_attr_int("ceil_mode", t->ceil_mode),
                     kt_attr_int("count_include_pad", p->count_include_pad)};
    kn_error err;
    int rc = kt_run_op(p->is_max ? "MaxPool" : "AveragePool", 19, 1, ins, p->is_max ? 5 : 6, at,
                       1, &y, &err);
    float *out = NULL;
    if (rc == KN_OK && y.dims[2] == p->oh && y.dims[3] == p->ow) {
        out = malloc(sizeof(float) * (size_t)(y.numel + 1));
        memcpy(out, y.data, sizeof(float) * (size_t)y.numel);
    }
    if (rc == KN_OK)
        kn_tensor_release(&y);
    else
        fprintf(stderr, "  pool op failed: %s\n", err.msg);
    return out;
}

static void check_pool(const pool_case *t, int is_max, int cip, kn_threadpool *p2, int nan)
{
    int before = kt_failures;
    kn_nchwc_pool p = pool_geom(t, is_max, cip);
    int64_t cp = kn_nchwc_padded(t->c), ohw = p.oh * p.ow, ny = t->batch * cp * ohw;
    float *x = fvec(t->batch * t->c * t->ih * t->iw);
    if (nan)
        x[t->ih * t->iw / 2] = NAN, x[t->ih * t->iw * t->c - 1] = NAN;
    float *want = pool_op(t, &p, x), *xb = kt_to_blocked(x, t->batch, t->c, t->ih * t->iw);
    CHECK(want != NULL);
    float *wantb = want ? kt_to_blocked(want, t->batch, t->c, ohw) : NULL, *y[3];
    for (int i = 0; i < 3; i++) {
        y[i] = malloc(sizeof(float) * (size_t)ny);
        memset(y[i], 0xff, sizeof(float) * (size_t)ny);
    }
    kn_nchwc_pool_reference(&p, xb, y[0]);
    kn_nchwc_pool_run(NULL, KN_ISA_AVX512, &p, xb, y[1]);
    kn_nchwc_pool_run(p2, KN_ISA_AVX512, &p, xb, y[2]);
    /* dilated averages: pool.c sums in double there */
    if (wantb)
        CHECK(close_all(y[0], wantb, ny, t->dh * t->dw > 1 && !is_max ? 1e-6 : 0.0));
    CHECK(same_bits(y[1], y[0], ny) || close_all(y[1], y[0], ny, 0.0));
    CHECK(same_bits(y[2], y[1], ny));
    for (int i = 0; i < 3; i++)
        CHECK(padding_zero(y[i], t->batch, t->c, ohw));
    if (kt_failures > before)
        fprintf(stderr, "  pool case c %lld %lldx%lld k %lldx%lld s %lld d %lld ceil %d max %d cip %d\n",
                (long long)t->c, (long long)t->ih, (long long)t->iw, (long long)t->kh,
                (long long)t->kw, (long long)t->sh, (long long)t->dh, t->ceil_mode, is_max, cip);
    for (int i = 0; i < 3; i++)
        free(y[i]);
    free(x), free(want), free(xb), free(wantb);
}

static void test_pools(void)
{
    static const pool_case cases[] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},   {2, 3, 5, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0},
        {1, 15, 13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1}, {1, 16, 7, 7, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1},
        {2, 17, 13, 5, 3, 2, 1, 2, 1, 1, 1, 0, 2, 1, 1},  {1, 24, 13, 13, 3, 3, 2, 2, 2, 2, 1, 2, 2, 1, 0},
        {1, 40, 7, 13, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 0},  {1, 17, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},
        {1, 16, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1},   {1, 17, 13, 13, 3, 3, 3, 3, 2, 1, 0, 1, 1, 0, 1},
        {1, 3, 7, 7, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 0},    {1, 24, 12, 12, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 0},
    };
    kn_threadpool *p2 = pool2();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_pool(&cases[i], 1, 0, p2, 0);
        check_pool(&cases[i], 1, 0, p2, 1);
        check_pool(&cases[i], 0, 0, p2, 0);
        check_pool(&cases[i], 0, 1, p2, 0);
    }
    kn_threadpool_free(p2);
}

/* A window lying wholly in the padding: max -inf, average 0 (both as pool.c). */
static void test_pool_empty_window(void)
{
    pool_case t = {1, 17, 3, 3, 2, 2, 3, 3, 1, 1, 2, 2, 0, 0, 0};
    check_pool(&t, 1, 0, NULL, 0);
    check_pool(&t, 0, 0, NULL, 0);
    check_pool(&t, 0, 1, NULL, 0);
    kn_nchwc_pool p = pool_geom(&t, 1, 0);
    float *x0 = fvec(17 * 9), *x = kt_to_blocked(x0, 1, 17, 9), *y = malloc(sizeof(float) * 32 * 4);
    kn_nchwc_pool_run(NULL, KN_ISA_AVX512, &p, x, y);
    /* pixel 0 of block 1: lane 0 (channel 16) -inf, lane 1 (padding) zero */
    CHECK(p.oh == 2 && isinf(y[64]) && y[64] < 0 && y[65] == 0.0f);
    free(x0), free(x), free(y);
}

static void check_global(int64_t n, int64_t c, int64_t hw, kn_threadpool *p2)
{
    float *x = fvec(n * c * hw), *xb = kt_to_blocked(x, n, c, hw);
    int64_t cp = kn_nchwc_padded(c), xd[4] = {n, c, hw, 1};
    float *y[3];
    for (int i = 0; i < 3; i++)
        y[i] = malloc(sizeof(float) * (size_t)(n * cp));
    kn_nchwc_global_avg(NULL, KN_ISA_GENERIC, xb, n, c, hw, y[0]);
    kn_nchwc_global_avg(NULL, KN_ISA_AVX512, xb, n, c, hw, y[1]);
    kn_nchwc_global_avg(p2, KN_ISA_AVX512, xb, n, c, hw, y[2]);
    CHECK(same_bits(y[1], y[0], n * cp) && same_bits(y[2], y[0], n * cp));
    kn_tensor tx = kt_view(KN_F32, 4, xd, x), out = {0};
    const kn_tensor *ins[1] = {&tx};
    kn_error err;
    CHECK_EQ_INT(kt_run_op("GlobalAveragePool", 1, 1, ins, 0, NULL, 1, &out, &err), KN_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < cp; ch++) {
            float v = y[0][i * cp + ch];
            if (ch >= c)
                CHECK(v == 0.0f);
            else
                CHECK_NEAR(v, kt_at(&out, i * c + ch), 1e-6 * (1 + fabs(v)));
        }
    kn_tensor_release(&out);
    for (int i = 0; i < 3; i++)
        free(y[i]);
    free(x), free(xb);
}

static void test_global_avg(void)
{
    static const int64_t cs[] = {1, 3, 15, 16, 17, 24, 40};
    static const int64_t hws[] = {1, 2, 3, 5, 7, 49, 169};
    kn_threadpool *p2 = pool2();
    for (int64_t n = 1; n <= 2; n++)
        for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
            for (size_t k = 0; k < sizeof hws / sizeof *hws; k++)
                check_global(n, cs[i], hws[k], p2);
    kn_threadpool_free(p2);
}

TEST_MAIN(TEST_CASE(test_reorder), TEST_CASE(test_dw_pack), TEST_CASE(test_dw_shapes),
          TEST_CASE(test_pools), TEST_CASE(test_pool_empty_window), TEST_CASE(test_global_avg))
