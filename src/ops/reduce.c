/* reduce.c - operator family 'reduce' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_reduce[] = {
    {0},
};
