/* fuzz_idx.c - libFuzzer target for the CLI's IDX (MNIST-format) reader, which
 * `kiln eval`, `kiln calibrate` and `kiln quantize --calib` read datasets with. */
#include "idx.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_tensor t = {0};
    kn_error err;
    if (idx_read_buffer(data, size, "fuzz", &t, &err) == KN_OK)
        kn_tensor_release(&t);
    return 0;
}
