/* fuzz_onnx_writer.c - libFuzzer target for the ONNX writer: whatever the reader
 * accepts (parse only, so models kiln cannot run count too) must be writable, the
 * written bytes must read back, and writing is a fixed point after one round:
 * write(read(write(read(x)))) == write(read(x)).  Any violation aborts. */
#include "formats/onnx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const kn_error *err)
{
    fprintf(stderr, "fuzz_onnx_writer: %s: %s\n", what, err ? err->msg : "");
    abort();
}

/* read(bytes) then write: *out gets the written bytes.  false when the reader
 * refuses the input (only allowed for the fuzzer's own bytes). */
static bool reread_and_write(const void *in, size_t n, void **out, size_t *len, bool must_read)
{
    kn_model *m = NULL;
    kn_error err;
    if (kn_onnx_parse_buffer(in, n, NULL, true, &m, &err) != KN_OK) {
        if (must_read)
            die("the written model does not read back", &err);
        return false;
    }
    int rc = kn_onnx_write_buffer(m, out, len, &err);
    kn_model_free(m);
    if (rc == KN_ERR_UNSUPPORTED && !must_read)
        return false; /* e.g. more than protobuf's size limit */
    if (rc)
        die("a model the reader accepted cannot be written", &err);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *w1 = NULL, *w2 = NULL, *w3 = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0;
    if (!reread_and_write(data, size, &w1, &l1, false))
        return 0;
    reread_and_write(w1, l1, &w2, &l2, true);
    reread_and_write(w2, l2, &w3, &l3, true);
    if (l2 != l3 || memcmp(w2, w3, l2))
        die("writing is not a fixed point", NULL);
    free(w1);
    free(w2);
    free(w3);
    return 0;
}
