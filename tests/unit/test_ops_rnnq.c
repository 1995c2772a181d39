/* test_ops_rnnq.c - unit tests for the rnn, attention and quant operator families:
 * properties the conformance data does not cover (bidirectional and reverse runs
 * against single-direction runs, per-batch sequence_lens, batch-first layout,
 * activation parameters, clip, peepholes, input_forget; quantization rounding,
 * per-axis / blocked parameters, QLinearConv padding and groups; attention masks
 * and bad inputs that must fail cleanly). */
#include "test.h"
#include "op_harness.h"

#include "ir/ir.h"

#include <stdlib.h>

/* Deterministic pseudo-random floats in [-1, 1). */
static kn_tensor mk_rand(int rank, const int64_t *dims, uint32_t seed)
{
    kn_tensor t = kt_tensor_f64(KN_F32, rank, dims, NULL);
    uint32_t s = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < t.numel; i++) {
        kt_lcg32(&s);
        ((float *)t.data)[i] = (float)((s >> 8) / 8388608.0 - 1.0);
    }
    return t;
}

/* Sub-block [from, from + count) of the leading dim of t, as a new tensor. */
static kn_tensor slice0(const kn_tensor *t, int64_t from, int64_t count)
{
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[0] = count;
    kn_tensor s = kt_tensor_f64(t->dtype, t->rank, dims, NULL);
    int64_t inner = t->numel / t->dims[0];
    memcpy(s.data, (const float *)t->data + from * inner, (size_t)(count * inner) * sizeof(float));
    return s;
}

/* ---------------------------------------------------------------- RNN / GRU / LSTM */

enum { SEQ = 4, BATCH = 3, IN = 2, HID = 3 };

typedef struct rnn_inputs {
    kn_tensor x, w, r, b, h0, c0, p;
} rnn_inputs;

static rnn_inputs rnn_make(int gates, int ndir, uint32_t seed)
{
    rnn_inputs ri;
    int64_t xd[3] = {SEQ, BATCH, IN}, wd[3] = {ndir, gates * HID, IN}, rd[3] = {ndir, gates * HID, HID};
    int64_t bd[2] = {ndir, 2 * gates * HID}, hd[3] = {ndir, BATCH, HID}, pd[2] = {ndir, 3 * HID};
    ri.x = mk_rand(3, xd, seed);
    ri.w = mk_rand(3, wd, seed + 1);
    ri.r = mk_rand(3, rd, seed + 2);
    ri.b = mk_rand(2, bd, seed + 3);
    ri.h0 = mk_rand(3, hd, seed + 4);
    ri.c0 = mk_rand(3, hd, seed + 5);
    ri.p = mk_rand(2, pd, seed + 6);
    return ri;
}

static void rnn_free(rnn_inputs *ri)
{
    kn_tensor_release(&ri->x);
    kn_tensor_release(&ri->w);
    kn_tensor_release(&ri->r);
    kn_tensor_release(&ri->b);
    kn_tensor_release(&ri->h0);
    kn_tensor_release(&ri->c0);
    kn_tensor_release(&ri->p);
}

/* Node for op with all inputs of ri; dir selects one direction's weights (-1: all). */
static void rnn_node(kt_node *t, const char *op, rnn_inputs *ri)
{
    memset(t, 0, sizeof *t);
    t->op = op;
    t->opset = 14;
    bool lstm = !strcmp(op, "LSTM");
    t->n_in = lstm ? 8 : 6;
    t->in[0] = &ri->x;
    t->in[1] = &ri->w;
    t->in[2] = &ri->r;
    t->in[3] = &ri->b;
    t->in[5] = &ri->h0;
    if (lstm) {
        t->in[6] = &ri->c0;
        t->in[7] = &ri->p;
    }
    t->n_out = lstm ? 3 : 2;
    kt_add_attr(t, kt_attr_int("hidden_size", HID));
}

/* Y [seq, dirs, batch, hid]: element (s, d, b, h). */
static float y_at(const kn_tensor *y, int64_t s, int64_t d, int64_t b, int64_t h)
{
    return kt_at(y, ((s * y->dims[1] + d) * y->dims[2] + b) * y->dims[3] + h);
}

/* Bidirectional output equals a forward run with direction 0's weights and a
 * reverse run with direction 1's. */
static void check_bidirectional(const char *op, int gates)
{
    rnn_inputs bi = rnn_make(gates, 2, 7);
    kt_node t;
    rnn_node(&t, op, &bi);
    kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
    kn_tensor outs[3] = {{0}}, one[3] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
    for (int d = 0; d < 2; d++) {
        rnn_inputs u = bi;
        u.w = slice0(&bi.w, d, 1);
        u.r = slice0(&bi.r, d, 1);
        u.b = slice0(&bi.b, d, 1);
        u.h0 = slice0(&bi.h0, d, 1);
        u.c0 = slice0(&bi.c0, d, 1);
        u.p = slice0(&bi.p, d, 1);
        u.x = bi.x;
        rnn_node(&t, op, &u);
        kt_add_attr(&t, kt_attr_str("direction", d ? "reverse" : "forward"));
        CHECK_EQ_INT(kt_run_node(&t, one, &err), KN_OK);
        int bad = 0;
        for (int s = 0; s < SEQ; s++)
            for (int b = 0; b < BATCH; b++)
                for (int h = 0; h < HID; h++)
                    bad += fabsf(y_at(&outs[0], s, d, b, h) - y_at(&one[0], s, 0, b, h)) > 1e-6f;
        for (int k = 1; k < t.n_out; k++)
            for (int i = 0; i < BATCH * HID; i++)
                bad += fabs(kt_at(&outs[k], d * BATCH * HID + i) - kt_at(&one[k], i)) > 1e-6f;
        CHECK_EQ_INT(bad, 0);
        kt_release_all(one, 3);
        kn_tensor_release(&u.w);
        kn_tensor_release(&u.r);
        kn_tensor_release(&u.b);
        kn_tensor_release(&u.h0);
        kn_tensor_release(&u.c0);
        kn_tensor_release(&u.p);
    }
    kt_release_all(outs, 3);
    rnn_free(&bi);
}

static void test_bidirectional_matches_single_runs(void)
{
    check_bidirectional("RNN", 1);
    check_bidirectional("GRU", 3);
    check_bidirectional("LSTM", 4);
}

/* With sequence_lens, each batch entry equals a run of that entry alone over its
 * own length; rows past the end are zero. */
