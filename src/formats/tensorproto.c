/* tensorproto.c - decoding ONNX TensorProto and SparseTensorProto messages into
 * kn_tensor records: shape and dtype checks, raw_data (zero-copy when aligned),
 * the typed repeated fields (packed or not), external data through a callback,
 * COO sparse tensors densified.  Shared by the model reader and the standalone
 * test-data reader (kn_tensorproto_read*). */
#include "formats/tensorproto.h"

#include "core/bigalloc.h"
#include "formats/protobuf.h"
#include "core/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TP "TensorProto"
/* Cap on the dense size of a sparse tensor: a few bytes of indices must not
 * request gigabytes. */
#define SPARSE_MAX_BYTES ((size_t)1 << 30)

enum { F_DIMS = 1, F_TYPE = 2, F_SEGMENT = 3, F_FLOAT = 4, F_INT32 = 5, F_STRING = 6, F_INT64 = 7,
       F_NAME = 8, F_RAW = 9, F_DOUBLE = 10, F_UINT64 = 11, F_DOC = 12, F_EXTERNAL = 13,
       F_LOCATION = 14 };

typedef struct tp_scan {
    const uint8_t *name;
    size_t name_len;
    int64_t n_dims;
    uint64_t dtype;
    bool has_raw, segment, external, has_strings;
    const uint8_t *raw;
    size_t raw_len;
    int64_t counts[12];          /* element counts of the typed fields, by field number */
    const uint8_t *loc;          /* external_data entries */
    size_t loc_len;
    uint64_t offset, length;
    bool has_length;
    char label[128];             /* printable name for messages */
} tp_scan;

static bool host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void make_label(tp_scan *s)
{
    size_t n = s->name_len < sizeof s->label - 1 ? s->name_len : sizeof s->label - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s->name[i];
        s->label[i] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    s->label[n] = '\0';
}

/* Decimal digits (no sign) into *v with overflow check. */
static bool parse_u64(const uint8_t *p, size_t n, uint64_t *v)
{
    if (n == 0)
        return false;
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (r > (UINT64_MAX - d) / 10)
            return false;
        r = r * 10 + d;
    }
    *v = r;
    return true;
}

static bool bytes_eq(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && !memcmp(p, s, n);
}

static int scan_external_entry(tp_scan *s, const kn_pb_field *ef, kn_error *err)
{
    const char *msg = "StringStringEntryProto";
    kn_pb c;
    kn_pb_init(&c, ef->data, ef->len);
    const uint8_t *key = NULL, *val = NULL;
    size_t key_len = 0, val_len = 0;
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, err);
        if (rc)
            return rc;
        if (f.num == 1 || f.num == 2) {
            if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, err)))
                return rc;
            if (f.num == 1) {
                key = f.data;
                key_len = f.len;
            } else {
                val = f.data;
                val_len = f.len;
            }
        }
    }
    if (!key)
        return KN_OK;
    if (bytes_eq(key, key_len, "location")) {
        s->loc = val ? val : key; /* any non-NULL pointer when empty */
        s->loc_len = val_len;
    } else if (bytes_eq(key, key_len, "offset")) {
        if (!parse_u64(val, val_len, &s->offset))
            return kn_fail(err, KN_ERR_MODEL, "external data offset '%.*s' is not a number",
                           (int)(val_len > 40 ? 40 : val_len), val ? (const char *)val : "");
    } else if (bytes_eq(key, key_len, "length")) {
        if (!parse_u64(val, val_len, &s->length))
            return kn_fail(err, KN_ERR_MODEL, "external data length '%.*s' is not a number",
                           (int)(val_len > 40 ? 40 : val_len), val ? (const char *)val : "");
        s->has_length = true;
    }
    return KN_OK;
}

