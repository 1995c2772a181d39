/* test_ops_image.c - unit tests for the 'image' operator family (ImageDecoder):
 * bottom-up and top-down BMP, paletted BMP, PNM with comments, P5 grey, PNG with
 * every row filter and a 2-bit paletted PNG in stored deflate blocks, big-endian
 * TIFF, BGR and Grayscale output, lossy formats reported unsupported, and truncated
 * or corrupted files (every byte of a PNG flipped in turn) failing cleanly. */
#include "test.h"
#include "op_harness.h"

#include <stdint.h>

/* Decode data with pixel_format pf (NULL: default); *y receives the owned output. */
static int decode(const uint8_t *data, int64_t n, kn_dtype dt, const char *pf, kn_tensor *y, kn_error *err)
{
    kn_tensor x = kt_view(dt, 1, &n, (void *)data);
    kt_node dec = {"ImageDecoder", 20, 1, {&x}, 1};
    if (pf)
        kt_add_attr(&dec, kt_attr_str("pixel_format", pf));
    return kt_run_node(&dec, y, err);
}

static void expect_image(const uint8_t *data, int64_t n, const char *pf, int64_t h, int64_t w, int64_t ch,
                         const uint8_t *want)
{
    kn_tensor y;
    kn_error err = {0};
    int rc = decode(data, n, KN_U8, pf, &y, &err);
    CHECK_EQ_INT(rc, KN_OK);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK_EQ_INT(y.dtype, KN_U8);
    CHECK_EQ_INT(y.rank, 3);
    CHECK_EQ_INT(y.dims[0], h);
    CHECK_EQ_INT(y.dims[1], w);
    CHECK_EQ_INT(y.dims[2], ch);
    if (y.numel == h * w * ch)
        CHECK(memcmp(y.data, want, (size_t)y.numel) == 0);
    kn_tensor_release(&y);
}

static int expect_code(const uint8_t *data, int64_t n, const char *pf, int code)
{
    kn_tensor y;
    kn_error err = {0};
    int rc = decode(data, n, KN_U8, pf, &y, &err);
    if (code >= 0)
        CHECK_EQ_INT(rc, code);
    if (rc == KN_OK)
        kn_tensor_release(&y);
    return rc;
}

/* 2x2 24-bit BMP; height > 0 is bottom-up, so the first stored row is the bottom one. */
static uint8_t bmp24[] = {
    'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,
    40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0, 16, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* bottom row: (B,G,R) */ 1, 2, 3, 4, 5, 6, 0, 0,
    /* top row */ 7, 8, 9, 10, 11, 12, 0, 0};

static void test_bmp(void)
{
    static const uint8_t rgb[] = {9, 8, 7, 12, 11, 10, 3, 2, 1, 6, 5, 4};
    expect_image(bmp24, sizeof bmp24, NULL, 2, 2, 3, rgb);
    static const uint8_t bgr[] = {7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6};
    expect_image(bmp24, sizeof bmp24, "BGR", 2, 2, 3, bgr);
    /* top-down: height -2 */
    uint8_t td[sizeof bmp24];
    memcpy(td, bmp24, sizeof td);
    td[22] = 0xFE;
    td[23] = td[24] = td[25] = 0xFF;
    static const uint8_t rgb_td[] = {3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10};
    expect_image(td, sizeof td, "RGB", 2, 2, 3, rgb_td);
    /* truncated pixel rows, RLE compression */
    expect_code(bmp24, sizeof bmp24 - 3, NULL, KN_ERR_ARG);
    memcpy(td, bmp24, sizeof td);
    td[30] = 1;
    expect_code(td, sizeof td, NULL, KN_ERR_UNSUPPORTED);
}

