import fs from 'node:fs';
import Kafka from 'node-rdkafka';
import { EventBatchEncoder, encodeProduct, encodeUserProfile, type EventRecord } from '../engine/codec/index.js';
import { EventGenerator } from '../engine/source/generator.js';
import { keyOf, partitionOf } from '../engine/source/embedded.js';
import { encodeHistogram, latencyHistogram } from './histogram.js';
import type { LoadgenOptions } from './options.js';

/**
 * One loadgen thread: its own producer, `1/count` of the rate and of the users. Open loop: event
 * i of this share is due at start + i / rate; a batch is produced when it fills, and its latency
 * counts from the moment its first event was due (coordinated-omission correction), to the
 * delivery report.
 */
export interface ShareConfig extends LoadgenOptions {
  /** This share's index and the number of shares. */
  index: number;
  count: number;
}

export interface ShareCounters {
  sent: number;
  acked: number;
  errors: number;
  bytes: number;
  messages: number;
  /** How far the generator is behind its schedule (ms), now. */
  behindMs: number;
}

export type ShareMessage =
  | { type: 'ready'; index: number }
  | { type: 'stats'; index: number; counters: ShareCounters; histogram: string }
  | { type: 'done'; index: number; counters: ShareCounters; histogram: string; seconds: number }
  | { type: 'failed'; index: number; message: string };

const TOPIC_BY_SOURCE: Record<string, string> = {
  WEB: 'web-events', MOBILE: 'mobile-events', TRANSACTION: 'transaction-events', IOT: 'iot-events', USER_ACTION: 'user-actions',
};

/** Users (and IoT devices) of share `index` of `count`: global index = local * count + index. */
export function shareUsers(users: number, index: number, count: number): number {
  return Math.floor((users - index + count - 1) / count);
}

/** Events of share `index` when `total` are split over `count` shares. */
export function shareRecords(total: number, index: number, count: number): number {
  if (!Number.isFinite(total)) return Infinity;
  return Math.floor(total / count) + (index < total % count ? 1 : 0);
}

/** The ack-log file of share `index` of `count` (see LoadgenOptions.ackLog). */
export function ackLogPath(path: string, index: number, count: number): string {
  return count === 1 ? path : `${path}.${index}`;
}

/** The key an event's sequence number counts under: its user, or per share for events without one (IoT). */
function seqKey(userId: string, index: number): string {
  return userId || `~${index}`;
}

/** Wall-clock creation time (epoch ms, as stamped) of event i of a share running at `rate` events/s from `startAt`. */
export function wallStamp(startAt: number, i: number, rate: number): number {
  return Math.floor(startAt + (i * 1000) / rate);
}

function remapId(id: string, prefix: string, count: number, index: number): string {
  return id ? prefix + (Number(id.slice(prefix.length)) * count + index) : id;
}

export class ProducerShare {
  readonly counters: ShareCounters = { sent: 0, acked: 0, errors: 0, bytes: 0, messages: 0, behindMs: 0 };
  /** Latency since the last `takeInterval()`, microseconds. */
  private interval = latencyHistogram();
  private producer: Kafka.Producer | null = null;
  private readonly gen: EventGenerator;
  private readonly rate: number;
  private readonly total: number;
  private started = 0;
  private ackOut: fs.WriteStream | null = null;

  constructor(readonly cfg: ShareConfig) {
    this.rate = cfg.throughput > 0 ? cfg.throughput / cfg.count : -1;
    this.total = shareRecords(cfg.numRecords, cfg.index, cfg.count);
    // Each share has its own seed (distinct session and event ids) and its own users.
    this.gen = new EventGenerator({
      seed: cfg.seed + cfg.index, users: shareUsers(cfg.users, cfg.index, cfg.count), startTime: Date.now(),
      eventsPerSecond: this.rate > 0 ? this.rate : 100_000 / cfg.count,
    });
  }

