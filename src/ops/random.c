/* random.c - operator family 'random': RandomUniform, RandomNormal,
 * RandomUniformLike, RandomNormalLike, Bernoulli and Multinomial.
 *
 * kiln's own generator: splitmix64 (a 64-bit counter through a mixing function),
 * uniform doubles from its top 53 bits, normals by Box-Muller.  With a `seed`
 * attribute the output is a pure function of the seed (and the shape); without one
 * the state is mixed from the clock and the output buffer's address.  No other
 * engine produces the same numbers, so only distributions (not values) can match. */
#include "ops/op_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RNG_TWO_PI 6.28318530717958647692

typedef struct rng {
    uint64_t s;
    bool has_spare;  /* Box-Muller makes normals in pairs */
    double spare;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_uniform(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller). */
static double rng_normal(rng *r)
{
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u1 = 1.0 - rng_uniform(r); /* (0, 1]: log(u1) is finite */
    double u2 = rng_uniform(r);
    double m = sqrt(-2.0 * log(u1));
    r->spare = m * sin(RNG_TWO_PI * u2);
    r->has_spare = true;
    return m * cos(RNG_TWO_PI * u2);
}

/* Seeds from the node's `seed` attribute, else from the clock and `salt`. */
static void rng_seed(rng *r, const kn_node *node, const void *salt)
{
    const kn_attr *a = kn_attr_find(node, "seed");
    uint64_t s;
    if (a) {
        double v = a->type == KN_ATTR_INT ? (double)a->i : (double)a->f;
        memcpy(&s, &v, sizeof s);
    } else {
        s = (uint64_t)time(NULL) * 0x100000001B3ull ^ (uint64_t)clock() ^ (uint64_t)(uintptr_t)salt;
    }
    r->s = s;
    r->has_spare = false;
    rng_next(r); /* decorrelate nearby seeds */
}

/* ---------------------------------------------------------------- uniform / normal */

typedef enum { DIST_UNIFORM, DIST_NORMAL } dist_kind;

static int fill_dist(kn_op_ctx *c, dist_kind kind, kn_dtype dt, int rank, const int64_t *dims)
{
    if (!kn_dtype_is_float(dt))
        return kn_unsupported_dtype(c, dt);
    kn_tensor *o = kn_op_output(c, 0, dt, rank, dims);
    if (!o)
        return c->err->code;
    double a, b; /* low/high or mean/scale */
    if (kind == DIST_UNIFORM) {
        a = kn_attr_float(c->node, "low", 0.0f);
        b = kn_attr_float(c->node, "high", 1.0f);
    } else {
        a = kn_attr_float(c->node, "mean", 0.0f);
        b = kn_attr_float(c->node, "scale", 1.0f);
    }
    rng r;
    rng_seed(&r, c->node, o->data);
    for (int64_t i = 0; i < o->numel; i++) {
        double v = kind == DIST_UNIFORM ? a + (b - a) * rng_uniform(&r) : a + b * rng_normal(&r);
        kn_store_f64(o->data, dt, (size_t)i, v);
    }
    return KN_OK;
}

/* RandomUniform / RandomNormal: shape and dtype from attributes. */
static int run_random_shaped(kn_op_ctx *c, dist_kind kind)
{
    const int64_t *shape;
    int rank = kn_attr_ints(c->node, "shape", &shape);
    if (rank < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "%s requires the attribute 'shape'", c->node->op_type);
    if (rank > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s: rank %d exceeds the maximum", c->node->op_type, rank);
    for (int i = 0; i < rank; i++)
        if (shape[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "%s: negative dimension in 'shape'", c->node->op_type);
    kn_dtype dt = (kn_dtype)kn_attr_int(c->node, "dtype", KN_F32);
    return fill_dist(c, kind, dt, rank, shape);
}

/* RandomUniformLike / RandomNormalLike: shape of the input, dtype attribute or the input's. */
static int run_random_like(kn_op_ctx *c, dist_kind kind)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    kn_dtype dt = (kn_dtype)kn_attr_int(c->node, "dtype", x->dtype);
    return fill_dist(c, kind, dt, x->rank, x->dims);
}

static int run_random_uniform(kn_op_ctx *c) { return run_random_shaped(c, DIST_UNIFORM); }
static int run_random_normal(kn_op_ctx *c) { return run_random_shaped(c, DIST_NORMAL); }
static int run_random_uniform_like(kn_op_ctx *c) { return run_random_like(c, DIST_UNIFORM); }
static int run_random_normal_like(kn_op_ctx *c) { return run_random_like(c, DIST_NORMAL); }

/* ---------------------------------------------------------------- Bernoulli */

static int run_bernoulli(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    kn_dtype dt = (kn_dtype)kn_attr_int(c->node, "dtype", x->dtype);
    if (!kn_dtype_supported(dt))
        return kn_unsupported_dtype(c, dt);
    kn_tensor *o = kn_op_output(c, 0, dt, x->rank, x->dims);
    if (!o)
        return c->err->code;
    rng r;
    rng_seed(&r, c->node, o->data);
    for (int64_t i = 0; i < x->numel; i++) {
        double p = kn_load_f64(x->data, x->dtype, (size_t)i);
        if (!(p >= 0.0 && p <= 1.0))
            return kn_fail(c->err, KN_ERR_ARG, "Bernoulli probability %g is outside [0, 1]", p);
        kn_store_i64(o->data, dt, (size_t)i, rng_uniform(&r) < p ? 1 : 0);
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- Multinomial */

/* Draws sample_size class indices for one row of log-probabilities; cdf is scratch. */
static int multinomial_row(kn_op_ctx *c, const kn_tensor *x, int64_t row, int64_t k, int64_t n, double *cdf,
                           rng *r, kn_tensor *o)
{
    double mx = -INFINITY, total = 0;
    for (int64_t j = 0; j < k; j++) {
        double v = kn_load_f64(x->data, x->dtype, (size_t)(row * k + j));
        if (isnan(v) || v == INFINITY)
            return kn_fail(c->err, KN_ERR_ARG, "Multinomial: invalid log-probability in row %lld", (long long)row);
        mx = v > mx ? v : mx;
    }
    for (int64_t j = 0; j < k; j++) {
        total += mx == -INFINITY ? 0.0 : exp(kn_load_f64(x->data, x->dtype, (size_t)(row * k + j)) - mx);
        cdf[j] = total;
    }
    if (!(total > 0))
        return kn_fail(c->err, KN_ERR_ARG, "Multinomial: row %lld has no positive probability", (long long)row);
    for (int64_t s = 0; s < n; s++) {
        double u = rng_uniform(r) * total;
        int64_t lo = 0, hi = k - 1; /* first j with cdf[j] > u */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        kn_store_i64(o->data, o->dtype, (size_t)(row * n + s), lo);
    }
    return KN_OK;
}

static int run_multinomial(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (!kn_dtype_is_float(x->dtype))
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 2)
        return kn_fail(c->err, KN_ERR_ARG, "Multinomial input must be [batch_size, class_size], got rank %d", x->rank);
    kn_dtype dt = (kn_dtype)kn_attr_int(c->node, "dtype", KN_I32);
    if (dt != KN_I32 && dt != KN_I64)
        return kn_fail(c->err, KN_ERR_ARG, "Multinomial dtype must be int32 or int64");
    int64_t n = kn_attr_int(c->node, "sample_size", 1), k = x->dims[1];
    if (n < 0)
        return kn_fail(c->err, KN_ERR_ARG, "Multinomial sample_size must not be negative");
    int64_t dims[2] = {x->dims[0], n};
    kn_tensor *o = kn_op_output(c, 0, dt, 2, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0)
        return KN_OK;
    if (k == 0)
        return kn_fail(c->err, KN_ERR_ARG, "Multinomial: class_size is 0");
    double *cdf = malloc((size_t)k * sizeof(double));
    if (!cdf)
        return kn_fail(c->err, KN_ERR_NOMEM, "Multinomial: out of memory");
    rng r;
    rng_seed(&r, c->node, o->data);
    int rc = KN_OK;
    for (int64_t row = 0; row < x->dims[0] && !rc; row++)
        rc = multinomial_row(c, x, row, k, n, cdf, &r, o);
    free(cdf);
    return rc;
}

const kn_op_def kn_ops_random[] = {
    {"", "RandomUniform", 1, run_random_uniform, NULL, NULL},
    {"", "RandomNormal", 1, run_random_normal, NULL, NULL},
    {"", "RandomUniformLike", 1, run_random_uniform_like, NULL, NULL},
    {"", "RandomNormalLike", 1, run_random_normal_like, NULL, NULL},
    {"", "Bernoulli", 1, run_bernoulli, NULL, NULL},
    {"", "Multinomial", 1, run_multinomial, NULL, NULL},
    {0},
};
