/* sequence.c - operators on ONNX sequences and optionals: SequenceEmpty,
 * SequenceConstruct, SequenceInsert, SequenceErase, SequenceAt, SequenceLength,
 * ConcatFromSequence, SplitToSequence, SequenceMap, Optional, OptionalHasElement,
 * OptionalGetElement.
 *
 * Sequences and optionals are list records (kn_tensor with kind != KN_VALUE_TENSOR,
 * see core/tensor.h).  Every kernel here builds its list outputs directly in
 * c->out[i] with kn_value_init_list and appends owned copies of the items; inputs
 * are never modified.  Positions read from tensors are checked against the
 * sequence length and item dtypes against the sequence's element dtype. */
#include "ops/op_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* SplitToSequence / SequenceMap refuse to produce more items than this. */
#define SEQ_MAX_ITEMS ((int64_t)1 << 24)

/* ---- helpers ---- */

static const char *kind_name(const kn_tensor *t)
{
    return t->kind == KN_VALUE_SEQUENCE ? "sequence" : t->kind == KN_VALUE_OPTIONAL ? "optional" : "tensor";
}

/* Input i, which must be present and a sequence. */
static int seq_input(kn_op_ctx *c, int i, const kn_tensor **out)
{
    const kn_tensor *t = kn_op_in(c, i);
    if (!t)
        return kn_fail(c->err, KN_ERR_MODEL, "required input %d is missing", i);
    if (t->kind != KN_VALUE_SEQUENCE)
        return kn_fail(c->err, KN_ERR_ARG, "input %d must be a sequence, got a %s", i, kind_name(t));
    *out = t;
    return KN_OK;
}

/* Input i, which must be present and a plain tensor. */
static int tensor_input(kn_op_ctx *c, int i, const kn_tensor **out)
{
    const kn_tensor *t = kn_op_in(c, i);
    if (!t)
        return kn_fail(c->err, KN_ERR_MODEL, "required input %d is missing", i);
    if (t->kind != KN_VALUE_TENSOR)
        return kn_fail(c->err, KN_ERR_ARG, "input %d must be a tensor, got a %s", i, kind_name(t));
    if (kn_dtype_size(t->dtype) == 0)
        return kn_unsupported_dtype(c, t->dtype);
    *out = t;
    return KN_OK;
}

/* Make output i a fresh owned list of the given kind and element dtype. */
static kn_tensor *list_output(kn_op_ctx *c, int i, kn_value_kind kind, kn_dtype dt)
{
    kn_tensor *o = c->out[i];
    kn_value_init_list(o, kind, dt);
    return o;
}

/* Append a deep copy of t to list. */
static int append_copy(kn_op_ctx *c, kn_tensor *list, const kn_tensor *t)
{
    kn_tensor item = {0};
    int rc = kn_tensor_copy(&item, t, c->err);
    if (!rc)
        rc = kn_value_append(list, &item, c->err);
    if (rc)
        kn_tensor_release(&item);
    return rc;
}

/* Output i as a deep copy of t, whatever its kind. */
static int output_value_copy(kn_op_ctx *c, int i, const kn_tensor *t)
{
    if (t->kind != KN_VALUE_TENSOR)
        return kn_tensor_copy(c->out[i], t, c->err);
    if (kn_dtype_size(t->dtype) == 0)
        return kn_unsupported_dtype(c, t->dtype);
    return kn_op_output_copy(c, i, t) ? KN_OK : c->err->code;
}

/* The element dtype a new item t would give the sequence seq: its own dtype, which
 * must match the sequence's unless the sequence is empty (an empty sequence read
 * from a file carries no element type). */
static int check_item_dtype(kn_op_ctx *c, const kn_tensor *seq, const kn_tensor *t)
{
    if (seq->n_items > 0 && t->dtype != seq->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "tensor of dtype %s does not fit a sequence of %s",
                       kn_dtype_name(t->dtype), kn_dtype_name(seq->dtype));
    return KN_OK;
}

