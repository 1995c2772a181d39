/* detection.c - operator family 'detection' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_detection[] = {
    {0},
};