/* 3x1 8-bit paletted BMP with a 2-colour palette and an index past it. */
static void test_bmp_palette(void)
{
    uint8_t b[62 + 4] = {'B', 'M', 66, 0, 0, 0, 0, 0, 0, 0, 62, 0, 0, 0,
                         40, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0};
    b[46] = 2; /* colours used */
    uint8_t pal[8] = {30, 20, 10, 0, 3, 2, 1, 0};
    memcpy(b + 54, pal, 8);
    uint8_t row[4] = {1, 0, 1, 0};
    memcpy(b + 62, row, 4);
    static const uint8_t want[] = {1, 2, 3, 10, 20, 30, 1, 2, 3};
    expect_image(b, sizeof b, NULL, 1, 3, 3, want);
    /* grayscale: (1*19595 + 2*38470 + 3*7471 + 32768) >> 16 = 2 */
    static const uint8_t grey[] = {2, 18, 2};
    expect_image(b, sizeof b, "Grayscale", 1, 3, 1, grey);
    b[63] = 5;
    expect_code(b, sizeof b, NULL, KN_ERR_ARG);
}

static void test_pnm(void)
{
    static const char p6[] = "P6\n# a comment\n2 1\n255\n\x01\x02\x03\xfa\xfb\xfc";
    static const uint8_t want[] = {1, 2, 3, 250, 251, 252};
    expect_image((const uint8_t *)p6, sizeof p6 - 1, NULL, 1, 2, 3, want);
    static const char p5[] = "P5 2 2 255 \x00\x10\x20\xff";
    static const uint8_t grey[] = {0, 0, 0, 16, 16, 16, 32, 32, 32, 255, 255, 255};
    expect_image((const uint8_t *)p5, sizeof p5 - 1, NULL, 2, 2, 3, grey);
    static const uint8_t grey1[] = {0, 16, 32, 255};
    expect_image((const uint8_t *)p5, sizeof p5 - 1, "Grayscale", 2, 2, 1, grey1);
    expect_code((const uint8_t *)p6, sizeof p6 - 2, NULL, KN_ERR_ARG);
    static const char deep[] = "P6 1 1 65535 \x00\x01\x00\x02\x00\x03";
    expect_code((const uint8_t *)deep, sizeof deep - 1, NULL, KN_ERR_UNSUPPORTED);
    static const char bad[] = "P6 x 1 255 ";
    expect_code((const uint8_t *)bad, sizeof bad - 1, NULL, KN_ERR_ARG);
    static const char huge[] = "P6 9999999 9999999 255 ";
    expect_code((const uint8_t *)huge, sizeof huge - 1, NULL, KN_ERR_ARG);
}

/* Made with zlib level 9; rows use Paeth, Sub and Average filters. */
static const uint8_t png_rgb5x3[] = {137,80,78,71,13,10,26,10,0,0,0,13,73,72,68,82,0,0,0,5,0,0,0,3,8,2,0,0,0,212,84,82,175,0,0,0,46,73,68,65,84,120,218,99,97,96,96,208,224,229,212,224,149,214,224,213,213,224,181,103,100,143,98,68,230,51,115,183,51,73,152,176,74,152,240,73,152,136,75,152,40,0,0,112,227,5,65,88,190,21,212,0,0,0,0,73,69,78,68,174,66,96,130};
static const uint8_t png_rgb5x3_px[] = {0,0,0,40,13,9,80,26,36,120,39,81,160,52,144,7,90,1,47,103,10,87,116,37,127,129,82,167,142,145,14,180,2,54,193,11,94,206,38,134,219,83,174,232,146};
/* 2-bit paletted 3x2, stored (uncompressed) deflate block. */
static const uint8_t png_pal3x2[] = {137,80,78,71,13,10,26,10,0,0,0,13,73,72,68,82,0,0,0,3,0,0,0,2,2,3,0,0,0,224,26,142,137,0,0,0,12,80,76,84,69,255,0,0,0,255,0,0,0,255,9,8,7,162,210,98,192,0,0,0,15,73,68,65,84,120,1,1,4,0,251,255,0,24,0,240,1,60,1,9,252,72,43,170,0,0,0,0,73,69,78,68,174,66,96,130};

