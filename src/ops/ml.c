/* ml.c - operator family 'ml' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_ml[] = {
    {0},
};
