/* onnx_reader.c - ONNX ModelProto -> kiln IR, straight from the wire format.
 *
 * The file is mmapped and parsed zero-copy: initializer raw_data is referenced in
 * place when aligned.  Each message is walked with the protobuf cursor; repeated
 * message fields are counted in a first pass and filled in a second, so every
 * array comes from the model arena at its final size.  Subgraphs (If/Loop/Scan)
 * are parsed recursively up to MAX_DEPTH levels.  External data files are mapped
 * once per model.  Models without any opset_import and ir_version < 3 are taken to
 * use the default domain at opset 1 (the only opset that existed then). */
#include "formats/onnx.h"
#include "formats/protobuf.h"
#include "formats/tensorproto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64

typedef struct ext_file {
    char *loc;
    const uint8_t *base;
    size_t size;
} ext_file;

typedef struct reader {
    kn_model *m;
    kn_error *err;
    const char *base_dir;  /* NULL: no external data */
    ext_file *ext;
    int n_ext, cap_ext;
    bool node_located;     /* the error already names its node (inner levels add no more) */
    bool graph_located;    /* ... and its subgraph */
} reader;

/* ---- small helpers ---- */

static int oom(reader *r)
{
    return kn_fail(r->err, KN_ERR_NOMEM, "out of memory");
}

static const char *dup_field(reader *r, const kn_pb_field *f)
{
    return kn_arena_strndup(&r->m->arena, (const char *)f->data, f->len);
}

/* Read a string field into *dst (arena copy). */
static int get_string(reader *r, const kn_pb_field *f, const char *msg, const char **dst)
{
    int rc = kn_pb_expect(f, KN_PB_LEN, msg, r->err);
    if (rc)
        return rc;
    if (!(*dst = dup_field(r, f)))
        return oom(r);
    return KN_OK;
}

static int get_varint(reader *r, const kn_pb_field *f, const char *msg, int64_t *dst)
{
    int rc = kn_pb_expect(f, KN_PB_VARINT, msg, r->err);
    if (!rc)
        *dst = (int64_t)f->u;
    return rc;
}

/* Count occurrences of field `num` in a message (validating the framing). */
static int count_field(reader *r, const uint8_t *data, size_t size, uint32_t num, const char *msg,
                       int *n)
{
    kn_pb c;
    kn_pb_init(&c, data, size);
    *n = 0;
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num == num) {
            if (*n == INT_MAX / 2)
                return kn_fail(r->err, KN_ERR_MODEL, "too many entries in %s field %u", msg, num);
            (*n)++;
        }
    }
    return KN_OK;
}

static void label_of(const uint8_t *p, size_t n, char *buf, size_t len)
{
    size_t k = n < len - 1 ? n : len - 1;
    for (size_t i = 0; i < k; i++)
        buf[i] = (p[i] >= 32 && p[i] < 127) ? (char)p[i] : '?';
    buf[k] = '\0';
}

/* ---- external data ---- */

