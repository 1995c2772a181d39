/* test_image_formats.c - unit tests for src/formats/inflate.c and src/formats/image.c
 * called directly (the ImageDecoder operator on top is tested in test_ops_image.c):
 * inflate of stored, fixed and dynamic blocks, the output cap, malformed streams;
 * headers claiming huge images refused before allocating (for every format: the pixel
 * cap, and the data actually present); kn_image_free on an empty image. */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/image.h"
#include "formats/inflate.h"

static int inflate_into(const uint8_t *z, size_t n, uint8_t *out, size_t cap, size_t *got)
{
    kn_error err = {0};
    return kn_zlib_inflate(z, n, out, cap, got, &err);
}

static void test_inflate_blocks(void)
{
    uint8_t out[400];
    size_t got;
    /* fixed Huffman, "a" */
    static const uint8_t a[] = {0x78, 0x9c, 0x4b, 0x04, 0x00, 0x00, 0x62, 0x00, 0x62};
    CHECK_EQ_INT(inflate_into(a, sizeof a, out, sizeof out, &got), KN_OK);
    CHECK_EQ_INT(got, 1);
    CHECK_EQ_INT(out[0], 'a');
    /* "abc" * 100: literals then one long overlapping match chain */
    static const uint8_t abc[] = {0x78, 0xda, 0x4b, 0x4c, 0x4a, 0x4e, 0x1c, 0x45, 0xc4, 0x21, 0x00, 0x88, 0x4d,
                                  0x72, 0xd9};
    CHECK_EQ_INT(inflate_into(abc, sizeof abc, out, sizeof out, &got), KN_OK);
    CHECK_EQ_INT(got, 300);
    CHECK(got == 300 && !memcmp(out + 297, "abc", 3));
    /* stored block "hi" */
    static const uint8_t stored[] = {0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 'h', 'i'};
    CHECK_EQ_INT(inflate_into(stored, sizeof stored, out, sizeof out, &got), KN_OK);
    CHECK(got == 2 && out[0] == 'h' && out[1] == 'i');
}

static void test_inflate_cap_and_errors(void)
{
    uint8_t out[400];
    size_t got;
    static const uint8_t abc[] = {0x78, 0xda, 0x4b, 0x4c, 0x4a, 0x4e, 0x1c, 0x45, 0xc4, 0x21, 0x00, 0x88, 0x4d,
                                  0x72, 0xd9};
    /* the output may not grow past the capacity, however the stream is cut */
    for (size_t cap = 0; cap < 300; cap += 7)
        CHECK_EQ_INT(inflate_into(abc, sizeof abc, out, cap, &got), KN_ERR_ARG);
    CHECK_EQ_INT(inflate_into(abc, sizeof abc, NULL, 0, &got), KN_ERR_ARG);
    /* truncated anywhere */
    for (size_t n = 0; n < 11; n++) /* the deflate data ends at 11 (Adler-32 unchecked) */
        CHECK_EQ_INT(inflate_into(abc, n, out, sizeof out, &got), KN_ERR_ARG);
    /* a match reaching before the start of the output */
    static const uint8_t far[] = {0x78, 0x01, 0x03, 0x02, 0x00};
    CHECK_EQ_INT(inflate_into(far, sizeof far, out, sizeof out, &got), KN_ERR_ARG);
    /* stored length check, bad header, preset dictionary, block type 3 */
    static const uint8_t nlen[] = {0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xfe, 'h', 'i'};
    CHECK_EQ_INT(inflate_into(nlen, sizeof nlen, out, sizeof out, &got), KN_ERR_ARG);
    static const uint8_t hdr[] = {0x79, 0x01, 0x03, 0x00};
    CHECK_EQ_INT(inflate_into(hdr, sizeof hdr, out, sizeof out, &got), KN_ERR_ARG);
    static const uint8_t dict[] = {0x78, 0xbb, 0, 0, 0, 0, 0x03, 0x00};
    CHECK_EQ_INT(inflate_into(dict, sizeof dict, out, sizeof out, &got), KN_ERR_ARG);
    static const uint8_t type3[] = {0x78, 0x01, 0x07, 0x00};
    CHECK_EQ_INT(inflate_into(type3, sizeof type3, out, sizeof out, &got), KN_ERR_ARG);
}

