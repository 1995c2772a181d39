/* fold_constants.c - the constant-folding pass: a deterministic node whose inputs
 * are all constants is evaluated once at load time and its outputs become
 * initializers (keeping their names).  Shape and Size of a value whose static shape
 * is fully known fold too, which lets the Shape -> Gather -> Unsqueeze -> Concat
 * chains that exporters build for Reshape targets fold away.  Folded tensors are
 * capped in size so folding never blows up memory, except Casts that widen float16
 * weights to float32 (the run-time Cast would allocate as much on every run). */
#include "opt/opt.h"

#include "ops/op.h"

#include <math.h>
#include <string.h>

/* No folded output may be larger than this. */
#define FOLD_MAX_BYTES ((size_t)64 << 20)

/* Operators never folded: random ones, Dropout (the identity pass handles it) and
 * DequantizeLinear (quantized weights stay quantized, as in other runtimes). */
static bool never_fold(const kn_node *n)
{
    static const char *const ops[] = {
        "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike",
        "Bernoulli", "Multinomial", "Dropout", "DequantizeLinear",
    };
    if (n->op && n->op->any_value)
        return strcmp(n->op_type, "Identity") != 0;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(n->op_type, ops[k]))
            return true;
    for (int a = 0; a < n->n_attr; a++)
        if (n->attrs[a].type == KN_ATTR_GRAPH || n->attrs[a].type == KN_ATTR_GRAPHS)
            return true;
    return false;
}

static bool all_inputs_const(const kn_graph *g, const kn_node *n)
{
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !kn_opt_const(g, n->in[k]))
            return false;
    return true;
}

/* Product of the (non-negative) int64/int32 values of t, saturating; -1 if t holds
 * something else or a negative value. */
static double product_of_values(const kn_tensor *t)
{
    if (!t || (t->dtype != KN_I64 && t->dtype != KN_I32))
        return -1;
    double p = 1;
    for (int64_t i = 0; i < t->numel; i++) {
        double d = t->dtype == KN_I64 ? (double)((const int64_t *)t->data)[i]
                                      : (double)((const int32_t *)t->data)[i];
        if (d < 0)
            return -1;
        p *= d;
    }
    return p;
}

/* Scalar value of a numeric tensor of one element, as double (NAN otherwise). */
static double scalar_of(const kn_tensor *t)
{
    if (!t || t->numel != 1)
        return NAN;
    switch (t->dtype) {
    case KN_F32: return ((const float *)t->data)[0];
    case KN_F64: return ((const double *)t->data)[0];
    case KN_I32: return ((const int32_t *)t->data)[0];
    case KN_I64: return (double)((const int64_t *)t->data)[0];
    default: return NAN;
    }
}

/* Elements the operators whose output size comes from input values will produce;
 * -1 when it cannot be told. */
static double growing_op_elements(const kn_graph *g, const kn_node *n)
{
    const kn_tensor *a = n->n_in > 0 ? kn_opt_const(g, n->in[0]) : NULL;
    const kn_tensor *b = n->n_in > 1 ? kn_opt_const(g, n->in[1]) : NULL;
    if (!strcmp(n->op_type, "ConstantOfShape"))
        return product_of_values(a);
    if (!strcmp(n->op_type, "Tile") && a) {
        double r = product_of_values(b);
        return r < 0 ? -1 : r * (double)a->numel;
    }
    if (!strcmp(n->op_type, "Expand") && a) {
        double p = product_of_values(b);
        return p < 0 ? -1 : p * (double)(a->numel ? a->numel : 1);  /* an upper bound */
    }
    if (!strcmp(n->op_type, "Range") && n->n_in == 3) {
        double s = scalar_of(a), l = scalar_of(b), d = scalar_of(kn_opt_const(g, n->in[2]));
        double e = ceil((l - s) / d);
        return isfinite(e) ? (e > 0 ? e : 0) : -1;
    }
    return -1;
}

/* Operators whose output size is set by input values or attributes, not bounded by
 * the input sizes: folded only when the size is known to be small. */
static bool may_grow(const kn_node *n)
{
    static const char *const ops[] = {
        "ConstantOfShape", "Tile", "Expand", "Range", "Resize", "Upsample", "Pad",
        "OneHot", "MelWeightMatrix", "HannWindow", "HammingWindow", "BlackmanWindow",
        "DFT", "STFT", "Col2Im", "MaxUnpool", "ConvTranspose", "Einsum", "MatMul", "Gemm",
        "Constant", "EyeLike", "Trilu", "CenterCropPad",
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(n->op_type, ops[k]))
            return true;
    return false;
}

