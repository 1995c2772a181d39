/* test_serve_image.c - the server's image path: JPEG/PNG decoding (images written
 * here with libjpeg and libpng: RGB, gray, low bit depths, palette + tRNS, 16-bit,
 * alpha, interlaced, CMYK; every truncation, corrupt bytes, huge declared sizes,
 * other formats), preprocessing against a plain per-pixel reference on awkward
 * sizes, and multipart/form-data parsing edge cases. */
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <png.h>

#include "serve/image_io.h"
#include "serve/multipart.h"
#include "serve/preprocess.h"

/* ------------------------------------------------------------ writers */

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void membuf_put(membuf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void png_write_membuf(png_structp png, png_bytep data, size_t n)
{
    membuf_put(png_get_io_ptr(png), data, n);
}

static void png_flush_nothing(png_structp png)
{
    (void)png;
}

/* A PNG of w x h with the given type/depth; `rows` holds the packed rows as libpng
 * expects them (16-bit samples big-endian).  palette/trns optional. */
typedef struct png_spec {
    int w, h, color, depth, interlace;
    const uint8_t *rows;
    const png_color *palette;
    int npalette;
    const uint8_t *trns;
    int ntrns;
} png_spec;

static membuf write_png(const png_spec *s)
{
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        abort();
    png_set_write_fn(png, &b, png_write_membuf, png_flush_nothing);
    png_set_IHDR(png, info, s->w, s->h, s->depth, s->color,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->palette)
        png_set_PLTE(png, info, s->palette, s->npalette);
    if (s->trns)
        png_set_tRNS(png, info, s->trns, s->ntrns, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc((size_t)s->h * sizeof *rows);
    for (int y = 0; y < s->h; y++)
        rows[y] = (png_bytep)s->rows + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

/* With KILN_WRITE_SEEDS=DIR set, the images written here are also saved to DIR
 * (the fuzz seeds in tests/fuzz/seeds/serve_image were made this way). */
static void save_seed(const char *name, const membuf *b)
{
    const char *dir = getenv("KILN_WRITE_SEEDS");
    if (!dir || !dir[0])
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b->p, 1, b->n, f);
        fclose(f);
    }
}

/* A JPEG (progressive when quality < 0, using -quality); in_space JCS_RGB (3),
 * JCS_GRAYSCALE (1) or JCS_CMYK (4). */
static membuf write_jpeg(int w, int h, J_COLOR_SPACE in_space, int comps, const uint8_t *pixels, int quality)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long out_len = 0;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &out, &out_len);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = in_space;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality < 0 ? -quality : quality, TRUE);
    if (quality < 0)
        jpeg_simple_progression(&ci);
    if (in_space == JCS_RGB) { /* full chroma resolution keeps colours near exact */
        ci.comp_info[0].h_samp_factor = ci.comp_info[0].v_samp_factor = 1;
    }
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)pixels + (size_t)ci.next_scanline * (size_t)w * (size_t)comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    membuf b = {0};
    membuf_put(&b, out, out_len);
    free(out);
    return b;
}

static uint8_t *gradient(int w, int h, int c)
{
    uint8_t *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] = (uint8_t)((x * 255 / (w > 1 ? w - 1 : 1) + y * 7 + k * 60) & 0xff);
    return p;
}

/* ------------------------------------------------------------ decode: PNG */

static int decode(const membuf *b, kn_serve_image *img, kn_error *err)
{
    return kn_serve_image_decode(b->p, b->n, img, err);
}

static void test_png_rgb_gray_exact(void)
{
    for (int c = 1; c <= 3; c += 2) {
        int w = 13, h = 7;
        uint8_t *px = gradient(w, h, c);
        png_spec s = {w, h, c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0};
        for (int inter = 0; inter <= 1; inter++) {
            s.interlace = inter;
            membuf b = write_png(&s);
            kn_serve_image img;
            kn_error err;
            CHECK_EQ_INT(decode(&b, &img, &err), KN_OK);
            CHECK_EQ_INT(img.width, w);
            CHECK_EQ_INT(img.height, h);
            CHECK_EQ_INT(img.channels, c);
            CHECK(img.pixels && memcmp(img.pixels, px, (size_t)w * h * c) == 0);
            kn_serve_image_free(&img);
            kn_serve_image_free(&img);
            CHECK(img.pixels == NULL);
            free(b.p);
        }
        free(px);
    }
}

