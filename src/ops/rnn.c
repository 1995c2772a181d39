/* rnn.c - operator family 'rnn': the ONNX recurrent layers RNN, GRU and LSTM.
 *
 * One driver handles all three: it validates shapes, loads every input into
 * double-precision working buffers (so float32, float64 and float16 share one
 * path), then runs each direction batch entry by batch entry, which makes
 * per-batch sequence_lens simple: steps past a sequence's end are not run, their
 * Y rows stay zero, and Y_h / Y_c hold the state after the last valid step.
 * Supported: directions forward / reverse / bidirectional, optional B,
 * sequence_lens, initial_h, initial_c, P (peepholes), activations with
 * activation_alpha / activation_beta, clip, input_forget (LSTM),
 * linear_before_reset (GRU) and layout (opset 14, batch-first). */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { RNN_PLAIN = 0, RNN_GRU = 1, RNN_LSTM = 2 };

/* ---------------------------------------------------------------- activations */

enum {
    ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_HARDSIGMOID, ACT_AFFINE, ACT_LEAKYRELU,
    ACT_THRESHOLDEDRELU, ACT_SCALEDTANH, ACT_ELU, ACT_SOFTSIGN, ACT_SOFTPLUS,
};

typedef struct act_fn {
    int kind;
    double alpha, beta;
} act_fn;

typedef struct act_info {
    const char *name;
    int kind;
    int n_params;           /* how many of alpha, beta it consumes */
    double alpha, beta;     /* defaults */
} act_info;

static const act_info act_table[] = {
    {"Sigmoid", ACT_SIGMOID, 0, 0, 0},
    {"Tanh", ACT_TANH, 0, 0, 0},
    {"Relu", ACT_RELU, 0, 0, 0},
    {"HardSigmoid", ACT_HARDSIGMOID, 2, 0.2, 0.5},
    {"Affine", ACT_AFFINE, 2, 1.0, 0.0},
    {"LeakyRelu", ACT_LEAKYRELU, 1, 0.01, 0},
    {"ThresholdedRelu", ACT_THRESHOLDEDRELU, 1, 1.0, 0},
    {"ScaledTanh", ACT_SCALEDTANH, 2, 1.0, 1.0},
    {"Elu", ACT_ELU, 1, 1.0, 0},
    {"Softsign", ACT_SOFTSIGN, 0, 0, 0},
    {"Softplus", ACT_SOFTPLUS, 0, 0, 0},
};

static double act_apply(const act_fn *f, double x)
{
    switch (f->kind) {
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case ACT_TANH: return tanh(x);
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_HARDSIGMOID: {
        double v = f->alpha * x + f->beta;
        return v < 0 ? 0 : v > 1 ? 1 : v;
    }
    case ACT_AFFINE: return f->alpha * x + f->beta;
    case ACT_LEAKYRELU: return x < 0 ? f->alpha * x : x;
    case ACT_THRESHOLDEDRELU: return x > f->alpha ? x : 0;
    case ACT_SCALEDTANH: return f->alpha * tanh(f->beta * x);
    case ACT_ELU: return x < 0 ? f->alpha * (exp(x) - 1.0) : x;
    case ACT_SOFTSIGN: return x / (1.0 + fabs(x));
    case ACT_SOFTPLUS: return x > 30 ? x + log1p(exp(-x)) : log1p(exp(x));
    default: return x;
    }
}

/* ---------------------------------------------------------------- configuration */

#define RNN_MAX_ACTS 3

typedef struct rnn_cfg {
    int kind, gates, n_acts;     /* gates per cell: 1 / 3 / 4; activations per direction */
    int ndir;                    /* 1 or 2 */
    bool reverse_only;           /* direction == "reverse" */
    int layout;                  /* 0: [seq, batch, ...], 1: batch-first */
    int64_t seq, batch, in, hid;
    double clip;                 /* < 0: no clipping */
    bool input_forget, lbr;
    act_fn acts[2][RNN_MAX_ACTS];
} rnn_cfg;

static int parse_direction(kn_op_ctx *c, rnn_cfg *cfg)
{
    const char *d = kn_attr_string(c->node, "direction", "forward");
    if (!strcmp(d, "forward") || !strcmp(d, "reverse")) {
        cfg->ndir = 1;
        cfg->reverse_only = d[0] == 'r';
    } else if (!strcmp(d, "bidirectional")) {
        cfg->ndir = 2;
    } else {
        return kn_fail(c->err, KN_ERR_ARG, "unknown direction '%s'", d);
    }
    return KN_OK;
}

