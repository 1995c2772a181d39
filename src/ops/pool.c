/* pool.c - operator family 'pool' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_pool[] = {
    {0},
};