static int bad_location(const char *loc)
{
    if (!loc[0] || loc[0] == '/' || loc[0] == '\\' || strchr(loc, ':'))
        return 1;
    const char *p = loc;
    while (*p) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

/* Does path (after resolving symlinks) lie inside dir? */
static bool inside_dir(const char *dir, const char *path)
{
    char *rd = realpath(dir, NULL), *rp = realpath(path, NULL);
    bool ok = false;
    if (rd && rp) {
        size_t n = strlen(rd);
        ok = !strncmp(rd, rp, n) && (rp[n] == '/' || (n == 1 && rd[0] == '/'));
    }
    free(rd);
    free(rp);
    return ok;
}

static int map_external(reader *r, const char *loc, ext_file **out, kn_error *err)
{
    for (int i = 0; i < r->n_ext; i++)
        if (!strcmp(r->ext[i].loc, loc)) {
            *out = &r->ext[i];
            return KN_OK;
        }
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", r->base_dir, loc) >= sizeof path)
        return kn_fail(err, KN_ERR_MODEL, "external data path '%s' is too long", loc);
    if (r->n_ext == r->cap_ext) {
        int cap = r->cap_ext ? r->cap_ext * 2 : 4;
        ext_file *p = realloc(r->ext, sizeof *p * (size_t)cap);
        if (!p)
            return kn_fail(err, KN_ERR_NOMEM, "out of memory");
        r->ext = p;
        r->cap_ext = cap;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kn_fail(err, KN_ERR_IO, "cannot open external data file '%s': %s", path,
                       strerror(errno));
    if (!inside_dir(r->base_dir, path)) {
        close(fd);
        return kn_fail(err, KN_ERR_MODEL, "external data file '%s' resolves outside the model directory",
                       loc);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kn_fail(err, KN_ERR_IO, "external data file '%s' is not a regular file", path);
    }
    ext_file e = {NULL, NULL, (size_t)st.st_size};
    if (e.size) {
        void *base = mmap(NULL, e.size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (base == MAP_FAILED) {
            close(fd);
            return kn_fail(err, KN_ERR_IO, "cannot map external data file '%s': %s", path,
                           strerror(errno));
        }
        if (kn_model_add_mapping(r->m, base, e.size, err)) {
            munmap(base, e.size);
            close(fd);
            return KN_ERR_NOMEM;
        }
        e.base = base;
    }
    close(fd);
    if (!(e.loc = kn_arena_strdup(&r->m->arena, loc)))
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    r->ext[r->n_ext] = e;
    *out = &r->ext[r->n_ext++];
    return KN_OK;
}

static int resolve_external(void *user, const char *loc, uint64_t offset, bool has_length,
                            uint64_t length, size_t expected, const void **data, kn_error *err)
{
    reader *r = user;
    if (!r->base_dir)
        return kn_fail(err, KN_ERR_MODEL,
                       "external data '%s' cannot be used by a model loaded from memory", loc);
    if (bad_location(loc))
        return kn_fail(err, KN_ERR_MODEL,
                       "external data location '%s' must be a relative path inside the model directory",
                       loc);
    if (has_length && length != expected)
        return kn_fail(err, KN_ERR_MODEL, "external data length is %llu bytes, expected %zu",
                       (unsigned long long)length, expected);
    ext_file *e;
    int rc = map_external(r, loc, &e, err);
    if (rc)
        return rc;
    if (offset > e->size || expected > e->size - offset)
        return kn_fail(err, KN_ERR_MODEL,
                       "external data (offset %llu, %zu bytes) lies beyond the end of '%s' (%zu bytes)",
                       (unsigned long long)offset, expected, loc, e->size);
    *data = e->base ? e->base + offset : (const void *)r; /* any non-NULL pointer for 0 bytes */
    return KN_OK;
}

/* ---- tensors ---- */

typedef int (*tp_decoder)(const void *data, size_t size, const kn_tp_opts *o, kn_tensor *out,
                          const char **name, size_t *name_len, kn_error *err);

/* Decode a TensorProto (kn_tp_decode) or SparseTensorProto (kn_tp_decode_sparse,
 * densified) into arena storage; *name gets an arena copy of its name. */
static int decode_with(reader *r, tp_decoder decode, const kn_pb_field *f, const char *what,
                       kn_tensor **out, const char **name)
{
    kn_tensor *t = kn_arena_alloc(&r->m->arena, sizeof *t);
    if (!t)
        return oom(r);
    /* a model read from a file has all its bytes in mappings (file or external data) */
    kn_tp_opts o = {.arena = &r->m->arena, .zero_copy = true, .release_source = r->m->n_maps > 0 && !r->m->owned_buffer,
                    .external = resolve_external, .user = r, .what = what};
    const char *nm = NULL;
    size_t nl = 0;
    int rc = decode(f->data, f->len, &o, t, &nm, &nl, r->err);
    if (rc)
        return rc;
    if (name && !(*name = kn_arena_strndup(&r->m->arena, nm ? nm : "", nl)))
        return oom(r);
    *out = t;
    return KN_OK;
}

static int decode_tensor(reader *r, const kn_pb_field *f, const char *what, kn_tensor **out,
                         const char **name)
{
    return decode_with(r, kn_tp_decode, f, what, out, name);
}

static int decode_sparse(reader *r, const kn_pb_field *f, const char *what, kn_tensor **out,
                         const char **name)
{
    return decode_with(r, kn_tp_decode_sparse, f, what, out, name);
}

/* ---- types ---- */

static int parse_type(reader *r, const uint8_t *data, size_t size, kn_type *ty, int depth);

static int parse_dim(reader *r, const kn_pb_field *df, kn_dim *d)
{
    const char *msg = "TensorShapeProto.Dimension";
    d->value = -1;
    d->param = NULL;
    kn_pb c;
    kn_pb_init(&c, df->data, df->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num == 1) {
            int64_t v;
            if ((rc = get_varint(r, &f, msg, &v)))
                return rc;
            d->value = v >= 0 ? v : -1;
            d->param = NULL;
        } else if (f.num == 2) {
            if ((rc = get_string(r, &f, msg, &d->param)))
                return rc;
            d->value = -1;
        }
    }
    return KN_OK;
}

static int parse_shape(reader *r, const kn_pb_field *sf, kn_type *ty)
{
    const char *msg = "TensorShapeProto";
    int n, rc = count_field(r, sf->data, sf->len, 1, msg, &n);
    if (rc)
        return rc;
    if (n > KN_MAX_RANK)
        return kn_fail(r->err, KN_ERR_UNSUPPORTED, "shape of rank %d exceeds kiln's maximum %d", n,
                       KN_MAX_RANK);
    ty->rank = n;
    kn_pb c;
    kn_pb_init(&c, sf->data, sf->len);
    int k = 0;
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        if ((rc = kn_pb_next(&c, &f, msg, r->err)))
            return rc;
        if (f.num != 1)
            continue;
        if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)) || (rc = parse_dim(r, &f, &ty->dims[k++])))
            return rc;
    }
    return KN_OK;
}

static int set_elem_type(reader *r, const kn_pb_field *f, const char *msg, kn_type *ty)
{
    int64_t v;
    int rc = get_varint(r, f, msg, &v);
    if (rc)
        return rc;
    if (v < 0 || v > 255)
        return kn_fail(r->err, KN_ERR_MODEL, "invalid elem_type %lld", (long long)v);
    ty->dtype = (kn_dtype)v;
    return KN_OK;
}

