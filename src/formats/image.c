/* image.c - format sniffing and decoders for the lossless image formats kiln reads
 * itself, each into 8-bit RGB (kn_image):
 *   BMP   BI_RGB, 1/4/8-bit paletted, 24 and 32-bit, bottom-up or top-down
 *   PNM   binary P5 (grey) and P6 (colour), maxval 255
 *   PNG   non-interlaced; 8-bit grey/RGB/paletted/grey+alpha/RGBA or 1/2/4-bit grey
 *         or paletted; alpha dropped; deflate through formats/inflate.c
 *   TIFF  baseline, uncompressed, 8-bit chunky grey or RGB, strips
 * JPEG, JPEG 2000 and WebP are lossy codecs whose exact output depends on the
 * decoder: they are recognised and reported as KN_ERR_UNSUPPORTED.
 * Every decoder checks its header's size against KN_IMAGE_MAX_PIXELS and against the
 * data actually present before it allocates anything. */
#include "formats/image.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "formats/inflate.h"

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Refuse empty or absurd dimensions (before the caller checks the data against them). */
static int check_size(kn_error *err, const char *fmt, int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0 || w > KN_IMAGE_MAX_PIXELS || h > KN_IMAGE_MAX_PIXELS ||
        w * h > KN_IMAGE_MAX_PIXELS)
        return kn_fail(err, KN_ERR_ARG, "%s image size %lldx%lld is empty or larger than %lld pixels", fmt,
                       (long long)w, (long long)h, (long long)KN_IMAGE_MAX_PIXELS);
    return KN_OK;
}

/* Allocate an RGB image of checked size w x h. */
static int image_alloc(kn_error *err, kn_image *img, int64_t w, int64_t h)
{
    img->data = malloc((size_t)(w * h) * 3);
    if (!img->data)
        return kn_fail(err, KN_ERR_NOMEM, "out of memory for a %lldx%lld image", (long long)w, (long long)h);
    img->width = w;
    img->height = h;
    img->channels = 3;
    return KN_OK;
}

/* ---- BMP ---- */

/* Colour of pixel x of a stored BMP row into dst (RGB). */
static int bmp_pixel(kn_error *err, const uint8_t *row, int64_t x, int bpp, const uint8_t *pal, uint32_t n_pal,
                     uint8_t *dst)
{
    if (bpp >= 24) {
        const uint8_t *p = row + x * (bpp / 8);
        dst[0] = p[2];
        dst[1] = p[1];
        dst[2] = p[0];
        return KN_OK;
    }
    int64_t bit = x * bpp;
    uint32_t idx = (row[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
    if (idx >= n_pal)
        return kn_fail(err, KN_ERR_ARG, "BMP palette index %u out of range", idx);
    dst[0] = pal[idx * 4 + 2];
    dst[1] = pal[idx * 4 + 1];
    dst[2] = pal[idx * 4];
    return KN_OK;
}

static int decode_bmp(const uint8_t *d, size_t n, kn_image *img, kn_error *err)
{
    if (n < 54)
        return kn_fail(err, KN_ERR_ARG, "BMP data truncated");
    uint32_t off = le32(d + 10), dib = le32(d + 14);
    if (dib < 40)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "BMP header of %u bytes not supported", dib);
    if (dib > n - 14)
        return kn_fail(err, KN_ERR_ARG, "BMP header truncated");
    int64_t w = (int32_t)le32(d + 18), h = (int32_t)le32(d + 22);
    uint32_t bpp = le16(d + 28), comp = le32(d + 30), n_pal = le32(d + 46);
    bool top_down = h < 0;
    if (top_down)
        h = -h;
    if (comp != 0 || (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 24 && bpp != 32))
        return kn_fail(err, KN_ERR_UNSUPPORTED, "BMP with %u bits per pixel, compression %u not supported", bpp,
                       comp);
    int rc = check_size(err, "BMP", w, h);
    if (rc)
        return rc;
    const uint8_t *pal = d + 14 + dib;
    if (bpp <= 8) {
        if (n_pal == 0 || n_pal > (1u << bpp))
            n_pal = 1u << bpp;
        if ((size_t)n_pal * 4 > n - 14 - dib)
            return kn_fail(err, KN_ERR_ARG, "BMP palette truncated");
    }
    uint64_t stride = (bpp * (uint64_t)w + 31) / 32 * 4;
    if (off > n || stride * (uint64_t)h > n - off)
        return kn_fail(err, KN_ERR_ARG, "BMP pixel data truncated");
    if ((rc = image_alloc(err, img, w, h)))
        return rc;
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *row = d + off + stride * (uint64_t)(top_down ? y : h - 1 - y);
        for (int64_t x = 0; x < w && !rc; x++)
            rc = bmp_pixel(err, row, x, (int)bpp, pal, n_pal, img->data + (y * w + x) * 3);
        if (rc)
            return rc;
    }
    return KN_OK;
}

