/* valueproto.h - decoding serialized ONNX SequenceProto / OptionalProto messages
 * (the conformance test data for sequence- and optional-typed inputs/outputs) into
 * kiln's list records (kn_tensor with kind SEQUENCE / OPTIONAL). */
#ifndef KN_VALUEPROTO_H
#define KN_VALUEPROTO_H

#include "core/tensor.h"

/* Decode a value of the given kind: TENSOR reads a TensorProto, SEQUENCE a
 * SequenceProto, OPTIONAL an OptionalProto.  *out is owned by the caller. */
int kn_valueproto_read(const void *data, size_t size, kn_value_kind kind, kn_tensor *out, kn_error *err);
int kn_valueproto_read_file(const char *path, kn_value_kind kind, kn_tensor *out, kn_error *err);

#endif
