#!/bin/sh
# test_quantize.sh KILN REPO - runs `kiln quantize` as a user does on the example
# model: every mode writes a model that kiln runs (int4 only when this build has
# MatMulNBits), static from a ranges file and from calibration data, size and node
# counts are printed, bad options are refused.
KILN=$1
REPO=$2
EX=$REPO/examples/fmnist
MODEL=$EX/fmnist_cnn.onnx
RANGES=$REPO/tests/cli/fmnist_cnn.ranges.txt
. "$REPO/tests/cli/expect.sh"
run_ok() { # run_ok NAME MODEL: kiln runs the written model on the example images
    expect_ok "$1 runs" "logits: float32\[16,10\]" "$KILN" run "$2" -i image="$EX/fmnist_cnn.in.image.npy"
}

expect_ok "dynamic" "mode dynamic: 5 nodes quantized, 0 kept in float" \
    "$KILN" quantize "$MODEL" -o "$TMP/dyn.onnx" --mode dynamic
grep -q "initializers: 864680 bytes before, .* after (3\.9.x smaller)" "$TMP/out" && ok || bad "dynamic size line"
run_ok dynamic "$TMP/dyn.onnx"
expect_ok "dynamic per-tensor, exclude" "3 nodes quantized, 2 kept in float" \
    "$KILN" quantize "$MODEL" -o "$TMP/dyn2.onnx" --mode dynamic --per-tensor --exclude Gemm
run_ok "dynamic per-tensor" "$TMP/dyn2.onnx"
expect_ok "static" "mode static: 12 nodes quantized, 0 kept in float" \
    "$KILN" quantize "$MODEL" -o "$TMP/st.onnx" --mode static --ranges "$RANGES"
run_ok static "$TMP/st.onnx"
expect_ok "static symmetric, exclude by name" "11 nodes quantized, 1 kept in float" \
    "$KILN" quantize "$MODEL" -o "$TMP/st2.onnx" --mode static --ranges "$RANGES" --symmetric \
    --exclude /head/head.4/Gemm
run_ok "static symmetric" "$TMP/st2.onnx"
for m in minmax entropy; do
    expect_ok "static --calib $m" "mode static: 12 nodes quantized" "$KILN" quantize "$MODEL" \
        -o "$TMP/stc_$m.onnx" --mode static --calib "$EX/fmnist_cnn.in.image.npy" --calib-method $m
    run_ok "static --calib $m" "$TMP/stc_$m.onnx"
done
expect_ok "fp16" "(2.00x smaller)" "$KILN" quantize "$MODEL" -o "$TMP/h.onnx" --mode fp16
run_ok fp16 "$TMP/h.onnx"
expect_ok "fp16 external data" "file size" "$KILN" quantize "$MODEL" -o "$TMP/hx.onnx" --mode fp16 --external-data
[ -s "$TMP/hx.onnx.data" ] && ok || bad "fp16 external data file"
run_ok "fp16 external" "$TMP/hx.onnx"
for b in 32 128; do
    expect_ok "int4 block $b" "mode int4: 2 nodes quantized" \
        "$KILN" quantize "$MODEL" -o "$TMP/i4_$b.onnx" --mode int4 --block $b
    "$KILN" inspect "$TMP/i4_$b.onnx" >"$TMP/out" 2>&1
    grep -q "MatMulNBits" "$TMP/out" && ok || { bad "int4 block $b has MatMulNBits"; cat "$TMP/out"; }
    grep -q "unsupported operators: none" "$TMP/out" && run_ok "int4 block $b" "$TMP/i4_$b.onnx"
done

# bad input
expect_err "no mode" "mode are required" "$KILN" quantize "$MODEL" -o "$TMP/x.onnx"
expect_err "no output" "required" "$KILN" quantize "$MODEL" --mode dynamic
expect_err "bad mode" "unknown mode 'int2'" "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode int2
expect_err "bad block" "32 or 128" "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode int4 --block 64
expect_err "static without ranges" "needs --calib PATH or --ranges FILE" \
    "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static
expect_err "ranges in dynamic mode" "are for --mode static" \
    "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode dynamic --ranges "$RANGES"
printf 'image 0 1\nconv -1 oops\n' >"$TMP/bad.txt"
expect_err "bad ranges line" "bad.txt:2: expected 'name lo hi'" \
    "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static --ranges "$TMP/bad.txt"
expect_err "missing ranges file" "cannot open" \
    "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static --ranges "$TMP/none.txt"
expect_err "bad calib method" "calib-method expects" \
    "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static --ranges "$RANGES" --calib-method median
expect_err "bad percentile" "percentile expects" \
    "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static --ranges "$RANGES" --percentile 101
expect_err "calib and ranges" "not both" "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static \
    --ranges "$RANGES" --calib "$EX/fmnist_cnn.in.image.npy"
expect_err "calib in fp16 mode" "are for --mode static" "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode fp16 \
    --calib "$EX/fmnist_cnn.in.image.npy"
expect_err "calib data missing" "calibrate" "$KILN" quantize "$MODEL" -o "$TMP/x.onnx" --mode static \
    --calib "$TMP/none.npy"
expect_err "missing model" "No such file" "$KILN" quantize "$TMP/none.onnx" -o "$TMP/x.onnx" --mode fp16
[ -e "$TMP/x.onnx" ] && bad "a failed quantize wrote its output" || ok

# --auto-exclude: quantize, compare with the float model on the data, keep the worst in float
expect_ok "auto-exclude" "keeping 1 node in float" "$KILN" quantize "$MODEL" -o "$TMP/ae.onnx" \
    --mode dynamic --calib "$EX/fmnist_cnn.in.image.npy" --auto-exclude 1
run_ok "auto-exclude" "$TMP/ae.onnx"
[ -e "$TMP/ae.onnx.probe.onnx" ] && bad "auto-exclude left its probe model" || ok
expect_err "auto-exclude without data" "needs data" "$KILN" quantize "$MODEL" -o "$TMP/x2.onnx" \
    --mode dynamic --auto-exclude 1
expect_err "auto-exclude bad count" "count from 1 to 64" "$KILN" quantize "$MODEL" -o "$TMP/x2.onnx" \
    --mode dynamic --calib "$EX/fmnist_cnn.in.image.npy" --auto-exclude 0

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
