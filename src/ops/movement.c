/* movement.c - operator family 'movement': operators that rearrange elements
 * without computing on them: Transpose, Concat, Split, Slice, Tile, Pad,
 * DepthToSpace, SpaceToDepth, Trilu, ReverseSequence, CenterCropPad, and Col2Im
 * (which sums overlapping blocks, so it computes through double / int64).
 * Every other kernel is dtype-agnostic: it copies elements of kn_dtype_size() bytes,
 * with memcpy fast paths for contiguous inner runs.  Most of them reduce to one
 * strided gather (strided_copy) over a view of the input.  A Transpose that moves
 * the input's innermost axis away from the output's innermost position runs as
 * cache-blocked 2-D tile transposes split over the session's threads. */
#include "ops/op_util.h"

#include <stdlib.h>
#include <string.h>

#include "exec/threadpool.h"
#include "kernels/vmath.h"

/* Most outputs Split accepts (the executor allows fewer). */
#define SPLIT_MAX_OUTPUTS 4096

/* ---- small helpers ---- */

/* Pointer to element `off` (may be negative) of a buffer of es-byte elements. */
static inline const char *elem_at(const char *base, int64_t off, size_t es)
{
    return base + (ptrdiff_t)off * (ptrdiff_t)es;
}

/* dst[j] = src[j * stride] for j < n, elements of es bytes; one loop per common
 * element size so the copy compiles to plain loads and stores. */
static void gather_run(char *dst, const char *src, int64_t n, int64_t stride, size_t es)
{
#define KN_GATHER_RUN(T)                                                              \
    for (int64_t j = 0; j < n; j++) {                                                 \
        T v;                                                                          \
        memcpy(&v, src + (ptrdiff_t)(j * stride) * (ptrdiff_t)sizeof(T), sizeof(T));  \
        memcpy(dst + (size_t)j * sizeof(T), &v, sizeof(T));                           \
    }
    switch (es) {
    case 1: KN_GATHER_RUN(uint8_t) break;
    case 2: KN_GATHER_RUN(uint16_t) break;
    case 4: KN_GATHER_RUN(uint32_t) break;
    case 8: KN_GATHER_RUN(uint64_t) break;
    default:
        for (int64_t j = 0; j < n; j++)
            memcpy(dst + (size_t)j * es, elem_at(src, j * stride, es), es);
    }
#undef KN_GATHER_RUN
}

/* Merge adjacent axes that are contiguous with each other in the source view and
 * drop size-1 axes, so that strided_copy copies the longest inner runs it can. */
static int coalesce_view(int rank, int64_t *dims, int64_t *strides)
{
    int r = 0;
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 1)
            continue;
        if (r > 0 && strides[r - 1] == strides[i] * dims[i]) {
            dims[r - 1] *= dims[i];
            strides[r - 1] = strides[i];
            continue;
        }
        dims[r] = dims[i];
        strides[r] = strides[i];
        r++;
    }
    return r;
}

/* Write into contiguous dst the view of src with shape (rank, dims) whose element
 * i0..ik lies at src element sum(ij * strides[j]) (strides may be negative or 0). */
static void strided_copy(char *dst, const char *src, int rank, const int64_t *dims_in,
                         const int64_t *strides_in, size_t es)
{
    int64_t dims[KN_MAX_RANK], strides[KN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        if (dims_in[i] == 0)
            return;
        dims[i] = dims_in[i];
        strides[i] = strides_in[i];
    }
    rank = coalesce_view(rank, dims, strides);
    if (rank == 0) {
        kn_copy_elem(dst, src, es);
        return;
    }
    int64_t inner = dims[rank - 1], istr = strides[rank - 1], rows = 1;
    for (int i = 0; i < rank - 1; i++)
        rows *= dims[i];
    int64_t idx[KN_MAX_RANK] = {0}, off = 0;
    size_t run = (size_t)inner * es;
    for (int64_t r = 0; r < rows; r++) {
        const char *s = elem_at(src, off, es);
        if (istr == 1)
            memcpy(dst, s, run);
        else
            gather_run(dst, s, inner, istr, es);
        dst += run;
        for (int d = rank - 2; d >= 0; d--) {
            off += strides[d];
            if (++idx[d] < dims[d])
                break;
            off -= strides[d] * dims[d];
            idx[d] = 0;
        }
    }
}

/* Normalize a list of axes against rank, rejecting duplicates. */
static int norm_axes(kn_op_ctx *c, const int64_t *axes, int n, int rank, int *out)
{
    bool seen[KN_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        if (kn_norm_axis(axes[i], rank, &out[i], c->err) || rank == 0)
            return kn_fail(c->err, KN_ERR_ARG, "%s: axis %lld out of range for rank %d",
                           c->node->op_type, (long long)axes[i], rank);
        if (seen[out[i]])
            return kn_fail(c->err, KN_ERR_ARG, "%s: axis %lld repeated", c->node->op_type,
                           (long long)axes[i]);
        seen[out[i]] = true;
    }
    return KN_OK;
}

/* ---- Transpose ---- */

/* Tiled transpose of a coalesced view (rank >= 2) whose innermost output axis is
 * not the source's contiguous axis q: for every index of the other axes, a 2-D
 * transpose out[i * ostr_q + j] = src[i + j * s_last] (i < dims[q], j < dims[last])
 * done in TILE x TILE blocks, so both sides touch whole cache lines. */
#define TILE 32
#define TILE_GRAIN 65536 /* elements per chunk handed to a thread */

typedef struct tile_job {
    const kn_vmath_ops *vm;
    int rank, q;
    int64_t dims[KN_MAX_RANK], istr[KN_MAX_RANK], ostr[KN_MAX_RANK];
    int64_t iblocks; /* blocks of TILE along axis q */
    const char *src;
    char *dst;
    size_t es;
} tile_job;

static void tile_copy(const tile_job *j, char *dst, const char *src, int64_t ni, int64_t nj)
{
    int64_t os = j->ostr[j->q], is = j->istr[j->rank - 1];
    size_t es = j->es;
    if (es == 4) { /* float-sized: bit copies through the vmath block transpose */
        j->vm->transpose((const float *)src, (size_t)is, (float *)dst, (size_t)os, (size_t)nj,
                         (size_t)ni);
        return;
    }
    for (int64_t i = 0; i < ni; i++)
        for (int64_t jj = 0; jj < nj; jj++)
            kn_copy_elem(dst + (size_t)(i * os + jj) * es, src + (size_t)(i + jj * is) * es, es);
}

