/* conv.c - operator family 'conv' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_conv[] = {
    {0},
};
