/* fold_conv_bn.c - folds a per-channel affine map that follows a Conv into the
 * Conv's weights and bias: BatchNormalization in inference mode (constant scale,
 * bias, mean, variance), and Mul / Add / Sub / Div by a constant that broadcasts
 * along the output channels only.  y = a[m] * conv(x) + b[m] becomes a Conv with
 * W'[m] = a[m] W[m] and B'[m] = a[m] B[m] + b[m], computed in double.  The Conv
 * needs constant float32 weights (and bias, if any) and its output must feed only
 * the folded node.  New initializers are made (weights may be shared or mapped
 * read-only); the old ones die if unused. */
#include "opt/opt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool op_is(const kn_node *n, const char *op)
{
    return !n->domain[0] && !strcmp(n->op_type, op);
}

/* Element i of a float32/float64 tensor. */
static double elem(const kn_tensor *t, int64_t i)
{
    return t->dtype == KN_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

static const kn_tensor *float_const(const kn_graph *g, int v)
{
    const kn_tensor *t = kn_opt_const(g, v);
    return t && (t->dtype == KN_F32 || t->dtype == KN_F64) ? t : NULL;
}

/* BatchNormalization in inference mode with per-channel constants of length M:
 * a = scale / sqrt(var + eps), b = B - mean * a. */
static bool bn_affine(const kn_graph *g, const kn_node *bn, int64_t M, double *a, double *b,
                      const int *uses)
{
    if (bn->n_in < 5 || (bn->opset >= 14 && kn_attr_int(bn, "training_mode", 0)))
        return false;
    if (bn->opset < 7 && !kn_attr_int(bn, "is_test", 0))
        return false;
    if (bn->opset < 9 && !kn_attr_int(bn, "spatial", 1))
        return false;
    for (int k = 1; k < bn->n_out; k++)
        if (bn->out[k] >= 0 && (bn->opset < 14 || uses[bn->out[k]] || kn_opt_value_is_pinned(g, bn->out[k])))
            return false;
    const kn_tensor *p[4];
    for (int k = 0; k < 4; k++)
        if (!(p[k] = float_const(g, bn->in[k + 1])) || p[k]->numel != M)
            return false;
    double eps = kn_attr_float(bn, "epsilon", 1e-5f);
    for (int64_t m = 0; m < M; m++) {
        a[m] = elem(p[0], m) / sqrt(elem(p[3], m) + eps);
        b[m] = elem(p[1], m) - elem(p[2], m) * a[m];
    }
    return true;
}

/* A constant c that broadcasts against a rank-R output [N, M, ...] along the channel
 * axis only (every other dim 1; the result keeps the output's shape). */
static const kn_tensor *channel_const(const kn_graph *g, int v, int R, int64_t M)
{
    const kn_tensor *c = float_const(g, v);
    if (!c || c->rank > R)
        return NULL;
    for (int d = 0; d < c->rank; d++) {
        int axis = R - c->rank + d;
        int64_t want = axis == 1 ? M : 1;
        if (c->dims[d] != 1 && c->dims[d] != want)
            return NULL;
    }
    return c;
}

/* Mul / Add / Sub / Div of y (= conv output, rank R, M channels) by a channel
 * constant, as y * a + b. */
static bool arith_affine(const kn_graph *g, const kn_node *n, int y, int R, int64_t M, double *a,
                         double *b)
{
    if (n->n_in != 2 || n->n_out != 1)
        return false;
    bool y_first = n->in[0] == y;
    if (!y_first && n->in[1] != y)
        return false;
    bool mul = op_is(n, "Mul"), add = op_is(n, "Add");
    bool sub = op_is(n, "Sub") && y_first, div = op_is(n, "Div") && y_first;
    if (!mul && !add && !sub && !div)
        return false;
    const kn_tensor *c = channel_const(g, n->in[y_first ? 1 : 0], R, M);
    if (!c || n->in[0] == n->in[1])
        return false;
    for (int64_t m = 0; m < M; m++) {
        double v = elem(c, c->numel == 1 ? 0 : m);
        if (div && v == 0)
            return false;
        a[m] = mul ? v : div ? 1 / v : 1;
        b[m] = add ? v : sub ? -v : 0;
    }
    return true;
}

/* New W' = a[m] W[m], B' = a[m] B[m] + b[m] as initializers on conv node ci. */
static int rewrite_conv(kn_graph *g, int ci, const double *a, const double *b, kn_error *err)
{
    const kn_node *conv = &g->nodes[ci];
    const kn_tensor *W = kn_opt_const(g, conv->in[1]);
    const kn_tensor *B = conv->n_in > 2 ? kn_opt_const(g, conv->in[2]) : NULL;
    int64_t M = W->dims[0], per = M ? W->numel / M : 0;
    kn_tensor w2 = {0}, b2 = {0};
    int rc = kn_tensor_alloc(&w2, KN_F32, W->rank, W->dims, err);
    if (!rc)
        rc = kn_tensor_alloc(&b2, KN_F32, 1, &M, err);
    for (int64_t m = 0; !rc && m < M; m++) {
        for (int64_t i = 0; i < per; i++)
            ((float *)w2.data)[m * per + i] = (float)(a[m] * ((const float *)W->data)[m * per + i]);
        double bias = B ? ((const float *)B->data)[m] : 0;
        ((float *)b2.data)[m] = (float)(a[m] * bias + b[m]);
    }
    int wv = rc ? -1 : kn_opt_new_initializer(g, "folded_W", &w2, err);
    int bv = wv < 0 ? -1 : kn_opt_new_initializer(g, "folded_B", &b2, err);
    kn_tensor_release(&w2);
    kn_tensor_release(&b2);
    if (bv < 0)
        return err->code;
    kn_node *cn = &g->nodes[ci];
    if (cn->n_in < 3) {
        int *in = kn_arena_calloc(&g->model->arena, 3, sizeof *in);
        if (!in)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        memcpy(in, cn->in, sizeof *in * (size_t)cn->n_in);
        cn->in = in;
        cn->n_in = 3;
    }
    cn->in[1] = wv;
    cn->in[2] = bv;
    return KN_OK;
}

/* Conv node with constant float32 W [M, ...] and optional constant float32 B [M]. */
static bool foldable_conv(const kn_graph *g, const kn_node *n, int64_t *M)
{
    if (!op_is(n, "Conv") || n->n_in < 2 || n->n_out != 1 || n->out[0] < 0)
        return false;
    const kn_tensor *W = kn_opt_const(g, n->in[1]);
    if (!W || W->dtype != KN_F32 || W->rank < 3 || W->dims[0] <= 0)
        return false;
    const kn_tensor *B = n->n_in > 2 && n->in[2] >= 0 ? kn_opt_const(g, n->in[2]) : NULL;
    if (n->n_in > 2 && n->in[2] >= 0 && (!B || B->dtype != KN_F32 || B->numel != W->dims[0]))
        return false;
    *M = W->dims[0];
    return true;
}

/* Fold the node after conv node ci when it is a per-channel affine map. */
static int try_fold(kn_graph *g, int ci, const int *uses, double *a, double *b, bool *done, kn_error *err)
{
    int64_t M;
    *done = false;
    if (!foldable_conv(g, &g->nodes[ci], &M))
        return KN_OK;
    int y = g->nodes[ci].out[0];
    int ni = kn_opt_single_consumer(g, y);
    if (ni < 0)
        return KN_OK;
    const kn_node *n = &g->nodes[ni];
    int R = kn_opt_const(g, g->nodes[ci].in[1])->rank;
    bool ok = op_is(n, "BatchNormalization") ? n->in[0] == y && bn_affine(g, n, M, a, b, uses)
                                             : arith_affine(g, n, y, R, M, a, b);
    if (!ok || n->out[0] < 0)
        return KN_OK;
    int out = n->out[0];
    int rc = rewrite_conv(g, ci, a, b, err);
    if (rc)
        return rc;
    kn_opt_delete_node(g, ni);
    g->nodes[ci].out[0] = out;
    g->values[out].producer = ci;
    *done = true;
    return KN_OK;
}

static int run_fold_conv_bn(kn_graph *g, int *rewrites, kn_error *err)
{
    int *uses = kn_opt_use_counts(g, err);
    if (!uses)
        return err->code;
    int rc = KN_OK;
    for (int i = 0; i < g->n_nodes && !rc; i++) {
        int64_t M;
        if (kn_opt_node_deleted(&g->nodes[i]) || !foldable_conv(g, &g->nodes[i], &M))
            continue;
        double *a = malloc(sizeof *a * (size_t)M), *b = malloc(sizeof *b * (size_t)M);
        bool done = false;
        if (!a || !b)
            rc = kn_fail(err, KN_ERR_NOMEM, "out of memory");
        else
            rc = try_fold(g, i, uses, a, b, &done, err);
        free(a);
        free(b);
        *rewrites += done;
    }
    free(uses);
    return rc;
}

const kn_opt_pass kn_pass_fold_conv_bn = {"fold_conv_bn", KN_OPT_BASIC, run_fold_conv_bn};
