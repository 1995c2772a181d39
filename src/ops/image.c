/* image.c - image operators: ImageDecoder for the lossless formats kiln decodes
 * itself: BMP (BI_RGB, 1/4/8-bit paletted, 24 and 32-bit), binary PNM (P5 grey,
 * P6 colour, maxval 255), PNG (own inflate; non-interlaced, 8-bit or 1/2/4-bit
 * grey/paletted; alpha dropped) and baseline TIFF (uncompressed 8-bit chunky grey
 * or RGB).  JPEG, JPEG 2000 and WebP are lossy codecs whose exact output depends on
 * the decoder: they return KN_ERR_UNSUPPORTED naming the format.
 * The decoded image is [H, W, 3] (pixel_format RGB or BGR) or [H, W, 1]
 * (Grayscale, luma with the ITU-R 601 weights in 16-bit fixed point). */
#include "ops/op_util.h"

#include <stdlib.h>
#include <string.h>

enum pixel_format { FMT_RGB, FMT_BGR, FMT_GRAY };

/* A decoded image: 8-bit RGB, row-major, top row first. */
typedef struct rgb_image {
    int64_t w, h;
    uint8_t *px;    /* w * h * 3 bytes */
} rgb_image;

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

static int image_alloc(kn_op_ctx *c, rgb_image *img, int64_t w, int64_t h)
{
    int64_t n;
    if (w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20) || !kn_mul_ok(w, h, &n) || !kn_mul_ok(n, 3, &n) ||
        (size_t)n > KN_MAX_TENSOR_BYTES)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: image size %lldx%lld is invalid",
                       (long long)w, (long long)h);
    img->px = malloc((size_t)n);
    if (!img->px)
        return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    img->w = w;
    img->h = h;
    return KN_OK;
}

/* ---- BMP ---- */

/* Colour of pixel x of a stored BMP row into dst (RGB). */
static int bmp_pixel(kn_op_ctx *c, const uint8_t *row, int64_t x, int bpp, const uint8_t *pal,
                     uint32_t n_pal, uint8_t *dst)
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
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: BMP palette index %u out of range", idx);
    dst[0] = pal[idx * 4 + 2];
    dst[1] = pal[idx * 4 + 1];
    dst[2] = pal[idx * 4];
    return KN_OK;
}

static int decode_bmp(kn_op_ctx *c, const uint8_t *d, size_t n, rgb_image *img)
{
    if (n < 54)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: BMP data truncated");
    uint32_t off = le32(d + 10), dib = le32(d + 14);
    if (dib < 40 || dib > n - 14)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "ImageDecoder: BMP header of %u bytes not supported", dib);
    int64_t w = (int32_t)le32(d + 18), h = (int32_t)le32(d + 22);
    uint32_t bpp = le16(d + 28), comp = le32(d + 30), n_pal = le32(d + 46);
    bool top_down = h < 0;
    if (top_down)
        h = -h;
    if (comp != 0 || (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 24 && bpp != 32))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED,
                       "ImageDecoder: BMP with %u bits per pixel, compression %u not supported", bpp, comp);
    const uint8_t *pal = d + 14 + dib;
    if (bpp <= 8) {
        if (n_pal == 0 || n_pal > (1u << bpp))
            n_pal = 1u << bpp;
        if ((size_t)n_pal * 4 > n - 14 - dib)
            return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: BMP palette truncated");
    }
    int rc = image_alloc(c, img, w, h);
    if (rc)
        return rc;
    size_t stride = (size_t)((bpp * (uint64_t)w + 31) / 32) * 4;
    if (off > n || stride * (size_t)h > n - off)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: BMP pixel data truncated");
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *row = d + off + stride * (size_t)(top_down ? y : h - 1 - y);
        for (int64_t x = 0; x < w && !rc; x++)
            rc = bmp_pixel(c, row, x, (int)bpp, pal, n_pal, img->px + (y * w + x) * 3);
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

static int decode_pnm(kn_op_ctx *c, const uint8_t *d, size_t n, rgb_image *img)
{
    int channels = d[1] == '6' ? 3 : 1;
    size_t pos = 2;
    int64_t w, h, maxval;
    if (pnm_number(d, n, &pos, &w) || pnm_number(d, n, &pos, &h) || pnm_number(d, n, &pos, &maxval) ||
        pos >= n)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: malformed PNM header");
    if (maxval != 255)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "ImageDecoder: PNM with maxval %lld not supported",
                       (long long)maxval);
    pos++; /* the single whitespace byte before the samples */
    int rc = image_alloc(c, img, w, h);
    if (rc)
        return rc;
    size_t need = (size_t)(w * h) * (size_t)channels;
    if (need > n - pos)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: PNM pixel data truncated");
    for (int64_t i = 0; i < w * h; i++)
        for (int k = 0; k < 3; k++)
            img->px[i * 3 + k] = d[pos + (size_t)i * (size_t)channels + (channels == 3 ? (size_t)k : 0)];
    return KN_OK;
}

