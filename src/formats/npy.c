/* npy.c - numpy .npy reader and writer (see npy.h).  bfloat16 travels as '<V2'
 * (2-byte void), the descr numpy writes for ml_dtypes' bfloat16.  The header is a Python dict
 * literal; we parse just the three keys numpy writes (descr, fortran_order, shape),
 * strictly, rejecting anything else. */
#include "formats/npy.h"

#include "core/file.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *descr; kn_dtype dt; } descr_table[] = {
    {"f4", KN_F32}, {"f8", KN_F64}, {"f2", KN_F16}, {"i1", KN_I8}, {"u1", KN_U8},
    {"i2", KN_I16}, {"u2", KN_U16}, {"i4", KN_I32}, {"u4", KN_U32}, {"i8", KN_I64},
    {"u8", KN_U64}, {"b1", KN_BOOL},
    /* numpy has no bfloat16; ml_dtypes' bfloat16 arrays are saved as 2-byte voids */
    {"V2", KN_BF16},
};

const char *kn_npy_descr(kn_dtype t)
{
    switch (t) {
    case KN_F32: return "<f4";
    case KN_F64: return "<f8";
    case KN_F16: return "<f2";
    case KN_I8: return "|i1";
    case KN_U8: return "|u1";
    case KN_I16: return "<i2";
    case KN_U16: return "<u2";
    case KN_I32: return "<i4";
    case KN_U32: return "<u4";
    case KN_I64: return "<i8";
    case KN_U64: return "<u8";
    case KN_BOOL: return "|b1";
    case KN_BF16: return "<V2";
    default: return NULL;
    }
}

typedef struct npy_header {
    kn_dtype dtype;
    bool big_endian;
    bool fortran;
    int rank;
    int64_t dims[KN_MAX_RANK];
} npy_header;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p))
        p++;
    return p;
}

static int parse_descr(const char *s, size_t len, npy_header *h, kn_error *err)
{
    if (len < 2 || len > 4)
        return kn_fail(err, KN_ERR_ARG, "npy: unsupported dtype descriptor '%.*s'", (int)len, s);
    char order = s[0];
    const char *code = s + 1;
    size_t clen = len - 1;
    if (order != '<' && order != '>' && order != '|' && order != '=') {
        order = '|';
        code = s;
        clen = len;
    }
    for (size_t i = 0; i < sizeof descr_table / sizeof descr_table[0]; i++) {
        if (strlen(descr_table[i].descr) == clen && !memcmp(descr_table[i].descr, code, clen)) {
            h->dtype = descr_table[i].dt;
            h->big_endian = order == '>';
            return KN_OK;
        }
    }
    return kn_fail(err, KN_ERR_UNSUPPORTED, "npy: dtype '%.*s' is not supported", (int)len, s);
}

static int parse_shape(const char *p, const char *end, npy_header *h, const char **next, kn_error *err)
{
    if (p >= end || *p != '(')
        return kn_fail(err, KN_ERR_ARG, "npy: malformed shape in header");
    p++;
    h->rank = 0;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == ')') {
            *next = p + 1;
            return KN_OK;
        }
        if (p >= end || !isdigit((unsigned char)*p))
            return kn_fail(err, KN_ERR_ARG, "npy: malformed shape in header");
        if (h->rank == KN_MAX_RANK)
            return kn_fail(err, KN_ERR_UNSUPPORTED, "npy: rank exceeds %d", KN_MAX_RANK);
        int64_t v = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            if (v > (INT64_MAX - 9) / 10)
                return kn_fail(err, KN_ERR_ARG, "npy: dimension too large");
            v = v * 10 + (*p++ - '0');
        }
        while (p < end && (*p == 'L'))
            p++;
        h->dims[h->rank++] = v;
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p++;
    }
}

