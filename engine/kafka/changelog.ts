import fs from 'node:fs';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { EngineError } from '../errors.js';
import { CHANGELOG_STRIDE, META_KEY, decodeValue, metaFingerprint, type ChangelogBatch } from '../state/changelog-codec.js';
import type { PartitionMeta } from '../state/shard-store.js';

import { CHANGELOG_TOPIC, LIVE_TOPIC } from './topics.js';

export class ChangelogError extends EngineError {}

export interface ChangelogOptions {
  brokers: string;
  topicPrefix: string;
  /** The consumer group: transactional ids are `<groupId>-changelog-<partition>`. */
  groupId: string;
  kafkaConfig: Record<string, string | number | boolean>;
  /** Where the checkpoint file (changelog offset of each partition's last meta record) is kept. */
  dataDir: string;
}

/** librdkafka settings that only a consumer understands: not passed to the changelog producers. */
const CONSUMER_ONLY = /^(group\.|partition\.assignment|session\.timeout|heartbeat|max\.poll|enable\.auto|auto\.|isolation|fetch\.|enable\.partition\.eof|check\.crcs|queued\.)/;

function producerConfig(cfg: Record<string, string | number | boolean>): Record<string, string | number | boolean> {
  return Object.fromEntries(Object.entries(cfg).filter(([k]) => !CONSUMER_ONLY.test(k)));
}

interface Segment {
  data: Uint8Array;
  index: Float64Array;
  /** Index positions (in records) of this partition's records in the batch. */
  records: number[];
  /** The partition's dashboard projection of the same commit (to the partials topic, same transaction). */
  live: { data: Uint8Array; index: Float64Array; records: number[] } | null;
  /** true: in a committed transaction; false: given up (the producer was fenced: another process owns the partition). */
  resolve: (written: boolean) => void;
}

function recordsByPartition(index: Float64Array): Map<number, number[]> {
  const byPartition = new Map<number, number[]>();
  for (let r = 0; r * CHANGELOG_STRIDE < index.length; r++) {
    const p = index[r * CHANGELOG_STRIDE];
    let list = byPartition.get(p);
    if (!list) byPartition.set(p, (list = []));
    list.push(r);
  }
  return byPartition;
}

