/* eliminate_identity.c - removes nodes that provably pass their first input through
 * unchanged: Identity; Dropout in inference (training_mode omitted or constant
 * false, mask output unused); Cast (CastLike) to the dtype the input already has; Reshape,
 * Flatten, Expand, Squeeze and Unsqueeze whose static output shape equals the static
 * input shape; Transpose with the identity permutation; Slice with unit steps that
 * keeps the whole input; Tile with all repeats 1; Pad adding nothing.  Readers of
 * the output read the input instead (kn_opt_bypass). */
#include "opt/opt.h"

#include <stdlib.h>
#include <string.h>

static bool op_is(const kn_node *n, const char *op)
{
    return !n->domain[0] && !strcmp(n->op_type, op);
}

/* Output k unused: omitted, or read by nobody and not a graph output. */
static bool output_unused(const kn_graph *g, const kn_node *n, int k, const int *uses)
{
    return k >= n->n_out || n->out[k] < 0 ||
           (uses[n->out[k]] == 0 && !kn_opt_value_is_pinned(g, n->out[k]));
}

/* Constant input k of n holds only zeros (false) / only ones; NULL-safe. */
static bool const_all(const kn_graph *g, const kn_node *n, int k, int64_t want)
{
    const kn_tensor *t = k < n->n_in ? kn_opt_const(g, n->in[k]) : NULL;
    if (!t)
        return false;
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        switch (t->dtype) {
        case KN_BOOL: case KN_U8: v = ((const uint8_t *)t->data)[i]; break;
        case KN_I32: v = ((const int32_t *)t->data)[i]; break;
        case KN_I64: v = ((const int64_t *)t->data)[i]; break;
        default: return false;
        }
        if (v != want)
            return false;
    }
    return true;
}

static bool dropout_is_identity(const kn_graph *g, const kn_node *n, const int *uses)
{
    if (!output_unused(g, n, 1, uses))
        return false;
    if (n->opset < 7 && kn_attr_int(n, "is_test", 0) == 0 && kn_attr_find(n, "is_test"))
        return false;
    return n->n_in < 3 || n->in[2] < 0 || const_all(g, n, 2, 0);
}

static bool cast_is_identity(const kn_graph *g, const kn_node *n)
{
    kn_dtype dt = kn_opt_dtype(g, n->in[0]);
    return dt != KN_UNDEFINED && (int64_t)dt == kn_attr_int(n, "to", -1);
}

/* Input 0 and output 0 both have fully static shapes, and they are equal. */
static bool same_static_shape(const kn_graph *g, const kn_node *n)
{
    int ri, ro;
    int64_t di[KN_MAX_RANK], dout[KN_MAX_RANK];
    if (!kn_opt_static_shape(g, n->in[0], &ri, di) || !kn_opt_static_shape(g, n->out[0], &ro, dout))
        return false;
    return ri == ro && !memcmp(di, dout, sizeof *di * (size_t)ri);
}

static bool transpose_is_identity(const kn_graph *g, const kn_node *n)
{
    const int64_t *perm;
    int np = kn_attr_ints(n, "perm", &perm);
    if (np < 0) {   /* default: reversed axes, the identity for rank 0 and 1 */
        int rank;
        int64_t dims[KN_MAX_RANK];
        if (kn_opt_static_shape(g, n->in[0], &rank, dims))
            return rank <= 1;
        const kn_value *v = &g->values[n->in[0]];
        return v->has_type && v->type.kind == KN_TYPE_TENSOR && v->type.rank >= 0 && v->type.rank <= 1;
    }
    for (int i = 0; i < np; i++)
        if (perm[i] != i)
            return false;
    return true;
}

/* Values of constant integer input k as int64 (at most KN_MAX_RANK); -1 if absent,
 * not constant or too long. */
static int const_ints(const kn_graph *g, const kn_node *n, int k, int64_t *vals)
{
    const kn_tensor *t = k < n->n_in ? kn_opt_const(g, n->in[k]) : NULL;
    if (!t || t->rank > 1 || t->numel > KN_MAX_RANK || (t->dtype != KN_I64 && t->dtype != KN_I32))
        return -1;
    for (int64_t i = 0; i < t->numel; i++)
        vals[i] = t->dtype == KN_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    return (int)t->numel;
}

/* starts/ends/axes of a Slice (inputs from opset 10, attributes before); false when
 * they are not constant or the steps are not all 1. */