static int scan_field(tp_scan *s, const kn_pb_field *f, kn_error *err)
{
    switch (f->num) {
    case F_DIMS: return kn_pb_repeated_count(f, KN_PB_VARINT, &s->n_dims, TP, err);
    case F_TYPE:
        s->dtype = f->u;
        return kn_pb_expect(f, KN_PB_VARINT, TP, err);
    case F_SEGMENT: s->segment = true; return KN_OK;
    case F_FLOAT: return kn_pb_repeated_count(f, KN_PB_I32, &s->counts[F_FLOAT], TP, err);
    case F_INT32: return kn_pb_repeated_count(f, KN_PB_VARINT, &s->counts[F_INT32], TP, err);
    case F_STRING: s->has_strings = true; return KN_OK;
    case F_INT64: return kn_pb_repeated_count(f, KN_PB_VARINT, &s->counts[F_INT64], TP, err);
    case F_NAME:
        s->name = f->data;
        s->name_len = f->len;
        return kn_pb_expect(f, KN_PB_LEN, TP, err);
    case F_RAW:
        s->has_raw = true;
        s->raw = f->data;
        s->raw_len = f->len;
        return kn_pb_expect(f, KN_PB_LEN, TP, err);
    case F_DOUBLE: return kn_pb_repeated_count(f, KN_PB_I64, &s->counts[F_DOUBLE], TP, err);
    case F_UINT64: return kn_pb_repeated_count(f, KN_PB_VARINT, &s->counts[F_UINT64], TP, err);
    case F_EXTERNAL: {
        int rc = kn_pb_expect(f, KN_PB_LEN, TP, err);
        return rc ? rc : scan_external_entry(s, f, err);
    }
    case F_LOCATION:
        s->external = f->u == 1;
        return kn_pb_expect(f, KN_PB_VARINT, TP, err);
    default: return KN_OK;
    }
}

static int scan_tensor(tp_scan *s, const void *data, size_t size, kn_error *err)
{
    memset(s, 0, sizeof *s);
    kn_pb c;
    kn_pb_init(&c, data, size);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, TP, err);
        if (!rc)
            rc = scan_field(s, &f, err);
        if (rc)
            return rc;
    }
    make_label(s);
    return KN_OK;
}

static int read_dims(const tp_scan *s, const void *data, size_t size, int64_t *dims,
                     const char *what, kn_error *err)
{
    kn_pb c;
    kn_pb_init(&c, data, size);
    int k = 0;
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        if (kn_pb_next(&c, &f, TP, err))
            return KN_ERR_MODEL;
        if (f.num != F_DIMS)
            continue;
        kn_pb_iter it;
        uint64_t v;
        kn_pb_iter_init(&it, &f, KN_PB_VARINT);
        while (k < s->n_dims && kn_pb_iter_next(&it, &v)) {
            if ((int64_t)v < 0)
                return kn_fail(err, KN_ERR_MODEL, "%s '%s' has negative dimension %lld", what,
                               s->label, (long long)(int64_t)v);
            dims[k++] = (int64_t)v;
        }
    }
    return KN_OK;
}

/* Which typed field holds values of dtype dt (0 if none kiln decodes). */
static int typed_field_for(kn_dtype dt)
{
    switch (dt) {
    case KN_F32: return F_FLOAT;
    case KN_I8: case KN_I16: case KN_I32: case KN_U8: case KN_U16: case KN_BOOL:
    case KN_F16: case KN_BF16: return F_INT32;
    case KN_I64: return F_INT64;
    case KN_F64: return F_DOUBLE;
    case KN_U32: case KN_U64: return F_UINT64;
    default: return 0;
    }
}

static const char *typed_field_name(int f)
{
    switch (f) {
    case F_FLOAT: return "float_data";
    case F_INT32: return "int32_data";
    case F_INT64: return "int64_data";
    case F_DOUBLE: return "double_data";
    case F_UINT64: return "uint64_data";
    default: return "?";
    }
}

static int alloc_storage(const kn_tp_opts *o, kn_tensor *t, kn_error *err)
{
    t->owns_data = false;
    t->data = NULL;
    if (t->nbytes > KN_MAX_TENSOR_BYTES)
        return kn_fail(err, KN_ERR_NOMEM, "tensor of %zu bytes exceeds kiln's limit", t->nbytes);
    if (o->arena) {
        if (t->nbytes && !(t->data = kn_arena_alloc(o->arena, t->nbytes)))
            return kn_fail(err, KN_ERR_NOMEM, "out of memory allocating %zu bytes", t->nbytes);
        return KN_OK;
    }
    t->data = calloc(1, t->nbytes ? t->nbytes : 1);
    if (!t->data)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory allocating %zu bytes", t->nbytes);
    t->owns_data = true;
    return KN_OK;
}

