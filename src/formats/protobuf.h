/* protobuf.h - a bounds-checked cursor over protobuf wire format.
 *
 * No generated code and no protobuf library: callers walk a message field by
 * field with kn_pb_next(), which reads the tag and the field's value (varint,
 * fixed32, fixed64 or a length-delimited byte range checked against the bytes
 * left).  Unknown fields are skipped simply by not looking at them.  Groups
 * (wire types 3/4) are rejected.  Nothing here ever reads past the end. */
#ifndef KN_PROTOBUF_H
#define KN_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/error.h"

enum {
    KN_PB_VARINT = 0,
    KN_PB_I64 = 1,
    KN_PB_LEN = 2,
    KN_PB_I32 = 5,
};

typedef struct kn_pb {
    const uint8_t *p, *end;
} kn_pb;

typedef struct kn_pb_field {
    uint32_t num;          /* field number (>= 1) */
    int wire;              /* KN_PB_* */
    uint64_t u;            /* value of VARINT / I32 / I64 fields (raw bits) */
    const uint8_t *data;   /* LEN fields: the payload ... */
    size_t len;            /* ... and its length */
} kn_pb_field;

static inline void kn_pb_init(kn_pb *c, const void *data, size_t size)
{
    c->p = (const uint8_t *)data;
    c->end = size ? c->p + size : c->p; /* no arithmetic on NULL */
}

static inline bool kn_pb_more(const kn_pb *c)
{
    return c->p < c->end;
}

/* Read one varint (at most 10 bytes, the 10th holding only bit 63).
 * Returns false when truncated or overlong; the cursor is then unspecified. */
bool kn_pb_varint(kn_pb *c, uint64_t *v);

/* Read the next field.  On failure returns KN_ERR_MODEL with a message such as
 * "truncated varint in NodeProto field 4" (msg names the message type). */
int kn_pb_next(kn_pb *c, kn_pb_field *f, const char *msg, kn_error *err);

/* Fail unless f has wire type `wire`: "NodeProto field 4 has wire type 0, expected 2". */
int kn_pb_expect(const kn_pb_field *f, int wire, const char *msg, kn_error *err);

/* Repeated scalar fields, packed (one LEN field) or not (one field per value).
 * elem_wire is the element wire type (VARINT, I32 or I64).  count adds the number
 * of elements held by f to *n (validating a packed payload); get reads element k
 * of a field already counted. */
int kn_pb_repeated_count(const kn_pb_field *f, int elem_wire, int64_t *n, const char *msg,
                         kn_error *err);

/* Iterator over the values of one repeated-scalar field occurrence. */
typedef struct kn_pb_iter {
    kn_pb c;
    const kn_pb_field *f;
    int elem_wire;
    bool single_done;
} kn_pb_iter;

void kn_pb_iter_init(kn_pb_iter *it, const kn_pb_field *f, int elem_wire);
/* Next raw value (bits of a varint, fixed32 or fixed64); false at the end or on a
 * malformed element (callers count first, so that cannot happen after a count). */
bool kn_pb_iter_next(kn_pb_iter *it, uint64_t *v);

/* Little-endian loads from possibly unaligned memory. */
static inline uint32_t kn_pb_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kn_pb_le64(const uint8_t *p)
{
    return (uint64_t)kn_pb_le32(p) | (uint64_t)kn_pb_le32(p + 4) << 32;
}

#endif
