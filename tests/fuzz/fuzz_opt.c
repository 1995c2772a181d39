/* fuzz_opt.c - libFuzzer target: arbitrary bytes as an ONNX model that, when it
 * loads, is optimized at every level (constant folding evaluates kernels on the
 * model's constants; the rewrites see odd attributes and shapes).  The optimizer
 * must fail cleanly or leave a valid model, never crash or leak. */
#include "formats/onnx.h"
#include "opt/opt.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_model *m = NULL;
    kn_error err;
    if (kn_onnx_load_buffer(data, size, NULL, &m, &err) != KN_OK)
        return 0;
    kn_optimize(m, KN_OPT_ALL, NULL, &err);
    kn_model_free(m);
    return 0;
}