/* TypeProto.Tensor and TypeProto.SparseTensor: elem_type 1, shape 2. */
static int parse_tensor_type(reader *r, const kn_pb_field *tf, kn_type *ty, kn_type_kind kind)
{
    const char *msg = "TypeProto.Tensor";
    ty->kind = kind;
    ty->rank = -1;
    kn_pb c;
    kn_pb_init(&c, tf->data, tf->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (!rc && f.num == 1)
            rc = set_elem_type(r, &f, msg, ty);
        else if (!rc && f.num == 2 && !(rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
            rc = parse_shape(r, &f, ty);
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* Sequence / Optional (elem_type 1) and Map (value_type 2): nested TypeProto. */
static int parse_wrapped_type(reader *r, const kn_pb_field *wf, kn_type *ty, kn_type_kind kind,
                              uint32_t elem_field, int depth)
{
    const char *msg = "TypeProto";
    kn_pb c;
    kn_pb_init(&c, wf->data, wf->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num == elem_field) {
            if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)) ||
                (rc = parse_type(r, f.data, f.len, ty, depth + 1)))
                return rc;
        }
    }
    ty->kind = kind;
    if (kind == KN_TYPE_MAP)
        ty->rank = -1;
    return KN_OK;
}

static int parse_type(reader *r, const uint8_t *data, size_t size, kn_type *ty, int depth)
{
    const char *msg = "TypeProto";
    if (depth > MAX_DEPTH)
        return kn_fail(r->err, KN_ERR_MODEL, "types nested more than %d levels deep", MAX_DEPTH);
    memset(ty, 0, sizeof *ty);
    ty->rank = -1;
    kn_pb c;
    kn_pb_init(&c, data, size);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num != 1 && f.num != 4 && f.num != 5 && f.num != 8 && f.num != 9)
            continue;
        if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
            return rc;
        switch (f.num) {
        case 1: rc = parse_tensor_type(r, &f, ty, KN_TYPE_TENSOR); break;
        case 4: rc = parse_wrapped_type(r, &f, ty, KN_TYPE_SEQUENCE, 1, depth); break;
        case 5: rc = parse_wrapped_type(r, &f, ty, KN_TYPE_MAP, 2, depth); break;
        case 8: rc = parse_tensor_type(r, &f, ty, KN_TYPE_SPARSE); break;
        case 9: rc = parse_wrapped_type(r, &f, ty, KN_TYPE_OPTIONAL, 1, depth); break;
        }
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* ---- graphs ---- */

enum { VI_INPUT, VI_OUTPUT, VI_INFO };

static int parse_graph(reader *r, kn_graph *g, const uint8_t *data, size_t size, int depth);

static int parse_value_info(reader *r, kn_graph *g, const kn_pb_field *vf, int kind)
{
    const char *msg = "ValueInfoProto";
    const uint8_t *name = NULL, *type = NULL;
    size_t name_len = 0, type_len = 0;
    bool has_type = false;
    kn_pb c;
    kn_pb_init(&c, vf->data, vf->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num == 1 || f.num == 2) {
            if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
                return rc;
            if (f.num == 1) {
                name = f.data;
                name_len = f.len;
            } else {
                type = f.data;
                type_len = f.len;
                has_type = true;
            }
        }
    }
    const char *what = kind == VI_INPUT ? "graph input" : kind == VI_OUTPUT ? "graph output" : "value_info";
    if (!name_len || !name[0]) { /* a name starting with a NUL byte is empty too */
        if (kind == VI_INFO)
            return KN_OK;
        return kn_fail(r->err, KN_ERR_MODEL, "%s without a name in graph '%s'", what, g->name);
    }
    char *nm = kn_arena_strndup(&r->m->arena, (const char *)name, name_len);
    if (!nm)
        return oom(r);
    kn_type ty;
    memset(&ty, 0, sizeof ty);
    ty.rank = -1;
    if (has_type) {
        int rc = parse_type(r, type, type_len, &ty, 0);
        if (rc && kind == VI_INFO && rc == KN_ERR_UNSUPPORTED)
            has_type = false; /* an intermediate's odd type need not stop the model */
        else if (rc)
            return kn_error_prefix(r->err, "%s '%s': ", what, nm);
    }
    int id;
    if (kind == VI_INFO) {
        id = kn_graph_find(g, nm);
        if (id < 0 || g->values[id].has_type || !has_type)
            return KN_OK;
    } else if ((id = kn_graph_value(g, nm)) < 0) {
        return oom(r);
    }
    if (kind == VI_INPUT && g->values[id].is_input)
        return kn_fail(r->err, KN_ERR_MODEL, "graph input '%s' is listed twice", nm);
    if (kind == VI_INPUT && kn_graph_add_input(g, id))
        return oom(r);
    if (kind == VI_OUTPUT && kn_graph_add_output(g, id))
        return oom(r);
    /* a graph output that is also a graph input keeps the input's type unless the
     * output's says more (a shape where the input had none) */
    kn_value *v = &g->values[id];
    if (has_type && kind == VI_OUTPUT && v->has_type && !(v->type.rank < 0 && ty.rank >= 0))
        has_type = false;
    if (has_type) {
        v->type = ty;
        v->has_type = true;
    }
    return KN_OK;
}

static int add_initializer(reader *r, kn_graph *g, kn_tensor *t, const char *name)
{
    if (!name[0])
        return kn_fail(r->err, KN_ERR_MODEL, "initializer without a name in graph '%s'", g->name);
    int id = kn_graph_value(g, name);
    if (id < 0)
        return oom(r);
    kn_value *v = &g->values[id];
    if (v->init)
        return kn_fail(r->err, KN_ERR_MODEL, "initializer '%s' appears twice", name);
    v->init = t;
    if (!v->has_type) {
        kn_type_from_tensor(&v->type, t);
        v->has_type = true;
    }
    return KN_OK;
}

