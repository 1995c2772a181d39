/* signal.c - operator family 'signal' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_signal[] = {
    {0},
};
