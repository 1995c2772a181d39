#!/bin/sh
# test_cli.sh KILN REPO SHARED - runs the real kiln binary the way a user does and
# checks exit codes and output, good paths and bad input alike.
KILN=$1
REPO=$2
SHARED=$3
EX=$REPO/examples/fmnist
MODEL=$EX/fmnist_cnn.onnx
. "$REPO/tests/cli/expect.sh"

expect_ok "version" "kiln " "$KILN" version
expect_ok "help" "usage" "$KILN" --help
expect_err "unknown command" "unknown command" "$KILN" frobnicate

# inspect
expect_ok "inspect inputs" "image *float32\[batch,1,28,28\]" "$KILN" inspect "$MODEL"
expect_ok "inspect ops" "Conv  *3" "$KILN" inspect "$MODEL"
expect_ok "inspect params" "parameters: " "$KILN" inspect "$MODEL"
expect_ok "inspect supported" "unsupported operators: none" "$KILN" inspect "$MODEL"
expect_err "inspect missing file" "No such file" "$KILN" inspect "$TMP/nope.onnx"

# run with a real input, outputs written as .npy
expect_ok "run -i" "logits: float32\[16,10\]" "$KILN" run "$MODEL" -i image="$EX/fmnist_cnn.in.image.npy" -o "$TMP/out1"
[ -s "$TMP/out1/logits.npy" ] && ok || bad "run wrote logits.npy"
expect_ok "run --random --dim" "logits: float32\[3,10\]" "$KILN" run "$MODEL" --random --dim batch=3
expect_err "run missing input" "not given" "$KILN" run "$MODEL"
expect_err "run wrong input name" "no input named 'nope'" "$KILN" run "$MODEL" -i nope="$EX/fmnist_cnn.in.image.npy"
expect_err "run bad -i syntax" "NAME=FILE" "$KILN" run "$MODEL" -i image
expect_err "run missing npy" "No such file" "$KILN" run "$MODEL" -i image="$TMP/none.npy"

# run options: threads, optimization level, batch
expect_ok "run --threads --opt none" "logits: float32\[2,10\]" "$KILN" run "$MODEL" --random --batch 2 --threads 1 --opt none
expect_err "run bad --threads" "threads expects" "$KILN" run "$MODEL" --random --threads 0
expect_err "run bad --opt" "opt expects" "$KILN" run "$MODEL" --random --opt fastest

# bench: figures, JSON, profile, bad options
expect_ok "bench" "latency *p50" "$KILN" bench "$MODEL" --batch 4 --iters 3 --warmup 1 --threads 2
expect_ok "bench json" '"p99_ms": ' "$KILN" bench "$MODEL" --iters 2 --json
expect_ok "bench json batch" '"batch": 3' "$KILN" bench "$MODEL" --iters 2 --batch 3 --json
expect_ok "bench profile" "node (top 25)" "$KILN" bench "$MODEL" --iters 2 --profile
expect_err "bench no model" "no model" "$KILN" bench
expect_err "bench bad iters" "iters" "$KILN" bench "$MODEL" --iters 0
expect_err "bench missing file" "No such file" "$KILN" bench "$TMP/nope.onnx"

