#!/usr/bin/env node
// ort_run.js MODEL INDIR OUTDIR [--threads N]
// Runs MODEL in ONNX Runtime (onnxruntime-node, CPU, all graph optimizations) on
// INDIR/<input>.npy and writes every output as OUTDIR/<output>.npy, so kiln's and
// ORT's answers can be compared file by file (see compare.js).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const { readNpy, writeNpy } = require('./npy');

function sanitize(name) {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\./, '_') || '_';
}

async function main() {
  const [model, indir, outdir] = process.argv.slice(2);
  const threads = Number((process.argv.find((a, i) => process.argv[i - 1] === '--threads')) || 1);
  if (!outdir) {
    console.error('usage: ort_run.js MODEL INDIR OUTDIR [--threads N]');
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
  });
  const feeds = {};
  for (const name of session.inputNames) {
    const t = readNpy(path.join(indir, sanitize(name) + '.npy'));
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  const results = await session.run(feeds);
  fs.mkdirSync(outdir, { recursive: true });
  for (const name of session.outputNames) {
    const t = results[name];
    writeNpy(path.join(outdir, sanitize(name) + '.npy'), t.type, t.dims, t.data);
  }
}

main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(1); });
