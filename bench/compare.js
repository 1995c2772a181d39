#!/usr/bin/env node
// compare.js DIR_A DIR_B - compares every .npy in DIR_A with the same file in DIR_B:
// dtype, shape, max absolute error and max error relative to the largest magnitude.
// Exit status 1 when shapes differ or the relative error exceeds --tol (default 1e-4).
'use strict';
const fs = require('fs');
const path = require('path');
const { readNpy } = require('./npy');

const [a, b] = process.argv.slice(2);
const tolArg = process.argv.indexOf('--tol');
const tol = tolArg > 0 ? Number(process.argv[tolArg + 1]) : 1e-4;
// float16 arrays come back as their raw Uint16 bits: decode them before comparing
function halfToNumber(h) {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}
const value = (t, i) => (t.type === 'float16' ? halfToNumber(t.data[i]) : Number(t.data[i]));
let bad = 0;
for (const f of fs.readdirSync(a).filter((x) => x.endsWith('.npy')).sort()) {
  const x = readNpy(path.join(a, f));
  const y = readNpy(path.join(b, f));
  if (x.type !== y.type || x.dims.join() !== y.dims.join()) {
    console.log(`${f}: ${x.type}[${x.dims}] vs ${y.type}[${y.dims}]  MISMATCH`);
    bad++;
    continue;
  }
  let maxAbs = 0;
  let maxMag = 0;
  for (let i = 0; i < x.data.length; i++) {
    const u = value(x, i);
    const v = value(y, i);
    const e = Math.abs(u - v);
    if (e > maxAbs || Number.isNaN(e)) maxAbs = Number.isNaN(e) && !(Number.isNaN(u) && Number.isNaN(v)) ? Infinity : Math.max(maxAbs, e || 0);
    maxMag = Math.max(maxMag, Math.abs(v));
  }
  const rel = maxMag > 1 ? maxAbs / maxMag : maxAbs;
  const ok = rel <= tol;
  if (!ok) bad++;
  console.log(`${f}: ${x.type}[${x.dims}] max abs err ${maxAbs.toExponential(3)}, scaled ${rel.toExponential(3)} ${ok ? 'ok' : 'DIFFERS'}`);
}
process.exit(bad ? 1 : 0);