static bool slice_params(const kn_graph *g, const kn_node *n, int64_t *starts, int64_t *ends,
                         int64_t *axes, int *count)
{
    if (n->opset < 10) {
        const int64_t *s, *e, *a;
        int ns = kn_attr_ints(n, "starts", &s), ne = kn_attr_ints(n, "ends", &e);
        int na = kn_attr_ints(n, "axes", &a);
        if (ns < 0 || ns != ne || ns > KN_MAX_RANK || (na >= 0 && na != ns))
            return false;
        for (int i = 0; i < ns; i++) {
            starts[i] = s[i];
            ends[i] = e[i];
            axes[i] = na >= 0 ? a[i] : i;
        }
        *count = ns;
        return true;
    }
    int ns = const_ints(g, n, 1, starts), ne = const_ints(g, n, 2, ends);
    if (ns < 0 || ns != ne)
        return false;
    bool has_axes = n->n_in > 3 && n->in[3] >= 0;
    if (has_axes && const_ints(g, n, 3, axes) != ns)
        return false;
    for (int i = 0; !has_axes && i < ns; i++)
        axes[i] = i;
    if (n->n_in > 4 && n->in[4] >= 0 && !const_all(g, n, 4, 1))
        return false;
    *count = ns;
    return true;
}

/* Slice with unit steps whose every sliced axis starts at 0 and reaches the end. */
static bool slice_is_identity(const kn_graph *g, const kn_node *n)
{
    int rank, count;
    int64_t dims[KN_MAX_RANK], starts[KN_MAX_RANK], ends[KN_MAX_RANK], axes[KN_MAX_RANK];
    if (!kn_opt_static_shape(g, n->in[0], &rank, dims) || !slice_params(g, n, starts, ends, axes, &count))
        return false;
    for (int i = 0; i < count; i++) {
        int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
        if (ax < 0 || ax >= rank)
            return false;
        int64_t d = dims[ax], s = starts[i] < 0 ? starts[i] + d : starts[i];
        int64_t e = ends[i] < 0 ? ends[i] + d : ends[i];
        if ((s > 0 && d > 0) || e < d)
            return false;
    }
    return true;
}

/* Expand to a shape the input already has (broadcasting adds nothing). */
static bool expand_is_identity(const kn_graph *g, const kn_node *n)
{
    int rank;
    int64_t dims[KN_MAX_RANK], shape[KN_MAX_RANK];
    int ns = const_ints(g, n, 1, shape);
    if (!kn_opt_static_shape(g, n->in[0], &rank, dims) || ns < 0 || ns > rank)
        return false;
    for (int i = 0; i < ns; i++) {
        int64_t want = shape[i], have = dims[rank - ns + i];
        if (want != 1 && want != have)
            return false;
    }
    return true;
}

static bool pad_is_identity(const kn_graph *g, const kn_node *n)
{
    if (n->opset < 11) {
        const int64_t *pads;
        int np = kn_attr_ints(n, "pads", &pads);
        for (int i = 0; i < np; i++)
            if (pads[i] != 0)
                return false;
        return np >= 0;
    }
    return const_all(g, n, 1, 0);
}

/* Does node n (live, default domain) compute output 0 == input 0? */
static bool is_identity(const kn_graph *g, const kn_node *n, const int *uses)
{
    if (n->domain[0] || n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0)
        return false;
    for (int k = 1; k < n->n_out; k++)
        if (!op_is(n, "Dropout") && !output_unused(g, n, k, uses))
            return false;
    if (op_is(n, "Identity"))
        return true;
    if (op_is(n, "Dropout"))
        return dropout_is_identity(g, n, uses);
    if (op_is(n, "Cast"))
        return cast_is_identity(g, n);
    if (op_is(n, "CastLike"))
        return n->n_in == 2 && kn_opt_dtype(g, n->in[0]) != KN_UNDEFINED &&
               kn_opt_dtype(g, n->in[0]) == kn_opt_dtype(g, n->in[1]);
    if (op_is(n, "Transpose"))
        return transpose_is_identity(g, n);
    if (op_is(n, "Slice"))
        return slice_is_identity(g, n);
    if (op_is(n, "Tile"))
        return const_all(g, n, 1, 1);
    if (op_is(n, "Pad"))
        return pad_is_identity(g, n);
    if (op_is(n, "Expand"))
        return expand_is_identity(g, n) || same_static_shape(g, n);
    static const char *const reshapers[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"};
    for (size_t k = 0; k < sizeof reshapers / sizeof reshapers[0]; k++)
        if (op_is(n, reshapers[k]))
            return same_static_shape(g, n);
    return false;
}

static int run_eliminate_identity(kn_graph *g, int *rewrites, kn_error *err)
{
    int *uses = kn_opt_use_counts(g, err);
    if (!uses)
        return err->code;
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        if (kn_opt_node_deleted(n) || !is_identity(g, n, uses))
            continue;
        if (kn_opt_bypass(g, i, n->in[0], n->out[0]))
            (*rewrites)++;
    }
    free(uses);
    return KN_OK;
}

const kn_opt_pass kn_pass_eliminate_identity = {"eliminate_identity", KN_OPT_BASIC, run_eliminate_identity};
