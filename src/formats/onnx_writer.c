/* onnx_writer.c - kiln IR -> ONNX ModelProto, the mirror of onnx_reader.c.
 *
 * The model is encoded with kiln's own protobuf encoder (pbwrite.h) into one
 * growable buffer: ir_version, producer "kiln", opset imports (every domain a node
 * uses), metadata, functions, and the graph with its nodes, attributes (subgraphs
 * recursively), initializers as little-endian raw_data, typed inputs / outputs and
 * value_info.  Large initializers can go to an external data file with ONNX's
 * location / offset / length entries.  Files are written under a temporary name
 * and renamed into place.
 *
 * What the IR does not keep cannot be written back: sparse initializers come out
 * dense (sparse tensor attributes are re-encoded as COO), map types and the inner
 * type of nested sequence/optional types are lost, TypeProto-list attributes come
 * out empty, and doc strings of graphs and nodes are gone. */
#include "formats/onnx.h"
#include "formats/pbwrite.h"
#include "formats/protobuf.h"

#include "kiln.h" /* KILN_VERSION only */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64
#define EXT_ALIGN 64
#define DEFAULT_IR_VERSION 8

/* ONNX field numbers. */
enum { M_IR = 1, M_PRODUCER = 2, M_PRODUCER_VERSION = 3, M_DOMAIN = 4, M_MODEL_VERSION = 5,
       M_DOC = 6, M_GRAPH = 7, M_OPSET = 8, M_METADATA = 14, M_FUNCTION = 25 };
enum { G_NODE = 1, G_NAME = 2, G_INIT = 5, G_INPUT = 11, G_OUTPUT = 12, G_VALUE_INFO = 13 };
enum { N_INPUT = 1, N_OUTPUT = 2, N_NAME = 3, N_OP = 4, N_ATTR = 5, N_DOMAIN = 7 };
enum { A_NAME = 1, A_F = 2, A_I = 3, A_S = 4, A_T = 5, A_G = 6, A_FLOATS = 7, A_INTS = 8,
       A_STRINGS = 9, A_TENSORS = 10, A_GRAPHS = 11, A_TP = 14, A_TYPE = 20, A_REF = 21,
       A_SPARSE = 22 };
enum { T_DIMS = 1, T_TYPE = 2, T_NAME = 8, T_RAW = 9, T_EXTERNAL = 13, T_LOCATION = 14 };
enum { F_NAME = 1, F_INPUT = 4, F_OUTPUT = 5, F_ATTR = 6, F_NODE = 7, F_OPSET = 9, F_DOMAIN = 10,
       F_ATTR_PROTO = 11 };

typedef struct ext_sink {
    int fd;                 /* -1: everything inline */
    const char *location;   /* the data file's name, relative to the model */
    uint64_t offset;        /* bytes written so far */
    size_t min_bytes;
} ext_sink;

typedef struct writer {
    const kn_model *m;
    kn_pbw pb;
    kn_error *err;
    int rc;                 /* first failure that is not the buffer's own */
    bool inferred_types;
    ext_sink ext;
} writer;

