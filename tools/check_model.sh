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
# relative error (max |kiln - ort| / max |ort|): meaningful where outputs are tiny
/usr/bin/python3 - "$TMP/kiln" "$TMP/ort" <<'PY'
import os, sys
import numpy as np
for f in sorted(os.listdir(sys.argv[2])):
    a, b = np.load(os.path.join(sys.argv[1], f)), np.load(os.path.join(sys.argv[2], f))
    if a.dtype.kind == "f" and a.shape == b.shape and b.size:
        mag = float(np.abs(b.astype(np.float64)).max())
        err = float(np.abs(a.astype(np.float64) - b).max())
        print(f"  {f}: max |ort| {mag:.3e}, relative error {err / mag if mag else err:.3e}")
PY
echo "time kiln $(echo "$t1 - $t0" | bc) s, ort $(echo "$t2 - $t1" | bc) s"
