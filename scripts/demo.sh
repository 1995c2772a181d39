#!/bin/sh
# demo.sh KILN FMNIST_DIR - the bundled example end to end: inspect the example
# model, run it on a few images, then classify the 10,000 real Fashion-MNIST test
# images and compare the accuracy with what PyTorch measured for the same model.
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
