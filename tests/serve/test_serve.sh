#!/bin/sh
# test_serve.sh KILN SRCDIR MAKE_IMAGES - end-to-end test of `kiln serve`: builds a
# model repository from the bundled example, starts the real server on a free
# loopback port and drives it with curl: every endpoint, JSON and binary infer,
# versions, unload/load, polling, cache, predict with a real JPEG and PNG, every
# error path (each must answer 4xx with {"error": ...} and leave the server serving),
# SIGHUP, and a SIGTERM drain that must exit 0.  The server is killed on any exit.
set -u
KILN=$1
SRC=$2
MKIMG=$3
T=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill -9 "$PID" 2>/dev/null; fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fails=0
checks=0
MODEL=$SRC/examples/fmnist/fmnist_cnn.onnx

# ---- repository: fm (config, versions 1 and 2, cache, preprocess, labels), plain (no config)
mkdir -p "$T/repo/fm/1" "$T/repo/fm/2" "$T/repo/plain/1"
cp "$MODEL" "$T/repo/fm/1/model.onnx"
cp "$MODEL" "$T/repo/fm/2/model.onnx"
cp "$MODEL" "$T/repo/plain/1/model.onnx"
cat > "$T/repo/fm/config.json" <<EOF
{"max_batch_size": 4,
 "dynamic_batching": {"max_queue_delay_us": 2000, "preferred_batch_sizes": [4]},
 "instance_count": 2, "version_policy": {"all": {}}, "response_cache": {"enable": true},
 "preprocess": {"resize": 28, "center_crop": 28, "channel_order": "GRAY",
                "scale": 0.00392156862745098, "mean": [0.286], "std": [0.353]},
 "labels": "labels.txt"}
EOF
# version policies: latest 2 of {1,2,3}; specific {1,3}
for m in pol spec; do
    for v in 1 2 3; do mkdir -p "$T/repo/$m/$v"; cp "$MODEL" "$T/repo/$m/$v/model.onnx"; done
done
echo '{"version_policy": {"latest": {"num_versions": 2}}, "max_batch_size": 0}' > "$T/repo/pol/config.json"
echo '{"version_policy": {"specific": {"versions": [1, 3]}}, "instance_count": 2}' > "$T/repo/spec/config.json"
# a queue of one; the worker waits 3 s for batch-mates, so a second request finds it full
mkdir -p "$T/repo/q/1"
cp "$MODEL" "$T/repo/q/1/model.onnx"
echo '{"max_batch_size": 4, "max_queue_size": 1, "dynamic_batching": {"max_queue_delay_us": 3000000, "preferred_batch_sizes": [4]}}' > "$T/repo/q/config.json"
# a config that does not fit its model: reported, not served
mkdir -p "$T/repo/badcfg/1"
cp "$MODEL" "$T/repo/badcfg/1/model.onnx"
echo '{"input": [{"name": "nope", "datatype": "FP32"}]}' > "$T/repo/badcfg/config.json"
printf '%s\n' T-shirt Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag Boot > "$T/repo/fm/labels.txt"
"$MKIMG" "$T/img" || { echo "FAIL: cannot make test images"; exit 1; }

"$KILN" serve --repository "$T/repo" --port 0 --port-file "$T/port" --poll 1 --max-body 200000 \
    --max-elements 100000 --read-timeout 3 --threads 1 >"$T/access.log" 2>"$T/server.log" &
PID=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 300 ]; do
    if ! kill -0 "$PID" 2>/dev/null; then echo "FAIL: server died"; cat "$T/server.log"; exit 1; fi
    sleep 0.1
    i=$((i + 1))
