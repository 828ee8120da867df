import Kafka from 'node-rdkafka';
import type { Alert } from '../codec/types.js';
import { EngineError } from '../errors.js';
import { LivePartition } from '../query/live.js';
import { ALERT_STATUS } from '../state/live-projection.js';
import { META_KEY, decodeKey, decodeValue } from '../state/changelog-codec.js';
import type { PartitionMeta, StoreKey } from '../state/shard-store.js';
import { LIVE_TOPIC } from './topics.js';

/**
 * Scaled out: every instance's copy of every partition's dashboard projection, read from the
 * compacted `<prefix>dashboard-partials` topic (read_committed: the owners write it in the same
 * Kafka transactions as the changelog). A partition's records are buffered until its meta record,
 * which ends each of its transactions, so a reader never shows half a commit. A partition whose
 * owner is gone keeps its last committed values: the numbers stay complete during a rebalance.
 *
 * This replaces a per-tick fan-out to the owners (each instance asking every other for its
 * partitions' windows 4 times a second: O(instances²) requests): here each owner writes each
 * change once, and each instance reads every change once (docs/SCALING.md, capacity model).
 */
export interface LiveChange {
  pipeline: string;
  partition: number;
  windowStart: number;
}

export interface LiveUpdate {
  changed: LiveChange[];
  newAlerts: Alert[];
  statuses: Array<{ alertId: string; status: string; at: number }>;
}

export interface LivePartialsOptions {
  brokers: string;
  topicPrefix: string;
  partitions: number;
  instanceId: string;
  kafkaConfig: Record<string, string | number | boolean>;
  /** Windows older than this many ms before the newest stream time are dropped from memory. */
  keepMs?: number;
}

const CONSUMER_SETTINGS = /^(group\.|partition\.assignment|session\.timeout|heartbeat|isolation|enable\.auto|transactional|enable\.idempotence|acks|linger|compression)/;
const WINDOWED_KEEP = new Set(['alerts', ALERT_STATUS]);

export class LivePartialsError extends EngineError {}

export class LivePartials {
  readonly views: LivePartition[];
  private consumer: Kafka.KafkaConsumer | null = null;
  private readonly pending = new Map<number, Array<[StoreKey, unknown]>>();
  private readonly eof = new Set<number>();
  private readonly listeners = new Set<(u: LiveUpdate) => void>();
  private readyWaiters: Array<() => void> = [];
  private stopped = false;
  private readonly topic: string;
  /** The oldest window a user of the views still needs (the global alerts' next window). */
  private readonly floors = new Set<() => number | null>();
  readonly stats = { records: 0, bytes: 0, transactions: 0, unreadable: 0, lastError: '' };
  ready = false;

  constructor(private readonly opts: LivePartialsOptions) {
    this.topic = opts.topicPrefix + LIVE_TOPIC;
    this.views = Array.from({ length: opts.partitions }, (_, p) => new LivePartition(p));
  }

  /** Connects and starts reading every partition from the beginning; `whenReady` resolves at their end. */
  async start(): Promise<void> {
    const settings = Object.fromEntries(Object.entries(this.opts.kafkaConfig).filter(([k]) => !CONSUMER_SETTINGS.test(k)));
    const c = new Kafka.KafkaConsumer({
      'metadata.broker.list': this.opts.brokers,
      'group.id': `${this.opts.instanceId}-live-reader`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
      'fetch.wait.max.ms': 50,
      ...settings,
    }, { 'auto.offset.reset': 'earliest' });
    c.on('partition.eof', (e) => {
      if (this.eof.has(e.partition)) return;
      this.eof.add(e.partition);
      if (!this.ready && this.eof.size === this.opts.partitions) {
        this.ready = true;
        for (const w of this.readyWaiters.splice(0)) w();
      }
    });
    try {
      await new Promise<void>((resolve, reject) => c.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    } catch (cause) {
      throw new LivePartialsError('ERR_LIVE_CONNECT', `cannot read ${this.topic} on ${this.opts.brokers}: ${(cause as Error).message}`, true, { cause });
    }
    c.assign(Array.from({ length: this.opts.partitions }, (_, partition) => ({ topic: this.topic, partition, offset: -2 })));
    this.consumer = c;
    this.loop();
  }

  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((r) => this.readyWaiters.push(r));
  }

