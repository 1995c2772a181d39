/* edit.c - graph editing helpers shared by the optimizer passes (see opt.h). */
#include "opt/opt.h"

int kn_opt_refinalize(kn_graph *g, kn_error *err)
{
    return kn_graph_finalize(g, err);
}
