/* preprocess.h - image classifier preprocessing for the server's /predict endpoint:
 * resize, center crop, channel conversion, normalisation and layout, from a
 * decoded 8-bit image (image_io.h) into the float32 input tensor of a model. */
#ifndef KN_SERVE_PREPROCESS_H
#define KN_SERVE_PREPROCESS_H

#include <stddef.h>

#include "core/error.h"
#include "serve/image_io.h"

/* What to do, in this order:
 *  1. resize_short > 0: scale (bilinear, antialiased when shrinking) so that the
 *     shorter side becomes resize_short, keeping the aspect ratio;
 *     resize_short == 0: resize straight to crop_h x crop_w (no crop).  Each
 *     resize pass rounds to 8 bits as Pillow does, so with RGB sources the result
 *     equals torchvision's Resize + CenterCrop + ToTensor + Normalize on a PIL
 *     image (a rare pixel may differ by 1/255).
 *  2. center crop crop_h x crop_w (both > 0; the resized image must be at least
 *     that large).
 *  3. convert to `channels` (1 or 3): gray -> RGB repeats the sample, RGB -> gray
 *     uses the BT.601 luma weights.  bgr != 0 writes B G R instead of R G B.
 *  4. each sample x becomes (x * scale - mean[c]) / std[c]; c counts output
 *     channels in output order (with bgr, mean[0] applies to B).  scale 0 means 1.
 *  5. nhwc == 0 writes planar NCHW (C x H x W), nhwc != 0 interleaved HWC. */
typedef struct kn_preprocess {
    int resize_short;
    int crop_h, crop_w;
    int channels;
    int bgr;
    float scale;
    float mean[3], std[3];
    int nhwc;
} kn_preprocess;

/* Run `pp` on img and write channels * crop_h * crop_w floats to out, which holds
 * out_floats.  KN_ERR_ARG for a bad recipe (non-positive crop, channels not 1 or
 * 3, zero std, crop larger than the resized image, out too small) or an empty
 * image; KN_ERR_NOMEM when the intermediate image cannot be allocated. */
int kn_preprocess_image(const kn_serve_image *img, const kn_preprocess *pp, float *out,
                        size_t out_floats, kn_error *err);

#endif
