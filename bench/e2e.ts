#!/usr/bin/env node
/**
 * bench:e2e — loadgen -> Kafka -> engine -> WebSocket dashboard client, on this machine, and the
 * latency from each event's creation to the arrival of the dashboard message that includes it.
 *
 *   npm run bench:e2e -- --rate 50000 --duration 30s [--workers 1] [--threads 1] [--users 100000]
 *                        [--p99-bound-ms 1000] [--commit-interval-ms 1000] [--tick-ms 250] [--run name]
 *                        [--engine-arg=--kafka --engine-arg=fetch.wait.max.ms=10] (repeatable: passed to the engine)
 *
 * Starts the project's broker if nothing answers on --brokers, then: loadgen writes the reference
 * tables; the engine starts as a child process (`node dist/engine/main.js --source kafka`, its own
 * data dir, topic prefix and group, a free port); a WebSocket client connects to /dashboard-ws;
 * loadgen runs at --rate with --timestamps wall (event time = intended send time) from a start
 * time fixed here, so every event's creation time is known (bench/e2e-latency.ts). Every second
 * it samples the engine's /metrics (committed events, consumer lag, stream-time lag) and the CPU
 * and RSS of the engine, loadgen (with its threads), the broker and this process from /proc.
 *
 * Writes bench/results/<run>/: latency.hgrm (HdrHistogram percentile distribution, ms),
 * summary.json, chart.svg (latency percentile curve; throughput and lag over time), engine.log,
 * loadgen.log. Last line of output:
 * {"bench":"e2e","offeredPerSec":N,"eventsPerSec":N,"p50Ms":N,"p99Ms":N,"p999Ms":N}
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import Kafka from 'node-rdkafka';
import WebSocket from 'ws';
import { ensureBroker as ensureDevBroker } from '../kafka/dev-broker.js';
import { topicSpecs } from '../engine/kafka/topics.js';
import { hgrm, ms } from '../loadgen/histogram.js';
import { defaultThreads, parseDuration } from '../loadgen/options.js';
import { DashboardLatency, type Schedule } from './e2e-latency.js';
import { childrenOf, ProcWatch } from './proc.js';
import { chart, percentileCurve } from './svg.js';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DIST = path.join(ROOT, 'dist');

export interface E2EOptions {
  rate: number;
  durationMs: number;
  workers: number;
  threads: number;
  users: number;
  eventsPerBatch: number;
  batchLingerMs: number;
  partitions: number;
  shards: number;
  commitIntervalMs: number;
  tickMs: number;
  p99BoundMs: number;
  drainTimeoutMs: number;
  brokers: string;
  run: string;
  resultsDir: string;
  keepTopics: boolean;
  seed: number;
  /** Extra engine arguments (e.g. --kafka fetch.wait.max.ms=10). */
  engineArgs: string[];
}

interface Sample {
  /** Seconds since the schedule's start. */
  t: number;
  committedEvents: number;
  eventsPerSec: number;
  consumerLagMessages: number;
  /** Wall time minus the oldest partition's committed stream time. */
  maxStreamTimeLagSec: number;
  /** Wall time minus the newest stream time seen on the dashboard. */
  dashboardBehindSec: number;
  cpu: Record<string, number>;
  rssMB: Record<string, number>;
}

function log(msg: string): void {
  process.stderr.write(`[e2e] ${msg}\n`);
}

/** Starts the project's broker unless something answers on `brokers` (it is never stopped here: others share it). */
export function ensureBroker(brokers: string): Promise<void> {
  return ensureDevBroker(brokers, log);
}

