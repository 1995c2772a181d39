/* quant_static.c - static int8 quantization (QDQ form of quant.h). */
#include "quant/quant_internal.h"

int kn_quant_static(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    return kn_fail(err, KN_ERR_UNSUPPORTED, "static quantization is not written yet");
}