/* ---- inflate (RFC 1950 zlib wrapper around RFC 1951 deflate) ---- */

typedef struct bit_in {
    const uint8_t *d;
    size_t n, pos;          /* byte position */
    uint32_t buf;
    int cnt;                /* bits in buf */
} bit_in;

typedef struct byte_out {
    uint8_t *d;
    size_t n, cap;
} byte_out;

/* Canonical Huffman code: symbols ordered by (length, value). */
typedef struct huff {
    uint16_t count[16];     /* codes of each length */
    uint16_t symbol[320];
} huff;

static int bits(bit_in *b, int need, uint32_t *v)
{
    while (b->cnt < need) {
        if (b->pos >= b->n)
            return -1;
        b->buf |= (uint32_t)b->d[b->pos++] << b->cnt;
        b->cnt += 8;
    }
    *v = b->buf & ((1u << need) - 1);
    b->buf >>= need;
    b->cnt -= need;
    return 0;
}

/* Build a code from n code lengths; -1 if the lengths over-subscribe the code space. */
static int huff_build(huff *h, const uint8_t *lengths, int n)
{
    uint16_t offs[16];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++)
        h->count[lengths[i]]++;
    int left = 1;
    for (int len = 1; len < 16; len++) {
        left = left * 2 - h->count[len];
        if (left < 0)
            return -1;
    }
    offs[1] = 0;
    for (int len = 1; len < 15; len++)
        offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (lengths[i])
            h->symbol[offs[lengths[i]]++] = (uint16_t)i;
    return 0;
}