/* Record the first failure (later ones would only be its consequences). */
__attribute__((format(printf, 3, 4))) static int fail_once(writer *w, int code, const char *fmt, ...)
{
    if (w->rc)
        return w->rc;
    char msg[KN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return w->rc = kn_fail(w->err, code, "%s", msg);
}

static bool host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Copy n bytes of elements of size es to dst in little-endian order. */
static void copy_le(uint8_t *dst, const void *src, size_t n, size_t es)
{
    memcpy(dst, src, n);
    if (host_is_le() || es < 2)
        return;
    for (size_t i = 0; i + es <= n; i += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t x = dst[i + a];
            dst[i + a] = dst[i + b];
            dst[i + b] = x;
        }
}

/* ---- external data ---- */

static int write_all(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Append t's bytes (little-endian) to the data file at an aligned offset. */
static int ext_append(writer *w, const kn_tensor *t, uint64_t *offset)
{
    static const uint8_t zeros[EXT_ALIGN];
    size_t pad = (size_t)((EXT_ALIGN - w->ext.offset % EXT_ALIGN) % EXT_ALIGN);
    int bad = write_all(w->ext.fd, zeros, pad);
    *offset = w->ext.offset + pad;
    size_t es = kn_dtype_size(t->dtype);
    if (!bad && host_is_le()) {
        bad = write_all(w->ext.fd, t->data, t->nbytes);
    } else if (!bad) {
        uint8_t chunk[4096];
        size_t step = sizeof chunk - sizeof chunk % es;
        for (size_t i = 0; !bad && i < t->nbytes; i += step) {
            size_t k = t->nbytes - i < step ? t->nbytes - i : step;
            copy_le(chunk, (const uint8_t *)t->data + i, k, es);
            bad = write_all(w->ext.fd, chunk, k);
        }
    }
    if (bad)
        return fail_once(w, KN_ERR_IO, "cannot write external data file '%s': %s", w->ext.location,
                         strerror(errno));
    w->ext.offset = *offset + t->nbytes;
    return KN_OK;
}

static void put_entry(kn_pbw *pb, const char *key, const char *value)
{
    kn_pbw_mark e = kn_pbw_begin(pb, T_EXTERNAL);
    kn_pbw_string(pb, 1, key);
    kn_pbw_string(pb, 2, value);
    kn_pbw_end(pb, e);
}

static int put_external_data(writer *w, const kn_tensor *t)
{
    uint64_t off;
    int rc = ext_append(w, t, &off);
    if (rc)
        return rc;
    char num[32];
    put_entry(&w->pb, "location", w->ext.location);
    snprintf(num, sizeof num, "%" PRIu64, off);
    put_entry(&w->pb, "offset", num);
    snprintf(num, sizeof num, "%zu", t->nbytes);
    put_entry(&w->pb, "length", num);
    kn_pbw_int(&w->pb, T_LOCATION, 1);
    return KN_OK;
}

/* ---- tensors ---- */

static int check_writable(writer *w, const kn_tensor *t, const char *name)
{
    if (t->kind != KN_VALUE_TENSOR)
        return fail_once(w, KN_ERR_UNSUPPORTED, "tensor '%s' is a sequence or optional, which a TensorProto cannot hold",
                         name ? name : "");
    if (!kn_dtype_size(t->dtype))
        return fail_once(w, KN_ERR_UNSUPPORTED, "tensor '%s' has dtype %s, which the writer cannot encode",
                         name ? name : "", kn_dtype_name(t->dtype));
    if (t->nbytes && !t->data)
        return fail_once(w, KN_ERR_ARG, "tensor '%s' has no data", name ? name : "");
    return KN_OK;
}

static void put_tensor_header(kn_pbw *pb, const kn_tensor *t, const char *name)
{
    if (t->rank > 0)
        kn_pbw_packed_ints(pb, T_DIMS, t->dims, t->rank);
    kn_pbw_int(pb, T_TYPE, t->dtype);
    if (name && name[0])
        kn_pbw_string(pb, T_NAME, name);
}

/* Bytes put_tensor_header writes (field tags here are all one byte). */
static size_t tensor_header_size(const kn_tensor *t, const char *name)
{
    size_t n = 1 + kn_pbw_varint_size((uint64_t)t->dtype);
    if (t->rank > 0) {
        size_t dims = 0;
        for (int i = 0; i < t->rank; i++)
            dims += kn_pbw_varint_size((uint64_t)t->dims[i]);
        n += 1 + kn_pbw_varint_size(dims) + dims;
    }
    if (name && name[0])
        n += 1 + kn_pbw_varint_size(strlen(name)) + strlen(name);
    return n;
}

/* A TensorProto field: dims, data_type, name, then raw_data or external data.
 * Inline data is sized up front and copied once, straight into place (no
 * kn_pbw_end sliding it back). */
static int put_tensor(writer *w, uint32_t num, const kn_tensor *t, const char *name, bool may_external)
{
    int rc = check_writable(w, t, name);
    if (rc)
        return rc;
    kn_pbw *pb = &w->pb;
    if (may_external && w->ext.fd >= 0 && t->nbytes && t->nbytes >= w->ext.min_bytes) {
        kn_pbw_mark mk = kn_pbw_begin(pb, num);
        put_tensor_header(pb, t, name);
        rc = put_external_data(w, t);
        kn_pbw_end(pb, mk);
        return rc;
    }
    size_t body = tensor_header_size(t, name) + 1 + kn_pbw_varint_size(t->nbytes) + t->nbytes;
    kn_pbw_tag(pb, num, KN_PB_LEN);
    kn_pbw_varint(pb, body);
    size_t start = pb->n;
    put_tensor_header(pb, t, name);
    uint8_t *p = kn_pbw_reserve_bytes(pb, T_RAW, t->nbytes);
    if (p && t->nbytes)
        copy_le(p, t->data, t->nbytes, kn_dtype_size(t->dtype));
    if (kn_pbw_ok(pb) && pb->n - start != body)
        return fail_once(w, KN_ERR_RUNTIME, "internal error: tensor '%s' encoded to %zu bytes, sized %zu",
                         name ? name : "", pb->n - start, body);
    return KN_OK;
}

static bool elem_is_zero(const uint8_t *p, size_t es)
{
    for (size_t b = 0; b < es; b++)
        if (p[b])
            return false;
    return true;
}

static void put_i64_le(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int b = 0; b < 8; b++)
        p[b] = (uint8_t)(u >> (8 * b));
}

/* The TensorProto of a 1-D sparse part: header fields, then returns the raw_data
 * payload of n elements of size es to fill (NULL after an error). */
static uint8_t *begin_sparse_part(kn_pbw *pb, uint32_t num, kn_dtype dt, int64_t n, size_t es,
                                  kn_pbw_mark *mk)
{
    *mk = kn_pbw_begin(pb, num);
    kn_pbw_packed_ints(pb, T_DIMS, &n, 1);
    kn_pbw_int(pb, T_TYPE, dt);
    return kn_pbw_reserve_bytes(pb, T_RAW, (size_t)n * es);
}

/* A dense tensor as a SparseTensorProto (values 1, linear int64 indices 2, dims 3)
 * holding its non-zero elements (bitwise: -0.0 counts as non-zero). */
static int put_sparse(writer *w, uint32_t num, const kn_tensor *t)
{
    int rc = check_writable(w, t, "sparse attribute");
    if (rc)
        return rc;
    kn_pbw *pb = &w->pb;
    size_t es = kn_dtype_size(t->dtype);
    const uint8_t *d = t->data;
    int64_t nnz = 0;
    for (int64_t i = 0; i < t->numel; i++)
        nnz += !elem_is_zero(d + (size_t)i * es, es);
    kn_pbw_mark mk = kn_pbw_begin(pb, num), part;
    uint8_t *vals = begin_sparse_part(pb, 1, t->dtype, nnz, es, &part);
    for (int64_t i = 0, k = 0; vals && i < t->numel; i++)
        if (!elem_is_zero(d + (size_t)i * es, es))
            copy_le(vals + (size_t)k++ * es, d + (size_t)i * es, es, es);
    kn_pbw_end(pb, part);
    uint8_t *idx = begin_sparse_part(pb, 2, KN_I64, nnz, 8, &part);
    for (int64_t i = 0, k = 0; idx && i < t->numel; i++)
        if (!elem_is_zero(d + (size_t)i * es, es))
            put_i64_le(idx + (size_t)k++ * 8, i);
    kn_pbw_end(pb, part);
    if (t->rank > 0)
        kn_pbw_packed_ints(pb, 3, t->dims, t->rank);
    kn_pbw_end(pb, mk);
    return KN_OK;
}

/* ---- types ---- */

/* TypeProto.Tensor / SparseTensor: elem_type 1, shape 2 (absent for unknown rank;
 * a dimension is dim_value 1, dim_param 2, or empty when unknown). */
static void put_tensor_type(kn_pbw *pb, uint32_t num, const kn_type *ty)
{
    kn_pbw_mark mk = kn_pbw_begin(pb, num);
    if (ty->dtype != KN_UNDEFINED)
        kn_pbw_int(pb, 1, ty->dtype);
    if (ty->rank >= 0) {
        kn_pbw_mark sh = kn_pbw_begin(pb, 2);
        for (int i = 0; i < ty->rank && i < KN_MAX_RANK; i++) {
            kn_pbw_mark dm = kn_pbw_begin(pb, 1);
            if (ty->dims[i].param)
                kn_pbw_string(pb, 2, ty->dims[i].param);
            else if (ty->dims[i].value >= 0)
                kn_pbw_int(pb, 1, ty->dims[i].value);
            kn_pbw_end(pb, dm);
        }
        kn_pbw_end(pb, sh);
    }
    kn_pbw_end(pb, mk);
}

static bool type_writable(const kn_type *ty)
{
    return ty->kind == KN_TYPE_TENSOR || ty->kind == KN_TYPE_SPARSE || ty->kind == KN_TYPE_SEQUENCE ||
           ty->kind == KN_TYPE_OPTIONAL;
}

/* A TypeProto field.  Sequence (4) and optional (9) wrap a tensor element type
 * (left out when nothing is known of it). */
static void put_type(kn_pbw *pb, uint32_t num, const kn_type *ty)
{
    kn_pbw_mark mk = kn_pbw_begin(pb, num);
    if (ty->kind == KN_TYPE_TENSOR || ty->kind == KN_TYPE_SPARSE) {
        put_tensor_type(pb, ty->kind == KN_TYPE_TENSOR ? 1 : 8, ty);
    } else {
        kn_pbw_mark wrap = kn_pbw_begin(pb, ty->kind == KN_TYPE_SEQUENCE ? 4 : 9);
        if (ty->dtype != KN_UNDEFINED || ty->rank >= 0) {
            kn_pbw_mark elem = kn_pbw_begin(pb, 1);
            put_tensor_type(pb, 1, ty);
            kn_pbw_end(pb, elem);
        }
        kn_pbw_end(pb, wrap);
    }
    kn_pbw_end(pb, mk);
}

/* A ValueInfoProto.  An inferred type is written as the file had it, without a
 * shape (inference only adds the shape to a declared kind and dtype), unless
 * inferred types were asked for. */
static void put_value_info(writer *w, uint32_t num, const kn_value *v)
{
    kn_pbw_mark mk = kn_pbw_begin(&w->pb, num);
    kn_pbw_string(&w->pb, 1, v->name);
    if (v->has_type && type_writable(&v->type)) {
        kn_type ty = v->type;
        if (v->type_inferred && !w->inferred_types)
            ty.rank = -1;
        put_type(&w->pb, 2, &ty);
    }
    kn_pbw_end(&w->pb, mk);
}

/* ---- nodes and graphs ---- */

static int put_graph(writer *w, uint32_t num, const kn_graph *g, int depth);

static void put_list_attr(writer *w, const kn_attr *a, int depth)
{
    kn_pbw *pb = &w->pb;
    for (int k = 0; k < a->n && !w->rc; k++) {
        switch (a->type) {
        case KN_ATTR_STRINGS: kn_pbw_string(pb, A_STRINGS, a->strings[k] ? a->strings[k] : ""); break;
        case KN_ATTR_TENSORS: put_tensor(w, A_TENSORS, a->tensors[k], NULL, false); break;
        case KN_ATTR_GRAPHS: put_graph(w, A_GRAPHS, a->graphs[k], depth + 1); break;
        default: break;
        }
    }
}

/* The value of an attribute by its type.  A TYPE_PROTO attribute holds the raw
 * TypeProto bytes the reader kept in s / s_len. */
static void put_attr_value(writer *w, const kn_attr *a, int depth)
{
    kn_pbw *pb = &w->pb;
    switch (a->type) {
    case KN_ATTR_FLOAT: kn_pbw_float(pb, A_F, a->f); break;
    case KN_ATTR_INT: kn_pbw_int(pb, A_I, a->i); break;
    case KN_ATTR_STRING: kn_pbw_bytes(pb, A_S, a->s ? a->s : "", a->s ? a->s_len : 0); break;
    case KN_ATTR_TENSOR: if (a->t) put_tensor(w, A_T, a->t, NULL, false); break;
    case KN_ATTR_GRAPH: if (a->g) put_graph(w, A_G, a->g, depth + 1); break;
    case KN_ATTR_SPARSE_TENSOR: if (a->t) put_sparse(w, A_SPARSE, a->t); break;
    case KN_ATTR_TYPE_PROTO: if (a->s) kn_pbw_bytes(pb, A_TP, a->s, a->s_len); break;
    case KN_ATTR_FLOATS: kn_pbw_packed_floats(pb, A_FLOATS, a->floats, a->n); break;
    case KN_ATTR_INTS: kn_pbw_packed_ints(pb, A_INTS, a->ints, a->n); break;
    default: put_list_attr(w, a, depth); break;
    }
}

static void put_attr(writer *w, uint32_t num, const kn_attr *a, int depth)
{
    kn_pbw *pb = &w->pb;
    kn_pbw_mark mk = kn_pbw_begin(pb, num);
    kn_pbw_string(pb, A_NAME, a->name);
    if (a->type != KN_ATTR_UNDEFINED)
        kn_pbw_int(pb, A_TYPE, a->type);
    if (a->ref_attr_name)
        kn_pbw_string(pb, A_REF, a->ref_attr_name);
    else
        put_attr_value(w, a, depth);
    kn_pbw_end(pb, mk);
}

static const char *value_name(const kn_graph *g, int id)
{
    return id >= 0 && id < g->n_values ? g->values[id].name : "";
}

static void put_node(writer *w, uint32_t num, const kn_graph *g, const kn_node *n, int depth)
{
    kn_pbw *pb = &w->pb;
    kn_pbw_mark mk = kn_pbw_begin(pb, num);
    for (int k = 0; k < n->n_in; k++)
        kn_pbw_string(pb, N_INPUT, value_name(g, n->in[k]));
    for (int k = 0; k < n->n_out; k++)
        kn_pbw_string(pb, N_OUTPUT, value_name(g, n->out[k]));
    if (n->name && n->name[0])
        kn_pbw_string(pb, N_NAME, n->name);
    kn_pbw_string(pb, N_OP, n->op_type ? n->op_type : "");
    if (n->domain && n->domain[0])
        kn_pbw_string(pb, N_DOMAIN, n->domain);
    for (int k = 0; k < n->n_attr && !w->rc; k++)
        put_attr(w, N_ATTR, &n->attrs[k], depth);
    kn_pbw_end(pb, mk);
}

static bool is_graph_output(const kn_graph *g, int id)
{
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == id)
            return true;
    return false;
}

