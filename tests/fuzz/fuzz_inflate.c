/* fuzz_inflate.c - libFuzzer target for the zlib/deflate decoder.  The first byte
 * picks the output capacity (0 .. 255 * 256 bytes) so the cap is exercised too. */
#include "formats/inflate.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = (size_t)data[0] * 256;
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out)
        return 0;
    size_t got;
    kn_error err;
    kn_zlib_inflate(data + 1, size - 1, out, cap, &got, &err);
    free(out);
    return 0;
}