static int decode(const uint8_t *d, size_t n, kn_image *img)
{
    kn_error err = {0};
    int rc = kn_image_decode(d, n, img, &err);
    if (rc == KN_OK)
        return rc;
    CHECK(img->data == NULL && img->width == 0);
    return rc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* A 24-bit BMP header claiming w x h, followed by a few bytes only. */
static void test_bmp_huge(void)
{
    uint8_t b[64] = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0};
    b[26] = 1;
    b[28] = 24;
    kn_image img;
    put_le32(b + 18, 100000);
    put_le32(b + 22, 100000);
    CHECK_EQ_INT(decode(b, sizeof b, &img), KN_ERR_ARG);
    put_le32(b + 18, 16000); /* under the pixel cap: refused for the missing data */
    put_le32(b + 22, 16000);
    CHECK_EQ_INT(decode(b, sizeof b, &img), KN_ERR_ARG);
    put_le32(b + 22, (uint32_t)INT32_MIN);
    CHECK_EQ_INT(decode(b, sizeof b, &img), KN_ERR_ARG);
    put_le32(b + 18, 0);
    put_le32(b + 22, 1);
    CHECK_EQ_INT(decode(b, sizeof b, &img), KN_ERR_ARG);
    put_le32(b + 18, 2); /* 2x1: 8 bytes of row, 10 present */
    CHECK_EQ_INT(decode(b, sizeof b, &img), KN_OK);
    CHECK(img.width == 2 && img.height == 1 && img.channels == 3);
    kn_image_free(&img);
    kn_image_free(&img);
}

static void test_pnm_huge(void)
{
    kn_image img;
    static const char huge[] = "P6 100000 100000 255 abc";
    CHECK_EQ_INT(decode((const uint8_t *)huge, sizeof huge - 1, &img), KN_ERR_ARG);
    static const char big[] = "P5 16000 16000 255 abc";
    CHECK_EQ_INT(decode((const uint8_t *)big, sizeof big - 1, &img), KN_ERR_ARG);
    static const char zero[] = "P5 0 3 255 abc";
    CHECK_EQ_INT(decode((const uint8_t *)zero, sizeof zero - 1, &img), KN_ERR_ARG);
}

/* PNG with IHDR w x h (8-bit grey) and the given zlib stream as its only IDAT. */
static size_t make_png(uint8_t *p, uint32_t w, uint32_t h, const uint8_t *z, uint32_t zn)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(p, sig, 8);
    put_be32(p + 8, 13);
    memcpy(p + 12, "IHDR", 4);
    put_be32(p + 16, w);
    put_be32(p + 20, h);
    p[24] = 8;
    p[25] = p[26] = p[27] = p[28] = 0;
    put_be32(p + 29, 0); /* CRC (not checked) */
    put_be32(p + 33, zn);
    memcpy(p + 37, "IDAT", 4);
    memcpy(p + 41, z, zn);
    put_be32(p + 41 + zn, 0);
    put_be32(p + 45 + zn, 0);
    memcpy(p + 49 + zn, "IEND", 4);
    put_be32(p + 53 + zn, 0);
    return 57 + zn;
}

static void test_png_huge(void)
{
    /* 1x1 grey: filter 0, sample 7, as a stored block */
    static const uint8_t z[] = {0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0, 7};
    uint8_t p[128];
    kn_image img;
    size_t n = make_png(p, 1, 1, z, sizeof z);
    CHECK_EQ_INT(decode(p, n, &img), KN_OK);
    CHECK(img.data && img.data[0] == 7 && img.data[2] == 7);
    kn_image_free(&img);
    n = make_png(p, 100000, 100000, z, sizeof z);
    CHECK_EQ_INT(decode(p, n, &img), KN_ERR_ARG);
    /* under the pixel cap, but 9 bytes of deflate cannot expand to 256 MB */
    n = make_png(p, 16000, 16000, z, sizeof z);
    CHECK_EQ_INT(decode(p, n, &img), KN_ERR_ARG);
    n = make_png(p, 0x80000000u, 1, z, sizeof z);
    CHECK_EQ_INT(decode(p, n, &img), KN_ERR_ARG);
    /* the stream holds more bytes than the image needs */
    n = make_png(p, 1, 1, (const uint8_t[]){0x78, 0x01, 0x01, 0x03, 0x00, 0xfc, 0xff, 0, 7, 7}, 10);
    CHECK_EQ_INT(decode(p, n, &img), KN_ERR_ARG);
    /* no IHDR */
    memcpy(p + 12, "ABCD", 4);
    CHECK_EQ_INT(decode(p, n, &img), KN_ERR_ARG);
}