done
[ -s "$T/port" ] || { echo "FAIL: server did not start"; cat "$T/server.log"; exit 1; }
URL=http://127.0.0.1:$(cat "$T/port")
echo "server at $URL"

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# req METHOD PATH WANT_STATUS [curl args...]: the body lands in $T/body, headers in $T/headers
req() {
    m=$1 p=$2 want=$3
    shift 3
    got=$(curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' -X "$m" "$@" "$URL$p")
    checks=$((checks + 1))
    if [ "$got" != "$want" ]; then
        fail "$m $p: status $got, want $want: $(head -c 300 "$T/body")"
        return 1
    fi
    case $want in 4* | 5*)
        grep -q '"error"' "$T/body" || fail "$m $p: $want without an {\"error\": ...} body"
    esac
    return 0
}
# has STRING: the last body contains STRING
has() {
    grep -q -- "$1" "$T/body" || fail "body lacks '$1': $(head -c 300 "$T/body")"
}

zeros() { yes "$2" | head -n "$1" | paste -sd, -; }
D784=$(zeros 784 0.5)
D1568=$(zeros 1568 0.25)
D3920=$(zeros 3920 0)
# infer_json DATATYPE SHAPE DATA [EXTRA]: a one-input request body
infer_json() { printf '{"inputs":[{"name":"image","datatype":"%s","shape":%s,"data":[%s]}]%s}' "$1" "$2" "$3" "${4:-}"; }
GOOD=$(infer_json FP32 '[1,1,28,28]' "$D784")

echo "== health, metadata"
req GET /v2/health/live 200 && has '"live":true'
req GET /v2/health/ready 200
req GET /v2 200 && has '"name":"kiln"' && has binary_tensor_data
req GET /v2/models/fm 200 && has '"versions":\["1","2"\]' && has '"shape":\[-1,1,28,28\]' && has '"datatype":"FP32"'
req GET /v2/models/fm/versions/1 200 && has '"name":"fm"'
req GET /v2/models/fm/ready 200
req GET /v2/models/fm/versions/2/ready 200
req GET /v2/models/plain 200 && has '"max_batch_size":8'
req GET /v2/models/pol 200 && has '"versions":\["2","3"\]' && has '"max_batch_size":0'
req GET /v2/models/spec 200 && has '"versions":\["1","3"\]'
req GET /v2/models/spec/versions/2 404
req GET /v2/models/fm/config 200 && has '"max_batch_size":4' && has '"preferred_batch_sizes":\[4\]' && has '"channel_order":"GRAY"' && has '"all":{}'
req GET /v2/models/spec/config 200 && has '"versions":\[1,3\]' && has '"instance_count":2'
req POST /v2/models/badcfg/infer 503 -d "$GOOD" && has nope
req POST /v2/repository/index 200 && has '"name":"badcfg","state":"UNAVAILABLE"'

echo "== infer (JSON)"
req POST /v2/models/fm/infer 200 -d "$GOOD" && has '"model_version":"2"' && has '"shape":\[1,10\]' && has '"name":"logits"'
req POST /v2/models/fm/versions/1/infer 200 -d "$GOOD" && has '"model_version":"1"'
req POST /v2/models/plain/infer 200 -d "$(infer_json FP32 '[2,1,28,28]' "$D1568" ',"id":"r-42"')" && has '"shape":\[2,10\]' && has '"id":"r-42"'
req POST /v2/models/plain/infer 200 -d '{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[['"$D784"']]}]}'
req POST /v2/models/plain/infer 200 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"outputs":[{"name":"logits"}]')" && has logits

echo "== infer (binary tensor data extension)"
hdr='{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"parameters":{"binary_data_size":3136}}],"parameters":{"binary_data_output":true}}'
printf '%s' "$hdr" > "$T/bin"
head -c 3136 /dev/zero >> "$T/bin"
if req POST /v2/models/plain/infer 200 -H "Inference-Header-Content-Length: ${#hdr}" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$T/bin"; then
    jl=$(grep -i '^Inference-Header-Content-Length:' "$T/headers" | tr -dc 0-9)
    total=$(wc -c < "$T/body")
    [ -n "$jl" ] && [ $((total - jl)) -eq 40 ] || fail "binary output: header says $jl JSON bytes of $total, want 40 binary bytes"
    has '"binary_data_size":40'
