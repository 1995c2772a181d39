/* image_io.c - JPEG (libjpeg-turbo) and PNG (libpng) decoding into 8-bit RGB or
 * gray images for the server.  Both libraries report errors by calling a handler
 * that must not return; ours record the message and longjmp back to the decode
 * function, which frees what it allocated and returns KN_ERR_ARG.  Nothing here
 * ever calls exit() or prints. */
#include "serve/image_io.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* More scans than this in a progressive JPEG is an attack (each scan walks the
 * whole coefficient buffer), not a photograph. */
#define JPEG_MAX_SCANS 256
/* libjpeg's own allocations (coefficient buffers of progressive images, ...). */
#define JPEG_MAX_MEMORY ((long)768 << 20)
/* Largest ancillary chunk libpng may buffer (text, ICC profiles). */
#define PNG_MAX_CHUNK ((png_alloc_size_t)8 << 20)

void kn_serve_image_free(kn_serve_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* Refuse dimensions over the caps before allocating anything. */
static int check_dims(const char *fmt, long long w, long long h, kn_error *err)
{
    if (w <= 0 || h <= 0)
        return kn_fail(err, KN_ERR_ARG, "invalid %s: empty image (%lldx%lld)", fmt, w, h);
    if (w > KN_SERVE_IMAGE_MAX_SIDE || h > KN_SERVE_IMAGE_MAX_SIDE || w * h > KN_SERVE_IMAGE_MAX_PIXELS)
        return kn_fail(err, KN_ERR_ARG,
                       "%s image is %lldx%lld; the limit is %d pixels a side and %lld pixels in all",
                       fmt, w, h, KN_SERVE_IMAGE_MAX_SIDE, (long long)KN_SERVE_IMAGE_MAX_PIXELS);
    return KN_OK;
}

static int alloc_pixels(kn_serve_image *img, int w, int h, int channels, kn_error *err)
{
    img->pixels = malloc((size_t)w * (size_t)h * (size_t)channels);
    if (!img->pixels)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory for a %dx%dx%d image", w, h, channels);
    img->width = w;
    img->height = h;
    img->channels = channels;
    return KN_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct jpeg_guard {
    struct jpeg_error_mgr mgr;       /* first: libjpeg hands us a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_guard;

static void jpeg_fail_jump(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, g->msg);
    longjmp(g->jump, 1);
}

/* Warnings that mean the pixels are missing or garbage (truncated file, broken
 * entropy-coded data) are errors here; cosmetic ones are ignored. */
static int jpeg_warning_is_fatal(int code)
{
    switch (code) {
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_BOGUS_ICC:
        return 0;
    default:
        return 1;
    }
}

static void jpeg_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && jpeg_warning_is_fatal(cinfo->err->msg_code))
        jpeg_fail_jump(cinfo);
}

static void jpeg_output_nothing(j_common_ptr cinfo)
{
    (void)cinfo;
}

static void jpeg_limit_scans(j_common_ptr cinfo)
{
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_guard *g = (jpeg_guard *)cinfo->err;
        snprintf(g->msg, sizeof g->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(g->jump, 1);
    }
}

/* Adobe CMYK / YCCK JPEGs store inverted ink amounts: R = C * K / 255, etc. */
static void cmyk_row_to_rgb(const uint8_t *cmyk, uint8_t *rgb, int width)
{
    for (int x = 0; x < width; x++, cmyk += 4, rgb += 3) {
        unsigned k = cmyk[3];
        rgb[0] = (uint8_t)((cmyk[0] * k + 127) / 255);
        rgb[1] = (uint8_t)((cmyk[1] * k + 127) / 255);
        rgb[2] = (uint8_t)((cmyk[2] * k + 127) / 255);
    }
}

/* Choose the output colour space; returns the channels libjpeg will produce. */
static int jpeg_pick_output(struct jpeg_decompress_struct *ci)
{
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = JCS_GRAYSCALE;
        return 1;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK;
        return 4;
    default:
        ci->out_color_space = JCS_RGB;
        return 3;
    }
}

