import Kafka from 'node-rdkafka';
import { INPUT_TOPICS } from '../kafka/topics.js';
import type { EventSource, OffsetMap, RawMessage, SourceHandler } from './types.js';

export interface KafkaSourceOptions {
  brokers: string;
  groupId: string;
  topicPrefix: string;
  /** librdkafka settings passed through (`--kafka key=value`). */
  kafkaConfig: Record<string, string | number | boolean>;
  /** Messages per consume call: one call per message costs ~7 us through the binding. */
  batchSize: number;
}

/**
 * The Kafka source: a node-rdkafka consumer in a consumer group (cooperative-sticky), consuming
 * in batches. Offsets are never stored or committed automatically: the engine calls `commit` with
 * the offsets its LMDB state already holds (durable), and on assignment each partition resumes
 * after the offset stored in LMDB, so Kafka's committed offset is only a hint for other tools.
 */
export class KafkaSource implements EventSource {
  readonly name = 'kafka';
  private consumer: Kafka.KafkaConsumer | null = null;
  /** The consumer object, kept until disconnect completes (for the final rebalance callback). */
  private client: Kafka.KafkaConsumer | null = null;
  private handler: SourceHandler | null = null;
  private resumeAfter: OffsetMap = {};
  private paused = false;
  private stopped = false;
  private consuming = false;
  private readonly codeOf = new Map<string, number>();
  private readonly topicOf = new Map<number, string>();
  readonly stats = { consumed: 0, commits: 0, commitErrors: 0, rebalances: 0, lastError: '' };
  /** Partitions currently assigned, as "topic:partition". */
  readonly assigned = new Set<string>();
  /** Latest offsets handed to commit, re-committed synchronously on stop. */
  private readonly pendingCommit = new Map<string, Kafka.TopicPartitionOffset>();

  constructor(private readonly opts: KafkaSourceOptions) {
    INPUT_TOPICS.forEach((t, i) => {
      this.codeOf.set(opts.topicPrefix + t, i + 1);
      this.topicOf.set(i + 1, opts.topicPrefix + t);
    });
  }

  async start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    this.handler = handler;
    this.resumeAfter = resumeAfter;
    const consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': this.opts.brokers,
      'group.id': this.opts.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'partition.assignment.strategy': 'cooperative-sticky',
      'socket.keepalive.enable': true,
      rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => this.onRebalance(err, assignment),
      offset_commit_cb: (err: Kafka.LibrdKafkaError | null) => {
        if (err) {
          this.stats.commitErrors++;
          this.stats.lastError = err.message;
        } else this.stats.commits++;
      },
      ...this.opts.kafkaConfig,
    }, { 'auto.offset.reset': 'earliest' });
    this.consumer = consumer;
    this.client = consumer;
    consumer.on('event.error', (err) => {
      this.stats.lastError = err.message;
      handler.onError(new Error(`kafka consumer: ${err.message}`));
    });
    await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    consumer.setDefaultConsumeTimeout(100);
    consumer.subscribe([...this.codeOf.keys()]);
    this.loop();
  }

  private onRebalance(err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]): void {
    // Uses the client even while it disconnects: leaving the group fires a last revoke, and
    // librdkafka waits for its incremental unassign (a known hang when it is skipped).
    const c = this.client!;
    this.stats.rebalances++;
    try {
      if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
        // Resume each partition right after what the state has already counted.
        const withOffsets = assignment.map((a) => {
          const done = this.resumeAfter[a.partition]?.[String(this.codeOf.get(a.topic))];
          this.assigned.add(`${a.topic}:${a.partition}`);
          return done === undefined ? { topic: a.topic, partition: a.partition } : { topic: a.topic, partition: a.partition, offset: done + 1 };
        });
        c.incrementalAssign(withOffsets);
      } else if (err.code === Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS) {
        for (const a of assignment) this.assigned.delete(`${a.topic}:${a.partition}`);
        c.incrementalUnassign(assignment);
      } else {
        this.stats.lastError = err.message;
      }
    } catch (e) {
      this.stats.lastError = (e as Error).message;
    }
  }

  private loop(): void {
    if (this.stopped || this.paused || this.consuming || !this.consumer) return;
    this.consuming = true;
    this.consumer.consume(this.opts.batchSize, (err, messages) => {
      this.consuming = false;
      if (this.stopped) return;
      if (err) {
        this.stats.lastError = err.message;
        setTimeout(() => this.loop(), 100);
        return;
      }
      if (messages.length) {
        const out: RawMessage[] = [];
        for (const m of messages) {
          const code = this.codeOf.get(m.topic);
          if (code === undefined || !m.value) continue;
          const done = this.resumeAfter[m.partition]?.[String(code)];
          if (done !== undefined && m.offset <= done) continue;
          out.push({ topic: code, partition: m.partition, offset: m.offset, value: m.value });
        }
        this.stats.consumed += messages.length;
        if (out.length) this.handler!.onMessages(out);
      }
      setImmediate(() => this.loop());
    });
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.loop();
  }

  /** Commits next offsets (processed + 1) for partitions whose state is durable. */
  commit(offsets: OffsetMap): void {
    const c = this.consumer;
    if (!c || this.stopped) return;
    const list: Kafka.TopicPartitionOffset[] = [];
    for (const [p, byTopic] of Object.entries(offsets)) {
      for (const [code, off] of Object.entries(byTopic)) {
        const topic = this.topicOf.get(Number(code));
        if (!topic || !this.assigned.has(`${topic}:${p}`)) continue;
        list.push({ topic, partition: Number(p), offset: off + 1 });
        const r = (this.resumeAfter[Number(p)] ??= {});
        r[code] = Math.max(r[code] ?? -1, off);
      }
    }
    if (list.length === 0) return;
    for (const x of list) this.pendingCommit.set(`${x.topic}:${x.partition}`, x);
    try {
      c.commit(list);
    } catch (e) {
      this.stats.commitErrors++;
      this.stats.lastError = (e as Error).message;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.consumer;
    this.consumer = null;
    if (c && c.isConnected()) {
      const last = [...this.pendingCommit.values()].filter((x) => this.assigned.has(`${x.topic}:${x.partition}`));
      try {
        if (last.length) c.commitSync(last);
      } catch (e) {
        this.stats.commitErrors++;
        this.stats.lastError = (e as Error).message;
      }
      await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    }
    this.client = null;
  }
}
