/**
 * bench:scaleout — the engine scaled out over several processes on this machine (each with its own
 * data directory, as separate machines would have), in one consumer group with the changelog on.
 *
 *   npm run bench:scaleout -- [--events 1000000] [--users 100000] [--instances 1,2,3] [--workers 1]
 *
 * 1. Throughput with 1, 2, 3 instances: `events` pre-produced (loadgen, max rate) to a topic prefix
 *    of their own per run; the instances start together; measured from the moment every partition
 *    is owned (the group has settled) to the last commit, with the instances' CPU time in that span
 *    (events per CPU-second: per-core efficiency; this machine has 2 cores shared with the broker).
 * 2. Restore: after the 1-instance run, that instance stops and a new one (empty data directory)
 *    takes every partition: records, bytes and time of its changelog restores.
 * 3. Rebalance pauses (after the last run, input idle): an instance leaves (SIGTERM), one is
 *    SIGKILLed (noticed after session.timeout.ms = 6 s), one is added: time until every partition
 *    is owned again, restores included.
 *
 * Last line: {"bench":"scaleout",...}
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import Kafka from 'node-rdkafka';
import { ensureTopics, topicSpecs } from '../engine/kafka/topics.js';
import { ensureBroker } from './e2e.js';
import { procSample } from './proc.js';

const { values: a } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    users: { type: 'string', default: '100000' },
    /** 0: one instance without --changelog (the baseline: what the changelog costs). */
    instances: { type: 'string', default: '0,1,2,3' },
    workers: { type: 'string', default: '1' },
    partitions: { type: 'string', default: '8' },
    brokers: { type: 'string', default: '127.0.0.1:9092' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..', '..');
const ENGINE = path.join(ROOT, 'dist/engine/main.js');
const total = Number(a.events);
const partitions = Number(a.partitions);
const brokers = a.brokers!;
const counts = a.instances!.split(',').map(Number);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-bench-scaleout-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}

interface Proc { name: string; child: ChildProcess; url: Promise<string>; dataDir: string }

function startInstance(prefix: string, groupId: string, name: string, changelog = true): Proc {
  const dataDir = path.join(work, `${prefix}${name}`);
  const child = spawn(process.execPath, [ENGINE, '--source', 'kafka', '--brokers', brokers, '--topic-prefix', prefix, '--group-id', groupId, '--data-dir', dataDir,
    '--port', '0', '--partitions', String(partitions), '--shards', String(Math.min(4, partitions)), '--workers', a.workers!, '--status-interval-ms', '600000', '--instance-id', name,
    ...(changelog ? ['--changelog'] : []), '--kafka', 'session.timeout.ms=6000', '--kafka', 'heartbeat.interval.ms=1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let resolveUrl: (u: string) => void = () => undefined;
  const url = new Promise<string>((r) => (resolveUrl = r));
  let buf = '';
  const tail: string[] = [];
  const onData = (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (line.startsWith('{') && line.includes('"url"')) {
        try {
          const u = JSON.parse(line).url;
          if (typeof u === 'string') resolveUrl(u);
        } catch { /* not ours */ }
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL' && signal !== 'SIGTERM') log(`${name} exited ${code ?? signal}:\n${tail.join('\n')}`);
  });
  return { name, child, url, dataDir };
}

interface Health { committedEvents: number; owned: number[]; restoring: number; restores: { records: number; bytes: number; ms: number; count: number; byMode: Record<string, number> } }

async function health(p: Proc): Promise<Health | null> {
  try {
    const r = await fetch(`${await p.url}/api/dashboard/health`, { signal: AbortSignal.timeout(3000) });
    const h = (await r.json()) as { stream: { committedEvents: number }; scale?: { ownedPartitions: number[]; restoring: number; restores: Health['restores'] } };
    // Without --changelog (the baseline) an instance holds every partition.
    if (!h.scale) return { committedEvents: h.stream.committedEvents, owned: Array.from({ length: partitions }, (_, i) => i), restoring: 0, restores: { records: 0, bytes: 0, ms: 0, count: 0, byMode: {} } };
    return { committedEvents: h.stream.committedEvents, owned: h.scale.ownedPartitions, restoring: h.scale.restoring, restores: h.scale.restores };
  } catch {
    return null;
  }
}

const alive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;

/** Every partition owned exactly once by the live instances, none restoring. */
async function settled(procs: Proc[]): Promise<Health[] | null> {
  const hs = await Promise.all(procs.filter(alive).map(health));
  if (hs.some((h) => !h || h.restoring > 0)) return null;
  const owned = hs.flatMap((h) => h!.owned);
  return owned.length === partitions && new Set(owned).size === partitions ? (hs as Health[]) : null;
}

async function until<T>(f: () => Promise<T | null | false>, timeoutMs: number, what: string, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** 40 revenue and active-users queries over distinct ranges (each misses the REST cache) on one instance. */
async function queryLatency(p: Proc): Promise<{ p50: number; p99: number; mean: number }> {
  const url = await p.url;
  const ms: number[] = [];
  for (let i = 0; i < 40; i++) {
    const path = i % 2 ? `/api/dashboard/metrics/revenue?hours=${(24 + i / 100).toFixed(2)}` : `/api/dashboard/metrics/active-users?hours=${(24 + i / 100).toFixed(2)}`;
    const t = performance.now();
    const r = await fetch(url + path);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
    ms.push(performance.now() - t);
  }
  ms.sort((x, y) => x - y);
  const round = (x: number) => Math.round(x * 10) / 10;
  return { p50: round(ms[Math.floor(ms.length / 2)]), p99: round(ms[Math.ceil(ms.length * 0.99) - 1]), mean: round(ms.reduce((x, y) => x + y, 0) / ms.length) };
}

const cpuOf = (procs: Proc[]) => procs.reduce((s, p) => s + (procSample(p.child.pid!)?.cpuSeconds ?? 0), 0);

async function deleteTopics(prefix: string): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers });
  for (const s of topicSpecs(prefix, partitions, { changelog: true })) await new Promise<void>((r) => admin.deleteTopic(s.name, 10_000, () => r()));
  admin.disconnect();
}

