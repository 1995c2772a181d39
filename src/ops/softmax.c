/* softmax.c - operator family 'softmax' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_softmax[] = {
    {0},
};
