/* valueproto.c - SequenceProto / OptionalProto decoding (see valueproto.h).
 * Both messages share their field numbers: name 1, elem_type 2, then tensor 3,
 * sparse tensor 4, sequence 5, map 6, optional 7 (repeated in SequenceProto). */
#include "formats/valueproto.h"

#include "core/file.h"
#include "formats/protobuf.h"
#include "formats/tensorproto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16

static int decode_value(const uint8_t *data, size_t size, kn_value_kind kind, int depth,
                        kn_tensor *out, kn_error *err);

static int decode_item(const kn_pb_field *f, kn_value_kind kind, int depth, kn_tensor *list, kn_error *err)
{
    kn_tensor item = {0};
    int rc = decode_value(f->data, f->len, kind, depth + 1, &item, err);
    if (!rc) {
        if (list->n_items == 0 && item.kind == KN_VALUE_TENSOR)
            list->dtype = item.dtype;
        rc = kn_value_append(list, &item, err);
    }
    if (rc)
        kn_tensor_release(&item);
    return rc;
}

static int decode_list(const uint8_t *data, size_t size, kn_value_kind kind, int depth, kn_tensor *out,
                       kn_error *err)
{
    const char *msg = kind == KN_VALUE_SEQUENCE ? "SequenceProto" : "OptionalProto";
    kn_value_init_list(out, kind, KN_F32);
    kn_pb c;
    kn_pb_init(&c, data, size);
    while (kn_pb_more(&c)) {
        kn_pb_field f;
        int rc = kn_pb_next(&c, &f, msg, err);
        if (!rc && f.num >= 3 && f.num <= 7)
            rc = kn_pb_expect(&f, KN_PB_LEN, msg, err);
        if (!rc && (f.num == 4 || f.num == 6))
            rc = kn_fail(err, KN_ERR_UNSUPPORTED, "%s holds sparse tensors or maps", msg);
        if (!rc && kind == KN_VALUE_OPTIONAL && f.num >= 3 && out->n_items)
            rc = kn_fail(err, KN_ERR_MODEL, "OptionalProto holds more than one value");
        if (!rc && f.num == 3)
            rc = decode_item(&f, KN_VALUE_TENSOR, depth, out, err);
        else if (!rc && f.num == 5)
            rc = decode_item(&f, KN_VALUE_SEQUENCE, depth, out, err);
        else if (!rc && f.num == 7)
            rc = decode_item(&f, KN_VALUE_OPTIONAL, depth, out, err);
        if (rc) {
            kn_tensor_release(out);
            return rc;
        }
    }
    return KN_OK;
}

static int decode_value(const uint8_t *data, size_t size, kn_value_kind kind, int depth,
                        kn_tensor *out, kn_error *err)
{
    if (depth > MAX_DEPTH)
        return kn_fail(err, KN_ERR_MODEL, "sequence/optional nesting deeper than %d", MAX_DEPTH);
    if (kind == KN_VALUE_TENSOR) {
        kn_tp_opts o = {.arena = NULL, .zero_copy = false, .external = NULL, .what = "tensor"};
        memset(out, 0, sizeof *out);
        return kn_tp_decode(data, size, &o, out, NULL, NULL, err);
    }
    return decode_list(data, size, kind, depth, out, err);
}

int kn_valueproto_read(const void *data, size_t size, kn_value_kind kind, kn_tensor *out, kn_error *err)
{
    return decode_value(data, size, kind, 0, out, err);
}

int kn_valueproto_read_file(const char *path, kn_value_kind kind, kn_tensor *out, kn_error *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = kn_read_file(path, &buf, &n, err);
    if (rc)
        return rc;
    rc = kn_valueproto_read(buf, n, kind, out, err);
    free(buf);
    if (rc)
        kn_error_prefix(err, "%s: ", path);
    return rc;
}
