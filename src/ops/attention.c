/* attention.c - operator family 'attention' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_attention[] = {
    {0},
};
