/* fuzz_multipart.c - libFuzzer target for kn_multipart_first_file.  The input's
 * first line (up to '\n', at most 200 bytes) is the Content-Type, the rest the
 * body; without a '\n' a fixed boundary is used.  The body is copied to an
 * exact-size buffer so ASan sees any read past its end, and the returned part
 * must lie inside it. */
#include "serve/multipart.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ct[201] = "multipart/form-data; boundary=XyZ";
    const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
    if (nl) {
        memcpy(ct, data, (size_t)(nl - data));
        ct[nl - data] = 0;
        size -= (size_t)(nl + 1 - data);
        data = nl + 1;
    }
    uint8_t *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    const void *part;
    size_t part_len;
    kn_error err;
    if (kn_multipart_first_file(ct, body, size, &part, &part_len, &err) == KN_OK &&
        ((const uint8_t *)part < body || (const uint8_t *)part + part_len > body + size))
        abort();
    free(body);
    return 0;
}
