/* test_conv_winograd.c - the Winograd F(2x2, 3x3) conv path (conv_winograd.c)
 * against a plain double-precision direct conv on awkward shapes: images of 1x1,
 * 2x2, odd and ResNet sizes, pads 0 / 1 / one-sided, 16 / 17 / 64 input channels,
 * 16 / 33 outputs, batch 1 and 3, with and without bias, residual z, Relu / Clip /
 * a non-clamp activation, with the AVX-512, AVX2 and plain C transforms; the
 * transform row-run kernels of each ISA against the plain C ones on tails and
 * image edges; the weight transform against G g G^T; the algorithm choice; and
 * pools of 1 and 3 threads giving identical results.  The tolerance
 * is relative to sum |w| |x| per output (Winograd reassociates the sums). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "test.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/conv_kernels.h"

static unsigned g_seed = 777;

static float next_rand(void)
{
    kt_lcg32(&g_seed);
    return (float)((g_seed >> 9) & 0xFFFF) / 32768.0f - 1.0f;
}

static float *random_array(int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; p && i < n; i++)
        p[i] = next_rand();
    return p;
}

/* ---- weight transform ---- */

static void test_weight_tile(void)
{
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    float g[9], u[16];
    for (int i = 0; i < 9; i++)
        g[i] = next_rand();
    kn_wino_weight_tile(g, u);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            double s = 0;
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    s += G[r][i] * g[i * 3 + j] * G[c][j];
            CHECK_NEAR(u[r * 4 + c], s, 1e-6);
        }
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst || d != d ? d : worst;
    }
    return worst;
}

/* ---- row-run kernels: every ISA against the plain C ones ---- */

static void check_input_run(kn_wino_in_fn fn, int64_t iw, int64_t ix0, int64_t n, int null_row)
{
    float *x = random_array(4 * iw), out[2][16 * 50];
    kn_wino_in_run r = {{x, x + iw, x + 2 * iw, x + 3 * iw}, iw, ix0, n, NULL, 50};
    if (null_row >= 0)
        r.rows[null_row] = NULL;
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 16 * 50; i++)
            out[k][i] = -7.0f; /* untouched past n */
        r.v = out[k];
        (k ? fn : kn_wino_input_generic)(&r);
    }
    CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0);
    free(x);
}

static void check_output_run(kn_wino_out_fn fn, int64_t n, int64_t cols, bool two_rows,
                             bool with_z)
{
    float *m = random_array(16 * 40), *z = random_array(2 * 80), y[2][2][80];
    kn_wino_out_run r = {m, 40, n, cols, {NULL, NULL}, {NULL, NULL}, 0.25f, -0.5f, 0.75f};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 2 * 80; i++)
            y[k][i / 80][i % 80] = -7.0f;
        r.y[0] = y[k][0];
        r.y[1] = two_rows ? y[k][1] : NULL;
        r.z[0] = with_z ? z : NULL;
        r.z[1] = with_z ? z + 80 : NULL;
        (k ? fn : kn_wino_output_generic)(&r);
    }
    CHECK(memcmp(y[0], y[1], sizeof y[0]) == 0);
    free(m);
    free(z);
}

/* Every ISA's run kernels the CPU can run, on run lengths, offsets and widths
 * around the vector widths, with each input row missing in turn. */
static void test_run_kernels(void)
{
    static const int64_t runs[][3] = {{1, 0, 1}, {4, 0, 1}, {5, 1, 2}, {7, 0, 3}, {33, 1, 16},
                                      {34, 0, 17}, {57, 1, 28}, {60, 3, 20}, {90, 1, 44},
                                      {18, 0, 9}, {19, 1, 8}};
    struct { kn_isa isa; kn_wino_in_fn in; kn_wino_out_fn out; } isas[] = {
        {KN_ISA_AVX2, kn_wino_input_avx2(), kn_wino_output_avx2()},
        {KN_ISA_AVX512, kn_wino_input_avx512(), kn_wino_output_avx512()},
    };
    for (int q = 0; q < 2; q++) {
        if (kn_cpu_isa_supported() < isas[q].isa || !isas[q].in || !isas[q].out) {
            printf("  (no %s transform kernels on this CPU / build)\n", kn_isa_name(isas[q].isa));
            continue;
        }
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
            for (int nr = -1; nr < 4; nr++)
                check_input_run(isas[q].in, runs[i][0], runs[i][1], runs[i][2], nr);
        for (int64_t n = 1; n <= 40; n += 3)
            for (int64_t cols = 2 * n - 1; cols <= 2 * n; cols++)
                for (int v = 0; v < 4; v++)
                    check_output_run(isas[q].out, n, cols, v & 1, v & 2);
    }
}

/* ---- whole convs ---- */

typedef struct wino_case {
    int64_t batch, C, m, ih, iw, pt, pl, pb, pr;
} wino_case;

