/* fuse_attention.c - pass fuse_attention (placeholder until the matcher lands). */
#include "opt/fuse_match.h"

static int run(kn_graph *g, int *rewrites, kn_error *err)
{
    (void)g, (void)rewrites, (void)err;
    return KN_OK;
}

const kn_opt_pass kn_pass_fuse_attention = {"fuse_attention", KN_OPT_EXTENDED, run};