/* A Cast of a constant float16 / bfloat16 tensor to float32 (weights stored in half
 * precision): folded whatever its size, since running it would allocate the same
 * float32 bytes on every run, and the half-precision source is then unread. */
static bool half_weight_cast(const kn_graph *g, const kn_node *n)
{
    if (strcmp(n->op_type, "Cast") || n->n_in != 1 || kn_attr_int(n, "to", 0) != KN_F32)
        return false;
    const kn_tensor *t = kn_opt_const(g, n->in[0]);
    return t && (t->dtype == KN_F16 || t->dtype == KN_BF16);
}

/* Is folding node n safe for memory? Sizes from static types where known. */
static bool small_enough(const kn_graph *g, const kn_node *n)
{
    if (half_weight_cast(g, n))
        return true;
    size_t in_bytes = 0;
    for (int k = 0; k < n->n_in; k++) {
        const kn_tensor *t = kn_opt_const(g, n->in[k]);
        if (t)
            in_bytes += t->nbytes;
    }
    if (!strcmp(n->op_type, "Constant"))
        return true;    /* its value is already in memory */
    bool known = true;
    for (int k = 0; k < n->n_out; k++) {
        int rank;
        int64_t dims[KN_MAX_RANK];
        if (n->out[k] < 0)
            continue;
        if (!kn_opt_static_shape(g, n->out[k], &rank, dims)) {
            known = false;
            continue;
        }
        double e = 1;
        for (int d = 0; d < rank; d++)
            e *= (double)dims[d];
        if (e * 8 > (double)FOLD_MAX_BYTES)
            return false;
    }
    if (known)
        return true;
    double e = growing_op_elements(g, n);
    if (e >= 0)
        return e * 8 <= (double)FOLD_MAX_BYTES;
    return !may_grow(n) && in_bytes <= FOLD_MAX_BYTES;
}

/* Evaluate node i and turn its outputs into initializers.  *folded tells whether it
 * happened; evaluation failures just leave the node (it fails again at run time,
 * with its proper message). */
static int fold_node(kn_graph *g, int i, bool *folded, kn_error *err)
{
    kn_node *n = &g->nodes[i];
    kn_tensor outs[64];
    int n_out = n->n_out, out_ids[64];
    *folded = false;
    if (n_out > 64)
        return KN_OK;
    kn_error eval_err;
    if (kn_opt_eval_node(g, i, outs, &eval_err))
        return KN_OK;
    memcpy(out_ids, n->out, sizeof *out_ids * (size_t)n_out);
    bool ok = true, any_size = half_weight_cast(g, n);
    for (int k = 0; k < n_out; k++)
        if (out_ids[k] >= 0)
            ok &= outs[k].kind == KN_VALUE_TENSOR && outs[k].dtype != KN_STRING &&
                  (any_size || outs[k].nbytes <= FOLD_MAX_BYTES);
    int rc = KN_OK;
    if (ok) {
        kn_opt_delete_node(g, i);
        for (int k = 0; k < n_out && !rc; k++)
            if (out_ids[k] >= 0)
                rc = kn_opt_set_initializer(g, out_ids[k], &outs[k], err);
        *folded = !rc;
    }
    for (int k = 0; k < n_out; k++)
        kn_tensor_release(&outs[k]);
    return rc;
}

/* Range [start, end) of the dims a Shape node reports for an input of rank r. */
static void shape_range(const kn_node *n, int64_t r, int64_t *start, int64_t *end)
{
    *start = 0;
    *end = r;
    if (n->opset < 15)
        return;
    int64_t s = kn_attr_int(n, "start", 0), e = kn_attr_int(n, "end", r);
    s = s < 0 ? s + r : s;
    e = e < 0 ? e + r : e;
    *start = s < 0 ? 0 : s > r ? r : s;
    *end = e < 0 ? 0 : e > r ? r : e;
}

