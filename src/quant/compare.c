/* compare.c - the error figures of `kiln compare` (quant.h, "comparing two
 * models"): streaming max/mean absolute error, cosine similarity and relative
 * error with NaN/Inf bookkeeping, the worst-first ordering of layers, and argmax
 * for top-1 agreement.  Running the models lives in compare_run.c. */
#include "quant/quant.h"

#include <math.h>

/* NaN, +Inf and -Inf are three classes; finite values are class 0. */
static int nonfinite_class(float v)
{
    if (isnan(v))
        return 1;
    if (isinf(v))
        return v > 0 ? 2 : 3;
    return 0;
}

void kn_err_stats_add(kn_err_stats *s, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ca = nonfinite_class(a[i]), cb = nonfinite_class(b[i]);
        if (ca || cb) {
            if (ca == cb)
                s->matched_nonfinite++;
            else
                s->nonfinite++;
            continue;
        }
        double x = a[i], y = b[i], d = x - y, ad = fabs(d);
        if (ad > s->max_abs)
            s->max_abs = ad;
        s->sum_abs += ad;
        s->dot += x * y;
        s->sum_aa += x * x;
        s->sum_bb += y * y;
        s->sum_dd += d * d;
        s->count++;
    }
}

void kn_err_stats_merge(kn_err_stats *dst, const kn_err_stats *src)
{
    dst->count += src->count;
    dst->nonfinite += src->nonfinite;
    dst->matched_nonfinite += src->matched_nonfinite;
    if (src->max_abs > dst->max_abs)
        dst->max_abs = src->max_abs;
    dst->sum_abs += src->sum_abs;
    dst->dot += src->dot;
    dst->sum_aa += src->sum_aa;
    dst->sum_bb += src->sum_bb;
    dst->sum_dd += src->sum_dd;
}

double kn_err_stats_mean_abs(const kn_err_stats *s)
{
    return s->count ? s->sum_abs / (double)s->count : 0.0;
}

double kn_err_stats_cosine(const kn_err_stats *s)
{
    if (!s->count)
        return NAN;
    if (s->sum_dd == 0.0)
        return 1.0; /* identical, including both all zero */
    if (s->sum_aa == 0.0 || s->sum_bb == 0.0)
        return 0.0;
    double c = s->dot / (sqrt(s->sum_aa) * sqrt(s->sum_bb));
    return c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
}

double kn_err_stats_rel(const kn_err_stats *s)
{
    if (s->sum_dd == 0.0)
        return 0.0;
    if (s->sum_aa == 0.0)
        return INFINITY;
    return sqrt(s->sum_dd) / sqrt(s->sum_aa);
}

/* 1 - cosine, with "nothing compared" as the best case (0) so it sorts last. */
static double cosine_distance(const kn_err_stats *s)
{
    double c = kn_err_stats_cosine(s);
    return isnan(c) ? 0.0 : 1.0 - c;
}

int kn_err_stats_cmp_worse(const kn_err_stats *x, const kn_err_stats *y)
{
    if ((x->nonfinite > 0) != (y->nonfinite > 0))
        return x->nonfinite > 0 ? -1 : 1;
    double dx = cosine_distance(x), dy = cosine_distance(y);
    if (dx != dy)
        return dx > dy ? -1 : 1;
    double rx = kn_err_stats_rel(x), ry = kn_err_stats_rel(y);
    if (rx != ry)
        return rx > ry ? -1 : 1;
    return 0;
}

int64_t kn_argmax_f32(const float *v, int64_t n)
{
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(v[i]) && (best < 0 || v[i] > v[best]))
            best = i;
    return best;
}