static int parse_activations(kn_op_ctx *c, rnn_cfg *cfg)
{
    static const char *const defaults[3][3] = {
        {"Tanh"}, {"Sigmoid", "Tanh"}, {"Sigmoid", "Tanh", "Tanh"}};
    const char *const *names;
    const float *alphas, *betas;
    int n = kn_attr_strings(c->node, "activations", &names);
    int na = kn_attr_floats(c->node, "activation_alpha", &alphas);
    int nb = kn_attr_floats(c->node, "activation_beta", &betas);
    int per = cfg->n_acts, total = per * cfg->ndir;
    if (n >= 0 && n != total && n != per)
        return kn_fail(c->err, KN_ERR_ARG, "activations has %d entries, expected %d", n, total);
    int ia = 0, ib = 0;
    for (int k = 0; k < total; k++) {
        const char *name = n < 0 ? defaults[cfg->kind][k % per] : names[k % n];
        const act_info *info = NULL;
        for (size_t j = 0; j < sizeof act_table / sizeof act_table[0]; j++)
            if (!strcasecmp(name, act_table[j].name))
                info = &act_table[j];
        if (!info)
            return kn_fail(c->err, KN_ERR_UNSUPPORTED, "activation '%s' not supported", name);
        act_fn *f = &cfg->acts[k / per][k % per];
        f->kind = info->kind;
        f->alpha = info->alpha;
        f->beta = info->beta;
        if (info->n_params >= 1 && ia < na)
            f->alpha = alphas[ia++];
        if (info->n_params >= 2 && ib < nb)
            f->beta = betas[ib++];
    }
    return KN_OK;
}

static bool dims_are(const kn_tensor *t, int rank, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t want[3] = {d0, d1, d2};
    if (t->rank != rank)
        return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != want[i])
            return false;
    return true;
}

