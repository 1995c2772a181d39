/* test_ops_image.c - unit tests for the 'image' operator family (ImageDecoder):
 * bottom-up and top-down BMP, paletted BMP, PNM with comments, P5 grey, PNG with
 * every row filter and a 2-bit paletted PNG in stored deflate blocks, big-endian
 * TIFF, BGR and Grayscale output, lossy formats reported unsupported, and truncated
 * or corrupted files (every byte of a PNG flipped in turn) failing cleanly. */
#include "test.h"

#include <stdint.h>

#include "exec/exec.h"

/* Decode data with pixel_format pf (NULL: default); *y receives the owned output. */
static int decode(const uint8_t *data, int64_t n, kn_dtype dt, const char *pf, kn_tensor *y, kn_error *err)
{
    kn_model *m = kn_model_new();
    m->n_opsets = 1;
    m->opsets = kn_arena_calloc(&m->arena, 1, sizeof *m->opsets);
    m->opsets[0].domain = "";
    m->opsets[0].version = 20;
    kn_graph *g = kn_graph_new(m, NULL);
    m->graph = g;
    int in_id = kn_graph_value(g, "data"), out_id = kn_graph_value(g, "image");
    kn_graph_add_input(g, in_id);
    kn_graph_add_output(g, out_id);
    kn_node *nd = kn_graph_add_node(g);
    nd->name = "dec";
    nd->op_type = "ImageDecoder";
    nd->domain = "";
    nd->n_in = 1;
    nd->in = kn_arena_calloc(&m->arena, 1, sizeof(int));
    nd->in[0] = in_id;
    nd->n_out = 1;
    nd->out = kn_arena_calloc(&m->arena, 1, sizeof(int));
    nd->out[0] = out_id;
    if (pf) {
        nd->attrs = kn_arena_calloc(&m->arena, 1, sizeof(kn_attr));
        nd->attrs[0].name = "pixel_format";
        nd->attrs[0].type = KN_ATTR_STRING;
        nd->attrs[0].s = pf;
        nd->attrs[0].s_len = strlen(pf);
        nd->n_attr = 1;
    }
    kn_tensor x = {0};
    kn_tensor_set_shape(&x, dt, 1, &n, err);
    x.data = (void *)data;
    int rc = kn_model_finalize(m, err);
    if (!rc) {
        const kn_tensor *in[1] = {&x};
        rc = kn_exec_graph(g, NULL, 1, in, 1, y, err);
    }
    kn_model_free(m);
    return rc;
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

TEST_MAIN(TEST_CASE(test_bmp), TEST_CASE(test_bmp_palette), TEST_CASE(test_pnm), TEST_CASE(test_png),
          TEST_CASE(test_png_corruption), TEST_CASE(test_tiff), TEST_CASE(test_unsupported_and_bad))
