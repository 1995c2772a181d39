/* op_util.c - helpers shared by operator kernels (see op_util.h). */
#include "ops/op_util.h"

#include <stdint.h>
#include <string.h>

int kn_norm_axis(int64_t axis, int rank, int *out, kn_error *err)
{
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank > 0 ? rank : 1))
        return kn_fail(err, KN_ERR_ARG, "axis %lld is out of range for rank %d",
                       (long long)axis, rank);
    *out = (int)a;
    return KN_OK;
}

int kn_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db,
                       int *rank_out, int64_t *dims_out, kn_error *err)
{
    int r = ra > rb ? ra : rb;
    if (r > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "rank %d exceeds maximum", r);
    int64_t tmp[KN_MAX_RANK];
    for (int i = 0; i < r; i++) {
        int ia = i - (r - ra), ib = i - (r - rb);
        int64_t a = ia >= 0 ? da[ia] : 1, b = ib >= 0 ? db[ib] : 1;
        if (a == b || b == 1)
            tmp[i] = a;
        else if (a == 1)
            tmp[i] = b;
        else {
            char sa[128], sb[128];
            return kn_fail(err, KN_ERR_ARG, "shapes %s and %s cannot be broadcast",
                           kn_dims_str(ra, da, sa, sizeof sa), kn_dims_str(rb, db, sb, sizeof sb));
        }
    }
    memcpy(dims_out, tmp, sizeof(int64_t) * (size_t)r);
    *rank_out = r;
    return KN_OK;
}

int kn_broadcast_shapes(int n, const kn_tensor *const *ts, int *rank_out, int64_t *dims_out,
                        kn_error *err)
{
    int r = 0;
    int64_t d[KN_MAX_RANK];
    for (int i = 0; i < n; i++) {
        if (!ts[i])
            continue;
        int rc = kn_broadcast_shape(r, d, ts[i]->rank, ts[i]->dims, &r, d, err);
        if (rc)
            return rc;
    }
    *rank_out = r;
    memcpy(dims_out, d, sizeof(int64_t) * (size_t)r);
    return KN_OK;
}