/* Little-endian TIFF: grey, one strip at offset `off`, claiming w x h. */
static size_t make_tiff(uint8_t *t, uint32_t w, uint32_t h, uint32_t rps, uint32_t off, size_t n)
{
    static const uint16_t tags[8] = {256, 257, 258, 259, 262, 273, 277, 278};
    uint32_t vals[8] = {w, h, 8, 1, 1, off, 1, rps};
    memset(t, 0, n);
    memcpy(t, "II*\0", 4);
    put_le32(t + 4, 8);
    t[8] = 8;
    for (int i = 0; i < 8; i++) {
        uint8_t *e = t + 10 + i * 12;
        e[0] = (uint8_t)tags[i];
        e[1] = (uint8_t)(tags[i] >> 8);
        e[2] = 4; /* LONG */
        e[4] = 1;
        put_le32(e + 8, vals[i]);
    }
    return n;
}

static void test_tiff_huge(void)
{
    uint8_t t[200];
    kn_image img;
    size_t n = make_tiff(t, 4, 2, 2, 110, sizeof t);
    CHECK_EQ_INT(decode(t, n, &img), KN_OK);
    kn_image_free(&img);
    n = make_tiff(t, 100000, 100000, 100000, 110, sizeof t);
    CHECK_EQ_INT(decode(t, n, &img), KN_ERR_ARG);
    /* 16 rows of 8 bytes: 128 bytes that do not fit after offset 110 */
    n = make_tiff(t, 8, 16, 16, 110, sizeof t);
    CHECK_EQ_INT(decode(t, n, &img), KN_ERR_ARG);
    /* one strip offset shared by every row (rows per strip 1, one offset): strip 1
     * missing; and a header far bigger than the file refused before allocating */
    n = make_tiff(t, 4, 2, 1, 110, sizeof t);
    CHECK_EQ_INT(decode(t, n, &img), KN_ERR_ARG);
    n = make_tiff(t, 16000, 16000, 1, 0, sizeof t);
    CHECK_EQ_INT(decode(t, n, &img), KN_ERR_ARG);
    n = make_tiff(t, 0, 3, 1, 110, sizeof t);
    CHECK_EQ_INT(decode(t, n, &img), KN_ERR_ARG);
}

static void test_formats_unknown(void)
{
    kn_image img;
    CHECK_EQ_INT(decode((const uint8_t *)"", 0, &img), KN_ERR_UNSUPPORTED);
    CHECK_EQ_INT(decode((const uint8_t *)"GIF89a", 6, &img), KN_ERR_UNSUPPORTED);
    CHECK_EQ_INT(decode((const uint8_t *)"BM", 2, &img), KN_ERR_ARG);
    CHECK_EQ_INT(decode((const uint8_t *)"P6", 2, &img), KN_ERR_UNSUPPORTED);
    CHECK_EQ_INT(decode((const uint8_t *)"P6 ", 3, &img), KN_ERR_ARG);
    CHECK_EQ_INT(decode((const uint8_t *)"II*\0\0\0\0\0", 8, &img), KN_ERR_ARG);
}

TEST_MAIN(TEST_CASE(test_inflate_blocks), TEST_CASE(test_inflate_cap_and_errors), TEST_CASE(test_bmp_huge),
          TEST_CASE(test_pnm_huge), TEST_CASE(test_png_huge), TEST_CASE(test_tiff_huge),
          TEST_CASE(test_formats_unknown))