/* item = (index over the axes other than q and last) * iblocks + block of q */
static void tile_range(void *ctx, int64_t begin, int64_t end, int thread_index)
{
    const tile_job *j = ctx;
    int last = j->rank - 1;
    (void)thread_index;
    for (int64_t item = begin; item < end; item++) {
        int64_t rest = item / j->iblocks, i0 = item % j->iblocks * TILE, so = 0, doff = 0;
        for (int d = last - 1; d >= 0; d--) {
            if (d == j->q)
                continue;
            int64_t k = rest % j->dims[d];
            rest /= j->dims[d];
            so += k * j->istr[d];
            doff += k * j->ostr[d];
        }
        int64_t ni = j->dims[j->q] - i0 < TILE ? j->dims[j->q] - i0 : TILE;
        so += i0;
        doff += i0 * j->ostr[j->q];
        for (int64_t j0 = 0; j0 < j->dims[last]; j0 += TILE) {
            int64_t nj = j->dims[last] - j0 < TILE ? j->dims[last] - j0 : TILE;
            tile_copy(j, j->dst + (size_t)(doff + j0) * j->es,
                      j->src + (size_t)(so + j0 * j->istr[last]) * j->es, ni, nj);
        }
    }
}

/* The tiled path when the view needs it (inner stride != 1); false otherwise. */
static bool transpose_tiled(kn_op_ctx *c, char *dst, const char *src, int rank,
                            const int64_t *dims_in, const int64_t *strides_in, size_t es)
{
    tile_job j = {.vm = kn_vmath(), .src = src, .dst = dst, .es = es, .q = -1};
    memcpy(j.dims, dims_in, sizeof(int64_t) * (size_t)rank);
    memcpy(j.istr, strides_in, sizeof(int64_t) * (size_t)rank);
    j.rank = coalesce_view(rank, j.dims, j.istr);
    if (j.rank < 2 || j.istr[j.rank - 1] == 1 || j.dims[j.rank - 1] < 4)
        return false;
    for (int d = 0; d < j.rank - 1; d++)
        if (j.istr[d] == 1)
            j.q = d;
    if (j.q < 0 || j.dims[j.q] < 4)
        return false;
    kn_strides(j.rank, j.dims, j.ostr);
    j.iblocks = (j.dims[j.q] + TILE - 1) / TILE;
    int64_t items = kn_dims_prod(j.dims, 0, j.rank - 1) / j.dims[j.q] * j.iblocks;
    int64_t per_item = TILE * j.dims[j.rank - 1];
    kn_parallel_for(c->pool, items, TILE_GRAIN / per_item + 1, tile_range, &j);
    return true;
}

static int run_transpose(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int r = x->rank;
    int64_t perm[KN_MAX_RANK], dims[KN_MAX_RANK], strides[KN_MAX_RANK], in_str[KN_MAX_RANK];
    int n = kn_read_int_list(c, true, "perm", 0, perm, KN_MAX_RANK);
    if (n == -2)
        return c->err->code;
    if (n < 0) {
        n = r;
        for (int i = 0; i < r; i++)
            perm[i] = r - 1 - i;
    }
    if (n != r)
        return kn_fail(c->err, KN_ERR_ARG, "Transpose: perm has %d entries for rank %d", n, r);
    bool seen[KN_MAX_RANK] = {false};
    for (int i = 0; i < r; i++) {
        if (perm[i] < 0 || perm[i] >= r || seen[perm[i]])
            return kn_fail(c->err, KN_ERR_ARG, "Transpose: perm is not a permutation of 0..%d",
                           r - 1);
        seen[perm[i]] = true;
    }
    for (int i = 0; i < r; i++)
        dims[i] = x->dims[perm[i]];
    kn_tensor *o = kn_op_output_uninit(c, 0, x->dtype, r, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0)
        return KN_OK; /* strides of an empty tensor may overflow */
    kn_strides(r, x->dims, in_str);
    for (int i = 0; i < r; i++)
        strides[i] = in_str[perm[i]];
    size_t es = kn_dtype_size(x->dtype);
    if (!transpose_tiled(c, o->data, x->data, r, dims, strides, es))
        strided_copy(o->data, x->data, r, dims, strides, es);
    return KN_OK;
}

/* ---- Concat ---- */

static int concat_shape(kn_op_ctx *c, int *axis_out, int64_t *dims)
{
    const kn_tensor *first = NULL;
    for (int i = 0; i < c->n_in; i++) {
        KN_REQUIRE_INPUT(c, i);
        if (!first)
            first = c->in[i];
    }
    if (!first)
        return kn_fail(c->err, KN_ERR_MODEL, "Concat: no inputs");
    int r = first->rank, axis;
    if (r == 0)
        return kn_fail(c->err, KN_ERR_ARG, "Concat: inputs must have rank >= 1");
    if (!kn_attr_find(c->node, "axis") && c->opset >= 4)
        return kn_fail(c->err, KN_ERR_MODEL, "Concat: missing 'axis' attribute");
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 1), r, &axis, c->err))
        return c->err->code;
    memcpy(dims, first->dims, sizeof(int64_t) * (size_t)r);
    dims[axis] = 0;
    for (int i = 0; i < c->n_in; i++) {
        const kn_tensor *t = c->in[i];
        int rc = kn_check_same_dtype(c, first, t);
        if (rc)
            return rc;
        if (t->rank != r)
            return kn_fail(c->err, KN_ERR_ARG, "Concat: input %d has rank %d, expected %d", i,
                           t->rank, r);
        for (int d = 0; d < r; d++)
            if (d != axis && t->dims[d] != dims[d])
                return kn_fail(c->err, KN_ERR_ARG,
                               "Concat: input %d has size %lld on axis %d, expected %lld", i,
                               (long long)t->dims[d], d, (long long)dims[d]);
        if (t->dims[axis] > INT64_MAX - dims[axis])
            return kn_fail(c->err, KN_ERR_ARG, "Concat: output size overflows");
        dims[axis] += t->dims[axis];
    }
    *axis_out = axis;
    return KN_OK;
}

