/* fuzz_tensorproto.c - libFuzzer target: arbitrary bytes as a serialized TensorProto,
 * and the same bytes as a SequenceProto and an OptionalProto (test-data values). */
#include "formats/tensorproto.h"
#include "formats/valueproto.h"

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
    const kn_value_kind kinds[2] = {KN_VALUE_SEQUENCE, KN_VALUE_OPTIONAL};
    for (int k = 0; k < 2; k++) {
        kn_tensor v = {0};
        if (kn_valueproto_read(data, size, kinds[k], &v, &err) == KN_OK)
            kn_tensor_release(&v);
    }
    return 0;
}