/* ---- PNM (binary P5 / P6) ---- */

/* Next decimal number of a PNM header, skipping whitespace and # comments. */
static int pnm_number(const uint8_t *d, size_t n, size_t *pos, int64_t *v)
{
    size_t i = *pos;
    for (;;) {
        while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r'))
            i++;
        if (i < n && d[i] == '#') {
            while (i < n && d[i] != '\n')
                i++;
            continue;
        }
        break;
    }
    if (i >= n || d[i] < '0' || d[i] > '9')
        return -1;
    int64_t r = 0;
    while (i < n && d[i] >= '0' && d[i] <= '9') {
        r = r * 10 + (d[i++] - '0');
        if (r > (1 << 24))
            return -1;
    }
    *v = r;
    *pos = i;
    return 0;
}

static int decode_pnm(const uint8_t *d, size_t n, kn_image *img, kn_error *err)
{
    int channels = d[1] == '6' ? 3 : 1;
    size_t pos = 2;
    int64_t w, h, maxval;
    if (pnm_number(d, n, &pos, &w) || pnm_number(d, n, &pos, &h) || pnm_number(d, n, &pos, &maxval) ||
        pos >= n)
        return kn_fail(err, KN_ERR_ARG, "malformed PNM header");
    if (maxval != 255)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "PNM with maxval %lld not supported", (long long)maxval);
    pos++; /* the single whitespace byte before the samples */
    int rc = check_size(err, "PNM", w, h);
    if (rc)
        return rc;
    size_t px = (size_t)(w * h);
    if (px * (size_t)channels > n - pos)
        return kn_fail(err, KN_ERR_ARG, "PNM pixel data truncated");
    if ((rc = image_alloc(err, img, w, h)))
        return rc;
    const uint8_t *s = d + pos;
    for (size_t i = 0; i < px; i++)
        for (int k = 0; k < 3; k++)
            img->data[i * 3 + k] = s[i * (size_t)channels + (channels == 3 ? (size_t)k : 0)];
    return KN_OK;
}

/* ---- PNG (non-interlaced, 1/2/4/8-bit samples) ---- */

typedef struct png_info {
    int64_t w, h;
    int depth, color, channels;
    bool have_ihdr;
    const uint8_t *plte;
    uint32_t n_plte;
    size_t idat_n;          /* total bytes of the IDAT chunks */
} png_info;

/* Walk the chunks: fn(chunk type, body, length) for each until IEND. */
static int png_walk(const uint8_t *d, size_t n, kn_error *err,
                    int (*fn)(void *arg, const uint8_t *type, const uint8_t *body, uint32_t len, kn_error *err),
                    void *arg)
{
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (len > n - pos - 12)
            return kn_fail(err, KN_ERR_ARG, "PNG chunk overruns the data");
        if (!memcmp(type, "IEND", 4))
            break;
        int rc = fn(arg, type, d + pos + 8, len, err);
        if (rc)
            return rc;
        pos += (size_t)len + 12;
    }
    return KN_OK;
}

static int png_header_chunk(void *arg, const uint8_t *type, const uint8_t *body, uint32_t len, kn_error *err)
{
    png_info *pi = arg;
    if (!memcmp(type, "IHDR", 4)) {
        if (len < 13)
            return kn_fail(err, KN_ERR_ARG, "PNG IHDR chunk too short");
        pi->w = be32(body);
        pi->h = be32(body + 4);
        pi->depth = body[8];
        pi->color = body[9];
        if (body[10] || body[11])
            return kn_fail(err, KN_ERR_ARG, "unknown PNG compression/filter method");
        if (body[12])
            return kn_fail(err, KN_ERR_UNSUPPORTED, "interlaced PNG not supported");
        pi->have_ihdr = true;
    } else if (!memcmp(type, "PLTE", 4)) {
        pi->plte = body;
        pi->n_plte = len / 3 > 256 ? 256 : len / 3;
    } else if (!memcmp(type, "IDAT", 4)) {
        pi->idat_n += len;
    }
    return KN_OK;
}

typedef struct png_gather {
    uint8_t *buf;
    size_t n;
} png_gather;

