/* index.c - operator family 'index' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_index[] = {
    {0},
};