interface PartitionProducer {
  partition: number;
  producer: Kafka.Producer;
  queue: Segment[];
  busy: boolean;
  /** Set once another process has taken the transactional id (this one is a zombie for it). */
  fenced: boolean;
  idle: Array<() => void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * Writes each durable shard commit to the changelog: per partition, one Kafka transaction holding
 * the partition's changed records followed by its meta record. One transactional producer per
 * owned partition (transactional.id = <group>-changelog-<p>, as Kafka Streams' first EOS did per
 * task): a new owner's initTransactions aborts whatever transaction the previous owner left open
 * (a SIGKILL mid-commit) and fences it, so a restore reading read_committed never applies a torn
 * commit, and compaction never lets a torn record shadow a committed one (the log cleaner drops
 * aborted transactions' records). Retried without end on transient errors: the changelog must not
 * miss a commit, since later commits carry only their own changes.
 */
export class ChangelogWriter {
  readonly topic: string;
  private readonly producers = new Map<number, PartitionProducer>();
  readonly checkpoint: Record<number, number>;
  private readonly checkpointFile: string;
  private checkpointTimer: NodeJS.Timeout | null = null;
  readonly liveTopic: string;
  readonly stats = { transactions: 0, records: 0, bytes: 0, retries: 0, fenced: 0, lastError: '', txnMsTotal: 0, liveRecords: 0, liveBytes: 0 };

  constructor(private readonly opts: ChangelogOptions) {
    this.topic = opts.topicPrefix + CHANGELOG_TOPIC;
    this.liveTopic = opts.topicPrefix + LIVE_TOPIC;
    this.checkpointFile = path.join(opts.dataDir, 'changelog.checkpoint');
    this.checkpoint = readCheckpoint(this.checkpointFile);
  }

  /** Creates the partitions' transactional producers; initTransactions fences any previous owner. */
  async openPartitions(partitions: number[]): Promise<void> {
    await Promise.all(partitions.filter((p) => !this.producers.has(p)).map(async (p) => {
      const producer = new Kafka.Producer({
        'metadata.broker.list': this.opts.brokers,
        'transactional.id': `${this.opts.groupId}-changelog-${p}`,
        dr_cb: true,
        'linger.ms': 5,
        'compression.type': 'lz4',
        'queue.buffering.max.messages': 1_000_000,
        'transaction.timeout.ms': 60_000,
        ...producerConfig(this.opts.kafkaConfig),
      });
      producer.setPollInterval(10);
      producer.on('delivery-report', (err, report) => {
        if (err) this.stats.lastError = `changelog delivery: ${err.message}`;
        else if (report.opaque === META_KEY && typeof report.offset === 'number') this.pendingMetaOffset.set(p, report.offset);
      });
      await new Promise<void>((resolve, reject) => producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
      for (let attempt = 0; ; attempt++) {
        try {
          await new Promise<void>((resolve, reject) => producer.initTransactions(30_000, (err) => (err ? reject(err) : resolve())));
          break;
        } catch (e) {
          if (attempt >= 5) {
            await new Promise<void>((r) => producer.disconnect(() => r()));
            throw new ChangelogError('ERR_CHANGELOG_INIT', `cannot start the changelog producer of partition ${p} on ${this.opts.brokers}: ${(e as Error).message}. Check that the broker allows transactions (transaction.state.log.* settings on a single broker).`, true, { cause: e });
          }
          await sleep(500 * (attempt + 1));
        }
      }
      this.producers.set(p, { partition: p, producer, queue: [], busy: false, fenced: false, idle: [] });
    }));
  }

  private readonly pendingMetaOffset = new Map<number, number>();

  /**
   * Sends a commit's records. Resolves when every partition's transaction has committed or been
   * given up (then the input offsets may be committed to Kafka), with the partitions whose records
   * are NOT in the changelog: no producer here (given up meanwhile) or fenced (another process owns
   * the partition now). Their next owner restores from what was committed, so a caller that acts on
   * a commit being durable (Engine.writeState) must treat those partitions as not written.
   */
  write(batch: ChangelogBatch): Promise<number[]> {
    const byPartition = recordsByPartition(batch.index);
    const live = batch.live ? recordsByPartition(batch.live.index) : null;
    const skipped: number[] = [];
    const done: Promise<void>[] = [];
    for (const [p, records] of byPartition) {
      const pp = this.producers.get(p);
      if (!pp || pp.fenced) {
        skipped.push(p);
        continue;
      }
      done.push(new Promise<void>((resolve) => {
        const liveRecords = live?.get(p);
        const settle = (written: boolean) => {
          if (!written) skipped.push(p);
          resolve();
        };
        pp.queue.push({ data: batch.data, index: batch.index, records, live: liveRecords ? { data: batch.live!.data, index: batch.live!.index, records: liveRecords } : null, resolve: settle });
        this.pump(pp).catch((e: Error) => (this.stats.lastError = `changelog partition ${p}: ${e.message}`));
      }));
    }
    return Promise.all(done).then(() => skipped.sort((x, y) => x - y));
  }

  /** One transaction for everything queued for the partition (commits that arrived meanwhile are coalesced). */
  private async pump(pp: PartitionProducer): Promise<void> {
    if (pp.busy) return;
    pp.busy = true;
    try {
      while (pp.queue.length && !pp.fenced) {
        const segments = pp.queue.splice(0);
        for (let attempt = 0; ; attempt++) {
          try {
            await this.transaction(pp, segments);
            break;
          } catch (e) {
            const err = e as Kafka.LibrdKafkaError & { isFatal?: boolean; isTxnRequiresAbort?: boolean };
            this.stats.lastError = `changelog partition ${pp.partition}: ${err.message}`;
            if (err.code === Kafka.CODES.ERRORS.ERR__FENCED || err.code === Kafka.CODES.ERRORS.ERR_PRODUCER_FENCED || err.isFatal) {
              // Another process owns the partition now: it restores from what is committed.
              pp.fenced = true;
              this.stats.fenced++;
              break;
            }
            this.stats.retries++;
            await new Promise<void>((r) => {
              try {
                pp.producer.abortTransaction(30_000, () => r());
              } catch {
                r(); // no transaction to abort (beginTransaction failed): retry from the start
              }
            });
            await sleep(Math.min(5000, 100 * 2 ** Math.min(attempt, 6)));
          }
        }
        for (const s of segments) s.resolve(!pp.fenced);
      }
      // Fenced: what was queued behind the failed transaction will never be written here. Settle it
      // (not written) instead of leaving its waiters (a revocation, a shutdown) hanging forever.
      if (pp.fenced) for (const s of pp.queue.splice(0)) s.resolve(false);
    } finally {
      pp.busy = false;
      if (!pp.queue.length) for (const w of pp.idle.splice(0)) w();
    }
  }

  private async transaction(pp: PartitionProducer, segments: Segment[]): Promise<void> {
    const t0 = performance.now();
    const { producer, partition } = pp;
    await new Promise<void>((resolve, reject) => producer.beginTransaction((err) => (err ? reject(err) : resolve())));
    let records = 0;
    let bytes = 0;
    this.pendingMetaOffset.delete(partition);
    for (const s of segments) {
      // The dashboard projection first: its meta record closes it for the readers.
      if (s.live) {
        for (const r of s.live.records) {
          const i = r * CHANGELOG_STRIDE;
          const key = Buffer.from(s.live.data.buffer, s.live.data.byteOffset + s.live.index[i + 1], s.live.index[i + 2]);
          const valLen = s.live.index[i + 4];
          const value = valLen < 0 ? null : Buffer.from(s.live.data.buffer, s.live.data.byteOffset + s.live.index[i + 3], valLen);
          await this.produce(producer, this.liveTopic, partition, value, key, undefined);
          this.stats.liveRecords++;
          this.stats.liveBytes += key.length + (value?.length ?? 0);
        }
      }
      for (const r of s.records) {
        const i = r * CHANGELOG_STRIDE;
        const keyStart = s.index[i + 1];
        const keyLen = s.index[i + 2];
        const valStart = s.index[i + 3];
        const valLen = s.index[i + 4];
        const key = Buffer.from(s.data.buffer, s.data.byteOffset + keyStart, keyLen);
        const value = valLen < 0 ? null : Buffer.from(s.data.buffer, s.data.byteOffset + valStart, valLen);
        const isMeta = keyLen === META_KEY.length && key.toString() === META_KEY;
        await this.produce(producer, this.topic, partition, value, key, isMeta ? META_KEY : undefined);
        records++;
        bytes += keyLen + Math.max(0, valLen);
      }
    }
    await new Promise<void>((resolve, reject) => producer.commitTransaction(60_000, (err) => (err ? reject(err) : resolve())));
    this.stats.transactions++;
    this.stats.records += records;
    this.stats.bytes += bytes;
    this.stats.txnMsTotal += performance.now() - t0;
    // The meta record's offset (its delivery report may be polled a moment after the commit).
    for (let i = 0; i < 50 && !this.pendingMetaOffset.has(partition); i++) await sleep(10);
    const off = this.pendingMetaOffset.get(partition);
    if (off !== undefined) this.setCheckpoint(partition, off);
  }

  private async produce(producer: Kafka.Producer, topic: string, partition: number, value: Buffer | null, key: Buffer, opaque: string | undefined): Promise<void> {
    for (;;) {
      try {
        producer.produce(topic, partition, value, key, null, opaque);
        return;
      } catch (e) {
        if ((e as Kafka.LibrdKafkaError).code !== Kafka.CODES.ERRORS.ERR__QUEUE_FULL) throw e;
        producer.poll();
        await sleep(2);
      }
    }
  }

  setCheckpoint(partition: number, metaOffset: number): void {
    this.checkpoint[partition] = metaOffset;
    if (!this.checkpointTimer) {
      this.checkpointTimer = setTimeout(() => this.saveCheckpoint(), 200);
      this.checkpointTimer.unref();
    }
  }

  saveCheckpoint(): void {
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer);
    this.checkpointTimer = null;
    try {
      const tmp = `${this.checkpointFile}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(this.checkpoint));
      fs.renameSync(tmp, this.checkpointFile);
    } catch (e) {
      this.stats.lastError = `changelog checkpoint: ${(e as Error).message}`;
    }
  }

  /** Waits until everything queued for these partitions (all when omitted) is committed. */
  async flush(partitions?: number[]): Promise<void> {
    const list = partitions ? partitions.map((p) => this.producers.get(p)).filter((x): x is PartitionProducer => !!x) : [...this.producers.values()];
    await Promise.all(list.map((pp) => (pp.busy || pp.queue.length ? new Promise<void>((r) => pp.idle.push(r)) : undefined)));
  }

  /** Flushes and closes the producers of partitions given up. */
  async closePartitions(partitions: number[]): Promise<void> {
    await this.flush(partitions);
    await Promise.all(partitions.map(async (p) => {
      const pp = this.producers.get(p);
      if (!pp) return;
      this.producers.delete(p);
      await new Promise<void>((r) => pp.producer.disconnect(() => r()));
    }));
  }

  async close(): Promise<void> {
    await this.closePartitions([...this.producers.keys()]);
    this.saveCheckpoint();
  }
}

function readCheckpoint(file: string): Record<number, number> {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>;
    return Object.fromEntries(Object.entries(o).filter(([, v]) => Number.isInteger(v)).map(([k, v]) => [Number(k), v]));
  } catch {
    return {};
  }
}

export interface RestoreOutcome {
  partition: number;
  /** current: the local store already held the changelog's state; incremental: applied what followed the local state; full: rebuilt from the beginning. */
  mode: 'current' | 'incremental' | 'full';
  records: number;
  bytes: number;
  ms: number;
  /** Offset of the last meta record read (the new checkpoint), or null when none was read. */
  lastMetaOffset: number | null;
}

/** Applies a chunk of records to a partition's store (reset: clear the partition first). */
export type ApplyChunk = (partition: number, reset: boolean, keys: string[], values: Array<Uint8Array | null>) => Promise<void>;

export interface RestoreRequest {
  partition: number;
  /** The local store's meta for the partition (null: nothing there). */
  local: PartitionMeta | null;
  /** Changelog offset of the local store's last acknowledged meta record (checkpoint file). */
  checkpoint: number | undefined;
}

const CHUNK_RECORDS = 5000;

interface Reading {
  partition: number;
  from: number;
  localFp: string;
  reset: boolean;
  keys: string[];
  values: Array<Uint8Array | null>;
  first: boolean;
  records: number;
  bytes: number;
  matched: boolean;
  appliedAfterMatch: boolean;
  lastMetaOffset: number | null;
  done: boolean;
  t0: number;
}

/**
 * Restores partitions' state from the changelog (read_committed: aborted transactions, i.e. torn
 * commits, are never seen), all partitions of an assignment at once on one consumer. A local store
 * is kept when it is current: its meta equals a meta record at or after the checkpointed position,
 * and only what follows is applied (records are whole values, so re-applying a suffix is
 * idempotent). A store whose meta is found nowhere (ahead of the changelog: a commit whose
 * transaction never completed; or a new store) is cleared and rebuilt from the beginning.
 */
export class ChangelogRestorer {
  private consumer: Kafka.KafkaConsumer | null = null;
  private readonly topic: string;
  private readonly eof = new Set<number>();
  readonly stats = { restores: 0, records: 0, bytes: 0, ms: 0 };

  constructor(private readonly opts: ChangelogOptions) {
    this.topic = opts.topicPrefix + CHANGELOG_TOPIC;
  }

  private async client(): Promise<Kafka.KafkaConsumer> {
    if (this.consumer) return this.consumer;
    const c = new Kafka.KafkaConsumer({
      'metadata.broker.list': this.opts.brokers,
      'group.id': `${this.opts.groupId}-restore`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
      'fetch.max.bytes': 64 * 1024 * 1024,
      // A restore reads to the end: do not let the broker hold a fetch at the end for 500 ms.
      'fetch.wait.max.ms': 10,
      ...Object.fromEntries(Object.entries(this.opts.kafkaConfig).filter(([k]) => !/^(partition\.assignment|isolation|group\.instance)/.test(k))),
    }, { 'auto.offset.reset': 'earliest' });
    c.on('partition.eof', (e) => {
      this.eof.add(e.partition);
    });
    await new Promise<void>((resolve, reject) => c.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    c.setDefaultConsumeTimeout(100);
    this.consumer = c;
    return c;
  }

  async restore(requests: RestoreRequest[], apply: ApplyChunk): Promise<RestoreOutcome[]> {
    const t0 = performance.now();
    const outcomes = new Map<number, RestoreOutcome>();
    // Pass 1: incremental from the checkpoint where the local store has one; full elsewhere.
    const first = requests.map((r) => (r.local && r.checkpoint !== undefined
      ? { partition: r.partition, from: r.checkpoint, localFp: metaFingerprint(r.local), reset: false }
      : { partition: r.partition, from: -2, localFp: '', reset: true }));
    const done1 = await this.read(first, apply);
    const again: typeof first = [];
    for (const x of done1) {
      if (x.reset) outcomes.set(x.partition, this.outcome(x, 'full', t0));
      else if (x.matched) outcomes.set(x.partition, this.outcome(x, x.appliedAfterMatch ? 'incremental' : 'current', t0));
      else again.push({ partition: x.partition, from: -2, localFp: '', reset: true });
    }
    // Pass 2: the local stores that matched nothing are rebuilt from the beginning.
    if (again.length) {
      for (const x of await this.read(again, apply)) {
        const before = done1.find((y) => y.partition === x.partition)!;
        x.records += before.records;
        x.bytes += before.bytes;
        outcomes.set(x.partition, this.outcome(x, 'full', t0));
      }
    }
    return requests.map((r) => outcomes.get(r.partition)!);
  }

  private outcome(x: Reading, mode: RestoreOutcome['mode'], t0: number): RestoreOutcome {
    const ms = performance.now() - t0;
    this.stats.restores++;
    this.stats.records += x.records;
    this.stats.bytes += x.bytes;
    this.stats.ms += ms;
    return { partition: x.partition, mode, records: x.records, bytes: x.bytes, ms, lastMetaOffset: x.lastMetaOffset };
  }

  /** Reads each partition from its `from` to its end (the last stable offset), applying records in chunks. */
  private async read(parts: Array<{ partition: number; from: number; localFp: string; reset: boolean }>, apply: ApplyChunk): Promise<Reading[]> {
    const c = await this.client();
    const readings = new Map<number, Reading>(parts.map((x) => [x.partition, {
      ...x, keys: [], values: [], first: x.reset, records: 0, bytes: 0, matched: false, appliedAfterMatch: false, lastMetaOffset: null, done: false, t0: performance.now(),
    }]));
    for (const p of readings.keys()) this.eof.delete(p);
    const flush = async (r: Reading) => {
      if (!r.keys.length && !r.first) return;
      await apply(r.partition, r.first, r.keys, r.values);
      r.first = false;
      r.keys = [];
      r.values = [];
    };
    c.assign(parts.map((x) => ({ topic: this.topic, partition: x.partition, offset: x.from < 0 ? -2 : x.from })));
    try {
      const deadline = Date.now() + 10 * 60_000;
      while ([...readings.values()].some((r) => !r.done)) {
        const msgs = await new Promise<Kafka.Message[]>((resolve, reject) => c.consume(5000, (err, m) => (err ? reject(err) : resolve(m))));
        for (const m of msgs) {
          const r = readings.get(m.partition);
          if (!r || r.done || m.topic !== this.topic) continue;
          const key = m.key ? (typeof m.key === 'string' ? m.key : m.key.toString()) : '';
          if (!key) continue;
          r.records++;
          r.bytes += key.length + (m.value?.length ?? 0);
          if (key === META_KEY) {
            r.lastMetaOffset = m.offset;
            if (r.localFp && m.value && metaFingerprint(decodeValue(m.value) as PartitionMeta) === r.localFp) {
              r.matched = true;
              r.appliedAfterMatch = false;
              continue;
            }
          }
          if (r.matched) r.appliedAfterMatch = true;
          r.keys.push(key);
          r.values.push(m.value ? new Uint8Array(m.value) : null);
          // Records read before the matching meta were already in the local state: applying them
          // again is harmless (whole values); a store that matches nothing is rebuilt in pass 2.
          if (r.keys.length >= CHUNK_RECORDS) await flush(r);
        }
        for (const r of readings.values()) {
          if (!r.done && this.eof.has(r.partition)) {
            r.done = true;
            if (!r.localFp || r.matched || r.reset) await flush(r);
          }
        }
        if (Date.now() > deadline) throw new ChangelogError('ERR_CHANGELOG_RESTORE_TIMEOUT', `restoring partitions ${parts.map((x) => x.partition).join(',')} from ${this.topic} did not reach the end within 10 minutes; check the broker and retry`, true);
      }
    } finally {
      c.unassign();
    }
    return [...readings.values()];
  }

  async close(): Promise<void> {
    const c = this.consumer;
    this.consumer = null;
    if (c) await new Promise<void>((r) => c.disconnect(() => r()));
  }
}