/* value_info: typed values that nodes of g produce and that are not outputs. */
static int put_value_infos(writer *w, const kn_graph *g)
{
    bool *produced = calloc((size_t)g->n_values + 1, sizeof *produced);
    if (!produced)
        return fail_once(w, KN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0 && g->nodes[i].out[k] < g->n_values)
                produced[g->nodes[i].out[k]] = true;
    for (int v = 0; v < g->n_values; v++) {
        const kn_value *val = &g->values[v];
        if (!produced[v] || !val->has_type || !type_writable(&val->type) || is_graph_output(g, v))
            continue;
        if (val->type_inferred && !w->inferred_types)
            continue;
        put_value_info(w, G_VALUE_INFO, val);
    }
    free(produced);
    return w->rc;
}

static int put_graph(writer *w, uint32_t num, const kn_graph *g, int depth)
{
    if (depth > MAX_DEPTH)
        return fail_once(w, KN_ERR_ARG, "subgraphs nested more than %d levels deep", MAX_DEPTH);
    kn_pbw *pb = &w->pb;
    kn_pbw_mark mk = kn_pbw_begin(pb, num);
    for (int i = 0; i < g->n_nodes && !w->rc; i++)
        put_node(w, G_NODE, g, &g->nodes[i], depth);
    kn_pbw_string(pb, G_NAME, g->name ? g->name : "");
    for (int v = 0; v < g->n_values && !w->rc; v++)
        if (g->values[v].init && !g->values[v].is_outer)
            put_tensor(w, G_INIT, g->values[v].init, g->values[v].name, true);
    for (int k = 0; k < g->n_inputs; k++)
        put_value_info(w, G_INPUT, &g->values[g->inputs[k]]);
    for (int k = 0; k < g->n_outputs; k++)
        put_value_info(w, G_OUTPUT, &g->values[g->outputs[k]]);
    if (!w->rc)
        put_value_infos(w, g);
    kn_pbw_end(pb, mk);
    return w->rc;
}