static int run_concat(kn_op_ctx *c)
{
    int axis = 0;
    int64_t dims[KN_MAX_RANK];
    int rc = concat_shape(c, &axis, dims);
    if (rc)
        return rc;
    const kn_tensor *first = c->in[0];
    kn_tensor *o = kn_op_output(c, 0, first->dtype, first->rank, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0)
        return KN_OK;
    size_t es = kn_dtype_size(first->dtype);
    int64_t outer = kn_dims_prod(dims, 0, axis), inner = kn_dims_prod(dims, axis + 1, first->rank);
    char *dst = o->data;
    for (int64_t k = 0; k < outer; k++) {
        for (int i = 0; i < c->n_in; i++) {
            size_t chunk = (size_t)(c->in[i]->dims[axis] * inner) * es;
            if (chunk)
                memcpy(dst, (const char *)c->in[i]->data + (size_t)k * chunk, chunk);
            dst += chunk;
        }
    }
    return KN_OK;
}

/* ---- Split ---- */

/* Fill split[0..n_out) with the chunk sizes along an axis of size dim. */
static int split_sizes(kn_op_ctx *c, int64_t dim, int64_t *split)
{
    int n_out = c->n_out;
    /* Split-1 took 'split' as an optional input or an attribute; 2..12 as an
     * attribute; 13+ as an optional input (an empty one counts as absent) */
    int n = kn_read_int_list(c, c->opset < 13 && !(c->opset < 2 && kn_op_in(c, 1)), "split", 1,
                             split, n_out);
    if (n == -2)
        return c->err->code;
    if (n > 0) {
        if (n != n_out)
            return kn_fail(c->err, KN_ERR_ARG, "Split: 'split' has %d entries for %d outputs", n,
                           n_out);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            if (split[i] < 0 || split[i] > dim)
                return kn_fail(c->err, KN_ERR_ARG, "Split: invalid split size %lld",
                               (long long)split[i]);
            sum += split[i];
            if (sum > dim)
                break;
        }
        if (sum != dim)
            return kn_fail(c->err, KN_ERR_ARG, "Split: split sizes do not add up to %lld",
                           (long long)dim);
        return KN_OK;
    }
    const kn_attr *na = c->opset >= 18 ? kn_attr_find(c->node, "num_outputs") : NULL;
    if (na && kn_attr_int(c->node, "num_outputs", 0) != n_out)
        return kn_fail(c->err, KN_ERR_ARG, "Split: num_outputs %lld but node has %d outputs",
                       (long long)kn_attr_int(c->node, "num_outputs", 0), n_out);
    if (!na && dim % n_out)
        return kn_fail(c->err, KN_ERR_ARG, "Split: size %lld not divisible into %d equal parts",
                       (long long)dim, n_out);
    int64_t chunk = dim / n_out + (dim % n_out != 0);
    for (int i = 0; i < n_out; i++) {
        int64_t left = dim - chunk * i;
        split[i] = left < 0 ? 0 : left < chunk ? left : chunk;
    }
    if (n_out > 1 && dim - chunk * (n_out - 1) < 0)
        return kn_fail(c->err, KN_ERR_ARG, "Split: size %lld cannot be split into %d outputs",
                       (long long)dim, n_out);
    return KN_OK;
}

static int run_split(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (c->n_out < 1 || c->n_out > SPLIT_MAX_OUTPUTS)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Split: %d outputs not supported", c->n_out);
    if (x->rank == 0)
        return kn_fail(c->err, KN_ERR_ARG, "Split: input must have rank >= 1");
    int axis;
    if (kn_norm_axis(kn_attr_int(c->node, "axis", 0), x->rank, &axis, c->err))
        return c->err->code;
    int64_t *split = malloc(sizeof(int64_t) * (size_t)c->n_out);
    if (!split)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    int rc = split_sizes(c, x->dims[axis], split);
    size_t es = kn_dtype_size(x->dtype);
    /* products of the dims of an empty tensor may overflow: copy nothing then */
    int64_t outer = 0, inner = 0;
    if (x->numel > 0) {
        outer = kn_dims_prod(x->dims, 0, axis);
        inner = kn_dims_prod(x->dims, axis + 1, x->rank);
    }
    size_t in_row = (size_t)(x->dims[axis] * inner) * es;
    int64_t dims[KN_MAX_RANK], start = 0;
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    for (int i = 0; !rc && i < c->n_out; i++) {
        dims[axis] = split[i];
        kn_tensor *o = kn_op_output(c, i, x->dtype, x->rank, dims);
        if (!o) {
            rc = c->err->code;
            break;
        }
        size_t chunk = (size_t)(split[i] * inner) * es;
        for (int64_t k = 0; chunk && k < outer; k++)
            memcpy((char *)o->data + (size_t)k * chunk,
                   (const char *)x->data + (size_t)k * in_row + (size_t)(start * inner) * es, chunk);
        start += split[i];
    }
    free(split);
    return rc;
}

/* ---- Slice ---- */

typedef struct slice_params {
    int n;
    int64_t starts[KN_MAX_RANK], ends[KN_MAX_RANK], axes[KN_MAX_RANK], steps[KN_MAX_RANK];
} slice_params;