/* ---- attributes ---- */

typedef struct attr_scan {
    const uint8_t *name;
    size_t name_len;
    int64_t type;
    bool has_f, has_i, has_s, has_t, has_g, has_sparse, has_tp;
    kn_pb_field f, i, s, t, g, sparse, ref, tp;
    bool has_ref;
    int64_t n_floats, n_ints;
    int n_strings, n_tensors, n_graphs;
} attr_scan;

static int scan_attr(reader *r, const kn_pb_field *af, attr_scan *s)
{
    const char *msg = "AttributeProto";
    memset(s, 0, sizeof *s);
    kn_pb c;
    kn_pb_init(&c, af->data, af->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        int want = -1;
        switch (f.num) {
        case 1: want = KN_PB_LEN; s->name = f.data; s->name_len = f.len; break;
        case 2: want = KN_PB_I32; s->has_f = true; s->f = f; break;
        case 3: want = KN_PB_VARINT; s->has_i = true; s->i = f; break;
        case 4: want = KN_PB_LEN; s->has_s = true; s->s = f; break;
        case 5: want = KN_PB_LEN; s->has_t = true; s->t = f; break;
        case 6: want = KN_PB_LEN; s->has_g = true; s->g = f; break;
        case 7: rc = kn_pb_repeated_count(&f, KN_PB_I32, &s->n_floats, msg, r->err); break;
        case 8: rc = kn_pb_repeated_count(&f, KN_PB_VARINT, &s->n_ints, msg, r->err); break;
        case 9: want = KN_PB_LEN; s->n_strings++; break;
        case 10: want = KN_PB_LEN; s->n_tensors++; break;
        case 11: want = KN_PB_LEN; s->n_graphs++; break;
        case 14: want = KN_PB_LEN; s->has_tp = true; s->tp = f; break;
        case 20: want = KN_PB_VARINT; s->type = (int64_t)f.u; break;
        case 21: want = KN_PB_LEN; s->has_ref = true; s->ref = f; break;
        case 22: want = KN_PB_LEN; s->has_sparse = true; s->sparse = f; break;
        default: break;
        }
        if (!rc && want >= 0)
            rc = kn_pb_expect(&f, want, msg, r->err);
        if (rc)
            return rc;
        if (s->n_strings > INT_MAX / 2 || s->n_tensors > INT_MAX / 2 || s->n_graphs > INT_MAX / 2 ||
            s->n_floats > INT_MAX / 2 || s->n_ints > INT_MAX / 2)
            return kn_fail(r->err, KN_ERR_MODEL, "attribute list too long");
    }
    return KN_OK;
}

static kn_attr_type infer_attr_type(const attr_scan *s)
{
    if (s->type > 0 && s->type <= KN_ATTR_TYPE_PROTOS)
        return (kn_attr_type)s->type;
    if (s->has_f) return KN_ATTR_FLOAT;
    if (s->has_i) return KN_ATTR_INT;
    if (s->has_s) return KN_ATTR_STRING;
    if (s->has_t) return KN_ATTR_TENSOR;
    if (s->has_g) return KN_ATTR_GRAPH;
    if (s->has_sparse) return KN_ATTR_SPARSE_TENSOR;
    if (s->n_floats) return KN_ATTR_FLOATS;
    if (s->n_ints) return KN_ATTR_INTS;
    if (s->n_strings) return KN_ATTR_STRINGS;
    if (s->n_tensors) return KN_ATTR_TENSORS;
    if (s->n_graphs) return KN_ATTR_GRAPHS;
    if (s->has_tp) return KN_ATTR_TYPE_PROTO;
    return KN_ATTR_UNDEFINED;
}

static int alloc_lists(reader *r, const attr_scan *s, kn_attr *a)
{
    kn_arena *ar = &r->m->arena;
    switch (a->type) {
    case KN_ATTR_FLOATS: a->n = (int)s->n_floats; a->floats = kn_arena_calloc(ar, (size_t)a->n, sizeof(float)); return a->floats ? KN_OK : oom(r);
    case KN_ATTR_INTS: a->n = (int)s->n_ints; a->ints = kn_arena_calloc(ar, (size_t)a->n, sizeof(int64_t)); return a->ints ? KN_OK : oom(r);
    case KN_ATTR_STRINGS: a->n = s->n_strings; a->strings = kn_arena_calloc(ar, (size_t)a->n, sizeof(char *)); return a->strings ? KN_OK : oom(r);
    case KN_ATTR_TENSORS: a->n = s->n_tensors; a->tensors = kn_arena_calloc(ar, (size_t)a->n, sizeof(kn_tensor *)); return a->tensors ? KN_OK : oom(r);
    case KN_ATTR_GRAPHS: a->n = s->n_graphs; a->graphs = kn_arena_calloc(ar, (size_t)a->n, sizeof(kn_graph *)); return a->graphs ? KN_OK : oom(r);
    default: return KN_OK;
    }
}

