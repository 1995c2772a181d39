/* text.c - text-processing operators: TfIdfVectorizer (integer n-gram pools).
 *
 * TfIdfVectorizer counts, row by row, how often each n-gram of the pool occurs in
 * the input (consecutive items, or items `skip + 1` apart for skip up to
 * max_skip_count) and writes the count, or a weighted count, to the output
 * coordinate ngram_indexes[i] of the i-th pool n-gram.  Pools of strings need
 * string tensors, which kiln does not hold: those return KN_ERR_UNSUPPORTED. */
#include "ops/op_util.h"

#include <stdlib.h>
#include <string.h>

enum tfidf_mode { MODE_TF, MODE_IDF, MODE_TFIDF };

/* One n-gram level of the pool: the n-grams of length n, sorted for lookup. */
typedef struct gram_level {
    int n;                /* n-gram length */
    int64_t first_item;   /* index of its first item in the pool */
    int64_t count;        /* number of n-grams of this length */
    int64_t first_gram;   /* index of its first n-gram among all n-grams of the pool */
    int64_t *order;       /* gram numbers (0..count-1) sorted by content */
} gram_level;

typedef struct tfidf_cfg {
    enum tfidf_mode mode;
    int64_t min_n, max_n, max_skip;
    const int64_t *pool;
    int64_t pool_len;
    const int64_t *out_index;   /* ngram_indexes, one per pool n-gram */
    int64_t n_grams;
    const float *weights;       /* NULL: all ones */
    int64_t out_width;          /* max(ngram_indexes) + 1 */
    int n_levels;
    gram_level *levels;
} tfidf_cfg;

/* ---- attribute validation ---- */

static int parse_mode(kn_op_ctx *c, enum tfidf_mode *mode)
{
    const char *s = kn_attr_string(c->node, "mode", NULL);
    if (!s)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer requires the 'mode' attribute");
    if (!strcmp(s, "TF"))
        *mode = MODE_TF;
    else if (!strcmp(s, "IDF"))
        *mode = MODE_IDF;
    else if (!strcmp(s, "TFIDF"))
        *mode = MODE_TFIDF;
    else
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer mode '%s' is not TF, IDF or TFIDF", s);
    return KN_OK;
}

static int parse_lengths(kn_op_ctx *c, tfidf_cfg *cfg)
{
    const kn_attr *amin = kn_attr_find(c->node, "min_gram_length");
    const kn_attr *amax = kn_attr_find(c->node, "max_gram_length");
    const kn_attr *askip = kn_attr_find(c->node, "max_skip_count");
    if (!amin || !amax || !askip)
        return kn_fail(c->err, KN_ERR_MODEL,
                       "TfIdfVectorizer requires min_gram_length, max_gram_length and max_skip_count");
    cfg->min_n = amin->i;
    cfg->max_n = amax->i;
    cfg->max_skip = askip->i;
    if (cfg->min_n < 1 || cfg->max_n < cfg->min_n)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer gram lengths [%lld, %lld] are invalid",
                       (long long)cfg->min_n, (long long)cfg->max_n);
    if (cfg->max_skip < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer max_skip_count %lld is negative",
                       (long long)cfg->max_skip);
    return KN_OK;
}