/* y = act(bias + z + conv) in double, and mag = sum |w||x| + |bias| + |z| per output. */
static void reference(const kn_conv2d_args *a, double *y, double *mag)
{
    const kn_conv2d_geom *g = &a->g;
    int64_t P = g->oh * g->ow;
    for (int64_t n = 0; n < a->batch; n++)
        for (int64_t o = 0; o < a->m; o++)
            for (int64_t p = 0; p < P; p++) {
                int64_t oy = p / g->ow, ox = p % g->ow, q = (n * a->m + o) * P + p;
                double s = a->bias ? a->bias[o] : 0, s_abs = fabs(s);
                for (int64_t c = 0; c < g->channels; c++)
                    for (int64_t k = 0; k < 9; k++) {
                        int64_t iy = oy - g->pt + k / 3, ix = ox - g->pl + k % 3;
                        if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw)
                            continue;
                        double w = a->w[(o * g->channels + c) * 9 + k];
                        double x = a->x[((n * g->channels + c) * g->ih + iy) * g->iw + ix];
                        s += w * x;
                        s_abs += fabs(w * x);
                    }
                if (a->z) {
                    s += a->z[q];
                    s_abs += fabs(a->z[q]);
                }
                y[q] = kn_conv_act_one(&a->act, (float)s);
                mag[q] = s_abs;
            }
}

/* The outputs of a (in a new array) run over pool at kernel level isa. */
static float *run_with(kn_threadpool *pool, kn_isa isa, const kn_conv2d_args *a, int64_t ny)
{
    kn_conv2d_args b = *a;
    size_t need = kn_conv2d_scratch_floats(a, kn_threadpool_size(pool));
    float *scratch = need && need != SIZE_MAX ? aligned_alloc(64, (need * 4 + 63) / 64 * 64) : NULL;
    b.y = malloc(sizeof(float) * (size_t)ny);
    CHECK(need != SIZE_MAX && b.y);
    CHECK_EQ_INT(kn_conv2d_run(pool, isa, &b, scratch, need), KN_OK);
    free(scratch);
    return b.y;
}

static void check_case(const wino_case *t, int variant, kn_threadpool *pool3)
{
    int64_t oh = t->ih + t->pt + t->pb - 2, ow = t->iw + t->pl + t->pr - 2;
    kn_conv2d_geom g = {t->C, t->ih, t->iw, oh, ow, 3, 3, 1, 1, 1, 1, t->pt, t->pl};
    int64_t nx = t->batch * t->C * t->ih * t->iw, ny = t->batch * t->m * oh * ow;
    static const kn_conv_act acts[] = {{KN_CONV_ACT_NONE, 0, 0},
                                       {KN_CONV_ACT_RELU, 0, 0},
                                       {KN_CONV_ACT_CLIP, -0.3f, 0.6f},
                                       {KN_CONV_ACT_LEAKY_RELU, 0.1f, 0}};
    float *x = random_array(nx), *w = random_array(t->m * t->C * 9);
    float *bias = variant & 1 ? random_array(t->m) : NULL;
    float *z = variant & 2 ? random_array(ny) : NULL;
    double *ref = malloc(sizeof(double) * (size_t)ny), *mag = malloc(sizeof(double) * (size_t)ny);
    kn_wino_weights *ww = kn_wino_pack(kn_cpu_isa(), w, t->m, t->C);
    kn_conv2d_args a = {g, t->batch, 1, t->m, x, w, bias, z, NULL, acts[variant % 4], NULL, ww};
    CHECK(ww != NULL);
    CHECK_EQ_INT(kn_conv2d_algo(&a), KN_CONV_ALGO_WINOGRAD);
    reference(&a, ref, mag);
    float *y1 = run_with(NULL, kn_cpu_isa(), &a, ny), *y3 = run_with(pool3, kn_cpu_isa(), &a, ny);
    float *yg = run_with(NULL, KN_ISA_GENERIC, &a, ny); /* the plain transforms */
    float *y2 = run_with(NULL, KN_ISA_AVX2, &a, ny);    /* AVX2 where the CPU has it */
    int64_t bad = 0;
    for (int64_t i = 0; i < ny; i++) {
        if (!(fabs(y1[i] - ref[i]) <= 2e-6 * mag[i] + 1e-6) && bad++ < 3)
            fprintf(stderr, "  case C=%lld m=%lld %lldx%lld pads %lld,%lld,%lld,%lld batch %lld "
                            "variant %d: y[%lld] = %g, want %g\n",
                    (long long)t->C, (long long)t->m, (long long)t->ih, (long long)t->iw,
                    (long long)t->pt, (long long)t->pl, (long long)t->pb, (long long)t->pr,
                    (long long)t->batch, variant, (long long)i, y1[i], ref[i]);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(memcmp(y1, y3, sizeof(float) * (size_t)ny) == 0);
    CHECK(max_abs_diff(y1, yg, ny) <= 1e-5);
    CHECK(max_abs_diff(y1, y2, ny) <= 1e-5);
    free(yg);
    free(y2);
    free(y1);
    free(y3);
    kn_wino_free(ww);
    free(x);
    free(w);
    free(bias);
    free(z);
    free(ref);
    free(mag);
}

static void test_against_reference(void)
{
    static const wino_case cases[] = {
        {1, 16, 16, 1, 1, 1, 1, 1, 1},    {1, 17, 33, 2, 2, 1, 1, 1, 1},
        {3, 16, 16, 2, 2, 1, 1, 0, 0},    {1, 17, 16, 5, 7, 1, 1, 1, 1},
        {3, 16, 33, 5, 7, 0, 0, 0, 0},    {1, 64, 33, 13, 13, 1, 1, 1, 1},
        {3, 17, 33, 13, 13, 0, 0, 0, 0},  {1, 16, 16, 13, 13, 1, 0, 0, 1},
        {1, 16, 16, 56, 56, 1, 1, 1, 1},  {1, 64, 16, 56, 56, 0, 0, 0, 0},
        {3, 17, 33, 14, 14, 1, 1, 1, 1},  {1, 64, 64, 7, 7, 1, 1, 1, 1},
        {1, 16, 33, 3, 40, 1, 1, 1, 1},   {2, 16, 16, 29, 31, 1, 1, 0, 0},
        /* blocks of tiles across image boundaries */
        {3, 64, 64, 13, 13, 1, 1, 1, 1},  {2, 64, 33, 29, 31, 1, 1, 1, 1},
    };
    kn_error err = {0};
    kn_threadpool *pool3 = kn_threadpool_create(3, &err);
    CHECK(pool3 != NULL);
    int k = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int v = 0; v < 2; v++)
            check_case(&cases[i], (k++) % 8, pool3);
    kn_threadpool_free(pool3);
}

