/* test_ops_signal.c - unit tests for src/ops/signal.c and src/ops/linalg.c: DFT
 * against a direct double-precision sum for every plan kind (direct, radix-2,
 * Bluestein), inverse and IRFFT round trips, dft_length padding/truncation,
 * STFT framing, window edge cases, MelWeightMatrix bounds, Det (pivoting, sign,
 * singular, empty, non-square), and bad sizes that must error, not crash or hang.
 * Each test runs a one-node graph. */
#include "test.h"

#include "exec/exec.h"
#include "ops/op.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

typedef struct tattr {
    const char *name;
    int64_t i;
} tattr;

/* Run op (opset) on inputs in[0..n_in) (NULL: omitted) with integer attributes
 * into *out.  Returns the status of finalize or execution. */
static int run1(const char *op, int opset, int n_in, const kn_tensor *const *in,
                const tattr *attrs, int n_attr, kn_tensor *out)
{
    kn_error err = {0};
    kn_tensor_release(out);
    kn_model *m = kn_model_new();
    m->n_opsets = 1;
    m->opsets = kn_arena_calloc(&m->arena, 1, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = opset;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    kn_node *n = kn_graph_add_node(g);
    n->op_type = op;
    n->n_in = n_in;
    n->in = kn_arena_calloc(&m->arena, (size_t)n_in + 1, sizeof *n->in);
    n->n_out = 1;
    n->out = kn_arena_calloc(&m->arena, 1, sizeof *n->out);
    const kn_tensor *fed[8];
    int n_fed = 0;
    for (int k = 0; k < n_in; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", k);
        n->in[k] = in[k] ? kn_graph_value(g, name) : -1;
        if (in[k]) {
            kn_graph_add_input(g, n->in[k]);
            fed[n_fed++] = in[k];
        }
    }
    n->out[0] = kn_graph_value(g, "y");
    n->n_attr = n_attr;
    n->attrs = n_attr ? kn_arena_calloc(&m->arena, (size_t)n_attr, sizeof *n->attrs) : NULL;
    for (int a = 0; a < n_attr; a++) {
        n->attrs[a].name = attrs[a].name;
        n->attrs[a].type = KN_ATTR_INT;
        n->attrs[a].i = attrs[a].i;
    }
    kn_graph_add_output(g, n->out[0]);
    int rc = kn_model_finalize(m, &err);
    if (!rc)
        rc = kn_exec_graph(g, NULL, n_fed, fed, 1, out, &err);
    if (rc)
        fprintf(stderr, "  (%s: %s)\n", op, err.msg);
    kn_model_free(m);
    return rc;
}

static kn_tensor make(kn_dtype t, int rank, const int64_t *dims, const double *vals)
{
    kn_tensor x = {0};
    kn_error err;
    kn_tensor_alloc(&x, t, rank, dims, &err);
    for (int64_t i = 0; vals && i < x.numel; i++)
        kn_store_f64(x.data, t, (size_t)i, vals[i]);
    return x;
}

static kn_tensor scalar_i(kn_dtype t, int64_t v)
{
    kn_tensor x = make(t, 0, NULL, NULL);
    kn_store_i64(x.data, t, 0, v);
    return x;
}

static kn_tensor scalar_f(kn_dtype t, double v)
{
    kn_tensor x = make(t, 0, NULL, NULL);
    kn_store_f64(x.data, t, 0, v);
    return x;
}

static double at(const kn_tensor *t, int64_t i) { return kn_load_f64(t->data, t->dtype, (size_t)i); }

/* A deterministic complex test signal of n points, interleaved (re, im). */
static double *test_signal(int64_t n, bool complex_input)
{
    double *v = malloc((size_t)n * 2 * sizeof(double));
    for (int64_t k = 0; k < n; k++) {
        v[2 * k] = sin(0.37 * (double)k) + 0.25 * (double)(k % 7) - 0.5;
        v[2 * k + 1] = complex_input ? cos(1.3 * (double)k) * 0.75 : 0.0;
    }
    return v;
}

/* Direct DFT of x (len points, zero-padded/truncated to n), sign -1 or +1. */
static void naive_dft(const double *x, int64_t len, int64_t n, int sign, double *out)
{
    for (int64_t k = 0; k < n; k++) {
        double sr = 0, si = 0;
        for (int64_t j = 0; j < n && j < len; j++) {
            double a = sign * 2.0 * PI * (double)((j * k) % n) / (double)n;
            sr += x[2 * j] * cos(a) - x[2 * j + 1] * sin(a);
            si += x[2 * j] * sin(a) + x[2 * j + 1] * cos(a);
        }
        out[2 * k] = sr;
        out[2 * k + 1] = si;
    }
}

/* DFT (opset 20, axis input 1) of a [1, len, 2] float64 signal, with dft_length n. */
static double dft_max_error(int64_t len, int64_t n)
{
    double *x = test_signal(len, true);
    int64_t dims[3] = {1, len, 2};
    kn_tensor xt = make(KN_F64, 3, dims, x), lt = scalar_i(KN_I64, n), at1 = scalar_i(KN_I64, 1);
    kn_tensor y = {0};
    const kn_tensor *in[3] = {&xt, &lt, &at1};
    double err = 1e30;
    if (run1("DFT", 20, 3, in, NULL, 0, &y) == KN_OK && y.numel == 2 * n) {
        double *want = malloc((size_t)n * 2 * sizeof(double));
        naive_dft(x, len, n, -1, want);
        err = 0;
        for (int64_t i = 0; i < 2 * n; i++)
            err = fmax(err, fabs(at(&y, i) - want[i]));
        free(want);
    }
    free(x);
    kn_tensor_release(&xt);
    kn_tensor_release(&lt);
    kn_tensor_release(&at1);
    kn_tensor_release(&y);
    return err;
}

static void test_dft_plans_match_direct_sum(void)
{
    /* direct (<= 64), radix-2, Bluestein (odd, prime, even non-power-of-two) */
    CHECK(dft_max_error(37, 37) < 1e-9);
    CHECK(dft_max_error(128, 128) < 1e-9);
    CHECK(dft_max_error(1024, 1024) < 1e-8);
    CHECK(dft_max_error(100, 100) < 1e-9);
    CHECK(dft_max_error(97, 97) < 1e-9);
    CHECK(dft_max_error(1000, 1000) < 1e-8);
    /* dft_length pads with zeros or truncates */
    CHECK(dft_max_error(5, 8) < 1e-12);
    CHECK(dft_max_error(90, 70) < 1e-9);
    CHECK(dft_max_error(1, 1) < 1e-12);
}

/* forward then inverse (opset 17, axis attribute) gives the signal back */
static void test_dft_inverse_round_trip(void)
{
    int64_t n = 97;
    double *x = test_signal(n, true);
    int64_t dims[3] = {1, n, 2};
    kn_tensor xt = make(KN_F64, 3, dims, x), f = {0}, b = {0};
    const kn_tensor *in1[1] = {&xt};
    CHECK_EQ_INT(run1("DFT", 17, 1, in1, NULL, 0, &f), KN_OK);
    const kn_tensor *in2[1] = {&f};
    tattr inv[1] = {{"inverse", 1}};
    CHECK_EQ_INT(run1("DFT", 17, 1, in2, inv, 1, &b), KN_OK);
    CHECK_EQ_INT(b.numel, 2 * n);
    double err = 0;
    for (int64_t i = 0; i < 2 * n && b.numel == 2 * n; i++)
        err = fmax(err, fabs(at(&b, i) - x[i]));
    CHECK(err < 1e-12);
    free(x);
    kn_tensor_release(&xt);
    kn_tensor_release(&f);
    kn_tensor_release(&b);
}

/* RFFT then IRFFT (onesided inverse, real [..,1] output) for even and odd lengths */
static void irfft_round_trip(int64_t n)
{
    double *x = test_signal(n, false);
    double *xr = malloc((size_t)n * sizeof(double));
    for (int64_t k = 0; k < n; k++)
        xr[k] = x[2 * k];
    int64_t dims[3] = {1, n, 1};
    kn_tensor xt = make(KN_F32, 3, dims, xr), f = {0}, b = {0}, lt = scalar_i(KN_I32, n);
    tattr one[1] = {{"onesided", 1}};
    const kn_tensor *in1[1] = {&xt};
    CHECK_EQ_INT(run1("DFT", 17, 1, in1, one, 1, &f), KN_OK);
    CHECK_EQ_INT(f.dims[1], n / 2 + 1);
    tattr both[2] = {{"onesided", 1}, {"inverse", 1}};
    const kn_tensor *in2[2] = {&f, &lt};
    CHECK_EQ_INT(run1("DFT", 17, 2, in2, both, 2, &b), KN_OK);
    CHECK_EQ_INT(b.rank, 3);
    CHECK_EQ_INT(b.dims[1], n);
    CHECK_EQ_INT(b.dims[2], 1);
    double err = 0;
    for (int64_t i = 0; i < n && b.numel == n; i++)
        err = fmax(err, fabs(at(&b, i) - xr[i]));
    CHECK(err < 1e-5);
    free(x);
    free(xr);
    kn_tensor_release(&xt);
    kn_tensor_release(&lt);
    kn_tensor_release(&f);
    kn_tensor_release(&b);
}

static void test_irfft(void)
{
    irfft_round_trip(12);
    irfft_round_trip(9);
    irfft_round_trip(300);
}

static void test_dft_bad_input(void)
{
    int64_t d3[3] = {2, 4, 2};
    kn_tensor x = make(KN_F32, 3, d3, NULL), y = {0};
    const kn_tensor *in1[1] = {&x};
    tattr last[1] = {{"axis", 2}};
    CHECK_EQ_INT(run1("DFT", 17, 1, in1, last, 1, &y), KN_ERR_ARG);   /* complex axis */
    tattr far[1] = {{"axis", -4}};
    CHECK_EQ_INT(run1("DFT", 17, 1, in1, far, 1, &y), KN_ERR_ARG);
    tattr neg[1] = {{"axis", -2}};
    CHECK_EQ_INT(run1("DFT", 17, 1, in1, neg, 1, &y), KN_OK);
    CHECK_EQ_INT(y.dims[1], 4);
    kn_tensor l0 = scalar_i(KN_I64, 0), lneg = scalar_i(KN_I64, -5);
    kn_tensor lhuge = scalar_i(KN_I64, INT64_C(1) << 40);
    const kn_tensor *a[2] = {&x, &l0};
    CHECK_EQ_INT(run1("DFT", 17, 2, a, NULL, 0, &y), KN_ERR_ARG);
    a[1] = &lneg;
    CHECK_EQ_INT(run1("DFT", 17, 2, a, NULL, 0, &y), KN_ERR_ARG);
    a[1] = &lhuge;
    CHECK(run1("DFT", 17, 2, a, NULL, 0, &y) != KN_OK);
    /* last dim must be 1 or 2; rank >= 2 */
    int64_t d3b[3] = {2, 4, 3};
    kn_tensor x3 = make(KN_F32, 3, d3b, NULL);
    const kn_tensor *in3[1] = {&x3};
    CHECK_EQ_INT(run1("DFT", 17, 1, in3, NULL, 0, &y), KN_ERR_ARG);
    int64_t d1[1] = {4};
    kn_tensor x1 = make(KN_F32, 1, d1, NULL);
    const kn_tensor *in4[1] = {&x1};
    CHECK_EQ_INT(run1("DFT", 17, 1, in4, NULL, 0, &y), KN_ERR_ARG);
    /* IRFFT of a length-1 half spectrum has no default length */
    int64_t d31[3] = {1, 1, 2};
    kn_tensor xs = make(KN_F32, 3, d31, NULL);
    const kn_tensor *in5[1] = {&xs};
    tattr both[2] = {{"onesided", 1}, {"inverse", 1}};
    CHECK_EQ_INT(run1("DFT", 17, 1, in5, both, 2, &y), KN_ERR_ARG);
    /* empty batch is fine */
    int64_t d0[3] = {0, 4, 1};
    kn_tensor x0 = make(KN_F32, 3, d0, NULL);
    const kn_tensor *in6[1] = {&x0};
    CHECK_EQ_INT(run1("DFT", 17, 1, in6, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    kn_tensor_release(&x);
    kn_tensor_release(&x3);
    kn_tensor_release(&x1);
    kn_tensor_release(&xs);
    kn_tensor_release(&x0);
    kn_tensor_release(&l0);
    kn_tensor_release(&lneg);
    kn_tensor_release(&lhuge);
    kn_tensor_release(&y);
}

static void test_stft(void)
{
    int64_t len = 40, fl = 10, step = 7;
    double *x = test_signal(len, false);
    double *xr = malloc((size_t)len * sizeof(double));
    for (int64_t k = 0; k < len; k++)
        xr[k] = x[2 * k];
    int64_t dims[3] = {1, len, 1}, wd[1] = {fl};
    double w[10];
    for (int k = 0; k < 10; k++)
        w[k] = 0.5 + 0.05 * k;
    kn_tensor xt = make(KN_F64, 3, dims, xr), win = make(KN_F64, 1, wd, w);
    kn_tensor st = scalar_i(KN_I64, step), y = {0};
    const kn_tensor *in[3] = {&xt, &st, &win};
    tattr two[1] = {{"onesided", 0}};
    CHECK_EQ_INT(run1("STFT", 17, 3, in, two, 1, &y), KN_OK);
    int64_t frames = 1 + (len - fl) / step;
    CHECK_EQ_INT(y.rank, 4);
    CHECK_EQ_INT(y.dims[1], frames);
    CHECK_EQ_INT(y.dims[2], fl);
    /* frame 3 against a direct sum */
    double fr[20], want[20];
    for (int k = 0; k < 10; k++) {
        fr[2 * k] = xr[3 * step + k] * w[k];
        fr[2 * k + 1] = 0;
    }
    naive_dft(fr, 10, 10, -1, want);
    double err = 0;
    for (int k = 0; k < 20 && y.numel == frames * fl * 2; k++)
        err = fmax(err, fabs(at(&y, 3 * fl * 2 + k) - want[k]));
    CHECK(err < 1e-12);
    /* bad: step 0, frame longer than the signal, window/frame_length mismatch */
    kn_tensor s0 = scalar_i(KN_I64, 0), fbig = scalar_i(KN_I64, 41), f9 = scalar_i(KN_I64, 9);
    const kn_tensor *b1[2] = {&xt, &s0};
    CHECK_EQ_INT(run1("STFT", 17, 2, b1, NULL, 0, &y), KN_ERR_ARG);
    const kn_tensor *b2[4] = {&xt, &st, NULL, &fbig};
    CHECK_EQ_INT(run1("STFT", 17, 4, b2, NULL, 0, &y), KN_ERR_ARG);
    const kn_tensor *b3[4] = {&xt, &st, &win, &f9};
    CHECK_EQ_INT(run1("STFT", 17, 4, b3, NULL, 0, &y), KN_ERR_ARG);
    /* no window, no frame_length: one frame over the whole signal */
    const kn_tensor *b4[2] = {&xt, &st};
    CHECK_EQ_INT(run1("STFT", 17, 2, b4, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.dims[1], 1);
    CHECK_EQ_INT(y.dims[2], len / 2 + 1);
    free(x);
    free(xr);
    kn_tensor_release(&xt);
    kn_tensor_release(&win);
    kn_tensor_release(&st);
    kn_tensor_release(&s0);
    kn_tensor_release(&fbig);
    kn_tensor_release(&f9);
    kn_tensor_release(&y);
}

static void test_windows(void)
{
    kn_tensor y = {0}, s = scalar_i(KN_I64, 8);
    const kn_tensor *in[1] = {&s};
    CHECK_EQ_INT(run1("HannWindow", 17, 1, in, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F32);
    CHECK_NEAR(at(&y, 0), 0.0, 1e-7);
    CHECK_NEAR(at(&y, 4), 1.0, 1e-7);
    CHECK_NEAR(at(&y, 2), 0.5, 1e-7);
    tattr sym64[2] = {{"periodic", 0}, {"output_datatype", KN_F64}};
    CHECK_EQ_INT(run1("BlackmanWindow", 17, 1, in, sym64, 2, &y), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F64);
    CHECK_NEAR(at(&y, 0), 0.0, 1e-15);
    CHECK_NEAR(at(&y, 7), 0.0, 1e-15);
    CHECK_NEAR(at(&y, 3), at(&y, 4), 1e-15);
    CHECK_EQ_INT(run1("HammingWindow", 17, 1, in, NULL, 0, &y), KN_OK);
    CHECK_NEAR(at(&y, 0), 1.0 - 2.0 * 21.0 / 46.0, 1e-7);
    /* size 0: empty; size 1 symmetric: [1]; negative / huge: error */
    kn_tensor s0 = scalar_i(KN_I32, 0), s1 = scalar_i(KN_I32, 1);
    kn_tensor sn = scalar_i(KN_I64, -3), sh = scalar_i(KN_I64, INT64_C(1) << 50);
    in[0] = &s0;
    CHECK_EQ_INT(run1("HannWindow", 17, 1, in, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    in[0] = &s1;
    tattr sym[1] = {{"periodic", 0}};
    CHECK_EQ_INT(run1("HannWindow", 17, 1, in, sym, 1, &y), KN_OK);
    CHECK_NEAR(at(&y, 0), 1.0, 0);
    in[0] = &sn;
    CHECK_EQ_INT(run1("HannWindow", 17, 1, in, NULL, 0, &y), KN_ERR_ARG);
    in[0] = &sh;
    CHECK(run1("HammingWindow", 17, 1, in, NULL, 0, &y) != KN_OK);
    /* integer output type and an invalid output_datatype */
    in[0] = &s;
    tattr i32[1] = {{"output_datatype", KN_I32}};
    CHECK_EQ_INT(run1("HannWindow", 17, 1, in, i32, 1, &y), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I32);
    tattr bad[1] = {{"output_datatype", 999}};
    CHECK(run1("HannWindow", 17, 1, in, bad, 1, &y) != KN_OK);
    kn_tensor_release(&s);
    kn_tensor_release(&s0);
    kn_tensor_release(&s1);
    kn_tensor_release(&sn);
    kn_tensor_release(&sh);
    kn_tensor_release(&y);
}

static int run_mel(int64_t bins, int64_t dft, int64_t rate, double lo, double hi, kn_tensor *y)
{
    kn_tensor a = scalar_i(KN_I64, bins), b = scalar_i(KN_I64, dft), c = scalar_i(KN_I64, rate);
    kn_tensor d = scalar_f(KN_F32, lo), e = scalar_f(KN_F32, hi);
    const kn_tensor *in[5] = {&a, &b, &c, &d, &e};
    int rc = run1("MelWeightMatrix", 17, 5, in, NULL, 0, y);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    kn_tensor_release(&c);
    kn_tensor_release(&d);
    kn_tensor_release(&e);
    return rc;
}

static void test_mel(void)
{
    kn_tensor y = {0};
    CHECK_EQ_INT(run_mel(8, 16, 8192, 0, 4096, &y), KN_OK);
    CHECK_EQ_INT(y.dims[0], 9);
    CHECK_EQ_INT(y.dims[1], 8);
    /* edges far beyond Nyquist: triangles fall outside the matrix, no crash */
    CHECK_EQ_INT(run_mel(4, 16, 100, 0, 1e30, &y), KN_OK);
    CHECK_EQ_INT(run_mel(4, 16, 100, 1e6, 2e6, &y), KN_OK);
    for (int64_t i = 0; i < y.numel; i++)
        CHECK(at(&y, i) == 0.0);
    CHECK_EQ_INT(run_mel(0, 16, 100, 0, 50, &y), KN_ERR_ARG);
    CHECK_EQ_INT(run_mel(-4, 16, 100, 0, 50, &y), KN_ERR_ARG);
    CHECK_EQ_INT(run_mel(4, 16, 0, 0, 50, &y), KN_ERR_ARG);
    CHECK_EQ_INT(run_mel(4, 16, 100, 60, 50, &y), KN_ERR_ARG);
    CHECK_EQ_INT(run_mel(4, 16, 100, 0, INFINITY, &y), KN_ERR_ARG);
    CHECK(run_mel(INT64_C(1) << 40, 16, 100, 0, 50, &y) != KN_OK);
    kn_tensor_release(&y);
}

static void test_det(void)
{
    kn_tensor y = {0};
    /* needs a row swap: det = -(2*... ) computed by hand */
    double m3[9] = {0, 2, 1, 1, 1, 1, 3, 0, 2};   /* det = 0*(2-0) - 2*(2-3) + 1*(0-3) = -1 */
    int64_t d3[2] = {3, 3};
    kn_tensor x = make(KN_F32, 2, d3, m3);
    const kn_tensor *in[1] = {&x};
    CHECK_EQ_INT(run1("Det", 11, 1, in, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.rank, 0);
    CHECK_NEAR(at(&y, 0), -1.0, 1e-6);
    kn_tensor_release(&x);
    /* batch of two 2x2 in float64 and float16, one singular */
    double m2[8] = {1, 2, 3, 4, 1, 2, 2, 4};
    int64_t d2[3] = {2, 2, 2};
    kn_dtype types[3] = {KN_F64, KN_F16, KN_BF16};
    for (int t = 0; t < 3; t++) {
        x = make(types[t], 3, d2, m2);
        CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_OK);
        CHECK_EQ_INT(y.dtype, types[t]);
        CHECK_EQ_INT(y.numel, 2);
        CHECK_NEAR(at(&y, 0), -2.0, 1e-2);
        CHECK_NEAR(at(&y, 1), 0.0, 0);
        kn_tensor_release(&x);
    }
    /* a NaN that partial pivoting would skip still poisons the result */
    double mn[4] = {0, NAN, 0, 1};
    int64_t d22[2] = {2, 2};
    x = make(KN_F32, 2, d22, mn);
    CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_OK);
    CHECK(isnan(at(&y, 0)));
    kn_tensor_release(&x);
    /* empty batch, 0x0 matrices (det 1), non-square, rank 1, int dtype */
    int64_t de[3] = {0, 3, 3};
    x = make(KN_F32, 3, de, NULL);
    CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    kn_tensor_release(&x);
    int64_t dz[3] = {2, 0, 0};
    x = make(KN_F32, 3, dz, NULL);
    CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.numel, 2);
    CHECK_NEAR(at(&y, 1), 1.0, 0);
    kn_tensor_release(&x);
    int64_t dn[2] = {2, 3};
    x = make(KN_F32, 2, dn, NULL);
    CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_ERR_ARG);
    kn_tensor_release(&x);
    int64_t d1[1] = {4};
    x = make(KN_F32, 1, d1, NULL);
    CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_ERR_ARG);
    kn_tensor_release(&x);
    x = make(KN_I32, 2, d3, m3);
    CHECK_EQ_INT(run1("Det", 22, 1, in, NULL, 0, &y), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    kn_tensor_release(&y);
}


/* float16 in, float16 out; complex STFT (two-sided) matches the complex DFT of a frame */
static void test_half_and_complex_stft(void)
{
    int64_t n = 12;
    double *x = test_signal(n, true);
    int64_t dims[3] = {1, n, 2};
    kn_tensor xh = make(KN_F16, 3, dims, x), y = {0};
    const kn_tensor *in1[1] = {&xh};
    CHECK_EQ_INT(run1("DFT", 17, 1, in1, NULL, 0, &y), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F16);
    double want[24];
    double xr[24];
    for (int k = 0; k < 24; k++)
        xr[k] = at(&xh, k);
    naive_dft(xr, n, n, -1, want);
    double err = 0;
    for (int k = 0; k < 24 && y.numel == 24; k++)
        err = fmax(err, fabs(at(&y, k) - want[k]) / (1.0 + fabs(want[k])));
    CHECK(err < 2e-3);
    kn_tensor xt = make(KN_F64, 3, dims, x), step = scalar_i(KN_I64, 4), fl = scalar_i(KN_I64, 6);
    const kn_tensor *in2[4] = {&xt, &step, NULL, &fl};
    tattr two[1] = {{"onesided", 0}};
    CHECK_EQ_INT(run1("STFT", 17, 4, in2, two, 1, &y), KN_OK);
    CHECK_EQ_INT(y.dims[1], 2);
    CHECK_EQ_INT(y.dims[2], 6);
    naive_dft(x + 2 * 4, 6, 6, -1, want);  /* frame 1 starts at sample 4 */
    err = 0;
    for (int k = 0; k < 12 && y.numel == 24; k++)
        err = fmax(err, fabs(at(&y, 12 + k) - want[k]));
    CHECK(err < 1e-12);
    free(x);
    kn_tensor_release(&xh);
    kn_tensor_release(&xt);
    kn_tensor_release(&step);
    kn_tensor_release(&fl);
    kn_tensor_release(&y);
}

/* Load-time type inference: DFT with a constant dft_length, Det. */
static void test_infer(void)
{
    kn_error err = {0};
    kn_model *m = kn_model_new();
    m->n_opsets = 1;
    m->opsets = kn_arena_calloc(&m->arena, 1, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = 17;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    int x = kn_graph_value(g, "x"), len = kn_graph_value(g, "len"), y = kn_graph_value(g, "y");
    int d = kn_graph_value(g, "d");
    kn_value *xv = &g->values[x];
    xv->has_type = true;
    xv->type = (kn_type){.kind = KN_TYPE_TENSOR, .dtype = KN_F32, .rank = 3};
    xv->type.dims[0] = (kn_dim){2, NULL};
    xv->type.dims[1] = (kn_dim){10, NULL};
    xv->type.dims[2] = (kn_dim){1, NULL};
    kn_graph_add_input(g, x);
    kn_tensor *lt = kn_arena_calloc(&m->arena, 1, sizeof *lt);
    *lt = scalar_i(KN_I64, 16);
    g->values[len].init = lt;
    kn_node *n = kn_graph_add_node(g);
    n->op_type = "DFT";
    n->n_in = 2;
    n->in = kn_arena_calloc(&m->arena, 2, sizeof *n->in);
    n->in[0] = x;
    n->in[1] = len;
    n->n_out = 1;
    n->out = kn_arena_calloc(&m->arena, 1, sizeof *n->out);
    n->out[0] = y;
    n->n_attr = 1;
    n->attrs = kn_arena_calloc(&m->arena, 1, sizeof *n->attrs);
    n->attrs[0] = (kn_attr){.name = "onesided", .type = KN_ATTR_INT, .i = 1};
    kn_node *n2 = kn_graph_add_node(g);
    n2->op_type = "Det";
    n2->n_in = 1;
    n2->in = kn_arena_calloc(&m->arena, 1, sizeof *n2->in);
    n2->in[0] = x;
    n2->n_out = 1;
    n2->out = kn_arena_calloc(&m->arena, 1, sizeof *n2->out);
    n2->out[0] = d;
    kn_graph_add_output(g, y);
    kn_graph_add_output(g, d);
    CHECK_EQ_INT(kn_model_finalize(m, &err), KN_OK);
    const kn_type *yt = &g->values[y].type;
    CHECK(g->values[y].has_type);
    CHECK_EQ_INT(yt->rank, 3);
    CHECK_EQ_INT(yt->dims[0].value, 2);
    CHECK_EQ_INT(yt->dims[1].value, 9);
    CHECK_EQ_INT(yt->dims[2].value, 2);
    const kn_type *dt = &g->values[d].type;
    CHECK_EQ_INT(dt->rank, 1);
    CHECK_EQ_INT(dt->dims[0].value, 2);
    kn_tensor_release(lt);
    kn_model_free(m);
}

TEST_MAIN(TEST_CASE(test_infer), TEST_CASE(test_half_and_complex_stft), TEST_CASE(test_dft_plans_match_direct_sum), TEST_CASE(test_dft_inverse_round_trip),
          TEST_CASE(test_irfft), TEST_CASE(test_dft_bad_input), TEST_CASE(test_stft),
          TEST_CASE(test_windows), TEST_CASE(test_mel), TEST_CASE(test_det))