static int parse_subgraph(reader *r, kn_graph *parent, const kn_pb_field *f, int depth, kn_graph **out)
{
    if (depth >= MAX_DEPTH)
        return kn_fail(r->err, KN_ERR_MODEL, "subgraphs nested more than %d levels deep", MAX_DEPTH);
    kn_graph *g = kn_graph_new(r->m, parent);
    if (!g)
        return oom(r);
    int rc = parse_graph(r, g, f->data, f->len, depth + 1);
    if (rc)
        return rc;
    *out = g;
    return KN_OK;
}

/* Second pass over an attribute: the list elements. */
static int fill_lists(reader *r, kn_graph *g, const kn_pb_field *af, kn_attr *a, int depth)
{
    const char *msg = "AttributeProto";
    int k = 0;
    kn_pb c;
    kn_pb_init(&c, af->data, af->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        kn_pb_iter it;
        uint64_t v;
        if (f.num == 7 && a->type == KN_ATTR_FLOATS) {
            kn_pb_iter_init(&it, &f, KN_PB_I32);
            while (k < a->n && kn_pb_iter_next(&it, &v)) {
                uint32_t b = (uint32_t)v;
                memcpy(&a->floats[k++], &b, 4);
            }
        } else if (f.num == 8 && a->type == KN_ATTR_INTS) {
            kn_pb_iter_init(&it, &f, KN_PB_VARINT);
            while (k < a->n && kn_pb_iter_next(&it, &v))
                a->ints[k++] = (int64_t)v;
        } else if (f.num == 9 && a->type == KN_ATTR_STRINGS && k < a->n) {
            if (!(a->strings[k++] = dup_field(r, &f)))
                return oom(r);
        } else if (f.num == 10 && a->type == KN_ATTR_TENSORS && k < a->n) {
            if ((rc = decode_tensor(r, &f, "attribute tensor", &a->tensors[k++], NULL)))
                return rc;
        } else if (f.num == 11 && a->type == KN_ATTR_GRAPHS && k < a->n) {
            if ((rc = parse_subgraph(r, g, &f, depth, &a->graphs[k++])))
                return rc;
        }
    }
    return KN_OK;
}

static int fill_single(reader *r, kn_graph *g, const attr_scan *s, kn_attr *a, int depth)
{
    bool ref = a->ref_attr_name != NULL;
    switch (a->type) {
    case KN_ATTR_FLOAT: {
        uint32_t b = (uint32_t)s->f.u;
        memcpy(&a->f, &b, 4);
        return KN_OK;
    }
    case KN_ATTR_INT: a->i = (int64_t)s->i.u; return KN_OK;
    case KN_ATTR_STRING:
        a->s_len = s->has_s ? s->s.len : 0;
        a->s = s->has_s ? dup_field(r, &s->s) : kn_arena_strdup(&r->m->arena, "");
        return a->s ? KN_OK : oom(r);
    case KN_ATTR_TENSOR:
        if (!s->has_t)
            return ref ? KN_OK : kn_fail(r->err, KN_ERR_MODEL, "tensor attribute has no tensor");
        return decode_tensor(r, &s->t, "attribute tensor", &a->t, NULL);
    case KN_ATTR_SPARSE_TENSOR:
        /* densified: kiln computes on dense tensors only */
        if (!s->has_sparse)
            return ref ? KN_OK : kn_fail(r->err, KN_ERR_MODEL, "sparse tensor attribute has no tensor");
        return decode_sparse(r, &s->sparse, "attribute sparse tensor", &a->t, NULL);
    case KN_ATTR_GRAPH:
        if (!s->has_g)
            return ref ? KN_OK : kn_fail(r->err, KN_ERR_MODEL, "graph attribute has no graph");
        return parse_subgraph(r, g, &s->g, depth, &a->g);
    case KN_ATTR_TYPE_PROTO:
        /* kept as raw TypeProto bytes (s / s_len) so that the writer can copy them back */
        if (!s->has_tp)
            return KN_OK;
        a->s_len = s->tp.len;
        a->s = dup_field(r, &s->tp);
        return a->s ? KN_OK : oom(r);
    default: return KN_OK;
    }
}

static int parse_attr(reader *r, kn_graph *g, const kn_pb_field *af, kn_attr *a, int depth)
{
    attr_scan s;
    int rc = scan_attr(r, af, &s);
    if (rc)
        return rc;
    if (!s.name_len || !s.name[0]) /* a name starting with a NUL byte is empty too */
        return kn_fail(r->err, KN_ERR_MODEL, "attribute without a name");
    if (!(a->name = kn_arena_strndup(&r->m->arena, (const char *)s.name, s.name_len)))
        return oom(r);
    if (s.has_ref && !(a->ref_attr_name = dup_field(r, &s.ref)))
        return oom(r);
    a->type = infer_attr_type(&s);
    if ((rc = alloc_lists(r, &s, a)) || (rc = fill_single(r, g, &s, a, depth)) ||
        (rc = fill_lists(r, g, af, a, depth)))
        return r->node_located ? rc : kn_error_prefix(r->err, "attribute '%s': ", a->name);
    return KN_OK;
}

/* ---- nodes ---- */

static int node_value(reader *r, kn_graph *g, const kn_pb_field *f, int *id)
{
    if (f->len == 0) {
        *id = -1;
        return KN_OK;
    }
    char small[256];
    char *nm = small;
    if (f->len >= sizeof small && !(nm = kn_arena_strndup(&r->m->arena, (const char *)f->data, f->len)))
        return oom(r);
    if (nm == small) {
        memcpy(small, f->data, f->len);
        small[f->len] = '\0';
    }
    if ((*id = kn_graph_value(g, nm)) < 0)
        return oom(r);
    return KN_OK;
}