/* ---- the model ---- */

static void put_opset(kn_pbw *pb, uint32_t num, const char *domain, int64_t version)
{
    kn_pbw_mark mk = kn_pbw_begin(pb, num);
    if (domain && domain[0])
        kn_pbw_string(pb, 1, domain);
    kn_pbw_int(pb, 2, version);
    kn_pbw_end(pb, mk);
}

static void put_function(writer *w, const kn_function *fn)
{
    kn_pbw *pb = &w->pb;
    kn_pbw_mark mk = kn_pbw_begin(pb, M_FUNCTION);
    kn_pbw_string(pb, F_NAME, fn->name);
    for (int k = 0; k < fn->n_inputs; k++)
        kn_pbw_string(pb, F_INPUT, fn->inputs[k]);
    for (int k = 0; k < fn->n_outputs; k++)
        kn_pbw_string(pb, F_OUTPUT, fn->outputs[k]);
    for (int k = 0; k < fn->n_attrs; k++)
        kn_pbw_string(pb, F_ATTR, fn->attrs[k]);
    for (int k = 0; fn->body && k < fn->body->n_nodes && !w->rc; k++)
        put_node(w, F_NODE, fn->body, &fn->body->nodes[k], 0);
    for (int k = 0; k < fn->n_opsets; k++)
        put_opset(pb, F_OPSET, fn->opsets[k].domain, fn->opsets[k].version);
    if (fn->domain && fn->domain[0])
        kn_pbw_string(pb, F_DOMAIN, fn->domain);
    for (int k = 0; k < fn->n_attr_defaults && !w->rc; k++)
        put_attr(w, F_ATTR_PROTO, &fn->attr_defaults[k], 0);
    kn_pbw_end(pb, mk);
}

