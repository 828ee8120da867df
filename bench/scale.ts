#!/usr/bin/env node
/**
 * bench:scale — a sweep of bench:e2e over engine worker counts and offered rates that finds the
 * saturation point: the highest offered rate at which the load generator keeps up, consumer lag
 * stays bounded (the dashboard shows every event within max(5 s, 20 % of the step) after the
 * load stops) and p99 event-to-dashboard latency stays under --p99-bound-ms.
 *
 *   npm run bench:scale -- [--workers 1,2] [--rates 10000,25000,50000,100000] [--step 15s]
 *                          [--p99-bound-ms 1000] [--threads N] [--users 100000] [--keep-going]
 *
 * Each step is one bench:e2e run (its own engine, topics and data dir) written under
 * bench/results/<run>/; the sweep writes scale.json and scale.svg there. For a worker count, rates
 * above the first unsustainable one are skipped unless --keep-going. Last line of output:
 * {"bench":"scale","saturation":{"<workers>":{"offeredPerSec":N,"eventsPerSec":N,"p99Ms":N}},"steps":N}
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chart, type Series } from './svg.js';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

const { values: a } = parseArgs({
  options: {
    workers: { type: 'string', default: os.availableParallelism() > 1 ? '1,2' : '1' },
    rates: { type: 'string', default: '10000,25000,50000,100000' },
    step: { type: 'string', default: '15s' },
    'p99-bound-ms': { type: 'string', default: '1000' },
    threads: { type: 'string' },
    users: { type: 'string', default: '100000' },
    'keep-going': { type: 'boolean', default: false },
    run: { type: 'string' },
    'results-dir': { type: 'string', default: path.join(ROOT, 'bench/results') },
  },
});
const list = (name: string, v: string) => v.split(',').map((x) => {
  const n = Number(x);
  if (!(n > 0)) throw new Error(`--${name}: "${x}" is not a positive number`);
  return n;
});
const workers = list('workers', a.workers!);
const rates = list('rates', a.rates!).sort((x, y) => x - y);
const bound = Number(a['p99-bound-ms']);
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
const run = a.run ?? `scale-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
const outDir = path.join(a['results-dir']!, run);
fs.mkdirSync(outDir, { recursive: true });

interface Step {
  workers: number;
  offeredPerSec: number;
  eventsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  sustainable: boolean;
  lagBounded: boolean;
  loadgenKeptUp: boolean;
  drainMs: number;
  maxConsumerLagMessages: number | null;
  cpuPctDuringLoad: Record<string, number>;
  run: string;
  failed?: string;
}

function e2e(w: number, rate: number): Promise<Step> {
  const name = `${run}-w${w}-r${rate}`;
  const args = [path.join(ROOT, 'dist/bench/e2e.js'), '--rate', String(rate), '--duration', a.step!, '--workers', String(w), '--users', a.users!,
    '--p99-bound-ms', String(bound), '--run', name, '--results-dir', outDir, ...(a.threads ? ['--threads', a.threads] : [])];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => process.stderr.write(`  ${d.toString().trimEnd().replace(/\n/g, '\n  ')}\n`));
    child.on('close', (code) => {
      const lines = out.trim().split('\n');
      try {
        const s = JSON.parse(lines.at(-2) ?? '');
        resolve({ ...s, workers: w, run: name });
      } catch {
        resolve({ workers: w, offeredPerSec: rate, eventsPerSec: 0, p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, sustainable: false, lagBounded: false, loadgenKeptUp: false,
          drainMs: NaN, maxConsumerLagMessages: null, cpuPctDuringLoad: {}, run: name, failed: `bench:e2e exited with ${code}` });
      }
    });
  });
}

const steps: Step[] = [];
const total = workers.length * rates.length;
let n = 0;
for (const w of workers) {
  for (const rate of rates) {
    n++;
    process.stderr.write(`[scale] step ${n}/${total}: ${w} worker(s), ${rate} events/s for ${a.step}\n`);
    const s = await e2e(w, rate);
    steps.push(s);
    process.stderr.write(`[scale] step ${n}/${total}: ${w} worker(s), offered ${rate}/s -> ${s.eventsPerSec}/s, p99 ${s.p99Ms} ms, ` +
      `${s.sustainable ? 'sustainable' : `NOT sustainable (${[!s.loadgenKeptUp && 'loadgen behind', !s.lagBounded && 'lag unbounded', !(s.p99Ms <= bound) && `p99 > ${bound} ms`, s.failed].filter(Boolean).join(', ')})`}\n`);
    if (!s.sustainable && !a['keep-going']) {
      n += rates.length - rates.indexOf(rate) - 1;
      break;
    }
  }
}

const saturation: Record<string, { offeredPerSec: number; eventsPerSec: number; p99Ms: number } | null> = {};
for (const w of workers) {
  const ok = steps.filter((s) => s.workers === w && s.sustainable).sort((x, y) => y.offeredPerSec - x.offeredPerSec)[0];
  saturation[String(w)] = ok ? { offeredPerSec: ok.offeredPerSec, eventsPerSec: ok.eventsPerSec, p99Ms: ok.p99Ms } : null;
}
const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];
const maxRate = Math.max(...rates);
const thr: Series[] = [{ name: 'offered = processed', points: [[0, 0], [maxRate, maxRate]], color: '#999', dashed: true }];
const lat: Series[] = [];
workers.forEach((w, i) => {
  const mine = steps.filter((s) => s.workers === w);
  thr.push({ name: `${w} worker(s)`, points: mine.map((s) => [s.offeredPerSec, s.eventsPerSec]), color: colors[i % colors.length] });
  lat.push({ name: `${w} worker(s) p99`, points: mine.filter((s) => Number.isFinite(s.p99Ms)).map((s) => [s.offeredPerSec, s.p99Ms]), color: colors[i % colors.length] });
});
fs.writeFileSync(path.join(outDir, 'scale.svg'), chart(`bench:scale ${run}: ${a.step} steps`, [
  { title: 'Processed vs offered rate', xLabel: 'offered events/s', yLabel: 'events/s committed', series: thr },
  { title: 'p99 event-to-dashboard latency', xLabel: 'offered events/s', yLabel: 'p99 (ms)', series: lat, hline: { y: bound, label: `bound ${bound} ms` } },
]));
const summary = { bench: 'scale', run, stepDuration: a.step, p99BoundMs: bound, saturation, steps };
fs.writeFileSync(path.join(outDir, 'scale.json'), JSON.stringify(summary, null, 2) + '\n');
process.stderr.write(`[scale] results in ${path.relative(process.cwd(), outDir) || outDir}/ (scale.json, scale.svg, one directory per step)\n`);
console.log(JSON.stringify({ bench: 'scale', saturation, steps: steps.length }));