static int parse_node(reader *r, kn_graph *g, const kn_pb_field *nf, int depth)
{
    const char *msg = "NodeProto";
    kn_node nd;
    memset(&nd, 0, sizeof nd);
    nd.name = nd.op_type = nd.domain = "";
    const uint8_t *lname = NULL, *lop = NULL;
    size_t lname_len = 0, lop_len = 0;
    kn_pb c;
    kn_pb_init(&c, nf->data, nf->len);
    while (kn_pb_more(&c)) { /* pass 1: counts and labels */
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num >= 1 && f.num <= 7 && f.num != 6 && (rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
            return rc;
        if (f.num == 1) nd.n_in++;
        else if (f.num == 2) nd.n_out++;
        else if (f.num == 5) nd.n_attr++;
        else if (f.num == 3) { lname = f.data; lname_len = f.len; }
        else if (f.num == 4) { lop = f.data; lop_len = f.len; }
        if (nd.n_in > INT_MAX / 2 || nd.n_out > INT_MAX / 2 || nd.n_attr > INT_MAX / 2)
            return kn_fail(r->err, KN_ERR_MODEL, "node has too many fields");
    }
    kn_arena *ar = &r->m->arena;
    nd.in = kn_arena_calloc(ar, (size_t)nd.n_in, sizeof(int));
    nd.out = kn_arena_calloc(ar, (size_t)nd.n_out, sizeof(int));
    nd.attrs = kn_arena_calloc(ar, (size_t)nd.n_attr, sizeof(kn_attr));
    if (!nd.in || !nd.out || !nd.attrs)
        return oom(r);
    int ki = 0, ko = 0, ka = 0, rc = KN_OK;
    kn_pb_init(&c, nf->data, nf->len);
    while (!rc && kn_pb_more(&c)) { /* pass 2: fill */
        kn_pb_field f;
        if ((rc = kn_pb_next(&c, &f, msg, r->err)))
            break;
        switch (f.num) {
        case 1: rc = node_value(r, g, &f, &nd.in[ki++]); break;
        case 2: rc = node_value(r, g, &f, &nd.out[ko++]); break;
        case 3: rc = get_string(r, &f, msg, &nd.name); break;
        case 4: rc = get_string(r, &f, msg, &nd.op_type); break;
        case 5: rc = parse_attr(r, g, &f, &nd.attrs[ka++], depth); break;
        case 7: rc = get_string(r, &f, msg, &nd.domain); break;
        default: break;
        }
    }
    if (rc && r->node_located)
        return rc;
    if (rc) {
        r->node_located = true;
        char ln[100], lo[60];
        label_of(lname ? lname : (const uint8_t *)"", lname_len, ln, sizeof ln);
        label_of(lop ? lop : (const uint8_t *)"", lop_len, lo, sizeof lo);
        return kn_error_prefix(r->err, "node '%s' (%s): ", ln, lo);
    }
    if (!strcmp(nd.domain, "ai.onnx"))
        nd.domain = "";
    kn_node *n = kn_graph_add_node(g);
    if (!n)
        return oom(r);
    *n = nd;
    return KN_OK;
}

static int parse_graph(reader *r, kn_graph *g, const uint8_t *data, size_t size, int depth)
{
    const char *msg = "GraphProto";
    kn_pb c;
    kn_pb_init(&c, data, size);
    /* the name first, for messages */
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (rc)
            return rc;
        if (f.num == 2 && (rc = get_string(r, &f, msg, &g->name)))
            return rc;
    }
    for (int pass = 0; pass < 2; pass++) {
        kn_pb_init(&c, data, size);
        while (kn_pb_more(&c)) {
            kn_pb_field f;
            int rc = kn_pb_next(&c, &f, msg, r->err);
            if (rc)
                return rc;
            bool want = pass == 0 ? (f.num == 1 || f.num == 5 || f.num == 11 || f.num == 12 || f.num == 15)
                                  : f.num == 13;
            if (!want)
                continue;
            if ((rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
                return rc;
            kn_tensor *t;
            const char *name;
            switch (f.num) {
            case 1: rc = parse_node(r, g, &f, depth); break;
            case 5:
                if (!(rc = decode_tensor(r, &f, "initializer", &t, &name)))
                    rc = add_initializer(r, g, t, name);
                break;
            case 15:
                if (!(rc = decode_sparse(r, &f, "sparse initializer", &t, &name)))
                    rc = add_initializer(r, g, t, name);
                break;
            case 11: rc = parse_value_info(r, g, &f, VI_INPUT); break;
            case 12: rc = parse_value_info(r, g, &f, VI_OUTPUT); break;
            case 13: rc = parse_value_info(r, g, &f, VI_INFO); break;
            }
            if (rc) {
                if (depth > 0 && !r->graph_located) {
                    r->graph_located = true;
                    return kn_error_prefix(r->err, "in subgraph '%s': ", g->name);
                }
                return rc;
            }
        }
    }
    return KN_OK;
}

/* ---- functions ---- */

static int parse_opset(reader *r, const kn_pb_field *of, kn_opset_import *op)
{
    const char *msg = "OperatorSetIdProto";
    op->domain = "";
    op->version = 0;
    kn_pb c;
    kn_pb_init(&c, of->data, of->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (!rc && f.num == 1)
            rc = get_string(r, &f, msg, &op->domain);
        else if (!rc && f.num == 2)
            rc = get_varint(r, &f, msg, &op->version);
        if (rc)
            return rc;
    }
    if (!strcmp(op->domain, "ai.onnx"))
        op->domain = "";
    return KN_OK;
}

/* Fill a string list (field num) counted beforehand. */
static int fill_strings(reader *r, const kn_pb_field *mf, uint32_t num, const char *msg, const char **arr,
                        int n)
{
    int k = 0;
    kn_pb c;
    kn_pb_init(&c, mf->data, mf->len);
    while (kn_pb_more(&c) && k < n) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (!rc && f.num == num)
            rc = get_string(r, &f, msg, &arr[k++]);
        if (rc)
            return rc;
    }
    return KN_OK;
}

static int parse_function(reader *r, const kn_pb_field *ff, kn_function *fn)
{
    const char *msg = "FunctionProto";
    kn_arena *ar = &r->m->arena;
    int rc;
    fn->name = fn->domain = "";
    if ((rc = count_field(r, ff->data, ff->len, 4, msg, &fn->n_inputs)) ||
        (rc = count_field(r, ff->data, ff->len, 5, msg, &fn->n_outputs)) ||
        (rc = count_field(r, ff->data, ff->len, 6, msg, &fn->n_attrs)) ||
        (rc = count_field(r, ff->data, ff->len, 11, msg, &fn->n_attr_defaults)) ||
        (rc = count_field(r, ff->data, ff->len, 9, msg, &fn->n_opsets)))
        return rc;
    fn->inputs = kn_arena_calloc(ar, (size_t)fn->n_inputs, sizeof(char *));
    fn->outputs = kn_arena_calloc(ar, (size_t)fn->n_outputs, sizeof(char *));
    fn->attrs = kn_arena_calloc(ar, (size_t)fn->n_attrs, sizeof(char *));
    fn->attr_defaults = kn_arena_calloc(ar, (size_t)fn->n_attr_defaults, sizeof(kn_attr));
    fn->opsets = kn_arena_calloc(ar, (size_t)fn->n_opsets, sizeof(kn_opset_import));
    fn->body = kn_graph_new(r->m, NULL);
    if (!fn->inputs || !fn->outputs || !fn->attrs || !fn->attr_defaults || !fn->opsets || !fn->body)
        return oom(r);
    if ((rc = fill_strings(r, ff, 4, msg, fn->inputs, fn->n_inputs)) ||
        (rc = fill_strings(r, ff, 5, msg, fn->outputs, fn->n_outputs)) ||
        (rc = fill_strings(r, ff, 6, msg, fn->attrs, fn->n_attrs)))
        return rc;
    int ka = 0, ko = 0;
    kn_pb c;
    kn_pb_init(&c, ff->data, ff->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        if ((rc = kn_pb_next(&c, &f, msg, r->err)))
            return rc;
        bool msgfield = f.num == 1 || f.num == 7 || f.num == 9 || f.num == 10 || f.num == 11;
        if (msgfield && (rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
            return rc;
        switch (f.num) {
        case 1: rc = get_string(r, &f, msg, &fn->name); break;
        case 10: rc = get_string(r, &f, msg, &fn->domain); break;
        case 7: rc = parse_node(r, fn->body, &f, 0); break;
        case 9: rc = parse_opset(r, &f, &fn->opsets[ko++]); break;
        case 11: rc = parse_attr(r, fn->body, &f, &fn->attr_defaults[ka++], 0); break;
        default: break;
        }
        if (rc)
            return rc;
    }
    if (!strcmp(fn->domain, "ai.onnx"))
        fn->domain = "";
    fn->body->name = fn->name;
    return KN_OK;
}

/* ---- the model ---- */

static int parse_metadata(reader *r, const kn_pb_field *mf, kn_metadata *md)
{
    const char *msg = "StringStringEntryProto";
    md->key = md->value = "";
    kn_pb c;
    kn_pb_init(&c, mf->data, mf->len);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, r->err);
        if (!rc && f.num == 1)
            rc = get_string(r, &f, msg, &md->key);
        else if (!rc && f.num == 2)
            rc = get_string(r, &f, msg, &md->value);
        if (rc)
            return rc;
    }
    return KN_OK;
}

static int model_scalar_field(reader *r, const kn_pb_field *f)
{
    const char *msg = "ModelProto";
    kn_model *m = r->m;
    switch (f->num) {
    case 1: return get_varint(r, f, msg, &m->ir_version);
    case 2: return get_string(r, f, msg, &m->producer_name);
    case 3: return get_string(r, f, msg, &m->producer_version);
    case 4: return get_string(r, f, msg, &m->domain);
    case 5: return get_varint(r, f, msg, &m->model_version);
    case 6: return get_string(r, f, msg, &m->doc);
    default: return KN_OK;
    }
}

static int parse_model(reader *r, const uint8_t *data, size_t size)
{
    const char *msg = "ModelProto";
    kn_model *m = r->m;
    kn_arena *ar = &m->arena;
    kn_pb_field top = {0, KN_PB_LEN, 0, data, size};
    int rc;
    if ((rc = count_field(r, data, size, 8, msg, &m->n_opsets)) ||
        (rc = count_field(r, data, size, 14, msg, &m->n_metadata)) ||
        (rc = count_field(r, data, size, 25, msg, &m->n_functions)))
        return rc;
    (void)top;
    m->opsets = kn_arena_calloc(ar, (size_t)m->n_opsets + 1, sizeof(kn_opset_import));
    m->metadata = kn_arena_calloc(ar, (size_t)m->n_metadata, sizeof(kn_metadata));
    m->functions = kn_arena_calloc(ar, (size_t)m->n_functions, sizeof(kn_function));
    if (!m->opsets || !m->metadata || !m->functions)
        return oom(r);
    kn_pb_field graph = {0};
    bool has_graph = false;
    int ko = 0, kmd = 0, kf = 0;
    kn_pb c;
    kn_pb_init(&c, data, size);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        if ((rc = kn_pb_next(&c, &f, msg, r->err)))
            return rc;
        bool msgfield = f.num == 7 || f.num == 8 || f.num == 14 || f.num == 25;
        if (msgfield && (rc = kn_pb_expect(&f, KN_PB_LEN, msg, r->err)))
            return rc;
        switch (f.num) {
        case 7: graph = f; has_graph = true; break;
        case 8: rc = parse_opset(r, &f, &m->opsets[ko++]); break;
        case 14: rc = parse_metadata(r, &f, &m->metadata[kmd++]); break;
        case 25:
            if ((rc = parse_function(r, &f, &m->functions[kf])))
                rc = kn_error_prefix(r->err, "function '%s': ", m->functions[kf].name);
            kf++;
            break;
        default: rc = model_scalar_field(r, &f); break;
        }
        if (rc)
            return rc;
    }
    if (!has_graph)
        return kn_fail(r->err, KN_ERR_MODEL, "model has no graph");
    if (m->n_opsets == 0 && m->ir_version < 3) {
        m->opsets[0].domain = "";
        m->opsets[0].version = 1;
        m->n_opsets = 1;
    }
    if (!(m->graph = kn_graph_new(m, NULL)))
        return oom(r);
    return parse_graph(r, m->graph, graph.data, graph.len, 0);
}

