/* onnx.h - loading ONNX models (.onnx protobuf files) into kiln's IR, and writing
 * kiln's IR back out as an ONNX ModelProto.
 *
 * Both load entry points parse the ModelProto, inline model-local functions and
 * finalize the model (operator resolution, topological sort).  *out is set only on
 * success; on failure err names the file and what is wrong. */
#ifndef KN_ONNX_H
#define KN_ONNX_H

#include <stddef.h>
#include <stdint.h>

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

/* ---- writing (onnx_writer.c) ---- */

/* When initializers go to an external data file (as ONNX's
 * convert_model_to_external_data does: location / offset / length entries). */
typedef enum kn_onnx_external {
    KN_ONNX_EXTERNAL_AUTO = 0,   /* only when the initializers total more than auto_bytes */
    KN_ONNX_EXTERNAL_ALWAYS = 1, /* every initializer of at least external_min_bytes */
    KN_ONNX_EXTERNAL_NEVER = 2,  /* all inline: fails past protobuf's 2 GiB limit */
} kn_onnx_external;

#define KN_ONNX_EXTERNAL_MIN_BYTES ((size_t)1024)
#define KN_ONNX_AUTO_EXTERNAL_BYTES ((uint64_t)3 << 29) /* 1.5 GiB */
/* A serialized protobuf message may not exceed 2 GiB - 1. */
#define KN_ONNX_MAX_PROTO_BYTES ((size_t)0x7fffffff)

typedef struct kn_onnx_write_options {
    kn_onnx_external external;
    size_t external_min_bytes;   /* smaller initializers stay inline (0: every one goes out) */
    uint64_t auto_bytes;         /* the AUTO threshold on total initializer bytes */
    const char *external_name;   /* data file name, in the model's directory; NULL:
                                    "<model file name>.data" */
    bool inferred_types;         /* also write the types kiln inferred (not declared in the
                                    file) as value_info */
} kn_onnx_write_options;

/* The defaults: AUTO, KN_ONNX_EXTERNAL_MIN_BYTES, KN_ONNX_AUTO_EXTERNAL_BYTES, default
 * data file name, declared types only. */
void kn_onnx_write_options_init(kn_onnx_write_options *o);

/* Serialize m (its main graph, subgraphs, functions, opset imports, metadata) as
 * an ONNX ModelProto at path.  The file (and the external data file, if any) is
 * written to a temporary name in the same directory and renamed into place, so a
 * failed write leaves any old file untouched.  o may be NULL (defaults). */
int kn_onnx_write_file(const kn_model *m, const char *path, const kn_onnx_write_options *o,
                       kn_error *err);

/* Serialize m into a malloc'ed buffer (*data, *len; free with free()).  All data
 * inline: fails with KN_ERR_UNSUPPORTED past protobuf's 2 GiB limit. */
int kn_onnx_write_buffer(const kn_model *m, void **data, size_t *len, kn_error *err);

#endif