/* Read a position (int32/int64 scalar) and normalize it against a sequence of
 * length n: valid range [-n, n-1], or [-n, n] when at_end_ok (insertion). */
static int read_position(kn_op_ctx *c, const kn_tensor *t, int n, bool at_end_ok, int *pos)
{
    if (t->kind != KN_VALUE_TENSOR || (t->dtype != KN_I32 && t->dtype != KN_I64))
        return kn_fail(c->err, KN_ERR_ARG, "position must be an int32 or int64 tensor");
    if (t->numel != 1)
        return kn_fail(c->err, KN_ERR_ARG, "position must be a scalar, got %lld elements",
                       (long long)t->numel);
    int64_t p = kn_load_i64(t->data, t->dtype, 0);
    int64_t hi = at_end_ok ? n : n - 1;
    if (p < -(int64_t)n || p > hi)
        return kn_fail(c->err, KN_ERR_ARG, "position %lld is out of range for a sequence of length %d",
                       (long long)p, n);
    *pos = (int)(p < 0 ? p + n : p);
    return KN_OK;
}

/* The element dtype of graph value v as declared/inferred, or KN_F32. */
static kn_dtype declared_dtype(const kn_graph *g, int v)
{
    if (!g || v < 0 || v >= g->n_values || !g->values[v].has_type)
        return KN_F32;
    kn_dtype dt = g->values[v].type.dtype;
    return dt != KN_UNDEFINED ? dt : KN_F32;
}

/* ---- SequenceEmpty ---- */

static int run_sequence_empty(kn_op_ctx *c)
{
    int64_t dt = kn_attr_int(c->node, "dtype", KN_F32);
    if (dt <= KN_UNDEFINED || dt >= KN_DTYPE_COUNT_ONNX)
        return kn_fail(c->err, KN_ERR_MODEL, "SequenceEmpty: invalid dtype %lld", (long long)dt);
    if (kn_dtype_size((kn_dtype)dt) == 0)
        return kn_unsupported_dtype(c, (kn_dtype)dt);
    list_output(c, 0, KN_VALUE_SEQUENCE, (kn_dtype)dt);
    return KN_OK;
}

/* ---- SequenceConstruct ---- */

static int run_sequence_construct(kn_op_ctx *c)
{
    if (c->n_in < 1)
        return kn_fail(c->err, KN_ERR_MODEL, "SequenceConstruct needs at least one input");
    const kn_tensor *first = NULL;
    int rc = tensor_input(c, 0, &first);
    if (rc)
        return rc;
    kn_tensor *o = list_output(c, 0, KN_VALUE_SEQUENCE, first->dtype);
    for (int i = 0; i < c->n_in; i++) {
        const kn_tensor *t;
        if ((rc = tensor_input(c, i, &t)))
            return rc;
        if (t->dtype != first->dtype)
            return kn_fail(c->err, KN_ERR_ARG, "SequenceConstruct inputs mix dtypes %s and %s",
                           kn_dtype_name(first->dtype), kn_dtype_name(t->dtype));
        if ((rc = append_copy(c, o, t)))
            return rc;
    }
    return KN_OK;
}

/* ---- SequenceInsert ---- */

static int run_sequence_insert(kn_op_ctx *c)
{
    const kn_tensor *seq = NULL, *t = NULL;
    int rc = seq_input(c, 0, &seq);
    if (!rc)
        rc = tensor_input(c, 1, &t);
    if (!rc)
        rc = check_item_dtype(c, seq, t);
    if (rc)
        return rc;
    int pos = seq->n_items;
    if (kn_op_in(c, 2) && (rc = read_position(c, c->in[2], seq->n_items, true, &pos)))
        return rc;
    kn_tensor *o = list_output(c, 0, KN_VALUE_SEQUENCE, seq->n_items ? seq->dtype : t->dtype);
    for (int k = 0; k <= seq->n_items && !rc; k++) {
        if (k == pos)
            rc = append_copy(c, o, t);
        if (!rc && k < seq->n_items)
            rc = append_copy(c, o, &seq->items[k]);
    }
    return rc;
}

/* ---- SequenceErase ---- */