static void free_storage(kn_tensor *t)
{
    if (t->owns_data)
        free(t->data);
    t->data = NULL;
    t->owns_data = false;
}

/* Point t at src (little-endian bytes of t->nbytes) or copy it. */
static int place_bytes(const kn_tp_opts *o, kn_tensor *t, const uint8_t *src, kn_error *err)
{
    size_t es = kn_dtype_size(t->dtype);
    bool le = host_is_le();
    if (t->nbytes == 0) {
        t->data = NULL;
        t->owns_data = false;
        return KN_OK;
    }
    if (o->zero_copy && le && (uintptr_t)src % es == 0) {
        t->data = (void *)(uintptr_t)src;
        t->owns_data = false;
        return KN_OK;
    }
    int rc = alloc_storage(o, t, err);
    if (rc)
        return rc;
    memcpy(t->data, src, t->nbytes);
    if (o->release_source)
        kn_release_pages((void *)(uintptr_t)src, t->nbytes);
    if (!le && es > 1) {
        uint8_t *p = t->data;
        for (size_t i = 0; i < t->nbytes; i += es)
            for (size_t a = 0, b = es - 1; a < b; a++, b--) {
                uint8_t x = p[i + a];
                p[i + a] = p[i + b];
                p[i + b] = x;
            }
    }
    return KN_OK;
}

static void store_typed(kn_tensor *t, size_t i, uint64_t v)
{
    switch (t->dtype) {
    case KN_F32: {
        uint32_t b = (uint32_t)v;
        memcpy((float *)t->data + i, &b, 4);
        break;
    }
    case KN_F64: memcpy((double *)t->data + i, &v, 8); break;
    case KN_I8: ((int8_t *)t->data)[i] = (int8_t)(int32_t)(uint32_t)v; break;
    case KN_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case KN_BOOL: ((uint8_t *)t->data)[i] = (uint32_t)v != 0; break;
    case KN_I16: ((int16_t *)t->data)[i] = (int16_t)(int32_t)(uint32_t)v; break;
    case KN_U16: case KN_F16: case KN_BF16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
    case KN_I32: ((int32_t *)t->data)[i] = (int32_t)(uint32_t)v; break;
    case KN_U32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
    case KN_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case KN_U64: ((uint64_t *)t->data)[i] = v; break;
    default: break;
    }
}

static int fill_typed(const tp_scan *s, const void *data, size_t size, int fld, const kn_tp_opts *o,
                      kn_tensor *t, kn_error *err)
{
    int rc = alloc_storage(o, t, err);
    if (rc)
        return rc;
    int elem_wire = fld == F_FLOAT ? KN_PB_I32 : fld == F_DOUBLE ? KN_PB_I64 : KN_PB_VARINT;
    kn_pb c;
    kn_pb_init(&c, data, size);
    size_t i = 0;
    while (kn_pb_more(&c) && i < (size_t)t->numel) {
        kn_pb_field f;
        if ((rc = kn_pb_next(&c, &f, TP, err)))
            break;
        if (f.num != (uint32_t)fld)
            continue;
        kn_pb_iter it;
        uint64_t v;
        kn_pb_iter_init(&it, &f, elem_wire);
        while (i < (size_t)t->numel && kn_pb_iter_next(&it, &v))
            store_typed(t, i++, v);
    }
    if (!rc && i != (size_t)t->numel)
        rc = kn_fail(err, KN_ERR_MODEL, "tensor '%s': %s ended early", s->label,
                     typed_field_name(fld));
    if (rc)
        free_storage(t);
    return rc;
}

