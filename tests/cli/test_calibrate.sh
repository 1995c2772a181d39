#!/bin/sh
# test_calibrate.sh KILN REPO MAKE_IMAGES - `kiln calibrate` on the Fashion-MNIST
# example: 256 IDX test images with each method give a sane ranges file (every
# Conv/Relu output present, lo <= 0 <= hi, ReLU outputs lo == 0, percentile and
# entropy ranges inside the minmax range); the .npy and image sources work; bad
# input fails with a clear message.  MAKE_IMAGES (serve_make_images) writes a PNG
# and a JPEG; without it the image cases are skipped.  SHARED (the shared test
# data) gives models with an int64 token-id input (tiny_bert) and with two inputs
# (the conformance case test_add): skipped without it.
KILN=$1
REPO=$2
MAKE_IMAGES=$3
SHARED=$4
EX=$REPO/examples/fmnist
MODEL=$EX/fmnist_cnn.onnx
FM=/usr/share/datasets/fashion-mnist
. "$REPO/tests/cli/expect.sh"

# check NAME AWK-PROGRAM FILE...: the awk program (run on the lines that are not
# '#' comments) prints nothing (else its output is the failure)
check() {
    name=$1; prog=$2; shift 2
    msg=$(awk "/^#/ { next } $prog" "$@")
    if [ -z "$msg" ]; then ok; else bad "$name: $msg"; fi
}

# A ranges file is sane: numbers, lo <= 0 <= hi, ReLU outputs start at 0, the
# example's 3 Conv and 4 Relu outputs, its input and its output all present.
sane() {
    m=$1; f=$TMP/r_$m.txt
    check "$m ranges numeric, lo<=0<=hi" 'NF != 3 || $2 + 0 > 0 || $3 + 0 < 0 || $2 + 0 > $3 + 0 { print "bad line: " $0 }' "$f"
    check "$m relu lo == 0" '/Relu_output/ && $2 + 0 != 0 { print "relu lo not 0: " $0 }' "$f"
    check "$m every conv/relu" '/Conv_output_0 / { c++ } /Relu_output_0 / { r++ } $1 == "image" { i++ } $1 == "logits" { o++ }
        END { if (c != 3 || r != 4 || i != 1 || o != 1) print c " conv, " r " relu, " i " input, " o " output lines" }' "$f"
}
# Every range of FILE lies inside the minmax range of the same value.
inside_minmax() {
    m=$1
    check "$m inside minmax" 'FNR == NR { lo[$1] = $2; hi[$1] = $3; next }
        !($1 in lo) { print "no minmax range for " $1; next }
        $2 + 0 < lo[$1] + 0 || $3 + 0 > hi[$1] + 0 { print $1 ": " $2 " " $3 " outside " lo[$1] " " hi[$1] }' \
        "$TMP/r_minmax.txt" "$TMP/r_$m.txt"
}

