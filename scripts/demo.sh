#!/bin/sh
# demo.sh KILN FMNIST_DIR - the bundled example end to end: inspect the example
# model, run it on a few images, then classify the 10,000 real Fashion-MNIST test
# images and compare the accuracy with what PyTorch measured for the same model,
# then serve it over HTTP with `kiln serve` (foreground, until Ctrl-C).
set -e
KILN=$1
DATA=$2
HERE=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$HERE/examples/fmnist/fmnist_cnn.onnx

echo "== kiln inspect"
"$KILN" inspect "$MODEL"
echo
echo "== kiln run (16 sample images, outputs written to build/demo-out)"
"$KILN" run "$MODEL" -i image="$HERE/examples/fmnist/fmnist_cnn.in.image.npy" -o "$HERE/build/demo-out"
echo
echo "== kiln eval on the Fashion-MNIST test set"
"$KILN" eval "$MODEL" --data "$DATA/t10k-images-idx3-ubyte.gz" \
    --labels "$DATA/t10k-labels-idx1-ubyte.gz" --normalize 0.2860,0.3530
echo "PyTorch measured: $(cat "$HERE/examples/fmnist/fmnist_cnn.accuracy.txt")% top-1 on the same images"

# Finally the same model behind HTTP: `kiln serve` with no arguments serves the
# bundled example on 127.0.0.1:8000 (KServe v2 / Triton protocol) in the foreground.
URL=http://127.0.0.1:8000
echo
echo "== kiln serve: the example model over HTTP at $URL (Ctrl-C stops it)"
echo "try from another terminal:"
echo "  curl $URL/v2/models/fmnist"
echo "  curl -X POST $URL/v2/models/fmnist/infer -d \"{\\\"inputs\\\":[{\\\"name\\\":\\\"image\\\",\\\"datatype\\\":\\\"FP32\\\",\\\"shape\\\":[1,1,28,28],\\\"data\\\":[\$(yes 0 | head -n 784 | paste -sd, -)]}]}\""
echo "  curl --data-binary @picture.png $URL/predict      # a JPEG or PNG: top-5 classes"
echo "  curl $URL/metrics"
exec "$KILN" serve
