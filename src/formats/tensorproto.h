/* tensorproto.h - decoding serialized ONNX TensorProto / SparseTensorProto messages.
 *
 * kn_tensorproto_read* decode a standalone TensorProto (the conformance test data
 * files input_K.pb / output_K.pb) into an owned tensor.  kn_tp_decode is the shared
 * decoder that the model reader (onnx_reader.c) uses too, with arena storage,
 * zero-copy raw_data and external data. */
#ifndef KN_TENSORPROTO_H
#define KN_TENSORPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"

/* Decode one serialized TensorProto into *out (overwritten; owns its data).
 * name (may be NULL) receives the tensor's name, truncated to name_len - 1. */
int kn_tensorproto_read(const void *data, size_t size, kn_tensor *out, char *name, size_t name_len,
                        kn_error *err);
int kn_tensorproto_read_file(const char *path, kn_tensor *out, char *name, size_t name_len,
                             kn_error *err);

/* Resolves TensorProto external data: returns in *data a pointer to `expected`
 * bytes that stay valid as long as the tensor (offset/length as in the file,
 * has_length false when the entry was absent). */
typedef int (*kn_tp_external_fn)(void *user, const char *location, uint64_t offset, bool has_length,
                                 uint64_t length, size_t expected, const void **data, kn_error *err);

typedef struct kn_tp_opts {
    kn_arena *arena;            /* copies come from this arena; NULL: owned malloc storage */
    bool zero_copy;             /* raw_data may be referenced in place when aligned */
    bool release_source;        /* the bytes are a read-only file mapping: once raw_data
                                   is copied, give its whole pages back (they would
                                   otherwise stay resident next to the copy) */
    kn_tp_external_fn external; /* NULL: external data is an error */
    void *user;
    const char *what;           /* "initializer", "tensor", ... for messages */
} kn_tp_opts;

/* Decode a TensorProto.  *out is overwritten only on success.  *name / *name_len
 * (either may be NULL) point at the name inside the buffer (not NUL-terminated). */
int kn_tp_decode(const void *data, size_t size, const kn_tp_opts *o, kn_tensor *out,
                 const char **name, size_t *name_len, kn_error *err);

/* Decode a SparseTensorProto (COO) into a dense tensor, storage as for kn_tp_decode. */
int kn_tp_decode_sparse(const void *data, size_t size, const kn_tp_opts *o, kn_tensor *out,
                        const char **name, size_t *name_len, kn_error *err);

#endif