/* Shape / Size of a value with a fully static shape. */
static int fold_shape_node(kn_graph *g, int i, bool *folded, kn_error *err)
{
    kn_node *n = &g->nodes[i];
    int rank;
    int64_t dims[KN_MAX_RANK];
    *folded = false;
    if (n->n_in < 1 || n->n_out != 1 || n->out[0] < 0 || !kn_opt_static_shape(g, n->in[0], &rank, dims))
        return KN_OK;
    kn_tensor t = {0};
    int rc;
    if (!strcmp(n->op_type, "Size")) {
        int64_t total = 1;
        for (int d = 0; d < rank; d++)
            total *= dims[d];
        rc = kn_tensor_alloc(&t, KN_I64, 0, NULL, err);
        if (!rc)
            *(int64_t *)t.data = total;
    } else {
        int64_t start, end;
        shape_range(n, rank, &start, &end);
        int64_t len = end > start ? end - start : 0;
        rc = kn_tensor_alloc(&t, KN_I64, 1, &len, err);
        for (int64_t d = 0; !rc && d < len; d++)
            ((int64_t *)t.data)[d] = dims[start + d];
    }
    if (!rc) {
        int out = n->out[0];
        kn_opt_delete_node(g, i);
        rc = kn_opt_set_initializer(g, out, &t, err);
        *folded = !rc;
    }
    kn_tensor_release(&t);
    return rc;
}

/* Gather(Shape(x), constant indices) where the gathered dims of x are static even
 * though others are not (e.g. the sequence length of [batch, 128]). */
static int fold_gather_of_shape(kn_graph *g, int i, bool *folded, kn_error *err)
{
    const kn_node *n = &g->nodes[i];
    *folded = false;
    if (n->n_in != 2 || n->n_out != 1 || n->out[0] < 0 || kn_attr_int(n, "axis", 0) != 0)
        return KN_OK;
    int sp = g->values[n->in[0]].producer;
    const kn_tensor *idx = kn_opt_const(g, n->in[1]);
    if (sp < 0 || !idx || idx->rank > 1 || (idx->dtype != KN_I64 && idx->dtype != KN_I32))
        return KN_OK;
    const kn_node *shape = &g->nodes[sp];
    if (kn_opt_node_deleted(shape) || shape->domain[0] || strcmp(shape->op_type, "Shape"))
        return KN_OK;
    const kn_value *x = &g->values[shape->in[0]];
    if (!x->has_type || x->type.kind != KN_TYPE_TENSOR || x->type.rank < 0)
        return KN_OK;
    int64_t start, end;
    shape_range(shape, x->type.rank, &start, &end);
    int64_t len = end > start ? end - start : 0, vals[KN_MAX_RANK];
    if (idx->numel > KN_MAX_RANK)
        return KN_OK;
    for (int64_t k = 0; k < idx->numel; k++) {
        int64_t j = idx->dtype == KN_I64 ? ((const int64_t *)idx->data)[k] : ((const int32_t *)idx->data)[k];
        j = j < 0 ? j + len : j;
        if (j < 0 || j >= len || (vals[k] = x->type.dims[start + j].value) < 0)
            return KN_OK;
    }
    kn_tensor t = {0};
    int rc = kn_tensor_alloc(&t, KN_I64, idx->rank, idx->dims, err);
    if (!rc) {
        memcpy(t.data, vals, t.nbytes);
        int out = n->out[0];
        kn_opt_delete_node(g, i);
        rc = kn_opt_set_initializer(g, out, &t, err);
        *folded = !rc;
    }
    kn_tensor_release(&t);
    return rc;
}

static bool is_shape_query(const kn_node *n)
{
    return !n->domain[0] && (!strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size"));
}

static int run_fold_constants(kn_graph *g, int *rewrites, kn_error *err)
{
    /* nodes are in topological order: a folded node's consumers, later in the list,
     * see its outputs as constants in this same sweep */
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        if (kn_opt_node_deleted(n) || never_fold(n))
            continue;
        bool folded = false;
        int rc = KN_OK;
        if (all_inputs_const(g, n)) {
            if (small_enough(g, n))
                rc = fold_node(g, i, &folded, err);
        } else if (is_shape_query(n)) {
            rc = fold_shape_node(g, i, &folded, err);
        } else if (!n->domain[0] && !strcmp(n->op_type, "Gather")) {
            rc = fold_gather_of_shape(g, i, &folded, err);
        }
        if (rc)
            return rc;
        *rewrites += folded;
    }
    return KN_OK;
}

const kn_opt_pass kn_pass_fold_constants = {"fold_constants", KN_OPT_BASIC, run_fold_constants};
