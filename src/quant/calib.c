/* calib.c - calibration statistics (quant.h): a collector fed value by value over
 * many batches (min, max and two magnitude histograms per value name) and the
 * three ways of turning them into activation ranges: minmax, percentile and
 * entropy (KL divergence, TensorRT-style).
 *
 * Each sign has its own histogram: the positive values' x and the negative
 * values' -x, so hi comes from the positive side and lo from the negative side
 * (a ReLU output has no negative side and gets lo = 0; an input whose negative
 * side is one spike, like normalized background pixels, is not clipped by its
 * positive tail or the other way round).  Exact zeros are counted apart: zero is
 * always representable, so they take no part in the search for a threshold.
 *
 * A histogram: HIST_BINS counts, bin b holding [b*w, (b+1)*w) with the width w a
 * power of two, the smallest one for which the largest magnitude seen so far falls
 * inside.  When a later batch holds a larger one the width doubles as often as
 * needed and bins merge (b -> b >> shift); because x * 2^-e is exact, a value lands
 * in the same bin whether it came before or after a merge, so the histogram - and
 * every range - does not depend on how the data was split into batches.  The data
 * covers at least half of the bins.  A side's bins are allocated when it first
 * gets a value (ReLU outputs never pay for a negative side). */
#include "quant/quant.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HIST_LOG2 12
#define HIST_BINS (1 << HIST_LOG2) /* stored bins per value (32 KiB of counts) */
#define KL_BINS 2048               /* bins of the histogram the entropy search works on */
#define KL_LEVELS 128              /* quantization levels of a candidate distribution */
#define KL_STEP 1                  /* candidate thresholds: every bin from 128 to 2048 */

typedef struct side_hist {
    uint64_t count;     /* values on this side (not zero) */
    float amax;         /* largest magnitude among them */
    bool has_width;
    int exp;            /* bin width = 2^exp */
    uint64_t *bins;     /* HIST_BINS counts of magnitudes, allocated on first use */
} side_hist;

enum { POS = 0, NEG = 1 };

typedef struct calib_stat {
    char *name;
    float min, max;     /* of the finite values seen */
    uint64_t count;     /* finite values seen */
    side_hist side[2];  /* percentile / entropy only: positive x, negative -x */
} calib_stat;

struct kn_calib {
    kn_calib_opts opts;
    calib_stat *v;
    size_t n, cap;
    size_t hint;        /* where the next lookup looks first: runs feed values in the same order */
};

void kn_calib_opts_init(kn_calib_opts *o)
{
    o->method = KN_CALIB_MINMAX;
    o->percentile = 99.99;
}

static const char *const method_names[] = {"minmax", "percentile", "entropy"};

int kn_calib_method_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, method_names[i]))
            return i;
    return -1;
}

const char *kn_calib_method_name(kn_calib_method m)
{
    return (unsigned)m < 3 ? method_names[m] : "?";
}

int kn_calib_create(const kn_calib_opts *o, kn_calib **out, kn_error *err)
{
    *out = NULL;
    if ((unsigned)o->method > KN_CALIB_ENTROPY)
        return kn_fail(err, KN_ERR_ARG, "calibration: unknown method %d", (int)o->method);
    if (o->method == KN_CALIB_PERCENTILE && !(o->percentile > 0 && o->percentile <= 100))
        return kn_fail(err, KN_ERR_ARG, "calibration: percentile %g is not in (0, 100]", o->percentile);
    kn_calib *c = calloc(1, sizeof *c);
    if (!c)
        return kn_fail(err, KN_ERR_NOMEM, "calibration: out of memory");
    c->opts = *o;
    *out = c;
    return KN_OK;
}

void kn_calib_free(kn_calib *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].name);
        free(c->v[i].side[POS].bins);
        free(c->v[i].side[NEG].bins);
    }
    free(c->v);
    free(c);
}