/* Domains imported so far (model imports first, then ones only nodes name). */
typedef struct opset_list {
    const char *domain[64];
    int64_t version[64];
    int n;
} opset_list;

static void opset_add(opset_list *l, const char *domain, int64_t version)
{
    if (!domain || !strcmp(domain, "ai.onnx"))
        domain = "";
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->domain[i], domain))
            return;
    if (l->n < 64) {
        l->domain[l->n] = domain;
        l->version[l->n++] = version;
    }
}

static void collect_node_domains(const kn_graph *g, opset_list *l, int depth)
{
    for (int i = 0; g && depth <= MAX_DEPTH && i < g->n_nodes; i++) {
        const kn_node *n = &g->nodes[i];
        opset_add(l, n->domain, n->opset > 0 ? n->opset : 1);
        for (int k = 0; k < n->n_attr; k++) {
            const kn_attr *a = &n->attrs[k];
            if (a->type == KN_ATTR_GRAPH)
                collect_node_domains(a->g, l, depth + 1);
            for (int j = 0; a->type == KN_ATTR_GRAPHS && j < a->n; j++)
                collect_node_domains(a->graphs[j], l, depth + 1);
        }
    }
}

static bool has_plain_initializer(const kn_graph *g)
{
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init && !g->values[v].is_input)
            return true;
    return false;
}