static void check_sequence_lens(const char *op, int gates)
{
    rnn_inputs ri = rnn_make(gates, 2, 11);
    const double lens_v[BATCH] = {4, 2, 0};
    int64_t ld[1] = {BATCH};
    kn_tensor lens = kt_tensor_f64(KN_I32, 1, ld, lens_v);
    kt_node t;
    rnn_node(&t, op, &ri);
    t.in[4] = &lens;
    kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
    kn_tensor outs[3] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
    for (int b = 0; b < 2; b++) {
        int64_t L = (int64_t)lens_v[b];
        /* X[:L, b], h0[:, b], c0[:, b] */
        int64_t xd[3] = {L, 1, IN}, hd[3] = {2, 1, HID};
        kn_tensor x1 = kt_tensor_f64(KN_F32, 3, xd, NULL), h1 = kt_tensor_f64(KN_F32, 3, hd, NULL), c1 = kt_tensor_f64(KN_F32, 3, hd, NULL);
        for (int64_t s = 0; s < L; s++)
            for (int i = 0; i < IN; i++)
                ((float *)x1.data)[s * IN + i] = kt_at(&ri.x, (s * BATCH + b) * IN + i);
        for (int d = 0; d < 2; d++)
            for (int h = 0; h < HID; h++) {
                ((float *)h1.data)[d * HID + h] = kt_at(&ri.h0, (d * BATCH + b) * HID + h);
                ((float *)c1.data)[d * HID + h] = kt_at(&ri.c0, (d * BATCH + b) * HID + h);
            }
        rnn_inputs u = ri;
        u.x = x1;
        u.h0 = h1;
        u.c0 = c1;
        rnn_node(&t, op, &u);
        kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
        kn_tensor one[3] = {{0}};
        CHECK_EQ_INT(kt_run_node(&t, one, &err), KN_OK);
        int bad = 0;
        for (int s = 0; s < SEQ; s++)
            for (int d = 0; d < 2; d++)
                for (int h = 0; h < HID; h++) {
                    float want = s < L ? y_at(&one[0], s, d, 0, h) : 0.0f;
                    bad += fabsf(y_at(&outs[0], s, d, b, h) - want) > 1e-6f;
                }
        for (int k = 1; k < t.n_out; k++)
            for (int d = 0; d < 2; d++)
                for (int h = 0; h < HID; h++)
                    bad += fabs(kt_at(&outs[k], (d * BATCH + b) * HID + h) - kt_at(&one[k], d * HID + h)) > 1e-6f;
        CHECK_EQ_INT(bad, 0);
        kt_release_all(one, 3);
        kn_tensor_release(&x1);
        kn_tensor_release(&h1);
        kn_tensor_release(&c1);
    }
    /* length 0: all outputs zero */
    int nz = 0;
    for (int s = 0; s < SEQ; s++)
        for (int d = 0; d < 2; d++)
            for (int h = 0; h < HID; h++)
                nz += y_at(&outs[0], s, d, 2, h) != 0.0f;
    CHECK_EQ_INT(nz, 0);
    kt_release_all(outs, 3);
    kn_tensor_release(&lens);
    rnn_free(&ri);
}

static void test_sequence_lens(void)
{
    check_sequence_lens("RNN", 1);
    check_sequence_lens("GRU", 3);
    check_sequence_lens("LSTM", 4);
}

/* Swap the first two dims of a rank-3 or leading two of a rank-4 tensor. */
static kn_tensor swap01(const kn_tensor *t)
{
    int64_t dims[KN_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[0] = t->dims[1];
    dims[1] = t->dims[0];
    kn_tensor s = kt_tensor_f64(t->dtype, t->rank, dims, NULL);
    int64_t inner = t->numel / (t->dims[0] * t->dims[1]);
    for (int64_t i = 0; i < t->dims[0]; i++)
        for (int64_t j = 0; j < t->dims[1]; j++)
            for (int64_t k = 0; k < inner; k++)
                ((float *)s.data)[(j * t->dims[0] + i) * inner + k] =
                    ((const float *)t->data)[(i * t->dims[1] + j) * inner + k];
    return s;
}

/* layout = 1 gives the batch-first transposes of the layout = 0 results. */
static void test_layout_batch_first(void)
{
    rnn_inputs ri = rnn_make(4, 2, 3);
    kt_node t;
    kn_error err;
    kn_tensor ref[3] = {{0}}, bf[3] = {{0}};
    rnn_node(&t, "LSTM", &ri);
    kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
    CHECK_EQ_INT(kt_run_node(&t, ref, &err), KN_OK);
    rnn_inputs u = ri;
    u.x = swap01(&ri.x);
    u.h0 = swap01(&ri.h0);
    u.c0 = swap01(&ri.c0);
    rnn_node(&t, "LSTM", &u);
    kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
    kt_add_attr(&t, kt_attr_int("layout", 1));
    CHECK_EQ_INT(kt_run_node(&t, bf, &err), KN_OK);
    /* Y: [seq, dir, batch, hid] vs [batch, seq, dir, hid] */
    CHECK_EQ_INT(bf[0].dims[0], BATCH);
    CHECK_EQ_INT(bf[0].dims[1], SEQ);
    int bad = 0;
    for (int s = 0; s < SEQ; s++)
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < BATCH; b++)
                for (int h = 0; h < HID; h++)
                    bad += y_at(&ref[0], s, d, b, h) != kt_at(&bf[0], ((b * SEQ + s) * 2 + d) * HID + h);
    for (int k = 1; k < 3; k++)
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < BATCH; b++)
                for (int h = 0; h < HID; h++)
                    bad += kt_at(&ref[k], (d * BATCH + b) * HID + h) != kt_at(&bf[k], (b * 2 + d) * HID + h);
    CHECK_EQ_INT(bad, 0);
    kt_release_all(ref, 3);
    kt_release_all(bf, 3);
    kn_tensor_release(&u.x);
    kn_tensor_release(&u.h0);
    kn_tensor_release(&u.c0);
    rnn_free(&ri);
}

/* One-unit RNN with W = 1, R = 0: Y = f(clip(x)); checks activation parameters. */
static void run_unit_rnn(const char **acts, int n_acts, float *alpha, int na, float *beta, int nb,
                         float clip, const double *xs, int n, double *ys)
{
    int ndir = n_acts;
    int64_t xd[3] = {n, 1, 1}, wd[3] = {ndir, 1, 1};
    const double ones[2] = {1, 1}, zeros[2] = {0, 0};
    kn_tensor x = kt_tensor_f64(KN_F32, 3, xd, xs), w = kt_tensor_f64(KN_F32, 3, wd, ones), r = kt_tensor_f64(KN_F32, 3, wd, zeros);
    kt_node t = {0};
    t.op = "RNN";
    t.opset = 14;
    t.n_in = 3;
    t.in[0] = &x;
    t.in[1] = &w;
    t.in[2] = &r;
    t.n_out = 1;
    kt_add_attr(&t, kt_attr_strs("activations", n_acts, acts));
    if (na)
        kt_add_attr(&t, kt_attr_floats("activation_alpha", na, alpha));
    if (nb)
        kt_add_attr(&t, kt_attr_floats("activation_beta", nb, beta));
    if (clip > 0)
        kt_add_attr(&t, kt_attr_float("clip", clip));
    if (ndir == 2)
        kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
    kn_tensor y = {0};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_OK);
    for (int i = 0; i < n * ndir; i++)
        ys[i] = y.numel == n * ndir ? kt_at(&y, i) : NAN;
    kn_tensor_release(&y);
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&r);
}