static int run_sequence_erase(kn_op_ctx *c)
{
    const kn_tensor *seq = NULL;
    int rc = seq_input(c, 0, &seq);
    if (rc)
        return rc;
    if (seq->n_items == 0)
        return kn_fail(c->err, KN_ERR_ARG, "SequenceErase on an empty sequence");
    int pos = seq->n_items - 1;
    if (kn_op_in(c, 1) && (rc = read_position(c, c->in[1], seq->n_items, false, &pos)))
        return rc;
    kn_tensor *o = list_output(c, 0, KN_VALUE_SEQUENCE, seq->dtype);
    for (int k = 0; k < seq->n_items && !rc; k++)
        if (k != pos)
            rc = append_copy(c, o, &seq->items[k]);
    return rc;
}

/* ---- SequenceAt / SequenceLength ---- */

static int run_sequence_at(kn_op_ctx *c)
{
    const kn_tensor *seq = NULL;
    int rc = seq_input(c, 0, &seq);
    if (rc)
        return rc;
    KN_REQUIRE_INPUT(c, 1);
    int pos;
    if ((rc = read_position(c, c->in[1], seq->n_items, false, &pos)))
        return rc;
    return output_value_copy(c, 0, &seq->items[pos]);
}

static int run_sequence_length(kn_op_ctx *c)
{
    const kn_tensor *seq = NULL;
    int rc = seq_input(c, 0, &seq);
    if (rc)
        return rc;
    kn_tensor *o = kn_op_output(c, 0, KN_I64, 0, NULL);
    if (!o)
        return c->err->code;
    *(int64_t *)o->data = seq->n_items;
    return KN_OK;
}

/* ---- ConcatFromSequence ---- */

/* Checks that every item fits the first one and computes the output shape. */
static int concat_shape(kn_op_ctx *c, const kn_tensor *seq, int axis, bool new_axis, int *rank,
                        int64_t *dims)
{
    const kn_tensor *first = &seq->items[0];
    int r = first->rank;
    int64_t total = 0;
    for (int k = 0; k < seq->n_items; k++) {
        const kn_tensor *t = &seq->items[k];
        if (t->kind != KN_VALUE_TENSOR || t->dtype != first->dtype || t->rank != r)
            return kn_fail(c->err, KN_ERR_ARG, "ConcatFromSequence: item %d does not match item 0 in "
                           "kind, dtype or rank", k);
        for (int d = 0; d < r; d++)
            if ((new_axis || d != axis) && t->dims[d] != first->dims[d])
                return kn_fail(c->err, KN_ERR_ARG, "ConcatFromSequence: item %d has dim %lld on axis %d, "
                               "item 0 has %lld", k, (long long)t->dims[d], d, (long long)first->dims[d]);
        int64_t add = new_axis ? 1 : t->dims[axis];
        if (add > INT64_MAX - total)
            return kn_fail(c->err, KN_ERR_ARG, "ConcatFromSequence: concatenated axis length overflows");
        total += add;
    }
    *rank = new_axis ? r + 1 : r;
    for (int d = 0, s = 0; d < *rank; d++) {
        if (d == axis) {
            dims[d] = total;
            if (!new_axis)
                s++;
        } else {
            dims[d] = first->dims[s++];
        }
    }
    return KN_OK;
}

