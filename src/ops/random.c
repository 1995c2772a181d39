/* random.c - operator family 'random' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_random[] = {
    {0},
};
