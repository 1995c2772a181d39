/* binary.c - operator family 'binary' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_binary[] = {
    {0},
};