void kn_broadcast_strides(int rout, const int64_t *dout, int rin, const int64_t *din,
                          int64_t *strides)
{
    (void)dout;
    int64_t s = 1;
    for (int i = rout - 1; i >= 0; i--) {
        int ii = i - (rout - rin);
        if (ii < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = din[ii] == 1 ? 0 : s;
        s *= din[ii];
    }
}

void kn_iter_init(kn_iter *it, int rank, const int64_t *dims, int n, int64_t strides[][KN_MAX_RANK])
{
    memset(it, 0, sizeof *it);
    it->rank = rank;
    it->n = n;
    for (int i = 0; i < rank; i++)
        it->dims[i] = dims[i];
    for (int j = 0; j < n; j++)
        for (int i = 0; i < rank; i++)
            it->strides[j][i] = strides[j][i];
}

void kn_iter_next(kn_iter *it)
{
    for (int i = it->rank - 1; i >= 0; i--) {
        it->idx[i]++;
        for (int j = 0; j < it->n; j++)
            it->off[j] += it->strides[j][i];
        if (it->idx[i] < it->dims[i])
            return;
        for (int j = 0; j < it->n; j++)
            it->off[j] -= it->strides[j][i] * it->dims[i];
        it->idx[i] = 0;
    }
}

int kn_read_ints(const kn_tensor *t, int64_t *out, int max, kn_error *err)
{
    if (!kn_dtype_is_int(t->dtype))
        return kn_fail(err, KN_ERR_ARG, "expected an integer tensor, got %s",
                       kn_dtype_name(t->dtype)), -1;
    if (t->numel > max)
        return kn_fail(err, KN_ERR_ARG, "integer tensor has %lld elements, at most %d expected",
                       (long long)t->numel, max), -1;
    for (int64_t i = 0; i < t->numel; i++)
        out[i] = kn_load_i64(t->data, t->dtype, (size_t)i);
    return (int)t->numel;
}

int kn_read_int_list(kn_op_ctx *c, bool use_attr, const char *name, int idx, int64_t *out,
                     int max)
{
    if (use_attr) {
        const int64_t *v;
        int n = kn_attr_ints(c->node, name, &v);
        if (n < 0)
            return -1;
        if (n > max)
            return kn_fail(c->err, KN_ERR_ARG, "attribute '%s' has %d values, at most %d allowed",
                           name, n, max), -2;
        for (int i = 0; i < n; i++)
            out[i] = v[i];
        return n;
    }
    const kn_tensor *t = kn_op_in(c, idx);
    if (!t)
        return -1;
    if (t->rank > 1)
        return kn_fail(c->err, KN_ERR_ARG, "input '%s' must be 1-D, got rank %d", name, t->rank), -2;
    int n = kn_read_ints(t, out, max, c->err);
    return n < 0 ? -2 : n;
}

int kn_scalar_i64(const kn_tensor *t, int64_t *out, kn_error *err)
{
    if (t->numel < 1)
        return kn_fail(err, KN_ERR_ARG, "expected a scalar, got an empty tensor");
    *out = kn_load_i64(t->data, t->dtype, 0);
    return KN_OK;
}

int kn_scalar_f64(const kn_tensor *t, double *out, kn_error *err)
{
    if (t->numel < 1)
        return kn_fail(err, KN_ERR_ARG, "expected a scalar, got an empty tensor");
    *out = kn_load_f64(t->data, t->dtype, 0);
    return KN_OK;
}

bool kn_same_shape(const kn_tensor *a, const kn_tensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

int64_t kn_dims_prod(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= dims[i];
    return p;
}

int kn_op_nomem(kn_op_ctx *c)
{
    return kn_fail(c->err, KN_ERR_NOMEM, "%s: out of memory", c->node->op_type);
}

int kn_unsupported_dtype(kn_op_ctx *c, kn_dtype dt)
{
    return kn_fail(c->err, KN_ERR_UNSUPPORTED, "%s does not support dtype %s",
                   c->node->op_type, kn_dtype_name(dt));
}

int kn_check_same_dtype(kn_op_ctx *c, const kn_tensor *a, const kn_tensor *b)
{
    if (a->dtype != b->dtype)
        return kn_fail(c->err, KN_ERR_ARG, "%s inputs have different dtypes %s and %s",
                       c->node->op_type, kn_dtype_name(a->dtype), kn_dtype_name(b->dtype));
    return KN_OK;
}

static kn_tensor *op_output(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims, bool zero)
{
    if (i < 0 || i >= c->n_out) {
        kn_fail(c->err, KN_ERR_MODEL, "%s: output %d requested but node has %d outputs",
                c->node->op_type, i, c->n_out);
        return NULL;
    }
    kn_tensor *t = c->out[i];
    int rc = c->alloc_output ? c->alloc_output(c, i, dt, rank, dims, zero)
                             : kn_tensor_alloc(t, dt, rank, dims, c->err);
    return rc ? NULL : t;
}

kn_tensor *kn_op_output(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims)
{
    return op_output(c, i, dt, rank, dims, true);
}

kn_tensor *kn_op_output_uninit(kn_op_ctx *c, int i, kn_dtype dt, int rank, const int64_t *dims)
{
    return op_output(c, i, dt, rank, dims, false);
}

kn_tensor *kn_op_output_view(kn_op_ctx *c, int i, int src, int rank, const int64_t *dims)
{
    const kn_tensor *x = kn_op_in(c, src);
    int64_t n = 1;
    if (!x) {
        kn_fail(c->err, KN_ERR_MODEL, "%s: input %d is missing", c->node->op_type, src);
        return NULL;
    }
    for (int d = 0; d < rank; d++)
        n = dims[d] >= 0 && (dims[d] == 0 || n <= INT64_MAX / dims[d]) ? n * dims[d] : -1;
    if (n != x->numel) {
        kn_fail(c->err, KN_ERR_ARG, "cannot reshape %lld elements into %lld", (long long)x->numel,
                (long long)n);
        return NULL;
    }
    if (i >= 0 && i < c->n_out && c->view_output && c->view_output(c, i, src, rank, dims))
        return c->out[i];
    kn_tensor *o = kn_op_output_uninit(c, i, x->dtype, rank, dims);
    if (o && o->nbytes)
        memcpy(o->data, x->data, o->nbytes);
    return o;
}

kn_tensor *kn_op_output_copy(kn_op_ctx *c, int i, const kn_tensor *src)
{
    kn_tensor *t = kn_op_output_uninit(c, i, src->dtype, src->rank, src->dims);
    if (t && src->nbytes)
        memcpy(t->data, src->data, src->nbytes);
    return t;
}

/* ---- generic inference ---- */

int kn_infer_same_as_input0(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    ic->out[0] = *ic->in[0];
    return KN_OK;
}

bool kn_infer_spatial_probe(const kn_type *t, kn_tensor *probe)
{
    memset(probe, 0, sizeof *probe);
    if (!t || t->kind != KN_TYPE_TENSOR || t->rank < 3 || t->rank > KN_MAX_RANK)
        return false;
    probe->dtype = t->dtype;
    probe->rank = t->rank;
    for (int i = 0; i < t->rank; i++) {
        if (i >= 2 && t->dims[i].value < 0)
            return false;
        probe->dims[i] = t->dims[i].value >= 0 ? t->dims[i].value : 1;
    }
    return true;
}

kn_op_ctx kn_infer_op_ctx(const kn_infer_ctx *ic, kn_error *err)
{
    kn_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node = ic->node;
    c.opset = ic->opset;
    c.err = err;
    return c;
}

void kn_infer_spatial_out(kn_type *out, kn_dtype dt, int rank, kn_dim d0, kn_dim d1)
{
    out->kind = KN_TYPE_TENSOR;
    out->dtype = dt;
    out->rank = rank;
    out->dims[0] = d0;
    out->dims[1] = d1;
    for (int i = 2; i < rank; i++)
        out->dims[i] = (kn_dim){-1, NULL};
}

static void infer_broadcast_dims(kn_infer_ctx *ic, kn_type *out)
{
    int r = 0;
    for (int i = 0; i < ic->n_in; i++) {
        if (!ic->in[i])
            continue;
        if (ic->in[i]->rank < 0) {
            out->rank = -1;
            return;
        }
        if (ic->in[i]->rank > r)
            r = ic->in[i]->rank;
    }
    out->rank = r;
    for (int d = 0; d < r; d++) {
        kn_dim best = {1, NULL};
        for (int i = 0; i < ic->n_in; i++) {
            const kn_type *t = ic->in[i];
            if (!t)
                continue;
            int k = d - (r - t->rank);
            if (k < 0)
                continue;
            kn_dim dd = t->dims[k];
            if (dd.value == 1)
                continue;
            if (best.value == 1 && !best.param)
                best = dd;
            else if (dd.value < 0 && !dd.param)
                best = dd.value >= 0 ? best : dd;
        }
        out->dims[d] = best;
    }
}

int kn_infer_broadcast(kn_infer_ctx *ic)
{
    if (ic->n_in < 1 || !ic->in[0] || ic->n_out < 1)
        return KN_OK;
    ic->out[0].kind = KN_TYPE_TENSOR;
    ic->out[0].dtype = ic->in[0]->dtype;
    infer_broadcast_dims(ic, &ic->out[0]);
    return KN_OK;
}

int kn_infer_broadcast_bool(kn_infer_ctx *ic)
{
    int rc = kn_infer_broadcast(ic);
    if (ic->n_out >= 1)
        ic->out[0].dtype = KN_BOOL;
    return rc;
}
