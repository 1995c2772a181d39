/* pbwrite.h - a small protobuf wire-format encoder into a growable buffer.
 *
 * The counterpart of protobuf.h (the reader).  Fields are appended in the order
 * the caller writes them.  A nested message is opened with kn_pbw_begin, which
 * reserves room for its length, and closed with kn_pbw_end, which writes the
 * length as a minimal varint and slides the body back over the unused room; so
 * nothing has to be sized in advance.  Errors (out of memory, a message over the
 * size limit) are sticky: after the first one every call does nothing and
 * kn_pbw_ok() returns false, so callers check once at the end. */
#ifndef KN_PBWRITE_H
#define KN_PBWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kn_pbw {
    uint8_t *p;
    size_t n, cap;
    size_t limit;   /* the buffer may not grow past this many bytes (0: SIZE_MAX / 2) */
    bool failed;
    bool too_big;   /* failed because of the limit, not memory */
} kn_pbw;

/* A position returned by kn_pbw_begin, handed back to kn_pbw_end. */
typedef size_t kn_pbw_mark;

static inline bool kn_pbw_ok(const kn_pbw *w)
{
    return !w->failed;
}

/* Free the buffer and reset w to empty (the limit is kept). */
void kn_pbw_free(kn_pbw *w);

/* Append n raw bytes (no tag). */
void kn_pbw_raw(kn_pbw *w, const void *data, size_t n);
void kn_pbw_varint(kn_pbw *w, uint64_t v);
/* Bytes the varint encoding of v takes (1..10). */
size_t kn_pbw_varint_size(uint64_t v);
void kn_pbw_tag(kn_pbw *w, uint32_t num, int wire);

/* Scalar fields.  int64 values are written as their two's-complement bits (the
 * protobuf int32/int64 encoding: negative values take 10 bytes). */
void kn_pbw_int(kn_pbw *w, uint32_t num, int64_t v);
void kn_pbw_float(kn_pbw *w, uint32_t num, float v);
/* A length-delimited field holding data[0..n). */
void kn_pbw_bytes(kn_pbw *w, uint32_t num, const void *data, size_t n);
/* A string field (NULL is written as ""). */
void kn_pbw_string(kn_pbw *w, uint32_t num, const char *s);

/* Packed repeated fields (one length-delimited field holding all elements). */
void kn_pbw_packed_ints(kn_pbw *w, uint32_t num, const int64_t *v, int n);
void kn_pbw_packed_floats(kn_pbw *w, uint32_t num, const float *v, int n);

/* A length-delimited field of n bytes whose payload the caller fills: returns a
 * pointer to the n bytes (valid until the next write), NULL after an error. */
uint8_t *kn_pbw_reserve_bytes(kn_pbw *w, uint32_t num, size_t n);

/* Open a nested message field; everything written until the matching kn_pbw_end
 * is its body. */
kn_pbw_mark kn_pbw_begin(kn_pbw *w, uint32_t num);
void kn_pbw_end(kn_pbw *w, kn_pbw_mark mark);

#endif
