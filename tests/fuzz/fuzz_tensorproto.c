/* fuzz_tensorproto.c - libFuzzer target: arbitrary bytes as a serialized TensorProto. */
#include "formats/tensorproto.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_tensor t;
    kn_error err;
    char name[64];
    if (kn_tensorproto_read(data, size, &t, name, sizeof name, &err) == KN_OK)
        kn_tensor_release(&t);
    return 0;
}
