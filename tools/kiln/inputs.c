/* inputs.c - model inputs for CLI commands (see inputs.h). */
#include "inputs.h"

#include "cli.h"
#include "formats/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_pair(const char *arg, const char **name, const char **value)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return -1;
    size_t len = (size_t)(eq - arg);
    char *n = malloc(len + 1);
    if (!n)
        return -1;
    memcpy(n, arg, len);
    n[len] = '\0';
    *name = n;
    *value = eq + 1;
    return 0;
}

int cli_inputs_option(cli_inputs *in, int argc, char **argv, int *i, const char *cmd)
{
    const char *a = argv[*i], *name, *val;
    bool has_value = *i + 1 < argc;
    int64_t v;
    if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && has_value) {
        if (in->n == CLI_MAX_INPUT_ARGS || cli_parse_pair(argv[++*i], &name, &val))
            return -cli_error("%s: -i expects NAME=FILE.npy, got '%s'", cmd, argv[*i]);
        in->names[in->n] = name;
        in->files[in->n++] = val;
    } else if (!strcmp(a, "--random")) {
        in->random = true;
    } else if (!strcmp(a, "--seed") && has_value) {
        if (!cli_parse_i64(argv[++*i], &v))
            return -cli_error("%s: --seed expects a number", cmd);
        in->seed = (uint64_t)v;
    } else if (!strcmp(a, "--batch") && has_value) {
        if (!cli_parse_i64(argv[++*i], &v) || v < 1)
            return -cli_error("%s: --batch expects a positive number", cmd);
        in->batch = v;
    } else if (!strcmp(a, "--dim") && has_value) {
        if (in->n_dims == CLI_MAX_INPUT_ARGS || cli_parse_pair(argv[++*i], &name, &val))
            return -cli_error("%s: --dim expects NAME=VALUE, got '%s'", cmd, argv[*i]);
        in->dim_names[in->n_dims] = name;
        if (!cli_parse_i64(val, &v))
            return -cli_error("%s: --dim expects NAME=VALUE, got '%s'", cmd, argv[*i]);
        in->dim_values[in->n_dims++] = v;
    } else {
        return 0;
    }
    return 1;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Size of dim d of an input: fixed, or --dim by name, or --batch for a symbolic
 * first dim, else 1. */
static int64_t input_dim(const kiln_value_info *info, int d, const cli_inputs *in)
{
    if (info->shape[d] >= 0)
        return info->shape[d];
    for (int k = 0; info->dim_names[d] && k < in->n_dims; k++)
        if (!strcmp(in->dim_names[k], info->dim_names[d]))
            return in->dim_values[k];
    return d == 0 && in->batch > 0 ? in->batch : 1;
}

/* Random tensor for an input: floats in [-1, 1), ints in [0, 10), bools 0/1. */
static int random_input(const kiln_value_info *info, const cli_inputs *in, uint64_t *rng, kn_tensor *t,
                        const char *cmd)
{
    if (info->rank < 0)
        return cli_error("%s: input '%s' has no declared shape; give it with -i", cmd, info->name);
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < info->rank; d++)
        dims[d] = input_dim(info, d, in);
    kn_error err = {0};
    kn_dtype dt = (kn_dtype)info->dtype;
    if (kn_tensor_alloc(t, dt, info->rank, dims, &err))
        return cli_error("%s: input '%s': %s", cmd, info->name, err.msg);
    for (int64_t i = 0; i < t->numel; i++) {
        uint64_t r = rng_next(rng);
        if (kn_dtype_is_float(dt))
            kn_store_f64(t->data, dt, (size_t)i, (double)(r >> 11) / 4503599627370496.0 - 1.0);
        else
            kn_store_i64(t->data, dt, (size_t)i, dt == KN_BOOL ? (int64_t)(r & 1) : (int64_t)(r % 10));
    }
    return 0;
}

static int check_names(const kiln_model *m, const cli_inputs *in, const char *cmd)
{
    size_t n = kiln_model_input_count(m);
    for (int k = 0; k < in->n; k++) {
        bool known = false;
        for (size_t i = 0; i < n; i++) {
            kiln_value_info info;
            kiln_model_input(m, i, &info);
            known |= !strcmp(info.name, in->names[k]);
        }
        if (!known)
            return cli_error("%s: model has no input named '%s'", cmd, in->names[k]);
    }
    return 0;
}

int cli_inputs_gather(const kiln_model *m, const cli_inputs *in, kn_tensor *tensors, kiln_tensor *ins,
                      const char **names, const char *cmd)
{
    size_t n = kiln_model_input_count(m);
    uint64_t rng = in->seed * 2654435761u + 88172645463325252ull;
    if (check_names(m, in, cmd))
        return 1;
    for (size_t i = 0; i < n; i++) {
        kiln_value_info info;
        kiln_model_input(m, i, &info);
        names[i] = info.name;
        const char *file = NULL;
        for (int k = 0; k < in->n; k++)
            if (!strcmp(in->names[k], info.name))
                file = in->files[k];
        kn_error err = {0};
        if (file) {
            if (kn_npy_read_file(file, &tensors[i], &err))
                return cli_error("%s: input '%s': %s", cmd, info.name, err.msg);
        } else if (in->random) {
            if (random_input(&info, in, &rng, &tensors[i], cmd))
                return 1;
        } else {
            return cli_error("%s: input '%s' not given (use -i %s=FILE.npy or --random)", cmd, info.name,
                             info.name);
        }
        ins[i].dtype = (kiln_dtype)tensors[i].dtype;
        ins[i].rank = tensors[i].rank;
        memcpy(ins[i].shape, tensors[i].dims, sizeof(int64_t) * (size_t)tensors[i].rank);
        ins[i].data = tensors[i].data;
        ins[i].nbytes = tensors[i].nbytes;
    }
    return 0;
}

void cli_inputs_free(cli_inputs *in)
{
    for (int k = 0; k < in->n; k++)
        free((void *)in->names[k]);
    for (int k = 0; k < in->n_dims; k++)
        free((void *)in->dim_names[k]);
    in->n = in->n_dims = 0;
}
