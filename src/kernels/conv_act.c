/* conv_act.c - the activations Conv/FusedConv fuse into their output: one value,
 * a span, and whether an activation is a clamp the vector kernels do inline. */
#include "kernels/conv_kernels.h"
#include "kernels/vmath.h"

#include <math.h>

float kn_conv_act_one(const kn_conv_act *act, float v)
{
    switch (act ? act->kind : KN_CONV_ACT_NONE) {
    case KN_CONV_ACT_RELU:
        return v < 0.0f ? 0.0f : v;
    case KN_CONV_ACT_LEAKY_RELU:
        return v < 0.0f ? act->alpha * v : v;
    case KN_CONV_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case KN_CONV_ACT_TANH:
        return tanhf(v);
    case KN_CONV_ACT_SILU:
        return v / (1.0f + expf(-v));
    case KN_CONV_ACT_CLIP:
        v = v < act->alpha ? act->alpha : v;
        return v > act->beta ? act->beta : v;
    case KN_CONV_ACT_HARD_SIGMOID: {
        float h = act->alpha * v + act->beta;
        h = h < 0.0f ? 0.0f : h;
        return h > 1.0f ? 1.0f : h;
    }
    default:
        return v;
    }
}

void kn_conv_act_apply(const kn_conv_act *act, float *x, size_t n)
{
    if (!act || act->kind == KN_CONV_ACT_NONE)
        return;
    /* the piecewise-linear ones as branch-free loops the compiler vectorizes */
    float a = act->alpha, b = act->beta;
    if (act->kind == KN_CONV_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0.0f ? 0.0f : x[i];
        return;
    }
    if (act->kind == KN_CONV_ACT_LEAKY_RELU) {
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0.0f ? a * x[i] : x[i];
        return;
    }
    if (act->kind == KN_CONV_ACT_HARD_SIGMOID) {
        for (size_t i = 0; i < n; i++) {
            float h = a * x[i] + b;
            h = h < 0.0f ? 0.0f : h;
            x[i] = h > 1.0f ? 1.0f : h;
        }
        return;
    }
    const kn_vmath_ops *vm = kn_vmath();
    kn_vm_map_fn map = act->kind == KN_CONV_ACT_SIGMOID ? vm->sigmoid
                       : act->kind == KN_CONV_ACT_TANH  ? vm->tanh
                       : act->kind == KN_CONV_ACT_SILU  ? vm->silu
                                                        : NULL;
    if (map) {
        map(x, x, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = kn_conv_act_one(act, x[i]);
}

int kn_conv_act_is_clamp(const kn_conv_act *act, float *lo, float *hi)
{
    kn_conv_act_kind k = act ? act->kind : KN_CONV_ACT_NONE;
    *lo = -INFINITY;
    *hi = INFINITY;
    if (k == KN_CONV_ACT_RELU)
        *lo = 0.0f;
    if (k == KN_CONV_ACT_CLIP) {
        *lo = act->alpha;
        *hi = act->beta;
    }
    return k == KN_CONV_ACT_NONE || k == KN_CONV_ACT_RELU || k == KN_CONV_ACT_CLIP;
}
