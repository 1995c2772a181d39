#!/bin/sh
# test_compare.sh KILN REPO - `kiln compare` and the size report of `kiln inspect`
# as a user runs them: a model against itself (100% agreement, zero error), against
# its `kiln optimize`d copy, JSON, labels (IDX and text), and bad input.
KILN=$1
REPO=$2
FM=/usr/share/datasets/fashion-mnist
MODEL=$REPO/examples/fmnist/fmnist_cnn.onnx
. "$REPO/tests/cli/expect.sh"

# size report
expect_ok "inspect bytes per dtype" "float32 *10 initializers *864680 bytes" "$KILN" inspect "$MODEL"
expect_ok "inspect total" "parameters: 216170 in 10 initializers, 844.4 KiB (864680 bytes)" "$KILN" inspect "$MODEL"

# a model against itself: random inputs
expect_ok "self agreement" "top-1 agreement 100.00% (8/8)" "$KILN" compare "$MODEL" "$MODEL"
expect_ok "self error" "max abs 0  mean abs 0  cosine 1.000000  rel 0" "$KILN" compare "$MODEL" "$MODEL"
expect_ok "self layers" "layers: 3 worst of 12 shared" "$KILN" compare "$MODEL" "$MODEL" --layers 3 --batch 2 --limit 4
expect_ok "self outputs only" "top-1 agreement 100.00% (5/5)" "$KILN" compare "$MODEL" "$MODEL" --layers 0 --limit 5 --seed 7
"$KILN" compare "$MODEL" "$MODEL" --layers 0 >"$TMP/l0" 2>&1
grep -q "^layers" "$TMP/l0" && bad "--layers 0 prints no layers" || ok

expect_ok "self sensitive" "most sensitive quantized nodes (by the error each adds): none" "$KILN" compare "$MODEL" "$MODEL" --sensitive 2 --limit 2 --layers 0
expect_ok "self sensitive json" '"sensitive": \[\]' "$KILN" compare "$MODEL" "$MODEL" --sensitive 2 --limit 2 --json
expect_err "bad sensitive" "sensitive expects" "$KILN" compare "$MODEL" "$MODEL" --sensitive 0

# against the optimized copy (fused Conv+Relu, Gemm+Relu): same outputs, layers
# matched by name where they survive
"$KILN" optimize "$MODEL" -o "$TMP/opt.onnx" >/dev/null 2>&1 || bad "optimize"
expect_ok "optimized agreement" "top-1 agreement 100.00% (16/16)" "$KILN" compare "$MODEL" "$TMP/opt.onnx" --limit 16 --batch 8
expect_ok "optimized layers" "Relu -> FusedConv" "$KILN" compare "$MODEL" "$TMP/opt.onnx" --limit 2
expect_ok "optimized json" '"agreement": 100' "$KILN" compare "$MODEL" "$TMP/opt.onnx" --limit 4 --json
if command -v python3 >/dev/null 2>&1; then
    "$KILN" compare "$MODEL" "$TMP/opt.onnx" --limit 4 --json --layers 2 >"$TMP/j" 2>&1
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['layers'])==2 and d['outputs'][0]['cosine']>0.99999" "$TMP/j" && ok || bad "json parses"
fi

# real data with labels: accuracy of each
if [ -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
    expect_ok "data labels" "accuracy A 9[0-9].[0-9]*%  B 9[0-9].[0-9]*%  (B - A +0.00 points)" "$KILN" compare "$MODEL" "$TMP/opt.onnx" \
        --data "$FM/t10k-images-idx3-ubyte.gz" --labels "$FM/t10k-labels-idx1-ubyte.gz" --normalize 0.2860,0.3530 --limit 300 --layers 0
    printf '9 2 1 1 6\n1 4 6 5 7\n' >"$TMP/labels.txt"
    expect_ok "text labels" "(10/10)" "$KILN" compare "$MODEL" "$MODEL" \
        --data "$FM/t10k-images-idx3-ubyte.gz" --labels "$TMP/labels.txt" --normalize 0.2860,0.3530 --limit 10 --layers 0
    printf '9 2 x\n' >"$TMP/junk.txt"
    printf "9 2\n" >"$TMP/two.txt"
    expect_err "junk labels" "integers" "$KILN" compare "$MODEL" "$MODEL" --data "$FM/t10k-images-idx3-ubyte.gz" --labels "$TMP/junk.txt"
    expect_err "too few labels" "2 labels for at least 5 samples" "$KILN" compare "$MODEL" "$MODEL" --data "$FM/t10k-images-idx3-ubyte.gz" --labels "$TMP/two.txt" --limit 5
fi

# against quantized copies: --sensitive names Conv/Gemm nodes of the float model, and
# not the ones kept in float by --exclude
RANGES=$REPO/tests/cli/fmnist_cnn.ranges.txt
if "$KILN" quantize "$MODEL" -o "$TMP/st.onnx" --mode static --ranges "$RANGES" >/dev/null 2>&1 &&
   "$KILN" quantize "$MODEL" -o "$TMP/ex.onnx" --mode static --ranges "$RANGES" \
       --exclude /body/body.4/Conv,/body/body.8/Conv >/dev/null 2>&1; then
    expect_ok "static sensitive" "nodes (by the error each adds): /[a-z/.0-9]*/Conv, " "$KILN" compare "$MODEL" "$TMP/st.onnx" \
        --limit 8 --layers 0 --sensitive 3
    expect_ok "static layers marked" "B quantizes this value with the range of the activation" "$KILN" compare "$MODEL" \
        "$TMP/st.onnx" --limit 4 --layers 20
    "$KILN" compare "$MODEL" "$TMP/ex.onnx" --limit 8 --layers 0 --sensitive 5 >"$TMP/ex" 2>&1
    grep -q "body.0/Conv" "$TMP/ex" && ! grep -q "body.4/Conv\|body.8/Conv" "$TMP/ex" && ok ||
        { bad "excluded nodes suggested again"; cat "$TMP/ex"; }
else
    bad "quantize static for compare"
fi

# --data through the calibration sources: a .npy file, --mean/--std spelled as in calibrate
expect_ok "npy data" "top-1 agreement 100.00% (16/16)" "$KILN" compare "$MODEL" "$MODEL" \
    --data "$REPO/examples/fmnist/fmnist_cnn.in.image.npy" --layers 0
if [ -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
    expect_ok "mean std" "(10/10)" "$KILN" compare "$MODEL" "$MODEL" --data "$FM/t10k-images-idx3-ubyte.gz" \
        --labels "$TMP/labels.txt" --mean 0.2860 --std 0.3530 --limit 10 --layers 0
fi
expect_err "bad std" "std must not be 0" "$KILN" compare "$MODEL" "$MODEL" --std 0

# bad input
expect_err "one model" "two models" "$KILN" compare "$MODEL"
expect_err "missing model" "No such file" "$KILN" compare "$MODEL" "$TMP/none.onnx"
expect_err "bad option" "unknown or incomplete option" "$KILN" compare "$MODEL" "$MODEL" --frob
expect_err "bad limit" "limit expects" "$KILN" compare "$MODEL" "$MODEL" --limit 0
expect_err "labels without data" "needs --data" "$KILN" compare "$MODEL" "$MODEL" --labels "$TMP/labels.txt"
printf 'not a model' >"$TMP/junk.onnx"
expect_err "junk model" "cannot load" "$KILN" compare "$MODEL" "$TMP/junk.onnx"
expect_err "wrong data shape" "each sample of" "$KILN" compare "$MODEL" "$MODEL" --data "$FM/t10k-labels-idx1-ubyte.gz"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