static void test_activations(void)
{
    const double xs[3] = {-2.0, 0.5, 3.0};
    double ys[6];
    struct { const char *name; double want[3]; } cases[] = {
        {"Relu", {0, 0.5, 3}},
        {"Tanh", {tanh(-2.0), tanh(0.5), tanh(3.0)}},
        {"Sigmoid", {1 / (1 + exp(2.0)), 1 / (1 + exp(-0.5)), 1 / (1 + exp(-3.0))}},
        {"HardSigmoid", {0.1, 0.6, 1.0}},
        {"LeakyRelu", {-0.02, 0.5, 3}},
        {"ThresholdedRelu", {0, 0, 3}},
        {"Elu", {exp(-2.0) - 1, 0.5, 3}},
        {"Softsign", {-2.0 / 3, 0.5 / 1.5, 0.75}},
        {"Softplus", {log1p(exp(-2.0)), log1p(exp(0.5)), log1p(exp(3.0))}},
        {"Affine", {-2, 0.5, 3}},
        {"ScaledTanh", {tanh(-2.0), tanh(0.5), tanh(3.0)}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *a[1] = {cases[k].name};
        run_unit_rnn(a, 1, NULL, 0, NULL, 0, 0, xs, 3, ys);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(ys[i], cases[k].want[i], 1e-6);
    }
    /* parameters are consumed in order by the activations that take them */
    const char *two[2] = {"LeakyRelu", "ScaledTanh"};
    float alpha[2] = {0.1f, 2.0f}, beta[1] = {0.5f};
    run_unit_rnn(two, 2, alpha, 2, beta, 1, 0, xs, 3, ys);
    /* Y [seq, dir, 1, 1]: forward LeakyRelu(0.1), reverse 2*tanh(0.5 x) */
    CHECK_NEAR(ys[0], -0.2, 1e-6);
    CHECK_NEAR(ys[1], 2 * tanh(-1.0), 1e-6);
    CHECK_NEAR(ys[4], 3.0, 1e-6);
    CHECK_NEAR(ys[5], 2 * tanh(1.5), 1e-6);
    /* Affine with explicit alpha/beta and clip */
    const char *aff[1] = {"Affine"};
    float a2[1] = {2.0f}, b2[1] = {1.0f};
    run_unit_rnn(aff, 1, a2, 1, b2, 1, 1.0f, xs, 3, ys);
    CHECK_NEAR(ys[0], -1.0, 1e-6); /* 2 * clip(-2) + 1 */
    CHECK_NEAR(ys[1], 2.0, 1e-6);
    CHECK_NEAR(ys[2], 3.0, 1e-6);
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

/* One-unit LSTM with peepholes and input_forget, two steps, checked by hand. */
static void test_lstm_peephole_input_forget(void)
{
    /* W: i, o, f, c; R likewise; B zero; P: i, o, f */
    const double xv[2] = {0.5, -1.0}, wv[4] = {0.3, -0.2, 0.7, 0.9}, rv[4] = {0.1, 0.4, -0.3, 0.2};
    const double pv[3] = {0.25, -0.5, 0.75}, h0v[1] = {0.2}, c0v[1] = {-0.1};
    int64_t xd[3] = {2, 1, 1}, wd[3] = {1, 4, 1}, pd[2] = {1, 3}, hd[3] = {1, 1, 1};
    kn_tensor x = kt_tensor_f64(KN_F32, 3, xd, xv), w = kt_tensor_f64(KN_F32, 3, wd, wv), r = kt_tensor_f64(KN_F32, 3, wd, rv);
    kn_tensor p = kt_tensor_f64(KN_F32, 2, pd, pv), h0 = kt_tensor_f64(KN_F32, 3, hd, h0v), c0 = kt_tensor_f64(KN_F32, 3, hd, c0v);
    for (int input_forget = 0; input_forget < 2; input_forget++) {
        kt_node t = {0};
        t.op = "LSTM";
        t.opset = 7;
        t.n_in = 8;
        t.in[0] = &x;
        t.in[1] = &w;
        t.in[2] = &r;
        t.in[5] = &h0;
        t.in[6] = &c0;
        t.in[7] = &p;
        t.n_out = 3;
        kt_add_attr(&t, kt_attr_int("hidden_size", 1));
        kt_add_attr(&t, kt_attr_int("input_forget", input_forget));
        kn_tensor outs[3] = {{0}};
        kn_error err;
        CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
        double h = h0v[0], cs = c0v[0], ys[2];
        for (int s = 0; s < 2; s++) {
            double xi = xv[s];
            double gi = sigm(wv[0] * xi + rv[0] * h + pv[0] * cs);
            double gf = input_forget ? 1 - gi : sigm(wv[2] * xi + rv[2] * h + pv[2] * cs);
            double gc = tanh(wv[3] * xi + rv[3] * h);
            cs = gf * cs + gi * gc;
            double go = sigm(wv[1] * xi + rv[1] * h + pv[1] * cs);
            h = go * tanh(cs);
            ys[s] = h;
        }
        CHECK_NEAR(kt_at(&outs[0], 0), ys[0], 1e-6);
        CHECK_NEAR(kt_at(&outs[0], 1), ys[1], 1e-6);
        CHECK_NEAR(kt_at(&outs[1], 0), h, 1e-6);
        CHECK_NEAR(kt_at(&outs[2], 0), cs, 1e-6);
        kt_release_all(outs, 3);
    }
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&r);
    kn_tensor_release(&p);
    kn_tensor_release(&h0);
    kn_tensor_release(&c0);
}

/* One-unit GRU, both linear_before_reset settings, with biases, by hand. */
static void test_gru_linear_before_reset(void)
{
    const double xv[2] = {0.8, -0.4}, wv[3] = {0.5, -0.6, 0.9}, rv[3] = {0.3, 0.2, -0.7};
    const double bv[6] = {0.1, -0.1, 0.2, 0.05, 0.15, -0.25};
    int64_t xd[3] = {2, 1, 1}, wd[3] = {1, 3, 1}, bd[2] = {1, 6};
    kn_tensor x = kt_tensor_f64(KN_F32, 3, xd, xv), w = kt_tensor_f64(KN_F32, 3, wd, wv), r = kt_tensor_f64(KN_F32, 3, wd, rv);
    kn_tensor b = kt_tensor_f64(KN_F32, 2, bd, bv);
    for (int lbr = 0; lbr < 2; lbr++) {
        kt_node t = {0};
        t.op = "GRU";
        t.opset = 7;
        t.n_in = 4;
        t.in[0] = &x;
        t.in[1] = &w;
        t.in[2] = &r;
        t.in[3] = &b;
        t.n_out = 2;
        kt_add_attr(&t, kt_attr_int("hidden_size", 1));
        kt_add_attr(&t, kt_attr_int("linear_before_reset", lbr));
        kn_tensor outs[2] = {{0}};
        kn_error err;
        CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
        double h = 0;
        for (int s = 0; s < 2; s++) {
            double xi = xv[s];
            double z = sigm(wv[0] * xi + rv[0] * h + bv[0] + bv[3]);
            double rg = sigm(wv[1] * xi + rv[1] * h + bv[1] + bv[4]);
            double hh = lbr ? tanh(wv[2] * xi + rg * (rv[2] * h + bv[5]) + bv[2])
                            : tanh(wv[2] * xi + rv[2] * (rg * h) + bv[5] + bv[2]);
            h = (1 - z) * hh + z * h;
            CHECK_NEAR(kt_at(&outs[0], s), h, 1e-6);
        }
        CHECK_NEAR(kt_at(&outs[1], 0), h, 1e-6);
        kt_release_all(outs, 2);
    }
    kn_tensor_release(&x);
    kn_tensor_release(&w);
    kn_tensor_release(&r);
    kn_tensor_release(&b);
}

/* float64 and float16 inputs go through the same kernel. */
static void test_rnn_other_dtypes(void)
{
    const double xv[2] = {0.5, -1.0}, wv[1] = {0.75}, rv[1] = {0.5};
    int64_t xd[3] = {2, 1, 1}, wd[3] = {1, 1, 1};
    kn_dtype dts[2] = {KN_F64, KN_F16};
    for (int k = 0; k < 2; k++) {
        kn_tensor x = kt_tensor_f64(dts[k], 3, xd, xv), w = kt_tensor_f64(dts[k], 3, wd, wv), r = kt_tensor_f64(dts[k], 3, wd, rv);
        kt_node t = {0};
        t.op = "RNN";
        t.opset = 14;
        t.n_in = 3;
        t.in[0] = &x;
        t.in[1] = &w;
        t.in[2] = &r;
        t.n_out = 2;
        kn_tensor outs[2] = {{0}};
        kn_error err;
        CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
        CHECK_EQ_INT(outs[0].dtype, dts[k]);
        double h1 = tanh(0.375), h2 = tanh(-0.75 + 0.5 * h1);
        CHECK_NEAR(kt_at(&outs[0], 0), h1, 1e-3);
        CHECK_NEAR(kt_at(&outs[1], 0), h2, 1e-3);
        kt_release_all(outs, 2);
        kn_tensor_release(&x);
        kn_tensor_release(&w);
        kn_tensor_release(&r);
    }
}

static void test_rnn_bad_inputs(void)
{
    rnn_inputs ri = rnn_make(4, 1, 5);
    kt_node t;
    kn_error err;
    kn_tensor outs[3] = {{0}};
    /* W for a bidirectional layer but direction forward */
    rnn_node(&t, "LSTM", &ri);
    kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* hidden_size disagrees with R */
    rnn_node(&t, "LSTM", &ri);
    t.attrs[0].i = 5;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* sequence length out of range */
    int64_t ld[1] = {BATCH};
    const double lv[BATCH] = {1, 9, 2}, neg[BATCH] = {1, -1, 2};
    kn_tensor lens = kt_tensor_f64(KN_I32, 1, ld, lv), lneg = kt_tensor_f64(KN_I32, 1, ld, neg);
    rnn_node(&t, "LSTM", &ri);
    t.in[4] = &lens;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    t.in[4] = &lneg;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* unknown activation */
    const char *acts[3] = {"Sigmoid", "Tanh", "Cosine"};
    rnn_node(&t, "LSTM", &ri);
    kt_add_attr(&t, kt_attr_strs("activations", 3, acts));
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_UNSUPPORTED);
    /* W with the wrong gate count for GRU */
    rnn_node(&t, "GRU", &ri);
    t.in[6] = t.in[7] = NULL;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* integer X */
    kn_tensor xi = kt_tensor_f64(KN_I32, 3, ri.x.dims, NULL);
    rnn_node(&t, "LSTM", &ri);
    t.in[0] = &xi;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_UNSUPPORTED);
    kt_release_all(outs, 3);
    kn_tensor_release(&xi);
    kn_tensor_release(&lens);
    kn_tensor_release(&lneg);
    rnn_free(&ri);
}