/* The choice: not for strides, dilations, small channel counts or without weights. */
static void test_choice(void)
{
    float w[16 * 16 * 9] = {0};
    kn_wino_weights *ww = kn_wino_pack(kn_cpu_isa(), w, 16, 16);
    kn_conv2d_geom g = {16, 8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1};
    kn_conv2d_args a = {g, 1, 1, 16, NULL, w, NULL, NULL, NULL, {KN_CONV_ACT_NONE, 0, 0}, NULL, ww};
    CHECK_EQ_INT(kn_conv2d_algo(&a), KN_CONV_ALGO_WINOGRAD);
    a.g.sh = 2;
    CHECK(kn_conv2d_algo(&a) != KN_CONV_ALGO_WINOGRAD);
    a.g.sh = 1;
    a.g.dw = 2;
    CHECK(kn_conv2d_algo(&a) != KN_CONV_ALGO_WINOGRAD);
    a.g.dw = 1;
    a.m = 17; /* weights built for another shape */
    CHECK(kn_conv2d_algo(&a) != KN_CONV_ALGO_WINOGRAD);
    a.m = 16;
    a.wino = NULL;
    CHECK(kn_conv2d_algo(&a) != KN_CONV_ALGO_WINOGRAD);
    CHECK(!kn_wino_weights_ok(1, 8, 16, 3, 3));
    CHECK(!kn_wino_weights_ok(2, 16, 16, 3, 3));
    CHECK(!kn_wino_weights_ok(1, 16, 16, 5, 5));
    kn_wino_free(ww);
}

/* Default mode (run as `test_conv_winograd auto`): weights are built where the
 * path would be taken, judged per image when the batch is not known at load. */
static void test_auto_worth(void)
{
    CHECK(kn_wino_worth_weights(-1, -1, -1)); /* size unknown: built */
    CHECK(kn_wino_worth_weights(-1, 14, 14)); /* 49 tiles an image */
    CHECK(kn_wino_worth_weights(1, 56, 56));
    CHECK(!kn_wino_worth_weights(-1, 7, 7)); /* 16 tiles: batch 1 serving loses */
    CHECK(!kn_wino_worth_weights(1, 7, 7));
    CHECK(kn_wino_worth_weights(2, 7, 7)); /* 32 tiles in the batch */
    CHECK(!kn_wino_worth_weights(3, 3, 3));
}

int main(int argc, char **argv)
{
    static const kt_case cases[] = {TEST_CASE(test_weight_tile), TEST_CASE(test_choice),
                                    TEST_CASE(test_run_kernels),
                                    TEST_CASE(test_against_reference)};
    static const kt_case auto_cases[] = {TEST_CASE(test_auto_worth)};
    if (argc > 1 && !strcmp(argv[1], "auto")) {
        unsetenv("KILN_CONV_WINOGRAD");
        return kt_run(auto_cases, 1);
    }
    setenv("KILN_CONV_WINOGRAD", "1", 1); /* every shape it takes, not only where it wins */
    return kt_run(cases, (int)(sizeof cases / sizeof cases[0]));
}