/* Write s as a PNG, decode it, check size and channel count; 1 when pixels came. */
static int png_round_trip(const png_spec *s, kn_serve_image *img, int channels)
{
    membuf b = write_png(s);
    char name[64];
    snprintf(name, sizeof name, "png_c%d_d%d_%dx%d.png", s->color, s->depth, s->w, s->h);
    save_seed(name, &b);
    kn_error err;
    int rc = decode(&b, img, &err);
    free(b.p);
    CHECK_EQ_INT(rc, KN_OK);
    CHECK(img->width == s->w && img->height == s->h);
    CHECK_EQ_INT(img->channels, channels);
    return rc == KN_OK && img->pixels != NULL;
}

static void test_png_low_bit_gray(void)
{
    /* 1-bit: 10 pixels 1010011100 in one row -> 0/255 samples */
    uint8_t row1[2] = {0xA7, 0x00};
    png_spec s = {10, 1, PNG_COLOR_TYPE_GRAY, 1, 0, row1, NULL, 0, NULL, 0};
    kn_serve_image img;
    static const uint8_t want1[10] = {255, 0, 255, 0, 0, 255, 255, 255, 0, 0};
    if (png_round_trip(&s, &img, 1))
        CHECK(memcmp(img.pixels, want1, 10) == 0);
    kn_serve_image_free(&img);
    /* 4-bit: samples 0, 5, 15 -> 0, 85, 255 */
    uint8_t row4[2] = {0x05, 0xF0};
    png_spec s4 = {3, 1, PNG_COLOR_TYPE_GRAY, 4, 0, row4, NULL, 0, NULL, 0};
    if (png_round_trip(&s4, &img, 1))
        CHECK(img.pixels[0] == 0 && img.pixels[1] == 85 && img.pixels[2] == 255);
    kn_serve_image_free(&img);
}

static void test_png_palette_trns(void)
{
    static const png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    static const uint8_t trns[2] = {0, 128};
    /* 2-bit indices: 5 pixels 0 1 2 3 1, padded */
    uint8_t rows[2][2] = {{0x1B, 0x40}, {0xE4, 0x00}}; /* row 2: 3 2 1 0 0 */
    png_spec s = {5, 2, PNG_COLOR_TYPE_PALETTE, 2, 0, &rows[0][0], pal, 4, trns, 2};
    kn_serve_image img;
    static const int idx[10] = {0, 1, 2, 3, 1, 3, 2, 1, 0, 0};
    int ok = png_round_trip(&s, &img, 3);
    for (int i = 0; ok && i < 10; i++) {
        CHECK_EQ_INT(img.pixels[i * 3 + 0], pal[idx[i]].red);
        CHECK_EQ_INT(img.pixels[i * 3 + 1], pal[idx[i]].green);
        CHECK_EQ_INT(img.pixels[i * 3 + 2], pal[idx[i]].blue);
    }
    kn_serve_image_free(&img);
}

static void test_png_16bit_and_alpha(void)
{
    /* 16-bit RGB, 3x2: reduced to 8 bits, within 1 of v / 257 */
    int w = 3, h = 2;
    uint8_t rows16[2 * 3 * 3 * 2];
    for (int i = 0; i < w * h * 3; i++) {
        unsigned v = (unsigned)(i * 3547 + 100) & 0xffff;
        rows16[2 * i] = (uint8_t)(v >> 8);
        rows16[2 * i + 1] = (uint8_t)v;
    }
    png_spec s = {w, h, PNG_COLOR_TYPE_RGB, 16, 0, rows16, NULL, 0, NULL, 0};
    kn_serve_image img;
    int ok = png_round_trip(&s, &img, 3);
    for (int i = 0; ok && i < w * h * 3; i++)
        CHECK_NEAR(img.pixels[i], ((rows16[2 * i] << 8) | rows16[2 * i + 1]) / 257.0, 1.0);
    kn_serve_image_free(&img);
    /* RGBA and gray+alpha: alpha dropped, colour kept */
    for (int c = 2; c <= 4; c += 2) {
        uint8_t *px = gradient(4, 3, c);
        png_spec sa = {4, 3, c == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, px, NULL, 0, NULL, 0};
        ok = png_round_trip(&sa, &img, c - 1);
        for (int i = 0; ok && i < 12; i++)
            for (int k = 0; k < c - 1; k++)
                CHECK_EQ_INT(img.pixels[i * (c - 1) + k], px[i * c + k]);
        kn_serve_image_free(&img);
        free(px);
    }
}