static int put_model(writer *w)
{
    const kn_model *m = w->m;
    kn_pbw *pb = &w->pb;
    if (!m || !m->graph)
        return fail_once(w, KN_ERR_ARG, "model has no graph");
    /* initializers that are not graph inputs need IR version 4 or later */
    int64_t ir = m->ir_version > 0 ? m->ir_version : DEFAULT_IR_VERSION;
    if (ir < 4 && has_plain_initializer(m->graph))
        ir = 4;
    kn_pbw_int(pb, M_IR, ir);
    kn_pbw_string(pb, M_PRODUCER, "kiln");
    kn_pbw_string(pb, M_PRODUCER_VERSION, KILN_VERSION);
    if (m->domain && m->domain[0])
        kn_pbw_string(pb, M_DOMAIN, m->domain);
    if (m->model_version)
        kn_pbw_int(pb, M_MODEL_VERSION, m->model_version);
    if (m->doc && m->doc[0])
        kn_pbw_string(pb, M_DOC, m->doc);
    opset_list ops = {.n = 0};
    for (int i = 0; i < m->n_opsets; i++)
        opset_add(&ops, m->opsets[i].domain, m->opsets[i].version);
    collect_node_domains(m->graph, &ops, 0);
    for (int i = 0; i < ops.n; i++)
        put_opset(pb, M_OPSET, ops.domain[i], ops.version[i]);
    for (int i = 0; i < m->n_metadata; i++) {
        kn_pbw_mark mk = kn_pbw_begin(pb, M_METADATA);
        kn_pbw_string(pb, 1, m->metadata[i].key ? m->metadata[i].key : "");
        kn_pbw_string(pb, 2, m->metadata[i].value ? m->metadata[i].value : "");
        kn_pbw_end(pb, mk);
    }
    for (int i = 0; i < m->n_functions && !w->rc; i++)
        put_function(w, &m->functions[i]);
    if (!w->rc)
        put_graph(w, M_GRAPH, m->graph, 0);
    return w->rc;
}

