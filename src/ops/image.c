/* image.c - image operators: ImageDecoder.  The bytes are decoded by
 * formats/image.c (BMP, binary PNM, PNG, uncompressed TIFF; JPEG, JPEG 2000 and WebP
 * are reported unsupported); this file converts the RGB result to the requested
 * pixel_format: [H, W, 3] for RGB or BGR, [H, W, 1] for Grayscale (luma with the
 * ITU-R 601 weights in 16-bit fixed point). */
#include "ops/op_util.h"

#include <string.h>

#include "formats/image.h"

enum pixel_format { FMT_RGB, FMT_BGR, FMT_GRAY };

static int write_output(kn_op_ctx *c, const kn_image *img, enum pixel_format fmt)
{
    int64_t dims[3] = {img->height, img->width, fmt == FMT_GRAY ? 1 : 3};
    kn_tensor *o = kn_op_output(c, 0, KN_U8, 3, dims);
    if (!o)
        return c->err->code;
    uint8_t *dst = o->data;
    for (int64_t i = 0; i < img->width * img->height; i++) {
        const uint8_t *p = img->data + i * img->channels;
        if (fmt == FMT_GRAY) {
            dst[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        } else {
            dst[i * 3] = fmt == FMT_BGR ? p[2] : p[0];
            dst[i * 3 + 1] = p[1];
            dst[i * 3 + 2] = fmt == FMT_BGR ? p[0] : p[2];
        }
    }
    return KN_OK;
}

static int run_image_decoder(kn_op_ctx *c)
{
    KN_REQUIRE_INPUT(c, 0);
    const kn_tensor *x = c->in[0];
    if (x->dtype != KN_U8)
        return kn_unsupported_dtype(c, x->dtype);
    if (x->rank != 1)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder input must be 1-D encoded bytes, got rank %d", x->rank);
    const char *pf = kn_attr_string(c->node, "pixel_format", "RGB");
    enum pixel_format fmt;
    if (!strcmp(pf, "RGB"))
        fmt = FMT_RGB;
    else if (!strcmp(pf, "BGR"))
        fmt = FMT_BGR;
    else if (!strcmp(pf, "Grayscale"))
        fmt = FMT_GRAY;
    else
        return kn_fail(c->err, KN_ERR_MODEL, "ImageDecoder pixel_format '%s' is not RGB, BGR or Grayscale", pf);
    kn_image img;
    int rc = kn_image_decode(x->data, (size_t)x->numel, &img, c->err);
    if (rc)
        return rc;
    rc = write_output(c, &img, fmt);
    kn_image_free(&img);
    return rc;
}

/* uint8 [H, W, C]: H and W come from the data, C from pixel_format. */
static int infer_image_decoder(kn_infer_ctx *ic)
{
    if (ic->n_out < 1)
        return KN_OK;
    kn_type *y = &ic->out[0];
    memset(y, 0, sizeof *y);
    y->kind = KN_TYPE_TENSOR;
    y->dtype = KN_U8;
    y->rank = 3;
    y->dims[0].value = y->dims[1].value = -1;
    y->dims[2].value = strcmp(kn_attr_string(ic->node, "pixel_format", "RGB"), "Grayscale") ? 3 : 1;
    return KN_OK;
}

const kn_op_def kn_ops_image[] = {
    {"", "ImageDecoder", 1, run_image_decoder, NULL, infer_image_decoder, false},
    {0},
};
