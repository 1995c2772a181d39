/* fuzz_serve_image.c - libFuzzer target for the server's JPEG/PNG decoder
 * (src/serve/image_io.c), at full size or with a DCT reduction (the input's last
 * byte picks); every decoded image also goes through preprocess with a recipe
 * picked from the last bytes, so resize/crop see odd sizes too. */
#include "serve/image_io.h"
#include "serve/preprocess.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static void preprocess_once(const kn_serve_image *img, const uint8_t *data, size_t size)
{
    uint8_t a = size > 1 ? data[size - 1] : 0, b = size > 2 ? data[size - 2] : 0;
    kn_preprocess pp = {a & 1 ? 1 + (b & 31) : 0, 1 + (a >> 4), 1 + (b >> 5), a & 2 ? 3 : 1, a & 4, 1.0f / 255,
                        {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}, a & 8};
    size_t n = (size_t)pp.channels * (size_t)pp.crop_h * (size_t)pp.crop_w;
    float *out = malloc(n * sizeof(float));
    kn_error err;
    if (out)
        kn_preprocess_image(img, &pp, out, n, &err);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_serve_image img;
    kn_error err;
    int min_side = size > 1 && (data[size - 1] & 16) ? 1 + (data[size - 1] >> 5) : 0;
    if (kn_serve_image_decode_at_least(data, size, min_side, min_side, &img, &err) == KN_OK) {
        preprocess_once(&img, data, size);
        kn_serve_image_free(&img);
    }
    return 0;
}
