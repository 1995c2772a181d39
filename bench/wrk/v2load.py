#!/usr/bin/env python3
"""v2load.py - helpers for bench/serve_load.sh (Python standard library only).

  v2load.py body METADATA.json OUT [--binary]
      Build one batch-1 inference request for the model described by METADATA.json
      (the answer of GET /v2/models/<m>): every input filled with a fixed
      pseudo-random pattern, dynamic dimensions set to 1.  JSON by default; with
      --binary the binary tensor extension (JSON header + raw little-endian bytes),
      and the header length is printed on stdout.

  v2load.py metrics BEFORE.txt AFTER.txt MODEL
      Difference of two /metrics scrapes of `kiln serve` for MODEL: request count
      by outcome, server / queue / compute latency quantiles, the server overhead
      (server latency minus compute latency) and the mean batch size, all for the
      requests that arrived between the scrapes.
"""
import json
import re
import struct
import sys

DTYPES = {"FP32": ("f", 4), "FP64": ("d", 8), "INT64": ("q", 8), "INT32": ("i", 4),
          "INT8": ("b", 1), "UINT8": ("B", 1), "BOOL": ("?", 1)}


def values_for(dtype, n):
    """n deterministic values in [0, 1) (floats) or small integers."""
    out, x = [], 12345
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((x >> 8) / float(1 << 23))
    if dtype in ("FP32", "FP64"):
        return out
    if dtype == "BOOL":
        return [v >= 0.5 for v in out]
    return [int(v * 100) for v in out]


def make_body(meta_path, out_path, binary):
    meta = json.load(open(meta_path))
    header, raw = {"inputs": []}, b""
    for inp in meta["inputs"]:
        dtype = inp["datatype"]
        if dtype not in DTYPES:
            sys.exit("v2load: input %s has datatype %s, not supported here" % (inp["name"], dtype))
        shape = [d if d > 0 else 1 for d in inp["shape"]]
        n = 1
        for d in shape:
            n *= d
        vals = values_for(dtype, n)
        entry = {"name": inp["name"], "shape": shape, "datatype": dtype}
        if binary:
            code, size = DTYPES[dtype]
            raw += struct.pack("<%d%s" % (n, code), *vals)
            entry["parameters"] = {"binary_data_size": n * size}
        else:
            entry["data"] = [round(v, 4) if isinstance(v, float) else v for v in vals]
        header["inputs"].append(entry)
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(out_path, "wb") as f:
        f.write(text + raw)
    if binary:
        print(len(text))


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(path, model):
    """{(name, frozenset(labels without model/version)): value} for MODEL's series."""
    out = {}
    for line in open(path):
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        if labels.get("model") != model:
            continue
        labels.pop("model", None)
        labels.pop("version", None)
        key = (m.group(1), frozenset(labels.items()))
        out[key] = out.get(key, 0.0) + float(m.group(3))  # summed over versions
    return out


def diff(before, after):
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def histogram(d, name):
    """Sorted [(upper_bound, cumulative_count)], sum, count of a histogram family."""
    buckets = []
    for (n, labels), v in d.items():
        if n == name + "_bucket":
            le = dict(labels)["le"]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
    buckets.sort()
    total = sum(v for (n, _), v in d.items() if n == name + "_sum")
    count = sum(v for (n, _), v in d.items() if n == name + "_count")
    return buckets, total, count


def quantile(buckets, q):
    """Linear interpolation inside the bucket holding rank q (as Prometheus does);
    inf when the rank lies in the +Inf bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank, lo, prev = q * buckets[-1][1], 0.0, 0.0
    for hi, cum in buckets:
        if cum >= rank:
            if hi == float("inf"):
                return float("inf")  # beyond the last finite bucket
            return lo + (hi - lo) * ((rank - prev) / (cum - prev) if cum > prev else 1.0)
        lo, prev = hi, cum
    return lo


def us(seconds):
    return "%.1f" % (seconds * 1e6) if seconds != float("inf") else "(over the last bucket)"


def report_metrics(before_path, after_path, model):
    d = diff(parse_metrics(before_path, model), parse_metrics(after_path, model))
    outcomes = {dict(l).get("outcome"): v for (n, l), v in d.items() if n == "kiln_requests_total"}
    print("metrics %s: requests by outcome %s" % (model, ", ".join(
        "%s=%d" % (k, v) for k, v in sorted(outcomes.items()) if v) or "none"))
    q = {}
    for short, name in (("server", "kiln_request_duration_seconds"), ("queue", "kiln_queue_duration_seconds"),
                        ("compute", "kiln_compute_duration_seconds"),
                        ("overhead", "kiln_overhead_duration_seconds")):
        b, total, count = histogram(d, name)
        q[short] = (quantile(b, 0.5), quantile(b, 0.9), quantile(b, 0.99), total / count if count else float("nan"))
        print("metrics %s: %-8s latency us  p50 %s  p90 %s  p99 %s  mean %s" % (
            model, short, us(q[short][0]), us(q[short][1]), us(q[short][2]), us(q[short][3])))
    print("metrics %s: server overhead p50(server) - p50(compute) = %s us; p50 of per-request "
          "(server - compute) = %s us; mean = %s us" % (
              model, us(q["server"][0] - q["compute"][0]), us(q["overhead"][0]), us(q["overhead"][3])))
    b, total, count = histogram(d, "kiln_batch_size")
    sizes, prev = [], 0.0
    for hi, cum in b:
        if cum > prev:
            sizes.append("%s:%d" % ("<=%g" % hi if hi != float("inf") else ">max", cum - prev))
        prev = cum
    print("metrics %s: executions %d, mean batch size %.2f, batches by size %s" % (
        model, count, total / count if count else float("nan"), " ".join(sizes) or "none"))

def main(argv):
    if len(argv) >= 3 and argv[0] == "body":
        make_body(argv[1], argv[2], "--binary" in argv[3:])
    elif len(argv) == 4 and argv[0] == "metrics":
        report_metrics(argv[1], argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
