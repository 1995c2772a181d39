/* conv_nchwc_stem.c - stem convolutions (NCHW input with few channels, blocked
 * output).  PLACEHOLDER while the kernels are written on branch nchwc_stem:
 * declines every geometry (pack returns NULL, so the NCHWc pass leaves stems in
 * NCHW). */
#include "kernels/nchwc_internal.h"

kn_nchwc_weights *kn_nchwc_stem_pack(const kn_nchwc_conv *g, const float *w, const float *bias)
{
    (void)g, (void)w, (void)bias;
    return NULL;
}

void kn_nchwc_stem_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    (void)pool, (void)isa, (void)a;
}

void kn_nchwc_stem_reference(const kn_nchwc_conv_args *a)
{
    (void)a;
}