/* ---------------------------------------------------------------- quantization */

static int run_q(const char *op, int opset, int n_in, const kn_tensor **in, int n_out,
                 kn_tensor *outs, int64_t axis, int64_t block, int64_t out_dtype)
{
    kt_node t = {0};
    t.op = op;
    t.opset = opset;
    t.n_in = n_in;
    for (int i = 0; i < n_in; i++)
        t.in[i] = in[i];
    t.n_out = n_out;
    if (axis != 99)
        kt_add_attr(&t, kt_attr_int("axis", axis));
    if (block)
        kt_add_attr(&t, kt_attr_int("block_size", block));
    if (out_dtype)
        kt_add_attr(&t, kt_attr_int("output_dtype", out_dtype));
    kn_error err;
    return kt_run_node(&t, outs, &err);
}

static void test_quantize_rounding_and_saturation(void)
{
    const double xv[9] = {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300, -300, 1.4999};
    int64_t xd[1] = {9};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, xd, xv), s = kt_tensor_f64(KN_F32, 0, NULL, (double[]){1.0});
    kn_tensor z = kt_tensor_f64(KN_I8, 0, NULL, (double[]){0});
    const kn_tensor *in[3] = {&x, &s, &z};
    kn_tensor y = {0};
    CHECK_EQ_INT(run_q("QuantizeLinear", 13, 3, in, 1, &y, 99, 0, 0), KN_OK);
    const int want[9] = {0, 2, 2, 0, -2, -2, 127, -128, 1};
    for (int i = 0; i < 9; i++)
        CHECK_EQ_INT(((int8_t *)y.data)[i], want[i]);
    kn_tensor_release(&y);
    /* no zero point: uint8; with a uint8 zero point of 10 */
    CHECK_EQ_INT(run_q("QuantizeLinear", 13, 2, in, 1, &y, 99, 0, 0), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_U8);
    CHECK_EQ_INT(((uint8_t *)y.data)[3], 0);
    CHECK_EQ_INT(((uint8_t *)y.data)[6], 255);
    kn_tensor_release(&y);
    /* output_dtype int16 (opset 21) */
    CHECK_EQ_INT(run_q("QuantizeLinear", 21, 2, in, 1, &y, 99, 0, KN_I16), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_I16);
    CHECK_EQ_INT(((int16_t *)y.data)[7], -300);
    kn_tensor_release(&y);
    /* float8 output is valid ONNX kiln does not implement */
    CHECK_EQ_INT(run_q("QuantizeLinear", 21, 2, in, 1, &y, 99, 0, KN_F8E4M3FN), KN_ERR_UNSUPPORTED);
    kn_tensor_release(&x);
    kn_tensor_release(&s);
    kn_tensor_release(&z);
}