  /** Connects and writes this share's reference records (profiles of its users; share 0 writes the catalog). */
  async prepare(): Promise<void> {
    const c = this.cfg;
    if (c.target === 'kafka') {
      const producer = new Kafka.Producer({
        'metadata.broker.list': c.bootstrapServer, dr_cb: true, 'linger.ms': 5, 'compression.type': 'lz4', 'enable.idempotence': true,
        'queue.buffering.max.kbytes': 1_048_576, 'batch.size': 1_000_000, 'client.id': `loadgen-${c.index}`, ...c.producerProps,
      });
      producer.setPollInterval(10);
      await new Promise<void>((resolve, reject) => producer.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve())));
      if (c.ackLog) this.ackOut = fs.createWriteStream(ackLogPath(c.ackLog, c.index, c.count), { flags: 'a' });
      producer.on('delivery-report', (err, report) => {
        const intended = report.opaque as { t: number; n: number; k?: string };
        if (err) {
          this.counters.errors += Math.max(1, intended.n);
          return;
        }
        if (intended.n === 0) return; // reference records: not events
        this.counters.acked += intended.n;
        if (intended.k !== undefined) this.ackOut?.write(`${report.topic}\t${report.partition}\t${report.offset}\t${intended.n}\t${intended.k}\n`);
        this.interval.recordValue(Math.max(1, Math.round((performance.now() - intended.t) * 1000)));
      });
      this.producer = producer;
    }
    if (c.reference || c.referenceOnly) {
      for (const p of this.gen.profiles()) {
        const profile = { ...p, userId: this.user(p.userId) };
        this.produce(`${c.topicPrefix}user-profiles`, partitionOf(profile.userId, c.partitions), profile.userId, Buffer.from(encodeUserProfile(profile)), Date.now(), { t: performance.now(), n: 0 });
      }
      if (c.index === 0) {
        for (const p of this.gen.catalog()) this.produce(`${c.topicPrefix}product-catalog`, partitionOf(p.productId, c.partitions), p.productId, Buffer.from(encodeProduct(p)), Date.now(), { t: performance.now(), n: 0 });
      }
      if (c.referenceOnly) await this.flush();
    }
  }

  private user(id: string): string {
    return this.cfg.count === 1 ? id : remapId(id, 'user-', this.cfg.count, this.cfg.index);
  }

  private produce(topic: string, partition: number, key: string, value: Buffer, ts: number, opaque: { t: number; n: number; k?: string }): void {
    this.counters.messages++;
    this.counters.bytes += value.length;
    if (!this.producer) {
      // --target embedded: no broker; "delivered" once encoded.
      if (opaque.n > 0) {
        this.counters.acked += opaque.n;
        this.interval.recordValue(Math.max(1, Math.round((performance.now() - opaque.t) * 1000)));
      }
      return;
    }
    for (;;) {
      try {
        this.producer.produce(topic, partition, value, key, ts, opaque);
        return;
      } catch {
        this.producer.poll(); // local queue full: let deliveries drain
        const until = performance.now() + 1;
        while (performance.now() < until) { /* brief spin: keeps the open-loop clock honest */ }
      }
    }
  }

  /** The latency histogram since the previous call, encoded; a fresh one starts. */
  takeInterval(): string {
    const s = encodeHistogram(this.interval);
    this.interval.reset();
    return s;
  }

  get seconds(): number {
    return this.started ? (performance.now() - this.started) / 1000 : 0;
  }

  /**
   * Runs the schedule from `startAt` (epoch ms) until this share's records are sent, the
   * duration has passed or `stop` is aborted, then waits for every delivery report.
   */
  async run(startAt: number, stop?: AbortSignal): Promise<void> {
    const c = this.cfg;
    const rate = this.rate;
    const startPerf = startAt - performance.timeOrigin;
    while (performance.now() < startPerf && !stop?.aborted) await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, startPerf - performance.now()))));
    this.started = performance.now();
    const start = rate > 0 ? startPerf : this.started;
    const counters = this.counters;
    const groups = new Map<string, { events: EventRecord[]; intended: number }>();
    const enc = new EventBatchEncoder();
    const flush = (k: string) => {
      const g = groups.get(k)!;
      if (g.events.length === 0) return;
      const sep = k.lastIndexOf('|');
      for (const e of g.events) enc.add(e);
      // Only with --ack-log: the events' key:seq list rides along to the delivery report.
      const acks = this.ackOut ? g.events.map((e) => `${seqKey(e.userId, c.index)}:${e.seq}`).join(',') : undefined;
      this.produce(k.slice(0, sep), Number(k.slice(sep + 1)), keyOf(g.events[0]), Buffer.from(enc.finish()), g.events[0].timestamp, acks === undefined ? { t: g.intended, n: g.events.length } : { t: g.intended, n: g.events.length, k: acks });
      g.events = [];
    };
    // A partial batch goes out once its first event has waited --batch-linger-ms (like linger.ms):
    // at low rates a topic-partition's batch would otherwise take seconds to fill.
    const linger = c.batchLingerMs;
    let lastLingerCheck = performance.now();
    const flushLingering = (now: number) => {
      lastLingerCheck = now;
      for (const [k, g] of groups) if (g.events.length > 0 && now - g.intended >= linger) flush(k);
    };
    // partitionOf hashes the key's UTF-8 bytes (about 0.8 M keys/s, bench:micro): once per key.
    const partitions = new Map<string, number>();
    const remap = c.count > 1;
    const wall = c.timestamps === 'wall' && rate > 0;
    while (counters.sent < this.total && performance.now() - start < c.durationMs && !stop?.aborted) {
      const now = performance.now();
      const due = rate > 0 ? Math.min(this.total, Math.floor(((now - start) / 1000) * rate)) : Math.min(this.total, counters.sent + 5000);
      if (now - lastLingerCheck >= Math.min(5, linger)) flushLingering(now);
      if (due <= counters.sent) {
        // Sleep until the next event is due (a busy loop would take a core from the broker and
        // the engine on a small machine); linger checks still run every few ms.
        const wait = rate > 0 ? start + ((counters.sent + 1) / rate) * 1000 - now : 0;
        await new Promise((r) => (wait > 0 ? setTimeout(r, Math.min(Math.max(wait, 1), 5)) : setImmediate(r)));
        continue;
      }
      if (rate > 0) counters.behindMs = Math.max(0, now - (start + (counters.sent / rate) * 1000));
      for (; counters.sent < due; counters.sent++) {
        const e = this.gen.next();
        if (remap) {
          e.userId = remapId(e.userId, 'user-', c.count, c.index);
          if (e.source === 'IOT') e.deviceId = remapId(e.deviceId, 'device-', c.count, c.index);
        }
        // Event time = the moment the event was due: what event-to-dashboard latency is measured from.
        if (wall) e.timestamp = wallStamp(startAt, counters.sent, rate);
        const key = keyOf(e);
        let partition = partitions.get(key);
        if (partition === undefined) partitions.set(key, (partition = partitionOf(key, c.partitions)));
        const k = `${c.topicPrefix}${TOPIC_BY_SOURCE[e.source]}|${partition}`;
        let g = groups.get(k);
        if (!g) groups.set(k, (g = { events: [], intended: 0 }));
        if (g.events.length === 0) g.intended = rate > 0 ? start + (counters.sent / rate) * 1000 : performance.now();
        g.events.push(e);
        if (g.events.length >= c.eventsPerBatch) flush(k);
      }
      await new Promise((r) => setImmediate(r));
    }
    for (const k of groups.keys()) flush(k);
    await this.flush();
  }

  private async flush(): Promise<void> {
    const producer = this.producer;
    if (!producer) return;
    await new Promise<void>((resolve) => producer.flush(60_000, () => resolve()));
    const deadline = Date.now() + 30_000;
    while (this.counters.acked + this.counters.errors < this.counters.sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  async close(): Promise<void> {
    const producer = this.producer;
    this.producer = null;
    if (producer) await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
    const out = this.ackOut;
    this.ackOut = null;
    if (out) await new Promise<void>((resolve) => out.end(() => resolve()));
  }
}

/**
 * Runs one share, reporting through `post` ('ready' after prepare, 'stats' every `reportMs`,
 * 'done' at the end). `go` resolves to the schedule's start (epoch ms). Aborting `stop` ends the
 * schedule early: what was generated is still sent and its delivery reports awaited ('done').
 */
export async function runShare(cfg: ShareConfig, post: (m: ShareMessage) => void, go: Promise<number>, reportMs: number, stop?: AbortSignal): Promise<void> {
  const share = new ProducerShare(cfg);
  try {
    await share.prepare();
    post({ type: 'ready', index: cfg.index });
    const startAt = await go;
    if (cfg.referenceOnly) {
      post({ type: 'done', index: cfg.index, counters: { ...share.counters }, histogram: share.takeInterval(), seconds: 0 });
      return;
    }
    const timer = setInterval(() => post({ type: 'stats', index: cfg.index, counters: { ...share.counters }, histogram: share.takeInterval() }), reportMs);
    try {
      await share.run(startAt, stop);
    } finally {
      clearInterval(timer);
    }
    post({ type: 'done', index: cfg.index, counters: { ...share.counters }, histogram: share.takeInterval(), seconds: share.seconds });
  } catch (e) {
    post({ type: 'failed', index: cfg.index, message: (e as Error).message });
  } finally {
    await share.close();
  }
}