/* Read attributes and check every input's dtype and shape. */
static int rnn_configure(kn_op_ctx *c, int kind, rnn_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->gates = kind == RNN_PLAIN ? 1 : kind == RNN_GRU ? 3 : 4;
    cfg->n_acts = kind == RNN_PLAIN ? 1 : kind == RNN_GRU ? 2 : 3;
    for (int i = 0; i < 3; i++)
        KN_REQUIRE_INPUT(c, i);
    const kn_tensor *x = c->in[0], *w = c->in[1], *r = c->in[2];
    if (x->dtype != KN_F32 && x->dtype != KN_F64 && x->dtype != KN_F16 && x->dtype != KN_BF16)
        return kn_unsupported_dtype(c, x->dtype);
    for (int i = 1; i < c->n_in; i++) {
        const kn_tensor *t = c->in[i];
        if (t && i != 4 && t->dtype != x->dtype)
            return kn_fail(c->err, KN_ERR_ARG, "input %d has dtype %s, expected %s", i,
                           kn_dtype_name(t->dtype), kn_dtype_name(x->dtype));
    }
    if (parse_direction(c, cfg) || parse_activations(c, cfg))
        return c->err->code;
    cfg->layout = c->opset >= 14 ? (int)kn_attr_int(c->node, "layout", 0) : 0;
    if (cfg->layout != 0 && cfg->layout != 1)
        return kn_fail(c->err, KN_ERR_ARG, "layout must be 0 or 1");
    const kn_attr *clip = kn_attr_find(c->node, "clip");
    cfg->clip = clip ? clip->f : -1.0;
    if (clip && !(clip->f > 0))
        return kn_fail(c->err, KN_ERR_ARG, "clip must be positive");
    cfg->input_forget = kind == RNN_LSTM && kn_attr_int(c->node, "input_forget", 0) != 0;
    cfg->lbr = kind == RNN_GRU && kn_attr_int(c->node, "linear_before_reset", 0) != 0;
    if (x->rank != 3 || r->rank != 3 || w->rank != 3)
        return kn_fail(c->err, KN_ERR_ARG, "X, W and R must have rank 3");
    cfg->seq = x->dims[cfg->layout ? 1 : 0];
    cfg->batch = x->dims[cfg->layout ? 0 : 1];
    cfg->in = x->dims[2];
    cfg->hid = r->dims[2];
    if (cfg->hid > INT32_MAX || cfg->batch > INT32_MAX || cfg->in > INT32_MAX)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "RNN sizes beyond 2^31 are not supported");
    int64_t hs = kn_attr_int(c->node, "hidden_size", cfg->hid);
    int64_t gh = cfg->gates * cfg->hid, nd = cfg->ndir;
    if (hs != cfg->hid)
        return kn_fail(c->err, KN_ERR_ARG, "hidden_size %lld differs from R's shape",
                       (long long)hs);
    if (!dims_are(w, 3, nd, gh, cfg->in))
        return kn_fail(c->err, KN_ERR_ARG, "W must be [%lld, %lld, %lld]", (long long)nd,
                       (long long)gh, (long long)cfg->in);
    if (!dims_are(r, 3, nd, gh, cfg->hid))
        return kn_fail(c->err, KN_ERR_ARG, "R must be [%lld, %lld, %lld]", (long long)nd,
                       (long long)gh, (long long)cfg->hid);
    const kn_tensor *b = kn_op_in(c, 3), *sl = kn_op_in(c, 4);
    if (b && !dims_are(b, 2, nd, 2 * gh, 0))
        return kn_fail(c->err, KN_ERR_ARG, "B must be [%lld, %lld]", (long long)nd,
                       (long long)(2 * gh));
    if (sl && (!kn_dtype_is_int(sl->dtype) || sl->rank != 1 || sl->dims[0] != cfg->batch))
        return kn_fail(c->err, KN_ERR_ARG, "sequence_lens must be an int tensor of shape [%lld]",
                       (long long)cfg->batch);
    int n_state = kind == RNN_LSTM ? 2 : 1;
    for (int k = 0; k < n_state; k++) {
        const kn_tensor *t = kn_op_in(c, 5 + k);
        int64_t d0 = cfg->layout ? cfg->batch : nd, d1 = cfg->layout ? nd : cfg->batch;
        if (t && !dims_are(t, 3, d0, d1, cfg->hid))
            return kn_fail(c->err, KN_ERR_ARG, "%s must be [%lld, %lld, %lld]",
                           k ? "initial_c" : "initial_h", (long long)d0, (long long)d1,
                           (long long)cfg->hid);
    }
    /* working state is [dirs, batch, 3 * gates * hidden] at most: refuse absurd sizes */
    int64_t state;
    if (!kn_mul_ok(nd * cfg->batch + 1, 3 * gh + 3, &state) || state > (int64_t)(KN_MAX_TENSOR_BYTES / 8))
        return kn_fail(c->err, KN_ERR_NOMEM, "RNN state for batch %lld is too large",
                       (long long)cfg->batch);
    const kn_tensor *p = kind == RNN_LSTM ? kn_op_in(c, 7) : NULL;
    if (p && !dims_are(p, 2, nd, 3 * cfg->hid, 0))
        return kn_fail(c->err, KN_ERR_ARG, "P must be [%lld, %lld]", (long long)nd,
                       (long long)(3 * cfg->hid));
    return KN_OK;
}

/* ---------------------------------------------------------------- working buffers */

typedef struct rnn_work {
    double *x;          /* [seq][batch][in] */
    double *w, *r;      /* [dir][gates*hid][in], [dir][gates*hid][hid] */
    double *bias;       /* [dir][2*gates*hid], zeros when B is absent */
    double *peep;       /* [dir][3*hid], zeros when P is absent */
    double *h0, *c0;    /* [dir][batch][hid] */
    int64_t *lens;      /* [batch] */
    double *gates;      /* scratch [gates*hid] x 2 */
    double *h, *cst;    /* running state [hid] */
} rnn_work;

static void work_free(rnn_work *wk)
{
    free(wk->x);
    free(wk->w);
    free(wk->r);
    free(wk->bias);
    free(wk->peep);
    free(wk->h0);
    free(wk->c0);
    free(wk->lens);
    free(wk->gates);
    free(wk->h);
    free(wk->cst);
}

static double *alloc_doubles(int64_t n)
{
    return calloc(n > 0 ? (size_t)n : 1, sizeof(double));
}