  onUpdate(listener: (u: LiveUpdate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Keeps windows from this start on in memory (null: no need). */
  keepFrom(floor: () => number | null): void {
    this.floors.add(floor);
  }

  private loop(): void {
    const c = this.consumer;
    if (!c || this.stopped) return;
    c.consume(2000, (err, msgs) => {
      if (this.stopped) return;
      if (err) this.stats.lastError = `${this.topic}: ${err.message}`;
      else if (msgs.length) {
        try {
          this.onMessages(msgs);
        } catch (e) {
          // Not expected (unreadable records are skipped one by one in onMessages): never a crash.
          this.stats.lastError = `${this.topic}: ${(e as Error).message}`;
        }
      }
      setTimeout(() => this.loop(), err ? 500 : 0);
    });
  }

  private onMessages(msgs: Kafka.Message[]): void {
    const update: LiveUpdate = { changed: [], newAlerts: [], statuses: [] };
    let newest = 0;
    for (const m of msgs) {
      if (!m.key) continue;
      this.stats.records++;
      this.stats.bytes += (m.key as Buffer).length + (m.value?.length ?? 0);
      const key = (m.key as Buffer).toString();
      let list = this.pending.get(m.partition);
      if (!list) this.pending.set(m.partition, (list = []));
      if (key !== META_KEY) {
        let rel: StoreKey;
        let value: unknown;
        try {
          rel = decodeKey(key);
          value = m.value ? decodeValue(m.value) : undefined;
        } catch {
          this.stats.unreadable++;
          this.stats.lastError = `${this.topic}: unreadable record at partition ${m.partition} offset ${m.offset}`;
          continue;
        }
        list.push([rel, value]);
        continue;
      }
      // The end of one of the partition's transactions: apply it whole.
      const view = this.views[m.partition];
      if (!view) continue;
      let meta: PartitionMeta | undefined;
      try {
        meta = m.value ? (decodeValue(m.value) as PartitionMeta) : undefined;
      } catch {
        // The commit's records are committed (read_committed): apply them, keep the last progress.
        this.stats.unreadable++;
        this.stats.lastError = `${this.topic}: unreadable progress record at partition ${m.partition} offset ${m.offset}`;
        meta = view.meta;
      }
      this.stats.transactions++;
      for (const [rel, value] of list.splice(0)) {
        const pipeline = rel[0] as string;
        const how = view.apply(rel, value);
        if (pipeline === 'alerts') {
          if (how === 'new') update.newAlerts.push(value as Alert);
        } else if (pipeline === ALERT_STATUS) {
          if (value) update.statuses.push({ alertId: rel[1] as string, ...(value as { status: string; at: number }) });
        } else if (typeof rel[1] === 'number') {
          update.changed.push({ pipeline, partition: m.partition, windowStart: rel[1] });
        }
      }
      const before = view.meta;
      if (!before || !meta || before.streamTime !== meta.streamTime || before.counters?.events !== meta.counters?.events) view.lastProgressAt = Date.now();
      view.meta = meta;
      newest = Math.max(newest, meta?.streamTime ?? 0);
    }
    if (newest > 0 && Date.now() - this.trimmedAt > 10_000) this.trim();
    if (update.changed.length || update.newAlerts.length || update.statuses.length) for (const l of this.listeners) l(update);
  }

  private trimmedAt = 0;

  private trim(): void {
    this.trimmedAt = Date.now();
    const latest = Math.max(0, ...this.views.map((v) => v.meta?.streamTime ?? 0));
    let before = latest - (this.opts.keepMs ?? 3 * 3_600_000);
    for (const f of this.floors) {
      const x = f();
      if (x !== null) before = Math.min(before, x);
    }
    for (const v of this.views) v.trim(before, WINDOWED_KEEP);
  }

  /** Entries held in memory over all partitions. */
  get size(): number {
    return this.views.reduce((n, v) => n + v.size, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.consumer;
    this.consumer = null;
    if (c) await new Promise<void>((r) => c.disconnect(() => r()));
  }
}