static void test_quantize_per_axis_and_blocked(void)
{
    /* x [2, 5], per-axis along the last axis (negative axis), then blocked */
    double xv[10];
    for (int i = 0; i < 10; i++)
        xv[i] = i * 1.0;
    int64_t xd[2] = {2, 5}, sd[1] = {5}, bd[2] = {2, 3};
    const double sv[5] = {1, 2, 4, 0.5, 1}, zv[5] = {0, 1, 2, 3, 4};
    kn_tensor x = kt_tensor_f64(KN_F32, 2, xd, xv), s = kt_tensor_f64(KN_F32, 1, sd, sv), z = kt_tensor_f64(KN_U8, 1, sd, zv);
    const kn_tensor *in[3] = {&x, &s, &z};
    kn_tensor y = {0}, back = {0};
    CHECK_EQ_INT(run_q("QuantizeLinear", 13, 3, in, 1, &y, -1, 0, 0), KN_OK);
    const int want[10] = {0, 1, 2, 9, 8, 5, 4, 4, 19, 13}; /* 7/4 = 1.75 -> 2, + 2 */
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(((uint8_t *)y.data)[i], want[i]);
    const kn_tensor *din[3] = {&y, &s, &z};
    CHECK_EQ_INT(run_q("DequantizeLinear", 13, 3, din, 1, &back, -1, 0, 0), KN_OK);
    CHECK_NEAR(kt_at(&back, 3), 3.0, 1e-6);
    CHECK_NEAR(kt_at(&back, 7), 8.0, 1e-6); /* 7/4 = 1.75 -> 2 -> 8 */
    kn_tensor_release(&y);
    kn_tensor_release(&back);
    /* per-axis scale of the wrong length */
    CHECK_EQ_INT(run_q("QuantizeLinear", 13, 3, in, 1, &y, 0, 0, 0), KN_ERR_ARG);
    /* blocked along axis 1 with block 2: scale [2, 3] (last block ragged) */
    const double bsv[6] = {1, 2, 4, 1, 0.5, 0.25}, bzv[6] = {0, 0, 0, 1, 1, 1};
    kn_tensor bs = kt_tensor_f64(KN_F32, 2, bd, bsv), bz = kt_tensor_f64(KN_I16, 2, bd, bzv), xq = kt_tensor_f64(KN_I16, 2, xd, xv);
    const kn_tensor *bin[3] = {&xq, &bs, &bz};
    CHECK_EQ_INT(run_q("DequantizeLinear", 21, 3, bin, 1, &back, 1, 2, 0), KN_OK);
    const double bwant[10] = {0, 1, 4, 6, 16, 4, 5, 3, 3.5, 2};
    for (int i = 0; i < 10; i++)
        CHECK_NEAR(kt_at(&back, i), bwant[i], 1e-6);
    kn_tensor_release(&back);
    /* blocked scale with the wrong block count */
    CHECK_EQ_INT(run_q("DequantizeLinear", 21, 3, bin, 1, &back, 1, 3, 0), KN_ERR_ARG);
    CHECK_EQ_INT(run_q("DequantizeLinear", 21, 3, bin, 1, &back, 1, -1, 0), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&s);
    kn_tensor_release(&z);
    kn_tensor_release(&bs);
    kn_tensor_release(&bz);
    kn_tensor_release(&xq);
}

static void test_dequantize_types(void)
{
    int64_t d[1] = {3};
    const double xv[3] = {-32768, 0, 32767}, uv[3] = {0, 100, 65535};
    kn_tensor x = kt_tensor_f64(KN_I16, 1, d, xv), u = kt_tensor_f64(KN_U16, 1, d, uv);
    kn_tensor s = kt_tensor_f64(KN_F16, 0, NULL, (double[]){0.5}), zu = kt_tensor_f64(KN_U16, 0, NULL, (double[]){100});
    kn_tensor y = {0};
    const kn_tensor *in1[2] = {&x, &s};
    CHECK_EQ_INT(run_q("DequantizeLinear", 21, 2, in1, 1, &y, 99, 0, 0), KN_OK);
    CHECK_EQ_INT(y.dtype, KN_F16);
    CHECK_NEAR(kt_at(&y, 0), -16384, 0);
    kn_tensor_release(&y);
    const kn_tensor *in2[3] = {&u, &s, &zu};
    CHECK_EQ_INT(run_q("DequantizeLinear", 21, 3, in2, 1, &y, 99, 0, 0), KN_OK);
    CHECK_NEAR(kt_at(&y, 0), -50, 0);
    CHECK_NEAR(kt_at(&y, 1), 0, 0);
    kn_tensor_release(&y);
    /* zero point dtype must match x */
    const kn_tensor *in3[3] = {&x, &s, &zu};
    CHECK_EQ_INT(run_q("DequantizeLinear", 21, 3, in3, 1, &y, 99, 0, 0), KN_ERR_ARG);
    kn_tensor_release(&x);
    kn_tensor_release(&u);
    kn_tensor_release(&s);
    kn_tensor_release(&zu);
}

static void test_dynamic_quantize(void)
{
    /* the example from the operator documentation */
    const double xv[6] = {0, 2, -3, -2.5, 1.34, 0.5};
    int64_t d[1] = {6};
    kn_tensor x = kt_tensor_f64(KN_F32, 1, d, xv);
    const kn_tensor *in[1] = {&x};
    kn_tensor outs[3] = {{0}};
    CHECK_EQ_INT(run_q("DynamicQuantizeLinear", 11, 1, in, 3, outs, 99, 0, 0), KN_OK);
    CHECK_NEAR(kt_at(&outs[1], 0), 5.0 / 255, 1e-7);
    CHECK_EQ_INT(((uint8_t *)outs[2].data)[0], 153);
    const int want[6] = {153, 255, 0, 26, 221, 179};
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(((uint8_t *)outs[0].data)[i], want[i]);
    kt_release_all(outs, 3);
    /* all zeros: scale 0, everything 0; empty input too */
    const double zv[2] = {0, 0};
    int64_t d2[1] = {2}, d0[1] = {0};
    kn_tensor xz = kt_tensor_f64(KN_F32, 1, d2, zv), xe = kt_tensor_f64(KN_F32, 1, d0, NULL);
    in[0] = &xz;
    CHECK_EQ_INT(run_q("DynamicQuantizeLinear", 11, 1, in, 3, outs, 99, 0, 0), KN_OK);
    CHECK_EQ_INT(((uint8_t *)outs[0].data)[1], 0);
    kt_release_all(outs, 3);
    in[0] = &xe;
    CHECK_EQ_INT(run_q("DynamicQuantizeLinear", 11, 1, in, 3, outs, 99, 0, 0), KN_OK);
    CHECK_EQ_INT(outs[0].numel, 0);
    kt_release_all(outs, 3);
    kn_tensor_release(&x);
    kn_tensor_release(&xz);
    kn_tensor_release(&xe);
}

