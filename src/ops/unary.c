/* unary.c - operator family 'unary' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_unary[] = {
    {0},
};
