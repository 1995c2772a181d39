/* quant_int4.c - int4 weight-only quantization (MatMulNBits form of quant.h). */
#include "quant/quant_internal.h"

int kn_quant_int4(kn_graph *g, const kn_quant_opts *o, kn_quant_report *rep, kn_error *err)
{
    return kn_fail(err, KN_ERR_UNSUPPORTED, "int4 quantization is not written yet");
}
