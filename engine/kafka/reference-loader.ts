import Kafka from 'node-rdkafka';
import { decodeProduct, decodeUserProfile, type Product, type UserProfile } from '../codec/index.js';
import type { ReferenceStore } from '../state/reference-store.js';
import { REFERENCE_TOPICS } from './topics.js';

function decode<T>(value: Buffer, fromFlat: (b: Uint8Array) => T, valid: (x: T) => boolean): T | null {
  const first = value.find((c) => c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09);
  try {
    const x = first === 0x7b ? (JSON.parse(value.toString('utf8')) as T) : fromFlat(value);
    return valid(x) ? x : null;
  } catch {
    return null;
  }
}

/**
 * Reads the compacted reference topics (user-profiles, product-catalog: FlatBuffers UserProfile /
 * Product, or JSON of the same shape) from the beginning to their end into the reference store,
 * before any event is processed; then keeps following them. Records that decode to nothing
 * usable are counted and skipped.
 */
export class ReferenceLoader {
  private consumer: Kafka.KafkaConsumer | null = null;
  private stopped = false;
  readonly stats = { profiles: 0, products: 0, invalid: 0 };

  constructor(private readonly opts: { brokers: string; topicPrefix: string; partitions: number; store: ReferenceStore; kafkaConfig: Record<string, string | number | boolean> }) {}

  async bootstrap(timeoutMs = 120_000): Promise<{ profiles: number; products: number; invalid: number }> {
    const { brokers, topicPrefix, partitions } = this.opts;
    const consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': brokers, 'group.id': `rta-reference-${process.pid}-${Date.now()}`, 'enable.auto.commit': false, ...this.opts.kafkaConfig,
    }, { 'auto.offset.reset': 'earliest' });
    this.consumer = consumer;
    await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    const topics = REFERENCE_TOPICS.map((t) => topicPrefix + t);
    const targets = new Map<string, number>();
    for (const topic of topics) {
      for (let p = 0; p < partitions; p++) {
        const w = await new Promise<Kafka.WatermarkOffsets>((resolve, reject) => consumer.queryWatermarkOffsets(topic, p, 10_000, (err, o) => (err ? reject(err) : resolve(o))));
        if (w.highOffset > w.lowOffset) targets.set(`${topic}:${p}`, w.highOffset);
      }
    }
    consumer.assign(topics.flatMap((topic) => Array.from({ length: partitions }, (_, p) => ({ topic, partition: p, offset: 0 }))));
    consumer.setDefaultConsumeTimeout(200);
    const deadline = Date.now() + timeoutMs;
    while (targets.size && Date.now() < deadline) {
      const msgs = await new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(5000, (err, m) => (err ? reject(err) : resolve(m))));
      await this.apply(msgs);
      for (const m of msgs) {
        const k = `${m.topic}:${m.partition}`;
        const hi = targets.get(k);
        if (hi !== undefined && m.offset + 1 >= hi) targets.delete(k);
      }
    }
    if (targets.size) throw new Error(`reference topics not read to their end within ${timeoutMs} ms (${[...targets.keys()].join(', ')})`);
    this.follow();
    return { ...this.stats };
  }

  private async apply(msgs: Kafka.Message[]): Promise<void> {
    const profiles: UserProfile[] = [];
    const products: Product[] = [];
    for (const m of msgs) {
      if (!m.value) continue;
      if (m.topic.endsWith('user-profiles')) {
        const p = decode(m.value, decodeUserProfile, (x) => typeof x?.userId === 'string' && x.userId.length > 0);
        if (p) profiles.push(p);
        else this.stats.invalid++;
      } else {
        const p = decode(m.value, decodeProduct, (x) => typeof x?.productId === 'string' && x.productId.length > 0);
        if (p) products.push(p);
        else this.stats.invalid++;
      }
    }
    if (profiles.length) this.stats.profiles += await this.opts.store.putProfiles(profiles);
    if (products.length) this.stats.products += await this.opts.store.putProducts(products);
  }

  /** Keeps the tables up to date after the bootstrap (one writer: this loader). */
  private follow(): void {
    const c = this.consumer;
    if (!c || this.stopped) return;
    c.consume(1000, (err, msgs) => {
      if (this.stopped) return;
      const next = () => setTimeout(() => this.follow(), err || msgs.length === 0 ? 500 : 0);
      if (err || msgs.length === 0) return void next();
      this.apply(msgs).then(next, next);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.consumer;
    this.consumer = null;
    if (c && c.isConnected()) await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}
