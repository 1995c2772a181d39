/* inputs.h - model inputs for CLI commands (run, bench): the -i / --random / --seed /
 * --dim / --batch options and building the input tensors from .npy files or
 * deterministic random data. */
#ifndef KILN_CLI_INPUTS_H
#define KILN_CLI_INPUTS_H

#include "kiln.h"
#include "core/tensor.h"

#include <stdbool.h>
#include <stdint.h>

#define CLI_MAX_INPUT_ARGS 256

typedef struct cli_inputs {
    const char *names[CLI_MAX_INPUT_ARGS];   /* -i NAME=FILE */
    const char *files[CLI_MAX_INPUT_ARGS];
    int n;
    const char *dim_names[CLI_MAX_INPUT_ARGS]; /* --dim NAME=VALUE */
    int64_t dim_values[CLI_MAX_INPUT_ARGS];
    int n_dims;
    int64_t batch;          /* --batch N: symbolic first dims not set by --dim (0: unset) */
    bool random;
    uint64_t seed;
} cli_inputs;

/* Input options shared by commands.  If argv[*i] is one of them, consume it (and its
 * value, advancing *i) and return 1; return 0 when it is not an input option, -1 (after
 * printing an error naming cmd) when its value is bad. */
int cli_inputs_option(cli_inputs *in, int argc, char **argv, int *i, const char *cmd);

/* Tensors for every model input in model order: from -i files, else random when
 * in->random.  tensors[] own the data; ins[] and names[] view them.  Returns 0 or 1
 * after printing an error. */
int cli_inputs_gather(const kiln_model *m, const cli_inputs *in, kn_tensor *tensors, kiln_tensor *ins,
                      const char **names, const char *cmd);

void cli_inputs_free(cli_inputs *in);

/* Parse NAME=VALUE into a malloc'd name and a pointer into arg; -1 if malformed. */
int cli_parse_pair(const char *arg, const char **name, const char **value);

#endif
