#!/bin/bash
# serve_load.sh - load tests of `kiln serve` on loopback with wrk (Debian's wrk) and
# bench/wrk/infer.lua.  Starts its own server on a free port, stops it at the end
# (also on failure or Ctrl-C).
#
#   bench/serve_load.sh [example|overhead|mobilenet|all] [-d SECONDS] [-w WARMUP_SECONDS]
#                       [--kiln PATH] [--threads N] [--out DIR]
#
# example    JSON infer on the bundled example model (examples/fmnist), 64
#            connections for -d seconds (default 60) after a warm-up: requests/s,
#            wrk's p50/p90/p99 latency, non-2xx count, server RSS after warm-up and
#            after the run, and the server overhead (server latency minus compute
#            latency) from /metrics.  At 64 connections the server is saturated, so
#            that "overhead" is mostly queueing.
# overhead   the example model again from 1 connection: nothing queues, so server
#            minus compute latency is the HTTP + JSON + batcher cost of a request.
# mobilenet  MobileNetV2 (shared/models/mobilenet_v2.onnx) batch-1 requests (binary
#            tensor extension) from 32 connections, once with dynamic batching off
#            and once on (two models of one repository, run one after the other):
#            throughput and p99 of each, their ratios, and the mean batch size.
#
# Environment: KILN (kiln binary, default build/kiln), MOBILENET (model path),
# WRK_THREADS (default 2), BATCH_MAX (32), BATCH_DELAY_US (max_queue_delay_us, 4000),
# INSTANCES (sessions per model, 1), WRK_TIMEOUT (seconds before wrk gives up on a
# response, 60), MOBILENET_TIMEOUT_MS (the server's --request-timeout-ms in the
# MobileNet runs, 120000: on a slow machine 32 queued images can wait longer than
# the 30 s default), SERVE_ARGS (more `kiln serve` options for every run).  Needs curl, wrk, python3.  "all" runs the three modes in turn.
# /metrics is read after the warm-up and after the run, each time once the requests
# wrk left in flight have finished; requests wrk cut off when it stopped show up
# there as client errors (wrk's own non-2xx count is the one that matters).
# Figures on a shared 2-core machine are noisy: the load generator and the server
# compete for the same cores.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=example
duration=60
warmup=10
threads=
out=
KILN=${KILN:-$root/build/kiln}
MOBILENET=${MOBILENET:-$root/../shared/models/mobilenet_v2.onnx}
[ -f "$MOBILENET" ] || MOBILENET=$root/../../shared/models/mobilenet_v2.onnx
WRK_THREADS=${WRK_THREADS:-2}
BATCH_MAX=${BATCH_MAX:-32}
BATCH_DELAY_US=${BATCH_DELAY_US:-4000}
INSTANCES=${INSTANCES:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-60}
MOBILENET_TIMEOUT_MS=${MOBILENET_TIMEOUT_MS:-120000}
SERVE_ARGS=${SERVE_ARGS:-}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
    example | overhead | mobilenet | all) mode=$1 ;;
    -d) duration=$2; shift ;;
    -w) warmup=$2; shift ;;
    --kiln) KILN=$2; shift ;;
    --threads) threads=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) usage 0 ;;
    *) echo "serve_load: unknown argument '$1'" >&2; usage 2 ;;
    esac
    shift
done
for tool in curl wrk python3; do
    command -v $tool >/dev/null || { echo "serve_load: $tool is needed (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$KILN" ] || { echo "serve_load: no kiln binary at $KILN (build first, or set KILN)" >&2; exit 2; }

work=$(mktemp -d)
out=${out:-$work}
mkdir -p "$out"
PID=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tools=$here/wrk/v2load.py

# start_server ARGS...: kiln serve on a free loopback port; sets PID and URL.
start_server() {
    rm -f "$work/port"
    "$KILN" serve --port 0 --port-file "$work/port" --no-access-log ${threads:+--threads $threads} $SERVE_ARGS "$@" \
        >"$out/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 600); do
        [ -s "$work/port" ] && break
        kill -0 "$PID" 2>/dev/null || { echo "serve_load: server exited:" >&2; cat "$out/server.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$work/port" ] || { echo "serve_load: server did not start" >&2; exit 1; }
    URL=http://127.0.0.1:$(cat "$work/port")
    for _ in $(seq 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/health/ready")" = 200 ] && return 0
        sleep 0.1
    done
    echo "serve_load: server never became ready" >&2
    exit 1
}

stop_server() {
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
}

# settle: wait (up to 60 s) until only the scrape itself is in flight.
settle() {
    local n
    for _ in $(seq 600); do
        n=$(curl -s "$URL/metrics" | awk '/^kiln_inflight_requests / { print int($2) }')
        [ "${n:-0}" -le 1 ] && return 0
        sleep 0.1
    done
    echo "serve_load: requests still in flight after 60 s" >&2
}

# scrape FILE: /metrics once the server is idle.
scrape() { settle; curl -s "$URL/metrics" >"$1"; }

rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }

# make_body MODEL OUT [--binary]: one batch-1 request; prints the header length for --binary.
make_body() {
    curl -sf "$URL/v2/models/$1" >"$work/meta.json" || { echo "serve_load: no metadata for model $1" >&2; exit 1; }
    python3 "$tools" body "$work/meta.json" "$2" ${3:-}
}

# check_request MODEL BODY [HEADER_LEN]: one request by curl must answer 200.
check_request() {
    local hdr=(-H "Content-Type: application/json")
    [ -n "${3:-}" ] && hdr=(-H "Content-Type: application/octet-stream" -H "Inference-Header-Content-Length: $3")
    local code
    code=$(curl -s -o "$work/answer" -w '%{http_code}' "${hdr[@]}" --data-binary "@$2" "$URL/v2/models/$1/infer")
    if [ "$code" != 200 ]; then
        echo "serve_load: test request to $1 answered $code: $(head -c 300 "$work/answer")" >&2
        exit 1
    fi
}

