/* fuzz_npy.c - libFuzzer target for the .npy reader. */
#include "formats/npy.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_tensor t = {0};
    kn_error err;
    if (kn_npy_read_buffer(data, size, &t, &err) == KN_OK)
        kn_tensor_release(&t);
    return 0;
}