/* Cut the pool into levels with ngram_counts (start item of each level). */
static int parse_levels(kn_op_ctx *c, tfidf_cfg *cfg)
{
    const int64_t *starts;
    int n_levels = kn_attr_ints(c->node, "ngram_counts", &starts);
    if (n_levels < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer requires the 'ngram_counts' attribute");
    cfg->levels = calloc((size_t)n_levels + 1, sizeof *cfg->levels);
    if (!cfg->levels)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    cfg->n_levels = n_levels;
    int64_t grams = 0;
    for (int l = 0; l < n_levels; l++) {
        int64_t begin = starts[l], end = l + 1 < n_levels ? starts[l + 1] : cfg->pool_len;
        int n = l + 1;
        if (begin < 0 || end < begin || end > cfg->pool_len || (end - begin) % n)
            return kn_fail(c->err, KN_ERR_MODEL,
                           "TfIdfVectorizer ngram_counts[%d] = %lld does not split the pool of %lld "
                           "items into whole %d-grams", l, (long long)begin, (long long)cfg->pool_len, n);
        gram_level *lv = &cfg->levels[l];
        lv->n = n;
        lv->first_item = begin;
        lv->count = (end - begin) / n;
        lv->first_gram = grams;
        grams += lv->count;
    }
    if (n_levels > 0 && starts[0] != 0)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer ngram_counts must start at 0");
    cfg->n_grams = grams;
    return KN_OK;
}

static int parse_indexes(kn_op_ctx *c, tfidf_cfg *cfg)
{
    int n = kn_attr_ints(c->node, "ngram_indexes", &cfg->out_index);
    if (n < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer requires the 'ngram_indexes' attribute");
    if (n != cfg->n_grams)
        return kn_fail(c->err, KN_ERR_MODEL,
                       "TfIdfVectorizer has %d ngram_indexes for %lld n-grams in the pool", n,
                       (long long)cfg->n_grams);
    int64_t width = 0;
    for (int i = 0; i < n; i++) {
        if (cfg->out_index[i] < 0 || cfg->out_index[i] >= ((int64_t)1 << 40))
            return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer ngram_indexes[%d] = %lld is out of range",
                           i, (long long)cfg->out_index[i]);
        if (cfg->out_index[i] + 1 > width)
            width = cfg->out_index[i] + 1;
    }
    cfg->out_width = width;
    int nw = kn_attr_floats(c->node, "weights", &cfg->weights);
    if (nw < 0)
        cfg->weights = NULL;
    else if (nw != n)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer has %d weights for %d n-grams", nw, n);
    return KN_OK;
}

/* ---- sorted lookup of n-grams ---- */

/* Lexicographic comparison of two n-item sequences; b_step is the item distance in b. */
static int cmp_items(const int64_t *a, const int64_t *b, int64_t b_step, int n)
{
    for (int k = 0; k < n; k++) {
        int64_t x = a[k], y = b[(size_t)k * (size_t)b_step];
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

/* Merge sort of lv->order[lo, hi) by n-gram content (tmp has room for all). */
static void sort_range(const int64_t *pool, const gram_level *lv, int64_t *tmp, int64_t lo, int64_t hi)
{
    if (hi - lo < 2)
        return;
    int64_t mid = lo + (hi - lo) / 2;
    sort_range(pool, lv, tmp, lo, mid);
    sort_range(pool, lv, tmp, mid, hi);
    const int64_t *items = pool + lv->first_item;
    int64_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
        const int64_t *a = items + lv->order[i] * lv->n, *b = items + lv->order[j] * lv->n;
        tmp[k++] = cmp_items(a, b, 1, lv->n) <= 0 ? lv->order[i++] : lv->order[j++];
    }
    while (i < mid)
        tmp[k++] = lv->order[i++];
    while (j < hi)
        tmp[k++] = lv->order[j++];
    memcpy(lv->order + lo, tmp + lo, sizeof *tmp * (size_t)(hi - lo));
}

static int build_lookup(kn_op_ctx *c, tfidf_cfg *cfg)
{
    for (int l = 0; l < cfg->n_levels; l++) {
        gram_level *lv = &cfg->levels[l];
        lv->order = malloc(sizeof *lv->order * (size_t)(lv->count + 1));
        if (!lv->order)
            return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
        int64_t *tmp = malloc(sizeof *tmp * (size_t)(lv->count + 1));
        if (!tmp)
            return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
        for (int64_t g = 0; g < lv->count; g++)
            lv->order[g] = g;
        sort_range(cfg->pool, lv, tmp, 0, lv->count);
        free(tmp);
    }
    return KN_OK;
}

/* Position in lv->order of the first pool n-gram equal to the items, or -1. */
static int64_t find_gram(const tfidf_cfg *cfg, const gram_level *lv, const int64_t *items, int64_t step)
{
    int64_t lo = 0, hi = lv->count;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const int64_t *g = cfg->pool + lv->first_item + lv->order[mid] * lv->n;
        if (cmp_items(g, items, step, lv->n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < lv->count && !cmp_items(cfg->pool + lv->first_item + lv->order[lo] * lv->n, items, step, lv->n))
        return lo;
    return -1;
}

/* ---- counting ---- */

/* Count the n-grams of one row (items as int64) into counts (one per pool n-gram). */
static void count_row(const tfidf_cfg *cfg, const int64_t *row, int64_t len, int64_t *counts)
{
    for (int l = 0; l < cfg->n_levels; l++) {
        const gram_level *lv = &cfg->levels[l];
        if (lv->n < cfg->min_n || lv->n > cfg->max_n || lv->count == 0)
            continue;
        /* a 1-gram is the same whatever the skip: count it once per position */
        int64_t max_skip = lv->n == 1 ? 0 : cfg->max_skip;
        for (int64_t skip = 0; skip <= max_skip; skip++) {
            int64_t step = skip + 1;
            /* the last item sits (n - 1) * step after the first; stop when it cannot fit */
            if ((lv->n - 1) > (len - 1) / step)
                break;
            int64_t span = (lv->n - 1) * step;
            for (int64_t start = 0; start + span < len; start++) {
                int64_t pos = find_gram(cfg, lv, row + start, step);
                for (; pos >= 0 && pos < lv->count; pos++) {
                    int64_t g = lv->order[pos];
                    if (cmp_items(cfg->pool + lv->first_item + g * lv->n, row + start, step, lv->n))
                        break;
                    counts[lv->first_gram + g]++;
                }
            }
        }
    }
}

static float weigh(const tfidf_cfg *cfg, int64_t gram, int64_t count)
{
    float w = cfg->weights ? cfg->weights[gram] : 1.0f;
    switch (cfg->mode) {
    case MODE_TF:
        return (float)count;
    case MODE_IDF:
        return count > 0 ? w : 0.0f;
    case MODE_TFIDF:
    default:
        return (float)count * w;
    }
}

static void write_row(const tfidf_cfg *cfg, const int64_t *counts, float *y)
{
    for (int64_t g = 0; g < cfg->n_grams; g++)
        if (counts[g])
            y[cfg->out_index[g]] += weigh(cfg, g, counts[g]);
}

static int tfidf_compute(kn_op_ctx *c, const tfidf_cfg *cfg, const kn_tensor *x)
{
    int64_t rows = x->rank == 2 ? x->dims[0] : 1;
    int64_t len = x->rank == 2 ? x->dims[1] : x->dims[0];
    int64_t dims[2] = {rows, cfg->out_width};
    kn_tensor *y = x->rank == 2 ? kn_op_output(c, 0, KN_F32, 2, dims) : kn_op_output(c, 0, KN_F32, 1, dims + 1);
    if (!y)
        return c->err->code;
    if (y->numel == 0 || len == 0)
        return KN_OK;
    int64_t *row = malloc(sizeof *row * (size_t)len);
    int64_t *counts = malloc(sizeof *counts * (size_t)(cfg->n_grams + 1));
    if (!row || !counts) {
        free(row);
        free(counts);
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    }
    float *yd = y->data;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < len; k++)
            row[k] = kn_load_i64(x->data, x->dtype, (size_t)(r * len + k));
        memset(counts, 0, sizeof *counts * (size_t)(cfg->n_grams + 1));
        count_row(cfg, row, len, counts);
        write_row(cfg, counts, yd + r * cfg->out_width);
    }
    free(row);
    free(counts);
    return KN_OK;
}

static void tfidf_cfg_free(tfidf_cfg *cfg)
{
    for (int l = 0; cfg->levels && l < cfg->n_levels; l++)
        free(cfg->levels[l].order);
    free(cfg->levels);
}

static int run_tfidf(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (kn_attr_find(c->node, "pool_strings"))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "TfIdfVectorizer with pool_strings (string input) is not supported");
    if (x->dtype != KN_I32 && x->dtype != KN_I64)
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 1 && x->rank != 2)
        return kn_fail(c->err, KN_ERR_ARG, "TfIdfVectorizer input must be 1-D or 2-D, got rank %d", x->rank);
    tfidf_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    int n_pool = kn_attr_ints(c->node, "pool_int64s", &cfg.pool);
    if (n_pool < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "TfIdfVectorizer needs pool_int64s or pool_strings");
    cfg.pool_len = n_pool;
    int rc = parse_mode(c, &cfg.mode);
    if (!rc)
        rc = parse_lengths(c, &cfg);
    if (!rc)
        rc = parse_levels(c, &cfg);
    if (!rc)
        rc = parse_indexes(c, &cfg);
    if (!rc)
        rc = build_lookup(c, &cfg);
    if (!rc)
        rc = tfidf_compute(c, &cfg, x);
    tfidf_cfg_free(&cfg);
    return rc;
}

/* float32 [max(ngram_indexes) + 1] or [N, max(ngram_indexes) + 1]. */
static int infer_tfidf(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1 || ic->in[0]->kind != KN_TYPE_TENSOR)
        return KN_OK;
    const kn_type *x = ic->in[0];
    kn_type *y = &ic->out[0];
    memset(y, 0, sizeof *y);
    y->kind = KN_TYPE_TENSOR;
    y->dtype = KN_F32;
    y->rank = x->rank == 1 || x->rank == 2 ? x->rank : -1;
    if (y->rank < 0)
        return KN_OK;
    const int64_t *idx;
    int n = kn_attr_ints(ic->node, "ngram_indexes", &idx);
    int64_t width = 0;
    for (int i = 0; i < n; i++)
        if (idx[i] < 0)
            width = -1;
        else if (width >= 0 && idx[i] + 1 > width)
            width = idx[i] + 1;
    y->dims[y->rank - 1].value = n < 0 ? -1 : width;
    if (y->rank == 2)
        y->dims[0] = x->dims[0];
    return KN_OK;
}

const kn_op_def kn_ops_text[] = {
    {"", "TfIdfVectorizer", 1, run_tfidf, NULL, infer_tfidf, false},
    {0},
};
