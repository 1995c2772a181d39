/* optimize.c - the optimizer driver: the ordered pass list, levels, and the loop
 * that runs the passes until the graph stops changing (see opt.h). */
#include "opt/opt.h"

#include <stdlib.h>
#include <string.h>

/* The basic passes, one per file src/opt/<name>.c. */
extern const kn_opt_pass kn_pass_eliminate_identity, kn_pass_fold_constants,
    kn_pass_eliminate_transpose, kn_pass_cse, kn_pass_fold_conv_bn, kn_pass_matmul_add_to_gemm,
    kn_pass_eliminate_dead, kn_pass_dedupe_initializers;

/* The extended passes (fusions), one per file src/opt/fuse_<name>.c. */
extern const kn_opt_pass kn_pass_fuse_layernorm, kn_pass_fuse_attention,
    kn_pass_fuse_skip_layernorm, kn_pass_fuse_gelu, kn_pass_fuse_conv_activation,
    kn_pass_fuse_gemm_activation, kn_pass_fuse_dynamic_quant, kn_pass_fuse_qdq,
    kn_pass_qdq_channels_last;
/* The level-all passes (kiln-only forms), after the fusions they build on. */
extern const kn_opt_pass kn_pass_fuse_conv_silu, kn_pass_fuse_matmul_gelu, kn_pass_layout_nchwc;

/* Passes in the order they run; each family file defines its entries.  The lists
 * grow as passes land (src/opt/<pass family>.c).  Basic: clean-ups first (so that
 * folding sees through Identity/Dropout), then folding, then the rewrites that
 * match patterns.  Extended: fusions into com.microsoft operators
 * (src/opt/fuse_*.c), layer norms first so that the attention and skip fusions see
 * them; QDQ patterns into integer operators before the float fusions could take
 * their Conv/Gemm + activation (then their 8-bit activations go channels-last).  Dead-code removal last. */
static const kn_opt_pass *const pass_list[] = {
    &kn_pass_eliminate_identity,
    &kn_pass_fold_constants,
    &kn_pass_eliminate_transpose,
    &kn_pass_dedupe_initializers,
    &kn_pass_cse,
    &kn_pass_fold_conv_bn,
    &kn_pass_matmul_add_to_gemm,
    &kn_pass_fuse_qdq,
    &kn_pass_qdq_channels_last,
    &kn_pass_fuse_layernorm,
    &kn_pass_fuse_dynamic_quant, /* before attention, skip-LN and gelu: see its file */
    &kn_pass_fuse_attention,
    &kn_pass_fuse_skip_layernorm,
    &kn_pass_fuse_gelu,
    &kn_pass_fuse_conv_activation,
    &kn_pass_fuse_gemm_activation,
    &kn_pass_fuse_conv_silu,
    &kn_pass_fuse_matmul_gelu,
    &kn_pass_layout_nchwc, /* last: the fusions above work on the NCHW graph */
    &kn_pass_eliminate_dead,
    NULL,
};

int kn_opt_level_parse(const char *s)
{
    static const char *const names[] = {"none", "basic", "extended", "all"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]) || (s[0] == '0' + i && !s[1]))
            return i;
    return -1;
}

static void report_add(kn_opt_report *rep, const char *name, int rewrites)
{
    for (int i = 0; i < rep->n_passes; i++) {
        if (!strcmp(rep->passes[i].name, name)) {
            rep->passes[i].rewrites += rewrites;
            return;
        }
    }
    if (rep->n_passes < KN_OPT_MAX_PASSES) {
        rep->passes[rep->n_passes].name = name;
        rep->passes[rep->n_passes].rewrites = rewrites;
        rep->n_passes++;
    }
}

#define MAX_ROUNDS 8

static int optimize(kn_model *m, kn_opt_level level, bool portable, kn_opt_report *rep,
                    kn_error *err)
{
    kn_opt_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    kn_graph *g = m->graph;
    rep->nodes_before = rep->nodes_after = g->n_nodes;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int changed = 0;
        for (int p = 0; pass_list[p]; p++) {
            const kn_opt_pass *pass = pass_list[p];
            if (pass->level > level || (portable && pass->kiln_only))
                continue;
            int n = 0;
            if (pass->run(g, &n, err)) {
                /* compact what the pass already marked, so the graph stays runnable */
                kn_error ignored;
                kn_opt_refinalize(g, &ignored);
                rep->nodes_after = g->n_nodes;
                return kn_error_prefix(err, "pass %s: ", pass->name);
            }
            if (n && kn_opt_refinalize(g, err))
                return kn_error_prefix(err, "after pass %s: ", pass->name);
            report_add(rep, pass->name, n);
            changed += n;
        }
        if (!changed)
            break;
    }
    rep->nodes_after = g->n_nodes;
    return KN_OK;
}

int kn_optimize(kn_model *m, kn_opt_level level, kn_opt_report *rep, kn_error *err)
{
    return optimize(m, level, false, rep, err);
}

int kn_optimize_portable(kn_model *m, kn_opt_level level, kn_opt_report *rep, kn_error *err)
{
    return optimize(m, level, true, rep, err);
}
