/* tensor.c - tensor records: shapes, checked sizes, allocation, copies. */
#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool kn_mul_ok(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return false;
    if (a != 0 && b > INT64_MAX / a)
        return false;
    *out = a * b;
    return true;
}

int kn_shape_numel(int rank, const int64_t *dims, int64_t *numel, kn_error *err)
{
    /* The product of the non-zero dims must fit even when a zero dim makes the
     * tensor empty, so stride arithmetic on any accepted shape cannot overflow. */
    int64_t n = 1;
    bool empty = false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return kn_fail(err, KN_ERR_ARG, "negative dimension %lld at axis %d",
                           (long long)dims[i], i);
        if (dims[i] == 0) {
            empty = true;
            continue;
        }
        if (!kn_mul_ok(n, dims[i], &n))
            return kn_fail(err, KN_ERR_NOMEM, "tensor element count overflows");
    }
    *numel = empty ? 0 : n;
    return KN_OK;
}

int kn_tensor_set_shape(kn_tensor *t, kn_dtype dt, int rank, const int64_t *dims, kn_error *err)
{
    if (rank < 0 || rank > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "rank %d exceeds the supported maximum %d",
                       rank, KN_MAX_RANK);
    size_t es = kn_dtype_size(dt);
    if (es == 0)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "dtype %s is not supported", kn_dtype_name(dt));
    int64_t n, bytes;
    int rc = kn_shape_numel(rank, dims, &n, err);
    if (rc)
        return rc;
    if (!kn_mul_ok(n, (int64_t)es, &bytes) || (uint64_t)bytes > KN_MAX_TENSOR_BYTES)
        return kn_fail(err, KN_ERR_NOMEM, "tensor of %lld elements is too large", (long long)n);
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->numel = n;
    t->nbytes = (size_t)bytes;
    return KN_OK;
}

static void release_items(kn_tensor *t)
{
    for (int i = 0; i < t->n_items; i++)
        kn_tensor_release(&t->items[i]);
    free(t->items);
}

int kn_tensor_alloc(kn_tensor *t, kn_dtype dt, int rank, const int64_t *dims, kn_error *err)
{
    int rc = kn_tensor_set_shape(t, dt, rank, dims, err);
    if (rc)
        return rc;
    if (t->owns_data && t->kind != KN_VALUE_TENSOR)
        release_items(t);
    else if (t->owns_data)
        free(t->data);
    t->kind = KN_VALUE_TENSOR;
    t->n_items = 0;
    t->items = NULL;
    t->owns_data = false;
    t->data = calloc(1, t->nbytes ? t->nbytes : 1);
    if (!t->data)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory allocating %zu bytes", t->nbytes);
    t->owns_data = true;
    return KN_OK;
}

void kn_value_init_list(kn_tensor *t, kn_value_kind kind, kn_dtype dt)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->dtype = dt;
    t->owns_data = true;
}

int kn_value_append(kn_tensor *list, kn_tensor *item, kn_error *err)
{
    if (list->n_items >= (1 << 28))
        return kn_fail(err, KN_ERR_NOMEM, "sequence too long");
    kn_tensor *p = realloc(list->items, sizeof *p * (size_t)(list->n_items + 1));
    if (!p)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    list->items = p;
    list->items[list->n_items++] = *item;
    memset(item, 0, sizeof *item);
    return KN_OK;
}

void kn_tensor_release(kn_tensor *t)
{
    if (t->owns_data && t->kind != KN_VALUE_TENSOR)
        release_items(t);
    else if (t->owns_data)
        free(t->data);
    memset(t, 0, sizeof *t);
    t->dtype = KN_F32;
    t->numel = 1;
}

static int copy_list(kn_tensor *dst, const kn_tensor *src, kn_error *err)
{
    kn_value_init_list(dst, src->kind, src->dtype);
    for (int i = 0; i < src->n_items; i++) {
        kn_tensor item = {0};
        int rc = kn_tensor_copy(&item, &src->items[i], err);
        if (!rc)
            rc = kn_value_append(dst, &item, err);
        if (rc) {
            kn_tensor_release(&item);
            kn_tensor_release(dst);
            return rc;
        }
    }
    return KN_OK;
}

int kn_tensor_copy(kn_tensor *dst, const kn_tensor *src, kn_error *err)
{
    if (src->kind != KN_VALUE_TENSOR)
        return copy_list(dst, src, err);
    int rc = kn_tensor_alloc(dst, src->dtype, src->rank, src->dims, err);
    if (rc)
        return rc;
    if (src->nbytes)
        memcpy(dst->data, src->data, src->nbytes);
    return KN_OK;
}

void kn_tensor_view(kn_tensor *dst, const kn_tensor *src)
{
    *dst = *src;
    dst->owns_data = false;
}

kn_tensor *kn_tensor_new(void)
{
    kn_tensor *t = calloc(1, sizeof *t);
    if (t) {
        t->dtype = KN_F32;
        t->numel = 1;
    }
    return t;
}

void kn_tensor_free(kn_tensor *t)
{
    if (!t)
        return;
    if (t->owns_data)
        free(t->data);
    free(t);
}

const char *kn_dims_str(int rank, const int64_t *dims, char *buf, size_t len)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < rank && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ",%lld" : "%lld", (long long)dims[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
    return buf;
}

const char *kn_tensor_describe(const kn_tensor *t, char *buf, size_t len)
{
    char dims[256];
    snprintf(buf, len, "%s%s", kn_dtype_name(t->dtype), kn_dims_str(t->rank, t->dims, dims, sizeof dims));
    return buf;
}

void kn_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i];
    }
}