static int load_external(const tp_scan *s, const kn_tp_opts *o, const char *what, kn_tensor *t,
                         kn_error *err)
{
    if (!o->external)
        return kn_fail(err, KN_ERR_MODEL, "%s '%s' refers to external data, which is not allowed here",
                       what, s->label);
    if (t->nbytes > KN_MAX_TENSOR_BYTES)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "%s '%s' has %zu bytes, more than kiln's limit of %zu",
                       what, s->label, t->nbytes, (size_t)KN_MAX_TENSOR_BYTES);
    if (!s->loc)
        return kn_fail(err, KN_ERR_MODEL, "%s '%s' has external data without a location", what,
                       s->label);
    char loc[4096];
    if (s->loc_len >= sizeof loc || memchr(s->loc, 0, s->loc_len))
        return kn_fail(err, KN_ERR_MODEL, "%s '%s' has an invalid external data location", what,
                       s->label);
    memcpy(loc, s->loc, s->loc_len);
    loc[s->loc_len] = '\0';
    const void *p = NULL;
    int rc = o->external(o->user, loc, s->offset, s->has_length, s->length, t->nbytes, &p, err);
    if (rc)
        return kn_error_prefix(err, "%s '%s': ", what, s->label);
    return place_bytes(o, t, p, err);
}

static int decode_data(const tp_scan *s, const void *data, size_t size, const kn_tp_opts *o,
                       const char *what, kn_tensor *t, kn_error *err)
{
    if (s->external)
        return load_external(s, o, what, t, err);
    if (s->has_raw) {
        if (s->raw_len != t->nbytes)
            return kn_fail(err, KN_ERR_MODEL, "%s '%s' has %zu bytes of raw_data, expected %zu",
                           what, s->label, s->raw_len, t->nbytes);
        return place_bytes(o, t, s->raw, err);
    }
    int fld = typed_field_for(t->dtype);
    for (int k = F_FLOAT; k <= F_UINT64; k++)
        if (k != fld && s->counts[k] > 0)
            return kn_fail(err, KN_ERR_MODEL, "%s '%s' of dtype %s holds values in %s", what,
                           s->label, kn_dtype_name(t->dtype), typed_field_name(k));
    if (s->counts[fld] != t->numel)
        return kn_fail(err, KN_ERR_MODEL, "%s '%s' has %lld values in %s, expected %lld", what,
                       s->label, (long long)s->counts[fld], typed_field_name(fld),
                       (long long)t->numel);
    if (t->numel == 0)
        return KN_OK;
    return fill_typed(s, data, size, fld, o, t, err);
}

static int check_shape(const tp_scan *s, const int64_t *dims, const char *what, kn_tensor *t,
                       kn_error *err)
{
    kn_dtype dt = (kn_dtype)s->dtype;
    int64_t n = 1, bytes;
    for (int i = 0; i < (int)s->n_dims; i++)
        if (!kn_mul_ok(n, dims[i], &n))
            return kn_fail(err, KN_ERR_MODEL, "%s '%s': element count of %s overflows", what,
                           s->label, "its dims");
    if (!kn_mul_ok(n, (int64_t)kn_dtype_size(dt), &bytes))
        return kn_fail(err, KN_ERR_MODEL, "%s '%s': byte size of %lld elements overflows", what,
                       s->label, (long long)n);
    /* the size cap (KN_MAX_TENSOR_BYTES) is checked where data of that size could
     * really exist: raw/typed data in a protobuf cannot, so a mismatch is reported */
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->rank = (int)s->n_dims;
    for (int i = 0; i < t->rank; i++)
        t->dims[i] = dims[i];
    t->numel = n;
    t->nbytes = (size_t)bytes;
    return KN_OK;
}

