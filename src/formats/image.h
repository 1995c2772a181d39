/* image.h - decoders for the lossless image formats kiln reads itself: BMP, binary
 * PNM, PNG and uncompressed TIFF, each into an 8-bit RGB image.  Lossy formats (JPEG,
 * JPEG 2000, WebP) are recognised and reported as unsupported. */
#ifndef KN_IMAGE_H
#define KN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Largest image accepted, in pixels (768 MiB as RGB); larger headers are refused
 * before anything is allocated. */
#define KN_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* A decoded image: row-major, top row first, `channels` interleaved uint8 samples
 * per pixel (always 3, R G B: grey and paletted images are expanded, alpha dropped). */
typedef struct kn_image {
    int64_t width, height;
    int channels;
    uint8_t *data;          /* width * height * channels bytes, owned */
} kn_image;

/* Detect the format of data[0..size) and decode it.  On failure *out is empty and
 * err says why: KN_ERR_UNSUPPORTED for a format or feature kiln does not decode
 * (naming it), KN_ERR_ARG for malformed or truncated data, KN_ERR_NOMEM. */
int kn_image_decode(const void *data, size_t size, kn_image *out, kn_error *err);

/* Free the pixels; *img becomes empty.  Safe on an empty image. */
void kn_image_free(kn_image *img);

#endif