static int run_concat_from_sequence(kn_op_ctx *c)
{
    const kn_tensor *seq = NULL;
    int rc = seq_input(c, 0, &seq);
    if (rc)
        return rc;
    const kn_attr *ax_attr = kn_attr_find(c->node, "axis");
    if (!ax_attr)
        return kn_fail(c->err, KN_ERR_MODEL, "ConcatFromSequence requires the 'axis' attribute");
    bool new_axis = kn_attr_int(c->node, "new_axis", 0) != 0;
    if (seq->n_items == 0)
        return kn_fail(c->err, KN_ERR_ARG, "ConcatFromSequence of an empty sequence");
    const kn_tensor *first = &seq->items[0];
    if (kn_dtype_size(first->dtype) == 0)
        return kn_unsupported_dtype(c, first->dtype);
    if (new_axis && first->rank + 1 > KN_MAX_RANK)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "ConcatFromSequence: result rank exceeds %d", KN_MAX_RANK);
    if (!new_axis && first->rank == 0)
        return kn_fail(c->err, KN_ERR_ARG, "ConcatFromSequence cannot concatenate scalars without new_axis");
    int axis = 0, rank = 0;
    int64_t dims[KN_MAX_RANK];
    if ((rc = kn_norm_axis(kn_attr_int(c->node, "axis", 0), first->rank + (new_axis ? 1 : 0), &axis, c->err)))
        return rc;
    if ((rc = concat_shape(c, seq, axis, new_axis, &rank, dims)))
        return rc;
    kn_tensor *o = kn_op_output(c, 0, first->dtype, rank, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0)
        return KN_OK;
    /* rows = product of dims before axis; each item contributes a block per row */
    int64_t rows = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        rows *= dims[d];
    for (int d = axis + 1; d < rank; d++)
        inner *= dims[d];
    size_t es = kn_dtype_size(first->dtype);
    char *dst = o->data;
    for (int64_t r = 0; r < rows; r++) {
        for (int k = 0; k < seq->n_items; k++) {
            const kn_tensor *t = &seq->items[k];
            size_t block = (size_t)((new_axis ? 1 : t->dims[axis]) * inner) * es;
            if (block) {
                memcpy(dst, (const char *)t->data + (size_t)r * block, block);
                dst += block;
            }
        }
    }
    return KN_OK;
}

/* ---- SplitToSequence ---- */

/* Copy the slab [start, start+len) along axis of t into a new item appended to list;
 * drop_axis removes the (length 1) axis from the item's shape. */
static int append_slab(kn_op_ctx *c, kn_tensor *list, const kn_tensor *t, int axis, int64_t start,
                       int64_t len, bool drop_axis)
{
    int64_t dims[KN_MAX_RANK], rows = 1, inner = 1;
    int rank = 0;
    for (int d = 0; d < t->rank; d++) {
        if (d == axis && drop_axis)
            continue;
        dims[rank++] = d == axis ? len : t->dims[d];
    }
    for (int d = 0; d < axis; d++)
        rows *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        inner *= t->dims[d];
    kn_tensor item = {0};
    int rc = kn_tensor_alloc(&item, t->dtype, rank, dims, c->err);
    if (rc)
        return rc;
    size_t es = kn_dtype_size(t->dtype);
    size_t block = (size_t)(len * inner) * es, row = (size_t)(t->dims[axis] * inner) * es;
    for (int64_t r = 0; block && r < rows; r++)
        memcpy((char *)item.data + (size_t)r * block,
               (const char *)t->data + (size_t)r * row + (size_t)(start * inner) * es, block);
    if ((rc = kn_value_append(list, &item, c->err)))
        kn_tensor_release(&item);
    return rc;
}

/* Split along axis by an explicit 1-D list of sizes. */
static int split_by_list(kn_op_ctx *c, kn_tensor *o, const kn_tensor *t, int axis, const kn_tensor *split)
{
    if (split->numel > SEQ_MAX_ITEMS)
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: too many split sizes");
    int64_t n = split->numel, sum = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t s = kn_load_i64(split->data, split->dtype, (size_t)k);
        if (s < 0 || s > t->dims[axis] - sum)
            return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: split sizes do not sum to dim %lld of axis %d",
                           (long long)t->dims[axis], axis);
        sum += s;
    }
    if (sum != t->dims[axis])
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: split sizes sum to %lld, axis %d has %lld",
                       (long long)sum, axis, (long long)t->dims[axis]);
    int64_t start = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t s = kn_load_i64(split->data, split->dtype, (size_t)k);
        int rc = append_slab(c, o, t, axis, start, s, false);
        if (rc)
            return rc;
        start += s;
    }
    return KN_OK;
}

