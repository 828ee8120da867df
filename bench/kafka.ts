/**
 * bench:kafka — events pre-produced to the local broker, then consumed into the engine with every
 * pipeline on; compared, in the same run, with the raw consume rate of the same topics (the
 * consumer alone: no merge, no dispatch, no processing), so the engine's own cost is visible.
 *
 *   npm run bench:kafka -- [--events 1000000] [--partitions 8] [--workers W] [--users 100000] [--warmup 300000]
 *
 * Last line: {"bench":"kafka","eventsPerSec":N,"mbPerSec":N,"partitions":P,"rawConsumeEventsPerSec":N,...,
 * "cpuUsPerEvent":{"main":N,"workers":N,"librdkafka":N,"other":N,"broker":N}} (CPU per event in the measured part)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import Kafka from 'node-rdkafka';
import { Engine, MemorySink, ReferenceStore } from '../engine/index.js';
import { EventBatchReader } from '../engine/codec/index.js';
import { ensureTopics, INPUT_TOPICS } from '../engine/kafka/topics.js';
import { ReferenceLoader } from '../engine/kafka/reference-loader.js';
import { FETCH_BYTES_PER_PARTITION, KafkaSource } from '../engine/source/kafka.js';
import { ensureBroker } from './e2e.js';
import { processCpuSeconds, threadCpu, threadCpuSince } from './cpu.js';

const { values: a } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '8' },
    workers: { type: 'string', default: String(Math.max(1, os.availableParallelism() - 1)) },
    users: { type: 'string', default: '100000' },
    // The engine's figure is measured from the moment it has processed this many events (its start,
    // the consumer group join and the reference tables are behind it) to its last durable commit.
    warmup: { type: 'string', default: '300000' },
    brokers: { type: 'string', default: '127.0.0.1:9092' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const total = Number(a.events);
const partitions = Number(a.partitions);
const brokers = a.brokers!;
const prefix = `benchkafka-${Date.now()}-`;

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}

await ensureBroker(brokers);
await ensureTopics(brokers, prefix, partitions);
log(`producing ${total} events (${a.users} users) to ${prefix}* with loadgen ...`);
execFileSync(process.execPath, [path.join(root, 'dist/loadgen/loadgen.js'), '--bootstrap-server', brokers, '--topic-prefix', prefix,
  '--throughput', '-1', '--num-records', String(total), '--users', a.users!, '--partitions', String(partitions)], { stdio: ['ignore', 'ignore', 'inherit'] });

// 1. The consumer alone: every message of the input topics, counting events and bytes.
async function rawConsume(): Promise<{ events: number; bytes: number; seconds: number }> {
  // The engine source's fetch size, so the two read the topics the same way.
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': `${prefix}raw`, 'enable.auto.commit': false, 'enable.partition.eof': true, 'max.partition.fetch.bytes': FETCH_BYTES_PER_PARTITION }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
  const left = new Map<string, number>();
  const assignment: Kafka.Assignment[] = [];
  for (const t of INPUT_TOPICS) {
    for (let p = 0; p < partitions; p++) {
      const w = await new Promise<Kafka.WatermarkOffsets>((r, j) => c.queryWatermarkOffsets(prefix + t, p, 10_000, (e, o) => (e ? j(e) : r(o))));
      if (w.highOffset > 0) left.set(`${prefix}${t}:${p}`, w.highOffset);
      assignment.push({ topic: prefix + t, partition: p, offset: 0 });
    }
  }
  const reader = new EventBatchReader();
  let events = 0;
  let bytes = 0;
  const t0 = performance.now();
  c.assign(assignment);
  c.setDefaultConsumeTimeout(100);
  while (left.size) {
    const msgs = await new Promise<Kafka.Message[]>((r, j) => c.consume(1000, (e, m) => (e ? j(e) : r(m))));
    for (const m of msgs) {
      if (!m.value) continue;
      bytes += m.value.length;
      events += reader.reset(m.value, 0, m.value.length).count;
      const k = `${m.topic}:${m.partition}`;
      if (m.offset + 1 >= (left.get(k) ?? 0)) left.delete(k);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await new Promise<void>((r) => c.disconnect(() => r()));
  return { events, bytes, seconds };
}

log('raw consume ...');
const raw = await rawConsume();
log(`raw consume: ${raw.events} events, ${(raw.bytes / 1e6).toFixed(1)} MB in ${raw.seconds.toFixed(2)} s: ${Math.round(raw.events / raw.seconds)} events/s`);

// 2. The engine: the same topics from the beginning, every pipeline, LMDB commits.
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-bench-kafka-'));
const store = ReferenceStore.open(dataDir);
const loader = new ReferenceLoader({ brokers, topicPrefix: prefix, partitions, store, kafkaConfig: {} });
await loader.bootstrap();
const source = new KafkaSource({ brokers, groupId: `${prefix}engine`, topicPrefix: prefix, kafkaConfig: {}, batchSize: 1000 });
const t0 = performance.now();
const engine = await Engine.start({ dataDir, partitions, shards: Math.min(4, partitions), workers: Number(a.workers) }, source, new MemorySink(1000));
const progress = setInterval(() => log(`engine: ${engine.committedTotals().events} / ${raw.events} events committed`), 5000);
const warmup = Math.min(Number(a.warmup), Math.floor(raw.events / 2));
/** The broker's pid, when it is the project's own (kafka/kafka.mjs records it): its CPU is part of the cost. */
function brokerPid(): number | null {
  try {
    return Number(fs.readFileSync(path.join(process.env.KAFKA_CACHE_DIR || path.join(root, '.cache', 'kafka'), 'kafka.pid'), 'utf8').trim()) || null;
  } catch {
    return null;
  }
}
const broker = brokerPid();
let tWarm = 0;
let eventsAtWarm = 0;
let threads0 = threadCpu();
let broker0: number | null = null;
while (engine.committedTotals().events + engine.committedTotals().deadLetters < raw.events) {
  if (tWarm === 0 && engine.metrics.events >= warmup) {
    tWarm = performance.now();
    eventsAtWarm = engine.metrics.events;
    threads0 = threadCpu();
    broker0 = broker ? processCpuSeconds(broker) : null;
  }
  await new Promise((r) => setTimeout(r, 5));
}
const tEnd = performance.now();
// Where the two cores went in the measured part, in µs of CPU per event: this process's main thread
// (consumer and dispatch), its worker threads (the busiest), librdkafka's threads, the rest (GC
// helpers, libuv), and the broker.
const threads = threadCpuSince(threads0);
const brokerCpu = broker && broker0 !== null ? (processCpuSeconds(broker) ?? broker0) - broker0 : null;
const seconds = (tEnd - t0) / 1000;
const steadySeconds = (tEnd - tWarm) / 1000;
const steadyEvents = raw.events - eventsAtWarm;
clearInterval(progress);
const heapUsedMB = Math.round(process.memoryUsage().heapUsed / 1e6);
await engine.stop();
await loader.stop();
await store.close();
fs.rmSync(dataDir, { recursive: true, force: true });

