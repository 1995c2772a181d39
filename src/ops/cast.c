/* cast.c - operator family 'cast' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_cast[] = {
    {0},
};
