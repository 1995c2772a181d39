/* fuzz_image.c - libFuzzer target for the image decoders (BMP, PNM, PNG, TIFF). */
#include "formats/image.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_image img;
    kn_error err;
    if (kn_image_decode(data, size, &img, &err) == KN_OK)
        kn_image_free(&img);
    return 0;
}
