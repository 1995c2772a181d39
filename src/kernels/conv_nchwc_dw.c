/* conv_nchwc_dw.c - depthwise convolution on blocked tensors.  PLACEHOLDER while
 * the real kernels are being written on branch nchwc_dw_pool: declines every
 * geometry (pack returns NULL, so the NCHWc pass leaves depthwise convs in NCHW). */
#include "kernels/nchwc_internal.h"

kn_nchwc_weights *kn_nchwc_dw_pack(const kn_nchwc_conv *g, const float *w, const float *bias)
{
    (void)g, (void)w, (void)bias;
    return NULL;
}

void kn_nchwc_dw_run(struct kn_threadpool *pool, kn_isa isa, const kn_nchwc_conv_args *a)
{
    (void)pool, (void)isa, (void)a;
}

void kn_nchwc_dw_reference(const kn_nchwc_conv_args *a)
{
    (void)a;
}