/* Everything between setjmp and the end lives in *ci / *img / *row so that the
 * error path can free it after the jump. */
/* The largest DCT reduction (1/2, 1/4, 1/8) that keeps the image at least
 * min_w x min_h; 1 when there is no minimum. */
static unsigned jpeg_pick_reduction(const struct jpeg_decompress_struct *ci, int min_w, int min_h)
{
    if (min_w <= 0 || min_h <= 0)
        return 1;
    for (unsigned d = 8; d > 1; d /= 2)
        if ((ci->image_width + d - 1) / d >= (unsigned)min_w && (ci->image_height + d - 1) / d >= (unsigned)min_h)
            return d;
    return 1;
}

static int jpeg_decode_guarded(struct jpeg_decompress_struct *ci, const void *data, size_t len, int min_w,
                               int min_h, kn_serve_image *img, uint8_t *volatile *row, kn_error *err)
{
    jpeg_mem_src(ci, (const unsigned char *)data, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    int rc = check_dims("JPEG", ci->image_width, ci->image_height, err);
    if (rc)
        return rc;
    ci->scale_num = 1;
    ci->scale_denom = jpeg_pick_reduction(ci, min_w, min_h);
    int lib_channels = jpeg_pick_output(ci);
    jpeg_start_decompress(ci);
    int w = (int)ci->output_width, h = (int)ci->output_height;
    if (ci->output_components != lib_channels)
        return kn_fail(err, KN_ERR_ARG, "invalid JPEG: %d components for colour space %d",
                       ci->output_components, (int)ci->out_color_space);
    if ((rc = alloc_pixels(img, w, h, lib_channels == 4 ? 3 : lib_channels, err)))
        return rc;
    if (lib_channels == 4 && !(*row = malloc((size_t)w * 4)))
        return kn_fail(err, KN_ERR_NOMEM, "out of memory for a JPEG row");
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = img->pixels + (size_t)ci->output_scanline * (size_t)w * (size_t)img->channels;
        JSAMPROW target = lib_channels == 4 ? *row : dst;
        if (jpeg_read_scanlines(ci, &target, 1) != 1)
            return kn_fail(err, KN_ERR_ARG, "invalid JPEG: no data at row %u", ci->output_scanline);
        if (lib_channels == 4)
            cmyk_row_to_rgb(*row, dst, w);
    }
    jpeg_finish_decompress(ci);
    return KN_OK;
}

static int decode_jpeg(const void *data, size_t len, int min_w, int min_h, kn_serve_image *img, kn_error *err)
{
    struct jpeg_decompress_struct ci;
    jpeg_guard g;
    uint8_t *volatile row = NULL;
    ci.err = jpeg_std_error(&g.mgr);
    g.mgr.error_exit = jpeg_fail_jump;
    g.mgr.emit_message = jpeg_message;
    g.mgr.output_message = jpeg_output_nothing;
    g.msg[0] = 0;
    int rc;
    if (setjmp(g.jump)) {
        rc = kn_fail(err, KN_ERR_ARG, "invalid JPEG: %s", g.msg);
    } else {
        jpeg_create_decompress(&ci);
        ci.mem->max_memory_to_use = JPEG_MAX_MEMORY;
        g.progress.progress_monitor = jpeg_limit_scans;
        ci.progress = &g.progress;
        rc = jpeg_decode_guarded(&ci, data, len, min_w, min_h, img, &row, err);
    }
    jpeg_destroy_decompress(&ci);
    free(row);
    if (rc)
        kn_serve_image_free(img);
    return rc;
}

/* ---------------------------------------------------------------- PNG */

typedef struct png_source {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
} png_source;

static void png_read_memory(png_structp png, png_bytep out, size_t n)
{
    png_source *src = png_get_io_ptr(png);
    if (n > src->len - src->pos)
        png_error(png, "truncated file");
    memcpy(out, src->data + src->pos, n);
    src->pos += n;
}