function brokerPid(): number | null {
  const file = path.join(process.env.KAFKA_CACHE_DIR ?? path.join(ROOT, '.cache/kafka'), 'kafka.pid');
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Runs a node script to completion; stdout (and stderr) go to `logFile`; returns the last stdout line. */
function runNode(script: string, args: string[], logFile: string): Promise<{ code: number; last: string }> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(logFile, { flags: 'a' });
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let last = '';
    child.stdout.on('data', (d: Buffer) => {
      out.write(d);
      const lines = d.toString().trim().split('\n');
      last = lines.at(-1) || last;
    });
    child.stderr.on('data', (d: Buffer) => out.write(d));
    child.on('error', reject);
    child.on('close', (code) => {
      out.end();
      resolve({ code: code ?? 1, last });
    });
  });
}

async function getText(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function metricValues(text: string, name: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*\\} ([\\d.eE+-]+)$`, 'gm'))) out.push(Number(m[1]));
  return out;
}

export async function deleteTopics(brokers: string, prefix: string, partitions: number): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, 'client.id': 'bench-e2e-admin' });
  try {
    for (const s of topicSpecs(prefix, partitions)) {
      await new Promise<void>((resolve) => admin.deleteTopic(s.name, 15_000, () => resolve()));
    }
  } finally {
    admin.disconnect();
  }
}

const wallNow = () => performance.timeOrigin + performance.now();

export async function runE2E(o: E2EOptions): Promise<Record<string, unknown>> {
  const outDir = path.join(o.resultsDir, o.run);
  fs.mkdirSync(outDir, { recursive: true });
  const prefix = `bench-${o.run}-`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-bench-e2e-'));
  const loadgenJs = path.join(DIST, 'loadgen/loadgen.js');
  const common = ['--bootstrap-server', o.brokers, '--topic-prefix', prefix, '--users', String(o.users), '--partitions', String(o.partitions), '--seed', String(o.seed), '--threads', String(o.threads)];
  await ensureBroker(o.brokers);

  log(`run ${o.run}: ${o.rate} events/s for ${o.durationMs / 1000} s, engine workers ${o.workers}, loadgen threads ${o.threads}; writing reference tables (${o.users} users)`);
  const ref = await runNode(loadgenJs, [...common, '--reference-only'], path.join(outDir, 'loadgen.log'));
  if (ref.code !== 0) throw new Error(`loadgen --reference-only failed (see ${outDir}/loadgen.log)`);

  let engine: ChildProcess | null = null;
  let ws: WebSocket | null = null;
  let loadgen: ChildProcess | null = null;
  const timers: NodeJS.Timeout[] = [];
  try {
    // The engine.
    const engineLog = fs.createWriteStream(path.join(outDir, 'engine.log'));
    engine = spawn(process.execPath, [path.join(DIST, 'engine/main.js'), '--source', 'kafka', '--brokers', o.brokers, '--topic-prefix', prefix,
      '--group-id', `${prefix}g`, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--workers', String(o.workers), '--partitions', String(o.partitions),
      '--shards', String(Math.min(o.shards, o.partitions)), '--commit-interval-ms', String(o.commitIntervalMs), '--tick-ms', String(o.tickMs), ...o.engineArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const engineExit = new Promise<number | null>((resolve) => engine!.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`the engine did not report its URL within 90 s (see ${outDir}/engine.log)`)), 90_000);
      engine!.stdout!.on('data', (d: Buffer) => {
        engineLog.write(d);
        buf += d.toString();
        const m = /"url":"(http:\/\/[^"]+)"/.exec(buf);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
          buf = '';
        } else if (buf.length > 1e6) buf = buf.slice(-1e5);
      });
      engine!.stderr!.on('data', (d: Buffer) => engineLog.write(d));
      void engineExit.then((code) => reject(new Error(`the engine exited with code ${code} (see ${outDir}/engine.log)`)));
    });
    log(`engine up at ${url} (pid ${engine.pid})`);

    // The dashboard client: the schedule is fixed before loadgen starts.
    const startAt = Math.ceil(wallNow()) + 3000;
    const schedule: Schedule = { startAt, rate: o.rate, threads: o.threads };
    const latency = new DashboardLatency(schedule);
    let dashboardStreamTime = 0;
    let messages = 0;
    let wsBytes = 0;
    ws = new WebSocket(url.replace(/^http/, 'ws') + '/dashboard-ws');
    let lastMessageAt = 0;
    /** When /metrics first showed every acknowledged event committed (after loadgen finished). */
    let allCommittedAt: number | null = null;
    /** `requestedAt`: a fresh snapshot asked for at that time (it is cut from the state of then or later). */
    const onDashboardMessage = (data: Buffer, requestedAt?: number) => {
      const arrival = wallNow();
      lastMessageAt = arrival;
      messages++;
      wsBytes += data.length;
      const m = JSON.parse(data.toString()) as { type?: string; streamTime?: number; watermark?: number };
      if (m.type !== 'DELTA' && m.type !== 'SNAPSHOT') return;
      // A `watermark` (oldest partition's committed stream time), if the server sends one, is the exact bound
      // while events flow. Once the input has ended it stays at the partition whose last event is oldest,
      // so the last events of the other partitions would never count as shown: a snapshot asked for after
      // every acknowledged event was committed shows all of them, up to the newest stream time.
      const complete = requestedAt !== undefined && allCommittedAt !== null && requestedAt >= allCommittedAt;
      const covered = complete ? Math.max(m.watermark ?? 0, m.streamTime ?? 0) : typeof m.watermark === 'number' ? m.watermark : m.streamTime;
      if (typeof covered === 'number' && covered >= startAt) {
        latency.onDashboard(arrival, covered);
        dashboardStreamTime = Math.max(dashboardStreamTime, m.streamTime ?? covered);
      }
    };
    ws.on('message', onDashboardMessage);
    /** A fresh connection's SNAPSHOT: what a dashboard opened now shows. */
    const snapshotNow = () => new Promise<void>((resolve) => {
      const requestedAt = wallNow();
      const probe = new WebSocket(url.replace(/^http/, 'ws') + '/dashboard-ws');
      const timer = setTimeout(() => { probe.terminate(); resolve(); }, 2000);
      probe.once('message', (d: Buffer) => { onDashboardMessage(d, requestedAt); clearTimeout(timer); probe.close(); resolve(); });
      probe.once('error', () => { clearTimeout(timer); resolve(); });
    });
    let tailSnapshots = 0;
    await new Promise<void>((resolve, reject) => {
      ws!.once('open', () => resolve());
      ws!.once('error', reject);
    });

    // Sampling: /metrics and /proc, every second.
    const watches = [
      new ProcWatch('engine', () => [engine!.pid!]),
      new ProcWatch('loadgen', () => (loadgen?.pid ? [loadgen.pid, ...childrenOf(loadgen.pid)] : [])),
      new ProcWatch('broker', () => { const p = brokerPid(); return p ? [p] : []; }),
      new ProcWatch('bench', () => [process.pid]),
    ];
    const samples: Sample[] = [];
    let lastCommitted = { t: wallNow(), n: 0 };
    let sampling = false;
    const sample = async () => {
      if (sampling) return;
      sampling = true;
      try {
        const text = await getText(`${url}/metrics`);
        const now = wallNow();
        const committed = metricValue(text, 'rta_engine_committed_events_total');
        const cpu: Record<string, number> = {};
        const rssMB: Record<string, number> = {};
        for (const w of watches) {
          const s = w.sample();
          cpu[w.name] = s.cpuPct;
          rssMB[w.name] = s.rssMB;
        }
        const lags = metricValues(text, 'rta_engine_stream_time_lag_seconds');
        samples.push({
          t: Math.round((now - startAt) / 100) / 10,
          committedEvents: committed,
          eventsPerSec: Math.round(((committed - lastCommitted.n) * 1000) / (now - lastCommitted.t)),
          consumerLagMessages: metricValue(text, 'rta_engine_consumer_lag_messages'),
          maxStreamTimeLagSec: lags.length ? Math.round(Math.max(...lags) * 100) / 100 : NaN,
          dashboardBehindSec: dashboardStreamTime ? Math.round((now - dashboardStreamTime) / 10) / 100 : NaN,
          cpu, rssMB,
        });
        lastCommitted = { t: now, n: committed };
      } catch {
        // a slow scrape: skip this second
      } finally {
        sampling = false;
      }
    };
    timers.push(setInterval(() => void sample(), 1000));
    timers.push(setInterval(() => {
      const s = samples.at(-1);
      if (!s) return;
      log(`${s.t.toFixed(0)} s: offered ${o.rate}/s, committed ${s.eventsPerSec}/s (total ${s.committedEvents}), dashboard behind ${s.dashboardBehindSec} s, ` +
        `p50 ${ms(latency.histogram, 50)} ms p99 ${ms(latency.histogram, 99)} ms so far, lag ${s.consumerLagMessages} msgs, ` +
        `cpu % engine ${s.cpu.engine} loadgen ${s.cpu.loadgen} broker ${s.cpu.broker} bench ${s.cpu.bench}`);
    }, 5000));

    // The load.
    const loadgenLog = fs.createWriteStream(path.join(outDir, 'loadgen.log'), { flags: 'a' });
    loadgen = spawn(process.execPath, [loadgenJs, ...common, '--no-reference', '--throughput', String(o.rate), '--duration', `${o.durationMs}ms`,
      '--events-per-batch', String(o.eventsPerBatch), '--batch-linger-ms', String(o.batchLingerMs), '--timestamps', 'wall', '--start-at', String(startAt)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let loadgenLast = '';
    loadgen.stdout!.on('data', (d: Buffer) => {
      loadgenLog.write(d);
      loadgenLast = d.toString().trim().split('\n').at(-1) || loadgenLast;
    });
    loadgen.stderr!.on('data', (d: Buffer) => loadgenLog.write(d));
    const loadgenCode = await new Promise<number>((resolve) => loadgen!.on('close', (code) => resolve(code ?? 1)));
    const loadEnd = wallNow();
    let lg: { records: number; recordsPerSec: number; errors: number; p99Ms: number; perThread: Array<{ sent: number; acked: number }> };
    try {
      lg = JSON.parse(loadgenLast);
    } catch {
      throw new Error(`loadgen failed (exit ${loadgenCode}; see ${outDir}/loadgen.log)`);
    }
    schedule.perThread = lg.perThread.map((t) => t.sent);
    log(`loadgen done: ${lg.records} events acknowledged (${lg.recordsPerSec}/s, delivery p99 ${lg.p99Ms} ms, ${lg.errors} errors); waiting for the dashboard to show all of them`);

    // Drain: until the dashboard has shown every event, or the timeout.
    const drainDeadline = wallNow() + o.drainTimeoutMs;
    while (latency.outstanding() > 0 && wallNow() < drainDeadline) {
      await new Promise((r) => setTimeout(r, 100));
      if (allCommittedAt === null && (samples.at(-1)?.committedEvents ?? 0) >= lg.records) allCommittedAt = wallNow();
      // The server sends a DELTA only when a pipeline changed, so the commit that follows the
      // last change is never pushed: once deltas stop, ask for a snapshot (as a reconnecting
      // dashboard would) every second.
      if (wallNow() - lastMessageAt > 1000 && latency.outstanding() > 0) {
        tailSnapshots++;
        await snapshotNow();
      }
    }
    const drained = latency.outstanding() === 0;
    const drainMs = Math.round(wallNow() - loadEnd);
    await sample();
    const unseen = latency.finish(wallNow());
    for (const t of timers) clearInterval(t);
    timers.length = 0;

    // Throughput: events committed from the schedule's start until all were committed (or the end).
    const total = lg.records;
    const doneAt = samples.find((s) => s.committedEvents >= total);
    const last = samples.at(-1);
    const committedAtEnd = last?.committedEvents ?? 0;
    const eventsPerSec = doneAt ? Math.round(total / Math.max(0.001, doneAt.t)) : Math.round(committedAtEnd / Math.max(0.001, last?.t ?? 1));
    const loadSecs = o.durationMs / 1000;
    const during = samples.filter((s) => s.t > 2 && s.t <= loadSecs);
    const avg = (xs: number[]) => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
    const lagSeries = samples.map((s) => s.consumerLagMessages).filter((x) => Number.isFinite(x));
    const h = latency.histogram;
    const p99Ms = ms(h, 99);
    const lagBounded = drained && drainMs <= Math.max(5000, 0.2 * o.durationMs);
    const loadgenKeptUp = lg.recordsPerSec >= 0.95 * o.rate;
    const summary = {
      bench: 'e2e', run: o.run, offeredPerSec: o.rate, eventsPerSec, p50Ms: ms(h, 50), p90Ms: ms(h, 90), p99Ms, p999Ms: ms(h, 99.9), maxMs: Math.round(h.maxValue / 10) / 100,
      events: total, committedEvents: committedAtEnd, eventsRecorded: latency.recorded, unseenEvents: unseen, tailSnapshots, drained, drainMs, lagBounded, loadgenKeptUp,
      withinBound: p99Ms <= o.p99BoundMs, sustainable: lagBounded && loadgenKeptUp && p99Ms <= o.p99BoundMs,
      maxConsumerLagMessages: lagSeries.length ? Math.max(...lagSeries) : null,
      loadgen: { recordsPerSec: lg.recordsPerSec, deliveryP99Ms: lg.p99Ms, errors: lg.errors, exitCode: loadgenCode },
      dashboardMessages: messages, dashboardBytes: wsBytes,
      cpuPctDuringLoad: Object.fromEntries(watches.map((w) => [w.name, avg(during.map((s) => s.cpu[w.name]))])),
      cpuSeconds: Object.fromEntries(watches.map((w) => [w.name, Math.round(w.cpuSecondsTotal * 10) / 10])),
      peakRssMB: Object.fromEntries(watches.map((w) => [w.name, w.peakRssMB])),
      config: { ...o, resultsDir: undefined, startAt, prefix },
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model, memoryGB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
      samples,
    };
    const hgrmText = hgrm(h);
    fs.writeFileSync(path.join(outDir, 'latency.hgrm'), hgrmText);
    fs.writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    fs.writeFileSync(path.join(outDir, 'chart.svg'), chart(`bench:e2e ${o.run}: ${o.rate} events/s offered, ${o.workers} engine worker(s), ${o.threads} loadgen thread(s)`, [
      { title: `Event-to-dashboard latency (p50 ${summary.p50Ms} ms, p99 ${p99Ms} ms, p99.9 ${summary.p999Ms} ms)`, xLabel: 'percentile', yLabel: 'latency (ms)', percentileX: true,
        series: [{ name: 'event creation -> dashboard message', points: percentileCurve(hgrmText), color: '#1f77b4' }], hline: { y: o.p99BoundMs, label: `p99 bound ${o.p99BoundMs} ms` } },
      { title: 'Throughput and consumer lag', xLabel: 'seconds since the schedule\'s start', yLabel: 'events/s', y2Label: 'lag (messages)',
        series: [
          { name: 'offered', points: [[0, o.rate], [loadSecs, o.rate]], color: '#999', dashed: true },
          { name: 'committed events/s', points: samples.map((s) => [s.t, s.eventsPerSec] as [number, number]), color: '#2ca02c' },
          { name: 'consumer lag', points: samples.filter((s) => Number.isFinite(s.consumerLagMessages)).map((s) => [s.t, s.consumerLagMessages] as [number, number]), color: '#d62728', right: true },
        ] },
      { title: 'CPU by process (100 % = one core)', xLabel: 'seconds since the schedule\'s start', yLabel: 'CPU %',
        series: watches.map((w, i) => ({ name: w.name, points: samples.map((s) => [s.t, s.cpu[w.name]] as [number, number]), color: ['#1f77b4', '#ff7f0e', '#9467bd', '#8c564b'][i] })) },
    ]));
    log(`results in ${path.relative(process.cwd(), outDir) || outDir}/ (latency.hgrm, summary.json, chart.svg)`);
    return summary;
  } finally {
    for (const t of timers) clearInterval(t);
    ws?.close();
    if (loadgen && loadgen.exitCode === null) loadgen.kill('SIGTERM');
    if (engine && engine.exitCode === null) {
      engine.kill('SIGTERM');
      const exited = await Promise.race([new Promise((r) => engine!.once('exit', () => r(true))), new Promise((r) => setTimeout(() => r(false), 30_000))]);
      if (!exited) engine.kill('SIGKILL');
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (!o.keepTopics) await deleteTopics(o.brokers, prefix, o.partitions).catch(() => undefined);
  }
}

export function e2eOptions(argv: string[]): E2EOptions {
  const { values: a } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rate: { type: 'string' },
      duration: { type: 'string', default: '30s' },
      workers: { type: 'string', default: String(Math.max(1, os.availableParallelism() - 1)) },
      threads: { type: 'string' },
      users: { type: 'string', default: '100000' },
      'events-per-batch': { type: 'string', default: '500' },
      'batch-linger-ms': { type: 'string', default: '50' },
      partitions: { type: 'string', default: '8' },
      shards: { type: 'string', default: '4' },
      'commit-interval-ms': { type: 'string', default: '1000' },
      'tick-ms': { type: 'string', default: '250' },
      'p99-bound-ms': { type: 'string', default: '1000' },
      'drain-timeout': { type: 'string', default: '30s' },
      brokers: { type: 'string', default: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092' },
      run: { type: 'string' },
      'results-dir': { type: 'string', default: path.join(ROOT, 'bench/results') },
      'keep-topics': { type: 'boolean', default: false },
      seed: { type: 'string', default: '42' },
      'engine-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const rate = Number(a.rate);
  if (!(rate > 0)) throw new Error('--rate <events/s> is required (a positive number)');
  const positive = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return {
    rate,
    durationMs: parseDuration(a.duration!),
    workers: positive('workers', a.workers),
    threads: a.threads ? positive('threads', a.threads) : defaultThreads(rate),
    users: positive('users', a.users),
    eventsPerBatch: positive('events-per-batch', a['events-per-batch']),
    batchLingerMs: positive('batch-linger-ms', a['batch-linger-ms']),
    partitions: positive('partitions', a.partitions),
    shards: positive('shards', a.shards),
    commitIntervalMs: positive('commit-interval-ms', a['commit-interval-ms']),
    tickMs: positive('tick-ms', a['tick-ms']),
    p99BoundMs: positive('p99-bound-ms', a['p99-bound-ms']),
    drainTimeoutMs: parseDuration(a['drain-timeout']!),
    brokers: a.brokers!,
    run: a.run ?? `e2e-${stamp}-${Math.random().toString(36).slice(2, 6)}`,
    resultsDir: a['results-dir']!,
    keepTopics: a['keep-topics']!,
    seed: Number(a.seed),
    engineArgs: a['engine-arg']!,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let opts: E2EOptions;
  try {
    opts = e2eOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`bench:e2e: ${(e as Error).message}`);
    process.exit(2);
  }
  runE2E(opts).then((s) => {
    const line = { bench: 'e2e', offeredPerSec: s.offeredPerSec, eventsPerSec: s.eventsPerSec, p50Ms: s.p50Ms, p99Ms: s.p99Ms, p999Ms: s.p999Ms };
    console.log(`${JSON.stringify({ ...s, samples: undefined, config: undefined })}`);
    console.log(JSON.stringify(line));
    // librdkafka's admin client may keep the loop alive briefly.
    setTimeout(() => process.exit(0), 200).unref();
  }, (e) => {
    console.error(`bench:e2e failed: ${(e as Error).message}`);
    process.exit(1);
  });
}
