/**
 * bench:fanout — N WebSocket dashboard clients on loopback, driven from a separate process, the
 * engine fed by the embedded source at a fixed rate. For each compression mode (compared in the
 * same run): per-tick delivery latency p50/p99/p99.9 (HDR, from the server's send time to the
 * client's receipt), bytes per client per second on the wire, server CPU and memory.
 *
 *   npm run bench:fanout -- [--clients 5000] [--duration 20] [--rate 20000] [--tick-ms 250]
 *                           [--modes precompressed,shared,dedicated-4kb,off]
 *
 * Last line: {"bench":"fanout","clients":N,"p99Ms":N,"bytesPerClientPerSec":N,...} for the first mode (by default the one the dashboard uses).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { procSample } from './proc.js';
import { exited, freePort, log, stopChild, waitReady } from './child.js';

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    duration: { type: 'string', default: '20' },
    rate: { type: 'string', default: '20000' },
    'tick-ms': { type: 'string', default: '250' },
    modes: { type: 'string', default: 'precompressed,shared,dedicated-4kb,off' },
    users: { type: 'string', default: '100000' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const clients = Number(a.clients);
const tickMs = Number(a['tick-ms']);





interface ModeResult {
  mode: string;
  clients: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  bytesPerClientPerSec: number;
  deltasPerClientPerSec: number;
  serverCpuPct: number;
  serverRssMB: number;
  clientCpuPct: number;
  connectSeconds: number;
}

async function runMode(mode: string): Promise<ModeResult> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-fanout-'));
  const engine = spawn(process.execPath, [path.join(root, 'dist/engine/main.js'), '--source', 'embedded', '--rate', a.rate!, '--users', a.users!,
    '--port', String(port), '--data-dir', dataDir, '--tick-ms', String(tickMs), '--ws-compression', mode, '--status-interval-ms', '600000'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(engine);
  try {
    await waitReady(port);
    await new Promise((r) => setTimeout(r, 3000)); // some windows exist before clients arrive
    const driver = spawn(process.execPath, [path.join(here, 'fanout-clients.js'), '--url', `ws://127.0.0.1:${port}/dashboard-ws`,
      '--clients', String(clients), '--duration', a.duration!, '--tick-ms', String(tickMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(driver);
    let out = '';
    driver.stdout!.on('data', (d) => (out += d));
    // Server CPU and memory while the clients measure (after they connected: the driver says so on stderr, we sample throughout and keep the busiest second-half).
    const samples: Array<{ t: number; cpu: number; rss: number; clientCpu: number }> = [];
    const timer = setInterval(() => {
      const s = procSample(engine.pid!);
      const c = procSample(driver.pid!);
      if (s && c) samples.push({ t: performance.now(), cpu: s.cpuSeconds, rss: s.rssMB, clientCpu: c.cpuSeconds });
      const last = samples.at(-1);
      if (last && samples.length % 5 === 0) log(`${mode}: server rss ${last.rss} MB`);
    }, 1000);
    await exited(driver);
    clearInterval(timer);
    const r = JSON.parse(out.trim().split('\n').at(-1)!);
    // CPU over the measured window: the last `duration` seconds of samples.
    const window = samples.filter((s) => s.t >= samples.at(-1)!.t - Number(a.duration) * 1000);
    const first = window[0]!;
    const last = window.at(-1)!;
    const secs = (last.t - first.t) / 1000 || 1;
    return {
      mode, clients: r.clients, p50Ms: r.p50Ms, p99Ms: r.p99Ms, p999Ms: r.p999Ms, maxMs: r.maxMs,
      bytesPerClientPerSec: r.bytesPerClientPerSec, deltasPerClientPerSec: Math.round(r.deltasPerClientPerSec * 100) / 100,
      serverCpuPct: Math.round(((last.cpu - first.cpu) / secs) * 100), serverRssMB: Math.max(...window.map((s) => s.rss)),
      clientCpuPct: Math.round(((last.clientCpu - first.clientCpu) / secs) * 100), connectSeconds: Math.round(r.connectMs / 100) / 10,
    };
  } finally {
    await stopChild(engine);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// Interrupted: stop the engine and the client driver too (they are ours).
const children = new Set<ChildProcess>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}

const results: ModeResult[] = [];
for (const mode of a.modes!.split(',')) {
  log(`mode ${mode}: ${clients} clients, ${a.duration} s, engine at ${a.rate} events/s, tick ${tickMs} ms`);
  const r = await runMode(mode);
  log(`mode ${mode}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, p99.9 ${r.p999Ms} ms, ${r.bytesPerClientPerSec} B/client/s, server CPU ${r.serverCpuPct} %, RSS ${r.serverRssMB} MB, clients' CPU ${r.clientCpuPct} %`);
  results.push(r);
}
console.log('\n| mode | clients | deltas/client/s | p50 ms | p99 ms | p99.9 ms | max ms | bytes/client/s | server CPU % | server RSS MB | client process CPU % |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.mode} | ${r.clients} | ${r.deltasPerClientPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.p999Ms} | ${r.maxMs} | ${r.bytesPerClientPerSec} | ${r.serverCpuPct} | ${r.serverRssMB} | ${r.clientCpuPct} |`);
}
const head = results[0]!;
console.log(JSON.stringify({ bench: 'fanout', clients: head.clients, p99Ms: head.p99Ms, bytesPerClientPerSec: head.bytesPerClientPerSec, mode: head.mode, tickMs, rate: Number(a.rate), modes: results }));
