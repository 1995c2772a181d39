#!/usr/bin/python3
"""to_fp16.py IN.onnx OUT.onnx - float16 copy of a float32 model, as fp16 conversion
tools make them: float32 initializers, Constant/ConstantOfShape values, graph inputs,
outputs and value_info become float16, and Cast to float32 becomes Cast to float16.
Tensors that ONNX requires to stay float32 (Resize scales) are left alone."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

KEEP_F32 = {("Resize", 2), ("Upsample", 1)}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    m = onnx.load(sys.argv[1])
    g = m.graph
    keep = {n.input[i] for n in g.node for (op, i) in KEEP_F32 if n.op_type == op and len(n.input) > i}

    def half(t):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))

    for t in g.initializer:
        half(t)
    for n in g.node:
        for a in n.attribute:
            if a.name == "value" and a.type == onnx.AttributeProto.TENSOR and not set(n.output) & keep:
                half(a.t)
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT and v.name not in keep:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.save(m, sys.argv[2])


if __name__ == "__main__":
    main()
