/* training.c - operator family 'training' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_training[] = {
    {0},
};