fi
# binary input, JSON output
hdr2='{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"parameters":{"binary_data_size":3136}}]}'
printf '%s' "$hdr2" > "$T/bin2"
head -c 3136 /dev/zero >> "$T/bin2"
req POST /v2/models/plain/infer 200 -H "Inference-Header-Content-Length: ${#hdr2}" --data-binary @"$T/bin2" && has '"data":\['

echo "== concurrent requests (dynamic batching, 2 instances)"
pids=
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    curl -s -o /dev/null -w '%{http_code}' -X POST -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ",\"id\":\"c$k\"")" "$URL/v2/models/fm/infer" > "$T/par.$k" &
    pids="$pids $!"
done
for p in $pids; do wait "$p"; done
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    checks=$((checks + 1))
    [ "$(cat "$T/par.$k")" = 200 ] || fail "concurrent request $k: status $(cat "$T/par.$k")"
done

echo "== per-request timeout, reload under load"
req POST /v2/models/fm/infer 504 -d "$(infer_json FP32 '[1,1,28,28]' "$(zeros 784 0.75)" ',"id":"t1","parameters":{"timeout":1}')" && has 'timed out'
pids=
for k in 1 2 3 4 5 6 7 8; do
    curl -s -o /dev/null -w '%{http_code}' -X POST -d "$GOOD" "$URL/v2/models/fm/infer" > "$T/rl.$k" &
    pids="$pids $!"
done
touch "$T/repo/fm/2/model.onnx"     # changed on disk: load builds a new version 2
req POST /v2/repository/models/fm/load 200
for p in $pids; do wait "$p"; done
for k in 1 2 3 4 5 6 7 8; do
    checks=$((checks + 1))
    [ "$(cat "$T/rl.$k")" = 200 ] || fail "request during reload $k: status $(cat "$T/rl.$k")"
done
req POST /v2/models/fm/infer 200 -d "$GOOD"

echo "== backpressure: full queue -> 503 with Retry-After"
curl -s -o "$T/q1" -w '%{http_code}' -X POST -d "$GOOD" "$URL/v2/models/q/infer" > "$T/q1.code" &
qpid=$!
i=0
until curl -s "$URL/metrics" | grep -q '^kiln_queue_size{model="q",version="1"} 1' || [ $i -ge 50 ]; do
    sleep 0.05
    i=$((i + 1))
done
req POST /v2/models/q/infer 503 -d "$GOOD" && has 'queue is full'
grep -qi '^Retry-After: 1' "$T/headers" || fail "503 without Retry-After"
wait "$qpid"
checks=$((checks + 1))
[ "$(cat "$T/q1.code")" = 200 ] || fail "the queued request: status $(cat "$T/q1.code")"

echo "== response cache"
req POST /v2/models/fm/infer 200 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"id":"same"')"
cp "$T/body" "$T/first"
req POST /v2/models/fm/infer 200 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"id":"same"')"
cmp -s "$T/body" "$T/first" || fail "cached response differs from the computed one"
req POST /v2/models/fm/infer 200 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"id":"other"')" && has '"id":"other"'
req POST /v2/models/fm/infer 200 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"parameters":{"binary_data_output":true}')"
req POST /v2/models/fm/infer 200 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"id":"b2","parameters":{"binary_data_output":true}')"
jl=$(grep -i '^Inference-Header-Content-Length:' "$T/headers" | tr -dc 0-9)
[ "$(head -c "$jl" "$T/body" | tail -c 11)" = ',"id":"b2"}' ] || fail "cached binary response: id not at the end of the JSON part"
[ $(($(wc -c < "$T/body") - jl)) -eq 40 ] || fail "cached binary response: wrong binary size"
req GET /metrics 200
grep -Eq '^kiln_cache_hits_total\{model="fm",version="2"\} [2-9]' "$T/body" || fail "cache hits not counted"

