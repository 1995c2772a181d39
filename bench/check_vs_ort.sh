#!/bin/sh
# check_vs_ort.sh MODEL [kiln run options...] - runs MODEL in kiln on random inputs
# (e.g. --dim batch=2), runs ONNX Runtime 1.30 on the same inputs, compares outputs.
# Needs node and bench/node_modules (installed here on first use from npm, without
# its download step: the CPU library ships inside the package).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
KILN=${KILN:-$HERE/../build/kiln}
MODEL=$1; shift
[ -d "$HERE/node_modules/onnxruntime-node" ] || (cd "$HERE" && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0 >/dev/null)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$KILN" run "$MODEL" --random "$@" --save-inputs "$TMP/in" -o "$TMP/kiln" >/dev/null
node "$HERE/ort_run.js" "$MODEL" "$TMP/in" "$TMP/ort"
node "$HERE/compare.js" "$TMP/kiln" "$TMP/ort"