static calib_stat *stat_append(kn_calib *c, const char *name, kn_error *err)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        calib_stat *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return kn_fail(err, KN_ERR_NOMEM, "calibration: out of memory"), NULL;
        c->v = v;
        c->cap = cap;
    }
    calib_stat *s = &c->v[c->n];
    memset(s, 0, sizeof *s);
    if (!(s->name = strdup(name)))
        return kn_fail(err, KN_ERR_NOMEM, "calibration: out of memory"), NULL;
    s->min = INFINITY;
    s->max = -INFINITY;
    c->n++;
    return s;
}

static calib_stat *stat_for(kn_calib *c, const char *name, kn_error *err)
{
    size_t at = c->hint;
    if (at >= c->n || strcmp(c->v[at].name, name) != 0)
        for (at = 0; at < c->n && strcmp(c->v[at].name, name) != 0; at++)
            ;
    c->hint = at + 1;
    return at < c->n ? &c->v[at] : stat_append(c, name, err);
}

/* min/max of the finite values into s; returns how many were finite. */
static size_t update_minmax(calib_stat *s, const float *x, size_t n)
{
    float lo = s->min, hi = s->max;
    size_t finite = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (!isfinite(v))
            continue;
        finite++;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    s->min = lo;
    s->max = hi;
    s->count += finite;
    return finite;
}

/* Merge bins so that the width becomes 2^exp (exp > h->exp).  In place: bin b only
 * ever moves down to b >> shift, which has already been emptied. */
static void side_widen(side_hist *h, int exp)
{
    int shift = exp - h->exp;
    for (size_t b = 1; b < HIST_BINS; b++) {
        uint64_t v = h->bins[b];
        h->bins[b] = 0;
        h->bins[shift < HIST_LOG2 ? b >> shift : 0] += v;
    }
    h->exp = exp;
}

/* Make the side's width cover amax (> 0): the smallest 2^e with amax < HIST_BINS * 2^e. */
static int side_fit(side_hist *h, float amax, kn_error *err)
{
    if (!h->bins && !(h->bins = calloc(HIST_BINS, sizeof *h->bins)))
        return kn_fail(err, KN_ERR_NOMEM, "calibration: out of memory for a histogram");
    int p;
    frexp((double)amax, &p); /* 2^(p-1) <= amax < 2^p */
    int exp = p - HIST_LOG2;
    if (!h->has_width) {
        h->exp = exp;
        h->has_width = true;
    } else if (exp > h->exp) {
        side_widen(h, exp);
    }
    h->amax = amax > h->amax ? amax : h->amax;
    return KN_OK;
}

/* Count each finite non-zero x in its side's histogram (the sides already fit). */
static void hist_add(calib_stat *s, const float *x, size_t n)
{
    side_hist *pos = &s->side[POS], *neg = &s->side[NEG];
    double ps = pos->has_width ? ldexp(1.0, -pos->exp) : 0, ns = neg->has_width ? -ldexp(1.0, -neg->exp) : 0;
    uint64_t n_pos = 0, n_neg = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (v > 0 && v <= FLT_MAX) {
            size_t b = (size_t)((double)v * ps);
            pos->bins[b < HIST_BINS ? b : HIST_BINS - 1]++;
            n_pos++;
        } else if (v < 0 && v >= -FLT_MAX) {
            size_t b = (size_t)((double)v * ns);
            neg->bins[b < HIST_BINS ? b : HIST_BINS - 1]++;
            n_neg++;
        }
    }
    pos->count += n_pos;
    neg->count += n_neg;
}

int kn_calib_add(kn_calib *c, const char *name, const float *x, size_t n, kn_error *err)
{
    if (!c || !name || (!x && n))
        return kn_fail(err, KN_ERR_ARG, "calibration: no collector, name or data");
    calib_stat *s = stat_for(c, name, err);
    if (!s)
        return err ? err->code : KN_ERR_NOMEM;
    if (!update_minmax(s, x, n) || c->opts.method == KN_CALIB_MINMAX)
        return KN_OK;
    if (s->max > 0 && side_fit(&s->side[POS], s->max, err))
        return KN_ERR_NOMEM;
    if (s->min < 0 && side_fit(&s->side[NEG], -s->min, err))
        return KN_ERR_NOMEM;
    hist_add(s, x, n);
    return KN_OK;
}