/* Load a rank-3 t as doubles; with swap, [d0][d1][rest] becomes [d1][d0][rest]. */
static void load_swapped(const kn_tensor *t, bool swap, double *out)
{
    int64_t d0 = t->dims[0], d1 = t->dims[1], rest = t->dims[2];
    for (int64_t i = 0; i < d0; i++)
        for (int64_t j = 0; j < d1; j++)
            for (int64_t k = 0; k < rest; k++) {
                int64_t src = (i * d1 + j) * rest + k;
                int64_t dst = swap ? (j * d0 + i) * rest + k : src;
                out[dst] = kn_load_f64(t->data, t->dtype, (size_t)src);
            }
}

static void load_plain(const kn_tensor *t, double *out)
{
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = kn_load_f64(t->data, t->dtype, (size_t)i);
}

static int work_init(kn_op_ctx *c, const rnn_cfg *cfg, rnn_work *wk)
{
    memset(wk, 0, sizeof *wk);
    int64_t gh = cfg->gates * cfg->hid, nd = cfg->ndir;
    const kn_tensor *x = c->in[0], *b = kn_op_in(c, 3), *sl = kn_op_in(c, 4);
    const kn_tensor *ih = kn_op_in(c, 5), *ic = cfg->kind == RNN_LSTM ? kn_op_in(c, 6) : NULL;
    const kn_tensor *p = cfg->kind == RNN_LSTM ? kn_op_in(c, 7) : NULL;
    wk->x = alloc_doubles(x->numel);
    wk->w = alloc_doubles(c->in[1]->numel);
    wk->r = alloc_doubles(c->in[2]->numel);
    wk->bias = alloc_doubles(nd * 2 * gh);
    wk->peep = alloc_doubles(nd * 3 * cfg->hid);
    wk->h0 = alloc_doubles(nd * cfg->batch * cfg->hid);
    wk->c0 = alloc_doubles(nd * cfg->batch * cfg->hid);
    wk->lens = calloc(cfg->batch > 0 ? (size_t)cfg->batch : 1, sizeof(int64_t));
    wk->gates = alloc_doubles(2 * gh);
    wk->h = alloc_doubles(cfg->hid);
    wk->cst = alloc_doubles(cfg->hid);
    if (!wk->x || !wk->w || !wk->r || !wk->bias || !wk->peep || !wk->h0 || !wk->c0 ||
        !wk->lens || !wk->gates || !wk->h || !wk->cst)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory for RNN working buffers");
    load_swapped(x, cfg->layout == 1, wk->x);
    load_plain(c->in[1], wk->w);
    load_plain(c->in[2], wk->r);
    if (b)
        load_plain(b, wk->bias);
    if (p)
        load_plain(p, wk->peep);
    if (ih)
        load_swapped(ih, cfg->layout == 1, wk->h0);
    if (ic)
        load_swapped(ic, cfg->layout == 1, wk->c0);
    for (int64_t i = 0; i < cfg->batch; i++) {
        int64_t len = sl ? kn_load_i64(sl->data, sl->dtype, (size_t)i) : cfg->seq;
        if (len < 0 || len > cfg->seq)
            return kn_fail(c->err, KN_ERR_ARG, "sequence_lens[%lld] = %lld is outside [0, %lld]",
                           (long long)i, (long long)len, (long long)cfg->seq);
        wk->lens[i] = len;
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- one time step */

static double clipped(const rnn_cfg *cfg, double v)
{
    if (cfg->clip < 0)
        return v;
    return v < -cfg->clip ? -cfg->clip : v > cfg->clip ? cfg->clip : v;
}

/* out += m . v for a row-major [rows, cols] matrix m. */
static void gemv_add(const double *m, const double *v, int64_t rows, int64_t cols, double *out)
{
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        const double *row = m + i * cols;
        for (int64_t k = 0; k < cols; k++)
            s += row[k] * v[k];
        out[i] += s;
    }
}

typedef struct dir_ctx {
    const double *w, *r, *wb, *rb, *peep;
    const act_fn *acts;
} dir_ctx;

/* Input and recurrent contributions for one step: xg = W x + Wb, hg = R h + Rb. */
static void step_projections(const rnn_cfg *cfg, const dir_ctx *d, const double *xt,
                             const double *h, double *xg, double *hg)
{
    int64_t gh = cfg->gates * cfg->hid;
    memcpy(xg, d->wb, sizeof(double) * (size_t)gh);
    memcpy(hg, d->rb, sizeof(double) * (size_t)gh);
    gemv_add(d->w, xt, gh, cfg->in, xg);
    gemv_add(d->r, h, gh, cfg->hid, hg);
}

static void step_rnn(const rnn_cfg *cfg, const dir_ctx *d, double *xg, double *hg, double *h)
{
    for (int64_t j = 0; j < cfg->hid; j++)
        h[j] = act_apply(&d->acts[0], clipped(cfg, xg[j] + hg[j]));
}

/* Gates z, r, h. */
static void step_gru(const rnn_cfg *cfg, const dir_ctx *d, double *xg, double *hg, double *h)
{
    int64_t H = cfg->hid;
    const act_fn *f = &d->acts[0], *g = &d->acts[1];
    for (int64_t j = 0; j < 2 * H; j++)
        xg[j] = act_apply(f, clipped(cfg, xg[j] + hg[j])); /* z then r */
    const double *z = xg, *rg = xg + H;
    double *hh = xg + 2 * H;
    if (cfg->lbr) {
        for (int64_t j = 0; j < H; j++)
            hh[j] = act_apply(g, clipped(cfg, hh[j] + rg[j] * hg[2 * H + j]));
    } else {
        /* recompute Rh . (r * h) + Rbh; hg's h-part is unused */
        double *rh = hg;   /* reuse the z-part of hg as scratch: already consumed */
        for (int64_t j = 0; j < H; j++)
            rh[j] = rg[j] * h[j];
        const double *rmat = d->r + 2 * H * H;
        for (int64_t j = 0; j < H; j++) {
            double s = d->rb[2 * H + j];
            for (int64_t k = 0; k < H; k++)
                s += rmat[j * H + k] * rh[k];
            hh[j] = act_apply(g, clipped(cfg, hh[j] + s));
        }
    }
    for (int64_t j = 0; j < H; j++)
        h[j] = (1.0 - z[j]) * hh[j] + z[j] * h[j];
}

/* Gates i, o, f, c; peepholes i, o, f. */
static void step_lstm(const rnn_cfg *cfg, const dir_ctx *d, double *xg, double *hg, double *h,
                      double *cs)
{
    int64_t H = cfg->hid;
    const act_fn *f = &d->acts[0], *g = &d->acts[1], *hf = &d->acts[2];
    const double *pi = d->peep, *po = d->peep + H, *pf = d->peep + 2 * H;
    for (int64_t j = 0; j < H; j++) {
        double gi = act_apply(f, clipped(cfg, xg[j] + hg[j] + pi[j] * cs[j]));
        double gf = cfg->input_forget
                        ? 1.0 - gi
                        : act_apply(f, clipped(cfg, xg[2 * H + j] + hg[2 * H + j] + pf[j] * cs[j]));
        double gc = act_apply(g, clipped(cfg, xg[3 * H + j] + hg[3 * H + j]));
        double cn = gf * cs[j] + gi * gc;
        double go = act_apply(f, clipped(cfg, xg[H + j] + hg[H + j] + po[j] * cn));
        cs[j] = cn;
        h[j] = go * act_apply(hf, cn);
    }
}

/* ---------------------------------------------------------------- driver */

typedef struct rnn_out {
    kn_tensor *y, *yh, *yc;
} rnn_out;

static int64_t y_index(const rnn_cfg *cfg, int64_t t, int64_t dir, int64_t b)
{
    if (cfg->layout)
        return ((b * cfg->seq + t) * cfg->ndir + dir) * cfg->hid;
    return ((t * cfg->ndir + dir) * cfg->batch + b) * cfg->hid;
}

static int64_t state_index(const rnn_cfg *cfg, int64_t dir, int64_t b)
{
    if (cfg->layout)
        return (b * cfg->ndir + dir) * cfg->hid;
    return (dir * cfg->batch + b) * cfg->hid;
}

static void store_vec(kn_tensor *t, int64_t off, const double *v, int64_t n)
{
    if (!t)
        return;
    for (int64_t j = 0; j < n; j++)
        kn_store_f64(t->data, t->dtype, (size_t)(off + j), v[j]);
}

static void run_direction(const rnn_cfg *cfg, rnn_work *wk, int dir, bool reverse, rnn_out *o)
{
    int64_t H = cfg->hid, gh = cfg->gates * H;
    dir_ctx d = {
        .w = wk->w + dir * gh * cfg->in,
        .r = wk->r + dir * gh * H,
        .wb = wk->bias + dir * 2 * gh,
        .rb = wk->bias + dir * 2 * gh + gh,
        .peep = wk->peep + dir * 3 * H,
        .acts = cfg->acts[dir],
    };
    double *xg = wk->gates, *hg = wk->gates + gh;
    for (int64_t b = 0; b < cfg->batch; b++) {
        int64_t len = wk->lens[b];
        memcpy(wk->h, wk->h0 + (dir * cfg->batch + b) * H, sizeof(double) * (size_t)H);
        memcpy(wk->cst, wk->c0 + (dir * cfg->batch + b) * H, sizeof(double) * (size_t)H);
        for (int64_t s = 0; s < len; s++) {
            int64_t t = reverse ? len - 1 - s : s;
            const double *xt = wk->x + (t * cfg->batch + b) * cfg->in;
            step_projections(cfg, &d, xt, wk->h, xg, hg);
            if (cfg->kind == RNN_PLAIN)
                step_rnn(cfg, &d, xg, hg, wk->h);
            else if (cfg->kind == RNN_GRU)
                step_gru(cfg, &d, xg, hg, wk->h);
            else
                step_lstm(cfg, &d, xg, hg, wk->h, wk->cst);
            if (o->y)
                store_vec(o->y, y_index(cfg, t, dir, b), wk->h, H);
        }
        if (len == 0) {
            /* nothing ran: the final state is reported as zeros */
            memset(wk->h, 0, sizeof(double) * (size_t)H);
            memset(wk->cst, 0, sizeof(double) * (size_t)H);
        }
        store_vec(o->yh, state_index(cfg, dir, b), wk->h, H);
        store_vec(o->yc, state_index(cfg, dir, b), wk->cst, H);
    }
}

static int alloc_outputs(kn_op_ctx *c, const rnn_cfg *cfg, rnn_out *o)
{
    kn_dtype dt = c->in[0]->dtype;
    int64_t nd = cfg->ndir;
    int64_t ydims[4] = {cfg->seq, nd, cfg->batch, cfg->hid};
    int64_t sdims[3] = {nd, cfg->batch, cfg->hid};
    if (cfg->layout) {
        int64_t yl[4] = {cfg->batch, cfg->seq, nd, cfg->hid};
        int64_t sl[3] = {cfg->batch, nd, cfg->hid};
        memcpy(ydims, yl, sizeof yl);
        memcpy(sdims, sl, sizeof sl);
    }
    memset(o, 0, sizeof *o);
    if (c->n_out > 0 && !(o->y = kn_op_output(c, 0, dt, 4, ydims)))
        return c->err->code;
    if (c->n_out > 1 && !(o->yh = kn_op_output(c, 1, dt, 3, sdims)))
        return c->err->code;
    if (cfg->kind == RNN_LSTM && c->n_out > 2 && !(o->yc = kn_op_output(c, 2, dt, 3, sdims)))
        return c->err->code;
    return KN_OK;
}

static int run_recurrent(kn_op_ctx *c, int kind)
{
    rnn_cfg cfg;
    if (rnn_configure(c, kind, &cfg))
        return c->err->code;
    rnn_out o;
    if (alloc_outputs(c, &cfg, &o))
        return c->err->code;
    rnn_work wk;
    int rc = work_init(c, &cfg, &wk);
    if (rc == KN_OK) {
        for (int dir = 0; dir < cfg.ndir; dir++)
            run_direction(&cfg, &wk, dir, dir == 1 || cfg.reverse_only, &o);
    }
    work_free(&wk);
    return rc;
}

static int run_rnn(kn_op_ctx *c) { return run_recurrent(c, RNN_PLAIN); }
static int run_gru(kn_op_ctx *c) { return run_recurrent(c, RNN_GRU); }
static int run_lstm(kn_op_ctx *c) { return run_recurrent(c, RNN_LSTM); }

const kn_op_def kn_ops_rnn[] = {
    {"", "RNN", 1, run_rnn, NULL, NULL},
    {"", "GRU", 1, run_gru, NULL, NULL},
    {"", "LSTM", 1, run_lstm, NULL, NULL},
    {0},
};