/* Encode into w->pb; on failure the buffer is freed and err set. */
static int encode(writer *w)
{
    w->pb.limit = KN_ONNX_MAX_PROTO_BYTES;
    int rc = put_model(w);
    if (!rc && !kn_pbw_ok(&w->pb))
        rc = w->pb.too_big ? kn_fail(w->err, KN_ERR_UNSUPPORTED,
                                     "the model does not fit in protobuf's 2 GiB limit; write it "
                                     "with external data")
                           : kn_fail(w->err, KN_ERR_NOMEM, "out of memory encoding the model");
    if (rc)
        kn_pbw_free(&w->pb);
    return rc;
}

void kn_onnx_write_options_init(kn_onnx_write_options *o)
{
    memset(o, 0, sizeof *o);
    o->external = KN_ONNX_EXTERNAL_AUTO;
    o->external_min_bytes = KN_ONNX_EXTERNAL_MIN_BYTES;
    o->auto_bytes = KN_ONNX_AUTO_EXTERNAL_BYTES;
}

int kn_onnx_write_buffer(const kn_model *m, void **data, size_t *len, kn_error *err)
{
    kn_error local;
    if (!err)
        err = &local;
    writer w = {.m = m, .err = err, .ext = {.fd = -1}};
    int rc = encode(&w);
    if (rc)
        return rc;
    *data = w.pb.p;
    *len = w.pb.n;
    return KN_OK;
}

/* ---- files ---- */

static uint64_t initializer_bytes(const kn_graph *g, int depth)
{
    uint64_t sum = 0;
    for (int v = 0; g && depth <= MAX_DEPTH && v < g->n_values; v++)
        if (g->values[v].init)
            sum += g->values[v].init->nbytes;
    for (int i = 0; g && depth <= MAX_DEPTH && i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_attr; k++) {
            const kn_attr *a = &g->nodes[i].attrs[k];
            if (a->type == KN_ATTR_GRAPH)
                sum += initializer_bytes(a->g, depth + 1);
            for (int j = 0; a->type == KN_ATTR_GRAPHS && j < a->n; j++)
                sum += initializer_bytes(a->graphs[j], depth + 1);
        }
    return sum;
}

/* Create a new file next to `path` under a unique temporary name. */
static int open_temp(const char *path, char *tmp, size_t len, kn_error *err)
{
    static unsigned counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned c = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        if ((size_t)snprintf(tmp, len, "%s.tmp-%ld-%u", path, (long)getpid(), c) >= len) {
            kn_fail(err, KN_ERR_ARG, "output path '%s' is too long", path);
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            break;
    }
    kn_fail(err, KN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    return -1;
}

/* Write the buffer, flush it to disk and close the file (also on failure). */
static int finish_file(int fd, const void *data, size_t n, const char *tmp, kn_error *err)
{
    int bad = write_all(fd, data, n) || fsync(fd);
    int e = errno;
    if (close(fd) && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad)
        return kn_fail(err, KN_ERR_IO, "cannot write '%s': %s", tmp, strerror(e));
    return KN_OK;
}

typedef struct out_paths {
    char model_tmp[PATH_MAX];
    char data_path[PATH_MAX], data_tmp[PATH_MAX];
    char data_name[NAME_MAX + 1];
} out_paths;

/* The data file's name (a plain file name, no directories) and path. */
static int data_paths(const char *path, const kn_onnx_write_options *o, out_paths *p, kn_error *err)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int n = o->external_name ? snprintf(p->data_name, sizeof p->data_name, "%s", o->external_name)
                             : snprintf(p->data_name, sizeof p->data_name, "%s.data", base);
    if (n < 0 || (size_t)n >= sizeof p->data_name)
        return kn_fail(err, KN_ERR_ARG, "external data file name for '%s' is too long", base);
    const char *dn = p->data_name;
    if (!dn[0] || strchr(dn, '/') || strchr(dn, '\\') || !strcmp(dn, ".") || !strcmp(dn, ".."))
        return kn_fail(err, KN_ERR_ARG, "external data file name '%s' must be a plain file name", dn);
    int dir_len = slash ? (int)(slash - path) + 1 : 0;
    if ((size_t)snprintf(p->data_path, sizeof p->data_path, "%.*s%s", dir_len, path, dn) >= sizeof p->data_path)
        return kn_fail(err, KN_ERR_ARG, "output path '%s' is too long", path);
    if (!strcmp(p->data_path, path))
        return kn_fail(err, KN_ERR_ARG, "external data file '%s' would replace the model file", dn);
    return KN_OK;
}

