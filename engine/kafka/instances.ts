import Kafka from 'node-rdkafka';
import { INSTANCES_TOPIC } from './topics.js';

/**
 * Who answers queries for which partition, as Kafka Streams' application.server: each instance
 * publishes its query URL and the partitions it owns (with the time it took each) to the compacted
 * `<prefix>instances` topic, keyed by instance id, on every ownership change and as a heartbeat;
 * every instance reads the topic and keeps the table. Kafka's group decides the assignment; this
 * only tells the others what came of it. A partition claimed by two instances (the old owner's
 * record not yet updated) goes to the newest claim; an instance whose heartbeat stopped (SIGKILL)
 * is ignored after `staleMs`; a graceful stop writes a tombstone.
 */
export interface InstanceRecord {
  instanceId: string;
  url: string;
  /** Partition -> since when (ms) this instance owns it. */
  partitions: Record<string, number>;
  at: number;
}

export interface InstanceRegistryOptions {
  brokers: string;
  topicPrefix: string;
  instanceId: string;
  advertisedUrl: string;
  kafkaConfig: Record<string, string | number | boolean>;
  heartbeatMs?: number;
  staleMs?: number;
}

export interface PartitionOwner {
  instanceId: string;
  url: string;
  /** When the owner took the partition (its own clock). */
  since: number;
}

export class InstanceRegistry {
  private producer: Kafka.Producer | null = null;
  private consumer: Kafka.KafkaConsumer | null = null;
  private readonly topic: string;
  private readonly records = new Map<string, InstanceRecord>();
  private owned: Record<string, number> = {};
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly opts: InstanceRegistryOptions) {
    this.topic = opts.topicPrefix + INSTANCES_TOPIC;
  }

  get instanceId(): string {
    return this.opts.instanceId;
  }

  async start(): Promise<void> {
    const settings = Object.fromEntries(Object.entries(this.opts.kafkaConfig).filter(([k]) => !/^(group\.|partition\.assignment|session\.timeout|heartbeat|isolation)/.test(k)));
    const p = new Kafka.Producer({ 'metadata.broker.list': this.opts.brokers, 'linger.ms': 0, ...settings });
    await new Promise<void>((resolve, reject) => p.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    this.producer = p;
    const c = new Kafka.KafkaConsumer({
      'metadata.broker.list': this.opts.brokers,
      'group.id': `${this.opts.instanceId}-instances-reader`,
      'enable.auto.commit': false,
      ...settings,
    }, { 'auto.offset.reset': 'earliest' });
    await new Promise<void>((resolve, reject) => c.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    c.assign([{ topic: this.topic, partition: 0, offset: -2 }]);
    c.setDefaultConsumeTimeout(200);
    this.consumer = c;
    this.loop();
    this.publish();
    this.timer = setInterval(() => this.publish(), this.opts.heartbeatMs ?? 2000);
    this.timer.unref();
  }

  private loop(): void {
    const c = this.consumer;
    if (!c || this.stopped) return;
    c.consume(500, (err, msgs) => {
      if (this.stopped) return;
      if (!err) {
        let changed = false;
        for (const m of msgs) {
          const id = m.key?.toString();
          if (!id) continue;
          if (!m.value) this.records.delete(id);
          else {
            try {
              this.records.set(id, JSON.parse(m.value.toString()) as InstanceRecord);
            } catch {
              continue;
            }
          }
          changed = true;
        }
        if (changed) for (const l of this.listeners) l();
      }
      setTimeout(() => this.loop(), err ? 500 : 0);
    });
  }

  /** This instance now owns `partitions` (kept: the time each was taken; new ones: now). */
  setOwned(partitions: number[]): void {
    const now = Date.now();
    this.owned = Object.fromEntries(partitions.map((p) => [String(p), this.owned[String(p)] ?? now]));
    this.publish();
  }

  private publish(): void {
    const p = this.producer;
    if (!p || this.stopped) return;
    const rec: InstanceRecord = { instanceId: this.opts.instanceId, url: this.opts.advertisedUrl, partitions: this.owned, at: Date.now() };
    try {
      p.produce(this.topic, 0, Buffer.from(JSON.stringify(rec)), this.opts.instanceId, Date.now());
    } catch {
      // the heartbeat tries again
    }
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Per partition, the instance that answers for it (this one included), from live records. */
  owners(): Map<number, PartitionOwner> {
    const staleMs = this.opts.staleMs ?? 10_000;
    const now = Date.now();
    const best = new Map<number, { since: number; owner: PartitionOwner }>();
    const mine = new Set(Object.keys(this.owned).map(Number));
    for (const r of this.records.values()) {
      if (r.instanceId === this.opts.instanceId) continue;
      if (now - r.at > staleMs) continue;
      for (const [p, since] of Object.entries(r.partitions)) {
        const part = Number(p);
        if (mine.has(part)) continue;
        const cur = best.get(part);
        if (!cur || since > cur.since) best.set(part, { since, owner: { instanceId: r.instanceId, url: r.url, since } });
      }
    }
    const out = new Map<number, PartitionOwner>();
    for (const [p, b] of best) out.set(p, b.owner);
    for (const p of mine) out.set(p, { instanceId: this.opts.instanceId, url: this.opts.advertisedUrl, since: this.owned[String(p)] ?? now });
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const p = this.producer;
    this.producer = null;
    if (p) {
      try {
        p.produce(this.topic, 0, null, this.opts.instanceId, Date.now());
        await new Promise<void>((r) => p.flush(5000, () => r()));
      } catch {
        // the record goes stale instead
      }
      await new Promise<void>((r) => p.disconnect(() => r()));
    }
    const c = this.consumer;
    this.consumer = null;
    if (c) await new Promise<void>((r) => c.disconnect(() => r()));
  }
}
