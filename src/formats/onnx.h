/* onnx.h - loading ONNX models (.onnx protobuf files) into kiln's IR.
 *
 * Both entry points parse the ModelProto, inline model-local functions and
 * finalize the model (operator resolution, topological sort).  *out is set only on
 * success; on failure err names the file and what is wrong. */
#ifndef KN_ONNX_H
#define KN_ONNX_H

#include <stddef.h>

#include "ir/ir.h"

/* mmap the file and parse it in place (initializers point into the mapping).
 * External data files are resolved relative to the model file's directory. */
int kn_onnx_load_file(const char *path, kn_model **out, kn_error *err);

/* Parse a copy of data[0..size).  base_dir is the directory for external data
 * files, or NULL to refuse external data. */
int kn_onnx_load_buffer(const void *data, size_t size, const char *base_dir, kn_model **out,
                        kn_error *err);

/* Like kn_onnx_load_file but stops before kn_model_finalize (functions are
 * inlined), so a model whose operators kiln lacks can still be inspected.  The
 * caller may finalize it. */
int kn_onnx_parse_file(const char *path, kn_model **out, kn_error *err);

/* Parse only: builds the IR (functions inlined when inline_functions is true) but
 * does not finalize it, so operators are not resolved and nodes are not sorted.
 * For tools that inspect models kiln cannot run, and for tests.  The model may not
 * be executed. */
int kn_onnx_parse_buffer(const void *data, size_t size, const char *base_dir, bool inline_functions,
                         kn_model **out, kn_error *err);

#endif