/* 40x30 grey, zlib level 9 with a dynamic Huffman block: pixels from an LCG. */
static const uint8_t png_dyn40x30[] = {
    137,80,78,71,13,10,26,10,0,0,0,13,73,72,68,82,0,0,0,40,0,0,0,30,
    8,0,0,0,0,123,182,3,1,0,0,2,148,73,68,65,84,120,218,37,148,185,13,4,
    49,8,69,65,66,66,100,78,157,187,1,58,112,11,244,64,19,116,191,207,179,187,201,28,
    6,254,197,200,113,157,25,155,117,156,159,166,186,250,49,207,60,89,125,189,250,196,216,214,
    43,190,182,167,239,105,171,235,209,28,175,162,226,120,92,247,246,211,175,3,79,196,143,138,
    140,235,221,178,203,195,123,110,89,24,39,123,219,9,110,212,221,174,138,219,217,122,60,79,
    81,125,215,190,244,87,10,233,81,201,69,56,103,54,119,19,15,155,159,187,78,107,132,222,
    149,211,34,26,94,146,22,91,84,115,219,6,35,8,102,1,161,152,122,68,104,238,103,67,
    99,100,178,22,40,174,236,147,91,50,93,214,196,2,143,7,40,187,67,124,244,17,200,210,
    104,223,29,126,245,136,206,206,213,208,58,38,174,219,18,49,62,40,12,153,165,62,185,50,
    220,66,22,92,84,239,133,194,66,37,161,237,66,40,196,232,200,61,102,22,46,135,142,203,
    173,223,227,10,116,24,116,84,196,24,95,18,187,237,52,157,153,227,219,68,96,29,59,38,
    132,137,32,57,18,234,180,172,167,187,106,205,95,22,84,222,159,104,244,89,237,247,36,154,
    190,27,143,149,222,79,164,202,203,11,151,150,55,177,233,113,214,131,232,59,158,221,121,67,
    82,94,227,80,235,68,240,117,179,195,172,78,250,194,91,222,1,186,204,196,96,119,241,203,
    251,42,114,137,41,81,1,110,128,32,200,78,110,144,109,172,222,207,213,87,187,23,116,174,
    200,75,6,44,113,195,107,61,5,143,155,114,234,65,245,194,15,144,225,22,145,169,218,50,
    143,138,189,122,6,207,236,179,72,194,193,19,245,126,213,110,146,149,146,62,223,95,39,119,
    220,187,51,165,0,3,66,28,105,198,45,27,124,246,217,215,162,40,42,177,217,250,194,225,
    40,37,164,146,240,16,19,93,114,128,88,126,31,132,124,217,91,121,214,147,155,172,67,202,
    111,157,41,146,178,224,226,245,86,129,189,112,79,33,4,232,215,164,193,115,158,82,67,32,
    113,6,196,178,178,151,105,167,178,17,68,138,48,11,241,193,202,133,29,220,241,239,37,66,
    112,147,209,18,11,201,180,96,158,83,107,157,59,3,120,185,205,219,7,242,92,169,86,108,
    231,161,24,149,56,194,174,34,228,83,14,65,191,221,237,122,206,128,220,238,65,187,142,14,
    150,84,223,60,20,222,74,103,185,103,200,192,129,48,130,179,152,196,80,206,41,53,85,26,
    18,157,27,248,122,111,16,128,231,197,141,198,61,111,94,86,25,251,52,124,24,188,14,201,
    171,183,37,143,78,73,27,60,89,174,203,65,136,74,98,55,99,55,155,125,152,191,236,114,
    49,96,69,220,241,38,77,131,22,69,228,20,39,146,168,192,31,76,154,215,22,139,185,154,
    254,247,105,87,36,242,213,177,174,94,198,9,246,84,236,125,187,184,226,139,243,28,97,223,
    126,186,33,153,145,254,146,142,136,0,0,0,0,73,69,78,68,174,66,96,130};

static void test_png_dynamic_huffman(void)
{
    static uint8_t want[40 * 30 * 3];
    uint32_t s = 1;
    for (int i = 0; i < 40 * 30; i++) {
        s = (s * 1103515245u + 12345u) & 0x7fffffffu;
        unsigned v = (s >> 16) % 16;
        want[i * 3] = want[i * 3 + 1] = want[i * 3 + 2] = (uint8_t)(v < 12 ? v * v : 7);
    }
    expect_image(png_dyn40x30, sizeof png_dyn40x30, NULL, 30, 40, 3, want);
    /* truncated inside the compressed stream */
    uint8_t cut[sizeof png_dyn40x30];
    memcpy(cut, png_dyn40x30, sizeof cut);
    cut[35] = 0; /* IDAT length 660 -> 148: the stream ends early */
    expect_code(cut, sizeof cut, NULL, KN_ERR_ARG);
    /* a file that ends right after that short IDAT chunk */
    expect_code(cut, 33 + 12 + 148, NULL, KN_ERR_ARG);
}