# run_wrk TAG MODEL BODY HEADER_LEN CONNECTIONS SECONDS: prints wrk's RESULT line as "TAG: ...".
run_wrk() {
    local t=$WRK_THREADS
    [ "$t" -gt "$5" ] && t=$5 # wrk needs a connection per thread
    wrk -t"$t" -c"$5" -d"$6s" --timeout "${WRK_TIMEOUT}s" --latency -s "$here/wrk/infer.lua" \
        "$URL/v2/models/$2/infer" -- "$3" "$4" >"$out/wrk-$1.txt" 2>&1
    local line
    line=$(grep '^RESULT' "$out/wrk-$1.txt") || { echo "serve_load: wrk failed:" >&2; cat "$out/wrk-$1.txt" >&2; exit 1; }
    echo "$1: ${line#RESULT }"
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# example_run TAG CONNECTIONS: warm-up, RSS, metrics, the timed run, metrics, RSS.
example_run() {
    local tag=$1 conns=$2 model=fmnist
    echo "== example model: JSON infer, $conns connection(s), ${duration}s (warm-up ${warmup}s)"
    start_server
    make_body $model "$work/example.json"
    check_request $model "$work/example.json"
    run_wrk "warmup-$tag" $model "$work/example.json" "" "$conns" "$warmup" >/dev/null
    scrape "$out/metrics-$tag-before.txt"
    local rss_warm rss_end r
    rss_warm=$(rss_mib)
    r=$(run_wrk "$tag" $model "$work/example.json" "" "$conns" "$duration")
    echo "$r"
    scrape "$out/metrics-$tag-after.txt"
    rss_end=$(rss_mib)
    python3 "$tools" metrics "$out/metrics-$tag-before.txt" "$out/metrics-$tag-after.txt" $model
    awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "server RSS: %.1f MiB after warm-up, %.1f MiB after the run (%+.1f%%)\n", a, b, (b - a) * 100 / a }'
    local bad=$(($(field "$r" non2xx) + $(field "$r" connect_errors) + $(field "$r" read_errors) + \
        $(field "$r" write_errors) + $(field "$r" timeouts)))
    echo "$tag: non-2xx + socket errors: $bad"
    stop_server
}

run_example() { example_run example 64; }
run_overhead() { example_run overhead 1; }

# mobilenet repository: mnv2_single (batching off) and mnv2_batched (dynamic batching).
make_mobilenet_repo() {
    local repo=$work/repo
    mkdir -p "$repo/mnv2_single/1" "$repo/mnv2_batched/1"
    ln -s "$(cd "$(dirname "$MOBILENET")" && pwd)/$(basename "$MOBILENET")" "$repo/mnv2_single/1/model.onnx"
    ln -s "$(cd "$(dirname "$MOBILENET")" && pwd)/$(basename "$MOBILENET")" "$repo/mnv2_batched/1/model.onnx"
    cat >"$repo/mnv2_single/config.json" <<EOF
{"max_batch_size": $BATCH_MAX, "instance_count": $INSTANCES, "max_queue_size": 1024,
 "dynamic_batching": false}
EOF
    cat >"$repo/mnv2_batched/config.json" <<EOF
{"max_batch_size": $BATCH_MAX, "instance_count": $INSTANCES, "max_queue_size": 1024,
 "dynamic_batching": {"max_queue_delay_us": $BATCH_DELAY_US}}
EOF
    echo "$repo"
}

run_mobilenet() {
    [ -f "$MOBILENET" ] || { echo "serve_load: no MobileNetV2 at $MOBILENET (set MOBILENET)" >&2; exit 2; }
    echo "== MobileNetV2: batch-1 binary requests, 32 connections, ${duration}s each, batching off then on"
    echo "   (max_batch_size $BATCH_MAX, max_queue_delay_us $BATCH_DELAY_US, instance_count $INSTANCES)"
    start_server --repository "$(make_mobilenet_repo)" --poll 0 --request-timeout-ms "$MOBILENET_TIMEOUT_MS"
    local hl results=()
    hl=$(make_body mnv2_single "$work/mnv2.bin" --binary)
    for model in mnv2_single mnv2_batched; do
        check_request $model "$work/mnv2.bin" "$hl"
        run_wrk "warmup-$model" $model "$work/mnv2.bin" "$hl" 32 "$warmup" >/dev/null
        scrape "$out/metrics-$model-before.txt"
        results+=("$(run_wrk $model $model "$work/mnv2.bin" "$hl" 32 "$duration")")
        echo "${results[-1]}"
        scrape "$out/metrics-$model-after.txt"
        python3 "$tools" metrics "$out/metrics-$model-before.txt" "$out/metrics-$model-after.txt" $model
    done
    awk -v r1="$(field "${results[0]}" rps)" -v r2="$(field "${results[1]}" rps)" \
        -v p1="$(field "${results[0]}" p99_us)" -v p2="$(field "${results[1]}" p99_us)" \
        'BEGIN { printf "mobilenet: batching on/off throughput x%.2f (goal >= 2), p99 x%.2f (goal <= 2)\n", r2 / r1, p2 / p1 }'
    stop_server
}

echo "kiln: $KILN; $(nproc) CPUs; wrk threads $WRK_THREADS; outputs in ${out}"
case $mode in
example) run_example ;;
overhead) run_overhead ;;
mobilenet) run_mobilenet ;;
all) run_example; run_overhead; run_mobilenet ;;
esac
