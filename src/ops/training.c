/* training.c - operator family 'training': the optimizer update rules of the
 * ai.onnx.preview.training domain: Adagrad, Adam and Momentum (standard and
 * Nesterov).  Each takes a learning rate R, an update count T and n groups of
 * equally shaped float tensors (X..., G..., and one or two state tensors), and
 * produces the updated X and state tensors.  Arithmetic is done in double and
 * rounded to the tensors' dtype (float32, float64, float16, bfloat16) on store. */
#include "ops/op_util.h"

#include <math.h>
#include <string.h>

#define TRAINING_DOMAIN "ai.onnx.preview.training"

/* What every optimizer reads before its element loop. */
typedef struct optim_args {
    double r;     /* learning rate */
    int64_t t;    /* update count */
    int n;        /* number of optimized tensors */
} optim_args;

/* Reads R and T and checks that the node has 2 + groups*n inputs and
 * out_groups*n outputs, all of them present, float, and shaped like X_i. */
static int optim_prepare(kn_op_ctx *c, int groups, int out_groups, optim_args *a)
{
    const char *op = c->node->op_type;
    if (c->n_in < 2 + groups || (c->n_in - 2) % groups != 0)
        return kn_fail(c->err, KN_ERR_MODEL, "%s expects R, T and %d groups of tensors, got %d inputs",
                       op, groups, c->n_in);
    a->n = (c->n_in - 2) / groups;
    if (c->n_out != out_groups * a->n)
        return kn_fail(c->err, KN_ERR_MODEL, "%s with %d optimized tensors needs %d outputs, got %d",
                       op, a->n, out_groups * a->n, c->n_out);
    const kn_tensor *r = kn_op_in(c, 0), *t = kn_op_in(c, 1);
    if (!r || !t)
        return kn_fail(c->err, KN_ERR_MODEL, "%s needs inputs R and T", op);
    if (!kn_dtype_is_float(r->dtype) || r->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s learning rate R must be a float scalar", op);
    if (!kn_dtype_is_int(t->dtype) || t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "%s update count T must be an integer scalar", op);
    a->r = kn_load_f64(r->data, r->dtype, 0);
    a->t = kn_load_i64(t->data, t->dtype, 0);
    for (int i = 2; i < c->n_in; i++) {
        const kn_tensor *x = kn_op_in(c, i), *x0 = kn_op_in(c, 2 + (i - 2) % a->n);
        if (!x || !x0)
            return kn_fail(c->err, KN_ERR_MODEL, "%s input %d is missing", op, i);
        if (!kn_dtype_is_float(x->dtype))
            return kn_unsupported_dtype(c, x->dtype);
        if (x->dtype != x0->dtype || !kn_same_shape(x, x0)) {
            char b1[128], b2[128];
            return kn_fail(c->err, KN_ERR_ARG, "%s input %d (%s) does not match its tensor X (%s)", op, i,
                           kn_tensor_describe(x, b1, sizeof b1), kn_tensor_describe(x0, b2, sizeof b2));
        }
    }
    return KN_OK;
}

/* Allocates output slot `slot` shaped like input X_i. */
static kn_tensor *optim_output(kn_op_ctx *c, int slot, const kn_tensor *x)
{
    return kn_op_output(c, slot, x->dtype, x->rank, x->dims);
}

/* ---------------------------------------------------------------- Adagrad */

static int run_adagrad(kn_op_ctx *c)
{
    optim_args a;
    int rc = optim_prepare(c, 3, 2, &a);
    if (rc)
        return rc;
    double eps = kn_attr_float(c->node, "epsilon", 1e-6f);
    double decay = kn_attr_float(c->node, "decay_factor", 0.0f);
    double norm = kn_attr_float(c->node, "norm_coefficient", 0.0f);
    double r = a.r / (1.0 + (double)a.t * decay);
    for (int i = 0; i < a.n; i++) {
        const kn_tensor *x = c->in[2 + i], *g = c->in[2 + a.n + i], *h = c->in[2 + 2 * a.n + i];
        kn_tensor *xo = optim_output(c, i, x);
        kn_tensor *ho = xo ? optim_output(c, a.n + i, x) : NULL;
        if (!ho)
            return c->err->code;
        kn_dtype dt = x->dtype;
        for (int64_t k = 0; k < x->numel; k++) {
            size_t e = (size_t)k;
            double xv = kn_load_f64(x->data, dt, e), gv = kn_load_f64(g->data, dt, e);
            double hv = kn_load_f64(h->data, dt, e);
            double greg = norm * xv + gv;
            double hn = hv + greg * greg;
            double xn = xv - r * greg / (sqrt(hn) + eps);
            kn_store_f64(xo->data, dt, e, xn);
            kn_store_f64(ho->data, dt, e, hn);
        }
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- Adam */

static int run_adam(kn_op_ctx *c)
{
    optim_args a;
    int rc = optim_prepare(c, 4, 3, &a);
    if (rc)
        return rc;
    double alpha = kn_attr_float(c->node, "alpha", 0.9f);
    double beta = kn_attr_float(c->node, "beta", 0.999f);
    double eps = kn_attr_float(c->node, "epsilon", 1e-6f);
    double norm = kn_attr_float(c->node, "norm_coefficient", 0.0f);
    double norm_post = kn_attr_float(c->node, "norm_coefficient_post", 0.0f);
    double r = a.r;
    if (a.t > 0)
        r = a.r * sqrt(1.0 - pow(beta, (double)a.t)) / (1.0 - pow(alpha, (double)a.t));
    for (int i = 0; i < a.n; i++) {
        const kn_tensor *x = c->in[2 + i], *g = c->in[2 + a.n + i];
        const kn_tensor *v = c->in[2 + 2 * a.n + i], *h = c->in[2 + 3 * a.n + i];
        kn_tensor *xo = optim_output(c, i, x);
        kn_tensor *vo = xo ? optim_output(c, a.n + i, x) : NULL;
        kn_tensor *ho = vo ? optim_output(c, 2 * a.n + i, x) : NULL;
        if (!ho)
            return c->err->code;
        kn_dtype dt = x->dtype;
        for (int64_t k = 0; k < x->numel; k++) {
            size_t e = (size_t)k;
            double xv = kn_load_f64(x->data, dt, e), gv = kn_load_f64(g->data, dt, e);
            double vv = kn_load_f64(v->data, dt, e), hv = kn_load_f64(h->data, dt, e);
            double greg = norm * xv + gv;
            double vn = alpha * vv + (1.0 - alpha) * greg;
            double hn = beta * hv + (1.0 - beta) * greg * greg;
            double xn = xv - r * vn / (sqrt(hn) + eps);
            kn_store_f64(xo->data, dt, e, (1.0 - norm_post) * xn);
            kn_store_f64(vo->data, dt, e, vn);
            kn_store_f64(ho->data, dt, e, hn);
        }
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- Momentum */

static int check_momentum(const kn_node *node, int opset, kn_error *err)
{
    (void)opset;
    const char *mode = kn_attr_string(node, "mode", NULL);
    if (!mode)
        return kn_fail(err, KN_ERR_MODEL, "Momentum requires the attribute 'mode'");
    if (strcmp(mode, "standard") && strcmp(mode, "nesterov"))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "Momentum mode '%s' not supported", mode);
    return KN_OK;
}

static int run_momentum(kn_op_ctx *c)
{
    int rc = check_momentum(c->node, c->opset, c->err);
    optim_args a;
    if (rc || (rc = optim_prepare(c, 3, 2, &a)))
        return rc;
    bool nesterov = strcmp(kn_attr_string(c->node, "mode", ""), "nesterov") == 0;
    double alpha = kn_attr_float(c->node, "alpha", 0.0f);
    double beta = kn_attr_float(c->node, "beta", 0.0f);
    double norm = kn_attr_float(c->node, "norm_coefficient", 0.0f);
    double beta_adj = a.t > 0 ? beta : 1.0;
    for (int i = 0; i < a.n; i++) {
        const kn_tensor *x = c->in[2 + i], *g = c->in[2 + a.n + i], *v = c->in[2 + 2 * a.n + i];
        kn_tensor *xo = optim_output(c, i, x);
        kn_tensor *vo = xo ? optim_output(c, a.n + i, x) : NULL;
        if (!vo)
            return c->err->code;
        kn_dtype dt = x->dtype;
        for (int64_t k = 0; k < x->numel; k++) {
            size_t e = (size_t)k;
            double xv = kn_load_f64(x->data, dt, e), gv = kn_load_f64(g->data, dt, e);
            double vv = kn_load_f64(v->data, dt, e);
            double greg = norm * xv + gv;
            double vn = alpha * vv + beta_adj * greg;
            double xn = nesterov ? xv - a.r * (greg + alpha * vn) : xv - a.r * vn;
            kn_store_f64(xo->data, dt, e, xn);
            kn_store_f64(vo->data, dt, e, vn);
        }
    }
    return KN_OK;
}

const kn_op_def kn_ops_training[] = {
    {TRAINING_DOMAIN, "Adagrad", 1, run_adagrad, NULL, NULL},
    {TRAINING_DOMAIN, "Adam", 1, run_adam, NULL, NULL},
    {TRAINING_DOMAIN, "Momentum", 1, run_momentum, check_momentum, NULL},
    {0},
};
