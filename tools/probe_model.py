#!/usr/bin/python3
"""probe_model.py MODEL.onnx OUT.onnx [K] - copy of MODEL with K (default 6) intermediate
float tensors added as graph outputs, evenly spaced along the node list, plus the inputs of
the last node.  Random-weight exports can have near-constant final outputs (torchvision
zero-initialises ViT's head; EfficientNet's and MobileNetV3's logits are ~1e-14): comparing
the probes with ONNX Runtime checks the network body where the logits cannot."""
import sys

import onnx
from onnx import TensorProto, helper, shape_inference

FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    model = shape_inference.infer_shapes(onnx.load(sys.argv[1]))
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input)}
    have = {o.name for o in g.output}
    cands = [o for n in g.node if n.op_type not in ("Constant", "Shape")
             for o in n.output[:1] if types.get(o) in FLOATS]
    picks = [cands[int(i * (len(cands) - 1) / max(k - 1, 1))] for i in range(k)] if cands else []
    picks += [i for i in g.node[-1].input if types.get(i) in FLOATS]
    for name in dict.fromkeys(picks):
        if name not in have:
            g.output.append(helper.make_tensor_value_info(name, types[name], None))
            have.add(name)
    onnx.save(model, sys.argv[2])
    print(f"{sys.argv[2]}: outputs {[o.name for o in g.output]}")


if __name__ == "__main__":
    main()