static void test_qlinear_matmul_broadcast(void)
{
    /* a [2, 2, 3] uint8, b [3, 2] int8, per-column b scale */
    double av[12], bv[6] = {1, -1, 2, 0, -3, 4};
    for (int i = 0; i < 12; i++)
        av[i] = 10 + i;
    int64_t ad[3] = {2, 2, 3}, bd[2] = {3, 2}, nd[1] = {2};
    kn_tensor a = kt_tensor_f64(KN_U8, 3, ad, av), b = kt_tensor_f64(KN_I8, 2, bd, bv);
    kn_tensor as = kt_tensor_f64(KN_F32, 0, NULL, (double[]){0.5}), az = kt_tensor_f64(KN_U8, 0, NULL, (double[]){10});
    kn_tensor bs = kt_tensor_f64(KN_F32, 1, nd, (double[]){1.0, 0.25}), bz = kt_tensor_f64(KN_I8, 1, nd, (double[]){0, 0});
    kn_tensor ys = kt_tensor_f64(KN_F32, 0, NULL, (double[]){1.0}), yz = kt_tensor_f64(KN_U8, 0, NULL, (double[]){100});
    kt_node t = {0};
    t.op = "QLinearMatMul";
    t.opset = 10;
    t.n_in = 8;
    const kn_tensor *in[8] = {&a, &as, &az, &b, &bs, &bz, &ys, &yz};
    memcpy(t.in, in, sizeof in);
    t.n_out = 1;
    kn_tensor y = {0};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_OK);
    CHECK_EQ_INT(y.rank, 3);
    int bad = 0;
    for (int bb = 0; bb < 2; bb++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                double acc = 0;
                for (int k = 0; k < 3; k++)
                    acc += (av[(bb * 2 + i) * 3 + k] - 10) * bv[k * 2 + j];
                double v = rint(acc * 0.5 * (j ? 0.25 : 1.0)) + 100;
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                bad += ((uint8_t *)y.data)[(bb * 2 + i) * 2 + j] != (uint8_t)v;
            }
    CHECK_EQ_INT(bad, 0);
    kn_tensor_release(&y);
    /* inner dims disagree */
    int64_t bd2[2] = {2, 2};
    kn_tensor b2 = kt_tensor_f64(KN_I8, 2, bd2, NULL);
    t.in[3] = &b2;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_ERR_ARG);
    kn_tensor *all[] = {&a, &b, &as, &az, &bs, &bz, &ys, &yz, &b2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kn_tensor_release(all[i]);
}

/* QLinearConv with padding, stride, dilation, groups, per-channel weight scales
 * and bias, against a direct loop in the test. */
enum { QC_C = 4, QC_H = 5, QC_W = 4, QC_M = 4, QC_G = 2, QC_KH = 3, QC_KW = 2 };

typedef struct qconv_case {
    const char *auto_pad;           /* NULL: explicit pads */
    int64_t pads[4], strides[2], dil[2];
} qconv_case;

static void check_qconv_case(const qconv_case *qc)
{
    enum { C = QC_C, H = QC_H, W = QC_W, M = QC_M, G = QC_G, KH = QC_KH, KW = QC_KW };
    double xv[C * H * W], wv[M * (C / G) * KH * KW];
    for (int i = 0; i < C * H * W; i++)
        xv[i] = (i * 37) % 256;
    for (int i = 0; i < M * (C / G) * KH * KW; i++)
        wv[i] = ((i * 53) % 200) - 100;
    int64_t xd[4] = {1, C, H, W}, wd[4] = {M, C / G, KH, KW}, md[1] = {M};
    kn_tensor x = kt_tensor_f64(KN_U8, 4, xd, xv), w = kt_tensor_f64(KN_I8, 4, wd, wv);
    kn_tensor xs = kt_tensor_f64(KN_F32, 0, NULL, (double[]){0.02}), xz = kt_tensor_f64(KN_U8, 0, NULL, (double[]){128});
    const double wsv[M] = {0.01, 0.02, 0.005, 0.03}, wzv[M] = {0, 0, 0, 0}, bv[M] = {100, -200, 0, 5000};
    kn_tensor ws = kt_tensor_f64(KN_F32, 1, md, wsv), wz = kt_tensor_f64(KN_I8, 1, md, wzv), bias = kt_tensor_f64(KN_I32, 1, md, bv);
    kn_tensor ys = kt_tensor_f64(KN_F32, 0, NULL, (double[]){0.05}), yz = kt_tensor_f64(KN_I8, 0, NULL, (double[]){-3});
    kt_node t = {0};
    t.op = "QLinearConv";
    t.opset = 10;
    t.n_in = 9;
    const kn_tensor *in[9] = {&x, &xs, &xz, &w, &ws, &wz, &ys, &yz, &bias};
    memcpy(t.in, in, sizeof in);
    t.n_out = 1;
    kt_add_attr(&t, kt_attr_int("group", G));
    int64_t pads[4];
    memcpy(pads, qc->pads, sizeof pads);
    if (qc->auto_pad) {
        kt_add_attr(&t, kt_attr_str("auto_pad", qc->auto_pad));
    } else {
        t.attrs[t.n_attr] = (kn_attr){.name = "pads", .type = KN_ATTR_INTS, .n = 4, .ints = (int64_t *)qc->pads};
        t.n_attr++;
    }
    t.attrs[t.n_attr] = (kn_attr){.name = "strides", .type = KN_ATTR_INTS, .n = 2, .ints = (int64_t *)qc->strides};
    t.n_attr++;
    t.attrs[t.n_attr] = (kn_attr){.name = "dilations", .type = KN_ATTR_INTS, .n = 2, .ints = (int64_t *)qc->dil};
    t.n_attr++;
    int64_t ext[2] = {(KH - 1) * qc->dil[0] + 1, (KW - 1) * qc->dil[1] + 1}, insz[2] = {H, W};
    int64_t out[2];
    for (int d = 0; d < 2; d++) {
        if (qc->auto_pad && strcmp(qc->auto_pad, "VALID")) {
            out[d] = (insz[d] + qc->strides[d] - 1) / qc->strides[d];
            int64_t total = (out[d] - 1) * qc->strides[d] + ext[d] - insz[d];
            total = total < 0 ? 0 : total;
            pads[d] = qc->auto_pad[5] == 'U' ? total / 2 : total - total / 2;
            pads[d + 2] = total - pads[d];
        }
        out[d] = (insz[d] + pads[d] + pads[d + 2] - ext[d]) / qc->strides[d] + 1;
    }
    kn_tensor y = {0};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, M * out[0] * out[1]);
    CHECK_EQ_INT(y.dtype, KN_I8);
    int bad = 0;
    for (int m = 0; m < M && y.numel == M * out[0] * out[1]; m++) {
        int g = m / (M / G);
        for (int oh = 0; oh < out[0]; oh++)
            for (int ow = 0; ow < out[1]; ow++) {
                double acc = bv[m];
                for (int ci = 0; ci < C / G; ci++)
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++) {
                            int64_t ih = oh * qc->strides[0] - pads[0] + kh * qc->dil[0];
                            int64_t iw = ow * qc->strides[1] - pads[1] + kw * qc->dil[1];
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            int c = g * (C / G) + ci;
                            acc += (xv[(c * H + ih) * W + iw] - 128) *
                                   wv[((m * (C / G) + ci) * KH + kh) * KW + kw];
                        }
                double v = rint(acc * (double)(float)((float)(0.02f * (float)wsv[m]) / 0.05f)) - 3;
                v = v < -128 ? -128 : v > 127 ? 127 : v;
                bad += ((int8_t *)y.data)[(m * out[0] + oh) * out[1] + ow] != (int8_t)v;
            }
    }
    CHECK_EQ_INT(bad, 0);
    kn_tensor_release(&y);
    if (!qc->auto_pad) {
        /* bias of the wrong size, group not dividing channels */
        int64_t d3[1] = {3};
        kn_tensor bias3 = kt_tensor_f64(KN_I32, 1, d3, NULL);
        t.in[8] = &bias3;
        CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_ERR_ARG);
        t.in[8] = &bias;
        t.attrs[0].i = 3;
        CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_ERR_ARG);
        kn_tensor_release(&bias3);
    }
    kn_tensor *all[] = {&x, &w, &xs, &xz, &ws, &wz, &bias, &ys, &yz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kn_tensor_release(all[i]);
}