static int slice_read_params(kn_op_ctx *c, slice_params *p)
{
    bool attr = c->opset < 10;
    int ns = kn_read_int_list(c, attr, "starts", 1, p->starts, KN_MAX_RANK);
    int ne = kn_read_int_list(c, attr, "ends", 2, p->ends, KN_MAX_RANK);
    if (ns == -2 || ne == -2)
        return c->err->code;
    if (ns < 0 || ne < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "Slice: starts and ends are required");
    if (ns != ne)
        return kn_fail(c->err, KN_ERR_ARG, "Slice: %d starts but %d ends", ns, ne);
    p->n = ns;
    int na = kn_read_int_list(c, attr, "axes", 3, p->axes, KN_MAX_RANK);
    int nst = attr ? -1 : kn_read_int_list(c, false, "steps", 4, p->steps, KN_MAX_RANK);
    if (na == -2 || nst == -2)
        return c->err->code;
    if (na >= 0 && na != ns)
        return kn_fail(c->err, KN_ERR_ARG, "Slice: %d axes for %d starts", na, ns);
    if (nst >= 0 && nst != ns)
        return kn_fail(c->err, KN_ERR_ARG, "Slice: %d steps for %d starts", nst, ns);
    for (int i = 0; i < ns; i++) {
        if (na < 0)
            p->axes[i] = i;
        if (nst < 0)
            p->steps[i] = 1;
        if (p->steps[i] == 0)
            return kn_fail(c->err, KN_ERR_ARG, "Slice: step on axis %lld is 0",
                           (long long)p->axes[i]);
    }
    return KN_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Resolve one axis: first index and element count, following the ONNX clamping rules. */
static void slice_axis(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *first,
                       int64_t *count)
{
    *first = 0;
    *count = 0;
    if (dim == 0)
        return;
    if (s < 0)
        s += dim;
    if (e < 0)
        e += dim;
    uint64_t span, mag;
    if (step > 0) {
        s = clamp64(s, 0, dim);
        e = clamp64(e, 0, dim);
        if (e <= s)
            return;
        span = (uint64_t)(e - s);
        mag = (uint64_t)step;
    } else {
        s = clamp64(s, 0, dim - 1);
        e = clamp64(e, -1, dim - 1);
        if (e >= s)
            return;
        span = (uint64_t)(s - e);
        mag = step == INT64_MIN ? (uint64_t)1 << 63 : (uint64_t)-step;
    }
    *first = s;
    *count = (int64_t)((span - 1) / mag + 1);
}

static int run_slice(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    slice_params p;
    int rc = slice_read_params(c, &p);
    if (rc)
        return rc;
    int axes[KN_MAX_RANK];
    if ((rc = norm_axes(c, p.axes, p.n, x->rank, axes)))
        return rc;
    int64_t dims[KN_MAX_RANK], strides[KN_MAX_RANK], in_str[KN_MAX_RANK], first[KN_MAX_RANK];
    int64_t step[KN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        dims[d] = x->dims[d];
        first[d] = 0;
        step[d] = 1;
    }
    for (int i = 0; i < p.n; i++) {
        int d = axes[i];
        slice_axis(x->dims[d], p.starts[i], p.ends[i], p.steps[i], &first[d], &dims[d]);
        step[d] = p.steps[i];
    }
    kn_tensor *o = kn_op_output(c, 0, x->dtype, x->rank, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0)
        return KN_OK;
    kn_strides(x->rank, x->dims, in_str);
    /* |step| < dim whenever more than one element is taken: no overflow */
    for (int d = 0; d < x->rank; d++)
        strides[d] = dims[d] > 1 ? in_str[d] * step[d] : 0;
    int64_t base = 0;
    for (int d = 0; d < x->rank; d++)
        base += first[d] * in_str[d];
    size_t es = kn_dtype_size(x->dtype);
    strided_copy(o->data, elem_at(x->data, base, es), x->rank, dims, strides, es);
    return KN_OK;
}

/* ---- Tile ---- */

static int run_tile(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    if (c->opset < 6)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Tile before opset 6 (tiles/axis) not supported");
    const kn_tensor *x = c->in[0];
    int r = x->rank;
    int64_t rep[KN_MAX_RANK], dims[KN_MAX_RANK], in_str[KN_MAX_RANK];
    if (c->in[1]->rank != 1)
        return kn_fail(c->err, KN_ERR_ARG, "Tile: repeats must be 1-D");
    int n = kn_read_ints(c->in[1], rep, KN_MAX_RANK, c->err);
    if (n < 0)
        return c->err->code;
    if (n != r)
        return kn_fail(c->err, KN_ERR_ARG, "Tile: %d repeats for rank %d", n, r);
    for (int d = 0; d < r; d++)
        if (rep[d] < 0 || !kn_mul_ok(x->dims[d], rep[d], &dims[d]))
            return kn_fail(c->err, KN_ERR_ARG, "Tile: invalid repeat %lld on axis %d",
                           (long long)rep[d], d);
    kn_tensor *o = kn_op_output(c, 0, x->dtype, r, dims);
    if (!o)
        return c->err->code;
    size_t es = kn_dtype_size(x->dtype);
    if (o->numel == 0)
        return KN_OK;
    if (r == 0) {
        kn_copy_elem(o->data, x->data, es);
        return KN_OK;
    }
    kn_strides(r, x->dims, in_str);
    size_t in_run = (size_t)x->dims[r - 1] * es;
    int64_t rows = o->numel / dims[r - 1], idx[KN_MAX_RANK] = {0};
    char *dst = o->data;
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0;
        for (int d = 0; d < r - 1; d++)
            off += (idx[d] % x->dims[d]) * in_str[d];
        const char *src = elem_at(x->data, off, es);
        for (int64_t k = 0; k < rep[r - 1]; k++, dst += in_run)
            memcpy(dst, src, in_run);
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < dims[d])
                break;
            idx[d] = 0;
        }
    }
    return KN_OK;
}

/* ---- Pad (and the padding core shared with CenterCropPad) ---- */

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

/* Source index along an axis of size dim for padded index i (i may be outside
 * [0, dim)), or -1 for the constant value. */
static int64_t pad_source(int64_t i, int64_t dim, pad_mode mode)
{
    if (i >= 0 && i < dim)
        return i;
    switch (mode) {
    case PAD_EDGE:
        return i < 0 ? 0 : dim - 1;
    case PAD_WRAP:
        return ((i % dim) + dim) % dim;
    case PAD_REFLECT: {
        if (dim == 1)
            return 0;
        int64_t period = 2 * (dim - 1), m = ((i % period) + period) % period;
        return m < dim ? m : period - m;
    }
    default:
        return -1;
    }
}

