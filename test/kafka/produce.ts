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
export async function produceAll(p: Kafka.Producer, records: Array<{ topic: string; partition: number; key: string; value: Buffer }>): Promise<void> {
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
          p.produce(r.topic, r.partition, r.value, r.key, Date.now());
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
  const out: Array<{ topic: string; partition: number; key: string; value: Buffer }> = [];
  const enc = new EventBatchEncoder();
  const flush = (k: string) => {
    const list = groups.get(k)!;
    const [topic, partition] = k.split('|');
    for (const e of list) enc.add(e);
    out.push({ topic, partition: Number(partition), key: keyOf(list[0]), value: Buffer.from(enc.finish()) });
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
