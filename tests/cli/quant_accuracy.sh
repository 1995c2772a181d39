#!/bin/sh
# quant_accuracy.sh KILN REPO - the accuracy bar of issue 4 on the Fashion-MNIST
# example: quantize it in each mode, run `kiln eval` on the 10000 test images
# (labels from Debian's dataset-fashion-mnist) and check the loss of top-1 accuracy
# against the float model, the file size, and `kiln compare` agreement with the
# float model.  Prints the table (mode, accuracy, loss, size).  Exits 77 (skipped)
# when the data set is not installed.
KILN=$1
REPO=$2
FM=/usr/share/datasets/fashion-mnist
MODEL=$REPO/examples/fmnist/fmnist_cnn.onnx
NORM=0.2860,0.3530
. "$REPO/tests/cli/expect.sh"

if [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ] || [ ! -f "$FM/train-images-idx3-ubyte.gz" ]; then
    echo "SKIP: $FM (Debian's dataset-fashion-mnist) is not installed"
    exit 77
fi
TEST_X=$FM/t10k-images-idx3-ubyte.gz
TEST_Y=$FM/t10k-labels-idx1-ubyte.gz

# accuracy MODEL: top-1 accuracy in percent on the test set ("" on failure)
accuracy() {
    "$KILN" eval "$1" --data "$TEST_X" --labels "$TEST_Y" --normalize $NORM >"$TMP/eval" 2>&1 || {
        cat "$TMP/eval" >&2
        return
    }
    sed -n 's/^top-1 accuracy: \([0-9.]*\)%.*/\1/p' "$TMP/eval"
}

# le A B: A <= B for decimal numbers
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

size_of() { wc -c <"$1" | tr -d ' '; }

FLOAT_ACC=$(accuracy "$MODEL")
FLOAT_SIZE=$(size_of "$MODEL")
if [ -z "$FLOAT_ACC" ]; then
    bad "eval of the float model"
    exit 1
fi
printf '%-8s %9s %8s %10s %7s %10s\n' mode accuracy loss bytes ratio agreement >"$TMP/table"
printf '%-8s %8s%% %8s %10s %7s %10s\n' float "$FLOAT_ACC" - "$FLOAT_SIZE" 1.00 - >>"$TMP/table"

# check MODE MAX_LOSS MAX_SIZE_RATIO MIN_AGREEMENT QUANTIZE_OPTIONS...
check() {
    mode=$1; max_loss=$2; max_ratio=$3; min_agree=$4; shift 4
    out=$TMP/$mode.onnx
    if ! "$KILN" quantize "$MODEL" -o "$out" --mode "$mode" "$@" >"$TMP/q" 2>&1; then
        bad "quantize --mode $mode"
        cat "$TMP/q"
        return
    fi
    acc=$(accuracy "$out")
    [ -n "$acc" ] || { bad "eval of the $mode model"; return; }
    loss=$(awk -v f="$FLOAT_ACC" -v q="$acc" 'BEGIN { printf "%.2f", f - q }')
    size=$(size_of "$out")
    ratio=$(awk -v s="$size" -v f="$FLOAT_SIZE" 'BEGIN { printf "%.3f", s / f }')
    "$KILN" compare "$MODEL" "$out" --data "$TEST_X" --normalize $NORM --layers 0 --limit 2000 \
        >"$TMP/cmp" 2>&1 || { bad "compare float $mode"; cat "$TMP/cmp"; }
    agree=$(sed -n 's/.*top-1 agreement \([0-9.]*\)%.*/\1/p' "$TMP/cmp")
    printf '%-8s %8s%% %8s %10s %7s %9s%%\n' "$mode" "$acc" "$loss" "$size" "$ratio" "$agree" >>"$TMP/table"
    le "$loss" "$max_loss" && ok || bad "$mode loses $loss points of accuracy (at most $max_loss)"
    le "$ratio" "$max_ratio" && ok || bad "$mode file is $ratio of the float size (at most $max_ratio)"
    [ -n "$agree" ] && le "$min_agree" "$agree" && ok || bad "$mode agrees with float on ${agree:-?}% of 2000 (at least $min_agree)"
}

# static: activation ranges calibrated (minmax) on 2000 training images
check static 0.3 0.30 98.5 --calib "$FM/train-images-idx3-ubyte.gz" --mean 0.2860 --std 0.3530 \
    --calib-limit 2000
check dynamic 0.5 0.30 98.5
check int4 1.0 0.25 97.0 --block 32
check fp16 0.05 0.55 99.9

cat "$TMP/table"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