if [ -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
    for m in minmax percentile entropy; do
        expect_ok "calibrate idx $m" "calibrated 13 values ($m)" "$KILN" calibrate "$MODEL" --calib \
            "$FM/t10k-images-idx3-ubyte.gz" --mean 0.2860 --std 0.3530 --calib-limit 256 --calib-method $m \
            -o "$TMP/r_$m.txt"
        sane $m
    done
    inside_minmax percentile
    expect_ok "ranges feed quantize" "." "$KILN" quantize "$MODEL" --mode static --ranges "$TMP/r_entropy.txt" \
        -o "$TMP/q.onnx"
    inside_minmax entropy
    check "percentile narrower somewhere" 'FNR == NR { w[$1] = $3 - $2; next } $3 - $2 < w[$1] { n++ } END { if (!n) print "no range got narrower" }' \
        "$TMP/r_minmax.txt" "$TMP/r_percentile.txt"
    # the input's range is the normalized pixel range: (0 - .286)/.353 .. (1 - .286)/.353
    check "input range" '$1 == "image" && ($2 < -0.82 || $2 > -0.80 || $3 < 2.0 || $3 > 2.03) { print $0 }' "$TMP/r_minmax.txt"
    # progress: a line per 10% when stderr is not a terminal
    expect_ok "progress lines" "calibrating: 100% (64 samples" "$KILN" calibrate "$MODEL" --calib \
        "$FM/t10k-images-idx3-ubyte.gz" --calib-limit 64 --calib-batch 16 -o "$TMP/r.txt"
    expect_ok "stdout without -o" "^logits " "$KILN" calibrate "$MODEL" --calib "$FM/t10k-images-idx3-ubyte.gz" \
        --calib-limit 8 --quiet
    expect_err "labels as data" "each sample of \[10000\] has 1 values" "$KILN" calibrate "$MODEL" --calib \
        "$FM/t10k-labels-idx1-ubyte.gz"
fi

# .npy: one file is one batch; a folder of them
mkdir "$TMP/npy"
cp "$EX/fmnist_cnn.in.image.npy" "$TMP/npy/a.npy"
cp "$EX/fmnist_cnn.in.image.npy" "$TMP/npy/b.npy"
expect_ok "npy file" "calibrated 13 values" "$KILN" calibrate "$MODEL" --calib "$EX/fmnist_cnn.in.image.npy" -o "$TMP/n1.txt"
expect_ok "npy folder" "calibrated 13 values" "$KILN" calibrate "$MODEL" --calib "$TMP/npy" -o "$TMP/n2.txt"
# the same file twice gives the same ranges as once (and batches of 5 the same as whole files)
expect_ok "npy folder batches" "calibrated" "$KILN" calibrate "$MODEL" --calib "$TMP/npy" --calib-batch 5 -o "$TMP/n3.txt"
for f in n1 n2 n3; do grep -v '^#' "$TMP/$f.txt" >"$TMP/$f.ranges"; done
if cmp -s "$TMP/n1.ranges" "$TMP/n2.ranges" && cmp -s "$TMP/n2.ranges" "$TMP/n3.ranges"; then ok; else bad "npy ranges differ"; fi
expect_ok "npy limit" "calibrating: 100% (20 samples" "$KILN" calibrate "$MODEL" --calib "$TMP/npy" --calib-limit 20 -o "$TMP/n4.txt"

# images: a folder of PNG/JPEG, resized to the model's 28x28 gray input
if [ -n "$MAKE_IMAGES" ] && "$MAKE_IMAGES" "$TMP/img" >/dev/null 2>&1; then
    mkdir "$TMP/images"
    mv "$TMP/img.png" "$TMP/img.jpg" "$TMP/images/"
    echo "not an image" >"$TMP/images/notes.txt"
    expect_ok "image folder" "calibrated 13 values" "$KILN" calibrate "$MODEL" --calib "$TMP/images" \
        --resize 28 --crop 28 --mean 0.2860 --std 0.3530 -o "$TMP/i.txt"
    cp "$TMP/images/img.png" "$TMP/one.png"
    expect_ok "one image" "calibrated" "$KILN" calibrate "$MODEL" --calib "$TMP/one.png" -o "$TMP/i1.txt"
    expect_err "crop vs model" "--crop 32 does not fit" "$KILN" calibrate "$MODEL" --calib "$TMP/images" --crop 32
    expect_err "3 means for gray" "three --mean/--std values for a 1-channel" "$KILN" calibrate "$MODEL" \
        --calib "$TMP/images" --mean 0.4,0.4,0.4
    cp "$TMP/npy/a.npy" "$TMP/images/"
    expect_err "mixed folder" "both .npy files and images" "$KILN" calibrate "$MODEL" --calib "$TMP/images"
    rm "$TMP/images/a.npy"
    head -c 100 "$TMP/images/img.jpg" >"$TMP/images/broken.jpg"
    expect_err "corrupt image" "broken.jpg" "$KILN" calibrate "$MODEL" --calib "$TMP/images"
fi

# token ids: an int64 input fed as it is; several inputs: a folder of <input name>.npy
BERT=$SHARED/models/tiny_bert
ADD=$SHARED/onnx-backend-tests/node/test_add/model.onnx
if [ -n "$SHARED" ] && [ -f "$BERT.onnx" ]; then
    expect_ok "int64 token ids" "calibrated" "$KILN" calibrate "$BERT.onnx" --calib "$BERT.in.input_ids.npy" \
        -o "$TMP/bert.txt"
    check "token ids not scaled" '$1 == "input_ids" { print "int64 input got a range: " $0 }' "$TMP/bert.txt"
    expect_ok "int64 static quantize" "mode static: [1-9][0-9]* nodes quantized" "$KILN" quantize "$BERT.onnx" \
        --mode static --calib "$BERT.in.input_ids.npy" -o "$TMP/bert_st.onnx"
    expect_ok "int64 static runs" "output: float32" "$KILN" run "$TMP/bert_st.onnx" -i input_ids="$BERT.in.input_ids.npy"
    expect_err "no --mean for token ids" "--mean/--std apply to float32 inputs, this one is int64" "$KILN" \
        calibrate "$BERT.onnx" --calib "$BERT.in.input_ids.npy" --mean 0.5
fi
if [ -n "$SHARED" ] && [ -f "$ADD" ]; then
    "$KILN" run "$ADD" --random --save-inputs "$TMP/add" >/dev/null
    expect_ok "two inputs" "calibrated 3 values" "$KILN" calibrate "$ADD" --calib "$TMP/add" -o "$TMP/add.txt"
    check "two inputs: x, y, sum" '$1 == "x" || $1 == "y" { n++ } END { if (n != 2) print n " input lines" }' "$TMP/add.txt"
    expect_err "two inputs need a folder" "the model has 2 inputs: --calib must be a folder" "$KILN" calibrate \
        "$ADD" --calib "$TMP/add/x.npy"
    rm "$TMP/add/y.npy"
    expect_err "missing input file" "input 'y': .*y.npy: no such file" "$KILN" calibrate "$ADD" --calib "$TMP/add"
fi

# bad input
mkdir "$TMP/empty"
echo "hello" >"$TMP/text.bin"
expect_err "missing path" "no such file or folder" "$KILN" calibrate "$MODEL" --calib "$TMP/nope"
expect_err "empty folder" "no .npy, JPEG or PNG files" "$KILN" calibrate "$MODEL" --calib "$TMP/empty"
expect_err "not idx" "not a .npy, IDX, JPEG or PNG file" "$KILN" calibrate "$MODEL" --calib "$TMP/text.bin"
expect_err "npy wrong shape" "the model input \[?,1,28,28\] wants 784" "$KILN" calibrate "$MODEL" \
    --calib "$EX/fmnist_cnn.out.logits.npy"
cp "$TMP/text.bin" "$TMP/npy/c.npy"
expect_err "corrupt npy in folder" "c.npy" "$KILN" calibrate "$MODEL" --calib "$TMP/npy"
expect_err "bad method" "minmax, percentile or entropy" "$KILN" calibrate "$MODEL" --calib "$TMP/npy" --calib-method kl
expect_err "bad percentile" "--percentile expects" "$KILN" calibrate "$MODEL" --calib "$TMP/npy" --percentile 101
expect_err "bad std" "--std must not be 0" "$KILN" calibrate "$MODEL" --calib "$TMP/npy" --std 0
expect_err "3 means for arrays" "three --mean/--std values are for images" "$KILN" calibrate "$MODEL" \
    --calib "$EX/fmnist_cnn.in.image.npy" --mean 1,2,3
expect_err "missing --calib" "required" "$KILN" calibrate "$MODEL"
expect_err "missing model" "fmnist_nope.onnx" "$KILN" calibrate "$EX/fmnist_nope.onnx" --calib "$TMP/npy"
expect_err "unwritable output" "cannot write" "$KILN" calibrate "$MODEL" --calib "$EX/fmnist_cnn.in.image.npy" \
    -o "$TMP/nope/r.txt"

echo "calibrate CLI: $pass passed, $fail failed"
[ $fail -eq 0 ]
