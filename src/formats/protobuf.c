/* protobuf.c - the wire-format cursor (see protobuf.h). */
#include "formats/protobuf.h"

bool kn_pb_varint(kn_pb *c, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 10; i++) {
        if (c->p >= c->end)
            return false;
        uint8_t b = *c->p++;
        if (i == 9 && b > 1)
            return false; /* would exceed 64 bits, or an 11th byte follows */
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static const char *wire_name(int w)
{
    switch (w) {
    case KN_PB_VARINT: return "varint";
    case KN_PB_I64: return "fixed64";
    case KN_PB_LEN: return "length-delimited";
    case KN_PB_I32: return "fixed32";
    default: return "invalid";
    }
}

int kn_pb_next(kn_pb *c, kn_pb_field *f, const char *msg, kn_error *err)
{
    uint64_t tag;
    if (!kn_pb_varint(c, &tag))
        return kn_fail(err, KN_ERR_MODEL, "truncated or overlong tag in %s", msg);
    uint64_t num = tag >> 3;
    f->wire = (int)(tag & 7);
    if (num == 0 || num > 0x1fffffff)
        return kn_fail(err, KN_ERR_MODEL, "invalid field number %llu in %s", (unsigned long long)num,
                       msg);
    f->num = (uint32_t)num;
    f->u = 0;
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case KN_PB_VARINT:
        if (!kn_pb_varint(c, &f->u))
            return kn_fail(err, KN_ERR_MODEL, "truncated varint in %s field %u", msg, f->num);
        return KN_OK;
    case KN_PB_I64:
        if (c->end - c->p < 8)
            return kn_fail(err, KN_ERR_MODEL, "truncated fixed64 in %s field %u", msg, f->num);
        f->u = kn_pb_le64(c->p);
        c->p += 8;
        return KN_OK;
    case KN_PB_I32:
        if (c->end - c->p < 4)
            return kn_fail(err, KN_ERR_MODEL, "truncated fixed32 in %s field %u", msg, f->num);
        f->u = kn_pb_le32(c->p);
        c->p += 4;
        return KN_OK;
    case KN_PB_LEN: {
        uint64_t len;
        if (!kn_pb_varint(c, &len))
            return kn_fail(err, KN_ERR_MODEL, "truncated length in %s field %u", msg, f->num);
        if (len > (uint64_t)(c->end - c->p))
            return kn_fail(err, KN_ERR_MODEL,
                           "%s field %u claims %llu bytes but only %zu remain", msg, f->num,
                           (unsigned long long)len, (size_t)(c->end - c->p));
        f->data = c->p;
        f->len = (size_t)len;
        c->p += len;
        return KN_OK;
    }
    case 3:
    case 4:
        return kn_fail(err, KN_ERR_MODEL, "%s field %u uses deprecated group encoding", msg, f->num);
    default:
        return kn_fail(err, KN_ERR_MODEL, "invalid wire type %d in %s field %u", f->wire, msg,
                       f->num);
    }
}

int kn_pb_expect(const kn_pb_field *f, int wire, const char *msg, kn_error *err)
{
    if (f->wire == wire)
        return KN_OK;
    return kn_fail(err, KN_ERR_MODEL, "%s field %u has wire type %s, expected %s", msg, f->num,
                   wire_name(f->wire), wire_name(wire));
}

int kn_pb_repeated_count(const kn_pb_field *f, int elem_wire, int64_t *n, const char *msg,
                         kn_error *err)
{
    if (f->wire == elem_wire) {
        (*n)++;
        return KN_OK;
    }
    if (f->wire != KN_PB_LEN)
        return kn_pb_expect(f, elem_wire, msg, err);
    if (elem_wire == KN_PB_I32 || elem_wire == KN_PB_I64) {
        size_t es = elem_wire == KN_PB_I32 ? 4 : 8;
        if (f->len % es)
            return kn_fail(err, KN_ERR_MODEL, "packed %s field %u has %zu bytes, not a multiple of %zu",
                           msg, f->num, f->len, es);
        *n += (int64_t)(f->len / es);
        return KN_OK;
    }
    /* packed varints: validate each one */
    kn_pb c;
    kn_pb_init(&c, f->data, f->len);
    int64_t k = 0;
    while (kn_pb_more(&c)) {
        uint64_t v;
        if (!kn_pb_varint(&c, &v))
            return kn_fail(err, KN_ERR_MODEL, "truncated varint in packed %s field %u", msg, f->num);
        k++;
    }
    *n += k;
    return KN_OK;
}

void kn_pb_iter_init(kn_pb_iter *it, const kn_pb_field *f, int elem_wire)
{
    it->f = f;
    it->elem_wire = elem_wire;
    it->single_done = false;
    if (f->wire == KN_PB_LEN)
        kn_pb_init(&it->c, f->data, f->len);
    else
        kn_pb_init(&it->c, NULL, 0);
}

bool kn_pb_iter_next(kn_pb_iter *it, uint64_t *v)
{
    if (it->f->wire != KN_PB_LEN) {
        if (it->single_done || it->f->wire != it->elem_wire)
            return false;
        it->single_done = true;
        *v = it->f->u;
        return true;
    }
    kn_pb *c = &it->c;
    switch (it->elem_wire) {
    case KN_PB_VARINT:
        return kn_pb_more(c) && kn_pb_varint(c, v);
    case KN_PB_I32:
        if (c->end - c->p < 4)
            return false;
        *v = kn_pb_le32(c->p);
        c->p += 4;
        return true;
    case KN_PB_I64:
        if (c->end - c->p < 8)
            return false;
        *v = kn_pb_le64(c->p);
        c->p += 8;
        return true;
    default:
        return false;
    }
}
