/**
 * bench:engine — the embedded event model into the engine with every pipeline on, for a fixed
 * number of events after a warm-up. Input is generated and encoded before the clock starts
 * (batched per partition exactly as the embedded source and loadgen do), so the figure is the
 * engine's: dispatch, verify + zero-copy decode, 14 pipelines, LMDB commits.
 *
 *   npm run bench:engine -- [options]   (`--help` lists them with their defaults)
 *
 * The defaults measure a sustained rate: 16 M events after 4 M of warm-up (about 8 s measured at
 * 2 M events/s, eight commits per shard). A run of 4 M after 0.5 M measured 20-25 % less: its
 * clock ran while V8 was still compiling the commit paths and the first commits were paying for
 * new pages. The input is 2.35 GB; generating it takes about 70 s and 8 GB of memory.
 *
 * --input-cache DIR: keeps the encoded input in DIR (one file per set of generator options) and
 * reads it from there on later runs (about 10 s), and A/B runs (bench/engine-ab.ts) feed both
 * builds the very same bytes.
 *
 * Last line: {"bench":"engine","eventsPerSec":N,"workers":W,"heapUsedMB":N,"rssMB":N,...}
 */
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../engine/index.js';
import { ReplaySource } from '../engine/source/replay.js';
import type { RawMessage } from '../engine/source/types.js';
import { countUsers } from './count-users.js';
import { ThreadCpuLog } from './cpu.js';