/* Every proper prefix of a valid file is refused with KN_ERR_ARG and no leak. */
static void check_all_prefixes_fail(const membuf *b, const char *what)
{
    int bad = 0;
    for (size_t n = 0; n < b->n; n++) {
        kn_serve_image img;
        kn_error err;
        uint8_t *copy = malloc(n ? n : 1); /* exact-size copy so ASan sees overreads */
        memcpy(copy, b->p, n);
        int rc = kn_serve_image_decode(copy, n, &img, &err);
        free(copy);
        if (rc != KN_ERR_ARG || img.pixels) {
            bad++;
            if (bad < 4)
                fprintf(stderr, "%s prefix %zu of %zu: rc %d\n", what, n, b->n, rc);
            kn_serve_image_free(&img);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_truncated(void)
{
    uint8_t *px = gradient(19, 11, 3);
    png_spec s = {19, 11, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0, NULL, 0};
    membuf p = write_png(&s);
    check_all_prefixes_fail(&p, "png");
    membuf j = write_jpeg(19, 11, JCS_RGB, 3, px, 90);
    check_all_prefixes_fail(&j, "jpeg");
    kn_serve_image img;
    kn_error err;
    CHECK_EQ_INT(decode(&j, &img, &err), KN_OK);
    kn_serve_image_free(&img);
    free(p.p);
    free(j.p);
    free(px);
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Rewrite the IHDR of a PNG (at byte 8) to w x h with a valid CRC. */
static void png_patch_size(membuf *b, uint32_t w, uint32_t h)
{
    put_be32(b->p + 16, w);
    put_be32(b->p + 20, h);
    put_be32(b->p + 29, crc32_of(b->p + 12, 17));
}

/* Position of the SOF0 marker's height field in a baseline JPEG. */
static size_t jpeg_sof_size_at(const membuf *b)
{
    for (size_t i = 2; i + 9 < b->n; i++)
        if (b->p[i] == 0xff && b->p[i + 1] == 0xc0)
            return i + 5;
    return 0;
}

static void expect_arg_error(const membuf *b, const char *substring)
{
    kn_serve_image img;
    kn_error err;
    err.msg[0] = 0;
    CHECK_EQ_INT(decode(b, &img, &err), KN_ERR_ARG);
    CHECK(img.pixels == NULL && img.width == 0);
    if (substring && !strstr(err.msg, substring)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, substring);
        CHECK(0);
    }
}

static void test_huge_and_corrupt(void)
{
    uint8_t *px = gradient(8, 8, 3);
    png_spec s = {8, 8, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0, NULL, 0};
    membuf p = write_png(&s);
    static const uint32_t sizes[][2] = {{16385, 1}, {1, 16385}, {16384, 16384}, {8192, 8193}, {0x7fffffff, 1}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        png_patch_size(&p, sizes[i][0], sizes[i][1]);
        if (i == 0)
            save_seed("png_16385x1.png", &p);
        expect_arg_error(&p, i < 4 ? "limit" : NULL);
    }
    kn_serve_image img;
    CHECK_EQ_INT(kn_serve_image_decode(p.p, p.n, &img, NULL), KN_ERR_ARG); /* the cap, without err */
    png_patch_size(&p, 8, 8);
    kn_error err;
    CHECK_EQ_INT(decode(&p, &img, &err), KN_OK);
    kn_serve_image_free(&img);
    p.p[p.n - 20] ^= 0x55; /* inside IDAT: CRC mismatch */
    expect_arg_error(&p, "PNG");

    membuf j = write_jpeg(8, 8, JCS_RGB, 3, px, 90);
    size_t at = jpeg_sof_size_at(&j);
    CHECK(at > 0);
    if (at) {
        j.p[at] = 0x50; /* height 0x5008 = 20488 */
        save_seed("jpeg_20488x8.jpg", &j);
        expect_arg_error(&j, "limit");
        j.p[at] = 0;
        j.p[at - 1] = 3; /* 3-bit precision */
        expect_arg_error(&j, "JPEG");
        j.p[at - 1] = 8;
    }
    for (size_t i = j.n / 2; i < j.n - 2; i++) /* scribble over the entropy-coded data */
        j.p[i] = 0xff;
    expect_arg_error(&j, "JPEG");
    free(p.p);
    free(j.p);
    free(px);
}

static void test_other_inputs(void)
{
    static const char *gif = "GIF89a\x01\x00\x01\x00";
    membuf b = {(uint8_t *)gif, 10, 0};
    expect_arg_error(&b, "GIF");
    static const uint8_t junk[16] = {1, 2, 3, 4, 5};
    b = (membuf){(uint8_t *)junk, sizeof junk, 0};
    expect_arg_error(&b, "neither JPEG nor PNG");
    b.n = 0;
    expect_arg_error(&b, "empty");
    static const uint8_t fake_jpeg[8] = {0xff, 0xd8, 0xff, 0xe0, 0, 0, 0, 0};
    b = (membuf){(uint8_t *)fake_jpeg, sizeof fake_jpeg, 0};
    expect_arg_error(&b, "JPEG");
    static const uint8_t fake_png[12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    b = (membuf){(uint8_t *)fake_png, sizeof fake_png, 0};
    expect_arg_error(&b, "PNG");
    kn_error err;
    CHECK_EQ_INT(kn_serve_image_decode(junk, sizeof junk, NULL, &err), KN_ERR_ARG);
    kn_serve_image_free(NULL);
    /* a NULL error record is allowed on every failure path */
    kn_serve_image img;
    CHECK_EQ_INT(kn_serve_image_decode(junk, sizeof junk, &img, NULL), KN_ERR_ARG);
    CHECK_EQ_INT(kn_serve_image_decode(fake_jpeg, sizeof fake_jpeg, &img, NULL), KN_ERR_ARG);
    CHECK_EQ_INT(kn_serve_image_decode(fake_png, sizeof fake_png, &img, NULL), KN_ERR_ARG);
    float out[3];
    kn_preprocess pp = {0, 1, 1, 3, 0, 1, {0, 0, 0}, {1, 1, 1}, 0};
    CHECK_EQ_INT(kn_preprocess_image(&img, &pp, out, 3, NULL), KN_ERR_ARG);
    const void *part;
    size_t part_len;
    CHECK_EQ_INT(kn_multipart_first_file("text/plain", "x", 1, &part, &part_len, NULL), KN_ERR_ARG);
}

/* ------------------------------------------------------------ decode: JPEG */

/* Encode w x h pixels (comps per pixel, in_space) as JPEG, decode, and check the
 * size, the channel count and the largest sample error. */
static void jpeg_round_trip(const char *seed, int w, int h, J_COLOR_SPACE in_space, int comps,
                            const uint8_t *pixels, int quality, const uint8_t *want, int channels, int tolerance)
{
    membuf b = write_jpeg(w, h, in_space, comps, pixels, quality);
    save_seed(seed, &b);
    kn_serve_image img;
    kn_error err;
    CHECK_EQ_INT(decode(&b, &img, &err), KN_OK);
    CHECK(img.width == w && img.height == h && img.channels == channels);
    int worst = 0;
    for (int i = 0; img.pixels && i < w * h * channels; i++)
        worst = abs(img.pixels[i] - want[i]) > worst ? abs(img.pixels[i] - want[i]) : worst;
    if (worst > tolerance)
        fprintf(stderr, "%s: worst sample error %d\n", seed, worst);
    CHECK(worst <= tolerance);
    kn_serve_image_free(&img);
    free(b.p);
}

static void test_jpeg_rgb_gray_cmyk(void)
{
    int w = 17, h = 9; /* odd sizes: partial MCUs */
    uint8_t *rgb = gradient(w, h, 3), *gray = gradient(w, h, 1);
    jpeg_round_trip("rgb_17x9.jpg", w, h, JCS_RGB, 3, rgb, 100, rgb, 3, 6);
    jpeg_round_trip("progressive_17x9.jpg", w, h, JCS_RGB, 3, rgb, -100, rgb, 3, 8);
    jpeg_round_trip("gray_17x9.jpg", w, h, JCS_GRAYSCALE, 1, gray, 100, gray, 1, 3);
    /* Adobe-style inverted CMYK with K = 255: C, M, Y carry R, G, B */
    uint8_t *cmyk = malloc((size_t)w * h * 4);
    for (int i = 0; i < w * h; i++) {
        memcpy(cmyk + i * 4, rgb + i * 3, 3);
        cmyk[i * 4 + 3] = 255;
    }
    jpeg_round_trip("cmyk_17x9.jpg", w, h, JCS_CMYK, 4, cmyk, 100, rgb, 3, 6);
    free(cmyk);
    free(rgb);
    free(gray);
}

/* DCT-scaled decoding picks the largest reduction that keeps the minimum size, and
 * a reduced pixel is close to the mean of the block it covers. */
static void test_jpeg_decode_at_least(void)
{
    int w = 64, h = 48;
    uint8_t *rgb = gradient(w, h, 3);
    membuf b = write_jpeg(w, h, JCS_RGB, 3, rgb, 100);
    static const int cases[][4] = {/* min_w, min_h -> width, height */
                                   {0, 0, 64, 48}, {64, 48, 64, 48}, {65, 1, 64, 48}, {32, 24, 32, 24},
                                   {17, 12, 32, 24}, {16, 12, 16, 12}, {8, 6, 8, 6}, {1, 1, 8, 6}, {-1, 5, 64, 48}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kn_serve_image img;
        kn_error err;
        CHECK_EQ_INT(kn_serve_image_decode_at_least(b.p, b.n, cases[i][0], cases[i][1], &img, &err), KN_OK);
        CHECK_EQ_INT(img.width, cases[i][2]);
        CHECK_EQ_INT(img.height, cases[i][3]);
        int f = w / (img.width ? img.width : 1), worst = 0;
        for (int y = 0; img.pixels && y < img.height; y++)
            for (int x = 0; x < img.width; x++)
                for (int c = 0; c < 3; c++) {
                    double mean = 0;
                    for (int v = 0; v < f; v++)
                        for (int u = 0; u < f; u++)
                            mean += rgb[((size_t)(y * f + v) * w + x * f + u) * 3 + c];
                    int d = abs((int)(mean / (f * f) + 0.5) - img.pixels[((size_t)y * img.width + x) * 3 + c]);
                    worst = d > worst ? d : worst;
                }
        if (worst > 12)
            fprintf(stderr, "decode_at_least %dx%d: worst %d\n", cases[i][0], cases[i][1], worst);
        CHECK(worst <= 12);
        kn_serve_image_free(&img);
    }
    free(b.p);
    /* odd sizes round up; PNGs are never reduced */
    uint8_t *odd = gradient(17, 9, 3);
    b = write_jpeg(17, 9, JCS_RGB, 3, odd, 90);
    kn_serve_image img;
    kn_error err;
    CHECK_EQ_INT(kn_serve_image_decode_at_least(b.p, b.n, 3, 2, &img, &err), KN_OK);
    CHECK(img.width == 3 && img.height == 2);
    kn_serve_image_free(&img);
    free(b.p);
    png_spec s = {17, 9, PNG_COLOR_TYPE_RGB, 8, 0, odd, NULL, 0, NULL, 0};
    b = write_png(&s);
    CHECK_EQ_INT(kn_serve_image_decode_at_least(b.p, b.n, 3, 2, &img, &err), KN_OK);
    CHECK(img.width == 17 && img.height == 9);
    kn_serve_image_free(&img);
    free(b.p);
    free(odd);
    free(rgb);
}

/* ------------------------------------------------------------ preprocess */

/* Triangle-filter weight of source pixel x for an output at `center` (source
 * coordinates, pixel centres at x + 0.5) with the given support. */
static double ref_weight(int x, double center, double support)
{
    double t = fabs((x + 0.5 - center) / support);
    return t < 1 ? 1 - t : 0;
}

/* Pillow-style rounding of one resize pass. */
static double ref_round8(double v)
{
    v = floor(v + 0.5);
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* Plain per-pixel reference: resized size, torchvision crop offset; for each
 * output pixel the horizontally resized (and rounded) samples of every source row
 * in its vertical support, then the vertical sum (rounded); channel conversion,
 * normalisation, layout. */
static void ref_preprocess(const kn_serve_image *img, const kn_preprocess *pp, float *out)
{
    long rw = pp->crop_w, rh = pp->crop_h;
    if (pp->resize_short > 0) {
        int wshort = img->width <= img->height;
        rw = wshort ? pp->resize_short : (long)pp->resize_short * img->width / img->height;
        rh = wshort ? (long)pp->resize_short * img->height / img->width : pp->resize_short;
    }
    long dw = rw - pp->crop_w, dh = rh - pp->crop_h;
    long left = (long)nearbyint(dw / 2.0), top = (long)nearbyint(dh / 2.0); /* ties to even */
    double sx = (double)img->width / rw, sy = (double)img->height / rh;
    double supx = sx > 1 ? sx : 1, supy = sy > 1 ? sy : 1;
    float scale = pp->scale != 0 ? pp->scale : 1;
    for (int y = 0; y < pp->crop_h; y++)
        for (int x = 0; x < pp->crop_w; x++) {
            double cx = (left + x + 0.5) * sx, cy = (top + y + 0.5) * sy, wxsum = 0, wysum = 0, rgb[3] = {0};
            for (int u = 0; u < img->width; u++)
                wxsum += ref_weight(u, cx, supx);
            for (int v = 0; v < img->height; v++)
                wysum += ref_weight(v, cy, supy);
            for (int c = 0; c < img->channels; c++) {
                double acc = 0;
                for (int v = 0; v < img->height; v++) {
                    double wy = ref_weight(v, cy, supy), row = 0;
                    if (wy == 0)
                        continue;
                    for (int u = 0; u < img->width; u++)
                        row += ref_weight(u, cx, supx) * img->pixels[((size_t)v * img->width + u) * img->channels + c];
                    acc += wy / wysum * ref_round8(row / wxsum);
                }
                rgb[c] = ref_round8(acc);
            }
            if (img->channels == 1)
                rgb[1] = rgb[2] = rgb[0];
            for (int c = 0; c < pp->channels; c++) {
                double val = pp->channels == 1 ? 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
                                               : rgb[pp->bgr ? 2 - c : c];
                if (pp->channels == 1 && img->channels == 1)
                    val = rgb[0];
                double o = (val * scale - pp->mean[c]) / pp->std[c];
                size_t px = (size_t)y * pp->crop_w + x;
                out[pp->nhwc ? px * pp->channels + c : (size_t)c * pp->crop_h * pp->crop_w + px] = (float)o;
            }
        }
}

static kn_serve_image make_image(int w, int h, int c, unsigned seed)
{
    kn_serve_image img = {w, h, c, malloc((size_t)w * h * c)};
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        seed = seed * 1103515245u + 12345u;
        img.pixels[i] = (uint8_t)(seed >> 16);
    }
    return img;
}

static void test_preprocess_vs_reference(void)
{
    static const int dims[][2] = {{1, 1}, {7, 1}, {1, 6}, {13, 5}, {37, 29}, {64, 48}, {5, 61}, {100, 3}};
    static const int recipes[][3] = {/* resize_short, crop_h, crop_w */
                                     {0, 1, 1}, {0, 5, 3}, {0, 7, 7}, {0, 31, 17}, {1, 1, 1}, {3, 3, 2},
                                     {7, 7, 7}, {16, 11, 13}, {29, 29, 29}, {64, 40, 48}};
    int cases = 0, worst_case = -1;
    size_t values = 0, off_by_one = 0;
    double worst = 0, one_step = 1.0 / 255 / 0.224 + 1e-3; /* one 8-bit step after normalisation */
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (size_t r = 0; r < sizeof recipes / sizeof recipes[0]; r++)
            for (int variant = 0; variant < 8; variant++) {
                int sc = variant & 1 ? 3 : 1, oc = variant & 2 ? 3 : 1;
                kn_serve_image img = make_image(dims[d][0], dims[d][1], sc, (unsigned)(d * 100 + r));
                kn_preprocess pp = {recipes[r][0], recipes[r][1], recipes[r][2], oc, variant & 4, 1.0f / 255,
                                    {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, (int)(r & 1)};
                size_t n = (size_t)oc * pp.crop_h * pp.crop_w;
                float *got = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
                kn_error err;
                int shorter = img.width < img.height ? img.width : img.height;
                long longer = img.width < img.height ? img.height : img.width;
                long rlong = pp.resize_short ? (long)pp.resize_short * longer / shorter : 0;
                int fits = pp.resize_short == 0 ||
                           (pp.resize_short >= (img.width <= img.height ? pp.crop_w : pp.crop_h) &&
                            rlong >= (img.width <= img.height ? pp.crop_h : pp.crop_w));
                int rc = kn_preprocess_image(&img, &pp, got, n, &err);
                if (!fits) {
                    CHECK_EQ_INT(rc, KN_ERR_ARG);
                } else {
                    CHECK_EQ_INT(rc, KN_OK);
                    ref_preprocess(&img, &pp, want);
                    cases++;
                    values += n;
                    for (size_t i = 0; i < n; i++) {
                        double diff = fabs(got[i] - want[i]);
                        off_by_one += diff > 1e-3; /* a rounding tie broken the other way */
                        if (diff > worst) {
                            worst = diff;
                            worst_case = (int)(d * 1000 + r * 10 + variant);
                        }
                    }
                }
                free(got);
                free(want);
                free(img.pixels);
            }
    if (worst > one_step || off_by_one * 200 > values)
        fprintf(stderr, "preprocess worst difference %g in case %d; %zu of %zu values off by a step\n", worst,
                worst_case, off_by_one, values);
    CHECK(worst <= one_step);
    CHECK(off_by_one * 200 <= values); /* .5 ties only (float vs double): at most 1 in 200 */
    CHECK(cases > 200);
}

static void test_preprocess_exact(void)
{
    /* no resize when the short side already matches: the crop is an exact copy,
     * and the crop offset rounds half to even like torchvision (5 - 2 = 3 -> 2) */
    kn_serve_image img = make_image(5, 4, 3, 7);
    kn_preprocess pp = {4, 4, 2, 3, 0, 1, {0, 0, 0}, {1, 1, 1}, 1};
    float out[4 * 2 * 3];
    kn_error err;
    CHECK_EQ_INT(kn_preprocess_image(&img, &pp, out, 24, &err), KN_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++)
                CHECK_EQ_INT(out[(y * 2 + x) * 3 + c], img.pixels[(y * 5 + x + 2) * 3 + c]);
    free(img.pixels);
    /* a constant image stays constant whatever the resize */
    kn_serve_image flat = make_image(33, 21, 1, 1);
    memset(flat.pixels, 200, 33 * 21);
    kn_preprocess up = {0, 50, 70, 3, 1, 0.5f, {10, 20, 30}, {2, 4, 5}, 0};
    float *big = malloc(3 * 50 * 70 * sizeof(float));
    CHECK_EQ_INT(kn_preprocess_image(&flat, &up, big, 3 * 50 * 70, &err), KN_OK);
    CHECK_NEAR(big[0], 45, 1e-4);                /* (100 - 10) / 2 */
    CHECK_NEAR(big[50 * 70 + 1234], 20, 1e-4);    /* (100 - 20) / 4 */
    CHECK_NEAR(big[2 * 50 * 70 + 3499], 14, 1e-4); /* (100 - 30) / 5 */
    free(big);
    free(flat.pixels);
}

static void test_preprocess_errors(void)
{
    kn_serve_image img = make_image(10, 8, 3, 3);
    float out[3 * 8 * 8];
    kn_error err;
    kn_preprocess ok = {8, 8, 8, 3, 0, 1.0f / 255, {0, 0, 0}, {1, 1, 1}, 0};
    CHECK_EQ_INT(kn_preprocess_image(&img, &ok, out, 192, &err), KN_OK);
    CHECK_EQ_INT(kn_preprocess_image(&img, &ok, out, 191, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kn_preprocess_image(&img, &ok, NULL, 192, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kn_preprocess_image(NULL, &ok, out, 192, &err), KN_ERR_ARG);
    CHECK_EQ_INT(kn_preprocess_image(&img, NULL, out, 192, &err), KN_ERR_ARG);
    kn_preprocess p = ok;
    p.crop_h = 9; /* resized to 10x8: crop taller than the image */
    float out9[3 * 9 * 8];
    CHECK_EQ_INT(kn_preprocess_image(&img, &p, out9, 216, &err), KN_ERR_ARG);
    CHECK(strstr(err.msg, "larger") != NULL);
    p = ok, p.channels = 2;
    CHECK_EQ_INT(kn_preprocess_image(&img, &p, out, 192, &err), KN_ERR_ARG);
    p = ok, p.std[1] = 0;
    CHECK_EQ_INT(kn_preprocess_image(&img, &p, out, 192, &err), KN_ERR_ARG);
    p = ok, p.mean[2] = NAN;
    CHECK_EQ_INT(kn_preprocess_image(&img, &p, out, 192, &err), KN_ERR_ARG);
    p = ok, p.crop_w = 0;
    CHECK_EQ_INT(kn_preprocess_image(&img, &p, out, 192, &err), KN_ERR_ARG);
    p = ok, p.resize_short = -1;
    CHECK_EQ_INT(kn_preprocess_image(&img, &p, out, 192, &err), KN_ERR_ARG);
    kn_serve_image two = img;
    two.channels = 2;
    CHECK_EQ_INT(kn_preprocess_image(&two, &ok, out, 192, &err), KN_ERR_ARG);
    free(img.pixels);
}

/* ------------------------------------------------------------ multipart */

static int mp(const char *ct, const char *body, size_t len, const char **part, size_t *plen)
{
    kn_error err;
    const void *p = NULL;
    int rc = kn_multipart_first_file(ct, body, len, &p, plen, &err);
    *part = p;
    return rc;
}

#define MP_OK(ct, body, want)                                                            \
    do {                                                                                 \
        const char *kt_p;                                                                \
        size_t kt_n;                                                                     \
        CHECK_EQ_INT(mp(ct, body, sizeof(body) - 1, &kt_p, &kt_n), KN_OK);               \
        CHECK(kt_n == sizeof(want) - 1 && kt_p && memcmp(kt_p, want, kt_n) == 0);       \
    } while (0)

#define MP_BAD(ct, body)                                                                 \
    do {                                                                                 \
        const char *kt_p;                                                                \
        size_t kt_n;                                                                     \
        CHECK_EQ_INT(mp(ct, body, sizeof(body) - 1, &kt_p, &kt_n), KN_ERR_ARG);          \
    } while (0)

static const char CT[] = "multipart/form-data; boundary=XyZ";
static const char CURL_BODY[] = "--XyZ\r\n"
                                "Content-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
                                "Content-Type: image/jpeg\r\n\r\n"
                                "\xff\xd8\r\n--XyZa\r\n--\x00zz"
                                "\r\n--XyZ--\r\n";

static void test_multipart_basic(void)
{
    MP_OK(CT, CURL_BODY, "\xff\xd8\r\n--XyZa\r\n--\x00zz");
    /* a text field first, then the file: the file wins */
    MP_OK("multipart/form-data; charset=utf-8; boundary=\"b 1\"",
          "preamble\r\n--b 1\r\nContent-Disposition: form-data; name=\"top_k\"\r\n\r\n5\r\n"
          "--b 1  \r\ncontent-disposition: form-data; name=\"f\"; FILENAME=\"x;y.png\"\r\n\r\nPNGDATA\r\n"
          "--b 1--\r\nepilogue",
          "PNGDATA");
    /* no filename anywhere: the first part */
    MP_OK("Multipart/Form-Data;BOUNDARY=q", "--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nfirst\r\n"
          "--q\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nsecond\r\n--q--", "first");
    /* bare LF line ends; filename* (RFC 5987); an empty part */
    MP_OK(CT, "--XyZ\nContent-Disposition: form-data; name=e\n\n\n--XyZ\n"
          "Content-Disposition: form-data; name=f; filename*=UTF-8''%c3%a9.jpg\n\nbytes\n--XyZ--", "bytes");
    MP_OK(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--XyZ--", "");
    MP_OK(CT, "--XyZ\r\n\r\n--XyZ--", "");
    /* name="filename" is not a filename parameter */
    MP_OK(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nA\r\n--XyZ\r\n"
          "Content-Disposition: form-data; name=\"x\"; filename=\"\"\r\n\r\nB\r\n--XyZ--", "B");
}

static void test_multipart_malformed(void)
{
    MP_BAD("application/json", CURL_BODY);
    MP_BAD("multipart/form-dataX; boundary=XyZ", CURL_BODY);
    MP_BAD("multipart/form-data", CURL_BODY);
    MP_BAD("multipart/form-data; boundary=", CURL_BODY);
    MP_BAD("multipart/form-data; boundary=\"XyZ", CURL_BODY);
    MP_BAD("multipart/form-data; boundary=a\\b", CURL_BODY);
    MP_BAD("multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789X",
           CURL_BODY);
    MP_BAD(CT, "");
    MP_BAD(CT, "no delimiter at all");
    MP_BAD(CT, "--XyZ--\r\n");                              /* no parts */
    MP_BAD(CT, "--XyZ\r\nContent-Type: x\r\n");              /* headers never end */
    MP_BAD(CT, "--XyZ\r\nContent-Type: x\r\n\r\ndata");      /* no closing delimiter */
    MP_BAD(CT, "--XyZ\r\nContent-Type: x\r\n\r\ndata\r\n--XyZ"); /* cut inside the close delimiter */
    MP_BAD(CT, "--XyZjunk\r\n\r\nx\r\n--XyZ--");              /* not a delimiter line */
    MP_BAD(CT, "--XyZ\r\nContent-Disposition: form-data; filename=\"open\r\n\r\nx\r\n--XyZ--");
    const char *p;
    size_t n;
    kn_error err;
    CHECK_EQ_INT(kn_multipart_first_file(NULL, CURL_BODY, sizeof CURL_BODY - 1, (const void **)&p, &n, &err),
                 KN_ERR_ARG);
    CHECK_EQ_INT(kn_multipart_first_file(CT, NULL, 10, (const void **)&p, &n, &err), KN_ERR_ARG);
    /* every truncation of a valid body that cuts before the close delimiter fails */
    size_t full = sizeof CURL_BODY - 1, close_end = full - 2;
    int bad = 0;
    for (size_t len = 0; len < close_end; len++) {
        char *copy = malloc(len ? len : 1);
        memcpy(copy, CURL_BODY, len);
        const void *pp;
        if (kn_multipart_first_file(CT, copy, len, &pp, &n, &err) != KN_ERR_ARG)
            bad++;
        free(copy);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mp(CT, CURL_BODY, close_end, &p, &n), KN_OK);
}

TEST_MAIN(TEST_CASE(test_png_rgb_gray_exact), TEST_CASE(test_png_low_bit_gray), TEST_CASE(test_png_palette_trns),
          TEST_CASE(test_png_16bit_and_alpha), TEST_CASE(test_truncated), TEST_CASE(test_huge_and_corrupt),
          TEST_CASE(test_other_inputs), TEST_CASE(test_jpeg_rgb_gray_cmyk), TEST_CASE(test_jpeg_decode_at_least), TEST_CASE(test_preprocess_vs_reference),
          TEST_CASE(test_preprocess_exact), TEST_CASE(test_preprocess_errors), TEST_CASE(test_multipart_basic),
          TEST_CASE(test_multipart_malformed))