# inputs of the wrong shape / dtype are refused with the reason
python_free_npy() { # write a .npy: $1 path, $2 descr, $3 shape tuple, $4 data bytes
    printf "\223NUMPY\001\000" >"$1"
    hdr="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
    len=$(( ${#hdr} + 1 ))
    pad=$(( (64 - (10 + len) % 64) % 64 ))
    total=$(( len + pad ))
    printf "$(printf '\\%03o\\%03o' $((total % 256)) $((total / 256)))" >>"$1"
    printf "%s%*s\n" "$hdr" "$pad" "" >>"$1"
    head -c "$4" /dev/zero >>"$1"
}
python_free_npy "$TMP/small.npy" "<f4" "(1, 1, 5, 5)" 100
expect_err "run wrong shape" "expects shape" "$KILN" run "$MODEL" -i image="$TMP/small.npy"
python_free_npy "$TMP/ints.npy" "<i8" "(1, 1, 28, 28)" 6272
expect_err "run wrong dtype" "expects dtype float32" "$KILN" run "$MODEL" -i image="$TMP/ints.npy"
printf "garbage" >"$TMP/garbage.npy"
expect_err "run corrupt npy" "not a .npy" "$KILN" run "$MODEL" -i image="$TMP/garbage.npy"

# corrupt and truncated models
head -c 3000 "$MODEL" >"$TMP/trunc.onnx"
expect_err "truncated model" "trunc.onnx" "$KILN" run "$TMP/trunc.onnx" --random
head -c 4096 /dev/urandom >"$TMP/random.onnx"
expect_err "random bytes model" "random.onnx" "$KILN" inspect "$TMP/random.onnx"

# eval: accuracy over labelled data
FM=/usr/share/datasets/fashion-mnist
if [ -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
    expect_ok "eval idx" "top-1 accuracy" "$KILN" eval "$MODEL" --data "$FM/t10k-images-idx3-ubyte.gz" \
        --labels "$FM/t10k-labels-idx1-ubyte.gz" --normalize 0.2860,0.3530 --limit 1000
    expect_err "eval label mismatch" "labels must be" "$KILN" eval "$MODEL" --data "$FM/t10k-images-idx3-ubyte.gz" \
        --labels "$FM/train-labels-idx1-ubyte.gz"
fi
expect_err "eval missing args" "required" "$KILN" eval "$MODEL"

# conformance runner on one real case, if the shared test data is there
if [ -d "$SHARED/onnx-backend-tests/node/test_relu" ]; then
    expect_ok "conformance one case" "1 passed, 0 failed, 0 skipped" "$KILN" conformance "$SHARED/onnx-backend-tests/node/test_relu"
fi

# optimize: writes an ONNX file that kiln runs again (and the ONNX checker accepts)
expect_ok "optimize" "nodes before" "$KILN" optimize "$MODEL" -o "$TMP/opt.onnx" --level basic
expect_ok "optimize output runs" "logits: float32\[16,10\]" "$KILN" run "$TMP/opt.onnx" -i image="$EX/fmnist_cnn.in.image.npy"
expect_ok "optimize external data" "written in" "$KILN" optimize "$MODEL" -o "$TMP/optx.onnx" --level none --external-data
[ -s "$TMP/optx.onnx.data" ] && ok || bad "optimize --external-data wrote optx.onnx.data"
expect_ok "optimize external output runs" "logits: float32\[3,10\]" "$KILN" run "$TMP/optx.onnx" --random --dim batch=3
expect_err "optimize bad level" "unknown level 'fast'" "$KILN" optimize "$MODEL" -o "$TMP/o2.onnx" --level fast
expect_err "optimize no output" "required" "$KILN" optimize "$MODEL"
expect_err "optimize missing input" "No such file" "$KILN" optimize "$TMP/nope.onnx" -o "$TMP/o3.onnx"
expect_err "optimize unwritable output" "cannot create" "$KILN" optimize "$MODEL" -o "$TMP/no/such/dir/o.onnx"
mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
if [ "$(id -u)" != 0 ]; then # root writes anywhere
    expect_err "optimize read-only dir" "Permission denied" "$KILN" optimize "$MODEL" -o "$TMP/ro/o.onnx"
fi
[ ! -e "$TMP/o2.onnx" ] && [ ! -e "$TMP/o3.onnx" ] && ok || bad "failed optimize runs left files"
# the ONNX checker (python3-onnx), where it is installed, on those and the shared models
checked="$TMP/opt.onnx $TMP/optx.onnx"
for m in "$SHARED"/models/*.onnx; do
    [ -f "$m" ] || continue
    out="$TMP/written_$(basename "$m")"
    "$KILN" optimize "$m" -o "$out" --level none >/dev/null 2>&1 && checked="$checked $out" || bad "optimize $m"
done
checker=
for py in python3 /usr/bin/python3; do
    if "$py" -c "import onnx" 2>/dev/null; then
        checker=$py
        expect_ok "onnx checker" "checked" "$py" -c "import onnx, sys
for p in sys.argv[1:]:
    onnx.checker.check_model(onnx.load(p), full_check=True)
    onnx.checker.check_model(p)
print('checked', len(sys.argv) - 1)" $checked
        break
    fi
done
[ -n "$checker" ] || echo "onnx checker: skipped (python3 cannot import onnx)"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