const usPerEvent = (sec: number) => Math.round((sec * 1e8) / steadyEvents) / 100;
const sum = (ts: typeof threads) => ts.reduce((x, t) => x + t.seconds, 0);
const mainThread = threads.filter((t) => t.tid === String(process.pid));
const rdkafka = threads.filter((t) => t.name.startsWith('rdk:'));
const workerThreads = threads.filter((t) => !mainThread.includes(t) && !rdkafka.includes(t)).sort((x, y) => y.seconds - x.seconds).slice(0, Number(a.workers));
const cpuUsPerEvent = {
  main: usPerEvent(sum(mainThread)), workers: usPerEvent(sum(workerThreads)), librdkafka: usPerEvent(sum(rdkafka)),
  other: usPerEvent(sum(threads) - sum(mainThread) - sum(rdkafka) - sum(workerThreads)),
  broker: brokerCpu === null ? null : usPerEvent(brokerCpu),
};
const eventsPerSec = Math.round(steadyEvents / steadySeconds);
const mbPerSec = Math.round(((raw.bytes * (steadyEvents / raw.events)) / 1e6 / steadySeconds) * 10) / 10;
const eventsPerSecInclStart = Math.round(raw.events / seconds);
console.log(`\nconsumer alone: ${Math.round(raw.events / raw.seconds)} events/s (${(raw.bytes / 1e6 / raw.seconds).toFixed(1)} MB/s); into the engine: ${eventsPerSec} events/s (${mbPerSec} MB/s) after the first ${eventsAtWarm} events, to the last commit; ${eventsPerSecInclStart} events/s counting its start (${seconds.toFixed(2)} s from start to the last commit); CPU µs per event: ${JSON.stringify(cpuUsPerEvent)}`);
console.log(JSON.stringify({
  bench: 'kafka', eventsPerSec, mbPerSec, partitions, workers: Number(a.workers), events: raw.events, warmupEvents: eventsAtWarm, eventsPerSecInclStart, secondsInclStart: Math.round(seconds * 100) / 100,
  rawConsumeEventsPerSec: Math.round(raw.events / raw.seconds), rawConsumeMbPerSec: Math.round((raw.bytes / 1e6 / raw.seconds) * 10) / 10, heapUsedMB, cpuUsPerEvent,
}));
setTimeout(() => process.exit(0), 200).unref();
