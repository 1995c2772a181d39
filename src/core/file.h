/* file.h - reading a whole file into memory (for the small files kiln decodes in
 * full: .npy tensors, serialized TensorProto / SequenceProto test data). */
#ifndef KN_FILE_H
#define KN_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Read all of path into a malloc'ed buffer (*data, *size; free with free()).
 * Works for regular files and pipes alike.  Errors name the path: KN_ERR_IO with
 * the system's reason, KN_ERR_NOMEM when the buffer cannot grow. */
int kn_read_file(const char *path, uint8_t **data, size_t *size, kn_error *err);

#endif
