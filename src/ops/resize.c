/* resize.c - operator family 'resize' (to be written). */
#include "ops/op_util.h"

const kn_op_def kn_ops_resize[] = {
    {0},
};
