/* state.c - operator family 'state' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_state[] = {
    {0},
};
