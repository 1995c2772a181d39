/* pbwrite.c - protobuf wire-format encoder into a growable buffer (see pbwrite.h). */
#include "formats/pbwrite.h"
#include "formats/protobuf.h"

#include <stdlib.h>
#include <string.h>

#define MAX_VARINT 10

static size_t limit_of(const kn_pbw *w)
{
    return w->limit ? w->limit : SIZE_MAX / 2;
}

/* Make room for n more bytes; false (and w->failed) when impossible. */
static bool grow(kn_pbw *w, size_t n)
{
    if (w->failed)
        return false;
    size_t lim = limit_of(w);
    if (n > lim || w->n > lim - n) {
        w->failed = w->too_big = true;
        return false;
    }
    size_t need = w->n + n;
    if (need <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    uint8_t *p = realloc(w->p, cap);
    if (!p) {
        w->failed = true;
        return false;
    }
    w->p = p;
    w->cap = cap;
    return true;
}

void kn_pbw_free(kn_pbw *w)
{
    size_t lim = w->limit;
    free(w->p);
    memset(w, 0, sizeof *w);
    w->limit = lim;
}

void kn_pbw_raw(kn_pbw *w, const void *data, size_t n)
{
    if (!n || !grow(w, n))
        return;
    memcpy(w->p + w->n, data, n);
    w->n += n;
}

static int encode_varint(uint8_t *out, uint64_t v)
{
    int k = 0;
    do {
        out[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            out[k] |= 0x80;
        k++;
    } while (v);
    return k;
}

size_t kn_pbw_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

void kn_pbw_varint(kn_pbw *w, uint64_t v)
{
    uint8_t tmp[MAX_VARINT];
    kn_pbw_raw(w, tmp, (size_t)encode_varint(tmp, v));
}

void kn_pbw_tag(kn_pbw *w, uint32_t num, int wire)
{
    kn_pbw_varint(w, (uint64_t)num << 3 | (uint64_t)wire);
}

void kn_pbw_int(kn_pbw *w, uint32_t num, int64_t v)
{
    kn_pbw_tag(w, num, KN_PB_VARINT);
    kn_pbw_varint(w, (uint64_t)v);
}

static void put_le32(uint8_t *p, uint32_t u)
{
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

void kn_pbw_float(kn_pbw *w, uint32_t num, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t le[4];
    put_le32(le, u);
    kn_pbw_tag(w, num, KN_PB_I32);
    kn_pbw_raw(w, le, 4);
}

uint8_t *kn_pbw_reserve_bytes(kn_pbw *w, uint32_t num, size_t n)
{
    kn_pbw_tag(w, num, KN_PB_LEN);
    kn_pbw_varint(w, n);
    if (!grow(w, n ? n : 1))
        return NULL;
    uint8_t *p = w->p + w->n;
    w->n += n;
    return p;
}

void kn_pbw_bytes(kn_pbw *w, uint32_t num, const void *data, size_t n)
{
    uint8_t *p = kn_pbw_reserve_bytes(w, num, n);
    if (p && n)
        memcpy(p, data, n);
}

void kn_pbw_string(kn_pbw *w, uint32_t num, const char *s)
{
    if (!s)
        s = "";
    kn_pbw_bytes(w, num, s, strlen(s));
}

void kn_pbw_packed_ints(kn_pbw *w, uint32_t num, const int64_t *v, int n)
{
    kn_pbw_mark m = kn_pbw_begin(w, num);
    for (int i = 0; i < n; i++)
        kn_pbw_varint(w, (uint64_t)v[i]);
    kn_pbw_end(w, m);
}

void kn_pbw_packed_floats(kn_pbw *w, uint32_t num, const float *v, int n)
{
    uint8_t *p = kn_pbw_reserve_bytes(w, num, (size_t)n * 4);
    for (int i = 0; p && i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put_le32(p + (size_t)i * 4, u);
    }
}

kn_pbw_mark kn_pbw_begin(kn_pbw *w, uint32_t num)
{
    kn_pbw_tag(w, num, KN_PB_LEN);
    kn_pbw_mark mark = w->n;
    if (grow(w, MAX_VARINT))
        w->n += MAX_VARINT; /* room for the length, filled in by kn_pbw_end */
    return mark;
}

void kn_pbw_end(kn_pbw *w, kn_pbw_mark mark)
{
    if (w->failed)
        return;
    size_t body = mark + MAX_VARINT;
    size_t len = w->n - body;
    uint8_t tmp[MAX_VARINT];
    int k = encode_varint(tmp, len);
    memcpy(w->p + mark, tmp, (size_t)k);
    if (k < MAX_VARINT && len)
        memmove(w->p + mark + k, w->p + body, len);
    w->n -= (size_t)(MAX_VARINT - k);
}