static void test_qlinear_conv(void)
{
    const qconv_case cases[] = {
        {NULL, {1, 0, 2, 1}, {2, 1}, {1, 1}},
        {NULL, {0, 0, 0, 0}, {1, 1}, {1, 1}},
        {NULL, {2, 1, 2, 1}, {1, 2}, {2, 2}},
        {"SAME_UPPER", {0}, {2, 2}, {1, 1}},
        {"SAME_LOWER", {0}, {1, 3}, {2, 1}},
        {"VALID", {0}, {1, 1}, {1, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_qconv_case(&cases[i]);
}

/* ---------------------------------------------------------------- attention */

static void test_attention_masks_and_errors(void)
{
    int64_t qd[4] = {1, 2, 3, 4}, kd[4] = {1, 1, 5, 4}, md[2] = {3, 4};
    kn_tensor q = mk_rand(4, qd, 1), k = mk_rand(4, kd, 2), v = mk_rand(4, kd, 3);
    /* bool mask of width 4 < 5 keys: key 4 is masked by padding; row 1 fully masked */
    const double mv[12] = {1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1};
    kn_tensor mask = kt_tensor_f64(KN_BOOL, 2, md, mv);
    kt_node t = {0};
    t.op = "Attention";
    t.opset = 23;
    t.n_in = 4;
    t.in[0] = &q;
    t.in[1] = &k;
    t.in[2] = &v;
    t.in[3] = &mask;
    t.n_out = 4;
    kt_add_attr(&t, kt_attr_int("qk_matmul_output_mode", 3));
    kn_tensor outs[4] = {{0}};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
    /* probabilities [1, 2, 3, 5] */
    const kn_tensor *p = &outs[3];
    CHECK_EQ_INT(p->dims[3], 5);
    for (int h = 0; h < 2; h++) {
        double sum0 = 0, sum1 = 0;
        for (int j = 0; j < 5; j++) {
            sum0 += kt_at(p, (h * 3 + 0) * 5 + j);
            sum1 += kt_at(p, (h * 3 + 1) * 5 + j);
        }
        CHECK_NEAR(sum0, 1.0, 1e-6);
        CHECK_NEAR(sum1, 0.0, 0);
        CHECK_NEAR(kt_at(p, (h * 3 + 0) * 5 + 1), 0.0, 0);
        CHECK_NEAR(kt_at(p, (h * 3 + 0) * 5 + 4), 0.0, 0);
        for (int d = 0; d < 4; d++)
            CHECK_NEAR(kt_at(&outs[0], (h * 3 + 1) * 4 + d), 0.0, 0); /* fully masked row */
    }
    /* present key/value equal K/V without a past */
    CHECK_EQ_INT(outs[1].numel, k.numel);
    CHECK(outs[1].numel == k.numel && !memcmp(outs[1].data, k.data, k.nbytes));
    kt_release_all(outs, 4);
    /* mask longer than the keys */
    int64_t md2[2] = {3, 6};
    kn_tensor mask2 = kt_tensor_f64(KN_BOOL, 2, md2, NULL);
    t.in[3] = &mask2;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* q heads not a multiple of kv heads */
    int64_t kd3[4] = {1, 3, 5, 4};
    kn_tensor k3 = mk_rand(4, kd3, 4), v3 = mk_rand(4, kd3, 5);
    t.in[1] = &k3;
    t.in[2] = &v3;
    t.in[3] = NULL;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* 3-D without head counts */
    int64_t q3d[3] = {1, 3, 8};
    kn_tensor q3 = mk_rand(3, q3d, 6);
    t.in[0] = &q3;
    t.in[1] = &q3;
    t.in[2] = &q3;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* past_key without past_value */
    t.in[0] = &q;
    t.in[1] = &k;
    t.in[2] = &v;
    t.n_in = 6;
    t.in[4] = &k;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_ERR_ARG);
    /* with a past: present concatenates, causal offset is the past length */
    t.in[5] = &v;
    kt_add_attr(&t, kt_attr_int("is_causal", 1));
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
    CHECK_EQ_INT(outs[1].dims[2], 10);
    CHECK_EQ_INT(outs[3].dims[3], 10);
    /* query row 0 sees keys 0..5 only */
    CHECK_NEAR(kt_at(&outs[3], 6), 0.0, 0);
    CHECK(kt_at(&outs[3], 5) > 0);
    kt_release_all(outs, 4);
    /* no keys at all: zeros, no crash */
    int64_t kd0[4] = {1, 1, 0, 4};
    kn_tensor k0 = kt_tensor_f64(KN_F32, 4, kd0, NULL);
    t.n_in = 3;
    t.in[1] = &k0;
    t.in[2] = &k0;
    CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
    CHECK_NEAR(kt_at(&outs[0], 0), 0.0, 0);
    kt_release_all(outs, 4);
    kn_tensor *all[] = {&q, &k, &v, &mask, &mask2, &k3, &v3, &q3, &k0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kn_tensor_release(all[i]);
}

static void test_rotary_embedding(void)
{
    /* X [1, 1, 2, 6] with rotary dim 4: last two values pass through */
    double xv[12];
    for (int i = 0; i < 12; i++)
        xv[i] = i + 1;
    int64_t xd[4] = {1, 1, 2, 6}, cd[2] = {3, 2}, pd[2] = {1, 2};
    const double cv[6] = {1, 1, 0, 0, 0.6, 0.8}, sv[6] = {0, 0, 1, 1, 0.8, 0.6};
    kn_tensor x = kt_tensor_f64(KN_F32, 4, xd, xv), cs = kt_tensor_f64(KN_F32, 2, cd, cv), sn = kt_tensor_f64(KN_F32, 2, cd, sv);
    kn_tensor pos = kt_tensor_f64(KN_I64, 2, pd, (double[]){2, 1});
    kt_node t = {0};
    t.op = "RotaryEmbedding";
    t.opset = 23;
    t.n_in = 4;
    t.in[0] = &x;
    t.in[1] = &cs;
    t.in[2] = &sn;
    t.in[3] = &pos;
    t.n_out = 1;
    kt_add_attr(&t, kt_attr_int("rotary_embedding_dim", 4));
    kn_tensor y = {0};
    kn_error err;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_OK);
    /* row 0 uses position 2: cos (0.6, 0.8), sin (0.8, 0.6); pairs (x0, x2), (x1, x3) */
    CHECK_NEAR(kt_at(&y, 0), 0.6 * 1 - 0.8 * 3, 1e-6);
    CHECK_NEAR(kt_at(&y, 2), 0.8 * 1 + 0.6 * 3, 1e-6);
    CHECK_NEAR(kt_at(&y, 1), 0.8 * 2 - 0.6 * 4, 1e-6);
    CHECK_NEAR(kt_at(&y, 4), 5, 0);
    CHECK_NEAR(kt_at(&y, 5), 6, 0);
    /* row 1, position 1: cos 0, sin 1 -> (x0, x2) = (-x2, x0) */
    CHECK_NEAR(kt_at(&y, 6), -9, 1e-6);
    CHECK_NEAR(kt_at(&y, 8), 7, 1e-6);
    kn_tensor_release(&y);
    /* position id out of range */
    kn_tensor bad = kt_tensor_f64(KN_I64, 2, pd, (double[]){0, 3});
    t.in[3] = &bad;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_ERR_RUNTIME);
    /* odd rotary dim */
    t.in[3] = &pos;
    t.attrs[0].i = 3;
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_ERR_ARG);
    kn_tensor *all[] = {&x, &cs, &sn, &pos, &bad};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kn_tensor_release(all[i]);
}