int kn_tp_decode(const void *data, size_t size, const kn_tp_opts *o, kn_tensor *out,
                 const char **name, size_t *name_len, kn_error *err)
{
    const char *what = o->what ? o->what : "tensor";
    tp_scan s;
    int rc = scan_tensor(&s, data, size, err);
    if (rc)
        return rc;
    if (name)
        *name = (const char *)s.name;
    if (name_len)
        *name_len = s.name_len;
    if (s.segment)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "%s '%s' is segmented, which kiln does not support",
                       what, s.label);
    if (s.n_dims > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "%s '%s' has rank %lld, more than kiln's maximum %d",
                       what, s.label, (long long)s.n_dims, KN_MAX_RANK);
    if (s.dtype == 0)
        return kn_fail(err, KN_ERR_MODEL, "%s '%s' has no data_type", what, s.label);
    if (s.dtype >= 64 || kn_dtype_size((kn_dtype)s.dtype) == 0)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "%s '%s' has dtype %s, which kiln does not support",
                       what, s.label, s.dtype >= 64 ? "unknown" : kn_dtype_name((kn_dtype)s.dtype));
    int64_t dims[KN_MAX_RANK];
    if ((rc = read_dims(&s, data, size, dims, what, err)))
        return rc;
    kn_tensor t;
    if ((rc = check_shape(&s, dims, what, &t, err)))
        return rc;
    if ((rc = decode_data(&s, data, size, o, what, &t, err)))
        return rc;
    *out = t;
    return KN_OK;
}

/* ---- sparse tensors ---- */

static int sparse_scatter(const kn_tensor *vals, const kn_tensor *idx, kn_tensor *t, const char *label,
                          kn_error *err)
{
    size_t es = kn_dtype_size(t->dtype);
    int64_t nnz = vals->numel;
    const int64_t *ix = idx->data;
    bool coords = idx->rank == 2;
    for (int64_t k = 0; k < nnz; k++) {
        int64_t lin = 0;
        if (coords) {
            for (int a = 0; a < t->rank; a++) {
                int64_t v = ix[k * t->rank + a];
                if (v < 0 || v >= t->dims[a])
                    return kn_fail(err, KN_ERR_MODEL, "sparse tensor '%s': index %lld out of range",
                                   label, (long long)v);
                lin = lin * t->dims[a] + v;
            }
        } else {
            lin = ix[k];
            if (lin < 0 || lin >= t->numel)
                return kn_fail(err, KN_ERR_MODEL, "sparse tensor '%s': index %lld out of range",
                               label, (long long)lin);
        }
        memcpy((uint8_t *)t->data + (size_t)lin * es, (const uint8_t *)vals->data + (size_t)k * es, es);
    }
    return KN_OK;
}

static int sparse_build(const kn_tensor *vals, const kn_tensor *idx, const int64_t *dims, int rank,
                        const kn_tp_opts *o, const char *label, kn_tensor *out, kn_error *err)
{
    if (vals->rank != 1)
        return kn_fail(err, KN_ERR_MODEL, "sparse tensor '%s': values must be 1-D", label);
    if (idx->dtype != KN_I64)
        return kn_fail(err, KN_ERR_MODEL, "sparse tensor '%s': indices must be int64", label);
    bool ok = (idx->rank == 1 && idx->dims[0] == vals->numel) ||
              (idx->rank == 2 && idx->dims[0] == vals->numel && idx->dims[1] == rank);
    if (!ok)
        return kn_fail(err, KN_ERR_MODEL, "sparse tensor '%s': indices shape does not match values",
                       label);
    kn_tensor t;
    memset(&t, 0, sizeof t);
    int64_t n, bytes;
    if (kn_shape_numel(rank, dims, &n, err) ||
        !kn_mul_ok(n, (int64_t)kn_dtype_size(vals->dtype), &bytes) || (uint64_t)bytes > SPARSE_MAX_BYTES)
        return kn_fail(err, KN_ERR_MODEL, "sparse tensor '%s' has invalid or too large dims", label);
    t.dtype = vals->dtype;
    t.rank = rank;
    memcpy(t.dims, dims, sizeof *dims * (size_t)rank);
    t.numel = n;
    t.nbytes = (size_t)bytes;
    int rc = alloc_storage(o, &t, err);
    if (rc)
        return rc;
    if (t.nbytes && !o->arena)
        memset(t.data, 0, t.nbytes);
    if ((rc = sparse_scatter(vals, idx, &t, label, err))) {
        free_storage(&t);
        return rc;
    }
    *out = t;
    return KN_OK;
}

