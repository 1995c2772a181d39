#!/usr/bin/env node
// ort_bench.js MODEL INDIR [--threads N] [--iters N] [--warmup N]
// Times MODEL in ONNX Runtime (onnxruntime-node, CPU execution provider, all graph
// optimizations, sequential execution) on INDIR/<input>.npy, the same way
// `kiln bench --json` times kiln: load time, first run, latency percentiles over
// --iters timed runs after --warmup untimed ones, peak RSS of this process.
// Prints one JSON object with the same keys as `kiln bench --json`, plus
// base_rss_mib: the RSS of node with ORT loaded before the model is (the runtime's
// own share of the peak, which a C program embedding ORT would not pay in full).
'use strict';
const path = require('path');
const ort = require('onnxruntime-node');
const { readNpy } = require('./npy');

function sanitize(name) {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\./, '_') || '_';
}

function option(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : dflt;
}

function percentile(sorted, p) {
  const k = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(k, sorted.length) - 1];
}

async function timedRun(session, feeds) {
  const t0 = process.hrtime.bigint();
  await session.run(feeds);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main() {
  const [model, indir] = process.argv.slice(2);
  if (!indir) {
    console.error('usage: ort_bench.js MODEL INDIR [--threads N] [--iters N] [--warmup N]');
    process.exit(2);
  }
  const threads = option('--threads', 1), iters = option('--iters', 20), warmup = option('--warmup', 3);
  const baseRss = process.memoryUsage().rss / 1048576; // node + the ORT library, no model yet
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const feeds = {};
  let batch = 1;
  for (const name of session.inputNames) {
    const t = readNpy(path.join(indir, sanitize(name) + '.npy'));
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    if (name === session.inputNames[0] && t.dims.length) batch = t.dims[0];
  }
  const firstMs = await timedRun(session, feeds);
  for (let i = 0; i < warmup; i++) await timedRun(session, feeds);
  const lat = [];
  for (let i = 0; i < iters; i++) lat.push(await timedRun(session, feeds));
  const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({
    model, batch, threads, iters, load_ms: loadMs, first_run_ms: firstMs, min_ms: lat[0],
    p50_ms: percentile(lat, 50), p90_ms: percentile(lat, 90), p99_ms: percentile(lat, 99),
    mean_ms: mean, throughput_per_s: (batch * 1e3) / mean,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024, base_rss_mib: baseRss,
  }));
}

main().catch((e) => { console.error(`ort_bench: ${e.message}`); process.exit(1); });
