/* matmul.c - operator family 'matmul' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_matmul[] = {
    {0},
};
