/* movement.c - operator family 'movement' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_movement[] = {
    {0},
};
