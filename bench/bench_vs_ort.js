#!/usr/bin/env node
// bench_vs_ort.js [--models a,b] [--batches 1,8] [--threads 1,2] [--rounds N] [--iters N]
//                 [--warmup N] [--model-dir DIR] [--kiln PATH] [--out FILE.md]
// Side-by-side latency of kiln and ONNX Runtime 1.30 on the same machine and inputs.
// For every model, batch size and thread count it alternates processes
// (kiln bench, ORT, kiln bench, ORT, ...) for --rounds rounds; each process loads
// the model, warms up and times --iters runs.  The table shows, per configuration,
// the median over rounds of each engine's median latency, the kiln/ORT ratio, load
// time and peak RSS (for ORT also net of node's own RSS before the model loads), and
// "steal %": the share of the host's CPU time the hypervisor took while the row ran
// (above a few percent the row's timings are not to be trusted).  Inputs are random (seeded) and saved once by `kiln run
// --save-inputs`, so both engines see identical tensors.  Models come from
// --model-dir (default bench/models); make them with
//   python3 ../shared/tools/make_models.py bench/models resnet50 mobilenet_v2 \
//       efficientnet_b0 vit_b_16 bert_base
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const here = __dirname;
function option(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const models = option('--models', 'resnet50,mobilenet_v2,efficientnet_b0,vit_b_16,bert_base').split(',');
const batches = option('--batches', '1,8').split(',').map(Number);
const threadCounts = option('--threads', '1,2').split(',').map(Number);
const rounds = Number(option('--rounds', '3'));
const iters = option('--iters', '10');
const warmup = option('--warmup', '2');
const modelDir = option('--model-dir', path.join(here, 'models'));
const kiln = option('--kiln', path.join(here, '..', 'build', 'kiln'));
const outFile = option('--out', path.join(here, 'out', 'results.md'));
const dims = { bert_base: ['--dim', 'seq=128'] };

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function runJson(cmd, args) {
  const out = execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return JSON.parse(line);
}

// A compressed variant is named BASE.VARIANT (file BASE.VARIANT.onnx, made by
// bench/make_variants.sh with `kiln quantize`); it shares its base model's inputs
// and its rows also show kiln's latency relative to kiln on the FP32 base.
function baseName(model) { return model.split('.')[0]; }

// Save seeded random inputs for (model, batch) once; returns [dir, input names].
function prepareInputs(model, file, batch) {
  const baseFile = path.join(modelDir, `${baseName(model)}.onnx`);
  if (fs.existsSync(baseFile)) file = baseFile;
  model = baseName(model);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kiln-bench-${model}-b${batch}-`));
  execFileSync(kiln, ['run', file, '--random', '--seed', '7', '--batch', String(batch),
    ...(dims[model] || []), '--save-inputs', dir, '--opt', 'none', '--threads', '1'], { stdio: 'ignore' });
  return [dir, fs.readdirSync(dir).filter((f) => f.endsWith('.npy'))];
}

function benchOnce(engine, file, inDir, inputs, threads) {
  if (engine === 'ort')
    return runJson('node', [path.join(here, 'ort_bench.js'), file, inDir, '--threads', String(threads),
      '--iters', iters, '--warmup', warmup]);
  const feeds = inputs.flatMap((f) => ['-i', `${f.slice(0, -4)}=${path.join(inDir, f)}`]);
  return runJson(kiln, ['bench', file, ...feeds, '--threads', String(threads), '--iters', iters,
    '--warmup', warmup, '--json']);
}

function fmt(x, d = 1) { return x === undefined ? '-' : x.toFixed(d); }

// The host's CPU counters from /proc/stat (all CPUs): [steal ticks, total ticks].
// Steal is time the hypervisor gave our vCPUs to someone else: on a shared VM it is
// what makes timings noisy, so every row reports its share over the row's runs.
function cpuTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return [f[7] || 0, f.reduce((a, b) => a + b, 0)];
}

function main() {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1];
  const rows = [];
  const header = '| model | batch | threads | kiln p50 ms | ORT p50 ms | kiln/ORT | kiln/kiln FP32 | kiln load ms | ORT load ms | kiln RSS MiB | ORT RSS MiB | ORT RSS - node MiB | steal % |';
  console.log(`machine: ${cpu}, ${os.cpus().length} CPUs; rounds ${rounds}, iters ${iters}, warmup ${warmup}`);
  console.log(header);
  for (const model of models) {
    const file = path.join(modelDir, `${model}.onnx`);
    if (!fs.existsSync(file)) {
      console.log(`| ${model} | missing: make it with make_models.py (see the top of this script) |`);
      continue;
    }
    for (const batch of batches) {
      const [inDir, inputs] = prepareInputs(model, file, batch);
      for (const threads of threadCounts) {
        const k = [], o = [];
        const t0 = cpuTicks();
        for (let r = 0; r < rounds; r++) {
          k.push(benchOnce('kiln', file, inDir, inputs, threads));
          o.push(benchOnce('ort', file, inDir, inputs, threads));
        }
        const row = {
          model, batch, threads,
          kiln: median(k.map((x) => x.p50_ms)), ort: median(o.map((x) => x.p50_ms)),
          kilnLoad: median(k.map((x) => x.load_ms)), ortLoad: median(o.map((x) => x.load_ms)),
          kilnRss: median(k.map((x) => x.peak_rss_mib)), ortRss: median(o.map((x) => x.peak_rss_mib)),
          ortNet: median(o.map((x) => x.peak_rss_mib - x.base_rss_mib)),
        };
        row.ratio = row.kiln / row.ort;
        const t1 = cpuTicks();
        row.steal = t1[1] > t0[1] ? (100 * (t1[0] - t0[0])) / (t1[1] - t0[1]) : 0;
        const base = rows.find((r) => r.model === baseName(model) && r.batch === batch && r.threads === threads);
        if (base && base !== row && model !== base.model) row.vsFp32 = row.kiln / base.kiln;
        rows.push(row);
        console.log(`| ${model} | ${batch} | ${threads} | ${fmt(row.kiln)} | ${fmt(row.ort)} | ${fmt(row.ratio, 2)} | ${fmt(row.vsFp32, 2)} | ` +
          `${fmt(row.kilnLoad)} | ${fmt(row.ortLoad)} | ${fmt(row.kilnRss)} | ${fmt(row.ortRss)} | ${fmt(row.ortNet)} | ${fmt(row.steal)} |`);
      }
      fs.rmSync(inDir, { recursive: true, force: true });
    }
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const md = [`machine: ${cpu}, ${os.cpus().length} CPUs; ${new Date().toISOString()}; rounds ${rounds}, iters ${iters}`,
    '', header, '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.model} | ${r.batch} | ${r.threads} | ${fmt(r.kiln)} | ${fmt(r.ort)} | ${fmt(r.ratio, 2)} | ${fmt(r.vsFp32, 2)} | ` +
      `${fmt(r.kilnLoad)} | ${fmt(r.ortLoad)} | ${fmt(r.kilnRss)} | ${fmt(r.ortRss)} | ${fmt(r.ortNet)} | ${fmt(r.steal)} |`)].join('\n');
  fs.writeFileSync(outFile, md + '\n');
  fs.writeFileSync(outFile.replace(/\.md$/, '.json'), JSON.stringify(rows, null, 1));
  console.log(`\nwritten ${outFile}`);
}

main();
