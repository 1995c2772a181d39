#!/bin/sh
# check_fp16.sh MODEL.onnx [kiln run options] - float16 copy of MODEL (tools/to_fp16.py) run
# by kiln and by ONNX Runtime on the same random inputs; both are compared with kiln's
# float32 run of MODEL on those inputs (cast up), so that fp16 rounding differences between
# the two engines can be told apart from mistakes: prints each engine's max error relative
# to the float32 answer's magnitude.
set -e
HERE=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$HERE/build/kiln}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MODEL=$1; shift
/usr/bin/python3 "$HERE/tools/to_fp16.py" "$MODEL" "$TMP/m16.onnx"
"$KILN" run "$TMP/m16.onnx" --random "$@" --save-inputs "$TMP/in" -o "$TMP/k16" >/dev/null
node "$HERE/bench/ort_run.js" "$TMP/m16.onnx" "$TMP/in" "$TMP/o16"
ARGS=$(/usr/bin/python3 - "$TMP/in" <<'PY'
import os, sys
import numpy as np
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    a = np.load(os.path.join(d, f))
    if a.dtype == np.float16:
        np.save(os.path.join(d, f), a.astype(np.float32))
    print(f"-i {f[:-4]}={os.path.join(d, f)}", end=" ")
PY
)
"$KILN" run "$MODEL" $ARGS -o "$TMP/k32" >/dev/null
/usr/bin/python3 - "$TMP" <<'PY'
import os, sys
import numpy as np
t = sys.argv[1]
for f in sorted(os.listdir(os.path.join(t, "k32"))):
    r = np.load(os.path.join(t, "k32", f)).astype(np.float64)
    k = np.load(os.path.join(t, "k16", f)).astype(np.float64)
    o = np.load(os.path.join(t, "o16", f)).astype(np.float64)
    mag = max(float(np.abs(r).max()), 1e-30)
    print(f"  {f}: relative error vs float32: kiln fp16 {np.abs(k - r).max() / mag:.2e}, "
          f"ORT fp16 {np.abs(o - r).max() / mag:.2e}; kiln vs ORT {np.abs(k - o).max() / mag:.2e}")
PY