await ensureBroker(brokers);
const loadAvg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
log(`load average at start: ${loadAvg().join(' ')} (${os.availableParallelism()} cores)`);
const runs: Array<Record<string, number>> = [];
let restore: Record<string, number> | null = null;
let pauses: Record<string, number> | null = null;
const prefixes: string[] = [];
try {
  for (const k of counts) {
    const prefix = `benchscale-${Date.now()}-${k}-`;
    prefixes.push(prefix);
    const groupId = `${prefix}engine`;
    await ensureTopics(brokers, prefix, partitions, {}, { changelog: true });
    log(`[${k === 0 ? 'baseline: 1 instance without changelog' : `${k} instance(s)`}] producing ${total} events (${a.users} users) to ${prefix}* ...`);
    execFileSync(process.execPath, [path.join(ROOT, 'dist/loadgen/loadgen.js'), '--bootstrap-server', brokers, '--topic-prefix', prefix,
      '--throughput', '-1', '--num-records', String(total), '--users', a.users!, '--partitions', String(partitions)], { stdio: ['ignore', 'ignore', 'inherit'] });
    const procs = k === 0 ? [startInstance(prefix, groupId, 'baseline', false)] : Array.from({ length: k }, (_, i) => startInstance(prefix, groupId, `i${i}`));
    const t0 = performance.now();
    const atOwned = await until(async () => {
      const hs = await settled(procs);
      return hs && hs.every((h) => h.owned.length > 0) ? hs : null;
    }, 180_000, `${procs.length} instance(s) to share the partitions`);
    const tOwned = performance.now();
    const cpuOwned = cpuOf(procs);
    const before = atOwned.reduce((n, h) => n + h.committedEvents, 0);
    const progress = setInterval(() => void Promise.all(procs.map(health)).then((hs) => log(`[${k}] committed ${hs.reduce((n, h) => n + (h?.committedEvents ?? 0), 0)} / ${total}`)), 5000);
    await until(async () => {
      const hs = await Promise.all(procs.map(health));
      return hs.reduce((n, h) => n + (h?.committedEvents ?? 0), 0) >= total;
    }, 600_000, 'every event committed', 50);
    clearInterval(progress);
    const seconds = (performance.now() - tOwned) / 1000;
    const cpu = cpuOf(procs) - cpuOwned;
    const r = {
      instances: k, events: total, committedBeforeSettled: before, settleMs: Math.round(tOwned - t0), seconds: Math.round(seconds * 100) / 100,
      eventsPerSec: Math.round((total - before) / seconds), cpuSeconds: Math.round(cpu * 10) / 10, eventsPerCpuSecond: Math.round((total - before) / cpu),
    };
    // Query fan-out cost: distinct REST queries (no cache hit) on one instance, sequentially.
    const q = await queryLatency(procs[0]);
    const r2 = { ...r, queryP50Ms: q.p50, queryP99Ms: q.p99, queryMeanMs: q.mean };
    log(`[${k}] ${JSON.stringify(r2)} (load average ${loadAvg().join(' ')})`);
    runs.push(r2);

    if (k === 1) {
      // Restore: the instance leaves; an empty one takes everything from the changelog.
      procs[0].child.kill('SIGTERM');
      await new Promise((r2) => procs[0].child.once('exit', r2));
      const fresh = startInstance(prefix, groupId, 'fresh');
      const t1 = performance.now();
      const hs = await until(() => settled([fresh]), 300_000, 'the new instance to restore every partition');
      const h = hs[0];
      restore = {
        partitions: h.restores.count, records: h.restores.records, bytes: h.restores.bytes, restoreMs: h.restores.ms, startToOwnedMs: Math.round(performance.now() - t1),
        msPerMillionRecords: Math.round((h.restores.ms / h.restores.records) * 1e6), msPerGB: Math.round((h.restores.ms / h.restores.bytes) * 1e9),
      };
      log(`restore: ${JSON.stringify(restore)}`);
      fresh.child.kill('SIGTERM');
      await new Promise((r2) => fresh.child.once('exit', r2));
    } else if (k === Math.max(...counts)) {
      // Rebalance pauses, input idle, state of `total` events.
      const timeTo = async (what: string, act: () => void, live: () => Proc[], cond: (hs: Health[]) => boolean = () => true) => {
        const t = performance.now();
        act();
        await until(async () => {
          const hs = await settled(live());
          return hs && cond(hs) ? hs : null;
        }, 120_000, what, 50);
        return Math.round(performance.now() - t);
      };
      const graceful = await timeTo('partitions back after a graceful leave', () => procs[0].child.kill('SIGTERM'), () => procs.slice(1), (hs) => hs.length === k - 1);
      const added = startInstance(prefix, groupId, 'added');
      await added.url;
      const join = await timeTo('the added instance to own partitions', () => undefined, () => [...procs.slice(1), added], (hs) => hs.length === k && hs.every((x) => x.owned.length > 0));
      const kill = await timeTo('partitions back after a SIGKILL', () => procs[1].child.kill('SIGKILL'), () => [...procs.slice(2), added], (hs) => hs.length === k - 1);
      pauses = { gracefulLeaveMs: graceful, joinMs: join, sigkillMs: kill, sessionTimeoutMs: 6000 };
      log(`pauses: ${JSON.stringify(pauses)}`);
      procs.push(added);
    }
    for (const p of procs.filter(alive)) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => (alive(p) ? new Promise((r2) => p.child.once('exit', r2)) : undefined)));
  }
} finally {
  for (const p of prefixes) await deleteTopics(p).catch(() => undefined);
  fs.rmSync(work, { recursive: true, force: true });
}
const one = runs.find((r) => r.instances === 1);
console.log(`\n${runs.map((r) => `${r.instances === 0 ? 'baseline (1 instance, no changelog)' : `${r.instances} instance(s)`}: ${r.eventsPerSec} events/s, ${r.eventsPerCpuSecond} events per CPU-second${one ? ` (x${(r.eventsPerSec / one.eventsPerSec).toFixed(2)} of 1 instance)` : ''}`).join('\n')}`);
console.log(JSON.stringify({ bench: 'scaleout', cores: os.availableParallelism(), loadAverage: loadAvg(), partitions, workersPerInstance: Number(a.workers), runs, restore, pauses }));
setTimeout(() => process.exit(0), 200).unref();
