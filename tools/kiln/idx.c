/* idx.c - IDX reader (see idx.h).  Layout: 2 zero bytes, a type byte, a rank byte,
 * rank big-endian uint32 dims, then big-endian elements.  One parser reads from a
 * byte source: a file through zlib's gz* functions (gzipped and plain files alike)
 * or a memory buffer (what the libFuzzer target fuzz_idx drives). */
#include "idx.h"

#include <zlib.h>

#include <string.h>

/* A byte source: read exactly n bytes into buf or fail; `left` is how many bytes
 * remain when known (memory), else -1. */
typedef struct idx_source {
    bool (*read)(struct idx_source *s, void *buf, size_t n);
    int64_t left;
    gzFile gz;
    const unsigned char *mem;
} idx_source;

static bool read_gz(idx_source *s, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(s->gz, p, chunk);
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

static bool read_mem(idx_source *s, void *buf, size_t n)
{
    if ((uint64_t)s->left < n)
        return false;
    memcpy(buf, s->mem, n);
    s->mem += n;
    s->left -= (int64_t)n;
    return true;
}

static kn_dtype idx_dtype(unsigned code)
{
    switch (code) {
    case 0x08: return KN_U8;
    case 0x09: return KN_I8;
    case 0x0B: return KN_I16;
    case 0x0C: return KN_I32;
    case 0x0D: return KN_F32;
    case 0x0E: return KN_F64;
    default: return KN_UNDEFINED;
    }
}

static void to_host_order(kn_tensor *t)
{
    size_t es = kn_dtype_size(t->dtype);
    unsigned char *p = t->data;
    for (int64_t i = 0; es > 1 && i < t->numel; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            unsigned char c = p[a];
            p[a] = p[b];
            p[b] = c;
        }
}

/* The header: element type and dims. */
static int read_header(idx_source *s, const char *name, kn_dtype *dt, int *rank, int64_t *dims,
                       kn_error *err)
{
    unsigned char head[4];
    if (!s->read(s, head, 4) || head[0] || head[1])
        return kn_fail(err, KN_ERR_ARG, "%s: not an IDX file (bad magic)", name);
    *dt = idx_dtype(head[2]);
    *rank = head[3];
    if (*dt == KN_UNDEFINED)
        return kn_fail(err, KN_ERR_ARG, "%s: unknown IDX element type 0x%02x", name, head[2]);
    if (*rank < 1 || *rank > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_ARG, "%s: IDX rank %d is not supported", name, *rank);
    for (int i = 0; i < *rank; i++) {
        unsigned char d[4];
        if (!s->read(s, d, 4))
            return kn_fail(err, KN_ERR_ARG, "%s: truncated IDX header", name);
        dims[i] = (int64_t)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
    }
    return KN_OK;
}

static int read_idx(idx_source *s, const char *name, kn_tensor *out, kn_error *err)
{
    kn_dtype dt = KN_UNDEFINED;
    int rank = 0;
    int64_t dims[KN_MAX_RANK];
    int rc = read_header(s, name, &dt, &rank, dims, err);
    if (rc)
        return rc;
    kn_tensor t = {0};
    if (kn_tensor_set_shape(&t, dt, rank, dims, err))
        return kn_error_prefix(err, "%s: ", name);
    if (s->left >= 0 && (uint64_t)s->left < t.nbytes) /* refuse before allocating */
        return kn_fail(err, KN_ERR_ARG, "%s: IDX data is shorter than its dims say", name);
    if (kn_tensor_alloc(&t, dt, rank, dims, err))
        return kn_error_prefix(err, "%s: ", name);
    if (t.nbytes && !s->read(s, t.data, t.nbytes)) {
        kn_tensor_release(&t);
        return kn_fail(err, KN_ERR_ARG, "%s: IDX data is shorter than its dims say", name);
    }
    to_host_order(&t);
    *out = t;
    return KN_OK;
}

int idx_read_file(const char *path, kn_tensor *out, kn_error *err)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return kn_fail(err, KN_ERR_IO, "%s: cannot open", path);
    idx_source s = {.read = read_gz, .left = -1, .gz = f};
    int rc = read_idx(&s, path, out, err);
    gzclose(f);
    return rc;
}

int idx_read_buffer(const void *data, size_t size, const char *name, kn_tensor *out, kn_error *err)
{
    idx_source s = {.read = read_mem, .left = (int64_t)size, .mem = data};
    return read_idx(&s, name, out, err);
}
