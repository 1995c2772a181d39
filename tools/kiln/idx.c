/* idx.c - IDX reader (see idx.h).  zlib's gz* functions read gzipped and plain
 * files alike.  Layout: 2 zero bytes, a type byte, a rank byte, rank big-endian
 * uint32 dims, then big-endian elements. */
#include "idx.h"

#include <zlib.h>

#include <string.h>

static bool read_exact(gzFile f, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
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

static int read_body(gzFile f, const char *path, kn_tensor *out, kn_error *err)
{
    unsigned char head[4];
    if (!read_exact(f, head, 4) || head[0] || head[1])
        return kn_fail(err, KN_ERR_ARG, "%s: not an IDX file (bad magic)", path);
    kn_dtype dt = idx_dtype(head[2]);
    int rank = head[3];
    if (dt == KN_UNDEFINED)
        return kn_fail(err, KN_ERR_ARG, "%s: unknown IDX element type 0x%02x", path, head[2]);
    if (rank < 1 || rank > KN_MAX_RANK)
        return kn_fail(err, KN_ERR_ARG, "%s: IDX rank %d is not supported", path, rank);
    int64_t dims[KN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        unsigned char d[4];
        if (!read_exact(f, d, 4))
            return kn_fail(err, KN_ERR_ARG, "%s: truncated IDX header", path);
        dims[i] = (int64_t)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
    }
    kn_tensor t = {0};
    if (kn_tensor_alloc(&t, dt, rank, dims, err))
        return kn_error_prefix(err, "%s: ", path);
    if (t.nbytes && !read_exact(f, t.data, t.nbytes)) {
        kn_tensor_release(&t);
        return kn_fail(err, KN_ERR_ARG, "%s: IDX data is shorter than its dims say", path);
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
    int rc = read_body(f, path, out, err);
    gzclose(f);
    return rc;
}
