/* shape.c - operator family 'shape' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_shape[] = {
    {0},
};
