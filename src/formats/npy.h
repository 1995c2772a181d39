/* npy.h - numpy .npy files (format versions 1.0, 2.0, 3.0; C order), read and written
 * for every dtype kiln holds. */
#ifndef KN_NPY_H
#define KN_NPY_H

#include "core/tensor.h"

/* Decode a .npy image into an owned tensor. */
int kn_npy_read_buffer(const void *data, size_t size, kn_tensor *out, kn_error *err);
int kn_npy_read_file(const char *path, kn_tensor *out, kn_error *err);
/* Encode t as .npy (version 1.0, or 2.0 when the header needs it). */
int kn_npy_write_file(const char *path, const kn_tensor *t, kn_error *err);
/* numpy descr for a dtype ("<f4"; "<V2" for bfloat16), NULL for others. */
const char *kn_npy_descr(kn_dtype t);

#endif