/* Output 0 = x padded by begin[d] / end[d] elements per axis (negative crops). */
static int pad_core(kn_op_ctx *c, const kn_tensor *x, const int64_t *begin, const int64_t *end,
                    pad_mode mode, const char *value)
{
    int r = x->rank;
    int64_t dims[KN_MAX_RANK], in_str[KN_MAX_RANK];
    for (int d = 0; d < r; d++) {
        if (x->dims[d] > ((int64_t)1 << 61) || begin[d] > ((int64_t)1 << 61) ||
            end[d] > ((int64_t)1 << 61))
            return kn_fail(c->err, KN_ERR_ARG, "%s: size on axis %d is too large",
                           c->node->op_type, d);
        dims[d] = x->dims[d] + begin[d] + end[d]; /* |each| <= 2^61: no overflow */
        if (dims[d] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "%s: pads make axis %d negative (%lld)",
                           c->node->op_type, d, (long long)dims[d]);
        if (mode != PAD_CONSTANT && x->dims[d] == 0 && dims[d] > 0)
            return kn_fail(c->err, KN_ERR_ARG, "%s: cannot pad empty axis %d in this mode",
                           c->node->op_type, d);
    }
    kn_tensor *o = kn_op_output(c, 0, x->dtype, r, dims);
    if (!o)
        return c->err->code;
    size_t es = kn_dtype_size(x->dtype);
    if (o->numel == 0)
        return KN_OK;
    if (r == 0) {
        kn_copy_elem(o->data, x->data, es);
        return KN_OK;
    }
    /* map[d][i]: source index along axis d of output index i, or -1 */
    int64_t total = 0, *map[KN_MAX_RANK];
    for (int d = 0; d < r; d++)
        total += dims[d];
    int64_t *maps = malloc(sizeof(int64_t) * (size_t)total);
    if (!maps)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    for (int d = 0; d < r; d++) {
        map[d] = d ? map[d - 1] + dims[d - 1] : maps;
        for (int64_t i = 0; i < dims[d]; i++)
            map[d][i] = pad_source(i - begin[d], x->dims[d], mode);
    }
    kn_strides(r, x->dims, in_str);
    int64_t inner = dims[r - 1], rows = o->numel / inner, idx[KN_MAX_RANK] = {0};
    int64_t lo = clamp64(begin[r - 1], 0, inner), hi = clamp64(begin[r - 1] + x->dims[r - 1], lo, inner);
    char *dst = o->data;
    for (int64_t row = 0; row < rows; row++, dst += (size_t)inner * es) {
        int64_t off = 0;
        bool constant_row = false;
        for (int d = 0; d < r - 1; d++) {
            int64_t s = map[d][idx[d]];
            constant_row |= s < 0;
            off += s * in_str[d];
        }
        for (int64_t i = 0; i < inner; i++) {
            if (i == lo && !constant_row && hi > lo) {
                memcpy(dst + (size_t)i * es, elem_at(x->data, off + map[r - 1][i], es),
                       (size_t)(hi - lo) * es);
                i = hi - 1;
                continue;
            }
            int64_t s = map[r - 1][i];
            const char *src = constant_row || s < 0 ? value : elem_at(x->data, off + s, es);
            kn_copy_elem(dst + (size_t)i * es, src, es);
        }
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < dims[d])
                break;
            idx[d] = 0;
        }
    }
    free(maps);
    return KN_OK;
}

static int pad_mode_of(kn_op_ctx *c, pad_mode *mode)
{
    const char *m = kn_attr_string(c->node, "mode", "constant");
    if (!strcmp(m, "constant"))
        *mode = PAD_CONSTANT;
    else if (!strcmp(m, "reflect"))
        *mode = PAD_REFLECT;
    else if (!strcmp(m, "edge"))
        *mode = PAD_EDGE;
    else if (!strcmp(m, "wrap"))
        *mode = PAD_WRAP;
    else
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "Pad: mode '%s' not supported", m);
    return KN_OK;
}

/* The constant to pad with, as one element of x's dtype, into value. */
static int pad_value(kn_op_ctx *c, const kn_tensor *x, char *value)
{
    memset(value, 0, 16);
    if (c->opset < 11) {
        kn_store_f64(value, x->dtype, 0, kn_attr_float(c->node, "value", 0.0f));
        return KN_OK;
    }
    const kn_tensor *v = kn_op_in(c, 2);
    if (!v || v->numel == 0)
        return KN_OK;
    if (v->dtype != x->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "Pad: constant_value has dtype %s, input %s",
                       kn_dtype_name(v->dtype), kn_dtype_name(x->dtype));
    kn_copy_elem(value, v->data, kn_dtype_size(x->dtype));
    return KN_OK;
}

/* begin/end pads per axis from the pads attribute/input and the optional axes. */
static int pad_amounts(kn_op_ctx *c, const kn_tensor *x, int64_t *begin, int64_t *end)
{
    int r = x->rank;
    int64_t pads[2 * KN_MAX_RANK], axes_in[KN_MAX_RANK];
    int axes[KN_MAX_RANK];
    bool attr = c->opset < 11;
    int np = kn_read_int_list(c, attr, attr && c->opset < 2 ? "paddings" : "pads", 1, pads,
                              2 * KN_MAX_RANK);
    if (np == -2)
        return c->err->code;
    if (np < 0)
        return kn_fail(c->err, KN_ERR_MODEL, "Pad: pads are required");
    int na = c->opset >= 18 ? kn_read_int_list(c, false, "axes", 3, axes_in, KN_MAX_RANK) : -1;
    if (na == -2)
        return c->err->code;
    if (na < 0) {
        na = r;
        for (int d = 0; d < r; d++)
            axes_in[d] = d;
    }
    int rc = norm_axes(c, axes_in, na, r, axes);
    if (rc)
        return rc;
    if (np != 2 * na)
        return kn_fail(c->err, KN_ERR_ARG, "Pad: %d pads for %d axes", np, na);
    for (int d = 0; d < r; d++)
        begin[d] = end[d] = 0;
    for (int i = 0; i < na; i++) {
        const int64_t lim = (int64_t)1 << 40;
        if (pads[i] < -lim || pads[i] > lim || pads[na + i] < -lim || pads[na + i] > lim)
            return kn_fail(c->err, KN_ERR_ARG, "Pad: pad amount out of range");
        begin[axes[i]] = pads[i];
        end[axes[i]] = pads[na + i];
    }
    return KN_OK;
}

