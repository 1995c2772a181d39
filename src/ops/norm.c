/* norm.c - operator family 'norm' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_norm[] = {
    {0},
};