int kn_calib_observe(void *user, const char *name, const kn_tensor *t, kn_error *err)
{
    if (t->kind != KN_VALUE_TENSOR || t->dtype != KN_F32 || (t->numel && !t->data))
        return KN_OK;
    return kn_calib_add(user, name, t->data, (size_t)t->numel, err);
}

/* ---- thresholds of one side ---- */

/* The p-th percentile of the side's magnitudes, interpolated inside its bin. */
static double percentile_threshold(const side_hist *h, double p)
{
    double w = ldexp(1.0, h->exp), target = p / 100.0 * (double)h->count, cum = 0;
    for (size_t b = 0; b < HIST_BINS; b++) {
        double n = (double)h->bins[b];
        if (n > 0 && cum + n >= target) {
            double t = ((double)b + (target - cum) / n) * w;
            return t < h->amax ? t : h->amax;
        }
        cum += n;
    }
    return h->amax;
}

/* Spread the stored histogram over KL_BINS bins spanning [0, amax], a stored bin's
 * count split in proportion to its overlap (the last occupied bin is taken to end
 * at amax).  A new bin is at least as wide as a stored one (amax >= KL_BINS * w),
 * so a stored bin touches at most two new ones.  Returns the new bins' width. */
static double resample_for_kl(const side_hist *h, double *out)
{
    double amax = h->amax, w = ldexp(1.0, h->exp), dw = amax / KL_BINS;
    memset(out, 0, KL_BINS * sizeof *out);
    for (size_t b = 0; b < HIST_BINS; b++) {
        if (!h->bins[b])
            continue;
        double n = (double)h->bins[b];
        double lo = (double)b * w, hi = fmin((double)(b + 1) * w, amax);
        size_t d0 = (size_t)fmin(lo / dw, KL_BINS - 1), d1 = (size_t)fmin(hi / dw, KL_BINS - 1);
        if (d1 == d0 || hi <= lo) {
            out[d0] += n;
            continue;
        }
        double first = n * fmax(0.0, fmin(1.0, ((double)d1 * dw - lo) / (hi - lo)));
        out[d0] += first;
        out[d1] += n - first;
    }
    return dw;
}

/* Prefix sums over the KL histogram h: of the counts, of h log h and of the
 * non-empty bins, so that a candidate's divergence costs O(KL_LEVELS). */
typedef struct kl_prefix {
    double count[KL_BINS + 1], hlogh[KL_BINS + 1];
    int nonzero[KL_BINS + 1];
} kl_prefix;

static void kl_prefix_build(const double *h, kl_prefix *s)
{
    s->count[0] = s->hlogh[0] = 0;
    s->nonzero[0] = 0;
    for (size_t j = 0; j < KL_BINS; j++) {
        s->count[j + 1] = s->count[j] + h[j];
        s->hlogh[j + 1] = s->hlogh[j] + (h[j] > 0 ? h[j] * log(h[j]) : 0);
        s->nonzero[j + 1] = s->nonzero[j] + (h[j] > 0);
    }
}

/* KL(P || Q) for clipping at i bins.  P: h[0..i) with the mass beyond (tail)
 * folded into bin i-1.  Q: h[0..i) WITHOUT that mass, quantized to KL_LEVELS
 * levels (level l = bins [ceil(l*i/L), ceil((l+1)*i/L))) and expanded back, each
 * level's mass shared equally by its non-empty bins.  (Quantizing P itself would
 * make Q == P at i == KL_LEVELS, a zero divergence that always wins; leaving the
 * clipped mass out of Q is what makes clipping cost something.)  Both normalized.
 * Over a level's non-empty bins, sum p log(p/q) = (sum h log h - m log(m/nz)) / Pt
 * + m (log Qt - log Pt) / Pt with m the level's mass, nz its non-empty bins; bin
 * i-1 is then corrected for the folded tail (when Q has nothing there, q is
 * floored at 1e-4 / i). */