int kn_tp_decode_sparse(const void *data, size_t size, const kn_tp_opts *o, kn_tensor *out,
                        const char **name, size_t *name_len, kn_error *err)
{
    const char *msg = "SparseTensorProto";
    const uint8_t *vp = NULL, *ip = NULL;
    size_t vl = 0, il = 0;
    int64_t n_dims = 0, dims[KN_MAX_RANK];
    kn_pb c;
    kn_pb_init(&c, data, size);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, err);
        if (rc)
            return rc;
        if (f.num == 1 || f.num == 2) {
            if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, err)))
                return rc;
            if (f.num == 1) {
                vp = f.data;
                vl = f.len;
            } else {
                ip = f.data;
                il = f.len;
            }
        } else if (f.num == 3) {
            if (f.wire != KN_PB_VARINT && f.wire != KN_PB_LEN)
                return kn_pb_expect(&f, KN_PB_VARINT, msg, err);
            kn_pb_iter it;
            uint64_t v;
            kn_pb_iter_init(&it, &f, KN_PB_VARINT);
            while (kn_pb_iter_next(&it, &v)) {
                if (n_dims >= KN_MAX_RANK)
                    return kn_fail(err, KN_ERR_UNSUPPORTED, "sparse tensor rank exceeds %d", KN_MAX_RANK);
                dims[n_dims++] = (int64_t)v;
            }
        }
    }
    if (!vp || !ip)
        return kn_fail(err, KN_ERR_MODEL, "sparse tensor lacks values or indices");
    kn_tp_opts tmp = {NULL, true, o->external, o->user, "sparse tensor"};
    kn_tensor vals, idx;
    const char *nm = NULL;
    size_t nl = 0;
    int rc = kn_tp_decode(vp, vl, &tmp, &vals, &nm, &nl, err);
    if (rc)
        return rc;
    if ((rc = kn_tp_decode(ip, il, &tmp, &idx, NULL, NULL, err))) {
        free_storage(&vals);
        return rc;
    }
    if (name)
        *name = nm;
    if (name_len)
        *name_len = nl;
    char label[128];
    snprintf(label, sizeof label, "%.*s", (int)(nl < 100 ? nl : 100), nm ? nm : "");
    /* indices may be unaligned views: make them aligned owned copies */
    kn_tensor idx_al = {0};
    rc = kn_tensor_copy(&idx_al, &idx, err);
    free_storage(&idx);
    if (!rc) {
        rc = sparse_build(&vals, &idx_al, dims, (int)n_dims, o, label, out, err);
        kn_tensor_release(&idx_al);
    }
    free_storage(&vals);
    return rc;
}

/* ---- standalone TensorProto files ---- */

int kn_tensorproto_read(const void *data, size_t size, kn_tensor *out, char *name, size_t name_len,
                        kn_error *err)
{
    kn_tp_opts o = {.arena = NULL, .zero_copy = false, .external = NULL, .what = "tensor"};
    const char *nm = NULL;
    size_t nl = 0;
    int rc = kn_tp_decode(data, size, &o, out, &nm, &nl, err);
    if (rc)
        return rc;
    if (!out->owns_data && out->nbytes == 0) {
        /* give empty tensors an owned 1-byte buffer so callers may free uniformly */
        out->data = calloc(1, 1);
        if (!out->data)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        out->owns_data = true;
    }
    if (name && name_len) {
        size_t n = nl < name_len - 1 ? nl : name_len - 1;
        if (n)
            memcpy(name, nm, n);
        name[n] = '\0';
    }
    return KN_OK;
}

int kn_tensorproto_read_file(const char *path, kn_tensor *out, char *name, size_t name_len,
                             kn_error *err)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = kn_read_file(path, &buf, &size, err);
    if (rc)
        return rc;
    rc = kn_tensorproto_read(buf, size, out, name, name_len, err);
    free(buf);
    if (rc) {
        const char *base = strrchr(path, '/');
        return kn_error_prefix(err, "%s: ", base ? base + 1 : path);
    }
    return KN_OK;
}