/* Empty sequences, batches and tensors run without touching memory they do not own. */
static void test_empty_shapes(void)
{
    kn_error err;
    /* LSTM with seq 0 and with batch 0 */
    for (int k = 0; k < 2; k++) {
        int64_t xd[3] = {k ? 3 : 0, k ? 0 : 2, 2}, wd[3] = {2, 12, 2}, rd[3] = {2, 12, 3};
        int64_t hd[3] = {2, xd[1], 3};
        kn_tensor x = kt_tensor_f64(KN_F32, 3, xd, NULL), w = mk_rand(3, wd, 1), r = mk_rand(3, rd, 2);
        kn_tensor h0 = mk_rand(3, hd, 3);
        kt_node t = {0};
        t.op = "LSTM";
        t.opset = 14;
        t.n_in = 6;
        t.in[0] = &x;
        t.in[1] = &w;
        t.in[2] = &r;
        t.in[5] = &h0;
        t.n_out = 3;
        kt_add_attr(&t, kt_attr_str("direction", "bidirectional"));
        kn_tensor outs[3] = {{0}};
        CHECK_EQ_INT(kt_run_node(&t, outs, &err), KN_OK);
        CHECK_EQ_INT(outs[0].numel, 0);
        CHECK_EQ_INT(outs[1].numel, 2 * xd[1] * 3);
        for (int64_t i = 0; i < outs[1].numel; i++)
            CHECK_NEAR(kt_at(&outs[1], i), 0.0, 0);
        kt_release_all(outs, 3);
        kn_tensor_release(&x);
        kn_tensor_release(&w);
        kn_tensor_release(&r);
        kn_tensor_release(&h0);
    }
    /* Attention with batch 0 */
    int64_t qd[4] = {0, 2, 3, 4};
    kn_tensor q = kt_tensor_f64(KN_F32, 4, qd, NULL);
    kt_node t = {0};
    t.op = "Attention";
    t.opset = 24;
    t.n_in = 3;
    t.in[0] = t.in[1] = t.in[2] = &q;
    t.n_out = 1;
    kn_tensor y = {0};
    CHECK_EQ_INT(kt_run_node(&t, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&q);
    /* per-axis quantize of an empty tensor */
    int64_t ed[2] = {0, 3}, sd[1] = {3};
    kn_tensor e = kt_tensor_f64(KN_F32, 2, ed, NULL), s = kt_tensor_f64(KN_F32, 1, sd, (double[]){1, 2, 3});
    const kn_tensor *in[2] = {&e, &s};
    CHECK_EQ_INT(run_q("QuantizeLinear", 13, 2, in, 1, &y, 1, 0, 0), KN_OK);
    CHECK_EQ_INT(y.numel, 0);
    kn_tensor_release(&y);
    kn_tensor_release(&e);
    kn_tensor_release(&s);
    /* QLinearMatMul with K = 0: every output is the zero point */
    int64_t ad[2] = {2, 0}, bd[2] = {0, 3};
    kn_tensor a = kt_tensor_f64(KN_U8, 2, ad, NULL), b = kt_tensor_f64(KN_U8, 2, bd, NULL);
    kn_tensor one = kt_tensor_f64(KN_F32, 0, NULL, (double[]){1}), z = kt_tensor_f64(KN_U8, 0, NULL, (double[]){7});
    kt_node m = {0};
    m.op = "QLinearMatMul";
    m.opset = 10;
    m.n_in = 8;
    const kn_tensor *min[8] = {&a, &one, &z, &b, &one, &z, &one, &z};
    memcpy(m.in, min, sizeof min);
    m.n_out = 1;
    CHECK_EQ_INT(kt_run_node(&m, &y, &err), KN_OK);
    CHECK_EQ_INT(y.numel, 6);
    for (int64_t i = 0; i < y.numel; i++)
        CHECK_EQ_INT(((uint8_t *)y.data)[i], 7);
    kn_tensor_release(&y);
    kn_tensor_release(&a);
    kn_tensor_release(&b);
    kn_tensor_release(&one);
    kn_tensor_release(&z);
}

TEST_MAIN(TEST_CASE(test_bidirectional_matches_single_runs), TEST_CASE(test_sequence_lens),
          TEST_CASE(test_layout_batch_first), TEST_CASE(test_activations),
          TEST_CASE(test_lstm_peephole_input_forget), TEST_CASE(test_gru_linear_before_reset),
          TEST_CASE(test_rnn_other_dtypes), TEST_CASE(test_rnn_bad_inputs),
          TEST_CASE(test_quantize_rounding_and_saturation),
          TEST_CASE(test_quantize_per_axis_and_blocked), TEST_CASE(test_dequantize_types),
          TEST_CASE(test_dynamic_quantize), TEST_CASE(test_qlinear_matmul_broadcast),
          TEST_CASE(test_qlinear_conv), TEST_CASE(test_attention_masks_and_errors),
          TEST_CASE(test_rotary_embedding), TEST_CASE(test_empty_shapes))
