/* fuzz_onnx.c - libFuzzer target: arbitrary bytes as an ONNX model. */
#include "formats/onnx.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_model *m = NULL;
    kn_error err;
    if (kn_onnx_load_buffer(data, size, NULL, &m, &err) == KN_OK)
        kn_model_free(m);
    return 0;
}
