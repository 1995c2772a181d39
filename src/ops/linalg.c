/* linalg.c - operator family 'linalg' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_linalg[] = {
    {0},
};
