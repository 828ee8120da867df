import Kafka from 'node-rdkafka';
import { EventBatchEncoder, encodeUserProfile, type EventRecord, type UserProfile } from '../../engine/codec/index.js';
import { partitionOf, keyOf } from '../../engine/index.js';

export const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';

const TOPIC_BY_SOURCE: Record<string, string> = {
  WEB: 'web-events', MOBILE: 'mobile-events', TRANSACTION: 'transaction-events', IOT: 'iot-events', USER_ACTION: 'user-actions',
};

export function producer(): Promise<Kafka.Producer> {
  const p = new Kafka.Producer({ 'metadata.broker.list': BROKERS, dr_cb: true, 'linger.ms': 5, 'enable.idempotence': true });
  p.setPollInterval(20);
  return new Promise((resolve, reject) => p.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve(p))));
}

/** Produces and waits for every delivery report; throws on any delivery error. */
export interface ProducedRecord {
  topic: string;
  partition: number;
  key: string;
  value: Buffer;
  /** Message timestamp: loadgen sets it to the batch's first event time. */
  timestamp?: number;
  events?: EventRecord[];
}

export async function produceAll(p: Kafka.Producer, records: ProducedRecord[]): Promise<void> {
  let pending = records.length;
  if (pending === 0) return;
  await new Promise<void>((resolve, reject) => {
    const onReport = (err: Kafka.LibrdKafkaError | null) => {
      if (err) {
        p.removeListener('delivery-report', onReport);
        reject(err);
        return;
      }
      if (--pending === 0) {
        p.removeListener('delivery-report', onReport);
        resolve();
      }
    };
    p.on('delivery-report', onReport);
    for (const r of records) {
      for (;;) {
        try {
          p.produce(r.topic, r.partition, r.value, r.key, r.timestamp ?? Date.now());
          break;
        } catch {
          p.poll();
        }
      }
    }
  });
}

/** Events as loadgen writes them: per source topic and user partition, EventBatches in order. */
export function eventMessages(prefix: string, events: EventRecord[], partitions: number, perMessage = 200) {
  const groups = new Map<string, EventRecord[]>();
  const out: ProducedRecord[] = [];
  const enc = new EventBatchEncoder();
  const flush = (k: string) => {
    const list = groups.get(k)!;
    const [topic, partition] = k.split('|');
    for (const e of list) enc.add(e);
    out.push({ topic, partition: Number(partition), key: keyOf(list[0]), value: Buffer.from(enc.finish()), timestamp: list[0].timestamp, events: [...list] });
    list.length = 0;
  };
  for (const e of events) {
    const k = `${prefix}${TOPIC_BY_SOURCE[e.source]}|${partitionOf(keyOf(e), partitions)}`;
    if (!groups.has(k)) groups.set(k, []);
    const g = groups.get(k)!;
    g.push(e);
    if (g.length >= perMessage) flush(k);
  }
  for (const [k, g] of groups) if (g.length) flush(k);
  return out;
}

export function profileMessages(prefix: string, profiles: Iterable<UserProfile>, partitions: number) {
  return [...profiles].map((p) => ({ topic: `${prefix}user-profiles`, partition: partitionOf(p.userId, partitions), key: p.userId, value: Buffer.from(encodeUserProfile(p)) }));
}

const TOPIC_ORDER = ['web-events', 'mobile-events', 'transaction-events', 'iot-events', 'user-actions'];

/**
 * The order in which a partition's events are applied when its five topics are merged by message
 * timestamp (ties to the earlier topic in TOPIC_ORDER): the reference model replays this order.
 */
export function mergedEventOrder(prefix: string, records: ProducedRecord[], partitions: number): EventRecord[] {
  const out: EventRecord[] = [];
  for (let p = 0; p < partitions; p++) {
    const queues = TOPIC_ORDER.map((t) => records.filter((r) => r.partition === p && r.topic === prefix + t));
    for (;;) {
      let best = -1;
      for (let i = 0; i < queues.length; i++) {
        if (queues[i].length && (best < 0 || queues[i][0].timestamp! < queues[best][0].timestamp!)) best = i;
      }
      if (best < 0) break;
      out.push(...queues[best].shift()!.events!);
    }
  }
  return out;
}
