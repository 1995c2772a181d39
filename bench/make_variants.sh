#!/bin/sh
# make_variants.sh [MODEL_DIR] - the compressed variants bench_vs_ort.js times next to
# their FP32 bases, made with `kiln quantize` from the models in MODEL_DIR
# (default bench/models; make the bases with ../shared/tools/make_models.py):
#   resnet50.int8      static INT8 (QDQ), calibrated on the recorded input
#   mobilenet_v2.int8  the same
#   bert_base.dyn8     dynamic INT8 (MatMulInteger form)
#   bert_base.int4     INT4 weight-only MatMulNBits, block 32
#   vit_b_16.int4      the same
# Then: node bench/bench_vs_ort.js --models resnet50,resnet50.int8,bert_base,bert_base.dyn8,...
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/bench/models}
kiln=${KILN:-$root/build/kiln}

variant() { # base name mode [extra args]
    base=$1 name=$2 mode=$3
    shift 3
    if [ ! -f "$dir/$base.onnx" ]; then
        echo "skip $base.$name: $dir/$base.onnx missing" >&2
        return 0
    fi
    echo "== $base.$name ($mode)"
    "$kiln" quantize "$dir/$base.onnx" -o "$dir/$base.$name.onnx" --mode "$mode" "$@"
}

calib() { # the recorded input of a model, as calibration data
    echo "$dir/$1.in.input.npy"
}

variant resnet50 int8 static --calib "$(calib resnet50)"
variant mobilenet_v2 int8 static --calib "$(calib mobilenet_v2)"
variant bert_base dyn8 dynamic
variant bert_base int4 int4 --block 32
variant vit_b_16 int4 int4 --block 32