/* Parse "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" */
static int parse_header(const char *p, const char *end, npy_header *h, kn_error *err)
{
    int seen = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return kn_fail(err, KN_ERR_ARG, "npy: header is not a dict");
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            break;
        if (p >= end || (*p != '\'' && *p != '"'))
            return kn_fail(err, KN_ERR_ARG, "npy: malformed header");
        char q = *p++;
        const char *key = p;
        while (p < end && *p != q)
            p++;
        if (p >= end)
            return kn_fail(err, KN_ERR_ARG, "npy: malformed header");
        size_t klen = (size_t)(p - key);
        p = skip_ws(p + 1, end);
        if (p >= end || *p != ':')
            return kn_fail(err, KN_ERR_ARG, "npy: malformed header");
        p = skip_ws(p + 1, end);
        if (klen == 5 && !memcmp(key, "descr", 5)) {
            if (p >= end || (*p != '\'' && *p != '"'))
                return kn_fail(err, KN_ERR_UNSUPPORTED, "npy: structured dtypes are not supported");
            char q2 = *p++;
            const char *d = p;
            while (p < end && *p != q2)
                p++;
            if (p >= end)
                return kn_fail(err, KN_ERR_ARG, "npy: malformed descr");
            int rc = parse_descr(d, (size_t)(p - d), h, err);
            if (rc)
                return rc;
            p++;
            seen |= 1;
        } else if (klen == 13 && !memcmp(key, "fortran_order", 13)) {
            if (end - p >= 4 && !memcmp(p, "True", 4)) {
                h->fortran = true;
                p += 4;
            } else if (end - p >= 5 && !memcmp(p, "False", 5)) {
                p += 5;
            } else {
                return kn_fail(err, KN_ERR_ARG, "npy: malformed fortran_order");
            }
            seen |= 2;
        } else if (klen == 5 && !memcmp(key, "shape", 5)) {
            int rc = parse_shape(p, end, h, &p, err);
            if (rc)
                return rc;
            seen |= 4;
        } else {
            return kn_fail(err, KN_ERR_ARG, "npy: unexpected header key '%.*s'", (int)klen, key);
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p++;
    }
    if (seen != 7)
        return kn_fail(err, KN_ERR_ARG, "npy: header lacks descr, fortran_order or shape");
    if (h->fortran)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "npy: Fortran-order arrays are not supported; save with C order");
    return KN_OK;
}

static void byteswap(void *data, size_t n, size_t es)
{
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

int kn_npy_read_buffer(const void *data, size_t size, kn_tensor *out, kn_error *err)
{
    const unsigned char *b = data;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6))
        return kn_fail(err, KN_ERR_ARG, "not a .npy file (bad magic)");
    int major = b[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12)
            return kn_fail(err, KN_ERR_ARG, "npy: truncated header");
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hoff = 12;
    } else {
        return kn_fail(err, KN_ERR_UNSUPPORTED, "npy: format version %d is not supported", major);
    }
    if (hlen > size - hoff)
        return kn_fail(err, KN_ERR_ARG, "npy: truncated header");
    npy_header h = {0};
    int rc = parse_header((const char *)b + hoff, (const char *)b + hoff + hlen, &h, err);
    if (rc)
        return rc;
    /* size the tensor and check the file holds that many bytes before allocating,
     * so a header claiming gigabytes costs nothing */
    kn_tensor t = {0};
    rc = kn_tensor_set_shape(&t, h.dtype, h.rank, h.dims, err);
    if (rc)
        return rc;
    size_t off = hoff + hlen;
    if (size - off < t.nbytes)
        return kn_fail(err, KN_ERR_ARG, "npy: file has %zu data bytes, shape needs %zu", size - off, t.nbytes);
    rc = kn_tensor_alloc(&t, h.dtype, h.rank, h.dims, err);
    if (rc)
        return rc;
    memcpy(t.data, b + off, t.nbytes);
    if (h.big_endian)
        byteswap(t.data, (size_t)t.numel, kn_dtype_size(h.dtype));
    if (h.dtype == KN_BOOL)
        for (int64_t i = 0; i < t.numel; i++)
            ((uint8_t *)t.data)[i] = ((uint8_t *)t.data)[i] != 0;
    *out = t;
    return KN_OK;
}

int kn_npy_read_file(const char *path, kn_tensor *out, kn_error *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = kn_read_file(path, &data, &size, err);
    if (rc)
        return rc;
    rc = kn_npy_read_buffer(data, size, out, err);
    free(data);
    if (rc)
        kn_error_prefix(err, "%s: ", path);
    return rc;
}

int kn_npy_write_file(const char *path, const kn_tensor *t, kn_error *err)
{
    const char *descr = kn_npy_descr(t->dtype);
    if (!descr)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "npy has no dtype for %s", kn_dtype_name(t->dtype));
    char dict[1024], dims[600];
    size_t off = 0;
    dims[0] = '\0';
    for (int i = 0; i < t->rank; i++)
        off += (size_t)snprintf(dims + off, sizeof dims - off, "%lld,%s", (long long)t->dims[i],
                                i + 1 < t->rank ? " " : "");
    if (t->rank > 1)
        dims[off - 1] = '\0'; /* numpy writes (2, 3) but (5,) */
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, dims);
    size_t pre = 10, total = pre + (size_t)dl + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)dl + pad + 1;
    unsigned char head[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                              (unsigned char)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f)
        return kn_fail(err, KN_ERR_IO, "%s: %s", path, strerror(errno));
    bool ok = fwrite(head, 1, pre, f) == pre && fwrite(dict, 1, (size_t)dl, f) == (size_t)dl;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    if (ok && t->nbytes)
        ok = fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        return kn_fail(err, KN_ERR_IO, "%s: write failed", path);
    return KN_OK;
}
