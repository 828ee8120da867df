#!/usr/bin/env node
/**
 * loadgen: writes the realistic event model to Kafka as FlatBuffers EventBatches keyed by user,
 * at a target rate, open loop: sends are scheduled by the clock, not by acknowledgements, and
 * delivery latency is measured from the intended send time (coordinated-omission correction).
 * Flags follow Kafka's kafka-producer-perf-test where they overlap.
 *
 *   npm run loadgen -- --bootstrap-server 127.0.0.1:9092 --throughput 100000 --duration 60s
 *   npm run loadgen -- --num-records 1000000 --throughput -1 --producer-props linger.ms=5 acks=all
 *
 * Last line of output: a JSON summary.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import * as hdr from 'hdr-histogram-js';
import Kafka from 'node-rdkafka';
import { EventBatchEncoder, type EventRecord } from '../engine/codec/index.js';
import { EventGenerator } from '../engine/source/generator.js';
import { partitionOf, keyOf } from '../engine/source/embedded.js';
import { ensureTopics } from '../engine/kafka/topics.js';
import { encodeUserProfile, encodeProduct } from '../engine/codec/index.js';

const TOPIC_BY_SOURCE: Record<string, string> = {
  WEB: 'web-events', MOBILE: 'mobile-events', TRANSACTION: 'transaction-events', IOT: 'iot-events', USER_ACTION: 'user-actions',
};

function duration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`--duration must look like 500ms, 60s, 5m or 1h, got "${v}"`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000);
}
function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}
function props(v: string, prev: Record<string, string>): Record<string, string> {
  const out = { ...prev };
  for (const kv of v.split(/\s+/).filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`--producer-props expects key=value, got "${kv}"`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

const program = new Command()
  .name('loadgen')
  .addOption(new Option('--bootstrap-server <list>', 'Kafka bootstrap servers').default('127.0.0.1:9092').env('LOADGEN_BOOTSTRAP_SERVER'))
  .addOption(new Option('--throughput <eventsPerSec>', 'target events/s; -1 for unthrottled').argParser((v) => {
    const n = Number(v);
    if (!(n === -1 || n > 0)) throw new InvalidArgumentError(`--throughput must be a positive number or -1, got "${v}"`);
    return n;
  }).default(10_000).env('LOADGEN_THROUGHPUT'))
  .addOption(new Option('--duration <d>', 'how long to run (e.g. 60s)').argParser(duration).env('LOADGEN_DURATION'))
  .addOption(new Option('--num-records <n>', 'events to send (instead of --duration)').argParser(int('--num-records', 1)).env('LOADGEN_NUM_RECORDS'))
  .addOption(new Option('--producer-props <k=v...>', 'librdkafka producer settings').argParser(props).default({}))
  .addOption(new Option('--users <n>', 'distinct users').argParser(int('--users', 1)).default(100_000).env('LOADGEN_USERS'))
  .addOption(new Option('--events-per-batch <n>', 'events per Kafka message (EventBatch)').argParser(int('--events-per-batch', 1)).default(500).env('LOADGEN_EVENTS_PER_BATCH'))
  .addOption(new Option('--partitions <n>', 'partitions of each topic').argParser(int('--partitions', 1)).default(8).env('LOADGEN_PARTITIONS'))
  .addOption(new Option('--topic-prefix <p>', 'topic name prefix').default('').env('LOADGEN_TOPIC_PREFIX'))
  .addOption(new Option('--seed <n>', 'random seed').argParser(int('--seed', 0)).default(42).env('LOADGEN_SEED'))
  .addOption(new Option('--target <t>', 'where events go').choices(['kafka', 'embedded']).default('kafka').env('LOADGEN_TARGET'))
  .addOption(new Option('--reference', 'also write user profiles and the product catalog').default(true))
  .allowExcessArguments(false)
  .showHelpAfterError();
program.parse();
const o = program.opts();

if (o.target === 'embedded') {
  console.error('--target embedded: the engine generates the same events itself; run `npm start` (its default source) instead.');
  process.exit(2);
}
const total: number = o.numRecords ?? (o.duration === undefined ? 1_000_000 : Infinity);
const durationMs: number = o.duration ?? Infinity;
const rate: number = o.throughput;

const latency = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false }); // microseconds
const stats = { sent: 0, acked: 0, errors: 0, bytes: 0, messages: 0 };

async function main(): Promise<void> {
  await ensureTopics(o.bootstrapServer, o.topicPrefix, o.partitions);
  const producer = new Kafka.Producer({
    'metadata.broker.list': o.bootstrapServer, dr_cb: true, 'linger.ms': 5, 'compression.type': 'lz4', 'enable.idempotence': true,
    'queue.buffering.max.kbytes': 1_048_576, 'batch.size': 1_000_000, ...o.producerProps,
  });
  producer.setPollInterval(10);
  await new Promise<void>((resolve, reject) => producer.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve())));
  producer.on('delivery-report', (err, report) => {
    const intended = report.opaque as { t: number; n: number };
    if (err) {
      stats.errors += Math.max(1, intended.n);
      return;
    }
    if (intended.n === 0) return; // reference records: not events
    stats.acked += intended.n;
    latency.recordValue(Math.max(1, Math.round((performance.now() - intended.t) * 1000)));
  });

  const gen = new EventGenerator({ seed: o.seed, users: o.users, startTime: Date.now(), eventsPerSecond: rate > 0 ? rate : 100_000 });
  const produce = (topic: string, partition: number, key: string, value: Buffer, ts: number, opaque: unknown): void => {
    for (;;) {
      try {
        producer.produce(topic, partition, value, key, ts, opaque);
        stats.messages++;
        stats.bytes += value.length;
        return;
      } catch {
        producer.poll(); // local queue full: let deliveries drain
        const until = performance.now() + 1;
        while (performance.now() < until) { /* brief spin: keeps the open-loop clock honest */ }
      }
    }
  };
  if (o.reference) {
    for (const p of gen.profiles()) produce(`${o.topicPrefix}user-profiles`, partitionOf(p.userId, o.partitions), p.userId, Buffer.from(encodeUserProfile(p)), Date.now(), { t: performance.now(), n: 0 });
    for (const p of gen.catalog()) produce(`${o.topicPrefix}product-catalog`, partitionOf(p.productId, o.partitions), p.productId, Buffer.from(encodeProduct(p)), Date.now(), { t: performance.now(), n: 0 });
  }

  const groups = new Map<string, { events: EventRecord[]; intended: number }>();
  const enc = new EventBatchEncoder();
  const flush = (k: string) => {
    const g = groups.get(k)!;
    if (g.events.length === 0) return;
    const [topic, partition] = k.split('|');
    for (const e of g.events) enc.add(e);
    produce(topic, Number(partition), keyOf(g.events[0]), Buffer.from(enc.finish()), g.events[0].timestamp, { t: g.intended, n: g.events.length });
    g.events = [];
  };
  const start = performance.now();
  let lastReport = start;
  let lastAcked = 0;
  let lastBytes = 0;
  let behindMs = 0;
  const report = (final = false) => {
    const now = performance.now();
    const secs = (now - lastReport) / 1000;
    const line = `${stats.acked - lastAcked} records acked in ${secs.toFixed(1)} s: ${Math.round((stats.acked - lastAcked) / secs)} records/sec (${((stats.bytes - lastBytes) / secs / 1e6).toFixed(2)} MB/sec), delivery latency p50 ${(latency.getValueAtPercentile(50) / 1000).toFixed(1)} ms, p99 ${(latency.getValueAtPercentile(99) / 1000).toFixed(1)} ms, ${stats.errors} errors, ${behindMs.toFixed(0)} ms behind schedule`;
    if (!final) console.error(line);
    lastReport = now;
    lastAcked = stats.acked;
    lastBytes = stats.bytes;
  };
  const progress = setInterval(() => report(), 5000);

  // Open loop: event i is due at start + i / rate; batches are produced when they fill, and their
  // latency counts from the moment their first event was due.
  while (stats.sent < total && performance.now() - start < durationMs) {
    const now = performance.now();
    const due = rate > 0 ? Math.min(total, Math.floor(((now - start) / 1000) * rate)) : Math.min(total, stats.sent + 5000);
    if (due <= stats.sent) {
      await new Promise((r) => setImmediate(r));
      continue;
    }
    if (rate > 0) behindMs = Math.max(0, now - (start + (stats.sent / rate) * 1000));
    for (; stats.sent < due; stats.sent++) {
      const e = gen.next();
      const k = `${o.topicPrefix}${TOPIC_BY_SOURCE[e.source]}|${partitionOf(keyOf(e), o.partitions)}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { events: [], intended: 0 }));
      if (g.events.length === 0) g.intended = rate > 0 ? start + (stats.sent / rate) * 1000 : performance.now();
      g.events.push(e);
      if (g.events.length >= o.eventsPerBatch) flush(k);
    }
    await new Promise((r) => setImmediate(r));
  }
  for (const k of groups.keys()) flush(k);
  await new Promise<void>((resolve) => producer.flush(60_000, () => resolve()));
  const deadline = Date.now() + 30_000;
  while (stats.acked + stats.errors < stats.sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  clearInterval(progress);
  report(true);
  const elapsed = (performance.now() - start) / 1000;
  const ms = (q: number) => Math.round(latency.getValueAtPercentile(q) / 10) / 100;
  console.log(`${stats.acked} records sent, ${(stats.acked / elapsed).toFixed(1)} records/sec (${(stats.bytes / elapsed / 1e6).toFixed(2)} MB/sec), ${(latency.mean / 1000).toFixed(2)} ms avg latency, ${(latency.maxValue / 1000).toFixed(2)} ms max latency, ${ms(50)} ms 50th, ${ms(95)} ms 95th, ${ms(99)} ms 99th, ${ms(99.9)} ms 99.9th.`);
  console.log(JSON.stringify({
    bench: 'loadgen', offeredPerSec: rate, records: stats.acked, recordsPerSec: Math.round(stats.acked / elapsed), mbPerSec: Math.round((stats.bytes / elapsed / 1e6) * 100) / 100,
    messages: stats.messages, errors: stats.errors, avgMs: Math.round(latency.mean / 10) / 100, maxMs: Math.round(latency.maxValue / 10) / 100,
    p50Ms: ms(50), p95Ms: ms(95), p99Ms: ms(99), p999Ms: ms(99.9), seconds: Math.round(elapsed * 100) / 100,
  }));
  await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  if (stats.errors > 0 || stats.acked < stats.sent) process.exitCode = 1;
}

main().catch((e) => {
  console.error(`loadgen failed: ${(e as Error).message}`);
  process.exit(1);
});
