/* dedupe_initializers.c - initializers with identical contents (same dtype, shape
 * and bytes) become one: readers of the later ones read the first.  Exporters write
 * shared weights once per use, and fusions that concatenate weights (packed QKV for
 * Attention) make one copy per layer even when the layers share them; after this
 * pass the copies are gone from the written model and the compile step packs each
 * weight once.  Contents are compared in full after a hash match; graph inputs with
 * defaults and pinned values are left alone.  (cse shares the small constants.) */
#include "opt/opt.h"

#include <stdlib.h>
#include <string.h>

/* Smaller constants are shared by the cse pass (src/opt/cse.c, up to 64 KiB); this
 * pass takes the weights above that. */
#define MIN_BYTES (65536 + 1)

static uint64_t content_hash(const kn_tensor *t)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)t->dtype * 0x9E3779B97F4A7C15ull;
    for (int d = 0; d < t->rank; d++)
        h = (h ^ (uint64_t)t->dims[d]) * 1099511628211ull;
    const unsigned char *p = t->data;
    size_t n = t->nbytes, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static bool same_contents(const kn_tensor *a, const kn_tensor *b)
{
    return a->dtype == b->dtype && a->rank == b->rank && a->nbytes == b->nbytes &&
           !memcmp(a->dims, b->dims, sizeof *a->dims * (size_t)a->rank) &&
           (a->data == b->data || !memcmp(a->data, b->data, a->nbytes));
}

typedef struct cand {
    uint64_t hash;
    int v;
} cand;

static int by_hash(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return a->v - b->v;
}

static int collect(const kn_graph *g, cand *c)
{
    int n = 0;
    for (int v = 0; v < g->n_values; v++) {
        const kn_tensor *t = kn_opt_const(g, v);
        if (!t || t->kind != KN_VALUE_TENSOR || t->nbytes < MIN_BYTES || !t->data ||
            kn_opt_value_is_pinned(g, v))
            continue;
        c[n].hash = content_hash(t);
        c[n++].v = v;
    }
    return n;
}

static int run_dedupe(kn_graph *g, int *rewrites, kn_error *err)
{
    cand *c = malloc(sizeof *c * (size_t)(g->n_values ? g->n_values : 1));
    if (!c)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    int n = collect(g, c);
    qsort(c, (size_t)n, sizeof *c, by_hash);
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && c[j].hash == c[i].hash)
            j++;
        /* within one hash run, fold every later equal tensor onto the earliest */
        for (int a = i; a < j; a++) {
            if (c[a].v < 0)
                continue;
            const kn_tensor *ta = kn_opt_const(g, c[a].v);
            for (int b = a + 1; b < j; b++) {
                if (c[b].v >= 0 && same_contents(ta, kn_opt_const(g, c[b].v)) &&
                    kn_opt_replace_uses(g, c[b].v, c[a].v)) {
                    c[b].v = -1;
                    ++*rewrites;
                }
            }
        }
        i = j;
    }
    free(c);
    return KN_OK;
}

const kn_opt_pass kn_pass_dedupe_initializers = {"dedupe_initializers", KN_OPT_BASIC, run_dedupe};
