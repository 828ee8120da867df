/**
 * bench:fanout — N WebSocket dashboard clients on loopback, driven from a separate process, the
 * engine fed by the embedded source at a fixed rate. For each compression mode (compared in the
 * same run): per-tick delivery latency p50/p99/p99.9 (HDR, from the server's send time to the
 * client's receipt), bytes per client per second on the wire, server CPU and memory.
 *
 *   npm run bench:fanout -- [--clients 5000] [--duration 20] [--rate 20000] [--tick-ms 250]
 *                           [--modes precompressed,shared,dedicated-4kb,off] [--client-inflate payload|frame]
 *                           [--source embedded|kafka]
 *
 * --source embedded (the default) generates the input in the engine process (the embedded source's own thread); --source
 * kafka is production's shape: loadgen, in its own process, writes to the broker at --rate.
 *
 * Besides the per-client latency, each mode reports where it went: `firstMs` (the server's send
 * time to the first client's arrival, median over ticks) and `spreadMs` (first to last client of
 * the same tick, median and p90), and from the server's /metrics its event-loop delay p99 and the
 * main-thread time of a tick (snapshot queries and JSON; publishing).
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
import { exited, freePort, log, prepareKafkaFeed, stopChild, waitReady } from './child.js';

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string', default: '5000' },
    duration: { type: 'string', default: '20' },
    rate: { type: 'string', default: '20000' },
    'tick-ms': { type: 'string', default: '250' },
    modes: { type: 'string', default: 'precompressed,shared,dedicated-4kb,off' },
    users: { type: 'string', default: '100000' },
    // The client process: inflate each distinct payload once ('payload', the default) or every frame ('frame', as before 2026-11-30).
    'client-inflate': { type: 'string', default: 'payload' },
    source: { type: 'string', default: 'embedded' },
    // Passed to the engine (repeatable), e.g. --engine-arg=--tick-snapshot --engine-arg=event-loop for a baseline.
    'engine-arg': { type: 'string', multiple: true, default: [] },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const clients = Number(a.clients);
if (a.source !== 'embedded' && a.source !== 'kafka') throw new Error(`--source must be embedded or kafka, got ${a.source}`);
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
  firstMs: number;
  spreadP50Ms: number;
  spreadP90Ms: number;
  serverLoopDelayP99Ms: number | null;
  tickSnapshotMs: number | null;
  tickPublishMs: number | null;
  loadAverage: number[];
}

/** Mean of a histogram from the server's Prometheus text, in ms (null if absent). */
function histMeanMs(text: string, name: string, labels: string): number | null {
  const sum = new RegExp(`^${name}_sum\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  const count = new RegExp(`^${name}_count\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  if (!sum || !count || Number(count[1]) === 0) return null;
  return Math.round((Number(sum[1]) / Number(count[1])) * 10_000) / 10;
}

async function runMode(mode: string): Promise<ModeResult> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-fanout-'));
  const feed = a.source === 'kafka' ? await prepareKafkaFeed({ root, run: 'fanout', rate: Number(a.rate), users: Number(a.users), seconds: Number(a.duration) + 120 }) : null;
  const sourceArgs = feed ? feed.engineArgs : ['--source', 'embedded', '--rate', a.rate!, '--users', a.users!];
  const engine = spawn(process.execPath, [path.join(root, 'dist/engine/main.js'), ...sourceArgs,
    '--port', String(port), '--data-dir', dataDir, '--tick-ms', String(tickMs), '--ws-compression', mode, '--status-interval-ms', '600000', ...a['engine-arg']!], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(engine);
  try {
    await waitReady(port);
    feed?.start();
    await new Promise((r) => setTimeout(r, 3000)); // some windows exist before clients arrive
    const driver = spawn(process.execPath, [path.join(here, 'fanout-clients.js'), '--url', `ws://127.0.0.1:${port}/dashboard-ws`,
      '--clients', String(clients), '--duration', a.duration!, '--tick-ms', String(tickMs), '--inflate', a['client-inflate']!], { stdio: ['ignore', 'pipe', 'inherit'] });
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
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const lag = /^rta_process_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(metrics);
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
      firstMs: r.firstArrivalP50Ms, spreadP50Ms: r.spreadP50Ms, spreadP90Ms: r.spreadP90Ms,
      serverLoopDelayP99Ms: lag ? Math.round(Number(lag[1]) * 10_000) / 10 : null,
      tickSnapshotMs: histMeanMs(metrics, 'rta_server_tick_seconds', 'phase="snapshot"'), tickPublishMs: histMeanMs(metrics, 'rta_server_tick_seconds', 'phase="publish"'),
      loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    };
  } finally {
    await stopChild(engine);
    await feed?.stop();
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
  log(`mode ${mode}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, p99.9 ${r.p999Ms} ms, ${r.bytesPerClientPerSec} B/client/s, server CPU ${r.serverCpuPct} %, RSS ${r.serverRssMB} MB, clients' CPU ${r.clientCpuPct} %; `
    + `first client ${r.firstMs} ms, first to last ${r.spreadP50Ms} ms (p90 ${r.spreadP90Ms}); server loop delay p99 ${r.serverLoopDelayP99Ms} ms, tick snapshot ${r.tickSnapshotMs} ms, publish ${r.tickPublishMs} ms; load average ${r.loadAverage.join(' ')}`);
  results.push(r);
}
console.log('\n| mode | clients | deltas/client/s | p50 ms | p99 ms | p99.9 ms | max ms | first client ms | first to last ms (p50/p90) | bytes/client/s | server CPU % | server RSS MB | client process CPU % | load average |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.mode} | ${r.clients} | ${r.deltasPerClientPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.p999Ms} | ${r.maxMs} | ${r.firstMs} | ${r.spreadP50Ms} / ${r.spreadP90Ms} | ${r.bytesPerClientPerSec} | ${r.serverCpuPct} | ${r.serverRssMB} | ${r.clientCpuPct} | ${r.loadAverage[0]} |`);
}
const head = results[0]!;
console.log(JSON.stringify({ bench: 'fanout', clients: head.clients, p99Ms: head.p99Ms, bytesPerClientPerSec: head.bytesPerClientPerSec, mode: head.mode, source: a.source, engineArgs: a['engine-arg'], tickMs, rate: Number(a.rate), clientInflate: a['client-inflate'], modes: results }));
