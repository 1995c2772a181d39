/* fuzz_onnx.c - libFuzzer target: arbitrary bytes as an ONNX model.  Models are
 * loaded with a base directory holding one small file, weights.bin, so external
 * data resolution (paths, offsets, lengths, the per-model mapping list) is fuzzed
 * too. */
#include "formats/onnx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base_dir[64];
static char weights[128];

static void cleanup(void)
{
    unlink(weights);
    rmdir(base_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(base_dir, sizeof base_dir, "/tmp/kiln_fuzz_onnx_XXXXXX");
    if (!mkdtemp(base_dir)) {
        base_dir[0] = '\0';
        return 0;
    }
    snprintf(weights, sizeof weights, "%s/weights.bin", base_dir);
    FILE *f = fopen(weights, "wb");
    if (f) {
        for (int i = 0; i < 64; i++)
            fputc(i, f);
        fclose(f);
    }
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_model *m = NULL;
    kn_error err;
    if (kn_onnx_load_buffer(data, size, base_dir[0] ? base_dir : NULL, &m, &err) == KN_OK)
        kn_model_free(m);
    return 0;
}