/* Encode the model, spilling initializers to data_fd when it is >= 0. */
static int encode_to_files(const kn_model *m, const kn_onnx_write_options *o, int model_fd,
                           int data_fd, out_paths *p, kn_error *err)
{
    writer w = {.m = m, .err = err, .inferred_types = o->inferred_types,
                .ext = {.fd = data_fd, .location = p->data_name, .min_bytes = o->external_min_bytes}};
    int rc = encode(&w);
    if (data_fd >= 0) {
        bool bad = !rc && fsync(data_fd);
        int e = errno;
        if (close(data_fd) && !bad) {
            bad = true;
            e = errno;
        }
        if (!rc && bad)
            rc = kn_fail(err, KN_ERR_IO, "cannot write '%s': %s", p->data_tmp, strerror(e));
    }
    if (!rc)
        rc = finish_file(model_fd, w.pb.p, w.pb.n, p->model_tmp, err);
    else
        close(model_fd);
    kn_pbw_free(&w.pb);
    return rc;
}

int kn_onnx_write_file(const kn_model *m, const char *path, const kn_onnx_write_options *o,
                       kn_error *err)
{
    kn_error local;
    if (!err)
        err = &local;
    kn_onnx_write_options defaults;
    if (!o) {
        kn_onnx_write_options_init(&defaults);
        o = &defaults;
    }
    if (!m || !m->graph)
        return kn_fail(err, KN_ERR_ARG, "model has no graph");
    /* refused up front: the data file would already be in place when renaming the
     * model over a directory failed */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return kn_fail(err, KN_ERR_IO, "cannot write '%s': it is a directory", path);
    uint64_t auto_bytes = o->auto_bytes ? o->auto_bytes : KN_ONNX_AUTO_EXTERNAL_BYTES;
    bool external = o->external == KN_ONNX_EXTERNAL_ALWAYS ||
                    (o->external == KN_ONNX_EXTERNAL_AUTO && initializer_bytes(m->graph, 0) > auto_bytes);
    out_paths *p = calloc(1, sizeof *p);
    if (!p)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    int rc = external ? data_paths(path, o, p, err) : KN_OK;
    int data_fd = -1, model_fd = -1;
    if (!rc && external && (data_fd = open_temp(p->data_path, p->data_tmp, sizeof p->data_tmp, err)) < 0)
        rc = err->code;
    if (!rc && (model_fd = open_temp(path, p->model_tmp, sizeof p->model_tmp, err)) < 0) {
        rc = err->code;
        if (data_fd >= 0)
            close(data_fd);
    }
    if (!rc)
        rc = encode_to_files(m, o, model_fd, data_fd, p, err);
    if (!rc && external && rename(p->data_tmp, p->data_path))
        rc = kn_fail(err, KN_ERR_IO, "cannot rename '%s' to '%s': %s", p->data_tmp, p->data_path,
                     strerror(errno));
    if (!rc && rename(p->model_tmp, path))
        rc = kn_fail(err, KN_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (rc && model_fd >= 0)
        unlink(p->model_tmp);
    if (rc && data_fd >= 0)
        unlink(p->data_tmp);
    free(p);
    return rc;
}
