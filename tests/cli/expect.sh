# expect.sh - sourced by the CLI test scripts: a temporary folder ($TMP, removed on
# exit), pass/fail counters and the expect_ok / expect_err checks.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_ok NAME PATTERN CMD...: exit 0 and output matching PATTERN
expect_ok() {
    name=$1; pat=$2; shift 2
    if "$@" >"$TMP/out" 2>&1 && grep -q -- "$pat" "$TMP/out"; then ok; else bad "$name"; cat "$TMP/out"; fi
}
# expect_err NAME PATTERN CMD...: non-zero exit (not a crash) and message matching PATTERN
expect_err() {
    name=$1; pat=$2; shift 2
    "$@" >"$TMP/out" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q -- "$pat" "$TMP/out"; then ok; else bad "$name (rc=$rc)"; cat "$TMP/out"; fi
}
