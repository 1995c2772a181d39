/* fuzz_ranges.c - libFuzzer target for the activation-ranges text parser
 * (`kiln quantize --ranges`, the output of `kiln calibrate`). */
#include "quant/quant.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_act_ranges r = {0};
    kn_error err;
    if (kn_act_ranges_parse((const char *)data, size, "fuzz", &r, &err) == KN_OK)
        kn_act_ranges_free(&r);
    return 0;
}