/* Split along axis into chunks of `size` (the last one may be shorter). */
static int split_by_size(kn_op_ctx *c, kn_tensor *o, const kn_tensor *t, int axis, int64_t size, bool drop_axis)
{
    int64_t dim = t->dims[axis];
    if (size <= 0)
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: split size %lld must be positive", (long long)size);
    if ((dim + size - 1) / size > SEQ_MAX_ITEMS)
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: splitting %lld into chunks of %lld gives too many items",
                       (long long)dim, (long long)size);
    for (int64_t start = 0; start < dim; start += size) {
        int64_t len = dim - start < size ? dim - start : size;
        int rc = append_slab(c, o, t, axis, start, len, drop_axis);
        if (rc)
            return rc;
    }
    return KN_OK;
}

static int run_split_to_sequence(kn_op_ctx *c)
{
    const kn_tensor *t = NULL;
    int rc = tensor_input(c, 0, &t);
    if (rc)
        return rc;
    if (t->rank == 0)
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence input must have rank >= 1");
    int axis;
    if ((rc = kn_norm_axis(kn_attr_int(c->node, "axis", 0), t->rank, &axis, c->err)))
        return rc;
    bool keepdims = kn_attr_int(c->node, "keepdims", 1) != 0;
    const kn_tensor *split = kn_op_in(c, 1);
    if (split && (split->kind != KN_VALUE_TENSOR || (split->dtype != KN_I32 && split->dtype != KN_I64)))
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: 'split' must be an int32 or int64 tensor");
    if (split && split->rank > 1)
        return kn_fail(c->err, KN_ERR_ARG, "SplitToSequence: 'split' must be a scalar or 1-D");
    kn_tensor *o = list_output(c, 0, KN_VALUE_SEQUENCE, t->dtype);
    if (!split)
        return split_by_size(c, o, t, axis, 1, !keepdims);
    if (split->rank == 0)
        return split_by_size(c, o, t, axis, kn_load_i64(split->data, split->dtype, 0), false);
    return split_by_list(c, o, t, axis, split);
}

/* ---- SequenceMap ---- */

typedef struct map_run {
    int n_in, n_out;
    const kn_tensor **body_in;
    kn_tensor *body_out;
} map_run;

/* Number of iterations: the length of input 0; other sequence inputs must agree. */
static int map_length(kn_op_ctx *c, int *len)
{
    const kn_tensor *seq = NULL;
    int rc = seq_input(c, 0, &seq);
    if (rc)
        return rc;
    for (int i = 1; i < c->n_in; i++) {
        const kn_tensor *t = c->in[i];
        if (!t)
            return kn_fail(c->err, KN_ERR_MODEL, "SequenceMap input %d is missing", i);
        if (t->kind == KN_VALUE_OPTIONAL)
            return kn_fail(c->err, KN_ERR_ARG, "SequenceMap input %d is an optional", i);
        if (t->kind == KN_VALUE_SEQUENCE && t->n_items != seq->n_items)
            return kn_fail(c->err, KN_ERR_ARG, "SequenceMap input %d has %d items, input 0 has %d", i,
                           t->n_items, seq->n_items);
    }
    *len = seq->n_items;
    return KN_OK;
}

/* Run the body on item `it` and append its outputs to the output sequences. */
static int map_step(kn_op_ctx *c, const kn_graph *body, map_run *m, int it)
{
    for (int i = 0; i < m->n_in; i++) {
        const kn_tensor *t = c->in[i];
        m->body_in[i] = t->kind == KN_VALUE_SEQUENCE ? &t->items[it] : t;
    }
    int rc = c->run_subgraph(c, body, m->n_in, m->body_in, m->n_out, m->body_out);
    if (rc)
        return rc;
    for (int k = 0; k < m->n_out && !rc; k++) {
        kn_tensor *item = &m->body_out[k], *o = c->out[k];
        if (item->kind != KN_VALUE_TENSOR)
            rc = kn_fail(c->err, KN_ERR_UNSUPPORTED, "SequenceMap body output %d is a %s, not a tensor",
                         k, kind_name(item));
        else if (o->n_items > 0 && item->dtype != o->dtype)
            rc = kn_fail(c->err, KN_ERR_RUNTIME, "SequenceMap body output %d changes dtype from %s to %s",
                         k, kn_dtype_name(o->dtype), kn_dtype_name(item->dtype));
        if (!rc) {
            o->dtype = item->dtype;
            rc = kn_value_append(o, item, c->err);
        }
    }
    for (int k = 0; k < m->n_out; k++)
        kn_tensor_release(&m->body_out[k]);
    return rc;
}

