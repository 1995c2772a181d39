/* image_io.h - JPEG and PNG decoding for the inference server (kiln serve).
 *
 * JPEG goes through libjpeg-turbo and PNG through libpng; the format is chosen by
 * the magic bytes.  Every image comes out as 8-bit samples, row-major, top row
 * first: RGB (channels 3) for colour sources, gray (channels 1) for gray ones.
 *
 * Naming: the core library already has a `kn_image` / kn_image_decode() /
 * kn_image_free() for its own BMP/PNM/PNG/TIFF decoder (src/formats/image.h, used
 * by the ImageDecoder operator).  Both end up in the `kiln` executable, so the
 * server's decoder uses the kn_serve_image prefix; the struct fields and the
 * function signatures are otherwise exactly those agreed with the server. */
#ifndef KN_SERVE_IMAGE_IO_H
#define KN_SERVE_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Largest accepted width or height, and largest pixel count (64 Mi); headers
 * declaring more are refused before anything is allocated. */
#define KN_SERVE_IMAGE_MAX_SIDE 16384
#define KN_SERVE_IMAGE_MAX_PIXELS ((int64_t)64 << 20)

/* A decoded image: width * height * channels bytes at `pixels` (owned, malloc'd),
 * channels interleaved (R G B, or one gray sample). */
typedef struct kn_serve_image {
    int width, height, channels;
    uint8_t *pixels;
} kn_serve_image;

/* Decode a JPEG or PNG held in data[0..len).  16-bit PNG samples are reduced to 8
 * bits, palettes expanded, alpha dropped (a gray+alpha PNG stays gray).  On
 * failure *out is left empty (pixels NULL) and err says why: KN_ERR_ARG for data
 * that is neither JPEG nor PNG, corrupt or truncated, or declares dimensions over
 * the caps; KN_ERR_NOMEM when the pixels cannot be allocated.  Never exits, never
 * leaks; safe to call from several threads at once. */
int kn_serve_image_decode(const void *data, size_t len, kn_serve_image *out, kn_error *err);

/* The same, but a JPEG may come out reduced by 2, 4 or 8 on each side (libjpeg's
 * DCT-domain scaling: far cheaper than decoding at full size, and a fair
 * area-average) when the result is still at least min_w x min_h.  For a preprocess
 * that resizes the short side to R, min_w = min_h = R keeps enough pixels; for a
 * plain resize to H x W, min_w = W and min_h = H.  PNGs always come at full size,
 * and min_w or min_h <= 0 means full size.  The pixels differ slightly from a
 * full decode followed by a resize, so this is an opt-in speed/fidelity trade. */
int kn_serve_image_decode_at_least(const void *data, size_t len, int min_w, int min_h, kn_serve_image *out,
                                   kn_error *err);

/* Free the pixels; *img becomes empty.  Safe on an empty or already freed image. */
void kn_serve_image_free(kn_serve_image *img);

#endif