echo "== statistics and metrics"
req GET /v2/models/stats 200 && has '"model_stats"' && has '"inference_count"'
req GET /v2/models/fm/stats 200 && has '"name":"fm"'
req GET /v2/models/fm/versions/1/stats 200 && has '"version":"1"'
req GET /metrics 200
for m in kiln_request_duration_seconds_bucket kiln_compute_duration_seconds_bucket \
    kiln_queue_duration_seconds_bucket kiln_overhead_duration_seconds_bucket kiln_batch_size_bucket \
    kiln_inflight_requests kiln_queue_size 'outcome="success"' kiln_cache_misses_total kiln_inferences_total; do
    has "$m"
done

echo "== predict (image endpoint)"
code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary @"$T/img.jpg" "$URL/v2/models/fm/predict")
if [ "$code" = 501 ]; then
    echo "SKIP: predict (built without imgio's image code)"
else
    checks=$((checks + 1))
    [ "$code" = 200 ] || fail "predict JPEG: status $code: $(head -c 300 "$T/body")"
    has '"predictions"' && has '"label"' && has '"probability"'
    req POST '/v2/models/fm/predict?top_k=2' 200 -H 'Content-Type: image/png' --data-binary @"$T/img.png" && has '"label"'
    req POST /v2/models/fm/predict 200 -F "file=@$T/img.png;type=image/png" && has '"predictions"'
    req POST /v2/models/fm/predict 400 -H 'Content-Type: image/jpeg' --data-binary 'this is not an image'
    head -c 200 "$T/img.jpg" > "$T/trunc.jpg"
    req POST /v2/models/fm/predict 400 -H 'Content-Type: image/jpeg' --data-binary @"$T/trunc.jpg"
    req POST /v2/models/plain/predict 400 --data-binary @"$T/img.png"
    req POST /predict 400 --data-binary @"$T/img.png"   # several models loaded: ambiguous
fi

echo "== malformed and wrong requests"
req POST /v2/models/fm/infer 400 -d '{bad json'
req POST /v2/models/fm/infer 400 -d '[1,2,3]'
req POST /v2/models/fm/infer 400 -d '{}'
req POST /v2/models/fm/infer 400 -d '{"inputs":[]}'
req POST /v2/models/fm/infer 400 -d '{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}'
req POST /v2/models/fm/infer 400 -d "$(printf '{"inputs":[{"name":"nope","datatype":"FP32","shape":[1,1,28,28],"data":[%s]}]}' "$D784")" && has nope
req POST /v2/models/fm/infer 400 -d "$(infer_json INT64 '[1,1,28,28]' "$D784")" && has datatype
req POST /v2/models/fm/infer 400 -d "$(infer_json FP99 '[1,1,28,28]' "$D784")"
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,27]' "$D784")" && has shape
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28]' "$D784")"
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,-28]' "$D784")"
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,28]' '1,2,3')" && has elements
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,28]' "$D784,1")"
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,28]' '"a"')"
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[5,1,28,28]' "$D3920")" && has max_batch_size
req POST /v2/models/fm/infer 400 -d "$(printf '{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[%s]},{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[%s]}]}' "$D784" "$D784")" && has twice
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"outputs":[{"name":"nope"}]')"
req POST /v2/models/fm/infer 400 -d "$(infer_json FP32 '[1,1,28,28]' "$D784" ',"parameters":{"timeout":"soon"}')"
req POST /v2/models/fm/infer 413 -d "$(infer_json FP32 '[1,1,1000,1000]' '0')"
# binary: size mismatch, header length beyond the body, junk header, leftover bytes
printf '%s' '{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"parameters":{"binary_data_size":100}}]}' > "$T/bad1"
head -c 3136 /dev/zero >> "$T/bad1"
req POST /v2/models/plain/infer 400 -H "Inference-Header-Content-Length: 105" --data-binary @"$T/bad1"
req POST /v2/models/plain/infer 400 -H "Inference-Header-Content-Length: 999999" --data-binary @"$T/bin2"
req POST /v2/models/plain/infer 400 -H "Inference-Header-Content-Length: abc" --data-binary @"$T/bin2"
req POST /v2/models/plain/infer 400 -H "Inference-Header-Content-Length: $((${#hdr2} - 1))" --data-binary @"$T/bin2"
head -c 300000 /dev/zero | tr '\0' ' ' > "$T/big"
req POST /v2/models/fm/infer 413 --data-binary @"$T/big"
req POST /v2/models/nope/infer 404 -d "$GOOD"
req POST /v2/models/fm/versions/9/infer 404 -d "$GOOD"
req POST /v2/models/fm/versions/abc/infer 400 -d "$GOOD"
req GET /v2/models/nope 404
req GET /v2/models/nope/stats 404
req GET /v2/models/fm/infer 405
req DELETE /v2 405
req GET /v3 404
req GET /v2/models/fm/bogus 404
req GET /v2/models/fm/versions/1/ready/extra 404
big=$(head -c 40000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$URL/v2/health/live")
checks=$((checks + 1))
case $code in 4*) ;; *) fail "40 KB header: status $code, want 4xx" ;; esac
req GET /v2/health/live 200