enum { STAGE_PARSE, STAGE_INLINE, STAGE_FINALIZE };

static int load(kn_model *m, const uint8_t *data, size_t size, const char *base_dir, const char *label,
                int stage, kn_error *err)
{
    reader r = {m, err, base_dir, NULL, 0, 0, false, false};
    kn_error_clear(err);
    int rc = KN_OK;
    if (base_dir && !(m->base_dir = kn_arena_strdup(&m->arena, base_dir)))
        rc = kn_fail(err, KN_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = parse_model(&r, data, size);
    free(r.ext);
    if (!rc && stage >= STAGE_INLINE)
        rc = kn_inline_functions(m, err);
    if (!rc && stage >= STAGE_FINALIZE)
        rc = kn_model_finalize(m, err);
    if (!rc)
        return KN_OK;
    return kn_error_prefix(err, "%s: ", label);
}

static int load_copy(const void *data, size_t size, const char *base_dir, int stage, kn_model **out,
                     kn_error *err)
{
    kn_error local;
    if (!err)
        err = &local;
    kn_model *m = kn_model_new();
    if (!m)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    m->owned_buffer = malloc(size ? size : 1);
    if (!m->owned_buffer) {
        kn_model_free(m);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory copying a %zu-byte model", size);
    }
    if (size)
        memcpy(m->owned_buffer, data, size);
    int rc = load(m, m->owned_buffer, size, base_dir, "<memory>", stage, err);
    if (rc) {
        kn_model_free(m);
        return rc;
    }
    *out = m;
    return KN_OK;
}

int kn_onnx_load_buffer(const void *data, size_t size, const char *base_dir, kn_model **out,
                        kn_error *err)
{
    return load_copy(data, size, base_dir, STAGE_FINALIZE, out, err);
}

int kn_onnx_parse_buffer(const void *data, size_t size, const char *base_dir, bool inline_functions,
                         kn_model **out, kn_error *err)
{
    return load_copy(data, size, base_dir, inline_functions ? STAGE_INLINE : STAGE_PARSE, out, err);
}

static int load_file(const char *path, int stage, kn_model **out, kn_error *err)
{
    kn_error local;
    if (!err)
        err = &local;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kn_fail(err, KN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kn_fail(err, KN_ERR_IO, "'%s' is not a regular file", path);
    }
    kn_model *m = kn_model_new();
    if (!m) {
        close(fd);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory");
    }
    size_t size = (size_t)st.st_size;
    const uint8_t *data = (const uint8_t *)"";
    if (size) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            kn_model_free(m);
            return kn_fail(err, KN_ERR_IO, "cannot map '%s': %s", path, strerror(e));
        }
        if (kn_model_add_mapping(m, p, size, err)) {
            munmap(p, size);
            close(fd);
            kn_model_free(m);
            return KN_ERR_NOMEM;
        }
        data = p;
    }
    close(fd);
    char dir[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int rc = load(m, data, size, dir, base, stage, err);
    if (rc) {
        kn_model_free(m);
        return rc;
    }
    *out = m;
    return KN_OK;
}

int kn_onnx_load_file(const char *path, kn_model **out, kn_error *err)
{
    return load_file(path, STAGE_FINALIZE, out, err);
}

int kn_onnx_parse_file(const char *path, kn_model **out, kn_error *err)
{
    return load_file(path, STAGE_INLINE, out, err);
}