static int run_pad(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t begin[KN_MAX_RANK], end[KN_MAX_RANK];
    char value[16];
    pad_mode mode = PAD_CONSTANT;
    int rc = pad_mode_of(c, &mode);
    if (!rc)
        rc = pad_amounts(c, x, begin, end);
    if (!rc)
        rc = pad_value(c, x, value);
    return rc ? rc : pad_core(c, x, begin, end, mode, value);
}

/* ---- CenterCropPad ---- */

static int run_center_crop_pad(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0];
    int r = x->rank;
    int64_t shape[KN_MAX_RANK], axes_in[KN_MAX_RANK], begin[KN_MAX_RANK] = {0},
            end[KN_MAX_RANK] = {0};
    int axes[KN_MAX_RANK];
    if (c->in[1]->rank != 1)
        return kn_fail(c->err, KN_ERR_ARG, "CenterCropPad: shape must be 1-D");
    int ns = kn_read_ints(c->in[1], shape, KN_MAX_RANK, c->err);
    if (ns < 0)
        return c->err->code;
    int na = kn_read_int_list(c, true, "axes", 0, axes_in, KN_MAX_RANK);
    if (na == -2)
        return c->err->code;
    if (na < 0) {
        na = r;
        for (int d = 0; d < r; d++)
            axes_in[d] = d;
    }
    int rc = norm_axes(c, axes_in, na, r, axes);
    if (rc)
        return rc;
    if (ns != na)
        return kn_fail(c->err, KN_ERR_ARG, "CenterCropPad: %d sizes for %d axes", ns, na);
    for (int i = 0; i < na; i++) {
        int d = axes[i];
        if (shape[i] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "CenterCropPad: negative size %lld",
                           (long long)shape[i]);
        int64_t diff = shape[i] - x->dims[d];
        /* crop: drop (dim - size) / 2 in front; pad: add (size - dim) / 2 in front */
        begin[d] = diff >= 0 ? diff / 2 : -((-diff) / 2);
        end[d] = diff - begin[d];
    }
    char zero[16] = {0};
    return pad_core(c, x, begin, end, PAD_CONSTANT, zero);
}

/* ---- DepthToSpace / SpaceToDepth ---- */

static int block_size(kn_op_ctx *c, const kn_tensor *x, int64_t *b)
{
    if (x->rank != 4)
        return kn_fail(c->err, KN_ERR_ARG, "%s: input must be 4-D, got rank %d",
                       c->node->op_type, x->rank);
    *b = kn_attr_int(c->node, "blocksize", 0);
    if (*b <= 0 || *b > ((int64_t)1 << 20))
        return kn_fail(c->err, KN_ERR_ARG, "%s: invalid blocksize %lld", c->node->op_type,
                       (long long)*b);
    return KN_OK;
}

/* Allocate output 0 with shape odims (rank 4) and fill it from the 6-D view of x
 * given by vdims/vstrides (which enumerate the output in order). */
static int block_permute(kn_op_ctx *c, const kn_tensor *x, const int64_t *odims,
                         const int64_t *vdims, const int64_t *vstrides)
{
    kn_tensor *o = kn_op_output(c, 0, x->dtype, 4, odims);
    if (!o)
        return c->err->code;
    strided_copy(o->data, x->data, 6, vdims, vstrides, kn_dtype_size(x->dtype));
    return KN_OK;
}

static int run_depth_to_space(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t b;
    int rc = block_size(c, x, &b);
    if (rc)
        return rc;
    int64_t n = x->dims[0], ch = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (ch % (b * b))
        return kn_fail(c->err, KN_ERR_ARG, "DepthToSpace: channels %lld not divisible by %lld",
                       (long long)ch, (long long)(b * b));
    const char *mode = kn_attr_string(c->node, "mode", "DCR");
    bool crd = !strcmp(mode, "CRD");
    if (!crd && strcmp(mode, "DCR"))
        return kn_fail(c->err, KN_ERR_ARG, "DepthToSpace: unknown mode '%s'", mode);
    int64_t co = ch / (b * b), oh, ow;
    if (!kn_mul_ok(h, b, &oh) || !kn_mul_ok(w, b, &ow))
        return kn_fail(c->err, KN_ERR_ARG, "DepthToSpace: output size overflows");
    int64_t odims[4] = {n, co, oh, ow};
    if (x->numel == 0)
        return kn_op_output(c, 0, x->dtype, 4, odims) ? KN_OK : c->err->code;
    int64_t hw = h * w; /* products of dims are bounded by numel from here on */
    int64_t vdims[6] = {n, co, h, b, w, b};
    /* strides of [c', b1, b2] inside the channel axis, per mode */
    int64_t s_co = crd ? b * b * hw : hw, s_b1 = crd ? b * hw : b * co * hw,
            s_b2 = crd ? hw : co * hw;
    int64_t vstr[6] = {ch * hw, s_co, w, s_b1, 1, s_b2};
    return block_permute(c, x, odims, vdims, vstr);
}

static int run_space_to_depth(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    int64_t b;
    int rc = block_size(c, x, &b);
    if (rc)
        return rc;
    int64_t n = x->dims[0], ch = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (h % b || w % b)
        return kn_fail(c->err, KN_ERR_ARG, "SpaceToDepth: spatial size %lldx%lld not divisible "
                       "by blocksize %lld", (long long)h, (long long)w, (long long)b);
    int64_t oc;
    if (!kn_mul_ok(ch, b * b, &oc))
        return kn_fail(c->err, KN_ERR_ARG, "SpaceToDepth: output channels overflow");
    int64_t odims[4] = {n, oc, h / b, w / b};
    if (x->numel == 0)
        return kn_op_output(c, 0, x->dtype, 4, odims) ? KN_OK : c->err->code;
    int64_t vdims[6] = {n, b, b, ch, h / b, w / b};
    int64_t vstr[6] = {ch * h * w, w, 1, h * w, b * w, b};
    return block_permute(c, x, odims, vdims, vstr);
}

/* ---- Trilu ---- */

