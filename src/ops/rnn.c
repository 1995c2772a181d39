/* rnn.c - operator family 'rnn' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_rnn[] = {
    {0},
};
