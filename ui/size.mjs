#!/usr/bin/env node
// What the browser downloads for the dashboard, gzipped (level 9, as the server sends it),
// split into our code and the libraries (the vendor chunk: preact and uplot).
// Last line: a JSON object with the figures.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = join(import.meta.dirname, 'dist');
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full);
    else if (/\.(js|css|html)$/.test(name)) files.push(full);
  }
})(root);

const rows = files.map((f) => {
  const raw = readFileSync(f);
  const path = relative(root, f);
  return { path, kind: /(^|\/)vendor[-.]/.test(path) ? 'libraries' : 'ours', raw: raw.length, gzip: gzipSync(raw, { level: 9 }).length };
});
const sum = (kind) => rows.filter((r) => kind === undefined || r.kind === kind).reduce((a, r) => a + r.gzip, 0);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
for (const r of rows.sort((a, b) => b.gzip - a.gzip)) console.log(`${r.path.padEnd(40)} ${r.kind.padEnd(10)} ${kb(r.raw).padStart(9)} raw ${kb(r.gzip).padStart(9)} gzip`);
console.log(`dashboard download, gzipped: ${kb(sum())} total = ${kb(sum('ours'))} our code (html, js, css) + ${kb(sum('libraries'))} libraries (preact, uplot)`);
console.log(JSON.stringify({ totalGzipBytes: sum(), oursGzipBytes: sum('ours'), librariesGzipBytes: sum('libraries'), files: rows }));