static int run_sequence_map(kn_op_ctx *c)
{
    const kn_graph *body = kn_attr_graph(c->node, "body");
    if (!body)
        return kn_fail(c->err, KN_ERR_MODEL, "SequenceMap lacks its body graph");
    if (body->n_inputs != c->n_in || body->n_outputs != c->n_out || c->n_out < 1)
        return kn_fail(c->err, KN_ERR_MODEL, "SequenceMap body has %d inputs / %d outputs, the node "
                       "%d / %d", body->n_inputs, body->n_outputs, c->n_in, c->n_out);
    int len;
    int rc = map_length(c, &len);
    if (rc)
        return rc;
    for (int k = 0; k < c->n_out; k++)
        list_output(c, k, KN_VALUE_SEQUENCE, declared_dtype(body, body->outputs[k]));
    map_run m = {.n_in = c->n_in, .n_out = c->n_out};
    m.body_in = calloc((size_t)c->n_in, sizeof *m.body_in);
    m.body_out = calloc((size_t)c->n_out, sizeof *m.body_out);
    if (!m.body_in || !m.body_out)
        rc = kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    for (int it = 0; it < len && !rc; it++)
        rc = map_step(c, body, &m, it);
    free(m.body_in);
    free(m.body_out);
    return rc;
}

/* ---- Optional / OptionalHasElement / OptionalGetElement ---- */

static int run_optional(kn_op_ctx *c)
{
    const kn_tensor *t = kn_op_in(c, 0);
    if (!t) {
        /* Without an input the 'type' attribute gives the element type; kiln reads
         * it from the output's declared/inferred type instead. */
        list_output(c, 0, KN_VALUE_OPTIONAL, declared_dtype(c->graph, c->node->out[0]));
        return KN_OK;
    }
    if (t->kind == KN_VALUE_OPTIONAL)
        return kn_fail(c->err, KN_ERR_ARG, "Optional input is already an optional");
    if (t->kind == KN_VALUE_TENSOR && kn_dtype_size(t->dtype) == 0)
        return kn_unsupported_dtype(c, t->dtype);
    kn_tensor *o = list_output(c, 0, KN_VALUE_OPTIONAL, t->dtype);
    return append_copy(c, o, t);
}

static int run_optional_has_element(kn_op_ctx *c)
{
    const kn_tensor *t = kn_op_in(c, 0);
    bool has = t && (t->kind != KN_VALUE_OPTIONAL || t->n_items > 0);
    kn_tensor *o = kn_op_output(c, 0, KN_BOOL, 0, NULL);
    if (!o)
        return c->err->code;
    *(uint8_t *)o->data = has;
    return KN_OK;
}

static int run_optional_get_element(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *t = c->in[0];
    if (t->kind != KN_VALUE_OPTIONAL)
        return output_value_copy(c, 0, t);
    if (t->n_items == 0)
        return kn_fail(c->err, KN_ERR_RUNTIME, "OptionalGetElement on an empty optional");
    return output_value_copy(c, 0, &t->items[0]);
}

/* ---- static type inference (best effort; element shapes left unknown) ---- */

/* Output 0 of kind `kind` with element dtype dt (nothing when dt is unknown). */
static int infer_set(kn_infer_ctx *ic, kn_type_kind kind, kn_dtype dt, int rank)
{
    if (ic->n_out < 1 || dt == KN_UNDEFINED)
        return KN_OK;
    ic->out[0].kind = kind;
    ic->out[0].dtype = dt;
    ic->out[0].rank = rank;
    for (int d = 0; d < rank; d++) {
        ic->out[0].dims[d].value = -1;
        ic->out[0].dims[d].param = NULL;
    }
    return KN_OK;
}