echo "== repository control and polling"
req POST /v2/repository/index 200 && has '"state":"READY"'
req POST /v2/repository/models/fm/unload 200
req POST /v2/models/fm/infer 503 -d "$GOOD"
req POST /v2/repository/index 200 && has UNAVAILABLE
req POST /v2/repository/models/fm/load 200
req POST /v2/models/fm/infer 200 -d "$GOOD"
req POST /v2/repository/models/nope/load 404
req GET /v2/repository/models/fm/load 405
mkdir -p "$T/repo/fm/3"
cp "$MODEL" "$T/repo/fm/3/model.onnx"
i=0
until curl -s "$URL/v2/models/fm" | grep -q '"3"' || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
req GET /v2/models/fm 200 && has '"versions":\["1","2","3"\]'
req POST /v2/models/fm/versions/3/infer 200 -d "$GOOD"
rm -rf "$T/repo/plain"
i=0
while curl -s -o /dev/null -w '%{http_code}' "$URL/v2/models/plain/ready" | grep -q 200 && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
req GET /v2/models/plain/ready 400
req POST /v2/models/plain/infer 503 -d "$GOOD"

echo "== signals"
kill -HUP "$PID"
sleep 0.3
grep -q SIGHUP "$T/server.log" || fail "SIGHUP not logged"
req GET /v2/health/live 200
grep -q '"POST /v2/models/fm/infer" 200' "$T/access.log" || fail "no access log line for an infer"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
checks=$((checks + 1))
[ $rc -eq 0 ] || { fail "server exit status $rc after SIGTERM"; tail -20 "$T/server.log"; }

echo "== no repository: the bundled example, JSON logs, /predict on the only model, SIGINT"
rm -f "$T/port"
"$KILN" serve --port 0 --port-file "$T/port" --log-format json >"$T/access2.log" 2>"$T/server2.log" &
PID=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 300 ] && kill -0 "$PID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
URL=http://127.0.0.1:$(cat "$T/port" 2>/dev/null)
req GET /v2/models/fmnist 200 && has '"name":"fmnist"'
req POST /v2/models/fmnist/infer 200 -d "$GOOD" && has '"model_name":"fmnist"'
code=$(curl -s -o "$T/body" -w '%{http_code}' --data-binary @"$T/img.png" "$URL/predict")
checks=$((checks + 1))
case $code in
200) has '"label"' ;;
501) echo "SKIP: /predict (built without imgio's image code)" ;;
*) fail "/predict on the example: status $code" ;;
esac
kill -INT "$PID"
wait "$PID"
rc=$?
PID=
checks=$((checks + 1))
[ $rc -eq 0 ] || fail "example server exit status $rc after SIGINT"
grep -q '^{"ts":"[^"]*","remote":"127.0.0.1","method":"POST","path":"/v2/models/fmnist/infer","status":200' "$T/access2.log" ||
    fail "no JSON access log line: $(head -c 300 "$T/access2.log")"
grep -q '"level":"info","msg":"listening on' "$T/server2.log" || fail "no JSON server log line"

echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