const { values: a } = parseArgs({
  options: {
    events: { type: 'string', default: '16000000' },
    warmup: { type: 'string', default: '4000000' },
    workers: { type: 'string', default: String(Math.max(1, os.availableParallelism() - 1)) },
    users: { type: 'string', default: '1000000' },
    // Sessions open at a time and the Zipf exponent of the user choice: with the defaults about
    // 79,000 distinct users appear in 2.3 M events; `--concurrent-sessions 2000000 --zipf 0.3
    // --users 2000000` makes about a million pass through (see BENCHMARKS.md).
    'concurrent-sessions': { type: 'string', default: '20000' },
    zipf: { type: 'string', default: '1' },
    shards: { type: 'string', default: '8' },
    partitions: { type: 'string', default: '8' },
    'events-per-message': { type: 'string', default: '1000' },
    'commit-interval-ms': { type: 'string', default: '1000' },
    'slab-bytes': { type: 'string', default: String(1024 * 1024) },
    'data-dir': { type: 'string' },
    // The engine's --store-writemap (LMDB's MDB_WRITEMAP; see README).
    'store-writemap': { type: 'boolean', default: false },
    'cache-max-dirty': { type: 'string' },
    // The embedded source closes a partition's message after this much event time even when it
    // holds fewer than --events-per-message: at a low --event-rate its messages are small.
    'batch-event-time-ms': { type: 'string', default: '1000' },
    // The engine's --store-page-size (LMDB page size of the new stores).
    'store-page-size': { type: 'string' },
    'input-cache': { type: 'string' },
    // As the engine's --heap-growing-percent (main.ts): V8 flags are per process, so workers get it too.
    'heap-growing-percent': { type: 'string', default: '300' },
    // The workers' heap after a full collection at each commit (V8's --expose-gc, set before the
    // workers start): the live heap, to see whether it grows with the users passing through. The
    // collections cost time: do not compare this run's events/s with others.
    'live-heap': { type: 'boolean', default: false },
    // Events per second of event time in the generated input (at least 2-6 events per session within
    // its 1-60 minutes, so many concurrent sessions make it denser: the output's eventTimeHours says
    // what the input spans). Lower makes the same number of events
    // span more event time, so windows close during the run (with --live-heap: what stays).
    'event-rate': { type: 'string', default: '20000' },
    // The engine's --worker-max-keys (a worker thread is replaced past this many interned keys).
    'worker-max-keys': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (a.help) {
  process.stdout.write(`npm run bench:engine -- [options]   (node dist/bench/engine.js [options])
  --events N               measured events (16000000)         --warmup N               events before the clock starts (4000000)
  --workers W              worker threads (cores - 1)         --shards N               shards (8)
  --partitions N           partitions (8)                     --events-per-message N   events per message (1000)
  --users N                user pool (1000000)                --concurrent-sessions N  sessions open at a time (20000)
  --zipf X                 Zipf exponent of the user choice (1); --users 2000000 --concurrent-sessions 2000000 --zipf 0.3: ~1 M users pass through
  --event-rate N           events per second of event time (20000; a floor with many concurrent sessions: see eventTimeHours)
  --batch-event-time-ms N  event time after which the source closes a message short of --events-per-message (1000)
  --worker-max-keys N      the engine's --worker-max-keys (1000000)
  --cache-max-dirty N      dirty entries that force a shard's commit (the engine's cacheMaxDirty: 200000)
  --commit-interval-ms N   (1000)                             --slab-bytes N           (1048576)
  --input-cache DIR        keep the encoded input in DIR for later runs
  --store-writemap         shard stores with MDB_WRITEMAP     --store-page-size BYTES  LMDB page size of new shard stores
  --live-heap              worker heap after a full collection at each commit (slower run)
  --heap-growing-percent N V8's heap growing percent (300)    --data-dir DIR           state directory (a temporary one)
Last line: one JSON object {"bench":"engine","eventsPerSec":N,"workers":W,"heapUsedMB":N,"rssMB":N,...}
`);
  process.exit(0);
}
if (Number(a['heap-growing-percent']) > 0) v8.setFlagsFromString(`--heap-growing-percent=${Number(a['heap-growing-percent'])}`);
if (a['live-heap']) v8.setFlagsFromString('--expose-gc');
const total = Number(a.events);
const warmup = Number(a.warmup);
const partitions = Number(a.partitions);
const generator = {
  seed: 1, users: Number(a.users), products: 5000, eventsPerSecond: Number(a['event-rate']), concurrentSessions: Number(a['concurrent-sessions']), zipfExponent: Number(a.zipf),
};

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}

/** Pre-encodes the run's messages with the embedded source's own batching. */
async function generate(n: number): Promise<RawMessage[]> {
  const src = new EmbeddedSource({ partitions, rate: Infinity, totalEvents: n, generator, eventsPerMessage: Number(a['events-per-message']), maxBatchEventTimeMs: Number(a['batch-event-time-ms']) });
  const out: RawMessage[] = [];
  await new Promise<void>((resolve) => {
    void src.start({ onMessages: (m) => { for (const x of m) out.push(x); }, onEnd: resolve, onError: () => undefined }, {});
  });
  return out;
}

/**
 * The input as a file: per message a 16-byte header (topic, partition, length as uint32, then the
 * offset as a float64) and its bytes. Named after everything that shapes the bytes.
 */
function cacheFile(dir: string, n: number): string {
  const key = `engine-input-v1-n${n}-u${generator.users}-p${partitions}-m${a['events-per-message']}-s${generator.seed}-r${generator.eventsPerSecond}-c${generator.concurrentSessions}${generator.zipfExponent === 1 ? '' : `-z${generator.zipfExponent}`}${a['batch-event-time-ms'] === '1000' ? '' : `-b${a['batch-event-time-ms']}`}`;
  return path.join(dir, `${key}.bin`);
}

/** Read in chunks: inputs of more than 2 GB (a long sustained run) exceed one Buffer's limit. */
function readCache(file: string): RawMessage[] | null {
  if (!fs.existsSync(file)) return null;
  const fd = fs.openSync(file, 'r');
  const out: RawMessage[] = [];
  const CHUNK = 256 * 1024 * 1024;
  let carry = Buffer.alloc(0);
  try {
    for (;;) {
      const fresh = Buffer.allocUnsafe(CHUNK);
      const n = fs.readSync(fd, fresh, 0, CHUNK, null);
      if (n === 0) break;
      const buf = Buffer.concat([carry, fresh.subarray(0, n)]);
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      let at = 0;
      while (at + 24 <= buf.length) {
        const length = view.getUint32(at + 8, true);
        if (at + 24 + length > buf.length) break;
        const topic = view.getUint32(at, true);
        const partition = view.getUint32(at + 4, true);
        const offset = view.getFloat64(at + 16, true);
        out.push({ topic, partition, offset, value: buf.subarray(at + 24, at + 24 + length) });
        at += 24 + length;
      }
      carry = Buffer.from(buf.subarray(at));
    }
  } finally {
    fs.closeSync(fd);
  }
  if (carry.length) throw new Error(`${file}: ${carry.length} bytes of a truncated message at the end`);
  return out;
}

function writeCache(file: string, messages: RawMessage[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written aside and renamed: a run stopped halfway never leaves a short file behind.
  const fd = fs.openSync(`${file}.tmp`, 'w');
  try {
    const header = Buffer.alloc(24);
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    for (const m of messages) {
      view.setUint32(0, m.topic, true);
      view.setUint32(4, m.partition, true);
      view.setUint32(8, m.value.length, true);
      view.setFloat64(16, m.offset, true);
      fs.writeSync(fd, header);
      fs.writeSync(fd, m.value);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${file}.tmp`, file);
}

const dataDir = a['data-dir'] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rta-bench-engine-'));
const t0 = performance.now();
const cached = a['input-cache'] ? readCache(cacheFile(a['input-cache'], warmup + total)) : null;
if (!cached) log(`generating ${warmup + total} events (${generator.users} users) ...`);
const messages = cached ?? (await generate(warmup + total));
if (a['input-cache'] && !cached) writeCache(cacheFile(a['input-cache'], warmup + total), messages);
const bytes = messages.reduce((n, m) => n + m.value.length, 0);
log(`${cached ? 'read' : 'generated'} ${messages.length} messages, ${(bytes / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
// Warm-up and measured part: split at the message whose cumulative event count passes `warmup`.
const perMessage = (warmup + total) / messages.length;
const split = Math.round(warmup / perMessage);
const users = await countUsers(messages.map((m) => m.value), split);
log(`${users.distinct} distinct users in the input, ${users.newInMeasured} of them first seen after the warm-up`);
const ref = ReferenceStore.open(dataDir);
await new EmbeddedSource({ partitions, generator }).bootstrap(ref);
await ref.close();

const workers = Number(a.workers);
const engineOpts = { dataDir, partitions, shards: Math.min(Number(a.shards), partitions), workers, commitIntervalMs: Number(a['commit-interval-ms']), slabBytes: Number(a['slab-bytes']),
  // Only when set: bench:engine:ab runs this driver over older builds, whose config refuses unknown options.
  ...(a['store-writemap'] ? { storeWritemap: true } : {}), ...(a['store-page-size'] ? { storePageSize: Number(a['store-page-size']) } : {}),
  ...(a['worker-max-keys'] ? { workerMaxKeys: Number(a['worker-max-keys']) } : {}), ...(a['cache-max-dirty'] ? { cacheMaxDirty: Number(a['cache-max-dirty']) } : {}) };
// One engine for warm-up and measurement: the clock starts when the warm-up's events have been
// processed, so the measured part runs on warm JIT code, warm caches and open stores.
const warmupEvents = Math.round(split * perMessage);
let peakRss = 0;
/** Highest sum of the workers' heaps reported in the measured part (with --live-heap: live heaps). */
let peakWorkerHeap = 0;
/** Highest sum of the workers' per-key arrays off the heap (intern tables, per-user records). */
let peakWorkerKeyBytes = 0;
let measuring = false;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  if (measuring) {
    threadLog.sample();
    peakWorkerHeap = Math.max(peakWorkerHeap, engine.metrics.workerHeapBytes);
    peakWorkerKeyBytes = Math.max(peakWorkerKeyBytes, engine.metrics.workerKeyBytes ?? 0);
  }
}, 100);
const engine = await Engine.start(engineOpts, new ReplaySource(messages), new MemorySink(1000));
let started = 0;
const threadLog = new ThreadCpuLog();
let cpu0 = process.cpuUsage();
let eventsAtStart = 0;
let workerHeapAtStart = 0;
await new Promise<void>((resolve) => {
  const poll = setInterval(() => {
    if (engine.metrics.events >= warmupEvents) {
      clearInterval(poll);
      started = performance.now();
      cpu0 = process.cpuUsage();
      threadLog.start();
      eventsAtStart = engine.metrics.events;
      workerHeapAtStart = engine.metrics.workerHeapBytes;
      measuring = true;
      engine.metrics.batchMs.length = 0;
      engine.metrics.commitMs.length = 0;
      engine.metrics.commitWrites.length = 0;
      resolve();
    }
  }, 5);
});
log(`warm-up done (${eventsAtStart} events); measuring the remaining ${warmup + total - eventsAtStart}`);
const progress = setInterval(() => log(`${engine.metrics.events - eventsAtStart} events, ${Math.round((engine.metrics.events - eventsAtStart) / ((performance.now() - started) / 1000))}/s`), 5000);
await engine.finished();
const elapsed = (performance.now() - started) / 1000;
clearInterval(progress);
clearInterval(sampler);
const cpu = process.cpuUsage(cpu0);
// The worker threads' own CPU time: on a shared machine, events per worker CPU-second moves far
// less than events per wall-clock second (time spent waiting for a core is not counted).
// The worker threads are those at the workers' nice value (replaced ones included: the log keeps
// each thread's last sample); with --worker-nice 0 they cannot be told apart by it, and the
// busiest threads alive at the end are taken instead (a replaced thread's CPU is then missing).
const threadSeconds = threadLog.since();
const mainNice = threadSeconds.find((t) => t.tid === String(process.pid))?.nice;
const niced = threadSeconds.filter((t) => mainNice !== undefined && t.nice !== mainNice);
const workerThreads = niced.length >= workers ? niced : threadSeconds.sort((x, y) => y.seconds - x.seconds).slice(0, workers);
const workerCpuSeconds = workerThreads.reduce((x, t) => x + t.seconds, 0);
const events = engine.metrics.events - eventsAtStart;
const mem = process.memoryUsage();
const batch = [...engine.metrics.batchMs].sort((x, y) => x - y);
const pct = (q: number) => Math.round(batch[Math.min(batch.length - 1, Math.floor(q * batch.length))] * 100) / 100;
const summary = {
  bench: 'engine',
  eventsPerSec: Math.round(events / elapsed),
  workers,
  heapUsedMB: Math.round(mem.heapUsed / 1e6),
  workerHeapUsedMB: Math.round(engine.metrics.workerHeapBytes / 1e6),
  rssMB: Math.round(peakRss / 1e6),
  events,
  seconds: Math.round(elapsed * 100) / 100,
  cpuSeconds: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
  workerCpuSeconds: Math.round(workerCpuSeconds * 100) / 100,
  workerThreadsCounted: workerThreads.length,
  eventsPerWorkerCpuSec: workerCpuSeconds > 0 ? Math.round(events / workerCpuSeconds) : null,
  batchMsP50: pct(0.5),
  batchMsP99: pct(0.99),
  commits: engine.metrics.commits,
  commitMsSum: Math.round(engine.metrics.commitMs.reduce((x, y) => x + y, 0)),
  commitWritesSum: engine.metrics.commitWrites.reduce((x, y) => x + y, 0),
  deadLetters: engine.metrics.deadLetters,
  inputMB: Math.round(bytes / 1e6),
  distinctUsers: users.distinct,
  newUsersMeasured: users.newInMeasured,
  eventRate: generator.eventsPerSecond,
  batchEventTimeMs: Number(a['batch-event-time-ms']),
  // The generator's rate is a floor per session (2-6 events within its 1-60 minutes): with many
  // concurrent sessions the input is denser than --event-rate. This is what it spans.
  eventTimeHours: Math.round((users.eventTimeSpanMs / 3600e3) * 100) / 100,
  ...(a['live-heap'] ? {
    liveHeap: true,
    workerLiveHeapMBAtStart: Math.round(workerHeapAtStart / 1e6),
    workerLiveHeapBytesPerNewUser: users.newInMeasured > 0 ? Math.round((engine.metrics.workerHeapBytes - workerHeapAtStart) / users.newInMeasured) : null,
  } : {}),
  workerHeapPeakMB: Math.round(peakWorkerHeap / 1e6),
  // Off the heap, what grows with the keys: intern tables, per-user records, baselines (at the end, and the peak).
  workerKeyArraysMB: Math.round((engine.metrics.workerKeyBytes ?? 0) / 1e6),
  workerKeyArraysPeakMB: Math.round(peakWorkerKeyBytes / 1e6),
  workerMaxKeys: engine.config.workerMaxKeys,
  workerRecycles: engine.dispatcher.stats.recycles,
  // Each replacement: the old thread's keys, the keys the new one restored, milliseconds.
  workerRecycled: engine.dispatcher.recycled?.map((r) => [r.keysBefore, r.keysAfter, r.ms]),
  workerKeysPeak: engine.metrics.workerKeysPeak,
  concurrentSessions: generator.concurrentSessions,
  zipf: generator.zipfExponent,
  inputCached: cached !== null,
  shards: engineOpts.shards,
  heapGrowingPercent: Number(a['heap-growing-percent']),
  partitions,
  commitIntervalMs: engineOpts.commitIntervalMs,
  storeWritemap: a['store-writemap'] === true,
  storePageSize: a['store-page-size'] ? Number(a['store-page-size']) : 4096,
  slabBytes: engineOpts.slabBytes,
  node: process.version,
  cores: os.availableParallelism(),
};
await engine.stop();
if (!a['data-dir']) fs.rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify(summary));