/* dtype of input i when its type is known to be of the given kind, else UNDEFINED. */
static kn_dtype infer_in_dtype(const kn_infer_ctx *ic, int i, kn_type_kind kind)
{
    if (i >= ic->n_in || !ic->in[i] || ic->in[i]->kind != kind)
        return KN_UNDEFINED;
    return ic->in[i]->dtype;
}

static int infer_sequence_empty(kn_infer_ctx *ic)
{
    int64_t dt = kn_attr_int(ic->node, "dtype", KN_F32);
    if (dt <= KN_UNDEFINED || dt >= KN_DTYPE_COUNT_ONNX)
        return KN_OK;
    return infer_set(ic, KN_TYPE_SEQUENCE, (kn_dtype)dt, -1);
}

/* SequenceConstruct, SplitToSequence: a sequence of input 0's dtype. */
static int infer_seq_of_tensor0(kn_infer_ctx *ic)
{
    return infer_set(ic, KN_TYPE_SEQUENCE, infer_in_dtype(ic, 0, KN_TYPE_TENSOR), -1);
}

/* SequenceInsert, SequenceErase: a sequence of input 0's element dtype. */
static int infer_same_seq(kn_infer_ctx *ic)
{
    return infer_set(ic, KN_TYPE_SEQUENCE, infer_in_dtype(ic, 0, KN_TYPE_SEQUENCE), -1);
}

static int infer_sequence_at(kn_infer_ctx *ic)
{
    if (infer_in_dtype(ic, 0, KN_TYPE_SEQUENCE) == KN_UNDEFINED || ic->n_out < 1)
        return KN_OK;
    ic->out[0] = *ic->in[0]; /* a sequence type records its elements' shape */
    ic->out[0].kind = KN_TYPE_TENSOR;
    return KN_OK;
}

static int infer_sequence_length(kn_infer_ctx *ic)
{
    return infer_set(ic, KN_TYPE_TENSOR, KN_I64, 0);
}

static int infer_concat_from_sequence(kn_infer_ctx *ic)
{
    return infer_set(ic, KN_TYPE_TENSOR, infer_in_dtype(ic, 0, KN_TYPE_SEQUENCE), -1);
}

/* Optional with a tensor input (other forms need the 'type' attribute). */
static int infer_optional(kn_infer_ctx *ic)
{
    return infer_set(ic, KN_TYPE_OPTIONAL, infer_in_dtype(ic, 0, KN_TYPE_TENSOR), -1);
}

static int infer_optional_has_element(kn_infer_ctx *ic)
{
    return infer_set(ic, KN_TYPE_TENSOR, KN_BOOL, 0);
}

const kn_op_def kn_ops_sequence[] = {
    {"", "SequenceEmpty", 1, run_sequence_empty, NULL, infer_sequence_empty, true},
    {"", "SequenceConstruct", 1, run_sequence_construct, NULL, infer_seq_of_tensor0, true},
    {"", "SequenceInsert", 1, run_sequence_insert, NULL, infer_same_seq, true},
    {"", "SequenceErase", 1, run_sequence_erase, NULL, infer_same_seq, true},
    {"", "SequenceAt", 1, run_sequence_at, NULL, infer_sequence_at, true},
    {"", "SequenceLength", 1, run_sequence_length, NULL, infer_sequence_length, true},
    {"", "ConcatFromSequence", 1, run_concat_from_sequence, NULL, infer_concat_from_sequence, true},
    {"", "SplitToSequence", 1, run_split_to_sequence, NULL, infer_seq_of_tensor0, true},
    {"", "SequenceMap", 1, run_sequence_map, NULL, NULL, true},
    {"", "Optional", 1, run_optional, NULL, infer_optional, true},
    {"", "OptionalHasElement", 1, run_optional_has_element, NULL, infer_optional_has_element, true},
    {"", "OptionalGetElement", 1, run_optional_get_element, NULL, NULL, true},
    {0},
};