static int png_idat_chunk(void *arg, const uint8_t *type, const uint8_t *body, uint32_t len, kn_error *err)
{
    (void)err;
    png_gather *g = arg;
    if (!memcmp(type, "IDAT", 4) && len) {
        memcpy(g->buf + g->n, body, len);
        g->n += len;
    }
    return KN_OK;
}

static int png_check_header(const png_info *pi, kn_error *err)
{
    if (!pi->have_ihdr)
        return kn_fail(err, KN_ERR_ARG, "PNG lacks IHDR");
    if (!pi->idat_n)
        return kn_fail(err, KN_ERR_ARG, "PNG lacks image data");
    bool ok_depth = pi->depth == 8 || ((pi->color == 0 || pi->color == 3) &&
                                       (pi->depth == 1 || pi->depth == 2 || pi->depth == 4));
    if (!pi->channels || !ok_depth)
        return kn_fail(err, KN_ERR_UNSUPPORTED, "PNG colour type %d with %d-bit samples not supported", pi->color,
                       pi->depth);
    if (pi->color == 3 && !pi->plte)
        return kn_fail(err, KN_ERR_ARG, "paletted PNG without PLTE");
    return check_size(err, "PNG", pi->w, pi->h);
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Undo the per-row filters in place; raw holds h rows of 1 + row_bytes. */
static int png_unfilter(uint8_t *raw, int64_t h, size_t row_bytes, size_t bpp)
{
    uint8_t *prev = NULL;
    for (int64_t y = 0; y < h; y++) {
        uint8_t *row = raw + (size_t)y * (row_bytes + 1), f = row[0];
        uint8_t *px = row + 1;
        if (f > 4)
            return -1;
        for (size_t i = 0; i < row_bytes; i++) {
            int a = i >= bpp ? px[i - bpp] : 0, b = prev ? prev[i] : 0, cc = prev && i >= bpp ? prev[i - bpp] : 0;
            int add = f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? paeth(a, b, cc) : 0;
            px[i] = (uint8_t)(px[i] + add);
        }
        prev = px;
    }
    return 0;
}

static int png_to_rgb(const png_info *pi, const uint8_t *raw, size_t row_bytes, kn_image *img, kn_error *err)
{
    int maxv = (1 << pi->depth) - 1;
    for (int64_t y = 0; y < pi->h; y++) {
        const uint8_t *px = raw + (size_t)y * (row_bytes + 1) + 1;
        for (int64_t x = 0; x < pi->w; x++) {
            uint8_t *dst = img->data + (y * pi->w + x) * 3;
            int v;
            if (pi->depth < 8) {
                int64_t bit = x * pi->depth;
                v = (px[bit / 8] >> (8 - pi->depth - bit % 8)) & maxv;
                if (pi->color == 0) {
                    dst[0] = dst[1] = dst[2] = (uint8_t)(v * 255 / maxv);
                    continue;
                }
            } else {
                const uint8_t *p = px + x * pi->channels;
                if (pi->color == 0 || pi->color == 4) {
                    dst[0] = dst[1] = dst[2] = p[0]; /* alpha dropped */
                    continue;
                }
                if (pi->color != 3) {
                    memcpy(dst, p, 3); /* RGB or RGBA with alpha dropped */
                    continue;
                }
                v = p[0];
            }
            if ((uint32_t)v >= pi->n_plte)
                return kn_fail(err, KN_ERR_ARG, "PNG palette index %d out of range", v);
            memcpy(dst, pi->plte + v * 3, 3);
        }
    }
    return KN_OK;
}

/* Inflate and unfilter the image data into *raw (h rows of 1 + row_bytes). */
static int png_raw(const uint8_t *d, size_t n, const png_info *pi, size_t row_bytes, uint8_t **raw,
                   kn_error *err)
{
    uint64_t raw_n = ((uint64_t)row_bytes + 1) * (uint64_t)pi->h;
    if (raw_n / KN_INFLATE_MAX_RATIO > pi->idat_n)
        return kn_fail(err, KN_ERR_ARG, "PNG image data (%zu bytes) too short for a %lldx%lld image", pi->idat_n,
                       (long long)pi->w, (long long)pi->h);
    png_gather g = {malloc(pi->idat_n), 0};
    *raw = malloc((size_t)raw_n);
    int rc = !g.buf || !*raw ? kn_fail(err, KN_ERR_NOMEM, "out of memory") : KN_OK;
    if (!rc)
        rc = png_walk(d, n, err, png_idat_chunk, &g);
    size_t got = 0;
    if (!rc && kn_zlib_inflate(g.buf, g.n, *raw, (size_t)raw_n, &got, err))
        rc = kn_error_prefix(err, "corrupt PNG image data: ");
    if (!rc && got != raw_n)
        rc = kn_fail(err, KN_ERR_ARG, "PNG image data holds %zu bytes, expected %llu", got,
                     (unsigned long long)raw_n);
    size_t bpp = (size_t)(pi->channels * pi->depth + 7) / 8;
    if (!rc && png_unfilter(*raw, pi->h, row_bytes, bpp))
        rc = kn_fail(err, KN_ERR_ARG, "unknown PNG row filter");
    free(g.buf);
    return rc;
}

static int decode_png(const uint8_t *d, size_t n, kn_image *img, kn_error *err)
{
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    png_info pi;
    memset(&pi, 0, sizeof pi);
    int rc = png_walk(d, n, err, png_header_chunk, &pi);
    if (rc)
        return rc;
    pi.channels = pi.color >= 0 && pi.color <= 6 ? chans[pi.color] : 0;
    if ((rc = png_check_header(&pi, err)))
        return rc;
    size_t row_bytes = (size_t)(((uint64_t)pi.w * (uint64_t)(pi.channels * pi.depth) + 7) / 8);
    uint8_t *raw = NULL;
    rc = png_raw(d, n, &pi, row_bytes, &raw, err);
    if (!rc)
        rc = image_alloc(err, img, pi.w, pi.h);
    if (!rc)
        rc = png_to_rgb(&pi, raw, row_bytes, img, err);
    free(raw);
    return rc;
}

/* ---- TIFF (baseline, uncompressed, 8-bit, chunky) ---- */

typedef struct tiff_file {
    const uint8_t *d;
    size_t n;
    bool big_endian;
} tiff_file;

static uint32_t tiff_u16(const tiff_file *t, size_t at)
{
    const uint8_t *p = t->d + at;
    return t->big_endian ? (uint32_t)p[0] << 8 | p[1] : le16(p);
}

static uint32_t tiff_u32(const tiff_file *t, size_t at)
{
    return t->big_endian ? tiff_u16(t, at) << 16 | tiff_u16(t, at + 2) : tiff_u16(t, at) | tiff_u16(t, at + 2) << 16;
}

/* Value k of the IFD entry at `entry` (SHORT or LONG); -1 if out of range. */
static int tiff_value(const tiff_file *t, size_t entry, uint32_t k, uint32_t *v)
{
    uint32_t type = tiff_u16(t, entry + 2), count = tiff_u32(t, entry + 4);
    size_t size = type == 3 ? 2 : type == 4 ? 4 : 0;
    if (!size || k >= count)
        return -1;
    size_t at = (size_t)count * size <= 4 ? entry + 8 : tiff_u32(t, entry + 8);
    if (at > t->n || (size_t)count * size > t->n - at)
        return -1;
    at += k * size;
    *v = size == 2 ? tiff_u16(t, at) : tiff_u32(t, at);
    return 0;
}

typedef struct tiff_tags {
    uint32_t w, h, comp, photo, spp, rps, planar;
    size_t bits, offsets;   /* IFD entries of BitsPerSample / StripOffsets (0: absent) */
} tiff_tags;

static int tiff_read_tags(const tiff_file *t, tiff_tags *g, kn_error *err)
{
    uint32_t ifd = tiff_u32(t, 4);
    if (ifd > t->n - 2)
        return kn_fail(err, KN_ERR_ARG, "TIFF directory offset out of range");
    uint32_t n_entries = tiff_u16(t, ifd);
    if ((size_t)n_entries * 12 > t->n - ifd - 2)
        return kn_fail(err, KN_ERR_ARG, "TIFF directory truncated");
    *g = (tiff_tags){.comp = 1, .photo = 99, .spp = 1, .rps = UINT32_MAX, .planar = 1};
    for (uint32_t i = 0; i < n_entries; i++) {
        size_t e = ifd + 2 + (size_t)i * 12;
        uint32_t tag = tiff_u16(t, e), v = 0;
        uint32_t *dst = tag == 256 ? &g->w : tag == 257 ? &g->h : tag == 259 ? &g->comp : tag == 262 ? &g->photo
                      : tag == 277 ? &g->spp : tag == 278 ? &g->rps : tag == 284 ? &g->planar : NULL;
        if (tag == 258)
            g->bits = e;
        if (tag == 273)
            g->offsets = e;
        if (!dst)
            continue;
        if (tiff_value(t, e, 0, &v))
            return kn_fail(err, KN_ERR_ARG, "TIFF tag %u unreadable", tag);
        *dst = v;
    }
    return KN_OK;
}

/* Every sample 8 bits?  BitsPerSample defaults to 1 and may hold one value for all. */
static bool tiff_8bit(const tiff_file *t, const tiff_tags *g)
{
    uint32_t v;
    if (!g->bits || tiff_value(t, g->bits, 0, &v) || v != 8)
        return false;
    for (uint32_t k = 1; k < g->spp && !tiff_value(t, g->bits, k, &v); k++)
        if (v != 8)
            return false;
    return true;
}

/* Copy the rows, strip by strip, into img. */
static int tiff_rows(const tiff_file *t, const tiff_tags *g, bool color, kn_image *img, kn_error *err)
{
    size_t row = (size_t)g->w * g->spp;
    for (uint32_t y = 0; y < g->h; y++) {
        uint32_t strip_off;
        if (tiff_value(t, g->offsets, y / g->rps, &strip_off))
            return kn_fail(err, KN_ERR_ARG, "TIFF strip %u missing", y / g->rps);
        size_t in_strip = (size_t)(y % g->rps) * row;
        if (strip_off > t->n || in_strip > t->n - strip_off || row > t->n - strip_off - in_strip)
            return kn_fail(err, KN_ERR_ARG, "TIFF pixel data truncated");
        const uint8_t *src = t->d + strip_off + in_strip;
        uint8_t *dst = img->data + (size_t)y * g->w * 3;
        for (uint32_t x = 0; x < g->w; x++, src += g->spp, dst += 3) {
            if (color) {
                memcpy(dst, src, 3); /* extra samples (alpha) dropped */
            } else {
                uint8_t v = g->photo == 0 ? (uint8_t)(255 - src[0]) : src[0];
                dst[0] = dst[1] = dst[2] = v;
            }
        }
    }
    return KN_OK;
}

static int decode_tiff(const uint8_t *d, size_t n, kn_image *img, kn_error *err)
{
    tiff_file t = {d, n, d[0] == 'M'};
    tiff_tags g;
    int rc = tiff_read_tags(&t, &g, err);
    if (rc)
        return rc;
    bool color = g.photo == 2 && g.spp >= 3, grey = (g.photo == 0 || g.photo == 1) && g.spp >= 1;
    if (g.comp != 1 || !tiff_8bit(&t, &g) || g.planar != 1 || (!color && !grey))
        return kn_fail(err, KN_ERR_UNSUPPORTED,
                       "TIFF with compression %u, %u samples per pixel not all 8-bit, planar %u, photometric %u "
                       "not supported", g.comp, g.spp, g.planar, g.photo);
    if (!g.offsets || g.rps == 0)
        return kn_fail(err, KN_ERR_ARG, "TIFF lacks strip offsets");
    if ((rc = check_size(err, "TIFF", g.w, g.h)))
        return rc;
    /* Uncompressed rows cannot take fewer bytes than the file holds. */
    uint64_t row = (uint64_t)g.w * g.spp;
    if (row > n || g.h > n / row)
        return kn_fail(err, KN_ERR_ARG, "TIFF pixel data truncated: %llux%u samples in a %zu-byte file",
                       (unsigned long long)row, g.h, n);
    if ((rc = image_alloc(err, img, g.w, g.h)))
        return rc;
    return tiff_rows(&t, &g, color, img, err);
}

/* ---- format detection ---- */

static int unsupported_format(const uint8_t *d, size_t n, kn_error *err)
{
    const char *name = "unknown";
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        name = "JPEG";
    else if (n >= 12 && (!memcmp(d, "\0\0\0\x0cjP  ", 8) || (d[0] == 0xFF && d[1] == 0x4F)))
        name = "JPEG 2000";
    else if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
        name = "WebP";
    return kn_fail(err, KN_ERR_UNSUPPORTED, "%s images are not supported", name);
}

int kn_image_decode(const void *data, size_t size, kn_image *out, kn_error *err)
{
    const uint8_t *d = data;
    memset(out, 0, sizeof *out);
    int rc;
    if (size >= 2 && d[0] == 'B' && d[1] == 'M')
        rc = decode_bmp(d, size, out, err);
    else if (size >= 3 && d[0] == 'P' && (d[1] == '5' || d[1] == '6'))
        rc = decode_pnm(d, size, out, err);
    else if (size >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
        rc = decode_png(d, size, out, err);
    else if (size >= 8 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        rc = decode_tiff(d, size, out, err);
    else
        rc = unsupported_format(d, size, err);
    if (rc)
        kn_image_free(out);
    return rc;
}

void kn_image_free(kn_image *img)
{
    free(img->data);
    memset(img, 0, sizeof *img);
}