static void test_png(void)
{
    expect_image(png_rgb5x3, sizeof png_rgb5x3, NULL, 3, 5, 3, png_rgb5x3_px);
    static const uint8_t pal[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7, 9, 8, 7, 255, 0, 0};
    expect_image(png_pal3x2, sizeof png_pal3x2, NULL, 2, 3, 3, pal);
    expect_code(png_rgb5x3, 40, NULL, KN_ERR_ARG);
    /* interlaced */
    uint8_t p[sizeof png_rgb5x3];
    memcpy(p, png_rgb5x3, sizeof p);
    p[28] = 1;
    expect_code(p, sizeof p, NULL, KN_ERR_UNSUPPORTED);
}

/* Every single-byte corruption of a PNG decodes or fails; none may crash. */
static void test_png_corruption(void)
{
    uint8_t p[sizeof png_rgb5x3];
    int failures = 0;
    for (size_t i = 8; i < sizeof p; i++) {
        for (int flip = 1; flip < 256; flip <<= 1) {
            memcpy(p, png_rgb5x3, sizeof p);
            p[i] ^= (uint8_t)flip;
            if (expect_code(p, sizeof p, NULL, -1) != KN_OK)
                failures++;
        }
    }
    CHECK(failures > 0);
    for (size_t n = 0; n < sizeof png_pal3x2; n++)
        expect_code(png_pal3x2, (int64_t)n, NULL, -1);
}

/* Big-endian TIFF, 2x1 grey (BlackIsZero), one strip. */
static void test_tiff(void)
{
    uint8_t t[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 7,
                   1, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 0,    /* width 2 */
                   1, 1, 0, 3, 0, 0, 0, 1, 0, 1, 0, 0,    /* height 1 */
                   1, 2, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0,    /* 8 bits */
                   1, 3, 0, 3, 0, 0, 0, 1, 0, 1, 0, 0,    /* no compression */
                   1, 6, 0, 3, 0, 0, 0, 1, 0, 1, 0, 0,    /* BlackIsZero */
                   1, 17, 0, 4, 0, 0, 0, 1, 0, 0, 0, 98,  /* strip offset */
                   1, 23, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2,   /* strip bytes */
                   0, 0, 0, 0,                            /* no next directory */
                   77, 200};
    CHECK_EQ_INT(sizeof t, 100);
    static const uint8_t want[] = {77, 77, 77, 200, 200, 200};
    expect_image(t, sizeof t, NULL, 1, 2, 3, want);
    expect_code(t, sizeof t - 1, NULL, KN_ERR_ARG);
    t[55] = 5; /* LZW */
    expect_code(t, sizeof t, NULL, KN_ERR_UNSUPPORTED);
    for (size_t n = 0; n < sizeof t; n++)
        expect_code(t, (int64_t)n, NULL, -1);
}

static void test_unsupported_and_bad(void)
{
    static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F'};
    expect_code(jpeg, sizeof jpeg, NULL, KN_ERR_UNSUPPORTED);
    static const uint8_t webp[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
    expect_code(webp, sizeof webp, NULL, KN_ERR_UNSUPPORTED);
    expect_code(jpeg, 0, NULL, KN_ERR_UNSUPPORTED);
    expect_code(bmp24, sizeof bmp24, "CMYK", KN_ERR_MODEL);
    kn_tensor y;
    kn_error err = {0};
    CHECK_EQ_INT(decode(bmp24, 8, KN_I8, NULL, &y, &err), KN_ERR_UNSUPPORTED);
}

TEST_MAIN(TEST_CASE(test_bmp), TEST_CASE(test_bmp_palette), TEST_CASE(test_pnm), TEST_CASE(test_png), TEST_CASE(test_png_dynamic_huffman),
          TEST_CASE(test_png_corruption), TEST_CASE(test_tiff), TEST_CASE(test_unsupported_and_bad))