static int run_trilu(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "Trilu: input must have rank >= 2, got %d", x->rank);
    int64_t k = 0;
    if (kn_op_in(c, 1)) {
        int rc = kn_scalar_i64(c->in[1], &k, c->err);
        if (rc)
            return rc;
    }
    bool upper = kn_attr_int(c->node, "upper", 1) != 0;
    kn_tensor *o = kn_op_output_copy(c, 0, x);
    if (!o)
        return c->err->code;
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
    if (o->numel == 0)
        return KN_OK;
    int64_t mats = o->numel / (rows * cols);
    k = clamp64(k, -rows - 1, cols + 1); /* same result, no overflow below */
    size_t es = kn_dtype_size(x->dtype);
    char *d = o->data;
    for (int64_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < rows; i++, d += (size_t)cols * es) {
            /* upper keeps j >= i + k; lower keeps j <= i + k */
            int64_t from = upper ? 0 : clamp64(i + k + 1, 0, cols);
            int64_t to = upper ? clamp64(i + k, 0, cols) : cols;
            if (to > from)
                memset(d + (size_t)from * es, 0, (size_t)(to - from) * es);
        }
    }
    return KN_OK;
}

/* ---- ReverseSequence ---- */

static int run_reverse_sequence(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    KN_REQUIRE_INPUT(c, 1);
    const kn_tensor *x = c->in[0], *lens = c->in[1];
    int64_t ta = kn_attr_int(c->node, "time_axis", 0), ba = kn_attr_int(c->node, "batch_axis", 1);
    if (x->rank < 2)
        return kn_fail(c->err, KN_ERR_ARG, "ReverseSequence: input must have rank >= 2");
    if (!((ta == 0 && ba == 1) || (ta == 1 && ba == 0)))
        return kn_fail(c->err, KN_ERR_ARG, "ReverseSequence: time_axis/batch_axis must be 0 and 1");
    int64_t tdim = x->dims[ta], bdim = x->dims[ba];
    if (!kn_dtype_is_int(lens->dtype) || lens->rank != 1 || lens->numel != bdim)
        return kn_fail(c->err, KN_ERR_ARG,
                       "ReverseSequence: sequence_lens must be an integer vector of %lld entries",
                       (long long)bdim);
    kn_tensor *o = kn_op_output_copy(c, 0, x);
    if (!o)
        return c->err->code;
    int64_t inner = x->numel ? kn_dims_prod(x->dims, 2, x->rank) : 0; /* no overflow if empty */
    int64_t s0 = x->dims[1] * inner, s1 = inner;
    int64_t st = ta == 0 ? s0 : s1, sb = ta == 0 ? s1 : s0;
    size_t es = kn_dtype_size(x->dtype), run = (size_t)inner * es;
    for (int64_t b = 0; b < bdim; b++) {
        int64_t len = kn_load_i64(lens->data, lens->dtype, (size_t)b);
        if (len < 0 || len > tdim)
            return kn_fail(c->err, KN_ERR_ARG, "ReverseSequence: sequence length %lld out of "
                           "range [0, %lld]", (long long)len, (long long)tdim);
        for (int64_t t = 0; t < len && run; t++)
            memcpy((char *)o->data + (size_t)(t * st + b * sb) * es,
                   (const char *)x->data + (size_t)((len - 1 - t) * st + b * sb) * es, run);
    }
    return KN_OK;
}


/* ---- Col2Im ---- */

/* Col2Im geometry: spatial rank n, image and block shapes, per-axis stride,
 * dilation, begin padding and block counts. */
typedef struct col2im_geom {
    int n;
    int64_t image[KN_MAX_RANK], block[KN_MAX_RANK], stride[KN_MAX_RANK], dil[KN_MAX_RANK];
    int64_t pad0[KN_MAX_RANK], nblk[KN_MAX_RANK];
    int64_t kprod, lprod; /* product of block[], of nblk[] */
} col2im_geom;

/* Reads attribute `name` of g->n values (or all `def` when absent). */
static int col2im_attr(kn_op_ctx *c, const char *name, int n, int64_t def, int64_t *out)
{
    const int64_t *v;
    int k = kn_attr_ints(c->node, name, &v);
    for (int i = 0; i < n; i++)
        out[i] = k < 0 ? def : (i < k ? v[i] : 0);
    if (k >= 0 && k != n)
        return kn_fail(c->err, KN_ERR_ARG, "Col2Im attribute '%s' has %d values, expected %d", name, k, n);
    return KN_OK;
}

static int col2im_geometry(kn_op_ctx *c, const kn_tensor *x, col2im_geom *g)
{
    const kn_tensor *im = kn_op_in(c, 1), *bl = kn_op_in(c, 2);
    if (!im || !bl)
        return kn_fail(c->err, KN_ERR_MODEL, "Col2Im needs inputs image_shape and block_shape");
    if (x->rank != 3)
        return kn_fail(c->err, KN_ERR_ARG, "Col2Im input must have rank 3 [N, C*prod(block), L], got %d", x->rank);
    int n = kn_read_ints(im, g->image, KN_MAX_RANK - 2, c->err);
    if (n < 0)
        return c->err->code;
    if (n < 1 || im->rank != 1 || bl->rank != 1 || bl->numel != n)
        return kn_fail(c->err, KN_ERR_ARG, "Col2Im image_shape and block_shape must be 1-D of equal length >= 1");
    if (kn_read_ints(bl, g->block, KN_MAX_RANK - 2, c->err) < 0)
        return c->err->code;
    g->n = n;
    int64_t pads[2 * KN_MAX_RANK];
    int rc = col2im_attr(c, "strides", n, 1, g->stride);
    if (rc || (rc = col2im_attr(c, "dilations", n, 1, g->dil)) || (rc = col2im_attr(c, "pads", 2 * n, 0, pads)))
        return rc;
    g->kprod = 1;
    g->lprod = 1;
    for (int d = 0; d < n; d++) {
        if (g->image[d] < 0 || g->block[d] < 1 || g->stride[d] < 1 || g->dil[d] < 1 || pads[d] < 0 || pads[n + d] < 0)
            return kn_fail(c->err, KN_ERR_ARG, "Col2Im: invalid image/block shape, stride, dilation or pad on axis %d", d);
        if (g->image[d] > ((int64_t)1 << 40) || g->block[d] > ((int64_t)1 << 40) || g->dil[d] > ((int64_t)1 << 20) ||
            pads[d] > ((int64_t)1 << 40) || pads[n + d] > ((int64_t)1 << 40))
            return kn_fail(c->err, KN_ERR_ARG, "Col2Im: shape value on axis %d is too large", d);
        int64_t span = g->dil[d] * (g->block[d] - 1) + 1;
        int64_t padded = g->image[d] + pads[d] + pads[n + d];
        g->pad0[d] = pads[d];
        g->nblk[d] = padded >= span ? (padded - span) / g->stride[d] + 1 : 0;
        if (!kn_mul_ok(g->kprod, g->block[d], &g->kprod) || !kn_mul_ok(g->lprod, g->nblk[d], &g->lprod))
            return kn_fail(c->err, KN_ERR_ARG, "Col2Im: block or image shape overflows");
    }
    if (x->dims[1] % g->kprod != 0 || x->dims[2] != g->lprod)
        return kn_fail(c->err, KN_ERR_ARG, "Col2Im input shape [%lld, %lld, %lld] does not match "
                       "prod(block_shape) = %lld and %lld blocks", (long long)x->dims[0], (long long)x->dims[1],
                       (long long)x->dims[2], (long long)g->kprod, (long long)g->lprod);
    return KN_OK;
}