/* Decode one symbol, reading the code bit by bit (codes are stored MSB first). */
static int huff_decode(bit_in *b, const huff *h)
{
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        uint32_t bit;
        if (bits(b, 1, &bit))
            return -1;
        code |= (int)bit;
        int count = h->count[len];
        if (code - first < count)
            return h->symbol[index + code - first];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                      35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                      3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                       6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int put_byte(byte_out *o, uint8_t v)
{
    if (o->n >= o->cap)
        return -1;
    o->d[o->n++] = v;
    return 0;
}

/* Literal/length and distance codes until end of block. */
static int inflate_codes(bit_in *b, byte_out *o, const huff *lit, const huff *dist)
{
    for (;;) {
        int sym = huff_decode(b, lit);
        if (sym < 0)
            return -1;
        if (sym < 256) {
            if (put_byte(o, (uint8_t)sym))
                return -1;
            continue;
        }
        if (sym == 256)
            return 0;
        sym -= 257;
        uint32_t e;
        if (sym >= 29 || bits(b, len_extra[sym], &e))
            return -1;
        size_t len = len_base[sym] + e;
        int ds = huff_decode(b, dist);
        if (ds < 0 || ds >= 30 || bits(b, dist_extra[ds], &e))
            return -1;
        size_t back = dist_base[ds] + e;
        if (back > o->n || len > o->cap - o->n)
            return -1;
        for (size_t k = 0; k < len; k++, o->n++)
            o->d[o->n] = o->d[o->n - back];
    }
}

static int inflate_stored(bit_in *b, byte_out *o)
{
    b->buf = 0;
    b->cnt = 0; /* drop to a byte boundary */
    if (b->n - b->pos < 4)
        return -1;
    uint32_t len = le16(b->d + b->pos), nlen = le16(b->d + b->pos + 2);
    b->pos += 4;
    if ((len ^ 0xFFFFu) != nlen || len > b->n - b->pos || len > o->cap - o->n)
        return -1;
    memcpy(o->d + o->n, b->d + b->pos, len);
    b->pos += len;
    o->n += len;
    return 0;
}

static int inflate_fixed(bit_in *b, byte_out *o)
{
    uint8_t lengths[320];
    huff lit, dist;
    for (int i = 0; i < 288; i++)
        lengths[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    huff_build(&lit, lengths, 288);
    for (int i = 0; i < 30; i++)
        lengths[i] = 5;
    huff_build(&dist, lengths, 30);
    return inflate_codes(b, o, &lit, &dist);
}

static int inflate_dynamic(bit_in *b, byte_out *o)
{
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint32_t hlit, hdist, hclen, v;
    if (bits(b, 5, &hlit) || bits(b, 5, &hdist) || bits(b, 4, &hclen))
        return -1;
    hlit += 257;
    hdist += 1;
    hclen += 4;
    if (hlit > 286 || hdist > 30)
        return -1;
    uint8_t lengths[320] = {0};
    for (uint32_t i = 0; i < hclen; i++) {
        if (bits(b, 3, &v))
            return -1;
        lengths[order[i]] = (uint8_t)v;
    }
    huff lencode, lit, dist;
    if (huff_build(&lencode, lengths, 19))
        return -1;
    memset(lengths, 0, sizeof lengths);
    for (uint32_t i = 0; i < hlit + hdist;) {
        int sym = huff_decode(b, &lencode);
        if (sym < 0)
            return -1;
        if (sym < 16) {
            lengths[i++] = (uint8_t)sym;
            continue;
        }
        uint8_t fill = 0;
        uint32_t rep;
        if (sym == 16) {
            if (i == 0 || bits(b, 2, &rep))
                return -1;
            fill = lengths[i - 1];
            rep += 3;
        } else if (sym == 17) {
            if (bits(b, 3, &rep))
                return -1;
            rep += 3;
        } else {
            if (bits(b, 7, &rep))
                return -1;
            rep += 11;
        }
        if (i + rep > hlit + hdist)
            return -1;
        while (rep--)
            lengths[i++] = fill;
    }
    if (lengths[256] == 0 || huff_build(&lit, lengths, (int)hlit) || huff_build(&dist, lengths + hlit, (int)hdist))
        return -1;
    return inflate_codes(b, o, &lit, &dist);
}

/* Inflate a zlib stream into exactly out->cap bytes; -1 on any malformation. */
static int zlib_inflate(const uint8_t *d, size_t n, byte_out *out)
{
    if (n < 2 || (d[0] & 0x0F) != 8 || ((d[0] << 8) | d[1]) % 31 || (d[1] & 0x20))
        return -1;
    bit_in b = {d, n, 2, 0, 0};
    uint32_t last = 0, type;
    while (!last) {
        if (bits(&b, 1, &last) || bits(&b, 2, &type))
            return -1;
        int rc = type == 0 ? inflate_stored(&b, out) : type == 1 ? inflate_fixed(&b, out)
               : type == 2 ? inflate_dynamic(&b, out) : -1;
        if (rc)
            return -1;
    }
    return out->n == out->cap ? 0 : -1;
}

/* ---- PNG (non-interlaced, 1/2/4/8-bit samples) ---- */

typedef struct png_info {
    int64_t w, h;
    int depth, color, channels;
    const uint8_t *plte;
    uint32_t n_plte;
    uint8_t *idat;          /* concatenated IDAT chunks (owned) */
    size_t idat_n;
} png_info;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int png_chunks(kn_op_ctx *c, const uint8_t *d, size_t n, png_info *pi)
{
    size_t pos = 8;
    bool have_ihdr = false;
    while (pos + 12 <= n) {
        uint32_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4, *body = d + pos + 8;
        if (len > n - pos - 12)
            return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: PNG chunk overruns the data");
        if (!memcmp(type, "IHDR", 4) && len >= 13) {
            pi->w = be32(body);
            pi->h = be32(body + 4);
            pi->depth = body[8];
            pi->color = body[9];
            if (body[10] || body[11])
                return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: unknown PNG compression/filter method");
            if (body[12])
                return kn_fail(c->err, KN_ERR_UNSUPPORTED, "ImageDecoder: interlaced PNG not supported");
            have_ihdr = true;
        } else if (!memcmp(type, "PLTE", 4)) {
            pi->plte = body;
            pi->n_plte = len / 3;
        } else if (!memcmp(type, "IDAT", 4) && len) {
            uint8_t *p = realloc(pi->idat, pi->idat_n + len);
            if (!p)
                return kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
            memcpy(p + pi->idat_n, body, len);
            pi->idat = p;
            pi->idat_n += len;
        } else if (!memcmp(type, "IEND", 4)) {
            break;
        }
        pos += (size_t)len + 12;
    }
    if (!have_ihdr || !pi->idat)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: PNG lacks IHDR or IDAT");
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    pi->channels = pi->color <= 6 ? chans[pi->color] : 0;
    bool ok_depth = pi->depth == 8 || ((pi->color == 0 || pi->color == 3) &&
                                       (pi->depth == 1 || pi->depth == 2 || pi->depth == 4));
    if (!pi->channels || !ok_depth)
        return kn_fail(c->err, KN_ERR_UNSUPPORTED, "ImageDecoder: PNG colour type %d with %d-bit samples not supported",
                       pi->color, pi->depth);
    if (pi->color == 3 && !pi->plte)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: paletted PNG without PLTE");
    return KN_OK;
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

static int png_to_rgb(kn_op_ctx *c, const png_info *pi, const uint8_t *raw, size_t row_bytes, rgb_image *img)
{
    int maxv = (1 << pi->depth) - 1;
    for (int64_t y = 0; y < pi->h; y++) {
        const uint8_t *px = raw + (size_t)y * (row_bytes + 1) + 1;
        for (int64_t x = 0; x < pi->w; x++) {
            uint8_t *dst = img->px + (y * pi->w + x) * 3;
            if (pi->depth < 8) {
                int64_t bit = x * pi->depth;
                int v = (px[bit / 8] >> (8 - pi->depth - bit % 8)) & maxv;
                if (pi->color == 0) {
                    dst[0] = dst[1] = dst[2] = (uint8_t)(v * 255 / maxv);
                    continue;
                }
                if ((uint32_t)v >= pi->n_plte)
                    return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: PNG palette index %d out of range", v);
                memcpy(dst, pi->plte + v * 3, 3);
                continue;
            }
            const uint8_t *p = px + x * pi->channels;
            if (pi->color == 3) {
                if (p[0] >= pi->n_plte)
                    return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: PNG palette index %d out of range", p[0]);
                memcpy(dst, pi->plte + p[0] * 3, 3);
            } else if (pi->color == 0 || pi->color == 4) {
                dst[0] = dst[1] = dst[2] = p[0]; /* alpha dropped */
            } else {
                memcpy(dst, p, 3); /* RGB or RGBA with alpha dropped */
            }
        }
    }
    return KN_OK;
}

static int decode_png(kn_op_ctx *c, const uint8_t *d, size_t n, rgb_image *img)
{
    png_info pi;
    memset(&pi, 0, sizeof pi);
    int rc = png_chunks(c, d, n, &pi);
    if (!rc)
        rc = image_alloc(c, img, pi.w, pi.h);
    size_t row_bytes = 0, bpp = 0;
    byte_out raw = {0};
    if (!rc) {
        row_bytes = (size_t)(((uint64_t)pi.w * (uint64_t)(pi.channels * pi.depth) + 7) / 8);
        bpp = (size_t)(pi.channels * pi.depth + 7) / 8;
        raw.cap = (row_bytes + 1) * (size_t)pi.h;
        raw.d = malloc(raw.cap);
        if (!raw.d)
            rc = kn_fail(c->err, KN_ERR_NOMEM, "out of memory");
    }
    if (!rc && zlib_inflate(pi.idat, pi.idat_n, &raw))
        rc = kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: corrupt PNG image data");
    if (!rc && png_unfilter(raw.d, pi.h, row_bytes, bpp))
        rc = kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: unknown PNG row filter");
    if (!rc)
        rc = png_to_rgb(c, &pi, raw.d, row_bytes, img);
    free(raw.d);
    free(pi.idat);
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
    size_t at = count * size <= 4 ? entry + 8 : tiff_u32(t, entry + 8);
    if (at > t->n || (size_t)count * size > t->n - at)
        return -1;
    at += k * size;
    *v = size == 2 ? tiff_u16(t, at) : tiff_u32(t, at);
    return 0;
}

typedef struct tiff_tags {
    uint32_t w, h, bits, comp, photo, spp, rps, planar;
    size_t offsets, counts;  /* IFD entries of StripOffsets / StripByteCounts (0: absent) */
} tiff_tags;

static int tiff_read_tags(kn_op_ctx *c, const tiff_file *t, tiff_tags *g)
{
    uint32_t ifd = tiff_u32(t, 4);
    if (ifd > t->n - 2)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF directory offset out of range");
    uint32_t n_entries = tiff_u16(t, ifd);
    if ((size_t)n_entries * 12 > t->n - ifd - 2)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF directory truncated");
    *g = (tiff_tags){.bits = 1, .comp = 1, .photo = 99, .spp = 1, .rps = UINT32_MAX, .planar = 1};
    for (uint32_t i = 0; i < n_entries; i++) {
        size_t e = ifd + 2 + (size_t)i * 12;
        uint32_t tag = tiff_u16(t, e), v = 0;
        uint32_t *dst = tag == 256 ? &g->w : tag == 257 ? &g->h : tag == 258 ? &g->bits : tag == 259 ? &g->comp
                      : tag == 262 ? &g->photo : tag == 277 ? &g->spp : tag == 278 ? &g->rps
                      : tag == 284 ? &g->planar : NULL;
        if (tag == 273)
            g->offsets = e;
        if (tag == 279)
            g->counts = e;
        if (!dst)
            continue;
        if (tiff_value(t, e, 0, &v))
            return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF tag %u unreadable", tag);
        *dst = v;
    }
    return KN_OK;
}

static int decode_tiff(kn_op_ctx *c, const uint8_t *d, size_t n, rgb_image *img)
{
    tiff_file t = {d, n, d[0] == 'M'};
    tiff_tags g;
    if (n < 8)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF data truncated");
    int rc = tiff_read_tags(c, &t, &g);
    if (rc)
        return rc;
    bool color = g.photo == 2 && g.spp >= 3, grey = (g.photo == 0 || g.photo == 1) && g.spp >= 1;
    if (g.comp != 1 || g.bits != 8 || g.planar != 1 || (!color && !grey))
        return kn_fail(c->err, KN_ERR_UNSUPPORTED,
                       "ImageDecoder: TIFF with compression %u, %u-bit samples, planar %u, photometric %u "
                       "not supported", g.comp, g.bits, g.planar, g.photo);
    if (!g.offsets || g.rps == 0)
        return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF lacks strip offsets");
    if ((rc = image_alloc(c, img, g.w, g.h)))
        return rc;
    size_t row = (size_t)g.w * g.spp;
    for (uint32_t y = 0; y < g.h; y++) {
        uint32_t strip_off;
        if (tiff_value(&t, g.offsets, y / g.rps, &strip_off))
            return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF strip %u missing", y / g.rps);
        size_t at = (size_t)strip_off + (size_t)(y % g.rps) * row;
        if (strip_off > n || at > n || row > n - at)
            return kn_fail(c->err, KN_ERR_ARG, "ImageDecoder: TIFF pixel data truncated");
        for (uint32_t x = 0; x < g.w; x++) {
            const uint8_t *p = d + at + (size_t)x * g.spp;
            uint8_t *dst = img->px + ((size_t)y * g.w + x) * 3;
            if (color) {
                memcpy(dst, p, 3); /* extra samples (alpha) dropped */
            } else {
                uint8_t v = g.photo == 0 ? (uint8_t)(255 - p[0]) : p[0];
                dst[0] = dst[1] = dst[2] = v;
            }
        }
    }
    return KN_OK;
}

/* ---- format detection and output ---- */

static int unsupported_format(kn_op_ctx *c, const uint8_t *d, size_t n)
{
    const char *name = "unknown";
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        name = "JPEG";
    else if (n >= 12 && (!memcmp(d, "\0\0\0\x0cjP  ", 8) || (d[0] == 0xFF && d[1] == 0x4F)))
        name = "JPEG 2000";
    else if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
        name = "WebP";
    return kn_fail(c->err, KN_ERR_UNSUPPORTED, "ImageDecoder: %s images are not supported", name);
}

static int write_output(kn_op_ctx *c, const rgb_image *img, enum pixel_format fmt)
{
    int64_t dims[3] = {img->h, img->w, fmt == FMT_GRAY ? 1 : 3};
    kn_tensor *o = kn_op_output(c, 0, KN_U8, 3, dims);
    if (!o)
        return c->err->code;
    uint8_t *dst = o->data;
    for (int64_t i = 0; i < img->w * img->h; i++) {
        const uint8_t *p = img->px + i * 3;
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
    const uint8_t *d = x->data;
    size_t n = (size_t)x->numel;
    rgb_image img = {0};
    int rc;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M')
        rc = decode_bmp(c, d, n, &img);
    else if (n >= 3 && d[0] == 'P' && (d[1] == '5' || d[1] == '6'))
        rc = decode_pnm(c, d, n, &img);
    else if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8))
        rc = decode_png(c, d, n, &img);
    else if (n >= 8 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        rc = decode_tiff(c, d, n, &img);
    else
        rc = unsupported_format(c, d, n);
    if (!rc)
        rc = write_output(c, &img, fmt);
    free(img.px);
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
