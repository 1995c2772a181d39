#!/bin/sh
# check_zoo.sh [EXTRA_DIR] - every model of docs/MODELS.md, one after another:
# PyTorch references (build/test_golden) and ONNX Runtime at two input sizes
# (tools/check_model.sh), float16 copies (tools/check_fp16.sh), external-data copies.
# EXTRA_DIR (default /work/models-extra) holds the torchvision/BERT exports and zoo/,
# made by: /usr/bin/python3 tools/make_test_models.py EXTRA_DIR/zoo
HERE=$(cd "$(dirname "$0")/.." && pwd)
X=${1:-/work/models-extra}
Z=$X/zoo
C="$HERE/tools/check_model.sh"
cd "$HERE" || exit 1
for m in resnet18 resnet50 mobilenet_v3_small shufflenet_v2_x1_0 efficientnet_b0 densenet121 \
         convnext_tiny vit_b_16 bert_base; do
    [ -f "$X/$m.onnx" ] || continue
    $C "$X/$m.onnx"
    $C "$X/$m.onnx" --dim batch=2
done
# final outputs of these random-weight exports are ~0 (ViT's head is zero-initialised):
# compare intermediate tensors too
mkdir -p "$X/probes"
for m in mobilenet_v3_small efficientnet_b0 shufflenet_v2_x1_0 vit_b_16; do
    [ -f "$X/probes/$m.probe.onnx" ] || /usr/bin/python3 tools/probe_model.py "$X/$m.onnx" "$X/probes/$m.probe.onnx" 6
    $C "$X/probes/$m.probe.onnx"
done
echo "== zoo golden, first size"; build/test_golden "$Z"
echo "== zoo golden, second size"; build/test_golden "$Z/alt"
/usr/bin/python3 -c "import numpy as np; np.save('$Z/sr16k.npy', np.array(16000)); np.save('$Z/sr8k.npy', np.array(8000))"
while read -r m a b; do
    $C "$Z/$m.onnx" $(echo "$a" | tr , ' ')
    $C "$Z/$m.onnx" $(echo "$b" | tr , ' ')
done <<EOF2
gpt2_tiny --dim,batch=1,--dim,seq=16 --dim,batch=3,--dim,seq=64
whisper_tiny_encoder --dim,batch=1,--dim,frames=300 --dim,batch=2,--dim,frames=64
crnn_ocr --dim,batch=1,--dim,width=128 --dim,batch=4,--dim,width=40
dbnet_det --dim,batch=1,--dim,height=128,--dim,width=96 --dim,batch=2,--dim,height=64,--dim,width=160
vad_lstm --dim,batch=1,--dim,samples=512,-i,sr=$Z/sr16k.npy --dim,batch=3,--dim,samples=256,-i,sr=$Z/sr8k.npy
t5_encoder --dim,batch=1,--dim,seq=20 --dim,batch=2,--dim,seq=100
cnn_opset11 --dim,batch=1 --dim,batch=4
cnn_opset9 --dim,batch=1 --dim,batch=4
cnn_opset7 --dim,batch=1 --dim,batch=1
greedy_decoder --dim,batch=1,-i,steps=$Z/greedy_decoder.in.steps.npy --dim,batch=2,-i,steps=$Z/alt/greedy_decoder.in.steps.npy
qdq_cnn --dim,batch=1 --dim,batch=3
nms_detector --dim,height=96,--dim,width=128 --dim,height=32,--dim,width=64
packed_rnn --dim,time=7,--dim,batch=3,-i,lengths=$Z/packed_rnn.in.lengths.npy --dim,time=9,--dim,batch=2,-i,lengths=$Z/alt/packed_rnn.in.lengths.npy
image_to_image --dim,batch=1,--dim,height=32,--dim,width=16 --dim,batch=3,--dim,height=8,--dim,width=40
logmel_frontend --dim,batch=1,--dim,samples=400 --dim,batch=3,--dim,samples=1000
resize_variants --dim,batch=1 --dim,batch=3
sweep_cnn --dim,batch=1 --dim,batch=3
sweep_elementwise --dim,batch=1 --dim,batch=3
sweep_tensor --dim,batch=2 --dim,batch=3
sweep_sequence --dim,batch=1,--dim,time=9 --dim,batch=4,--dim,time=3
gpt2_kv --dim,batch=2,--dim,seq=5,--dim,past=0 --dim,batch=3,--dim,seq=4,--dim,past=20
EOF2
while read -r m a; do
    echo "== $m float16 $a"
    tools/check_fp16.sh "$Z/$m.onnx" $(echo "$a" | tr , ' ')
done <<EOF2
dbnet_det --dim,batch=1,--dim,height=64,--dim,width=96
whisper_tiny_encoder --dim,batch=1,--dim,frames=100
gpt2_tiny --dim,batch=1,--dim,seq=16
cnn_opset11 --dim,batch=2
crnn_ocr --dim,batch=2,--dim,width=64
t5_encoder --dim,batch=2,--dim,seq=10
EOF2
mkdir -p "$X/extdata"
/usr/bin/python3 - "$Z" "$X/extdata" <<'PY'
import os, sys
import onnx
for m, one in (("gpt2_tiny", True), ("crnn_ocr", False)):
    out = os.path.join(sys.argv[2], m + ".ext.onnx")
    onnx.save_model(onnx.load(os.path.join(sys.argv[1], m + ".onnx")), out, save_as_external_data=True,
                    all_tensors_to_one_file=one, location=m + ".weights", size_threshold=512)
PY
$C "$X/extdata/gpt2_tiny.ext.onnx" --dim batch=2 --dim seq=20
$C "$X/extdata/crnn_ocr.ext.onnx" --dim batch=2 --dim width=64