/* Adds the columns of one (n, c) image (K rows of L values starting at element
 * `in_off` of x) into acc (the image, prod(image) values). */
static void col2im_image(const kn_tensor *x, int64_t in_off, const col2im_geom *g, bool exact,
                         double *accf, int64_t *acci)
{
    int n = g->n;
    int64_t istr[KN_MAX_RANK];
    kn_strides(n, g->image, istr);
    int64_t kk[KN_MAX_RANK] = {0};
    for (int64_t k = 0; k < g->kprod; k++) {
        int64_t ll[KN_MAX_RANK] = {0};
        for (int64_t l = 0; l < g->lprod; l++) {
            int64_t pos = 0;
            bool inside = true;
            for (int d = 0; d < n && inside; d++) {
                int64_t p = ll[d] * g->stride[d] - g->pad0[d] + kk[d] * g->dil[d];
                inside = p >= 0 && p < g->image[d];
                pos += p * istr[d];
            }
            size_t src = (size_t)(in_off + k * g->lprod + l);
            if (inside && exact)
                acci[pos] = (int64_t)((uint64_t)acci[pos] + (uint64_t)kn_load_i64(x->data, x->dtype, src));
            else if (inside)
                accf[pos] += kn_load_f64(x->data, x->dtype, src);
            for (int d = n - 1; d >= 0 && ++ll[d] == g->nblk[d]; d--)
                ll[d] = 0;
        }
        for (int d = n - 1; d >= 0 && ++kk[d] == g->block[d]; d--)
            kk[d] = 0;
    }
}

static int run_col2im(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    col2im_geom g;
    int rc = col2im_geometry(c, x, &g);
    if (rc)
        return rc;
    int64_t dims[KN_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1] / g.kprod;
    for (int d = 0; d < g.n; d++)
        dims[2 + d] = g.image[d];
    kn_tensor *o = kn_op_output(c, 0, x->dtype, 2 + g.n, dims);
    if (!o)
        return c->err->code;
    if (o->numel == 0 || x->numel == 0)
        return KN_OK;
    int64_t img = o->numel / (dims[0] * dims[1]);
    bool exact = kn_dtype_is_int(x->dtype) || x->dtype == KN_BOOL;
    double *accf = exact ? NULL : malloc((size_t)img * sizeof(double));
    int64_t *acci = exact ? malloc((size_t)img * sizeof(int64_t)) : NULL;
    if (!accf && !acci)
        return kn_fail(c->err, KN_ERR_NOMEM, "Col2Im: out of memory");
    for (int64_t nc = 0; nc < dims[0] * dims[1]; nc++) {
        if (exact)
            memset(acci, 0, (size_t)img * sizeof(int64_t));
        else
            for (int64_t i = 0; i < img; i++)
                accf[i] = 0.0;
        col2im_image(x, nc * g.kprod * g.lprod, &g, exact, accf, acci);
        for (int64_t i = 0; i < img; i++) {
            if (exact)
                kn_store_i64(o->data, o->dtype, (size_t)(nc * img + i), acci[i]);
            else
                kn_store_f64(o->data, o->dtype, (size_t)(nc * img + i), accf[i]);
        }
    }
    free(accf);
    free(acci);
    return KN_OK;
}


/* ---- static inference ---- */

static int infer_transpose(kn_infer_ctx *ic)
{
    const kn_type *x = ic->n_in > 0 ? ic->in[0] : NULL;
    if (!x || ic->n_out < 1)
        return KN_OK;
    kn_type *t = &ic->out[0];
    *t = *x;
    if (x->rank < 0)
        return KN_OK;
    const int64_t *perm = NULL;
    int n = kn_attr_ints(ic->node, "perm", &perm);
    bool seen[KN_MAX_RANK] = {false};
    for (int i = 0; i < x->rank; i++) {
        int64_t p = n < 0 ? x->rank - 1 - i : perm[i];
        if ((n >= 0 && n != x->rank) || p < 0 || p >= x->rank || seen[p]) {
            t->rank = -1; /* invalid perm: the kernel reports it */
            return KN_OK;
        }
        seen[p] = true;
        t->dims[i] = x->dims[p];
    }
    return KN_OK;
}

const kn_op_def kn_ops_movement[] = {
    {"", "Transpose", 1, run_transpose, NULL, infer_transpose},
    {"", "Concat", 1, run_concat, NULL, NULL},
    {"", "Split", 1, run_split, NULL, NULL},
    {"", "Slice", 1, run_slice, NULL, NULL},
    {"", "Tile", 1, run_tile, NULL, NULL},
    {"", "Pad", 1, run_pad, NULL, NULL},
    {"", "CenterCropPad", 1, run_center_crop_pad, NULL, NULL},
    {"", "DepthToSpace", 1, run_depth_to_space, NULL, NULL},
    {"", "SpaceToDepth", 1, run_space_to_depth, NULL, NULL},
    {"", "Trilu", 1, run_trilu, NULL, kn_infer_same_as_input0},
    {"", "ReverseSequence", 1, run_reverse_sequence, NULL, kn_infer_same_as_input0},
    {"", "Col2Im", 1, run_col2im, NULL, NULL},
    {0},
};
