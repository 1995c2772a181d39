/* sequence.c - operator family 'sequence' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_sequence[] = {
    {0},
};
