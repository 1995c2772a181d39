/* control.c - operator family 'control' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_control[] = {
    {0},
};
