/* quant.c - operator family 'quant' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_quant[] = {
    {0},
};
