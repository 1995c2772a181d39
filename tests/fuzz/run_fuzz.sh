#!/bin/sh
# run_fuzz.sh FUZZER KIND SHARED_DIR CORPUS_DIR SECONDS
# Seeds CORPUS_DIR with tests/fuzz/seeds/KIND/* and a few small files from SHARED_DIR (model.onnx files for
# KIND=onnx or opt, input_*.pb files for KIND=tensorproto; none for the other kinds) when present,
# then runs the
# libFuzzer binary for SECONDS.  Exit status is the fuzzer's (non-zero on a crash).
fuzzer=$1 kind=$2 shared=$3 corpus=$4 secs=$5
[ "$kind" = onnx_writer ] && kind=onnx # the writer target starts from the same models
mkdir -p "$corpus"
# the optimizer target (opt) reads models: it takes the onnx seeds
[ "$kind" = opt ] && kind=onnx
# hand-built seeds (onnx: written by test_onnx_reader with KILN_WRITE_SEEDS=DIR;
# image, inflate: written by make_image_seeds.py)
seeds="$(dirname "$0")/seeds/$kind"
[ -d "$seeds" ] && cp "$seeds"/* "$corpus"/ 2>/dev/null
# the server's decoder (serve_image: JPEGs and PNGs written by test_serve_image
# with KILN_WRITE_SEEDS=DIR) also starts from the core decoder's PNG seeds
[ "$kind" = serve_image ] && cp "$(dirname "$0")"/seeds/image/*.png "$corpus"/ 2>/dev/null
nodes="$shared/onnx-backend-tests/node"
if [ -d "$nodes" ] && { [ "$kind" = onnx ] || [ "$kind" = tensorproto ]; }; then
    for t in test_add test_if test_loop11 test_scan9_sum test_constant test_conv_with_strides_padding \
             test_cast_FLOAT_to_FLOAT16 test_reshape_extended_dims test_gather_0 test_split_equal_parts_1d; do
        d="$nodes/$t"
        [ -d "$d" ] || continue
        if [ "$kind" = onnx ]; then
            cp "$d/model.onnx" "$corpus/seed_$t.onnx" 2>/dev/null
        else
            cp "$d/test_data_set_0/input_0.pb" "$corpus/seed_$t.pb" 2>/dev/null
        fi
    done
fi
dict="$(dirname "$0")/onnx.dict"
dictarg=
[ "$kind" = onnx ] && [ -f "$dict" ] && dictarg="-dict=$dict"
exec "$fuzzer" $dictarg -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 -timeout=25 "$corpus"