static void png_fail_jump(png_structp png, png_const_charp msg)
{
    png_source *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof src->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_ignore_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Ask libpng for 8-bit gray or RGB whatever the source holds. */
static void png_request_8bit(png_structp png, png_infop info)
{
    int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_bit_depth(png, info) == 16)
        png_set_scale_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

static int png_decode_guarded(png_structp png, png_infop info, kn_serve_image *img,
                              png_bytep *volatile *rows, kn_error *err)
{
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int rc = check_dims("PNG", w, h, err);
    if (rc)
        return rc;
    png_request_8bit(png, info);
    int channels = png_get_channels(png, info);
    if ((channels != 1 && channels != 3) || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * (size_t)channels)
        return kn_fail(err, KN_ERR_ARG, "invalid PNG: unexpected layout after conversion (%d channels)",
                       channels);
    if ((rc = alloc_pixels(img, (int)w, (int)h, channels, err)))
        return rc;
    if (!(*rows = malloc((size_t)h * sizeof(png_bytep))))
        return kn_fail(err, KN_ERR_NOMEM, "out of memory for PNG row pointers");
    for (png_uint_32 y = 0; y < h; y++)
        (*rows)[y] = img->pixels + (size_t)y * (size_t)w * (size_t)channels;
    png_read_image(png, *rows);
    png_read_end(png, NULL);
    return KN_OK;
}

static int decode_png(const void *data, size_t len, kn_serve_image *img, kn_error *err)
{
    png_source src = {data, len, 0, ""};
    png_bytep *volatile rows = NULL;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail_jump, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return kn_fail(err, KN_ERR_NOMEM, "out of memory starting the PNG decoder");
    }
    int rc;
    if (setjmp(png_jmpbuf(png))) {
        rc = kn_fail(err, KN_ERR_ARG, "invalid PNG: %s", src.msg);
    } else {
        png_set_read_fn(png, &src, png_read_memory);
        png_set_chunk_malloc_max(png, PNG_MAX_CHUNK);
        rc = png_decode_guarded(png, info, img, &rows, err);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (rc)
        kn_serve_image_free(img);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

/* Name formats people send by mistake, so the error says what arrived. */
static const char *other_format_name(const uint8_t *p, size_t len)
{
    if (len >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
        return "GIF";
    if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
        return "WebP";
    if (len >= 2 && p[0] == 'B' && p[1] == 'M')
        return "BMP";
    if (len >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
        return "TIFF";
    if (len >= 12 && !memcmp(p + 4, "ftyp", 4))
        return "HEIF/AVIF/MP4";
    return NULL;
}

int kn_serve_image_decode(const void *data, size_t len, kn_serve_image *out, kn_error *err)
{
    return kn_serve_image_decode_at_least(data, len, 0, 0, out, err);
}

int kn_serve_image_decode_at_least(const void *data, size_t len, int min_w, int min_h, kn_serve_image *out,
                                   kn_error *err)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *p = data;
    if (!out)
        return kn_fail(err, KN_ERR_ARG, "kn_serve_image_decode: no output image");
    memset(out, 0, sizeof *out);
    if (!p || len == 0)
        return kn_fail(err, KN_ERR_ARG, "empty image data");
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return decode_jpeg(data, len, min_w, min_h, out, err);
    if (len >= 8 && !memcmp(p, png_magic, 8))
        return decode_png(data, len, out, err);
    const char *other = other_format_name(p, len);
    if (other)
        return kn_fail(err, KN_ERR_ARG, "unsupported image format %s: send JPEG or PNG", other);
    return kn_fail(err, KN_ERR_ARG, "image data is neither JPEG nor PNG (%zu bytes starting %02x %02x %02x %02x)",
                   len, p[0], len > 1 ? p[1] : 0, len > 2 ? p[2] : 0, len > 3 ? p[3] : 0);
}
