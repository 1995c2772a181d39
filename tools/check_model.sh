#!/bin/sh
# check_model.sh MODEL.onnx [kiln run options, e.g. --dim batch=2]
# One model, three checks, one summary line each:
#   golden: kiln on MODEL.in.*.npy vs MODEL.out.*.npy (PyTorch references next to the
#           model, if present; build/test_golden on a one-model temp dir);
#   ort:    kiln vs ONNX Runtime 1.30 on the same random inputs (like bench/check_vs_ort.sh),
#           with the wall time of each single run (process start to exit, load included).
set -e
HERE=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$HERE/build/kiln}
MODEL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); shift
BASE=${MODEL%.onnx}
NAME=$(basename "$BASE")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
now() { date +%s.%N; }
if ls "$BASE".in.*.npy >/dev/null 2>&1 && [ $# -eq 0 ]; then
    mkdir "$TMP/g"
    for f in "$MODEL" "$BASE".in.*.npy "$BASE".out.*.npy; do ln -s "$f" "$TMP/g/"; done
    echo "== $NAME golden (vs PyTorch)"
    "$HERE/build/test_golden" "$TMP/g" || true
fi
echo "== $NAME vs ORT $*"
t0=$(now)
"$KILN" run "$MODEL" --random "$@" --save-inputs "$TMP/in" -o "$TMP/kiln" >/dev/null || { echo "kiln run FAILED"; exit 1; }
t1=$(now)
node "$HERE/bench/ort_run.js" "$MODEL" "$TMP/in" "$TMP/ort"
t2=$(now)
node "$HERE/bench/compare.js" "$TMP/kiln" "$TMP/ort" || true
echo "time kiln $(echo "$t1 - $t0" | bc) s, ort $(echo "$t2 - $t1" | bc) s"
