/* idx.h - reader for IDX files (the MNIST / Fashion-MNIST format), gzipped or not. */
#ifndef KILN_IDX_H
#define KILN_IDX_H

#include "core/tensor.h"

/* Read an IDX file into an owned tensor (uint8, int8, int16, int32, float32 or
 * float64 elements; dims as stored). */
int idx_read_file(const char *path, kn_tensor *out, kn_error *err);
/* The same from an (uncompressed) IDX image in memory; name labels messages. */
int idx_read_buffer(const void *data, size_t size, const char *name, kn_tensor *out, kn_error *err);

#endif