static double kl_for_candidate(const double *h, const kl_prefix *s, size_t i, double tail)
{
    double q_total = s->count[i], p_total = q_total + tail;
    if (q_total <= 0)
        return INFINITY;
    double sum = 0, log_ratio = log(q_total) - log(p_total), last_q = 0;
    for (size_t l = 0; l < KL_LEVELS; l++) {
        size_t a = (l * i + KL_LEVELS - 1) / KL_LEVELS, b = ((l + 1) * i + KL_LEVELS - 1) / KL_LEVELS;
        int nz = s->nonzero[b] - s->nonzero[a];
        if (!nz)
            continue;
        double m = s->count[b] - s->count[a], q_raw = m / nz;
        sum += s->hlogh[b] - s->hlogh[a] - m * log(q_raw) + m * log_ratio;
        if (b == i)
            last_q = q_raw;
    }
    double kl = sum / p_total;
    if (tail > 0) {
        double hl = h[i - 1], p_last = (hl + tail) / p_total;
        if (hl > 0) /* replace the last bin's term: its p grew by the tail */
            kl -= hl / p_total * log((hl / p_total) / (last_q / q_total));
        double q_last = hl > 0 ? last_q / q_total : 1e-4 / (double)i;
        kl += p_last * log(p_last / q_last);
    }
    return kl;
}

/* The threshold (candidates every KL_STEP bins from KL_LEVELS to KL_BINS) with the
 * least divergence; the first one on ties. */
static double entropy_threshold(const side_hist *s)
{
    double h[KL_BINS];
    kl_prefix pre; /* 40 KiB on the stack */
    double dw = resample_for_kl(s, h);
    kl_prefix_build(h, &pre);
    double best_kl = INFINITY;
    size_t best = KL_BINS;
    for (size_t i = KL_LEVELS; i <= KL_BINS; i += KL_STEP) {
        double kl = kl_for_candidate(h, &pre, i, pre.count[KL_BINS] - pre.count[i]);
        if (kl < best_kl) {
            best_kl = kl;
            best = i;
        }
    }
    double t = (double)best * dw;
    return t < s->amax ? t : s->amax;
}

static double side_threshold(const side_hist *h, const kn_calib_opts *o)
{
    if (!h->count || !h->has_width)
        return 0.0;
    return o->method == KN_CALIB_PERCENTILE ? percentile_threshold(h, o->percentile) : entropy_threshold(h);
}

static void range_of(const calib_stat *s, const kn_calib_opts *o, float *lo, float *hi)
{
    double l = s->min, h = s->max;
    if (o->method != KN_CALIB_MINMAX) {
        l = -side_threshold(&s->side[NEG], o);
        h = side_threshold(&s->side[POS], o);
    }
    *lo = (float)fmin(l, 0.0);
    *hi = (float)fmax(h, 0.0);
}

int kn_calib_ranges(const kn_calib *c, kn_act_ranges *out, kn_error *err)
{
    out->v = NULL;
    out->n = 0;
    if (!c || !c->n)
        return KN_OK;
    out->v = calloc(c->n, sizeof *out->v);
    if (!out->v)
        return kn_fail(err, KN_ERR_NOMEM, "calibration: out of memory");
    for (size_t i = 0; i < c->n; i++) {
        const calib_stat *s = &c->v[i];
        if (!s->count)
            continue;
        kn_act_range *r = &out->v[out->n];
        if (!(r->name = strdup(s->name))) {
            kn_act_ranges_free(out);
            return kn_fail(err, KN_ERR_NOMEM, "calibration: out of memory");
        }
        range_of(s, &c->opts, &r->lo, &r->hi);
        out->n++;
    }
    return KN_OK;
}
