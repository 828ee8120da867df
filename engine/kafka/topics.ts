import { EngineError } from '../errors.js';
import Kafka from 'node-rdkafka';
import { TOPIC_CODES } from '../workers/protocol.js';

/**
 * Topic names of DESIGN.md. A prefix (empty by default) lets several deployments or test runs
 * share one cluster. Input topics are co-partitioned: partition p of every input topic holds the
 * same users, and is state partition p.
 */
export const INPUT_TOPICS = TOPIC_CODES.slice(1) as readonly string[];
export const REFERENCE_TOPICS = ['user-profiles', 'product-catalog'] as const;
export const OUTPUT_TOPICS = ['dashboard-metrics', 'user-session-analytics', 'dashboard-alerts', 'high-priority-alerts', 'medium-priority-alerts', 'low-priority-alerts'] as const;
export const DLQ_TOPIC = 'rta-engine-dlq';

export class KafkaSetupError extends EngineError {}

export interface TopicSpec {
  name: string;
  partitions: number;
  compacted: boolean;
}

/** Scaled out: the state changelog (compacted), the instances registry (compacted, one partition) and the dashboard partials (compacted). */
export const CHANGELOG_TOPIC = 'state-changelog';
export const INSTANCES_TOPIC = 'instances';
/** Scaled out: the dashboard projection of every partition's commits (compacted; engine/state/live-projection.ts). */
export const LIVE_TOPIC = 'dashboard-partials';

export function topicSpecs(prefix: string, partitions: number, opts: { changelog?: boolean } = {}): TopicSpec[] {
  return [
    ...(opts.changelog ? [{ name: prefix + CHANGELOG_TOPIC, partitions, compacted: true }, { name: prefix + INSTANCES_TOPIC, partitions: 1, compacted: true }, { name: prefix + LIVE_TOPIC, partitions, compacted: true }] : []),
    ...INPUT_TOPICS.map((t) => ({ name: prefix + t, partitions, compacted: false })),
    ...REFERENCE_TOPICS.map((t) => ({ name: prefix + t, partitions, compacted: true })),
    ...OUTPUT_TOPICS.map((t) => ({ name: prefix + t, partitions, compacted: t === 'dashboard-metrics' || t === 'user-session-analytics' })),
    { name: prefix + DLQ_TOPIC, partitions, compacted: false },
  ];
}

/**
 * Creates missing topics and checks that existing ones have the partition count the engine was
 * configured with (co-partitioning is what keeps a user's state in one partition).
 */
export async function ensureTopics(brokers: string, prefix: string, partitions: number, extra: Record<string, string> = {}, opts: { changelog?: boolean } = {}): Promise<{ created: string[] }> {
  const specs = topicSpecs(prefix, partitions, opts);
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, 'client.id': 'rta-engine-admin', ...extra });
  const created: string[] = [];
  try {
    for (const s of specs) {
      await new Promise<void>((resolve, reject) => {
        admin.createTopic({
          topic: s.name, num_partitions: s.partitions, replication_factor: 1,
          config: s.compacted ? { 'cleanup.policy': 'compact' } : {},
        }, 15_000, (err) => {
          if (!err) {
            created.push(s.name);
            resolve();
          } else if (err.code === Kafka.CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) resolve();
          else reject(new KafkaSetupError('ERR_KAFKA_CREATE_TOPIC', `cannot create topic ${s.name} on ${brokers}: ${err.message}`, true, { cause: err }));
        });
      });
    }
  } finally {
    admin.disconnect();
  }
  // New topics take a moment to appear in metadata: ask again for up to 15 s.
  let meta = await metadata(brokers, extra);
  for (let i = 0; i < 30 && specs.some((s) => !meta.topics.find((x) => x.name === s.name && x.partitions.length > 0)); i++) {
    await new Promise((r) => setTimeout(r, 500));
    meta = await metadata(brokers, extra);
  }
  for (const s of specs) {
    const t = meta.topics.find((x) => x.name === s.name);
    if (!t) throw new KafkaSetupError('ERR_KAFKA_TOPIC_MISSING', `topic ${s.name} is not visible on ${brokers} 15 s after creation`, true);
    if (t.partitions.length !== s.partitions) {
      throw new KafkaSetupError('ERR_KAFKA_PARTITIONS', `topic ${s.name} has ${t.partitions.length} partitions but the engine needs ${s.partitions} (--partitions): input topics and the changelog must be co-partitioned with the state`, false);
    }
  }
  return { created };
}

export function metadata(brokers: string, extra: Record<string, string> = {}): Promise<Kafka.Metadata> {
  const p = new Kafka.Producer({ 'metadata.broker.list': brokers, ...extra });
  return new Promise((resolve, reject) => {
    p.connect({ timeout: 15_000 }, (err) => {
      if (err) {
        reject(new KafkaSetupError('ERR_KAFKA_CONNECT', `cannot reach Kafka at ${brokers}: ${err.message}`, true, { cause: err }));
        return;
      }
      p.getMetadata({ timeout: 15_000 }, (e, m) => {
        p.disconnect();
        if (e) reject(new KafkaSetupError('ERR_KAFKA_METADATA', `metadata request to ${brokers} failed: ${e.message}`, true, { cause: e }));
        else resolve(m);
      });
    });
  });
}
